//! A shortcut for credential fields written exactly as keyhop writes them.
//!
//! Every keyhop signer writes `Signature-Input`, `Signature` and `Content-Digest` one way:
//! canonical RFC 8941, the profile's six components and six parameters in one order, strings
//! without escapes. A field in exactly that form is read here by walking its bytes, with no
//! structured-field values built. Anything else, including other valid ways of writing the
//! same thing, gives `None`, and the caller reads the field with the general RFC 8941 parser
//! (`sfv`), which accepts what the RFC accepts and names what is wrong with the rest.
//!
//! So this module never refuses and never decides: for every field it reads, the general path
//! reads the same values (`tests` below and the `sigfields` fuzz target check that).

use base64::Engine as _;

use crate::profile::{self, Params};

/// The `Signature-Input` member keyhop writes, up to its parameters.
const INPUT_PREFIX: &str =
    r#"keyhop=("@method" "@authority" "@path" "@query" "content-digest" "keyhop-identity")"#;

/// Walks a field, one expected piece at a time. The field is checked as UTF-8 once; every
/// piece taken from it ends before an ASCII byte, so slicing never splits a character.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn literal(&mut self, expected: &str) -> Option<()> {
        self.rest = self.rest.strip_prefix(expected)?;
        Some(())
    }

    /// Splits off the first `length` bytes.
    fn take(&mut self, length: usize) -> Option<&'a str> {
        let (taken, rest) = self.rest.split_at_checked(length)?;
        self.rest = rest;
        Some(taken)
    }

    /// `;name=` followed by a non-negative integer as RFC 8941 serialises it: no sign, no
    /// leading zero, at most 15 digits.
    fn integer_param(&mut self, name: &str) -> Option<i64> {
        self.param_name(name)?;
        let digits = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        let number = self.take(digits)?;
        if number.is_empty() || number.len() > 15 || (number.len() > 1 && number.starts_with('0')) {
            return None;
        }
        // At most 15 ASCII digits: no overflow.
        Some(
            number
                .bytes()
                .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0')),
        )
    }

    /// `;name=` followed by a string of visible ASCII and spaces, with nothing to escape.
    fn string_param(&mut self, name: &str) -> Option<&'a str> {
        self.param_name(name)?;
        self.literal("\"")?;
        let length = self
            .rest
            .bytes()
            .take_while(|&b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
            .count();
        let value = self.take(length)?;
        self.literal("\"")?;
        Some(value)
    }

    fn param_name(&mut self, name: &str) -> Option<()> {
        self.literal(";")?;
        self.literal(name)?;
        self.literal("=")
    }
}

/// The parameters of a `Signature-Input` field in keyhop's own form, with the
/// `@signature-params` value (the field after `keyhop=`); `None` for any other form.
pub fn signature_input(raw: &[u8]) -> Option<Params<'_>> {
    let raw = std::str::from_utf8(raw).ok()?;
    let mut cursor = Cursor { rest: raw };
    cursor.literal(INPUT_PREFIX)?;
    let created = cursor.integer_param("created")?;
    let expires = cursor.integer_param("expires")?;
    let nonce = cursor.string_param("nonce")?;
    let key_id = cursor.string_param("keyid")?;
    let alg = cursor.string_param("alg")?;
    let tag = cursor.string_param("tag")?;
    if !cursor.rest.is_empty() {
        return None;
    }
    Some(Params {
        components: &profile::SIGNED_COMPONENTS,
        signature_params: raw.get(profile::LABEL.len() + 1..)?,
        created,
        expires,
        nonce,
        key_id,
        alg,
        tag,
    })
}

/// The 32-byte MAC of a `Signature` field written `<label>=:<44 base64 characters>:`, with
/// canonical padding and no stray bits; `None` for any other form.
pub fn signature(raw: &[u8], label: &str) -> Option<[u8; 32]> {
    let encoded = raw
        .strip_prefix(label.as_bytes())?
        .strip_prefix(b"=:")?
        .strip_suffix(b":")?;
    if encoded.len() != 44 {
        return None;
    }
    let mut mac = [0u8; 32];
    let written = base64::engine::general_purpose::STANDARD
        .decode_slice(encoded, &mut mac)
        .ok()?;
    (written == mac.len()).then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigfields;

    const GOOD: &str = r#"keyhop=("@method" "@authority" "@path" "@query" "content-digest" "keyhop-identity");created=1700000000;expires=1700000010;nonce="BwcHBwcHBwcHBwcHBwcHBw";keyid="k1";alg="hmac-sha256";tag="keyhop-v1""#;

    /// Whatever the shortcut reads, the general path reads the same; whatever it passes on,
    /// the general path still decides.
    fn agrees(raw: &str) -> bool {
        let general = profile::read_credential(
            sigfields::parse_signature_input(raw.as_bytes()).unwrap_or_else(|_| {
                sigfields::SignatureInput {
                    label: String::new(),
                    components: Vec::new(),
                    params: sfv::Parameters::new(),
                    signature_params: String::new(),
                }
            }),
        );
        match signature_input(raw.as_bytes()) {
            Some(fast) => general == fast.check().map(|()| fast.to_credential()),
            None => true,
        }
    }

    #[test]
    fn reads_what_keyhop_writes() {
        let params = signature_input(GOOD.as_bytes()).expect("keyhop's own form");
        assert_eq!(params.created, 1_700_000_000);
        assert_eq!(params.expires, 1_700_000_010);
        assert_eq!(params.nonce, "BwcHBwcHBwcHBwcHBwcHBw");
        assert_eq!(params.key_id, "k1");
        assert_eq!(params.alg, "hmac-sha256");
        assert_eq!(params.tag, "keyhop-v1");
        assert_eq!(Some(params.signature_params), GOOD.strip_prefix("keyhop="));
        assert!(agrees(GOOD));
    }

    #[test]
    fn leaves_every_other_form_to_the_general_parser() {
        let others = [
            GOOD.replace("created=1700000000", "created=01700000000"),
            GOOD.replace("created=1700000000", "created=-1"),
            GOOD.replace("created=1700000000", "created=1700000000.0"),
            GOOD.replace("created=1700000000", "created=1234567890123456"),
            GOOD.replace(";expires=1700000010", ""),
            GOOD.replace("keyid=\"k1\"", "keyid=\"k\\\"1\""),
            GOOD.replace("keyid=\"k1\"", "keyid=k1"),
            GOOD.replace("\"@path\" \"@query\"", "\"@query\" \"@path\""),
            GOOD.replace("\"@path\" ", "\"@path\"  "),
            GOOD.replace("keyhop=", "sig1="),
            format!(" {GOOD}"),
            format!("{GOOD} "),
            format!("{GOOD};extra=1"),
            format!("{GOOD}, other=()"),
            GOOD.replace(
                ";keyid=\"k1\";alg=\"hmac-sha256\"",
                ";alg=\"hmac-sha256\";keyid=\"k1\"",
            ),
        ];
        for other in &others {
            assert!(signature_input(other.as_bytes()).is_none(), "{other}");
        }
    }

    #[test]
    fn agrees_with_the_general_parser_where_it_reads() {
        // The profile checks still apply to what the shortcut reads.
        let variants = [
            GOOD.to_string(),
            GOOD.replace("keyhop-v1\"", "other\""),
            GOOD.replace("BwcHBwcHBwcHBwcHBwcHBw", "BwcH"),
            GOOD.replace("BwcHBwcHBwcHBwcHBwcHBw", "!!!!"),
            // Any length is allowed: a long nonce is not a weak one.
            GOOD.replace("BwcHBwcHBwcHBwcHBwcHBw", &"BwcH".repeat(40)),
            GOOD.replace("BwcHBwcHBwcHBwcHBwcHBw", &"BwcH".repeat(10_000)),
            GOOD.replace("created=1700000000", "created=0"),
            GOOD.replace("created=1700000000", "created=999999999999999"),
            GOOD.replace("keyid=\"k1\"", "keyid=\"\""),
            GOOD.replace("keyid=\"k1\"", "keyid=\"a b ~\""),
        ];
        for variant in &variants {
            assert!(signature_input(variant.as_bytes()).is_some(), "{variant}");
            assert!(agrees(variant), "{variant}");
        }
        // And at every cut and every single-byte change of the good field.
        for cut in 0..GOOD.len() {
            assert!(agrees(GOOD.get(..cut).unwrap_or_default()));
        }
        for at in 0..GOOD.len() {
            for byte in [b' ', b'"', b'\\', b';', b'0', b'9', b'a', b'=', 0x7f] {
                let mut changed = GOOD.as_bytes().to_vec();
                changed[at] = byte;
                if let Ok(changed) = String::from_utf8(changed) {
                    assert!(agrees(&changed), "{changed}");
                }
            }
        }
    }

    #[test]
    fn signature_shortcut_matches_the_general_parser() {
        let mac = [0xa5u8; 32];
        let encoded = base64::engine::general_purpose::STANDARD.encode(mac);
        let field = format!("keyhop=:{encoded}:");
        assert_eq!(signature(field.as_bytes(), "keyhop"), Some(mac));
        assert_eq!(
            sigfields::parse_signature(field.as_bytes(), "keyhop"),
            Ok(mac.to_vec())
        );
        for other in [
            format!("keyhop=:{encoded}"),
            format!("keyhop=:{}:", encoded.trim_end_matches('=')),
            format!("keyhop=:{}B:", encoded.trim_end_matches('=')),
            format!("other=:{encoded}:"),
            format!(" keyhop=:{encoded}:"),
            format!("keyhop=:{encoded}:;p=1"),
            "keyhop=:AAEC:".to_string(),
        ] {
            assert_eq!(signature(other.as_bytes(), "keyhop"), None, "{other}");
        }
        // Stray trailing bits: the general parser refuses them too.
        let stray = format!("keyhop=:{}B=:", &encoded[..42]);
        assert_eq!(signature(stray.as_bytes(), "keyhop"), None);
        assert!(sigfields::parse_signature(stray.as_bytes(), "keyhop").is_err());
    }
}
