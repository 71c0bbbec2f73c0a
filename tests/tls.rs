//! TLS: `sslmode=require` encrypts, `verify-full` checks the certificate chain and the host
//! name, a wrong root is refused, and `disable` is refused by a server that requires TLS.
//! This binary runs its own cluster, one that accepts TCP connections only over TLS.

mod common;

use std::path::Path;
use std::process::Command;

use tenantize::db::{ConnSpec, ProcessEnv};
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

#[tokio::test(flavor = "multi_thread")]
async fn tls_modes_behave_like_libpq() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path(), "tenantize test CA");
    let other = tempfile::tempdir().unwrap();
    make_certificates(other.path(), "some other CA");
    let cluster = Cluster::start(&ClusterOptions {
        tcp: true,
        tls: Some((certs.path().join("server.crt"), certs.path().join("server.key"))),
        hba_lines: vec![
            "hostssl all all 127.0.0.1/32 trust".into(),
            "hostnossl all all 127.0.0.1/32 reject".into(),
        ],
        ..ClusterOptions::default()
    })
    .unwrap_or_else(|e| panic!("the TLS test cluster could not be started: {e}"));
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
