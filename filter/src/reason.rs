//! Why a request was refused: one enum, one reason code and one HTTP status per case.

use std::fmt;

/// A typed rejection reason.
///
/// Every hostile or broken input ends in one of these; the code is what the caller sees
/// in the `keyhop-reason` header and the audit line, and what the counters are named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No `Signature` or `Signature-Input` field on the request.
    MissingSignature,
    /// A signature field is not a valid structured field, or not of the profile's shape.
    MalformedSignature,
    /// More than one signature label, or labels that differ between the two fields.
    MultipleSignatures,
    /// A field the profile needs exactly once appears on several lines.
    DuplicateHeader,
    /// A signature parameter the profile requires is absent.
    MissingParameter,
    /// A signature parameter has the wrong type or an unknown name.
    BadParameter,
    /// The `tag` parameter does not name the keyhop profile.
    WrongTag,
    /// A component the profile requires is not covered.
    MissingComponent,
    /// A covered component keyhop does not support (or a component parameter).
    UnsupportedComponent,
    /// A component is covered twice.
    DuplicateComponent,
    /// No configured key has this key id.
    UnknownKey,
    /// The `alg` parameter differs from the algorithm pinned to the key.
    AlgorithmMismatch,
    /// `created` lies further in the future than the allowed skew.
    CreatedInFuture,
    /// `expires` has passed, or `created` is older than the maximum age.
    Expired,
    /// `expires - created` exceeds the configured maximum lifetime.
    LifetimeTooLong,
    /// The nonce is too short to be a 128-bit random value.
    WeakNonce,
    /// The identity header is absent.
    MissingIdentity,
    /// The identity header is not a SPIFFE ID.
    InvalidIdentity,
    /// The identity's trust domain is not one this key may vouch for.
    IdentityNotVouched,
    /// The `Content-Digest` field is absent.
    MissingDigest,
    /// The `Content-Digest` field has no canonical sha-256 member.
    MalformedDigest,
    /// The body does not hash to the digest in `Content-Digest`.
    DigestMismatch,
    /// The MAC over the signature base does not match.
    BadSignature,
    /// The nonce was seen before.
    Replay,
    /// A covered value holds bytes that cannot appear in a signature base.
    InvalidHeaderValue,
    /// A route policy matched and does not allow this identity.
    PolicyDenied,
    /// Policies exist and none matches this method and path.
    NoMatchingPolicy,
    /// The body exceeds the configured maximum.
    BodyTooLarge,
    /// The shared replay store could not be read or written.
    ReplayStoreUnavailable,
    /// The replay store's shard for this nonce is full in this window.
    ReplayCacheFull,
    /// The host did not provide something the filter needs (headers, body, time).
    Internal,
    /// The host gave no random bytes for a nonce.
    RandomUnavailable,
    /// mTLS binding: the peer certificate names no SPIFFE ID, and the binding is required.
    PeerIdentityMissing,
    /// mTLS binding: the peer certificate's SPIFFE ID differs from the credential's identity.
    PeerIdentityMismatch,
    /// A response that must be signed came back without a signature.
    ResponseUnsigned,
    /// A response signature is not of the response profile's shape.
    ResponseMalformed,
    /// A response body does not hash to its `Content-Digest`.
    ResponseDigestMismatch,
    /// A response signature is outside its time window.
    ResponseExpired,
    /// A response MAC does not match (altered, or moved from another request).
    ResponseBadSignature,
    /// A response body exceeds the configured maximum and cannot be signed or checked.
    ResponseTooLarge,
    /// The host never handed over the request body (Envoy without
    /// `allow_on_headers_stop_iteration`): the filter cannot decide.
    BodyNotDelivered,
}

impl Reason {
    /// Every reason, for defining counters up front and for tests.
    pub const ALL: [Reason; 41] = [
        Reason::MissingSignature,
        Reason::MalformedSignature,
        Reason::MultipleSignatures,
        Reason::DuplicateHeader,
        Reason::MissingParameter,
        Reason::BadParameter,
        Reason::WrongTag,
        Reason::MissingComponent,
        Reason::UnsupportedComponent,
        Reason::DuplicateComponent,
        Reason::UnknownKey,
        Reason::AlgorithmMismatch,
        Reason::CreatedInFuture,
        Reason::Expired,
        Reason::LifetimeTooLong,
        Reason::WeakNonce,
        Reason::MissingIdentity,
        Reason::InvalidIdentity,
        Reason::IdentityNotVouched,
        Reason::MissingDigest,
        Reason::MalformedDigest,
        Reason::DigestMismatch,
        Reason::BadSignature,
        Reason::Replay,
        Reason::InvalidHeaderValue,
        Reason::PolicyDenied,
        Reason::NoMatchingPolicy,
        Reason::BodyTooLarge,
        Reason::ReplayStoreUnavailable,
        Reason::ReplayCacheFull,
        Reason::Internal,
        Reason::RandomUnavailable,
        Reason::PeerIdentityMissing,
        Reason::PeerIdentityMismatch,
        Reason::ResponseUnsigned,
        Reason::ResponseMalformed,
        Reason::ResponseDigestMismatch,
        Reason::ResponseExpired,
        Reason::ResponseBadSignature,
        Reason::ResponseTooLarge,
        Reason::BodyNotDelivered,
    ];

    /// The reason code: stable, lowercase, safe to show to the caller.
    pub fn code(self) -> &'static str {
        match self {
            Reason::MissingSignature => "missing_signature",
            Reason::MalformedSignature => "malformed_signature",
            Reason::MultipleSignatures => "multiple_signatures",
            Reason::DuplicateHeader => "duplicate_header",
            Reason::MissingParameter => "missing_parameter",
            Reason::BadParameter => "bad_parameter",
            Reason::WrongTag => "wrong_tag",
            Reason::MissingComponent => "missing_component",
            Reason::UnsupportedComponent => "unsupported_component",
            Reason::DuplicateComponent => "duplicate_component",
            Reason::UnknownKey => "unknown_key",
            Reason::AlgorithmMismatch => "algorithm_mismatch",
            Reason::CreatedInFuture => "created_in_future",
            Reason::Expired => "expired",
            Reason::LifetimeTooLong => "lifetime_too_long",
            Reason::WeakNonce => "weak_nonce",
            Reason::MissingIdentity => "missing_identity",
            Reason::InvalidIdentity => "invalid_identity",
            Reason::IdentityNotVouched => "identity_not_vouched",
            Reason::MissingDigest => "missing_digest",
            Reason::MalformedDigest => "malformed_digest",
            Reason::DigestMismatch => "digest_mismatch",
            Reason::BadSignature => "bad_signature",
            Reason::Replay => "replay",
            Reason::InvalidHeaderValue => "invalid_header_value",
            Reason::PolicyDenied => "policy_denied",
            Reason::NoMatchingPolicy => "no_matching_policy",
            Reason::BodyTooLarge => "body_too_large",
            Reason::ReplayStoreUnavailable => "replay_store_unavailable",
            Reason::ReplayCacheFull => "replay_cache_full",
            Reason::Internal => "internal",
            Reason::RandomUnavailable => "random_unavailable",
            Reason::PeerIdentityMissing => "peer_identity_missing",
            Reason::PeerIdentityMismatch => "peer_identity_mismatch",
            Reason::ResponseUnsigned => "response_unsigned",
            Reason::ResponseMalformed => "response_malformed",
            Reason::ResponseDigestMismatch => "response_digest_mismatch",
            Reason::ResponseExpired => "response_expired",
            Reason::ResponseBadSignature => "response_bad_signature",
            Reason::ResponseTooLarge => "response_too_large",
            Reason::BodyNotDelivered => "body_not_delivered",
        }
    }

    /// The HTTP status of the local reply: 401 for a credential that does not hold,
    /// 403 for a verified caller the policy refuses, 413 for an oversize body,
    /// 502 for a reply from upstream that cannot be trusted and 503 when the filter itself
    /// cannot decide.
    pub fn status(self) -> u16 {
        match self {
            Reason::PolicyDenied | Reason::NoMatchingPolicy => 403,
            Reason::ResponseUnsigned
            | Reason::ResponseMalformed
            | Reason::ResponseDigestMismatch
            | Reason::ResponseExpired
            | Reason::ResponseBadSignature
            | Reason::ResponseTooLarge => 502,
            Reason::BodyTooLarge => 413,
            Reason::ReplayStoreUnavailable
            | Reason::ReplayCacheFull
            | Reason::Internal
            | Reason::RandomUnavailable
            | Reason::BodyNotDelivered => 503,
            _ => 401,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_statuses_are_the_documented_ones() {
        let codes: HashSet<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len());
        assert_eq!(Reason::Replay.status(), 401);
        assert_eq!(Reason::BadSignature.status(), 401);
        assert_eq!(Reason::PolicyDenied.status(), 403);
        assert_eq!(Reason::BodyTooLarge.status(), 413);
        assert_eq!(Reason::ReplayStoreUnavailable.status(), 503);
        assert_eq!(Reason::ResponseBadSignature.status(), 502);
        assert_eq!(Reason::PeerIdentityMismatch.status(), 401);
    }

    /// A partner reads the codes in `docs/PROTOCOL.md`: every one the filter can send is there.
    #[test]
    fn every_code_is_in_the_protocol_document() {
        let protocol = include_str!("../../docs/PROTOCOL.md");
        let missing: Vec<&str> = Reason::ALL
            .iter()
            .map(|r| r.code())
            .filter(|code| !protocol.contains(&format!("`{code}`")))
            .collect();
        assert!(missing.is_empty(), "docs/PROTOCOL.md lacks {missing:?}");
    }
}
