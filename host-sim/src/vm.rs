//! One VM instance (one Envoy worker): its store, the guest's callbacks, and
//! the order in which Envoy calls them for a request.

use std::sync::{Arc, Mutex};

use wasmtime::{
    Instance, InstancePre, Store, StoreLimitsBuilder, Trap, TypedFunc, WasmParams, WasmResults,
};

use crate::abi::{Action, BufferType, Pairs};
use crate::config::{CallAnswer, HostConfig};
use crate::exchange::{
    pairs_minus, Delivered, Exchange, Forwarded, LocalResponse, LogLine, Request, Verdict,
};
use crate::guard::{Budget, Guard};
use crate::random::Rng;
use crate::shared::Shared;
use crate::state::{PendingAnswer, Stream, VmState};
use crate::LoadError;

/// How many outgoing-call answers one callback may chain before the host
/// stops delivering them (a guest that calls again from every answer).
const MAX_CHAINED_CALLS: usize = 1000;

type F<P, R> = Option<TypedFunc<P, R>>;

/// Picks one callback out of [`Callbacks`]. Callbacks are borrowed rather
/// than cloned for a call: cloning a `TypedFunc` is costly in wasmtime.
type Pick<P, R> = fn(&Callbacks) -> Option<&TypedFunc<P, R>>;

/// The guest's exported callbacks; a missing one is skipped, as Envoy skips it.
struct Callbacks {
    context_create: F<(i32, i32), ()>,
    vm_start: F<(i32, i32), i32>,
    configure: F<(i32, i32), i32>,
    request_headers: F<(i32, i32, i32), i32>,
    request_body: F<(i32, i32, i32), i32>,
    request_trailers: F<(i32, i32), i32>,
    response_headers: F<(i32, i32, i32), i32>,
    response_body: F<(i32, i32, i32), i32>,
    response_trailers: F<(i32, i32), i32>,
    log: F<i32, ()>,
    done: F<i32, i32>,
    delete: F<i32, ()>,
    tick: F<i32, ()>,
    queue_ready: F<(i32, i32), ()>,
    http_call_response: F<(i32, i32, i32, i32, i32), ()>,
    grpc_receive: F<(i32, i32, i32), ()>,
    grpc_close: F<(i32, i32, i32), ()>,
}

fn export<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<VmState>,
    name: &'static str,
) -> Result<F<P, R>, LoadError> {
    if instance.get_export(&mut *store, name).is_none() {
        return Ok(None);
    }
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map(Some)
        .map_err(|e| LoadError::BadExport {
            name,
            reason: format!("{e:#}"),
        })
}

/// A guest failure: the trap or error message.
pub(crate) type Failure = String;

pub(crate) struct Vm {
    store: Store<VmState>,
    /// Given to the store afresh before each callback.
    budget: Budget,
    callbacks: Callbacks,
    /// Set once the guest has trapped; Envoy calls no further into the VM.
    failed: Option<Failure>,
    next_context_id: u32,
    next_tick_nanos: Option<u64>,
}

impl Vm {
    /// Instantiates the module and runs the root context through start-up:
    /// `_initialize` (or `_start`), context creation, `proxy_on_vm_start` and
    /// `proxy_on_configure`.
    pub(crate) fn start(
        pre: &InstancePre<VmState>,
        guard: Guard,
        config: Arc<HostConfig>,
        shared: Arc<Shared>,
        logs: Arc<Mutex<Vec<LogLine>>>,
        worker: usize,
    ) -> Result<Vm, LoadError> {
        let budget = Budget::new(guard, &config);
        let state = VmState {
            shared,
            worker,
            logs,
            memory: None,
            allocator: None,
            scratch: Vec::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(config.max_memory_bytes)
                .build(),
            rng: Rng::new(config.seed, worker),
            root_context_id: 1,
            current_context: 1,
            effective_context: 1,
            config_buffer: None,
            root_properties: Default::default(),
            stream: None,
            next_call_token: 1,
            pending_calls: Default::default(),
            calls: Vec::new(),
            call_response: None,
            grpc_message: None,
            grpc_status: (0, Vec::new()),
            tick_period_ms: 0,
            notes: Vec::new(),
            config,
        };
        let mut store = Store::new(pre.module().engine(), state);
        store.limiter(|state| &mut state.limits);
        // Instantiation runs the module's start function, if it has one.
        budget.arm(&mut store);

        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| LoadError::Instantiate(format!("{e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(LoadError::MissingExport("memory"))?;
        let allocator = match export::<i32, i32>(&instance, &mut store, "proxy_on_memory_allocate")?
        {
            Some(f) => f,
            None => export::<i32, i32>(&instance, &mut store, "malloc")?.ok_or(
                LoadError::MissingExport("proxy_on_memory_allocate or malloc"),
            )?,
        };
        if instance
            .get_func(&mut store, "proxy_abi_version_0_2_1")
            .is_none()
        {
            return Err(LoadError::MissingExport("proxy_abi_version_0_2_1"));
        }
        store.data_mut().memory = Some(memory);
        store.data_mut().allocator = Some(Arc::new(allocator));

        let callbacks = Callbacks {
            context_create: export(&instance, &mut store, "proxy_on_context_create")?,
            vm_start: export(&instance, &mut store, "proxy_on_vm_start")?,
            configure: export(&instance, &mut store, "proxy_on_configure")?,
            request_headers: export(&instance, &mut store, "proxy_on_request_headers")?,
            request_body: export(&instance, &mut store, "proxy_on_request_body")?,
            request_trailers: export(&instance, &mut store, "proxy_on_request_trailers")?,
            response_headers: export(&instance, &mut store, "proxy_on_response_headers")?,
            response_body: export(&instance, &mut store, "proxy_on_response_body")?,
            response_trailers: export(&instance, &mut store, "proxy_on_response_trailers")?,
            log: export(&instance, &mut store, "proxy_on_log")?,
            done: export(&instance, &mut store, "proxy_on_done")?,
            delete: export(&instance, &mut store, "proxy_on_delete")?,
            tick: export(&instance, &mut store, "proxy_on_tick")?,
            queue_ready: export(&instance, &mut store, "proxy_on_queue_ready")?,
            http_call_response: export(&instance, &mut store, "proxy_on_http_call_response")?,
            grpc_receive: export(&instance, &mut store, "proxy_on_grpc_receive")?,
            grpc_close: export(&instance, &mut store, "proxy_on_grpc_close")?,
        };
        let mut vm = Vm {
            store,
            budget,
            callbacks,
            failed: None,
            next_context_id: 2,
            next_tick_nanos: None,
        };

        // wasip1 reactors export `_initialize`; commands export `_start`.
        let init = match export::<(), ()>(&instance, &mut vm.store, "_initialize")? {
            Some(f) => Some(f),
            None => export::<(), ()>(&instance, &mut vm.store, "_start")?,
        };
        if let Some(init) = init {
            run(&mut vm.store, &mut vm.failed, vm.budget, &init, (), 1)
                .map_err(|reason| vm.start_failure("_initialize", reason))?;
        }

        let root: u32 = 1;
        vm.call_opt(|c| c.context_create.as_ref(), (root as i32, 0), root)
            .map_err(|reason| vm.start_failure("proxy_on_context_create", reason))?;

        let vm_config_len = len_i32(vm.store.data().config.vm_configuration.len());
        vm.store.data_mut().config_buffer = Some(BufferType::VmConfiguration);
        let started = vm
            .call_opt(|c| c.vm_start.as_ref(), (root as i32, vm_config_len), root)
            .map_err(|reason| vm.start_failure("proxy_on_vm_start", reason))?;
        if started == Some(0) {
            return Err(LoadError::Rejected("proxy_on_vm_start"));
        }

        let plugin_config_len = len_i32(vm.store.data().config.plugin_configuration.len());
        vm.store.data_mut().config_buffer = Some(BufferType::PluginConfiguration);
        let configured = vm
            .call_opt(
                |c| c.configure.as_ref(),
                (root as i32, plugin_config_len),
                root,
            )
            .map_err(|reason| vm.start_failure("proxy_on_configure", reason))?;
        vm.store.data_mut().config_buffer = None;
        if configured == Some(0) {
            return Err(LoadError::Rejected("proxy_on_configure"));
        }

        vm.deliver_calls();
        vm.arm_tick();
        Ok(vm)
    }

    fn start_failure(&mut self, phase: &'static str, reason: Failure) -> LoadError {
        LoadError::Trap { phase, reason }
    }

    /// Calls the callback `pick` chooses, if the guest exports it; see [`run`].
    fn call_opt<P: WasmParams, R: WasmResults>(
        &mut self,
        pick: Pick<P, R>,
        params: P,
        context: u32,
    ) -> Result<Option<R>, Failure> {
        match pick(&self.callbacks) {
            Some(func) => run(
                &mut self.store,
                &mut self.failed,
                self.budget,
                func,
                params,
                context,
            )
            .map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Delivers answers to outgoing calls made by the callbacks so far.
    fn deliver_calls(&mut self) {
        for _ in 0..MAX_CHAINED_CALLS {
            let Some(call) = self.store.data_mut().pending_calls.pop_front() else {
                return;
            };
            let token = call.token as i32;
            let context = call.context_id;
            let result = match call.answer {
                PendingAnswer::Http(answer) => {
                    let (headers, body, trailers) = if answer.failed {
                        (0, 0, 0)
                    } else {
                        (
                            len_i32(answer.headers.len()),
                            len_i32(answer.body.len()),
                            len_i32(answer.trailers.len()),
                        )
                    };
                    self.store.data_mut().call_response = Some(if answer.failed {
                        CallAnswer::default()
                    } else {
                        answer
                    });
                    let result = self.call_opt(
                        |c| c.http_call_response.as_ref(),
                        (context as i32, token, headers, body, trailers),
                        context,
                    );
                    self.store.data_mut().call_response = None;
                    result.map(drop)
                }
                PendingAnswer::Grpc(answer) if answer.status == 0 => {
                    let size = len_i32(answer.message.len());
                    self.store.data_mut().grpc_message = Some(answer.message);
                    let result = self.call_opt(
                        |c| c.grpc_receive.as_ref(),
                        (context as i32, token, size),
                        context,
                    );
                    self.store.data_mut().grpc_message = None;
                    result.map(drop)
                }
                PendingAnswer::Grpc(answer) => {
                    self.store.data_mut().grpc_status = (answer.status, answer.message);
                    let status = self.store.data().grpc_status.0 as i32;
                    self.call_opt(
                        |c| c.grpc_close.as_ref(),
                        (context as i32, token, status),
                        context,
                    )
                    .map(drop)
                }
            };
            if result.is_err() {
                return;
            }
        }
    }

    fn arm_tick(&mut self) {
        let period = self.store.data().tick_period_ms;
        self.next_tick_nanos = (period > 0).then(|| {
            let now = self.store.data().shared.clock().monotonic_nanos();
            now.saturating_add(u64::from(period) * 1_000_000)
        });
    }

    /// Fires `proxy_on_tick` once if the tick period has elapsed (a timer that
    /// fell behind fires once, as Envoy's does), then re-arms it.
    pub(crate) fn tick_if_due(&mut self) {
        let now = self.store.data().shared.clock().monotonic_nanos();
        match self.next_tick_nanos {
            Some(due) if due <= now => {
                let root = self.store.data().root_context_id;
                if self
                    .call_opt(|c| c.tick.as_ref(), root as i32, root)
                    .is_ok()
                {
                    self.deliver_calls();
                }
                self.arm_tick();
            }
            // A period set outside a tick (for example in a request) arms now.
            None => self.arm_tick(),
            _ => {}
        }
    }

    pub(crate) fn queue_ready(&mut self, root_context_id: u32, token: u32) {
        if self
            .call_opt(
                |c| c.queue_ready.as_ref(),
                (root_context_id as i32, token as i32),
                root_context_id,
            )
            .is_ok()
        {
            self.deliver_calls();
        }
    }

    pub(crate) fn take_calls_and_notes(
        &mut self,
    ) -> (Vec<crate::exchange::CallRecord>, Vec<String>) {
        let state = self.store.data_mut();
        (
            std::mem::take(&mut state.calls),
            std::mem::take(&mut state.notes),
        )
    }

    /// Runs one request through the filter, the way Envoy's HTTP filter
    /// manager does, and reports what every side saw.
    pub(crate) fn handle(&mut self, request: &Request) -> Exchange {
        let worker = self.store.data().worker;
        let context = self.next_context_id;
        self.next_context_id = self.next_context_id.wrapping_add(1).max(2);

        let mut flow = Flow::new(worker, context, request);
        if let Some(failure) = &self.failed {
            return flow.failed(format!("VM failed earlier: {failure}"));
        }

        self.store.data_mut().stream = Some(Stream {
            context_id: context,
            request_headers: request.headers.clone(),
            request_trailers: request.trailers.clone(),
            properties: request.properties.clone(),
            start_nanos: self.store.data().shared.clock().wall_nanos(),
            ..Stream::default()
        });
        let root = self.store.data().root_context_id as i32;
        if let Err(failure) = self.call_opt(
            |c| c.context_create.as_ref(),
            (context as i32, root),
            context,
        ) {
            return self.finish(flow.failed(failure));
        }

        let outcome = match self.request_phase(&mut flow, request) {
            Ok(()) => self.response_phase(&mut flow, request),
            Err(failure) => Err(failure),
        };
        let whole_request_sent = outcome.is_ok() && flow.whole_request_sent();
        let exchange = match outcome {
            Ok(()) => flow.verdict(),
            Err(failure) => flow.failed(failure),
        };
        let mut exchange = self.finish(exchange);
        if let Some(stream) = self.stream_end(context) {
            add_sent_headers(&mut exchange, stream, request, whole_request_sent);
        }
        exchange
    }

    /// Request headers, body chunks and trailers, with Envoy's pause rules:
    /// headers paused stay unsent until a later callback continues; body
    /// chunks paused are buffered, and the next call sees all of them.
    fn request_phase(&mut self, flow: &mut Flow, request: &Request) -> Result<(), Failure> {
        let context = flow.context;
        let ctx = context as i32;
        let has_body = request.body_chunks.iter().any(|c| !c.is_empty());
        let has_trailers = !request.trailers.is_empty();

        let count = len_i32(request.headers.len());
        let end = i32::from(!has_body && !has_trailers);
        let action = self.callback(|c| c.request_headers.as_ref(), (ctx, count, end), context)?;
        if self.stopped() {
            return Ok(());
        }
        if action == Action::Continue || self.take_resume_request() {
            self.send_request_headers(flow);
        }

        let chunks: Vec<&Vec<u8>> = request
            .body_chunks
            .iter()
            .filter(|c| !c.is_empty())
            .collect();
        let last = chunks.len();
        for (index, chunk) in chunks.into_iter().enumerate() {
            let size = match self.store.data_mut().stream.as_mut() {
                Some(stream) => {
                    stream.request_body.extend_from_slice(chunk);
                    len_i32(stream.request_body.len())
                }
                None => 0,
            };
            let end = i32::from(index + 1 == last && !has_trailers);
            let action = self.callback(|c| c.request_body.as_ref(), (ctx, size, end), context)?;
            if self.stopped() {
                return Ok(());
            }
            if action == Action::Continue || self.take_resume_request() {
                self.send_request_headers(flow);
                self.send_request_body(flow);
            }
        }

        if has_trailers {
            let count = len_i32(request.trailers.len());
            let action = self.callback(|c| c.request_trailers.as_ref(), (ctx, count), context)?;
            if self.stopped() {
                return Ok(());
            }
            if action == Action::Continue || self.take_resume_request() {
                self.send_request_headers(flow);
                self.send_request_body(flow);
                if let Some(stream) = self.store.data().stream.as_ref() {
                    flow.forwarded.trailers = stream.request_trailers.clone();
                }
            }
        }

        let buffered = self
            .store
            .data()
            .stream
            .as_ref()
            .is_some_and(|s| !s.request_body.is_empty());
        if !flow.request_headers_sent || buffered {
            flow.paused = Some(if flow.request_headers_sent {
                "request_body"
            } else {
                "request_headers"
            });
        }
        Ok(())
    }

    fn response_phase(&mut self, flow: &mut Flow, request: &Request) -> Result<(), Failure> {
        if flow.paused.is_some() || self.stopped() {
            return Ok(());
        }
        let context = flow.context;
        let ctx = context as i32;
        let response = &request.response;
        let mut headers: Pairs = Vec::with_capacity(1 + response.headers.len());
        headers.push((
            b":status".to_vec(),
            response.status.to_string().into_bytes(),
        ));
        headers.extend(response.headers.iter().cloned());
        let count = len_i32(headers.len());
        if let Some(stream) = self.store.data_mut().stream.as_mut() {
            stream.response_headers = Some(headers);
        }

        let chunks: Vec<&Vec<u8>> = response
            .body_chunks
            .iter()
            .filter(|c| !c.is_empty())
            .collect();
        let has_trailers = !response.trailers.is_empty();
        if let Some(stream) = self.store.data_mut().stream.as_mut() {
            stream.response_trailers = response.trailers.clone();
        }
        let end = i32::from(chunks.is_empty() && !has_trailers);
        let action = self.callback(|c| c.response_headers.as_ref(), (ctx, count, end), context)?;
        if self.stopped() {
            return Ok(());
        }
        let mut headers_sent = action == Action::Continue || self.take_resume_response();
        if headers_sent {
            self.mark_response_headers_sent();
        }

        let last = chunks.len();
        for (index, chunk) in chunks.into_iter().enumerate() {
            let size = match self.store.data_mut().stream.as_mut() {
                Some(stream) => {
                    stream.response_body.extend_from_slice(chunk);
                    len_i32(stream.response_body.len())
                }
                None => 0,
            };
            let end = i32::from(index + 1 == last && !has_trailers);
            let action = self.callback(|c| c.response_body.as_ref(), (ctx, size, end), context)?;
            if self.stopped() {
                return Ok(());
            }
            if action == Action::Continue || self.take_resume_response() {
                if !headers_sent {
                    self.mark_response_headers_sent();
                    headers_sent = true;
                }
                if let Some(stream) = self.store.data_mut().stream.as_mut() {
                    flow.delivered.body.append(&mut stream.response_body);
                }
            }
        }
        if has_trailers {
            let count = len_i32(response.trailers.len());
            let action = self.callback(|c| c.response_trailers.as_ref(), (ctx, count), context)?;
            if self.stopped() {
                return Ok(());
            }
            if action == Action::Continue || self.take_resume_response() {
                if !headers_sent {
                    self.mark_response_headers_sent();
                    headers_sent = true;
                }
                if let Some(stream) = self.store.data_mut().stream.as_mut() {
                    flow.delivered.body.append(&mut stream.response_body);
                }
            }
        }
        let buffered = self
            .store
            .data()
            .stream
            .as_ref()
            .is_some_and(|s| !s.response_body.is_empty());
        if !headers_sent || buffered {
            flow.paused = Some(if headers_sent {
                "response_body"
            } else {
                "response_headers"
            });
        }
        Ok(())
    }

    /// Runs one stream callback and delivers the answers to any calls it made.
    fn callback<P: WasmParams>(
        &mut self,
        pick: Pick<P, i32>,
        params: P,
        context: u32,
    ) -> Result<Action, Failure> {
        let action = self
            .call_opt(pick, params, context)?
            .map_or(Action::Continue, Action::from_guest);
        self.deliver_calls();
        match &self.failed {
            Some(failure) => Err(failure.clone()),
            None => Ok(action),
        }
    }

    fn stopped(&self) -> bool {
        self.store
            .data()
            .stream
            .as_ref()
            .is_some_and(Stream::stopped)
    }

    fn take_resume_request(&mut self) -> bool {
        self.store
            .data_mut()
            .stream
            .as_mut()
            .is_some_and(|s| std::mem::take(&mut s.resume_request))
    }

    fn take_resume_response(&mut self) -> bool {
        self.store
            .data_mut()
            .stream
            .as_mut()
            .is_some_and(|s| std::mem::take(&mut s.resume_response))
    }

    /// Marks the request headers sent upstream. What was sent is read from
    /// the stream when it ends (see [`Stream::take_sent_request_headers`]).
    fn send_request_headers(&mut self, flow: &mut Flow) {
        if flow.request_headers_sent {
            return;
        }
        if let Some(stream) = self.store.data_mut().stream.as_mut() {
            stream.request_headers_sent = true;
        }
        flow.request_headers_sent = true;
    }

    fn send_request_body(&mut self, flow: &mut Flow) {
        if let Some(stream) = self.store.data_mut().stream.as_mut() {
            if flow.forwarded.body.is_empty() {
                // The usual case, one chunk sent: move it rather than copy.
                std::mem::swap(&mut flow.forwarded.body, &mut stream.request_body);
            } else {
                flow.forwarded.body.append(&mut stream.request_body);
            }
        }
    }

    /// Marks the response headers sent downstream; as for the request, what
    /// was sent is read from the stream when it ends.
    fn mark_response_headers_sent(&mut self) {
        if let Some(stream) = self.store.data_mut().stream.as_mut() {
            stream.response_headers_sent = true;
        }
    }

    /// Fills in what the stream state says about the outcome: local reply,
    /// reset, late header changes, calls made.
    fn finish(&mut self, mut exchange: Exchange) -> Exchange {
        if let Some(stream) = self.store.data().stream.as_ref() {
            if let Verdict::Continued | Verdict::Paused { .. } = exchange.verdict {
                if let Some(reply) = &stream.local_response {
                    exchange.verdict = Verdict::LocalResponse(reply.clone());
                    exchange.downstream = Some(delivered_from(reply));
                } else if stream.reset {
                    exchange.verdict = Verdict::Reset;
                    exchange.upstream = None;
                    exchange.downstream = None;
                }
            }
            if stream.late_header_change {
                exchange.notes.push(
                    "headers were changed after Envoy had sent them on; the change is lost"
                        .to_owned(),
                );
            }
        }
        let (calls, notes) = self.take_calls_and_notes();
        exchange.calls = calls;
        exchange.notes.extend(notes);
        exchange
    }

    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`, then the stream
    /// is gone; it is returned. Skipped for a failed VM.
    ///
    /// Envoy's order: destroying the filter calls `on_done`; the access log
    /// that follows calls `on_log` and then `on_delete`.
    fn stream_end(&mut self, context: u32) -> Option<Stream> {
        let ctx = context as i32;
        let _ = self.call_opt(|c| c.done.as_ref(), ctx, context);
        let _ = self.call_opt(|c| c.log.as_ref(), ctx, context);
        let _ = self.call_opt(|c| c.delete.as_ref(), ctx, context);
        self.deliver_calls();
        let state = self.store.data_mut();
        state.effective_context = state.root_context_id;
        state.stream.take()
    }
}

/// Calls a guest function on behalf of `context`, with a fresh `budget`. A
/// trap marks the VM failed (in `failed`).
fn run<P: WasmParams, R: WasmResults>(
    store: &mut Store<VmState>,
    failed: &mut Option<Failure>,
    budget: Budget,
    func: &TypedFunc<P, R>,
    params: P,
    context: u32,
) -> Result<R, Failure> {
    if let Some(failure) = failed {
        return Err(format!("VM failed earlier: {failure}"));
    }
    let state = store.data_mut();
    state.current_context = context;
    state.effective_context = context;
    budget.arm(store);

    func.call(&mut *store, params).map_err(|e| {
        let mut reason = format!("{e:#}");
        // wasmtime says only "interrupt"; say which limit it was.
        if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            if let Some(limit) = store.data().config.callback_time_limit {
                reason.push_str(&format!(" (callback ran past its time limit, {limit:?})"));
            }
        }
        *failed = Some(reason.clone());
        reason
    })
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

fn delivered_from(reply: &LocalResponse) -> Delivered {
    Delivered {
        status: reply.status,
        headers: reply.headers.clone(),
        body: reply.body.clone(),
    }
}

/// Puts the header maps as they were sent, taken from the ended stream, into
/// `exchange`: the upstream's request headers, the client's response headers
/// (unless a local reply replaced them), and the request header changes when
/// the whole request went upstream.
fn add_sent_headers(
    exchange: &mut Exchange,
    mut stream: Stream,
    request: &Request,
    whole_request_sent: bool,
) {
    let sent = stream.take_sent_request_headers();
    if whole_request_sent {
        exchange.headers_added = pairs_minus(&sent, &request.headers);
        exchange.headers_removed = pairs_minus(&request.headers, &sent);
    }
    if let Some(upstream) = exchange.upstream.as_mut() {
        upstream.headers = sent;
    }
    if exchange.verdict == Verdict::Continued {
        if let Some(downstream) = exchange.downstream.as_mut() {
            downstream.headers = stream.take_sent_response_headers();
        }
    }
}

/// What the host has seen of one request so far. Header maps are not copied
/// here while the request runs: they are read from the stream at its end.
struct Flow {
    worker: usize,
    context: u32,
    request_headers_sent: bool,
    forwarded: Forwarded,
    delivered: Delivered,
    paused: Option<&'static str>,
}

impl Flow {
    fn new(worker: usize, context: u32, request: &Request) -> Self {
        Flow {
            worker,
            context,
            request_headers_sent: false,
            forwarded: Forwarded::default(),
            delivered: Delivered {
                status: u32::from(request.response.status),
                ..Delivered::default()
            },
            paused: None,
        }
    }

    fn exchange(&self, verdict: Verdict) -> Exchange {
        Exchange::new(self.worker, self.context, verdict)
    }

    /// Whether the request went upstream, unpaused (a local reply during the
    /// request leaves nothing sent upstream).
    fn whole_request_sent(&self) -> bool {
        self.paused.is_none() && self.request_headers_sent
    }

    fn verdict(self) -> Exchange {
        if let Some(phase) = self.paused {
            let mut exchange = self.exchange(Verdict::Paused {
                phase: phase.to_owned(),
            });
            if self.request_headers_sent {
                exchange.upstream = Some(self.forwarded);
            }
            return exchange;
        }
        let mut exchange = self.exchange(Verdict::Continued);
        if self.request_headers_sent {
            exchange.upstream = Some(self.forwarded);
        }
        exchange.downstream = Some(self.delivered);
        exchange
    }

    /// Envoy with `FAIL_CLOSED`: the stream gets a 503 local reply.
    fn failed(&self, error: Failure) -> Exchange {
        let reply = LocalResponse {
            status: 503,
            details: "wasm_fail_stream".to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            grpc_status: -1,
        };
        let mut exchange = self.exchange(Verdict::Failed {
            error,
            local_response: reply.clone(),
        });
        exchange.downstream = Some(delivered_from(&reply));
        exchange
    }
}
