//! TLS test fixtures: certificates generated at test time with the `openssl` CLI, and a
//! redis-server that listens for TLS (`--tls-port`) beside its plain port.
//!
//! One set of certificates per test process (generated on first use, under
//! `target/<profile>/c-tests/tls-certs/<pid>/`):
//! - `ca.pem`: the CA every good certificate is signed by;
//! - `server.pem`/`server.key`: for 127.0.0.1 and localhost (SANs);
//! - `client.pem`/`client.key`: a client certificate for `--tls-auth-clients yes`;
//! - `expired.pem`/`expired.key`: for 127.0.0.1 and localhost, expired;
//! - `wronghost.pem`/`wronghost.key`: valid, but only for `wrong.example`;
//! - `other-ca.pem`: a CA that signed none of them (an unknown CA for the client);
//! - `malformed.pem`: a PEM block whose body is not base64.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{RedisServer, c_tests_dir, free_port};

pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    /// A file of the set, as a string path.
    pub fn path(&self, name: &str) -> String {
        self.dir
            .join(name)
            .to_str()
            .expect("UTF-8 path")
            .to_string()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "openssl not found ({e}): the TLS tests generate certificates with it; run \
                 ./scripts/test.sh (it installs openssl)"
            )
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate request for `cn`, signed by the CA `ca` into `name.pem`, valid
/// for `days` (negative: expired), with `san`.
fn issue(dir: &Path, name: &str, ca: &str, san: &str, days: &str) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let ext = format!("{name}.ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    fs::write(dir.join(&ext), format!("subjectAltName={san}\n")).expect("write ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            days,
            "-extfile",
            &ext,
        ],
    );
}

fn self_signed_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-subj",
            &format!("/CN=redispool test {name}"),
        ],
    );
}

/// The process's certificates, generated on first use.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = c_tests_dir()
            .join("tls-certs")
            .join(std::process::id().to_string());
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the certificate dir");
        self_signed_ca(&dir, "ca");
        self_signed_ca(&dir, "other-ca");
        let local = "IP:127.0.0.1,DNS:localhost";
        issue(&dir, "server", "ca", local, "30");
        issue(&dir, "client", "ca", "DNS:redispool-client", "30");
        issue(&dir, "expired", "ca", local, "-1");
        issue(&dir, "wronghost", "ca", "DNS:wrong.example", "30");
        fs::write(
            dir.join("malformed.pem"),
            "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write malformed.pem");
        Certs { dir }
    })
}

/// A redis-server with a plain port and a TLS port.
pub struct TlsServer {
    pub server: RedisServer,
    pub tls_port: u16,
}

impl TlsServer {
    /// TLS with the good server certificate; clients need no certificate.
    pub fn start() -> TlsServer {
        TlsServer::start_with("server", false, &[])
    }

    /// TLS with the certificate `cert` (`server`, `expired`, `wronghost`); with
    /// `auth_clients`, clients must show a certificate signed by the CA.
    pub fn start_with(cert: &str, auth_clients: bool, extra: &[&str]) -> TlsServer {
        TlsServer::start_picking_port(cert, auth_clients, extra, free_port)
    }

    /// As `start_with`, with the TLS port of each attempt from `pick_tls_port`.
    pub fn start_picking_port(
        cert: &str,
        auth_clients: bool,
        extra: &[&str],
        mut pick_tls_port: impl FnMut() -> u16,
    ) -> TlsServer {
        let c = certs();
        let (cert_file, key_file, ca) = (
            c.path(&format!("{cert}.pem")),
            c.path(&format!("{cert}.key")),
            c.path("ca.pem"),
        );
        // A fresh TLS port for each attempt: one taken since it was chosen makes
        // redis-server exit, and the start is tried again on new ports.
        let mut tls_port = 0;
        let server = RedisServer::start_making_args(|| {
            tls_port = pick_tls_port();
            let mut args = vec![
                "--tls-port".to_string(),
                tls_port.to_string(),
                "--tls-cert-file".to_string(),
                cert_file.clone(),
                "--tls-key-file".to_string(),
                key_file.clone(),
                "--tls-ca-cert-file".to_string(),
                ca.clone(),
                "--tls-auth-clients".to_string(),
                if auth_clients { "yes" } else { "no" }.to_string(),
            ];
            args.extend(extra.iter().map(|a| a.to_string()));
            args
        });
        TlsServer { server, tls_port }
    }

    /// `127.0.0.1:<tls port>`.
    pub fn tls_addr(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }
}
