//! The partner's "risk API", in process: it answers every request with 200 and a JSON echo of
//! what reached it (method, target, headers, body), so a test can see exactly what the partner's
//! Envoy forwarded: which credential headers were stripped, which identity was passed on.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use serde_json::{json, Value};

use crate::http::{read_request, Headers, Request, Response};

/// A running risk API on a loopback port. Stops accepting when dropped.
pub struct RiskApi {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl RiskApi {
    /// Starts the risk API on `127.0.0.1:port` (0 picks a free port).
    pub fn start(port: u16) -> io::Result<RiskApi> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));

        let (log, flag) = (Arc::clone(&received), Arc::clone(&stop));
        thread::Builder::new()
            .name("risk-api".into())
            .spawn(move || accept_loop(&listener, &log, &flag))?;

        Ok(RiskApi {
            addr,
            received,
            stop,
        })
    }

    /// Where the risk API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<Request> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for RiskApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept_loop(listener: &TcpListener, received: &Arc<Mutex<Vec<Request>>>, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let received = Arc::clone(received);
        let _ = thread::Builder::new()
            .name("risk-api-conn".into())
            .spawn(move || serve(stream, &received));
    }
}

fn serve(stream: TcpStream, received: &Mutex<Vec<Request>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Ok(Some(request)) = read_request(&mut reader) {
        let response = echo_response(&request);
        received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        if writer.write_all(&response.raw).is_err() {
            return;
        }
    }
}

fn echo_response(request: &Request) -> Response {
    let headers: Vec<Value> = request
        .headers
        .0
        .iter()
        .map(|(name, value)| json!([name.to_ascii_lowercase(), String::from_utf8_lossy(value)]))
        .collect();
    let echo = json!({
        "method": request.method,
        "target": request.target,
        "headers": headers,
        "body": String::from_utf8_lossy(&request.body),
    });

    let mut response_headers = Headers::default();
    response_headers.add("content-type", "application/json");
    Response::new(200, response_headers, echo.to_string().into_bytes())
}

/// What the risk API saw, decoded from its echo body.
#[derive(Clone, Debug, Default)]
pub struct Echo {
    pub method: String,
    pub target: String,
    /// Header names in lowercase, values as text (lossy), in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Echo {
    /// Decodes the risk API's reply; `None` when the response did not come from it (a local
    /// reply from an Envoy, for example).
    pub fn from_response(response: &Response) -> Option<Echo> {
        let value: Value = serde_json::from_slice(&response.body).ok()?;
        let text = |key: &str| value.get(key)?.as_str().map(str::to_owned);
        let headers = value
            .get("headers")?
            .as_array()?
            .iter()
            .filter_map(|pair| {
                let name = pair.get(0)?.as_str()?;
                let value = pair.get(1)?.as_str()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect();
        Some(Echo {
            method: text("method")?,
            target: text("target")?,
            headers,
            body: text("body")?,
        })
    }

    /// Every value the risk API received for `name` (lowercase).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value the risk API received for `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }
}
