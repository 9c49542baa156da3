//! Requests per second through a proxy-wasm module in the simulator.
//!
//! Always measured: a small WAT filter that reads one header and adds one,
//! which is the host's own per-request cost. With `KEYHOP_WASM` set to the
//! built keyhop module, also keyhop signing and keyhop verification (each
//! verified request freshly signed, outside the timed part).
//!
//! `cargo bench -p keyhop-host-sim` (add `KEYHOP_WASM=target/keyhop.wasm`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyhop_host_sim::{Host, Plugin, Request, Verdict};

mod keyhop_load;
use keyhop_load::{config, request, SIGN_CONFIG, VERIFY_CONFIG};

const PASSTHROUGH: &str = r#"(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 1024) ":path")
  (data (i32.const 1040) "x-seen")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    ;; reuse one block: the filter never keeps what it reads
    (i32.const 8192))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get (i32.const 0) (i32.const 1024) (i32.const 5) (i32.const 0) (i32.const 4)))
    (drop (call $add (i32.const 0) (i32.const 1040) (i32.const 6) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
    (i32.const 0)))"#;

/// Fresh replay caches every this many verified requests, well under the
/// default cache size, so that the cache never fills during a measurement.
const VERIFY_BATCH: u64 = 2000;

fn passthrough(c: &mut Criterion) {
    let plugin = Plugin::compile(PASSTHROUGH.as_bytes()).unwrap();
    let mut host = Host::start(&plugin, config(""), 1).unwrap();
    let request = request();

    let mut group = c.benchmark_group("host");
    group.throughput(Throughput::Elements(1));
    group.bench_function("passthrough_request", |b| {
        b.iter(|| {
            let exchange = host.handle(0, &request);
            assert_eq!(exchange.verdict, Verdict::Continued);
        })
    });
    group.finish();
}

fn keyhop(c: &mut Criterion) {
    let Some(path) = std::env::var_os("KEYHOP_WASM") else {
        eprintln!("keyhop benches skipped: KEYHOP_WASM is not set");
        return;
    };
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("KEYHOP_WASM={} cannot be read: {e}", path.to_string_lossy()));
    let plugin = Plugin::compile(&wasm).unwrap();
    let request = request();

    let mut group = c.benchmark_group("keyhop");
    group.throughput(Throughput::Elements(1));

    let mut signer = Host::start(&plugin, config(SIGN_CONFIG), 1).unwrap();
    group.bench_function("sign_request", |b| {
        b.iter(|| {
            let exchange = signer.handle(0, &request);
            assert_eq!(exchange.verdict, Verdict::Continued);
        })
    });

    group.bench_function("verify_request", |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            let mut left = iterations;
            while left > 0 {
                let batch = left.min(VERIFY_BATCH);
                left -= batch;

                let mut verifier = Host::start(&plugin, config(VERIFY_CONFIG), 1).unwrap();
                let signed: Vec<Request> = (0..batch)
                    .map(|_| {
                        let upstream = signer.handle(0, &request).upstream.unwrap();
                        Request {
                            headers: upstream.headers,
                            body_chunks: vec![upstream.body],
                            ..Request::default()
                        }
                    })
                    .collect();

                let started = Instant::now();
                for hop in &signed {
                    let exchange = verifier.handle(0, hop);
                    assert_eq!(exchange.verdict, Verdict::Continued, "{:?}", exchange.logs);
                }
                timed += started.elapsed();
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, passthrough, keyhop);
criterion_main!(benches);
