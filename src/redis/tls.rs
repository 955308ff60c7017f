//! TLS settings, turned once per pool into a rustls `ClientConfig` (`TlsConfig`), and the
//! handshake that wraps a freshly dialed socket.
//!
//! The crypto provider is rustls's `ring`: it builds with a C compiler alone, in seconds,
//! where `aws-lc-rs` (rustls's default) needs cmake and takes minutes to compile; both
//! offer the same TLS 1.2/1.3 cipher suites a Redis server negotiates. The system trust
//! store is read with `rustls-native-certs` and PEM files are parsed by
//! `rustls-pki-types` (never by hand).
//!
//! Messages name files and reasons, never the bytes of a key or a certificate.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
};

use super::io::{self, Deadline};

/// What a pool's TLS is configured with (the C options `tls_*`, the URL's `rediss://`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of CA certificates to trust; with `ca_dir`, both are trusted. Neither: the
    /// system trust store.
    pub ca_file: Option<String>,
    /// Directory of PEM files of CA certificates (every regular file holding certificates).
    pub ca_dir: Option<String>,
    /// Client certificate chain (PEM) for mutual TLS; needs `key_file`.
    pub cert_file: Option<String>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<String>,
    /// The name the server's certificate must be valid for, also sent as SNI (an IP address
    /// is checked against the certificate's IP SANs and not sent). None: the host dialed.
    pub server_name: Option<String>,
    /// 12 (TLS 1.2, the default; 0 means 12) or 13 (TLS 1.3 only).
    pub min_version: u8,
    /// Accept any server certificate: no chain, name or expiry check. Encrypts against a
    /// passive eavesdropper only; anyone on the path can impersonate the server.
    pub insecure_skip_verify: bool,
}

/// A pool's TLS configuration, built once by `TlsConfig::new` (every configuration error
/// is found there, not at the first dial) and shared by all its conns.
pub struct TlsConfig {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
    insecure: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .field("insecure_skip_verify", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// ring, not aws-lc-rs (see the module comment). rustls 0.23.48 marks it deprecated only
/// because it lacks the post-quantum key exchange, which Redis servers do not offer anyway.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A PEM error, without any of the file's bytes.
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "malformed PEM: a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "malformed PEM: a bad BEGIN line".into(),
        pem::Error::Base64Decode(_) => "malformed PEM: bad base64 in a section".into(),
        pem::Error::Io(e) => format!("cannot read it: {e}"),
        pem::Error::NoItemsFound => "no PEM item in it".into(),
        _ => "malformed PEM".into(),
    }
}

fn read_certs(path: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    // Read first, so that a missing file says so (pem's own error would too, but this is
    // uniform for every file option).
    std::fs::metadata(path).map_err(|e| format!("{field}: cannot read {path:?}: {e}"))?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{field}: {path:?}: {}", pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{field}: {path:?}: {}", pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(format!(
            "{field}: {path:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

fn add_roots(
    roots: &mut RootCertStore,
    certs: Vec<CertificateDer<'static>>,
    what: &str,
) -> Result<(), String> {
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "{what}: no usable CA certificate in it (malformed DER?)"
        ));
    }
    Ok(())
}

fn load_ca_dir(roots: &mut RootCertStore, dir: &str) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("tls_ca_dir: cannot read {dir:?}: {e}"))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        // Files that are not PEM certificates (a README, a CRL) are skipped, as OpenSSL's
        // CApath lookup skips them.
        if let Ok(iter) = CertificateDer::pem_file_iter(&path) {
            found.extend(iter.flatten());
        }
    }
    if found.is_empty() {
        return Err(format!("tls_ca_dir: {dir:?} holds no PEM certificate"));
    }
    add_roots(roots, found, "tls_ca_dir")
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    std::fs::metadata(path).map_err(|e| format!("tls_key_file: cannot read {path:?}: {e}"))?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            format!("tls_key_file: {path:?} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")
        }
        e => format!("tls_key_file: {path:?}: {}", pem_reason(&e)),
    })
}

impl TlsConfig {
    /// Checks and loads everything: CA files, the client certificate and key (and that they
    /// match), the server name. Errors name the option and the reason.
    pub fn new(s: &TlsSettings) -> Result<Self, String> {
        let provider = provider();
        let versions: &[&'static rustls::SupportedProtocolVersion] = match s.min_version {
            0 | 12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            13 => &[&rustls::version::TLS13],
            v => {
                return Err(format!(
                    "tls_min_version: {v} is not 12 (TLS 1.2) or 13 (TLS 1.3)"
                ));
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("tls: {e}"))?;
        let builder = if s.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(
                    provider.signature_verification_algorithms,
                )))
        } else {
            let mut roots = RootCertStore::empty();
            if let Some(f) = &s.ca_file {
                add_roots(&mut roots, read_certs(f, "tls_ca_file")?, "tls_ca_file")?;
            }
            if let Some(d) = &s.ca_dir {
                load_ca_dir(&mut roots, d)?;
            }
            if s.ca_file.is_none() && s.ca_dir.is_none() {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err("tls: no CA certificate in the system trust store (install \
                                ca-certificates, or set tls_ca_file)"
                        .into());
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut config =
            match (&s.cert_file, &s.key_file) {
                (Some(c), Some(k)) => {
                    let certs = read_certs(c, "tls_cert_file")?;
                    let key = load_key(k)?;
                    builder.with_client_auth_cert(certs, key).map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => format!(
                        "tls_key_file: the key in {k:?} does not match the certificate in {c:?}"
                    ),
                    _ => format!("tls_key_file: {k:?} cannot be used with {c:?}: {e}"),
                })?
                }
                (None, None) => builder.with_no_client_auth(),
                (Some(_), None) => return Err("tls_cert_file: given without tls_key_file".into()),
                (None, Some(_)) => return Err("tls_key_file: given without tls_cert_file".into()),
            };
        config.resumption = rustls::client::Resumption::in_memory_sessions(256);
        let server_name = match &s.server_name {
            Some(n) => Some(ServerName::try_from(n.clone()).map_err(|_| {
                format!("tls_server_name: {n:?} is not a DNS name or an IP address")
            })?),
            None => None,
        };
        Ok(TlsConfig {
            config: Arc::new(config),
            server_name,
            insecure: s.insecure_skip_verify,
        })
    }

    /// Whether a name to verify is known without a host: `tls_server_name` was given, or
    /// nothing is verified.
    pub fn has_fixed_name(&self) -> bool {
        self.server_name.is_some() || self.insecure
    }

    /// The name to verify for a conn to `host` (an IP address or a DNS name; None where the
    /// dialer has no host, such as a unix socket).
    fn name_for(&self, host: Option<&str>) -> Result<ServerName<'static>, String> {
        if let Some(n) = &self.server_name {
            return Ok(n.clone());
        }
        match host {
            Some(h) => {
                let h = h.trim_start_matches('[').trim_end_matches(']');
                if let Ok(ip) = h.parse::<IpAddr>() {
                    return Ok(ServerName::IpAddress(ip.into()));
                }
                ServerName::try_from(h.to_string())
                    .map_err(|_| format!("TLS: {h:?} is not a valid server name"))
            }
            // Verification off: any name will do (none is checked).
            None if self.insecure => Ok(ServerName::try_from("localhost").expect("valid name")),
            None => Err(
                "TLS: no host name to verify the server's certificate against: set \
                         tls_server_name"
                    .into(),
            ),
        }
    }

    /// Runs the TLS handshake on `fd` (a connected stream socket the caller keeps open),
    /// over by `deadline`. `host` is the host dialed, the default server name.
    pub fn connect(
        &self,
        fd: std::os::fd::RawFd,
        host: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<ClientConnection, HandshakeFailure> {
        let refused = |why| HandshakeFailure {
            why,
            transient: false,
        };
        let name = self.name_for(host).map_err(refused)?;
        let shown = name.to_str().into_owned();
        let mut c = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| refused(format!("TLS: {e}")))?;
        let deadline =
            deadline.map(|d| Deadline::at(d, d.saturating_duration_since(Instant::now())));
        io::tls_handshake(fd, &mut c, deadline).map_err(|e| HandshakeFailure {
            transient: !matches!(e, io::IoError::Tls(_) | io::IoError::Eof),
            why: describe_handshake_error(&e, &shown),
        })?;
        Ok(c)
    }
}

/// Why a TLS handshake failed, and whether trying again may help (a reset or a timeout, as
/// for any dial) or not (a refused certificate, a server that does not speak TLS).
#[derive(Debug)]
pub struct HandshakeFailure {
    pub why: String,
    pub transient: bool,
}

impl TlsConfig {
    /// Whether conns verify the server's certificate.
    pub fn verifies(&self) -> bool {
        !self.insecure
    }
}

/// A failed handshake, in words a user acts on.
fn describe_handshake_error(e: &io::IoError, name: &str) -> String {
    let tls = match e {
        io::IoError::Tls(t) => t,
        io::IoError::Eof => {
            return "TLS handshake failed: the server closed the connection (not a TLS port? \
                    or it requires a client certificate: tls_cert_file, tls_key_file)"
                .into();
        }
        io::IoError::Timeout(..) => {
            return "TLS handshake timed out: no TLS answer from the server (a plain, non-TLS \
                    port?)"
                .into();
        }
        other => return format!("TLS handshake failed: {other}"),
    };
    let why = match tls.as_ref() {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the server's certificate is not signed by a trusted CA (unknown issuer; set \
                 tls_ca_file to the CA that signed it)"
                    .to_string()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not valid for the name {name:?} (wrong host \
                     name; tls_server_name sets the name to check)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".to_string()
            }
            CertificateError::Revoked => "the server's certificate was revoked".to_string(),
            other => format!("the server's certificate was refused: {other:?}"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("the server did not answer in TLS (a plain, non-TLS port?): {tls}")
        }
        rustls::Error::AlertReceived(alert) => format!(
            "the server refused the handshake with alert {alert:?} (a client certificate \
             required or refused? tls_cert_file, tls_key_file; or tls_min_version too high)"
        ),
        rustls::Error::PeerIncompatible(_) => {
            format!("no TLS version or cipher suite in common with the server: {tls}")
        }
        _ => tls.to_string(),
    };
    format!("TLS handshake failed: {why}")
}

/// `tls_insecure_skip_verify`: every certificate is accepted; the handshake signatures are
/// still checked (so the peer holds the key of the certificate it sent, whatever that is).
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}
