//! Verifying one inbound request, in two steps: what the headers alone can tell (run as soon
//! as they arrive, so a request without a usable credential is refused before its body is
//! buffered), then the digest, the MAC, the nonce and the route policy once the body is in.

use std::borrow::Cow;

use crate::config::{MtlsBinding, VerifyConfig, VerifyKey};
use crate::digest;
use crate::identity;
use crate::keys::{self, EpochKeyCache};
use crate::message::{self, Component, Request};
use crate::policy;
use crate::profile;
use crate::reason::Reason;
use crate::replay::SharedStore;
use crate::sigfields;

/// What the header checks learn that the audit line reports and the request does not carry:
/// filled in as checks pass. (The claimed identity and key id are in the headers; the audit
/// line reads them there, only when it is written.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The key epoch of `created`.
    pub epoch: Option<u64>,
}

/// The strings a credential carries that verify needs after the header checks, in one
/// allocation: `@signature-params`, nonce, key id and claimed identity, one after another.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claims {
    text: String,
    params_end: usize,
    nonce_end: usize,
    key_id_end: usize,
    /// The identity's trust domain ends here (it starts after `spiffe://`).
    trust_domain_end: usize,
}

/// Where a SPIFFE ID's trust domain starts: after `spiffe://`.
const TRUST_DOMAIN_AT: usize = "spiffe://".len();

impl Claims {
    fn new(params: &profile::Params<'_>, identity: &identity::SpiffeId<'_>) -> Claims {
        let mut text = String::with_capacity(
            params.signature_params.len()
                + params.nonce.len()
                + params.key_id.len()
                + identity.id.len(),
        );
        text.push_str(params.signature_params);
        let params_end = text.len();
        text.push_str(params.nonce);
        let nonce_end = text.len();
        text.push_str(params.key_id);
        let key_id_end = text.len();
        text.push_str(identity.id);
        Claims {
            trust_domain_end: key_id_end + TRUST_DOMAIN_AT + identity.trust_domain.len(),
            text,
            params_end,
            nonce_end,
            key_id_end,
        }
    }

    fn part(&self, from: usize, to: usize) -> &str {
        self.text.get(from..to).unwrap_or_default()
    }

    fn signature_params(&self) -> &str {
        self.part(0, self.params_end)
    }

    fn nonce(&self) -> &str {
        self.part(self.params_end, self.nonce_end)
    }

    fn key_id(&self) -> &str {
        self.part(self.nonce_end, self.key_id_end)
    }

    fn identity(&self) -> &str {
        self.part(self.key_id_end, self.text.len())
    }

    fn trust_domain(&self) -> &str {
        self.part(self.key_id_end + TRUST_DOMAIN_AT, self.trust_domain_end)
    }
}

/// A credential that passed the header checks, waiting for the body.
#[derive(Debug, Clone)]
pub struct Pending {
    claims: Claims,
    components: Cow<'static, [Component]>,
    created: i64,
    key_index: usize,
    epoch: u64,
    signature: [u8; 32],
}

impl Pending {
    /// The claimed SPIFFE ID (not yet verified).
    pub fn identity(&self) -> &str {
        self.claims.identity()
    }
}

/// A request whose digest and MAC hold: the caller is who it says it is. Its nonce is not
/// yet spent and the route policy not yet applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentic {
    claims: Claims,
    created: i64,
    /// Index of the key in the configuration.
    pub key_index: usize,
    /// The key epoch.
    pub epoch: u64,
    /// The request's MAC, which a signed response is bound to.
    pub signature: [u8; 32],
}

impl Authentic {
    /// The SPIFFE ID the MAC vouches for.
    pub fn identity(&self) -> &str {
        self.claims.identity()
    }

    /// Its trust domain.
    pub fn trust_domain(&self) -> &str {
        self.claims.trust_domain()
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        self.claims.key_id()
    }

    /// What is left once the nonce is spent and the policy allows.
    pub fn into_verified(self) -> Verified {
        Verified {
            identity: self.identity().to_owned(),
            key_id: self.key_id().to_owned(),
            epoch: self.epoch,
        }
    }
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

/// The header checks: shape, key, algorithm, time window, nonce length and identity.
pub fn check_headers(
    config: &VerifyConfig,
    request: &Request<'_>,
    now: i64,
    facts: &mut Facts,
) -> Result<Pending, Reason> {
    let claimed = request.single_header(profile::IDENTITY_HEADER);
    let input = request.single_header("signature-input")?;
    let signature = request.single_header("signature")?;
    let (Some(input), Some(signature)) = (input, signature) else {
        return Err(Reason::MissingSignature);
    };
    profile::with_params(input, |params| {
        let signature = sigfields::read_signature(signature, profile::LABEL)?;

        let (key_index, key) = find_key(config, params.key_id)?;
        if params.alg != key.alg {
            return Err(Reason::AlgorithmMismatch);
        }

        check_time(config, params.created, params.expires, now)?;
        let epoch = keys::epoch_of(params.created, config.hop_seconds).ok_or(Reason::Expired)?;
        facts.epoch = Some(epoch);

        let raw_identity = claimed?.ok_or(Reason::MissingIdentity)?;
        let identity_str =
            std::str::from_utf8(raw_identity).map_err(|_| Reason::InvalidIdentity)?;
        let identity = identity::parse(identity_str)?;
        if !key.trust_domains.iter().any(|d| d == identity.trust_domain) {
            return Err(Reason::IdentityNotVouched);
        }

        Ok(Pending {
            claims: Claims::new(&params, &identity),
            components: params.owned_components(),
            created: params.created,
            key_index,
            epoch,
            signature,
        })
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
fn check_time(config: &VerifyConfig, created: i64, expires: i64, now: i64) -> Result<(), Reason> {
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
        (_, Some(peer)) if peer == pending.identity() => Ok(()),
        (_, Some(_)) => Err(Reason::PeerIdentityMismatch),
    }
}

/// The body checks: digest, then the MAC (constant time).
pub fn authenticate(
    config: &VerifyConfig,
    keys: &mut EpochKeyCache,
    pending: Pending,
    request: &Request<'_>,
    body: &[u8],
) -> Result<Authentic, Reason> {
    digest::check(
        request.single_header("content-digest")?,
        &digest::sha256(body),
    )?;

    let base = message::signature_base(
        &pending.components,
        pending.claims.signature_params(),
        request,
    )?;
    let key = config.keys.get(pending.key_index).ok_or(Reason::Internal)?;
    let prepared = keys.get(
        &key.secret,
        &key.id,
        pending.epoch,
        pending.claims.trust_domain(),
        &config.audience,
    )?;
    if !keys::verify_mac(prepared, &base, &pending.signature) {
        return Err(Reason::BadSignature);
    }

    let Pending {
        claims,
        created,
        key_index,
        epoch,
        signature,
        ..
    } = pending;
    Ok(Authentic {
        claims,
        created,
        key_index,
        epoch,
        signature,
    })
}

/// What an authentic caller may do: spend the nonce (once across all workers), then apply
/// the route policy.
pub fn authorize(
    config: &VerifyConfig,
    authentic: &Authentic,
    request: &Request<'_>,
    store: &dyn SharedStore,
) -> Result<(), Reason> {
    config
        .replay
        .check_and_record(store, authentic.claims.nonce(), authentic.created)?;

    let identity = identity::SpiffeId {
        id: authentic.identity(),
        trust_domain: authentic.trust_domain(),
    };
    policy::decide(&config.routes, request.method, request.path(), &identity)
}

/// [`authenticate`] then [`authorize`].
pub fn finish(
    config: &VerifyConfig,
    keys: &mut EpochKeyCache,
    pending: Pending,
    request: &Request<'_>,
    body: &[u8],
    store: &dyn SharedStore,
) -> Result<Verified, Reason> {
    let authentic = authenticate(config, keys, pending, request, body)?;
    authorize(config, &authentic, request, store)?;
    Ok(authentic.into_verified())
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENTS: &str =
        r#"("@method" "@authority" "@path" "@query" "content-digest" "keyhop-identity")"#;

    #[test]
    fn claims_give_back_each_string_they_hold() {
        let canonical = format!(
            r#"keyhop={COMPONENTS};created=1700000000;expires=1700000010;nonce="BwcHBwcHBwcHBwcHBwcHBw";keyid="k1";alg="hmac-sha256";tag="keyhop-v1""#
        );
        // Parameters in another order: the general parser's path, with its own serialisation.
        let general = format!(
            r#"keyhop={COMPONENTS};keyid="portal-2026";created=1700000000;expires=1700000010;tag="keyhop-v1";alg="hmac-sha256";nonce="AAAAAAAAAAAAAAAAAAAAAAAA""#
        );
        let identities = [
            (
                "spiffe://finsphere.example/ns/portal/sa/portal-web",
                "finsphere.example",
            ),
            ("spiffe://a.b/x", "a.b"),
        ];
        for raw in [&canonical, &general] {
            for (id, trust_domain) in identities {
                profile::with_params(raw.as_bytes(), |params| {
                    let identity = identity::parse(id)?;
                    let claims = Claims::new(&params, &identity);
                    assert_eq!(claims.signature_params(), params.signature_params);
                    assert_eq!(claims.nonce(), params.nonce);
                    assert_eq!(claims.key_id(), params.key_id);
                    assert_eq!(claims.identity(), id);
                    assert_eq!(claims.trust_domain(), trust_domain);
                    Ok(())
                })
                .expect("a good credential");
            }
        }
    }
}
