//! `keyhop-oci`: pack, push and pin the keyhop Wasm module for Istio.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use oci_client::secrets::RegistryAuth;

use keyhop_oci::image::{Variant, WasmImage};
use keyhop_oci::pin::{self, Pins};
use keyhop_oci::registry::{self, Connection};

#[derive(Parser)]
#[command(
    name = "keyhop-oci",
    version,
    about = "Ship the keyhop Wasm module as an Istio OCI image"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack the module as an OCI image layout: a directory, or a tar archive if OUT ends in .tar.
    Image {
        /// The proxy-wasm module.
        #[arg(long, default_value = "target/keyhop.wasm")]
        module: PathBuf,
        /// Image variant: `compat` (one tar+gzip layer with plugin.wasm) or `oci` (artifact).
        #[arg(long, value_enum, default_value = "compat")]
        variant: Variant,
        /// Tag recorded in the layout's index.json.
        #[arg(long, default_value = "latest")]
        tag: String,
        /// Output directory, or `*.tar` file.
        #[arg(long, default_value = "target/keyhop-oci")]
        out: PathBuf,
    },
    /// Push the image to a registry: `--registry host:port/repository:tag`.
    Push {
        /// Where to push, e.g. `registry.example:5000/keyhop/keyhop:0.1.0`.
        #[arg(long)]
        registry: String,
        /// Push this OCI layout directory (from `image`) instead of packing `--module`.
        #[arg(long, conflicts_with_all = ["module", "variant"])]
        layout: Option<PathBuf>,
        /// The proxy-wasm module to pack and push.
        #[arg(long, default_value = "target/keyhop.wasm")]
        module: PathBuf,
        /// Image variant when packing `--module`.
        #[arg(long, value_enum, default_value = "compat")]
        variant: Variant,
        /// User name for basic or token authentication.
        #[arg(long, requires = "password_stdin")]
        username: Option<String>,
        /// Read the password (or token) from standard input.
        #[arg(long, requires = "username")]
        password_stdin: bool,
        /// Use plain HTTP for this registry.
        #[arg(long)]
        insecure: bool,
    },
    /// Rewrite the checksums pinned in istio/*.yaml and envoy/partner-ingress-remote.yaml
    /// from the built module.
    Pin {
        /// The proxy-wasm module (default: $KEYHOP_WASM, else target/keyhop.wasm).
        #[arg(long)]
        module: Option<PathBuf>,
        /// Only report what would change; exit with status 1 if anything would.
        #[arg(long)]
        check: bool,
    },
    /// Print the module sha256 and the image manifest digests.
    Digest {
        /// The proxy-wasm module.
        #[arg(long, default_value = "target/keyhop.wasm")]
        module: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("keyhop-oci: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Image {
            module,
            variant,
            tag,
            out,
        } => {
            let image = WasmImage::build(&pin::read_module(&module)?, variant)?;
            if out.extension().is_some_and(|ext| ext == "tar") {
                image.write_layout_tar(&out, &tag)?;
            } else {
                image.write_layout_dir(&out, &tag)?;
            }
            println!("{} {}", image.manifest_digest, out.display());
        }
        Command::Push {
            registry,
            layout,
            module,
            variant,
            username,
            password_stdin,
            insecure,
        } => {
            let image = match layout {
                Some(dir) => WasmImage::read_layout_dir(&dir)?,
                None => WasmImage::build(&pin::read_module(&module)?, variant)?,
            };
            let reference = registry::parse_reference(&registry)?;
            let auth = match (username, password_stdin) {
                (Some(user), true) => RegistryAuth::Basic(user, read_password()?),
                _ => RegistryAuth::Anonymous,
            };
            let connection = Connection { auth, insecure };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let pushed = runtime.block_on(registry::push(&image, &reference, &connection))?;
            println!("{reference}@{}", pushed.manifest_digest);
        }
        Command::Pin { module, check } => return pin_files(module, check),
        Command::Digest { module } => {
            let bytes = pin::read_module(&module)?;
            let pins = Pins::for_module(&bytes)?;
            let artifact = WasmImage::build(&bytes, Variant::Artifact)?;
            println!("module          {}", pins.module.hex());
            println!("image (compat)  {}", pins.manifest.hex());
            println!("image (oci)     {}", artifact.manifest_digest.hex());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pin_files(module: Option<PathBuf>, check: bool) -> Result<ExitCode> {
    let root = pin::workspace_root(&std::env::current_dir()?)?;
    let module = module.unwrap_or_else(|| pin::module_path(&root));
    let pins = Pins::for_module(&pin::read_module(&module)?)?;

    let mut targets: Vec<(PathBuf, bool)> = pin::yaml_files(&root.join("istio"))?
        .into_iter()
        .map(|path| (path, true))
        .collect();
    let envoy = root.join(pin::ENVOY_REMOTE_CONFIG);
    if envoy.exists() {
        targets.push((envoy, false));
    }

    let mut stale = 0;
    for (path, is_istio) in targets {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let (new_text, changed) = if is_istio {
            pin::pin_istio_text(&text, &pins)
        } else {
            pin::pin_envoy_text(&text, &pins)
        };
        if changed == 0 {
            continue;
        }
        stale += 1;
        println!(
            "{} {}",
            if check { "stale" } else { "pinned" },
            relative(&path, &root)
        );
        if !check {
            std::fs::write(&path, new_text)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }

    println!(
        "module {}  image {}",
        pins.module.hex(),
        pins.manifest.hex()
    );
    Ok(if check && stale > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read_password() -> Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("--password-stdin got an empty password");
    }
    Ok(password)
}
