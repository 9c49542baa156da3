//! Reading and writing the `Signature-Input` and `Signature` fields (RFC 9421 §4) with a real
//! RFC 8941 structured-field parser.
//!
//! This layer knows RFC 9421, not keyhop's profile: it turns field bytes into a label, covered
//! components, parameters and the serialised `@signature-params` value, and refuses anything
//! that is not one well-formed signature.

use sfv::visitor::{DictionaryVisitor, EntryVisitor};
use sfv::{
    BareItem, Dictionary, FieldType, InnerList, KeyRef, List, ListEntry, Parameters, Parser,
};

use crate::message::Component;
use crate::reason::Reason;

/// One signature's metadata, read from `Signature-Input`.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureInput {
    /// The dictionary key naming this signature.
    pub label: String,
    /// Covered components, in order.
    pub components: Vec<Component>,
    /// The signature parameters (`created`, `keyid`, …) as parsed.
    pub params: Parameters,
    /// The `@signature-params` value: the inner list serialised canonically.
    pub signature_params: String,
}

/// Counts dictionary members while parsing: RFC 8941 keeps only the last of duplicate keys,
/// and a second signature smuggled in under the same label must not pass unseen.
struct CountingDictionary {
    dictionary: Dictionary,
    members: usize,
}

impl<'de> DictionaryVisitor<'de> for CountingDictionary {
    type Out = (Dictionary, usize);
    type Error = <Dictionary as DictionaryVisitor<'de>>::Error;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        self.members += 1;
        DictionaryVisitor::entry(&mut self.dictionary, key)
    }

    fn finish(self) -> Result<Self::Out, Self::Error> {
        Ok((self.dictionary, self.members))
    }
}

/// Parses a dictionary field that must hold exactly one member.
fn parse_single_member(raw: &[u8]) -> Result<(String, ListEntry, Dictionary), Reason> {
    let visitor = CountingDictionary {
        dictionary: Dictionary::new(),
        members: 0,
    };
    let (dictionary, members) = Parser::new(raw)
        .parse_dictionary_with_visitor(visitor)
        .map_err(|_| Reason::MalformedSignature)?;

    if members == 0 {
        return Err(Reason::MissingSignature);
    }
    if members != 1 {
        return Err(Reason::MultipleSignatures);
    }
    let (label, entry) = dictionary.first().ok_or(Reason::MalformedSignature)?;
    Ok((label.as_str().to_string(), entry.clone(), dictionary))
}

/// Reads `Signature-Input`: exactly one label whose value is an inner list of plain
/// component identifiers (no component parameters), each at most once.
pub fn parse_signature_input(raw: &[u8]) -> Result<SignatureInput, Reason> {
    let (label, entry, _) = parse_single_member(raw)?;
    let ListEntry::InnerList(inner) = entry else {
        return Err(Reason::MalformedSignature);
    };

    let mut components = Vec::with_capacity(inner.items.len());
    for item in &inner.items {
        let BareItem::String(name) = &item.bare_item else {
            return Err(Reason::MalformedSignature);
        };
        if !item.params.is_empty() {
            return Err(Reason::UnsupportedComponent);
        }
        let component = Component::from_name(name.as_str())?;
        if components.contains(&component) {
            return Err(Reason::DuplicateComponent);
        }
        components.push(component);
    }

    let signature_params = serialize_inner_list(&inner)?;
    Ok(SignatureInput {
        label,
        components,
        params: inner.params,
        signature_params,
    })
}

/// Serialises an inner list with its parameters, as `@signature-params` and
/// `Signature-Input` carry it.
pub fn serialize_inner_list(inner: &InnerList) -> Result<String, Reason> {
    let list: List = vec![ListEntry::InnerList(inner.clone())];
    list.serialize().ok_or(Reason::MalformedSignature)
}

/// Reads `Signature`: exactly one member, named `label`, holding a byte sequence in its
/// canonical form (padding and trailing bits exactly as base64 writes them).
pub fn parse_signature(raw: &[u8], label: &str) -> Result<Vec<u8>, Reason> {
    let (found, entry, dictionary) = parse_single_member(raw)?;
    if found != label {
        return Err(Reason::MultipleSignatures);
    }
    let ListEntry::Item(item) = entry else {
        return Err(Reason::MalformedSignature);
    };
    if !item.params.is_empty() {
        return Err(Reason::MalformedSignature);
    }
    let BareItem::ByteSequence(bytes) = item.bare_item else {
        return Err(Reason::MalformedSignature);
    };
    if !is_canonical(raw, &dictionary) {
        return Err(Reason::MalformedSignature);
    }
    Ok(bytes)
}

/// The 32-byte MAC in a `Signature` field: one written as keyhop writes it takes the
/// shortcut in [`crate::canonical`]; any other goes through [`parse_signature`]. A MAC of any
/// other length is malformed.
pub fn read_signature(raw: &[u8], label: &str) -> Result<[u8; 32], Reason> {
    match crate::canonical::signature(raw, label) {
        Some(mac) => Ok(mac),
        None => parse_signature(raw, label)?
            .try_into()
            .map_err(|_| Reason::MalformedSignature),
    }
}

/// Whether `raw`, less surrounding spaces, is exactly the canonical serialisation of what it
/// parsed to. Lenient base64 (missing or extra padding, stray trailing bits) is not.
pub(crate) fn is_canonical(raw: &[u8], dictionary: &Dictionary) -> bool {
    let Some(canonical) = dictionary.serialize() else {
        return false;
    };
    let trimmed = raw.trim_ascii();
    trimmed == canonical.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_signature_input() {
        let raw = br#"sig1=("@method" "content-digest");created=1;keyid="k""#;
        let input = parse_signature_input(raw).expect("valid input");
        assert_eq!(input.label, "sig1");
        assert_eq!(
            input.components,
            vec![Component::Method, Component::Field("content-digest".into())]
        );
        assert_eq!(
            input.signature_params,
            r#"("@method" "content-digest");created=1;keyid="k""#
        );
    }

    #[test]
    fn refuses_two_labels_and_a_repeated_label() {
        assert_eq!(
            parse_signature_input(br#"a=("@method"), b=("@path")"#),
            Err(Reason::MultipleSignatures)
        );
        assert_eq!(
            parse_signature_input(br#"a=("@method"), a=("@path")"#),
            Err(Reason::MultipleSignatures)
        );
    }

    #[test]
    fn refuses_component_parameters_duplicates_and_non_strings() {
        assert_eq!(
            parse_signature_input(br#"a=("x";sf)"#),
            Err(Reason::UnsupportedComponent)
        );
        assert_eq!(
            parse_signature_input(br#"a=("@path" "@path")"#),
            Err(Reason::DuplicateComponent)
        );
        assert_eq!(
            parse_signature_input(br#"a=(method)"#),
            Err(Reason::MalformedSignature)
        );
        assert_eq!(
            parse_signature_input(b"a=1"),
            Err(Reason::MalformedSignature)
        );
        assert_eq!(
            parse_signature_input(b"a=(\"x\""),
            Err(Reason::MalformedSignature)
        );
    }

    #[test]
    fn signature_must_be_canonical_and_match_the_label() {
        assert_eq!(parse_signature(b"a=:AAEC:", "a"), Ok(vec![0, 1, 2]));
        assert_eq!(
            parse_signature(b"a=:AAEC:", "b"),
            Err(Reason::MultipleSignatures)
        );
        assert_eq!(
            parse_signature(b"a=:AAEC==:", "a"),
            Err(Reason::MalformedSignature)
        );
        assert_eq!(
            parse_signature(b"a=:AAF=:", "a"),
            Err(Reason::MalformedSignature)
        );
        assert_eq!(
            parse_signature(b"a=AAEC", "a"),
            Err(Reason::MalformedSignature)
        );
        assert_eq!(parse_signature(b"", "a"), Err(Reason::MissingSignature));
    }
}
