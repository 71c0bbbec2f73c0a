//! The two spellings of a connection string, parsed as libpq parses them: a URL
//! (`postgresql://user:pw@host1:5432,host2/db?sslmode=require`, every part percent-decoded) and
//! `keyword = value` pairs (spaces around `=`, single-quoted values, `\` escapes). A plain word
//! with no `=` is a database name, as `psql -d` reads it.

use super::params::{Keyword, keyword};

/// The explicit settings of a connection string, in order (a later one overrides an earlier one).
pub type Pairs = Vec<(Keyword, String)>;

pub fn parse(text: &str) -> Result<Pairs, String> {
    if let Some(rest) = text.strip_prefix("postgresql://").or_else(|| text.strip_prefix("postgres://")) {
        parse_url(rest)
    } else if text.contains('=') {
        parse_key_values(text)
    } else {
        Ok(vec![(keyword("dbname").expect("dbname is a keyword"), text.to_string())])
    }
}

fn known(name: &str, what: &str) -> Result<Keyword, String> {
    keyword(name).ok_or_else(|| format!("{what} \"{name}\""))
}

/// `keyword = value …`: libpq's `conninfo_parse`.
fn parse_key_values(text: &str) -> Result<Pairs, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            name.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after \"{name}\" in connection info string"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string in connection info string".into()),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((known(&name, "invalid connection option")?, value));
    }
}

/// Percent-decoding as libpq does it: `%XX` only, anything else after `%` is an error.
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoded token: \"{}\"", &text[i..]))?;
            if byte == 0 {
                return Err(format!("forbidden value %00 in percent-encoded value: \"{text}\""));
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("percent-encoded value is not UTF-8: \"{text}\""))
}

/// `[user[:password]@][host[:port][,…]][/dbname][?key=value&…]` (after the scheme).
fn parse_url(rest: &str) -> Result<Pairs, String> {
    let kw = |name: &str| keyword(name).expect("a libpq keyword");
    let mut pairs = Vec::new();
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    let hostspec = match authority.rsplit_once('@') {
        Some((userspec, hostspec)) => {
            let (user, password) = match userspec.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userspec, None),
            };
            if !user.is_empty() {
                pairs.push((kw("user"), percent_decode(user)?));
            }
            if let Some(password) = password {
                pairs.push((kw("password"), percent_decode(password)?));
            }
            hostspec
        }
        None => authority,
    };
    let (hosts, ports) = split_hostspec(hostspec)?;
    if hosts.iter().any(|h| !h.is_empty()) {
        pairs.push((kw("host"), hosts.join(",")));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        pairs.push((kw("port"), ports.join(",")));
    }
    if !path.is_empty() {
        pairs.push((kw("dbname"), percent_decode(path)?));
    }
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').ok_or_else(|| {
            format!("missing key/value separator \"=\" in URI query parameter: \"{param}\"")
        })?;
        let (name, value) = (percent_decode(name)?, percent_decode(value)?);
        // libpq accepts the JDBC spelling `ssl=true` for `sslmode=require`.
        if name == "ssl" && value == "true" {
            pairs.push((kw("sslmode"), "require".into()));
            continue;
        }
        pairs.push((known(&name, "invalid URI query parameter:")?, value));
    }
    Ok(pairs)
}

/// `host[:port]` items separated by commas; an IPv6 address in brackets; each percent-decoded.
fn split_hostspec(hostspec: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    if hostspec.is_empty() {
        return Ok((hosts, ports));
    }
    for item in hostspec.split(',') {
        let (host, port) = if let Some(inner) = item.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| {
                format!("end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{item}\"")
            })?;
            match after {
                "" => (host, ""),
                _ => (
                    host,
                    after.strip_prefix(':').ok_or_else(|| {
                        format!("unexpected character \"{}\" after IPv6 host address in URI", &after[..1])
                    })?,
                ),
            }
        } else {
            item.split_once(':').unwrap_or((item, ""))
        };
        hosts.push(percent_decode(host)?);
        ports.push(percent_decode(port)?);
    }
    Ok((hosts, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap().into_iter().map(|(k, v)| (k.name.to_string(), v)).collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn url_parts_are_percent_decoded() {
        assert_eq!(
            flat("postgresql://al%40ce:p%3Aw@%2Ftmp%2Fsock:5499/my%20db?sslrootcert=%2Ftmp%2Froot.crt"),
            pairs(&[
                ("user", "al@ce"),
                ("password", "p:w"),
                ("host", "/tmp/sock"),
                ("port", "5499"),
                ("dbname", "my db"),
                ("sslrootcert", "/tmp/root.crt"),
            ])
        );
        assert!(parse("postgresql://h/d%zz").unwrap_err().contains("percent-encoded"));
    }

    #[test]
    fn url_host_lists_and_ipv6() {
        assert_eq!(
            flat("postgres://h1:5433,[::1]:5434,h3/db"),
            pairs(&[("host", "h1,::1,h3"), ("port", "5433,5434,"), ("dbname", "db")])
        );
    }

    #[test]
    fn url_without_a_port_sets_no_port() {
        assert_eq!(flat("postgresql://h/db"), pairs(&[("host", "h"), ("dbname", "db")]));
        assert_eq!(flat("postgresql://"), pairs(&[]));
    }

    #[test]
    fn url_unknown_parameter_is_named() {
        let err = parse("postgresql://h/db?sslmode=require&colour=blue").unwrap_err();
        assert_eq!(err, "invalid URI query parameter: \"colour\"");
        assert_eq!(
            flat("postgresql://h/db?ssl=true"),
            pairs(&[("host", "h"), ("dbname", "db"), ("sslmode", "require")])
        );
    }

    #[test]
    fn key_values_allow_spaces_around_equals() {
        assert_eq!(
            flat("host = x  port= 5433 dbname =d"),
            pairs(&[("host", "x"), ("port", "5433"), ("dbname", "d")])
        );
    }

    #[test]
    fn key_values_quoted_and_escaped() {
        assert_eq!(
            flat(r"password='it\'s a \\ secret' options='-c search_path=x' user=a\ b host=''"),
            pairs(&[
                ("password", r"it's a \ secret"),
                ("options", "-c search_path=x"),
                ("user", "a b"),
                ("host", ""),
            ])
        );
        assert!(parse("password='open").unwrap_err().contains("unterminated"));
        assert!(parse("host x user=u").unwrap_err().contains("missing \"=\" after \"host\""));
    }

    #[test]
    fn key_values_unknown_option_is_named() {
        assert_eq!(parse("host=h colour=blue").unwrap_err(), "invalid connection option \"colour\"");
    }

    #[test]
    fn a_plain_word_is_a_database_name() {
        assert_eq!(flat("shop"), pairs(&[("dbname", "shop")]));
    }
}
