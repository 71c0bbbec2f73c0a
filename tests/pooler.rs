//! Behind a real PgBouncer. Through a transaction (or statement) pool every command refuses
//! before it sets or changes anything, and the pool's other clients never see a setting of
//! the tool's; through a session pool a full round trip works and leaves nothing on the
//! server sessions the pool hands on.

mod common;
use common::*;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tokio_postgres::{NoTls, SimpleQueryMessage};

/// A PgBouncer in front of the test cluster, with one alias per pool mode for `database`:
/// `<database>_tx`, `<database>_stmt`, `<database>_sess`. Killed when dropped.
struct Bouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

fn pgbouncer_binary() -> PathBuf {
    for candidate in ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer", "/usr/local/bin/pgbouncer"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("pgbouncer is not installed (Debian package `pgbouncer`; .ci/run installs it)");
}

impl Bouncer {
    fn start(database: &str) -> Bouncer {
        let cluster = cluster();
        let dir = tempfile::Builder::new().prefix("tenantize-bouncer-").tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server =
            format!("host={} port={} dbname={database}", cluster.socket_dir().display(), cluster.port());
        let log = dir.path().join("pgbouncer.log");
        let config = format!(
            "[databases]\n\
             {database}_tx = {server} pool_mode=transaction\n\
             {database}_stmt = {server} pool_mode=statement\n\
             {database}_sess = {server} pool_mode=session\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             logfile = {log}\n\
             pidfile = {dir}/pgbouncer.pid\n\
             default_pool_size = 4\n\
             server_reset_query = DISCARD ALL\n\
             ignore_startup_parameters = extra_float_digits\n",
            dir = dir.path().display(),
            log = log.display(),
        );
        std::fs::write(dir.path().join("pgbouncer.ini"), config).unwrap();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        // SAFETY: geteuid has no preconditions.
        let mut command = if unsafe { libc::geteuid() } == 0 {
            Command::new("chown").args(["-R", "postgres", dir.path().to_str().unwrap()]).status().unwrap();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pgbouncer_binary());
            c
        } else {
            Command::new(pgbouncer_binary())
        };
        // -q: its log goes to the log file only.
        let child = command.arg("-q").arg(dir.path().join("pgbouncer.ini")).spawn().expect("start pgbouncer");
        let bouncer = Bouncer { child, port, _dir: dir, log };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(20) {
                panic!(
                    "pgbouncer did not start listening:\n{}",
                    std::fs::read_to_string(&bouncer.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bouncer
    }

    fn url(&self, alias: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{alias}?sslmode=disable", self.port)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // runuser may run pgbouncer as a child of its own: stop it by its pid file.
        let pidfile = self._dir.path().join("pgbouncer.pid");
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An application client of the pool (simple protocol, as a transaction pool requires): what
/// `SHOW search_path` says on the server session it is handed.
async fn pool_search_path(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect through the pool");
    tokio::spawn(connection);
    let rows = client.simple_query("SHOW search_path").await.expect("SHOW search_path through the pool");
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .expect("a row")
}

async fn advisory_locks(db: &TestDb) -> i64 {
    // pg_locks is the cluster's: only this database's locks.
    db.query_i64(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_transaction_or_statement_pool_every_command_refuses_and_changes_nothing() {
    let db = sample_db("tx_pool", 200).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    let bouncer = Bouncer::start(&db.name);
    for alias in [format!("{}_tx", db.name), format!("{}_stmt", db.name)] {
        let url = bouncer.url(&alias);
        let env = [("DATABASE_URL", url.as_str())];
        let plan_out = dir.path().join("pooled.plan.toml");
        for args in [
            vec!["plan", "--out", plan_out.to_str().unwrap()],
            vec!["status", &plan],
            vec!["apply", &plan, "--dry-run"],
            vec!["apply", &plan, "--yes"],
            vec!["verify", &plan],
            vec!["rollback", &plan, "--all", "--yes"],
        ] {
            run_tenantize(&args, &env)
                .expect_code(5)
                .expect_output("transaction (or statement) pooler")
                .expect_output("connect it directly to the server, or through a session pool")
                .expect_output("Nothing was changed");
        }
        assert!(!plan_out.exists(), "plan wrote a file through {alias}");
        // The pool's other clients get server sessions the tool never set anything on.
        for _ in 0..4 {
            assert_eq!(pool_search_path(&url).await, "\"$user\", public", "through {alias}");
        }
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenantize'").await, 0);
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attname = 'tenant_id'").await, 0);
    assert_eq!(advisory_locks(&db).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn through_a_session_pool_a_round_trip_works_and_leaves_nothing_behind() {
    let db = sample_db("session_pool", 200).await;
    let dir = scratch_dir();
    let plan = db.plan_sample(&dir.path().join("plan.toml"), &[]);
    let bouncer = Bouncer::start(&db.name);
    let url = bouncer.url(&format!("{}_sess", db.name));
    let env = [("DATABASE_URL", url.as_str())];
    run_tenantize(&["apply", &plan, "--yes"], &env).expect_ok();
    run_tenantize(&["verify", &plan], &env).expect_ok().expect_output("(applied through stage 8): ok");
    // The server sessions the tool used go back to the pool clean, and its lock is gone: a
    // direct run is not refused.
    assert_eq!(advisory_locks(&db).await, 0);
    for _ in 0..4 {
        assert_eq!(pool_search_path(&url).await, "\"$user\", public");
    }
    db.tenantize(&["rollback", &plan, "--all", "--yes"]).expect_ok();
    assert_eq!(db.query_i64("SELECT count(*) FROM pg_attribute WHERE attname = 'tenant_id'").await, 0);
}
