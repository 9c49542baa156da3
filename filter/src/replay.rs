//! The replay cache: every nonce is accepted once, across all worker threads of one proxy.
//!
//! Proxy-wasm shared data is a key/value map shared by the VMs of one `vm_id`, with
//! compare-and-swap but no delete. So the cache is a fixed set of keys, reused in a cycle:
//!
//! * a nonce belongs to the time bucket of its credential's `created` (`created / bucket`),
//!   and that bucket to one of `buckets` slots (`bucket % buckets`);
//! * within a slot, the nonce's fingerprint picks one of `shards` keys;
//! * a shard's value is the bucket number it holds (8 bytes) and up to `entries_per_shard`
//!   16-byte fingerprints. A writer that finds an older bucket starts the shard afresh.
//!
//! A slot is recycled only after every credential of its previous bucket has become too old to
//! pass the time checks, so forgetting it is safe. Memory is bounded by
//! `buckets × shards × (8 + 16 × entries_per_shard)` bytes. Updates are compare-and-swap with
//! a bounded number of retries; when the store fails, or a shard is full, the filter cannot
//! decide and says so (503) rather than let a nonce through unrecorded.

use std::hash::Hasher as _;

use siphasher::sip128::{Hasher128 as _, SipHasher13};

use crate::reason::Reason;

/// Compare-and-swap attempts before giving up with 503.
pub const MAX_ATTEMPTS: usize = 32;

const FINGERPRINT_LEN: usize = 16;
const HEADER_LEN: usize = 8;

/// What the host's shared data offers: Envoy's semantics, where `set` with a non-zero `cas`
/// fails unless the key still has that `cas`.
pub trait SharedStore {
    /// The value and its `cas`, or `None` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Stores `value` if the key's `cas` is still `cas` (0: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<SetOutcome, StoreError>;
}

/// The result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// Written.
    Stored,
    /// Another worker wrote first.
    CasMismatch,
}

/// The host's shared data failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreError;

/// The replay cache's shape, fixed by configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCache {
    /// Seconds of `created` time per bucket.
    pub bucket_seconds: u64,
    /// Slots in the cycle.
    pub buckets: u64,
    /// Keys per slot.
    pub shards: u32,
    /// Fingerprints per key.
    pub entries_per_shard: usize,
}

impl ReplayCache {
    /// A cache whose slots outlive every credential the time checks can still accept:
    /// a credential passes while `created` is within `max_age` behind and `future_skew`
    /// ahead of the clock, so a bucket must survive `max_age + future_skew` seconds past its
    /// end, plus one bucket of margin.
    pub fn new(
        bucket_seconds: u64,
        max_age: u64,
        future_skew: u64,
        shards: u32,
        entries: usize,
    ) -> ReplayCache {
        let bucket_seconds = bucket_seconds.max(1);
        let span = max_age.saturating_add(future_skew);
        let buckets = 2 + span.div_ceil(bucket_seconds);
        ReplayCache {
            bucket_seconds,
            buckets,
            shards: shards.max(1),
            entries_per_shard: entries.max(1),
        }
    }

    /// The most bytes the cache's values can occupy in shared data.
    pub fn memory_bound(&self) -> u64 {
        let per_shard = (HEADER_LEN + FINGERPRINT_LEN * self.entries_per_shard) as u64;
        self.buckets * u64::from(self.shards) * per_shard
    }

    /// The shared-data key of one shard of one slot.
    pub fn key(slot: u64, shard: u32) -> ShardKey {
        ShardKey::new(slot, shard)
    }

    /// Creates every key that does not exist yet, so that request-time updates are always
    /// compare-and-swap on an existing key. Run when the plugin is configured, before traffic.
    pub fn init(&self, store: &dyn SharedStore) -> Result<(), StoreError> {
        for slot in 0..self.buckets {
            for shard in 0..self.shards {
                let key = ReplayCache::key(slot, shard);
                if store.get(key.as_str())?.is_none() {
                    store.set(key.as_str(), &0u64.to_le_bytes(), 0)?;
                }
            }
        }
        Ok(())
    }

    /// Records `nonce` for a credential created at `created`; refuses it if already recorded.
    pub fn check_and_record(
        &self,
        store: &dyn SharedStore,
        nonce: &str,
        created: i64,
    ) -> Result<(), Reason> {
        let created = u64::try_from(created).map_err(|_| Reason::Expired)?;
        let bucket = created / self.bucket_seconds;
        let fingerprint = fingerprint(nonce);
        let shard = u32::from_le_bytes([
            fingerprint[0],
            fingerprint[1],
            fingerprint[2],
            fingerprint[3],
        ]) % self.shards;
        let key = ReplayCache::key(bucket % self.buckets, shard);

        for _ in 0..MAX_ATTEMPTS {
            let (value, cas) = store
                .get(key.as_str())
                .map_err(|_| Reason::ReplayStoreUnavailable)?
                .ok_or(Reason::ReplayStoreUnavailable)?;
            let (stored_bucket, entries) = split(&value).ok_or(Reason::ReplayStoreUnavailable)?;

            if stored_bucket > bucket {
                // The slot has moved on to a newer bucket: this credential is older than
                // anything the time checks let through.
                return Err(Reason::Expired);
            }
            let entries = if stored_bucket == bucket {
                entries
            } else {
                &[]
            };
            if entries
                .chunks_exact(FINGERPRINT_LEN)
                .any(|seen| seen == fingerprint)
            {
                return Err(Reason::Replay);
            }
            if entries.len() / FINGERPRINT_LEN >= self.entries_per_shard {
                return Err(Reason::ReplayCacheFull);
            }

            let mut updated = Vec::with_capacity(HEADER_LEN + entries.len() + FINGERPRINT_LEN);
            updated.extend_from_slice(&bucket.to_le_bytes());
            updated.extend_from_slice(entries);
            updated.extend_from_slice(&fingerprint);
            match store.set(key.as_str(), &updated, cas) {
                Ok(SetOutcome::Stored) => return Ok(()),
                Ok(SetOutcome::CasMismatch) => continue,
                Err(StoreError) => return Err(Reason::ReplayStoreUnavailable),
            }
        }
        Err(Reason::ReplayStoreUnavailable)
    }
}

/// `keyhop.replay.SLOT.SHARD`, written on the stack: the key is made on every request, and
/// the longest one (both numbers at their maximum) is 45 bytes.
#[derive(Clone, Copy)]
pub struct ShardKey {
    bytes: [u8; ShardKey::CAPACITY],
    len: usize,
}

impl ShardKey {
    const PREFIX: &'static str = "keyhop.replay.";
    const CAPACITY: usize = ShardKey::PREFIX.len() + 20 + 1 + 10;

    fn new(slot: u64, shard: u32) -> ShardKey {
        let mut key = ShardKey {
            bytes: [0; ShardKey::CAPACITY],
            len: 0,
        };
        let mut digits = itoa::Buffer::new();
        key.push(ShardKey::PREFIX);
        key.push(digits.format(slot));
        key.push(".");
        key.push(digits.format(shard));
        key
    }

    /// Appends ASCII text; the capacity holds the longest key, so nothing is ever cut.
    fn push(&mut self, text: &str) {
        let end = self.len.saturating_add(text.len()).min(ShardKey::CAPACITY);
        if let (Some(to), Some(from)) = (
            self.bytes.get_mut(self.len..end),
            text.as_bytes().get(..end - self.len),
        ) {
            to.copy_from_slice(from);
            self.len = end;
        }
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so the bytes are always UTF-8.
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl std::fmt::Debug for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 128-bit SipHash-1-3 of the nonce, under a fixed key.
///
/// A fingerprint need not be secret or collision-resistant: a replay carries the same nonce,
/// so it always has the same fingerprint and is always caught. A collision can only refuse a
/// fresh credential, never let a replay through (docs/PROTOCOL.md, "Replay cache bound").
/// SipHash costs a fraction of one SHA-256 block.
fn fingerprint(nonce: &str) -> [u8; FINGERPRINT_LEN] {
    let mut hasher = SipHasher13::new_with_keys(FINGERPRINT_KEY.0, FINGERPRINT_KEY.1);
    hasher.write(nonce.as_bytes());
    hasher.finish128().as_bytes()
}

/// SipHash key of [`fingerprint`], the same in every worker and every build: the first 16
/// bytes of SHA-256("keyhop replay fingerprint"), as two little-endian words.
const FINGERPRINT_KEY: (u64, u64) = (0x115c_2a05_f593_9301, 0x6737_87d8_aa61_1d97);

/// Splits a shard value into its bucket and its fingerprints; `None` when malformed.
fn split(value: &[u8]) -> Option<(u64, &[u8])> {
    let (header, entries) = value.split_at_checked(HEADER_LEN)?;
    if entries.len() % FINGERPRINT_LEN != 0 {
        return None;
    }
    let bucket = u64::from_le_bytes(header.try_into().ok()?);
    Some((bucket, entries))
}

/// An in-memory [`SharedStore`] with Envoy's semantics, for tests and native tools. It stands
/// in for host code (Envoy's shared data is C++), so it hashes keys with FxHash, as cheap as
/// the host's own map, and rewrites a value in place: what it costs inside a Wasm VM is then
/// close to what the guest pays in Envoy, a copy of the value out and one back in.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: std::sync::Mutex<rustc_hash::FxHashMap<String, (Vec<u8>, u32)>>,
    next_cas: std::sync::atomic::AtomicU32,
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let map = self.map.lock().map_err(|_| StoreError)?;
        Ok(map.get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<SetOutcome, StoreError> {
        let mut map = self.map.lock().map_err(|_| StoreError)?;
        let next = || {
            self.next_cas
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1
        };
        match map.get_mut(key) {
            Some((_, current)) if cas != 0 && cas != *current => Ok(SetOutcome::CasMismatch),
            Some((stored, current)) => {
                stored.clear();
                stored.extend_from_slice(value);
                *current = next();
                Ok(SetOutcome::Stored)
            }
            None => {
                map.insert(key.to_owned(), (value.to_vec(), next()));
                Ok(SetOutcome::Stored)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn keys_are_written_in_decimal() {
        assert_eq!(ReplayCache::key(0, 0).as_str(), "keyhop.replay.0.0");
        assert_eq!(ReplayCache::key(12, 1023).as_str(), "keyhop.replay.12.1023");
        assert_eq!(
            ReplayCache::key(u64::MAX, u32::MAX).as_str(),
            format!("keyhop.replay.{}.{}", u64::MAX, u32::MAX)
        );
    }

    fn cache() -> ReplayCache {
        ReplayCache::new(10, 30, 5, 4, 8)
    }

    #[test]
    fn a_nonce_passes_once() {
        let store = MemoryStore::default();
        let c = cache();
        c.init(&store).expect("init");
        assert_eq!(c.check_and_record(&store, "n1", 1000), Ok(()));
        assert_eq!(c.check_and_record(&store, "n1", 1000), Err(Reason::Replay));
        assert_eq!(c.check_and_record(&store, "n2", 1000), Ok(()));
    }

    #[test]
    fn without_init_the_filter_cannot_decide() {
        let store = MemoryStore::default();
        assert_eq!(
            cache().check_and_record(&store, "n", 1000),
            Err(Reason::ReplayStoreUnavailable)
        );
    }

    #[test]
    fn slots_outlive_the_acceptance_window_and_then_recycle() {
        let c = ReplayCache::new(10, 30, 5, 1, 8);
        // 30 s of age plus 5 s of skew over 10 s buckets: 4 buckets of span, plus 2.
        assert_eq!(c.buckets, 6);
        let store = MemoryStore::default();
        c.init(&store).expect("init");
        assert_eq!(c.check_and_record(&store, "n", 1000), Ok(()));
        // The same slot, one full cycle later: the old bucket's nonces are forgotten.
        assert_eq!(c.check_and_record(&store, "n", 1000 + 60), Ok(()));
        // And the old bucket can no longer be written to.
        assert_eq!(
            c.check_and_record(&store, "other", 1000),
            Err(Reason::Expired)
        );
    }

    #[test]
    fn a_full_shard_refuses_with_503() {
        let c = ReplayCache::new(10, 30, 5, 1, 2);
        let store = MemoryStore::default();
        c.init(&store).expect("init");
        assert_eq!(c.check_and_record(&store, "a", 1000), Ok(()));
        assert_eq!(c.check_and_record(&store, "b", 1000), Ok(()));
        assert_eq!(
            c.check_and_record(&store, "c", 1000),
            Err(Reason::ReplayCacheFull)
        );
        assert_eq!(Reason::ReplayCacheFull.status(), 503);
        assert_eq!(c.memory_bound(), 6 * (8 + 32));
    }

    #[test]
    fn concurrent_writers_lose_no_nonce_and_accept_each_once() {
        let c = Arc::new(ReplayCache::new(10, 30, 5, 2, 4096));
        let store = Arc::new(MemoryStore::default());
        c.init(store.as_ref()).expect("init");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (c, store) = (Arc::clone(&c), Arc::clone(&store));
                std::thread::spawn(move || {
                    (0..500)
                        .filter(|i| {
                            c.check_and_record(store.as_ref(), &format!("n{i}"), 1000)
                                .is_ok()
                        })
                        .count()
                })
            })
            .collect();
        let accepted: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(accepted, 500);
    }
}
