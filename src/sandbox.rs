//! A throwaway PostgreSQL cluster: for the tests, the demo and rehearsals.
//!
//! The cluster lives in its own temporary directory, listens on a Unix socket there (and, when
//! asked, on a free loopback port), and is stopped and removed when the [`Cluster`] is dropped.
//! A small watchdog process also removes it if the owning process dies without dropping it
//! (a killed test binary, a `static` that is never dropped).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::db::{ConnSpec, ProcessEnv};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in $TENANTIZE_PG_BIN, \
         `pg_config --bindir`, PATH or /usr/lib/postgresql/*/bin. Install the server package \
         (Debian/Ubuntu: `apt-get install -y postgresql`; Fedora: `dnf install postgresql-server`) \
         or point TENANTIZE_PG_BIN at the directory holding initdb"
    )]
    BinariesMissing,
    #[error(
        "running as root, but there is no unprivileged `postgres` user to run initdb and the \
         server as (they refuse root); create one (`useradd --system postgres`) or set TENANTIZE_PG_USER"
    )]
    NoUnprivilegedUser,
    #[error("{step} failed: {detail}")]
    Command { step: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Db(String),
}

#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Also listen on 127.0.0.1 (a free port); otherwise only the private Unix socket.
    pub tcp: bool,
    /// Keep fsync and full-page writes on (benchmarks); tests and the demo run without them.
    pub durable: bool,
    /// Extra `postgresql.conf` lines.
    pub extra_settings: Vec<String>,
    /// Serve TLS with this certificate and key (PEM files, copied into the data directory).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Lines put in front of the default `pg_hba.conf` rules.
    pub hba_lines: Vec<String>,
}

/// `postgresql.conf` lines every Citus node needs (`shared/notes/citus-facts.md`): the
/// library preloaded, logical WAL, and on PostgreSQL 15.19+ the output plugins Citus's online
/// copies use (a server that does not know the setting refuses to start with it).
pub fn citus_node_settings() -> Result<Vec<String>, SandboxError> {
    let mut settings =
        vec!["shared_preload_libraries = 'citus'".to_string(), "wal_level = logical".to_string()];
    let bin = find_server_binaries()?;
    let out = Command::new(bin.join("postgres")).arg("-V").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    let version = text.split_whitespace().nth(2).unwrap_or_default();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major == 15 && minor >= 19) || major > 17 {
        settings.push("output_plugin_libraries = 'pgoutput,test_decoding,citus'".into());
    }
    Ok(settings)
}

/// Where the PostgreSQL server binaries are, in the order the brief asks for.
pub fn find_server_binaries() -> Result<PathBuf, SandboxError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("TENANTIZE_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) { Ok(dir) } else { Err(SandboxError::BinariesMissing) };
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_server(&dir) {
            return Ok(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_server(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir).ok_or(SandboxError::BinariesMissing)
}

/// A client tool (psql, pg_dump, pg_restore) matching the server binaries, else from PATH.
pub fn client_tool(name: &str) -> PathBuf {
    if let Ok(dir) = find_server_binaries() {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(name)
}

struct RunAs {
    user: String,
    uid: u32,
    gid: u32,
}

fn unprivileged_user() -> Result<Option<RunAs>, SandboxError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let user = std::env::var("TENANTIZE_PG_USER").unwrap_or_else(|_| "postgres".to_string());
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(&user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Ok(Some(RunAs { user, uid, gid })),
        _ => Err(SandboxError::NoUnprivilegedUser),
    }
}

pub struct Cluster {
    bin_dir: PathBuf,
    root: PathBuf,
    data_dir: PathBuf,
    port: u16,
    tcp: bool,
    tls: bool,
    run_as: Option<RunAs>,
    stopped: AtomicBool,
    keep: AtomicBool,
    database_counter: AtomicU64,
}

impl Cluster {
    /// initdb a new cluster in a fresh temporary directory and start it.
    pub fn start(options: &ClusterOptions) -> Result<Cluster, SandboxError> {
        let bin_dir = find_server_binaries()?;
        let run_as = unprivileged_user()?;
        let root = tempfile::Builder::new().prefix("tenantize-pg-").tempdir()?.keep();
        if let Some(user) = &run_as {
            std::os::unix::fs::chown(&root, Some(user.uid), Some(user.gid))?;
        }
        let data_dir = root.join("data");
        let port = free_port()?;
        let cluster = Cluster {
            bin_dir,
            root,
            data_dir,
            port,
            tcp: options.tcp,
            tls: options.tls.is_some(),
            run_as,
            stopped: AtomicBool::new(false),
            keep: AtomicBool::new(false),
            database_counter: AtomicU64::new(0),
        };
        cluster.spawn_watchdog();
        cluster.run_server_tool(
            "initdb",
            &[
                "-D",
                &cluster.data_dir.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let mut settings = vec![
            format!("port = {}", cluster.port),
            format!("unix_socket_directories = '{}'", cluster.root.display()),
            format!("listen_addresses = '{}'", if options.tcp { "127.0.0.1" } else { "" }),
            "max_connections = 200".to_string(),
            "shared_buffers = 256MB".to_string(),
            "max_wal_size = 4GB".to_string(),
            "log_min_messages = warning".to_string(),
            "log_min_error_statement = panic".to_string(),
            "timezone = 'UTC'".to_string(),
        ];
        if !options.durable {
            settings.extend(
                ["fsync = off", "synchronous_commit = off", "full_page_writes = off"].map(str::to_string),
            );
        }
        settings.extend(options.extra_settings.iter().cloned());
        if let Some((cert, key)) = &options.tls {
            for (source, name) in [(cert, "server.crt"), (key, "server.key")] {
                let target = cluster.data_dir.join(name);
                std::fs::copy(source, &target)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
                if let Some(user) = &cluster.run_as {
                    std::os::unix::fs::chown(&target, Some(user.uid), Some(user.gid))?;
                }
            }
            settings.push("ssl = on".to_string());
        }
        if !options.hba_lines.is_empty() {
            let hba = cluster.data_dir.join("pg_hba.conf");
            let existing = std::fs::read_to_string(&hba)?;
            std::fs::write(&hba, format!("{}\n{existing}", options.hba_lines.join("\n")))?;
        }
        let conf = cluster.data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str("\n# tenantize sandbox\n");
        for line in &settings {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&conf, text)?;
        cluster.run_server_tool(
            "pg_ctl",
            &[
                "-D",
                &cluster.data_dir.display().to_string(),
                "-l",
                &cluster.root.join("server.log").display().to_string(),
                "-w",
                "-t",
                "120",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The last `lines` lines of the server's log, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// A new empty directory beside the data directory, owned by the server's user: where a
    /// tablespace can live. Removed with the cluster.
    pub fn server_owned_dir(&self, name: &str) -> Result<PathBuf, SandboxError> {
        let dir = self.root.join(name);
        std::fs::create_dir(&dir)?;
        if let Some(user) = &self.run_as {
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid))?;
        }
        Ok(dir)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A URL for `database` as the superuser `postgres`, over the Unix socket (or TCP when the
    /// cluster listens there).
    pub fn url(&self, database: &str) -> String {
        if self.tcp {
            let mode = if self.tls { "require" } else { "disable" };
            format!("postgresql://postgres@127.0.0.1:{}/{}?sslmode={mode}", self.port, database)
        } else {
            // The socket directory as the host, percent-encoded (libpq and tokio-postgres both
            // read it so): one host, no TCP localhost tried first.
            let host = self.root.display().to_string().replace('%', "%25").replace('/', "%2F");
            format!("postgresql://postgres@{host}:{}/{database}?sslmode=disable", self.port)
        }
    }

    pub fn conn_spec(&self, database: &str) -> ConnSpec {
        ConnSpec::resolve(Some(&self.url(database)), &ProcessEnv).expect("the sandbox URL is well-formed")
    }

    /// Create a database with a unique name (optionally copied from a template database) and
    /// return its name.
    pub async fn create_database(
        &self,
        prefix: &str,
        template: Option<&str>,
    ) -> Result<String, SandboxError> {
        let n = self.database_counter.fetch_add(1, Ordering::SeqCst);
        let clean: String = prefix
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .take(40)
            .collect();
        let name = format!("{clean}_{n}");
        let admin = self
            .conn_spec("postgres")
            .connect("tenantize-sandbox")
            .await
            .map_err(|e| SandboxError::Db(e.to_string()))?;
        let sql = match template {
            Some(t) => format!(
                "CREATE DATABASE {} TEMPLATE {}",
                crate::sql::quote_ident(&name),
                crate::sql::quote_ident(t)
            ),
            None => format!("CREATE DATABASE {}", crate::sql::quote_ident(&name)),
        };
        admin.batch_execute(&sql).await.map_err(|e| SandboxError::Db(crate::db::describe_pg_error(&e)))?;
        Ok(name)
    }

    /// Run a SQL file with psql (ON_ERROR_STOP) against `database`.
    pub fn run_sql_file(&self, database: &str, file: &Path) -> Result<(), SandboxError> {
        let out = Command::new(client_tool("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url(database), "-f"])
            .arg(file)
            .stdout(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(SandboxError::Command {
                step: format!("psql -f {}", file.display()),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Leave the cluster running after this process ends (the demo's `--keep`).
    pub fn keep_running(&self) {
        self.keep.store(true, Ordering::SeqCst);
        let marker = self.root.join("watchdog.pid.keep");
        if let Ok(pid) = std::fs::read_to_string(&marker) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_file(marker);
    }

    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.run_server_tool(
            "pg_ctl",
            &["-D", &self.data_dir.display().to_string(), "-m", "fast", "-w", "-t", "30", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.root);
    }

    fn run_server_tool(&self, tool: &str, args: &[&str]) -> Result<(), SandboxError> {
        let program = self.bin_dir.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &user.user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command.args(args).current_dir(&self.root).stdin(Stdio::null());
        let out = command.output()?;
        if !out.status.success() {
            let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
            detail.push_str("\nserver log:\n");
            detail.push_str(&self.log_tail(10));
            return Err(SandboxError::Command { step: tool.to_string(), detail });
        }
        Ok(())
    }

    /// A detached watchdog that waits for this process to end, then stops the server and
    /// removes the directory, so that even a killed process leaves nothing behind.
    fn spawn_watchdog(&self) {
        let pg_ctl = self.bin_dir.join("pg_ctl");
        let mut stop: Vec<OsString> = Vec::new();
        if let Some(user) = &self.run_as {
            stop.extend(["runuser".into(), "-u".into(), user.user.clone().into(), "--".into()]);
        }
        stop.extend([pg_ctl.into_os_string(), "-D".into(), self.data_dir.clone().into_os_string()]);
        stop.extend(["-m", "immediate", "-w", "stop"].map(OsString::from));
        let _ = watchdog(std::process::id(), &self.root, &stop);
    }
}

/// The watchdog's script: fixed text, every path passed as an argument (`$1` the cluster's
/// directory, `$2` the pid to wait for, the rest the command that stops the server), so no
/// path is ever read as shell syntax.
const WATCHDOG_SCRIPT: &str = r#"root=$1; owner=$2; shift 2
echo $$ > "$root/watchdog.pid.keep"
while [ -d "/proc/$owner" ]; do sleep 1; done
if [ -f "$root/watchdog.pid.keep" ]; then
    "$@" >/dev/null 2>&1
    rm -rf -- "$root"
fi"#;

/// Start a detached process that waits for process `owner_pid` to end, then, unless the
/// cluster is kept (`watchdog.pid.keep` removed), runs `stop` and removes `root`.
fn watchdog(owner_pid: u32, root: &Path, stop: &[OsString]) -> std::io::Result<std::process::Child> {
    Command::new("setsid")
        .args(["sh", "-c", WATCHDOG_SCRIPT, "tenantize-watchdog"])
        .arg(root)
        .arg(owner_pid.to_string())
        .args(stop)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.keep.load(Ordering::SeqCst) {
            self.stop();
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The watchdog removes exactly the cluster's directory, whatever its path: a temporary
    /// directory with a space in it (TMPDIR="/tmp/x y") once made it remove another one.
    #[test]
    fn the_watchdog_removes_only_the_cluster_directory_even_with_spaces_in_the_path() {
        let base = tempfile::tempdir().unwrap();
        // What an unquoted `rm -rf <base>/tenantize x/...` also deletes: `<base>/tenantize`.
        let bystander = base.path().join("tenantize");
        std::fs::create_dir(&bystander).unwrap();
        std::fs::write(bystander.join("keep.txt"), "not the cluster's").unwrap();
        let root = base.path().join("tenantize x").join("tenantize-pg-test");
        std::fs::create_dir_all(&root).unwrap();
        let mut owner = Command::new("sleep").arg("0.3").spawn().unwrap();
        let mut dog = watchdog(owner.id(), &root, &["true".into()]).unwrap();
        owner.wait().unwrap();
        let started = Instant::now();
        while root.exists() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = dog.wait();
        assert!(!root.exists(), "the watchdog did not remove the cluster directory {}", root.display());
        assert!(bystander.join("keep.txt").exists(), "the watchdog removed {}", bystander.display());
    }
}
