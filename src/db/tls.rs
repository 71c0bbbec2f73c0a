//! TLS as libpq does it, with OpenSSL (the library libpq itself uses): `prefer`/`require` encrypt
//! and accept any server certificate, X.509 v1 included (a Citus node's self-signed one);
//! `verify-ca` checks the chain against `sslrootcert` only — there is no bundled root store —
//! and `verify-full` also the host name; `sslrootcert=system` means the operating system's
//! store. As in libpq, a root certificate file that exists (given, or `~/.postgresql/root.crt`)
//! makes `prefer` and `require` verify the chain too. A client certificate (`sslcert`,
//! `sslkey`, default `~/.postgresql/postgresql.{crt,key}`) is sent when its file exists.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use postgres_openssl::MakeTlsConnector;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => TlsMode::Disable,
            "allow" => TlsMode::Allow,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Allow => "allow",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }
}

/// Where trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// `sslrootcert` (or `~/.postgresql/root.crt`), a PEM file.
    File(PathBuf),
    /// `sslrootcert=system`.
    System,
}

/// Everything about TLS for one connection target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub root: RootCert,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `sslcertmode=disable`: never send a client certificate.
    pub send_cert: bool,
    pub min_version: Option<SslVersionName>,
    pub max_version: Option<SslVersionName>,
    pub sni: bool,
}

/// `ssl_min_protocol_version` / `ssl_max_protocol_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslVersionName {
    Tls1,
    Tls11,
    Tls12,
    Tls13,
}

impl SslVersionName {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "TLSv1" => Self::Tls1,
            "TLSv1.1" => Self::Tls11,
            "TLSv1.2" => Self::Tls12,
            "TLSv1.3" => Self::Tls13,
            _ => return None,
        })
    }

    fn openssl(self) -> SslVersion {
        match self {
            Self::Tls1 => SslVersion::TLS1,
            Self::Tls11 => SslVersion::TLS1_1,
            Self::Tls12 => SslVersion::TLS1_2,
            Self::Tls13 => SslVersion::TLS1_3,
        }
    }
}

/// The connector for one connection attempt; errors read like libpq's.
pub(super) fn connector(settings: &TlsSettings) -> Result<MakeTlsConnector, String> {
    let ssl = |e: openssl::error::ErrorStack| format!("SSL error: {e}");
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(ssl)?;
    // libpq's default minimum is TLS 1.2.
    let min = settings.min_version.unwrap_or(SslVersionName::Tls12);
    builder.set_min_proto_version(Some(min.openssl())).map_err(ssl)?;
    builder.set_max_proto_version(settings.max_version.map(SslVersionName::openssl)).map_err(ssl)?;
    // Replace the store SslConnector filled with the system's roots: only what libpq would trust.
    let mut store = X509StoreBuilder::new().map_err(ssl)?;
    let verify = match &settings.root {
        RootCert::System => {
            store.set_default_paths().map_err(ssl)?;
            true
        }
        RootCert::File(path) if path.exists() => {
            let pem = std::fs::read(path)
                .map_err(|e| format!("could not read root certificate file \"{}\": {e}", path.display()))?;
            let certs = X509::stack_from_pem(&pem)
                .map_err(|e| format!("could not read root certificate file \"{}\": {e}", path.display()))?;
            for cert in certs {
                store.add_cert(cert).map_err(ssl)?;
            }
            true
        }
        RootCert::File(path) if settings.mode.verifies() => {
            return Err(format!(
                "root certificate file \"{}\" does not exist\nEither provide the file, use the system's \
                 trusted roots with sslrootcert=system, or change sslmode to disable server \
                 certificate verification.",
                path.display()
            ));
        }
        RootCert::File(_) => false,
    };
    builder.set_cert_store(store.build());
    builder.set_verify(if verify { SslVerifyMode::PEER } else { SslVerifyMode::NONE });
    if settings.send_cert && settings.cert.exists() {
        client_certificate(&mut builder, &settings.cert, &settings.key)?;
    }
    let mut connector = MakeTlsConnector::new(builder.build());
    let full = settings.mode == TlsMode::VerifyFull;
    let sni = settings.sni;
    connector.set_callback(move |config, _domain| {
        config.set_verify_hostname(full);
        config.set_use_server_name_indication(sni);
        Ok(())
    });
    Ok(connector)
}

fn client_certificate(
    builder: &mut openssl::ssl::SslConnectorBuilder,
    cert: &Path,
    key: &Path,
) -> Result<(), String> {
    builder
        .set_certificate_chain_file(cert)
        .map_err(|e| format!("could not load client certificate file \"{}\": {e}", cert.display()))?;
    let meta = std::fs::metadata(key)
        .map_err(|_| format!("certificate present, but not private key file \"{}\"", key.display()))?;
    check_key_permissions(key, &meta)?;
    builder
        .set_private_key_file(key, SslFiletype::PEM)
        .map_err(|e| format!("could not load private key file \"{}\": {e}", key.display()))?;
    builder
        .check_private_key()
        .map_err(|e| format!("certificate does not match private key file \"{}\": {e}", key.display()))
}

/// libpq refuses a private key others may read: 0600 or less for the owner, 0640 if root owns it.
fn check_key_permissions(key: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    if !meta.is_file() {
        return Err(format!("private key file \"{}\" is not a regular file", key.display()));
    }
    let mode = meta.permissions().mode();
    let too_open = if meta.uid() == 0 { mode & 0o037 != 0 } else { mode & 0o077 != 0 };
    if too_open {
        return Err(format!(
            "private key file \"{}\" has group or world access; file must have permissions u=rw (0600) \
             or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            key.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: TlsMode, root: RootCert) -> TlsSettings {
        TlsSettings {
            mode,
            root,
            cert: "/nonexistent/postgresql.crt".into(),
            key: "/nonexistent/postgresql.key".into(),
            send_cert: true,
            min_version: None,
            max_version: None,
            sni: true,
        }
    }

    #[test]
    fn verifying_without_a_root_file_fails_like_libpq() {
        let missing = RootCert::File("/nonexistent/root.crt".into());
        let err = connector(&settings(TlsMode::VerifyFull, missing.clone())).err().unwrap();
        assert!(err.starts_with("root certificate file \"/nonexistent/root.crt\" does not exist"), "{err}");
        assert!(connector(&settings(TlsMode::VerifyCa, missing.clone())).is_err());
        // Without verification, no root file is needed.
        assert!(connector(&settings(TlsMode::Require, missing)).is_ok());
        assert!(connector(&settings(TlsMode::VerifyFull, RootCert::System)).is_ok());
    }

    #[test]
    fn key_permissions_like_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = std::fs::metadata(&key).unwrap();
        let owned_by_root = meta.uid() == 0;
        assert_eq!(check_key_permissions(&key, &meta).is_ok(), owned_by_root);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let meta = std::fs::metadata(&key).unwrap();
        assert!(check_key_permissions(&key, &meta).unwrap_err().contains("group or world access"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_key_permissions(&key, &std::fs::metadata(&key).unwrap()).is_ok());
    }

    #[test]
    fn modes_and_versions_parse() {
        for mode in ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(TlsMode::parse(mode).unwrap().as_str(), mode);
        }
        assert_eq!(TlsMode::parse("sometimes"), None);
        assert_eq!(SslVersionName::parse("TLSv1.3"), Some(SslVersionName::Tls13));
        assert_eq!(SslVersionName::parse("SSLv3"), None);
    }
}
