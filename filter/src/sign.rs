//! Minting a credential for one outbound request.

use base64::Engine as _;

use crate::config::SignConfig;
use crate::digest;
use crate::keys::{self, EpochKeyCache};
use crate::message::{self, HeaderMap, Request};
use crate::profile::{self, NewCredential};
use crate::reason::Reason;

/// The header values a signed request carries, and what the audit line needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `content-digest`.
    pub content_digest: String,
    /// `keyhop-identity`.
    pub identity: String,
    /// `signature-input`.
    pub signature_input: String,
    /// `signature`.
    pub signature: String,
    /// The key epoch used.
    pub epoch: u64,
    /// The MAC itself, which a signed response is bound to.
    pub mac: [u8; 32],
}

/// Signs `request` (its method, scheme, authority and path; its headers are not read) with
/// `body`, created at `now`, with the random `nonce` bytes.
pub fn sign(
    config: &SignConfig,
    keys: &mut EpochKeyCache,
    request: &Request<'_>,
    body: &[u8],
    now: i64,
    nonce: &[u8],
) -> Result<Signed, Reason> {
    if nonce.len() < profile::MIN_NONCE_BYTES {
        return Err(Reason::RandomUnavailable);
    }
    let expires = now
        .checked_add_unsigned(config.lifetime_seconds)
        .ok_or(Reason::Internal)?;
    let new = NewCredential {
        created: now,
        expires,
        nonce,
        key_id: &config.key_id,
    };
    let signature_params = profile::signature_params(&new)?;

    let content_digest = digest::field_value(&digest::sha256(body));
    let covered_headers = HeaderMap::from_iter([
        ("content-digest", content_digest.as_str()),
        (profile::IDENTITY_HEADER, config.identity.as_str()),
    ]);
    let signed_view = Request {
        headers: &covered_headers,
        ..*request
    };
    let base =
        message::signature_base(&profile::SIGNED_COMPONENTS, &signature_params, &signed_view)?;

    let epoch = keys::epoch_of(now, config.hop_seconds).ok_or(Reason::Internal)?;
    let key = keys.get(
        &config.secret,
        &config.key_id,
        epoch,
        &config.trust_domain,
        &config.audience,
    )?;
    let mac = keys::mac(key, &base);

    Ok(Signed {
        content_digest,
        identity: config.identity.clone(),
        signature_input: format!("{}={signature_params}", profile::LABEL),
        signature: format!(
            "{}=:{}:",
            profile::LABEL,
            base64::engine::general_purpose::STANDARD.encode(mac)
        ),
        epoch,
        mac,
    })
}
