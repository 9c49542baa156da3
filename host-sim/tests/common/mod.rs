//! Helpers for tests that drive the host with small hand-written WAT modules.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use keyhop_host_sim::abi::LogLevel;
use keyhop_host_sim::{Exchange, Host, HostConfig, Request};

/// Every import a test module may use; unused imports cost nothing.
const PRELUDE: &str = r#"
(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
(import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
(import "env" "proxy_set_header_map_pairs" (func $set_pairs (param i32 i32 i32) (result i32)))
(import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_replace_header_map_value" (func $replace_header (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_remove_header_map_value" (func $remove_header (param i32 i32 i32) (result i32)))
(import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
(import "env" "proxy_set_property" (func $set_property (param i32 i32 i32 i32) (result i32)))
(import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_register_shared_queue" (func $register_queue (param i32 i32 i32) (result i32)))
(import "env" "proxy_resolve_shared_queue" (func $resolve_queue (param i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_enqueue_shared_queue" (func $enqueue (param i32 i32 i32) (result i32)))
(import "env" "proxy_dequeue_shared_queue" (func $dequeue (param i32 i32 i32) (result i32)))
(import "env" "proxy_send_local_response" (func $local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_continue_stream" (func $continue_stream (param i32) (result i32)))
(import "env" "proxy_close_stream" (func $close_stream (param i32) (result i32)))
(import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_grpc_call" (func $grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
(import "env" "proxy_get_status" (func $get_status (param i32 i32 i32) (result i32)))
(import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
(import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
(import "env" "proxy_increment_metric" (func $increment_metric (param i32 i64) (result i32)))
(import "env" "proxy_record_metric" (func $record_metric (param i32 i64) (result i32)))
(import "env" "proxy_get_metric" (func $get_metric (param i32 i32) (result i32)))
(import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
(import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
(import "env" "proxy_get_log_level" (func $get_log_level (param i32) (result i32)))
(import "env" "proxy_done" (func $done (result i32)))
(import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
(import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
(import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
(import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
(import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

(memory (export "memory") 2)
(global $heap (mut i32) (i32.const 32768))
;; Return slots: 0 = data pointer, 4 = size, 8 = cas / id / code, 16 = u64.
;; 200 = scratch for metric ids. Strings from 1024; heap from 32768.

;; Gauge NAME := value; tests read statuses and numbers back as metrics.
(func $report (param $name i32) (param $len i32) (param $value i64)
  (drop (call $define_metric (i32.const 1) (local.get $name) (local.get $len) (i32.const 200)))
  (drop (call $record_metric (i32.load (i32.const 200)) (local.get $value))))
(func $status (param $name i32) (param $len i32) (param $code i32)
  (call $report (local.get $name) (local.get $len) (i64.extend_i32_u (local.get $code))))
;; Logs, at info, the block the host last returned through slots 0 and 4.
(func $log_returned
  (drop (call $log (i32.const 2) (i32.load (i32.const 0)) (i32.load (i32.const 4)))))
"#;

const ALLOCATOR: &str = r#"
(func (export "proxy_abi_version_0_2_1"))
(func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
  (local $at i32)
  (local.set $at (global.get $heap))
  (global.set $heap (i32.add (global.get $heap) (local.get $size)))
  (local.get $at))
"#;

/// Lays out constant data for a test module and names it for the WAT text.
pub struct Wat {
    data: String,
    next: u32,
}

impl Default for Wat {
    fn default() -> Self {
        Wat::new()
    }
}

impl Wat {
    pub fn new() -> Self {
        Wat {
            data: String::new(),
            next: 1024,
        }
    }

    /// Places `bytes` in memory; returns `(i32.const ptr) (i32.const len)`.
    pub fn bytes(&mut self, bytes: &[u8]) -> String {
        let at = self.next;
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        self.data
            .push_str(&format!("(data (i32.const {at}) \"{escaped}\")\n"));
        self.next += (bytes.len() as u32 + 8) & !7;
        format!("(i32.const {at}) (i32.const {})", bytes.len())
    }

    pub fn s(&mut self, text: &str) -> String {
        self.bytes(text.as_bytes())
    }

    /// A module with the standard imports, allocator and ABI marker.
    pub fn module(&self, body: &str) -> String {
        format!("(module\n{PRELUDE}\n{ALLOCATOR}\n{}\n{body}\n)", self.data)
    }

    /// A module without `proxy_on_memory_allocate` (only `malloc`), as a
    /// wasm32-unknown-unknown build may have.
    pub fn module_with_malloc(&self, body: &str) -> String {
        let allocator = ALLOCATOR.replace("proxy_on_memory_allocate", "malloc");
        format!("(module\n{PRELUDE}\n{allocator}\n{}\n{body}\n)", self.data)
    }
}

pub fn config() -> HostConfig {
    HostConfig {
        log_level: LogLevel::Trace,
        seed: Some(7),
        ..HostConfig::default()
    }
}

pub fn host(wat: &str) -> Host {
    host_with(wat, config(), 1)
}

pub fn host_with(wat: &str, config: HostConfig, workers: usize) -> Host {
    match Host::load(wat.as_bytes(), config, workers) {
        Ok(host) => host,
        Err(error) => panic!("module did not load: {error}"),
    }
}

pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[&str]) -> Request {
    let mut all = vec![
        (":method", method),
        (":scheme", "https"),
        (":authority", "api.test"),
        (":path", path),
    ];
    all.extend_from_slice(headers);
    Request {
        headers: all
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        body_chunks: body.iter().map(|c| c.as_bytes().to_vec()).collect(),
        ..Request::default()
    }
}

pub fn get(path: &str) -> Request {
    request("GET", path, &[], &[])
}

pub fn metric(host: &Host, name: &str) -> i64 {
    host.metrics()
        .get(name)
        .map(|m| m.value)
        .unwrap_or_else(|| {
            panic!(
                "metric {name} not defined; have {:?}",
                host.metrics().keys().collect::<Vec<_>>()
            )
        })
}

pub fn logs(exchange: &Exchange) -> Vec<String> {
    exchange.logs.iter().map(|l| l.message.clone()).collect()
}

pub fn upstream_header(exchange: &Exchange, name: &str) -> Option<String> {
    exchange.upstream.as_ref().and_then(|u| {
        u.headers
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    })
}

// Status codes as the guest sees them.
pub const OK: i64 = 0;
pub const NOT_FOUND: i64 = 1;
pub const BAD_ARGUMENT: i64 = 2;
pub const INVALID_MEMORY_ACCESS: i64 = 6;
pub const EMPTY: i64 = 7;
pub const CAS_MISMATCH: i64 = 8;
