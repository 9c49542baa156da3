//! Minting real credentials in the test process, with the filter crate's own signer, so an
//! attack starts from a credential the verifier would accept and changes exactly one thing.

use base64::Engine as _;
use keyhop_filter::config::{Config, SignConfig};
use keyhop_filter::keys::EpochKeyCache;
use keyhop_filter::message;
use keyhop_filter::sign;

use keyhop_e2e::http::Request;

/// A signer: one identity, one key id and root secret, one audience and hop period.
pub struct Minter {
    config: SignConfig,
    keys: EpochKeyCache,
}

/// What a signer is set up with. The defaults are the demo's portal-web workload.
#[derive(Clone, Debug)]
pub struct Signer {
    pub identity: String,
    pub audience: String,
    pub key_id: String,
    /// The root secret, base64 (standard alphabet).
    pub secret: String,
    pub hop_seconds: u64,
    pub lifetime_seconds: u64,
}

impl Signer {
    /// The demo's portal-web signer with `secret`.
    pub fn portal_web(secret: &str) -> Signer {
        Signer {
            identity: super::PORTAL_WEB.to_owned(),
            audience: super::AUDIENCE.to_owned(),
            key_id: super::KEY_ID.to_owned(),
            secret: secret.to_owned(),
            hop_seconds: super::HOP_SECONDS,
            lifetime_seconds: 10,
        }
    }

    pub fn identity(mut self, identity: &str) -> Signer {
        identity.clone_into(&mut self.identity);
        self
    }

    pub fn audience(mut self, audience: &str) -> Signer {
        audience.clone_into(&mut self.audience);
        self
    }

    pub fn key_id(mut self, key_id: &str) -> Signer {
        key_id.clone_into(&mut self.key_id);
        self
    }

    pub fn secret(mut self, secret: &str) -> Signer {
        secret.clone_into(&mut self.secret);
        self
    }

    pub fn hop_seconds(mut self, hop: u64) -> Signer {
        self.hop_seconds = hop;
        self
    }

    pub fn lifetime(mut self, seconds: u64) -> Signer {
        self.lifetime_seconds = seconds;
        self
    }

    /// A minter for this signer, through the filter's own configuration parser.
    pub fn minter(&self) -> Minter {
        let json = serde_json::json!({
            "mode": "sign",
            "identity": self.identity,
            "audience": self.audience,
            "hop_seconds": self.hop_seconds,
            "key": {"id": self.key_id, "secret_env": "KEYHOP_RED_TEAM_SECRET"},
            "lifetime_seconds": self.lifetime_seconds,
        });
        let secret = self.secret.clone();
        let env = move |name: &str| (name == "KEYHOP_RED_TEAM_SECRET").then(|| secret.clone());
        let config = match Config::from_json(json.to_string().as_bytes(), &env) {
            Ok(Config::Sign(config)) => config,
            other => panic!("sign config for {self:?}: {other:?}"),
        };
        Minter {
            config,
            keys: EpochKeyCache::new(8),
        }
    }
}

impl Minter {
    /// Signs `request` as created at `created` with a fresh random nonce; returns it with the
    /// four credential headers added (any earlier copies removed).
    pub fn mint(&mut self, request: &Request, created: i64) -> Request {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("random nonce");
        self.mint_with_nonce(request, created, &nonce)
    }

    /// As [`Minter::mint`], with a chosen nonce.
    pub fn mint_with_nonce(&mut self, request: &Request, created: i64, nonce: &[u8]) -> Request {
        let authority = request.headers.get_str("host").unwrap_or_default();
        let view = message::Request {
            method: &request.method,
            scheme: "http",
            authority: &authority,
            path_and_query: &request.target,
            headers: message::HeaderMap::empty(),
        };
        let signed = sign::sign(
            &self.config,
            &mut self.keys,
            &view,
            &request.body,
            created,
            nonce,
        )
        .unwrap_or_else(|reason| panic!("the filter's signer refused: {reason:?}"));

        let mut out = request.clone();
        out.raw.clear();
        for (name, value) in [
            ("content-digest", signed.content_digest),
            ("keyhop-identity", signed.identity),
            ("signature-input", signed.signature_input),
            ("signature", signed.signature),
        ] {
            out.headers.set(name, value);
        }
        out
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    i64::try_from(seconds).unwrap_or_default()
}

/// A fresh root secret: base64 of 32 random bytes.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("random secret");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
