//! libpq's connection keywords, their environment variables, and where a setting comes from:
//! the connection string first, then the service file's section, then the environment
//! (`PGHOST`, `PGAPPNAME`, …); what is still unset takes the default in [`super::super::conn`].

use std::collections::BTreeMap;

use super::Env;
use super::service;

/// What tenantize does with a keyword libpq knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Honoured.
    Yes,
    /// Accepted and without effect, as it is for a libpq connection that uses no GSSAPI.
    Ignored,
    /// Refused with a clear error rather than silently dropped.
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyword {
    pub name: &'static str,
    pub env: Option<&'static str>,
    pub support: Support,
}

const fn kw(name: &'static str, env: Option<&'static str>, support: Support) -> Keyword {
    Keyword { name, env, support }
}

use Support::{Ignored, No, Yes};

/// Every keyword of libpq 17 (`PQconndefaults`), with its variable.
pub const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE"), Yes),
    kw("user", Some("PGUSER"), Yes),
    kw("password", Some("PGPASSWORD"), Yes),
    kw("passfile", Some("PGPASSFILE"), Yes),
    kw("channel_binding", Some("PGCHANNELBINDING"), Yes),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT"), Yes),
    kw("dbname", Some("PGDATABASE"), Yes),
    kw("host", Some("PGHOST"), Yes),
    kw("hostaddr", Some("PGHOSTADDR"), Yes),
    kw("port", Some("PGPORT"), Yes),
    kw("client_encoding", Some("PGCLIENTENCODING"), Yes),
    kw("options", Some("PGOPTIONS"), Yes),
    kw("application_name", Some("PGAPPNAME"), Yes),
    kw("fallback_application_name", None, Ignored),
    kw("keepalives", None, Yes),
    kw("keepalives_idle", None, Yes),
    kw("keepalives_interval", None, Yes),
    kw("keepalives_count", None, Yes),
    kw("tcp_user_timeout", None, Yes),
    kw("sslmode", Some("PGSSLMODE"), Yes),
    kw("requiressl", Some("PGREQUIRESSL"), Yes),
    kw("sslnegotiation", Some("PGSSLNEGOTIATION"), Yes),
    kw("sslcompression", Some("PGSSLCOMPRESSION"), Ignored),
    kw("sslcert", Some("PGSSLCERT"), Yes),
    kw("sslkey", Some("PGSSLKEY"), Yes),
    kw("sslcertmode", Some("PGSSLCERTMODE"), Yes),
    kw("sslpassword", None, No),
    kw("sslrootcert", Some("PGSSLROOTCERT"), Yes),
    kw("sslcrl", Some("PGSSLCRL"), No),
    kw("sslcrldir", Some("PGSSLCRLDIR"), No),
    kw("sslsni", Some("PGSSLSNI"), Yes),
    kw("sslkeylogfile", None, No),
    kw("requirepeer", Some("PGREQUIREPEER"), No),
    kw("require_auth", Some("PGREQUIREAUTH"), No),
    kw("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION"), Yes),
    kw("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION"), Yes),
    kw("min_protocol_version", Some("PGMINPROTOCOLVERSION"), No),
    kw("max_protocol_version", Some("PGMAXPROTOCOLVERSION"), No),
    kw("gssencmode", Some("PGGSSENCMODE"), Yes),
    kw("krbsrvname", Some("PGKRBSRVNAME"), Ignored),
    kw("gsslib", Some("PGGSSLIB"), Ignored),
    kw("gssdelegation", Some("PGGSSDELEGATION"), Ignored),
    kw("replication", None, No),
    kw("target_session_attrs", Some("PGTARGETSESSIONATTRS"), Yes),
    kw("load_balance_hosts", Some("PGLOADBALANCEHOSTS"), Yes),
];

pub fn keyword(name: &str) -> Option<Keyword> {
    KEYWORDS.iter().copied().find(|k| k.name == name)
}

/// The settings of one connection, by keyword, after the connection string, the service file
/// and the environment were consulted (libpq's `conninfo_add_defaults`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<&'static str, String>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A value that is set and not empty (libpq treats an empty setting as unset).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        self.0.insert(name, value.into());
    }

    fn set_if_unset(&mut self, name: &'static str, value: &str) {
        self.0.entry(name).or_insert_with(|| value.to_string());
    }

    /// Resolve `explicit` (a parsed connection string) against the service file and `env`.
    pub fn resolve(explicit: Vec<(Keyword, String)>, env: &dyn Env) -> Result<Params, String> {
        let mut params = Params::default();
        for (keyword, value) in explicit {
            params.set(keyword.name, value);
        }
        let service = params.value("service").map(str::to_string).or_else(|| env.var("PGSERVICE"));
        if let Some(name) = service {
            for (key, value) in service::lookup(&name, env)? {
                params.set_if_unset(key.name, &value);
            }
        }
        for keyword in KEYWORDS {
            if let Some(var) = keyword.env
                && let Some(value) = env.var(var)
            {
                params.set_if_unset(keyword.name, &value);
            }
        }
        params.check_support()?;
        Ok(params)
    }

    /// Refuse a keyword tenantize cannot honour (rather than connect differently than asked).
    fn check_support(&self) -> Result<(), String> {
        for (name, value) in &self.0 {
            let keyword = keyword(name).expect("only keywords are stored");
            if keyword.support == No && !value.is_empty() {
                return Err(format!("connection option \"{name}\" is not supported by tenantize"));
            }
        }
        let allowed: &[(&str, &[&str])] = &[
            ("gssencmode", &["disable", "prefer"]),
            ("client_encoding", &["UTF8", "utf8", "UTF-8", "utf-8", "auto"]),
            ("sslnegotiation", &["postgres"]),
            ("target_session_attrs", &["any", "read-write"]),
            ("channel_binding", &["disable", "prefer", "require"]),
            ("load_balance_hosts", &["disable", "random"]),
            ("sslcertmode", &["disable", "allow"]),
        ];
        for (name, values) in allowed {
            if let Some(value) = self.value(name)
                && !values.contains(&value)
            {
                return Err(format!(
                    "{name} \"{value}\" is not supported by tenantize (it accepts {})",
                    values.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// `connect_timeout`: seconds, as libpq reads them: 0 or negative waits forever, 1 means 2.
pub fn parse_timeout(value: &str) -> Result<Option<std::time::Duration>, String> {
    let seconds: i64 = value.trim().parse().map_err(|_| {
        format!("invalid integer value \"{value}\" for connection option \"connect_timeout\"")
    })?;
    Ok((seconds > 0).then(|| std::time::Duration::from_secs(seconds.max(2) as u64)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::libpq::conninfo;
    use std::collections::HashMap;
    use std::time::Duration;

    /// An environment of fixed variables.
    pub struct MapEnv(pub HashMap<String, String>);

    impl Env for MapEnv {
        fn var(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
        fn warn(&self, _message: &str) {}
    }

    pub fn env(pairs: &[(&str, &str)]) -> MapEnv {
        MapEnv(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn resolve(text: &str, env: &MapEnv) -> Result<Params, String> {
        Params::resolve(conninfo::parse(text)?, env)
    }

    #[test]
    fn the_string_wins_over_the_environment() {
        let params = resolve("host=a", &env(&[("PGHOST", "b"), ("PGPORT", "6000")])).unwrap();
        assert_eq!(params.get("host"), Some("a"));
        assert_eq!(params.get("port"), Some("6000"));
    }

    #[test]
    fn a_url_without_a_port_takes_pgport() {
        let params = resolve("postgresql://h/db", &env(&[("PGPORT", "6543")])).unwrap();
        assert_eq!(params.get("port"), Some("6543"));
    }

    #[test]
    fn pgappname_sets_application_name() {
        let params = resolve("postgresql://h/db", &env(&[("PGAPPNAME", "nightly")])).unwrap();
        assert_eq!(params.get("application_name"), Some("nightly"));
        let params = resolve("application_name=mine", &env(&[("PGAPPNAME", "nightly")])).unwrap();
        assert_eq!(params.get("application_name"), Some("mine"));
    }

    #[test]
    fn unsupported_options_are_refused_by_name() {
        let err = resolve("host=h sslcrl=/x.crl", &env(&[])).unwrap_err();
        assert!(err.contains("\"sslcrl\" is not supported"), "{err}");
        let err = resolve("host=h target_session_attrs=standby", &env(&[])).unwrap_err();
        assert!(err.contains("target_session_attrs \"standby\""), "{err}");
        assert!(resolve("host=h gssencmode=disable krbsrvname=x", &env(&[])).is_ok());
    }

    #[test]
    fn connect_timeout_as_libpq_reads_it() {
        assert_eq!(parse_timeout("10").unwrap(), Some(Duration::from_secs(10)));
        assert_eq!(parse_timeout("1").unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(parse_timeout("-5").unwrap(), None);
        assert!(parse_timeout("soon").unwrap_err().contains("connect_timeout"));
    }
}
