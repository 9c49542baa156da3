//! keyhop-oci: ships the keyhop proxy-wasm module the way Istio pulls it.
//!
//! It packs `target/keyhop.wasm` as a Wasm OCI image ([`image`]), pushes it to an OCI
//! distribution registry ([`registry`]) and keeps the `sha256` pinned in the `WasmPlugin`
//! manifests under `istio/` equal to what Istio will verify ([`pin`]).
//!
//! It is not a general OCI tool: one module, the two image variants Istio understands, and
//! the few registry calls a push needs.

pub mod digest;
pub mod image;
pub mod pin;
pub mod registry;
