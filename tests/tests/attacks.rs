//! Red team: several hundred attacks in more than fifteen classes, each built from a real
//! credential (minted with the filter crate's own signer, against the verifier's root secret)
//! with one thing changed, fired at the partner's real Envoy and at the module under the
//! simulator. Every attack must be refused with the status and reason code the verdict table
//! in `docs/PROTOCOL.md` gives, and every legitimate variant (the controls) accepted.
//!
//! `make attack` runs this file with `--nocapture` to print the per-class tables; the
//! per-attack lines are written to `attacks-*.txt` in the run directory under `.run/`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod attack_support;

use std::collections::BTreeSet;
use std::fs;

use attack_support::catalogue::{classes, Gen};
use attack_support::envoy_run::{fire, run_catalogue};
use attack_support::mint::{random_secret, unix_now};
use attack_support::outcome::{table, Judgement, Outcome, Row};
use attack_support::sim_run::Sim;
use keyhop_e2e::envoy;
use keyhop_e2e::{Options, Topology};

/// Prints the table, writes every row to `file`, and checks the totals.
fn report(title: &str, rows: &[Row], file: &std::path::Path, min_attacks: usize) {
    let (text, total) = table(title, rows);
    println!("{text}");
    let details: Vec<String> = rows.iter().map(Row::describe).collect();
    let _ = fs::write(file, format!("{text}\n{}\n", details.join("\n")));
    println!("every attack and its outcome: {}", file.display());

    let failures: Vec<String> = rows
        .iter()
        .filter(|r| !r.judgement.ok())
        .map(Row::describe)
        .collect();
    let classes: BTreeSet<&str> = rows.iter().map(|r| r.class).collect();
    assert!(
        failures.is_empty(),
        "{} attacks or controls went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(total.accepted, 0);
    assert_eq!(
        total.controls_forwarded, total.controls,
        "a legitimate variant was refused"
    );
    assert!(total.tried >= min_attacks, "only {} attacks", total.tried);
    assert!(classes.len() >= 15, "only {} classes", classes.len());
}

#[test]
fn every_attack_is_refused_by_the_partner_envoy() {
    let secret = random_secret();
    let mut options = Options::new("red-team");
    options.secret = Some(secret.clone());
    let topology = Topology::start_with(options).expect("topology");
    let partner = topology.partner_addr();

    let mut gen = Gen::new(&secret, Box::new(unix_now));
    let rows = run_catalogue(&mut gen, false, |attack| Some(fire(partner, attack)));

    report(
        "keyhop red team — real Envoy (envoy/partner-ingress.yaml, --concurrency 2)",
        &rows,
        &topology.run_dir().join("attacks-envoy.txt"),
        300,
    );

    // Nothing refused reached the risk API: it saw only the forwarded requests and the
    // legitimate originals of the replays.
    let forwarded = rows
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Forwarded(_)))
        .count();
    let originals = rows
        .iter()
        .filter(|r| {
            r.class == "replay"
                && (r.name.contains("#0")
                    || r.name.contains("same connection")
                    || r.name.starts_with("replay with"))
        })
        .count();
    assert_eq!(topology.risk_api.received().len(), forwarded + originals);

    // Replays were refused on both of Envoy's worker threads, not only the one that accepted
    // the original: the replay cache is shared.
    let threads = replay_threads(&topology.partner.log());
    println!("replay refusals by Envoy worker thread: {threads:?}");
    assert!(
        threads.len() >= 2,
        "replays were refused on one worker thread only: {threads:?}"
    );
}

/// The Envoy worker threads (the `[thread]` field of Envoy's log line) that refused a replay.
fn replay_threads(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|line| {
            line.contains(r#""keyhop":"audit""#) && line.contains(r#""reason":"replay""#)
        })
        .filter_map(|line| line.split('[').nth(2)?.split(']').next().map(str::to_owned))
        .collect()
}

#[test]
fn every_attack_is_refused_by_the_module_in_the_simulator() {
    envoy::check_prerequisites().expect("the module (KEYHOP_WASM)");
    let wasm = fs::read(envoy::wasm_module()).expect("read the module");
    let secret = random_secret();
    let mut sim = Sim::start(
        &wasm,
        &attack_support::partner_plugin_json(),
        &secret,
        unix_now(),
    );
    let now = sim.now();

    let mut gen = Gen::new(&secret, Box::new(move || now));
    let rows = run_catalogue(&mut gen, true, |attack| sim.fire(attack));

    let dir = keyhop_e2e::topology::new_run_dir("red-team-sim").expect("run dir");
    report(
        "keyhop red team — the module under keyhop-host-sim (2 workers)",
        &rows,
        &dir.join("attacks-sim.txt"),
        250,
    );
    assert!(rows
        .iter()
        .all(|r| r.judgement != Judgement::RefusedByEnvoy));
}

#[test]
fn the_catalogue_has_at_least_fifteen_classes() {
    assert!(classes().len() >= 15);
}
