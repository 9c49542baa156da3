//! HTTP/1.1 at the byte level: a request type that can say things a polite client never would
//! (duplicate headers, non-UTF-8 values, a body that disagrees with its digest), and the framing
//! needed to read requests and responses off a `TcpStream`.
//!
//! Everything else in this crate (the risk API, the wire tap, the demo) speaks HTTP through this
//! module, so a captured request can be edited and sent again byte for byte.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest request or response head this module reads, and longest single chunk-size line.
const MAX_HEAD_BYTES: usize = 1 << 20;

/// Largest body this module reads.
const MAX_BODY_BYTES: usize = 16 << 20;

/// How long a client waits for a response before giving up.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Header fields in the order they were sent or will be sent. Names keep their case; lookups
/// ignore it. Values are bytes, because hostile values need not be UTF-8.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, Vec<u8>)>);

impl Headers {
    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` as text (lossy), if any.
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// Whether any field is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Appends a field, keeping any existing ones of the same name.
    pub fn add(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.0.push((name.to_owned(), value.as_ref().to_vec()));
    }

    /// Replaces every field called `name` by one field with `value`.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) {
        self.remove(name);
        self.add(name, value);
    }

    /// Removes every field called `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for (name, value) in &self.0 {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// An HTTP/1.1 request: built by a test, or read off the wire (then `raw` holds the exact bytes).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// The bytes this request was read from; empty for a request built in code.
    pub raw: Vec<u8>,
}

impl Request {
    /// A request for `method` and `target` with a `host` header for the partner's risk API.
    pub fn new(method: &str, target: &str) -> Request {
        let mut headers = Headers::default();
        headers.add("host", "risk.riskpartner.example");
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// A GET with no body.
    pub fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    /// A POST carrying a JSON body.
    pub fn post_json(target: &str, json: &str) -> Request {
        Request::new("POST", target)
            .header("content-type", "application/json")
            .body(json.as_bytes())
    }

    /// Appends a header field (duplicates allowed, on purpose).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers.add(name, value);
        self
    }

    /// Replaces the body and frames it with a matching `content-length`.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Request {
        self.body = body.as_ref().to_vec();
        self.headers.remove("transfer-encoding");
        self.headers
            .set("content-length", self.body.len().to_string());
        self
    }

    /// Replaces the request target, keeping everything else.
    pub fn target(mut self, target: &str) -> Request {
        self.target = target.to_owned();
        self
    }

    /// The path part of the target (without query).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The bytes to send: request line, headers exactly as held, then the body. A request
    /// without a framing header and with a body gets no help: that is the caller's business.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len());
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.target).as_bytes());
        self.headers.write_to(&mut out);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// An HTTP/1.1 response as read off the wire.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
    /// The exact bytes this response was read from.
    pub raw: Vec<u8>,
}

impl Response {
    /// A response with a body framed by `content-length`, ready to be written.
    pub fn new(status: u16, headers: Headers, body: Vec<u8>) -> Response {
        let mut headers = headers;
        headers.set("content-length", body.len().to_string());
        let mut raw = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).into_bytes();
        headers.write_to(&mut raw);
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&body);
        Response {
            status,
            headers,
            body,
            raw,
        }
    }

    /// The `keyhop-reason` header the verifier sets on a refusal, if present.
    pub fn reason(&self) -> Option<String> {
        self.headers.get_str("keyhop-reason")
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Sends `request` on a fresh connection to `addr` and reads one response.
pub fn send(addr: SocketAddr, request: &Request) -> io::Result<Response> {
    send_raw(addr, &request.to_bytes(), &request.method)
}

/// Sends `bytes` as they are on a fresh connection to `addr` and reads one response;
/// `method` tells the framing whether a body can follow (it cannot after HEAD).
pub fn send_raw(addr: SocketAddr, bytes: &[u8], method: &str) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    stream.write_all(bytes)?;

    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{addr} closed the connection without a response"),
        )
    })
}

/// Reads one request; `Ok(None)` when the peer closed the connection before sending a byte.
pub fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some((start_line, headers, mut raw)) = read_head(reader)? else {
        return Ok(None);
    };

    let mut parts = start_line.splitn(3, ' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    if method.is_empty() || target.is_empty() {
        return Err(invalid(format!("bad request line {start_line:?}")));
    }

    let body = read_body(reader, &headers, &mut raw, false)?;
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
        raw,
    }))
}

/// Reads one response to a request made with `method`; `Ok(None)` when the peer closed the
/// connection before sending a byte.
pub fn read_response(reader: &mut impl BufRead, method: &str) -> io::Result<Option<Response>> {
    let Some((status_line, headers, mut raw)) = read_head(reader)? else {
        return Ok(None);
    };

    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;

    let bodiless =
        method.eq_ignore_ascii_case("HEAD") || status / 100 == 1 || status == 204 || status == 304;
    let body = if bodiless {
        Vec::new()
    } else {
        read_body(reader, &headers, &mut raw, true)?
    };
    Ok(Some(Response {
        status,
        headers,
        body,
        raw,
    }))
}

/// Reads a start line and header fields up to the empty line.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<(String, Headers, Vec<u8>)>> {
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    loop {
        let start = raw.len();
        let n = reader
            .by_ref()
            .take(MAX_HEAD_BYTES as u64)
            .read_until(b'\n', &mut raw)?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "head cut short",
            ));
        }
        if raw.len() > MAX_HEAD_BYTES {
            return Err(invalid("head too large".to_owned()));
        }
        let line = raw.get(start..).unwrap_or_default();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        lines.push(line.to_vec());
    }

    let mut lines = lines.into_iter();
    let start_line = String::from_utf8_lossy(&lines.next().unwrap_or_default()).into_owned();
    let mut headers = Headers::default();
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| invalid("header line without a colon".to_owned()))?;
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
        headers.add(&String::from_utf8_lossy(name), value);
    }
    Ok(Some((start_line, headers, raw)))
}

/// Reads a body framed by `transfer-encoding: chunked` or `content-length`; without either, a
/// request has none and a response runs to the end of the connection.
fn read_body(
    reader: &mut impl BufRead,
    headers: &Headers,
    raw: &mut Vec<u8>,
    to_eof_if_unframed: bool,
) -> io::Result<Vec<u8>> {
    let chunked = headers.get_all("transfer-encoding").iter().any(|v| {
        String::from_utf8_lossy(v)
            .to_ascii_lowercase()
            .contains("chunked")
    });
    if chunked {
        return read_chunked(reader, raw);
    }

    if let Some(length) = headers.get("content-length") {
        let length: usize = String::from_utf8_lossy(length)
            .trim()
            .parse()
            .map_err(|_| invalid("bad content-length".to_owned()))?;
        if length > MAX_BODY_BYTES {
            return Err(invalid("body too large".to_owned()));
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        raw.extend_from_slice(&body);
        return Ok(body);
    }

    let mut body = Vec::new();
    if to_eof_if_unframed {
        reader.take(MAX_BODY_BYTES as u64).read_to_end(&mut body)?;
        raw.extend_from_slice(&body);
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead, raw: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = Vec::new();
        reader
            .by_ref()
            .take(MAX_HEAD_BYTES as u64)
            .read_until(b'\n', &mut line)?;
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;

        if size == 0 {
            // Trailer fields, if any, up to the empty line.
            loop {
                let mut trailer = Vec::new();
                let n = reader
                    .by_ref()
                    .take(MAX_HEAD_BYTES as u64)
                    .read_until(b'\n', &mut trailer)?;
                raw.extend_from_slice(&trailer);
                if n == 0 || trailer == b"\r\n" || trailer == b"\n" {
                    return Ok(body);
                }
            }
        }

        if body.len() + size > MAX_BODY_BYTES {
            return Err(invalid("body too large".to_owned()));
        }
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        raw.extend_from_slice(&chunk);
        chunk.truncate(size);
        body.extend_from_slice(&chunk);
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_through_bytes() {
        let request = Request::post_json("/v1/risk/score?x=1", r#"{"amount":100}"#)
            .header("x-dup", "a")
            .header("x-dup", b"\xff\xfe");
        let bytes = request.to_bytes();

        let read = read_request(&mut bytes.as_slice()).ok().flatten();
        let read = read.unwrap_or_default();
        assert_eq!(read.method, "POST");
        assert_eq!(read.target, "/v1/risk/score?x=1");
        assert_eq!(read.path(), "/v1/risk/score");
        assert_eq!(read.body, br#"{"amount":100}"#);
        assert_eq!(
            read.headers.get_all("x-dup"),
            vec![&b"a"[..], &b"\xff\xfe"[..]]
        );
        assert_eq!(read.raw, bytes);
    }

    #[test]
    fn chunked_response_is_decoded_and_kept_raw() {
        let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let response = read_response(&mut &wire[..], "GET")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"abcde");
        assert_eq!(response.raw, wire);
    }

    #[test]
    fn two_requests_on_one_connection_are_read_in_turn() {
        let mut wire = Request::get("/a").to_bytes();
        wire.extend(Request::post_json("/b", "{}").to_bytes());
        let mut reader = wire.as_slice();

        let first = read_request(&mut reader).ok().flatten().unwrap_or_default();
        let second = read_request(&mut reader).ok().flatten().unwrap_or_default();
        assert_eq!(
            (first.target.as_str(), second.target.as_str()),
            ("/a", "/b")
        );
        assert!(read_request(&mut reader).ok().flatten().is_none());
    }
}
