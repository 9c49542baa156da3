//! Firing attacks at a real Envoy: each on a fresh connection (so either worker may take it),
//! or after its prelude on one kept-alive connection (so the same worker takes both).

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use keyhop_e2e::http::{self, Request, Response};
use keyhop_e2e::Echo;

use super::catalogue::{classes, Gen};
use super::outcome::{judge, Attack, Delivered, Outcome, Row};

const TIMEOUT: Duration = Duration::from_secs(20);

/// One kept-alive client connection.
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader })
    }

    /// Sends one request and reads its response on this connection.
    pub fn send(&mut self, request: &Request) -> io::Result<Response> {
        self.stream.write_all(&request.to_bytes())?;
        http::read_response(&mut self.reader, &request.method)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))
    }
}

/// Sends `bytes` on a fresh connection while reading the response, so a server that answers
/// before it has read everything (a 413 for a large body) is heard rather than reset.
pub fn exchange(addr: SocketAddr, bytes: Vec<u8>, method: &str) -> io::Result<Response> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let sender = thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut reader = BufReader::new(stream);
    let response = http::read_response(&mut reader, method)?;
    let _ = sender.join();
    response.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))
}

/// What an Envoy response says about the attack.
pub fn outcome_of(response: io::Result<Response>) -> Outcome {
    let response = match response {
        Ok(response) => response,
        Err(_) => return Outcome::Envoy(0),
    };
    if let Some(reason) = response.reason() {
        return Outcome::Filter(response.status, reason);
    }
    match Echo::from_response(&response) {
        Some(echo) if response.status == 200 => Outcome::Forwarded(delivered(&echo)),
        _ => Outcome::Envoy(response.status),
    }
}

/// What the risk API received, from its echo.
pub fn delivered(echo: &Echo) -> Delivered {
    Delivered {
        method: echo.method.clone(),
        target: echo.target.clone(),
        body: echo.body.clone().into_bytes(),
        verified: echo
            .header_all(keyhop_e2e::VERIFIED_IDENTITY_HEADER)
            .iter()
            .map(|v| (*v).to_owned())
            .collect(),
        leaked: ["signature", "signature-input", "keyhop-identity"]
            .iter()
            .filter(|name| !echo.header_all(name).is_empty())
            .map(|name| (*name).to_owned())
            .collect(),
    }
}

/// Fires one attack at the verifier at `addr`.
pub fn fire(addr: SocketAddr, attack: &Attack) -> Outcome {
    if attack.same_connection {
        let mut conn = Conn::open(addr).expect("connect to the verifier");
        for request in &attack.prelude {
            let response = conn.send(request);
            assert_prelude_forwarded(attack, response);
        }
        return outcome_of(conn.send(&attack.request));
    }
    for request in &attack.prelude {
        let response = exchange(addr, request.to_bytes(), &request.method);
        assert_prelude_forwarded(attack, response);
    }
    let bytes = attack
        .raw
        .clone()
        .unwrap_or_else(|| attack.request.to_bytes());
    outcome_of(exchange(addr, bytes, &attack.request.method))
}

fn assert_prelude_forwarded(attack: &Attack, response: io::Result<Response>) {
    let outcome = outcome_of(response);
    assert!(
        matches!(outcome, Outcome::Forwarded(_)),
        "{} / {}: the legitimate request before the attack was not forwarded: {outcome:?}",
        attack.class,
        attack.name
    );
}

/// Builds every class just before firing it, fires each attack with `fire_one`, and judges.
pub fn run_catalogue(
    gen: &mut Gen,
    skip_envoy_only: bool,
    mut fire_one: impl FnMut(&Attack) -> Option<Outcome>,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for (_, build) in classes() {
        for attack in build(gen) {
            if skip_envoy_only && attack.envoy_only {
                continue;
            }
            let Some(outcome) = fire_one(&attack) else {
                continue;
            };
            let judgement = judge(&attack, &outcome);
            rows.push(Row {
                class: attack.class,
                name: attack.name.clone(),
                control: attack.is_control(),
                outcome,
                judgement,
            });
        }
    }
    rows
}
