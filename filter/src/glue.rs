//! The proxy-wasm glue: the only module that talks to the host.
//!
//! It reads the request from Envoy, calls [`crate::sign`] or [`crate::verify`], and turns the
//! result into header edits, a local reply, one audit line and counters. Host calls are made
//! through `proxy_wasm::hostcalls`, whose `Result`s are handled here, rather than the SDK's
//! trait helpers, which panic on unexpected statuses and would trap the VM.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::audit::{bounded, bounded_to, AuditLine, KEY_ID_MAX};
use crate::config::{Config, MtlsBinding, SignConfig, VerifyConfig};
use crate::keys::EpochKeyCache;
use crate::message::{HeaderMap, Request};
use crate::profile;
use crate::reason::Reason;
use crate::replay::{SetOutcome, SharedStore, StoreError};
use crate::response::{self, ResponseKey};
use crate::sign;
use crate::verify::{self, Authentic, Facts, Pending};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { plugin: None, waiting: Rc::default() }) });
}}

/// Epoch keys kept per VM: a few epochs for a few key ids and trust domains.
const KEY_CACHE_ENTRIES: usize = 16;

/// How long a stream waits for the first byte of a body it expects before the filter gives
/// up with 503. Envoy without `allow_on_headers_stop_iteration` (Istio's WasmPlugin today)
/// never delivers the body of a paused request; this turns that silent hang into a refusal
/// that names the cause.
const BODY_WAIT_MS: u64 = 10_000;

/// Streams paused for a body that has not started to arrive: context id → deadline (ms).
/// Keyed by the host's context ids, not by anything a caller sends, so FxHash will do (an
/// insert and a remove on every request with a body).
type Waiting = Rc<RefCell<rustc_hash::FxHashMap<u32, u64>>>;

/// A configured plugin, shared by the root context and every stream of this VM.
struct Plugin {
    config: Config,
    counters: Counters,
    keys: RefCell<EpochKeyCache>,
}

/// Envoy counters, by decision and reason.
struct Counters {
    mode: &'static str,
    ok: Option<u32>,
    response_verified: Option<u32>,
    refused: Vec<(Reason, u32)>,
}

impl Counters {
    fn define(mode: &'static str) -> Counters {
        let ok_name = if mode == "sign" { "signed" } else { "allow" };
        let ok =
            hostcalls::define_metric(MetricType::Counter, &format!("keyhop.{mode}.{ok_name}")).ok();
        let refused = Reason::ALL
            .iter()
            .filter_map(|reason| {
                let name = format!("keyhop.{mode}.deny.{}", reason.code());
                hostcalls::define_metric(MetricType::Counter, &name)
                    .ok()
                    .map(|id| (*reason, id))
            })
            .collect();
        let response_verified = if mode == "sign" {
            hostcalls::define_metric(MetricType::Counter, "keyhop.sign.response_verified").ok()
        } else {
            None
        };
        Counters {
            mode,
            ok,
            response_verified,
            refused,
        }
    }

    fn count(&self, decision: &str, outcome: Result<(), Reason>) {
        let id = match outcome {
            Ok(()) if decision == "response_verified" => self.response_verified,
            Ok(()) => self.ok,
            Err(reason) => self
                .refused
                .iter()
                .find(|(r, _)| *r == reason)
                .map(|(_, id)| *id),
        };
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

struct Root {
    plugin: Option<Rc<Plugin>>,
    waiting: Waiting,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let json = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                log(
                    LogLevel::Error,
                    &format!("keyhop: cannot read plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let config = match Config::from_json(&json, &|name| std::env::var(name).ok()) {
            Ok(config) => config,
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("keyhop: configuration refused: {e}"),
                );
                return false;
            }
        };

        let mode = match &config {
            Config::Sign(_) => "sign",
            Config::Verify(verify) => {
                if verify.replay.init(&HostStore).is_err() {
                    log(LogLevel::Error, "keyhop: configuration refused: shared data unavailable for the replay cache");
                    return false;
                }
                "verify"
            }
        };
        log(
            LogLevel::Info,
            &format!("keyhop: configured in {mode} mode"),
        );
        if hostcalls::set_tick_period(std::time::Duration::from_secs(1)).is_err() {
            log(
                LogLevel::Warn,
                "keyhop: no timer; a request whose body never arrives waits for Envoy's timeout",
            );
        }
        self.plugin = Some(Rc::new(Plugin {
            config,
            counters: Counters::define(mode),
            keys: RefCell::new(EpochKeyCache::new(KEY_CACHE_ENTRIES)),
        }));
        true
    }

    fn on_tick(&mut self) {
        let Some(now) = now_ms() else {
            return;
        };
        let expired: Vec<u32> = {
            let Ok(mut waiting) = self.waiting.try_borrow_mut() else {
                return;
            };
            let expired = waiting
                .iter()
                .filter(|(_, deadline)| **deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            waiting.retain(|_, deadline| *deadline > now);
            expired
        };
        for context_id in expired {
            log(
                LogLevel::Error,
                "keyhop: the request body never reached the filter; set allow_on_headers_stop_iteration: true in the Wasm filter's config",
            );
            if let Some(plugin) = &self.plugin {
                plugin.counters.count("deny", Err(Reason::BodyNotDelivered));
            }
            if hostcalls::set_effective_context(context_id).is_ok() {
                send_refusal(Reason::BodyNotDelivered, None);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Without a configuration the stream still exists, and refuses every request with 503.
        Some(Box::new(Stream {
            id: context_id,
            waiting: Rc::clone(&self.waiting),
            plugin: self.plugin.clone(),
            state: State::Headers,
            reply: Reply::Pass,
            headers: HeaderMap::new(),
            facts: Facts::default(),
            verified: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

enum State {
    /// Waiting for request headers.
    Headers,
    /// Verify: headers passed, buffering the body.
    Verifying(Box<Pending>),
    /// Sign: credential headers removed, buffering the body.
    Signing,
    /// Decided: forwarded or refused.
    Done,
}

/// What happens to the response.
enum Reply {
    /// Passed on untouched.
    Pass,
    /// Verify side: sign it, bound to this authentic request.
    Sign(Box<Authentic>),
    /// Sign side: check its signature against the MAC we sent.
    Check([u8; 32]),
    /// Sign or check: headers held, waiting for the body.
    Waiting(Box<Reply>, u16, HeaderMap),
}

struct Stream {
    id: u32,
    waiting: Waiting,
    plugin: Option<Rc<Plugin>>,
    state: State,
    reply: Reply,
    headers: HeaderMap,
    facts: Facts,
    /// Verify: the request passed every check (the audit line names its identity in full).
    verified: bool,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(plugin) = self.plugin.clone() else {
            return self.refuse(None, Reason::Internal);
        };
        match &plugin.config {
            Config::Verify(config) => self.verify_headers(&plugin, config, end_of_stream),
            Config::Sign(config) => self.sign_headers(&plugin, config, end_of_stream),
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.body_arrived();
        let Some(plugin) = self.plugin.clone() else {
            return self.refuse(None, Reason::Internal);
        };
        if matches!(self.state, State::Done) {
            return Action::Continue;
        }
        let max = match &plugin.config {
            Config::Verify(c) => c.max_body_bytes,
            Config::Sign(c) => c.max_body_bytes,
        };
        if body_size > max {
            return self.refuse(Some(&plugin), Reason::BodyTooLarge);
        }
        if !end_of_stream {
            // Envoy keeps buffering; the next call's body_size counts everything so far.
            return Action::Pause;
        }
        self.body_complete(&plugin, body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.body_arrived();
        let Some(plugin) = self.plugin.clone() else {
            return self.refuse(None, Reason::Internal);
        };
        if matches!(self.state, State::Done) {
            return Action::Continue;
        }
        self.body_complete(&plugin, usize::MAX)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(plugin) = self.plugin.clone() else {
            return Action::Continue;
        };
        let reply = std::mem::replace(&mut self.reply, Reply::Pass);
        if matches!(reply, Reply::Pass) {
            return Action::Continue;
        }
        let headers = match header_map(MapType::HttpResponseHeaders) {
            Ok(headers) => headers,
            Err(_) => return self.refuse_reply(&plugin, Reason::Internal),
        };
        let status = headers
            .first(":status")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u16>().ok())
            .unwrap_or(0);
        self.reply = Reply::Waiting(Box::new(reply), status, headers);
        if end_of_stream {
            return self.reply_complete(&plugin, 0);
        }
        Action::Pause
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(plugin) = self.plugin.clone() else {
            return Action::Continue;
        };
        if !matches!(self.reply, Reply::Waiting(..)) {
            return Action::Continue;
        }
        let max = match &plugin.config {
            Config::Verify(c) => c.max_response_body_bytes,
            Config::Sign(c) => c.max_response_body_bytes,
        };
        if body_size > max {
            return self.refuse_reply(&plugin, Reason::ResponseTooLarge);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.reply_complete(&plugin, body_size)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.body_arrived();
    }
}

impl Stream {
    /// Starts the clock on a body the filter waits for (see [`BODY_WAIT_MS`]).
    fn wait_for_body(&self) {
        if let (Some(now), Ok(mut waiting)) = (now_ms(), self.waiting.try_borrow_mut()) {
            waiting.insert(self.id, now.saturating_add(BODY_WAIT_MS));
        }
    }

    /// The body started to arrive, or the stream is gone: stop the clock.
    fn body_arrived(&self) {
        if let Ok(mut waiting) = self.waiting.try_borrow_mut() {
            waiting.remove(&self.id);
        }
    }

    fn verify_headers(
        &mut self,
        plugin: &Plugin,
        config: &VerifyConfig,
        end_of_stream: bool,
    ) -> Action {
        // The verified-identity header is ours alone: whatever the caller put there goes first.
        self.headers = match fetch_request_headers([config.verified_identity_header.as_str()]) {
            Ok(headers) => headers,
            Err(()) => return self.refuse(Some(plugin), Reason::Internal),
        };
        let Some(now) = now() else {
            return self.refuse(Some(plugin), Reason::Internal);
        };

        let checked = match view(&self.headers) {
            Ok(request) => verify::check_headers(config, &request, now, &mut self.facts),
            Err(reason) => Err(reason),
        };
        let checked = checked.and_then(|pending| {
            let peer = match config.mtls_binding {
                MtlsBinding::Off => None,
                MtlsBinding::Prefer | MtlsBinding::Require => peer_uri_san(),
            };
            verify::check_peer(config, &pending, peer.as_deref()).map(|()| pending)
        });
        match checked {
            Ok(pending) => self.state = State::Verifying(Box::new(pending)),
            Err(reason) => return self.refuse(Some(plugin), reason),
        }
        if end_of_stream {
            return self.body_complete(plugin, 0);
        }
        self.wait_for_body();
        Action::Pause
    }

    fn sign_headers(
        &mut self,
        plugin: &Plugin,
        config: &SignConfig,
        end_of_stream: bool,
    ) -> Action {
        // Whatever the app set as a credential is not ours to forward, nor is a static key
        // the operator asked us to drop.
        let drop = profile::CREDENTIAL_HEADERS
            .iter()
            .copied()
            .chain(std::iter::once("content-digest"))
            .chain(config.drop_headers.iter().map(String::as_str));
        self.headers = match fetch_request_headers(drop) {
            Ok(headers) => headers,
            Err(()) => return self.refuse(Some(plugin), Reason::Internal),
        };
        self.state = State::Signing;
        if end_of_stream {
            return self.body_complete(plugin, 0);
        }
        self.wait_for_body();
        Action::Pause
    }

    /// The whole body is in (or there is none): decide.
    fn body_complete(&mut self, plugin: &Plugin, body_size: usize) -> Action {
        let body = if body_size == 0 {
            Vec::new()
        } else {
            match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
                Ok(body) => body.unwrap_or_default(),
                Err(_) => return self.refuse(Some(plugin), Reason::Internal),
            }
        };
        match std::mem::replace(&mut self.state, State::Done) {
            State::Verifying(pending) => self.verify_body(plugin, *pending, &body),
            State::Signing => self.sign_body(plugin, &body),
            State::Headers | State::Done => Action::Continue,
        }
    }

    fn verify_body(&mut self, plugin: &Plugin, pending: Pending, body: &[u8]) -> Action {
        let Config::Verify(config) = &plugin.config else {
            return self.refuse(Some(plugin), Reason::Internal);
        };
        let checked = view(&self.headers).and_then(|request| {
            let Ok(mut keys) = plugin.keys.try_borrow_mut() else {
                return Err(Reason::Internal);
            };
            let authentic = verify::authenticate(config, &mut keys, pending, &request, body)?;
            let authorized = verify::authorize(config, &authentic, &request, &HostStore);
            Ok((authentic, authorized))
        });
        let (authentic, authorized) = match checked {
            Ok(checked) => checked,
            Err(reason) => return self.refuse(Some(plugin), reason),
        };
        let identity_set = authorized.and_then(|()| {
            for name in profile::CREDENTIAL_HEADERS {
                hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
                    .map_err(|_| Reason::Internal)?;
            }
            hostcalls::set_map_value_bytes(
                MapType::HttpRequestHeaders,
                &config.verified_identity_header,
                Some(authentic.identity().as_bytes()),
            )
            .map_err(|_| Reason::Internal)
        });
        self.verified = identity_set.is_ok();
        // The caller is authentic: whatever the answer, it is signed for them.
        if config.sign_responses {
            self.reply = Reply::Sign(Box::new(authentic));
        }
        if let Err(reason) = identity_set {
            return self.refuse(Some(plugin), reason);
        }
        self.decided(plugin, "allow", Ok(()));
        Action::Continue
    }

    fn sign_body(&mut self, plugin: &Plugin, body: &[u8]) -> Action {
        let Config::Sign(config) = &plugin.config else {
            return self.refuse(Some(plugin), Reason::Internal);
        };
        let Some(now) = now() else {
            return self.refuse(Some(plugin), Reason::Internal);
        };
        let mut nonce = [0u8; profile::MIN_NONCE_BYTES];
        if getrandom::fill(&mut nonce).is_err() {
            return self.refuse(Some(plugin), Reason::RandomUnavailable);
        }

        let signed = {
            let Ok(mut keys) = plugin.keys.try_borrow_mut() else {
                return self.refuse(Some(plugin), Reason::Internal);
            };
            match view(&self.headers) {
                Ok(request) => sign::sign(config, &mut keys, &request, body, now, &nonce),
                Err(reason) => Err(reason),
            }
        };
        let signed = match signed {
            Ok(signed) => signed,
            Err(reason) => return self.refuse(Some(plugin), reason),
        };
        self.facts.epoch = Some(signed.epoch);
        let path = view(&self.headers).map(|r| r.path()).unwrap_or_default();
        if config
            .verify_responses
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
        {
            self.reply = Reply::Check(signed.mac);
        }

        for (name, value) in [
            ("content-digest", &signed.content_digest),
            (profile::IDENTITY_HEADER, &signed.identity),
            ("signature-input", &signed.signature_input),
            ("signature", &signed.signature),
        ] {
            if hostcalls::set_map_value_bytes(
                MapType::HttpRequestHeaders,
                name,
                Some(value.as_bytes()),
            )
            .is_err()
            {
                return self.refuse(Some(plugin), Reason::Internal);
            }
        }
        self.decided(plugin, "signed", Ok(()));
        Action::Continue
    }

    /// Refuses the request with a local reply; it is never forwarded. A caller whose
    /// credential was authentic (refused by replay or policy) gets the refusal signed.
    fn refuse(&mut self, plugin: Option<&Plugin>, reason: Reason) -> Action {
        self.state = State::Done;
        let reply = std::mem::replace(&mut self.reply, Reply::Pass);
        match plugin {
            Some(plugin) => self.decided(plugin, "deny", Err(reason)),
            None => log(
                LogLevel::Error,
                &format!("keyhop: no configuration; refusing with {reason}"),
            ),
        }
        let signed = match (plugin, &reply) {
            (Some(plugin), Reply::Sign(authentic)) => sign_reply(
                plugin,
                authentic,
                reason.status(),
                Some(b"application/json"),
                refusal_body(reason).as_bytes(),
            )
            .ok(),
            _ => None,
        };
        send_refusal(reason, signed.as_ref());
        // After a local reply the filter must not let the request continue.
        Action::Pause
    }

    /// The whole response is in: sign it (verify side) or check it (sign side).
    fn reply_complete(&mut self, plugin: &Plugin, body_size: usize) -> Action {
        let Reply::Waiting(reply, status, headers) =
            std::mem::replace(&mut self.reply, Reply::Pass)
        else {
            return Action::Continue;
        };
        let body = if body_size == 0 {
            Vec::new()
        } else {
            match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size) {
                Ok(body) => body.unwrap_or_default(),
                Err(_) => return self.refuse_reply(plugin, Reason::Internal),
            }
        };
        let content_type = headers.first("content-type");

        match *reply {
            Reply::Sign(authentic) => {
                let signed = match sign_reply(plugin, &authentic, status, content_type, &body) {
                    Ok(signed) => signed,
                    Err(reason) => return self.refuse_reply(plugin, reason),
                };
                for (name, value) in [
                    ("content-digest", &signed.content_digest),
                    ("signature-input", &signed.signature_input),
                    ("signature", &signed.signature),
                ] {
                    let set = hostcalls::set_map_value_bytes(
                        MapType::HttpResponseHeaders,
                        name,
                        Some(value.as_bytes()),
                    );
                    if set.is_err() {
                        return self.refuse_reply(plugin, Reason::Internal);
                    }
                }
                Action::Continue
            }
            Reply::Check(mac) => {
                let checked = match (&plugin.config, now()) {
                    (Config::Sign(config), Some(now)) => {
                        let key = ResponseKey {
                            root: &config.secret,
                            key_id: &config.key_id,
                            trust_domain: &config.trust_domain,
                            audience: &config.audience,
                            hop_seconds: config.hop_seconds,
                        };
                        response::verify(
                            &key,
                            status,
                            &headers,
                            &body,
                            &mac,
                            now,
                            config.response_window,
                        )
                    }
                    _ => Err(Reason::Internal),
                };
                if let Err(reason) = checked {
                    return self.refuse_reply(plugin, reason);
                }
                for name in ["signature", "signature-input"] {
                    if hostcalls::remove_map_value(MapType::HttpResponseHeaders, name).is_err() {
                        return self.refuse_reply(plugin, Reason::Internal);
                    }
                }
                self.decided(plugin, "response_verified", Ok(()));
                Action::Continue
            }
            Reply::Pass | Reply::Waiting(..) => Action::Continue,
        }
    }

    /// Replaces a response that cannot be signed or trusted with a 502; the application
    /// never sees the original.
    fn refuse_reply(&mut self, plugin: &Plugin, reason: Reason) -> Action {
        self.reply = Reply::Pass;
        self.decided(plugin, "deny", Err(reason));
        send_refusal(reason, None);
        Action::Pause
    }

    /// Writes the audit line and counts the decision. The line is built only when the host
    /// would log it (Istio's sidecars, for one, log at `warning` by default).
    fn decided(&self, plugin: &Plugin, decision: &'static str, outcome: Result<(), Reason>) {
        plugin.counters.count(decision, outcome);
        if !logs(LogLevel::Info) {
            return;
        }
        let find = |name: &str| {
            self.headers
                .first(name)
                .map(|v| bounded(&String::from_utf8_lossy(v)))
        };
        let (identity, key_id) = match &plugin.config {
            Config::Sign(config) => (Some(config.identity.clone()), Some(config.key_id.clone())),
            Config::Verify(_) => self.claimed(),
        };
        let line = AuditLine {
            keyhop: "audit",
            mode: plugin.counters.mode,
            decision,
            reason: outcome.err().map_or("ok", Reason::code),
            status: outcome.err().map(Reason::status),
            identity,
            key_id,
            epoch: self.facts.epoch,
            method: find(":method").unwrap_or_default(),
            authority: find(":authority").unwrap_or_default(),
            path: find(":path")
                .map(|p| p.split('?').next().unwrap_or_default().to_string())
                .unwrap_or_default(),
            request_id: find("x-request-id"),
        };
        log(LogLevel::Info, &line.to_json());
    }

    /// For the audit line of a verify decision: the identity the request claims (in full once
    /// verified, cut short before) and the key id its credential names, read from the headers
    /// as the checks read them.
    fn claimed(&self) -> (Option<String>, Option<String>) {
        let identity = match self.headers.single(profile::IDENTITY_HEADER) {
            Ok(Some(raw)) => std::str::from_utf8(raw).ok().map(|claimed| {
                if self.verified {
                    claimed.to_owned()
                } else {
                    bounded(claimed)
                }
            }),
            _ => None,
        };
        let field = |name| self.headers.single(name);
        let key_id = match (field("signature-input"), field("signature")) {
            (Ok(Some(input)), Ok(Some(_))) => {
                profile::with_params(input, |params| Ok(bounded_to(params.key_id, KEY_ID_MAX))).ok()
            }
            _ => None,
        };
        (identity, key_id)
    }
}

/// The request headers, less the `drop` fields, which are also removed from the request
/// itself. Only fields that are there are removed: one host call saved per absent field,
/// which is nearly all of them on nearly every request.
fn fetch_request_headers<'a>(drop: impl IntoIterator<Item = &'a str>) -> Result<HeaderMap, ()> {
    let mut headers = header_map(MapType::HttpRequestHeaders).map_err(|_| ())?;
    for name in drop {
        if headers.contains(name) {
            hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).map_err(|_| ())?;
            headers.remove(name);
        }
    }
    Ok(headers)
}

/// One of the host's header maps, read in one piece and left where the host wrote it (see
/// [`HeaderMap::from_host`]). The SDK's reader copies every line into a `String` and a `Vec`
/// of its own, and panics (trapping the VM) on a status it does not expect or a map it cannot
/// read; this one returns an error instead.
fn header_map(map: MapType) -> Result<HeaderMap, Status> {
    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: MapType,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
    }
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes at most a pointer and a length through the two pointers, which
    // point at live locals of the right types.
    let status = unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    if status != Status::Ok as u32 {
        return Err(Status::InternalFailure);
    }
    if data.is_null() {
        return Ok(HeaderMap::new());
    }
    // SAFETY: the host wrote the map into a block of `size` bytes that it asked this module
    // for through `proxy_on_memory_allocate` (the SDK's, which hands out a boxed slice of
    // exactly the size asked for), and the block is now ours: the vector takes it over and
    // frees it with the same allocator.
    let bytes = unsafe { Vec::from_raw_parts(data, size, size) };
    HeaderMap::from_host(bytes).ok_or(Status::ParseFailure)
}

/// The request as the core modules see it, borrowed from the host's header list.
fn view(headers: &HeaderMap) -> Result<Request<'_>, Reason> {
    let pseudo = |name: &str| -> Result<&str, Reason> {
        match headers.first(name) {
            Some(value) => std::str::from_utf8(value).map_err(|_| Reason::InvalidHeaderValue),
            None => Ok(""),
        }
    };
    Ok(Request {
        method: pseudo(":method")?,
        scheme: pseudo(":scheme")?,
        authority: pseudo(":authority")?,
        path_and_query: pseudo(":path")?,
        headers,
    })
}

/// The body of every refusal: the reason code, nothing else.
fn refusal_body(reason: Reason) -> String {
    format!("{{\"error\":\"{}\"}}\n", reason.code())
}

/// Sends the local reply for `reason`, with the headers of a response signature if given.
fn send_refusal(reason: Reason, signed: Option<&response::SignedResponse>) {
    let body = refusal_body(reason);
    let mut headers = vec![
        ("content-type", "application/json"),
        ("keyhop-reason", reason.code()),
    ];
    if let Some(signed) = signed {
        headers.push(("content-digest", signed.content_digest.as_str()));
        headers.push(("signature-input", signed.signature_input.as_str()));
        headers.push(("signature", signed.signature.as_str()));
    }
    let sent =
        hostcalls::send_http_response(u32::from(reason.status()), headers, Some(body.as_bytes()));
    if let Err(status) = sent {
        log(
            LogLevel::Error,
            &format!("keyhop: local reply failed: {status:?}"),
        );
    }
}

/// Signs a response for an authentic caller with the response key of its request's key.
fn sign_reply(
    plugin: &Plugin,
    authentic: &Authentic,
    status: u16,
    content_type: Option<&[u8]>,
    body: &[u8],
) -> Result<response::SignedResponse, Reason> {
    let Config::Verify(config) = &plugin.config else {
        return Err(Reason::Internal);
    };
    let key = config
        .keys
        .get(authentic.key_index)
        .ok_or(Reason::Internal)?;
    let now = now().ok_or(Reason::Internal)?;
    let response_key = ResponseKey {
        root: &key.secret,
        key_id: &key.id,
        trust_domain: authentic.trust_domain(),
        audience: &config.audience,
        hop_seconds: config.hop_seconds,
    };
    response::sign(
        &response_key,
        status,
        content_type,
        body,
        &authentic.signature,
        now,
        config.response_lifetime_seconds,
    )
}

/// The URI SAN of the downstream connection's verified peer certificate, if any
/// (Envoy's `connection.uri_san_peer_certificate` attribute).
fn peer_uri_san() -> Option<String> {
    let value = hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"]).ok()??;
    let value = String::from_utf8(value).ok()?;
    (!value.is_empty()).then_some(value)
}

/// The host's clock, in milliseconds since the Unix epoch.
fn now_ms() -> Option<u64> {
    let time = hostcalls::get_current_time().ok()?;
    u64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

/// The host's clock, in whole seconds since the Unix epoch.
fn now() -> Option<i64> {
    let time = hostcalls::get_current_time().ok()?;
    let seconds = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(seconds).ok()
}

/// Whether the host logs lines of `level` (and, if it cannot say, yes).
fn logs(level: LogLevel) -> bool {
    hostcalls::get_log_level().map_or(true, |host| host as u32 <= level as u32)
}

fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Proxy-wasm shared data (one map per `vm_id`, shared by every worker's VM).
struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        match hostcalls::get_shared_data(key) {
            Ok((_, None)) => Ok(None),
            Ok((value, Some(cas))) => Ok(Some((value.unwrap_or_default(), cas))),
            Err(_) => Err(StoreError),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<SetOutcome, StoreError> {
        match hostcalls::set_shared_data(key, Some(value), Some(cas)) {
            Ok(()) => Ok(SetOutcome::Stored),
            Err(Status::CasMismatch) => Ok(SetOutcome::CasMismatch),
            Err(_) => Err(StoreError),
        }
    }
}
