//! Signed replies: the verifier signs each response it lets through, bound to the request's
//! signature, and the signer checks that signature before its application sees the reply.
//!
//! The response profile (`keyhop-v1-response`) covers `@status`, `content-type` (when the
//! response has one), a `content-digest` of the response body and the request's signature
//! (`"signature";req;key="keyhop"`, RFC 9421 §2.4), so a reply cannot be altered, nor moved to
//! another request. Its key comes from the same root secret and epoch schedule as the
//! request's, under a different HKDF label, so request and response MACs never mix.

use base64::Engine as _;
use sfv::{BareItem, Dictionary, InnerList, Item, ListEntry, Parameters, Parser};

use crate::digest;
use crate::keys::{self, Direction, RootSecret};
use crate::message::HeaderMap;
use crate::profile::{sf_integer, sf_key, sf_string, ALG, LABEL};
use crate::reason::Reason;
use crate::sigfields;

/// The `tag` of a response signature.
pub const RESPONSE_TAG: &str = "keyhop-v1-response";

/// What both sides agree on to key a response: the request's key id and root secret, the
/// caller's trust domain and the verifier's audience.
#[derive(Debug, Clone, Copy)]
pub struct ResponseKey<'a> {
    /// The root secret behind `key_id`.
    pub root: &'a RootSecret,
    /// The request's key id.
    pub key_id: &'a str,
    /// The caller's trust domain.
    pub trust_domain: &'a str,
    /// The verifier's audience.
    pub audience: &'a str,
    /// Seconds per key epoch.
    pub hop_seconds: u64,
}

impl ResponseKey<'_> {
    /// The prepared response key of one epoch.
    fn prepared(&self, epoch: u64) -> Result<keys::HmacSha256, Reason> {
        keys::prepared_key(
            self.root,
            Direction::Response,
            self.key_id,
            epoch,
            self.trust_domain,
            self.audience,
        )
    }
}

/// The response headers a signed reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedResponse {
    /// `content-digest` of the response body.
    pub content_digest: String,
    /// `signature-input`.
    pub signature_input: String,
    /// `signature`.
    pub signature: String,
}

/// The acceptance window for response signatures, in seconds around the signer's clock.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Oldest `created` accepted, behind the clock.
    pub max_age: u64,
    /// Furthest `created` accepted, ahead of the clock.
    pub future_skew: u64,
}

/// The response's `@signature-params`: the fixed component list and the parameters.
fn signature_params(
    with_content_type: bool,
    created: i64,
    expires: i64,
    key_id: &str,
) -> Result<String, Reason> {
    let mut items = vec![Item::new(sf_string("@status")?)];
    if with_content_type {
        items.push(Item::new(sf_string("content-type")?));
    }
    items.push(Item::new(sf_string("content-digest")?));
    let mut bound = Parameters::new();
    bound.insert(sf_key("req")?, BareItem::Boolean(true));
    bound.insert(sf_key("key")?, BareItem::String(sf_string(LABEL)?));
    items.push(Item::with_params(sf_string("signature")?, bound));

    let mut params = Parameters::new();
    params.insert(sf_key("created")?, BareItem::Integer(sf_integer(created)?));
    params.insert(sf_key("expires")?, BareItem::Integer(sf_integer(expires)?));
    params.insert(sf_key("keyid")?, BareItem::String(sf_string(key_id)?));
    params.insert(sf_key("alg")?, BareItem::String(sf_string(ALG)?));
    params.insert(sf_key("tag")?, BareItem::String(sf_string(RESPONSE_TAG)?));
    sigfields::serialize_inner_list(&InnerList::with_params(items, params))
}

/// The response signature base.
fn signature_base(
    status: u16,
    content_type: Option<&[u8]>,
    content_digest: &str,
    request_signature: &[u8],
    signature_params: &str,
) -> Result<Vec<u8>, Reason> {
    let mut base = Vec::with_capacity(256);
    base.extend_from_slice(format!("\"@status\": {status:03}\n").as_bytes());
    if let Some(content_type) = content_type {
        if content_type.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(Reason::ResponseMalformed);
        }
        base.extend_from_slice(b"\"content-type\": ");
        base.extend_from_slice(content_type.trim_ascii());
        base.push(b'\n');
    }
    base.extend_from_slice(format!("\"content-digest\": {content_digest}\n").as_bytes());
    let member = base64::engine::general_purpose::STANDARD.encode(request_signature);
    base.extend_from_slice(format!("\"signature\";req;key=\"{LABEL}\": :{member}:\n").as_bytes());
    base.extend_from_slice(b"\"@signature-params\": ");
    base.extend_from_slice(signature_params.as_bytes());
    Ok(base)
}

/// Signs a response to the request whose MAC was `request_signature`.
pub fn sign(
    key: &ResponseKey<'_>,
    status: u16,
    content_type: Option<&[u8]>,
    body: &[u8],
    request_signature: &[u8],
    now: i64,
    lifetime_seconds: u64,
) -> Result<SignedResponse, Reason> {
    let expires = now
        .checked_add_unsigned(lifetime_seconds)
        .ok_or(Reason::Internal)?;
    let params = signature_params(content_type.is_some(), now, expires, key.key_id)?;
    let content_digest = digest::field_value(&digest::sha256(body));
    let base = signature_base(
        status,
        content_type,
        &content_digest,
        request_signature,
        &params,
    )?;

    let epoch = keys::epoch_of(now, key.hop_seconds).ok_or(Reason::Internal)?;
    let prepared = key.prepared(epoch)?;
    let mac = keys::mac(&prepared, &base);
    Ok(SignedResponse {
        content_digest,
        signature_input: format!("{LABEL}={params}"),
        signature: format!(
            "{LABEL}=:{}:",
            base64::engine::general_purpose::STANDARD.encode(mac)
        ),
    })
}

/// The single value of a response field; several field lines make the response malformed.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>, Reason> {
    headers.single(name).map_err(|_| Reason::ResponseMalformed)
}

/// Checks a response against the request whose MAC was `request_signature`.
pub fn verify(
    key: &ResponseKey<'_>,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    request_signature: &[u8],
    now: i64,
    window: Window,
) -> Result<(), Reason> {
    let input = single(headers, "signature-input")?;
    let signature = single(headers, "signature")?;
    let (input, signature) = match (input, signature) {
        (None, None) => return Err(Reason::ResponseUnsigned),
        (Some(input), Some(signature)) => (input, signature),
        _ => return Err(Reason::ResponseMalformed),
    };

    let (created, expires, received_params) = read_params(input)?;
    let content_type = single(headers, "content-type")?;
    let expected = signature_params(content_type.is_some(), created, expires, key.key_id)?;
    if expected != received_params {
        return Err(Reason::ResponseMalformed);
    }
    let mac = sigfields::read_signature(signature, LABEL).map_err(|_| Reason::ResponseMalformed)?;

    let skew = i64::try_from(window.future_skew).map_err(|_| Reason::Internal)?;
    let max_age = i64::try_from(window.max_age).map_err(|_| Reason::Internal)?;
    if created > now.saturating_add(skew) || created < now.saturating_sub(max_age) || expires <= now
    {
        return Err(Reason::ResponseExpired);
    }

    let content_digest = single(headers, "content-digest")?.ok_or(Reason::ResponseMalformed)?;
    digest::check(Some(content_digest), &digest::sha256(body)).map_err(|reason| match reason {
        Reason::DigestMismatch => Reason::ResponseDigestMismatch,
        _ => Reason::ResponseMalformed,
    })?;
    let content_digest =
        std::str::from_utf8(content_digest.trim_ascii()).map_err(|_| Reason::ResponseMalformed)?;

    let base = signature_base(
        status,
        content_type,
        content_digest,
        request_signature,
        &expected,
    )?;
    let epoch = keys::epoch_of(created, key.hop_seconds).ok_or(Reason::ResponseExpired)?;
    let prepared = key.prepared(epoch)?;
    if !keys::verify_mac(&prepared, &base, &mac) {
        return Err(Reason::ResponseBadSignature);
    }
    Ok(())
}

/// Reads `created`, `expires` and the serialised inner list of a response `Signature-Input`.
fn read_params(raw: &[u8]) -> Result<(i64, i64, String), Reason> {
    let dictionary: Dictionary = Parser::new(raw)
        .parse()
        .map_err(|_| Reason::ResponseMalformed)?;
    if dictionary.len() != 1 {
        return Err(Reason::ResponseMalformed);
    }
    let Some(ListEntry::InnerList(inner)) = dictionary.get(LABEL) else {
        return Err(Reason::ResponseMalformed);
    };
    let integer = |name: &str| -> Result<i64, Reason> {
        let value = inner
            .params
            .get(name)
            .and_then(BareItem::as_integer)
            .ok_or(Reason::ResponseMalformed)?;
        Ok(i64::from(value))
    };
    let created = integer("created")?;
    let expires = integer("expires")?;
    let serialized =
        sigfields::serialize_inner_list(inner).map_err(|_| Reason::ResponseMalformed)?;
    Ok((created, expires, serialized))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_763_200;
    const WINDOW: Window = Window {
        max_age: 30,
        future_skew: 5,
    };

    fn root() -> RootSecret {
        RootSecret::new(vec![5; 32]).expect("root")
    }

    fn key(root: &RootSecret) -> ResponseKey<'_> {
        ResponseKey {
            root,
            key_id: "k1",
            trust_domain: "fin.example",
            audience: "aud",
            hop_seconds: 10,
        }
    }

    fn headers(signed: &SignedResponse, content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::from_iter([
            ("content-digest", &signed.content_digest),
            ("signature-input", &signed.signature_input),
            ("signature", &signed.signature),
        ]);
        if let Some(ct) = content_type {
            headers.push("content-type", ct.as_bytes());
        }
        headers
    }

    #[test]
    fn a_signed_response_verifies_only_for_its_request() {
        let root = root();
        let request_mac = [1u8; 32];
        let body = br#"{"score":12}"#;
        let signed = sign(
            &key(&root),
            200,
            Some(b"application/json"),
            body,
            &request_mac,
            NOW,
            10,
        )
        .expect("sign");
        assert!(signed.signature_input.starts_with(
            r#"keyhop=("@status" "content-type" "content-digest" "signature";req;key="keyhop");created="#
        ));
        let h = headers(&signed, Some("application/json"));
        assert_eq!(
            verify(&key(&root), 200, &h, body, &request_mac, NOW + 1, WINDOW),
            Ok(())
        );

        assert_eq!(
            verify(&key(&root), 200, &h, body, &[2u8; 32], NOW + 1, WINDOW),
            Err(Reason::ResponseBadSignature)
        );
        assert_eq!(
            verify(&key(&root), 500, &h, body, &request_mac, NOW + 1, WINDOW),
            Err(Reason::ResponseBadSignature)
        );
        assert_eq!(
            verify(
                &key(&root),
                200,
                &h,
                br#"{"score":99}"#,
                &request_mac,
                NOW + 1,
                WINDOW
            ),
            Err(Reason::ResponseDigestMismatch)
        );
        let html = headers(&signed, Some("text/html"));
        assert_eq!(
            verify(&key(&root), 200, &html, body, &request_mac, NOW + 1, WINDOW),
            Err(Reason::ResponseBadSignature)
        );
        let dropped = headers(&signed, None);
        assert_eq!(
            verify(
                &key(&root),
                200,
                &dropped,
                body,
                &request_mac,
                NOW + 1,
                WINDOW
            ),
            Err(Reason::ResponseMalformed)
        );
        assert_eq!(
            verify(&key(&root), 200, &h, body, &request_mac, NOW + 40, WINDOW),
            Err(Reason::ResponseExpired)
        );
    }

    #[test]
    fn unsigned_and_half_signed_responses_are_refused() {
        let root = root();
        assert_eq!(
            verify(
                &key(&root),
                200,
                HeaderMap::empty(),
                b"",
                &[0; 32],
                NOW,
                WINDOW
            ),
            Err(Reason::ResponseUnsigned)
        );
        let only_signature = HeaderMap::from_iter([("signature", "keyhop=:AAAA:")]);
        assert_eq!(
            verify(
                &key(&root),
                200,
                &only_signature,
                b"",
                &[0; 32],
                NOW,
                WINDOW
            ),
            Err(Reason::ResponseMalformed)
        );
    }

    #[test]
    fn responses_without_content_type_and_other_keys() {
        let root = root();
        let signed = sign(&key(&root), 204, None, b"", &[3; 32], NOW, 10).expect("sign");
        assert_eq!(
            verify(
                &key(&root),
                204,
                &headers(&signed, None),
                b"",
                &[3; 32],
                NOW,
                WINDOW
            ),
            Ok(())
        );
        let other = RootSecret::new(vec![6; 32]).expect("root");
        assert_eq!(
            verify(
                &key(&other),
                204,
                &headers(&signed, None),
                b"",
                &[3; 32],
                NOW,
                WINDOW
            ),
            Err(Reason::ResponseBadSignature)
        );
    }

    #[test]
    fn response_keys_differ_from_request_keys() {
        let root = root();
        let request = keys::derive_key(&root, Direction::Request, "k1", 1, "fin.example", "aud")
            .expect("key");
        let response = keys::derive_key(&root, Direction::Response, "k1", 1, "fin.example", "aud")
            .expect("key");
        assert_ne!(request, response);
    }
}
