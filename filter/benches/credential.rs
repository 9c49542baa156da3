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

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use keyhop_filter::config::{Config, SignConfig, VerifyConfig};
use keyhop_filter::digest;
use keyhop_filter::keys::{self, EpochKeyCache};
use keyhop_filter::message::{self, Header, Request};
use keyhop_filter::profile;
use keyhop_filter::replay::MemoryStore;
use keyhop_filter::sigfields;
use keyhop_filter::sign;
use keyhop_filter::verify::{self, Facts};

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NOW: i64 = 1_764_763_200;
const AUTHORITY: &str = "risk.riskpartner.example";
const PATH: &str = "/v1/risk/score?currency=EUR";
const BODY: &[u8] = br#"{"account":"12345678","amount":1999}"#;

/// Alternating verify and HMAC blocks for the paired ratio, and credentials per block.
const RATIO_BLOCKS: u64 = 21;
const RATIO_BLOCK_LEN: u64 = 500;

/// Signed credentials per batch: well under what one replay bucket holds (1024 × 128).
const BATCH: u64 = 2000;

fn env(name: &str) -> Option<String> {
    (name == "KEYHOP_PORTAL_SECRET").then(|| SECRET.to_owned())
}

fn sign_config() -> SignConfig {
    let json = r#"{"mode":"sign","identity":"spiffe://finsphere.example/ns/portal/sa/portal-web",
        "audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
        "key":{"id":"portal-2026","secret_env":"KEYHOP_PORTAL_SECRET"},"lifetime_seconds":10}"#;
    match Config::from_json(json.as_bytes(), &env) {
        Ok(Config::Sign(c)) => c,
        other => panic!("sign config: {other:?}"),
    }
}

fn verify_config() -> VerifyConfig {
    let json = r#"{"mode":"verify","audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
        "keys":[{"id":"portal-2026","secret_env":"KEYHOP_PORTAL_SECRET","alg":"hmac-sha256",
                 "trust_domains":["finsphere.example"]}],
        "routes":[{"methods":["POST"],"path_prefix":"/v1/risk/",
                   "allow":["spiffe://finsphere.example/ns/portal/sa/portal-web"]}]}"#;
    match Config::from_json(json.as_bytes(), &env) {
        Ok(Config::Verify(c)) => c,
        other => panic!("verify config: {other:?}"),
    }
}

/// The headers Envoy hands the filter for a plain POST, before keyhop's are added.
fn plain_headers() -> Vec<Header> {
    [
        (":authority", AUTHORITY),
        (":path", PATH),
        (":method", "POST"),
        (":scheme", "http"),
        ("user-agent", "h2load nghttp2/1.52.0"),
        ("content-type", "application/json"),
        ("content-length", "36"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "0b1c5e8e-3f0e-4a9c-9a43-2d1f0c7e9b11"),
    ]
    .iter()
    .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
    .collect()
}

fn request(headers: &[Header]) -> Request<'_> {
    Request {
        method: "POST",
        scheme: "http",
        authority: AUTHORITY,
        path_and_query: PATH,
        headers,
    }
}

fn nonce(n: u64) -> [u8; 16] {
    let mut bytes = [0x5a; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes
}

/// The headers of one freshly signed request, as the verifier receives them.
fn signed_headers(config: &SignConfig, keys: &mut EpochKeyCache, n: u64) -> Vec<Header> {
    let mut headers = plain_headers();
    let signed = sign::sign(config, keys, &request(&headers), BODY, NOW, &nonce(n)).unwrap();
    for (name, value) in [
        ("content-digest", signed.content_digest),
        ("keyhop-identity", signed.identity),
        ("signature-input", signed.signature_input),
        ("signature", signed.signature),
    ] {
        headers.push((name.to_owned(), value.into_bytes()));
    }
    headers
}

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
                    let request = request(headers);
                    let mut facts = Facts::default();
                    let pending =
                        verify::check_headers(&verify_config, &request, NOW + 1, &mut facts)
                            .unwrap();
                    let verified = verify::finish(
                        &verify_config,
                        &mut verify_keys,
                        &pending,
                        &request,
                        BODY,
                        store,
                    );
                    black_box(verified.unwrap());
                },
            )
        })
    });

    // The yardstick: HMAC-SHA256 of this request's signature base under a prepared key, the
    // one computation no verifier of this scheme can avoid.
    let sample = signed_headers(&sign_config, &mut EpochKeyCache::new(1), 1);
    let input = sigfields::parse_signature_input(
        sample
            .iter()
            .find(|(n, _)| n == "signature-input")
            .map(|(_, v)| v.as_slice())
            .unwrap(),
    )
    .unwrap();
    let base = message::signature_base(
        &input.components,
        &input.signature_params,
        &request(&sample),
    )
    .unwrap();
    let mut cache = EpochKeyCache::new(1);
    let key = cache
        .get(
            &verify_config.keys[0].secret,
            "portal-2026",
            (NOW / 10) as u64,
            "finsphere.example",
            &verify_config.audience,
        )
        .unwrap()
        .clone();
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
                let request = request(headers);
                let mut facts = Facts::default();
                let pending =
                    verify::check_headers(&verify_config, &request, NOW + 1, &mut facts).unwrap();
                black_box(
                    verify::finish(
                        &verify_config,
                        &mut verify_keys,
                        &pending,
                        &request,
                        BODY,
                        store,
                    )
                    .unwrap(),
                );
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
    let signature_input = sample
        .iter()
        .find(|(n, _)| n == "signature-input")
        .map(|(_, v)| v.clone())
        .unwrap();
    parts.bench_function("parse_signature_input", |b| {
        b.iter(|| black_box(sigfields::parse_signature_input(black_box(&signature_input)).unwrap()))
    });
    let signature = sample
        .iter()
        .find(|(n, _)| n == "signature")
        .map(|(_, v)| v.clone())
        .unwrap();
    parts.bench_function("parse_signature", |b| {
        b.iter(|| {
            black_box(sigfields::parse_signature(black_box(&signature), profile::LABEL).unwrap())
        })
    });
    let content_digest = sample
        .iter()
        .find(|(n, _)| n == "content-digest")
        .map(|(_, v)| v.clone())
        .unwrap();
    parts.bench_function("content_digest_check", |b| {
        b.iter(|| {
            digest::check(
                Some(black_box(&content_digest)),
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
