//! Differential test: one set of scenarios (`tests/scenarios/differential.json`) runs through
//! the module under keyhop-host-sim and through the partner's real Envoy, and the two must
//! agree on every verdict, status, refusal reason, audit line, counter and header the risk
//! API receives. Each scenario's expectations (keyhop-host-sim's scenario format) are checked
//! on both sides as well, so a change that breaks both alike still fails.
//!
//! Both sides get the same bytes: each credential is minted once, with the filter crate's own
//! signer, as created at the real current time, because Envoy reads the wall clock; the
//! simulator's virtual clock is moved to that same second before its run of the request.
//!
//! On a disagreement the test fails with one line per field: scenario, field, the simulator's
//! value and Envoy's. The whole comparison is also written to `differential.txt` in the run
//! directory under `.run/`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod attack_support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use attack_support::envoy_run::exchange;
use attack_support::mint::{random_secret, unix_now, Signer};
use attack_support::partner_plugin_json;
use attack_support::sim_run::{header, Sim};
use keyhop_e2e::envoy::{self, audit_lines, Envoy};
use keyhop_e2e::http::{Headers, Request, Response};
use keyhop_e2e::{Echo, Options, Topology};
use keyhop_host_sim::exchange::{text, Delivered, Forwarded, LocalResponse};
use keyhop_host_sim::scenario::{check, Expect};
use keyhop_host_sim::{Exchange, Verdict};

// --- what is compared --------------------------------------------------------------------

/// Upstream headers left out of the comparison, each with the reason it legitimately differs.
/// Everything else the risk API receives is compared: method, target, body and every other
/// header with all its values (the verified identity, the credential headers that must be
/// gone, `content-type`, `content-length`, `content-digest`, `x-request-id`, spoofed copies).
const NOT_COMPARED_UPSTREAM: [(&str, &str); 3] = [
    (
        ":scheme",
        "the simulator reports the pseudo-header; Envoy's HTTP/1.1 upstream request has no \
         scheme (x-forwarded-proto carries it)",
    ),
    (
        "x-forwarded-proto",
        "added by Envoy's connection manager, which the simulator does not model",
    ),
    (
        "x-envoy-expected-rq-timeout-ms",
        "added by Envoy's router from the route timeout; the simulator has no router",
    ),
];

/// Response headers compared on a local reply (a refusal). The rest of a reply differs
/// legitimately: Envoy adds `date`, `server` and `content-length` to every local reply, and a
/// forwarded request's response comes from two different upstreams (the simulator's scripted
/// answer, the risk API's echo).
const REPLY_HEADERS: [&str; 2] = ["keyhop-reason", "content-type"];

/// The response signature fields. Only their presence is compared: each value carries its own
/// `created` and a fresh nonce, and covers a response body that differs between the sides.
const RESPONSE_SIGNATURE_FIELDS: [&str; 3] = ["content-digest", "signature-input", "signature"];

/// Field name → value: one side's observable result of one scenario.
type Fields = BTreeMap<String, String>;

// --- the scenario file -------------------------------------------------------------------

/// `tests/scenarios/differential.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// What the file is; for readers only.
    #[serde(rename = "about")]
    _about: String,
    cases: Vec<Case>,
}

/// One scenario: a request (or a replay of an earlier one), how it is signed and tampered
/// with, and what must happen to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// The request before signing; absent for a replay.
    request: Option<RequestSpec>,
    /// Sign the request (absent: send it unsigned).
    credential: Option<CredentialSpec>,
    /// Send again exactly what the earlier scenario of this name sent (with a new request id).
    replay_of: Option<String>,
    /// Changes made after signing, in order.
    #[serde(default)]
    tamper: Vec<Tamper>,
    /// The simulator worker that handles it (Envoy's kernel picks its worker itself).
    #[serde(default)]
    sim_worker: usize,
    /// keyhop-host-sim's expectations, checked on both sides.
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    method: String,
    /// Path and query, as sent.
    path: String,
    #[serde(default)]
    headers: Vec<(String, Value)>,
    body: Option<String>,
}

/// How the credential is minted; every field defaults to the demo's portal-web signer,
/// created now, under the verifier's root secret.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialSpec {
    identity: Option<String>,
    key_id: Option<String>,
    /// Sign under a fresh random root secret instead of the verifier's.
    #[serde(default)]
    other_secret: bool,
    /// Seconds added to the current time for `created`.
    #[serde(default)]
    created_offset: i64,
    lifetime_seconds: Option<u64>,
}

/// One change to a signed request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Tamper {
    /// Replaces every field of that name with one field.
    SetHeader(String, Value),
    /// Adds a field, keeping those already there.
    AddHeader(String, Value),
    RemoveHeader(String),
    /// Renames every field of that name (any case) in place.
    RenameHeader(String, String),
    /// Replaces the first occurrence of a text in a header's value.
    ReplaceInHeader(String, String, String),
    /// Replaces the body (and its `content-length`).
    SetBody(String),
    /// Sets `content-digest` to the digest of the current body.
    RecomputeDigest,
    /// Replaces the path and query.
    SetPath(String),
    SetMethod(String),
}

impl ScenarioFile {
    fn path() -> PathBuf {
        envoy::repo_root().join("tests/scenarios/differential.json")
    }

    fn load() -> ScenarioFile {
        let path = ScenarioFile::path();
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a valid scenario file: {e}", path.display()))
    }
}

/// A header value written in the scenario file: text, `{"base64": …}`, `{"copy_of": name}`
/// (the current value of another header), or `{"prefix", "repeat", "times", "suffix"}`.
fn header_value(value: &Value, request: &Request) -> Vec<u8> {
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    if let Some(text) = value.as_str() {
        return text.as_bytes().to_vec();
    }
    if let Some(encoded) = field("base64") {
        return base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_else(|e| panic!("bad base64 {encoded:?}: {e}"));
    }
    if let Some(name) = field("copy_of") {
        return request
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("copy_of: no {name} header"))
            .to_vec();
    }
    if let (Some(unit), Some(times)) = (field("repeat"), value.get("times")) {
        let times = usize::try_from(times.as_u64().expect("times is a count")).expect("times");
        let (prefix, suffix) = (field("prefix").unwrap_or(""), field("suffix").unwrap_or(""));
        return format!("{prefix}{}{suffix}", unit.repeat(times)).into_bytes();
    }
    panic!("not a header value: {value}");
}

/// Builds the request scenario `index` sends, minted at `now` with the verifier's `secret`.
fn build(
    case: &Case,
    index: usize,
    sent: &BTreeMap<String, Request>,
    secret: &str,
    now: i64,
) -> Request {
    let mut request = match (&case.replay_of, &case.request) {
        (Some(earlier), None) => sent
            .get(earlier)
            .unwrap_or_else(|| panic!("{}: replay_of {earlier:?}: no such earlier case", case.name))
            .clone(),
        (None, Some(spec)) => {
            let mut request = Request::new(&spec.method, &spec.path);
            for (name, value) in &spec.headers {
                let value = header_value(value, &request);
                request.headers.add(name, value);
            }
            if let Some(body) = &spec.body {
                request = request.body(body);
            }
            request
        }
        _ => panic!("{}: give either `request` or `replay_of`", case.name),
    };

    if let Some(credential) = &case.credential {
        let mut signer = Signer::portal_web(secret);
        if let Some(identity) = &credential.identity {
            signer = signer.identity(identity);
        }
        if let Some(key_id) = &credential.key_id {
            signer = signer.key_id(key_id);
        }
        if credential.other_secret {
            signer = signer.secret(&random_secret());
        }
        if let Some(lifetime) = credential.lifetime_seconds {
            signer = signer.lifetime(lifetime);
        }
        request = signer
            .minter()
            .mint(&request, now + credential.created_offset);
    }

    for change in &case.tamper {
        request = tamper(request, change);
    }

    // Not covered by the signature; it lets each side's audit line be found by it.
    let id = format!("differential-{}-{index}", std::process::id());
    request.headers.set("x-request-id", id);
    request
}

fn tamper(mut request: Request, change: &Tamper) -> Request {
    match change {
        Tamper::SetHeader(name, value) => {
            let value = header_value(value, &request);
            request.headers.set(name, value);
        }
        Tamper::AddHeader(name, value) => {
            let value = header_value(value, &request);
            request.headers.add(name, value);
        }
        Tamper::RemoveHeader(name) => request.headers.remove(name),
        Tamper::RenameHeader(from, to) => {
            for (name, _) in &mut request.headers.0 {
                if name.eq_ignore_ascii_case(from) {
                    name.clone_from(to);
                }
            }
        }
        Tamper::ReplaceInHeader(name, from, to) => {
            let value = request
                .headers
                .get_str(name)
                .unwrap_or_else(|| panic!("replace_in_header: no {name} header"));
            assert!(value.contains(from.as_str()), "{name} has no {from:?}");
            request
                .headers
                .set(name, value.replacen(from.as_str(), to, 1));
        }
        Tamper::SetBody(body) => request = request.body(body),
        Tamper::RecomputeDigest => {
            let digest = keyhop_filter::digest::sha256(&request.body);
            let value = keyhop_filter::digest::field_value(&digest);
            request.headers.set("content-digest", value);
        }
        Tamper::SetPath(path) => request = request.target(path),
        Tamper::SetMethod(method) => method.clone_into(&mut request.method),
    }
    request
}

// --- running one side --------------------------------------------------------------------

/// What one side did with one request.
struct Seen {
    exchange: Exchange,
    /// Counter values after the request, by the module's metric names.
    metrics: BTreeMap<String, i64>,
    /// The counters the request moved, as `name +n`.
    counted: Vec<String>,
    /// The keyhop audit lines logged for the request.
    audit: Vec<Value>,
}

fn counted(before: &BTreeMap<String, i64>, after: &BTreeMap<String, i64>) -> Vec<String> {
    after
        .iter()
        .filter_map(|(name, value)| {
            let delta = value - before.get(name).copied().unwrap_or_default();
            (delta != 0).then(|| format!("{name} {delta:+}"))
        })
        .collect()
}

fn on_sim(sim: &mut Sim, worker: usize, request: &Request) -> Seen {
    let before = sim.metrics();
    let exchange = sim.handle(worker, request);
    let metrics = sim.metrics();

    let messages: Vec<&str> = exchange.logs.iter().map(|l| l.message.as_str()).collect();
    Seen {
        counted: counted(&before, &metrics),
        audit: audit_lines(&messages.join("\n")),
        exchange,
        metrics,
    }
}

/// The partner's keyhop counters, under the names the module defines (Envoy shows them with
/// a `wasmcustom.` prefix).
fn envoy_counters(envoy: &Envoy) -> BTreeMap<String, i64> {
    envoy
        .stats("wasmcustom.keyhop.")
        .expect("the partner's stats")
        .into_iter()
        .map(|(name, value)| {
            let name = name.strip_prefix("wasmcustom.").unwrap_or(&name).to_owned();
            (name, i64::try_from(value).unwrap_or(i64::MAX))
        })
        .collect()
}

/// Sends `request` to the partner's Envoy; the audit lines are attached later, once the log
/// has them.
fn on_envoy(topology: &Topology, request: &Request) -> Seen {
    let before = envoy_counters(&topology.partner);
    let response = exchange(topology.partner_addr(), request.to_bytes(), &request.method);
    let metrics = envoy_counters(&topology.partner);
    Seen {
        exchange: envoy_exchange(response),
        counted: counted(&before, &metrics),
        metrics,
        audit: Vec::new(),
    }
}

fn pairs(headers: &Headers) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .0
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase().into_bytes(), value.clone()))
        .collect()
}

/// Envoy's answer, told the way the simulator tells an exchange, so that keyhop-host-sim's
/// own `check` judges both sides. A reply with `keyhop-reason` is the filter's local reply; a
/// reply that is the risk API's echo means the request was forwarded, and the echo says what
/// arrived (`host` spelled `:authority`, method and target as pseudo-headers, as the simulator
/// reports them); anything else is Envoy's own reply.
fn envoy_exchange(response: io::Result<Response>) -> Exchange {
    let mut exchange = Exchange::new(0, 0, Verdict::Reset);
    let Ok(response) = response else {
        return exchange;
    };
    exchange.downstream = Some(Delivered {
        status: u32::from(response.status),
        headers: pairs(&response.headers),
        body: response.body.clone(),
    });
    let echo = Echo::from_response(&response).filter(|_| response.reason().is_none());

    exchange.verdict = match echo {
        Some(echo) => {
            let mut headers = vec![
                (b":method".to_vec(), echo.method.clone().into_bytes()),
                (b":path".to_vec(), echo.target.clone().into_bytes()),
            ];
            for (name, value) in &echo.headers {
                let name = if name == "host" { ":authority" } else { name };
                headers.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
            }
            exchange.upstream = Some(Forwarded {
                headers,
                body: echo.body.into_bytes(),
                trailers: Vec::new(),
            });
            Verdict::Continued
        }
        None => Verdict::LocalResponse(LocalResponse {
            status: u32::from(response.status),
            details: String::new(),
            headers: pairs(&response.headers),
            body: response.body,
            grpc_status: -1,
        }),
    };
    exchange
}

// --- comparing ---------------------------------------------------------------------------

/// One value as `"text"`, several as `["a", "b"]`.
fn shown(values: &[String]) -> String {
    match values {
        [one] => format!("{one:?}"),
        many => format!("{many:?}"),
    }
}

/// Everything compared about one side's run of one scenario.
fn observe(seen: &Seen) -> Fields {
    let mut fields = Fields::new();
    let exchange = &seen.exchange;
    let verdict = match &exchange.verdict {
        Verdict::LocalResponse(reply) if header(&reply.headers, "keyhop-reason").is_empty() => {
            "local reply without keyhop-reason".to_owned()
        }
        Verdict::LocalResponse(_) => "refused by keyhop".to_owned(),
        Verdict::Continued => "forwarded".to_owned(),
        Verdict::Paused { phase } => format!("paused in {phase}"),
        Verdict::Reset => "no response".to_owned(),
        Verdict::Failed { error, .. } => format!("module failed: {error}"),
    };
    fields.insert("verdict".into(), verdict);

    if let Some(downstream) = &exchange.downstream {
        fields.insert("status".into(), downstream.status.to_string());
        let signature_fields: Vec<&str> = RESPONSE_SIGNATURE_FIELDS
            .into_iter()
            .filter(|name| !header(&downstream.headers, name).is_empty())
            .collect();
        fields.insert(
            "response signature fields".into(),
            format!("{signature_fields:?}"),
        );
    }
    if let Verdict::LocalResponse(reply) = &exchange.verdict {
        for name in REPLY_HEADERS {
            let found = header(&reply.headers, name);
            if !found.is_empty() {
                fields.insert(format!("reply header {name}"), shown(&found));
            }
        }
        fields.insert("reply body".into(), format!("{:?}", text(&reply.body)));
    }

    if let Some(upstream) = &exchange.upstream {
        fields.insert(
            "upstream body".into(),
            format!("{:?}", text(&upstream.body)),
        );
        let mut names: Vec<&[u8]> = upstream.headers.iter().map(|(n, _)| n.as_slice()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let name = text(name);
            if NOT_COMPARED_UPSTREAM.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let found = header(&upstream.headers, &name);
            fields.insert(format!("upstream header {name}"), shown(&found));
        }
    }

    fields.insert("counters".into(), seen.counted.join(", "));
    fields.insert("audit lines".into(), seen.audit.len().to_string());
    if let Some(Value::Object(line)) = seen.audit.first() {
        for (key, value) in line {
            fields.insert(format!("audit {key}"), value.to_string());
        }
    }
    fields
}

/// A value for a report line: absent said so, long values cut.
fn cut(value: Option<&String>) -> String {
    const MAX: usize = 120;
    match value {
        None => "(absent)".to_owned(),
        Some(v) if v.chars().count() > MAX => {
            let head: String = v.chars().take(MAX).collect();
            format!("{head}… ({} chars)", v.chars().count())
        }
        Some(v) => v.clone(),
    }
}

/// The fields on which the two sides disagree, one line each: field, host-sim, Envoy.
fn differences(sim: &Fields, envoy: &Fields) -> Vec<String> {
    let mut names: Vec<&String> = sim.keys().chain(envoy.keys()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|name| sim.get(*name) != envoy.get(*name))
        .map(|name| {
            format!(
                "{name}: host-sim {} | Envoy {}",
                cut(sim.get(name)),
                cut(envoy.get(name))
            )
        })
        .collect()
}

/// The verdict in a few words, for the summary table.
fn summary(fields: &Fields) -> String {
    let field = |name: &str| fields.get(name).map_or("-", String::as_str);
    format!(
        "{} {} {}",
        field("verdict"),
        field("status"),
        field("reply header keyhop-reason")
    )
}

/// The comparison of one scenario.
struct Compared {
    name: String,
    sim: Fields,
    envoy: Fields,
    differences: Vec<String>,
    /// Expectations that failed, prefixed with the side.
    unmet: Vec<String>,
}

fn compare(case: &Case, sim: &Seen, envoy: &Seen) -> Compared {
    let (sim_fields, envoy_fields) = (observe(sim), observe(envoy));
    let mut unmet = Vec::new();
    for (side, seen) in [("host-sim", sim), ("Envoy", envoy)] {
        for failure in check(&case.expect, &seen.exchange, &seen.metrics) {
            unmet.push(format!("{side}: {failure}"));
        }
    }
    Compared {
        name: case.name.clone(),
        differences: differences(&sim_fields, &envoy_fields),
        sim: sim_fields,
        envoy: envoy_fields,
        unmet,
    }
}

/// The full report and the failure message (empty when every scenario agrees and holds).
fn report(compared: &[Compared]) -> (String, String) {
    let mut full = String::new();
    let mut failure = String::new();
    for (index, c) in compared.iter().enumerate() {
        let _ = writeln!(
            full,
            "#{index:<2} {:<66} host-sim: {:<36} Envoy: {}",
            c.name,
            summary(&c.sim),
            summary(&c.envoy)
        );
        for (field, value) in c.sim.iter().filter(|(k, v)| c.envoy.get(*k) == Some(*v)) {
            let _ = writeln!(full, "      same  {field}: {}", cut(Some(value)));
        }
        if c.differences.is_empty() && c.unmet.is_empty() {
            continue;
        }
        let _ = writeln!(failure, "scenario #{index} {:?}:", c.name);
        for line in c.differences.iter().chain(&c.unmet) {
            let _ = writeln!(failure, "    {line}");
        }
    }
    let disagree = compared
        .iter()
        .filter(|c| !c.differences.is_empty())
        .count();
    let unmet = compared.iter().filter(|c| !c.unmet.is_empty()).count();
    let _ = writeln!(
        full,
        "{} scenarios: host-sim and Envoy disagree on {disagree}, expectations fail on {unmet}",
        compared.len()
    );
    if !failure.is_empty() {
        failure = format!(
            "host-sim and Envoy disagree on {disagree} of {} scenarios, expectations fail on \
             {unmet}:\n{failure}",
            compared.len()
        );
        full.push_str(&failure);
    }
    (full, failure)
}

// --- the tests ---------------------------------------------------------------------------

/// Waits until Envoy's log has an audit line for every request id in `ids`, or 10 s pass; the
/// log is written asynchronously.
fn envoy_audit(envoy: &Envoy, ids: &[String]) -> BTreeMap<String, Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for line in envoy.audit_lines() {
            if let Some(id) = line.get("request_id").and_then(Value::as_str) {
                by_id.entry(id.to_owned()).or_default().push(line.clone());
            }
        }
        if ids.iter().all(|id| by_id.contains_key(id)) || Instant::now() > deadline {
            return by_id;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn host_sim_and_envoy_agree_on_every_scenario() {
    let file = ScenarioFile::load();
    let secret = random_secret();
    let mut options = Options::new("differential");
    options.secret = Some(secret.clone());
    let topology = Topology::start_with(options).expect("topology");
    let wasm = fs::read(envoy::wasm_module()).expect("read the module");
    let mut sim = Sim::start(&wasm, &partner_plugin_json(), &secret, unix_now());

    let mut sent: BTreeMap<String, Request> = BTreeMap::new();
    let mut runs = Vec::new();
    for (index, case) in file.cases.iter().enumerate() {
        let now = unix_now();
        let request = build(case, index, &sent, &secret, now);

        let on_envoy = on_envoy(&topology, &request);
        sim.advance_to(now);
        let on_sim = on_sim(&mut sim, case.sim_worker, &request);

        sent.insert(case.name.clone(), request.clone());
        runs.push((request, on_sim, on_envoy));
    }

    let ids: Vec<String> = runs
        .iter()
        .filter_map(|(request, _, _)| request.headers.get_str("x-request-id"))
        .collect();
    let mut audit = envoy_audit(&topology.partner, &ids);
    let compared: Vec<Compared> = file
        .cases
        .iter()
        .zip(runs.iter_mut())
        .map(|(case, (request, on_sim, on_envoy))| {
            let id = request.headers.get_str("x-request-id").unwrap_or_default();
            on_envoy.audit = audit.remove(&id).unwrap_or_default();
            compare(case, on_sim, on_envoy)
        })
        .collect();

    let (mut full, failure) = report(&compared);
    for (name, why) in NOT_COMPARED_UPSTREAM {
        full.push_str(&format!("upstream header {name} not compared: {why}\n"));
    }
    println!("{full}");
    let file_path = topology.run_dir().join("differential.txt");
    let _ = fs::write(&file_path, &full);
    println!("the comparison: {}", file_path.display());
    assert!(failure.is_empty(), "{failure}");
}

#[test]
fn the_scenario_file_covers_the_verdicts() {
    let file = ScenarioFile::load();
    assert!(
        file.cases.len() >= 15,
        "only {} scenarios",
        file.cases.len()
    );

    let mut names = std::collections::BTreeSet::new();
    for case in &file.cases {
        assert!(names.insert(case.name.as_str()), "{:?} twice", case.name);
        if let Some(earlier) = &case.replay_of {
            assert!(
                names.contains(earlier.as_str()),
                "{:?}: replay_of a later case",
                case.name
            );
        }
        assert!(
            case.expect.status.is_some() && case.expect.continued.is_some(),
            "{:?}: every scenario states its status and whether it is forwarded",
            case.name
        );
    }

    let reasons: std::collections::BTreeSet<&str> = file
        .cases
        .iter()
        .filter_map(|c| c.expect.response_headers.get("keyhop-reason"))
        .map(String::as_str)
        .collect();
    for reason in [
        "missing_signature",
        "digest_mismatch",
        "bad_signature",
        "policy_denied",
        "replay",
        "expired",
        "malformed_signature",
    ] {
        assert!(
            reasons.contains(reason),
            "no scenario is refused with {reason}"
        );
    }
    let forwarded = file
        .cases
        .iter()
        .filter(|c| c.expect.continued == Some(true));
    assert!(forwarded.count() >= 2, "fewer than two accepted scenarios");
}

/// The failure message names the scenario, the field and both values, and says when a field
/// is present on one side only.
#[test]
fn a_disagreement_is_reported_field_by_field() {
    let sim_fields: Fields = [
        ("status", "401"),
        ("reply header keyhop-reason", "\"replay\""),
        ("verdict", "refused by keyhop"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut envoy_fields = sim_fields.clone();
    envoy_fields.insert("status".into(), "200".into());
    envoy_fields.remove("reply header keyhop-reason");

    let compared = [
        Compared {
            name: "agrees".into(),
            differences: differences(&sim_fields, &sim_fields),
            sim: sim_fields.clone(),
            envoy: sim_fields.clone(),
            unmet: Vec::new(),
        },
        Compared {
            name: "replayed credential".into(),
            differences: differences(&sim_fields, &envoy_fields),
            sim: sim_fields,
            envoy: envoy_fields,
            unmet: vec!["Envoy: expected status 401, got 200".into()],
        },
    ];
    let (_, failure) = report(&compared);

    assert!(failure.starts_with("host-sim and Envoy disagree on 1 of 2 scenarios"));
    assert!(failure.contains("scenario #1 \"replayed credential\":"));
    assert!(!failure.contains("agrees"));
    assert!(failure.contains("status: host-sim 401 | Envoy 200"));
    assert!(failure.contains("reply header keyhop-reason: host-sim \"replay\" | Envoy (absent)"));
    assert!(failure.contains("Envoy: expected status 401, got 200"));
}
