//! `make demo`: the keyhop story on loopback with real Envoys.
//!
//! The portal-web workload calls the partner's risk API through its egress Envoy, which signs
//! each call; an eavesdropper on the wire between the two Envoys steals a credential and tries
//! to use it: replayed, moved to another path, with a tampered body, after it expired. A second
//! portal workload that the partner's policy does not allow, and a caller with no credential at
//! all, complete the picture. Each call is printed as expected → got, then the partner's audit
//! lines. Exits non-zero if any verdict differs from what the contract says.

use std::io;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keyhop_e2e::topology::{PORTAL_WEB_ID, REPORT_JOB_ID};
use keyhop_e2e::{signature_param, Echo, Request, Response, Topology};
use keyhop_e2e::{CREDENTIAL_HEADERS, VERIFIED_IDENTITY_HEADER};

const SCORE_PATH: &str = "/v1/risk/score";
const SCORE_BODY: &str = r#"{"customer":"c-1042","amount":100}"#;
const TAMPERED_BODY: &str = r#"{"customer":"c-1042","amount":999999}"#;

/// One call of the demo and how it went.
struct Row {
    call: &'static str,
    expected: (u16, &'static str),
    got: (u16, String),
    /// Why the row fails even though status and reason match (what the risk API saw).
    problem: Option<String>,
}

impl Row {
    fn new(call: &'static str, expected: (u16, &'static str), response: &Response) -> Row {
        let reason = response.reason().unwrap_or_else(|| "-".to_owned());
        Row {
            call,
            expected,
            got: (response.status, reason),
            problem: None,
        }
    }

    fn failed(call: &'static str, expected: (u16, &'static str), error: &io::Error) -> Row {
        Row {
            call,
            expected,
            got: (0, "-".to_owned()),
            problem: Some(error.to_string()),
        }
    }

    fn ok(&self) -> bool {
        self.problem.is_none() && self.got.0 == self.expected.0 && self.got.1 == self.expected.1
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("keyhop-demo: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> io::Result<bool> {
    println!("keyhop demo: portal (finsphere.example) ──signs──▶ partner (riskpartner.example)");
    println!("starting risk API, partner Envoy (verify), wire tap, portal Envoy (sign)...");
    let topology = Topology::start("demo")?;
    println!("logs: {}\n", topology.run_dir().display());

    let rows = drive(&topology);

    print_table(&rows);
    println!("\naudit lines from the partner's Envoy log:");
    for line in topology.partner.audit_text() {
        println!("  {line}");
    }

    let passed = rows.iter().filter(|r| r.ok()).count();
    drop(topology);
    println!(
        "\nstopped both Envoys, the tap and the risk API. {passed} of {} verdicts as expected.",
        rows.len()
    );
    Ok(passed == rows.len())
}

fn drive(topology: &Topology) -> Vec<Row> {
    let mut rows = Vec::new();
    let score = Request::post_json(SCORE_PATH, SCORE_BODY).header("x-api-key", "legacy-key-0042");

    // 1. The legitimate call, which the eavesdropper records on its way to the partner.
    let captured = match topology.capture(&score) {
        Ok((response, captured)) => {
            let mut row = Row::new("portal-web POST /v1/risk/score", (200, "-"), &response);
            row.problem = upstream_problem(&response, PORTAL_WEB_ID);
            rows.push(row);
            Some(captured)
        }
        Err(e) => {
            rows.push(Row::failed(
                "portal-web POST /v1/risk/score",
                (200, "-"),
                &e,
            ));
            None
        }
    };

    // 2. A route open to the whole trust domain.
    let health = Request::get("/v1/health");
    rows.push(call(
        "report-job GET /v1/health",
        (200, "-"),
        topology.send_as_report_job(&health),
    ));

    // 3. A forged identity header from the workload is replaced by the verified one.
    let forged = score.clone().header(
        VERIFIED_IDENTITY_HEADER,
        "spiffe://riskpartner.example/ns/admin/sa/root",
    );
    match topology.send_as_portal_web(&forged) {
        Ok(response) => {
            let mut row = Row::new("portal-web, forged identity header", (200, "-"), &response);
            row.problem = upstream_problem(&response, PORTAL_WEB_ID);
            rows.push(row);
        }
        Err(e) => rows.push(Row::failed(
            "portal-web, forged identity header",
            (200, "-"),
            &e,
        )),
    }

    // 4. The stolen credential, used while still fresh.
    if let Some(stolen) = &captured {
        rows.push(call(
            "stolen credential replayed at partner",
            (401, "replay"),
            topology.send_raw_to_partner(&stolen.raw, &stolen.method),
        ));
        rows.push(call(
            "stolen credential on /v1/risk/limits",
            (401, "bad_signature"),
            topology.send_to_partner(&stolen.clone().target("/v1/risk/limits")),
        ));
        rows.push(call(
            "stolen credential, amount tampered",
            (401, "digest_mismatch"),
            topology.send_to_partner(&stolen.clone().body(TAMPERED_BODY)),
        ));
    }

    // 5. A genuine credential for a caller the partner's policy does not allow.
    rows.push(call(
        "report-job POST /v1/risk/score",
        (403, "policy_denied"),
        topology.send_as_report_job(&Request::post_json(SCORE_PATH, SCORE_BODY)),
    ));

    // 6. No credential at all, straight at the partner.
    rows.push(call(
        "no credential, straight at partner",
        (401, "missing_signature"),
        topology.send_to_partner(&Request::post_json(SCORE_PATH, SCORE_BODY)),
    ));

    // 7. The stolen credential once its lifetime is over.
    if let Some(stolen) = &captured {
        wait_until_expired(stolen);
        rows.push(call(
            "stolen credential after it expired",
            (401, "expired"),
            topology.send_raw_to_partner(&stolen.raw, &stolen.method),
        ));
    }
    rows
}

fn call(call: &'static str, expected: (u16, &'static str), sent: io::Result<Response>) -> Row {
    match sent {
        Ok(response) => Row::new(call, expected, &response),
        Err(e) => Row::failed(call, expected, &e),
    }
}

/// Checks what the risk API saw of an allowed call: the caller's identity, and none of the
/// credential headers or the dropped API key.
fn upstream_problem(response: &Response, identity: &str) -> Option<String> {
    if response.status != 200 {
        return None;
    }
    let Some(echo) = Echo::from_response(response) else {
        return Some("response did not come from the risk API".to_owned());
    };
    if echo.header_all(VERIFIED_IDENTITY_HEADER) != [identity] {
        return Some(format!(
            "risk API saw {VERIFIED_IDENTITY_HEADER}: {:?}",
            echo.header_all(VERIFIED_IDENTITY_HEADER)
        ));
    }
    let leaked: Vec<&str> = CREDENTIAL_HEADERS
        .iter()
        .chain(&["x-api-key"])
        .copied()
        .filter(|name| echo.header(name).is_some())
        .collect();
    (!leaked.is_empty()).then(|| format!("risk API saw {leaked:?}"))
}

/// Sleeps until the credential's `expires` has passed (by a second, for clock granularity).
fn wait_until_expired(request: &Request) {
    let expires = signature_param(request, "expires")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let wait = (expires + 1).saturating_sub(now).min(60);
    println!("waiting {wait} s for the stolen credential to expire...");
    thread::sleep(Duration::from_secs(wait));
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.call.len()).max().unwrap_or(4).max(4);
    println!("{:<width$}  {:<22}  {:<22}", "call", "expected", "got");
    println!("{:-<width$}  {:-<22}  {:-<22}", "", "", "");
    for row in rows {
        let expected = format!("{} {}", row.expected.0, row.expected.1);
        let got = format!("{} {}", row.got.0, row.got.1);
        let mark = if row.ok() { "ok" } else { "MISMATCH" };
        println!("{:<width$}  {expected:<22}  {got:<22}  {mark}", row.call);
        if let Some(problem) = &row.problem {
            println!("{:<width$}  └─ {problem}", "");
        }
    }
    println!(
        "\nOn every 200 row the risk API saw {VERIFIED_IDENTITY_HEADER} with the caller's ID, and"
    );
    println!("no signature, signature-input, keyhop-identity or x-api-key.");
    println!("report-job is {REPORT_JOB_ID}.");
}
