//! TLS for connection strings, with libpq's meaning of `sslmode` and `sslrootcert`
//! (tokio-postgres itself knows only disable / prefer / require, and no root file).
//!
//! | sslmode | TLS | certificate checked |
//! |---|---|---|
//! | disable | never | - |
//! | allow, prefer (default) | if the server offers it | no (yes, against `sslrootcert`, when given) |
//! | require | always | no (yes, against `sslrootcert`, when given) |
//! | verify-ca | always | chain, against `sslrootcert` or the public roots |
//! | verify-full | always | chain and host name |
//!
//! `sslrootcert=system` (or no `sslrootcert` with verify-ca / verify-full) means the
//! public web roots (Mozilla's set, built in), which hosted PostgreSQL (Neon, Supabase,
//! RDS) is signed by.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conninfo::ConnInfo;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// The TLS part of a connection string, taken out of it.
#[derive(Debug)]
pub struct Tls {
    pub mode: Mode,
    pub root_cert: Option<String>,
    /// No `sslmode` was given.
    defaulted: bool,
}

impl Tls {
    /// Takes `sslmode` and `sslrootcert` out of the connection string's options.
    pub fn take(info: &mut ConnInfo) -> Result<Self> {
        let given = info.take("sslmode");
        let defaulted = given.is_none();
        let mode = match given.as_deref() {
            None | Some("prefer") | Some("allow") => Mode::Prefer,
            Some("disable") => Mode::Disable,
            Some("require") => Mode::Require,
            Some("verify-ca") => Mode::VerifyCa,
            Some("verify-full") => Mode::VerifyFull,
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "sslmode={other} in the connection string is not one of disable, allow, \
                     prefer, require, verify-ca, verify-full"
                )))
            }
        };
        for unsupported in ["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"] {
            if info.take(unsupported).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "{unsupported} in the connection string is not supported (client \
                     certificates are not); remove it"
                )));
            }
        }
        Ok(Tls {
            mode,
            root_cert: info.take("sslrootcert"),
            defaulted,
        })
    }

    /// Without an `sslmode` (libpq's default is prefer), a server on this machine is
    /// reached without TLS, as `pg` does: encryption over loopback protects nothing and
    /// costs both sides CPU on every statement. Anything else keeps libpq's default.
    pub fn plain_on_loopback(&mut self, config: &tokio_postgres::Config) {
        use tokio_postgres::config::Host;
        let hosts = config.get_hosts();
        let local = |host: &Host| match host {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .trim_matches(|c| c == '[' || c == ']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            #[cfg(unix)]
            Host::Unix(_) => true,
        };
        if self.defaulted
            && self.root_cert.is_none()
            && !hosts.is_empty()
            && hosts.iter().all(local)
        {
            self.mode = Mode::Disable;
        }
    }

    /// What tokio-postgres does about TLS at connect time.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector for the pool: rustls with the checks `sslmode` asks for.
    pub fn connector(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS setup failed: {e}")))?;
        let check = match (self.mode, &self.root_cert) {
            (Mode::Disable, _) | (Mode::Prefer | Mode::Require, None) => Check::Nothing,
            (Mode::Prefer | Mode::Require | Mode::VerifyCa, _) => Check::Chain,
            (Mode::VerifyFull, _) => Check::ChainAndName,
        };
        let config = match check {
            Check::Nothing => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
            Check::ChainAndName => builder
                .with_root_certificates(self.roots()?)
                .with_no_client_auth(),
            Check::Chain => {
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider)
                        .build()
                        .map_err(|e| Error::InvalidArgument(format!("TLS setup failed: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                    .with_no_client_auth()
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match self.root_cert.as_deref() {
            None | Some("system") => {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        Error::InvalidArgument(format!(
                            "sslrootcert={path}: could not read PEM certificates ({e})"
                        ))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Error::InvalidArgument(format!(
                        "sslrootcert={path} holds no usable certificate"
                    )));
                }
            }
        }
        Ok(roots)
    }
}

enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// prefer / require without a root certificate: encrypted, but the server's certificate
/// is not checked (libpq's meaning). The handshake signatures still are.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(url: &str) -> Result<(Tls, String)> {
        let mut info = ConnInfo::parse(url)?;
        let tls = Tls::take(&mut info)?;
        Ok((tls, info.to_string()))
    }

    #[test]
    fn no_tls_by_default_on_loopback_only() {
        for (url, mode) in [
            ("postgres://u@127.0.0.1:5432/db", Mode::Disable),
            ("postgres://u@localhost/db", Mode::Disable),
            ("postgres://u@[::1]:5432/db", Mode::Disable),
            ("postgres://u@db.example.com/db", Mode::Prefer),
            ("postgres://u@127.0.0.1/db?sslmode=prefer", Mode::Prefer),
            ("postgres://u@127.0.0.1/db?sslmode=require", Mode::Require),
            ("host=127.0.0.1,db.example.com user=u", Mode::Prefer),
        ] {
            let (mut t, rest) = tls(url).unwrap();
            t.plain_on_loopback(&rest.parse().unwrap());
            assert_eq!(t.mode, mode, "{url}");
        }
    }

    #[test]
    fn reads_libpq_modes() {
        let (t, rest) =
            tls("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x")
                .unwrap();
        assert_eq!(t.mode, Mode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        let (t, _) = tls("host=h sslmode=require user=u").unwrap();
        assert_eq!(t.mode, Mode::Require);
        assert_eq!(t.ssl_mode(), SslMode::Require);
        let (t, _) = tls("postgres://h/db").unwrap();
        assert_eq!(t.mode, Mode::Prefer);
        let (t, _) = tls("postgres://h/db?sslmode=allow").unwrap();
        assert_eq!(t.ssl_mode(), SslMode::Prefer);
    }

    #[test]
    fn refuses_unknown_modes_and_client_certificates() {
        let err = tls("postgres://h/db?sslmode=sometimes").err().unwrap();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("verify-full"));
        let err = tls("postgres://h/db?sslcert=/c.pem").err().unwrap();
        assert!(err.to_string().contains("sslcert"));
    }

    #[test]
    fn a_missing_root_file_is_a_clear_error() {
        let (t, _) =
            tls("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").unwrap();
        let err = t.connector().err().unwrap();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn builds_every_kind_of_connector() {
        for url in [
            "postgres://h/db?sslmode=disable",
            "postgres://h/db",
            "postgres://h/db?sslmode=require",
            "postgres://h/db?sslmode=verify-ca",
            "postgres://h/db?sslmode=verify-full&sslrootcert=system",
        ] {
            let (t, _) = tls(url).unwrap();
            assert!(t.connector().is_ok(), "{url}");
        }
    }
}
