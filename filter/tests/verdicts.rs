//! Sign → verify, natively: every verdict the verifier can reach from the headers and body.
#![allow(clippy::expect_used, clippy::panic)]

use keyhop_filter::config::{Config, SignConfig, VerifyConfig};
use keyhop_filter::keys::EpochKeyCache;
use keyhop_filter::message::{HeaderMap, Request};
use keyhop_filter::replay::MemoryStore;
use keyhop_filter::sign::{self, Signed};
use keyhop_filter::verify::{self, Facts, Verified};
use keyhop_filter::Reason;

const PORTAL_SECRET: &str = "a2V5aG9wLXRlc3QtcG9ydGFsLXJvb3Qtc2VjcmV0LTMyYg==";
const OTHER_SECRET: &str = "b3RoZXItcm9vdC1zZWNyZXQtZm9yLWtleWhvcC10ZXN0cw==";
const NOW: i64 = 1_764_763_200;
const WEB: &str = "spiffe://finsphere.example/ns/portal/sa/portal-web";
const BATCH: &str = "spiffe://finsphere.example/ns/batch/sa/report-job";

fn env(name: &str) -> Option<String> {
    match name {
        "PORTAL" => Some(PORTAL_SECRET.to_string()),
        "OTHER" => Some(OTHER_SECRET.to_string()),
        _ => None,
    }
}

fn sign_config(identity: &str, secret_env: &str, audience: &str) -> SignConfig {
    let json = format!(
        r#"{{"mode":"sign","identity":"{identity}","audience":"{audience}","hop_seconds":10,
            "key":{{"id":"portal-2026","secret_env":"{secret_env}"}},"lifetime_seconds":10}}"#
    );
    match Config::from_json(json.as_bytes(), &env) {
        Ok(Config::Sign(c)) => c,
        other => panic!("sign config: {other:?}"),
    }
}

fn verify_config() -> VerifyConfig {
    let json = r#"{"mode":"verify","audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
        "keys":[{"id":"portal-2026","secret_env":"PORTAL","trust_domains":["finsphere.example"]}],
        "max_age_seconds":30,"future_skew_seconds":5,"max_lifetime_seconds":30,
        "routes":[{"methods":["POST"],"path_prefix":"/v1/risk/","allow":["spiffe://finsphere.example/ns/portal/sa/portal-web"]},
                  {"path_exact":"/v1/health","allow":["spiffe://finsphere.example/*"]}]}"#;
    match Config::from_json(json.as_bytes(), &env) {
        Ok(Config::Verify(c)) => c,
        other => panic!("verify config: {other:?}"),
    }
}

/// A request as it arrives at the verifier.
#[derive(Clone)]
struct Wire {
    method: String,
    authority: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(mut self, name: &str, value: &str) -> Wire {
        self.headers.retain(|(n, _)| n != name);
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    fn without(mut self, name: &str) -> Wire {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    fn get(&self, name: &str) -> String {
        let value = self
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        String::from_utf8(value).expect("utf-8")
    }
}

fn signed_with(
    config: &SignConfig,
    method: &str,
    path: &str,
    body: &[u8],
    at: i64,
    nonce: u8,
) -> Wire {
    let request = Request {
        method,
        scheme: "http",
        authority: "risk.riskpartner.example",
        path_and_query: path,
        headers: HeaderMap::empty(),
    };
    let mut keys = EpochKeyCache::new(4);
    let Signed {
        content_digest,
        identity,
        signature_input,
        signature,
        ..
    } = sign::sign(config, &mut keys, &request, body, at, &[nonce; 16]).expect("signed");
    Wire {
        method: method.to_string(),
        authority: "risk.riskpartner.example".to_string(),
        path: path.to_string(),
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("content-digest".into(), content_digest.into_bytes()),
            ("keyhop-identity".into(), identity.into_bytes()),
            ("signature-input".into(), signature_input.into_bytes()),
            ("signature".into(), signature.into_bytes()),
        ],
        body: body.to_vec(),
    }
}

fn signed(body: &[u8], nonce: u8) -> Wire {
    let config = sign_config(WEB, "PORTAL", "spiffe://riskpartner.example/edge");
    signed_with(
        &config,
        "POST",
        "/v1/risk/assess?currency=EUR",
        body,
        NOW,
        nonce,
    )
}

fn verify_at(
    config: &VerifyConfig,
    store: &MemoryStore,
    wire: &Wire,
    now: i64,
) -> Result<Verified, Reason> {
    let headers: HeaderMap = wire.headers.iter().cloned().collect();
    let request = Request {
        method: &wire.method,
        scheme: "http",
        authority: &wire.authority,
        path_and_query: &wire.path,
        headers: &headers,
    };
    let mut facts = Facts::default();
    let pending = verify::check_headers(config, &request, now, &mut facts)?;
    let mut keys = EpochKeyCache::new(4);
    verify::finish(config, &mut keys, pending, &request, &wire.body, store)
}

fn verdict(wire: &Wire) -> Result<Verified, Reason> {
    let config = verify_config();
    let store = MemoryStore::default();
    config.replay.init(&store).expect("init");
    verify_at(&config, &store, wire, NOW + 1)
}

const BODY: &[u8] = br#"{"customer":"c-1042","amount":100}"#;

#[test]
fn a_signed_request_verifies_once_and_then_is_a_replay() {
    let config = verify_config();
    let store = MemoryStore::default();
    config.replay.init(&store).expect("init");
    let wire = signed(BODY, 1);

    let verified = verify_at(&config, &store, &wire, NOW + 1).expect("first use verifies");
    assert_eq!(verified.identity, WEB);
    assert_eq!(verified.key_id, "portal-2026");
    assert_eq!(verified.epoch, (NOW / 10) as u64);
    assert_eq!(
        verify_at(&config, &store, &wire, NOW + 2),
        Err(Reason::Replay)
    );
    assert!(verify_at(&config, &store, &signed(BODY, 2), NOW + 2).is_ok());
}

#[test]
fn tampering_with_any_covered_component_breaks_the_signature() {
    let wire = signed(BODY, 3);
    let mut method = wire.clone();
    method.method = "PUT".into();
    let mut authority = wire.clone();
    authority.authority = "risk.riskpartner.example:8443".into();
    let mut path = wire.clone();
    path.path = "/v1/risk/transfer?currency=EUR".into();
    let mut query = wire.clone();
    query.path = "/v1/risk/assess?currency=USD".into();
    for tampered in [method, authority, path, query] {
        assert_eq!(verdict(&tampered), Err(Reason::BadSignature));
    }
    let batch = wire.clone().header("keyhop-identity", BATCH);
    assert_eq!(verdict(&batch), Err(Reason::BadSignature));
}

#[test]
fn authority_case_and_default_port_do_not_matter() {
    let mut wire = signed(BODY, 4);
    wire.authority = "RISK.riskpartner.example:80".into();
    assert!(verdict(&wire).is_ok());
}

#[test]
fn the_body_is_hashed_by_the_verifier_not_trusted_from_the_header() {
    let mut tampered = signed(BODY, 5);
    tampered.body = br#"{"customer":"c-1042","amount":900}"#.to_vec();
    assert_eq!(verdict(&tampered), Err(Reason::DigestMismatch));
    assert_eq!(
        verdict(&signed(BODY, 6).without("content-digest")),
        Err(Reason::MissingDigest)
    );
    assert_eq!(
        verdict(&signed(BODY, 7).header("content-digest", "sha-256=:AAAA:")),
        Err(Reason::MalformedDigest)
    );
}

#[test]
fn missing_or_malformed_credentials_are_refused() {
    assert_eq!(
        verdict(&signed(BODY, 8).without("signature")),
        Err(Reason::MissingSignature)
    );
    assert_eq!(
        verdict(&signed(BODY, 8).without("signature-input")),
        Err(Reason::MissingSignature)
    );
    assert_eq!(
        verdict(&signed(BODY, 8).header("signature", "keyhop=:AAAA:")),
        Err(Reason::MalformedSignature)
    );
    assert_eq!(
        verdict(&signed(BODY, 8).header("signature-input", "keyhop=(")),
        Err(Reason::MalformedSignature)
    );
    let mut doubled = signed(BODY, 8);
    let copy = doubled.get("signature");
    doubled
        .headers
        .push(("signature".into(), copy.into_bytes()));
    assert_eq!(verdict(&doubled), Err(Reason::DuplicateHeader));
    assert_eq!(
        verdict(&signed(BODY, 8).without("keyhop-identity")),
        Err(Reason::MissingIdentity)
    );
    assert_eq!(
        verdict(&signed(BODY, 8).header("keyhop-identity", "portal-web")),
        Err(Reason::InvalidIdentity)
    );
}

#[test]
fn parameters_are_checked_against_the_pinned_key() {
    let wire = signed(BODY, 9);
    let input = wire.get("signature-input");
    let swap = |from: &str, to: &str| {
        wire.clone()
            .header("signature-input", &input.replace(from, to))
    };
    assert_eq!(
        verdict(&swap("portal-2026", "portal-2025")),
        Err(Reason::UnknownKey)
    );
    assert_eq!(
        verdict(&swap("hmac-sha256", "ed25519")),
        Err(Reason::AlgorithmMismatch)
    );
    assert_eq!(
        verdict(&swap("keyhop-v1", "keyhop-v0")),
        Err(Reason::WrongTag)
    );
    assert_eq!(
        verdict(&swap(r#" "@query""#, "")),
        Err(Reason::MissingComponent)
    );
}

#[test]
fn time_window_is_asymmetric_and_lifetime_capped() {
    let config = sign_config(WEB, "PORTAL", "spiffe://riskpartner.example/edge");
    let at =
        |created: i64, nonce: u8| signed_with(&config, "POST", "/v1/risk/a", b"", created, nonce);
    let verify_config = verify_config();
    let store = MemoryStore::default();
    verify_config.replay.init(&store).expect("init");
    let check = |wire: &Wire| verify_at(&verify_config, &store, wire, NOW);

    assert!(
        check(&at(NOW + 5, 1)).is_ok(),
        "5 s ahead is within the skew"
    );
    assert_eq!(check(&at(NOW + 6, 2)), Err(Reason::CreatedInFuture));
    assert!(
        check(&at(NOW - 9, 3)).is_ok(),
        "9 s old with a 10 s lifetime"
    );
    assert_eq!(
        check(&at(NOW - 10, 4)),
        Err(Reason::Expired),
        "expires == now"
    );
    let long = at(NOW, 5);
    let input = long.get("signature-input").replace(
        &format!("expires={}", NOW + 10),
        &format!("expires={}", NOW + 31),
    );
    assert_eq!(
        check(&long.header("signature-input", &input)),
        Err(Reason::LifetimeTooLong)
    );
}

#[test]
fn keys_are_bound_to_audience_secret_and_trust_domain() {
    let wrong_audience = sign_config(WEB, "PORTAL", "spiffe://elsewhere.example/edge");
    let wire = signed_with(&wrong_audience, "POST", "/v1/risk/a", BODY, NOW, 1);
    assert_eq!(verdict(&wire), Err(Reason::BadSignature));

    let wrong_secret = sign_config(WEB, "OTHER", "spiffe://riskpartner.example/edge");
    let wire = signed_with(&wrong_secret, "POST", "/v1/risk/a", BODY, NOW, 2);
    assert_eq!(verdict(&wire), Err(Reason::BadSignature));

    let outsider = sign_config(
        "spiffe://evil.example/ns/x/sa/y",
        "PORTAL",
        "spiffe://riskpartner.example/edge",
    );
    let wire = signed_with(&outsider, "POST", "/v1/risk/a", BODY, NOW, 3);
    assert_eq!(verdict(&wire), Err(Reason::IdentityNotVouched));
}

#[test]
fn route_policy_applies_to_verified_callers() {
    let batch = sign_config(BATCH, "PORTAL", "spiffe://riskpartner.example/edge");
    assert_eq!(
        verdict(&signed_with(
            &batch,
            "POST",
            "/v1/risk/assess",
            BODY,
            NOW,
            1
        )),
        Err(Reason::PolicyDenied)
    );
    assert!(verdict(&signed_with(&batch, "GET", "/v1/health", b"", NOW, 2)).is_ok());
    let web = sign_config(WEB, "PORTAL", "spiffe://riskpartner.example/edge");
    assert_eq!(
        verdict(&signed_with(&web, "DELETE", "/v1/risk/assess", b"", NOW, 3)),
        Err(Reason::NoMatchingPolicy)
    );
}
