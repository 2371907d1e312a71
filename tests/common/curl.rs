//! curl as the client for what the raw-socket client does not speak: TLS and HTTP/2. One curl
//! run may make several transfers (several URLs, or one URL glob such as `?i=[1-20]`), on one
//! connection when curl can reuse or multiplex it; each transfer's facts come from curl's own
//! `--write-out '%{json}'` and its body from a file of its own.

use super::{Json, JsonExt, token};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// One transfer of a curl run.
#[derive(Clone)]
pub struct Transfer {
    /// The URL as curl requested it (globs expanded).
    pub url: String,
    pub status: u16,
    /// `1.1` or `2`.
    pub http_version: String,
    /// New connections this transfer opened: 0 when it reused or multiplexed one.
    pub num_connects: u64,
    /// Local port of the connection the transfer used.
    pub local_port: u16,
    pub body: Vec<u8>,
    /// curl's error text for this transfer (empty when it succeeded).
    pub error: String,
}

impl std::fmt::Debug for Transfer {
    /// The body as text, cut at 200 bytes: assertion messages stay readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]);
        write!(
            f,
            "{} -> {} HTTP/{} connects={} port={} error={:?} body({} bytes)={body:?}",
            self.url,
            self.status,
            self.http_version,
            self.num_connects,
            self.local_port,
            self.error,
            self.body.len()
        )
    }
}

impl Transfer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Json {
        Json::parse(&self.text())
            .unwrap_or_else(|e| panic!("bad JSON ({e}) from {}: {}", self.url, self.text()))
    }
}

/// A curl command line being put together.
pub struct Curl {
    args: Vec<String>,
    urls: Vec<String>,
}

impl Default for Curl {
    fn default() -> Self {
        Self::new()
    }
}

impl Curl {
    /// `curl -sS --max-time 60`: bounded, quiet, errors shown.
    pub fn new() -> Curl {
        Curl {
            args: ["-sS", "--max-time", "60"].map(String::from).to_vec(),
            urls: Vec::new(),
        }
    }
    /// Any curl option.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    /// HTTPS to `localhost:port` on 127.0.0.1, trusting the test's self-signed certificate.
    pub fn tls(self, port: u16) -> Self {
        self.arg("-k")
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
    }
    /// A URL to fetch (may be a curl glob: each expansion is a transfer).
    pub fn url(mut self, u: impl Into<String>) -> Self {
        self.urls.push(u.into());
        self
    }

    /// Run curl; one `Transfer` per transfer, in the order curl finished them.
    pub fn run(self) -> Vec<Transfer> {
        let dir = std::env::temp_dir().join(token("rwsgi-curl"));
        fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("curl");
        cmd.args(&self.args).arg("--write-out").arg("%{json}\\n");
        for (i, u) in self.urls.iter().enumerate() {
            // `#1` is the first glob's value, so every expansion gets its own file.
            let name = if u.contains('[') || u.contains('{') {
                format!("{i}-#1")
            } else {
                format!("{i}")
            };
            cmd.arg("-o").arg(dir.join(name)).arg(u);
        }
        let out = cmd.output().expect("run curl (is it installed? make deps)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let mut transfers = Vec::new();
        for line in stdout.lines().filter(|l| l.starts_with('{')) {
            let j = Json::parse(line)
                .unwrap_or_else(|e| panic!("curl --write-out JSON ({e}): {line}\n{stderr}"));
            let file = PathBuf::from(j.opt_s("filename_effective").unwrap_or(""));
            let num = |k: &str| j.get(k).and_then(Json::as_f64).unwrap_or(0.0);
            transfers.push(Transfer {
                url: j.opt_s("url_effective").unwrap_or("").to_string(),
                status: num("http_code") as u16,
                http_version: j.opt_s("http_version").unwrap_or("").to_string(),
                num_connects: num("num_connects") as u64,
                local_port: num("local_port") as u16,
                body: fs::read(&file).unwrap_or_default(),
                error: j.opt_s("errormsg").unwrap_or("").to_string(),
            });
        }
        let _ = fs::remove_dir_all(&dir);
        assert!(
            !transfers.is_empty(),
            "curl made no transfer ({:?}): {}\n{stdout}",
            out.status.code(),
            stderr
        );
        transfers
    }

    /// Run curl for a single transfer and return it.
    pub fn one(self) -> Transfer {
        let mut t = self.run();
        assert_eq!(t.len(), 1, "expected one transfer: {t:?}");
        t.pop().unwrap()
    }
}
