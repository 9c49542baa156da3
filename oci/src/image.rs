//! The Wasm image formats Istio's agent pulls for a `WasmPlugin` with an `oci://` URL.
//!
//! Istio (`pkg/wasm/imagefetcher.go`) accepts the two variants of the solo.io Wasm image
//! specification:
//!
//! - **compat**: an ordinary OCI image with exactly one `tar+gzip` layer holding `plugin.wasm`,
//!   and the manifest annotation `module.wasm.image/variant: compat`. Any registry and any
//!   image tool handles it; this is the default.
//! - **oci** (here [`Variant::Artifact`]): an OCI artifact with a runtime-config layer
//!   (`application/vnd.module.wasm.config.v1+json`) and the raw module as a layer of type
//!   `application/vnd.module.wasm.content.layer.v1+wasm`. Istio insists on exactly two layers.
//!
//! Images are built reproducibly: no timestamps, owners or host names, so the same module
//! always gives the same manifest digest. That matters because, for `oci://` URLs, the
//! `sha256` Istio verifies is the digest of the image manifest, not of the module.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use flate2::{read::GzDecoder, Compression, GzBuilder};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image configuration (compat variant).
pub const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip-compressed tar layer (compat variant).
pub const TAR_GZIP_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the runtime configuration (oci variant: config and first layer).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
/// Media type of the raw Wasm module layer (oci variant).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// Manifest annotation the compat variant must carry.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// Name of the module inside the compat layer; Istio looks for exactly this base name.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// Standard annotation naming a file (oci variant layers) or a tag (layout index).
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Proxy-Wasm ABI the keyhop module is built against (recorded in the runtime config).
const PROXY_WASM_ABI: &str = "proxy_abi_version_0_2_1";
/// The first eight bytes of every Wasm 1.0 binary: `\0asm` and version 1.
const WASM_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/// Which of the two image layouts Istio understands to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Variant {
    /// One `tar+gzip` layer with `plugin.wasm` (works with every registry and tool).
    Compat,
    /// OCI artifact: runtime-config layer plus the raw module layer.
    #[value(name = "oci")]
    Artifact,
}

/// One content-addressed blob and how the manifest describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The descriptor's `mediaType`.
    pub media_type: String,
    /// The bytes as stored in the registry.
    pub data: Vec<u8>,
    /// `sha256` of `data`.
    pub digest: Digest,
    /// The descriptor's annotations (empty for most blobs).
    pub annotations: BTreeMap<String, String>,
}

impl Blob {
    fn new(media_type: &str, data: Vec<u8>) -> Self {
        let digest = Digest::of(&data);
        Self {
            media_type: media_type.to_owned(),
            data,
            digest,
            annotations: BTreeMap::new(),
        }
    }

    fn titled(mut self, title: &str) -> Self {
        self.annotations
            .insert(TITLE_ANNOTATION.to_owned(), title.to_owned());
        self
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.to_string(),
            size: self.data.len() as u64,
            annotations: self.annotations.clone(),
        }
    }
}

/// A complete Wasm image: manifest, config and layers, ready to write or push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmImage {
    /// The serialized manifest, exactly as pushed (its digest is what Istio pins).
    pub manifest: Vec<u8>,
    /// `sha256` of `manifest`.
    pub manifest_digest: Digest,
    /// The config blob the manifest points at.
    pub config: Blob,
    /// The layer blobs, in manifest order.
    pub layers: Vec<Blob>,
}

/// An OCI content descriptor (the subset this crate writes and reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// `sha256:<hex>` of the referenced content.
    pub digest: String,
    /// Size of the referenced content in bytes.
    pub size: u64,
    /// Optional annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image manifest (the subset this crate writes and reads).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Always [`MANIFEST_MEDIA_TYPE`] for images built here.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The config descriptor.
    pub config: Descriptor,
    /// The layer descriptors.
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// OCI image configuration for the compat variant. Nothing runs it; registries and image
/// tools only need it to be a well-formed image config.
#[derive(Serialize)]
struct ImageConfig<'a> {
    architecture: &'a str,
    os: &'a str,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// Runtime configuration of the solo.io Wasm artifact specification.
#[derive(Serialize)]
struct RuntimeConfig<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    abi_version: &'a str,
    config: BTreeMap<String, String>,
}

impl WasmImage {
    /// Packs `module` (a Wasm binary) as a `variant` image.
    pub fn build(module: &[u8], variant: Variant) -> Result<Self> {
        ensure!(
            module.starts_with(&WASM_HEADER),
            "the module is not a Wasm 1.0 binary (it does not start with \\0asm version 1)"
        );

        let (config, layers, annotations) = match variant {
            Variant::Compat => {
                let tar = plugin_tar(module)?;
                let diff_id = Digest::of(&tar);
                let layer = Blob::new(TAR_GZIP_LAYER_MEDIA_TYPE, gzip(&tar)?);
                let config = ImageConfig {
                    architecture: "wasm",
                    os: "wasip1",
                    rootfs: RootFs {
                        kind: "layers",
                        diff_ids: vec![diff_id.to_string()],
                    },
                };
                let config = Blob::new(IMAGE_CONFIG_MEDIA_TYPE, serde_json::to_vec(&config)?);
                let annotations =
                    BTreeMap::from([(VARIANT_ANNOTATION.to_owned(), "compat".to_owned())]);
                (config, vec![layer], annotations)
            }
            Variant::Artifact => {
                let runtime = RuntimeConfig {
                    kind: "envoy_proxy",
                    abi_version: PROXY_WASM_ABI,
                    config: BTreeMap::new(),
                };
                let runtime = serde_json::to_vec(&runtime)?;
                let config = Blob::new(WASM_CONFIG_MEDIA_TYPE, runtime.clone());
                let layers = vec![
                    Blob::new(WASM_CONFIG_MEDIA_TYPE, runtime).titled("runtime-config.json"),
                    Blob::new(WASM_LAYER_MEDIA_TYPE, module.to_vec()).titled(PLUGIN_FILE),
                ];
                (config, layers, BTreeMap::new())
            }
        };

        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.to_owned()),
            config: config.descriptor(),
            layers: layers.iter().map(Blob::descriptor).collect(),
            annotations,
        };
        let manifest = serde_json::to_vec(&manifest)?;
        Ok(Self {
            manifest_digest: Digest::of(&manifest),
            manifest,
            config,
            layers,
        })
    }

    /// Every blob the manifest references (config first), each once.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut blobs: Vec<&Blob> = Vec::with_capacity(1 + self.layers.len());
        for blob in std::iter::once(&self.config).chain(&self.layers) {
            if !blobs.iter().any(|seen| seen.digest == blob.digest) {
                blobs.push(blob);
            }
        }
        blobs
    }

    /// Writes the image as an OCI image layout directory, the manifest tagged `tag`.
    pub fn write_layout_dir(&self, dir: &Path, tag: &str) -> Result<()> {
        for (name, bytes) in self.layout_files(tag)? {
            let path = dir.join(&name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Writes the image as a tar archive of an OCI image layout (what `docker load`-style
    /// and `skopeo copy oci-archive:` tools read), the manifest tagged `tag`.
    pub fn write_layout_tar(&self, path: &Path, tag: &str) -> Result<()> {
        let mut archive = tar::Builder::new(Vec::new());
        for (name, bytes) in self.layout_files(tag)? {
            let mut header = file_header(bytes.len())?;
            archive.append_data(&mut header, &name, bytes.as_slice())?;
        }
        let bytes = archive.into_inner()?;
        fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }

    /// The files of an OCI image layout holding this image, by relative path.
    fn layout_files(&self, tag: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": self.manifest_digest.to_string(),
                "size": self.manifest.len(),
                "annotations": { REF_NAME_ANNOTATION: tag },
            }],
        });

        let mut files = vec![
            (
                "oci-layout".to_owned(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_owned(), serde_json::to_vec(&index)?),
            (blob_path(&self.manifest_digest), self.manifest.clone()),
        ];
        for blob in self.blobs() {
            files.push((blob_path(&blob.digest), blob.data.clone()));
        }
        Ok(files)
    }

    /// Reads back an image from an OCI image layout directory written by
    /// [`WasmImage::write_layout_dir`] (or any layout whose index lists one manifest).
    pub fn read_layout_dir(dir: &Path) -> Result<Self> {
        let read_blob = |digest: &str| -> Result<Vec<u8>> {
            let parsed = Digest::parse(digest).ok_or_else(|| anyhow!("bad digest {digest:?}"))?;
            let path = dir.join(blob_path(&parsed));
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            ensure!(
                Digest::of(&bytes) == parsed,
                "{} does not match its digest",
                path.display()
            );
            Ok(bytes)
        };

        let index_path = dir.join("index.json");
        let index: serde_json::Value = serde_json::from_slice(
            &fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?,
        )?;
        let entries = index
            .get("manifests")
            .and_then(|m| m.as_array())
            .cloned()
            .unwrap_or_default();
        let [entry] = entries.as_slice() else {
            bail!("{} must list exactly one manifest", index_path.display());
        };
        let manifest_digest = entry
            .get("digest")
            .and_then(|d| d.as_str())
            .unwrap_or_default();
        let manifest = read_blob(manifest_digest)?;

        let parsed: Manifest = serde_json::from_slice(&manifest).context("parsing the manifest")?;
        let load = |descriptor: &Descriptor| -> Result<Blob> {
            let data = read_blob(&descriptor.digest)?;
            let mut blob = Blob::new(&descriptor.media_type, data);
            blob.annotations = descriptor.annotations.clone();
            Ok(blob)
        };
        let config = load(&parsed.config)?;
        let layers = parsed.layers.iter().map(load).collect::<Result<Vec<_>>>()?;

        Ok(Self {
            manifest_digest: Digest::of(&manifest),
            manifest,
            config,
            layers,
        })
    }
}

/// Extracts `plugin.wasm` from a compat layer (`tar+gzip`) the way Istio does: the first
/// entry whose base name is `plugin.wasm`.
pub fn unpack_compat_layer(layer: &[u8]) -> Result<Vec<u8>> {
    let mut archive = tar::Archive::new(GzDecoder::new(layer));
    for entry in archive.entries().context("reading the layer as tar+gzip")? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        if path.file_name().is_some_and(|name| name == PLUGIN_FILE) {
            let mut module = Vec::new();
            entry.read_to_end(&mut module)?;
            return Ok(module);
        }
    }
    bail!("{PLUGIN_FILE} not found in the layer")
}

/// A tar holding only `plugin.wasm`, with fixed metadata so the bytes depend on the module only.
fn plugin_tar(module: &[u8]) -> Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = file_header(module.len())?;
    archive.append_data(&mut header, PLUGIN_FILE, module)?;
    Ok(archive.into_inner()?)
}

fn file_header(len: usize) -> Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(u64::try_from(len)?);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    Ok(header)
}

/// Gzip with no name and a zero timestamp in the header, so output depends on input only.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid module: just the header.
    const EMPTY_MODULE: [u8; 8] = WASM_HEADER;

    #[test]
    fn compat_image_is_one_tar_gzip_layer_with_plugin_wasm() -> Result<()> {
        let image = WasmImage::build(&EMPTY_MODULE, Variant::Compat)?;
        let manifest: Manifest = serde_json::from_slice(&image.manifest)?;

        assert_eq!(manifest.media_type.as_deref(), Some(MANIFEST_MEDIA_TYPE));
        assert_eq!(manifest.config.media_type, IMAGE_CONFIG_MEDIA_TYPE);
        assert_eq!(
            manifest
                .annotations
                .get(VARIANT_ANNOTATION)
                .map(String::as_str),
            Some("compat")
        );
        let [layer] = image.layers.as_slice() else {
            bail!("expected one layer")
        };
        assert_eq!(layer.media_type, TAR_GZIP_LAYER_MEDIA_TYPE);
        assert_eq!(unpack_compat_layer(&layer.data)?, EMPTY_MODULE);
        Ok(())
    }

    #[test]
    fn artifact_image_has_the_two_layers_istio_requires() -> Result<()> {
        let image = WasmImage::build(&EMPTY_MODULE, Variant::Artifact)?;
        let types: Vec<&str> = image.layers.iter().map(|l| l.media_type.as_str()).collect();
        assert_eq!(types, [WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE]);
        assert_eq!(image.config.media_type, WASM_CONFIG_MEDIA_TYPE);
        assert_eq!(
            image.layers.last().map(|l| l.data.as_slice()),
            Some(&EMPTY_MODULE[..])
        );
        // The config blob and the first layer are the same bytes: stored and pushed once.
        assert_eq!(image.blobs().len(), 2);
        Ok(())
    }

    #[test]
    fn the_same_module_always_gives_the_same_manifest_digest() -> Result<()> {
        for variant in [Variant::Compat, Variant::Artifact] {
            let first = WasmImage::build(&EMPTY_MODULE, variant)?;
            let second = WasmImage::build(&EMPTY_MODULE, variant)?;
            assert_eq!(first.manifest_digest, second.manifest_digest);
        }
        Ok(())
    }

    #[test]
    fn refuses_bytes_that_are_not_a_wasm_module() {
        assert!(WasmImage::build(b"#!/bin/sh\n", Variant::Compat).is_err());
    }

    #[test]
    fn layout_tar_holds_the_layout_files() -> Result<()> {
        let path = std::env::temp_dir().join(format!("keyhop-oci-{}.tar", std::process::id()));
        let image = WasmImage::build(&EMPTY_MODULE, Variant::Compat)?;
        image.write_layout_tar(&path, "test")?;
        let bytes = fs::read(&path);
        let _ = fs::remove_file(&path);

        let mut names = Vec::new();
        for entry in tar::Archive::new(bytes?.as_slice()).entries()? {
            names.push(entry?.path()?.display().to_string());
        }
        assert!(names.contains(&"oci-layout".to_owned()));
        assert!(names.contains(&"index.json".to_owned()));
        assert!(names.contains(&format!("blobs/sha256/{}", image.manifest_digest.hex())));
        assert_eq!(names.len(), 2 + 1 + image.blobs().len());
        Ok(())
    }

    #[test]
    fn layout_dir_round_trips() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("keyhop-oci-layout-{}", std::process::id()));
        let image = WasmImage::build(&EMPTY_MODULE, Variant::Compat)?;
        image.write_layout_dir(&dir, "test")?;
        let read = WasmImage::read_layout_dir(&dir);
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(read?, image);
        Ok(())
    }
}
