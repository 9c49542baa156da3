//! `keyhop-sim sign`: the headers it prints are a credential the filter's verifier accepts.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;

use keyhop_filter::config::{Config, VerifyConfig};
use keyhop_filter::keys::EpochKeyCache;
use keyhop_filter::message::{HeaderMap, Request};
use keyhop_filter::replay::MemoryStore;
use keyhop_filter::verify::{self, Facts, Verified};

const SECRET: &str = "c2lnbi1jbGktdGVzdC1yb290LXNlY3JldC0zMi1ieXRlcw==";

fn verify_config() -> VerifyConfig {
    let json = r#"{"mode":"verify","audience":"spiffe://riskpartner.example/edge",
        "keys":[{"id":"portal-2026","secret_env":"S","trust_domains":["finsphere.example"]}]}"#;
    match Config::from_json(json.as_bytes(), &|_| Some(SECRET.to_owned())) {
        Ok(Config::Verify(c)) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn signed_headers_verify_with_the_filter_code() {
    let url = "http://risk.riskpartner.example/v1/risk/score?ccy=EUR";
    let output = run_sign("post", "POST", url, br#"{"amount":100}"#);

    let body = br#"{"amount":100}"#;
    let verified = verify_printed(
        &output,
        "POST",
        "risk.riskpartner.example",
        "/v1/risk/score?ccy=EUR",
        body,
    )
    .unwrap();
    assert_eq!(
        verified.identity,
        "spiffe://finsphere.example/ns/portal/sa/portal-web"
    );
    assert_eq!(
        verify_printed(
            &output,
            "POST",
            "risk.riskpartner.example",
            "/v1/risk/transfer?ccy=EUR",
            body,
        )
        .err(),
        Some(keyhop_filter::Reason::BadSignature)
    );
}

#[test]
fn a_verify_config_is_not_a_signing_config() {
    let dir = std::env::temp_dir().join(format!("keyhop-sign-cli-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("verify.json");
    std::fs::write(
        &config,
        r#"{"mode":"verify","audience":"a","keys":[{"id":"k","secret_env":"S","trust_domains":["f.example"]}]}"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_keyhop-sim"))
        .args(["sign", "--url", "http://a/"])
        .arg("--config")
        .arg(&config)
        .env("S", SECRET)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(output.status.code(), Some(2));
}

/// Runs `keyhop-sim sign` with a sign-mode config for the verifier above (`--body` when
/// `body` is not empty).
fn run_sign(name: &str, method: &str, url: &str, body: &[u8]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("keyhop-sign-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sign.json");
    std::fs::write(
        &config,
        r#"{"mode":"sign","identity":"spiffe://finsphere.example/ns/portal/sa/portal-web",
            "audience":"spiffe://riskpartner.example/edge",
            "key":{"id":"portal-2026","secret_env":"KEYHOP_TEST_SECRET"}}"#,
    )
    .unwrap();
    let mut sign = Command::new(env!("CARGO_BIN_EXE_keyhop-sim"));
    sign.args(["sign", "--method", method, "--url", url])
        .arg("--config")
        .arg(&config)
        .env("KEYHOP_TEST_SECRET", SECRET);
    if !body.is_empty() {
        let file = dir.join("body");
        std::fs::write(&file, body).unwrap();
        sign.arg("--body").arg(file);
    }
    let output = sign.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    output
}

/// The verifier's answer to a request carrying the four headers `sign` printed.
fn verify_printed(
    output: &std::process::Output,
    method: &str,
    authority: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<Verified, keyhop_filter::Reason> {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let headers: HeaderMap = stdout
        .lines()
        .map(|line| line.split_once(": ").unwrap())
        .collect();
    assert_eq!(headers.len(), 4);
    let request = Request {
        method,
        scheme: "http",
        authority,
        path_and_query,
        headers: &headers,
    };
    let config = verify_config();
    let store = MemoryStore::default();
    config.replay.init(&store).unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let pending = verify::check_headers(&config, &request, now, &mut Facts::default())?;
    verify::finish(
        &config,
        &mut EpochKeyCache::new(1),
        pending,
        &request,
        body,
        &store,
    )
}

#[test]
fn fragment_and_userinfo_are_not_signed_as_curl_does_not_send_them() {
    let output = run_sign(
        "fragment",
        "GET",
        "http://user:pw@risk.riskpartner.example:8080/v1/x?a=1#frag",
        b"",
    );
    assert_eq!(
        verify_printed(
            &output,
            "GET",
            "risk.riskpartner.example:8080",
            "/v1/x?a=1",
            b""
        )
        .map(|_| ()),
        Ok(())
    );

    let output = run_sign(
        "fragment-path",
        "GET",
        "http://risk.riskpartner.example/v1/x#frag",
        b"",
    );
    assert_eq!(
        verify_printed(&output, "GET", "risk.riskpartner.example", "/v1/x", b"").map(|_| ()),
        Ok(())
    );
}

#[test]
fn a_scheme_other_than_http_or_a_method_that_is_no_token_is_refused() {
    for (method, url) in [
        ("GET", "ftp://risk.riskpartner.example/v1/x"),
        ("GET", "risk.riskpartner.example/v1/x"),
        ("GE T", "http://risk.riskpartner.example/v1/x"),
        ("", "http://risk.riskpartner.example/v1/x"),
    ] {
        let output = run_sign("refused", method, url, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{method} {url}: {stderr}");
        assert!(output.stdout.is_empty(), "{method} {url}");
        assert!(stderr.starts_with("keyhop-sim: "), "{stderr}");
    }
}
