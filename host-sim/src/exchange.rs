//! What goes into a simulated HTTP exchange and what comes out of it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::abi::{LogLevel, Pairs};

/// A downstream request as the filter chain receives it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Headers in arrival order, pseudo-headers (`:method`, `:path`,
    /// `:authority`, `:scheme`) first as Envoy presents them.
    pub headers: Pairs,
    /// Body as the chunks in which it arrives; empty for no body.
    pub body_chunks: Vec<Vec<u8>>,
    /// Request trailers; empty for none.
    pub trailers: Pairs,
    /// Properties for this request only (dotted paths such as
    /// `source.address`), on top of the host-wide ones.
    pub properties: BTreeMap<String, Vec<u8>>,
    /// What the upstream answers if the request reaches it.
    pub response: Response,
}

/// An upstream response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Pairs,
    pub body_chunks: Vec<Vec<u8>>,
    pub trailers: Pairs,
}

impl Default for Response {
    fn default() -> Self {
        Response {
            status: 200,
            headers: Vec::new(),
            body_chunks: Vec::new(),
            trailers: Vec::new(),
        }
    }
}

/// A reply the filter (or the host, on a guest failure) sent instead of
/// forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalResponse {
    pub status: u32,
    pub details: String,
    #[serde(serialize_with = "serialize_pairs")]
    pub headers: Pairs,
    #[serde(serialize_with = "serialize_bytes")]
    pub body: Vec<u8>,
    pub grpc_status: i32,
}

/// How the filter decided the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Verdict {
    /// The request went upstream.
    Continued,
    /// The filter answered with `proxy_send_local_response`.
    LocalResponse(LocalResponse),
    /// The filter paused the request and never resumed it; Envoy would hold
    /// the stream until its timeout.
    Paused { phase: String },
    /// The filter closed the stream (`proxy_close_stream`); Envoy resets it.
    Reset,
    /// The guest trapped or its VM had already failed. Envoy with
    /// `failure_policy: FAIL_CLOSED` answers 503, as `local_response` says.
    Failed {
        error: String,
        local_response: LocalResponse,
    },
}

impl Verdict {
    /// The status the downstream client sees from a local reply or failure.
    pub fn local_status(&self) -> Option<u32> {
        match self {
            Verdict::LocalResponse(reply) => Some(reply.status),
            Verdict::Failed { local_response, .. } => Some(local_response.status),
            _ => None,
        }
    }
}

/// The request as the upstream receives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forwarded {
    #[serde(serialize_with = "serialize_pairs")]
    pub headers: Pairs,
    #[serde(serialize_with = "serialize_bytes")]
    pub body: Vec<u8>,
    #[serde(serialize_with = "serialize_pairs")]
    pub trailers: Pairs,
}

/// The response as the downstream client receives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub status: u32,
    #[serde(serialize_with = "serialize_pairs")]
    pub headers: Pairs,
    #[serde(serialize_with = "serialize_bytes")]
    pub body: Vec<u8>,
}

/// One line the guest logged (through `proxy_log` or WASI stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub worker: usize,
    pub context_id: u32,
    pub message: String,
}

/// An outgoing call the guest made (`proxy_http_call`, `proxy_grpc_call`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    pub kind: &'static str,
    pub upstream: String,
    /// For gRPC, `service/method`; for HTTP, the `:path`.
    pub target: String,
    pub token: u32,
    #[serde(serialize_with = "serialize_pairs")]
    pub headers: Pairs,
    #[serde(serialize_with = "serialize_bytes")]
    pub body: Vec<u8>,
}

/// Everything observable about one request through the filter.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub worker: usize,
    pub context_id: u32,
    pub verdict: Verdict,
    /// What the upstream received; `None` unless the verdict is `Continued`.
    pub upstream: Option<Forwarded>,
    /// Header entries the upstream got that the downstream did not send.
    #[serde(serialize_with = "serialize_pairs")]
    pub headers_added: Pairs,
    /// Header entries the downstream sent that the upstream did not get.
    #[serde(serialize_with = "serialize_pairs")]
    pub headers_removed: Pairs,
    /// What the downstream client received.
    pub downstream: Option<Delivered>,
    pub logs: Vec<LogLine>,
    pub calls: Vec<CallRecord>,
    /// Host observations, such as changes Envoy would have ignored.
    pub notes: Vec<String>,
}

impl Exchange {
    /// An exchange with `verdict` and nothing observed yet: no upstream request, no response,
    /// no header changes, logs, calls or notes.
    pub fn new(worker: usize, context_id: u32, verdict: Verdict) -> Exchange {
        Exchange {
            worker,
            context_id,
            verdict,
            upstream: None,
            headers_added: Vec::new(),
            headers_removed: Vec::new(),
            downstream: None,
            logs: Vec::new(),
            calls: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Lossy text for bytes a report shows.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn serialize_pairs<S: serde::Serializer>(pairs: &Pairs, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(pairs.len()))?;
    for (name, value) in pairs {
        seq.serialize_element(&(text(name), text(value)))?;
    }
    seq.end()
}

fn serialize_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&text(bytes))
}

/// Entries of `after` not matched one-for-one in `before` (a multiset
/// difference, so a duplicated header counts twice).
pub fn pairs_minus(after: &Pairs, before: &Pairs) -> Pairs {
    // Entries both lists start with would be matched to each other by the
    // search below; skipping them keeps the usual case (a few headers added
    // or removed at the end) from comparing every pair with every other.
    let common = after.iter().zip(before).take_while(|(a, b)| a == b).count();
    let after = after.get(common..).unwrap_or_default();
    let before = before.get(common..).unwrap_or_default();

    let mut matched = vec![false; before.len()];
    let mut out = Vec::new();
    for entry in after {
        let slot = before
            .iter()
            .zip(matched.iter_mut())
            .find(|(candidate, used)| !**used && *candidate == entry);
        match slot {
            Some((_, used)) => *used = true,
            None => out.push(entry.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::tests::pairs;

    #[test]
    fn pairs_minus_is_a_multiset_difference_in_order() {
        let before = pairs(&[("a", "1"), ("x", "1"), ("x", "1"), ("b", "2")]);
        let after = pairs(&[("a", "1"), ("x", "1"), ("c", "3"), ("b", "2"), ("x", "2")]);
        assert_eq!(
            pairs_minus(&after, &before),
            pairs(&[("c", "3"), ("x", "2")])
        );
        assert_eq!(pairs_minus(&before, &after), pairs(&[("x", "1")]));
        assert_eq!(pairs_minus(&before, &before), Pairs::new());
        assert_eq!(pairs_minus(&before, &Pairs::new()), before);
    }
}
