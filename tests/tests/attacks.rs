//! Red team: several hundred attacks in more than fifteen classes, each built from a real
//! credential (minted with the filter crate's own signer, against the verifier's root secret)
//! with one thing changed, fired at the partner's real Envoy and at the module under the
//! simulator. Every attack must be refused with the status and reason code the verdict table
//! in `docs/PROTOCOL.md` gives, and every legitimate variant (the controls) accepted. With
//! signed responses on, an on-path relay also forges the partner's responses, and the portal
//! must refuse every forgery.
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
    let mut threads = replay_threads(&topology.partner.log());
    if threads.len() < 2 {
        // The kernel picks the worker for each new connection; give it more chances.
        let (credential, _) = gen.fresh();
        let first = fire(
            partner,
            &attack_support::outcome::Attack::new(
                "replay",
                "original",
                credential.clone(),
                Default::default(),
                Default::default(),
            ),
        );
        assert!(matches!(first, Outcome::Forwarded(_)), "{first:?}");
        for _ in 0..60 {
            let replay = fire(
                partner,
                &attack_support::outcome::Attack::new(
                    "replay",
                    "again",
                    credential.clone(),
                    Default::default(),
                    Default::default(),
                ),
            );
            assert!(
                matches!(&replay, Outcome::Filter(401, code) if code == "replay"),
                "{replay:?}"
            );
            threads = replay_threads(&topology.partner.log());
            if threads.len() >= 2 {
                break;
            }
        }
    }
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

/// Rewrites the portal's partner cluster to send to `port` (the response relay) instead.
fn point_partner_cluster_at(yaml: &str, port: u16) -> String {
    let (head, clusters) = yaml.split_once("clusters:").expect("a clusters section");
    let at = clusters.find("port_value: ").expect("a cluster port") + "port_value: ".len();
    let (before, after) = clusters.split_at(at);
    let rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
    format!("{head}clusters:{before}{port}{rest}")
}

/// Signed responses: with `sign_responses` on the partner and `verify_responses` on the
/// portal, an on-path attacker who rewrites, strips, forges or swaps the partner's responses
/// gets a 502 from the portal instead of reaching the application.
#[test]
fn every_forged_response_is_refused_by_the_portal() {
    use attack_support::relay::{rebuild, Relay, Rewrite};
    use keyhop_e2e::http::Response;
    use keyhop_e2e::Request;

    let relay = Relay::start().expect("relay");
    let relay_port = relay.addr().port();
    let mut options = Options::new("red-team-responses");
    options.edit_partner = Some(Box::new(|yaml| {
        // The demo configs sign and check responses already (and a key named twice is
        // refused), so the test checks for them rather than adding them.
        assert!(
            yaml.contains(r#""sign_responses": true"#),
            "envoy/partner-ingress.yaml no longer signs responses"
        );
        yaml.to_string()
    }));
    options.edit_portal = Some(Box::new(move |yaml| {
        assert!(
            yaml.contains(r#""verify_responses": ["/v1/"]"#),
            "envoy/portal-egress.yaml no longer checks the partner's responses"
        );
        point_partner_cluster_at(&yaml, relay_port)
    }));
    let topology = Topology::start_with(options).expect("topology");
    relay.forward_to(topology.partner_addr());

    let edit_params = |response: &Response, edit: &dyn Fn(i64) -> i64| -> Vec<u8> {
        rebuild(response, |_, headers, _| {
            let input = headers.get_str("signature-input").unwrap_or_default();
            let mut out = Vec::new();
            for part in input.split(';') {
                match part.split_once('=') {
                    Some((key @ ("created" | "expires"), value)) => {
                        out.push(format!("{key}={}", edit(value.parse().unwrap_or(0))))
                    }
                    _ => out.push(part.to_owned()),
                }
            }
            headers.set("signature-input", out.join(";"));
        })
    };
    let digest_of =
        |body: &[u8]| keyhop_filter::digest::field_value(&keyhop_filter::digest::sha256(body));

    // (name, rewrite, acceptable reason codes; the status is always 502)
    let cases: Vec<(&str, Rewrite, &[&str])> = vec![
        (
            "body byte changed",
            Box::new(|r, _| rebuild(r, |_, _, b| b[0] = b' ')),
            &["response_digest_mismatch"],
        ),
        (
            "new body with its own digest",
            Box::new(move |r, _| {
                rebuild(r, |_, h, b| {
                    *b = br#"{"score":0,"decision":"approve"}"#.to_vec();
                    h.set("content-digest", digest_of(b));
                })
            }),
            &["response_bad_signature"],
        ),
        (
            "status 200 → 203",
            Box::new(|r, _| rebuild(r, |s, _, _| *s = 203)),
            &["response_bad_signature"],
        ),
        (
            "content-type changed",
            Box::new(|r, _| rebuild(r, |_, h, _| h.set("content-type", "text/html"))),
            &["response_bad_signature"],
        ),
        (
            "content-type removed",
            Box::new(|r, _| rebuild(r, |_, h, _| h.remove("content-type"))),
            &["response_malformed"],
        ),
        (
            "signature removed",
            Box::new(|r, _| rebuild(r, |_, h, _| h.remove("signature"))),
            &["response_malformed"],
        ),
        (
            "signature-input removed",
            Box::new(|r, _| rebuild(r, |_, h, _| h.remove("signature-input"))),
            &["response_malformed"],
        ),
        (
            "both signature fields removed",
            Box::new(|r, _| {
                rebuild(r, |_, h, _| {
                    h.remove("signature");
                    h.remove("signature-input");
                })
            }),
            &["response_unsigned"],
        ),
        (
            "an unsigned answer of the attacker's own",
            Box::new(|_, _| {
                let mut headers = keyhop_e2e::http::Headers::default();
                headers.add("content-type", "application/json");
                Response::new(200, headers, br#"{"decision":"approve"}"#.to_vec()).raw
            }),
            &["response_unsigned"],
        ),
        (
            "signature of the wrong length",
            Box::new(|r, _| rebuild(r, |_, h, _| h.set("signature", "keyhop=:AAAA:"))),
            // Requests refuse a signature that is not 32 bytes as malformed; responses, for
            // now, let the MAC comparison refuse it.
            &["response_malformed", "response_bad_signature"],
        ),
        (
            "a random 32-byte signature",
            Box::new(|r, _| {
                rebuild(r, |_, h, _| {
                    h.set(
                        "signature",
                        "keyhop=:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=:",
                    )
                })
            }),
            &["response_bad_signature"],
        ),
        (
            "signature twice",
            Box::new(|r, _| {
                rebuild(r, |_, h, _| {
                    let signature = h.get_str("signature").unwrap_or_default();
                    h.add("signature", signature);
                })
            }),
            &["response_malformed"],
        ),
        (
            "created and expires moved 1000 s back",
            Box::new(move |r, _| edit_params(r, &|t| t - 1000)),
            &["response_expired"],
        ),
        (
            "created and expires moved 1 s on",
            Box::new(move |r, _| edit_params(r, &|t| t + 1)),
            &["response_bad_signature"],
        ),
        (
            "the previous request's genuine response",
            Box::new(|r, last| last.map_or_else(|| r.raw.clone(), |l| l.raw.clone())),
            &["response_bad_signature"],
        ),
    ];

    let call = |i: usize| {
        let request = Request::post_json(
            &format!("/v1/risk/score?r={i}"),
            &format!(r#"{{"amount":{i}}}"#),
        );
        topology
            .send_as_portal_web(&request)
            .expect("a response from the portal")
    };
    let control = call(0);
    assert_eq!(
        control.status,
        200,
        "an untouched signed response must pass: {}",
        control.text()
    );
    assert!(keyhop_e2e::Echo::from_response(&control).is_some());

    let mut failures = Vec::new();
    let total = cases.len();
    for (i, (name, rewrite, codes)) in cases.into_iter().enumerate() {
        relay.rewrite(None);
        let _ = call(1000 + i); // a genuine response, for the substitution case
        relay.rewrite(Some(rewrite));
        let response = call(i + 1);
        let got = (response.status, response.reason());
        println!("forged response: {name:<42} → {} {:?}", got.0, got.1);
        let expected = got.0 == 502 && got.1.as_deref().is_some_and(|code| codes.contains(&code));
        if !expected {
            failures.push(format!(
                "{name}: expected 502 {codes:?}, got {} {:?} {}",
                got.0,
                got.1,
                response.text()
            ));
        }
    }
    relay.rewrite(None);
    assert_eq!(call(9999).status, 200, "untouched responses pass again");
    println!(
        "forged responses: {total} tried, {} refused by the portal",
        total - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
