//! Hostile requests at the partner, built from a real credential the wire tap captured but
//! withheld (so the partner has never seen it, and only the alteration can condemn it).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use keyhop_e2e::http::Request;
use keyhop_e2e::{Response, Topology};

const SCORE_PATH: &str = "/v1/risk/score";
const SCORE_BODY: &str = r#"{"customer":"c-1042","amount":100}"#;

fn unused_credential(topology: &Topology) -> Request {
    topology
        .capture_unused(&Request::post_json(SCORE_PATH, SCORE_BODY))
        .expect("a signed request the partner never saw")
}

fn assert_verdict(response: &Response, status: u16, reason: &str) {
    assert_eq!(
        (response.status, response.reason().as_deref()),
        (status, Some(reason)),
        "body: {}",
        response.text()
    );
}

/// Replaces one `name=value` parameter of the signature-input header.
fn with_signature_param(request: &Request, name: &str, value: &str) -> Request {
    let input = request
        .headers
        .get_str("signature-input")
        .expect("signature-input");
    let edited: Vec<String> = input
        .split(';')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if key == name => format!("{name}={value}"),
            _ => part.to_owned(),
        })
        .collect();
    let mut request = request.clone();
    request.headers.set("signature-input", edited.join(";"));
    request
}

#[test]
fn duplicated_identity_header_is_refused_as_duplicate_header() {
    let topology = Topology::start("dup-identity").expect("topology");
    let stolen = unused_credential(&topology);

    let identity = stolen.headers.get("keyhop-identity").unwrap().to_vec();
    let doubled = stolen.clone().header("keyhop-identity", identity);
    let response = topology.send_to_partner(&doubled).expect("call");

    assert_verdict(&response, 401, "duplicate_header");
    assert!(topology.risk_api.received().is_empty());
}

#[test]
fn second_signature_in_the_dictionary_is_refused_as_multiple_signatures() {
    let topology = Topology::start("two-signatures").expect("topology");
    let stolen = unused_credential(&topology);

    let signature = stolen.headers.get_str("signature").unwrap();
    let mut two = stolen.clone();
    two.headers
        .set("signature", format!("{signature}, other=:AAAA:"));
    let response = topology.send_to_partner(&two).expect("call");

    assert_verdict(&response, 401, "multiple_signatures");
}

#[test]
fn unknown_key_id_is_refused_as_unknown_key() {
    let topology = Topology::start("unknown-key").expect("topology");
    let stolen = unused_credential(&topology);

    let response = topology
        .send_to_partner(&with_signature_param(&stolen, "keyid", "\"portal-1999\""))
        .expect("call");

    assert_verdict(&response, 401, "unknown_key");
}

#[test]
fn altered_expiry_is_refused_as_bad_signature() {
    let topology = Topology::start("altered-expiry").expect("topology");
    let stolen = unused_credential(&topology);
    let expires: u64 = keyhop_e2e::signature_param(&stolen, "expires")
        .unwrap()
        .parse()
        .unwrap();

    // One more second of life is still within policy, but the signature covers the parameters.
    let response = topology
        .send_to_partner(&with_signature_param(
            &stolen,
            "expires",
            &(expires + 1).to_string(),
        ))
        .expect("call");

    assert_verdict(&response, 401, "bad_signature");
}

#[test]
fn non_utf8_identity_is_refused_and_not_forwarded() {
    let topology = Topology::start("non-utf8").expect("topology");
    let stolen = unused_credential(&topology);

    let mut hostile = stolen.clone();
    hostile.headers.set(
        "keyhop-identity",
        b"spiffe://finsphere.example/ns/portal/sa/\xff\xfe",
    );
    let response = topology.send_to_partner(&hostile).expect("call");

    // Either code fits the contract: the value is not text, so it is not a SPIFFE ID.
    let reason = response.reason();
    assert_eq!(response.status, 401, "body: {}", response.text());
    assert!(
        matches!(
            reason.as_deref(),
            Some("invalid_identity" | "invalid_header_value")
        ),
        "{reason:?}"
    );
    assert!(topology.risk_api.received().is_empty());
}

#[test]
fn oversized_body_is_refused_by_the_signer() {
    let topology = Topology::start("big-body").expect("topology");

    // Twice the configured max_body_bytes (1 MiB).
    let body = format!(r#"{{"blob":"{}"}}"#, "a".repeat(2 << 20));
    let response = topology
        .send_as_portal_web(&Request::post_json(SCORE_PATH, &body))
        .expect("call");

    // Envoy's own buffer limit (per_connection_buffer_limit_bytes, also 1 MiB by default) and
    // the filter's max_body_bytes race: either answers 413, and only the filter names a reason.
    assert_eq!(response.status, 413, "body: {}", response.text());
    let reason = response.reason();
    assert!(
        matches!(reason.as_deref(), None | Some("body_too_large")),
        "{reason:?}"
    );
    assert!(
        topology.tap.captured().is_empty(),
        "an unsigned request left the portal"
    );
}

#[test]
fn oversized_header_is_refused_before_the_filter() {
    let topology = Topology::start("big-header").expect("topology");
    let stolen = unused_credential(&topology);

    let hostile = stolen.clone().header("x-filler", "b".repeat(128 << 10));
    let response = topology.send_to_partner(&hostile).expect("call");

    // Envoy's own limit (max_request_headers_kb, 60 KiB by default) answers before the filter.
    assert_eq!(response.status, 431, "body: {}", response.text());
    assert!(topology.risk_api.received().is_empty());
}
