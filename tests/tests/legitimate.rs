//! Legitimate traffic is never refused: more than 10,000 signed calls through the partner's
//! real Envoy, over several key epochs (the demo hops every 5 s), with the signer's clock a
//! few seconds behind or ahead (inside the verifier's window), during a key rotation in which
//! the verifier holds two key ids and callers move from the old one to the new one, plus a
//! share signed by the portal's own Envoy.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod attack_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use attack_support::envoy_run::{delivered, Conn};
use attack_support::mint::{random_secret, unix_now, Signer};
use attack_support::{
    rotation_plugin_json, with_inline_env, with_plugin_json, HOP_SECONDS, PORTAL_WEB, REPORT_JOB,
};
use keyhop_e2e::http::Request;
use keyhop_e2e::{Echo, Options, Topology};

/// Calls signed in this process, spread over the direct clients.
const DIRECT_CALLS: usize = 9_600;
/// Calls signed by the portal's Envoy.
const PORTAL_CALLS: usize = 600;
const CLIENTS: usize = 6;
/// The run lasts at least this long, so it spans several key epochs.
const MIN_RUN: Duration = Duration::from_secs(21);
/// Clock offsets of the direct signers, inside the verifier's window (skew 5 s, max age 15 s).
const OFFSETS: [i64; 9] = [-4, -3, -2, -1, 0, 1, 2, 3, 4];

const NEXT_KEY_ID: &str = "portal-2027";
const NEXT_SECRET_ENV: &str = "KEYHOP_NEXT_SECRET";

#[derive(Default)]
struct Seen {
    epochs: BTreeSet<i64>,
    key_ids: BTreeSet<String>,
    offsets: BTreeSet<i64>,
    failures: Vec<String>,
}

#[test]
fn ten_thousand_signed_calls_across_epochs_skew_and_rotation_are_all_accepted() {
    let old_secret = random_secret();
    let next_secret = random_secret();
    let mut options = Options::new("legitimate");
    options.secret = Some(old_secret.clone());
    let inline = next_secret.clone();
    options.edit_partner = Some(Box::new(move |yaml| {
        let yaml = with_plugin_json(&yaml, &rotation_plugin_json(NEXT_KEY_ID, NEXT_SECRET_ENV));
        with_inline_env(&yaml, &[(NEXT_SECRET_ENV, &inline)])
    }));
    let topology = Topology::start_with(options).expect("topology");
    let partner = topology.partner_addr();
    let portal = topology.portal_web();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let per_client = DIRECT_CALLS / CLIENTS;

    let mut workers = Vec::new();
    for client in 0..CLIENTS {
        let (seen, done) = (Arc::clone(&seen), Arc::clone(&done));
        let old = Signer::portal_web(&old_secret);
        let next = Signer::portal_web(&next_secret).key_id(NEXT_KEY_ID);
        workers.push(thread::spawn(move || {
            // One report-job client calls the health route; the others portal-web's risk API.
            let batch = client == CLIENTS - 1;
            let identity = if batch { REPORT_JOB } else { PORTAL_WEB };
            let mut old_minter = old.clone().identity(identity).minter();
            let mut next_minter = next.clone().identity(identity).minter();
            let mut conn = Conn::open(partner).expect("connect");
            for i in 0..per_client {
                pace(start, i, per_client);
                // Rotation: the first third uses the old key, the middle third both, the last
                // third the new key only.
                let use_next = match i * 3 / per_client {
                    0 => false,
                    1 => (i + client) % 2 == 0,
                    _ => true,
                };
                let offset = OFFSETS[(i * 7 + client) % OFFSETS.len()];
                let request = if batch {
                    Request::get("/v1/health")
                } else {
                    Request::post_json(
                        &format!("/v1/risk/score?currency=EUR&n={client}-{i}"),
                        &format!(r#"{{"customer":"c-{client}","amount":{i}}}"#),
                    )
                };
                let created = unix_now() + offset;
                let minter = if use_next { &mut next_minter } else { &mut old_minter };
                let signed = minter.mint(&request, created);

                let response = match conn.send(&signed) {
                    Ok(response) => response,
                    Err(_) => {
                        // Envoy may close a kept-alive connection; one retry on a new one.
                        conn = Conn::open(partner).expect("reconnect");
                        conn.send(&signed).expect("a response")
                    }
                };
                let ok = response.status == 200
                    && Echo::from_response(&response).is_some_and(|echo| {
                        let d = delivered(&echo);
                        d.verified == [identity.to_owned()] && d.leaked.is_empty() && d.target == request.target
                    });
                let mut seen = seen.lock().unwrap();
                if ok {
                    seen.epochs.insert(created / HOP_SECONDS as i64);
                    seen.key_ids.insert(if use_next { NEXT_KEY_ID } else { "portal-2026" }.to_owned());
                    seen.offsets.insert(offset);
                } else if seen.failures.len() < 20 {
                    seen.failures.push(format!(
                        "client {client} call {i} (offset {offset}, next key {use_next}): {} {:?} {}",
                        response.status,
                        response.reason(),
                        response.text()
                    ));
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // The portal's own signer, through its egress Envoy and the tap, on one connection.
    let portal_seen = Arc::clone(&seen);
    workers.push(thread::spawn(move || {
        let mut conn = Conn::open(portal).expect("connect to the portal");
        for i in 0..PORTAL_CALLS {
            pace(start, i, PORTAL_CALLS);
            let request =
                Request::post_json("/v1/risk/score?via=portal", &format!(r#"{{"amount":{i}}}"#));
            let response = match conn.send(&request) {
                Ok(response) => response,
                Err(_) => {
                    conn = Conn::open(portal).expect("reconnect");
                    conn.send(&request).expect("a response")
                }
            };
            if response.status != 200 {
                let mut seen = portal_seen.lock().unwrap();
                seen.failures.push(format!(
                    "portal call {i}: {} {:?} {}",
                    response.status,
                    response.reason(),
                    response.text()
                ));
            }
        }
    }));

    for worker in workers {
        worker.join().expect("client thread");
    }
    let elapsed = start.elapsed();
    let seen = seen.lock().unwrap();
    let total = done.load(Ordering::Relaxed) + PORTAL_CALLS;
    println!(
        "legitimate traffic: {total} calls in {:.1} s ({:.0}/s), {} key epochs, key ids {:?}, clock offsets {:?}, {} refused",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        seen.epochs.len(),
        seen.key_ids,
        seen.offsets,
        seen.failures.len()
    );

    assert!(
        seen.failures.is_empty(),
        "legitimate calls refused:\n{}",
        seen.failures.join("\n")
    );
    assert!(total >= 10_000);
    assert!(
        seen.epochs.len() >= 4,
        "only {} key epochs crossed",
        seen.epochs.len()
    );
    assert_eq!(seen.key_ids.len(), 2);
    assert_eq!(seen.offsets.len(), OFFSETS.len());
    assert_eq!(topology.risk_api.received().len(), total);
}

/// Keeps call `i` of `n` from starting before its share of [`MIN_RUN`] has passed.
fn pace(start: Instant, i: usize, n: usize) {
    let due = MIN_RUN.mul_f64(i as f64 / n as f64);
    if let Some(wait) = due.checked_sub(start.elapsed()) {
        thread::sleep(wait);
    }
}
