//! The worked example of `docs/PROTOCOL.md`, recomputed: every value the document shows must
//! be what this code produces, so a partner implementing the profile from the document alone
//! can check their implementation against it.
#![allow(clippy::expect_used, clippy::panic)]

use keyhop_filter::config::{Config, SignConfig};
use keyhop_filter::keys::{self, EpochKeyCache, RootSecret};
use keyhop_filter::message::{self, Component, HeaderMap, Request};
use keyhop_filter::profile::{self, NewCredential};
use keyhop_filter::sign;

/// The example's root secret: the 32 ASCII bytes below, base64 in the VM environment.
const ROOT: &[u8] = b"keyhop worked example root key!!";
const CREATED: i64 = 1_764_763_203;
const NONCE: [u8; 16] = *b"0123456789abcdef";
const BODY: &[u8] = b"{\"customer\":\"c-1042\",\"amount\":100}";

fn config() -> SignConfig {
    let json = r#"{"mode":"sign","identity":"spiffe://finsphere.example/ns/portal/sa/portal-web",
        "audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
        "key":{"id":"portal-2026","secret_env":"ROOT"},"lifetime_seconds":10}"#;
    let env = |_: &str| Some(base64_std(ROOT));
    match Config::from_json(json.as_bytes(), &env) {
        Ok(Config::Sign(c)) => c,
        other => panic!("{other:?}"),
    }
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every line the document must contain, in order of appearance.
fn expected_lines() -> Vec<String> {
    let config = config();
    let epoch = keys::epoch_of(CREATED, 10).expect("epoch");
    let root = RootSecret::new(ROOT.to_vec()).expect("root");
    let epoch_key = keys::derive_epoch_key(
        &root,
        "portal-2026",
        epoch,
        "finsphere.example",
        &config.audience,
    )
    .expect("derive");
    let request = Request {
        method: "POST",
        scheme: "http",
        authority: "risk.riskpartner.example",
        path_and_query: "/v1/risk/assess?currency=EUR",
        headers: HeaderMap::empty(),
    };
    let signed = sign::sign(
        &config,
        &mut EpochKeyCache::new(1),
        &request,
        BODY,
        CREATED,
        &NONCE,
    )
    .expect("sign");

    let params = profile::signature_params(&NewCredential {
        created: CREATED,
        expires: CREATED + 10,
        nonce: &NONCE,
        key_id: "portal-2026",
    })
    .expect("params");
    let covered = HeaderMap::from_iter([
        ("content-digest", &signed.content_digest),
        ("keyhop-identity", &signed.identity),
    ]);
    let components: Vec<Component> = profile::REQUIRED_COMPONENTS
        .iter()
        .map(|n| Component::from_name(n).expect("component"))
        .collect();
    let base = message::signature_base(
        &components,
        &params,
        &Request {
            headers: &covered,
            ..request
        },
    )
    .expect("base");

    let mut lines = vec![
        format!("root secret (base64): {}", base64_std(ROOT)),
        format!("epoch: {epoch}"),
        format!(
            "HKDF info (hex): {}",
            hex(&keys::hkdf_info(
                "portal-2026",
                epoch,
                "finsphere.example",
                &config.audience
            ))
        ),
        format!("epoch key (hex): {}", hex(&epoch_key)),
    ];
    lines.extend(
        String::from_utf8(base)
            .expect("utf-8")
            .lines()
            .map(str::to_string),
    );
    lines.push(format!("content-digest: {}", signed.content_digest));
    lines.push(format!("keyhop-identity: {}", signed.identity));
    lines.push(format!("signature-input: {}", signed.signature_input));
    lines.push(format!("signature: {}", signed.signature));
    lines
}

#[test]
fn protocol_md_worked_example_matches_the_code() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(doc_path).unwrap_or_default();
    let mut missing = Vec::new();
    for line in expected_lines() {
        if !doc.lines().any(|l| l.trim() == line) {
            missing.push(line);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/PROTOCOL.md lacks these lines of the worked example:\n{}",
        missing.join("\n")
    );
}

#[test]
#[ignore = "prints the worked example for docs/PROTOCOL.md"]
fn print_worked_example() {
    for line in expected_lines() {
        println!("{line}");
    }
}
