//! The whole verify path (`check_headers` then `finish`, with an in-memory replay store) on a
//! real credential whose fields the fuzzer replaces, flips, extends or doubles.
//!
//! Never panics, and never accepts a forgery: whatever passes must be the signed request
//! (method, normalised authority, path and query, body, identity), and only once.

#![no_main]

use std::sync::OnceLock;

use keyhop_filter::config::{Config, SignConfig, VerifyConfig};
use keyhop_filter::keys::EpochKeyCache;
use keyhop_filter::message::{normalize_authority, HeaderMap, Request};
use keyhop_filter::replay::MemoryStore;
use keyhop_filter::sign;
use keyhop_filter::verify::{self, Facts};
use libfuzzer_sys::arbitrary::{Result as ArbitraryResult, Unstructured};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "a2V5aG9wLWZ1enotcm9vdC1zZWNyZXQtb2YtMzItYnl0ZXM=";
const NOW: i64 = 1_764_763_200;
const IDENTITY: &str = "spiffe://finsphere.example/ns/portal/sa/portal-web";
const AUTHORITY: &str = "risk.riskpartner.example";
const PATH: &str = "/v1/risk/score?currency=EUR";
const BODY: &[u8] = br#"{"customer":"c-1042","amount":100}"#;

struct Fixture {
    verify: VerifyConfig,
    /// The signed request's fields, in a fixed order: method, authority, path, then headers.
    fields: Vec<(String, Vec<u8>)>,
}

fn env(name: &str) -> Option<String> {
    (name == "S").then(|| SECRET.to_string())
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let sign_json = format!(
            r#"{{"mode":"sign","identity":"{IDENTITY}","audience":"spiffe://riskpartner.example/edge",
                "hop_seconds":10,"key":{{"id":"portal-2026","secret_env":"S"}},"lifetime_seconds":10}}"#
        );
        let Ok(Config::Sign(sign_config)) = Config::from_json(sign_json.as_bytes(), &env) else {
            panic!("sign config");
        };
        let verify_json = r#"{"mode":"verify","audience":"spiffe://riskpartner.example/edge","hop_seconds":10,
            "keys":[{"id":"portal-2026","secret_env":"S","trust_domains":["finsphere.example"]}],
            "routes":[{"methods":["POST"],"path_prefix":"/v1/risk/","allow":["spiffe://finsphere.example/*"]}],
            "replay":{"shards":2,"entries_per_shard":8}}"#;
        let Ok(Config::Verify(verify)) = Config::from_json(verify_json.as_bytes(), &env) else {
            panic!("verify config");
        };
        let fields = signed_fields(&sign_config);
        Fixture { verify, fields }
    })
}

fn signed_fields(config: &SignConfig) -> Vec<(String, Vec<u8>)> {
    let request = Request {
        method: "POST",
        scheme: "http",
        authority: AUTHORITY,
        path_and_query: PATH,
        headers: HeaderMap::empty(),
    };
    let mut keys = EpochKeyCache::new(2);
    let Ok(signed) = sign::sign(config, &mut keys, &request, BODY, NOW, &[7u8; 16]) else {
        panic!("sign");
    };
    vec![
        (":method".into(), b"POST".to_vec()),
        (":authority".into(), AUTHORITY.as_bytes().to_vec()),
        (":path".into(), PATH.as_bytes().to_vec()),
        ("content-digest".into(), signed.content_digest.into_bytes()),
        ("keyhop-identity".into(), signed.identity.into_bytes()),
        (
            "signature-input".into(),
            signed.signature_input.into_bytes(),
        ),
        ("signature".into(), signed.signature.into_bytes()),
        ("content-type".into(), b"application/json".to_vec()),
    ]
}

/// One field, kept, replaced, flipped, extended, dropped or doubled by the fuzzer.
fn mutate(
    u: &mut Unstructured<'_>,
    name: &str,
    value: &[u8],
    out: &mut Vec<(String, Vec<u8>)>,
) -> ArbitraryResult<()> {
    match u.int_in_range(0u8..=9)? {
        0..=4 => out.push((name.to_string(), value.to_vec())),
        5 => out.push((name.to_string(), u.arbitrary::<Vec<u8>>()?)),
        6 => {
            let mut flipped = value.to_vec();
            if !flipped.is_empty() {
                let at = u.choose_index(flipped.len())?;
                flipped[at] ^= u.arbitrary::<u8>()?.max(1);
            }
            out.push((name.to_string(), flipped));
        }
        7 => {
            let mut longer = value.to_vec();
            longer.extend(u.arbitrary::<Vec<u8>>()?);
            out.push((name.to_string(), longer));
        }
        8 => {}
        _ => {
            out.push((name.to_string(), value.to_vec()));
            out.push((name.to_string(), u.arbitrary::<Vec<u8>>()?));
        }
    }
    Ok(())
}

fn run(data: &[u8]) -> ArbitraryResult<()> {
    let fixture = fixture();
    let mut u = Unstructured::new(data);
    let now = NOW + i64::from(u.int_in_range(-40i8..=40)?);

    let mut fields = Vec::new();
    for (name, value) in &fixture.fields {
        mutate(&mut u, name, value, &mut fields)?;
    }
    let body = if u.ratio(1u8, 8)? {
        u.arbitrary::<Vec<u8>>()?
    } else {
        BODY.to_vec()
    };

    let text = |name: &str| -> String {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let (method, authority, path) = (text(":method"), text(":authority"), text(":path"));
    let headers: HeaderMap = fields
        .iter()
        .filter(|(n, _)| !n.starts_with(':'))
        .cloned()
        .collect();
    let request = Request {
        method: &method,
        scheme: "http",
        authority: &authority,
        path_and_query: &path,
        headers: &headers,
    };

    let store = MemoryStore::default();
    if fixture.verify.replay.init(&store).is_err() {
        return Ok(());
    }
    let mut facts = Facts::default();
    let Ok(pending) = verify::check_headers(&fixture.verify, &request, now, &mut facts) else {
        return Ok(());
    };
    let mut keys = EpochKeyCache::new(2);
    let Ok(verified) = verify::finish(
        &fixture.verify,
        &mut keys,
        pending.clone(),
        &request,
        &body,
        &store,
    ) else {
        return Ok(());
    };

    // Accepted: it must be the signed request, under the signed identity.
    assert_eq!(method, "POST");
    assert_eq!(normalize_authority("http", &authority), AUTHORITY);
    assert_eq!(path, PATH);
    assert_eq!(body, BODY);
    assert_eq!(verified.identity, IDENTITY);
    let identities: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"keyhop-identity"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(identities.len(), 1);

    // And only once.
    let again = verify::finish(&fixture.verify, &mut keys, pending, &request, &body, &store);
    assert!(again.is_err(), "accepted twice");
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
