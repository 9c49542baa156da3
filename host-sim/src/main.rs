//! `keyhop-sim`: run a proxy-wasm module against scripted requests.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Parser, Subcommand};

use keyhop_host_sim::scenario::Scenario;
use keyhop_host_sim::{report, Guard, Plugin};

#[derive(Parser)]
#[command(
    name = "keyhop-sim",
    version,
    about = "Run a proxy-wasm module without a mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Each subcommand is one variant here and one function below.
#[derive(Subcommand)]
enum Command {
    /// Run a scenario: print each request's verdict, header changes, what the
    /// upstream receives, logs and metrics; exit 1 if an expectation fails.
    Run(RunArgs),
    /// Print a fresh root secret: base64 of 32 random bytes.
    Keygen,
    /// Mint keyhop headers for one request with the filter's own signing code, so a caller
    /// without a mesh can reach a keyhop-protected API (curl -H … for each printed line).
    Sign(SignArgs),
}

#[derive(clap::Args)]
struct SignArgs {
    /// A sign-mode plugin configuration (JSON); its `key.secret_env` is read from this
    /// process's environment.
    #[arg(long)]
    config: PathBuf,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// The URL the verifier will see, e.g. http://risk.riskpartner.example/v1/risk/score?x=1
    #[arg(long)]
    url: String,
    /// A file holding the request body (none: empty body).
    #[arg(long)]
    body: Option<PathBuf>,
    /// Print as JSON instead of `name: value` lines.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The proxy-wasm module (.wasm, or .wat text).
    #[arg(long)]
    wasm: PathBuf,
    /// The plugin configuration file, passed to the guest as it is.
    #[arg(long)]
    config: PathBuf,
    /// A VM environment variable, KEY=VALUE; overrides the scenario's. Repeatable.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// The scenario file (JSON).
    #[arg(long)]
    scenario: PathBuf,
    /// Number of workers (VM instances); overrides the scenario's.
    #[arg(long)]
    workers: Option<usize>,
    /// Stop a guest callback after N units of fuel (about N wasm instructions), the same
    /// on every run, instead of after 5 seconds of wall-clock time. Guest code runs about
    /// a fifth slower.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Print the outcome as JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_env(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {arg:?}")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Keygen => keygen(),
        Command::Sign(args) => sign(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("keyhop-sim: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &RunArgs) -> Result<ExitCode> {
    let wasm =
        std::fs::read(&args.wasm).with_context(|| format!("reading {}", args.wasm.display()))?;
    let plugin_config = std::fs::read(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let scenario_text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("reading {}", args.scenario.display()))?;
    let scenario = Scenario::from_json(&scenario_text)
        .with_context(|| format!("parsing {}", args.scenario.display()))?;
    if args.workers == Some(0) {
        bail!("--workers must be at least 1");
    }

    let guard = match args.fuel {
        Some(_) => Guard::Fuel,
        None => Guard::Deadline,
    };
    let plugin = Plugin::compile_with(&wasm, guard)
        .with_context(|| format!("loading {}", args.wasm.display()))?;
    let mut config = scenario.host_config(plugin_config, &args.env)?;
    if let Some(fuel) = args.fuel {
        config.fuel_per_callback = Some(fuel);
    }
    let outcome = scenario.run(&plugin, config, args.workers)?;

    let text = if args.json {
        serde_json::to_string_pretty(&outcome)? + "\n"
    } else {
        report::render(&outcome)
    };
    emit(&text)?;
    Ok(if outcome.failed() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn keygen() -> Result<ExitCode> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    emit(&format!("{encoded}\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn sign(args: &SignArgs) -> Result<ExitCode> {
    use keyhop_filter::config::Config;
    use keyhop_filter::keys::EpochKeyCache;
    use keyhop_filter::message::Request;

    let json = std::fs::read(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config = match Config::from_json(&json, &|name| std::env::var(name).ok()) {
        Ok(Config::Sign(config)) => config,
        Ok(Config::Verify(_)) => bail!("{} is a verify-mode configuration", args.config.display()),
        Err(e) => bail!("{}: {e}", args.config.display()),
    };
    let body = match &args.body {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => Vec::new(),
    };
    let (scheme, rest) = args
        .url
        .split_once("://")
        .context("the URL needs a scheme, e.g. http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    let request = Request {
        method: &args.method,
        scheme,
        authority,
        path_and_query: &path,
        headers: &[],
    };
    let signed = keyhop_filter::sign::sign(
        &config,
        &mut EpochKeyCache::new(1),
        &request,
        &body,
        i64::try_from(now)?,
        &nonce,
    )
    .map_err(|reason| anyhow::anyhow!("cannot sign: {reason}"))?;

    let headers = [
        ("content-digest", &signed.content_digest),
        ("keyhop-identity", &signed.identity),
        ("signature-input", &signed.signature_input),
        ("signature", &signed.signature),
    ];
    let text = if args.json {
        let map: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), serde_json::Value::String((*v).clone())))
            .collect();
        serde_json::to_string_pretty(&map)? + "\n"
    } else {
        headers.iter().map(|(n, v)| format!("{n}: {v}\n")).collect()
    };
    emit(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
