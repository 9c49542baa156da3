//! The demo's risk API on its own, for running the configs in `envoy/` by hand: listens on
//! 127.0.0.1:10003 (or the port given as the only argument) and answers every request with 200
//! and a JSON echo of the method, target, headers and body it received.

use std::process::ExitCode;
use std::thread;

use keyhop_e2e::upstream::RiskApi;

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => keyhop_e2e::topology::documented::RISK_API,
        Some(Ok(port)) => port,
        Some(Err(e)) => {
            eprintln!("keyhop-risk-api: bad port: {e}");
            return ExitCode::from(2);
        }
    };
    match RiskApi::start(port) {
        Ok(api) => {
            println!("risk API echoing on http://{}", api.addr());
            loop {
                thread::park();
            }
        }
        Err(e) => {
            eprintln!("keyhop-risk-api: 127.0.0.1:{port}: {e}");
            ExitCode::from(1)
        }
    }
}
