//! Every verdict of the demo, against real Envoys (V8) running the built module: what reaches
//! the risk API on an allow, and the status and `keyhop-reason` of each refusal.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyhop_e2e::topology::{generate_secret, Options, PORTAL_WEB_ID, REPORT_JOB_ID};
use keyhop_e2e::{signature_param, Echo, Request, Response, Topology};
use keyhop_e2e::{CREDENTIAL_HEADERS, VERIFIED_IDENTITY_HEADER};

const SCORE_PATH: &str = "/v1/risk/score";
const SCORE_BODY: &str = r#"{"customer":"c-1042","amount":100}"#;

fn score() -> Request {
    Request::post_json(SCORE_PATH, SCORE_BODY)
}

fn assert_verdict(response: &Response, status: u16, reason: &str) {
    assert_eq!(
        (response.status, response.reason().as_deref()),
        (status, Some(reason)),
        "body: {}",
        response.text()
    );
}

fn echo(response: &Response) -> Echo {
    assert_eq!(response.status, 200, "body: {}", response.text());
    Echo::from_response(response).expect("an allowed call is answered by the risk API")
}

#[test]
fn signed_call_reaches_risk_api_with_identity_and_without_credentials() {
    let topology = Topology::start("allow").expect("topology");

    let request = score().header("x-api-key", "legacy-key-0042");
    let (response, on_the_wire) = topology.capture(&request).expect("call");
    let seen = echo(&response);

    // On the wire between the Envoys: the full credential, and no legacy API key.
    for name in CREDENTIAL_HEADERS.iter().chain(&["content-digest"]) {
        assert!(
            on_the_wire.headers.contains(name),
            "{name} missing on the wire"
        );
    }
    assert_eq!(
        on_the_wire.headers.get_str("keyhop-identity").as_deref(),
        Some(PORTAL_WEB_ID)
    );
    assert!(!on_the_wire.headers.contains("x-api-key"));

    // At the risk API: the verified identity, the body intact, no credential.
    assert_eq!(seen.header_all(VERIFIED_IDENTITY_HEADER), [PORTAL_WEB_ID]);
    for name in CREDENTIAL_HEADERS.iter().chain(&["x-api-key"]) {
        assert_eq!(seen.header(name), None, "{name} reached the risk API");
    }
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("POST", SCORE_PATH)
    );
    assert_eq!(seen.body, SCORE_BODY);
}

#[test]
fn signed_get_with_query_and_empty_body_is_allowed() {
    let topology = Topology::start("allow-get").expect("topology");

    let response = topology
        .send_as_portal_web(&Request::get("/v1/health?detail=full"))
        .expect("call");

    let seen = echo(&response);
    assert_eq!(seen.header_all(VERIFIED_IDENTITY_HEADER), [PORTAL_WEB_ID]);
    assert_eq!(seen.target, "/v1/health?detail=full");
}

#[test]
fn forged_verified_identity_header_is_replaced() {
    let topology = Topology::start("forged-identity").expect("topology");

    let forged = "spiffe://riskpartner.example/ns/admin/sa/root";
    let response = topology
        .send_as_portal_web(&score().header(VERIFIED_IDENTITY_HEADER, forged))
        .expect("call");

    assert_eq!(
        echo(&response).header_all(VERIFIED_IDENTITY_HEADER),
        [PORTAL_WEB_ID]
    );
}

#[test]
fn forged_verified_identity_header_without_credential_does_not_pass() {
    let topology = Topology::start("forged-identity-direct").expect("topology");

    let request = score().header(VERIFIED_IDENTITY_HEADER, PORTAL_WEB_ID);
    let response = topology.send_to_partner(&request).expect("call");

    assert_verdict(&response, 401, "missing_signature");
    assert!(topology.risk_api.received().is_empty());
}

#[test]
fn captured_credential_replayed_is_refused_as_replay() {
    let topology = Topology::start("replay").expect("topology");
    let (first, stolen) = topology.capture(&score()).expect("call");
    assert_eq!(first.status, 200);

    let replayed = topology
        .send_raw_to_partner(&stolen.raw, &stolen.method)
        .expect("replay");

    assert_verdict(&replayed, 401, "replay");
    assert_eq!(topology.risk_api.received().len(), 1);
}

#[test]
fn captured_credential_on_another_path_is_refused_as_bad_signature() {
    let topology = Topology::start("other-path").expect("topology");
    let (_, stolen) = topology.capture(&score()).expect("call");

    let moved = stolen.target("/v1/risk/limits");
    let response = topology.send_to_partner(&moved).expect("call");

    assert_verdict(&response, 401, "bad_signature");
}

#[test]
fn captured_credential_with_tampered_body_is_refused_as_digest_mismatch() {
    let topology = Topology::start("tampered").expect("topology");
    let (_, stolen) = topology.capture(&score()).expect("call");

    let tampered = stolen.body(r#"{"customer":"c-1042","amount":999999}"#);
    let response = topology.send_to_partner(&tampered).expect("call");

    assert_verdict(&response, 401, "digest_mismatch");
}

#[test]
fn captured_credential_after_expiry_is_refused_as_expired() {
    let topology = Topology::start("expired").expect("topology");
    let stolen = topology.capture_unused(&score()).expect("call");

    let expires: u64 = signature_param(&stolen, "expires")
        .and_then(|v| v.parse().ok())
        .expect("signature-input has expires");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    thread::sleep(Duration::from_secs((expires + 1).saturating_sub(now)));

    // Never seen by the partner, so only its age can condemn it.
    let response = topology
        .send_raw_to_partner(&stolen.raw, &stolen.method)
        .expect("call");

    assert_verdict(&response, 401, "expired");
}

#[test]
fn caller_outside_route_policy_is_refused_as_policy_denied() {
    let topology = Topology::start("policy").expect("topology");

    let response = topology.send_as_report_job(&score()).expect("call");

    assert_verdict(&response, 403, "policy_denied");
    assert!(topology.risk_api.received().is_empty());
}

#[test]
fn trust_domain_wide_route_allows_another_workload() {
    let topology = Topology::start("trust-domain-route").expect("topology");

    let response = topology
        .send_as_report_job(&Request::get("/v1/health"))
        .expect("call");

    assert_eq!(
        echo(&response).header_all(VERIFIED_IDENTITY_HEADER),
        [REPORT_JOB_ID]
    );
}

#[test]
fn request_without_credential_is_refused_as_missing_signature() {
    let topology = Topology::start("no-credential").expect("topology");

    let response = topology.send_to_partner(&score()).expect("call");

    assert_verdict(&response, 401, "missing_signature");
}

#[test]
fn refusal_is_a_json_local_reply_naming_the_reason() {
    let topology = Topology::start("local-reply").expect("topology");

    let response = topology.send_to_partner(&score()).expect("call");

    assert_eq!(
        response.headers.get_str("content-type").as_deref(),
        Some("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON body");
    assert_eq!(body, serde_json::json!({ "error": "missing_signature" }));
}

#[test]
fn credential_from_a_portal_with_another_secret_is_refused_as_bad_signature() {
    let mut options = Options::new("other-secret");
    options.partner_secret = Some(generate_secret().unwrap());
    let topology = Topology::start_with(options).expect("topology");

    let response = topology.send_as_portal_web(&score()).expect("call");

    // The partner refuses with bad_signature. A caller that did not prove who it is gets an
    // unsigned refusal, and the portal, which checks every reply on /v1/, answers 502.
    assert_verdict(&response, 502, "response_unsigned");
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = topology.partner.audit_lines();
        if !lines.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let reasons: Vec<_> = lines
        .iter()
        .filter_map(|l| l.get("reason").cloned())
        .collect();
    assert_eq!(reasons, vec![serde_json::Value::from("bad_signature")]);
}

#[test]
fn escaped_slash_in_path_is_rejected_before_the_filter() {
    let topology = Topology::start("escaped-slash").expect("topology");

    let response = topology
        .send_as_portal_web(&Request::post_json("/v1/risk%2Fscore", SCORE_BODY))
        .expect("call");

    assert_eq!(response.status, 400);
    assert!(topology.tap.captured().is_empty());
}

#[test]
fn each_decision_writes_one_audit_line() {
    let topology = Topology::start("audit").expect("topology");
    let (allowed, stolen) = topology.capture(&score()).expect("call");
    let replayed = topology
        .send_raw_to_partner(&stolen.raw, &stolen.method)
        .expect("replay");
    assert_eq!((allowed.status, replayed.status), (200, 401));

    // The log is written asynchronously; give it a moment.
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = topology.partner.audit_lines();
        if lines.len() >= 2 {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }

    let field = |line: &serde_json::Value, key: &str| line.get(key).cloned().unwrap_or_default();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let (allow, deny) = (&lines[0], &lines[1]);
    assert_eq!(field(allow, "mode"), "verify");
    assert_eq!(field(allow, "decision"), "allow");
    assert_eq!(field(allow, "reason"), "ok");
    assert_eq!(field(allow, "status"), serde_json::Value::Null);
    assert_eq!(field(allow, "identity"), PORTAL_WEB_ID);
    assert_eq!(field(allow, "key_id"), "portal-2026");
    assert_eq!(field(allow, "path"), SCORE_PATH);
    assert_eq!(field(deny, "decision"), "deny");
    assert_eq!(field(deny, "reason"), "replay");
    assert_eq!(field(deny, "status"), 401);
}
