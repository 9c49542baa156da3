//! The per-VM state the host functions work on: one [`VmState`] lives in each
//! wasmtime `Store`, that is, in each simulated worker thread.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use wasmtime::{Memory, StoreLimits, TypedFunc};

use crate::abi::{BufferType, LogLevel, MapType, Pairs};
use crate::config::{CallAnswer, GrpcAnswer, HostConfig};
use crate::exchange::{CallRecord, LocalResponse, LogLine};
use crate::random::Rng;
use crate::shared::Shared;

pub(crate) struct VmState {
    pub shared: Arc<Shared>,
    pub config: Arc<HostConfig>,
    pub worker: usize,
    pub logs: Arc<std::sync::Mutex<Vec<LogLine>>>,

    pub memory: Option<Memory>,
    /// `proxy_on_memory_allocate`, or `malloc` for modules without it.
    pub allocator: Option<Arc<TypedFunc<i32, i32>>>,
    /// Reused for bytes the host copies out to the guest (see `guest::give_from`).
    pub scratch: Vec<u8>,
    pub limits: StoreLimits,
    pub rng: Rng,

    pub root_context_id: u32,
    /// The context whose callback is running.
    pub current_context: u32,
    /// The context host calls act on (`proxy_set_effective_context`).
    pub effective_context: u32,
    /// The configuration buffer readable in the callback now running:
    /// the VM configuration in `proxy_on_vm_start`, the plugin configuration
    /// in `proxy_on_configure`, nothing elsewhere (as in Envoy).
    pub config_buffer: Option<BufferType>,
    /// Properties set by the guest outside any stream.
    pub root_properties: BTreeMap<String, Vec<u8>>,

    pub stream: Option<Stream>,

    pub next_call_token: u32,
    pub pending_calls: VecDeque<PendingCall>,
    pub calls: Vec<CallRecord>,
    /// The answer being delivered in `proxy_on_http_call_response`.
    pub call_response: Option<CallAnswer>,
    /// The message being delivered in `proxy_on_grpc_receive`.
    pub grpc_message: Option<Vec<u8>>,
    /// Status code and message for `proxy_get_status`.
    pub grpc_status: (u32, Vec<u8>),

    pub tick_period_ms: u32,
    pub notes: Vec<String>,
}

impl VmState {
    pub fn log(&self, level: LogLevel, message: String) {
        if level < self.config.log_level {
            return;
        }
        let line = LogLine {
            level,
            worker: self.worker,
            context_id: self.effective_context,
            message,
        };
        self.logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(line);
    }

    /// The stream host calls act on now, if the effective context is one.
    pub fn stream(&self) -> Option<&Stream> {
        self.stream
            .as_ref()
            .filter(|s| s.context_id == self.effective_context)
    }

    pub fn stream_mut(&mut self) -> Option<&mut Stream> {
        let effective = self.effective_context;
        self.stream.as_mut().filter(|s| s.context_id == effective)
    }

    pub fn map(&self, map: MapType) -> Option<&Pairs> {
        match map {
            MapType::HttpCallResponseHeaders => self.call_response.as_ref().map(|a| &a.headers),
            MapType::HttpCallResponseTrailers => self.call_response.as_ref().map(|a| &a.trailers),
            _ => self.stream().and_then(|s| s.map(map)),
        }
    }

    /// A header map the guest may change: only the stream's own maps.
    pub fn map_mut(&mut self, map: MapType) -> Option<&mut Pairs> {
        let stream = self.stream_mut()?;
        match map {
            MapType::RequestHeaders if stream.request_headers_sent => {
                stream.late_header_change = true;
                keep_as_sent(&mut stream.request_headers_as_sent, &stream.request_headers);
            }
            MapType::ResponseHeaders if stream.response_headers_sent => {
                stream.late_header_change = true;
                if let Some(headers) = &stream.response_headers {
                    keep_as_sent(&mut stream.response_headers_as_sent, headers);
                }
            }
            _ => {}
        }
        stream.map_mut(map)
    }

    pub fn next_token(&mut self) -> u32 {
        let token = self.next_call_token;
        self.next_call_token = self.next_call_token.wrapping_add(1).max(1);
        token
    }
}

/// The HTTP stream in progress on this VM.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub context_id: u32,
    pub request_headers: Pairs,
    pub request_trailers: Pairs,
    /// The request body bytes the host holds for the filter: the current
    /// chunk plus whatever earlier chunks the filter paused on.
    pub request_body: Vec<u8>,
    pub response_headers: Option<Pairs>,
    pub response_trailers: Pairs,
    pub response_body: Vec<u8>,
    pub properties: BTreeMap<String, Vec<u8>>,
    /// Wall-clock nanoseconds when the request arrived.
    pub start_nanos: u64,

    pub local_response: Option<LocalResponse>,
    pub resume_request: bool,
    pub resume_response: bool,
    pub reset: bool,
    pub request_headers_sent: bool,
    pub response_headers_sent: bool,
    pub late_header_change: bool,
    /// The request headers as Envoy sent them on, kept only once the guest
    /// changes them afterwards; until then they are `request_headers`. This
    /// spares copying every header map on every request.
    pub request_headers_as_sent: Option<Pairs>,
    /// The same for the response headers.
    pub response_headers_as_sent: Option<Pairs>,
}

impl Stream {
    pub fn map(&self, map: MapType) -> Option<&Pairs> {
        match map {
            MapType::RequestHeaders => Some(&self.request_headers),
            MapType::RequestTrailers => Some(&self.request_trailers),
            MapType::ResponseHeaders => self.response_headers.as_ref(),
            MapType::ResponseTrailers => self
                .response_headers
                .as_ref()
                .map(|_| &self.response_trailers),
            _ => None,
        }
    }

    fn map_mut(&mut self, map: MapType) -> Option<&mut Pairs> {
        match map {
            MapType::RequestHeaders => Some(&mut self.request_headers),
            MapType::RequestTrailers => Some(&mut self.request_trailers),
            MapType::ResponseHeaders => self.response_headers.as_mut(),
            MapType::ResponseTrailers => match self.response_headers {
                Some(_) => Some(&mut self.response_trailers),
                None => None,
            },
            _ => None,
        }
    }

    /// First value of a header, as Envoy's `get_header_map_value` returns it.
    pub fn request_header(&self, name: &str) -> Option<&[u8]> {
        self.request_headers
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    pub fn stopped(&self) -> bool {
        self.local_response.is_some() || self.reset
    }

    /// The request headers the upstream received, taken out of the ended
    /// stream; empty if they were never sent.
    pub fn take_sent_request_headers(&mut self) -> Pairs {
        if !self.request_headers_sent {
            return Pairs::new();
        }
        self.request_headers_as_sent
            .take()
            .unwrap_or_else(|| std::mem::take(&mut self.request_headers))
    }

    /// The response headers the client received, taken out of the ended
    /// stream; empty if they were never sent.
    pub fn take_sent_response_headers(&mut self) -> Pairs {
        if !self.response_headers_sent {
            return Pairs::new();
        }
        self.response_headers_as_sent
            .take()
            .or_else(|| self.response_headers.take())
            .unwrap_or_default()
    }
}

/// Keeps `headers` as they are now in `as_sent`, unless an earlier change
/// already did: a copy is made at the first change after sending only.
fn keep_as_sent(as_sent: &mut Option<Pairs>, headers: &Pairs) {
    if as_sent.is_none() {
        *as_sent = Some(headers.clone());
    }
}

/// An outgoing call waiting for its answer to be delivered.
#[derive(Debug, Clone)]
pub(crate) struct PendingCall {
    pub token: u32,
    pub context_id: u32,
    pub answer: PendingAnswer,
}

#[derive(Debug, Clone)]
pub(crate) enum PendingAnswer {
    Http(CallAnswer),
    Grpc(GrpcAnswer),
}
