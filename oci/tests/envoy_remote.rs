//! `envoy/partner-ingress-remote.yaml` in a real Envoy: the module comes from an HTTP server
//! (`remote` code source) and is accepted only with the right sha256.
//!
//! Needs Envoy (`scripts/ensure-tools.sh envoy`, or `$KEYHOP_ENVOY`) and the built module.
//! Uses the e2e harness (`tests/`) for Envoy processes, the portal Envoy and the risk API.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};

use keyhop_e2e::envoy::{self, Envoy, EnvoySpec};
use keyhop_e2e::http::{self, Request};
use keyhop_e2e::topology::{self, documented, PORTAL_WEB_ID, SECRET_ENV};
use keyhop_e2e::upstream::RiskApi;
use keyhop_e2e::{CREDENTIAL_HEADERS, VERIFIED_IDENTITY_HEADER};
use keyhop_oci::digest::Digest;
use keyhop_oci::pin::ENVOY_REMOTE_CONFIG;

/// The module server's port as written in the config.
const DOCUMENTED_MODULE_SERVER: u16 = 10004;

/// Serves one file at `/keyhop.wasm` over HTTP/1.1 and counts the fetches.
struct ModuleServer {
    addr: SocketAddr,
    fetches: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ModuleServer {
    fn start(module: Vec<u8>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let fetches = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));

        let (count, halt) = (Arc::clone(&fetches), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if serve_one(stream, &module).is_ok() {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            addr,
            fetches,
            stop,
            thread: Some(thread),
        })
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn serve_one(stream: std::net::TcpStream, module: &[u8]) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }

    let mut stream = stream;
    if request_line.starts_with("GET /keyhop.wasm ") {
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/wasm\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            module.len()
        )?;
        stream.write_all(module)?;
        Ok(())
    } else {
        stream.write_all(
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )?;
        Err(std::io::Error::other("not the module"))
    }
}

impl Drop for ModuleServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The partner's remote-fetch Envoy, the portal's Envoy in front of it and the risk API
/// behind it. Fields drop in order: clients before what they call; the Envoys are only held
/// to keep them running.
struct RemoteTopology {
    _portal: Envoy,
    _partner: Envoy,
    risk_api: RiskApi,
    server: ModuleServer,
    partner_port: u16,
    portal_web_port: u16,
}

impl RemoteTopology {
    /// Starts everything; the partner's config pins `pinned_sha256` for the module.
    fn start(label: &str, pinned_sha256: &Digest) -> Result<Self> {
        envoy::check_prerequisites()?;
        let module = std::fs::read(envoy::wasm_module())?;
        let run_dir = topology::new_run_dir(label)?;
        let secret = topology::generate_secret()?;
        let server = ModuleServer::start(module)?;
        let risk_api = RiskApi::start(0)?;

        let partner_port = topology::free_port()?;
        let partner_admin = topology::free_port()?;
        let mut partner_config =
            std::fs::read_to_string(envoy::repo_root().join(ENVOY_REMOTE_CONFIG))?;
        for (documented, actual) in [
            (documented::PARTNER, partner_port),
            (documented::PARTNER_ADMIN, partner_admin),
            (documented::RISK_API, risk_api.addr().port()),
            (DOCUMENTED_MODULE_SERVER, server.addr.port()),
        ] {
            partner_config = replace_all(
                &partner_config,
                &format!("port_value: {documented}"),
                &format!("port_value: {actual}"),
            )?;
        }
        partner_config = replace_all(
            &partner_config,
            &format!("127.0.0.1:{DOCUMENTED_MODULE_SERVER}/"),
            &format!("{}/", server.addr),
        )?;
        partner_config = replace_sha256(&partner_config, pinned_sha256)?;

        let partner = Envoy::start(
            EnvoySpec {
                name: "partner-ingress-remote".into(),
                config: partner_config,
                admin: SocketAddr::from(([127, 0, 0, 1], partner_admin)),
                env: vec![(SECRET_ENV.into(), secret.clone())],
            },
            &run_dir,
        )?;

        let (portal_web_port, report_job, portal_admin) = (
            topology::free_port()?,
            topology::free_port()?,
            topology::free_port()?,
        );
        let portal_config = envoy::render_config(
            &envoy::read_config("portal-egress.yaml")?,
            &[
                (documented::PORTAL_WEB, portal_web_port),
                (documented::REPORT_JOB, report_job),
                (documented::PORTAL_ADMIN, portal_admin),
                (documented::PARTNER, partner_port),
            ],
            &envoy::wasm_module(),
        )?;
        let portal = Envoy::start(
            EnvoySpec {
                name: "portal-egress".into(),
                config: portal_config,
                admin: SocketAddr::from(([127, 0, 0, 1], portal_admin)),
                env: vec![(SECRET_ENV.into(), secret)],
            },
            &run_dir,
        )?;

        Ok(Self {
            _portal: portal,
            _partner: partner,
            risk_api,
            server,
            partner_port,
            portal_web_port,
        })
    }

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

/// Replaces every occurrence of `from`, which must occur.
fn replace_all(text: &str, from: &str, to: &str) -> Result<String> {
    ensure!(text.contains(from), "{ENVOY_REMOTE_CONFIG} has no `{from}`");
    Ok(text.replace(from, to))
}

/// Replaces the value of the one `sha256: <64 hex>` line.
fn replace_sha256(text: &str, digest: &Digest) -> Result<String> {
    let mut replaced = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            match trimmed.strip_prefix("sha256: ") {
                Some(value) if Digest::parse(value.trim()).is_some() => {
                    replaced += 1;
                    let indent = line.len() - trimmed.len();
                    format!("{:indent$}sha256: {}", "", digest.hex())
                }
                _ => line.to_owned(),
            }
        })
        .collect();
    ensure!(
        replaced == 1,
        "{ENVOY_REMOTE_CONFIG} should pin exactly one sha256, found {replaced}"
    );
    Ok(lines.join("\n") + "\n")
}

fn score_request() -> Request {
    Request::post_json("/v1/risk/score", r#"{"account":"ACC-1","amount":125}"#)
}

#[test]
fn a_module_fetched_over_http_with_the_right_sha256_verifies_requests() -> Result<()> {
    let module = std::fs::read(envoy::wasm_module()).context("reading the module")?;
    let topology = RemoteTopology::start("remote-fetch", &Digest::of(&module))?;
    ensure!(
        topology.server.fetches() >= 1,
        "Envoy never fetched the module"
    );

    // Signed by the portal, verified by the fetched module: forwarded without the credential.
    let response = http::send(
        RemoteTopology::loopback(topology.portal_web_port),
        &score_request(),
    )?;
    ensure!(
        response.status == 200,
        "signed request got {} {:?}",
        response.status,
        response.reason()
    );
    let received = topology.risk_api.received();
    let forwarded = received
        .last()
        .ok_or_else(|| anyhow!("the risk API saw nothing"))?;
    ensure!(
        forwarded
            .headers
            .get_str(VERIFIED_IDENTITY_HEADER)
            .as_deref()
            == Some(PORTAL_WEB_ID)
    );
    for header in CREDENTIAL_HEADERS {
        ensure!(
            !forwarded.headers.contains(header),
            "{header} reached the risk API"
        );
    }

    // Unsigned, straight to the partner: refused by the module with its reason.
    let before = topology.risk_api.received().len();
    let response = http::send(
        RemoteTopology::loopback(topology.partner_port),
        &score_request(),
    )?;
    ensure!(
        response.status == 401,
        "unsigned request got {}",
        response.status
    );
    ensure!(response.reason().as_deref() == Some("missing_signature"));
    ensure!(
        topology.risk_api.received().len() == before,
        "an unsigned request reached the risk API"
    );
    Ok(())
}

#[test]
fn a_module_with_the_wrong_sha256_is_refused_and_traffic_fails_closed() -> Result<()> {
    let wrong = Digest::of(b"not the keyhop module");
    let topology = RemoteTopology::start("remote-fetch-wrong-sha256", &wrong)?;
    ensure!(
        topology.server.fetches() >= 1,
        "Envoy never fetched the module"
    );

    // Nothing runs the module, and FAIL_CLOSED turns that into refusals that never reach the
    // risk API. Straight at the partner that is Envoy's own 503; through the portal, which
    // checks the partner's replies, the unsigned 503 becomes the portal's 502.
    let response = http::send(
        RemoteTopology::loopback(topology.partner_port),
        &score_request(),
    )?;
    ensure!(
        response.status == 503,
        "expected 503 from a plugin that failed to load, got {}",
        response.status
    );
    ensure!(
        response.reason().is_none(),
        "a keyhop verdict came from a module that must not run"
    );
    let response = http::send(
        RemoteTopology::loopback(topology.portal_web_port),
        &score_request(),
    )?;
    ensure!(
        (response.status, response.reason().as_deref()) == (502, Some("response_unsigned")),
        "expected the portal to refuse the unsigned 503 with 502 response_unsigned, got {} {:?}",
        response.status,
        response.reason()
    );
    ensure!(
        topology.risk_api.received().is_empty(),
        "a request reached the risk API"
    );
    Ok(())
}
