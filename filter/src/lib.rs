//! keyhop: one-time, key-hopping request credentials for Envoy, as a proxy-wasm filter.
//!
//! On the way out of a workload the filter signs every request with an RFC 9421 HTTP Message
//! Signature (HMAC-SHA256) over its method, authority, path, query, a Content-Digest of the
//! body and the caller's SPIFFE ID, under a key derived per time epoch from a root secret. On
//! the way in it verifies that credential, refuses replays across all worker threads, applies
//! route policy and hands the application the verified identity.
//!
//! Everything that decides lives in plain modules with no proxy-wasm dependency, so it runs
//! natively in tests and tools; [`glue`] (built only for wasm32) is the thin layer that
//! connects them to the host. The crate is not an HTTP client or a general RFC 9421 library:
//! it implements one profile, described in `docs/PROTOCOL.md`.

#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod audit;
pub mod canonical;
pub mod config;
pub mod digest;
pub mod identity;
pub mod keys;
pub mod message;
pub mod policy;
pub mod profile;
pub mod reason;
pub mod replay;
pub mod response;
pub mod sigfields;
pub mod sign;
pub mod verify;

#[cfg(target_arch = "wasm32")]
pub mod glue;

pub use config::Config;
pub use reason::Reason;
