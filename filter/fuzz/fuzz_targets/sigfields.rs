//! `Signature-Input` and `Signature` parsing: never panics, what parses reads back the same
//! from its own canonical `@signature-params` serialisation, and the shortcut for keyhop's own
//! form (`canonical`) reads exactly what the general parser reads.

#![no_main]

use keyhop_filter::canonical;
use keyhop_filter::profile;
use keyhop_filter::sigfields::{parse_signature, parse_signature_input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = parse_signature_input(data) {
        let again = format!("{}={}", input.label, input.signature_params);
        match parse_signature_input(again.as_bytes()) {
            Ok(reparsed) => {
                assert_eq!(
                    reparsed.components, input.components,
                    "components change on reparse"
                );
                assert_eq!(
                    reparsed.signature_params, input.signature_params,
                    "serialisation is not stable"
                );
            }
            Err(reason) => panic!("canonical form {again:?} does not parse: {reason:?}"),
        }
    }

    if let Some(params) = canonical::signature_input(data) {
        let general = parse_signature_input(data).and_then(profile::read_credential);
        assert_eq!(
            params.check().map(|()| params.to_credential()),
            general,
            "the shortcut and the general parser disagree"
        );
    }
    if let Some(mac) = canonical::signature(data, "keyhop") {
        assert_eq!(
            parse_signature(data, "keyhop"),
            Ok(mac.to_vec()),
            "the signature shortcut and the general parser disagree"
        );
    }

    if let Ok(bytes) = parse_signature(data, "keyhop") {
        // Only the canonical form is accepted, so the bytes determine the field.
        let canonical = format!("keyhop=:{}:", base64_standard(&bytes));
        assert_eq!(
            data.trim_ascii(),
            canonical.as_bytes(),
            "a non-canonical signature was accepted"
        );
    }
});

/// Standard base64 with padding, written out here so the target needs no other crate.
fn base64_standard(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
