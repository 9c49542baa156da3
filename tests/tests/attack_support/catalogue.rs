//! The attack catalogue. Each class builds its attacks when it is about to be fired, from
//! credentials minted at that moment, so the only thing that can condemn an attack is the
//! change it makes.
//!
//! Expected refusals follow the verdict table of `docs/PROTOCOL.md` ("What the verifier
//! checks"): the first failing check decides.

use keyhop_e2e::http::Request;

use super::mint::{random_secret, Minter, Signer};
use super::outcome::{Attack, Expect, Signed};
use super::{PORTAL_WEB, REPORT_JOB};

/// The request every attack starts from.
pub const SCORE_TARGET: &str = "/v1/risk/score?currency=EUR&amount=100";
pub const SCORE_BODY: &str = r#"{"customer":"c-1042","amount":100}"#;

/// Builds attacks: knows the verifier's root secret and what time the verifier thinks it is.
pub struct Gen {
    pub secret: String,
    clock: Box<dyn Fn() -> i64>,
    web: Minter,
    counter: usize,
}

/// A class of attacks: its name and how to build them.
pub type Class = (&'static str, fn(&mut Gen) -> Vec<Attack>);

impl Gen {
    pub fn new(secret: &str, clock: Box<dyn Fn() -> i64>) -> Gen {
        Gen {
            secret: secret.to_owned(),
            clock,
            web: Signer::portal_web(secret).minter(),
            counter: 0,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The portal-web signer with the verifier's secret.
    pub fn signer(&self) -> Signer {
        Signer::portal_web(&self.secret)
    }

    /// The base request, unsigned, with a request id to find its audit line by.
    pub fn base(&mut self) -> Request {
        self.base_for("POST", SCORE_TARGET, SCORE_BODY.as_bytes())
    }

    pub fn base_for(&mut self, method: &str, target: &str, body: &[u8]) -> Request {
        self.counter += 1;
        let mut request = Request::new(method, target).header("content-type", "application/json");
        if !body.is_empty() || method == "POST" {
            request = request.body(body);
        }
        request.header(
            "x-request-id",
            format!("red-team-{}-{}", std::process::id(), self.counter),
        )
    }

    /// A fresh portal-web credential for the base request, created now.
    pub fn fresh(&mut self) -> (Request, Signed) {
        let base = self.base();
        let now = self.now();
        let signed = self.web.mint(&base, now);
        (signed, Signed::of(&base, PORTAL_WEB))
    }

    /// A fresh credential from `signer` for `request`, created at `now + offset`.
    pub fn mint_as(
        &mut self,
        signer: &Signer,
        request: &Request,
        offset: i64,
    ) -> (Request, Signed) {
        let now = self.now();
        let signed = signer.minter().mint(request, now + offset);
        (signed, Signed::of(request, &signer.identity))
    }
}

/// Every class, in the order fired.
pub fn classes() -> Vec<Class> {
    vec![
        ("replay", replay),
        ("tamper-method", tamper_method),
        ("tamper-authority", tamper_authority),
        ("tamper-path", tamper_path),
        ("tamper-query", tamper_query),
        ("tamper-body", tamper_body),
        ("tamper-identity", tamper_identity),
        ("strip-header", strip_header),
        ("duplicate", duplicate),
        ("time-window", time_window),
        ("wrong-key", wrong_key),
        ("unknown-key", unknown_key),
        ("wrong-audience", wrong_audience),
        ("foreign-trust-domain", foreign_trust_domain),
        ("identity-spoof", identity_spoof),
        ("sf-garbage", sf_garbage),
        ("bytes-and-size", bytes_and_size),
        ("alg-confusion", alg_confusion),
        ("covered-components", covered_components),
        ("digest", digest),
        ("parameters", parameters),
        ("policy", policy),
        ("framing", framing),
    ]
}

// --- editing helpers ---------------------------------------------------------------------

/// A change made to a request (a replay's dressing, a parameter edit).
type Dress = fn(&Request) -> Request;
type Edit = Box<dyn Fn(&Request) -> Request>;
/// Header fields added to a request.
type ExtraHeaders = Vec<(&'static str, Vec<u8>)>;
/// A `signature` field value built from the real signature's base64.
type MakeSignature = Box<dyn Fn(&str) -> String>;
/// Name, signer, method, target, body and the expected refusal.
type PolicyCase<'a> = (&'a str, &'a Signer, &'a str, &'a str, &'a [u8], Expect);

fn header(request: &Request, name: &str) -> String {
    request
        .headers
        .get_str(name)
        .unwrap_or_else(|| panic!("no {name} header"))
}

fn set(request: &Request, name: &str, value: impl AsRef<[u8]>) -> Request {
    let mut out = request.clone();
    out.headers.set(name, value);
    out
}

fn add(request: &Request, name: &str, value: impl AsRef<[u8]>) -> Request {
    let mut out = request.clone();
    out.headers.add(name, value);
    out
}

fn without(request: &Request, names: &[&str]) -> Request {
    let mut out = request.clone();
    for name in names {
        out.headers.remove(name);
    }
    out
}

/// Rewrites `signature-input` with `edit`.
fn edit_input(request: &Request, edit: impl Fn(&str) -> String) -> Request {
    let input = header(request, "signature-input");
    set(request, "signature-input", edit(&input))
}

/// Sets (or, with `None`, removes) one parameter of `signature-input`, keeping the others
/// in place.
fn with_param(request: &Request, name: &str, value: Option<&str>) -> Request {
    edit_input(request, |input| {
        let (list, params) = input.rsplit_once(')').expect("an inner list");
        let mut out = format!("{list})");
        let mut found = false;
        for param in params.split(';').filter(|p| !p.is_empty()) {
            let key = param.split('=').next().unwrap_or_default();
            if key == name {
                found = true;
                if let Some(value) = value {
                    out.push_str(&format!(";{name}={value}"));
                }
            } else {
                out.push(';');
                out.push_str(param);
            }
        }
        if !found {
            if let Some(value) = value {
                out.push_str(&format!(";{name}={value}"));
            }
        }
        out
    })
}

fn param(request: &Request, name: &str) -> String {
    let input = header(request, "signature-input");
    let (_, params) = input.rsplit_once(')').expect("an inner list");
    params
        .split(';')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} parameter"))
        .to_owned()
}

/// The covered component list, as written: `("@method" ... "keyhop-identity")`.
fn with_components(request: &Request, list: &str) -> Request {
    edit_input(request, |input| {
        let (_, rest) = input.split_once(')').expect("an inner list");
        format!("keyhop={list}{rest}")
    })
}

const COMPONENTS: [&str; 6] = [
    "@method",
    "@authority",
    "@path",
    "@query",
    "content-digest",
    "keyhop-identity",
];

fn list_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("({})", quoted.join(" "))
}

fn signature_bytes(request: &Request) -> String {
    let signature = header(request, "signature");
    signature
        .trim_start_matches("keyhop=:")
        .trim_end_matches(':')
        .to_owned()
}

fn bad_signature() -> Expect {
    Expect::refuse(401, "bad_signature")
}

// --- the classes --------------------------------------------------------------------------

/// A credential used once is never accepted again: on the same connection (same worker), on
/// new connections (either worker), and dressed up in ways the signature does not cover.
fn replay(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let expect = || Expect::refuse(401, "replay");

    for i in 0..5 {
        let (credential, signed) = g.fresh();
        out.push(
            Attack::new(
                "replay",
                format!("same connection #{i}"),
                credential.clone(),
                signed,
                expect(),
            )
            .after(credential, true),
        );
    }

    let (credential, signed) = g.fresh();
    for i in 0..20 {
        let attack = Attack::new(
            "replay",
            format!("new connection #{i}"),
            credential.clone(),
            signed.clone(),
            expect(),
        )
        .on_sim_worker(1 - i % 2);
        out.push(if i == 0 {
            attack.after(credential.clone(), false)
        } else {
            attack
        });
    }

    let dressings: Vec<(&str, Dress)> = vec![
        ("another request id", |r| {
            set(r, "x-request-id", "red-team-replay-other-id")
        }),
        ("added x-forwarded-for", |r| {
            add(r, "x-forwarded-for", "203.0.113.9")
        }),
        ("upper-case authority", |r| {
            set(r, "host", "RISK.RISKPARTNER.EXAMPLE")
        }),
        ("authority with :80", |r| {
            set(r, "host", "risk.riskpartner.example:80")
        }),
        ("extra spaces in the component list", |r| {
            edit_input(r, |input| {
                input
                    .replacen("(\"@method\" ", "(  \"@method\"   ", 1)
                    .replacen("\")", "\"  )", 1)
            })
        }),
        ("nonce parameter repeated", |r| {
            let nonce = param(r, "nonce");
            edit_input(r, |input| format!("{input};nonce={nonce}"))
        }),
        ("signature with surrounding spaces", |r| {
            let signature = header(r, "signature");
            set(r, "signature", format!(" {signature} "))
        }),
    ];
    for (name, dress) in dressings {
        let (credential, signed) = g.fresh();
        let dressed = dress(&credential);
        // A dressing the signature covers fails the MAC instead; either way it is refused.
        let expect = expect()
            .or(401, "bad_signature")
            .or(401, "multiple_signatures");
        out.push(
            Attack::new(
                "replay",
                format!("replay with {name}"),
                dressed,
                signed,
                expect,
            )
            .after(credential, false),
        );
    }
    out
}

/// The method is covered.
fn tamper_method(g: &mut Gen) -> Vec<Attack> {
    [
        "PUT", "PATCH", "DELETE", "GET", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "post", "POSTX",
    ]
    .iter()
    .map(|method| {
        let (credential, signed) = g.fresh();
        let mut tampered = credential;
        (*method).clone_into(&mut tampered.method);
        Attack::new(
            "tamper-method",
            format!("POST credential sent as {method}"),
            tampered,
            signed,
            bad_signature().or_envoy(&[400, 405, 501, 0]),
        )
    })
    .collect()
}

/// The authority is covered, up to case and the scheme's default port (RFC 9421 §2.2.3).
fn tamper_authority(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    for host in [
        "evil.example",
        "risk.riskpartner.example.evil",
        "other.riskpartner.example",
        "risk.riskpartner.exampl",
        "risk.riskpartner.example:8080",
        "risk.riskpartner.example:443",
        "risk.riskpartner.example.",
        "127.0.0.1",
        "risk.riskpartner.example:",
    ] {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "tamper-authority",
            format!("host {host}"),
            set(&credential, "host", host),
            signed,
            bad_signature().or_envoy(&[400]),
        ));
    }

    // An absolute-form request target names another authority than the Host header.
    let (credential, signed) = g.fresh();
    let raw = String::from_utf8_lossy(&credential.to_bytes())
        .replacen(
            &format!("POST {SCORE_TARGET}"),
            &format!("POST http://evil.example{SCORE_TARGET}"),
            1,
        )
        .into_bytes();
    out.push(
        Attack::new(
            "tamper-authority",
            "absolute-form target for evil.example",
            credential,
            signed,
            bad_signature().or_envoy(&[400, 404]),
        )
        .raw(raw),
    );

    let (credential, signed) = g.fresh();
    let doubled = add(&credential, "host", "evil.example");
    out.push(
        Attack::new(
            "tamper-authority",
            "second Host header",
            doubled,
            signed,
            bad_signature().or_envoy(&[400, 0]),
        )
        .envoy_only(),
    );

    // Not attacks: the same authority, normalised.
    for host in [
        "RISK.RISKPARTNER.EXAMPLE",
        "Risk.RiskPartner.Example:80",
        "risk.riskpartner.example:80",
    ] {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "tamper-authority",
            format!("control: host {host}"),
            set(&credential, "host", host),
            signed,
            Expect::control(),
        ));
    }
    out
}

/// The path is covered as sent, never decoded.
fn tamper_path(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let query = "?currency=EUR&amount=100";
    for path in [
        "/v1/risk/assess",
        "/v1/risk/score/",
        "/v1/risk/scorex",
        "/V1/risk/score",
        "/v1/risk/score%20",
        "/v1/risk/score;v=2",
        "/v1/risk/%2e%2e/score",
        "/v1/risk/score/..",
        "/v1/risk",
    ] {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "tamper-path",
            format!("path {path}"),
            credential.target(&format!("{path}{query}")),
            signed,
            bad_signature(),
        ));
    }

    // Envoy refuses an escaped slash outright (path_with_escaped_slashes_action).
    let (credential, signed) = g.fresh();
    out.push(
        Attack::new(
            "tamper-path",
            "path /v1/risk/score%2Fx",
            credential.target(&format!("/v1/risk/score%2Fx{query}")),
            signed,
            bad_signature().or_envoy(&[400]),
        )
        .envoy_only(),
    );

    // Spellings Envoy normalises back to the signed path: harmless if forwarded as signed.
    for path in [
        "/v1/risk/sc%6Fre",
        "/v1/risk//score",
        "/v1/risk/./score",
        "/v1/risk/x/../score",
    ] {
        let (credential, signed) = g.fresh();
        out.push(
            Attack::new(
                "tamper-path",
                format!("path {path} (normalised by Envoy)"),
                credential.target(&format!("{path}{query}")),
                signed,
                bad_signature().or_equivalent(),
            )
            .envoy_only(),
        );
    }
    out
}

/// The query is covered as sent: never decoded or reordered.
fn tamper_query(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    for query in [
        "?amount=100&currency=EUR",
        "?currency=USD&amount=100",
        "?currency=EUR&amount=1000",
        "?currency=EUR&amount=100&x=1",
        "?currency=EUR&amount=100&",
        "?currency=%45UR&amount=100",
        "?Currency=EUR&amount=100",
        "?currency=EUR&currency=USD&amount=100",
        "?currency=EUR;amount=100",
        "?currency=EUR&amount=100%00",
        "",
        "?",
    ] {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "tamper-query",
            format!("query {query:?}"),
            credential.target(&format!("/v1/risk/score{query}")),
            signed,
            bad_signature().or_envoy(&[400]),
        ));
    }

    // RFC 9421 §2.2.7: an empty query and none have the same `@query` ("?").
    let base = g.base_for("POST", "/v1/risk/score", SCORE_BODY.as_bytes());
    let (credential, _) = g.mint_as(&g.signer(), &base, 0);
    let mut signed = Signed::of(&base, PORTAL_WEB);
    signed.target = "/v1/risk/score?".to_owned();
    out.push(
        Attack::new(
            "tamper-query",
            "control: no query signed, empty query sent",
            credential.target("/v1/risk/score?"),
            signed,
            Expect::control(),
        )
        .envoy_only(),
    );
    out
}

/// The body is covered through its digest, which the verifier recomputes.
fn tamper_body(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let bodies: [&[u8]; 8] = [
        br#"{"customer":"c-1042","amount":900}"#,
        br#"{"customer":"c-1042","amount":100} "#,
        b"{\"customer\":\"c-1042\",\"amount\":100}\n",
        br#"{"customer":"c-1042","amount":10"#,
        b"",
        br#"{"customer":"c-9999","amount":100}"#,
        br#"{"customer":"c-1042","amount":100,"to":"x"}"#,
        br#"{"customer":"c-1042","amount":100}{"customer":"c-1042","amount":1}"#,
    ];
    for body in bodies {
        let (credential, signed) = g.fresh();
        let name = format!("body {:?}", String::from_utf8_lossy(body));
        out.push(Attack::new(
            "tamper-body",
            name,
            credential.body(body),
            signed,
            Expect::refuse(401, "digest_mismatch"),
        ));
    }

    // A new body with a digest to match: the digest is covered.
    let (credential, signed) = g.fresh();
    let body = br#"{"customer":"c-1042","amount":900}"#;
    let digest = keyhop_filter::digest::field_value(&keyhop_filter::digest::sha256(body));
    let tampered = set(&credential.body(body), "content-digest", digest);
    out.push(Attack::new(
        "tamper-body",
        "new body with its own digest",
        tampered,
        signed,
        bad_signature(),
    ));

    // Not an attack: the same body in chunks (framing is not covered).
    let (credential, signed) = g.fresh();
    let mut chunked = without(&credential, &["content-length"]);
    chunked.headers.add("transfer-encoding", "chunked");
    let bytes = SCORE_BODY.as_bytes();
    let (a, b) = bytes.split_at(10);
    chunked.body = format!(
        "{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        a.len(),
        String::from_utf8_lossy(a),
        b.len(),
        String::from_utf8_lossy(b)
    )
    .into_bytes();
    let raw = chunked.to_bytes();
    out.push(
        Attack::new(
            "tamper-body",
            "control: same body, chunked",
            credential,
            signed,
            Expect::control(),
        )
        .raw(raw),
    );
    out
}

/// The identity header is covered, and its trust domain must be one the key vouches for.
fn tamper_identity(g: &mut Gen) -> Vec<Attack> {
    let cases: [(&str, Expect); 10] = [
        (REPORT_JOB, bad_signature()),
        (
            "spiffe://finsphere.example/ns/portal/sa/portal-admin",
            bad_signature(),
        ),
        (
            "spiffe://finsphere.example/ns/portal/sa/portal-web/x",
            bad_signature(),
        ),
        (
            "spiffe://riskpartner.example/edge",
            Expect::refuse(401, "identity_not_vouched"),
        ),
        (
            "spiffe://evil.example/ns/portal/sa/portal-web",
            Expect::refuse(401, "identity_not_vouched"),
        ),
        (
            "spiffe://FINSPHERE.example/ns/portal/sa/portal-web",
            Expect::refuse(401, "invalid_identity"),
        ),
        (
            "spiffe://finsphere.example/ns/portal/sa/portal-web/",
            Expect::refuse(401, "invalid_identity"),
        ),
        (
            "spiffe://finsphere.example/ns/portal/sa/../sa/portal-web",
            Expect::refuse(401, "invalid_identity"),
        ),
        ("portal-web", Expect::refuse(401, "invalid_identity")),
        (
            "",
            Expect::refuse(401, "invalid_identity").or(401, "missing_identity"),
        ),
    ];
    cases
        .into_iter()
        .map(|(identity, expect)| {
            let (credential, signed) = g.fresh();
            Attack::new(
                "tamper-identity",
                format!("identity {identity:?}"),
                set(&credential, "keyhop-identity", identity),
                signed,
                expect,
            )
        })
        .collect()
}

/// Every credential header is required.
fn strip_header(g: &mut Gen) -> Vec<Attack> {
    let cases: [(&str, &[&str], Expect); 7] = [
        (
            "no signature",
            &["signature"],
            Expect::refuse(401, "missing_signature"),
        ),
        (
            "no signature-input",
            &["signature-input"],
            Expect::refuse(401, "missing_signature"),
        ),
        (
            "neither signature header",
            &["signature", "signature-input"],
            Expect::refuse(401, "missing_signature"),
        ),
        (
            "no keyhop-identity",
            &["keyhop-identity"],
            Expect::refuse(401, "missing_identity"),
        ),
        (
            "no content-digest",
            &["content-digest"],
            Expect::refuse(401, "missing_digest"),
        ),
        (
            "no credential at all",
            &[
                "signature",
                "signature-input",
                "keyhop-identity",
                "content-digest",
            ],
            Expect::refuse(401, "missing_signature"),
        ),
        (
            "no signature and no identity",
            &["signature", "keyhop-identity"],
            Expect::refuse(401, "missing_signature"),
        ),
    ];
    let mut out: Vec<Attack> = cases
        .into_iter()
        .map(|(name, headers, expect)| {
            let (credential, signed) = g.fresh();
            Attack::new(
                "strip-header",
                name,
                without(&credential, headers),
                signed,
                expect,
            )
        })
        .collect();
    for name in ["signature", "signature-input"] {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "strip-header",
            format!("empty {name}"),
            set(&credential, name, ""),
            signed,
            Expect::refuse(401, "missing_signature").or(401, "malformed_signature"),
        ));
    }
    out
}

/// One credential per request: no second field line, member or label.
fn duplicate(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let dup = || Expect::refuse(401, "duplicate_header");

    for name in [
        "signature",
        "signature-input",
        "content-digest",
        "keyhop-identity",
    ] {
        let (credential, signed) = g.fresh();
        let value = header(&credential, name);
        out.push(Attack::new(
            "duplicate",
            format!("{name} twice, same value"),
            add(&credential, name, value),
            signed,
            dup(),
        ));
    }
    for name in ["signature", "signature-input", "content-digest"] {
        let (credential, signed) = g.fresh();
        let (other, _) = g.fresh();
        out.push(Attack::new(
            "duplicate",
            format!("{name} twice, another credential's value"),
            add(&credential, name, header(&other, name)),
            signed,
            dup(),
        ));
    }
    let (credential, signed) = g.fresh();
    out.push(Attack::new(
        "duplicate",
        "keyhop-identity twice, portal-web and report-job",
        add(&credential, "keyhop-identity", REPORT_JOB),
        signed,
        dup(),
    ));
    let (credential, signed) = g.fresh();
    let value = header(&credential, "signature-input");
    out.push(Attack::new(
        "duplicate",
        "Signature-Input again in another case",
        add(&credential, "Signature-Input", value),
        signed,
        dup(),
    ));

    let multiple = || Expect::refuse(401, "multiple_signatures");
    let (credential, signed) = g.fresh();
    let signature = header(&credential, "signature");
    out.push(Attack::new(
        "duplicate",
        "label keyhop twice in signature",
        set(
            &credential,
            "signature",
            format!("{signature}, {signature}"),
        ),
        signed,
        multiple(),
    ));
    let (credential, signed) = g.fresh();
    let input = header(&credential, "signature-input");
    out.push(Attack::new(
        "duplicate",
        "label keyhop twice in signature-input",
        set(&credential, "signature-input", format!("{input}, {input}")),
        signed,
        multiple(),
    ));
    let (credential, signed) = g.fresh();
    let (other, _) = g.fresh();
    let both = set(
        &set(
            &credential,
            "signature",
            format!(
                "{}, second={}",
                header(&credential, "signature"),
                header(&other, "signature").trim_start_matches("keyhop=")
            ),
        ),
        "signature-input",
        format!(
            "{}, second={}",
            header(&credential, "signature-input"),
            header(&other, "signature-input").trim_start_matches("keyhop=")
        ),
    );
    out.push(Attack::new(
        "duplicate",
        "a second label in both fields",
        both,
        signed,
        multiple(),
    ));
    let (credential, signed) = g.fresh();
    let signature = header(&credential, "signature").replacen("keyhop=", "sig1=", 1);
    out.push(Attack::new(
        "duplicate",
        "signature under another label",
        set(&credential, "signature", signature),
        signed,
        multiple(),
    ));
    let (credential, signed) = g.fresh();
    let relabelled = set(
        &set(
            &credential,
            "signature",
            header(&credential, "signature").replacen("keyhop=", "sig1=", 1),
        ),
        "signature-input",
        header(&credential, "signature-input").replacen("keyhop=", "sig1=", 1),
    );
    out.push(Attack::new(
        "duplicate",
        "both fields under label sig1",
        relabelled,
        signed,
        Expect::refuse(401, "malformed_signature"),
    ));
    let (credential, signed) = g.fresh();
    let signature = header(&credential, "signature");
    out.push(Attack::new(
        "duplicate",
        "signature plus an empty member",
        set(
            &credential,
            "signature",
            format!("{signature}, other=:AAAA:"),
        ),
        signed,
        multiple(),
    ));
    out
}

/// `created` within [now − max_age, now + skew], `expires` after `created` and now, lifetime
/// capped (the demo verifier: max age 15 s, skew 5 s, max lifetime 15 s).
fn time_window(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let expired = || Expect::refuse(401, "expired");
    let future = || Expect::refuse(401, "created_in_future");
    let long = || Expect::refuse(401, "lifetime_too_long");
    let signer = g.signer();

    let minted: Vec<(&str, Signer, i64, Expect)> = vec![
        ("created 20 s ago", signer.clone(), -20, expired()),
        (
            "created 16 s ago (older than max age)",
            signer.clone().lifetime(15),
            -16,
            expired(),
        ),
        (
            "created 12 s ago, expired 2 s ago",
            signer.clone(),
            -12,
            expired(),
        ),
        ("created an hour ago", signer.clone(), -3600, expired()),
        ("created a day ago", signer.clone(), -86_400, expired()),
        (
            "created 15 s ahead (skew 5 s)",
            signer.clone(),
            15,
            future(),
        ),
        ("created 30 s ahead", signer.clone(), 30, future()),
        ("created an hour ahead", signer.clone(), 3600, future()),
        (
            "created a year ahead",
            signer.clone(),
            365 * 86_400,
            future(),
        ),
        (
            "lifetime 16 s (max 15 s)",
            signer.clone().lifetime(16),
            0,
            long(),
        ),
        ("lifetime 300 s", signer.clone().lifetime(300), 0, long()),
    ];
    for (name, signer, offset, expect) in minted {
        let base = g.base();
        let (credential, signed) = g.mint_as(&signer, &base, offset);
        out.push(Attack::new("time-window", name, credential, signed, expect));
    }

    // Edited parameters: the time checks run before the MAC.
    let edits: Vec<(&str, Edit, Expect)> = vec![
        (
            "expires = created",
            Box::new(|r| {
                let c = param(r, "created");
                with_param(r, "expires", Some(&c))
            }),
            Expect::refuse(401, "bad_parameter"),
        ),
        (
            "expires before created",
            Box::new(|r| {
                let c: i64 = param(r, "created").parse().unwrap_or(0);
                with_param(r, "expires", Some(&(c - 1).to_string()))
            }),
            Expect::refuse(401, "bad_parameter"),
        ),
        (
            "created = 0",
            Box::new(|r| with_param(r, "created", Some("0"))),
            long(),
        ),
        (
            "created negative",
            Box::new(|r| with_param(r, "created", Some("-1"))),
            long(),
        ),
        (
            "expires pushed 1000 s out",
            Box::new(|r| {
                let c: i64 = param(r, "created").parse().unwrap_or(0);
                with_param(r, "expires", Some(&(c + 1000).to_string()))
            }),
            long(),
        ),
        (
            "expires pulled into the past",
            Box::new(|r| {
                let c: i64 = param(r, "created").parse().unwrap_or(0);
                with_param(r, "expires", Some(&(c - 10).to_string()))
            }),
            Expect::refuse(401, "bad_parameter"),
        ),
        (
            "created moved 2 s later (inside the window)",
            Box::new(|r| {
                let c: i64 = param(r, "created").parse().unwrap_or(0);
                with_param(r, "created", Some(&(c + 2).to_string()))
            }),
            bad_signature(),
        ),
        (
            "expires moved 1 s later (inside the cap)",
            Box::new(|r| {
                let e: i64 = param(r, "expires").parse().unwrap_or(0);
                with_param(r, "expires", Some(&(e + 1).to_string()))
            }),
            bad_signature(),
        ),
    ];
    for (name, edit, expect) in edits {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "time-window",
            name,
            edit(&credential),
            signed,
            expect,
        ));
    }
    out
}

/// A credential from the wrong root secret or key schedule never verifies.
fn wrong_key(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let signer = g.signer();
    let mut flipped = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &g.secret)
        .expect("secret");
    if let Some(first) = flipped.first_mut() {
        *first ^= 1;
    }
    let flipped = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, flipped);
    let signers: Vec<(&str, Signer)> = vec![
        (
            "another random root secret",
            signer.clone().secret(&random_secret()),
        ),
        (
            "a second random root secret",
            signer.clone().secret(&random_secret()),
        ),
        (
            "the root secret with one bit flipped",
            signer.clone().secret(&flipped),
        ),
        (
            "an all-zero root secret",
            signer
                .clone()
                .secret("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ),
        (
            "hop 10 s instead of 5 s (another epoch key)",
            signer.clone().hop_seconds(10),
        ),
        ("hop 30 s", signer.clone().hop_seconds(30)),
    ];
    for (name, signer) in signers {
        let base = g.base();
        let (credential, signed) = g.mint_as(&signer, &base, 0);
        out.push(Attack::new(
            "wrong-key",
            name,
            credential,
            signed,
            bad_signature(),
        ));
    }

    // The previous epoch's key, relabelled as now: created is covered too.
    let base = g.base();
    let (credential, signed) = g.mint_as(&signer, &base, -5);
    let created: i64 = param(&credential, "created").parse().unwrap_or(0);
    let moved = with_param(
        &with_param(&credential, "created", Some(&(created + 5).to_string())),
        "expires",
        Some(&(created + 15).to_string()),
    );
    out.push(Attack::new(
        "wrong-key",
        "previous epoch's key, created moved into this epoch",
        moved,
        signed,
        bad_signature(),
    ));

    // An epoch key is bound to the caller's trust domain.
    let outsider = signer
        .clone()
        .identity("spiffe://evil.example/ns/portal/sa/portal-web");
    let base = g.base();
    let (credential, signed) = g.mint_as(&outsider, &base, 0);
    out.push(Attack::new(
        "wrong-key",
        "key derived for evil.example, identity swapped to portal-web",
        set(&credential, "keyhop-identity", PORTAL_WEB),
        signed,
        bad_signature(),
    ));
    out
}

/// Only configured key ids are accepted.
fn unknown_key(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let signer = g.signer();
    let long_id = "k".repeat(64);
    for key_id in [
        "portal-2025",
        "portal-2027",
        "PORTAL-2026",
        "portal-2026.",
        "p",
        long_id.as_str(),
    ] {
        let base = g.base();
        let (credential, signed) = g.mint_as(&signer.clone().key_id(key_id), &base, 0);
        out.push(Attack::new(
            "unknown-key",
            format!("signed as key id {key_id:?}"),
            credential,
            signed,
            Expect::refuse(401, "unknown_key"),
        ));
    }
    for key_id in ["\"\"", "\"portal 2026\"", "\"portal-2026\\\\\""] {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "unknown-key",
            format!("keyid edited to {key_id}"),
            with_param(&credential, "keyid", Some(key_id)),
            signed,
            Expect::refuse(401, "unknown_key"),
        ));
    }
    out
}

/// Epoch keys are bound to the verifier's audience.
fn wrong_audience(g: &mut Gen) -> Vec<Attack> {
    let signer = g.signer();
    [
        "spiffe://riskpartner.example/other",
        "spiffe://RiskPartner.example/edge",
        "spiffe://riskpartner.example/edge/",
        "risk.riskpartner.example",
        "spiffe://evil.example/edge",
    ]
    .iter()
    .map(|audience| {
        let base = g.base();
        let (credential, signed) = g.mint_as(&signer.clone().audience(audience), &base, 0);
        Attack::new(
            "wrong-audience",
            format!("audience {audience}"),
            credential,
            signed,
            bad_signature(),
        )
    })
    .collect()
}

/// A key vouches only for its listed trust domains, even with a correct MAC.
fn foreign_trust_domain(g: &mut Gen) -> Vec<Attack> {
    let signer = g.signer();
    [
        "spiffe://evil.example/ns/portal/sa/portal-web",
        "spiffe://finsphere.example.evil/ns/portal/sa/portal-web",
        "spiffe://sub.finsphere.example/ns/portal/sa/portal-web",
        "spiffe://riskpartner.example/ns/risk/sa/api",
        "spiffe://finsphere-example/ns/portal/sa/portal-web",
        "spiffe://example/ns/portal/sa/portal-web",
        "spiffe://xfinsphere.example/ns/portal/sa/portal-web",
    ]
    .iter()
    .map(|identity| {
        let base = g.base();
        let (credential, signed) = g.mint_as(&signer.clone().identity(identity), &base, 0);
        Attack::new(
            "foreign-trust-domain",
            format!("correctly signed as {identity}"),
            credential,
            signed,
            Expect::refuse(401, "identity_not_vouched"),
        )
    })
    .collect()
}

/// The verified-identity header is the verifier's alone: an incoming copy never reaches the
/// application.
fn identity_spoof(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let admin = "spiffe://finsphere.example/ns/admin/sa/root";
    let spoofs: Vec<(&str, ExtraHeaders)> = vec![
        (
            "admin identity",
            vec![("keyhop-verified-identity", admin.into())],
        ),
        (
            "admin identity, header in mixed case",
            vec![("Keyhop-Verified-Identity", admin.into())],
        ),
        (
            "two spoofed copies",
            vec![
                ("keyhop-verified-identity", admin.into()),
                ("keyhop-verified-identity", REPORT_JOB.into()),
            ],
        ),
        (
            "the real identity (still replaced)",
            vec![("keyhop-verified-identity", PORTAL_WEB.into())],
        ),
        (
            "non-UTF-8 value",
            vec![(
                "keyhop-verified-identity",
                b"spiffe://finsphere.example/\xff\xfe".to_vec(),
            )],
        ),
        (
            "empty value",
            vec![("keyhop-verified-identity", Vec::new())],
        ),
        (
            "a list of identities",
            vec![(
                "keyhop-verified-identity",
                format!("{admin}, {PORTAL_WEB}").into_bytes(),
            )],
        ),
    ];
    for (name, headers) in spoofs {
        let (mut credential, signed) = g.fresh();
        for (header, value) in headers {
            credential.headers.add(header, value);
        }
        out.push(Attack::new(
            "identity-spoof",
            format!("valid credential + spoofed {name}"),
            credential,
            signed,
            Expect::neutralised(),
        ));
    }

    let base = g.base();
    let spoofed = base.clone().header("keyhop-verified-identity", PORTAL_WEB);
    out.push(Attack::new(
        "identity-spoof",
        "no credential, spoofed portal-web",
        spoofed,
        Signed::of(&base, PORTAL_WEB),
        Expect::refuse(401, "missing_signature"),
    ));

    let batch = g.signer().identity(REPORT_JOB);
    let base = g.base();
    let (credential, signed) = g.mint_as(&batch, &base, 0);
    out.push(Attack::new(
        "identity-spoof",
        "report-job credential claiming portal-web on /v1/risk/",
        add(&credential, "keyhop-verified-identity", PORTAL_WEB),
        signed,
        Expect::refuse(403, "policy_denied"),
    ));

    let health = g.base_for("GET", "/v1/health", b"");
    let (credential, signed) = g.mint_as(&batch, &health, 0);
    out.push(Attack::new(
        "identity-spoof",
        "report-job on /v1/health claiming portal-web",
        add(&credential, "keyhop-verified-identity", PORTAL_WEB),
        signed,
        Expect::neutralised(),
    ));
    out
}

/// RFC 8941 syntax that does not parse, or parses to the wrong shape.
fn sf_garbage(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let malformed = || Expect::refuse(401, "malformed_signature");
    let full = list_of(&COMPONENTS);

    let inputs: Vec<(String, Expect)> = vec![
        ("keyhop".into(), malformed()),
        ("keyhop=".into(), malformed()),
        ("keyhop=(".into(), malformed()),
        ("keyhop=(\"@method\"".into(), malformed()),
        ("=(\"@method\")".into(), malformed()),
        ("keyhop=(@method)".into(), malformed()),
        ("keyhop=1".into(), malformed()),
        ("keyhop=\"a string\"".into(), malformed()),
        ("keyhop=:AAAA:".into(), malformed()),
        ("keyhop=?1".into(), malformed()),
        ("keyhop=((\"@method\"))".into(), malformed()),
        ("keyhop=(\"@method\",\"@path\")".into(), malformed()),
        ("keyhop=(\"\\u0040method\")".into(), malformed()),
        ("keyhop=(\"@method\"\t\"@path\")".into(), malformed()),
        (format!("KEYHOP={full}"), malformed()),
        (full.clone(), malformed()),
        (
            format!("keyhop={full};created=12345678901234567890"),
            malformed(),
        ),
        (format!("keyhop={full};"), malformed()),
        (format!("keyhop={full}garbage"), malformed()),
        (format!("keyhop={full},"), malformed()),
        (format!(", keyhop={full}"), malformed()),
        (format!("keyhop={full};created=1;;expires=2"), malformed()),
        (format!("keyhop={full};Created=1"), malformed()),
        ("keyhop=(\"@method\" \"@path\"".repeat(50), malformed()),
    ];
    for (value, expect) in inputs {
        let (credential, signed) = g.fresh();
        let name = format!("signature-input {}", shorten(&value));
        out.push(Attack::new(
            "sf-garbage",
            name,
            set(&credential, "signature-input", value),
            signed,
            expect,
        ));
    }

    let signatures: Vec<MakeSignature> = vec![
        Box::new(|_| "keyhop=".into()),
        Box::new(|_| "keyhop=:!!!!:".into()),
        Box::new(|s| format!("keyhop=:{s}")),
        Box::new(|s| format!("keyhop={}", s.trim_end_matches('='))),
        Box::new(|s| format!("keyhop=\"{s}\"")),
        Box::new(|s| format!("keyhop=:{s}:;alg=\"hmac-sha256\"")),
        Box::new(|s| format!("keyhop=(:{s}:)")),
        Box::new(|s| format!("keyhop=:{}:", s.trim_end_matches('='))),
        Box::new(|s| format!("keyhop=:{s}==:")),
        Box::new(|_| "keyhop=:AAAAAAAAAAAAAAAAAAAAAA==:".into()),
        Box::new(|s| format!("keyhop=:{s}{s}:")),
        Box::new(|_| "keyhop=?0".into()),
        Box::new(|_| "keyhop".into()),
        Box::new(|s| format!("keyhop=:{s}:,")),
        Box::new(|s| format!("keyhop=:{s}:garbage")),
        Box::new(|s| format!("keyhop=:{}:", flip_first_letter(s))),
    ];
    for make in signatures {
        let (credential, signed) = g.fresh();
        let value = make(&signature_bytes(&credential));
        let name = format!("signature {}", shorten(&value));
        // A re-cased signature is well-formed but different bytes: the MAC says so.
        let expect = malformed().or(401, "bad_signature");
        out.push(Attack::new(
            "sf-garbage",
            name,
            set(&credential, "signature", value),
            signed,
            expect,
        ));
    }

    // The base64url alphabet instead of the standard one: needs a signature with + or /.
    for _ in 0..32 {
        let (credential, signed) = g.fresh();
        let bytes = signature_bytes(&credential);
        if bytes.contains(['+', '/']) {
            let url = bytes.replace('+', "-").replace('/', "_");
            out.push(Attack::new(
                "sf-garbage",
                "signature in the base64url alphabet",
                set(&credential, "signature", format!("keyhop=:{url}:")),
                signed,
                malformed(),
            ));
            break;
        }
    }
    out
}

/// The same text with the case of its first letter flipped: other base64 bytes.
fn flip_first_letter(text: &str) -> String {
    let mut flipped = false;
    text.chars()
        .map(|c| {
            if !flipped && c.is_ascii_alphabetic() {
                flipped = true;
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            } else {
                c
            }
        })
        .collect()
}

fn shorten(value: &str) -> String {
    let text = format!("{value:?}");
    if text.len() > 48 {
        format!("{}…", text.chars().take(47).collect::<String>())
    } else {
        text
    }
}

/// Bytes that are not text, values far larger than a credential needs, header floods.
fn bytes_and_size(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let cases: Vec<(&str, &str, Vec<u8>, Expect)> = vec![
        (
            "non-UTF-8 identity",
            "keyhop-identity",
            b"spiffe://finsphere.example/ns/portal/sa/\xff\xfe".to_vec(),
            Expect::refuse(401, "invalid_identity").or(401, "invalid_header_value"),
        ),
        (
            "Latin-1 identity",
            "keyhop-identity",
            b"spiffe://finsphere.example/ns/portal/sa/portal-w\xe9b".to_vec(),
            Expect::refuse(401, "invalid_identity").or(401, "invalid_header_value"),
        ),
        (
            "non-UTF-8 signature-input",
            "signature-input",
            b"keyhop=(\"@method\xc3\x28\")".to_vec(),
            Expect::refuse(401, "malformed_signature"),
        ),
        (
            "non-UTF-8 signature",
            "signature",
            b"keyhop=:\xff\xfe\xfd:".to_vec(),
            Expect::refuse(401, "malformed_signature"),
        ),
        (
            "non-UTF-8 content-digest",
            "content-digest",
            b"sha-256=:\xff\xfe:".to_vec(),
            Expect::refuse(401, "malformed_digest"),
        ),
        (
            "identity of 3000 bytes",
            "keyhop-identity",
            format!("spiffe://finsphere.example/{}", "a".repeat(3000)).into_bytes(),
            Expect::refuse(401, "invalid_identity"),
        ),
        (
            "identity of 40 KiB",
            "keyhop-identity",
            format!("spiffe://finsphere.example/{}", "a/".repeat(20_000)).into_bytes(),
            Expect::refuse(401, "invalid_identity"),
        ),
        (
            "signature of 40 KiB",
            "signature",
            format!("keyhop=:{}:", "A".repeat(40_000)).into_bytes(),
            Expect::refuse(401, "malformed_signature"),
        ),
        (
            "content-digest of 40 KiB",
            "content-digest",
            format!("sha-256=:{}:", "A".repeat(40_000)).into_bytes(),
            Expect::refuse(401, "malformed_digest"),
        ),
        (
            "signature-input of 40 KiB",
            "signature-input",
            format!("keyhop=(\"{}\")", "x".repeat(40_000)).into_bytes(),
            Expect::refuse(401, "missing_component"),
        ),
        (
            "header over Envoy's 60 KiB limit",
            "signature",
            format!("keyhop=:{}:", "A".repeat(70_000)).into_bytes(),
            Expect::refuse(401, "malformed_signature").or_envoy(&[431, 0]),
        ),
    ];
    for (name, header_name, value, expect) in cases {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "bytes-and-size",
            name,
            set(&credential, header_name, value),
            signed,
            expect,
        ));
    }

    // Thousands of covered fields: the base cannot be built (the fields are absent).
    let (credential, signed) = g.fresh();
    let mut names: Vec<String> = COMPONENTS.iter().map(|c| (*c).to_owned()).collect();
    names.extend((0..2000).map(|i| format!("x-f{i}")));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    out.push(Attack::new(
        "bytes-and-size",
        "2006 covered components",
        with_components(&credential, &list_of(&refs)),
        signed,
        Expect::refuse(401, "missing_component"),
    ));

    // A nonce of 30 KB: decodes, passes the length floor, fails the MAC.
    let (credential, signed) = g.fresh();
    out.push(Attack::new(
        "bytes-and-size",
        "nonce of 30 KB",
        with_param(
            &credential,
            "nonce",
            Some(&format!("\"{}\"", "A".repeat(30_000))),
        ),
        signed,
        bad_signature(),
    ));

    // Too many header fields for Envoy.
    let (mut credential, signed) = g.fresh();
    for i in 0..200 {
        credential.headers.add(&format!("x-flood-{i}"), "1");
    }
    out.push(
        Attack::new(
            "bytes-and-size",
            "200 extra header fields",
            credential,
            signed,
            Expect::default().or_envoy(&[431, 400, 0]),
        )
        .envoy_only(),
    );

    // Bytes Envoy's codec refuses outright.
    for (name, header_name, value) in [
        (
            "NUL in identity",
            "keyhop-identity",
            b"spiffe://finsphere.example/ns/portal/sa/portal-web\x00x".to_vec(),
        ),
        ("CR in signature", "signature", b"keyhop=:AAAA\r:".to_vec()),
    ] {
        let (credential, signed) = g.fresh();
        out.push(
            Attack::new(
                "bytes-and-size",
                name,
                set(&credential, header_name, value),
                signed,
                Expect::refuse(401, "invalid_identity")
                    .or(401, "malformed_signature")
                    .or_envoy(&[400, 0]),
            )
            .envoy_only(),
        );
    }
    let (credential, signed) = g.fresh();
    let raw = String::from_utf8_lossy(&credential.to_bytes())
        .replacen(
            "keyhop-identity: ",
            "keyhop-identity: spiffe://evil.example/x\r\n ",
            1,
        )
        .into_bytes();
    out.push(
        Attack::new(
            "bytes-and-size",
            "obs-fold continuation in identity",
            credential,
            signed,
            Expect::refuse(401, "invalid_identity")
                .or(401, "bad_signature")
                .or_envoy(&[400, 0]),
        )
        .raw(raw),
    );
    out
}

/// The algorithm is pinned to the key; the request's `alg` must equal it, never choose it.
fn alg_confusion(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    for alg in [
        "hmac-sha512",
        "hmac-sha384",
        "rsa-pss-sha512",
        "rsa-v1_5-sha256",
        "ecdsa-p256-sha256",
        "ecdsa-p384-sha384",
        "ed25519",
        "HMAC-SHA256",
        "hmac-sha256 ",
        "none",
        "",
    ] {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "alg-confusion",
            format!("alg {alg:?}"),
            with_param(&credential, "alg", Some(&format!("\"{alg}\""))),
            signed,
            Expect::refuse(401, "algorithm_mismatch"),
        ));
    }
    let cases: [(&str, Option<&str>, Expect); 4] = [
        (
            "alg as a token",
            Some("hmac-sha256"),
            Expect::refuse(401, "bad_parameter"),
        ),
        (
            "alg as an integer",
            Some("256"),
            Expect::refuse(401, "bad_parameter"),
        ),
        (
            "alg as a byte sequence",
            Some(":aG1hYy1zaGEyNTY=:"),
            Expect::refuse(401, "bad_parameter"),
        ),
        (
            "alg missing",
            None,
            Expect::refuse(401, "missing_parameter"),
        ),
    ];
    for (name, value, expect) in cases {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "alg-confusion",
            name,
            with_param(&credential, "alg", value),
            signed,
            expect,
        ));
    }
    out
}

/// The six components are required, each once, with no parameters; nothing keyhop cannot
/// compute is accepted.
fn covered_components(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let (credential, signed) = g.fresh();
    out.push(Attack::new(
        "covered-components",
        "empty component list",
        with_components(&credential, "()"),
        signed,
        Expect::refuse(401, "missing_component"),
    ));
    for missing in COMPONENTS {
        let (credential, signed) = g.fresh();
        let rest: Vec<&str> = COMPONENTS
            .iter()
            .copied()
            .filter(|c| *c != missing)
            .collect();
        out.push(Attack::new(
            "covered-components",
            format!("without {missing}"),
            with_components(&credential, &list_of(&rest)),
            signed,
            Expect::refuse(401, "missing_component"),
        ));
    }
    let lists: Vec<(&str, String, Expect)> = vec![
        (
            "plus @status",
            format!(
                "{} \"@status\")",
                list_of(&COMPONENTS).trim_end_matches(')')
            ),
            Expect::refuse(401, "unsupported_component"),
        ),
        (
            "plus @signature-params",
            format!(
                "{} \"@signature-params\")",
                list_of(&COMPONENTS).trim_end_matches(')')
            ),
            Expect::refuse(401, "unsupported_component"),
        ),
        (
            "plus @query-param;name",
            format!(
                "{} \"@query-param\";name=\"amount\")",
                list_of(&COMPONENTS).trim_end_matches(')')
            ),
            Expect::refuse(401, "unsupported_component"),
        ),
        (
            "content-digest with ;sf",
            list_of(&COMPONENTS).replace("\"content-digest\"", "\"content-digest\";sf"),
            Expect::refuse(401, "unsupported_component"),
        ),
        (
            "keyhop-identity with ;bs",
            list_of(&COMPONENTS).replace("\"keyhop-identity\"", "\"keyhop-identity\";bs"),
            Expect::refuse(401, "unsupported_component"),
        ),
        (
            "Content-Digest in upper case",
            list_of(&COMPONENTS).replace("\"content-digest\"", "\"Content-Digest\""),
            Expect::refuse(401, "unsupported_component"),
        ),
        (
            "@method twice",
            format!(
                "{} \"@method\")",
                list_of(&COMPONENTS).trim_end_matches(')')
            ),
            Expect::refuse(401, "duplicate_component"),
        ),
        (
            "a component as an integer",
            format!("{} 1)", list_of(&COMPONENTS).trim_end_matches(')')),
            Expect::refuse(401, "malformed_signature"),
        ),
        (
            "a component as a token",
            format!(
                "{} content-type)",
                list_of(&COMPONENTS).trim_end_matches(')')
            ),
            Expect::refuse(401, "malformed_signature"),
        ),
        (
            "plus content-type (not signed)",
            format!(
                "{} \"content-type\")",
                list_of(&COMPONENTS).trim_end_matches(')')
            ),
            bad_signature(),
        ),
        (
            "plus @target-uri (not signed)",
            format!(
                "{} \"@target-uri\")",
                list_of(&COMPONENTS).trim_end_matches(')')
            ),
            bad_signature(),
        ),
        (
            "components reordered",
            list_of(&[
                "@authority",
                "@method",
                "@path",
                "@query",
                "content-digest",
                "keyhop-identity",
            ]),
            bad_signature(),
        ),
    ];
    for (name, list, expect) in lists {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "covered-components",
            name,
            with_components(&credential, &list),
            signed,
            expect,
        ));
    }
    out
}

/// `content-digest`: one canonical 32-byte sha-256 member equal to the body's hash.
fn digest(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let malformed = || Expect::refuse(401, "malformed_digest");
    let (probe, _) = g.fresh();
    let field = header(&probe, "content-digest");
    let b64 = field
        .trim_start_matches("sha-256=:")
        .trim_end_matches(':')
        .to_owned();
    let other = keyhop_filter::digest::field_value(&keyhop_filter::digest::sha256(b"another body"));
    let cases: Vec<(String, Expect)> = vec![
        (other.clone(), Expect::refuse(401, "digest_mismatch")),
        (format!("sha-256={b64}"), malformed()),
        (format!("sha-256=:{b64}==:"), malformed()),
        (
            format!("sha-256=:{}:", b64.trim_end_matches('=')),
            malformed(),
        ),
        ("sha-256=:AAAAAAAAAAAAAAAAAAAAAA==:".to_owned(), malformed()),
        (format!("sha-256=:{b64}{b64}:"), malformed()),
        (format!("sha-512=:{b64}{b64}:"), malformed()),
        (format!("SHA-256=:{b64}:"), malformed()),
        (format!("sha-256=:{b64}:;q=1"), malformed()),
        (format!("sha-256=:{b64}:, sha-256=:{b64}:"), malformed()),
        (format!("sha-256=\"{b64}\""), malformed()),
        ("sha-256=?1".to_owned(), malformed()),
        (String::new(), malformed()),
        (
            format!("sha-256=:{}:", b64.replace('+', "-").replace('/', "_")),
            malformed().or(401, "digest_mismatch"),
        ),
        (format!("sha-256=:{b64}:garbage"), malformed()),
        (
            format!("{field}, sha-512=:AAAA:"),
            Expect::refuse(401, "bad_signature"),
        ),
    ];
    for (value, expect) in cases {
        let (credential, signed) = g.fresh();
        // Every credential here signs the same body, so one digest fits all of them.
        let name = format!("content-digest {}", shorten(&value));
        out.push(Attack::new(
            "digest",
            name,
            set(&credential, "content-digest", value),
            signed,
            expect,
        ));
    }
    out
}

/// The six parameters, with the right types, and nothing else; a nonce of ≥ 16 bytes.
fn parameters(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let missing = || Expect::refuse(401, "missing_parameter");
    let bad = || Expect::refuse(401, "bad_parameter");
    let weak = || Expect::refuse(401, "weak_nonce");
    let cases: Vec<(&str, &str, Option<&str>, Expect)> = vec![
        ("nonce of 8 bytes", "nonce", Some("\"AAAAAAAAAAA\""), weak()),
        (
            "nonce of 15 bytes",
            "nonce",
            Some("\"AAAAAAAAAAAAAAAAAAAA\""),
            weak(),
        ),
        (
            "nonce not base64url",
            "nonce",
            Some("\"!!!!!!!!!!!!!!!!!!!!!!!!\""),
            weak(),
        ),
        (
            "nonce padded",
            "nonce",
            Some("\"AAAAAAAAAAAAAAAAAAAAAA==\""),
            weak(),
        ),
        (
            "nonce in the standard alphabet",
            "nonce",
            Some("\"++++++++++++++++++++++\""),
            weak(),
        ),
        ("nonce empty", "nonce", Some("\"\""), weak()),
        (
            "nonce as a token",
            "nonce",
            Some("abcdefghijklmnopqrstuv"),
            bad(),
        ),
        ("nonce missing", "nonce", None, missing()),
        ("created missing", "created", None, missing()),
        ("expires missing", "expires", None, missing()),
        ("keyid missing", "keyid", None, missing()),
        ("tag missing", "tag", None, missing()),
        (
            "tag keyhop-v2",
            "tag",
            Some("\"keyhop-v2\""),
            Expect::refuse(401, "wrong_tag"),
        ),
        (
            "tag in upper case",
            "tag",
            Some("\"KEYHOP-V1\""),
            Expect::refuse(401, "wrong_tag"),
        ),
        ("tag as a token", "tag", Some("keyhop-v1"), bad()),
        (
            "created as a string",
            "created",
            Some("\"1764763200\""),
            bad(),
        ),
        (
            "created as a decimal",
            "created",
            Some("1764763200.5"),
            bad(),
        ),
        ("created as a boolean", "created", Some("?1"), bad()),
        ("keyid as an integer", "keyid", Some("2026"), bad()),
        (
            "an extra aud parameter",
            "aud",
            Some("\"spiffe://riskpartner.example/edge\""),
            bad(),
        ),
        ("an extra boolean parameter", "x", Some("?1"), bad()),
    ];
    for (name, param_name, value, expect) in cases {
        let (credential, signed) = g.fresh();
        out.push(Attack::new(
            "parameters",
            name,
            with_param(&credential, param_name, value),
            signed,
            expect,
        ));
    }
    out
}

/// Route policy applies to verified callers: default deny once routes exist.
fn policy(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let web = g.signer();
    let batch = g.signer().identity(REPORT_JOB);
    let denied = || Expect::refuse(403, "policy_denied");
    let unmatched = || Expect::refuse(403, "no_matching_policy");
    let cases: Vec<PolicyCase<'_>> = vec![
        (
            "report-job POST /v1/risk/score",
            &batch,
            "POST",
            SCORE_TARGET,
            SCORE_BODY.as_bytes(),
            denied(),
        ),
        (
            "report-job POST /v1/risk/transfer",
            &batch,
            "POST",
            "/v1/risk/transfer",
            b"{}",
            denied(),
        ),
        (
            "portal-web DELETE /v1/risk/score",
            &web,
            "DELETE",
            "/v1/risk/score",
            b"",
            unmatched(),
        ),
        (
            "portal-web GET /v1/risk/score",
            &web,
            "GET",
            "/v1/risk/score",
            b"",
            unmatched(),
        ),
        (
            "portal-web GET /v1/admin",
            &web,
            "GET",
            "/v1/admin",
            b"",
            unmatched(),
        ),
        (
            "portal-web POST /v1/riskx/score",
            &web,
            "POST",
            "/v1/riskx/score",
            b"{}",
            unmatched(),
        ),
        (
            "portal-web POST /v1/risk",
            &web,
            "POST",
            "/v1/risk",
            b"{}",
            unmatched(),
        ),
        (
            "portal-web POST /v2/risk/score",
            &web,
            "POST",
            "/v2/risk/score",
            b"{}",
            unmatched(),
        ),
        (
            "report-job GET /v1/health/x",
            &batch,
            "GET",
            "/v1/health/x",
            b"",
            unmatched(),
        ),
        (
            "report-job POST /v1/health",
            &batch,
            "POST",
            "/v1/health",
            b"{}",
            unmatched(),
        ),
    ];
    for (name, signer, method, target, body, expect) in cases {
        let base = g.base_for(method, target, body);
        let (credential, signed) = g.mint_as(signer, &base, 0);
        out.push(Attack::new("policy", name, credential, signed, expect));
    }

    // Dot segments: Envoy normalises the path before the filter, so the signature (over the
    // path as signed) no longer matches and the policy never sees `/v1/risk/../admin`.
    let base = g.base_for("POST", "/v1/risk/../admin", b"{}");
    let (credential, signed) = g.mint_as(&web, &base, 0);
    out.push(
        Attack::new(
            "policy",
            "portal-web signs POST /v1/risk/../admin",
            credential,
            signed,
            bad_signature(),
        )
        .envoy_only(),
    );

    let health = g.base_for("GET", "/v1/health", b"");
    let (credential, signed) = g.mint_as(&batch, &health, 0);
    out.push(Attack::new(
        "policy",
        "control: report-job GET /v1/health",
        credential,
        signed,
        Expect::control(),
    ));
    out
}

/// HTTP framing: bodies too large to buffer, ambiguous lengths, credentials in trailers.
fn framing(g: &mut Gen) -> Vec<Attack> {
    let mut out = Vec::new();
    let signer = g.signer();
    for (name, size) in [
        ("body of 1 MiB + 1", (1 << 20) + 1),
        ("body of 2 MiB", 2 << 20),
    ] {
        let body = vec![b'a'; size];
        let base = g.base_for("POST", SCORE_TARGET, &body);
        let (credential, signed) = g.mint_as(&signer, &base, 0);
        out.push(Attack::new(
            "framing",
            name,
            credential,
            signed,
            Expect::refuse(413, "body_too_large").or_envoy(&[413]),
        ));
    }

    // Content-Length and chunked together, the chunked body being the signed one.
    let (credential, signed) = g.fresh();
    let mut both = credential.clone();
    both.headers.set("content-length", "5");
    both.headers.add("transfer-encoding", "chunked");
    both.body = format!("{:x}\r\n{SCORE_BODY}\r\n0\r\n\r\n", SCORE_BODY.len()).into_bytes();
    let raw = both.to_bytes();
    out.push(
        Attack::new(
            "framing",
            "content-length and chunked together",
            credential,
            signed,
            Expect::default().or_envoy(&[400, 0]).or_equivalent(),
        )
        .raw(raw),
    );

    // The credential in trailers instead of headers.
    let (credential, signed) = g.fresh();
    let mut trailers = without(
        &credential,
        &["signature", "signature-input", "content-length"],
    );
    trailers.headers.add("transfer-encoding", "chunked");
    trailers.body = format!(
        "{:x}\r\n{SCORE_BODY}\r\n0\r\nsignature: {}\r\nsignature-input: {}\r\n\r\n",
        SCORE_BODY.len(),
        header(&credential, "signature"),
        header(&credential, "signature-input")
    )
    .into_bytes();
    let raw = trailers.to_bytes();
    out.push(
        Attack::new(
            "framing",
            "credential in chunked trailers",
            credential,
            signed,
            Expect::refuse(401, "missing_signature").or_envoy(&[400, 0]),
        )
        .raw(raw),
    );

    out
}
