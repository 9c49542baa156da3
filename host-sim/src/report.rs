//! Human-readable output of a scenario run.

use std::fmt::Write as _;

use crate::abi::Pairs;
use crate::exchange::{text, Verdict};
use crate::scenario::{describe, Outcome, RequestResult};

/// The whole run as text: start-up logs, then one block per request, then
/// every metric and a summary line.
pub fn render(outcome: &Outcome) -> String {
    let mut out = String::new();
    if !outcome.host_logs.is_empty() {
        out.push_str("host log (start-up, ticks, queues):\n");
        for line in &outcome.host_logs {
            let _ = writeln!(out, "  [{}] w{} {}", line.level, line.worker, line.message);
        }
    }
    for result in &outcome.requests {
        render_request(&mut out, result);
    }

    out.push_str("metrics:\n");
    let mut zero = 0;
    for (name, metric) in &outcome.metrics {
        if metric.value == 0 {
            zero += 1;
            continue;
        }
        let _ = writeln!(out, "  {name} ({:?}) = {}", metric.kind, metric.value);
    }
    if zero > 0 {
        let _ = writeln!(out, "  ({zero} more defined, all 0)");
    }
    let failed = outcome.failed();
    let passed = outcome.requests.len() - failed;
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    out
}

fn render_request(out: &mut String, result: &RequestResult) {
    let exchange = &result.exchange;
    let _ = writeln!(
        out,
        "#{} {} (worker {}, context {}): {}",
        result.index,
        result.name,
        exchange.worker,
        exchange.context_id,
        describe(&exchange.verdict)
    );
    match &exchange.verdict {
        Verdict::LocalResponse(reply) => {
            if !reply.details.is_empty() {
                let _ = writeln!(out, "  details: {}", reply.details);
            }
            pairs(out, "  reply header", &reply.headers);
            if !reply.body.is_empty() {
                let _ = writeln!(out, "  reply body: {}", text(&reply.body).trim_end());
            }
        }
        Verdict::Failed { error, .. } => {
            let _ = writeln!(out, "  error: {}", error.replace('\n', "\n         "));
        }
        _ => {}
    }
    pairs(out, "  + added", &exchange.headers_added);
    pairs(out, "  - removed", &exchange.headers_removed);
    if let Some(upstream) = &exchange.upstream {
        out.push_str("  upstream receives:\n");
        pairs(out, "   ", &upstream.headers);
        if !upstream.body.is_empty() {
            let _ = writeln!(
                out,
                "    body ({} bytes): {}",
                upstream.body.len(),
                text(&upstream.body)
            );
        }
        pairs(out, "    trailer", &upstream.trailers);
    }
    if let Some(downstream) = &exchange.downstream {
        let _ = writeln!(out, "  client receives: {}", downstream.status);
    }
    for call in &exchange.calls {
        let _ = writeln!(
            out,
            "  {} call #{} to {} {}",
            call.kind, call.token, call.upstream, call.target
        );
    }
    for line in &exchange.logs {
        let _ = writeln!(out, "  log [{}] {}", line.level, line.message);
    }
    for (name, value) in &result.metrics_changed {
        let _ = writeln!(out, "  metric {name} = {value}");
    }
    for note in &exchange.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    for failure in &result.failures {
        let _ = writeln!(out, "  FAILED: {failure}");
    }
}

fn pairs(out: &mut String, label: &str, pairs: &Pairs) {
    for (name, value) in pairs {
        let _ = writeln!(out, "{label} {}: {}", text(name), text(value));
    }
}
