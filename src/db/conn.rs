//! Where to connect and how: `--database-url`, else `DATABASE_URL`, else nothing; in each case
//! filled in by libpq's rules ([`super::libpq`]: service file, `PG*` variables, `~/.pgpass`),
//! then tried host by host as libpq does (`sslmode` allow/prefer fall back, `connect_timeout`
//! bounds each attempt including the TLS handshake and startup).
//!
//! A password may arrive in any of these, so nothing here ever formats it: [`ConnSpec::redacted`]
//! is the only way a connection is described to a user, a log or a plan.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::{ChannelBinding, LoadBalanceHosts, SslMode, TargetSessionAttrs};
use tokio_postgres::{Client, Config, NoTls};

use super::error::describe_pg_error;
use super::libpq::{self, Params, params::parse_timeout, pgpass};
pub use super::libpq::{Env, ProcessEnv};
use super::pooler;
pub use super::tls::TlsMode;
use super::tls::{RootCert, SslVersionName, TlsSettings};

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("invalid connection settings: {0}")]
    Invalid(String),
    #[error("could not connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error(
        "{target} is behind a transaction (or statement) pooler: {reason}. tenantize keeps one server \
         session for a whole run (its settings and its lock live there); connect it directly to the \
         server, or through a session pool (pool_mode = session). Nothing was changed."
    )]
    Pooled { target: String, reason: String },
}

/// Without `connect_timeout`, tenantize gives up after this long (libpq would wait forever);
/// `connect_timeout=0` waits forever.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One host to try: a name or address (or a socket directory), an optional `hostaddr`, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    hostaddr: Option<IpAddr>,
    port: u16,
}

impl Target {
    fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// libpq's words for the target of a failed attempt.
    fn describe(&self) -> String {
        if self.is_socket() {
            format!("connection to server on socket \"{}/.s.PGSQL.{}\"", self.host, self.port)
        } else {
            match self.hostaddr {
                Some(addr) => {
                    format!("connection to server at \"{}\" ({addr}), port {}", self.host, self.port)
                }
                None => format!("connection to server at \"{}\", port {}", self.host, self.port),
            }
        }
    }
}

/// A resolved connection target.
#[derive(Clone)]
pub struct ConnSpec {
    targets: Vec<Target>,
    user: String,
    dbname: String,
    password: Option<String>,
    /// The password file, when it exists and may be used.
    passfile: Option<PathBuf>,
    tls: TlsSettings,
    connect_timeout: Option<Duration>,
    /// `application_name` / `PGAPPNAME`; without it each session is named by tenantize.
    application_name: Option<String>,
    random_order: bool,
    /// options, keepalives, channel binding, target_session_attrs.
    base: Config,
}

impl std::fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn invalid(message: impl Into<String>) -> ConnError {
    ConnError::Invalid(message.into())
}

fn home_file(env: &dyn Env, name: &str) -> PathBuf {
    Path::new(&env.var("HOME").unwrap_or_default()).join(name)
}

impl ConnSpec {
    /// Resolve from an explicit URL (or libpq key=value string, or database name), else
    /// `DATABASE_URL`; the service file and the libpq variables fill what it leaves out.
    pub fn resolve(url: Option<&str>, env: &dyn Env) -> Result<Self, ConnError> {
        let text = url.map(str::to_string).or_else(|| env.var("DATABASE_URL"));
        let params = libpq::resolve(text.as_deref(), env).map_err(invalid)?;
        let user = params
            .value("user")
            .map(str::to_string)
            .or_else(|| env.var("USER"))
            .unwrap_or_else(|| "postgres".to_string());
        let dbname = params.value("dbname").unwrap_or(&user).to_string();
        let password = params.value("password").map(str::to_string);
        let passfile = match password {
            Some(_) => None,
            None => {
                let path =
                    params.value("passfile").map(PathBuf::from).unwrap_or_else(|| home_file(env, ".pgpass"));
                match pgpass::usable(&path) {
                    Ok(usable) => usable.then_some(path),
                    Err(warning) => {
                        env.warn(&warning);
                        None
                    }
                }
            }
        };
        let connect_timeout = match params.get("connect_timeout") {
            Some(value) if !value.trim().is_empty() => parse_timeout(value).map_err(invalid)?,
            _ => Some(DEFAULT_CONNECT_TIMEOUT),
        };
        Ok(ConnSpec {
            targets: targets(&params)?,
            user,
            dbname,
            password,
            passfile,
            tls: tls_settings(&params, env)?,
            connect_timeout,
            application_name: params.value("application_name").map(str::to_string),
            random_order: params.value("load_balance_hosts") == Some("random"),
            base: base_config(&params)?,
        })
    }

    /// A one-line description with no password in it.
    pub fn redacted(&self) -> String {
        let hosts: Vec<&str> = self.targets.iter().map(|t| t.host.as_str()).collect();
        let port = self.targets.first().map(|t| t.port).unwrap_or(5432);
        format!("postgresql://{}@{}:{}/{}", self.user, hosts.join(","), port, self.dbname)
    }

    pub fn database(&self) -> &str {
        &self.dbname
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The same target with another database name (the harness and rehearsal use this).
    pub fn with_database(&self, dbname: &str) -> Self {
        let mut copy = self.clone();
        copy.dbname = dbname.to_string();
        copy
    }

    /// The same target as another user (for privilege tests and probes).
    pub fn with_user(&self, user: &str) -> Self {
        let mut copy = self.clone();
        copy.user = user.to_string();
        copy
    }

    /// Host, port, user and database as `psql`/`pg_dump` arguments, without the password (see
    /// [`ConnSpec::password`] and [`ConnSpec::libpq_env`]).
    pub fn libpq_args(&self) -> Vec<String> {
        let hosts: Vec<&str> = self.targets.iter().map(|t| t.host.as_str()).collect();
        let ports: Vec<String> = self.targets.iter().map(|t| t.port.to_string()).collect();
        let mut args = vec!["-h".to_string(), hosts.join(","), "-p".to_string(), ports.join(",")];
        args.extend(["-U".to_string(), self.user.clone(), "-d".to_string(), self.dbname.clone()]);
        args
    }

    /// The libpq variables a child tool needs to connect the same way (no password: that goes
    /// in `PGPASSWORD`, from [`ConnSpec::password`]).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("PGSSLMODE", self.tls.mode.as_str().to_string())];
        let path = |p: &Path| p.display().to_string();
        env.push((
            "PGSSLROOTCERT",
            match &self.tls.root {
                RootCert::System => "system".to_string(),
                RootCert::File(p) => path(p),
            },
        ));
        env.push(("PGSSLCERT", path(&self.tls.cert)));
        env.push(("PGSSLKEY", path(&self.tls.key)));
        let addrs: Vec<String> =
            self.targets.iter().map(|t| t.hostaddr.map(|a| a.to_string()).unwrap_or_default()).collect();
        if addrs.iter().any(|a| !a.is_empty()) {
            env.push(("PGHOSTADDR", addrs.join(",")));
        }
        if let Some(passfile) = &self.passfile {
            env.push(("PGPASSFILE", path(passfile)));
        }
        env.push(("PGCONNECT_TIMEOUT", self.connect_timeout.map(|t| t.as_secs()).unwrap_or(0).to_string()));
        if let Some(options) = self.base.get_options() {
            env.push(("PGOPTIONS", options.to_string()));
        }
        env
    }

    /// The password given explicitly (URL, `PGPASSWORD`, service file), not one from `~/.pgpass`.
    pub fn password(&self) -> Option<String> {
        self.password.clone()
    }

    pub fn tls_mode(&self) -> TlsMode {
        self.tls.mode
    }

    /// The name the server shows in `pg_stat_activity`: the operator's `application_name`
    /// (`PGAPPNAME`) when given, else tenantize's own name for the session.
    pub fn application_name<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.application_name.as_deref().unwrap_or(fallback)
    }

    /// Connect, name the session for `pg_stat_activity` (`application_name` wins over
    /// `fallback_name`, as libpq's fallback_application_name), and pin the settings every
    /// tenantize session relies on (an empty search_path makes `pg_get_*def()` qualify every name).
    pub async fn connect(&self, fallback_name: &str) -> Result<Client, ConnError> {
        let fail = |reason: String| ConnError::Connect { target: self.redacted(), reason };
        let (client, target) = self.connect_unpinned(fallback_name).await?;
        self.refuse_pooler(&client, target, fallback_name).await?;
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

    /// Once per target and process, before the first connection sets anything: refuse a
    /// transaction or statement pooler (see `db::pooler`). `first` is a fresh connection to
    /// `target`; a second one goes to the same target.
    async fn refuse_pooler(
        &self,
        first: &Client,
        target: &Target,
        fallback_name: &str,
    ) -> Result<(), ConnError> {
        static CHECKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let key = format!("{} {}", self.redacted(), target.describe());
        if CHECKED.lock().map(|c| c.contains(&key)).unwrap_or(false) {
            return Ok(());
        }
        let name = format!("{} (pooler check)", self.application_name(fallback_name));
        let second = self
            .connect_target(target, &name)
            .await
            .map_err(|reason| ConnError::Connect { target: self.redacted(), reason })?;
        pooler::check(first, &second)
            .await
            .map_err(|reason| ConnError::Pooled { target: self.redacted(), reason })?;
        if let Ok(mut checked) = CHECKED.lock() {
            checked.push(key);
        }
        Ok(())
    }

    /// Connect to the first target that answers, setting nothing but the startup parameters.
    async fn connect_unpinned(&self, fallback_name: &str) -> Result<(Client, &Target), ConnError> {
        let fail = |reason: String| ConnError::Connect { target: self.redacted(), reason };
        let mut order: Vec<&Target> = self.targets.iter().collect();
        if self.random_order && order.len() > 1 {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let start = nanos.subsec_nanos() as usize % order.len();
            order.rotate_left(start);
        }
        let mut failures = Vec::new();
        for target in order {
            match self.connect_target(target, self.application_name(fallback_name)).await {
                Ok(connected) => return Ok((connected, target)),
                Err(reason) => failures.push(format!("{} failed: {reason}", target.describe())),
            }
        }
        Err(fail(failures.join("; ")))
    }

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

    /// One host: `sslmode` decides the attempts (a socket never uses TLS, as in libpq).
    async fn connect_target(&self, target: &Target, application_name: &str) -> Result<Client, String> {
        let mut config = self.base.clone();
        config.host(&target.host).port(target.port).user(&self.user).dbname(&self.dbname);
        config.application_name(application_name);
        if let Some(addr) = target.hostaddr {
            config.hostaddr(addr);
        }
        if let Some(timeout) = self.connect_timeout {
            config.connect_timeout(timeout);
        }
        let from_file = match (&self.password, &self.passfile) {
            (Some(password), _) => {
                config.password(password.as_str());
                None
            }
            (None, Some(file)) => self.pgpass_password(file, target).map(|password| {
                config.password(password);
                file
            }),
            (None, None) => None,
        };
        use Attempt::{Plain, Tls};
        let attempts: &[Attempt] = match self.tls.mode {
            _ if target.is_socket() => &[Plain],
            TlsMode::Disable => &[Plain],
            TlsMode::Allow => &[Plain, Tls(SslMode::Require)],
            TlsMode::Prefer => &[Tls(SslMode::Prefer), Plain],
            _ => &[Tls(SslMode::Require)],
        };
        let mut last = String::new();
        for (i, attempt) in attempts.iter().enumerate() {
            match self.attempt(&config, *attempt).await {
                Ok(client) => return Ok(client),
                Err(failure) => {
                    let retry = match (&failure, attempt) {
                        (Failure::Pg(e), Plain) => e.as_db_error().is_some(),
                        (Failure::Pg(_), Tls(_)) => true,
                        _ => false,
                    };
                    last = failure.describe(from_file);
                    if !retry || i + 1 == attempts.len() {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn pgpass_password(&self, file: &Path, target: &Target) -> Option<String> {
        let text = std::fs::read_to_string(file).ok()?;
        pgpass::find(&text, pgpass::match_host(&target.host), target.port, &self.dbname, &self.user)
    }

    /// One connection attempt, bounded as a whole by `connect_timeout`.
    async fn attempt(&self, config: &Config, attempt: Attempt) -> Result<Client, Failure> {
        let connecting = async {
            let mut config = config.clone();
            match attempt {
                Attempt::Plain => {
                    config.ssl_mode(SslMode::Disable);
                    let (client, connection) = config.connect(NoTls).await.map_err(Failure::Pg)?;
                    tokio::spawn(connection);
                    Ok(client)
                }
                Attempt::Tls(mode) => {
                    config.ssl_mode(mode);
                    let tls = super::tls::connector(&self.tls).map_err(Failure::Setup)?;
                    let (client, connection) = config.connect(tls).await.map_err(Failure::Pg)?;
                    tokio::spawn(connection);
                    Ok(client)
                }
            }
        };
        match self.connect_timeout {
            Some(timeout) => tokio::time::timeout(timeout, connecting).await.unwrap_or(Err(Failure::Timeout)),
            None => connecting.await,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Attempt {
    Plain,
    Tls(SslMode),
}

enum Failure {
    Timeout,
    /// TLS could not be set up on this side (a missing root or key file).
    Setup(String),
    Pg(tokio_postgres::Error),
}

impl Failure {
    fn describe(&self, password_file: Option<&PathBuf>) -> String {
        match self {
            Failure::Timeout => "timeout expired".to_string(),
            Failure::Setup(reason) => reason.clone(),
            Failure::Pg(e) => {
                let mut text = describe_pg_error(e);
                if let Some(file) = password_file
                    && e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD)
                {
                    text.push_str(&format!(" (password retrieved from file \"{}\")", file.display()));
                }
                text
            }
        }
    }
}

fn default_host() -> String {
    if Path::new("/var/run/postgresql").exists() {
        "/var/run/postgresql".to_string()
    } else {
        "localhost".to_string()
    }
}

fn split_list(value: Option<&str>) -> Vec<String> {
    value.map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default()
}

/// `host`, `hostaddr` and `port` lists, matched as libpq matches them.
fn targets(params: &Params) -> Result<Vec<Target>, ConnError> {
    let mut hosts = split_list(params.value("host"));
    let addrs: Vec<Option<IpAddr>> = split_list(params.value("hostaddr"))
        .iter()
        .map(|a| match a.as_str() {
            "" => Ok(None),
            a => a.parse().map(Some).map_err(|_| invalid(format!("could not parse network address \"{a}\""))),
        })
        .collect::<Result<_, _>>()?;
    if hosts.is_empty() {
        hosts = addrs.iter().map(|a| a.map(|a| a.to_string()).unwrap_or_default()).collect();
    }
    if hosts.is_empty() {
        hosts.push(String::new());
    }
    if !addrs.is_empty() && addrs.len() != hosts.len() {
        return Err(invalid(format!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        )));
    }
    let ports = split_list(params.value("port"));
    if ports.len() > 1 && ports.len() != hosts.len() {
        return Err(invalid(format!(
            "could not match {} port numbers to {} hosts",
            ports.len(),
            hosts.len()
        )));
    }
    let port = |i: usize| -> Result<u16, ConnError> {
        match ports.get(i).or(ports.first()).map(String::as_str) {
            None | Some("") => Ok(5432),
            Some(p) => p.parse().map_err(|_| {
                invalid(format!("invalid integer value \"{p}\" for connection option \"port\""))
            }),
        }
    };
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = if host.is_empty() { default_host() } else { host.clone() };
            Ok(Target { host, hostaddr: addrs.get(i).copied().flatten(), port: port(i)? })
        })
        .collect()
}

fn tls_settings(params: &Params, env: &dyn Env) -> Result<TlsSettings, ConnError> {
    let root = match params.value("sslrootcert") {
        Some("system") => RootCert::System,
        Some(path) => RootCert::File(path.into()),
        None => RootCert::File(home_file(env, ".postgresql/root.crt")),
    };
    let mode = match params.value("sslmode") {
        Some(m) => TlsMode::parse(m).ok_or_else(|| invalid(format!("invalid sslmode value: \"{m}\"")))?,
        None if params.value("requiressl") == Some("1") => TlsMode::Require,
        None if root == RootCert::System => TlsMode::VerifyFull,
        None => TlsMode::Prefer,
    };
    if root == RootCert::System && mode != TlsMode::VerifyFull {
        return Err(invalid(format!(
            "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
            mode.as_str()
        )));
    }
    let version = |name: &str| -> Result<Option<SslVersionName>, ConnError> {
        params
            .value(name)
            .map(|v| {
                SslVersionName::parse(v).ok_or_else(|| invalid(format!("invalid {name} value: \"{v}\"")))
            })
            .transpose()
    };
    Ok(TlsSettings {
        mode,
        root,
        cert: params
            .value("sslcert")
            .map(PathBuf::from)
            .unwrap_or_else(|| home_file(env, ".postgresql/postgresql.crt")),
        key: params
            .value("sslkey")
            .map(PathBuf::from)
            .unwrap_or_else(|| home_file(env, ".postgresql/postgresql.key")),
        send_cert: params.value("sslcertmode") != Some("disable"),
        min_version: version("ssl_min_protocol_version")?,
        max_version: version("ssl_max_protocol_version")?,
        sni: params.value("sslsni") != Some("0"),
    })
}

/// The settings tokio-postgres applies itself: options, keepalives, channel binding, session attrs.
fn base_config(params: &Params) -> Result<Config, ConnError> {
    let mut config = Config::new();
    let seconds = |name: &str| -> Result<Option<u64>, ConnError> {
        params
            .value(name)
            .map(|v| {
                v.trim().parse::<u64>().map_err(|_| {
                    invalid(format!("invalid integer value \"{v}\" for connection option \"{name}\""))
                })
            })
            .transpose()
    };
    if let Some(options) = params.value("options") {
        config.options(options);
    }
    config.keepalives(params.value("keepalives") != Some("0"));
    if let Some(idle) = seconds("keepalives_idle")? {
        config.keepalives_idle(Duration::from_secs(idle));
    }
    if let Some(interval) = seconds("keepalives_interval")? {
        config.keepalives_interval(Duration::from_secs(interval));
    }
    if let Some(count) = seconds("keepalives_count")? {
        config.keepalives_retries(count as u32);
    }
    if let Some(ms) = seconds("tcp_user_timeout")? {
        config.tcp_user_timeout(Duration::from_millis(ms));
    }
    config.channel_binding(match params.value("channel_binding") {
        Some("disable") => ChannelBinding::Disable,
        Some("require") => ChannelBinding::Require,
        _ => ChannelBinding::Prefer,
    });
    if params.value("target_session_attrs") == Some("read-write") {
        config.target_session_attrs(TargetSessionAttrs::ReadWrite);
    }
    config.load_balance_hosts(LoadBalanceHosts::Disable);
    Ok(config)
}

/// Best effort, before a connection is dropped: end any transaction and reset the session
/// (settings, prepared statements, advisory locks), so a session pool hands the server
/// session on clean even when its own `server_reset_query` is empty.
pub async fn discard(client: &Client) {
    let _ = client.batch_execute("ROLLBACK").await;
    let _ = client.batch_execute("DISCARD ALL").await;
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
