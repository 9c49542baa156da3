//! keyhop-host-sim: run a proxy-wasm module without a mesh.
//!
//! This crate embeds wasmtime and implements the host side of proxy-wasm
//! ABI 0.2.1 the way Envoy does (statuses, body buffering, header-map
//! encoding, shared data with compare-and-swap across worker VMs, metrics,
//! outgoing calls answered from a script) plus the WASI subset Envoy gives a
//! VM. A [`Host`] is one simulated Envoy running one plugin on N workers; a
//! [`scenario`] drives it with scripted requests and checks expectations.
//!
//! It is a test and exploration tool, not a proxy: there is no network, no
//! routing, no TCP (network-filter) streams, no gRPC streaming, and no
//! timeouts. Where it models Envoy it says so at the place it does.

#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod abi;
pub mod config;
pub mod exchange;
pub mod guard;
pub mod report;
pub mod scenario;
pub mod shared;

mod guest;
mod host;
mod hostcalls;
mod properties;
mod random;
mod state;
mod vm;
mod wasi;

pub use config::{CallAnswer, GrpcAnswer, HostConfig};
pub use exchange::{Exchange, Request, Response, Verdict};
pub use guard::Guard;
pub use host::{Host, Plugin};

/// Why a module could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("module does not compile: {0}")]
    Compile(String),
    #[error("module imports {module}.{name}, which this host does not provide")]
    MissingImport { module: String, name: String },
    #[error("module does not export {0}")]
    MissingExport(&'static str),
    #[error("module export {name} has the wrong type: {reason}")]
    BadExport { name: &'static str, reason: String },
    #[error("module does not instantiate: {0}")]
    Instantiate(String),
    #[error("guest trapped in {phase}: {reason}")]
    Trap { phase: &'static str, reason: String },
    #[error("{0} returned false")]
    Rejected(&'static str),
    #[error("worker {worker}: {error}{}", format_logs(logs))]
    Worker {
        worker: usize,
        error: Box<LoadError>,
        logs: Vec<exchange::LogLine>,
    },
}

fn format_logs(logs: &[exchange::LogLine]) -> String {
    logs.iter()
        .map(|line| format!("\n  [{}] {}", line.level, line.message))
        .collect()
}
