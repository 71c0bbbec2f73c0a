//! The password file (`passfile` / `PGPASSFILE`, else `~/.pgpass`), read as libpq reads it:
//! lines `host:port:database:user:password`, `*` matching anything in the first four fields,
//! `\:` and `\\` escapes, `#` comments, the first matching line wins. A file that is not a plain
//! file, or that the group or others may read, is ignored with a warning, as libpq does.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Socket directories that libpq builds may use by default: a connection through one of them
/// (or with no host at all) matches the host name `localhost`, as in libpq.
const DEFAULT_SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/run/postgresql", "/tmp"];

/// Whether the file at `path` may be used: `Ok(true)` yes, `Ok(false)` absent (silently no
/// password), `Err(warning)` present but ignored.
pub fn usable(path: &Path) -> Result<bool, String> {
    let Ok(meta) = std::fs::metadata(path) else { return Ok(false) };
    if !meta.is_file() {
        return Err(format!("password file \"{}\" is not a plain file", path.display()));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        ));
    }
    Ok(true)
}

/// The host name a password line must match for a connection to `host` (a name, an address or
/// a socket directory).
pub fn match_host(host: &str) -> &str {
    if host.is_empty() || DEFAULT_SOCKET_DIRS.contains(&host.trim_end_matches('/')) {
        "localhost"
    } else {
        host
    }
}

/// The password of the first line matching all four values (`host` as from [`match_host`]).
pub fn find(text: &str, host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        let all = [host, port.as_str(), database, user].into_iter().all(|wanted| match field(rest) {
            Some((value, wildcard, after)) => {
                rest = after;
                wildcard || value == wanted
            }
            None => false,
        });
        if all {
            return Some(unescape_until_colon(rest));
        }
    }
    None
}

/// One `:`-terminated field: its unescaped text, whether it is the wildcard `*`, what follows.
fn field(text: &str) -> Option<(String, bool, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            ':' => return Some((value, &text[..i] == "*", &text[i + 1..])),
            '\\' => value.extend(chars.next().map(|(_, c)| c)),
            c => value.push(c),
        }
    }
    None
}

fn unescape_until_colon(text: &str) -> String {
    let mut value = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => value.extend(chars.next()),
            c => value.push(c),
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_line_wins() {
        let text = "db1:5432:shop:alice:first\n*:*:*:alice:second\n";
        assert_eq!(find(text, "db1", 5432, "shop", "alice").as_deref(), Some("first"));
        assert_eq!(find(text, "db2", 5432, "shop", "alice").as_deref(), Some("second"));
        assert_eq!(find(text, "db1", 5432, "shop", "bob"), None);
    }

    #[test]
    fn wildcards_match_any_value() {
        let text = "*:6543:*:*:pw\n";
        assert_eq!(find(text, "anything", 6543, "any", "one").as_deref(), Some("pw"));
        assert_eq!(find(text, "anything", 5432, "any", "one"), None);
        // A literal `\*` is a star, not a wildcard.
        assert_eq!(find("\\*:*:*:*:pw\n", "h", 1, "d", "u"), None);
        assert_eq!(find("\\*:*:*:*:pw\n", "*", 1, "d", "u").as_deref(), Some("pw"));
    }

    #[test]
    fn escaped_colons_and_backslashes() {
        let text = "/tmp/a\\:b:5432:d:u:p\\:w\\\\x:ignored\n";
        assert_eq!(find(text, "/tmp/a:b", 5432, "d", "u").as_deref(), Some("p:w\\x"));
    }

    #[test]
    fn comments_blank_lines_and_short_lines_are_skipped() {
        let text = "# h:5432:d:u:no\n\nh:5432:d\nh:5432:d:u:yes\r\n";
        assert_eq!(find(text, "h", 5432, "d", "u").as_deref(), Some("yes"));
    }

    #[test]
    fn unix_sockets_match_localhost() {
        assert_eq!(match_host(""), "localhost");
        assert_eq!(match_host("/var/run/postgresql"), "localhost");
        assert_eq!(match_host("/tmp/"), "localhost");
        assert_eq!(match_host("/srv/sockets"), "/srv/sockets");
        assert_eq!(match_host("db.example"), "db.example");
    }

    #[test]
    fn permissions_like_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        assert_eq!(usable(&path), Ok(false));
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(usable(&path).unwrap_err().contains("has group or world access"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(usable(&path), Ok(true));
        assert!(usable(dir.path()).unwrap_err().contains("not a plain file"));
    }
}
