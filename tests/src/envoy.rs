//! Real Envoy processes: where the binary and the module are, how the configs in `envoy/` are
//! rewritten for a run (ports, module path), and a handle that waits for readiness, reads the
//! admin API and the log, and kills the process when dropped.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{self, Request, Response};

/// How long an Envoy may take to load its config and modules and report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The module path written in the configs in `envoy/`, relative to the repository root.
pub const DOCUMENTED_WASM_PATH: &str = "target/keyhop.wasm";

/// The repository root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).to_path_buf()
}

/// The Envoy binary: `$KEYHOP_ENVOY`, default `.tools/envoy-bin` (what
/// `scripts/ensure-tools.sh envoy` installs). A relative path is taken from the repository root.
pub fn envoy_binary() -> PathBuf {
    from_env_or("KEYHOP_ENVOY", ".tools/envoy-bin")
}

/// The filter module: `$KEYHOP_WASM`, default `target/keyhop.wasm` (what
/// `scripts/build-wasm.sh` builds). A relative path is taken from the repository root.
pub fn wasm_module() -> PathBuf {
    from_env_or("KEYHOP_WASM", DOCUMENTED_WASM_PATH)
}

fn from_env_or(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from);
    if path.is_absolute() {
        path
    } else {
        repo_root().join(path)
    }
}

/// Envoy's log level: `$KEYHOP_ENVOY_LOG_LEVEL`, default `info` (where the audit lines are).
pub fn log_level() -> String {
    std::env::var("KEYHOP_ENVOY_LOG_LEVEL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "info".to_owned())
}

/// Checks that the binary and module exist, with a message that says how to get them.
pub fn check_prerequisites() -> io::Result<()> {
    let envoy = envoy_binary();
    if !envoy.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no Envoy at {} (run scripts/ensure-tools.sh envoy, or set KEYHOP_ENVOY)",
                envoy.display()
            ),
        ));
    }
    let wasm = wasm_module();
    if !wasm.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no filter module at {} (run scripts/build-wasm.sh, or set KEYHOP_WASM)",
                wasm.display()
            ),
        ));
    }
    Ok(())
}

/// Reads `envoy/<name>` from the repository.
pub fn read_config(name: &str) -> io::Result<String> {
    let path = repo_root().join("envoy").join(name);
    fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Rewrites a config from `envoy/` for one run: each documented port (`port_value: N`) becomes
/// the port allocated for it, and the documented module path becomes `wasm`. Every documented
/// value must be present, so a config and the harness cannot drift apart unnoticed.
pub fn render_config(template: &str, ports: &[(u16, u16)], wasm: &Path) -> io::Result<String> {
    let mut text = template.to_owned();
    for &(documented, actual) in ports {
        text = replace_port(&text, documented, actual).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("config has no `port_value: {documented}`"),
            )
        })?;
    }

    let documented = format!("filename: {DOCUMENTED_WASM_PATH}");
    if !text.contains(&documented) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("config has no `{documented}`"),
        ));
    }
    Ok(text.replace(&documented, &format!("filename: {}", wasm.display())))
}

/// Replaces every `port_value: <from>` that is not followed by another digit.
fn replace_port(text: &str, from: u16, to: u16) -> Option<String> {
    let needle = format!("port_value: {from}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut found = false;
    while let Some(at) = rest.find(&needle) {
        let (before, after) = rest.split_at(at);
        let after = after.get(needle.len()..).unwrap_or_default();
        out.push_str(before);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(&needle);
        } else {
            out.push_str(&format!("port_value: {to}"));
            found = true;
        }
        rest = after;
    }
    out.push_str(rest);
    found.then_some(out)
}

/// What to start: a rendered config and the environment the Wasm VMs may read.
pub struct EnvoySpec {
    /// Short name for files in the run directory (`<name>.yaml`, `<name>.log`).
    pub name: String,
    pub config: String,
    pub admin: SocketAddr,
    /// Extra environment, e.g. `KEYHOP_PORTAL_SECRET`.
    pub env: Vec<(String, String)>,
}

/// A running Envoy. Killed when dropped.
pub struct Envoy {
    name: String,
    child: Child,
    admin: SocketAddr,
    log_path: PathBuf,
}

impl Envoy {
    /// Writes the config into `run_dir` and starts Envoy with two workers, logging to
    /// `run_dir/<name>.log`. Does not wait for readiness: see [`Envoy::wait_ready`].
    pub fn spawn(spec: EnvoySpec, run_dir: &Path) -> io::Result<Envoy> {
        let config_path = run_dir.join(format!("{}.yaml", spec.name));
        let log_path = run_dir.join(format!("{}.log", spec.name));
        fs::write(&config_path, &spec.config)?;
        let log = File::create(&log_path)?;

        let binary = envoy_binary();
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&config_path)
            .args(["--concurrency", "2"])
            // Several Envoys run side by side here; none of them is ever hot-restarted.
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg(log_level())
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env_remove("KEYHOP_PORTAL_SECRET");
        for (key, value) in &spec.env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", binary.display())))?;

        Ok(Envoy {
            name: spec.name,
            child,
            admin: spec.admin,
            log_path,
        })
    }

    /// Starts Envoy and waits until its admin `/ready` says LIVE.
    pub fn start(spec: EnvoySpec, run_dir: &Path) -> io::Result<Envoy> {
        let mut envoy = Envoy::spawn(spec, run_dir)?;
        envoy.wait_ready()?;
        Ok(envoy)
    }

    /// Waits until admin `/ready` answers 200, failing early (with the log's tail) if the
    /// process exits first.
    pub fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "envoy {} exited ({status}) before it was ready; log {}:\n{}",
                    self.name,
                    self.log_path.display(),
                    tail(&self.log(), 30)
                )));
            }
            if self.admin_get("/ready").is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("envoy {} not ready after {READY_TIMEOUT:?}", self.name),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself, up to `timeout`; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// GET on the admin API.
    pub fn admin_get(&self, path: &str) -> io::Result<Response> {
        let request = Request::get(path).header("connection", "close");
        http::send(self.admin, &request)
    }

    /// Counters and gauges from admin `/stats` whose names contain `filter`.
    pub fn stats(&self, filter: &str) -> io::Result<BTreeMap<String, u64>> {
        let response = self.admin_get(&format!("/stats?filter={filter}"))?;
        Ok(response
            .text()
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// One counter from admin `/stats` (0 when Envoy does not know it yet).
    pub fn counter(&self, name: &str) -> io::Result<u64> {
        Ok(self.stats(name)?.get(name).copied().unwrap_or(0))
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Where the log is.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The keyhop audit lines logged so far (the JSON messages with `"keyhop":"audit"`).
    pub fn audit_lines(&self) -> Vec<Value> {
        audit_lines(&self.log())
    }

    /// The same audit lines as the filter wrote them (field order kept), without Envoy's prefix.
    pub fn audit_text(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains(AUDIT_MARK))
            .filter_map(|line| Some(line.get(line.find('{')?..)?.trim_end().to_owned()))
            .collect()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What marks an audit line in the log.
const AUDIT_MARK: &str = r#""keyhop":"audit""#;

/// Extracts the audit JSON from Envoy log lines (Envoy puts its own prefix before the message).
pub fn audit_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| line.contains(AUDIT_MARK))
        .filter_map(|line| {
            let start = line.find('{')?;
            serde_json::from_str(line.get(start..)?.trim_end()).ok()
        })
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_replaced_whole() {
        let text = "port_value: 10001 }\nport_value: 100011\nport_value: 10001";
        let out = replace_port(text, 10001, 4242);
        assert_eq!(
            out.as_deref(),
            Some("port_value: 4242 }\nport_value: 100011\nport_value: 4242")
        );
        assert_eq!(replace_port(text, 9999, 1), None);
    }

    #[test]
    fn audit_json_is_cut_out_of_the_log_line() {
        let log = concat!(
            "[2026-12-03 13:00:00.000][7][info][wasm] [source/extensions/common/wasm/context.cc:1] ",
            r#"wasm log keyhop_verify keyhop: {"keyhop":"audit","decision":"deny","reason":"replay"}"#,
            "\nunrelated line\n"
        );
        let lines = audit_lines(log);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines
                .first()
                .and_then(|v| v.get("reason"))
                .and_then(Value::as_str),
            Some("replay")
        );
    }
}
