//! The wire tap: an on-path attacker between the portal's Envoy and the partner's Envoy.
//!
//! It relays each request and its response unchanged and keeps a copy of every request, so a
//! test can steal a real credential and replay or tamper with it. It can also withhold the next
//! requests (answer 502 itself and never forward them), which yields a credential the partner
//! has never seen: the starting point of a replay race.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{read_request, read_response, Headers, Request, Response};

/// A running tap: listens on a loopback port and relays to `target`. Stops accepting when
/// dropped.
pub struct WireTap {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    target: SocketAddr,
    captured: Mutex<Vec<Request>>,
    arrived: Condvar,
    withhold: AtomicUsize,
    stop: AtomicBool,
}

impl WireTap {
    /// Starts a tap on `127.0.0.1:port` (0 picks a free port) relaying to `target`.
    pub fn start(port: u16, target: SocketAddr) -> io::Result<WireTap> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            captured: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            withhold: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });

        let for_loop = Arc::clone(&shared);
        thread::Builder::new()
            .name("wire-tap".into())
            .spawn(move || accept_loop(&listener, &for_loop))?;
        Ok(WireTap { addr, shared })
    }

    /// Where the tap listens (the portal's Envoy is pointed here instead of at the partner).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request seen so far, in order, with the exact bytes in `raw`.
    pub fn captured(&self) -> Vec<Request> {
        self.lock().clone()
    }

    /// The most recent request seen, if any.
    pub fn last(&self) -> Option<Request> {
        self.lock().last().cloned()
    }

    /// Forgets what was captured so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Makes the tap keep the next `count` requests to itself: they are captured, answered
    /// with 502 and never reach the partner.
    pub fn withhold_next(&self, count: usize) {
        self.shared.withhold.store(count, Ordering::SeqCst);
    }

    /// Waits until at least `count` requests have been captured, or `timeout` passes.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> io::Result<Vec<Request>> {
        let deadline = Instant::now() + timeout;
        let mut captured = self.lock();
        while captured.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("tap saw {} requests, expected {count}", captured.len()),
                ));
            }
            captured = self
                .shared
                .arrived
                .wait_timeout(captured, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Ok(captured.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
        self.shared
            .captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for WireTap {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(shared);
        let _ = thread::Builder::new()
            .name("wire-tap-conn".into())
            .spawn(move || {
                let _ = relay(stream, &shared);
            });
    }
}

/// Relays one downstream connection, request by request, over its own upstream connection.
fn relay(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut to_client = client.try_clone()?;
    let mut from_client = BufReader::new(client);
    let mut upstream: Option<(TcpStream, BufReader<TcpStream>)> = None;

    while let Some(request) = read_request(&mut from_client)? {
        shared
            .captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request.clone());
        shared.arrived.notify_all();

        let withheld = shared
            .withhold
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if withheld {
            let mut headers = Headers::default();
            headers.add("x-wire-tap", "withheld");
            to_client.write_all(&Response::new(502, headers, Vec::new()).raw)?;
            continue;
        }

        let response = forward(&mut upstream, shared.target, &request)?;
        to_client.write_all(&response.raw)?;
        if closes(&response) {
            // The partner closed its side; say so to the portal too.
            return Ok(());
        }
    }
    Ok(())
}

type Upstream = Option<(TcpStream, BufReader<TcpStream>)>;

/// Sends `request` upstream and reads the response, opening the connection when there is
/// none and once more when the kept one turns out to be closed.
fn forward(upstream: &mut Upstream, target: SocketAddr, request: &Request) -> io::Result<Response> {
    for _ in 0..2 {
        if upstream.is_none() {
            let stream = TcpStream::connect(target)?;
            stream.set_nodelay(true)?;
            let reader = BufReader::new(stream.try_clone()?);
            *upstream = Some((stream, reader));
        }
        let Some((to_upstream, from_upstream)) = upstream.as_mut() else {
            continue;
        };
        let sent = to_upstream.write_all(&request.raw);
        let received = match sent {
            Ok(()) => read_response(from_upstream, &request.method),
            Err(e) => Err(e),
        };
        match received {
            Ok(Some(response)) => {
                if closes(&response) {
                    *upstream = None;
                }
                return Ok(response);
            }
            // A stale kept-alive connection: retry on a fresh one.
            Ok(None) | Err(_) => *upstream = None,
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("no response from {target}"),
    ))
}

fn closes(response: &Response) -> bool {
    response
        .headers
        .get_str("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
}
