//! One credential, many simultaneous replays: the replay cache is shared by all of Envoy's
//! workers (the partner runs with `--concurrency 2`), so exactly one copy gets through.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Barrier};
use std::thread;

use keyhop_e2e::{Request, Topology};

const COPIES: usize = 48;

#[test]
fn parallel_replays_of_an_unused_credential_let_exactly_one_through() {
    let topology = Topology::start("replay-race").expect("topology");
    let body = r#"{"customer":"c-7","amount":5}"#;
    let stolen = topology
        .capture_unused(&Request::post_json("/v1/risk/score", body))
        .expect("a signed request that the partner never saw");
    let partner = topology.partner_addr();

    // Every copy waits at the barrier, then all are sent at once, each on its own connection.
    let barrier = Arc::new(Barrier::new(COPIES));
    let senders: Vec<_> = (0..COPIES)
        .map(|_| {
            let (barrier, bytes) = (Arc::clone(&barrier), stolen.raw.clone());
            thread::spawn(move || {
                barrier.wait();
                keyhop_e2e::http::send_raw(partner, &bytes, "POST")
            })
        })
        .collect();
    let outcomes: Vec<(u16, Option<String>)> = senders
        .into_iter()
        .map(|s| {
            let response = s.join().unwrap().expect("a response to every copy");
            (response.status, response.reason())
        })
        .collect();

    let allowed = outcomes.iter().filter(|(status, _)| *status == 200).count();
    let replays = outcomes
        .iter()
        .filter(|o| **o == (401, Some("replay".to_owned())))
        .count();
    assert_eq!((allowed, replays), (1, COPIES - 1), "{outcomes:?}");
    assert_eq!(topology.risk_api.received().len(), 1);

    // The copies really were spread over both workers (each has its own Wasm VM).
    let per_worker = topology
        .partner
        .stats(&format!("listener.127.0.0.1_{}.worker_", partner.port()))
        .expect("admin /stats");
    let busy_workers = per_worker
        .iter()
        .filter(|(name, count)| name.ends_with(".downstream_cx_total") && **count > 0)
        .count();
    assert_eq!(busy_workers, 2, "{per_worker:?}");
}
