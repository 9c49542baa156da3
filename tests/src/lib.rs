//! keyhop end to end: the demo topology with real Envoy processes on loopback, and the pieces
//! the e2e tests and the demo drive it with.
//!
//! - [`topology`]: start a portal Envoy (sign), a wire tap, a partner Envoy (verify) and a risk
//!   API on fresh ports, from the configs in `envoy/`; everything stops when dropped.
//! - [`envoy`]: one Envoy process (admin API, stats, log, audit lines).
//! - [`upstream`]: the in-process risk API, which echoes what reached it.
//! - [`tap`]: the eavesdropper between the two Envoys, for stealing real credentials.
//! - [`http`]: an HTTP/1.1 client and framing with byte-level control, for hostile inputs.
//!
//! This crate is a harness, not a library for production use: it trusts its peers to be the
//! processes it started, and reads whole messages into memory.

pub mod envoy;
pub mod http;
pub mod tap;
pub mod topology;
pub mod upstream;

pub use http::{Request, Response};
pub use topology::{Options, Topology};
pub use upstream::Echo;

/// The credential headers the signer adds and the verifier must strip before the risk API.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["signature", "signature-input", "keyhop-identity"];

/// The header through which the verifier passes the caller's identity upstream.
pub const VERIFIED_IDENTITY_HEADER: &str = "keyhop-verified-identity";

/// A parameter of the `keyhop` member of a request's `signature-input` header, such as
/// `expires` or `nonce` (quotes removed).
pub fn signature_param(request: &Request, name: &str) -> Option<String> {
    let input = request.headers.get_str("signature-input")?;
    let prefix = format!("{name}=");
    input
        .split(';')
        .skip(1)
        .find_map(|param| param.trim().strip_prefix(&prefix))
        .map(|value| value.trim_matches('"').to_owned())
}
