//! The keyhop profile of RFC 9421: which label, components, parameters and algorithm a
//! keyhop credential has, and the checks that hold before any key is touched.

use base64::Engine as _;
use sfv::{BareItem, InnerList, Item, Key, Parameters};

use crate::message::Component;
use crate::reason::Reason;
use crate::sigfields::{self, SignatureInput};

/// The signature label.
pub const LABEL: &str = "keyhop";
/// The `tag` parameter naming this profile.
pub const TAG: &str = "keyhop-v1";
/// The only algorithm of this profile.
pub const ALG: &str = "hmac-sha256";
/// The header carrying the caller's claimed SPIFFE ID (covered by the signature).
pub const IDENTITY_HEADER: &str = "keyhop-identity";
/// Headers that make up a credential: removed from what the app sends, and from what the
/// verified request carries on.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["signature", "signature-input", IDENTITY_HEADER];
/// Components every keyhop signature covers, in the order a signer writes them.
pub const REQUIRED_COMPONENTS: [&str; 6] = [
    "@method",
    "@authority",
    "@path",
    "@query",
    "content-digest",
    IDENTITY_HEADER,
];
/// The fewest random bytes a nonce carries.
pub const MIN_NONCE_BYTES: usize = 16;

const PARAMETERS: [&str; 6] = ["created", "expires", "nonce", "keyid", "alg", "tag"];

/// A credential whose shape is right; nothing about it is trusted yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// Covered components, in the order signed.
    pub components: Vec<Component>,
    /// The `@signature-params` value.
    pub signature_params: String,
    /// `created`, seconds since the epoch.
    pub created: i64,
    /// `expires`, seconds since the epoch.
    pub expires: i64,
    /// The nonce as sent.
    pub nonce: String,
    /// `keyid`.
    pub key_id: String,
    /// `alg`.
    pub alg: String,
}

/// Checks a parsed `Signature-Input` against the profile.
pub fn read_credential(input: SignatureInput) -> Result<Credential, Reason> {
    if input.label != LABEL {
        return Err(Reason::MalformedSignature);
    }
    for required in REQUIRED_COMPONENTS {
        if !input.components.iter().any(|c| c.name() == required) {
            return Err(Reason::MissingComponent);
        }
    }
    for (name, _) in &input.params {
        if !PARAMETERS.contains(&name.as_str()) {
            return Err(Reason::BadParameter);
        }
    }

    let created = integer(&input.params, "created")?;
    let expires = integer(&input.params, "expires")?;
    let nonce = string(&input.params, "nonce")?;
    let key_id = string(&input.params, "keyid")?;
    let alg = string(&input.params, "alg")?;
    if string(&input.params, "tag")? != TAG {
        return Err(Reason::WrongTag);
    }

    let nonce_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&nonce)
        .map_err(|_| Reason::WeakNonce)?;
    if nonce_bytes.len() < MIN_NONCE_BYTES {
        return Err(Reason::WeakNonce);
    }

    Ok(Credential {
        components: input.components,
        signature_params: input.signature_params,
        created,
        expires,
        nonce,
        key_id,
        alg,
    })
}

fn param<'a>(params: &'a Parameters, name: &str) -> Result<&'a BareItem, Reason> {
    params.get(name).ok_or(Reason::MissingParameter)
}

fn integer(params: &Parameters, name: &str) -> Result<i64, Reason> {
    let value = param(params, name)?
        .as_integer()
        .ok_or(Reason::BadParameter)?;
    Ok(i64::from(value))
}

fn string(params: &Parameters, name: &str) -> Result<String, Reason> {
    let value = param(params, name)?
        .as_string()
        .ok_or(Reason::BadParameter)?;
    Ok(value.as_str().to_string())
}

/// The parameters a signer chooses for one credential.
#[derive(Debug, Clone)]
pub struct NewCredential<'a> {
    /// Seconds since the epoch.
    pub created: i64,
    /// Seconds since the epoch.
    pub expires: i64,
    /// Random bytes, at least [`MIN_NONCE_BYTES`].
    pub nonce: &'a [u8],
    /// The key id.
    pub key_id: &'a str,
}

/// Writes the `@signature-params` value (and the `Signature-Input` member) of a new credential.
pub fn signature_params(new: &NewCredential<'_>) -> Result<String, Reason> {
    let items = REQUIRED_COMPONENTS
        .iter()
        .map(|name| sf_string(name).map(Item::new))
        .collect::<Result<Vec<_>, _>>()?;
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(new.nonce);

    let mut params = Parameters::new();
    params.insert(
        sf_key("created")?,
        BareItem::Integer(sf_integer(new.created)?),
    );
    params.insert(
        sf_key("expires")?,
        BareItem::Integer(sf_integer(new.expires)?),
    );
    params.insert(sf_key("nonce")?, BareItem::String(sf_string(&nonce)?));
    params.insert(sf_key("keyid")?, BareItem::String(sf_string(new.key_id)?));
    params.insert(sf_key("alg")?, BareItem::String(sf_string(ALG)?));
    params.insert(sf_key("tag")?, BareItem::String(sf_string(TAG)?));
    sigfields::serialize_inner_list(&InnerList::with_params(items, params))
}

pub(crate) fn sf_string(value: &str) -> Result<sfv::String, Reason> {
    sfv::String::from_string(value.to_string()).map_err(|_| Reason::Internal)
}

pub(crate) fn sf_key(name: &str) -> Result<Key, Reason> {
    Key::from_string(name.to_string()).map_err(|_| Reason::Internal)
}

pub(crate) fn sf_integer(value: i64) -> Result<sfv::Integer, Reason> {
    sfv::Integer::try_from(value).map_err(|_| Reason::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigfields::parse_signature_input;

    fn params() -> String {
        signature_params(&NewCredential {
            created: 100,
            expires: 110,
            nonce: &[7; 16],
            key_id: "k1",
        })
        .expect("params")
    }

    #[test]
    fn a_new_credential_reads_back() {
        let field = format!("keyhop={}", params());
        assert_eq!(
            field,
            r#"keyhop=("@method" "@authority" "@path" "@query" "content-digest" "keyhop-identity");created=100;expires=110;nonce="BwcHBwcHBwcHBwcHBwcHBw";keyid="k1";alg="hmac-sha256";tag="keyhop-v1""#
        );
        let credential =
            read_credential(parse_signature_input(field.as_bytes()).expect("sf")).expect("profile");
        assert_eq!(credential.created, 100);
        assert_eq!(credential.key_id, "k1");
        assert_eq!(credential.signature_params, params());
    }

    fn read(field: &str) -> Result<Credential, Reason> {
        read_credential(parse_signature_input(field.as_bytes())?)
    }

    #[test]
    fn the_profile_refuses_what_it_does_not_define() {
        let good = format!("keyhop={}", params());
        assert!(read(&good).is_ok());
        assert_eq!(
            read(&good.replace("keyhop=", "sig1=")),
            Err(Reason::MalformedSignature)
        );
        assert_eq!(
            read(&good.replace(r#" "keyhop-identity""#, "")),
            Err(Reason::MissingComponent)
        );
        assert_eq!(
            read(&good.replace(r#" "content-digest""#, "")),
            Err(Reason::MissingComponent)
        );
        assert_eq!(
            read(&good.replace(";expires=110", "")),
            Err(Reason::MissingParameter)
        );
        assert_eq!(
            read(&good.replace(";expires=110", ";expires=\"110\"")),
            Err(Reason::BadParameter)
        );
        assert_eq!(
            read(&good.replace("keyhop-v1\"", "other\"")),
            Err(Reason::WrongTag)
        );
        assert_eq!(
            read(&format!("{good};aud=\"x\"")),
            Err(Reason::BadParameter)
        );
        assert_eq!(
            read(&good.replace("BwcHBwcHBwcHBwcHBwcHBw", "BwcH")),
            Err(Reason::WeakNonce)
        );
        assert_eq!(
            read(&good.replace("BwcHBwcHBwcHBwcHBwcHBw", "!!!!")),
            Err(Reason::WeakNonce)
        );
        assert_eq!(
            read(r#"keyhop=();created=1"#),
            Err(Reason::MissingComponent)
        );
    }
}
