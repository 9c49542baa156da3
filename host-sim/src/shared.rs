//! State every VM instance of one simulated Envoy shares, as Envoy's worker
//! threads share it: the clock, shared data, shared queues and metrics.
//!
//! Each [`Shared`] belongs to one [`crate::Host`]; nothing is global, so any
//! number of hosts can run side by side (in parallel tests, for example).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashMap;

use crate::abi::{MetricType, Status};

/// State shared by all VM instances of one host.
#[derive(Debug, Default)]
pub struct Shared {
    clock: Clock,
    data: Mutex<SharedData>,
    queues: Mutex<Queues>,
    metrics: Mutex<Metrics>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a thread panicked while holding it; the maps
    // inside are still consistent (every update is a single insert or replace).
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// A fresh state whose wall clock reads `start_unix_nanos`.
    pub fn new(start_unix_nanos: u64) -> Self {
        let shared = Shared::default();
        shared.clock.wall.store(start_unix_nanos, Ordering::SeqCst);
        shared
    }

    /// The virtual clock all workers read.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// `proxy_get_shared_data`: the value and its CAS token, or `NotFound`.
    pub fn get_data(&self, vm_id: &str, key: &[u8]) -> Result<(Vec<u8>, u32), Status> {
        let mut value = Vec::new();
        let cas = self.read_data(vm_id, key, &mut value)?;
        Ok((value, cas))
    }

    /// [`Shared::get_data`], appending the value to `out` and returning the
    /// CAS token.
    pub fn read_data(&self, vm_id: &str, key: &[u8], out: &mut Vec<u8>) -> Result<u32, Status> {
        let data = lock(&self.data);
        let (value, cas) = data.get(vm_id, key).ok_or(Status::NotFound)?;
        out.extend_from_slice(value);
        Ok(*cas)
    }

    /// `proxy_set_shared_data` with Envoy's CAS rule (a non-zero `cas` must match; a missing key is created).
    pub fn set_data(&self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Status {
        lock(&self.data).set(vm_id, key, value, cas)
    }

    /// `proxy_register_shared_queue`: the queue's token; `owner` is notified of enqueues.
    pub fn register_queue(&self, vm_id: &str, name: &[u8], owner: QueueOwner) -> u32 {
        lock(&self.queues).register(vm_id, name, owner)
    }

    /// `proxy_resolve_shared_queue`: the token of a queue another VM registered.
    pub fn resolve_queue(&self, vm_id: &[u8], name: &[u8]) -> Option<u32> {
        lock(&self.queues).resolve(vm_id, name)
    }

    /// `proxy_enqueue_shared_queue`: appends and raises a queue-ready notification.
    pub fn enqueue(&self, token: u32, value: Vec<u8>) -> Status {
        lock(&self.queues).enqueue(token, value)
    }

    /// `proxy_dequeue_shared_queue`: the oldest item, `Empty`, or `NotFound`.
    pub fn dequeue(&self, token: u32) -> Result<Vec<u8>, Status> {
        lock(&self.queues).dequeue(token)
    }

    /// Takes the queue-ready notifications raised since the last call.
    pub fn take_ready_queues(&self) -> Vec<(QueueOwner, u32)> {
        std::mem::take(&mut lock(&self.queues).ready)
    }

    /// `proxy_define_metric`: the id for this kind and name, created on first use.
    pub fn define_metric(&self, kind: MetricType, name: &[u8]) -> u32 {
        lock(&self.metrics).define(kind, name)
    }

    /// `proxy_increment_metric`, refusing what Envoy refuses.
    pub fn increment_metric(&self, id: u32, offset: i64) -> Status {
        lock(&self.metrics).increment(id, offset)
    }

    /// `proxy_record_metric`: adds to a counter, sets a gauge, samples a histogram.
    pub fn record_metric(&self, id: u32, value: u64) -> Status {
        lock(&self.metrics).record(id, value)
    }

    /// `proxy_get_metric`: a counter's or gauge's value; histograms are `BadArgument`.
    pub fn get_metric(&self, id: u32) -> Result<u64, Status> {
        lock(&self.metrics).get(id)
    }

    /// Every metric defined so far, by name.
    pub fn metrics(&self) -> BTreeMap<String, MetricValue> {
        lock(&self.metrics).snapshot()
    }
}

/// The virtual clock: wall time for `proxy_get_current_time_nanoseconds` and
/// WASI's realtime clock, and a monotonic clock that starts at zero.
#[derive(Debug, Default)]
pub struct Clock {
    wall: AtomicU64,
    monotonic: AtomicU64,
}

impl Clock {
    /// Wall-clock time, Unix nanoseconds.
    pub fn wall_nanos(&self) -> u64 {
        self.wall.load(Ordering::SeqCst)
    }

    /// Monotonic time since the host started, nanoseconds.
    pub fn monotonic_nanos(&self) -> u64 {
        self.monotonic.load(Ordering::SeqCst)
    }

    /// Moves both clocks forward.
    pub fn advance(&self, nanos: u64) {
        let _ = self
            .wall
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(nanos))
            });
        let _ = self
            .monotonic
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(nanos))
            });
    }
}

/// One VM id's entries: key to (value, CAS token). Guests use shared data on
/// every request (a replay cache, for one), so the map hashes with FxHash
/// rather than SipHash; its keys come from the guest under test, not from an
/// attacker.
type Entries = FxHashMap<Vec<u8>, (Vec<u8>, u32)>;

/// Key-value data with compare-and-swap tokens, one namespace per VM id.
#[derive(Debug)]
struct SharedData {
    by_vm: FxHashMap<String, Entries>,
    next_cas: u32,
}

impl Default for SharedData {
    fn default() -> Self {
        SharedData {
            by_vm: FxHashMap::default(),
            next_cas: 1,
        }
    }
}

impl SharedData {
    fn get(&self, vm_id: &str, key: &[u8]) -> Option<&(Vec<u8>, u32)> {
        self.by_vm.get(vm_id).and_then(|entries| entries.get(key))
    }

    /// Envoy's rule: a non-zero `cas` must match the stored entry's token; a
    /// missing key is created whatever `cas` says.
    fn set(&mut self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Status {
        let cas_now = self.next_cas;
        if !self.by_vm.contains_key(vm_id) {
            self.by_vm.insert(vm_id.to_owned(), Entries::default());
        }
        let Some(entries) = self.by_vm.get_mut(vm_id) else {
            return Status::InternalFailure; // inserted just above
        };
        match entries.get_mut(key) {
            Some((_, current)) if cas != 0 && cas != *current => return Status::CasMismatch,
            // Reuses the stored value's allocation.
            Some((stored, current)) => {
                stored.clear();
                stored.extend_from_slice(value);
                *current = cas_now;
            }
            None => {
                entries.insert(key.to_vec(), (value.to_vec(), cas_now));
            }
        }

        // Tokens are never zero: zero means "no check" to the guest.
        self.next_cas = self.next_cas.checked_add(1).unwrap_or(1);
        Status::Ok
    }
}

/// Which VM instance (worker) registered a queue, and its root context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOwner {
    pub worker: usize,
    pub root_context_id: u32,
}

#[derive(Debug)]
struct Queue {
    owner: QueueOwner,
    items: VecDeque<Vec<u8>>,
}

#[derive(Debug, Default)]
struct Queues {
    tokens: HashMap<(Vec<u8>, Vec<u8>), u32>,
    queues: HashMap<u32, Queue>,
    ready: Vec<(QueueOwner, u32)>,
}

impl Queues {
    fn register(&mut self, vm_id: &str, name: &[u8], owner: QueueOwner) -> u32 {
        let key = (vm_id.as_bytes().to_vec(), name.to_vec());
        if let Some(token) = self.tokens.get(&key) {
            // Envoy hands the queue to the latest registrant.
            if let Some(queue) = self.queues.get_mut(token) {
                queue.owner = owner;
            }
            return *token;
        }
        let token = u32::try_from(self.tokens.len() + 1).unwrap_or(u32::MAX);
        self.tokens.insert(key, token);
        self.queues.insert(
            token,
            Queue {
                owner,
                items: VecDeque::new(),
            },
        );
        token
    }

    fn resolve(&self, vm_id: &[u8], name: &[u8]) -> Option<u32> {
        self.tokens.get(&(vm_id.to_vec(), name.to_vec())).copied()
    }

    fn enqueue(&mut self, token: u32, value: Vec<u8>) -> Status {
        let Some(queue) = self.queues.get_mut(&token) else {
            return Status::NotFound;
        };
        queue.items.push_back(value);
        self.ready.push((queue.owner, token));
        Status::Ok
    }

    fn dequeue(&mut self, token: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queues.get_mut(&token).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }
}

/// The value of one metric as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MetricValue {
    pub kind: MetricType,
    /// Counter or gauge value; for a histogram, the number of samples.
    pub value: i64,
    /// Histogram samples (empty for counters and gauges).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<u64>,
}

#[derive(Debug, Default)]
struct Metrics {
    ids: HashMap<(MetricType, Vec<u8>), u32>,
    values: HashMap<u32, (Vec<u8>, MetricValue)>,
}

impl Metrics {
    /// The same name and kind always gets the same id, as in Envoy.
    fn define(&mut self, kind: MetricType, name: &[u8]) -> u32 {
        if let Some(id) = self.ids.get(&(kind, name.to_vec())) {
            return *id;
        }
        let id = u32::try_from(self.ids.len() + 1).unwrap_or(u32::MAX);
        self.ids.insert((kind, name.to_vec()), id);
        let value = MetricValue {
            kind,
            value: 0,
            samples: Vec::new(),
        };
        self.values.insert(id, (name.to_vec(), value));
        id
    }

    fn increment(&mut self, id: u32, offset: i64) -> Status {
        let Some((_, metric)) = self.values.get_mut(&id) else {
            return Status::NotFound;
        };
        match metric.kind {
            // Counters only go up; Envoy refuses a zero or negative offset.
            MetricType::Counter if offset <= 0 => Status::BadArgument,
            MetricType::Counter | MetricType::Gauge => {
                metric.value = metric.value.saturating_add(offset);
                Status::Ok
            }
            MetricType::Histogram => Status::BadArgument,
        }
    }

    fn record(&mut self, id: u32, value: u64) -> Status {
        let Some((_, metric)) = self.values.get_mut(&id) else {
            return Status::NotFound;
        };
        let as_i64 = i64::try_from(value).unwrap_or(i64::MAX);
        match metric.kind {
            // Envoy adds to a counter here rather than setting it.
            MetricType::Counter => metric.value = metric.value.saturating_add(as_i64),
            MetricType::Gauge => metric.value = as_i64,
            MetricType::Histogram => {
                metric.samples.push(value);
                metric.value = i64::try_from(metric.samples.len()).unwrap_or(i64::MAX);
            }
        }
        Status::Ok
    }

    fn get(&self, id: u32) -> Result<u64, Status> {
        let (_, metric) = self.values.get(&id).ok_or(Status::NotFound)?;
        match metric.kind {
            MetricType::Histogram => Err(Status::BadArgument),
            // Gauges may be negative; the ABI returns the two's complement bits.
            _ => Ok(metric.value as u64),
        }
    }

    fn snapshot(&self) -> BTreeMap<String, MetricValue> {
        self.values
            .values()
            .map(|(name, value)| (String::from_utf8_lossy(name).into_owned(), value.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_follows_envoy() {
        let shared = Shared::new(0);
        assert_eq!(shared.get_data("vm", b"k"), Err(Status::NotFound));

        // A missing key is created even with a non-zero cas.
        assert_eq!(shared.set_data("vm", b"k", b"v1", 99), Status::Ok);
        let (value, cas) = shared.get_data("vm", b"k").unwrap();
        assert_eq!(value, b"v1");
        assert_ne!(cas, 0);

        assert_eq!(
            shared.set_data("vm", b"k", b"v2", cas + 1),
            Status::CasMismatch
        );
        assert_eq!(shared.set_data("vm", b"k", b"v2", cas), Status::Ok);
        assert_eq!(shared.set_data("vm", b"k", b"v3", cas), Status::CasMismatch);
        assert_eq!(shared.set_data("vm", b"k", b"v3", 0), Status::Ok);

        // Namespaces are per VM id.
        assert_eq!(shared.get_data("other", b"k"), Err(Status::NotFound));
    }

    #[test]
    fn metrics_follow_envoy() {
        let shared = Shared::new(0);
        let counter = shared.define_metric(MetricType::Counter, b"c");
        assert_eq!(shared.define_metric(MetricType::Counter, b"c"), counter);
        assert_eq!(shared.increment_metric(counter, 0), Status::BadArgument);
        assert_eq!(shared.increment_metric(counter, 2), Status::Ok);
        assert_eq!(shared.get_metric(counter), Ok(2));

        let gauge = shared.define_metric(MetricType::Gauge, b"g");
        assert_eq!(shared.record_metric(gauge, 5), Status::Ok);
        assert_eq!(shared.increment_metric(gauge, -2), Status::Ok);
        assert_eq!(shared.get_metric(gauge), Ok(3));

        let histogram = shared.define_metric(MetricType::Histogram, b"h");
        assert_eq!(shared.record_metric(histogram, 7), Status::Ok);
        assert_eq!(shared.get_metric(histogram), Err(Status::BadArgument));
        assert_eq!(shared.increment_metric(999, 1), Status::NotFound);
    }

    #[test]
    fn queues_notify_their_owner() {
        let shared = Shared::new(0);
        let owner = QueueOwner {
            worker: 1,
            root_context_id: 1,
        };
        let token = shared.register_queue("vm", b"q", owner);
        assert_eq!(shared.resolve_queue(b"vm", b"q"), Some(token));
        assert_eq!(shared.resolve_queue(b"vm", b"nope"), None);
        assert_eq!(shared.dequeue(token), Err(Status::Empty));
        assert_eq!(shared.enqueue(token, b"x".to_vec()), Status::Ok);
        assert_eq!(shared.take_ready_queues(), vec![(owner, token)]);
        assert_eq!(shared.dequeue(token), Ok(b"x".to_vec()));
        assert_eq!(shared.enqueue(token + 1, Vec::new()), Status::NotFound);
    }
}
