//! Connecting like psql, against a real server: `connect_timeout` against a listener that never
//! answers, the password file, service files, `PGAPPNAME`, a URL without a port, key=value
//! strings with spaces, `sslmode` on a Unix socket, an unknown parameter, `prefer` against a
//! server without TLS. This binary runs its own cluster (socket and TCP, one role that needs a
//! password); TLS rules are in `tests/tls.rs`.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tenantize::db::{ConnSpec, Env};
use tenantize::sandbox::{Cluster, ClusterOptions};

/// The password of `pwuser`, with a colon and a backslash the password file must escape.
const PASSWORD: &str = r"se:cr\et";

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start(&ClusterOptions {
            tcp: true,
            extra_settings: vec!["password_encryption = 'scram-sha-256'".into()],
            hba_lines: vec![
                "local all pwuser scram-sha-256".into(),
                "host all pwuser 127.0.0.1/32 scram-sha-256".into(),
            ],
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| panic!("the connection test cluster could not be started: {e}"));
        let url = socket_conninfo(&cluster, "postgres");
        let setup = std::process::Command::new(tenantize::sandbox::client_tool("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c"])
            .arg(format!("CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'"))
            .args(["-c", "CREATE DATABASE shop OWNER pwuser"])
            .output()
            .expect("run psql");
        assert!(setup.status.success(), "setup failed: {}", String::from_utf8_lossy(&setup.stderr));
        cluster
    })
}

fn socket_conninfo(cluster: &Cluster, db: &str) -> String {
    format!("host='{}' port={} user=postgres dbname={db}", cluster.socket_dir().display(), cluster.port())
}

/// A fixed environment (nothing of the process's own, so `~/.pgpass` is never the caller's).
struct TestEnv(HashMap<String, String>);

impl Env for TestEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn warn(&self, _message: &str) {}
}

fn env(pairs: &[(&str, &str)]) -> TestEnv {
    let mut map: HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    map.entry("HOME".into()).or_insert_with(|| "/nonexistent".into());
    TestEnv(map)
}

async fn query_text(text: Option<&str>, env: &TestEnv, sql: &str) -> Result<String, String> {
    let spec = ConnSpec::resolve(text, env).map_err(|e| e.to_string())?;
    let client = spec.connect("tenantize-test").await.map_err(|e| e.to_string())?;
    Ok(client.query_one(sql, &[]).await.map_err(|e| e.to_string())?.get(0))
}

/// A TCP listener that accepts connections and never says a word (or, with `tls_yes`, answers
/// an SSLRequest with `S` and then nothing, so the TLS handshake hangs).
fn silent_listener(tls_yes: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            if tls_yes {
                let mut request = [0u8; 8];
                if stream.read_exact(&mut request).is_ok() {
                    let _ = stream.write_all(b"S");
                }
            }
            held.push(stream);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_timeout_gives_up_on_a_silent_server() {
    for (tls_yes, mode) in [(false, "disable"), (false, "require"), (true, "require")] {
        let port = silent_listener(tls_yes);
        let started = Instant::now();
        let text = format!("host=127.0.0.1 port={port} user=u dbname=d sslmode={mode} connect_timeout=1");
        let err = query_text(Some(&text), &env(&[]), "SELECT 'x'").await.unwrap_err();
        let took = started.elapsed();
        assert!(err.contains("timeout expired"), "{mode}: {err}");
        assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "{mode}: {took:?}");
    }
    // PGCONNECT_TIMEOUT, and the next host is tried after a timeout, as libpq does.
    let cluster = cluster();
    let port = silent_listener(false);
    let text =
        format!("host=127.0.0.1,127.0.0.1 port={port},{} user=postgres dbname=postgres", cluster.port());
    let started = Instant::now();
    let timeout = env(&[("PGCONNECT_TIMEOUT", "2")]);
    let db = query_text(Some(&text), &timeout, "SELECT current_database()::text").await;
    assert_eq!(db.unwrap(), "postgres");
    assert!(started.elapsed() < Duration::from_secs(6));
    // The command line: a clear failure within the timeout, never a hang.
    let started = Instant::now();
    let home = common::scratch_dir();
    let plan = home.path().join("plan.toml");
    let port = port.to_string();
    let run = common::run_tenantize(
        &["plan", "--out", plan.to_str().unwrap()],
        &[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", &port),
            ("PGCONNECT_TIMEOUT", "2"),
            ("HOME", home.path().to_str().unwrap()),
        ],
    );
    assert_ne!(run.code, 0, "{}", run.text());
    run.expect_output("timeout expired");
    assert!(started.elapsed() < Duration::from_secs(8), "took {:?}", started.elapsed());
}

fn write_private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_file_supplies_the_password() {
    let cluster = cluster();
    let dir = common::scratch_dir();
    let file = dir.path().join("pgpass");
    let socket = cluster.socket_dir().display().to_string().replace(':', "\\:");
    let escaped = PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    let port = cluster.port();
    write_private(
        &file,
        &format!(
            "# comment\nelsewhere:*:*:*:wrong\n{socket}:{port}:shop:pwuser:{escaped}\n*:{port}:*:pwuser:{escaped}\n"
        ),
        0o600,
    );
    let passfile = file.to_str().unwrap();
    let over_socket = format!("host={} port={port} user=pwuser dbname=shop", cluster.socket_dir().display());
    let sql = "SELECT current_user::text";
    assert_eq!(
        query_text(Some(&over_socket), &env(&[("PGPASSFILE", passfile)]), sql).await.unwrap(),
        "pwuser"
    );
    let over_tcp = format!("postgresql://pwuser@127.0.0.1:{port}/shop?sslmode=disable&passfile={passfile}");
    assert_eq!(query_text(Some(&over_tcp), &env(&[]), sql).await.unwrap(), "pwuser");
    // ~/.pgpass by default.
    let home = dir.path().to_str().unwrap();
    std::fs::copy(&file, dir.path().join(".pgpass")).unwrap();
    assert_eq!(query_text(Some(&over_socket), &env(&[("HOME", home)]), sql).await.unwrap(), "pwuser");

    // No password without a file; a wrong one is named as coming from the file.
    let err = query_text(Some(&over_socket), &env(&[]), sql).await.unwrap_err();
    assert!(err.contains("password"), "{err}");
    let wrong = dir.path().join("wrong");
    write_private(&wrong, "*:*:*:*:nope\n", 0o600);
    let err = query_text(Some(&over_socket), &env(&[("PGPASSFILE", wrong.to_str().unwrap())]), sql).await;
    let err = err.unwrap_err();
    assert!(err.contains("password retrieved from file"), "{err}");

    // A file others may read is ignored, with libpq's warning.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = query_text(Some(&over_socket), &env(&[("PGPASSFILE", passfile)]), sql).await.unwrap_err();
    assert!(err.contains("password"), "{err}");
    let plan = dir.path().join("plan.toml");
    let run = common::run_tenantize(
        &["plan", "--out", plan.to_str().unwrap(), "--database-url", &over_socket],
        &[("PGPASSFILE", passfile), ("HOME", "/nonexistent")],
    );
    assert_ne!(run.code, 0, "{}", run.text());
    run.expect_output("has group or world access; permissions should be u=rw (0600) or less");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_files_name_the_target() {
    let cluster = cluster();
    let dir = common::scratch_dir();
    let section = |name: &str, db: &str| {
        format!(
            "[{name}]\nhost={}\nport={}\nuser=postgres\ndbname={db}\napplication_name=from service\n",
            cluster.socket_dir().display(),
            cluster.port()
        )
    };
    let user_file = dir.path().join("services.conf");
    std::fs::write(&user_file, format!("# mine\n{}", section("mine", "shop"))).unwrap();
    let sysconf = dir.path().join("etc");
    std::fs::create_dir(&sysconf).unwrap();
    std::fs::write(sysconf.join("pg_service.conf"), section("system", "postgres")).unwrap();
    let e =
        env(&[("PGSERVICEFILE", user_file.to_str().unwrap()), ("PGSYSCONFDIR", sysconf.to_str().unwrap())]);
    let sql = "SELECT current_database()::text || ' ' || current_setting('application_name')";
    assert_eq!(query_text(Some("service=mine"), &e, sql).await.unwrap(), "shop from service");
    assert_eq!(query_text(Some("service = system"), &e, sql).await.unwrap(), "postgres from service");
    let mut e = e;
    e.0.insert("PGSERVICE".into(), "mine".into());
    assert_eq!(query_text(None, &e, sql).await.unwrap(), "shop from service");
    // The string still wins over the service.
    assert_eq!(query_text(Some("dbname=postgres"), &e, sql).await.unwrap(), "postgres from service");
    // ~/.pg_service.conf by default.
    std::fs::copy(&user_file, dir.path().join(".pg_service.conf")).unwrap();
    let home = env(&[("HOME", dir.path().to_str().unwrap()), ("PGSYSCONFDIR", "/nonexistent")]);
    assert_eq!(query_text(Some("service=mine"), &home, sql).await.unwrap(), "shop from service");
    let err = query_text(Some("service=absent"), &home, sql).await.unwrap_err();
    assert!(err.contains("definition of service \"absent\" not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn application_name_port_and_string_forms() {
    let cluster = cluster();
    let dir = cluster.socket_dir().display().to_string();
    let sql = "SELECT current_setting('application_name')";
    let text = socket_conninfo(cluster, "postgres");
    assert_eq!(query_text(Some(&text), &env(&[]), sql).await.unwrap(), "tenantize-test");
    assert_eq!(query_text(Some(&text), &env(&[("PGAPPNAME", "nightly")]), sql).await.unwrap(), "nightly");

    // A URL without a port takes PGPORT (the cluster's port is not 5432).
    let host = dir.replace('/', "%2F");
    let url = format!("postgresql://postgres@{host}/postgres");
    let port = cluster.port().to_string();
    let sql_db = "SELECT current_database()::text";
    assert_eq!(query_text(Some(&url), &env(&[("PGPORT", &port)]), sql_db).await.unwrap(), "postgres");
    assert!(query_text(Some(&url), &env(&[]), sql_db).await.is_err());

    // key = value with spaces and quotes.
    let spaced = format!("host = '{dir}'   port = {port} user= postgres dbname ='shop'");
    assert_eq!(query_text(Some(&spaced), &env(&[]), sql_db).await.unwrap(), "shop");

    // sslmode is ignored on a Unix socket (this server has no TLS at all).
    for mode in ["require", "verify-full"] {
        let text = format!("{} sslmode={mode}", socket_conninfo(cluster, "postgres"));
        assert_eq!(query_text(Some(&text), &env(&[]), sql_db).await.unwrap(), "postgres", "{mode}");
    }
    // prefer and allow against a server without TLS: plain.
    for mode in ["prefer", "allow"] {
        let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode={mode}");
        let ssl = "SELECT ssl::text FROM pg_catalog.pg_stat_ssl WHERE pid = pg_backend_pid()";
        assert_eq!(query_text(Some(&url), &env(&[]), ssl).await.unwrap(), "false", "{mode}");
    }
}

#[test]
fn an_unknown_parameter_is_named() {
    let dir = common::scratch_dir();
    let plan = dir.path().join("plan.toml");
    let plan = plan.to_str().unwrap();
    for url in ["postgresql://localhost/db?colour=blue", "host=localhost colour=blue"] {
        let run = common::run_tenantize(&["plan", "--out", plan, "--database-url", url], &[]);
        assert_ne!(run.code, 0, "{}", run.text());
        run.expect_output("\"colour\"");
    }
}
