//! `Content-Digest` checking: never panics; accepts a field only if it carries exactly the
//! digest it is checked against, and always accepts the canonical field for any digest.

#![no_main]

use keyhop_filter::digest::{check, field_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 32 bytes (zero-padded) are the body digest the field is checked against.
    let mut digest = [0u8; 32];
    for (slot, byte) in digest.iter_mut().zip(data) {
        *slot = *byte;
    }
    let field = data.get(32..).unwrap_or_default();

    if check(Some(field), &digest).is_ok() {
        // Whatever was accepted must name this digest: flipping one bit of it must fail.
        let mut other = digest;
        other[0] ^= 1;
        assert!(
            check(Some(field), &other).is_err(),
            "{field:?} accepted for two digests"
        );
    }
    assert_eq!(
        check(Some(field_value(&digest).as_bytes()), &digest),
        Ok(())
    );
});
