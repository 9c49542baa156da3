//! A relay between the portal's Envoy and the partner's that can rewrite the partner's
//! responses on their way back: the on-path attacker for signed responses.

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use keyhop_e2e::http::{self, Headers, Response};

/// What the relay does to the next responses.
pub type Rewrite = Box<dyn Fn(&Response, Option<&Response>) -> Vec<u8> + Send>;

struct Shared {
    target: Mutex<Option<SocketAddr>>,
    rewrite: Mutex<Option<Rewrite>>,
    /// The last genuine response relayed, for substitution attacks.
    last: Mutex<Option<Response>>,
}

/// A running relay on a loopback port. Its accept thread ends with the test process.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Relay {
    /// Starts listening; requests are refused until [`Relay::forward_to`] names the partner.
    pub fn start() -> io::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: Mutex::new(None),
            rewrite: Mutex::new(None),
            last: Mutex::new(None),
        });
        let for_loop = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&for_loop);
                thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Ok(Relay { addr, shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn forward_to(&self, target: SocketAddr) {
        *self
            .shared
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(target);
    }

    /// Rewrites every response from now on (`None`: relay them unchanged).
    pub fn rewrite(&self, rewrite: Option<Rewrite>) {
        *self
            .shared
            .rewrite
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = rewrite;
    }
}

fn serve(client: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut to_client = client.try_clone()?;
    let mut from_client = BufReader::new(client);
    while let Some(request) = http::read_request(&mut from_client)? {
        let target = *shared.target.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(target) = target else {
            to_client.write_all(&Response::new(503, Headers::default(), Vec::new()).raw)?;
            continue;
        };
        let response = http::send_raw(target, &request.raw, &request.method)?;
        let bytes = {
            let rewrite = shared
                .rewrite
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let last = shared.last.lock().unwrap_or_else(PoisonError::into_inner);
            match rewrite.as_ref() {
                Some(rewrite) => rewrite(&response, last.as_ref()),
                None => response.raw.clone(),
            }
        };
        *shared.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(response);
        to_client.write_all(&bytes)?;
    }
    Ok(())
}

/// Rebuilds a response with `edit` applied to its status, headers and body (content-length
/// recomputed).
pub fn rebuild(
    response: &Response,
    edit: impl FnOnce(&mut u16, &mut Headers, &mut Vec<u8>),
) -> Vec<u8> {
    let (mut status, mut headers, mut body) = (
        response.status,
        response.headers.clone(),
        response.body.clone(),
    );
    headers.remove("transfer-encoding");
    edit(&mut status, &mut headers, &mut body);
    Response::new(status, headers, body).raw
}
