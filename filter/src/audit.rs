//! One structured audit line per decision.
//!
//! The line names the decision, the reason code, who claimed to call, with which key and
//! epoch, and what was called. It never holds a secret, a signature, a body or a query string,
//! and every request-supplied value is cut short and JSON-escaped.

use serde::Serialize;

/// The longest request-supplied value copied into a line.
const FIELD_MAX: usize = 256;

/// The fields of an audit line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditLine {
    /// Always `"audit"`: lets a log pipeline pick keyhop's lines out.
    pub keyhop: &'static str,
    /// `sign` or `verify`.
    pub mode: &'static str,
    /// `allow`, `deny` or `signed`.
    pub decision: &'static str,
    /// `ok` or the reason code.
    pub reason: &'static str,
    /// The HTTP status of a refusal; `null` when the request went on (its status is the
    /// upstream's, not known yet).
    pub status: Option<u16>,
    /// The claimed (on deny) or verified (on allow) SPIFFE ID.
    pub identity: Option<String>,
    /// The key id.
    pub key_id: Option<String>,
    /// The key epoch.
    pub epoch: Option<u64>,
    /// `:method`.
    pub method: String,
    /// `:authority`.
    pub authority: String,
    /// The path, without the query.
    pub path: String,
    /// `x-request-id`.
    pub request_id: Option<String>,
}

/// The longest key id copied into a line.
pub const KEY_ID_MAX: usize = 64;

/// Cuts a request-supplied value to a bounded length, on a character boundary.
pub fn bounded(value: &str) -> String {
    bounded_to(value, FIELD_MAX)
}

/// Cuts a request-supplied value to at most `max` characters.
pub fn bounded_to(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

impl AuditLine {
    /// The JSON text of the line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"keyhop":"audit","decision":"unknown"}"#.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_bounded() {
        let line = AuditLine {
            keyhop: "audit",
            mode: "verify",
            decision: "deny",
            reason: "replay",
            status: Some(401),
            path: bounded(&format!("/a\"\n{}", "x".repeat(1000))),
            ..AuditLine::default()
        };
        let json = line.to_json();
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(parsed["reason"], "replay");
        assert_eq!(
            parsed["path"].as_str().expect("path").chars().count(),
            FIELD_MAX
        );
        assert!(!json.contains('\n'));
    }
}
