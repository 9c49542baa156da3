//! Verifying one inbound request, in two steps: what the headers alone can tell (run as soon
//! as they arrive, so a request without a usable credential is refused before its body is
//! buffered), then the digest, the MAC, the nonce and the route policy once the body is in.

use crate::config::{MtlsBinding, VerifyConfig, VerifyKey};
use crate::digest;
use crate::identity;
use crate::keys::{self, EpochKeyCache};
use crate::message::{self, Request};
use crate::policy;
use crate::profile::{self, Credential};
use crate::reason::Reason;
use crate::replay::SharedStore;
use crate::sigfields;

/// What is known about a request so far, for the audit line: filled in as checks pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The identity claimed in `keyhop-identity` (verified only if the decision is allow).
    pub identity: Option<String>,
    /// The key id the credential names.
    pub key_id: Option<String>,
    /// The key epoch of `created`.
    pub epoch: Option<u64>,
}

/// A credential that passed the header checks, waiting for the body.
#[derive(Debug, Clone)]
pub struct Pending {
    credential: Credential,
    key_index: usize,
    identity: String,
    trust_domain: String,
    epoch: u64,
    signature: Vec<u8>,
}

impl Pending {
    /// The claimed SPIFFE ID (not yet verified).
    pub fn identity(&self) -> &str {
        &self.identity
    }
}

/// A request whose digest and MAC hold: the caller is who it says it is. Its nonce is not
/// yet spent and the route policy not yet applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentic {
    /// The SPIFFE ID the MAC vouches for.
    pub identity: String,
    /// Its trust domain.
    pub trust_domain: String,
    /// Index of the key in the configuration.
    pub key_index: usize,
    /// The key id.
    pub key_id: String,
    /// The key epoch.
    pub epoch: u64,
    /// The request's MAC, which a signed response is bound to.
    pub signature: Vec<u8>,
    nonce: String,
    created: i64,
}

/// A request whose credential holds and whose caller the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The verified SPIFFE ID.
    pub identity: String,
    /// The key id.
    pub key_id: String,
    /// The key epoch.
    pub epoch: u64,
}

/// The longest claimed identity copied into an audit line.
const AUDIT_IDENTITY_MAX: usize = 256;

/// The header checks: shape, key, algorithm, time window, nonce length and identity.
pub fn check_headers(
    config: &VerifyConfig,
    request: &Request<'_>,
    now: i64,
    facts: &mut Facts,
) -> Result<Pending, Reason> {
    let claimed = request.single_header(profile::IDENTITY_HEADER);
    if let Ok(Some(raw)) = claimed {
        facts.identity = std::str::from_utf8(raw)
            .ok()
            .map(|s| s.chars().take(AUDIT_IDENTITY_MAX).collect());
    }

    let input = request.single_header("signature-input")?;
    let signature = request.single_header("signature")?;
    let (Some(input), Some(signature)) = (input, signature) else {
        return Err(Reason::MissingSignature);
    };
    let credential = profile::read_signature_input(input)?;
    facts.key_id = Some(credential.key_id.chars().take(64).collect());
    let signature = sigfields::read_signature(signature, profile::LABEL)?;
    if signature.len() != 32 {
        return Err(Reason::MalformedSignature);
    }

    let (key_index, key) = find_key(config, &credential.key_id)?;
    if credential.alg != key.alg {
        return Err(Reason::AlgorithmMismatch);
    }

    check_time(config, &credential, now)?;
    let epoch = keys::epoch_of(credential.created, config.hop_seconds).ok_or(Reason::Expired)?;
    facts.epoch = Some(epoch);

    let raw_identity = claimed?.ok_or(Reason::MissingIdentity)?;
    let identity_str = std::str::from_utf8(raw_identity).map_err(|_| Reason::InvalidIdentity)?;
    let identity = identity::parse(identity_str)?;
    if !key.trust_domains.iter().any(|d| d == identity.trust_domain) {
        return Err(Reason::IdentityNotVouched);
    }

    Ok(Pending {
        key_index,
        identity: identity.id.to_string(),
        trust_domain: identity.trust_domain.to_string(),
        epoch,
        signature,
        credential,
    })
}

fn find_key<'a>(config: &'a VerifyConfig, key_id: &str) -> Result<(usize, &'a VerifyKey), Reason> {
    config
        .keys
        .iter()
        .enumerate()
        .find(|(_, k)| k.id == key_id)
        .ok_or(Reason::UnknownKey)
}

/// `created` within the asymmetric window, `expires` after `created`, not too far after it,
/// and not passed.
fn check_time(config: &VerifyConfig, credential: &Credential, now: i64) -> Result<(), Reason> {
    let created = credential.created;
    let expires = credential.expires;
    let skew = i64::try_from(config.future_skew_seconds).map_err(|_| Reason::Internal)?;
    let max_age = i64::try_from(config.max_age_seconds).map_err(|_| Reason::Internal)?;
    let max_lifetime = i64::try_from(config.max_lifetime_seconds).map_err(|_| Reason::Internal)?;

    if created > now.saturating_add(skew) {
        return Err(Reason::CreatedInFuture);
    }
    if expires <= created {
        return Err(Reason::BadParameter);
    }
    if expires.saturating_sub(created) > max_lifetime {
        return Err(Reason::LifetimeTooLong);
    }
    if created < now.saturating_sub(max_age) || expires <= now {
        return Err(Reason::Expired);
    }
    Ok(())
}

/// mTLS binding: `peer` is the URI SAN of the connection's verified peer certificate, if any.
pub fn check_peer(
    config: &VerifyConfig,
    pending: &Pending,
    peer: Option<&str>,
) -> Result<(), Reason> {
    match (config.mtls_binding, peer) {
        (MtlsBinding::Off, _) | (MtlsBinding::Prefer, None) => Ok(()),
        (MtlsBinding::Require, None) => Err(Reason::PeerIdentityMissing),
        (_, Some(peer)) if peer == pending.identity => Ok(()),
        (_, Some(_)) => Err(Reason::PeerIdentityMismatch),
    }
}

/// The body checks: digest, then the MAC (constant time).
pub fn authenticate(
    config: &VerifyConfig,
    keys: &mut EpochKeyCache,
    pending: &Pending,
    request: &Request<'_>,
    body: &[u8],
) -> Result<Authentic, Reason> {
    digest::check(
        request.single_header("content-digest")?,
        &digest::sha256(body),
    )?;

    let credential = &pending.credential;
    let base = message::signature_base(
        &credential.components,
        &credential.signature_params,
        request,
    )?;
    let key = config.keys.get(pending.key_index).ok_or(Reason::Internal)?;
    let prepared = keys.get(
        &key.secret,
        &key.id,
        pending.epoch,
        &pending.trust_domain,
        &config.audience,
    )?;
    if !keys::verify_mac(prepared, &base, &pending.signature) {
        return Err(Reason::BadSignature);
    }

    Ok(Authentic {
        identity: pending.identity.clone(),
        trust_domain: pending.trust_domain.clone(),
        key_index: pending.key_index,
        key_id: key.id.clone(),
        epoch: pending.epoch,
        signature: pending.signature.clone(),
        nonce: credential.nonce.clone(),
        created: credential.created,
    })
}

/// What an authentic caller may do: spend the nonce (once across all workers), then apply
/// the route policy.
pub fn authorize(
    config: &VerifyConfig,
    authentic: &Authentic,
    request: &Request<'_>,
    store: &dyn SharedStore,
) -> Result<Verified, Reason> {
    config
        .replay
        .check_and_record(store, &authentic.nonce, authentic.created)?;

    let identity = identity::SpiffeId {
        id: &authentic.identity,
        trust_domain: &authentic.trust_domain,
    };
    policy::decide(&config.routes, request.method, request.path(), &identity)?;

    Ok(Verified {
        identity: authentic.identity.clone(),
        key_id: authentic.key_id.clone(),
        epoch: authentic.epoch,
    })
}

/// [`authenticate`] then [`authorize`].
pub fn finish(
    config: &VerifyConfig,
    keys: &mut EpochKeyCache,
    pending: &Pending,
    request: &Request<'_>,
    body: &[u8],
    store: &dyn SharedStore,
) -> Result<Verified, Reason> {
    let authentic = authenticate(config, keys, pending, request, body)?;
    authorize(config, &authentic, request, store)
}
