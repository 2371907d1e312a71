//! TLS test servers: `server(..).tls().start()` adds a mod_ssl listener (template
//! `httpd-test-conf/tls.conf.in`) with a throwaway self-signed certificate for `localhost`,
//! made at test time with `openssl req` and removed with the server.

use super::{Builder, Server, free_port, token};
use std::fs;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::Command;

/// A certificate and key in a directory of their own.
struct CertDir(PathBuf);

impl CertDir {
    fn make() -> CertDir {
        let dir = std::env::temp_dir().join(token("rwsgi-test-cert"));
        fs::create_dir_all(&dir).unwrap();
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem"))
            .output()
            .expect("run openssl (is it installed? make deps)");
        assert!(
            out.status.success(),
            "openssl req failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        CertDir(dir)
    }
}

impl Drop for CertDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Adds `.tls()` to the harness's builder.
pub trait TlsExt {
    /// Also listen for HTTPS on a second port (all the server's apps are served there too).
    fn tls(self) -> TlsBuilder;
}

impl TlsExt for Builder {
    fn tls(self) -> TlsBuilder {
        let cert = CertDir::make();
        let port = free_port();
        let builder = self
            .fragment("tls")
            .var("TLS_PORT", &port.to_string())
            .var("TLS_CERT", &cert.0.join("cert.pem").display().to_string())
            .var("TLS_KEY", &cert.0.join("key.pem").display().to_string());
        TlsBuilder {
            builder,
            port,
            cert,
        }
    }
}

/// A builder whose server will also speak HTTPS.
pub struct TlsBuilder {
    builder: Builder,
    port: u16,
    cert: CertDir,
}

impl TlsBuilder {
    /// Start the server (see `Builder::start`).
    pub fn start(self) -> TlsServer {
        TlsServer {
            server: self.builder.start(),
            tls_port: self.port,
            _cert: self.cert,
        }
    }
}

/// A running server with an HTTPS listener on `tls_port` (plain HTTP stays on `port`).
pub struct TlsServer {
    server: Server,
    pub tls_port: u16,
    _cert: CertDir,
}

impl TlsServer {
    /// `https://localhost:PORT{path}` (use with `Curl::tls(tls_port)`).
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.tls_port)
    }
}

impl Deref for TlsServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl DerefMut for TlsServer {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}
