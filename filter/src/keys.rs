//! The key schedule: per-epoch HMAC keys derived with HKDF-SHA256 from a root secret.
//!
//! A request signed at `created` uses the key of epoch `floor(created / hop_seconds)`, bound to
//! the key id, the caller's trust domain and the audience. The root secret never leaves the
//! two proxies; an epoch key that leaks is good for one epoch, one caller domain, one audience.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::reason::Reason;

/// HMAC-SHA256 with its key schedule already applied.
pub type HmacSha256 = Hmac<Sha256>;

/// The HKDF salt and the first field of the HKDF info: the profile's name.
pub const PROFILE: &str = "keyhop-v1";

/// The shortest root secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

/// A root secret. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct RootSecret(Vec<u8>);

impl RootSecret {
    /// Wraps secret bytes; shorter than [`MIN_SECRET_LEN`] is refused.
    pub fn new(bytes: Vec<u8>) -> Option<RootSecret> {
        (bytes.len() >= MIN_SECRET_LEN).then_some(RootSecret(bytes))
    }
}

impl fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootSecret(<{} bytes, redacted>)", self.0.len())
    }
}

/// The epoch a `created` time falls in; `None` before 1970 or with a zero hop.
pub fn epoch_of(created: i64, hop_seconds: u64) -> Option<u64> {
    let created = u64::try_from(created).ok()?;
    created.checked_div(hop_seconds)
}

/// The first field of the HKDF info for response keys: requests and responses never share a
/// key, so a request MAC can never pass as a response MAC or the other way round.
pub const RESPONSE_PROFILE: &str = "keyhop-v1-response";

/// Which way a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Caller to verifier.
    Request,
    /// Verifier back to caller.
    Response,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Request => PROFILE,
            Direction::Response => RESPONSE_PROFILE,
        }
    }
}

/// The HKDF info string: profile, key id, epoch (decimal), trust domain and audience,
/// each followed by a zero byte except the last. None of them can contain a zero byte.
pub fn hkdf_info(key_id: &str, epoch: u64, trust_domain: &str, audience: &str) -> Vec<u8> {
    hkdf_info_for(Direction::Request, key_id, epoch, trust_domain, audience)
}

/// [`hkdf_info`] for either direction.
pub fn hkdf_info_for(
    direction: Direction,
    key_id: &str,
    epoch: u64,
    trust_domain: &str,
    audience: &str,
) -> Vec<u8> {
    let epoch = epoch.to_string();
    let label = direction.label();
    let mut info = Vec::with_capacity(
        label.len() + key_id.len() + epoch.len() + trust_domain.len() + audience.len() + 4,
    );
    for (i, part) in [label, key_id, &epoch, trust_domain, audience]
        .iter()
        .enumerate()
    {
        if i > 0 {
            info.push(0);
        }
        info.extend_from_slice(part.as_bytes());
    }
    info
}

/// Derives the 32-byte epoch key for requests.
pub fn derive_epoch_key(
    root: &RootSecret,
    key_id: &str,
    epoch: u64,
    trust_domain: &str,
    audience: &str,
) -> Result<[u8; 32], Reason> {
    derive_key(
        root,
        Direction::Request,
        key_id,
        epoch,
        trust_domain,
        audience,
    )
}

/// Derives the 32-byte epoch key for one direction.
pub fn derive_key(
    root: &RootSecret,
    direction: Direction,
    key_id: &str,
    epoch: u64,
    trust_domain: &str,
    audience: &str,
) -> Result<[u8; 32], Reason> {
    let hkdf = Hkdf::<Sha256>::new(Some(PROFILE.as_bytes()), &root.0);
    let mut okm = [0u8; 32];
    hkdf.expand(
        &hkdf_info_for(direction, key_id, epoch, trust_domain, audience),
        &mut okm,
    )
    .map_err(|_| Reason::Internal)?;
    Ok(okm)
}

/// A prepared HMAC key for one direction, epoch, key id, trust domain and audience.
pub fn prepared_key(
    root: &RootSecret,
    direction: Direction,
    key_id: &str,
    epoch: u64,
    trust_domain: &str,
    audience: &str,
) -> Result<HmacSha256, Reason> {
    let key = derive_key(root, direction, key_id, epoch, trust_domain, audience)?;
    HmacSha256::new_from_slice(&key).map_err(|_| Reason::Internal)
}

/// HMAC-SHA256 of a signature base under a prepared key.
pub fn mac(key: &HmacSha256, base: &[u8]) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(base);
    mac.finalize().into_bytes().into()
}

/// Compares the MAC of `base` with `signature` in constant time.
pub fn verify_mac(key: &HmacSha256, base: &[u8], signature: &[u8]) -> bool {
    let mut mac = key.clone();
    mac.update(base);
    mac.verify_slice(signature).is_ok()
}

/// Which epoch key a cache entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    key_id: String,
    epoch: u64,
    trust_domain: String,
}

/// Recently used epoch keys, with their HMAC state precomputed (the inner and outer pads
/// hashed once per epoch instead of once per request). Small and per VM.
pub struct EpochKeyCache {
    entries: Vec<(CacheKey, HmacSha256)>,
    capacity: usize,
}

impl EpochKeyCache {
    /// A cache holding at most `capacity` epoch keys (at least one).
    pub fn new(capacity: usize) -> EpochKeyCache {
        EpochKeyCache {
            entries: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// The prepared HMAC key for this key id, epoch and trust domain, derived on first use.
    pub fn get(
        &mut self,
        root: &RootSecret,
        key_id: &str,
        epoch: u64,
        trust_domain: &str,
        audience: &str,
    ) -> Result<&HmacSha256, Reason> {
        let position = self.entries.iter().position(|(k, _)| {
            k.epoch == epoch && k.key_id == key_id && k.trust_domain == trust_domain
        });
        let index = match position {
            Some(index) => index,
            None => {
                let key = derive_epoch_key(root, key_id, epoch, trust_domain, audience)?;
                let prepared = HmacSha256::new_from_slice(&key).map_err(|_| Reason::Internal)?;
                if self.entries.len() >= self.capacity {
                    self.entries.remove(0);
                }
                let cache_key = CacheKey {
                    key_id: key_id.to_string(),
                    epoch,
                    trust_domain: trust_domain.to_string(),
                };
                self.entries.push((cache_key, prepared));
                self.entries.len() - 1
            }
        };
        self.entries
            .get(index)
            .map(|(_, k)| k)
            .ok_or(Reason::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// RFC 4231 §4.2, test case 1.
    #[test]
    fn rfc4231_test_case_1() {
        let key = HmacSha256::new_from_slice(&[0x0b; 20]).expect("key");
        assert_eq!(
            mac(&key, b"Hi There").to_vec(),
            hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        );
    }

    /// RFC 4231 §4.3, test case 2 (a key shorter than the block size).
    #[test]
    fn rfc4231_test_case_2() {
        let key = HmacSha256::new_from_slice(b"Jefe").expect("key");
        assert_eq!(
            mac(&key, b"what do ya want for nothing?").to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert!(verify_mac(
            &key,
            b"what do ya want for nothing?",
            &hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        ));
        assert!(!verify_mac(
            &key,
            b"what do ya want for nothing?",
            &[0u8; 32]
        ));
        assert!(!verify_mac(&key, b"what do ya want for nothing?", &[]));
    }

    /// RFC 5869 Appendix A.1, test case 1 (HKDF-SHA256, the primitive under the key schedule).
    #[test]
    fn rfc5869_test_case_1() {
        let ikm = [0x0b; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        let mut okm = [0u8; 42];
        Hkdf::<Sha256>::new(Some(&salt), &ikm)
            .expand(&info, &mut okm)
            .expect("expand");
        assert_eq!(
            okm.to_vec(),
            hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        );
    }

    #[test]
    fn epoch_keys_differ_by_every_bound_input() {
        let root = RootSecret::new(vec![7; 32]).expect("root");
        let base = derive_epoch_key(&root, "k1", 10, "a.example", "aud").expect("key");
        for other in [
            derive_epoch_key(&root, "k2", 10, "a.example", "aud"),
            derive_epoch_key(&root, "k1", 11, "a.example", "aud"),
            derive_epoch_key(&root, "k1", 10, "b.example", "aud"),
            derive_epoch_key(&root, "k1", 10, "a.example", "aud2"),
        ] {
            assert_ne!(other.expect("key"), base);
        }
        assert_eq!(
            hkdf_info("k1", 10, "a.example", "aud"),
            b"keyhop-v1\0k1\x0010\0a.example\0aud"
        );
    }

    #[test]
    fn epochs_and_secrets() {
        assert_eq!(epoch_of(1_700_000_009, 10), Some(170_000_000));
        assert_eq!(epoch_of(-1, 10), None);
        assert_eq!(epoch_of(5, 0), None);
        assert!(RootSecret::new(vec![1; 31]).is_none());
        let root = RootSecret::new(vec![1; 32]).expect("root");
        assert!(!format!("{root:?}").contains("1, 1"));
    }

    #[test]
    fn cache_is_bounded_and_returns_the_derived_key() {
        let root = RootSecret::new(vec![9; 32]).expect("root");
        let mut cache = EpochKeyCache::new(2);
        let direct = derive_epoch_key(&root, "k", 1, "td", "aud").expect("key");
        let expected = mac(&HmacSha256::new_from_slice(&direct).expect("key"), b"x");
        for epoch in [1, 2, 3, 1] {
            cache.get(&root, "k", epoch, "td", "aud").expect("get");
        }
        assert_eq!(cache.entries.len(), 2);
        assert_eq!(
            mac(cache.get(&root, "k", 1, "td", "aud").expect("get"), b"x"),
            expected
        );
    }
}
