//! Pushing the built module to a real registry (Debian's docker-registry, distribution 2.8)
//! and reading it back the way Istio's agent does: manifest by tag and by digest, media
//! types, `plugin.wasm` byte for byte, and the digest the `istio/` manifests pin.
//!
//! Needs `scripts/ensure-tools.sh registry` and the built module (`scripts/build-wasm.sh`).

#[path = "support/registry.rs"]
mod support_registry;

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{anyhow, ensure, Context, Result};
use oci_client::secrets::RegistryAuth;
use oci_client::Reference;
use serde_json::Value;

use keyhop_oci::digest::Digest;
use keyhop_oci::image::{self, Variant, WasmImage};
use keyhop_oci::pin::{self, Pins};
use keyhop_oci::registry::{self, Connection};
use support_registry::Registry;

const USER: &str = "keyhop-ci";
const PASSWORD: &str = "not-a-real-password";

fn module() -> Result<Vec<u8>> {
    let root = pin::workspace_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))?;
    pin::read_module(&pin::module_path(&root))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn anonymous() -> Connection {
    Connection {
        auth: RegistryAuth::Anonymous,
        insecure: true,
    }
}

fn reference(registry: &Registry, tag: &str) -> Result<Reference> {
    registry::parse_reference(&format!("{}/keyhop/keyhop:{tag}", registry.host()))
}

/// The `spec.sha256` values pinned in `istio/`.
fn pinned_manifest_digests() -> Result<Vec<String>> {
    let root = pin::workspace_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let mut found = Vec::new();
    for path in pin::yaml_files(&root.join("istio"))? {
        let text = std::fs::read_to_string(&path)?;
        for line in text.lines() {
            if let Some(value) = line.trim().strip_prefix("sha256: ") {
                found.push(value.to_owned());
            }
        }
    }
    ensure!(!found.is_empty(), "no sha256 pinned under istio/");
    Ok(found)
}

#[test]
fn compat_image_round_trips_through_a_real_registry() -> Result<()> {
    let module = module()?;
    let image = WasmImage::build(&module, Variant::Compat)?;
    let registry = Registry::start_open()?;
    let tagged = reference(&registry, "0.1.0")?;
    let runtime = runtime()?;

    let pushed = runtime.block_on(registry::push(&image, &tagged, &anonymous()))?;
    ensure!(pushed.manifest_digest == image.manifest_digest);
    ensure!(
        pushed.uploaded_blobs == 2,
        "config and layer uploaded, got {}",
        pushed.uploaded_blobs
    );

    // By tag, then by digest (what Istio does after resolving the tag), same bytes both times.
    let by_tag = runtime.block_on(registry::pull(&tagged, &anonymous()))?;
    let by_digest = tagged.clone_with_digest(pushed.manifest_digest.to_string());
    let by_digest = runtime.block_on(registry::pull(&by_digest, &anonymous()))?;
    ensure!(by_tag.manifest == image.manifest && by_digest.manifest == image.manifest);

    // The compat variant as Istio's fetcher checks it.
    let manifest = &by_digest.parsed;
    ensure!(manifest.media_type.as_deref() == Some(image::MANIFEST_MEDIA_TYPE));
    ensure!(by_digest.config.media_type == image::IMAGE_CONFIG_MEDIA_TYPE);
    ensure!(
        manifest
            .annotations
            .get(image::VARIANT_ANNOTATION)
            .map(String::as_str)
            == Some("compat")
    );
    let [layer] = by_digest.layers.as_slice() else {
        return Err(anyhow!(
            "expected exactly one layer, got {}",
            by_digest.layers.len()
        ));
    };
    ensure!(layer.media_type == image::TAR_GZIP_LAYER_MEDIA_TYPE);

    let unpacked = image::unpack_compat_layer(&layer.data)?;
    ensure!(
        unpacked == module,
        "plugin.wasm differs from the built module"
    );
    ensure!(Digest::of(&unpacked) == Pins::for_module(&module)?.module);

    // The digest Istio will compare with spec.sha256 is the one every manifest pins.
    let served = pushed.manifest_digest.hex();
    for pinned in pinned_manifest_digests()? {
        ensure!(
            pinned == served,
            "istio/ pins {pinned}, the registry serves {served}: run `{}`",
            pin::PIN_COMMAND
        );
    }

    // A second push changes nothing and uploads nothing.
    let again = runtime.block_on(registry::push(&image, &tagged, &anonymous()))?;
    ensure!(again.manifest_digest == pushed.manifest_digest);
    ensure!(
        again.uploaded_blobs == 0,
        "the second push uploaded {} blobs",
        again.uploaded_blobs
    );
    let after = runtime.block_on(registry::pull(&tagged, &anonymous()))?;
    ensure!(after.manifest == image.manifest);
    Ok(())
}

#[test]
fn artifact_image_round_trips_through_a_real_registry() -> Result<()> {
    let module = module()?;
    let image = WasmImage::build(&module, Variant::Artifact)?;
    let registry = Registry::start_open()?;
    let tagged = reference(&registry, "0.1.0-oci")?;
    let runtime = runtime()?;

    let pushed = runtime.block_on(registry::push(&image, &tagged, &anonymous()))?;
    let pulled = runtime.block_on(registry::pull(
        &tagged.clone_with_digest(pushed.manifest_digest.to_string()),
        &anonymous(),
    ))?;

    ensure!(pulled.config.media_type == image::WASM_CONFIG_MEDIA_TYPE);
    let types: Vec<&str> = pulled
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    ensure!(
        types == [image::WASM_CONFIG_MEDIA_TYPE, image::WASM_LAYER_MEDIA_TYPE],
        "layers {types:?}"
    );
    let wasm = pulled
        .layers
        .iter()
        .find(|l| l.media_type == image::WASM_LAYER_MEDIA_TYPE);
    ensure!(
        wasm.map(|l| l.data.as_slice()) == Some(module.as_slice()),
        "module layer differs"
    );

    let runtime_config: Value = serde_json::from_slice(&pulled.config.data)?;
    ensure!(runtime_config.get("type").and_then(Value::as_str) == Some("envoy_proxy"));
    Ok(())
}

#[test]
fn a_registry_with_basic_auth_takes_only_the_right_credentials() -> Result<()> {
    let image = WasmImage::build(&module()?, Variant::Compat)?;
    let registry = Registry::start_with_user(USER, PASSWORD)?;
    ensure!(
        registry.v2_status()? == 401,
        "the registry should ask for credentials"
    );
    let tagged = reference(&registry, "0.1.0")?;
    let runtime = runtime()?;

    let refused = runtime.block_on(registry::push(&image, &tagged, &anonymous()));
    ensure!(refused.is_err(), "an anonymous push was accepted");
    let wrong = Connection {
        auth: RegistryAuth::Basic(USER.into(), "wrong".into()),
        insecure: true,
    };
    ensure!(
        runtime
            .block_on(registry::push(&image, &tagged, &wrong))
            .is_err(),
        "a wrong password was accepted"
    );

    let right = Connection {
        auth: RegistryAuth::Basic(USER.into(), PASSWORD.into()),
        insecure: true,
    };
    let pushed = runtime.block_on(registry::push(&image, &tagged, &right))?;
    ensure!(pushed.manifest_digest == image.manifest_digest);
    ensure!(
        runtime
            .block_on(registry::pull(&tagged, &anonymous()))
            .is_err(),
        "an anonymous pull was served"
    );
    let pulled = runtime.block_on(registry::pull(&tagged, &right))?;
    ensure!(pulled.manifest == image.manifest);
    Ok(())
}

/// The command line as `make image` and `make push` use it: pack to a layout, push the layout
/// with the password on stdin, get the same digest as packing in memory.
#[test]
fn the_cli_packs_and_pushes_with_a_password_on_stdin() -> Result<()> {
    let root = pin::workspace_root(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))?;
    let module_path = pin::module_path(&root);
    let expected = WasmImage::build(&pin::read_module(&module_path)?, Variant::Compat)?;
    let registry = Registry::start_with_user(USER, PASSWORD)?;
    let layout = std::env::temp_dir().join(format!("keyhop-oci-cli-{}", std::process::id()));
    let binary = env!("CARGO_BIN_EXE_keyhop-oci");

    let packed = Command::new(binary)
        .args(["image", "--tag", "0.1.0", "--module"])
        .arg(&module_path)
        .arg("--out")
        .arg(&layout)
        .output()?;
    ensure!(
        packed.status.success(),
        "image: {}",
        String::from_utf8_lossy(&packed.stderr)
    );
    ensure!(
        String::from_utf8_lossy(&packed.stdout).starts_with(&expected.manifest_digest.to_string())
    );

    let target = format!("{}/keyhop/keyhop:0.1.0", registry.host());
    let mut push = Command::new(binary)
        .args([
            "push",
            "--insecure",
            "--registry",
            &target,
            "--username",
            USER,
            "--password-stdin",
            "--layout",
        ])
        .arg(&layout)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    push.stdin
        .take()
        .context("stdin")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    let pushed = push.wait_with_output()?;
    let _ = std::fs::remove_dir_all(&layout);

    ensure!(
        pushed.status.success(),
        "push: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let stdout = String::from_utf8_lossy(&pushed.stdout);
    ensure!(
        stdout.trim() == format!("{target}@{}", expected.manifest_digest),
        "push printed {stdout:?}"
    );
    Ok(())
}
