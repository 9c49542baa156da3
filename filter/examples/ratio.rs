//! verify ÷ one HMAC-SHA256 of its signature base, in whatever runtime runs this program.
//!
//! The goal "verify ≤ 2 × one HMAC" is about the runtime the filter runs in. Natively:
//! `cargo run --release -p keyhop-filter --example ratio`. Inside V8, the Wasm engine Envoy
//! uses: `scripts/wasm-ratio.sh` builds this program for wasm32-wasip1 and runs it under
//! Node.js's WASI. Both print the same table: per-step times and the median of per-block
//! ratios, verify and HMAC alternating block by block.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use std::hint::black_box;
use std::time::{Duration, Instant};

use keyhop_filter::digest;
use keyhop_filter::keys::{self, EpochKeyCache};
use keyhop_filter::message;
use keyhop_filter::profile;
use keyhop_filter::replay::MemoryStore;
use keyhop_filter::sigfields;
use keyhop_filter::verify::{self, Facts};

use fixtures::{
    field, request, sign_config, signed_headers, verify_config, verify_one, yardstick, BODY, NOW,
};

/// Blocks of each step, alternating, and runs per block.
const BLOCKS: usize = 15;
const BLOCK_LEN: u64 = 400;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `step` BLOCK_LEN times; the time it took.
fn repeat(mut step: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..BLOCK_LEN {
        step();
    }
    started.elapsed()
}

/// Runs `step` on each of `inputs` (prepared untimed); the time it took.
fn each<T>(inputs: &[T], mut step: impl FnMut(&T)) -> Duration {
    let started = Instant::now();
    for input in inputs {
        step(input);
    }
    started.elapsed()
}

fn per_run(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e6 / BLOCK_LEN as f64
}

fn main() {
    let sign_config = sign_config();
    let verify_config = verify_config();
    let mut verify_keys = EpochKeyCache::new(4);
    let sample = signed_headers(&sign_config, &mut EpochKeyCache::new(1), 1);
    let (key, base) = yardstick(&verify_config, &sample);
    let sample_request = request(&sample);
    let field = |name: &str| field(&sample, name);
    let credential = profile::read_signature_input(field("signature-input")).unwrap();

    // Each step times BLOCK_LEN runs; verify needs fresh credentials, signed untimed.
    type Step<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;
    let mut next = 0u64;
    let mut steps: Vec<(&str, Step<'_>)> = vec![
        (
            "hmac_signature_base",
            Box::new(|_| {
                repeat(|| {
                    black_box(keys::mac(&key, black_box(&base)));
                })
            }),
        ),
        (
            "verify",
            Box::new(|block| {
                let store = MemoryStore::default();
                verify_config.replay.init(&store).unwrap();
                let signed: Vec<_> = (0..BLOCK_LEN)
                    .map(|i| {
                        next += 1;
                        signed_headers(
                            &sign_config,
                            &mut EpochKeyCache::new(1),
                            block * 1_000_000 + i + next,
                        )
                    })
                    .collect();
                each(&signed, |headers| {
                    black_box(verify_one(
                        &verify_config,
                        &mut verify_keys,
                        headers,
                        &store,
                    ));
                })
            }),
        ),
        (
            "authenticate",
            Box::new(|_| {
                // Each run takes its own copy of the checked headers (as the filter takes the
                // one it kept); the copies are made untimed.
                let mut facts = Facts::default();
                let pending =
                    verify::check_headers(&verify_config, &sample_request, NOW + 1, &mut facts)
                        .unwrap();
                let copies: Vec<_> = (0..BLOCK_LEN).map(|_| pending.clone()).collect();
                let mut keys = EpochKeyCache::new(4);
                let started = Instant::now();
                for pending in copies {
                    black_box(
                        verify::authenticate(
                            &verify_config,
                            &mut keys,
                            pending,
                            &sample_request,
                            BODY,
                        )
                        .unwrap(),
                    );
                }
                started.elapsed()
            }),
        ),
        (
            "replay_check_and_record",
            Box::new(|block| {
                let store = MemoryStore::default();
                verify_config.replay.init(&store).unwrap();
                let nonces: Vec<String> = (0..BLOCK_LEN)
                    .map(|i| format!("nonce-{block}-{i}"))
                    .collect();
                each(&nonces, |nonce| {
                    verify_config
                        .replay
                        .check_and_record(&store, nonce, NOW)
                        .unwrap();
                })
            }),
        ),
        (
            "check_headers",
            Box::new(|_| {
                repeat(|| {
                    let mut facts = Facts::default();
                    black_box(
                        verify::check_headers(&verify_config, &sample_request, NOW + 1, &mut facts)
                            .unwrap(),
                    );
                })
            }),
        ),
        (
            "read_signature_input_general",
            Box::new(|_| {
                let raw = field("signature-input");
                repeat(|| {
                    let input = sigfields::parse_signature_input(black_box(raw)).unwrap();
                    black_box(profile::read_credential(input).unwrap());
                })
            }),
        ),
        (
            "content_digest_check",
            Box::new(|_| {
                let raw = field("content-digest");
                repeat(|| {
                    digest::check(Some(black_box(raw)), &digest::sha256(black_box(BODY))).unwrap();
                })
            }),
        ),
        (
            "signature_base",
            Box::new(|_| {
                repeat(|| {
                    black_box(
                        message::signature_base(
                            &credential.components,
                            &credential.signature_params,
                            &sample_request,
                        )
                        .unwrap(),
                    );
                })
            }),
        ),
    ];

    let mut times: Vec<Vec<f64>> = vec![Vec::new(); steps.len()];
    let mut ratios = Vec::new();
    for block in 0..BLOCKS {
        let mut this_block = Vec::new();
        for (i, (_, step)) in steps.iter_mut().enumerate() {
            let t = per_run(step(block as u64));
            times[i].push(t);
            this_block.push(t);
        }
        ratios.push(this_block[1] / this_block[0]);
    }
    println!("runtime: {}", std::env::consts::ARCH);
    for ((name, _), t) in steps.iter().zip(times) {
        println!("{name:30} {:8.2} µs", median(t));
    }
    println!(
        "verify ÷ one HMAC of its {}-byte signature base, median of {BLOCKS} alternating blocks: {:.1} (goal ≤ 2)",
        base.len(),
        median(ratios)
    );
}
