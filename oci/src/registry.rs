//! Pushing a [`WasmImage`] to an OCI distribution registry, and pulling it back.
//!
//! The blobs and the manifest are pushed as the exact bytes [`WasmImage::build`] produced,
//! so the digest the registry stores is the digest pinned in `istio/`. Blobs the registry
//! already has are skipped, which makes a repeated push cheap and harmless.

use std::sync::Once;

use anyhow::{bail, ensure, Context, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::digest::Digest;
use crate::image::{Blob, Manifest, WasmImage, MANIFEST_MEDIA_TYPE};

/// How to reach a registry.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Credentials; `RegistryAuth::Basic` also works with token-based registries (the client
    /// trades them for a bearer token when the registry asks for one).
    pub auth: RegistryAuth,
    /// Speak plain HTTP to this registry (loopback and lab registries only).
    pub insecure: bool,
}

impl Connection {
    fn client(&self, reference: &Reference) -> Client {
        install_crypto_provider();
        let protocol = if self.insecure {
            ClientProtocol::HttpsExcept(vec![reference.registry().to_owned()])
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            ..ClientConfig::default()
        })
    }
}

/// What a push left in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// Digest of the manifest, as the registry computed it.
    pub manifest_digest: Digest,
    /// How many blobs were uploaded (the others were already there).
    pub uploaded_blobs: usize,
}

/// An image read back from a registry.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The manifest bytes as served.
    pub manifest: Vec<u8>,
    /// The parsed manifest.
    pub parsed: Manifest,
    /// The config blob.
    pub config: Blob,
    /// The layer blobs, in manifest order.
    pub layers: Vec<Blob>,
}

/// Pushes `image` under `reference` (which should carry a tag).
pub async fn push(
    image: &WasmImage,
    reference: &Reference,
    connection: &Connection,
) -> Result<Pushed> {
    let client = connection.client(reference);
    client
        .auth(reference, &connection.auth, RegistryOperation::Push)
        .await
        .with_context(|| format!("authenticating to {} for push", reference.registry()))?;

    let mut uploaded_blobs = 0;
    for blob in image.blobs() {
        let digest = blob.digest.to_string();
        if client
            .blob_exists(reference, &digest)
            .await
            .unwrap_or(false)
        {
            continue;
        }
        client
            .push_blob(reference, blob.data.clone(), &digest)
            .await
            .with_context(|| format!("uploading blob {digest} ({})", blob.media_type))?;
        uploaded_blobs += 1;
    }

    let content_type = http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE);
    client
        .push_manifest_raw(reference, image.manifest.clone(), content_type)
        .await
        .with_context(|| format!("pushing the manifest to {reference}"))?;

    // Confirm what the registry stored under the tag rather than trusting our own digest.
    let (_, served) = client
        .pull_manifest_raw(reference, &connection.auth, &[MANIFEST_MEDIA_TYPE])
        .await
        .with_context(|| format!("reading back the manifest of {reference}"))?;
    let manifest_digest = Digest::parse(&served)
        .with_context(|| format!("the registry answered an unexpected digest {served:?}"))?;
    ensure!(
        manifest_digest == image.manifest_digest,
        "the registry stored manifest {manifest_digest} under {reference}, expected {}",
        image.manifest_digest
    );

    Ok(Pushed {
        manifest_digest,
        uploaded_blobs,
    })
}

/// Pulls the manifest `reference` names (by tag or digest) and every blob it references,
/// checking each blob against its descriptor.
pub async fn pull(reference: &Reference, connection: &Connection) -> Result<Pulled> {
    let client = connection.client(reference);
    client
        .auth(reference, &connection.auth, RegistryOperation::Pull)
        .await
        .with_context(|| format!("authenticating to {} for pull", reference.registry()))?;

    let (manifest, digest) = client
        .pull_manifest_raw(reference, &connection.auth, &[MANIFEST_MEDIA_TYPE])
        .await
        .with_context(|| format!("pulling the manifest of {reference}"))?;
    let manifest = manifest.to_vec();
    ensure!(
        Digest::parse(&digest) == Some(Digest::of(&manifest)),
        "the manifest of {reference} does not match its digest {digest}"
    );
    let parsed: Manifest = serde_json::from_slice(&manifest).context("parsing the manifest")?;

    let mut blobs = Vec::with_capacity(1 + parsed.layers.len());
    for descriptor in std::iter::once(&parsed.config).chain(&parsed.layers) {
        let mut data = Vec::new();
        client
            .pull_blob(reference, descriptor.digest.as_str(), &mut data)
            .await
            .with_context(|| format!("pulling blob {}", descriptor.digest))?;
        let blob = Blob {
            media_type: descriptor.media_type.clone(),
            digest: Digest::of(&data),
            data,
            annotations: descriptor.annotations.clone(),
        };
        if blob.digest.to_string() != descriptor.digest || blob.data.len() as u64 != descriptor.size
        {
            bail!("blob {} does not match its descriptor", descriptor.digest);
        }
        blobs.push(blob);
    }
    let mut blobs = blobs.into_iter();
    let Some(config) = blobs.next() else {
        bail!("the manifest has no config")
    };

    Ok(Pulled {
        manifest,
        parsed,
        config,
        layers: blobs.collect(),
    })
}

/// Parses `host[:port]/repository[:tag|@digest]`.
pub fn parse_reference(text: &str) -> Result<Reference> {
    text.parse::<Reference>()
        .with_context(|| format!("not an image reference: {text:?}"))
}

/// reqwest is built without a default TLS crypto provider (to avoid a C toolchain for
/// aws-lc); install ring's once per process before the first client.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error only means another provider was installed first, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
