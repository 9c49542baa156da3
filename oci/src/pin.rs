//! Keeping the checksums in `istio/` and `envoy/partner-ingress-remote.yaml` equal to the
//! built module.
//!
//! Two different checksums are pinned, because Istio and Envoy check different things:
//!
//! - `WasmPlugin.spec.sha256` with an `oci://` URL is compared by the Istio agent with the
//!   digest of the **image manifest** it pulled (`pkg/wasm/cache.go`: the checksum returned
//!   by the image fetcher is `img.Digest()`). Pinning the module's own sha256 there would make
//!   every pull fail. Images are built reproducibly, so the manifest digest follows from the
//!   module bytes; the manifests pin the compat variant's digest.
//! - Envoy's `remote` code source (`vm_config.code.remote.sha256`) checks the module bytes.
//!
//! Each `WasmPlugin` also carries the module's own sha256 in the annotation
//! [`MODULE_SHA256_ANNOTATION`], for people comparing it with `sha256sum target/keyhop.wasm`.
//!
//! Rewriting works line by line so that comments and layout survive.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::digest::Digest;
use crate::image::{Variant, WasmImage};

/// Annotation on each `WasmPlugin` carrying the sha256 of `plugin.wasm` itself.
pub const MODULE_SHA256_ANNOTATION: &str = "keyhop.dev/module-sha256";
/// The image variant whose manifest digest the `WasmPlugin` manifests pin.
pub const PINNED_VARIANT: Variant = Variant::Compat;
/// Envoy configuration (owned by this crate) that fetches the module over HTTP.
pub const ENVOY_REMOTE_CONFIG: &str = "envoy/partner-ingress-remote.yaml";
/// The command that rewrites the pins; failures tell people to run it.
pub const PIN_COMMAND: &str = "make istio-pin";

/// The checksums that follow from one build of the module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pins {
    /// sha256 of the module bytes (Envoy `remote`, the annotation).
    pub module: Digest,
    /// Digest of the compat image manifest (`WasmPlugin.spec.sha256`).
    pub manifest: Digest,
}

impl Pins {
    /// Computes the pins for `module`.
    pub fn for_module(module: &[u8]) -> Result<Self> {
        let image = WasmImage::build(module, PINNED_VARIANT)?;
        Ok(Self {
            module: Digest::of(module),
            manifest: image.manifest_digest,
        })
    }
}

/// Finds the Cargo workspace root: the nearest ancestor of `start` whose `Cargo.toml` has a
/// `[workspace]` table.
pub fn workspace_root(start: &Path) -> Result<PathBuf> {
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            if text.lines().any(|line| line.trim() == "[workspace]") {
                return Ok(dir.to_path_buf());
            }
        }
    }
    bail!("no Cargo workspace above {}", start.display())
}

/// The built module: `$KEYHOP_WASM` (relative paths are taken from the workspace root) or
/// `target/keyhop.wasm`.
pub fn module_path(root: &Path) -> PathBuf {
    match std::env::var_os("KEYHOP_WASM") {
        Some(path) => root.join(path),
        None => root.join("target/keyhop.wasm"),
    }
}

/// Reads the built module, with a hint on how to build it when it is missing.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "reading the module {} (build it with scripts/build-wasm.sh)",
            path.display()
        )
    })
}

/// Every `*.yaml` file under `dir`, recursively, sorted.
pub fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "yaml") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Rewrites the pins in the text of an `istio/` manifest: every `sha256:` key gets the
/// manifest digest and every [`MODULE_SHA256_ANNOTATION`] the module digest. Returns the new
/// text and how many values changed.
pub fn pin_istio_text(text: &str, pins: &Pins) -> (String, usize) {
    rewrite_values(text, |key| match key {
        "sha256" => Some(pins.manifest.hex()),
        MODULE_SHA256_ANNOTATION => Some(format!("\"{}\"", pins.module.hex())),
        _ => None,
    })
}

/// Rewrites the `sha256:` values of an Envoy configuration to the module digest.
pub fn pin_envoy_text(text: &str, pins: &Pins) -> (String, usize) {
    rewrite_values(text, |key| (key == "sha256").then(|| pins.module.hex()))
}

/// Replaces the value of each `key: value` line for which `new_value(key)` says so, keeping
/// indentation, list dashes and trailing comments.
fn rewrite_values(text: &str, new_value: impl Fn(&str) -> Option<String>) -> (String, usize) {
    let mut out = String::with_capacity(text.len());
    let mut changed = 0;
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        let rewritten = split_key_value(body).and_then(|(prefix, key, value, comment)| {
            let wanted = new_value(key)?;
            (value != wanted).then(|| format!("{prefix}{key}: {wanted}{comment}"))
        });
        match rewritten {
            Some(new_body) => {
                changed += 1;
                out.push_str(&new_body);
            }
            None => out.push_str(body),
        }
        out.push_str(newline);
    }
    (out, changed)
}

/// Splits `  - key: value  # comment` into (`  - `, `key`, `value`, `  # comment`).
fn split_key_value(line: &str) -> Option<(&str, &str, &str, &str)> {
    let indent = line.len() - line.trim_start_matches([' ', '-']).len();
    let (prefix, rest) = line.split_at(indent);
    let (key, value) = rest.split_once(": ")?;
    if key.is_empty() || key.starts_with('#') || key.contains(' ') {
        return None;
    }
    let end = match value.find(" #") {
        Some(at) => value.split_at(at).0.trim_end().len(),
        None => value.trim_end().len(),
    };
    let (value, comment) = value.split_at(end);
    Some((prefix, key, value, comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins() -> Pins {
        Pins {
            module: Digest::of(b"module"),
            manifest: Digest::of(b"manifest"),
        }
    }

    #[test]
    fn istio_pins_go_to_spec_sha256_and_the_annotation() {
        let text = "metadata:\n  annotations:\n    keyhop.dev/module-sha256: \"old\"\n\
                    spec:\n  url: oci://r/k:1  # tag\n  sha256: old  # pinned\n";
        let (out, changed) = pin_istio_text(text, &pins());
        assert_eq!(changed, 2);
        assert!(out.contains(&format!(
            "keyhop.dev/module-sha256: \"{}\"\n",
            pins().module.hex()
        )));
        assert!(out.contains(&format!("  sha256: {}  # pinned\n", pins().manifest.hex())));
        assert!(out.contains("  url: oci://r/k:1  # tag\n"));
    }

    #[test]
    fn pinning_twice_changes_nothing_the_second_time() {
        let text = "spec:\n  sha256: old\n";
        let (once, _) = pin_istio_text(text, &pins());
        let (twice, changed) = pin_istio_text(&once, &pins());
        assert_eq!((twice, changed), (once, 0));
    }

    #[test]
    fn envoy_pins_the_module_digest() {
        let text = "        remote:\n          sha256: old\n";
        let (out, changed) = pin_envoy_text(text, &pins());
        assert_eq!(changed, 1);
        assert!(out.ends_with(&format!("sha256: {}\n", pins().module.hex())));
    }
}
