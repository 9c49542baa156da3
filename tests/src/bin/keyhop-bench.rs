//! keyhop's load bench (`make bench`): what keyhop's verify step costs Envoy per request,
//! next to what Envoy's own jwt_authn filter costs checking an HS256 JWT, measured side by side
//! in one run on loopback.
//!
//! ```text
//! h2load ──▶ front Envoy (keyhop sign) ──▶ back Envoy, measured: bare │ jwt_authn │ keyhop verify
//! ```
//!
//! keyhop credentials are single use, so a load generator cannot replay one: the front Envoy
//! signs every request afresh. It signs on the bare and jwt paths too, so the measured Envoy
//! receives the same request in all three; h2load also sends the same `Authorization: Bearer`
//! JWT (minted for the run) on every path, where only jwt_authn reads it. A fourth path, plain
//! front → bare back, is the baseline for the two-hop figure (sign + verify together).
//!
//! Both Envoys run with one worker, behind them a small keep-alive upstream in this process.
//! CPU time comes from the kernel's own accounting of each Envoy process: the run time of all
//! its threads (`/proc/PID/task/*/schedstat`, ns; `/proc/PID/stat` utime + stime is the same
//! figure in clock ticks, too coarse for a few thousand requests, and is printed per run as a
//! cross-check) and of its worker thread alone, read just before and after each measured h2load run
//! at a fixed request rate (the same for every path, so batching is the same). The paths
//! alternate within each round, the order rotating from round to round, and every figure is a
//! median over rounds; added costs are medians of the per-round differences.
//!
//! Environment (all optional): `KEYHOP_BENCH_ROUNDS` (5), `KEYHOP_BENCH_SECONDS` (5, each
//! fixed-rate run), `KEYHOP_BENCH_RPS` (400, the fixed rate), `KEYHOP_BENCH_MAX_SECONDS` (3,
//! each closed-loop run for throughput; 0 skips them), `KEYHOP_BENCH_DOC` (docs/BENCHMARKS.md;
//! empty: do not write). Plus `KEYHOP_ENVOY` and `KEYHOP_WASM` as for the e2e tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use keyhop_e2e::envoy::{self, render_config};
use keyhop_e2e::http::{self, Request};
use keyhop_e2e::topology::{free_port, generate_secret, new_run_dir, SECRET_ENV};
use sha2::Sha256;

/// Where and what h2load sends: the partner's risk API, as in the demo.
const TARGET_PATH: &str = "/v1/risk/score?currency=EUR";
const AUTHORITY: &str = "risk.riskpartner.example";
const BODY: &str = r#"{"account":"12345678","amount":1999}"#;

/// The floor module's path as envoy/bench/back.yaml writes it.
const FLOOR_WASM_PATH: &str = "target/bench/wasm-floor.wasm";

/// The JWKS environment variable envoy/bench/back.yaml names.
const JWKS_ENV: &str = "KEYHOP_BENCH_JWKS";
const JWT_ISSUER: &str = "keyhop-bench";
const JWT_AUDIENCE: &str = "spiffe://riskpartner.example/edge";

/// Connections h2load opens for the fixed-rate runs, and for the closed-loop ones.
const FIXED_CONNECTIONS: u32 = 8;
const MAX_CONNECTIONS: u32 = 16;

/// Ports documented in envoy/bench/*.yaml.
mod documented {
    pub const FRONT_ADMIN: u16 = 9911;
    pub const PLAIN_TO_BARE: u16 = 10101;
    pub const SIGN_TO_BARE: u16 = 10102;
    pub const SIGN_TO_JWT: u16 = 10103;
    pub const SIGN_TO_VERIFY: u16 = 10104;
    pub const SIGN_TO_WASM_NOOP: u16 = 10105;
    pub const SIGN_TO_WASM_SKELETON: u16 = 10106;
    pub const BACK_ADMIN: u16 = 9912;
    pub const BARE: u16 = 10201;
    pub const JWT: u16 = 10202;
    pub const VERIFY: u16 = 10203;
    pub const UPSTREAM: u16 = 10204;
    pub const WASM_NOOP: u16 = 10205;
    pub const WASM_SKELETON: u16 = 10206;
}

/// One path through the two Envoys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Path2 {
    /// sign → bare: the one-hop baseline.
    Bare,
    /// sign → jwt_authn.
    Jwt,
    /// sign → keyhop verify.
    Verify,
    /// plain → bare: the two-hop baseline.
    PlainBare,
    /// sign → a Wasm filter that does nothing.
    WasmNoop,
    /// sign → a Wasm filter that copies headers and the buffered body in, and checks nothing.
    WasmSkeleton,
}

impl Path2 {
    const ALL: [Path2; 6] = [
        Path2::Bare,
        Path2::Jwt,
        Path2::Verify,
        Path2::PlainBare,
        Path2::WasmNoop,
        Path2::WasmSkeleton,
    ];

    fn label(self) -> &'static str {
        match self {
            Path2::Bare => "bare Envoy",
            Path2::Jwt => "Envoy + jwt_authn (HS256)",
            Path2::Verify => "Envoy + keyhop verify",
            Path2::PlainBare => "two-hop: plain → bare",
            Path2::WasmNoop => "Envoy + no-op Wasm filter",
            Path2::WasmSkeleton => "Envoy + Wasm skeleton",
        }
    }

    fn front_port(self) -> u16 {
        match self {
            Path2::Bare => documented::SIGN_TO_BARE,
            Path2::Jwt => documented::SIGN_TO_JWT,
            Path2::Verify => documented::SIGN_TO_VERIFY,
            Path2::PlainBare => documented::PLAIN_TO_BARE,
            Path2::WasmNoop => documented::SIGN_TO_WASM_NOOP,
            Path2::WasmSkeleton => documented::SIGN_TO_WASM_SKELETON,
        }
    }

    fn front_label(self) -> &'static str {
        match self {
            Path2::PlainBare => "plain",
            _ => "keyhop sign",
        }
    }
}

/// What one measured h2load run gave.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU µs per request of each Envoy process: the run time of all its threads from
    /// `/proc/PID/task/*/schedstat` (ns; the same accounting utime + stime come from).
    front_us: f64,
    back_us: f64,
    /// The back Envoy's utime + stime from `/proc/PID/stat`, per request: clock ticks, so
    /// coarse over a short run; printed as a cross-check.
    back_stat_us: f64,
    /// The same for each Envoy's worker thread alone (`wrk:worker_0`), from its schedstat
    /// (ns resolution): the request work without the main thread's housekeeping.
    front_worker_us: f64,
    back_worker_us: f64,
}

struct Settings {
    rounds: usize,
    seconds: u64,
    rps: u32,
    max_seconds: u64,
    doc: Option<PathBuf>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn settings() -> Settings {
    let doc = match std::env::var("KEYHOP_BENCH_DOC") {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(PathBuf::from(v)),
        Err(_) => Some(envoy::repo_root().join("docs/BENCHMARKS.md")),
    };
    Settings {
        rounds: env_or("KEYHOP_BENCH_ROUNDS", 5usize).max(1),
        seconds: env_or("KEYHOP_BENCH_SECONDS", 5u64).max(1),
        rps: env_or("KEYHOP_BENCH_RPS", 400u32).max(FIXED_CONNECTIONS),
        max_seconds: env_or("KEYHOP_BENCH_MAX_SECONDS", 3u64),
        doc,
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("keyhop-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> io::Result<()> {
    let settings = settings();
    envoy::check_prerequisites()?;
    let h2load = which("h2load").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no h2load (run scripts/ensure-tools.sh load)",
        )
    })?;
    let run_dir = new_run_dir("bench")?;

    // A private copy of the module, so a rebuild during the run cannot change what is measured.
    let wasm = run_dir.join("keyhop.wasm");
    fs::copy(envoy::wasm_module(), &wasm)?;
    let wasm_bytes = fs::metadata(&wasm)?.len();

    let secret = generate_secret()?;
    let jwt_key = random_bytes::<32>()?;
    let jwks = format!(
        r#"{{"keys":[{{"kty":"oct","alg":"HS256","kid":"bench","k":"{}"}}]}}"#,
        b64url(&jwt_key)
    );
    let token = mint_jwt(&jwt_key, unix_now() + 3600)?;

    let ports: Vec<(u16, u16)> = [
        documented::FRONT_ADMIN,
        documented::PLAIN_TO_BARE,
        documented::SIGN_TO_BARE,
        documented::SIGN_TO_JWT,
        documented::SIGN_TO_VERIFY,
        documented::SIGN_TO_WASM_NOOP,
        documented::SIGN_TO_WASM_SKELETON,
        documented::BACK_ADMIN,
        documented::BARE,
        documented::JWT,
        documented::VERIFY,
        documented::UPSTREAM,
        documented::WASM_NOOP,
        documented::WASM_SKELETON,
    ]
    .iter()
    .map(|&p| free_port().map(|actual| (p, actual)))
    .collect::<io::Result<_>>()?;
    let port = |documented: u16| -> u16 {
        ports
            .iter()
            .find(|(d, _)| *d == documented)
            .map_or(documented, |(_, a)| *a)
    };

    // The Wasm floor module, compiled from its text for this run.
    let floor_text = fs::read_to_string(envoy::repo_root().join("envoy/bench/wasm-floor.wat"))?;
    let floor = run_dir.join("wasm-floor.wasm");
    fs::write(
        &floor,
        wat::parse_str(&floor_text)
            .map_err(|e| io::Error::other(format!("wasm-floor.wat: {e}")))?,
    )?;

    let back_config = render_config(
        &envoy::read_config("bench/back.yaml")?,
        &ports_in(
            &ports,
            &[
                documented::BACK_ADMIN,
                documented::BARE,
                documented::JWT,
                documented::VERIFY,
                documented::UPSTREAM,
                documented::WASM_NOOP,
                documented::WASM_SKELETON,
            ],
        ),
        &wasm,
    )?;
    let back_config = back_config.replace(
        &format!("filename: {FLOOR_WASM_PATH}"),
        &format!("filename: {}", floor.display()),
    );
    let front_config = render_config(
        &envoy::read_config("bench/front.yaml")?,
        &ports_in(
            &ports,
            &[
                documented::FRONT_ADMIN,
                documented::PLAIN_TO_BARE,
                documented::SIGN_TO_BARE,
                documented::SIGN_TO_JWT,
                documented::SIGN_TO_VERIFY,
                documented::SIGN_TO_WASM_NOOP,
                documented::SIGN_TO_WASM_SKELETON,
                documented::BARE,
                documented::JWT,
                documented::VERIFY,
                documented::WASM_NOOP,
                documented::WASM_SKELETON,
            ],
        ),
        &wasm,
    )?;

    start_upstream(port(documented::UPSTREAM))?;
    let env = [(SECRET_ENV, secret.as_str()), (JWKS_ENV, jwks.as_str())];
    let back = Proxy::start(
        "back",
        &back_config,
        addr(port(documented::BACK_ADMIN)),
        &env,
        &run_dir,
    )?;
    let front = Proxy::start(
        "front",
        &front_config,
        addr(port(documented::FRONT_ADMIN)),
        &env,
        &run_dir,
    )?;

    let body_file = run_dir.join("body.json");
    fs::write(&body_file, BODY)?;
    let load = Load {
        h2load,
        body_file,
        token: token.clone(),
        run_dir: run_dir.clone(),
    };

    // Every path must answer 200 before anything is measured.
    for path in Path2::ALL {
        let response = http::send(
            addr(port(path.front_port())),
            &Request::post_json(TARGET_PATH, BODY)
                .header("authorization", format!("Bearer {token}")),
        )?;
        if response.status != 200 {
            return Err(io::Error::other(format!(
                "{}: status {} ({}) before the bench; logs in {}",
                path.label(),
                response.status,
                response.text().trim(),
                run_dir.display()
            )));
        }
    }

    let load_before = loadavg();
    println!(
        "keyhop-bench: {} rounds × {} paths, {} s at {} req/s{}; logs in {}",
        settings.rounds,
        Path2::ALL.len(),
        settings.seconds,
        settings.rps,
        if settings.max_seconds > 0 {
            format!(" + {} s closed loop", settings.max_seconds)
        } else {
            String::new()
        },
        run_dir.display()
    );
    // Warm every path once (V8 tiers the module up, connection pools fill) before measuring.
    for path in Path2::ALL {
        let url = format!("http://127.0.0.1:{}{TARGET_PATH}", port(path.front_port()));
        load.run(&url, FIXED_CONNECTIONS, Some(settings.rps), 3, None)?;
    }
    let started = Instant::now();
    let mut fixed: BTreeMap<Path2, Vec<Sample>> = BTreeMap::new();
    let mut closed: BTreeMap<Path2, Vec<Sample>> = BTreeMap::new();
    for round in 0..settings.rounds {
        for i in 0..Path2::ALL.len() {
            let path = Path2::ALL
                .get((i + round) % Path2::ALL.len())
                .copied()
                .unwrap_or(Path2::Bare);
            let url = format!("http://127.0.0.1:{}{TARGET_PATH}", port(path.front_port()));

            load.run(&url, FIXED_CONNECTIONS, Some(settings.rps), 1, None)?;
            let sample = measure(
                &load,
                &front,
                &back,
                &url,
                FIXED_CONNECTIONS,
                Some(settings.rps),
                settings.seconds,
            )
            .map_err(|e| io::Error::other(format!("{}: {e}", path.label())))?;
            println!(
                "  round {} {:<28} back {:>6.1} µs/req (worker {:>6.1}, stat {:>6.1})  front {:>6.1} µs/req  {:>5.0} req/s  p50 {:.2} ms  p99 {:.2} ms",
                round + 1,
                path.label(),
                sample.back_us,
                sample.back_worker_us,
                sample.back_stat_us,
                sample.front_us,
                sample.rps,
                sample.p50_ms,
                sample.p99_ms
            );
            fixed.entry(path).or_default().push(sample);

            if settings.max_seconds > 0 {
                let sample = measure(
                    &load,
                    &front,
                    &back,
                    &url,
                    MAX_CONNECTIONS,
                    None,
                    settings.max_seconds,
                )
                .map_err(|e| io::Error::other(format!("{} (closed loop): {e}", path.label())))?;
                closed.entry(path).or_default().push(sample);
            }
        }
    }
    let elapsed = started.elapsed();

    // The verifier accepted every credential exactly once and refused none.
    let stats = back.stats("keyhop")?;
    let allowed = stats
        .get("wasmcustom.keyhop.verify.allow")
        .copied()
        .unwrap_or(0);
    let refused: u64 = stats
        .iter()
        .filter(|(k, _)| k.contains(".deny."))
        .map(|(_, v)| *v)
        .sum();
    // Connections per request on each back listener: a path that opened a connection per
    // request would pay for it in CPU, and not because of its auth filter.
    let http_stats = back.stats("downstream_")?;
    let reuse: Vec<String> = ["bare", "jwt", "verify", "wasm_noop", "wasm_skeleton"]
        .iter()
        .map(|prefix| {
            let get = |name: &str| {
                http_stats
                    .get(&format!("http.{prefix}.{name}"))
                    .copied()
                    .unwrap_or(0)
            };
            format!(
                "{prefix} {} requests on {} connections",
                get("downstream_rq_total"),
                get("downstream_cx_total")
            )
        })
        .collect();
    let back_rss = rss_kib(back.pid())?;
    let front_rss = rss_kib(front.pid())?;

    let report = Report {
        settings: &settings,
        fixed: &fixed,
        closed: &closed,
        envoy_version: envoy_version(),
        wasm_bytes,
        allowed,
        refused,
        reuse,
        back_rss,
        front_rss,
        load_before,
        load_after: loadavg(),
        elapsed,
    };
    let markdown = report.markdown();
    println!("\n{markdown}");
    if let Some(doc) = &settings.doc {
        write_section(doc, &markdown)?;
        println!("written to {}", doc.display());
    }
    Ok(())
}

/// The risk API stand-in behind the measured Envoy: reads each request whole and answers 200
/// with a small JSON body, keeping connections open. A thread per connection; Envoy opens few.
fn start_upstream(port: u16) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    thread::Builder::new()
        .name("upstream".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = thread::Builder::new()
                    .name("upstream-conn".into())
                    .spawn(move || serve(stream));
            }
        })?;
    Ok(())
}

fn serve(stream: TcpStream) {
    const RESPONSE: &[u8] =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"score\":42}\n";
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = io::BufReader::new(stream);
    while let Ok(Some(_request)) = http::read_request(&mut reader) {
        if writer.write_all(RESPONSE).is_err() {
            return;
        }
    }
}

fn ports_in(all: &[(u16, u16)], wanted: &[u16]) -> Vec<(u16, u16)> {
    all.iter()
        .copied()
        .filter(|(d, _)| wanted.contains(d))
        .collect()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One measured h2load run, with both Envoys' CPU time read around it.
fn measure(
    load: &Load,
    front: &Proxy,
    back: &Proxy,
    url: &str,
    connections: u32,
    rps: Option<u32>,
    seconds: u64,
) -> io::Result<Sample> {
    let front_before = cpu(front.pid())?;
    let back_before = cpu(back.pid())?;
    let outcome = load.run(url, connections, rps, seconds, Some("measured"))?;
    let front_after = cpu(front.pid())?;
    let back_after = cpu(back.pid())?;

    if outcome.succeeded == 0 || outcome.non_2xx > 0 || outcome.failed > 0 {
        return Err(io::Error::other(format!(
            "{} requests succeeded, {} failed, {} answered other than 2xx",
            outcome.succeeded, outcome.failed, outcome.non_2xx
        )));
    }
    let n = outcome.succeeded as f64;
    Ok(Sample {
        requests: outcome.succeeded,
        rps: outcome.rps,
        p50_ms: outcome.p50_ms,
        p99_ms: outcome.p99_ms,
        front_us: front_after.all_ns.saturating_sub(front_before.all_ns) as f64 / 1000.0 / n,
        back_us: back_after.all_ns.saturating_sub(back_before.all_ns) as f64 / 1000.0 / n,
        back_stat_us: back_after.ticks.saturating_sub(back_before.ticks) as f64 * tick_us() / n,
        front_worker_us: front_after.worker_ns.saturating_sub(front_before.worker_ns) as f64
            / 1000.0
            / n,
        back_worker_us: back_after.worker_ns.saturating_sub(back_before.worker_ns) as f64
            / 1000.0
            / n,
    })
}

/// A process's CPU time so far.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    /// Run time of its worker threads (`wrk:*`) from `/proc/PID/task/TID/schedstat`, in ns.
    worker_ns: u64,
    /// The same over all its threads.
    all_ns: u64,
    /// utime + stime from `/proc/PID/stat`, in clock ticks.
    ticks: u64,
}

fn cpu(pid: u32) -> io::Result<Cpu> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let ticks = field(14) + field(15);

    let mut worker_ns = 0u64;
    let mut all_ns = 0u64;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = task?.path();
        // A thread may end between listing and reading; it then counts for nothing here.
        let is_worker =
            fs::read_to_string(dir.join("comm")).is_ok_and(|name| name.starts_with("wrk:"));
        let run_ns = fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|text| {
                text.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
        all_ns += run_ns;
        if is_worker {
            worker_ns += run_ns;
        }
    }
    Ok(Cpu {
        worker_ns,
        all_ns,
        ticks,
    })
}

/// Microseconds per clock tick (`getconf CLK_TCK`, almost always 100 Hz).
fn tick_us() -> f64 {
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|hz| *hz > 0.0)
        .unwrap_or(100.0);
    1_000_000.0 / hz
}

fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// An Envoy started for the bench with one worker; killed when dropped.
struct Proxy {
    child: Child,
    admin: SocketAddr,
}

impl Proxy {
    fn start(
        name: &str,
        config: &str,
        admin: SocketAddr,
        env: &[(&str, &str)],
        run_dir: &Path,
    ) -> io::Result<Proxy> {
        let config_path = run_dir.join(format!("{name}.yaml"));
        fs::write(&config_path, config)?;
        let log = fs::File::create(run_dir.join(format!("{name}.log")))?;
        let mut command = Command::new(envoy::envoy_binary());
        command
            .arg("-c")
            .arg(&config_path)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ])
            .current_dir(envoy::repo_root())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut proxy = Proxy {
            child: command.spawn()?,
            admin,
        };

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = proxy.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "envoy {name} exited ({status}); see {}",
                    run_dir.join(format!("{name}.log")).display()
                )));
            }
            if proxy.admin_get("/ready").is_ok_and(|r| r.status == 200) {
                return Ok(proxy);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("envoy {name} not ready"),
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn admin_get(&self, path: &str) -> io::Result<http::Response> {
        http::send(
            self.admin,
            &Request::get(path).header("connection", "close"),
        )
    }

    fn stats(&self, filter: &str) -> io::Result<BTreeMap<String, u64>> {
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How h2load is run.
struct Load {
    h2load: PathBuf,
    body_file: PathBuf,
    token: String,
    run_dir: PathBuf,
}

/// What h2load reported for one run.
struct Outcome {
    succeeded: u64,
    failed: u64,
    non_2xx: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Load {
    /// Runs h2load for `seconds` (HTTP/2 to the front Envoy, one stream per connection), at
    /// `rps` in total when given, as fast as it goes otherwise. With `log`, per-request
    /// latencies are kept for percentiles.
    fn run(
        &self,
        url: &str,
        connections: u32,
        rps: Option<u32>,
        seconds: u64,
        log: Option<&str>,
    ) -> io::Result<Outcome> {
        let mut command = Command::new(&self.h2load);
        command
            .args(["-c", &connections.to_string(), "-m", "1", "-t", "1"])
            .args(["-D", &seconds.to_string()])
            .arg("-d")
            .arg(&self.body_file)
            .args(["-H", &format!(":authority: {AUTHORITY}")])
            .args(["-H", "content-type: application/json"])
            .args(["-H", &format!("authorization: Bearer {}", self.token)]);
        if let Some(rps) = rps {
            command.args(["--rps", &(rps / connections).max(1).to_string()]);
        }
        let log_path = log.map(|name| self.run_dir.join(format!("h2load-{name}.tsv")));
        if let Some(path) = &log_path {
            let _ = fs::remove_file(path);
            command.arg("--log-file").arg(path);
        }
        let output = command.arg(url).stdin(Stdio::null()).output()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "h2load failed ({}): {}{}",
                output.status,
                text,
                String::from_utf8_lossy(&output.stderr)
            )));
        }

        let numbers = |prefix: &str| -> Vec<f64> {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .map(|rest| {
                    rest.split(|c: char| c == ',' || c.is_whitespace())
                        .filter_map(|w| w.parse::<f64>().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        // "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
        let requests = numbers("requests:");
        // "status codes: N 2xx, N 3xx, N 4xx, N 5xx"
        let statuses = numbers("status codes:");
        let count = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(0.0) as u64;
        let succeeded = count(&requests, 3);
        let non_2xx = count(&statuses, 1) + count(&statuses, 2) + count(&statuses, 3);

        let mut latencies: Vec<f64> = match &log_path {
            Some(path) => fs::read_to_string(path)?
                .lines()
                .filter_map(|l| l.split('\t').nth(2)?.trim().parse::<f64>().ok())
                .collect(),
            None => Vec::new(),
        };
        latencies.sort_by(f64::total_cmp);
        Ok(Outcome {
            succeeded,
            failed: count(&requests, 4) + count(&requests, 5) + count(&requests, 6),
            non_2xx,
            rps: succeeded as f64 / seconds as f64,
            p50_ms: percentile(&latencies, 0.50) / 1000.0,
            p99_ms: percentile(&latencies, 0.99) / 1000.0,
        })
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(at).copied().unwrap_or(0.0)
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(0.0),
        n => {
            (v.get(n / 2 - 1).copied().unwrap_or(0.0) + v.get(n / 2).copied().unwrap_or(0.0)) / 2.0
        }
    }
}

struct Report<'a> {
    settings: &'a Settings,
    fixed: &'a BTreeMap<Path2, Vec<Sample>>,
    closed: &'a BTreeMap<Path2, Vec<Sample>>,
    envoy_version: String,
    wasm_bytes: u64,
    allowed: u64,
    refused: u64,
    reuse: Vec<String>,
    back_rss: u64,
    front_rss: u64,
    load_before: String,
    load_after: String,
    elapsed: Duration,
}

impl Report<'_> {
    fn samples(&self, path: Path2) -> &[Sample] {
        self.fixed.get(&path).map(Vec::as_slice).unwrap_or_default()
    }

    /// The median over rounds of a per-round difference between two paths.
    fn paired(&self, a: Path2, b: Path2, f: impl Fn(&Sample) -> f64) -> f64 {
        median(
            self.samples(a)
                .iter()
                .zip(self.samples(b))
                .map(|(x, y)| f(x) - f(y)),
        )
    }

    fn markdown(&self) -> String {
        let s = self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Run {} · {} · keyhop.wasm {} bytes · {} rounds, each path {} s at {} req/s \
             (h2load, {} HTTP/2 connections){} · both Envoys `--concurrency 1` · load average \
             {} before, {} after · {:.0} s in all.\n",
            utc_now(),
            self.envoy_version,
            self.wasm_bytes,
            s.rounds,
            s.seconds,
            s.rps,
            FIXED_CONNECTIONS,
            if s.max_seconds > 0 {
                format!(
                    ", then {} s closed loop ({} connections) for throughput",
                    s.max_seconds, MAX_CONNECTIONS
                )
            } else {
                String::new()
            },
            self.load_before,
            self.load_after,
            self.elapsed.as_secs_f64()
        );

        out.push_str("| path (front → measured back) | back µs/req | back worker µs/req | front µs/req | front worker µs/req | req/s | p50 ms | p99 ms | max req/s |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for path in Path2::ALL {
            let v = self.samples(path);
            let max_rps = median(
                self.closed
                    .get(&path)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .map(|x| x.rps),
            );
            let _ = writeln!(
                out,
                "| {} ({}) | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {} |",
                path.label(),
                path.front_label(),
                median(v.iter().map(|x| x.back_us)),
                median(v.iter().map(|x| x.back_worker_us)),
                median(v.iter().map(|x| x.front_us)),
                median(v.iter().map(|x| x.front_worker_us)),
                median(v.iter().map(|x| x.rps)),
                median(v.iter().map(|x| x.p50_ms)),
                median(v.iter().map(|x| x.p99_ms)),
                if max_rps > 0.0 {
                    format!("{max_rps:.0}")
                } else {
                    "–".to_owned()
                }
            );
        }

        // Added CPU per request, from the process accounting and from the worker threads alone.
        let process = Added {
            noop: self.paired(Path2::WasmNoop, Path2::Bare, |x| x.back_us),
            skeleton: self.paired(Path2::WasmSkeleton, Path2::Bare, |x| x.back_us),
            jwt: self.paired(Path2::Jwt, Path2::Bare, |x| x.back_us),
            verify: self.paired(Path2::Verify, Path2::Bare, |x| x.back_us),
            sign: self.paired(Path2::Bare, Path2::PlainBare, |x| x.front_us),
            both: self.paired(Path2::Verify, Path2::PlainBare, |x| x.front_us + x.back_us),
        };
        let worker = Added {
            noop: self.paired(Path2::WasmNoop, Path2::Bare, |x| x.back_worker_us),
            skeleton: self.paired(Path2::WasmSkeleton, Path2::Bare, |x| x.back_worker_us),
            jwt: self.paired(Path2::Jwt, Path2::Bare, |x| x.back_worker_us),
            verify: self.paired(Path2::Verify, Path2::Bare, |x| x.back_worker_us),
            sign: self.paired(Path2::Bare, Path2::PlainBare, |x| x.front_worker_us),
            both: self.paired(Path2::Verify, Path2::PlainBare, |x| {
                x.front_worker_us + x.back_worker_us
            }),
        };
        out.push_str("\n| added CPU per request (median of per-round differences) | µs (process) | ÷ jwt_authn | µs (worker thread) | ÷ jwt_authn | goal |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | --- |\n");
        let rows: [AddedRow; 6] = [
            ("jwt_authn (HS256) on the back Envoy", |a| a.jwt, ""),
            ("keyhop verify on the back Envoy", |a| a.verify, "≤ 0.5"),
            ("keyhop sign on the front Envoy", |a| a.sign, ""),
            (
                "keyhop sign + verify, both Envoys (two-hop)",
                |a| a.both,
                "≤ 1.0",
            ),
            (
                "floor: a no-op Wasm filter on the back Envoy",
                |a| a.noop,
                "",
            ),
            (
                "floor: Wasm skeleton (headers + buffered body into the VM)",
                |a| a.skeleton,
                "",
            ),
        ];
        for (label, pick, goal) in rows {
            let _ = writeln!(
                out,
                "| {label} | {:.1} | {} | {:.1} | {} | {goal} |",
                pick(&process),
                process.ratio(pick(&process)),
                pick(&worker),
                worker.ratio(pick(&worker))
            );
        }

        let requests: u64 = self
            .fixed
            .values()
            .flatten()
            .chain(self.closed.values().flatten())
            .map(|x| x.requests)
            .sum();
        let _ = writeln!(
            out,
            "\n{} requests measured; the verifier allowed {} credentials and refused {}. \
             Back listeners: {}. RSS after the run: back {} MiB, front {} MiB.",
            requests,
            self.allowed,
            self.refused,
            self.reuse.join("; "),
            self.back_rss / 1024,
            self.front_rss / 1024
        );
        out
    }
}

/// One row of the added-cost table: its label, which figure, and the goal it is held to.
type AddedRow = (&'static str, fn(&Added) -> f64, &'static str);

/// CPU added per request by each keyhop step and by jwt_authn, in µs.
struct Added {
    noop: f64,
    skeleton: f64,
    jwt: f64,
    verify: f64,
    sign: f64,
    both: f64,
}

impl Added {
    /// `value` as a multiple of what jwt_authn adds.
    fn ratio(&self, value: f64) -> String {
        if self.jwt > 0.0 {
            format!("{:.2}", value / self.jwt)
        } else {
            "n/a".to_owned()
        }
    }
}

const BEGIN: &str = "<!-- keyhop-bench:begin (written by make bench) -->";
const END: &str = "<!-- keyhop-bench:end -->";

/// Replaces the text between the markers in `doc`, or appends the markers and the text.
fn write_section(doc: &Path, markdown: &str) -> io::Result<()> {
    let old = fs::read_to_string(doc).unwrap_or_default();
    let block = format!("{BEGIN}\n{markdown}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!(
                "{}{block}{}",
                old.get(..b).unwrap_or_default(),
                old.get(e + END.len()..).unwrap_or_default()
            )
        }
        _ => format!("{old}\n{block}\n"),
    };
    fs::write(doc, new)
}

fn envoy_version() -> String {
    Command::new(envoy::envoy_binary())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        // "<binary>  version: <commit>/1.40.0/Clean/RELEASE/BoringSSL"
        .and_then(|s| {
            let build = s
                .split("version:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .to_owned();
            Some(format!("Envoy {}", build.split('/').nth(1)?))
        })
        .unwrap_or_else(|| "Envoy".to_owned())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(bytes)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An HS256 JWT for the bench's jwt_authn provider (RFC 7519), valid until `exp`.
fn mint_jwt(key: &[u8], exp: u64) -> io::Result<String> {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"bench"}"#);
    let claims = b64url(
        format!(
            r#"{{"iss":"{JWT_ISSUER}","aud":"{JWT_AUDIENCE}","sub":"spiffe://finsphere.example/ns/portal/sa/portal-web","iat":{},"exp":{exp}}}"#,
            unix_now()
        )
        .as_bytes(),
    );
    let signing_input = format!("{header}.{claims}");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|e| io::Error::other(format!("hmac: {e}")))?;
    mac.update(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        b64url(&mac.finalize().into_bytes())
    ))
}
