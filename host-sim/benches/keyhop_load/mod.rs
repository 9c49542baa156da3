//! The load both `benches/requests.rs` and `examples/verify_rate.rs` put through keyhop: the
//! demo's signer and verifier and one POST to the partner's risk API.

use keyhop_host_sim::abi::LogLevel;
use keyhop_host_sim::{HostConfig, Request};

const SECRET: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

pub const SIGN_CONFIG: &str = r#"{"mode":"sign","identity":"spiffe://finsphere.example/ns/portal/sa/portal-web",
 "audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
 "key":{"id":"portal-2026","secret_env":"KEYHOP_PORTAL_SECRET"},"lifetime_seconds":10}"#;

pub const VERIFY_CONFIG: &str = r#"{"mode":"verify","audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
 "keys":[{"id":"portal-2026","secret_env":"KEYHOP_PORTAL_SECRET","alg":"hmac-sha256","trust_domains":["finsphere.example"]}],
 "routes":[{"methods":["POST"],"path_prefix":"/v1/risk/","allow":["spiffe://finsphere.example/ns/portal/sa/portal-web"]}]}"#;

/// One POST with a small JSON body, as the portal sends it (before signing).
pub fn request() -> Request {
    let headers = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "risk.partner.example"),
        (":path", "/v1/risk/score"),
        ("content-type", "application/json"),
        ("x-request-id", "bench"),
    ];
    Request {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        body_chunks: vec![br#"{"account":"12345678","amount":1999}"#.to_vec()],
        ..Request::default()
    }
}

/// A host running `plugin_configuration`, with the root secret in the VM's environment and
/// Envoy's production log level (the audit line is not built).
pub fn config(plugin_configuration: &str) -> HostConfig {
    HostConfig {
        plugin_configuration: plugin_configuration.as_bytes().to_vec(),
        env: vec![("KEYHOP_PORTAL_SECRET".to_owned(), SECRET.to_owned())],
        log_level: LogLevel::Warn,
        ..HostConfig::default()
    }
}
