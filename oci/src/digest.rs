//! SHA-256 content digests, written the two ways the OCI and Istio worlds use them.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// The SHA-256 digest of some bytes.
///
/// Displays as an OCI digest (`sha256:<64 hex>`); [`Digest::hex`] gives the bare hex that
/// Istio's `WasmPlugin.spec.sha256` and Envoy's `remote.sha256` expect.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digests `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lowercase hex, 64 characters, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Parses `sha256:<hex>` or bare hex (64 lowercase hex digits).
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() != 64 {
            return None;
        }

        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let (high, low) = match pair {
                [high, low] => (nibble(*high)?, nibble(*low)?),
                _ => return None,
            };
            *slot = (high << 4) | low;
        }
        Some(Self(out))
    }
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2 appendix B.1: SHA-256("abc").
    #[test]
    fn fips_180_2_abc_vector() {
        let digest = Digest::of(b"abc");
        assert_eq!(
            digest.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest.to_string(), format!("sha256:{}", digest.hex()));
    }

    #[test]
    fn parse_round_trips_both_spellings() {
        let digest = Digest::of(b"keyhop");
        assert_eq!(Digest::parse(&digest.hex()), Some(digest));
        assert_eq!(Digest::parse(&digest.to_string()), Some(digest));
    }

    #[test]
    fn parse_refuses_uppercase_short_and_other_algorithms() {
        let hex = Digest::of(b"keyhop").hex();
        assert_eq!(Digest::parse(&hex.to_uppercase()), None);
        assert_eq!(Digest::parse(&hex[..63]), None);
        assert_eq!(Digest::parse(&format!("sha512:{hex}")), None);
    }
}
