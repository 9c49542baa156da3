//! Stopping a guest callback that never returns.
//!
//! Envoy has no such guard (a looping filter hangs its worker); the simulator
//! has one so that a broken module fails a test instead of hanging it. Two
//! kinds, chosen when the module is compiled because each changes the code
//! Cranelift emits:
//!
//! - [`Guard::Deadline`], the default: wasmtime's epoch interruption. A
//!   thread per compiled [`Plugin`](crate::Plugin) advances the engine's epoch
//!   every [`EPOCH_TICK`]; a callback still running after its wall-clock limit
//!   ([`HostConfig::callback_time_limit`]) traps at its next loop or call. The
//!   check costs a few loads and a compare at function entries and loop heads.
//! - [`Guard::Fuel`]: fuel metering. A callback traps after a set number of
//!   units of fuel ([`HostConfig::fuel_per_callback`]), the same on every run
//!   and every machine, but counting fuel slows guest code by about a fifth.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine, Store};

use crate::config::HostConfig;

/// How often the deadline guard's thread advances the epoch: the precision
/// of [`HostConfig::callback_time_limit`].
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How a compiled module is kept from running forever; see the module
/// documentation of `guard` for the costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Guard {
    /// A wall-clock limit per callback, [`HostConfig::callback_time_limit`].
    #[default]
    Deadline,
    /// A fuel budget per callback, [`HostConfig::fuel_per_callback`]:
    /// deterministic, and slower.
    Fuel,
}

impl Guard {
    /// Sets up `config` to compile code that this guard can stop.
    pub(crate) fn configure(self, config: &mut Config) {
        match self {
            Guard::Deadline => config.epoch_interruption(true),
            Guard::Fuel => config.consume_fuel(true),
        };
    }
}

/// Advances an engine's epoch every [`EPOCH_TICK`] on a thread of its own,
/// for as long as any clone of the `Arc` holding this value lives. Each
/// [`Plugin`](crate::Plugin) holds one and so does every [`Host`](crate::Host)
/// started from it, so the thread ends with the last of them: dropping this
/// drops the channel's only sender, which wakes the thread at once.
pub(crate) struct EpochTicker {
    _stop: mpsc::Sender<()>,
}

impl EpochTicker {
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Arc<EpochTicker>> {
        let (stop, stopped) = mpsc::channel::<()>();
        let engine = engine.clone();
        std::thread::Builder::new()
            .name("keyhop-epoch".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Arc::new(EpochTicker { _stop: stop }))
    }
}

/// What a store is given before each guest callback.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    /// Epoch ticks from now until the callback is stopped.
    EpochTicks(u64),
    Fuel(u64),
}

impl Budget {
    pub(crate) fn new(guard: Guard, config: &HostConfig) -> Budget {
        match guard {
            Guard::Deadline => Budget::EpochTicks(epoch_ticks(config.callback_time_limit)),
            Guard::Fuel => Budget::Fuel(config.fuel_per_callback.unwrap_or(u64::MAX)),
        }
    }

    /// Gives `store` this budget afresh, for the callback about to run.
    pub(crate) fn arm<T>(self, store: &mut Store<T>) {
        match self {
            Budget::EpochTicks(ticks) => store.set_epoch_deadline(ticks),
            // Fails only when fuel is not enabled on the engine, and it is
            // whenever the budget is fuel.
            Budget::Fuel(fuel) => {
                let _ = store.set_fuel(fuel);
            }
        }
    }
}

/// The epoch deadline, in ticks from now, for a callback limited to `limit`.
/// The next tick may come just after the deadline is set, so it is one tick
/// more than the limit needs: a callback is stopped no sooner than `limit`
/// after it starts, and less than two ticks after that (on an idle machine).
fn epoch_ticks(limit: Option<Duration>) -> u64 {
    // Far enough never to come, small enough that wasmtime's
    // `current epoch + ticks` cannot overflow.
    const NEVER: u64 = u64::MAX >> 2;

    let Some(limit) = limit else {
        return NEVER;
    };
    let ticks = limit.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
    u64::try_from(ticks).map_or(NEVER, |ticks| ticks.min(NEVER) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_never_comes_before_the_limit() {
        assert_eq!(epoch_ticks(Some(Duration::ZERO)), 1);
        assert_eq!(epoch_ticks(Some(Duration::from_millis(1))), 2);
        assert_eq!(epoch_ticks(Some(Duration::from_millis(10))), 2);
        assert_eq!(epoch_ticks(Some(Duration::from_millis(11))), 3);
        assert_eq!(epoch_ticks(Some(Duration::from_secs(5))), 501);
        assert_eq!(epoch_ticks(None), u64::MAX >> 2);
        // No overflow, however long the limit.
        assert!(epoch_ticks(Some(Duration::MAX)) <= (u64::MAX >> 2) + 1);
    }
}
