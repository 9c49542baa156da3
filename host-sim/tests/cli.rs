//! The `keyhop-sim` binary: output and exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A module that answers every request with 418 unless it has `x-pass`.
const TEAPOT: &str = r#"(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x-pass")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (call $get (i32.const 0) (i32.const 100) (i32.const 6) (i32.const 0) (i32.const 4))
      (then
        (drop (call $reply (i32.const 418) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    (i32.const 0)))"#;

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir =
            std::env::temp_dir().join(format!("keyhop-sim-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sim(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyhop-sim"))
        .args(args)
        .output()
        .unwrap()
}

fn run(files: &Files, scenario: &str, extra: &[&str]) -> Output {
    run_module(files, TEAPOT, scenario, extra)
}

fn run_module(files: &Files, module: &str, scenario: &str, extra: &[&str]) -> Output {
    let wasm = files.write("module.wat", module);
    let config = files.write("plugin.json", "{}");
    let scenario = files.write("scenario.json", scenario);
    let mut args: Vec<&Path> = vec![
        Path::new("run"),
        Path::new("--wasm"),
        &wasm,
        Path::new("--config"),
        &config,
        Path::new("--scenario"),
        &scenario,
    ];
    args.extend(extra.iter().map(Path::new));
    sim(&args)
}

const PASSING: &str = r#"{"requests": [
  {"name": "refused", "expect": {"status": 418, "continued": false}},
  {"name": "let through", "headers": {"x-pass": "1"}, "expect": {"continued": true, "status": 200}}
]}"#;

#[test]
fn passing_scenario_exits_zero_and_reports_each_request() {
    let files = Files::new("pass");
    let output = run(&files, PASSING, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("#0 refused (worker 0, context 2): local response 418"),
        "{stdout}"
    );
    assert!(stdout.contains("#1 let through"), "{stdout}");
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
}

#[test]
fn failing_expectation_exits_one() {
    let files = Files::new("fail");
    let output = run(
        &files,
        &PASSING.replace("418, ", "403, "),
        &["--workers", "2"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED: expected status 403, got 418"),
        "{stdout}"
    );
}

#[test]
fn fuel_flag_stops_a_looping_guest_by_fuel() {
    let looping = r#"(module
      (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 4096))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (loop $forever (br $forever)) (i32.const 0)))"#;
    let files = Files::new("fuel");
    let output = run_module(
        &files,
        looping,
        r#"{"requests": [{"name": "loops", "expect": {"status": 503, "continued": false}}]}"#,
        &["--fuel", "100000", "--json"],
    );
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(output.status.code(), Some(0), "{value}");
    let verdict = &value["requests"][0]["verdict"];
    assert_eq!(verdict["kind"], "failed", "{verdict}");
    assert!(verdict.to_string().contains("fuel"), "{verdict}");
}

#[test]
fn json_output_is_json() {
    let files = Files::new("json");
    let output = run(&files, PASSING, &["--json"]);
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["requests"][0]["verdict"]["kind"], "local_response");
    assert_eq!(value["requests"][0]["verdict"]["status"], 418);
    assert_eq!(value["requests"][1]["verdict"]["kind"], "continued");
}

#[test]
fn unusable_input_exits_two() {
    let files = Files::new("bad");
    let output = run(&files, r#"{"requests": [{"unknown_field": 1}]}"#, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown_field"));
}

/// Runs PASSING with `scenario_extra` fields added and `flags`; expects a refusal (exit 2)
/// and returns stderr.
fn refused(name: &str, scenario_extra: &str, flags: &[&str]) -> String {
    let files = Files::new(name);
    let scenario = PASSING.replacen('{', &format!("{{{scenario_extra}"), 1);
    let output = run(&files, &scenario, flags);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "{stderr}");
    stderr
}

#[test]
fn zero_workers_are_refused_in_the_scenario_as_on_the_command_line() {
    let stderr = refused("workers-zero", r#""workers": 0,"#, &[]);
    assert!(stderr.contains("workers must be at least 1"), "{stderr}");
    assert!(stderr.contains("scenario.json"), "{stderr}");

    let stderr = refused("workers-zero-flag", "", &["--workers", "0"]);
    assert!(stderr.contains("--workers must be at least 1"), "{stderr}");
}

#[test]
fn more_workers_than_the_cap_are_refused_before_any_starts() {
    let stderr = refused("workers-many", r#""workers": 100000,"#, &[]);
    assert!(stderr.contains("256"), "{stderr}");

    let stderr = refused("workers-many-flag", "", &["--workers", "257"]);
    assert!(
        stderr.contains("--workers") && stderr.contains("256"),
        "{stderr}"
    );

    let files = Files::new("workers-cap");
    let output = run(&files, PASSING, &["--workers", "256"]);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn zero_fuel_is_refused_as_an_argument() {
    let stderr = refused("fuel-zero", "", &["--fuel", "0"]);
    assert!(stderr.contains("--fuel must be at least 1"), "{stderr}");
}

#[test]
fn a_scenario_parse_error_is_printed_once_with_the_file_name() {
    let stderr = refused("parse-once", r#""seed": -5,"#, &[]);
    assert!(stderr.contains("scenario.json"), "{stderr}");
    assert_eq!(stderr.matches("expected u64").count(), 1, "{stderr}");
}

#[test]
fn keygen_prints_32_random_bytes_in_base64() {
    use base64::Engine as _;
    let first = sim(&[Path::new("keygen")]);
    let second = sim(&[Path::new("keygen")]);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(String::from_utf8_lossy(&first.stdout).trim())
        .unwrap();
    assert_eq!(decoded.len(), 32);
    assert_ne!(first.stdout, second.stdout);
}
