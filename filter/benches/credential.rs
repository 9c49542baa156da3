//! What one credential costs natively: signing, verifying (the header checks and the body
//! checks with an in-memory replay store), and, as the yardstick, one HMAC-SHA256 of the same
//! signature base under a prepared key. The verify step's parts are timed too, so a hot spot
//! shows which part it is in.
//!
//! `cargo bench -p keyhop-filter --bench credential`. docs/BENCHMARKS.md has the figures.
//!
//! Credentials are single use, so the verify benches sign a batch of fresh credentials before
//! the timed loop and start a fresh replay store for every batch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod fixtures;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyhop_filter::digest;
use keyhop_filter::keys::{self, EpochKeyCache};
use keyhop_filter::message;
use keyhop_filter::profile;
use keyhop_filter::replay::MemoryStore;
use keyhop_filter::sigfields;
use keyhop_filter::sign;
use keyhop_filter::verify::{self, Facts};

/// Alternating verify and HMAC blocks for the paired ratio, and credentials per block.
const RATIO_BLOCKS: u64 = 21;
const RATIO_BLOCK_LEN: u64 = 500;

/// Signed credentials per batch: well under what one replay bucket holds (1024 × 128).
const BATCH: u64 = 2000;

use fixtures::{
    field, nonce, plain_headers, request, sign_config, signed_headers, verify_config, verify_one,
    yardstick, BODY, NOW,
};

/// Times `step` over freshly signed credentials: `prepare` runs untimed per credential.
fn over_fresh_credentials<T>(
    iterations: u64,
    mut prepare: impl FnMut(u64) -> T,
    mut step: impl FnMut(&T, &MemoryStore),
) -> Duration {
    let config = verify_config();
    let mut timed = Duration::ZERO;
    let mut done = 0;
    while done < iterations {
        let batch = (iterations - done).min(BATCH);
        let store = MemoryStore::default();
        config.replay.init(&store).unwrap();
        let inputs: Vec<T> = (done..done + batch).map(&mut prepare).collect();

        let started = Instant::now();
        for input in &inputs {
            step(input, &store);
        }
        timed += started.elapsed();
        done += batch;
    }
    timed
}

fn credential(c: &mut Criterion) {
    let sign_config = sign_config();
    let verify_config = verify_config();
    let mut sign_keys = EpochKeyCache::new(4);
    let mut verify_keys = EpochKeyCache::new(4);
    let mut counter = 0u64;

    let mut group = c.benchmark_group("native");
    group.throughput(Throughput::Elements(1));

    let headers = plain_headers();
    group.bench_function("sign", |b| {
        b.iter(|| {
            counter += 1;
            let signed = sign::sign(
                &sign_config,
                &mut sign_keys,
                &request(&headers),
                BODY,
                NOW,
                &nonce(counter),
            );
            black_box(signed.unwrap())
        })
    });

    let mut next = 1_000_000_000u64;
    let fresh = |n: u64| signed_headers(&sign_config, &mut EpochKeyCache::new(1), n);
    group.bench_function("verify", |b| {
        b.iter_custom(|iterations| {
            next += iterations;
            over_fresh_credentials(
                iterations,
                |i| fresh(next + i),
                |headers, store| {
                    black_box(verify_one(&verify_config, &mut verify_keys, headers, store));
                },
            )
        })
    });

    // The yardstick: HMAC-SHA256 of this request's signature base under a prepared key, the
    // one computation no verifier of this scheme can avoid.
    let sample = signed_headers(&sign_config, &mut EpochKeyCache::new(1), 1);
    let (key, base) = yardstick(&verify_config, &sample);
    println!("signature base: {} bytes", base.len());
    group.bench_function("hmac_signature_base", |b| {
        b.iter(|| black_box(keys::mac(&key, black_box(&base))))
    });
    group.finish();

    // The goal compares verify with one HMAC; on a busy machine two benches run a minute apart
    // see different loads, so time the two alternately in short blocks and take the median of
    // the per-block ratios as well.
    let mut ratios = Vec::new();
    for block in 0..RATIO_BLOCKS {
        let verify_time = over_fresh_credentials(
            RATIO_BLOCK_LEN,
            |i| fresh(3_000_000_000 + block * RATIO_BLOCK_LEN + i),
            |headers, store| {
                black_box(verify_one(&verify_config, &mut verify_keys, headers, store));
            },
        );
        let started = Instant::now();
        for _ in 0..RATIO_BLOCK_LEN {
            black_box(keys::mac(&key, black_box(&base)));
        }
        let hmac_time = started.elapsed();
        ratios.push(verify_time.as_secs_f64() / hmac_time.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "verify ÷ one HMAC of its signature base, median of {RATIO_BLOCKS} alternating blocks: {:.1} (goal ≤ 2)",
        ratios[ratios.len() / 2]
    );

    // The verify step's parts, to show where its time goes.
    let mut parts = c.benchmark_group("verify_parts");
    parts.throughput(Throughput::Elements(1));
    let sample_request = request(&sample);
    parts.bench_function("check_headers", |b| {
        b.iter(|| {
            let mut facts = Facts::default();
            black_box(
                verify::check_headers(&verify_config, &sample_request, NOW + 1, &mut facts)
                    .unwrap(),
            )
        })
    });
    let signature_input = field(&sample, "signature-input");
    // What verify runs (keyhop's own form takes the shortcut), then the general RFC 8941 path
    // that any other form takes.
    parts.bench_function("read_signature_input", |b| {
        b.iter(|| black_box(profile::read_signature_input(black_box(signature_input)).unwrap()))
    });
    parts.bench_function("read_signature_input_general", |b| {
        b.iter(|| {
            let input = sigfields::parse_signature_input(black_box(signature_input)).unwrap();
            black_box(profile::read_credential(input).unwrap())
        })
    });
    let input = profile::read_signature_input(signature_input).unwrap();
    let signature = field(&sample, "signature");
    parts.bench_function("read_signature", |b| {
        b.iter(|| {
            black_box(sigfields::read_signature(black_box(signature), profile::LABEL).unwrap())
        })
    });
    let content_digest = field(&sample, "content-digest");
    parts.bench_function("content_digest_check", |b| {
        b.iter(|| {
            digest::check(
                Some(black_box(content_digest)),
                &digest::sha256(black_box(BODY)),
            )
            .unwrap();
        })
    });
    parts.bench_function("signature_base", |b| {
        b.iter(|| {
            black_box(
                message::signature_base(
                    &input.components,
                    &input.signature_params,
                    &sample_request,
                )
                .unwrap(),
            )
        })
    });
    let mut replay_next = 2_000_000_000u64;
    parts.bench_function("replay_check_and_record", |b| {
        b.iter_custom(|iterations| {
            replay_next += iterations;
            over_fresh_credentials(
                iterations,
                |i| format!("nonce-{}", replay_next + i),
                |nonce, store| {
                    verify_config
                        .replay
                        .check_and_record(store, black_box(nonce), NOW)
                        .unwrap();
                },
            )
        })
    });
    parts.finish();
}

criterion_group!(benches, credential);
criterion_main!(benches);
