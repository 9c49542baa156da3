//! What an attack may end in, what it did end in, and the per-class table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use keyhop_e2e::http::Request;

/// A refusal an attack may meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The filter's local reply: status and `keyhop-reason`.
    Filter(u16, &'static str),
    /// Envoy's own HTTP layer answered (no `keyhop-reason`) with this status, or closed the
    /// connection (status 0) before the filter saw the request.
    Envoy(u16),
}

/// What an attack is allowed to end in.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// Acceptable refusals.
    pub refusals: Vec<Refusal>,
    /// Forwarding is acceptable if the application receives exactly the signed request
    /// (method, path and query, body) under the signer's verified identity, once.
    pub equivalent_ok: bool,
    /// A control: a legitimate variant that must be forwarded (as above).
    pub must_forward: bool,
}

impl Expect {
    /// Refused by the filter with `status` and `code`.
    pub fn refuse(status: u16, code: &'static str) -> Expect {
        Expect {
            refusals: vec![Refusal::Filter(status, code)],
            ..Expect::default()
        }
    }

    /// Also acceptable: the filter refusing with `status` and `code`.
    pub fn or(mut self, status: u16, code: &'static str) -> Expect {
        self.refusals.push(Refusal::Filter(status, code));
        self
    }

    /// Also acceptable: Envoy refusing before the filter with one of `statuses` (0: closed).
    pub fn or_envoy(mut self, statuses: &[u16]) -> Expect {
        self.refusals
            .extend(statuses.iter().map(|s| Refusal::Envoy(*s)));
        self
    }

    /// Also acceptable: the application receives exactly what was signed.
    pub fn or_equivalent(mut self) -> Expect {
        self.equivalent_ok = true;
        self
    }

    /// Only acceptable: the application receives exactly what was signed (a spoofed header
    /// stripped on the way).
    pub fn neutralised() -> Expect {
        Expect {
            equivalent_ok: true,
            ..Expect::default()
        }
    }

    /// A legitimate variant: it must be forwarded as signed.
    pub fn control() -> Expect {
        Expect {
            equivalent_ok: true,
            must_forward: true,
            ..Expect::default()
        }
    }
}

/// What the credential in an attack was minted for: the request the application may see.
#[derive(Clone, Debug, Default)]
pub struct Signed {
    pub method: String,
    pub target: String,
    pub body: Vec<u8>,
    pub identity: String,
}

impl Signed {
    pub fn of(request: &Request, identity: &str) -> Signed {
        Signed {
            method: request.method.clone(),
            target: request.target.clone(),
            body: request.body.clone(),
            identity: identity.to_owned(),
        }
    }
}

/// One attack (or control).
#[derive(Clone, Debug)]
pub struct Attack {
    pub class: &'static str,
    pub name: String,
    /// Requests sent first, each of which must be forwarded (the original of a replay).
    pub prelude: Vec<Request>,
    /// Send the prelude and the attack on one kept-alive connection (so one Envoy worker).
    pub same_connection: bool,
    /// The simulator worker the attack runs on (the prelude runs on worker 0).
    pub sim_worker: usize,
    pub request: Request,
    /// Bytes sent instead of `request` (HTTP framing the `Request` type cannot say).
    pub raw: Option<Vec<u8>>,
    /// Depends on Envoy's HTTP layer (path normalisation, framing): not run in the simulator.
    pub envoy_only: bool,
    pub signed: Signed,
    pub expect: Expect,
}

impl Attack {
    pub fn new(
        class: &'static str,
        name: impl Into<String>,
        request: Request,
        signed: Signed,
        expect: Expect,
    ) -> Attack {
        Attack {
            class,
            name: name.into(),
            prelude: Vec::new(),
            same_connection: false,
            sim_worker: 0,
            request,
            raw: None,
            envoy_only: false,
            signed,
            expect,
        }
    }

    pub fn envoy_only(mut self) -> Attack {
        self.envoy_only = true;
        self
    }

    pub fn raw(mut self, bytes: Vec<u8>) -> Attack {
        self.raw = Some(bytes);
        self.envoy_only = true;
        self
    }

    pub fn after(mut self, prelude: Request, same_connection: bool) -> Attack {
        self.prelude.push(prelude);
        self.same_connection = same_connection;
        self
    }

    pub fn on_sim_worker(mut self, worker: usize) -> Attack {
        self.sim_worker = worker;
        self
    }

    pub fn is_control(&self) -> bool {
        self.expect.must_forward
    }
}

/// What the application received, when a request got through.
#[derive(Clone, Debug, Default)]
pub struct Delivered {
    pub method: String,
    pub target: String,
    pub body: Vec<u8>,
    /// Every value of the verified-identity header the application received.
    pub verified: Vec<String>,
    /// Credential headers that reached the application (must be none).
    pub leaked: Vec<String>,
}

/// What an attack ended in.
#[derive(Clone, Debug)]
pub enum Outcome {
    Forwarded(Delivered),
    /// The filter refused: status and reason code.
    Filter(u16, String),
    /// Envoy refused before the filter: status, or 0 for a closed connection.
    Envoy(u16),
    /// The module failed (trap) or the request stalled: never acceptable.
    Broken(String),
}

/// How an outcome is judged against its expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Refused as expected, by the filter.
    RefusedByFilter,
    /// Refused as expected, by Envoy's HTTP layer.
    RefusedByEnvoy,
    /// Forwarded, and the application saw exactly what was signed (spoof neutralised, or a
    /// control accepted).
    Equivalent,
    /// Forwarded when it must not be: the attack succeeded.
    Accepted,
    /// Refused, but not as expected (wrong status, code or layer), or broken.
    Unexpected,
}

impl Judgement {
    pub fn ok(self) -> bool {
        !matches!(self, Judgement::Accepted | Judgement::Unexpected)
    }
}

/// Judges one outcome.
pub fn judge(attack: &Attack, outcome: &Outcome) -> Judgement {
    let expect = &attack.expect;
    match outcome {
        Outcome::Forwarded(delivered) => {
            let equivalent = is_equivalent(&attack.signed, delivered);
            if (expect.equivalent_ok || expect.must_forward) && equivalent {
                Judgement::Equivalent
            } else {
                Judgement::Accepted
            }
        }
        _ if expect.must_forward => Judgement::Unexpected,
        Outcome::Filter(status, code) => {
            let listed = expect
                .refusals
                .iter()
                .any(|r| matches!(r, Refusal::Filter(s, c) if s == status && c == code));
            if listed {
                Judgement::RefusedByFilter
            } else {
                Judgement::Unexpected
            }
        }
        Outcome::Envoy(status) => {
            let listed = expect
                .refusals
                .iter()
                .any(|r| matches!(r, Refusal::Envoy(s) if s == status));
            if listed {
                Judgement::RefusedByEnvoy
            } else {
                Judgement::Unexpected
            }
        }
        Outcome::Broken(_) => Judgement::Unexpected,
    }
}

/// The application received exactly the signed request, under the signer's identity alone,
/// and no credential header.
pub fn is_equivalent(signed: &Signed, delivered: &Delivered) -> bool {
    delivered.method == signed.method
        && delivered.target == signed.target
        && delivered.body == signed.body
        && delivered.verified == [signed.identity.clone()]
        && delivered.leaked.is_empty()
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Row {
    pub class: &'static str,
    pub name: String,
    pub control: bool,
    pub outcome: Outcome,
    pub judgement: Judgement,
}

impl Row {
    pub fn describe(&self) -> String {
        let outcome = match &self.outcome {
            Outcome::Forwarded(d) => {
                format!("forwarded {} {} as {:?}", d.method, d.target, d.verified)
            }
            Outcome::Filter(status, code) => format!("filter {status} {code}"),
            Outcome::Envoy(0) => "envoy closed the connection".to_owned(),
            Outcome::Envoy(status) => format!("envoy {status}"),
            Outcome::Broken(why) => format!("BROKEN {why}"),
        };
        format!(
            "{:<22} {:<58} {:?}: {outcome}",
            self.class, self.name, self.judgement
        )
    }
}

/// Counts per class.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub tried: usize,
    pub by_filter: usize,
    pub by_envoy: usize,
    pub neutralised: usize,
    pub accepted: usize,
    pub unexpected: usize,
    pub controls: usize,
    pub controls_forwarded: usize,
}

/// The per-class table and the totals.
pub fn table(title: &str, rows: &[Row]) -> (String, Tally) {
    let mut classes: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for row in rows {
        if !classes.contains_key(row.class) {
            order.push(row.class);
        }
        let tally = classes.entry(row.class).or_default();
        if row.control {
            tally.controls += 1;
            if row.judgement == Judgement::Equivalent {
                tally.controls_forwarded += 1;
            }
            continue;
        }
        tally.tried += 1;
        match row.judgement {
            Judgement::RefusedByFilter => tally.by_filter += 1,
            Judgement::RefusedByEnvoy => tally.by_envoy += 1,
            Judgement::Equivalent => tally.neutralised += 1,
            Judgement::Accepted => tally.accepted += 1,
            Judgement::Unexpected => tally.unexpected += 1,
        }
    }

    let mut out = String::new();
    let _ = writeln!(out, "\n{title}");
    let header = format!(
        "{:<22} {:>6} {:>8} {:>8} {:>8} {:>9} {:>11} {:>9}",
        "class", "tried", "refused", "(filter)", "(envoy)", "accepted", "wrong-code", "controls"
    );
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.len()));
    let mut total = Tally::default();
    for class in order {
        let t = &classes[class];
        let refused = t.by_filter + t.by_envoy + t.neutralised;
        let controls = if t.controls > 0 {
            format!("{}/{}", t.controls_forwarded, t.controls)
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "{:<22} {:>6} {:>8} {:>8} {:>8} {:>9} {:>11} {:>9}",
            class, t.tried, refused, t.by_filter, t.by_envoy, t.accepted, t.unexpected, controls
        );
        total.tried += t.tried;
        total.by_filter += t.by_filter;
        total.by_envoy += t.by_envoy;
        total.neutralised += t.neutralised;
        total.accepted += t.accepted;
        total.unexpected += t.unexpected;
        total.controls += t.controls;
        total.controls_forwarded += t.controls_forwarded;
    }
    let _ = writeln!(out, "{}", "-".repeat(header.len()));
    let _ = writeln!(
        out,
        "{:<22} {:>6} {:>8} {:>8} {:>8} {:>9} {:>11} {:>9}",
        format!("total ({} classes)", classes.len()),
        total.tried,
        total.by_filter + total.by_envoy + total.neutralised,
        total.by_filter,
        total.by_envoy,
        total.accepted,
        total.unexpected,
        format!("{}/{}", total.controls_forwarded, total.controls)
    );
    let _ = writeln!(
        out,
        "refused = by the filter + by Envoy's HTTP layer + spoofs neutralised ({} forwarded with the \
         spoofed header replaced by the verified identity)",
        total.neutralised
    );
    (out, total)
}
