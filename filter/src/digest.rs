//! `Content-Digest` (RFC 9530) with the sha-256 algorithm.
//!
//! The verifier never trusts the field: it hashes the body itself and requires the field to
//! carry the same digest, written canonically.

use base64::Engine as _;
use sfv::{BareItem, Dictionary, ListEntry, Parser};
use sha2::{Digest, Sha256};

use crate::reason::Reason;
use crate::sigfields::is_canonical;

/// SHA-256 of a body.
pub fn sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// The `Content-Digest` field value for a body digest: `sha-256=:<base64>:`.
pub fn field_value(digest: &[u8; 32]) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Whether `raw` is exactly [`field_value`] of `digest`, checked without building it.
fn is_field_value(raw: &[u8], digest: &[u8; 32]) -> bool {
    let mut encoded = [0u8; 44];
    let Ok(44) = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut encoded)
    else {
        return false;
    };
    raw.strip_prefix(b"sha-256=:")
        .and_then(|rest| rest.strip_suffix(b":"))
        .is_some_and(|value| value == encoded)
}

/// Checks a received `Content-Digest` field against the digest of the body that arrived.
pub fn check(raw: Option<&[u8]>, body_digest: &[u8; 32]) -> Result<(), Reason> {
    let raw = raw.ok_or(Reason::MissingDigest)?;
    // The field as keyhop writes it, byte for byte: nothing to parse.
    if is_field_value(raw, body_digest) {
        return Ok(());
    }
    let dictionary: Dictionary = Parser::new(raw)
        .parse()
        .map_err(|_| Reason::MalformedDigest)?;
    if !is_canonical(raw, &dictionary) {
        return Err(Reason::MalformedDigest);
    }

    let Some(ListEntry::Item(item)) = dictionary.get("sha-256") else {
        return Err(Reason::MalformedDigest);
    };
    let BareItem::ByteSequence(claimed) = &item.bare_item else {
        return Err(Reason::MalformedDigest);
    };
    if claimed.len() != 32 || !item.params.is_empty() {
        return Err(Reason::MalformedDigest);
    }

    if claimed.as_slice() != body_digest.as_slice() {
        return Err(Reason::DigestMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9530 Appendix B (and §2): `{"hello": "world"}` followed by a newline.
    #[test]
    fn rfc9530_sha256_of_hello_world() {
        let digest = sha256(b"{\"hello\": \"world\"}\n");
        assert_eq!(
            field_value(&digest),
            "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
        );
    }

    #[test]
    fn accepts_the_matching_digest_and_ignores_other_algorithms() {
        let digest = sha256(b"abc");
        let field = field_value(&digest);
        assert_eq!(check(Some(field.as_bytes()), &digest), Ok(()));
        let both = format!("sha-512=:AA==:, {field}");
        assert_eq!(check(Some(both.as_bytes()), &digest), Ok(()));
    }

    #[test]
    fn refuses_missing_malformed_and_mismatched_digests() {
        let digest = sha256(b"abc");
        let other = field_value(&sha256(b"abd"));
        assert_eq!(check(None, &digest), Err(Reason::MissingDigest));
        assert_eq!(
            check(Some(other.as_bytes()), &digest),
            Err(Reason::DigestMismatch)
        );
        assert_eq!(
            check(Some(b"sha-256=abc"), &digest),
            Err(Reason::MalformedDigest)
        );
        assert_eq!(
            check(Some(b"sha-512=:AA==:"), &digest),
            Err(Reason::MalformedDigest)
        );
        assert_eq!(
            check(Some(b"sha-256=:AAAA:"), &digest),
            Err(Reason::MalformedDigest)
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        let padded = format!("sha-256=:{b64}==:");
        assert_eq!(
            check(Some(padded.as_bytes()), &digest),
            Err(Reason::MalformedDigest)
        );
        assert_eq!(
            check(Some(&[0xff, 0xfe]), &digest),
            Err(Reason::MalformedDigest)
        );
    }
}
