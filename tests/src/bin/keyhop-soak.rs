//! keyhop-soak: steady signed load through the demo (portal Envoy signs, partner Envoy
//! verifies) for a set time, sampling the partner's memory as it goes: process RSS, Envoy's
//! own heap (admin `/memory`, which holds the shared data where the replay cache lives) and
//! the size of the Wasm VMs' linear memories (a VM per worker, and the main thread's). Prints
//! one row per sample and says whether memory stayed flat.
//!
//!   keyhop-soak [seconds (120)] [requests per second (200)] [sample every N s (10)]
//!
//! Exits non-zero if a call was refused or memory grew after warm-up by more than 10 % and
//! 8 MiB. Loopback only; the load stops by itself.

use std::fs;
use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use keyhop_e2e::http::{self, Request, Response};
use keyhop_e2e::Topology;

const CLIENTS: usize = 4;
const MIB: f64 = 1024.0 * 1024.0;

fn main() -> ExitCode {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(120).max(10);
    let rate = args.get(1).copied().unwrap_or(200).max(1);
    let every = args.get(2).copied().unwrap_or(10).max(1);
    match soak(seconds, rate, every) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("keyhop-soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One memory sample of the partner Envoy.
struct Sample {
    at: Duration,
    ok: usize,
    refused: usize,
    rss: u64,
    allocated: u64,
    heap: u64,
    wasm: u64,
}

fn soak(seconds: u64, rate: u64, every: u64) -> io::Result<bool> {
    let topology = Topology::start("soak")?;
    let pid = pid_of(&topology.run_dir().join("partner-ingress.yaml"))
        .ok_or_else(|| io::Error::other("cannot find the partner Envoy's process"))?;
    println!(
        "keyhop-soak: {seconds} s at {rate} req/s through portal → partner, {CLIENTS} kept-alive clients; \
         partner pid {pid}, run dir {}",
        topology.run_dir().display()
    );
    println!("replay cache bound (partner config: hop 5 s, max age 15 s, skew 5 s, 256 shards × 256): 6 × 256 × 4,104 B = 6.3 MB");

    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let per_client = Duration::from_secs_f64(CLIENTS as f64 / rate as f64);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (ok, refused, stop) = (Arc::clone(&ok), Arc::clone(&refused), Arc::clone(&stop));
            let addr = topology.portal_web();
            thread::spawn(move || load(addr, c, per_client, start, &ok, &refused, &stop))
        })
        .collect();

    let mut samples = Vec::new();
    println!(
        "\n{:>6} {:>9} {:>7} {:>8} {:>11} {:>11} {:>11} {:>12}",
        "t (s)", "calls ok", "refused", "req/s", "RSS MiB", "heap MiB", "alloc MiB", "wasm MiB"
    );
    let end = start + Duration::from_secs(seconds);
    let mut next = start;
    loop {
        let now = Instant::now();
        if now >= next {
            let sample = sample(&topology, pid, start, &ok, &refused)?;
            let previous = samples
                .last()
                .map_or((Duration::ZERO, 0), |s: &Sample| (s.at, s.ok));
            let rps =
                (sample.ok - previous.1) as f64 / (sample.at - previous.0).as_secs_f64().max(0.001);
            println!(
                "{:>6.0} {:>9} {:>7} {:>8.0} {:>11.1} {:>11.1} {:>11.1} {:>12.1}",
                sample.at.as_secs_f64(),
                sample.ok,
                sample.refused,
                rps,
                sample.rss as f64 / MIB,
                sample.heap as f64 / MIB,
                sample.allocated as f64 / MIB,
                sample.wasm as f64 / MIB
            );
            let _ = io::stdout().flush();
            samples.push(sample);
            next += Duration::from_secs(every);
        }
        if now >= end {
            break;
        }
        thread::sleep(
            next.min(end)
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500)),
        );
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        let _ = client.join();
    }
    let last = sample(&topology, pid, start, &ok, &refused)?;

    // Warm-up: the first sample after the replay cache has cycled once (30 s), else the second.
    let base = samples
        .iter()
        .find(|s| s.at >= Duration::from_secs(30))
        .or_else(|| samples.get(1))
        .unwrap_or(&last);
    let grew = |name: &str, from: u64, to: u64| -> bool {
        let delta = to as f64 - from as f64;
        let pct = if from > 0 {
            100.0 * delta / from as f64
        } else {
            0.0
        };
        let flat = delta <= 8.0 * MIB || pct <= 10.0;
        println!(
            "{name:<26} {:>8.1} MiB at {:>4.0} s → {:>8.1} MiB at end: {:+.1} MiB ({pct:+.1} %) {}",
            from as f64 / MIB,
            base.at.as_secs_f64(),
            to as f64 / MIB,
            delta / MIB,
            if flat { "flat" } else { "GREW" }
        );
        !flat
    };
    println!("\nafter {} calls ({} refused):", last.ok, last.refused);
    let mut growth = false;
    growth |= grew("partner RSS", base.rss, last.rss);
    growth |= grew("partner Envoy heap", base.heap, last.heap);
    growth |= grew("partner allocated", base.allocated, last.allocated);
    growth |= grew("partner Wasm linear memory", base.wasm, last.wasm);

    let healthy = last.refused == 0 && last.ok > 0 && !growth;
    println!(
        "{}",
        if healthy {
            "soak: OK, memory flat"
        } else {
            "soak: FAILED"
        }
    );
    Ok(healthy)
}

fn load(
    addr: SocketAddr,
    client: usize,
    interval: Duration,
    start: Instant,
    ok: &AtomicUsize,
    refused: &AtomicUsize,
    stop: &AtomicBool,
) {
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut i: u64 = 0;
    while !stop.load(Ordering::SeqCst) {
        let due = start + interval.mul_f64(i as f64 + client as f64 / CLIENTS as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let request = Request::post_json(
            &format!("/v1/risk/score?client={client}&n={i}"),
            &format!(r#"{{"customer":"c-{client}","amount":{i}}}"#),
        );
        match send(&mut conn, addr, &request) {
            Ok(response) if response.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
            Ok(response) => {
                eprintln!("refused: {} {:?}", response.status, response.reason());
                refused.fetch_add(1, Ordering::Relaxed)
            }
            Err(e) => {
                eprintln!("error: {e}");
                conn = None;
                refused.fetch_add(1, Ordering::Relaxed)
            }
        };
        i += 1;
    }
}

fn send(
    conn: &mut Option<(TcpStream, BufReader<TcpStream>)>,
    addr: SocketAddr,
    request: &Request,
) -> io::Result<Response> {
    for _ in 0..2 {
        if conn.is_none() {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(15)))?;
            let reader = BufReader::new(stream.try_clone()?);
            *conn = Some((stream, reader));
        }
        let Some((stream, reader)) = conn.as_mut() else {
            continue;
        };
        let sent = stream.write_all(&request.to_bytes());
        match sent.and_then(|()| http::read_response(reader, &request.method)) {
            Ok(Some(response)) => return Ok(response),
            // A kept-alive connection the server closed: once more on a new one.
            Ok(None) | Err(_) => *conn = None,
        }
    }
    Err(io::Error::other("no response"))
}

fn sample(
    topology: &Topology,
    pid: u32,
    start: Instant,
    ok: &AtomicUsize,
    refused: &AtomicUsize,
) -> io::Result<Sample> {
    let memory = topology.partner.admin_get("/memory")?;
    let json: serde_json::Value = serde_json::from_slice(&memory.body).map_err(io::Error::other)?;
    let number = |key: &str| {
        json.get(key)
            .and_then(|v| v.as_str()?.parse().ok().or(v.as_u64()))
            .unwrap_or(0)
    };
    let (rss, wasm) = process_memory(pid);
    Ok(Sample {
        at: start.elapsed(),
        ok: ok.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        rss,
        allocated: number("allocated"),
        heap: number("heap_size"),
        wasm,
    })
}

/// Resident bytes of the whole process, and the size of its Wasm linear memories. V8
/// reserves each 32-bit linear memory as one mapping of several GiB; the pages the module has
/// grown into are the read-write mapping just before the inaccessible rest of that
/// reservation, so the size of that mapping is the linear memory's current size.
fn process_memory(pid: u32) -> (u64, u64) {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    // (start, end, permissions, resident bytes) of every mapping, in address order.
    let mut maps: Vec<(u64, u64, String, u64)> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
            else {
                continue;
            };
            maps.push((start, end, fields.next().unwrap_or_default().to_owned(), 0));
        } else if first == "Rss:" {
            if let Some(last) = maps.last_mut() {
                last.3 = fields
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    * 1024;
            }
        }
    }
    let total = maps.iter().map(|m| m.3).sum();
    let wasm = maps
        .windows(2)
        .filter_map(|pair| match pair {
            [memory, reserve]
                if reserve.2 == "---p"
                    && reserve.1.saturating_sub(reserve.0) >= 4 << 30
                    && memory.1 == reserve.0
                    && memory.2.starts_with("rw") =>
            {
                Some(memory.1.saturating_sub(memory.0))
            }
            _ => None,
        })
        .sum();
    (total, wasm)
}

/// The pid of the Envoy started with `config` on its command line.
fn pid_of(config: &std::path::Path) -> Option<u32> {
    let needle = config.to_string_lossy().into_owned();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(&needle)
            .then_some(pid)
    })
}
