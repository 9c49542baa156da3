//! How one simulated Envoy is set up: the plugin it runs and the world
//! around it (environment, properties, answers to outgoing calls).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::abi::{LogLevel, Pairs};

/// Settings of a simulated Envoy and the plugin it runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `plugin_name` (Envoy's `config.name`).
    pub plugin_name: String,
    /// `plugin_root_id` (Envoy's `config.root_id`).
    pub root_id: String,
    /// The VM id; shared data and queues are namespaced by it.
    pub vm_id: String,
    /// Bytes the guest reads as the plugin configuration in `proxy_on_configure`.
    pub plugin_configuration: Vec<u8>,
    /// Bytes the guest reads as the VM configuration in `proxy_on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// The VM's environment (Envoy's `vm_config.environment_variables`),
    /// visible through WASI `environ_get`.
    pub env: Vec<(String, String)>,
    /// Lines below this level are dropped; `proxy_get_log_level` returns it.
    pub log_level: LogLevel,
    /// Host-wide properties by dotted path (`source.address`,
    /// `listener_direction`, ...), encoded as Envoy encodes them.
    pub properties: BTreeMap<String, Vec<u8>>,
    /// Answers to `proxy_http_call`, by upstream (cluster) name. A call to an
    /// upstream not listed here is refused with `BadArgument`, as Envoy
    /// refuses an unknown cluster.
    pub http_answers: BTreeMap<String, CallAnswer>,
    /// Answers to `proxy_grpc_call`, by `service/method`.
    pub grpc_answers: BTreeMap<String, GrpcAnswer>,
    /// Seed for WASI `random_get`; `None` uses the operating system's source.
    pub seed: Option<u64>,
    /// Wall-clock time the virtual clock starts at, in Unix nanoseconds.
    pub clock_start_nanos: u64,
    /// Wall-clock time one guest callback may run before it is stopped as a
    /// trap; `None` for no limit. Keeps a looping module from hanging the
    /// simulator. Used by plugins compiled with [`Guard::Deadline`](crate::Guard::Deadline), the
    /// default; precise to [`EPOCH_TICK`](crate::guard::EPOCH_TICK).
    pub callback_time_limit: Option<Duration>,
    /// Fuel (roughly, wasm instructions) one guest callback may use before it
    /// is stopped as a trap; `None` for no limit. Used only by plugins
    /// compiled with [`Guard::Fuel`](crate::Guard::Fuel).
    pub fuel_per_callback: Option<u64>,
    /// Largest linear memory a VM may grow to, in bytes. A `memory.grow` beyond it
    /// returns -1 to the guest (the Wasm spec's answer), which is no failure unless the
    /// guest then traps.
    pub max_memory_bytes: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            plugin_name: "keyhop".to_owned(),
            root_id: "keyhop".to_owned(),
            vm_id: "keyhop".to_owned(),
            plugin_configuration: Vec::new(),
            vm_configuration: Vec::new(),
            env: Vec::new(),
            log_level: LogLevel::Trace,
            properties: BTreeMap::new(),
            http_answers: BTreeMap::new(),
            grpc_answers: BTreeMap::new(),
            seed: None,
            clock_start_nanos: 1_764_763_200_000_000_000,
            callback_time_limit: Some(Duration::from_secs(5)),
            fuel_per_callback: Some(5_000_000_000),
            max_memory_bytes: 512 << 20,
        }
    }
}

/// The answer to one HTTP call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallAnswer {
    /// Response headers, `:status` included. Empty headers with `failed`
    /// set model a reset or timeout: Envoy then reports zero headers.
    pub headers: Pairs,
    pub body: Vec<u8>,
    pub trailers: Pairs,
    pub failed: bool,
}

/// The answer to one gRPC call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcAnswer {
    /// gRPC status; 0 delivers `message` through `proxy_on_grpc_receive`,
    /// anything else closes the call through `proxy_on_grpc_close`.
    pub status: u32,
    pub message: Vec<u8>,
}
