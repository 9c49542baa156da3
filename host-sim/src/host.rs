//! A simulated Envoy: one compiled module, one plugin configuration, and
//! one VM instance per worker, all sharing one [`Shared`] state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Config, Engine, ExternType, InstancePre, Linker, Module};

use crate::config::HostConfig;
use crate::exchange::{Exchange, LogLine, Request};
use crate::guard::{EpochTicker, Guard};
use crate::shared::{MetricValue, Shared};
use crate::state::VmState;
use crate::vm::Vm;
use crate::{hostcalls, wasi, LoadError};

/// Queue notifications can trigger more enqueues; this bounds the rounds.
const MAX_QUEUE_ROUNDS: usize = 100;

/// A compiled proxy-wasm module with the host functions linked, ready to be
/// instantiated by any number of [`Host`]s. Compiling is the slow part, so
/// tests and benches compile once and start many hosts from it.
#[derive(Clone)]
pub struct Plugin {
    pre: InstancePre<VmState>,
    guard: Guard,
    /// Keeps the epoch thread of [`Guard::Deadline`] running.
    ticker: Option<Arc<EpochTicker>>,
}

impl Plugin {
    /// Compiles a module (binary `.wasm`, or WAT text) and checks that every
    /// import it needs is one this host provides. A callback that runs past
    /// [`HostConfig::callback_time_limit`] is stopped as a trap
    /// ([`Guard::Deadline`]).
    pub fn compile(wasm: &[u8]) -> Result<Plugin, LoadError> {
        Plugin::compile_with(wasm, Guard::default())
    }

    /// Like [`Plugin::compile`], with the given guard against a callback that
    /// never returns; [`Guard::Fuel`] for a budget counted in wasm
    /// instructions ([`HostConfig::fuel_per_callback`]) instead of time.
    pub fn compile_with(wasm: &[u8], guard: Guard) -> Result<Plugin, LoadError> {
        let mut config = Config::new();
        guard.configure(&mut config);
        if std::env::var_os("KEYHOP_SIM_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let module =
            Module::new(&engine, wasm).map_err(|e| LoadError::Compile(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        let mut provided = Vec::new();
        hostcalls::add_to_linker(&mut linker, &mut provided)
            .and_then(|()| wasi::add_to_linker(&mut linker, &mut provided))
            .map_err(|e| LoadError::Compile(format!("linking host functions: {e:#}")))?;

        for import in module.imports() {
            let known = provided
                .iter()
                .any(|(m, n)| m == import.module() && n == import.name());
            if !known || !matches!(import.ty(), ExternType::Func(_)) {
                return Err(LoadError::MissingImport {
                    module: import.module().to_owned(),
                    name: import.name().to_owned(),
                });
            }
        }
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;

        let ticker = match guard {
            Guard::Deadline => Some(EpochTicker::start(&engine).map_err(|e| {
                LoadError::Instantiate(format!("starting the deadline thread: {e}"))
            })?),
            Guard::Fuel => None,
        };
        Ok(Plugin { pre, guard, ticker })
    }

    /// The guard this module was compiled with.
    pub fn guard(&self) -> Guard {
        self.guard
    }
}

/// One simulated Envoy. Everything it holds is its own: two hosts never share
/// state, so tests can run many in parallel.
pub struct Host {
    config: Arc<HostConfig>,
    shared: Arc<Shared>,
    logs: Arc<Mutex<Vec<LogLine>>>,
    vms: Vec<Vm>,
    /// Keeps the plugin's epoch thread running while this host lives, even
    /// once the [`Plugin`] itself is dropped.
    _ticker: Option<Arc<EpochTicker>>,
}

impl Host {
    /// Starts `workers` VM instances of `plugin` (at least one), each through
    /// `proxy_on_vm_start` and `proxy_on_configure`, as Envoy does per worker.
    pub fn start(plugin: &Plugin, config: HostConfig, workers: usize) -> Result<Host, LoadError> {
        let config = Arc::new(config);
        let shared = Arc::new(Shared::new(config.clock_start_nanos));
        let logs = Arc::new(Mutex::new(Vec::new()));

        let mut vms = Vec::new();
        for worker in 0..workers.max(1) {
            let vm = Vm::start(
                &plugin.pre,
                plugin.guard,
                config.clone(),
                shared.clone(),
                logs.clone(),
                worker,
            )
            .map_err(|error| LoadError::Worker {
                worker,
                error: Box::new(error),
                logs: take(&logs),
            })?;
            vms.push(vm);
        }

        let mut host = Host {
            config,
            shared,
            logs,
            vms,
            _ticker: plugin.ticker.clone(),
        };
        host.deliver_queue_notifications();
        Ok(host)
    }

    /// Compiles `wasm` and starts it; see [`Plugin::compile`] and [`Host::start`].
    pub fn load(wasm: &[u8], config: HostConfig, workers: usize) -> Result<Host, LoadError> {
        Host::start(&Plugin::compile(wasm)?, config, workers)
    }

    /// The settings this host was started with.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Number of workers (VM instances).
    pub fn workers(&self) -> usize {
        self.vms.len()
    }

    /// The guest failure that stopped a worker's VM, if any.
    pub fn worker_failure(&self, worker: usize) -> Option<&str> {
        self.vms.get(worker).and_then(Vm::failed)
    }

    /// Runs `request` on `worker` (modulo the number of workers) and reports
    /// the exchange, including every log line written meanwhile.
    pub fn handle(&mut self, worker: usize, request: &Request) -> Exchange {
        let index = worker % self.vms.len().max(1);
        // Lines logged before this request (start-up, ticks) stay with
        // `take_logs`, not with this exchange.
        let earlier = take(&self.logs);

        let mut exchange = match self.vms.get_mut(index) {
            Some(vm) => vm.handle(request),
            None => unreachable_exchange(),
        };
        self.deliver_queue_notifications();

        exchange.logs = take(&self.logs);
        put_back(&self.logs, earlier);
        exchange
    }

    /// Moves the virtual clock forward and fires due ticks on every worker.
    pub fn advance(&mut self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.shared.clock().advance(nanos);
        for vm in &mut self.vms {
            vm.tick_if_due();
        }
        self.deliver_queue_notifications();
    }

    /// Current wall-clock time of the virtual clock, in Unix nanoseconds.
    pub fn now_nanos(&self) -> u64 {
        self.shared.clock().wall_nanos()
    }

    /// Log lines not attached to an exchange (start-up, ticks, queues).
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        take(&self.logs)
    }

    /// Every metric the guest defined, with its current value.
    pub fn metrics(&self) -> BTreeMap<String, MetricValue> {
        self.shared.metrics()
    }

    /// The state shared by this host's workers.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    fn deliver_queue_notifications(&mut self) {
        for _ in 0..MAX_QUEUE_ROUNDS {
            let ready = self.shared.take_ready_queues();
            if ready.is_empty() {
                return;
            }
            for (owner, token) in ready {
                if let Some(vm) = self.vms.get_mut(owner.worker) {
                    vm.queue_ready(owner.root_context_id, token);
                }
            }
        }
    }
}

fn take(logs: &Mutex<Vec<LogLine>>) -> Vec<LogLine> {
    std::mem::take(&mut *logs.lock().unwrap_or_else(|p| p.into_inner()))
}

fn put_back(logs: &Mutex<Vec<LogLine>>, mut earlier: Vec<LogLine>) {
    let mut guard = logs.lock().unwrap_or_else(|p| p.into_inner());
    earlier.append(&mut guard);
    *guard = earlier;
}

fn unreachable_exchange() -> Exchange {
    // `start` always creates at least one worker, so this is never used; it
    // exists so that `handle` has no panicking path.
    Exchange {
        notes: vec!["no worker".to_owned()],
        ..Exchange::new(0, 0, crate::exchange::Verdict::Reset)
    }
}
