//! Verified requests per second through keyhop modules in the simulator, several modules
//! side by side in one run: blocks of requests alternate between the modules, and each
//! module's figure is the median block and the best tenth of blocks, per request.
//!
//! On a shared machine a single long run is at the mercy of its neighbours; short blocks
//! interleaved across modules see the same spells, so the comparison holds even when the
//! absolute figures move.
//!
//! `cargo run --release -p keyhop-host-sim --example verify_rate -- A.wasm [B.wasm …]`
//! (`KEYHOP_RATE_BLOCKS`, default 300, blocks per module; 100 requests each).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::ExitCode;
use std::time::Instant;

use keyhop_host_sim::{Host, Plugin, Request, Verdict};

#[path = "../benches/keyhop_load/mod.rs"]
mod keyhop_load;
use keyhop_load::{config, request, SIGN_CONFIG, VERIFY_CONFIG};

const BLOCK: usize = 100;
/// Blocks per verifier VM: a fresh VM (and replay cache) well before the cache could fill.
const BLOCKS_PER_VM: usize = 20;

struct Subject {
    path: String,
    plugin: Plugin,
    signer: Host,
    verifier: Option<Host>,
    blocks_on_vm: usize,
    /// Microseconds per request, one per block.
    per_request: Vec<f64>,
}

impl Subject {
    /// One block of verified requests, signed first (untimed) by the same module.
    fn block(&mut self, request: &Request) -> Result<(), String> {
        if self.verifier.is_none() || self.blocks_on_vm == BLOCKS_PER_VM {
            let verifier = Host::start(&self.plugin, config(VERIFY_CONFIG), 1)
                .map_err(|e| format!("{}: the verifying plugin does not start: {e}", self.path))?;
            self.verifier = Some(verifier);
            self.blocks_on_vm = 0;
        }
        let mut signed = Vec::with_capacity(BLOCK);
        for _ in 0..BLOCK {
            let exchange = self.signer.handle(0, request);
            let upstream = exchange.upstream.ok_or_else(|| {
                format!(
                    "{}: signing did not pass the request on: {:?}",
                    self.path, exchange.logs
                )
            })?;
            signed.push(Request {
                headers: upstream.headers,
                body_chunks: vec![upstream.body],
                ..Request::default()
            });
        }
        let Some(verifier) = self.verifier.as_mut() else {
            return Err("no verifier".to_owned());
        };
        let started = Instant::now();
        for hop in &signed {
            let exchange = verifier.handle(0, hop);
            if exchange.verdict != Verdict::Continued {
                return Err(format!(
                    "{}: a freshly signed request was refused: {:?}",
                    self.path, exchange.logs
                ));
            }
        }
        let elapsed = started.elapsed();
        self.blocks_on_vm += 1;
        self.per_request
            .push(elapsed.as_secs_f64() * 1e6 / BLOCK as f64);
        Ok(())
    }
}

const USAGE: &str = "usage: verify_rate MODULE.wasm [MODULE.wasm …] (KEYHOP_RATE_BLOCKS: blocks per module, at least 1, default 300)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("verify_rate: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() || paths.iter().any(|p| p == "-h" || p == "--help") {
        return Err(USAGE.to_owned());
    }
    let blocks: usize = match std::env::var("KEYHOP_RATE_BLOCKS") {
        Ok(text) => match text.parse() {
            Ok(blocks) if blocks >= 1 => blocks,
            _ => return Err(format!("KEYHOP_RATE_BLOCKS={text}: {USAGE}")),
        },
        Err(_) => 300,
    };
    let request = request();
    let mut subjects = Vec::new();
    for path in paths {
        let wasm = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let plugin = Plugin::compile(&wasm).map_err(|e| format!("{path}: {e}"))?;
        let signer = Host::start(&plugin, config(SIGN_CONFIG), 1)
            .map_err(|e| format!("{path}: the signing plugin does not start: {e}"))?;
        subjects.push(Subject {
            path,
            plugin,
            signer,
            verifier: None,
            blocks_on_vm: 0,
            per_request: Vec::new(),
        });
    }
    // A few untimed blocks each first, then the measured ones, alternating.
    for subject in &mut subjects {
        for _ in 0..5 {
            subject.block(&request)?;
        }
        subject.per_request.clear();
    }
    for _ in 0..blocks {
        for subject in &mut subjects {
            subject.block(&request)?;
        }
    }
    println!("verify per request, {blocks} blocks of {BLOCK} per module, alternating:");
    for subject in &mut subjects {
        subject.per_request.sort_by(f64::total_cmp);
        let n = subject.per_request.len();
        let median = subject.per_request[n / 2];
        let best_tenth = subject.per_request[n / 10];
        println!(
            "  {:>7.2} µs median ({:>7.0}/s)  {:>7.2} µs best tenth ({:>7.0}/s)  {}",
            median,
            1e6 / median,
            best_tenth,
            1e6 / best_tenth,
            subject.path
        );
    }
    Ok(())
}
