//! A real OCI distribution registry (Debian's `docker-registry`, distribution 2.8) on a free
//! loopback port, with its own config and storage in a temporary directory, optionally behind
//! htpasswd basic authentication. Killed, and its directory removed, when dropped.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
const HTPASSWD_BINARY: &str = "/usr/bin/htpasswd";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry.
pub struct Registry {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Registry {
    /// Starts a registry that anyone may push to.
    pub fn start_open() -> Result<Self> {
        Self::start(None)
    }

    /// Starts a registry that requires `user` / `password` (basic authentication).
    pub fn start_with_user(user: &str, password: &str) -> Result<Self> {
        Self::start(Some((user, password)))
    }

    fn start(user: Option<(&str, &str)>) -> Result<Self> {
        for binary in [REGISTRY_BINARY, HTPASSWD_BINARY] {
            if !std::path::Path::new(binary).exists() {
                bail!("{binary} is missing: run scripts/ensure-tools.sh registry");
            }
        }

        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir =
            std::env::temp_dir().join(format!("keyhop-oci-registry-{}-{port}", std::process::id()));
        fs::create_dir_all(dir.join("storage"))?;

        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: keyhop-oci-test-{port}\n",
            storage = dir.join("storage").display(),
        );
        if let Some((user, password)) = user {
            // distribution only accepts bcrypt entries.
            let output = Command::new(HTPASSWD_BINARY)
                .args(["-Bbn", user, password])
                .output()?;
            if !output.status.success() {
                bail!(
                    "htpasswd failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            fs::write(dir.join("htpasswd"), &output.stdout)?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: keyhop-test\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        let config_path = dir.join("config.yml");
        fs::write(&config_path, config)?;

        let log = fs::File::create(dir.join("registry.log"))?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {REGISTRY_BINARY}"))?;

        let mut registry = Self { child, dir, port };
        registry.wait_ready()?;
        Ok(registry)
    }

    /// `127.0.0.1:<port>`, the registry part of an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Ready when `/v2/` answers at all (200 when open, 401 when it wants credentials).
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the registry exited ({status}):\n{}", self.log());
            }
            if let Ok(status) = self.v2_status() {
                if status == 200 || status == 401 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "the registry is not ready after {READY_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Status of `GET /v2/` without credentials.
    pub fn v2_status(&self) -> Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .ok_or_else(|| anyhow!("no status line"))?;
        Ok(status.parse()?)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
