//! The demo topology on loopback, with fresh ports for each run:
//!
//! ```text
//! client ──▶ portal Envoy (sign) ──▶ wire tap ──▶ partner Envoy (verify) ──▶ risk API
//!            portal-web / report-job              │
//!            listeners                            └─ also reachable directly, as an attacker would
//! ```
//!
//! Envoys run from the configs in `envoy/`, rewritten by [`crate::envoy::render_config`]; logs
//! and rendered configs stay in a per-run directory under `.run/` for a reader to inspect.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::envoy::{self, Envoy, EnvoySpec};
use crate::http::{self, Request, Response};
use crate::tap::WireTap;
use crate::upstream::RiskApi;

/// The ports written in `envoy/*.yaml`, documented there and in the README.
pub mod documented {
    pub const PORTAL_WEB: u16 = 10001;
    pub const REPORT_JOB: u16 = 10011;
    pub const PORTAL_ADMIN: u16 = 9901;
    pub const PARTNER: u16 = 10002;
    pub const PARTNER_ADMIN: u16 = 9902;
    pub const RISK_API: u16 = 10003;
}

/// The environment variable that carries the root secret into both Envoys' Wasm VMs.
pub const SECRET_ENV: &str = "KEYHOP_PORTAL_SECRET";

/// SPIFFE IDs of the demo workloads.
pub const PORTAL_WEB_ID: &str = "spiffe://finsphere.example/ns/portal/sa/portal-web";
pub const REPORT_JOB_ID: &str = "spiffe://finsphere.example/ns/batch/sa/report-job";

/// A fresh root secret: base64 (standard alphabet) of 32 random bytes.
pub fn generate_secret() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A loopback port nobody listens on right now. (Another process could take it before Envoy
/// binds it; on a test machine that has not been seen to matter.)
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A new, empty directory under `.run/` named after `label`, the time and this process.
pub fn new_run_dir(label: &str) -> io::Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = envoy::repo_root()
        .join(".run")
        .join(format!("{seconds}-{}-{n}-{label}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// How to start a topology. The defaults are the demo as documented.
pub struct Options {
    /// Label for the run directory.
    pub label: String,
    /// The portal's root secret; generated when `None`.
    pub secret: Option<String>,
    /// The partner's copy of the root secret; the portal's when `None`.
    pub partner_secret: Option<String>,
    /// An edit applied to the rendered partner config (e.g. to break its plugin config).
    pub edit_partner: Option<Box<dyn Fn(String) -> String>>,
    /// An edit applied to the rendered portal config.
    pub edit_portal: Option<Box<dyn Fn(String) -> String>>,
}

impl Options {
    /// The documented demo, with a run directory labelled `label`.
    pub fn new(label: &str) -> Options {
        Options {
            label: label.to_owned(),
            secret: None,
            partner_secret: None,
            edit_partner: None,
            edit_portal: None,
        }
    }
}

/// Ports allocated for one run.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub portal_web: u16,
    pub report_job: u16,
    pub portal_admin: u16,
    pub partner: u16,
    pub partner_admin: u16,
    pub risk_api: u16,
    pub tap: u16,
}

impl Ports {
    fn allocate() -> io::Result<Ports> {
        // Hold every listener until all are chosen, so no two roles get the same port.
        let listeners = (0..7)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<io::Result<Vec<_>>>()?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<io::Result<Vec<_>>>()?;
        let &[portal_web, report_job, portal_admin, partner, partner_admin, risk_api, tap] =
            ports.as_slice()
        else {
            return Err(io::Error::other("port allocation"));
        };
        Ok(Ports {
            portal_web,
            report_job,
            portal_admin,
            partner,
            partner_admin,
            risk_api,
            tap,
        })
    }
}

/// A running topology. Dropping it kills both Envoys and stops the tap and the risk API.
pub struct Topology {
    // Fields drop in this order: clients of a component go before it.
    pub portal: Envoy,
    pub tap: WireTap,
    pub partner: Envoy,
    pub risk_api: RiskApi,
    pub ports: Ports,
    pub run_dir: PathBuf,
}

impl Topology {
    /// Starts the documented demo topology.
    pub fn start(label: &str) -> io::Result<Topology> {
        Topology::start_with(Options::new(label))
    }

    /// Starts risk API, partner Envoy, tap and portal Envoy, and waits until both Envoys are
    /// ready.
    pub fn start_with(options: Options) -> io::Result<Topology> {
        // The ports are free when chosen but are bound only later, by Envoy; should another
        // process take one in between, start again on new ports.
        let mut attempt = 1;
        loop {
            match Topology::start_once(&options) {
                Err(e) if attempt < 3 && e.to_string().contains("Address already in use") => {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn start_once(options: &Options) -> io::Result<Topology> {
        envoy::check_prerequisites()?;
        let run_dir = new_run_dir(&options.label)?;
        let ports = Ports::allocate()?;
        let wasm = envoy::wasm_module();
        let secret = match &options.secret {
            Some(secret) => secret.clone(),
            None => generate_secret()?,
        };
        let partner_secret = options
            .partner_secret
            .clone()
            .unwrap_or_else(|| secret.clone());

        let risk_api = RiskApi::start(ports.risk_api)?;

        let partner_config = envoy::render_config(
            &envoy::read_config("partner-ingress.yaml")?,
            &[
                (documented::PARTNER, ports.partner),
                (documented::PARTNER_ADMIN, ports.partner_admin),
                (documented::RISK_API, ports.risk_api),
            ],
            &wasm,
        )?;
        let partner_config = apply(options.edit_partner.as_deref(), partner_config);
        let mut partner = Envoy::spawn(
            EnvoySpec {
                name: "partner-ingress".into(),
                config: partner_config,
                admin: loopback(ports.partner_admin),
                env: vec![(SECRET_ENV.into(), partner_secret)],
            },
            &run_dir,
        )?;

        let tap = WireTap::start(ports.tap, loopback(ports.partner))?;

        // The portal's partner cluster points at the tap, not at the partner.
        let portal_config = envoy::render_config(
            &envoy::read_config("portal-egress.yaml")?,
            &[
                (documented::PORTAL_WEB, ports.portal_web),
                (documented::REPORT_JOB, ports.report_job),
                (documented::PORTAL_ADMIN, ports.portal_admin),
                (documented::PARTNER, ports.tap),
            ],
            &wasm,
        )?;
        let portal_config = apply(options.edit_portal.as_deref(), portal_config);
        let mut portal = Envoy::spawn(
            EnvoySpec {
                name: "portal-egress".into(),
                config: portal_config,
                admin: loopback(ports.portal_admin),
                env: vec![(SECRET_ENV.into(), secret)],
            },
            &run_dir,
        )?;

        partner.wait_ready()?;
        portal.wait_ready()?;
        Ok(Topology {
            portal,
            tap,
            partner,
            risk_api,
            ports,
            run_dir,
        })
    }

    /// The portal-web workload's egress listener.
    pub fn portal_web(&self) -> SocketAddr {
        loopback(self.ports.portal_web)
    }

    /// The report-job workload's egress listener.
    pub fn report_job(&self) -> SocketAddr {
        loopback(self.ports.report_job)
    }

    /// The partner's ingress listener, as an attacker reaches it (bypassing the tap).
    pub fn partner_addr(&self) -> SocketAddr {
        loopback(self.ports.partner)
    }

    /// Sends `request` as the portal-web workload (through its egress Envoy and the tap).
    pub fn send_as_portal_web(&self, request: &Request) -> io::Result<Response> {
        http::send(self.portal_web(), request)
    }

    /// Sends `request` as the report-job workload.
    pub fn send_as_report_job(&self, request: &Request) -> io::Result<Response> {
        http::send(self.report_job(), request)
    }

    /// Sends `request` straight to the partner's ingress, bypassing the portal.
    pub fn send_to_partner(&self, request: &Request) -> io::Result<Response> {
        http::send(self.partner_addr(), request)
    }

    /// Sends `bytes` as they are straight to the partner's ingress.
    pub fn send_raw_to_partner(&self, bytes: &[u8], method: &str) -> io::Result<Response> {
        http::send_raw(self.partner_addr(), bytes, method)
    }

    /// Sends a legitimate request as portal-web and returns what the tap captured of it:
    /// a real credential, already used once.
    pub fn capture(&self, request: &Request) -> io::Result<(Response, Request)> {
        self.tap.clear();
        let response = self.send_as_portal_web(request)?;
        let captured = self.tap.last().ok_or_else(|| {
            io::Error::other(format!(
                "the tap saw nothing (portal answered {})",
                response.status
            ))
        })?;
        Ok((response, captured))
    }

    /// Signs `request` as portal-web but keeps it from the partner: the tap withholds it.
    /// Returns a credential the partner has never seen.
    pub fn capture_unused(&self, request: &Request) -> io::Result<Request> {
        self.tap.clear();
        self.tap.withhold_next(1);
        let response = self.send_as_portal_web(request)?;
        let captured = self.tap.last().ok_or_else(|| {
            io::Error::other(format!(
                "the tap saw nothing (portal answered {})",
                response.status
            ))
        })?;
        Ok(captured)
    }

    /// Where this run's logs and rendered configs are.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }
}

fn apply(edit: Option<&dyn Fn(String) -> String>, config: String) -> String {
    match edit {
        Some(edit) => edit(config),
        None => config,
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
