//! TLS as libpq does it: `sslmode=require` encrypts, `verify-full` checks the certificate chain
//! and the host name, a wrong root is refused, `disable` is refused by a server that requires
//! TLS, `allow`/`prefer` fall back, client certificates, verification without a root file fails,
//! and a self-signed X.509 v1 certificate (as `CREATE EXTENSION citus` makes) is accepted by
//! `prefer` and `require`. This binary runs its own clusters, which accept TCP connections only
//! over TLS (except for the role `plainonly`).

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tenantize::db::{ConnSpec, Env, ProcessEnv};
use tenantize::sandbox::{Cluster, ClusterOptions};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the openssl package)");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA and a server certificate for localhost/127.0.0.1 signed by it.
fn make_certificates(dir: &Path, ca_name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-x509",
            "-days",
            "2",
            "-nodes",
            "-subj",
            &format!("/CN={ca_name}"),
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &["req", "-new", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
}

/// A cluster on 127.0.0.1 that serves `cert`/`key` and accepts TLS connections only.
fn tls_only_cluster(cert: &std::path::Path, key: &std::path::Path) -> Cluster {
    Cluster::start(&ClusterOptions {
        tcp: true,
        tls: Some((cert.to_path_buf(), key.to_path_buf())),
        hba_lines: vec![
            "hostssl all all 127.0.0.1/32 trust".into(),
            "hostnossl all all 127.0.0.1/32 reject".into(),
        ],
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("the TLS test cluster ({}) could not be started: {e}", cert.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_modes_behave_like_libpq() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path(), "tenantize test CA");
    let other = tempfile::tempdir().unwrap();
    make_certificates(other.path(), "some other CA");
    let cluster = tls_only_cluster(&certs.path().join("server.crt"), &certs.path().join("server.key"));
    let base = format!("postgresql://postgres@localhost:{}/postgres", cluster.port());
    let encrypted = |url: String| async move {
        let spec = ConnSpec::resolve(Some(&url), &ProcessEnv).unwrap();
        let client = spec.connect("tls-test").await?;
        let ssl: bool = client
            .query_one("SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        Ok::<bool, tenantize::db::ConnError>(ssl)
    };
    assert!(encrypted(format!("{base}?sslmode=require")).await.unwrap());
    assert!(encrypted(format!("{base}?sslmode=prefer")).await.unwrap());
    let root = certs.path().join("ca.crt");
    assert!(encrypted(format!("{base}?sslmode=verify-full&sslrootcert={}", root.display())).await.unwrap());
    // verify-ca checks the chain only: 127.0.0.1 is in the certificate, a wrong name would be fine too.
    assert!(encrypted(format!("{base}?sslmode=verify-ca&sslrootcert={}", root.display())).await.unwrap());

    let wrong_root = other.path().join("ca.crt");
    let err = encrypted(format!("{base}?sslmode=verify-full&sslrootcert={}", wrong_root.display()))
        .await
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    let err = encrypted(format!("{base}?sslmode=disable")).await.unwrap_err();
    assert!(err.to_string().contains("no encryption") || err.to_string().contains("rejects"), "{err}");

    // The command line goes the same way: a plan over TLS works, a refused connection exits 5.
    let db = cluster.create_database("tls", None).await.unwrap();
    let plan = certs.path().join("plan.toml");
    let url = format!(
        "postgresql://postgres@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        root.display()
    );
    let admin = ConnSpec::resolve(Some(&url), &ProcessEnv).unwrap().connect("tls-test").await.unwrap();
    admin.batch_execute("CREATE TABLE public.notes (id int PRIMARY KEY, body text)").await.unwrap();
    common::run_tenantize(&["plan", "--out", plan.to_str().unwrap(), "--database-url", &url], &[])
        .expect_ok();
    let bad = format!(
        "postgresql://postgres@localhost:{}/{db}?sslmode=verify-full&sslrootcert={}",
        cluster.port(),
        wrong_root.display()
    );
    common::run_tenantize(&["plan", "--out", plan.to_str().unwrap(), "--database-url", &bad], &[])
        .expect_code(5)
        .expect_output("could not connect");
}

/// A fixed environment whose HOME has no `~/.postgresql`, so no root or client file is implied.
struct TestEnv(HashMap<String, String>);

impl Env for TestEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}

fn no_home() -> TestEnv {
    TestEnv(HashMap::from([("HOME".to_string(), "/nonexistent".to_string())]))
}

/// Whether the session is encrypted, or why the connection failed.
async fn ssl_in_use(url: &str) -> Result<bool, String> {
    let spec = ConnSpec::resolve(Some(url), &no_home()).map_err(|e| e.to_string())?;
    let client = spec.connect("tls-test").await.map_err(|e| e.to_string())?;
    let row = client
        .query_one("SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

fn percent_encoded(path: &Path) -> String {
    path.display().to_string().replace('%', "%25").replace('/', "%2F")
}

/// A client certificate for `user`, signed by the CA in `dir`.
fn make_client_certificate(dir: &Path, user: &str) {
    let subject = format!("/CN={user}");
    openssl(
        dir,
        &["req", "-new", "-nodes", "-subj", &subject, "-keyout", "client.key", "-out", "client.csr"],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "client.crt",
        ],
    );
    std::fs::set_permissions(dir.join("client.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn fallbacks_client_certificates_and_roots_like_libpq() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path(), "tenantize test CA");
    make_client_certificate(certs.path(), "certuser");
    // The server (another user) reads the CA for client certificates.
    std::fs::set_permissions(certs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(certs.path().join("ca.crt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let other = tempfile::tempdir().unwrap();
    make_certificates(other.path(), "some other CA");
    let cluster = Cluster::start(&ClusterOptions {
        tcp: true,
        tls: Some((certs.path().join("server.crt"), certs.path().join("server.key"))),
        extra_settings: vec![format!("ssl_ca_file = '{}'", certs.path().join("ca.crt").display())],
        hba_lines: vec![
            "hostssl all certuser 127.0.0.1/32 cert".into(),
            "hostssl all plainonly 127.0.0.1/32 reject".into(),
            "hostnossl all plainonly 127.0.0.1/32 trust".into(),
            "hostssl all all 127.0.0.1/32 trust".into(),
            "hostnossl all all 127.0.0.1/32 reject".into(),
        ],
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("the TLS test cluster could not be started: {e}"));
    let port = cluster.port();
    let url = |user: &str, query: &str| format!("postgresql://{user}@localhost:{port}/postgres?{query}");
    let admin = ConnSpec::resolve(Some(&url("postgres", "sslmode=require")), &no_home()).unwrap();
    let admin = admin.connect("tls-test").await.unwrap();
    admin.batch_execute("CREATE ROLE certuser LOGIN; CREATE ROLE plainonly LOGIN").await.unwrap();

    // allow: plain first, TLS when the server refuses plain; prefer: TLS first, plain when refused.
    assert_eq!(ssl_in_use(&url("postgres", "sslmode=allow")).await, Ok(true));
    assert_eq!(ssl_in_use(&url("plainonly", "sslmode=allow")).await, Ok(false));
    assert_eq!(ssl_in_use(&url("plainonly", "sslmode=prefer")).await, Ok(false));
    assert_eq!(ssl_in_use(&url("plainonly", "")).await, Ok(false), "prefer is the default");
    assert!(ssl_in_use(&url("plainonly", "sslmode=require")).await.is_err());

    // Client certificates.
    let cert = certs.path().join("client.crt");
    let key = certs.path().join("client.key");
    let with_cert =
        format!("sslmode=require&sslcert={}&sslkey={}", percent_encoded(&cert), percent_encoded(&key));
    assert_eq!(ssl_in_use(&url("certuser", &with_cert)).await, Ok(true));
    let err = ssl_in_use(&url("certuser", "sslmode=require")).await.unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = ssl_in_use(&url("certuser", &with_cert)).await.unwrap_err();
    assert!(err.contains("has group or world access"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The default client files under ~/.postgresql.
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::copy(&cert, home.path().join(".postgresql/postgresql.crt")).unwrap();
    std::fs::copy(&key, home.path().join(".postgresql/postgresql.key")).unwrap();
    let env = TestEnv(HashMap::from([("HOME".to_string(), home.path().display().to_string())]));
    let spec = ConnSpec::resolve(Some(&url("certuser", "sslmode=require")), &env).unwrap();
    spec.connect("tls-test").await.unwrap();

    // Roots: a percent-encoded sslrootcert; verifying without a root file fails like libpq (no
    // bundled roots); system roots do not know the test CA; an existing root file makes
    // require verify too.
    let root = format!("sslrootcert={}", percent_encoded(&certs.path().join("ca.crt")));
    assert_eq!(ssl_in_use(&url("postgres", &format!("sslmode=verify-full&{root}"))).await, Ok(true));
    for mode in ["verify-ca", "verify-full"] {
        let err = ssl_in_use(&url("postgres", &format!("sslmode={mode}"))).await.unwrap_err();
        assert!(
            err.contains("root certificate file \"/nonexistent/.postgresql/root.crt\" does not exist"),
            "{err}"
        );
    }
    let err = ssl_in_use(&url("postgres", "sslrootcert=system")).await.unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");
    let wrong = format!("sslmode=require&sslrootcert={}", percent_encoded(&other.path().join("ca.crt")));
    let err = ssl_in_use(&url("postgres", &wrong)).await.unwrap_err();
    assert!(err.contains("certificate verify failed"), "{err}");
}

/// A self-signed X.509 version 1 certificate for localhost (no extensions, as Citus makes).
fn make_v1_certificate(dir: &Path) {
    openssl(dir, &["req", "-new", "-nodes", "-subj", "/CN=localhost", "-keyout", "v1.key", "-out", "v1.csr"]);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "v1.csr",
            "-signkey",
            "v1.key",
            "-days",
            "2",
            "-set_serial",
            "7",
            "-out",
            "v1.crt",
        ],
    );
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.join("v1.crt"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Version: 1 (0x0)"), "openssl made no v1 certificate:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_v1_certificate_is_accepted_like_libpq() {
    let certs = tempfile::tempdir().unwrap();
    make_v1_certificate(certs.path());
    let cluster = tls_only_cluster(&certs.path().join("v1.crt"), &certs.path().join("v1.key"));
    let base = format!("postgresql://postgres@localhost:{}/postgres", cluster.port());
    assert_eq!(ssl_in_use(&base).await, Ok(true), "prefer (the default)");
    assert_eq!(ssl_in_use(&format!("{base}?sslmode=require")).await, Ok(true));
    let root = percent_encoded(&certs.path().join("v1.crt"));
    assert_eq!(ssl_in_use(&format!("{base}?sslmode=verify-full&sslrootcert={root}")).await, Ok(true));

    // The command line with no sslmode at all, as a Citus user would run it.
    let db = cluster.create_database("citusish", None).await.unwrap();
    let url = format!("postgresql://postgres@localhost:{}/{db}", cluster.port());
    let admin = ConnSpec::resolve(Some(&url), &no_home()).unwrap().connect("tls-test").await.unwrap();
    admin.batch_execute("CREATE TABLE public.notes (id int PRIMARY KEY, body text)").await.unwrap();
    let plan = certs.path().join("plan.toml");
    let home = certs.path().display().to_string();
    common::run_tenantize(
        &["plan", "--out", plan.to_str().unwrap(), "--database-url", &url],
        &[("HOME", &home)],
    )
    .expect_ok();
}
