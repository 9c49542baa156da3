//! The keyhop profile of RFC 9421: which label, components, parameters and algorithm a
//! keyhop credential has, and the checks that hold before any key is touched.

use base64::Engine as _;
use std::borrow::Cow;

use sfv::{BareItem, Key};

use crate::canonical;
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

/// The components a keyhop signer covers, as [`REQUIRED_COMPONENTS`] names them.
pub static SIGNED_COMPONENTS: [Component; 6] = [
    Component::Method,
    Component::Authority,
    Component::Path,
    Component::Query,
    Component::Field(Cow::Borrowed("content-digest")),
    Component::Field(Cow::Borrowed(IDENTITY_HEADER)),
];

/// A credential whose shape is right; nothing about it is trusted yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// Covered components, in the order signed.
    pub components: Cow<'static, [Component]>,
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

/// A credential's covered components and parameters as read from `Signature-Input`, before
/// the profile's checks on their values.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    /// Covered components, in the order signed.
    pub components: &'a [Component],
    /// The `@signature-params` value.
    pub signature_params: &'a str,
    /// `created`.
    pub created: i64,
    /// `expires`.
    pub expires: i64,
    /// `nonce`.
    pub nonce: &'a str,
    /// `keyid`.
    pub key_id: &'a str,
    /// `alg`.
    pub alg: &'a str,
    /// `tag`.
    pub tag: &'a str,
}

impl Params<'_> {
    /// The profile's checks on the values: this profile's tag, a nonce long enough.
    pub fn check(&self) -> Result<(), Reason> {
        if self.tag != TAG {
            return Err(Reason::WrongTag);
        }
        // Most nonces decode on the stack; a long one (any length is allowed) on the heap.
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut nonce_bytes = [0u8; 64];
        let length = match base64::decoded_len_estimate(self.nonce.len()) {
            n if n <= nonce_bytes.len() => engine.decode_slice(self.nonce, &mut nonce_bytes).ok(),
            _ => engine.decode(self.nonce).ok().map(|bytes| bytes.len()),
        }
        .ok_or(Reason::WeakNonce)?;
        if length < MIN_NONCE_BYTES {
            return Err(Reason::WeakNonce);
        }
        Ok(())
    }

    /// The covered components, borrowed when they are the ones every keyhop signer covers.
    pub fn owned_components(&self) -> Cow<'static, [Component]> {
        if self.components == SIGNED_COMPONENTS.as_slice() {
            Cow::Borrowed(&SIGNED_COMPONENTS)
        } else {
            Cow::Owned(self.components.to_vec())
        }
    }

    /// The same values, owned.
    pub fn to_credential(&self) -> Credential {
        Credential {
            components: self.owned_components(),
            signature_params: self.signature_params.to_string(),
            created: self.created,
            expires: self.expires,
            nonce: self.nonce.to_string(),
            key_id: self.key_id.to_string(),
            alg: self.alg.to_string(),
        }
    }
}

/// Reads a `Signature-Input` field and runs the profile's checks ([`Params::check`]), then
/// hands the values to `then`. One written as keyhop writes it takes the shortcut in
/// [`canonical`], with nothing copied; any other goes through the general RFC 8941 parser.
pub fn with_params<T>(
    raw: &[u8],
    then: impl FnOnce(Params<'_>) -> Result<T, Reason>,
) -> Result<T, Reason> {
    match canonical::signature_input(raw) {
        Some(params) => checked(params, then),
        None => checked(params_of(&sigfields::parse_signature_input(raw)?)?, then),
    }
}

/// Reads and checks a `Signature-Input` field (see [`with_params`]).
pub fn read_signature_input(raw: &[u8]) -> Result<Credential, Reason> {
    with_params(raw, |params| Ok(params.to_credential()))
}

/// Checks a parsed `Signature-Input` against the profile.
pub fn read_credential(input: SignatureInput) -> Result<Credential, Reason> {
    checked(params_of(&input)?, |params| Ok(params.to_credential()))
}

/// The one place parameters are handed on: after the profile's checks.
fn checked<T>(
    params: Params<'_>,
    then: impl FnOnce(Params<'_>) -> Result<T, Reason>,
) -> Result<T, Reason> {
    params.check()?;
    then(params)
}

/// The label, components and parameters a keyhop credential must have, read from a parsed
/// `Signature-Input`.
fn params_of(input: &SignatureInput) -> Result<Params<'_>, Reason> {
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
    let params = &input.params;
    Ok(Params {
        created: integer(params, "created")?,
        expires: integer(params, "expires")?,
        nonce: string(params, "nonce")?,
        key_id: string(params, "keyid")?,
        alg: string(params, "alg")?,
        tag: string(params, "tag")?,
        signature_params: &input.signature_params,
        components: &input.components,
    })
}

fn param<'a>(params: &'a sfv::Parameters, name: &str) -> Result<&'a BareItem, Reason> {
    params.get(name).ok_or(Reason::MissingParameter)
}

fn integer(params: &sfv::Parameters, name: &str) -> Result<i64, Reason> {
    let value = param(params, name)?
        .as_integer()
        .ok_or(Reason::BadParameter)?;
    Ok(i64::from(value))
}

fn string<'a>(params: &'a sfv::Parameters, name: &str) -> Result<&'a str, Reason> {
    let value = param(params, name)?
        .as_string()
        .ok_or(Reason::BadParameter)?;
    Ok(value.as_str())
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

/// Writes the `@signature-params` value (and the `Signature-Input` member) of a new credential,
/// as RFC 8941 serialises it. The shape is fixed, so it is written from a template; a key id
/// that a structured-field string would have to escape, or a time outside RFC 8941's integer
/// range, is refused (configuration allows neither).
pub fn signature_params(new: &NewCredential<'_>) -> Result<String, Reason> {
    const MAX_INTEGER: i64 = 999_999_999_999_999;
    let plain = |s: &str| {
        s.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    };
    if !plain(new.key_id)
        || !(0..=MAX_INTEGER).contains(&new.created)
        || !(0..=MAX_INTEGER).contains(&new.expires)
    {
        return Err(Reason::Internal);
    }
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(new.nonce);
    Ok(format!(
        r#"("@method" "@authority" "@path" "@query" "content-digest" "{IDENTITY_HEADER}");created={};expires={};nonce="{nonce}";keyid="{}";alg="{ALG}";tag="{TAG}""#,
        new.created, new.expires, new.key_id,
    ))
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

    /// Reads a field both ways, the shortcut (where it applies) and the general parser, which
    /// must agree.
    fn read(field: &str) -> Result<Credential, Reason> {
        let general = parse_signature_input(field.as_bytes()).and_then(read_credential);
        assert_eq!(read_signature_input(field.as_bytes()), general, "{field}");
        general
    }

    /// The template writes what RFC 8941's serialiser writes for the same values.
    #[test]
    fn the_template_is_the_structured_field_serialisation() {
        use sfv::{InnerList, Item, Parameters};
        let cases: [(i64, i64, &str, &[u8]); 3] = [
            (0, 1, "k", &[0; 16]),
            (100, 110, "k1", &[7; 16]),
            (
                999_999_999_999_999,
                999_999_999_999_999,
                "a.b-c_D9",
                &[255; 32],
            ),
        ];
        for (created, expires, key_id, nonce) in cases {
            let new = NewCredential {
                created,
                expires,
                nonce,
                key_id,
            };
            let items = REQUIRED_COMPONENTS
                .iter()
                .map(|name| Item::new(sf_string(name).expect("component")))
                .collect();
            let mut params = Parameters::new();
            let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce);
            for (name, value) in [
                (
                    "created",
                    BareItem::Integer(sf_integer(created).expect("int")),
                ),
                (
                    "expires",
                    BareItem::Integer(sf_integer(expires).expect("int")),
                ),
                ("nonce", BareItem::String(sf_string(&nonce).expect("s"))),
                ("keyid", BareItem::String(sf_string(key_id).expect("s"))),
                ("alg", BareItem::String(sf_string(ALG).expect("s"))),
                ("tag", BareItem::String(sf_string(TAG).expect("s"))),
            ] {
                params.insert(sf_key(name).expect("key"), value);
            }
            let reference = sigfields::serialize_inner_list(&InnerList::with_params(items, params));
            assert_eq!(signature_params(&new), reference);
        }
        let names: Vec<&str> = SIGNED_COMPONENTS.iter().map(Component::name).collect();
        assert_eq!(names, REQUIRED_COMPONENTS);

        let refused = |created, key_id| {
            signature_params(&NewCredential {
                created,
                expires: created + 10,
                nonce: &[1; 16],
                key_id,
            })
        };
        assert_eq!(refused(-1, "k"), Err(Reason::Internal));
        assert_eq!(refused(1_000_000_000_000_000, "k"), Err(Reason::Internal));
        assert_eq!(refused(1, "k\"1"), Err(Reason::Internal));
        assert_eq!(refused(1, "k\u{e9}"), Err(Reason::Internal));
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
