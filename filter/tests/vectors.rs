//! Standard test vectors, named after their source, run through keyhop's own code paths.
#![allow(clippy::expect_used)]

use base64::Engine as _;
use hmac::Mac;
use keyhop_filter::keys::{self, HmacSha256};
use keyhop_filter::message::{self, HeaderMap, Request};
use keyhop_filter::sigfields;

/// RFC 9421 Appendix B.1.5: the `test-shared-secret` key.
const TEST_SHARED_SECRET: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";

/// RFC 9421 Appendix B.2.5: signing the test request with hmac-sha256. keyhop's field parser,
/// signature-base builder and MAC must give the RFC's signature exactly.
#[test]
fn rfc9421_b_2_5_signing_a_request_using_hmac_sha256() {
    let headers = HeaderMap::from_iter([
        ("host", "example.com"),
        ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("content-type", "application/json"),
        (
            "content-digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ),
        ("content-length", "18"),
    ]);
    let request = Request {
        method: "POST",
        scheme: "https",
        authority: "example.com",
        path_and_query: "/foo?param=Value&Pet=dog",
        headers: &headers,
    };
    let input = sigfields::parse_signature_input(
        br#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#,
    )
    .expect("the RFC's Signature-Input parses");

    let base = message::signature_base(&input.components, &input.signature_params, &request)
        .expect("base");
    assert_eq!(
        String::from_utf8(base.clone()).expect("utf-8"),
        "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
         \"@authority\": example.com\n\
         \"content-type\": application/json\n\
         \"@signature-params\": (\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\""
    );

    let secret = base64::engine::general_purpose::STANDARD
        .decode(TEST_SHARED_SECRET)
        .expect("key");
    let key = HmacSha256::new_from_slice(&secret).expect("hmac key");
    let expected = sigfields::parse_signature(
        b"sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
        "sig-b25",
    )
    .expect("the RFC's Signature parses");
    assert_eq!(keys::mac(&key, &base).to_vec(), expected);
    assert!(keys::verify_mac(&key, &base, &expected));
}
