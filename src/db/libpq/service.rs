//! Connection service files (`service=name` / `PGSERVICE`), read as libpq reads them: the
//! user's file (`PGSERVICEFILE`, else `~/.pg_service.conf`) first; only when the section is not
//! there, the system file `PGSYSCONFDIR/pg_service.conf` (without `PGSYSCONFDIR`, Debian's
//! `/etc/postgresql-common`). A missing section is an error, as in libpq.

use std::path::{Path, PathBuf};

use super::Env;
use super::params::{Keyword, keyword};

/// The settings of service `name`.
pub fn lookup(name: &str, env: &dyn Env) -> Result<Vec<(Keyword, String)>, String> {
    let user_file = env
        .var("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").map(|home| Path::new(&home).join(".pg_service.conf")));
    let system_dir = env.var("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".to_string());
    let system_file = Path::new(&system_dir).join("pg_service.conf");
    for file in user_file.iter().chain([&system_file]) {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        if let Some(settings) =
            parse(&text, name).map_err(|e| format!("{e} in service file \"{}\"", file.display()))?
        {
            return Ok(settings);
        }
    }
    Err(format!("definition of service \"{name}\" not found"))
}

/// The section `[name]` of a service file, or `None` when the file has no such section.
pub fn parse(text: &str, name: &str) -> Result<Option<Vec<(Keyword, String)>>, String> {
    let mut found: Option<Vec<(Keyword, String)>> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            if section.strip_suffix(']') == Some(name) {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(settings) = found.as_mut() else { continue };
        let syntax = || format!("syntax error at line {}", number + 1);
        let (key, value) = line.split_once('=').ok_or_else(syntax)?;
        let key = key.trim_end();
        if key == "service" {
            return Err(format!("nested service specifications not supported at line {}", number + 1));
        }
        let keyword = keyword(key).ok_or_else(syntax)?;
        settings.push((keyword, value.trim_start().to_string()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::libpq::params::tests::env;

    const FILE: &str = "# comment\n[other]\nhost=elsewhere\n\n  [shop]  \nhost=db.example\n  port = 6543\nsslmode=require\n[next]\nhost=no\n";

    fn names(settings: Vec<(Keyword, String)>) -> Vec<(&'static str, String)> {
        settings.into_iter().map(|(k, v)| (k.name, v)).collect()
    }

    #[test]
    fn a_section_is_read_up_to_the_next() {
        let settings = parse(FILE, "shop").unwrap().unwrap();
        assert_eq!(
            names(settings),
            vec![("host", "db.example".into()), ("port", "6543".into()), ("sslmode", "require".into())]
        );
        assert_eq!(parse(FILE, "sho").unwrap(), None);
    }

    #[test]
    fn bad_lines_and_nested_services_are_errors() {
        assert!(parse("[a]\nhost\n", "a").unwrap_err().contains("syntax error at line 2"));
        assert!(parse("[a]\ncolour=blue\n", "a").unwrap_err().contains("syntax error"));
        assert!(parse("[a]\nservice=b\n", "a").unwrap_err().contains("nested service"));
        // Lines of other sections are not looked at.
        assert!(parse("[b]\ngarbage\n[a]\nhost=h\n", "a").unwrap().is_some());
    }

    #[test]
    fn the_user_file_first_then_the_system_file() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        std::fs::write(&user, "[mine]\nhost=u\n").unwrap();
        std::fs::write(dir.path().join("pg_service.conf"), "[mine]\nhost=s\n[sys]\nhost=s2\n").unwrap();
        let e =
            env(&[("PGSERVICEFILE", user.to_str().unwrap()), ("PGSYSCONFDIR", dir.path().to_str().unwrap())]);
        assert_eq!(names(lookup("mine", &e).unwrap()), vec![("host", "u".into())]);
        assert_eq!(names(lookup("sys", &e).unwrap()), vec![("host", "s2".into())]);
        assert_eq!(lookup("none", &e).unwrap_err(), "definition of service \"none\" not found");
    }

    #[test]
    fn home_holds_the_default_user_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".pg_service.conf"), "[h]\ndbname=fromhome\n").unwrap();
        let e = env(&[("HOME", dir.path().to_str().unwrap()), ("PGSYSCONFDIR", "/nonexistent")]);
        assert_eq!(names(lookup("h", &e).unwrap()), vec![("dbname", "fromhome".into())]);
    }
}
