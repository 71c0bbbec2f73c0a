//! Unit tests of [`super::ConnSpec::resolve`]: which setting wins, and how hosts, ports,
//! passwords and TLS are derived (the parsing rules have their own tests in `db::libpq`).

use super::*;
use crate::db::libpq::params::tests::env;

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
    assert_eq!(spec.tls.root, RootCert::File("/x.pem".into()));
    let err = ConnSpec::resolve(Some("postgresql://h/d?sslmode=sometimes"), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("invalid sslmode value: \"sometimes\""), "{err}");
    let err = ConnSpec::resolve(Some("postgresql://h:notaport/d"), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("\"notaport\" for connection option \"port\""), "{err}");
}

#[test]
fn a_url_without_a_port_takes_pgport() {
    let spec = ConnSpec::resolve(Some("postgresql://u@h/d"), &env(&[("PGPORT", "6432")])).unwrap();
    assert_eq!(spec.redacted(), "postgresql://u@h:6432/d");
}

#[test]
fn host_and_port_lists_are_matched() {
    let spec = ConnSpec::resolve(Some("host=a,b port=1,2 user=u"), &env(&[])).unwrap();
    let ports: Vec<u16> = spec.targets.iter().map(|t| t.port).collect();
    assert_eq!(ports, [1, 2]);
    let spec = ConnSpec::resolve(Some("host=a,b port=7 user=u"), &env(&[])).unwrap();
    assert!(spec.targets.iter().all(|t| t.port == 7));
    let err = ConnSpec::resolve(Some("host=a,b,c port=1,2"), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("could not match 2 port numbers to 3 hosts"), "{err}");
    let spec = ConnSpec::resolve(Some("hostaddr=127.0.0.1 port=9"), &env(&[])).unwrap();
    assert_eq!(spec.targets[0].hostaddr, Some("127.0.0.1".parse().unwrap()));
}

#[test]
fn application_name_comes_from_the_operator_else_tenantize() {
    let spec = ConnSpec::resolve(Some("host=h"), &env(&[])).unwrap();
    assert_eq!(spec.application_name("tenantize plan"), "tenantize plan");
    let spec = ConnSpec::resolve(Some("host=h"), &env(&[("PGAPPNAME", "nightly")])).unwrap();
    assert_eq!(spec.application_name("tenantize plan"), "nightly");
}

#[test]
fn connect_timeout_default_and_explicit() {
    let spec = ConnSpec::resolve(Some("host=h"), &env(&[])).unwrap();
    assert_eq!(spec.connect_timeout, Some(DEFAULT_CONNECT_TIMEOUT));
    let spec = ConnSpec::resolve(Some("host=h connect_timeout=1"), &env(&[])).unwrap();
    assert_eq!(spec.connect_timeout, Some(Duration::from_secs(2)));
    let spec = ConnSpec::resolve(Some("host=h"), &env(&[("PGCONNECT_TIMEOUT", "0")])).unwrap();
    assert_eq!(spec.connect_timeout, None);
}

#[test]
fn sslrootcert_system_demands_verify_full() {
    let spec = ConnSpec::resolve(Some("host=h sslrootcert=system"), &env(&[])).unwrap();
    assert_eq!(spec.tls_mode(), TlsMode::VerifyFull);
    let err = ConnSpec::resolve(Some("host=h sslrootcert=system sslmode=require"), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("weak sslmode \"require\""), "{err}");
}

#[test]
fn default_certificate_files_are_under_home() {
    let spec = ConnSpec::resolve(Some("host=h"), &env(&[("HOME", "/home/x")])).unwrap();
    assert_eq!(spec.tls.root, RootCert::File("/home/x/.postgresql/root.crt".into()));
    assert_eq!(spec.tls.cert, PathBuf::from("/home/x/.postgresql/postgresql.crt"));
    assert_eq!(spec.tls.key, PathBuf::from("/home/x/.postgresql/postgresql.key"));
    assert_eq!(spec.tls_mode(), TlsMode::Prefer);
}

#[test]
fn the_password_file_is_used_only_without_a_password() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".pgpass");
    std::fs::write(&file, "h:5432:d:u:frompass\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let home = dir.path().to_str().unwrap();
    let spec = ConnSpec::resolve(Some("host=h user=u dbname=d"), &env(&[("HOME", home)])).unwrap();
    assert_eq!(spec.passfile.as_deref(), Some(file.as_path()));
    assert_eq!(spec.pgpass_password(&file, &spec.targets[0]).as_deref(), Some("frompass"));
    let spec = ConnSpec::resolve(Some("host=h user=u dbname=d password=x"), &env(&[("HOME", home)])).unwrap();
    assert_eq!(spec.passfile, None);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let spec =
        ConnSpec::resolve(Some("host=h user=u dbname=d"), &env(&[("PGPASSFILE", file.to_str().unwrap())]))
            .unwrap();
    assert_eq!(spec.passfile, None, "a file others may read is ignored");
}

#[test]
fn a_service_fills_what_the_string_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services");
    std::fs::write(&file, "[shop]\nhost=svc.example\nport=6000\ndbname=shop\nuser=svc\n").unwrap();
    let e = env(&[("PGSERVICEFILE", file.to_str().unwrap()), ("PGHOST", "env.example"), ("PGPORT", "7000")]);
    let spec = ConnSpec::resolve(Some("service=shop user=me"), &e).unwrap();
    assert_eq!(spec.redacted(), "postgresql://me@svc.example:6000/shop");
    let e = env(&[("PGSERVICEFILE", file.to_str().unwrap()), ("PGSERVICE", "shop")]);
    assert_eq!(ConnSpec::resolve(None, &e).unwrap().redacted(), "postgresql://svc@svc.example:6000/shop");
}
