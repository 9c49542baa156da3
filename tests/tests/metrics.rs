//! The filter's counters as an operator sees them: admin `/stats` (Envoy prefixes Wasm metrics
//! with `wasmcustom.`) and `/stats/prometheus`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::thread;
use std::time::Duration;

use keyhop_e2e::{Request, Topology};

/// Envoy flushes stats from workers to the admin view periodically; poll instead of sleeping.
fn wait_for_counter(envoy: &keyhop_e2e::envoy::Envoy, name: &str, want: u64) -> u64 {
    let mut got = 0;
    for _ in 0..100 {
        got = envoy.counter(name).expect("admin /stats");
        if got >= want {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    got
}

#[test]
fn decisions_are_counted_in_admin_stats_and_prometheus() {
    let topology = Topology::start("metrics").expect("topology");
    let health = Request::get("/v1/health");

    let (allowed, stolen) = topology.capture(&health).expect("call");
    let replayed = topology
        .send_raw_to_partner(&stolen.raw, &stolen.method)
        .expect("replay");
    let unsigned = topology.send_to_partner(&health).expect("call");
    assert_eq!(
        (allowed.status, replayed.status, unsigned.status),
        (200, 401, 401)
    );

    let partner = &topology.partner;
    assert_eq!(
        wait_for_counter(partner, "wasmcustom.keyhop.verify.allow", 1),
        1
    );
    assert_eq!(
        wait_for_counter(partner, "wasmcustom.keyhop.verify.deny.replay", 1),
        1
    );
    assert_eq!(
        wait_for_counter(
            partner,
            "wasmcustom.keyhop.verify.deny.missing_signature",
            1
        ),
        1
    );
    assert_eq!(
        wait_for_counter(&topology.portal, "wasmcustom.keyhop.sign.signed", 1),
        1
    );

    // Prometheus drops the `wasmcustom` namespace: keyhop.verify.allow -> keyhop_verify_allow.
    let prometheus = partner
        .admin_get("/stats/prometheus")
        .expect("prometheus")
        .text();
    let sample = |name: &str| {
        prometheus
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find(|line| line.split(['{', ' ']).next() == Some(name))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<u64>().ok())
    };
    assert_eq!(sample("keyhop_verify_allow"), Some(1), "{prometheus}");
    assert_eq!(sample("keyhop_verify_deny_replay"), Some(1), "{prometheus}");
}
