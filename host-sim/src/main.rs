//! `keyhop-sim`: run a proxy-wasm module against scripted requests.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::{Parser, Subcommand};

use keyhop_host_sim::scenario::{self, Scenario};
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
    /// The request method (an HTTP token, e.g. POST).
    #[arg(long, default_value = "GET")]
    method: String,
    /// The URL the verifier will see, e.g. http://risk.riskpartner.example/v1/risk/score?x=1
    /// (http or https). As curl does, the authority is signed as host[:port] without
    /// userinfo or the scheme's default port, and the fragment is left out. The path is
    /// signed as given, dot segments and `//` included, so it must be the path the verifier
    /// sees: curl resolves `/a/../b` unless run with --path-as-is, and Envoy's
    /// normalize_path / merge_slashes change it again before the filter.
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
    /// on every run, instead of after 5 seconds of wall-clock time (N at least 1; a huge N
    /// is effectively no limit). Guest code runs about a fifth slower.
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
    if let Some(workers) = args.workers {
        scenario::check_workers(workers, "--workers").map_err(anyhow::Error::msg)?;
    }
    if args.fuel == Some(0) {
        bail!("--fuel must be at least 1");
    }

    let wasm =
        std::fs::read(&args.wasm).with_context(|| format!("reading {}", args.wasm.display()))?;
    let plugin_config = std::fs::read(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let scenario_text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("reading {}", args.scenario.display()))?;
    let scenario = Scenario::from_json(&scenario_text)
        .with_context(|| format!("parsing {}", args.scenario.display()))?;

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
    use keyhop_filter::message::{HeaderMap, Request};

    let target = RequestTarget::parse(&args.url)?;
    if http::Method::from_bytes(args.method.as_bytes()).is_err() {
        bail!(
            "--method {:?} is not an HTTP method (a token: letters, digits, !#$%&'*+-.^_`|~)",
            args.method
        );
    }

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

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness available: {e}"))?;
    let request = Request {
        method: &args.method,
        scheme: target.scheme,
        authority: &target.authority,
        path_and_query: &target.path_and_query,
        headers: HeaderMap::empty(),
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

/// What of a `--url` goes into the signature: the parts of it curl sends.
#[derive(Debug, PartialEq, Eq)]
struct RequestTarget {
    scheme: &'static str,
    /// host[:port], as curl sends it in `Host`: no userinfo, no default port.
    authority: String,
    /// The path as given (never empty) and the query, without the fragment.
    path_and_query: String,
}

impl RequestTarget {
    fn parse(url: &str) -> Result<RequestTarget> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("--url {url:?} is not a URL: {e}"))?;

        let (scheme, default_port) = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") => ("http", 80),
            Some(s) if s.eq_ignore_ascii_case("https") => ("https", 443),
            Some(s) => bail!("--url {url:?}: the scheme must be http or https, not {s:?}"),
            None => bail!("--url {url:?} needs a scheme, e.g. http://"),
        };

        let Some(authority) = uri.authority() else {
            bail!("--url {url:?} has no host");
        };
        let host = authority.host();
        if host.is_empty() {
            bail!("--url {url:?} has no host");
        }
        // `Authority::port` skips a port that is not a number; curl refuses it.
        let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
        let port = match host_port.strip_prefix(host) {
            Some("" | ":") => None,
            Some(port) => match port.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(port)) => Some(port),
                _ => bail!("--url {url:?}: the port must be a number up to 65535"),
            },
            None => bail!("--url {url:?} has no host"),
        };
        let authority = match port {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_owned(),
        };

        let path_and_query = match uri.query() {
            Some(query) => format!("{}?{query}", uri.path()),
            None => uri.path().to_owned(),
        };
        Ok(RequestTarget {
            scheme,
            authority,
            path_and_query,
        })
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::RequestTarget;

    fn target(url: &str) -> (&'static str, String, String) {
        let t = RequestTarget::parse(url).unwrap();
        (t.scheme, t.authority, t.path_and_query)
    }

    #[test]
    fn the_signed_target_is_what_curl_sends() {
        let expect = |s: &'static str, a: &str, p: &str| (s, a.to_owned(), p.to_owned());
        assert_eq!(target("http://h/v1/x#frag"), expect("http", "h", "/v1/x"));
        assert_eq!(
            target("http://h/v1/x?a=1#frag"),
            expect("http", "h", "/v1/x?a=1")
        );
        assert_eq!(
            target("http://user:pw@h:8080/p"),
            expect("http", "h:8080", "/p")
        );
        assert_eq!(
            target("https://u@[::1]:9/p"),
            expect("https", "[::1]:9", "/p")
        );
        assert_eq!(target("http://h:80/p"), expect("http", "h", "/p"));
        assert_eq!(target("https://h:443?a=1"), expect("https", "h", "/?a=1"));
        assert_eq!(target("http://h"), expect("http", "h", "/"));
        assert_eq!(
            target("http://h/a/../b//c"),
            expect("http", "h", "/a/../b//c")
        );
    }

    #[test]
    fn a_url_curl_would_not_send_as_http_is_refused() {
        for url in [
            "",
            "/x",
            "h/x",
            "ftp://h/x",
            "http:///x",
            "http://user@/x",
            "http://h:abc/x",
            "http://h:99999/x",
            "http://h/a b",
        ] {
            assert!(RequestTarget::parse(url).is_err(), "{url}");
        }
    }
}
