//! The deadline guard's epoch thread lives exactly as long as the plugin and
//! the hosts started from it. Alone in its own test binary, so that no other
//! test's plugins are counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use keyhop_host_sim::{Guard, Host, Plugin, Verdict};

/// Threads of this process named as the guard names its epoch thread.
#[cfg(target_os = "linux")]
fn epoch_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "keyhop-epoch")
        .count()
}

/// Waits up to a second for the count to become `expected`; the thread
/// notices the last drop at once, but needs a moment to exit.
#[cfg(target_os = "linux")]
fn settles_at(expected: usize) -> bool {
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if epoch_threads() == expected {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    epoch_threads() == expected
}

#[cfg(target_os = "linux")]
#[test]
fn the_epoch_thread_ends_with_the_last_plugin_or_host() {
    let module = Wat::new().module("");
    assert!(settles_at(0));

    let plugin = Plugin::compile(module.as_bytes()).unwrap();
    assert!(settles_at(1));
    let first = Host::start(&plugin, config(), 2).unwrap();
    let mut second = Host::start(&plugin, config(), 1).unwrap();
    assert!(settles_at(1), "one thread per plugin, not per host");

    drop(plugin);
    drop(first);
    assert!(settles_at(1), "a host still uses the engine");
    assert_eq!(second.handle(0, &get("/")).verdict, Verdict::Continued);

    drop(second);
    assert!(settles_at(0), "the thread outlived the last host");

    let fuel = Plugin::compile_with(module.as_bytes(), Guard::Fuel).unwrap();
    let _host = Host::start(&fuel, config(), 1).unwrap();
    assert!(settles_at(0), "fuel needs no thread");
}
