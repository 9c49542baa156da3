//! Scenario files: parsing, running and checking expectations.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::path::Path;

use common::Wat;
use keyhop_host_sim::scenario::{Scenario, ScenarioError};
use keyhop_host_sim::{Plugin, Verdict};

/// Denies requests without `authorization` (401, with a reason header),
/// otherwise removes it and adds `x-user`; counts both outcomes.
fn gatekeeper() -> Plugin {
    let mut w = Wat::new();
    let reply_headers =
        keyhop_host_sim::abi::encode_pairs(&[(b"x-reason".to_vec(), b"no-auth".to_vec())]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (call $get_header (i32.const 0) {auth} (i32.const 0) (i32.const 4))
               (then
                 (drop (call $define_metric (i32.const 0) {denied} (i32.const 8)))
                 (drop (call $increment_metric (i32.load (i32.const 8)) (i64.const 1)))
                 (drop (call $local_response (i32.const 401) {details} {reply} {reply_headers} (i32.const -1)))
                 (return (i32.const 1))))
             (drop (call $remove_header (i32.const 0) {auth}))
             (drop (call $add_header (i32.const 0) {user} {alice}))
             (drop (call $define_metric (i32.const 0) {allowed} (i32.const 8)))
             (drop (call $increment_metric (i32.load (i32.const 8)) (i64.const 1)))
             (i32.const 0))"#,
        auth = w.s("authorization"),
        denied = w.s("gate.denied"),
        allowed = w.s("gate.allowed"),
        details = w.s("no_auth"),
        reply = w.s("{\"error\":\"no-auth\"}"),
        reply_headers = w.bytes(&reply_headers),
        user = w.s("x-user"),
        alice = w.s("alice"),
    );
    Plugin::compile(w.module(&body).as_bytes()).unwrap()
}

const SCENARIO: &str = r#"{
  "seed": 1,
  "workers": 2,
  "requests": [
    { "name": "no credentials",
      "expect": { "continued": false, "status": 401,
                  "response_headers": { "x-reason": "no-auth" },
                  "metrics": { "gate.denied": 1 } } },
    { "name": "with credentials", "worker": 1, "advance_seconds": 1.5,
      "method": "POST", "path": "/things",
      "headers": [["authorization", "Bearer x"], ["x-dup", "1"], ["x-dup", "2"]],
      "body": { "base64": "aGVsbG8=" },
      "response": { "status": 201, "headers": { "x-from": "upstream" } },
      "expect": { "continued": true, "status": 201,
                  "upstream_headers": { "x-user": "alice", "x-dup": "1" },
                  "headers_present": ["x-request-id"],
                  "headers_absent": ["authorization"],
                  "response_headers": { "x-from": "upstream" },
                  "metrics": { "gate.allowed": 1, "gate.denied": 1 } } }
  ]
}"#;

#[test]
fn a_scenario_runs_and_its_expectations_hold() {
    let scenario = Scenario::from_json(SCENARIO).unwrap();
    let config = scenario.host_config(Vec::new(), &[]).unwrap();
    let outcome = scenario.run(&gatekeeper(), config, None).unwrap();

    assert_eq!(
        outcome.failed(),
        0,
        "{}",
        keyhop_host_sim::report::render(&outcome)
    );
    assert_eq!(outcome.requests[1].exchange.worker, 1);
    assert_eq!(
        outcome.requests[1].exchange.upstream.as_ref().unwrap().body,
        b"hello"
    );
    assert_eq!(outcome.requests[1].metrics_changed["gate.allowed"], 1);
}

#[test]
fn broken_expectations_are_each_reported() {
    let text = SCENARIO
        .replace("\"status\": 401", "\"status\": 403")
        .replace("\"x-user\": \"alice\"", "\"x-user\": \"bob\"")
        .replace(
            "\"headers_absent\": [\"authorization\"]",
            "\"headers_absent\": [\"x-user\"]",
        );
    let scenario = Scenario::from_json(&text).unwrap();
    let config = scenario.host_config(Vec::new(), &[]).unwrap();
    let outcome = scenario.run(&gatekeeper(), config, None).unwrap();

    assert_eq!(outcome.failed(), 2);
    assert_eq!(outcome.requests[0].failures.len(), 1);
    assert_eq!(outcome.requests[1].failures.len(), 2);
}

#[test]
fn unknown_fields_and_bad_values_are_refused() {
    let typo = r#"{"requests": [{"expect": {"continnued": true}}]}"#;
    assert!(matches!(
        Scenario::from_json(typo),
        Err(ScenarioError::Parse(_))
    ));

    let bad_base64 = r#"{"requests": [{"body": {"base64": "***"}}]}"#;
    let scenario = Scenario::from_json(bad_base64).unwrap();
    let error = scenario.requests[0].to_request(0).unwrap_err();
    assert!(error.to_string().contains("base64"), "{error}");
}

#[test]
fn cli_env_overrides_the_scenario() {
    let scenario = Scenario::from_json(r#"{"env": {"A": "1", "B": "2"}, "requests": []}"#).unwrap();
    let config = scenario
        .host_config(Vec::new(), &[("B".to_owned(), "3".to_owned())])
        .unwrap();
    assert_eq!(
        config.env,
        vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "3".to_owned())
        ]
    );
}

/// The example scenarios in `host-sim/scenarios/` stay valid: they parse,
/// and with `KEYHOP_WASM` set they pass against the keyhop module.
#[test]
fn shipped_scenarios_hold() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let plugin = match std::env::var_os("KEYHOP_WASM") {
        Some(path) => {
            let wasm = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("KEYHOP_WASM={} cannot be read: {e}", path.to_string_lossy())
            });
            Some(Plugin::compile(&wasm).unwrap())
        }
        None => {
            eprintln!("shipped scenarios only parsed: KEYHOP_WASM is not set");
            None
        }
    };

    for name in ["sign", "verify"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
        let scenario = Scenario::from_json(&text).unwrap_or_else(|e| panic!("{name}.json: {e}"));
        let plugin_config = std::fs::read(dir.join(format!("{name}.plugin.json"))).unwrap();
        let config = scenario.host_config(plugin_config, &[]).unwrap();
        let Some(plugin) = &plugin else { continue };

        let outcome = scenario.run(plugin, config, None).unwrap();
        assert_eq!(
            outcome.failed(),
            0,
            "{name}.json:\n{}",
            keyhop_host_sim::report::render(&outcome)
        );
        assert!(outcome
            .requests
            .iter()
            .all(|r| !matches!(r.exchange.verdict, Verdict::Failed { .. })));
    }
}
