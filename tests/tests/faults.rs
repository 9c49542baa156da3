//! Faults: the verifier fails closed. A module that traps forwards nothing; a configuration
//! it cannot use (secret missing, short or not base64, an unknown field) keeps Envoy from
//! starting, with a log line naming the field; and the shared replay cache loses no nonce when
//! both workers and many clients race on it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod attack_support;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use attack_support::catalogue::{Gen, SCORE_BODY, SCORE_TARGET};
use attack_support::envoy_run::{exchange, outcome_of};
use attack_support::mint::{random_secret, unix_now};
use attack_support::outcome::Outcome;
use keyhop_e2e::envoy::{self, Envoy, EnvoySpec};
use keyhop_e2e::topology::{documented, free_port, new_run_dir, SECRET_ENV};
use keyhop_e2e::upstream::RiskApi;
use keyhop_e2e::{Options, Topology};

/// A proxy-wasm module (ABI 0.2.1) that configures fine and traps on every request.
const TRAPPING_MODULE: &str = r#"
(module
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $at))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
"#;

/// A partner Envoy from `envoy/partner-ingress.yaml` with `module`, `edit` applied to the
/// rendered config and `env` as its whole environment for the VM; with its risk API.
fn partner(
    label: &str,
    module: &Path,
    edit: impl Fn(String) -> String,
    env: Vec<(String, String)>,
) -> (Envoy, RiskApi, SocketAddr, Result<(), String>) {
    envoy::check_prerequisites().expect("prerequisites");
    let run_dir = new_run_dir(label).expect("run dir");
    let (listener, admin) = (free_port().unwrap(), free_port().unwrap());
    let risk_api = RiskApi::start(0).expect("risk API");
    let config = envoy::render_config(
        &envoy::read_config("partner-ingress.yaml").unwrap(),
        &[
            (documented::PARTNER, listener),
            (documented::PARTNER_ADMIN, admin),
            (documented::RISK_API, risk_api.addr().port()),
        ],
        module,
    )
    .unwrap();
    let spec = EnvoySpec {
        name: "partner-ingress".into(),
        config: edit(config),
        admin: ([127, 0, 0, 1], admin).into(),
        env,
    };
    let mut envoy = Envoy::spawn(spec, &run_dir).expect("spawn");
    let ready = envoy.wait_ready().map_err(|e| e.to_string());
    (envoy, risk_api, ([127, 0, 0, 1], listener).into(), ready)
}

#[test]
fn a_module_that_traps_on_a_request_forwards_nothing() {
    let run_dir = new_run_dir("trap-module").expect("run dir");
    let module = run_dir.join("trap.wasm");
    fs::write(&module, wat::parse_str(TRAPPING_MODULE).expect("WAT")).unwrap();
    let secret = random_secret();
    let (envoy, risk_api, addr, ready) = partner(
        "trap",
        &module,
        |c| c,
        vec![(SECRET_ENV.into(), secret.clone())],
    );
    ready.expect("the trapping module configures fine");

    // A valid credential, so only the module's failure can stop it; twice, since after the
    // first trap the VM is dead and the second request meets a failed VM.
    let mut gen = Gen::new(&secret, Box::new(unix_now));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let (credential, _) = gen.fresh();
        outcomes.push(outcome_of(exchange(addr, credential.to_bytes(), "POST")));
    }
    println!("trapping module, FAIL_CLOSED: {outcomes:?}");
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::Envoy(500 | 503 | 0)),
            "a trapping module must fail closed: {outcome:?} (log {})",
            envoy.log_path().display()
        );
    }
    assert!(
        risk_api.received().is_empty(),
        "a request reached the risk API past a trapping module"
    );
    let log = envoy.log();
    assert!(
        log.contains("unreachable") || log.contains("proxy_on_request_headers"),
        "the trap is not in the log: {}",
        envoy.log_path().display()
    );
}

/// Starts the partner with a broken configuration and checks it refuses to run, saying which
/// field is wrong.
fn assert_refused(
    label: &str,
    edit: impl Fn(String) -> String,
    env: Vec<(String, String)>,
    must_mention: &[&str],
) {
    let (mut envoy, _risk_api, _, ready) = partner(label, &envoy::wasm_module(), edit, env);
    assert!(
        ready.is_err(),
        "{label}: Envoy became ready with a configuration it cannot use"
    );
    let exited = envoy.wait_exit(Duration::from_secs(15)).expect("wait");
    assert!(
        exited.is_some_and(|s| !s.success()),
        "{label}: Envoy still running or exited 0: {exited:?}"
    );
    let log = envoy.log();
    let line = log
        .lines()
        .find(|l| l.contains("configuration refused"))
        .unwrap_or_else(|| {
            panic!(
                "{label}: no `configuration refused` line in {}",
                envoy.log_path().display()
            )
        });
    for word in must_mention {
        assert!(
            line.contains(word),
            "{label}: the refusal does not mention {word:?}: {line}"
        );
    }
    println!(
        "{label}: {}",
        line.get(line.find("keyhop:").unwrap_or(0)..)
            .unwrap_or(line)
    );
}

#[test]
fn a_missing_root_secret_keeps_envoy_from_starting() {
    assert_refused(
        "no-secret",
        |c| c,
        Vec::new(),
        &["keys[0].secret_env", SECRET_ENV],
    );
}

#[test]
fn a_short_root_secret_keeps_envoy_from_starting() {
    let short = "c2l4dGVlbi1ieXRlcy0hIQ=="; // 16 bytes
    assert_refused(
        "short-secret",
        |c| c,
        vec![(SECRET_ENV.into(), short.into())],
        &["keys[0].secret_env"],
    );
}

#[test]
fn a_root_secret_that_is_not_base64_keeps_envoy_from_starting() {
    let garbage = "this is not base64, it is a passphrase!!";
    assert_refused(
        "garbage-secret",
        |c| c,
        vec![(SECRET_ENV.into(), garbage.into())],
        &["keys[0].secret_env", "base64"],
    );
}

#[test]
fn unknown_nested_fields_keep_envoy_from_starting() {
    let secret = vec![(SECRET_ENV.to_owned(), random_secret())];
    assert_refused(
        "unknown-replay-field",
        |c| {
            c.replacen(
                r#""replay": { "shards": 256"#,
                r#""replay": { "ttl_seconds": 30, "shards": 256"#,
                1,
            )
        },
        secret.clone(),
        &["ttl_seconds"],
    );
    assert_refused(
        "unknown-key-field",
        |c| {
            c.replacen(
                r#""alg": "hmac-sha256","#,
                r#""alg": "hmac-sha256", "algorithm": "ed25519","#,
                1,
            )
        },
        secret,
        &["algorithm"],
    );
}

/// N distinct credentials, each sent K times at once from parallel clients on new
/// connections (so both Envoy workers race on the same replay-cache shards): exactly N pass.
#[test]
fn racing_replays_on_both_workers_lose_no_nonce() {
    const N: usize = 200;
    const K: usize = 5;
    const CLIENTS: usize = 8;

    let secret = random_secret();
    let mut options = Options::new("replay-contention");
    options.secret = Some(secret.clone());
    let topology = Topology::start_with(options).expect("topology");
    let partner = topology.partner_addr();

    // Consecutive work items are copies of one credential, so different clients send them
    // at the same moment.
    let mut gen = Gen::new(&secret, Box::new(unix_now));
    let mut work = Vec::with_capacity(N * K);
    for n in 0..N {
        let base = gen.base_for(
            "POST",
            &format!("{SCORE_TARGET}&n={n}"),
            SCORE_BODY.as_bytes(),
        );
        let (credential, _) = gen.mint_as(&gen.signer(), &base, 0);
        let bytes = credential.to_bytes();
        for _ in 0..K {
            work.push((n, bytes.clone()));
        }
    }
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<BTreeMap<usize, Vec<String>>>> = Arc::default();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (work, next, results) =
                (Arc::clone(&work), Arc::clone(&next), Arc::clone(&results));
            thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((n, bytes)) = work.get(i) else {
                    return;
                };
                let verdict = match outcome_of(exchange(partner, bytes.clone(), "POST")) {
                    Outcome::Forwarded(_) => "accepted".to_owned(),
                    Outcome::Filter(status, code) => format!("{status} {code}"),
                    other => format!("{other:?}"),
                };
                results.lock().unwrap().entry(*n).or_default().push(verdict);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }

    let results = results.lock().unwrap();
    let mut wrong = Vec::new();
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for (n, verdicts) in results.iter() {
        for v in verdicts {
            *totals.entry(v.clone()).or_default() += 1;
        }
        let accepted = verdicts.iter().filter(|v| *v == "accepted").count();
        let replays = verdicts.iter().filter(|v| *v == "401 replay").count();
        if (accepted, replays) != (1, K - 1) {
            wrong.push(format!("credential {n}: {verdicts:?}"));
        }
    }
    println!("{N} credentials × {K} racing copies, {CLIENTS} clients, 2 Envoy workers: {totals:?}");
    assert!(
        wrong.is_empty(),
        "{} credentials not accepted exactly once:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(results.len(), N);
    assert_eq!(topology.risk_api.received().len(), N);
}
