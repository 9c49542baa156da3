//! The numbers and encodings of the proxy-wasm ABI 0.2.1, seen from the host.
//!
//! Everything here is plain data: status codes, the enums a guest passes by
//! value, and the header-map wire encoding. Nothing touches wasmtime.

use std::fmt;

/// A status code returned by a host function (`proxy_status_t` in the spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

impl Status {
    /// The value as the guest receives it.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What a guest answers from a stream callback (`proxy_action_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

impl Action {
    /// 0 continues. Envoy maps every other value to one of its "stop"
    /// statuses (1 is `StopIteration`; larger ones stop all iteration), so
    /// this host treats them all as `Pause`.
    pub fn from_guest(value: i32) -> Self {
        if value == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// Log levels, in the spec's order.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    /// The level for a guest-provided number, `None` when out of range.
    pub fn from_guest(value: i32) -> Option<Self> {
        Some(match value {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        };
        f.write_str(name)
    }
}

/// Buffers a guest can read with `proxy_get_buffer_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferType {
    HttpRequestBody,
    HttpResponseBody,
    DownstreamData,
    UpstreamData,
    HttpCallResponseBody,
    GrpcReceiveBuffer,
    VmConfiguration,
    PluginConfiguration,
    CallData,
}

impl BufferType {
    /// The value for a guest-provided number, `None` when out of range.
    pub fn from_guest(value: i32) -> Option<Self> {
        Some(match value {
            0 => BufferType::HttpRequestBody,
            1 => BufferType::HttpResponseBody,
            2 => BufferType::DownstreamData,
            3 => BufferType::UpstreamData,
            4 => BufferType::HttpCallResponseBody,
            5 => BufferType::GrpcReceiveBuffer,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            8 => BufferType::CallData,
            _ => return None,
        })
    }
}

/// Header maps a guest can address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcInitialMetadata,
    GrpcTrailingMetadata,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapType {
    /// The value for a guest-provided number, `None` when out of range.
    pub fn from_guest(value: i32) -> Option<Self> {
        Some(match value {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            4 => MapType::GrpcInitialMetadata,
            5 => MapType::GrpcTrailingMetadata,
            6 => MapType::HttpCallResponseHeaders,
            7 => MapType::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// Streams named by `proxy_continue_stream` and `proxy_close_stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamType {
    HttpRequest,
    HttpResponse,
    Downstream,
    Upstream,
}

impl StreamType {
    /// The value for a guest-provided number, `None` when out of range.
    pub fn from_guest(value: i32) -> Option<Self> {
        Some(match value {
            0 => StreamType::HttpRequest,
            1 => StreamType::HttpResponse,
            2 => StreamType::Downstream,
            3 => StreamType::Upstream,
            _ => return None,
        })
    }
}

/// Kinds of metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    /// The value for a guest-provided number, `None` when out of range.
    pub fn from_guest(value: i32) -> Option<Self> {
        Some(match value {
            0 => MetricType::Counter,
            1 => MetricType::Gauge,
            2 => MetricType::Histogram,
            _ => return None,
        })
    }
}

/// An ordered list of header (or metadata) entries; names and values are bytes.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Encodes pairs the way the spec lays out a header map: the number of pairs
/// (u32 LE), then each pair's name and value lengths (u32 LE each), then each
/// name and value followed by a NUL byte.
pub fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_pairs_into(pairs, &mut out);
    out
}

/// [`encode_pairs`], appending to `out`.
pub fn encode_pairs_into(pairs: &[(Vec<u8>, Vec<u8>)], out: &mut Vec<u8>) {
    let payload: usize = pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    out.reserve(4 + pairs.len() * 8 + payload);

    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&len_u32(name.len()).to_le_bytes());
        out.extend_from_slice(&len_u32(value.len()).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Why a serialised header map from a guest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairsError {
    #[error("header map is shorter than its own size fields say")]
    Truncated,
    #[error("header map entry is not terminated by a NUL byte")]
    MissingNul,
    #[error("header map has {0} trailing bytes")]
    TrailingBytes(usize),
}

/// Decodes a header map sent by a guest, checking every length against the
/// buffer; an empty buffer is an empty map (the SDK sends one for `vec![]`).
pub fn decode_pairs(bytes: &[u8]) -> Result<Pairs, PairsError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }

    let mut reader = Reader { bytes, pos: 0 };
    let count = reader.u32()? as usize;
    // Every entry costs at least 10 bytes; refuse counts the buffer cannot hold
    // before reserving memory for them.
    if count > bytes.len() / 10 {
        return Err(PairsError::Truncated);
    }
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        let name_len = reader.u32()? as usize;
        let value_len = reader.u32()? as usize;
        sizes.push((name_len, value_len));
    }

    let mut pairs = Vec::with_capacity(count);
    for (name_len, value_len) in sizes {
        let name = reader.terminated(name_len)?;
        let value = reader.terminated(value_len)?;
        pairs.push((name.to_vec(), value.to_vec()));
    }

    match bytes.len() - reader.pos {
        0 => Ok(pairs),
        extra => Err(PairsError::TrailingBytes(extra)),
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], PairsError> {
        let end = self.pos.checked_add(len).ok_or(PairsError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(PairsError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, PairsError> {
        let raw = self.take(4)?;
        let array: [u8; 4] = raw.try_into().map_err(|_| PairsError::Truncated)?;
        Ok(u32::from_le_bytes(array))
    }

    fn terminated(&mut self, len: usize) -> Result<&'a [u8], PairsError> {
        let data = self.take(len)?;
        match self.take(1)? {
            [0] => Ok(data),
            _ => Err(PairsError::MissingNul),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Pairs from text, for tests.
    pub(crate) fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn encoding_matches_the_spec_layout() {
        let encoded = encode_pairs(&pairs(&[("a", "bc")]));
        assert_eq!(
            encoded,
            vec![1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]
        );
    }

    #[test]
    fn round_trip_keeps_order_and_duplicates() {
        let original = pairs(&[(":path", "/"), ("x", "1"), ("x", "2"), ("empty", "")]);
        assert_eq!(decode_pairs(&encode_pairs(&original)), Ok(original));
    }

    #[test]
    fn hostile_maps_are_refused() {
        let good = encode_pairs(&pairs(&[("a", "b")]));
        assert_eq!(
            decode_pairs(&good[..good.len() - 1]),
            Err(PairsError::Truncated)
        );

        let mut no_nul = good.clone();
        if let Some(last) = no_nul.last_mut() {
            *last = b'!';
        }
        assert_eq!(decode_pairs(&no_nul), Err(PairsError::MissingNul));

        let mut extra = good.clone();
        extra.push(7);
        assert_eq!(decode_pairs(&extra), Err(PairsError::TrailingBytes(1)));

        let huge_count = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(decode_pairs(&huge_count), Err(PairsError::Truncated));

        let huge_len = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
        assert_eq!(decode_pairs(&huge_len), Err(PairsError::Truncated));
    }
}
