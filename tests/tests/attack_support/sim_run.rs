//! Firing the same attacks at the filter module under the simulator (keyhop-host-sim): the
//! verifier's plugin configuration from `envoy/partner-ingress.yaml`, two workers sharing one
//! replay cache, a virtual clock that starts at the moment the attacks are minted for and moves
//! only when a test moves it.

use std::collections::BTreeMap;
use std::time::Duration;

use keyhop_host_sim::abi::LogLevel;
use keyhop_host_sim::{Exchange, Host, HostConfig, Plugin, Request as SimRequest, Verdict};

use keyhop_e2e::http::Request;

use super::outcome::{Attack, Delivered, Outcome};

/// A simulated partner Envoy running the verifier.
pub struct Sim {
    host: Host,
}

impl Sim {
    /// Starts the module in `wasm` with the documented verifier configuration and `secret`,
    /// on two workers, its clock at `now` (Unix seconds).
    pub fn start(wasm: &[u8], plugin_json: &str, secret: &str, now: i64) -> Sim {
        let plugin = Plugin::compile(wasm)
            .unwrap_or_else(|e| panic!("keyhop module does not load in the simulator: {e}"));
        let config = HostConfig {
            plugin_configuration: plugin_json.as_bytes().to_vec(),
            env: vec![(
                keyhop_e2e::topology::SECRET_ENV.to_owned(),
                secret.to_owned(),
            )],
            log_level: LogLevel::Info,
            clock_start_nanos: u64::try_from(now).unwrap_or_default() * 1_000_000_000,
            ..HostConfig::default()
        };
        let host = Host::start(&plugin, config, 2)
            .unwrap_or_else(|e| panic!("keyhop did not start in the simulator: {e}"));
        Sim { host }
    }

    /// The simulator's clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        i64::try_from(self.host.now_nanos() / 1_000_000_000).unwrap_or_default()
    }

    /// Moves the clock forward to `now` (Unix seconds); a time already past leaves it as is.
    pub fn advance_to(&mut self, now: i64) {
        let ahead = u64::try_from(now.saturating_sub(self.now())).unwrap_or_default();
        if ahead > 0 {
            self.host.advance(Duration::from_secs(ahead));
        }
    }

    /// Runs `request` on `worker` and reports everything the simulator saw of it.
    pub fn handle(&mut self, worker: usize, request: &Request) -> Exchange {
        self.host.handle(worker, &to_sim(request))
    }

    /// Every metric the module defined, by name (`keyhop.verify.allow`, ...), with its value.
    pub fn metrics(&self) -> BTreeMap<String, i64> {
        self.host
            .metrics()
            .into_iter()
            .map(|(name, metric)| (name, metric.value))
            .collect()
    }

    /// Fires one attack; `None` for attacks that only mean something to Envoy's HTTP layer.
    pub fn fire(&mut self, attack: &Attack) -> Option<Outcome> {
        if attack.envoy_only {
            return None;
        }
        for request in &attack.prelude {
            let outcome = outcome_of(&self.handle(0, request));
            assert!(
                matches!(outcome, Outcome::Forwarded(_)),
                "{} / {}: the legitimate request before the attack was not forwarded: {outcome:?}",
                attack.class,
                attack.name
            );
        }
        Some(outcome_of(&self.handle(attack.sim_worker, &attack.request)))
    }
}

/// The request as Envoy hands it to a filter: pseudo-headers first, names in lower case,
/// `host` as `:authority`.
pub fn to_sim(request: &Request) -> SimRequest {
    let authority = request.headers.get("host").unwrap_or_default().to_vec();
    let mut headers = vec![
        (b":authority".to_vec(), authority),
        (b":path".to_vec(), request.target.clone().into_bytes()),
        (b":method".to_vec(), request.method.clone().into_bytes()),
        (b":scheme".to_vec(), b"http".to_vec()),
    ];
    for (name, value) in &request.headers.0 {
        if !name.eq_ignore_ascii_case("host") {
            headers.push((name.to_ascii_lowercase().into_bytes(), value.clone()));
        }
    }
    let body_chunks = if request.body.is_empty() {
        Vec::new()
    } else {
        vec![request.body.clone()]
    };
    SimRequest {
        headers,
        body_chunks,
        ..SimRequest::default()
    }
}

/// Every value of header `name` (any case) in `pairs`, as text (lossy), in order.
pub fn header(pairs: &[(Vec<u8>, Vec<u8>)], name: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// What the simulated exchange says about the attack.
pub fn outcome_of(exchange: &Exchange) -> Outcome {
    match &exchange.verdict {
        Verdict::Continued => {
            let Some(upstream) = &exchange.upstream else {
                return Outcome::Broken("continued without an upstream request".to_owned());
            };
            let first = |name: &str| {
                header(&upstream.headers, name)
                    .into_iter()
                    .next()
                    .unwrap_or_default()
            };
            Outcome::Forwarded(Delivered {
                method: first(":method"),
                target: first(":path"),
                body: upstream.body.clone(),
                verified: header(&upstream.headers, keyhop_e2e::VERIFIED_IDENTITY_HEADER),
                leaked: ["signature", "signature-input", "keyhop-identity"]
                    .iter()
                    .filter(|name| !header(&upstream.headers, name).is_empty())
                    .map(|name| (*name).to_owned())
                    .collect(),
            })
        }
        Verdict::LocalResponse(reply) => {
            match header(&reply.headers, "keyhop-reason").into_iter().next() {
                Some(reason) => {
                    Outcome::Filter(u16::try_from(reply.status).unwrap_or_default(), reason)
                }
                None => Outcome::Broken(format!(
                    "local reply {} without keyhop-reason",
                    reply.status
                )),
            }
        }
        Verdict::Paused { phase } => Outcome::Broken(format!("stalled in {phase}")),
        Verdict::Reset => Outcome::Broken("stream reset".to_owned()),
        Verdict::Failed { error, .. } => Outcome::Broken(format!("module failed: {error}")),
    }
}
