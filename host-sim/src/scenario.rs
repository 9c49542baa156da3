//! Scenarios: a JSON file of scripted requests, with expectations, run
//! against one simulated Envoy. The format is documented in
//! `host-sim/README.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::abi::{LogLevel, Pairs};
use crate::config::{CallAnswer, GrpcAnswer, HostConfig};
use crate::exchange::{text, Exchange, Request, Response, Verdict};
use crate::{Host, Plugin};

/// A scenario file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub plugin: PluginSection,
    /// The VM's environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Virtual clock start, Unix seconds.
    pub clock_start: Option<u64>,
    /// Seed for WASI `random_get`; absent means real randomness.
    pub seed: Option<u64>,
    /// Number of workers (VM instances), 1 to [`MAX_WORKERS`]; the CLI's `--workers` wins.
    pub workers: Option<usize>,
    /// Host-wide properties by dotted path.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    /// Answers to `proxy_http_call`, by upstream (cluster) name.
    #[serde(default)]
    pub http_calls: BTreeMap<String, HttpAnswer>,
    /// Answers to `proxy_grpc_call`, by `service/method`.
    #[serde(default)]
    pub grpc_calls: BTreeMap<String, GrpcCallAnswer>,
    pub requests: Vec<ScenarioRequest>,
}

/// Plugin settings other than its configuration (which comes from the CLI's
/// `--config` file or from [`Scenario::host_config`]'s argument).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginSection {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub vm_config: String,
    pub log_level: LogLevel,
}

impl Default for PluginSection {
    fn default() -> Self {
        let defaults = HostConfig::default();
        PluginSection {
            name: defaults.plugin_name,
            root_id: defaults.root_id,
            vm_id: defaults.vm_id,
            vm_config: String::new(),
            log_level: LogLevel::Info,
        }
    }
}

/// Bytes written as text, or as `{"base64": "..."}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Bytes {
    Text(String),
    Base64 { base64: String },
}

impl Bytes {
    fn decode(&self) -> Result<Vec<u8>, ScenarioError> {
        match self {
            Bytes::Text(text) => Ok(text.as_bytes().to_vec()),
            Bytes::Base64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(|e| ScenarioError::Invalid(format!("bad base64 {base64:?}: {e}"))),
        }
    }
}

/// A property value, encoded as Envoy encodes attributes: a string as its
/// bytes, an integer as 8 bytes little endian, a boolean as one byte.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Int(i64),
    Bytes(Bytes),
}

impl PropertyValue {
    fn encode(&self) -> Result<Vec<u8>, ScenarioError> {
        match self {
            PropertyValue::Bool(b) => Ok(vec![u8::from(*b)]),
            PropertyValue::Int(i) => Ok(i.to_le_bytes().to_vec()),
            PropertyValue::Bytes(bytes) => bytes.decode(),
        }
    }
}

/// Headers as an object (one value per name) or a list of `[name, value]`
/// pairs (order kept, names may repeat).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Headers {
    List(Vec<(String, String)>),
    Map(BTreeMap<String, String>),
}

impl Default for Headers {
    fn default() -> Self {
        Headers::List(Vec::new())
    }
}

impl Headers {
    fn pairs(&self) -> Pairs {
        let entry = |(k, v): (&String, &String)| {
            (k.to_ascii_lowercase().into_bytes(), v.as_bytes().to_vec())
        };
        match self {
            Headers::List(list) => list.iter().map(|(k, v)| entry((k, v))).collect(),
            Headers::Map(map) => map.iter().map(entry).collect(),
        }
    }
}

/// The answer to an HTTP call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAnswer {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Headers,
    pub body: Option<Bytes>,
    #[serde(default)]
    pub trailers: Headers,
    /// The call fails (reset or timeout): the guest sees zero headers.
    #[serde(default)]
    pub failed: bool,
}

fn ok_status() -> u16 {
    200
}

/// The answer to a gRPC call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcCallAnswer {
    #[serde(default)]
    pub status: u32,
    pub message: Option<Bytes>,
}

/// One request of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRequest {
    pub name: Option<String>,
    /// Worker (VM instance) that handles it; default 0.
    #[serde(default)]
    pub worker: usize,
    /// Seconds the virtual clock moves forward before this request (ticks
    /// that fall due fire first).
    #[serde(default)]
    pub advance_seconds: f64,
    #[serde(default = "get_method")]
    pub method: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default = "default_authority")]
    pub authority: String,
    #[serde(default = "root_path")]
    pub path: String,
    #[serde(default)]
    pub headers: Headers,
    /// The whole body, delivered in one chunk.
    pub body: Option<Bytes>,
    /// The body in chunks, delivered one callback each.
    #[serde(default)]
    pub body_chunks: Vec<Bytes>,
    #[serde(default)]
    pub trailers: Headers,
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    pub response: Option<ScenarioResponse>,
    #[serde(default)]
    pub expect: Expect,
}

fn get_method() -> String {
    "GET".to_owned()
}
fn default_scheme() -> String {
    "https".to_owned()
}
fn default_authority() -> String {
    "example.test".to_owned()
}
fn root_path() -> String {
    "/".to_owned()
}

/// What the upstream answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioResponse {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Headers,
    pub body: Option<Bytes>,
    #[serde(default)]
    pub body_chunks: Vec<Bytes>,
    #[serde(default)]
    pub trailers: Headers,
}

/// Expectations for one request; each one absent is not checked.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Whether the request reached the upstream.
    pub continued: Option<bool>,
    /// The status the downstream client receives.
    pub status: Option<u32>,
    /// Headers the upstream must receive, with these exact values.
    #[serde(default)]
    pub upstream_headers: BTreeMap<String, String>,
    /// Header names the upstream must receive.
    #[serde(default)]
    pub headers_present: Vec<String>,
    /// Header names the upstream must not receive.
    #[serde(default)]
    pub headers_absent: Vec<String>,
    /// Headers the downstream client must receive (local reply or upstream
    /// response), with these exact values.
    #[serde(default)]
    pub response_headers: BTreeMap<String, String>,
    /// Metric values after this request, by metric name.
    #[serde(default)]
    pub metrics: BTreeMap<String, i64>,
}

/// Most workers (VM instances) a scenario may ask for. Each is a full VM with its own
/// memory; far more than any test needs would take minutes and hundreds of MB to start.
pub const MAX_WORKERS: usize = 256;

/// Why a scenario could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    // Not a `#[from]`/source: the message already carries serde_json's, and an error
    // chain printed in full (`{:#}`) would repeat it.
    #[error("scenario is not valid JSON for this format: {0}")]
    Parse(serde_json::Error),
    #[error("scenario is invalid: {0}")]
    Invalid(String),
    #[error(transparent)]
    Load(#[from] crate::LoadError),
}

impl From<serde_json::Error> for ScenarioError {
    fn from(error: serde_json::Error) -> Self {
        ScenarioError::Parse(error)
    }
}

/// The outcome of one scenario request.
#[derive(Debug, Clone, Serialize)]
pub struct RequestResult {
    pub index: usize,
    pub name: String,
    #[serde(flatten)]
    pub exchange: Exchange,
    /// Metrics whose value changed during this request, with the new value.
    pub metrics_changed: BTreeMap<String, i64>,
    /// Expectations that did not hold, one sentence each.
    pub failures: Vec<String>,
}

/// The outcome of a whole scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Log lines from start-up, ticks and queue callbacks.
    pub host_logs: Vec<crate::exchange::LogLine>,
    pub requests: Vec<RequestResult>,
    pub metrics: BTreeMap<String, crate::shared::MetricValue>,
}

impl Outcome {
    /// Number of requests with at least one broken expectation.
    pub fn failed(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| !r.failures.is_empty())
            .count()
    }
}

/// Refuses a worker count of 0 or above [`MAX_WORKERS`] with a sentence naming the
/// setting, `what` (`workers`, `--workers`).
pub fn check_workers(workers: usize, what: &str) -> Result<usize, String> {
    if workers == 0 {
        return Err(format!("{what} must be at least 1"));
    }
    if workers > MAX_WORKERS {
        return Err(format!(
            "{what} is {workers}, more than the {MAX_WORKERS} the simulator runs"
        ));
    }
    Ok(workers)
}

impl Scenario {
    /// Parses a scenario; unknown fields are refused so typos do not pass silently.
    pub fn from_json(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_json::from_str(text)?;
        if let Some(workers) = scenario.workers {
            check_workers(workers, "workers").map_err(ScenarioError::Invalid)?;
        }
        Ok(scenario)
    }

    /// The host settings this scenario describes, for a plugin configured
    /// with `plugin_configuration`; `extra_env` entries override the
    /// scenario's own.
    pub fn host_config(
        &self,
        plugin_configuration: Vec<u8>,
        extra_env: &[(String, String)],
    ) -> Result<HostConfig, ScenarioError> {
        let mut env = self.env.clone();
        env.extend(extra_env.iter().cloned());

        let mut config = HostConfig {
            plugin_name: self.plugin.name.clone(),
            root_id: self.plugin.root_id.clone(),
            vm_id: self.plugin.vm_id.clone(),
            plugin_configuration,
            vm_configuration: self.plugin.vm_config.as_bytes().to_vec(),
            env: env.into_iter().collect(),
            log_level: self.plugin.log_level,
            seed: self.seed,
            ..HostConfig::default()
        };
        if let Some(start) = self.clock_start {
            config.clock_start_nanos = start.saturating_mul(1_000_000_000);
        }
        for (path, value) in &self.properties {
            config.properties.insert(path.clone(), value.encode()?);
        }
        for (upstream, answer) in &self.http_calls {
            let mut headers = vec![(b":status".to_vec(), answer.status.to_string().into_bytes())];
            headers.extend(answer.headers.pairs());
            let body = answer
                .body
                .as_ref()
                .map(Bytes::decode)
                .transpose()?
                .unwrap_or_default();
            let call = CallAnswer {
                headers,
                body,
                trailers: answer.trailers.pairs(),
                failed: answer.failed,
            };
            config.http_answers.insert(upstream.clone(), call);
        }
        for (target, answer) in &self.grpc_calls {
            let message = answer
                .message
                .as_ref()
                .map(Bytes::decode)
                .transpose()?
                .unwrap_or_default();
            let grpc = GrpcAnswer {
                status: answer.status,
                message,
            };
            config.grpc_answers.insert(target.clone(), grpc);
        }
        Ok(config)
    }

    /// Loads `plugin` into a fresh host and runs every request in order.
    pub fn run(
        &self,
        plugin: &Plugin,
        config: HostConfig,
        workers: Option<usize>,
    ) -> Result<Outcome, ScenarioError> {
        let workers = check_workers(workers.or(self.workers).unwrap_or(1), "workers")
            .map_err(ScenarioError::Invalid)?;
        let mut host = Host::start(plugin, config, workers)?;

        let mut results = Vec::new();
        for (index, step) in self.requests.iter().enumerate() {
            let advance = Duration::try_from_secs_f64(step.advance_seconds).map_err(|e| {
                ScenarioError::Invalid(format!("request {index}: advance_seconds: {e}"))
            })?;
            if !advance.is_zero() {
                host.advance(advance);
            }
            let request = step.to_request(index)?;

            let before = metric_values(&host);
            let exchange = host.handle(step.worker, &request);
            let after = metric_values(&host);

            let metrics_changed = after
                .iter()
                .filter(|(name, value)| before.get(*name) != Some(value))
                .map(|(name, value)| (name.clone(), *value))
                .collect();
            let failures = check(&step.expect, &exchange, &after);
            results.push(RequestResult {
                index,
                name: step
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{} {}", step.method, step.path)),
                exchange,
                metrics_changed,
                failures,
            });
        }

        Ok(Outcome {
            host_logs: host.take_logs(),
            requests: results,
            metrics: host.metrics(),
        })
    }
}

fn metric_values(host: &Host) -> BTreeMap<String, i64> {
    host.metrics()
        .into_iter()
        .map(|(name, metric)| (name, metric.value))
        .collect()
}

impl ScenarioRequest {
    /// The request as Envoy's filter chain would see it: pseudo-headers
    /// first, then the scenario's headers, and an `x-request-id` as Envoy's
    /// connection manager adds one when the client sent none.
    pub fn to_request(&self, index: usize) -> Result<Request, ScenarioError> {
        let mut headers: Pairs = vec![
            (b":method".to_vec(), self.method.as_bytes().to_vec()),
            (b":scheme".to_vec(), self.scheme.as_bytes().to_vec()),
            (b":authority".to_vec(), self.authority.as_bytes().to_vec()),
            (b":path".to_vec(), self.path.as_bytes().to_vec()),
        ];
        headers.extend(self.headers.pairs());
        if !headers.iter().any(|(k, _)| k.as_slice() == b"x-request-id") {
            let id = format!("00000000-0000-4000-8000-{index:012}");
            headers.push((b"x-request-id".to_vec(), id.into_bytes()));
        }

        let mut body_chunks = Vec::new();
        if let Some(body) = &self.body {
            body_chunks.push(body.decode()?);
        }
        for chunk in &self.body_chunks {
            body_chunks.push(chunk.decode()?);
        }

        let mut properties = BTreeMap::new();
        for (path, value) in &self.properties {
            properties.insert(path.clone(), value.encode()?);
        }

        let response = match &self.response {
            Some(r) => {
                let mut chunks = Vec::new();
                if let Some(body) = &r.body {
                    chunks.push(body.decode()?);
                }
                for chunk in &r.body_chunks {
                    chunks.push(chunk.decode()?);
                }
                Response {
                    status: r.status,
                    headers: r.headers.pairs(),
                    body_chunks: chunks,
                    trailers: r.trailers.pairs(),
                }
            }
            None => Response::default(),
        };

        Ok(Request {
            headers,
            body_chunks,
            trailers: self.trailers.pairs(),
            properties,
            response,
        })
    }
}

fn header<'a>(pairs: &'a Pairs, name: &str) -> Option<&'a [u8]> {
    let name = name.to_ascii_lowercase();
    pairs
        .iter()
        .find(|(k, _)| k.as_slice() == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// Checks `expect` against what happened; one sentence per broken expectation.
pub fn check(expect: &Expect, exchange: &Exchange, metrics: &BTreeMap<String, i64>) -> Vec<String> {
    let mut failures = Vec::new();
    let continued = matches!(exchange.verdict, Verdict::Continued);

    if let Some(want) = expect.continued {
        if want != continued {
            failures.push(format!(
                "expected continued={want}, got {}",
                describe(&exchange.verdict)
            ));
        }
    }
    if let Some(want) = expect.status {
        let got = exchange.downstream.as_ref().map(|d| d.status);
        if got != Some(want) {
            let got = got.map_or("no response".to_owned(), |s| s.to_string());
            failures.push(format!("expected status {want}, got {got}"));
        }
    }

    let upstream = exchange.upstream.as_ref().map(|u| &u.headers);
    let needs_upstream = !expect.upstream_headers.is_empty() || !expect.headers_present.is_empty();
    match upstream {
        None if needs_upstream => {
            failures.push("expected upstream headers, but nothing was forwarded".to_owned())
        }
        None => {}
        Some(headers) => {
            for (name, want) in &expect.upstream_headers {
                match header(headers, name) {
                    Some(got) if got == want.as_bytes() => {}
                    Some(got) => failures.push(format!(
                        "upstream header {name}: expected {want:?}, got {:?}",
                        text(got)
                    )),
                    None => {
                        failures.push(format!("upstream header {name}: expected {want:?}, absent"))
                    }
                }
            }
            for name in &expect.headers_present {
                if header(headers, name).is_none() {
                    failures.push(format!("upstream header {name} expected, absent"));
                }
            }
            for name in &expect.headers_absent {
                if let Some(got) = header(headers, name) {
                    failures.push(format!(
                        "upstream header {name} expected absent, got {:?}",
                        text(got)
                    ));
                }
            }
        }
    }

    let downstream = exchange.downstream.as_ref().map(|d| &d.headers);
    for (name, want) in &expect.response_headers {
        match downstream.and_then(|h| header(h, name)) {
            Some(got) if got == want.as_bytes() => {}
            Some(got) => failures.push(format!(
                "response header {name}: expected {want:?}, got {:?}",
                text(got)
            )),
            None => failures.push(format!("response header {name}: expected {want:?}, absent")),
        }
    }

    for (name, want) in &expect.metrics {
        match metrics.get(name) {
            Some(got) if got == want => {}
            Some(got) => failures.push(format!("metric {name}: expected {want}, got {got}")),
            None => failures.push(format!("metric {name}: expected {want}, not defined")),
        }
    }
    failures
}

/// A short description of a verdict: `continued`, `local response 401`, ...
pub fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Continued => "continued".to_owned(),
        Verdict::LocalResponse(reply) => format!("local response {}", reply.status),
        Verdict::Paused { phase } => format!("paused in {phase}, never resumed"),
        Verdict::Reset => "stream reset".to_owned(),
        Verdict::Failed { local_response, .. } => {
            format!("guest failure, fail-closed {}", local_response.status)
        }
    }
}
