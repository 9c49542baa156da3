//! The keyhop filter module under the simulator: a signer and a verifier,
//! each its own simulated Envoy, with the signer's upstream request fed to
//! the verifier as its downstream request.
//!
//! The module comes from `KEYHOP_WASM` (the Makefile sets it to
//! `target/keyhop.wasm`, built by `scripts/build-wasm.sh`). Unset, these
//! tests print why and pass without running; set to a missing file, they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::OnceLock;
use std::time::Duration;

use keyhop_host_sim::abi::LogLevel;
use keyhop_host_sim::exchange::Forwarded;
use keyhop_host_sim::{Exchange, Host, HostConfig, Plugin, Request, Verdict};

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PORTAL: &str = "spiffe://finsphere.example/ns/portal/sa/portal-web";

const SIGN_CONFIG: &str = r#"{"mode":"sign","identity":"spiffe://finsphere.example/ns/portal/sa/portal-web",
 "audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
 "key":{"id":"portal-2026","secret_env":"KEYHOP_PORTAL_SECRET"},
 "lifetime_seconds":10,"max_body_bytes":1048576,"drop_headers":["x-api-key"]}"#;

const VERIFY_CONFIG: &str = r#"{"mode":"verify","audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
 "keys":[{"id":"portal-2026","secret_env":"KEYHOP_PORTAL_SECRET","alg":"hmac-sha256","trust_domains":["finsphere.example"]}],
 "max_age_seconds":30,"future_skew_seconds":5,"max_lifetime_seconds":30,"max_body_bytes":1048576,
 "verified_identity_header":"keyhop-verified-identity",
 "routes":[{"methods":["POST"],"path_prefix":"/v1/risk/","allow":["spiffe://finsphere.example/ns/portal/sa/portal-web"]}],
 "replay":{"shards":256,"entries_per_shard":256}}"#;

/// The compiled keyhop module, or `None` (with a printed reason) when
/// `KEYHOP_WASM` is unset. Compiled once for all tests in this file.
fn keyhop() -> Option<Plugin> {
    static PLUGIN: OnceLock<Option<Plugin>> = OnceLock::new();
    PLUGIN.get_or_init(compile_keyhop).clone()
}

fn compile_keyhop() -> Option<Plugin> {
    let Some(path) = std::env::var_os("KEYHOP_WASM") else {
        eprintln!("skipped: KEYHOP_WASM is not set (build with scripts/build-wasm.sh, then KEYHOP_WASM=target/keyhop.wasm)");
        return None;
    };
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("KEYHOP_WASM={} cannot be read: {e}", path.to_string_lossy()));
    Some(Plugin::compile(&wasm).unwrap_or_else(|e| panic!("keyhop module does not load: {e}")))
}

fn start(plugin: &Plugin, config: &str, workers: usize) -> Host {
    let config = HostConfig {
        plugin_configuration: config.as_bytes().to_vec(),
        env: vec![("KEYHOP_PORTAL_SECRET".to_owned(), SECRET.to_owned())],
        log_level: LogLevel::Info,
        ..HostConfig::default()
    };
    Host::start(plugin, config, workers).unwrap_or_else(|e| panic!("keyhop did not start: {e}"))
}

fn score_request(body: &str, extra: &[(&str, &str)]) -> Request {
    let mut headers = vec![
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "risk.partner.example"),
        (":path", "/v1/risk/score?v=2"),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    Request {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        body_chunks: vec![body.as_bytes().to_vec()],
        ..Request::default()
    }
}

/// The signer's upstream request, as the verifier's downstream request.
fn hop(forwarded: &Forwarded) -> Request {
    Request {
        headers: forwarded.headers.clone(),
        body_chunks: vec![forwarded.body.clone()],
        ..Request::default()
    }
}

fn signed(signer: &mut Host, request: &Request) -> Request {
    let exchange = signer.handle(0, request);
    assert_eq!(
        exchange.verdict,
        Verdict::Continued,
        "signer: {:?}",
        exchange.logs
    );
    hop(exchange.upstream.as_ref().unwrap())
}

fn header(pairs: &[(Vec<u8>, Vec<u8>)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k.as_slice() == name.as_bytes())
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn denied(exchange: &Exchange) -> (u32, String) {
    match &exchange.verdict {
        Verdict::LocalResponse(reply) => (
            reply.status,
            header(&reply.headers, "keyhop-reason").unwrap_or_default(),
        ),
        other => panic!("expected a local reply, got {other:?}"),
    }
}

#[test]
fn verify_refuses_an_unsigned_request() {
    let Some(plugin) = keyhop() else { return };
    let mut verifier = start(&plugin, VERIFY_CONFIG, 1);

    let exchange = verifier.handle(0, &score_request("{}", &[]));

    assert_eq!(denied(&exchange), (401, "missing_signature".to_owned()));
    assert_eq!(
        verifier.metrics()["keyhop.verify.deny.missing_signature"].value,
        1
    );
}

#[test]
fn a_signed_request_is_verified_and_stripped() {
    let Some(plugin) = keyhop() else { return };
    let mut signer = start(&plugin, SIGN_CONFIG, 1);
    let mut verifier = start(&plugin, VERIFY_CONFIG, 1);
    let request = score_request(
        r#"{"amount":10}"#,
        &[
            ("x-api-key", "legacy"),
            ("keyhop-verified-identity", "spiffe://evil/forged"),
        ],
    );

    let hop_request = signed(&mut signer, &request);
    assert_eq!(header(&hop_request.headers, "x-api-key"), None);
    assert_eq!(
        header(&hop_request.headers, "keyhop-identity").as_deref(),
        Some(PORTAL)
    );

    let exchange = verifier.handle(0, &hop_request);
    assert_eq!(exchange.verdict, Verdict::Continued, "{:?}", exchange.logs);
    let upstream = exchange.upstream.unwrap();
    assert_eq!(
        header(&upstream.headers, "keyhop-verified-identity").as_deref(),
        Some(PORTAL)
    );
    for gone in ["signature", "signature-input", "keyhop-identity"] {
        assert_eq!(
            header(&upstream.headers, gone),
            None,
            "{gone} must be removed"
        );
    }
    assert_eq!(upstream.body, br#"{"amount":10}"#);
    assert_eq!(verifier.metrics()["keyhop.verify.allow"].value, 1);
}

/// A header name that is not UTF-8 never reaches Envoy's filters (its codecs refuse one), but
/// the filter must not trust that: the proxy-wasm SDK's own header reader would panic on it
/// and trap the VM. keyhop reads the map itself, so both sides carry on, and the same worker
/// serves the next request.
#[test]
fn a_header_name_that_is_not_utf8_neither_traps_signer_nor_verifier() {
    let Some(plugin) = keyhop() else { return };
    let mut signer = start(&plugin, SIGN_CONFIG, 1);
    let mut verifier = start(&plugin, VERIFY_CONFIG, 1);
    let odd = |mut request: Request| {
        request.headers.push((b"x-\xff".to_vec(), b"1".to_vec()));
        request
    };

    let hop_request = odd(signed(&mut signer, &odd(score_request("{}", &[]))));
    let exchange = verifier.handle(0, &hop_request);
    assert_eq!(exchange.verdict, Verdict::Continued, "{:?}", exchange.logs);

    let next = signed(&mut signer, &score_request("{}", &[]));
    let exchange = verifier.handle(0, &next);
    assert_eq!(exchange.verdict, Verdict::Continued, "{:?}", exchange.logs);
    assert_eq!(verifier.metrics()["keyhop.verify.allow"].value, 2);
}

#[test]
fn a_replay_is_caught_on_another_worker() {
    let Some(plugin) = keyhop() else { return };
    let mut signer = start(&plugin, SIGN_CONFIG, 1);
    let mut verifier = start(&plugin, VERIFY_CONFIG, 2);
    let hop_request = signed(&mut signer, &score_request("{}", &[]));

    assert_eq!(verifier.handle(0, &hop_request).verdict, Verdict::Continued);
    let replayed = verifier.handle(1, &hop_request);

    assert_eq!(denied(&replayed), (401, "replay".to_owned()));
}

#[test]
fn a_changed_body_fails_the_digest() {
    let Some(plugin) = keyhop() else { return };
    let mut signer = start(&plugin, SIGN_CONFIG, 1);
    let mut verifier = start(&plugin, VERIFY_CONFIG, 1);
    let mut hop_request = signed(&mut signer, &score_request(r#"{"amount":10}"#, &[]));
    hop_request.body_chunks = vec![br#"{"amount":99}"#.to_vec()];

    assert_eq!(
        denied(&verifier.handle(0, &hop_request)),
        (401, "digest_mismatch".to_owned())
    );
}

#[test]
fn an_old_signature_expires() {
    let Some(plugin) = keyhop() else { return };
    let mut signer = start(&plugin, SIGN_CONFIG, 1);
    let mut verifier = start(&plugin, VERIFY_CONFIG, 1);
    let hop_request = signed(&mut signer, &score_request("{}", &[]));

    verifier.advance(Duration::from_secs(60));
    let (status, _) = denied(&verifier.handle(0, &hop_request));
    assert_eq!(status, 401);
}

#[test]
fn a_body_in_chunks_is_verified_whole() {
    let Some(plugin) = keyhop() else { return };
    let mut signer = start(&plugin, SIGN_CONFIG, 1);
    let mut verifier = start(&plugin, VERIFY_CONFIG, 1);
    let mut request = score_request("", &[]);
    request.body_chunks = vec![b"{\"a\":".to_vec(), b"1,".to_vec(), b"\"b\":2}".to_vec()];

    let mut hop_request = signed(&mut signer, &request);
    let body = hop_request.body_chunks.concat();
    hop_request.body_chunks = body.chunks(3).map(<[u8]>::to_vec).collect();

    assert_eq!(verifier.handle(0, &hop_request).verdict, Verdict::Continued);
}
