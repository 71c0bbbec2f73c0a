//! Where to connect and how: `--database-url`, else `DATABASE_URL`, else the libpq variables.
//!
//! A password may arrive in any of these, so nothing here ever formats it: [`ConnSpec::redacted`]
//! is the only way a connection is described to a user, a log or a plan.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};

use super::error::describe_pg_error;
pub use super::tls::TlsMode;
use super::tls::tls_config;

fn parse_tls_mode(value: &str) -> Result<TlsMode, ConnError> {
    TlsMode::parse(value).ok_or_else(|| ConnError::Invalid(format!("unknown sslmode {value:?}")))
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("invalid connection settings: {0}")]
    Invalid(String),
    #[error("could not connect to {target}: {reason}")]
    Connect { target: String, reason: String },
}

/// A resolved connection target.
#[derive(Clone)]
pub struct ConnSpec {
    config: Config,
    tls: TlsMode,
    root_cert_path: Option<String>,
}

impl std::fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The environment a [`ConnSpec`] is resolved from; a parameter so tests need not touch the
/// process environment.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl ConnSpec {
    /// Resolve from an explicit URL (or libpq key=value string), else `DATABASE_URL`, else the
    /// libpq variables. Variables also fill what the URL leaves out, as libpq does.
    pub fn resolve(url: Option<&str>, env: &dyn Env) -> Result<Self, ConnError> {
        let url = url.map(str::to_string).or_else(|| env.var("DATABASE_URL"));
        let (mut config, mut tls, mut root_cert_path) = match url {
            Some(text) => {
                let (rest, sslmode, rootcert) = take_tls_params(&text);
                let config = Config::from_str(&rest)
                    .map_err(|e| ConnError::Invalid(format!("cannot parse the connection URL: {e}")))?;
                let tls = sslmode.map(|m| parse_tls_mode(&m)).transpose()?;
                (config, tls, rootcert)
            }
            None => (Config::new(), None, None),
        };
        if config.get_hosts().is_empty() {
            let hosts = env.var("PGHOST").unwrap_or_else(default_host);
            for host in hosts.split(',') {
                config.host(host);
            }
        }
        if config.get_ports().is_empty()
            && let Some(port) = env.var("PGPORT")
        {
            let port: u16 = port
                .parse()
                .map_err(|_| ConnError::Invalid(format!("PGPORT {port:?} is not a port number")))?;
            config.port(port);
        }
        if config.get_user().is_none() {
            let user =
                env.var("PGUSER").or_else(|| env.var("USER")).unwrap_or_else(|| "postgres".to_string());
            config.user(user);
        }
        if config.get_password().is_none()
            && let Some(password) = env.var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_dbname().is_none() {
            let db =
                env.var("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("postgres").to_string());
            config.dbname(db);
        }
        if tls.is_none() {
            tls = env.var("PGSSLMODE").map(|m| parse_tls_mode(&m)).transpose()?;
        }
        if root_cert_path.is_none() {
            root_cert_path = env.var("PGSSLROOTCERT");
        }
        let tls = tls.unwrap_or(TlsMode::Prefer);
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        config.connect_timeout(Duration::from_secs(10));
        Ok(Self { config, tls, root_cert_path })
    }

    /// A one-line description with no password in it.
    pub fn redacted(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "postgresql://{}@{}:{}/{}",
            self.config.get_user().unwrap_or("?"),
            hosts.join(","),
            port,
            self.config.get_dbname().unwrap_or("?")
        )
    }

    pub fn database(&self) -> &str {
        self.config.get_dbname().unwrap_or("postgres")
    }

    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("postgres")
    }

    /// The same target with another database name (the harness and rehearsal use this).
    pub fn with_database(&self, dbname: &str) -> Self {
        let mut copy = self.clone();
        copy.config.dbname(dbname);
        copy
    }

    /// The same target as another user, without a password (for privilege tests and probes).
    pub fn with_user(&self, user: &str) -> Self {
        let mut copy = self.clone();
        copy.config.user(user);
        copy
    }

    /// A libpq-style URL without the password, for child tools such as `pg_dump` (which read
    /// the password from `PGPASSWORD`, see [`ConnSpec::password`]).
    pub fn libpq_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        // libpq takes host and port lists, as tokio-postgres does.
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            args.push("-h".to_string());
            args.push(hosts.join(","));
        }
        let ports: Vec<String> = self.config.get_ports().iter().map(|p| p.to_string()).collect();
        if !ports.is_empty() {
            args.push("-p".to_string());
            args.push(ports.join(","));
        }
        args.push("-U".to_string());
        args.push(self.user().to_string());
        args.push("-d".to_string());
        args.push(self.database().to_string());
        args
    }

    pub fn password(&self) -> Option<String> {
        self.config.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
    }

    pub fn tls_mode(&self) -> TlsMode {
        self.tls
    }

    /// Connect, name the session for `pg_stat_activity`, and pin the settings every tenantize
    /// session relies on (an empty search_path makes `pg_get_*def()` qualify every name).
    pub async fn connect(&self, application_name: &str) -> Result<Client, ConnError> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        let target = self.redacted();
        let fail = |reason: String| ConnError::Connect { target: target.clone(), reason };
        let client = match self.tls {
            TlsMode::Disable => {
                let (client, connection) =
                    config.connect(NoTls).await.map_err(|e| fail(describe_pg_error(&e)))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            mode => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
                    tls_config(mode, self.root_cert_path.as_deref()).map_err(fail)?,
                );
                let (client, connection) =
                    config.connect(tls).await.map_err(|e| fail(describe_pg_error(&e)))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        client
            .batch_execute(
                "SET search_path = ''; SET standard_conforming_strings = on; \
                 SET client_min_messages = warning; SET statement_timeout = 0; \
                 SET idle_in_transaction_session_timeout = 0",
            )
            .await
            .map_err(|e| fail(describe_pg_error(&e)))?;
        Ok(client)
    }
}

impl ConnSpec {
    /// A connection for counts: `row_security = off`, so a query that RLS would filter fails
    /// loudly instead of returning a smaller number. Never the connection that runs DDL.
    pub async fn connect_for_counts(&self, application_name: &str) -> Result<Client, ConnError> {
        let client = self.connect(application_name).await?;
        client
            .batch_execute("SET row_security = off")
            .await
            .map_err(|e| ConnError::Connect { target: self.redacted(), reason: describe_pg_error(&e) })?;
        Ok(client)
    }
}

fn default_host() -> String {
    if Path::new("/var/run/postgresql").exists() {
        "/var/run/postgresql".to_string()
    } else {
        "localhost".to_string()
    }
}

/// Remove `sslmode` and `sslrootcert` from a URL or key=value string (tokio-postgres rejects
/// `verify-ca`/`verify-full` and does not know `sslrootcert`); return them separately.
fn take_tls_params(text: &str) -> (String, Option<String>, Option<String>) {
    let mut sslmode = None;
    let mut rootcert = None;
    let mut keep = |key: &str, value: &str| -> bool {
        match key {
            "sslmode" => {
                sslmode = Some(value.to_string());
                false
            }
            "sslrootcert" => {
                rootcert = Some(value.to_string());
                false
            }
            _ => true,
        }
    };
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        match text.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        keep(k, v)
                    })
                    .collect();
                let rest =
                    if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
                (rest, sslmode, rootcert)
            }
            None => (text.to_string(), None, None),
        }
    } else {
        let kept: Vec<&str> = text
            .split_whitespace()
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                keep(k.trim(), v.trim_matches('\''))
            })
            .collect();
        (kept.join(" "), sslmode, rootcert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, &'static str>);

    impl Env for MapEnv {
        fn var(&self, key: &str) -> Option<String> {
            self.0.get(key).map(|v| v.to_string())
        }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv(pairs.iter().copied().collect())
    }

    #[test]
    fn explicit_url_wins_and_password_is_never_shown() {
        let spec = ConnSpec::resolve(
            Some("postgresql://alice:s3cret@db.example:6543/shop?sslmode=verify-full"),
            &env(&[("DATABASE_URL", "postgresql://bob@elsewhere/other")]),
        )
        .unwrap();
        assert_eq!(spec.redacted(), "postgresql://alice@db.example:6543/shop");
        assert!(!format!("{spec:?}").contains("s3cret"));
        assert_eq!(spec.tls_mode(), TlsMode::VerifyFull);
        assert_eq!(spec.password().as_deref(), Some("s3cret"));
    }

    #[test]
    fn database_url_then_libpq_variables() {
        let spec = ConnSpec::resolve(None, &env(&[("DATABASE_URL", "postgresql://bob@h1/app")])).unwrap();
        assert_eq!(spec.redacted(), "postgresql://bob@h1:5432/app");
        let spec = ConnSpec::resolve(
            None,
            &env(&[
                ("PGHOST", "/tmp/sock"),
                ("PGPORT", "5499"),
                ("PGUSER", "carol"),
                ("PGPASSWORD", "pw"),
                ("PGDATABASE", "crm"),
                ("PGSSLMODE", "require"),
            ]),
        )
        .unwrap();
        assert_eq!(spec.redacted(), "postgresql://carol@/tmp/sock:5499/crm");
        assert_eq!(spec.tls_mode(), TlsMode::Require);
        assert_eq!(spec.password().as_deref(), Some("pw"));
    }

    #[test]
    fn key_value_strings_and_bad_modes() {
        let spec =
            ConnSpec::resolve(Some("host=h user=u dbname=d sslmode=verify-ca sslrootcert=/x.pem"), &env(&[]))
                .unwrap();
        assert_eq!(spec.tls_mode(), TlsMode::VerifyCa);
        assert_eq!(spec.root_cert_path.as_deref(), Some("/x.pem"));
        let err = ConnSpec::resolve(Some("postgresql://h/d?sslmode=sometimes"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("sslmode"));
        let err = ConnSpec::resolve(Some("postgresql://h:notaport/d"), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("cannot parse"));
    }
}
