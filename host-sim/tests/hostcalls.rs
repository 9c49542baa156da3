//! Each host function, exercised by a small hand-written module.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use keyhop_host_sim::abi::{encode_pairs, LogLevel};
use keyhop_host_sim::{
    CallAnswer, Exchange, GrpcAnswer, Guard, Host, HostConfig, LoadError, Plugin, Verdict,
};

#[test]
fn log_lines_carry_level_and_respect_the_configured_level() {
    let mut w = Wat::new();
    let warn = w.s("careful");
    let debug = w.s("chatty");
    let body = format!(
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
             (drop (call $log (i32.const 3) {warn}))
             (drop (call $log (i32.const 1) {debug}))
             (call $status {bad} (call $log (i32.const 9) {warn}))
             (drop (call $get_log_level (i32.const 8)))
             (call $status {level} (i32.load (i32.const 8)))
             (i32.const 1))"#,
        bad = w.s("status.bad_level"),
        level = w.s("log_level"),
    );
    let config = keyhop_host_sim::HostConfig {
        log_level: LogLevel::Info,
        ..config()
    };
    let mut host = host_with(&w.module(&body), config, 1);

    let lines = host.take_logs();
    assert_eq!(
        lines.len(),
        1,
        "debug line must be dropped at info: {lines:?}"
    );
    assert_eq!(lines[0].level, LogLevel::Warn);
    assert_eq!(lines[0].message, "careful");
    assert_eq!(metric(&host, "status.bad_level"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "log_level"), LogLevel::Info as i64);
}

#[test]
fn configuration_buffers_are_readable_only_in_their_callbacks() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_vm_start") (param $ctx i32) (param $size i32) (result i32)
             (call $status {vm_in_start} (call $get_buffer (i32.const 6) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (i32.const 1))
           (func (export "proxy_on_configure") (param $ctx i32) (param $size i32) (result i32)
             (call $status {vm_in_configure} (call $get_buffer (i32.const 6) (i32.const 0) (i32.const 100) (i32.const 0) (i32.const 4)))
             (call $report {size} (i64.extend_i32_u (local.get $size)))
             ;; a window past the end is clamped
             (drop (call $get_buffer (i32.const 7) (i32.const 2) (i32.const 1000) (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (i32.const 1))"#,
        vm_in_start = w.s("status.vm_in_start"),
        vm_in_configure = w.s("status.vm_in_configure"),
        size = w.s("plugin_config_size"),
    );
    let config = keyhop_host_sim::HostConfig {
        vm_configuration: b"vm-settings".to_vec(),
        plugin_configuration: b"{\"mode\":\"x\"}".to_vec(),
        ..config()
    };
    let mut host = host_with(&w.module(&body), config, 1);

    let lines: Vec<String> = host.take_logs().into_iter().map(|l| l.message).collect();
    assert_eq!(lines, vec!["vm-settings", "mode\":\"x\"}"]);
    assert_eq!(metric(&host, "status.vm_in_start"), OK);
    assert_eq!(metric(&host, "status.vm_in_configure"), NOT_FOUND);
    assert_eq!(metric(&host, "plugin_config_size"), 12);
}

#[test]
fn a_false_on_configure_fails_the_load_with_its_logs() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
             (drop (call $log (i32.const 4) {why}))
             (i32.const 0))"#,
        why = w.s("bad config: no mode"),
    );
    let error = Host::load(w.module(&body).as_bytes(), config(), 1)
        .err()
        .unwrap();
    let text = error.to_string();
    assert!(text.contains("proxy_on_configure returned false"), "{text}");
    assert!(text.contains("bad config: no mode"), "{text}");
}

#[test]
fn unknown_imports_and_missing_exports_are_named() {
    let with_unknown = r#"(module (import "env" "proxy_teleport" (func (param i32))) (memory (export "memory") 1))"#;
    match Host::load(with_unknown.as_bytes(), config(), 1) {
        Err(LoadError::MissingImport { module, name }) => {
            assert_eq!((module.as_str(), name.as_str()), ("env", "proxy_teleport"));
        }
        other => panic!("expected MissingImport, got {:?}", other.err()),
    }

    let no_abi = r#"(module (memory (export "memory") 1)
        (func (export "malloc") (param i32) (result i32) (i32.const 64)))"#;
    let error = Host::load(no_abi.as_bytes(), config(), 1).err().unwrap();
    assert!(
        error.to_string().contains("proxy_abi_version_0_2_1"),
        "{error}"
    );

    let no_allocator =
        r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#;
    let error = Host::load(no_allocator.as_bytes(), config(), 1)
        .err()
        .unwrap();
    assert!(error.to_string().contains("malloc"), "{error}");
}

#[test]
fn header_maps_are_read_and_edited_as_envoy_does() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (call $status {get_path} (call $get_header (i32.const 0) {path} (i32.const 0) (i32.const 4)))
             (call $log_returned)
             ;; with two entries of one name, the first value is returned
             (drop (call $get_header (i32.const 0) {dup} (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (call $status {get_missing} (call $get_header (i32.const 0) {missing} (i32.const 0) (i32.const 4)))
             (call $status {add} (call $add_header (i32.const 0) {upper} {one}))
             (drop (call $replace_header (i32.const 0) {rep} {two}))
             (drop (call $remove_header (i32.const 0) {drop}))
             (call $status {bad_map} (call $add_header (i32.const 42) {upper} {one}))
             (call $status {bad_pairs} (call $set_pairs (i32.const 0) {garbage}))
             (drop (call $get_pairs (i32.const 0) (i32.const 0) (i32.const 4)))
             (call $report {pairs_size} (i64.extend_i32_u (i32.load (i32.const 4))))
             (i32.const 0))"#,
        get_path = w.s("status.get_path"),
        path = w.s(":path"),
        dup = w.s("x-dup"),
        get_missing = w.s("status.get_missing"),
        missing = w.s("x-missing"),
        add = w.s("status.add"),
        upper = w.s("X-Upper"),
        one = w.s("1"),
        rep = w.s("x-rep"),
        two = w.s("2"),
        drop = w.s("x-drop"),
        bad_map = w.s("status.bad_map"),
        bad_pairs = w.s("status.bad_pairs"),
        garbage = w.bytes(&[5, 0, 0, 0, 1]),
        pairs_size = w.s("pairs_size"),
    );
    let mut host = host(&w.module(&body));
    let request = request(
        "GET",
        "/a?b=c",
        &[
            ("x-dup", "first"),
            ("x-dup", "second"),
            ("x-rep", "old"),
            ("x-drop", "gone"),
        ],
        &[],
    );

    let exchange = host.handle(0, &request);

    assert_eq!(exchange.verdict, Verdict::Continued);
    assert_eq!(logs(&exchange), vec!["/a?b=c", "first"]);
    assert_eq!(metric(&host, "status.get_path"), OK);
    assert_eq!(metric(&host, "status.get_missing"), NOT_FOUND);
    assert_eq!(metric(&host, "status.add"), OK);
    assert_eq!(metric(&host, "status.bad_map"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.bad_pairs"), BAD_ARGUMENT);
    assert_eq!(upstream_header(&exchange, "x-upper").as_deref(), Some("1"));
    assert_eq!(upstream_header(&exchange, "x-rep").as_deref(), Some("2"));
    assert_eq!(upstream_header(&exchange, "x-drop"), None);

    let added: Vec<&[u8]> = exchange
        .headers_added
        .iter()
        .map(|(k, _)| k.as_slice())
        .collect();
    // A replaced value stays in its place; an added one goes last.
    assert_eq!(added, vec![&b"x-rep"[..], b"x-upper"]);
    let removed: Vec<&[u8]> = exchange
        .headers_removed
        .iter()
        .map(|(k, _)| k.as_slice())
        .collect();
    assert_eq!(removed, vec![&b"x-rep"[..], b"x-drop"]);

    // The serialised map the guest got back has the spec's exact size.
    let upstream = exchange.upstream.as_ref().unwrap();
    assert_eq!(
        metric(&host, "pairs_size"),
        encode_pairs(&upstream.headers).len() as i64
    );
}

#[test]
fn set_header_map_pairs_replaces_the_whole_map() {
    let mut w = Wat::new();
    let pairs = encode_pairs(&[
        (b":path".to_vec(), b"/new".to_vec()),
        (b"X-Set".to_vec(), b"1".to_vec()),
        (b"x-set".to_vec(), b"2".to_vec()),
    ]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (call $status {status} (call $set_pairs (i32.const 0) {pairs}))
             (i32.const 0))"#,
        status = w.s("status.set_pairs"),
        pairs = w.bytes(&pairs),
    );
    let mut host = host(&w.module(&body));
    let exchange = host.handle(0, &request("GET", "/old", &[("x-old", "1")], &[]));

    assert_eq!(metric(&host, "status.set_pairs"), OK);
    let expected = vec![
        (b":path".to_vec(), b"/new".to_vec()),
        (b"x-set".to_vec(), b"1".to_vec()),
        (b"x-set".to_vec(), b"2".to_vec()),
    ];
    assert_eq!(exchange.upstream.unwrap().headers, expected);
}

#[test]
fn paused_body_is_delivered_cumulatively_and_can_be_rewritten() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (i32.const 1))
           (func (export "proxy_on_request_body") (param $ctx i32) (param $size i32) (param $end i32) (result i32)
             (call $report {last_size} (i64.extend_i32_u (local.get $size)))
             (if (i32.eqz (local.get $end)) (then (return (i32.const 1))))
             (drop (call $get_buffer (i32.const 0) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (drop (call $set_buffer (i32.const 0) (i32.const 0) (local.get $size) {replacement}))
             (call $status {middle} (call $set_buffer (i32.const 0) (i32.const 1) (i32.const 0) {replacement}))
             (i32.const 0))"#,
        last_size = w.s("last_body_size"),
        replacement = w.s("rewritten"),
        middle = w.s("status.set_middle"),
    );
    let mut host = host(&w.module(&body));
    let exchange = host.handle(0, &request("POST", "/", &[], &["ab", "cd", "ef"]));

    assert_eq!(exchange.verdict, Verdict::Continued);
    assert_eq!(metric(&host, "last_body_size"), 6);
    assert_eq!(logs(&exchange), vec!["abcdef"]);
    assert_eq!(exchange.upstream.unwrap().body, b"rewritten");
    assert_eq!(metric(&host, "status.set_middle"), 2);
}

#[test]
fn a_request_paused_and_never_resumed_is_reported_as_paused() {
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))"#;
    let mut host = host(&w.module(body));
    let exchange = host.handle(0, &get("/"));
    assert!(
        matches!(exchange.verdict, Verdict::Paused { ref phase } if phase == "request_headers")
    );
    assert!(exchange.upstream.is_none());
}

#[test]
fn local_response_replaces_the_upstream() {
    let mut w = Wat::new();
    let headers = encode_pairs(&[(b"Keyhop-Reason".to_vec(), b"nope".to_vec())]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $local_response (i32.const 403) {details} {reply} {headers} (i32.const -1)))
             (i32.const 1))"#,
        details = w.s("denied_by_test"),
        reply = w.s("{\"error\":\"nope\"}"),
        headers = w.bytes(&headers),
    );
    let mut host = host(&w.module(&body));
    let exchange = host.handle(0, &request("POST", "/", &[], &["body"]));

    let Verdict::LocalResponse(reply) = &exchange.verdict else {
        panic!("expected local response, got {:?}", exchange.verdict);
    };
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "denied_by_test");
    assert_eq!(reply.body, b"{\"error\":\"nope\"}");
    assert_eq!(
        reply.headers,
        vec![(b"keyhop-reason".to_vec(), b"nope".to_vec())]
    );
    assert!(exchange.upstream.is_none());
    assert_eq!(exchange.downstream.unwrap().status, 403);
}

#[test]
fn close_stream_resets_the_request() {
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (drop (call $close_stream (i32.const 0))) (i32.const 1))"#;
    let mut host = host(&w.module(body));
    assert_eq!(host.handle(0, &get("/")).verdict, Verdict::Reset);
}

#[test]
fn http_call_is_answered_and_resumes_the_request() {
    let mut w = Wat::new();
    let call_headers = encode_pairs(&[
        (b":method".to_vec(), b"GET".to_vec()),
        (b":path".to_vec(), b"/check".to_vec()),
        (b":authority".to_vec(), b"authz".to_vec()),
    ]);
    let no_path = encode_pairs(&[(b":method".to_vec(), b"GET".to_vec())]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (call $status {unknown} (call $http_call {nowhere} {headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 8)))
             (call $status {incomplete} (call $http_call {authz} {no_path} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 8)))
             (call $status {call} (call $http_call {authz} {headers} {payload} (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 8)))
             (i32.const 1))
           (func (export "proxy_on_http_call_response") (param $ctx i32) (param $token i32) (param $headers i32) (param $size i32) (param $trailers i32)
             (call $report {header_count} (i64.extend_i32_u (local.get $headers)))
             (drop (call $get_header (i32.const 6) {status_name} (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (drop (call $get_buffer (i32.const 4) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (drop (call $continue_stream (i32.const 0))))"#,
        unknown = w.s("status.unknown_upstream"),
        nowhere = w.s("nowhere"),
        headers = w.bytes(&call_headers),
        incomplete = w.s("status.incomplete_headers"),
        authz = w.s("authz"),
        no_path = w.bytes(&no_path),
        call = w.s("status.call"),
        payload = w.s("ping"),
        header_count = w.s("call_header_count"),
        status_name = w.s(":status"),
    );
    let mut config = config();
    config.http_answers.insert(
        "authz".to_owned(),
        CallAnswer {
            headers: vec![
                (b":status".to_vec(), b"204".to_vec()),
                (b"x".to_vec(), b"y".to_vec()),
            ],
            body: b"pong".to_vec(),
            ..CallAnswer::default()
        },
    );
    let mut host = host_with(&w.module(&body), config, 1);
    let exchange = host.handle(0, &get("/"));

    assert_eq!(exchange.verdict, Verdict::Continued);
    assert_eq!(logs(&exchange), vec!["204", "pong"]);
    assert_eq!(metric(&host, "status.unknown_upstream"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.incomplete_headers"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.call"), OK);
    assert_eq!(metric(&host, "call_header_count"), 2);
    assert_eq!(exchange.calls.len(), 1);
    assert_eq!(exchange.calls[0].target, "/check");
    assert_eq!(exchange.calls[0].body, b"ping");
}

#[test]
fn grpc_call_delivers_a_message_or_a_status() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $grpc_call {upstream} {service} {ok_method} (i32.const 0) (i32.const 0) {message} (i32.const 1000) (i32.const 8)))
             (drop (call $grpc_call {upstream} {service} {bad_method} (i32.const 0) (i32.const 0) {message} (i32.const 1000) (i32.const 8)))
             (i32.const 0))
           (func (export "proxy_on_grpc_receive") (param $ctx i32) (param $token i32) (param $size i32)
             (drop (call $get_buffer (i32.const 5) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
             (call $log_returned))
           (func (export "proxy_on_grpc_close") (param $ctx i32) (param $token i32) (param $code i32)
             (call $report {close_code} (i64.extend_i32_u (local.get $code)))
             (drop (call $get_status (i32.const 8) (i32.const 0) (i32.const 4)))
             (call $log_returned))"#,
        upstream = w.s("grpc-cluster"),
        service = w.s("pkg.Svc"),
        ok_method = w.s("Ok"),
        bad_method = w.s("Bad"),
        message = w.s("req"),
        close_code = w.s("grpc_close_code"),
    );
    let mut config = config();
    config.grpc_answers.insert(
        "pkg.Svc/Ok".to_owned(),
        GrpcAnswer {
            status: 0,
            message: b"reply".to_vec(),
        },
    );
    config.grpc_answers.insert(
        "pkg.Svc/Bad".to_owned(),
        GrpcAnswer {
            status: 14,
            message: b"unavailable".to_vec(),
        },
    );
    let mut host = host_with(&w.module(&body), config, 1);
    let exchange = host.handle(0, &get("/"));

    assert_eq!(logs(&exchange), vec!["reply", "unavailable"]);
    assert_eq!(metric(&host, "grpc_close_code"), 14);
}

#[test]
fn shared_data_is_shared_between_workers_with_envoy_cas() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (local $cas i32)
             (if (i32.eqz (call $get_shared {key} (i32.const 0) (i32.const 4) (i32.const 8)))
               (then
                 (call $log_returned)
                 (local.set $cas (i32.load (i32.const 8)))
                 (call $status {stale} (call $set_shared {key} {second} (i32.add (local.get $cas) (i32.const 1))))
                 (call $status {fresh} (call $set_shared {key} {second} (local.get $cas)))
                 (call $status {again} (call $set_shared {key} {third} (local.get $cas))))
               (else
                 (call $status {missing} (call $get_shared {key} (i32.const 0) (i32.const 4) (i32.const 8)))
                 (drop (call $set_shared {key} {first} (i32.const 0)))))
             (i32.const 0))"#,
        key = w.s("replay/nonce"),
        first = w.s("seen-by-worker-0"),
        second = w.s("v2"),
        third = w.s("v3"),
        stale = w.s("status.stale_cas"),
        fresh = w.s("status.fresh_cas"),
        again = w.s("status.reused_cas"),
        missing = w.s("status.get_missing"),
    );
    let mut host = host_with(&w.module(&body), config(), 2);

    host.handle(0, &get("/"));
    assert_eq!(metric(&host, "status.get_missing"), NOT_FOUND);

    let exchange = host.handle(1, &get("/"));
    assert_eq!(exchange.worker, 1);
    assert_eq!(logs(&exchange), vec!["seen-by-worker-0"]);
    assert_eq!(metric(&host, "status.stale_cas"), CAS_MISMATCH);
    assert_eq!(metric(&host, "status.fresh_cas"), OK);
    assert_eq!(metric(&host, "status.reused_cas"), CAS_MISMATCH);
    assert_eq!(
        host.shared().get_data("keyhop", b"replay/nonce").unwrap().0,
        b"v2"
    );
}

#[test]
fn shared_queues_notify_the_registering_worker() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
             (drop (call $register_queue {queue} (i32.const 8)))
             (i32.const 1))
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (call $status {resolve_missing} (call $resolve_queue {vm} {nope} (i32.const 8)))
             (drop (call $resolve_queue {vm} {queue} (i32.const 8)))
             (drop (call $enqueue (i32.load (i32.const 8)) {item}))
             (call $status {enqueue_unknown} (call $enqueue (i32.const 999) {item}))
             (i32.const 0))
           (func (export "proxy_on_queue_ready") (param $root i32) (param $token i32)
             (drop (call $dequeue (local.get $token) (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (call $status {empty} (call $dequeue (local.get $token) (i32.const 0) (i32.const 4))))"#,
        queue = w.s("events"),
        vm = w.s("keyhop"),
        nope = w.s("nope"),
        item = w.s("hello-queue"),
        resolve_missing = w.s("status.resolve_missing"),
        enqueue_unknown = w.s("status.enqueue_unknown"),
        empty = w.s("status.dequeue_empty"),
    );
    let mut host = host_with(&w.module(&body), config(), 2);
    let exchange = host.handle(0, &get("/"));

    // Worker 1 registered last, so it owns the queue and is notified.
    let line = exchange
        .logs
        .iter()
        .find(|l| l.message == "hello-queue")
        .unwrap();
    assert_eq!(line.worker, 1);
    assert_eq!(metric(&host, "status.resolve_missing"), NOT_FOUND);
    assert_eq!(metric(&host, "status.enqueue_unknown"), NOT_FOUND);
    assert_eq!(metric(&host, "status.dequeue_empty"), EMPTY);
}

#[test]
fn metrics_are_defined_incremented_recorded_and_read() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $define_metric (i32.const 0) {counter} (i32.const 8)))
             (drop (call $increment_metric (i32.load (i32.const 8)) (i64.const 2)))
             (call $status {zero} (call $increment_metric (i32.load (i32.const 8)) (i64.const 0)))
             (drop (call $get_metric (i32.load (i32.const 8)) (i32.const 16)))
             (call $report {read} (i64.load (i32.const 16)))
             (drop (call $define_metric (i32.const 2) {histogram} (i32.const 8)))
             (drop (call $record_metric (i32.load (i32.const 8)) (i64.const 42)))
             (call $status {hist_get} (call $get_metric (i32.load (i32.const 8)) (i32.const 16)))
             (call $status {bad_type} (call $define_metric (i32.const 7) {counter} (i32.const 8)))
             (i32.const 0))"#,
        counter = w.s("requests_total"),
        histogram = w.s("latency"),
        zero = w.s("status.increment_zero"),
        read = w.s("read_back"),
        hist_get = w.s("status.histogram_get"),
        bad_type = w.s("status.bad_type"),
    );
    let mut host = host(&w.module(&body));
    host.handle(0, &get("/"));
    let exchange = host.handle(0, &get("/"));

    assert_eq!(metric(&host, "requests_total"), 4);
    assert_eq!(metric(&host, "read_back"), 4);
    assert_eq!(metric(&host, "status.increment_zero"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.histogram_get"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.bad_type"), BAD_ARGUMENT);
    assert_eq!(host.metrics()["latency"].samples, vec![42, 42]);
    assert!(exchange.verdict == Verdict::Continued);
}

#[test]
fn properties_come_from_request_scenario_and_guest() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func $show (param $ptr i32) (param $len i32)
             (if (i32.eqz (call $get_property (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 4)))
               (then (call $log_returned))))
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (call $show {plugin_name})
             (call $show {url_path})
             (call $show {query})
             (call $show {source})
             (call $show {per_request})
             (call $status {missing} (call $get_property {nope} (i32.const 0) (i32.const 4)))
             (drop (call $set_property {custom} {value}))
             (call $show {custom})
             (drop (call $get_property {direction} (i32.const 0) (i32.const 4)))
             (call $report {direction_value} (i64.load (i32.load (i32.const 0))))
             (i32.const 0))"#,
        plugin_name = w.s("plugin_name"),
        url_path = w.bytes(b"request\0url_path"),
        query = w.bytes(b"request\0query"),
        source = w.bytes(b"source\0address"),
        per_request = w.bytes(b"filter_state\0tenant"),
        nope = w.bytes(b"no\0such"),
        custom = w.bytes(b"wasm\0note"),
        value = w.s("set-by-guest"),
        direction = w.s("listener_direction"),
        missing = w.s("status.missing_property"),
        direction_value = w.s("direction"),
    );
    let mut config = config();
    config.plugin_name = "keyhop-test".to_owned();
    config
        .properties
        .insert("source.address".to_owned(), b"10.0.0.7:5555".to_vec());
    config
        .properties
        .insert("listener_direction".to_owned(), 1i64.to_le_bytes().to_vec());
    let mut host = host_with(&w.module(&body), config, 1);
    let mut request = get("/v1/x?y=1");
    request
        .properties
        .insert("filter_state.tenant".to_owned(), b"acme".to_vec());

    let exchange = host.handle(0, &request);

    assert_eq!(
        logs(&exchange),
        vec![
            "keyhop-test",
            "/v1/x",
            "y=1",
            "10.0.0.7:5555",
            "acme",
            "set-by-guest"
        ]
    );
    assert_eq!(metric(&host, "status.missing_property"), NOT_FOUND);
    assert_eq!(metric(&host, "direction"), 1);
}

#[test]
fn virtual_time_drives_now_wasi_clocks_and_ticks() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
             (drop (call $set_tick (i32.const 1000)))
             (i32.const 1))
           (func (export "proxy_on_tick") (param i32)
             (drop (call $log (i32.const 2) {tick})))
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $now (i32.const 16)))
             (call $report {now} (i64.load (i32.const 16)))
             (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 16)))
             (call $report {wasi_realtime} (i64.load (i32.const 16)))
             (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 16)))
             (call $report {wasi_monotonic} (i64.load (i32.const 16)))
             (call $status {bad_clock} (call $clock_time_get (i32.const 9) (i64.const 1) (i32.const 16)))
             (i32.const 0))"#,
        tick = w.s("tick"),
        now = w.s("now"),
        wasi_realtime = w.s("wasi_realtime"),
        wasi_monotonic = w.s("wasi_monotonic"),
        bad_clock = w.s("status.bad_clock"),
    );
    let config = keyhop_host_sim::HostConfig {
        clock_start_nanos: 1_000_000_000_000,
        ..config()
    };
    let mut host = host_with(&w.module(&body), config, 1);

    host.advance(Duration::from_millis(500));
    assert!(host.take_logs().is_empty(), "tick must wait for its period");
    host.advance(Duration::from_millis(600));
    assert_eq!(host.take_logs().len(), 1);

    host.handle(0, &get("/"));
    assert_eq!(metric(&host, "now"), 1_001_100_000_000);
    assert_eq!(metric(&host, "wasi_realtime"), 1_001_100_000_000);
    assert_eq!(metric(&host, "wasi_monotonic"), 1_100_000_000);
    assert_eq!(metric(&host, "status.bad_clock"), 28);
}

#[test]
fn wasi_environment_random_and_stdout() {
    let mut w = Wat::new();
    let iov_text = w.s("printed line\n");
    let body = format!(
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
             (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
             (call $report {count} (i64.extend_i32_u (i32.load (i32.const 8))))
             (drop (call $environ_get (i32.const 2048) (i32.const 4096)))
             ;; log the environment block, all entries with their NULs
             (drop (call $log (i32.const 2) (i32.const 4096) (i32.load (i32.const 12))))
             (drop (call $random_get (i32.const 16) (i32.const 8)))
             (call $report {random} (i64.load (i32.const 16)))
             ;; one iovec at 64: (address, length)
             (i32.store (i32.const 64) (i32.const {iov_ptr}))
             (i32.store (i32.const 68) (i32.const {iov_len}))
             (call $status {written} (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))
             (call $status {bad_fd} (call $fd_write (i32.const 5) (i32.const 64) (i32.const 1) (i32.const 72)))
             (call $status {bad_iov} (call $fd_write (i32.const 1) (i32.const 0x7fffffff) (i32.const 1) (i32.const 72)))
             (call $status {huge_random} (call $random_get (i32.const 16) (i32.const -1)))
             (i32.const 1))"#,
        count = w.s("env_count"),
        random = w.s("random"),
        written = w.s("status.fd_write"),
        bad_fd = w.s("status.bad_fd"),
        bad_iov = w.s("status.bad_iov"),
        huge_random = w.s("status.huge_random"),
        iov_ptr = iov_text.split(' ').nth(1).unwrap().trim_end_matches(')'),
        iov_len = iov_text.split(' ').nth(3).unwrap().trim_end_matches(')'),
    );
    let module = w.module(&body);
    let config = keyhop_host_sim::HostConfig {
        env: vec![
            ("A".to_owned(), "1".to_owned()),
            ("SECRET".to_owned(), "xyz".to_owned()),
        ],
        ..config()
    };
    let mut first = host_with(&module, config.clone(), 1);
    let second = host_with(&module, config, 1);

    let lines: Vec<String> = first.take_logs().into_iter().map(|l| l.message).collect();
    assert_eq!(lines, vec!["A=1\0SECRET=xyz\0", "printed line"]);
    assert_eq!(metric(&first, "env_count"), 2);
    assert_eq!(metric(&first, "status.fd_write"), 0);
    assert_eq!(metric(&first, "status.bad_fd"), 8);
    assert_eq!(metric(&first, "status.bad_iov"), 21);
    // Refused before the host allocates 4 GiB for it.
    assert_eq!(metric(&first, "status.huge_random"), 21);
    // Same seed, same bytes.
    assert_eq!(metric(&first, "random"), metric(&second, "random"));
}

#[test]
fn a_trap_fails_closed_and_the_vm_stays_failed() {
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        unreachable)"#;
    let mut host = host(&w.module(body));

    let first = host.handle(0, &get("/"));
    let (error, status) = failure(&first);
    assert!(error.contains("unreachable"), "{error}");
    assert_eq!(status, 503);
    assert_eq!(first.downstream.as_ref().unwrap().status, 503);

    let second = host.handle(0, &get("/"));
    assert!(matches!(second.verdict, Verdict::Failed { .. }));
    assert!(host.worker_failure(0).is_some());
}

#[test]
fn growing_memory_past_the_limit_returns_minus_one_and_only_a_trap_fails_closed() {
    // 2 pages now, 4 allowed: growing by 1 works, by 64 is refused with -1 (the Wasm
    // spec's answer). This guest goes on after a refusal; the second one traps on it.
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (if (i32.ne (memory.grow (i32.const 64)) (i32.const -1)) (then unreachable))
        (i32.const 0))"#;
    let limited = HostConfig {
        max_memory_bytes: 4 << 16,
        ..config()
    };
    let mut tolerant = host_with(&w.module(body), limited.clone(), 1);
    assert_eq!(tolerant.handle(0, &get("/")).verdict, Verdict::Continued);

    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (if (i32.eq (memory.grow (i32.const 64)) (i32.const -1)) (then unreachable))
        (i32.const 0))"#;
    let mut strict = host_with(&w.module(body), limited, 1);
    let exchange = strict.handle(0, &get("/"));
    let (error, status) = failure(&exchange);
    assert!(error.contains("unreachable"), "{error}");
    assert_eq!(status, 503);
}

#[test]
fn proc_exit_is_a_guest_failure() {
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (call $proc_exit (i32.const 3)) (i32.const 0))"#;
    let mut host = host(&w.module(body));
    let exchange = host.handle(0, &get("/"));
    let (error, _) = failure(&exchange);
    assert!(error.contains("proc_exit(3)"), "{error}");
}

#[test]
fn a_looping_guest_runs_out_of_fuel() {
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (loop $forever (br $forever)) (i32.const 0))"#;
    let config = keyhop_host_sim::HostConfig {
        fuel_per_callback: Some(100_000),
        ..config()
    };
    let plugin = Plugin::compile_with(w.module(body).as_bytes(), Guard::Fuel).unwrap();
    let mut host = Host::start(&plugin, config, 1).unwrap();

    let exchange = host.handle(0, &get("/"));
    let (error, status) = failure(&exchange);
    assert!(error.contains("fuel"), "{error}");
    assert_eq!(status, 503);
    assert!(host.worker_failure(0).is_some());
}

#[test]
fn a_looping_guest_is_stopped_at_its_time_limit() {
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (loop $forever (br $forever)) (i32.const 0))"#;
    let limit = Duration::from_millis(50);
    let config = keyhop_host_sim::HostConfig {
        callback_time_limit: Some(limit),
        ..config()
    };
    let plugin = Plugin::compile(w.module(body).as_bytes()).unwrap();
    assert_eq!(plugin.guard(), Guard::Deadline);
    let mut host = Host::start(&plugin, config, 1).unwrap();

    let started = Instant::now();
    let exchange = host.handle(0, &get("/"));
    let took = started.elapsed();

    let (error, status) = failure(&exchange);
    assert!(error.contains("interrupt"), "{error}");
    assert!(error.contains("time limit"), "{error}");
    assert_eq!(status, 503);
    assert_eq!(exchange.downstream.as_ref().unwrap().status, 503);
    assert!(took >= limit, "stopped after {took:?}, before the limit");
    // Far below the default limit (5 s): the configured one applied.
    assert!(took < Duration::from_secs(3), "stopped only after {took:?}");

    let second = host.handle(0, &get("/"));
    assert!(matches!(second.verdict, Verdict::Failed { .. }));
    assert!(host.worker_failure(0).is_some());
}

#[test]
fn a_guest_looping_at_start_up_does_not_load() {
    let w = Wat::new();
    let body = r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
        (loop $forever (br $forever)) (i32.const 1))"#;
    let config = keyhop_host_sim::HostConfig {
        callback_time_limit: Some(Duration::from_millis(20)),
        ..config()
    };
    let error = Host::load(w.module(body).as_bytes(), config, 1)
        .err()
        .unwrap();
    let LoadError::Worker { error, .. } = error else {
        panic!("expected a worker failure, got {error}");
    };
    assert!(
        matches!(
            *error,
            LoadError::Trap {
                phase: "proxy_on_vm_start",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn hostile_pointers_get_statuses_not_crashes() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (call $status {key_oob} (call $get_header (i32.const 0) (i32.const 0x7ffffff0) (i32.const 100) (i32.const 0) (i32.const 4)))
             (call $status {log_huge} (call $log (i32.const 2) (i32.const 0) (i32.const -1)))
             (call $status {out_oob} (call $get_header (i32.const 0) {path} (i32.const -4) (i32.const 4)))
             (call $status {bad_buffer} (call $get_buffer (i32.const 99) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 4)))
             (call $status {bad_stream} (call $continue_stream (i32.const 99)))
             (call $status {bad_context} (call $set_effective (i32.const 12345)))
             (call $status {root_context} (call $set_effective (i32.const 1)))
             (call $status {headers_from_root} (call $add_header (i32.const 0) {path} {path}))
             (i32.const 0))"#,
        key_oob = w.s("status.key_out_of_bounds"),
        log_huge = w.s("status.log_huge"),
        out_oob = w.s("status.return_slot_out_of_bounds"),
        path = w.s(":path"),
        bad_buffer = w.s("status.bad_buffer_type"),
        bad_stream = w.s("status.bad_stream_type"),
        bad_context = w.s("status.unknown_context"),
        root_context = w.s("status.root_context"),
        headers_from_root = w.s("status.headers_from_root"),
    );
    let mut host = host(&w.module(&body));
    let exchange = host.handle(0, &get("/"));

    assert_eq!(exchange.verdict, Verdict::Continued);
    assert_eq!(
        metric(&host, "status.key_out_of_bounds"),
        INVALID_MEMORY_ACCESS
    );
    assert_eq!(metric(&host, "status.log_huge"), INVALID_MEMORY_ACCESS);
    assert_eq!(
        metric(&host, "status.return_slot_out_of_bounds"),
        INVALID_MEMORY_ACCESS
    );
    assert_eq!(metric(&host, "status.bad_buffer_type"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.bad_stream_type"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.unknown_context"), BAD_ARGUMENT);
    assert_eq!(metric(&host, "status.root_context"), OK);
    // With the root context effective, there are no request headers to edit.
    assert_eq!(metric(&host, "status.headers_from_root"), BAD_ARGUMENT);
}

#[test]
fn modules_with_only_malloc_receive_data() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (drop (call $get_header (i32.const 0) {path} (i32.const 0) (i32.const 4)))
             (call $log_returned)
             (i32.const 0))"#,
        path = w.s(":path"),
    );
    let mut host = host(&w.module_with_malloc(&body));
    assert_eq!(
        logs(&host.handle(0, &get("/via-malloc"))),
        vec!["/via-malloc"]
    );
}

#[test]
fn header_changes_after_headers_were_sent_are_flagged() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
           (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
             (drop (call $add_header (i32.const 0) {name} {name}))
             (i32.const 0))"#,
        name = w.s("x-late"),
    );
    let mut host = host(&w.module(&body));
    let exchange = host.handle(0, &request("POST", "/", &[], &["data"]));
    assert_eq!(upstream_header(&exchange, "x-late"), None);
    assert_eq!(exchange.notes.len(), 1, "{:?}", exchange.notes);
}

#[test]
fn header_changes_at_stream_end_leave_what_was_sent() {
    let mut w = Wat::new();
    let body = format!(
        r#"(func (export "proxy_on_log") (param i32)
             (drop (call $add_header (i32.const 0) {name} {name}))
             (drop (call $remove_header (i32.const 0) {path}))
             (drop (call $add_header (i32.const 2) {name} {name})))"#,
        name = w.s("x-late"),
        path = w.s(":path"),
    );
    let mut host = host(&w.module(&body));
    let exchange = host.handle(0, &request("GET", "/a", &[], &[]));

    assert_eq!(upstream_header(&exchange, "x-late"), None);
    assert_eq!(upstream_header(&exchange, ":path").as_deref(), Some("/a"));
    assert!(exchange.headers_added.is_empty());
    assert!(exchange.headers_removed.is_empty());
    let downstream = exchange.downstream.expect("a response");
    assert_eq!(
        downstream.headers,
        vec![(b":status".to_vec(), b"200".to_vec())]
    );
}

#[test]
fn lifecycle_callbacks_run_in_envoy_order() {
    let mut w = Wat::new();
    let mut named = |name: &str| w.s(name);
    let (create, headers, log, done, delete) = (
        named("context_create"),
        named("request_headers"),
        named("log"),
        named("done"),
        named("delete"),
    );
    let body = format!(
        r#"(func (export "proxy_on_context_create") (param i32 i32) (drop (call $log (i32.const 2) {create})))
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (drop (call $log (i32.const 2) {headers})) (i32.const 0))
           (func (export "proxy_on_log") (param i32) (drop (call $log (i32.const 2) {log})))
           (func (export "proxy_on_done") (param i32) (result i32) (drop (call $log (i32.const 2) {done})) (i32.const 1))
           (func (export "proxy_on_delete") (param i32) (drop (call $log (i32.const 2) {delete})))"#
    );
    let mut host = host(&w.module(&body));
    assert_eq!(host.take_logs().len(), 1, "root context created at start");
    let exchange = host.handle(0, &get("/"));
    assert_eq!(exchange.context_id, 2);
    assert_eq!(
        logs(&exchange),
        vec!["context_create", "request_headers", "done", "log", "delete"]
    );
}

/// The guest failure a request ended in, and the status of the local reply sent for it.
fn failure(exchange: &Exchange) -> (&str, u32) {
    match &exchange.verdict {
        Verdict::Failed {
            error,
            local_response,
        } => (error, local_response.status),
        other => panic!("expected failure, got {other:?}"),
    }
}
