//! Plugin configuration: strict JSON in, a checked [`Config`] out, or a [`ConfigError`] that
//! names the field.
//!
//! Unknown fields are refused, bounds are checked, and root secrets are read from the VM's
//! environment (Envoy `vm_config.environment_variables`, Istio `vmConfig.env`) by name, so no
//! secret sits in the plugin configuration itself.

use std::cell::RefCell;
use std::fmt;

use base64::Engine as _;
use serde_json::Value;

use crate::identity;
use crate::keys::{RootSecret, MIN_SECRET_LEN};
use crate::policy::{PathMatch, Principal, Route};
use crate::profile;
use crate::replay::ReplayCache;

/// Allowed key hop periods, in seconds.
pub const HOP_SECONDS: std::ops::RangeInclusive<u64> = 5..=30;

/// A configuration the filter refuses, and which field is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field path, such as `keys[0].secret_env`, or `(json)` for a syntax error.
    pub field: String,
    /// What is wrong with it; never a secret.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn error(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub enum Config {
    /// Outbound: sign every request.
    Sign(SignConfig),
    /// Inbound: verify every request.
    Verify(VerifyConfig),
}

/// The signing side's settings.
#[derive(Debug, Clone)]
pub struct SignConfig {
    /// The caller's SPIFFE ID, sent in `keyhop-identity`.
    pub identity: String,
    /// The caller's trust domain (from `identity`).
    pub trust_domain: String,
    /// Who the credentials are for; bound into every epoch key.
    pub audience: String,
    /// Seconds per key epoch.
    pub hop_seconds: u64,
    /// The key id sent in `keyid`.
    pub key_id: String,
    /// The root secret behind `key_id`.
    pub secret: RootSecret,
    /// `expires - created` of minted credentials.
    pub lifetime_seconds: u64,
    /// Largest body signed; larger gets 413.
    pub max_body_bytes: usize,
    /// Request headers removed before signing (a static API key, say).
    pub drop_headers: Vec<String>,
    /// Path prefixes whose responses must carry a valid keyhop response signature.
    pub verify_responses: Vec<String>,
    /// Largest response body checked; larger gets 502.
    pub max_response_body_bytes: usize,
    /// The window response signatures must fall in.
    pub response_window: crate::response::Window,
}

/// Whether the credential's identity must match the mTLS peer certificate's SPIFFE ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlsBinding {
    /// Do not look at the peer certificate.
    Off,
    /// When the connection has a peer certificate with a URI SAN, it must match.
    Prefer,
    /// The connection must have a peer certificate whose URI SAN matches.
    Require,
}

/// One key the verifier accepts.
#[derive(Debug, Clone)]
pub struct VerifyKey {
    /// The key id.
    pub id: String,
    /// The root secret.
    pub secret: RootSecret,
    /// The algorithm pinned to this key.
    pub alg: String,
    /// Trust domains whose identities this key may vouch for.
    pub trust_domains: Vec<String>,
}

/// The verifying side's settings.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// This verifier's audience; bound into every epoch key.
    pub audience: String,
    /// Seconds per key epoch.
    pub hop_seconds: u64,
    /// Accepted keys, several during a rotation.
    pub keys: Vec<VerifyKey>,
    /// Oldest `created` accepted, in seconds behind the clock.
    pub max_age_seconds: u64,
    /// Furthest `created` accepted, in seconds ahead of the clock.
    pub future_skew_seconds: u64,
    /// Largest `expires - created` accepted.
    pub max_lifetime_seconds: u64,
    /// Largest body verified; larger gets 413.
    pub max_body_bytes: usize,
    /// The header that hands the verified identity to the application.
    pub verified_identity_header: String,
    /// Route policy; empty means any verified caller.
    pub routes: Vec<Route>,
    /// The replay cache's shape.
    pub replay: ReplayCache,
    /// Sign every response to a request whose credential was authentic.
    pub sign_responses: bool,
    /// `expires - created` of response signatures.
    pub response_lifetime_seconds: u64,
    /// Largest response body signed; larger gets 502.
    pub max_response_body_bytes: usize,
    /// How the credential's identity relates to the mTLS peer certificate.
    pub mtls_binding: MtlsBinding,
}

/// The fields of a sign configuration, as read.
struct RawSign {
    identity: String,
    audience: String,
    hop_seconds: u64,
    key: RawSignKey,
    lifetime_seconds: u64,
    max_body_bytes: usize,
    drop_headers: Vec<String>,
    verify_responses: Vec<String>,
    max_response_body_bytes: usize,
    response_max_age_seconds: u64,
    future_skew_seconds: u64,
}

struct RawSignKey {
    id: String,
    secret_env: String,
}

/// The fields of a verify configuration, as read.
struct RawVerify {
    audience: String,
    hop_seconds: u64,
    keys: Vec<RawVerifyKey>,
    max_age_seconds: u64,
    future_skew_seconds: u64,
    max_lifetime_seconds: u64,
    max_body_bytes: usize,
    verified_identity_header: String,
    routes: Vec<RawRoute>,
    replay_shards: u32,
    replay_entries_per_shard: usize,
    sign_responses: bool,
    response_lifetime_seconds: u64,
    max_response_body_bytes: usize,
    mtls_binding: MtlsBinding,
}

struct RawVerifyKey {
    id: String,
    secret_env: String,
    alg: String,
    trust_domains: Vec<String>,
}

struct RawRoute {
    methods: Option<Vec<String>>,
    path_exact: Option<String>,
    path_prefix: Option<String>,
    allow: Vec<String>,
}

const DEFAULT_HOP: u64 = 10;
const DEFAULT_LIFETIME: u64 = 10;
const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
const DEFAULT_MAX_AGE: u64 = 30;
const DEFAULT_SKEW: u64 = 5;
const DEFAULT_MAX_LIFETIME: u64 = 30;
const DEFAULT_VERIFIED_HEADER: &str = "keyhop-verified-identity";
const DEFAULT_SHARDS: u64 = 1024;
const DEFAULT_ENTRIES: u64 = 128;

impl Config {
    /// Parses and checks a plugin configuration. `env` looks up the VM's environment
    /// variables by name (for root secrets).
    pub fn from_json(
        json: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        refuse_duplicate_keys(json)?;
        let value: Value =
            serde_json::from_slice(json).map_err(|e| error("(json)", e.to_string()))?;
        let mut fields = Fields::of(String::new(), &value)?;
        match fields.get("mode").and_then(Value::as_str) {
            Some("sign") => check_sign(read_sign(fields)?, env).map(Config::Sign),
            Some("verify") => check_verify(read_verify(fields)?, env).map(Config::Verify),
            _ => Err(error("mode", "must be \"sign\" or \"verify\"")),
        }
    }
}

/// Refuses a document in which one object names a key twice: `serde_json::Value` would keep
/// the last silently, so `{"identity": A, …, "identity": B}` would sign as B.
fn refuse_duplicate_keys(json: &[u8]) -> Result<(), ConfigError> {
    use serde::de::DeserializeSeed as _;
    let twice = RefCell::new(None);
    let mut reader = serde_json::Deserializer::from_slice(json);
    let read = Unique {
        path: String::new(),
        twice: &twice,
    }
    .deserialize(&mut reader);
    match (read, twice.into_inner()) {
        (_, Some((path, key))) => Err(error(path, format!("duplicate field `{key}`"))),
        (Err(e), None) => Err(error("(json)", e.to_string())),
        (Ok(()), None) => Ok(()),
    }
}

/// Walks any JSON value; on the first key an object repeats, notes its path and the key in
/// `twice` and stops.
struct Unique<'t> {
    path: String,
    twice: &'t RefCell<Option<(String, String)>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, reader: D) -> Result<(), D::Error> {
        reader.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        loop {
            let item = Unique {
                path: format!("{}[{index}]", self.path),
                twice: self.twice,
            };
            if items.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut fields: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = fields.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if seen.contains(&key) {
                *self.twice.borrow_mut() = Some((path, key));
                return Err(A::Error::custom("a key appears twice"));
            }
            seen.insert(key);
            fields.next_value_seed(Unique {
                path,
                twice: self.twice,
            })?;
        }
        Ok(())
    }
}

const SIGN_FIELDS: &[&str] = &[
    "mode",
    "identity",
    "audience",
    "hop_seconds",
    "key",
    "lifetime_seconds",
    "max_body_bytes",
    "drop_headers",
    "verify_responses",
    "max_response_body_bytes",
    "response_max_age_seconds",
    "future_skew_seconds",
];
const SIGN_KEY_FIELDS: &[&str] = &["id", "secret_env"];
const VERIFY_FIELDS: &[&str] = &[
    "mode",
    "audience",
    "hop_seconds",
    "keys",
    "max_age_seconds",
    "future_skew_seconds",
    "max_lifetime_seconds",
    "max_body_bytes",
    "verified_identity_header",
    "routes",
    "replay",
    "sign_responses",
    "response_lifetime_seconds",
    "max_response_body_bytes",
    "mtls_binding",
];
const VERIFY_KEY_FIELDS: &[&str] = &["id", "secret_env", "alg", "trust_domains"];
const ROUTE_FIELDS: &[&str] = &["methods", "path_exact", "path_prefix", "allow"];
const REPLAY_FIELDS: &[&str] = &["shards", "entries_per_shard"];

fn read_sign(mut f: Fields<'_>) -> Result<RawSign, ConfigError> {
    f.only(SIGN_FIELDS)?;
    let mut key = f.object("key")?;
    key.only(SIGN_KEY_FIELDS)?;
    let raw = RawSign {
        identity: f.string("identity")?,
        audience: f.string("audience")?,
        hop_seconds: f.integer_or("hop_seconds", DEFAULT_HOP)?,
        key: RawSignKey {
            id: key.string("id")?,
            secret_env: key.string("secret_env")?,
        },
        lifetime_seconds: f.integer_or("lifetime_seconds", DEFAULT_LIFETIME)?,
        max_body_bytes: f.integer_or("max_body_bytes", DEFAULT_MAX_BODY)?,
        drop_headers: f.strings_or_empty("drop_headers")?,
        verify_responses: f.strings_or_empty("verify_responses")?,
        max_response_body_bytes: f.integer_or("max_response_body_bytes", DEFAULT_MAX_BODY)?,
        response_max_age_seconds: f.integer_or("response_max_age_seconds", DEFAULT_MAX_AGE)?,
        future_skew_seconds: f.integer_or("future_skew_seconds", DEFAULT_SKEW)?,
    };
    key.finish()?;
    f.finish()?;
    Ok(raw)
}

fn read_verify(mut f: Fields<'_>) -> Result<RawVerify, ConfigError> {
    f.only(VERIFY_FIELDS)?;
    let mut keys = Vec::new();
    for mut key in f.objects("keys")? {
        key.only(VERIFY_KEY_FIELDS)?;
        keys.push(RawVerifyKey {
            id: key.string("id")?,
            secret_env: key.string("secret_env")?,
            alg: key.string_or("alg", profile::ALG)?,
            trust_domains: key.strings("trust_domains")?,
        });
        key.finish()?;
    }
    let mut routes = Vec::new();
    for mut route in f.objects_or_none("routes")?.unwrap_or_default() {
        route.only(ROUTE_FIELDS)?;
        routes.push(RawRoute {
            methods: route.strings_or_none("methods")?,
            path_exact: route.string_or_none("path_exact")?,
            path_prefix: route.string_or_none("path_prefix")?,
            allow: route.strings("allow")?,
        });
        route.finish()?;
    }
    let (replay_shards, replay_entries_per_shard) = match f.object_or_none("replay")? {
        Some(mut replay) => {
            replay.only(REPLAY_FIELDS)?;
            let read = (
                replay.integer_or("shards", DEFAULT_SHARDS)?,
                replay.integer_or("entries_per_shard", DEFAULT_ENTRIES)?,
            );
            replay.finish()?;
            read
        }
        None => (
            u32::try_from(DEFAULT_SHARDS).unwrap_or(u32::MAX),
            usize::try_from(DEFAULT_ENTRIES).unwrap_or(usize::MAX),
        ),
    };
    let mtls_binding = match f.string_or("mtls_binding", "off")?.as_str() {
        "off" => MtlsBinding::Off,
        "prefer" => MtlsBinding::Prefer,
        "require" => MtlsBinding::Require,
        _ => return Err(error("mtls_binding", "must be off, prefer or require")),
    };
    let raw = RawVerify {
        audience: f.string("audience")?,
        hop_seconds: f.integer_or("hop_seconds", DEFAULT_HOP)?,
        keys,
        max_age_seconds: f.integer_or("max_age_seconds", DEFAULT_MAX_AGE)?,
        future_skew_seconds: f.integer_or("future_skew_seconds", DEFAULT_SKEW)?,
        max_lifetime_seconds: f.integer_or("max_lifetime_seconds", DEFAULT_MAX_LIFETIME)?,
        max_body_bytes: f.integer_or("max_body_bytes", DEFAULT_MAX_BODY)?,
        verified_identity_header: f
            .string_or("verified_identity_header", DEFAULT_VERIFIED_HEADER)?,
        routes,
        replay_shards,
        replay_entries_per_shard,
        sign_responses: f.bool_or("sign_responses", false)?,
        response_lifetime_seconds: f.integer_or("response_lifetime_seconds", DEFAULT_LIFETIME)?,
        max_response_body_bytes: f.integer_or("max_response_body_bytes", DEFAULT_MAX_BODY)?,
        mtls_binding,
    };
    f.finish()?;
    Ok(raw)
}

/// One JSON object of the configuration, read field by field: every error names the field
/// with its path (`keys[0].alg`), and a field nobody read is refused as unknown.
struct Fields<'a> {
    path: String,
    map: &'a serde_json::Map<String, Value>,
    read: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn of(path: String, value: &'a Value) -> Result<Fields<'a>, ConfigError> {
        match value {
            Value::Object(map) => Ok(Fields {
                path,
                map,
                read: Vec::new(),
            }),
            _ if path.is_empty() => Err(error("(json)", "the configuration is a JSON object")),
            _ => Err(error(path, "expected an object")),
        }
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// The field's value. `null` is a value, and the wrong type for every field but the
    /// optional ones read with [`Fields::optional`]: a template that renders an unset value as
    /// `null` gets a refusal, not a default.
    fn get(&mut self, field: &'static str) -> Option<&'a Value> {
        self.read.push(field);
        self.map.get(field)
    }

    /// An optional field's value; `null` counts as absent.
    fn optional(&mut self, field: &'static str) -> Option<&'a Value> {
        self.get(field).filter(|v| !v.is_null())
    }

    /// Refuses, before anything else, a field this object does not have, so that a misspelt
    /// field is named as such rather than as the required one it was meant to be.
    fn only(&self, known: &[&str]) -> Result<(), ConfigError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(self.unknown(unknown)),
            None => Ok(()),
        }
    }

    fn unknown(&self, field: &str) -> ConfigError {
        error(
            self.name(if field.is_empty() { "\"\"" } else { field }),
            format!("unknown field `{field}`"),
        )
    }

    fn required(&mut self, field: &'static str) -> Result<&'a Value, ConfigError> {
        self.get(field)
            .ok_or_else(|| error(self.name(field), format!("missing field `{field}`")))
    }

    fn as_string(&self, field: &str, value: &Value) -> Result<String, ConfigError> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| error(self.name(field), "expected a string"))
    }

    fn string(&mut self, field: &'static str) -> Result<String, ConfigError> {
        let value = self.required(field)?;
        self.as_string(field, value)
    }

    fn string_or_none(&mut self, field: &'static str) -> Result<Option<String>, ConfigError> {
        match self.optional(field) {
            Some(value) => self.as_string(field, value).map(Some),
            None => Ok(None),
        }
    }

    fn string_or(&mut self, field: &'static str, default: &str) -> Result<String, ConfigError> {
        match self.get(field) {
            Some(value) => self.as_string(field, value),
            None => Ok(default.to_string()),
        }
    }

    /// A non-negative integer that fits the target type.
    fn integer_or<T: TryFrom<u64>>(
        &mut self,
        field: &'static str,
        default: u64,
    ) -> Result<T, ConfigError> {
        let value = match self.get(field) {
            Some(value) => value.as_u64(),
            None => Some(default),
        };
        value
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| error(self.name(field), "expected a non-negative integer"))
    }

    fn bool_or(&mut self, field: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(field) {
            Some(value) => value
                .as_bool()
                .ok_or_else(|| error(self.name(field), "expected true or false")),
            None => Ok(default),
        }
    }

    fn list(&self, field: &str, value: &'a Value) -> Result<&'a Vec<Value>, ConfigError> {
        value
            .as_array()
            .ok_or_else(|| error(self.name(field), "expected a list"))
    }

    fn as_strings(&self, field: &str, value: &'a Value) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for (i, item) in self.list(field, value)?.iter().enumerate() {
            out.push(self.as_string(&format!("{field}[{i}]"), item)?);
        }
        Ok(out)
    }

    fn strings(&mut self, field: &'static str) -> Result<Vec<String>, ConfigError> {
        let value = self.required(field)?;
        self.as_strings(field, value)
    }

    fn strings_or_none(&mut self, field: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.optional(field) {
            Some(value) => self.as_strings(field, value).map(Some),
            None => Ok(None),
        }
    }

    fn strings_or_empty(&mut self, field: &'static str) -> Result<Vec<String>, ConfigError> {
        match self.get(field) {
            Some(value) => self.as_strings(field, value),
            None => Ok(Vec::new()),
        }
    }

    fn object(&mut self, field: &'static str) -> Result<Fields<'a>, ConfigError> {
        let value = self.required(field)?;
        Fields::of(self.name(field), value)
    }

    fn object_or_none(&mut self, field: &'static str) -> Result<Option<Fields<'a>>, ConfigError> {
        match self.get(field) {
            Some(value) => Fields::of(self.name(field), value).map(Some),
            None => Ok(None),
        }
    }

    fn as_objects(&self, field: &str, value: &'a Value) -> Result<Vec<Fields<'a>>, ConfigError> {
        let mut out = Vec::new();
        for (i, item) in self.list(field, value)?.iter().enumerate() {
            out.push(Fields::of(self.name(&format!("{field}[{i}]")), item)?);
        }
        Ok(out)
    }

    fn objects(&mut self, field: &'static str) -> Result<Vec<Fields<'a>>, ConfigError> {
        let value = self.required(field)?;
        self.as_objects(field, value)
    }

    fn objects_or_none(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Vec<Fields<'a>>>, ConfigError> {
        match self.get(field) {
            Some(value) => self.as_objects(field, value).map(Some),
            None => Ok(None),
        }
    }

    /// Refuses a field that nothing read (the first by name): a field listed as known that
    /// the reader forgot would otherwise pass unread.
    fn finish(self) -> Result<(), ConfigError> {
        match self.map.keys().find(|k| !self.read.contains(&k.as_str())) {
            Some(unknown) => Err(self.unknown(unknown)),
            None => Ok(()),
        }
    }
}

fn check_sign(
    raw: RawSign,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SignConfig, ConfigError> {
    let trust_domain = identity::parse(&raw.identity)
        .map_err(|_| {
            error(
                "identity",
                "must be a SPIFFE ID such as spiffe://example.org/ns/a/sa/b",
            )
        })?
        .trust_domain
        .to_string();
    check_audience(&raw.audience)?;
    check_hop(raw.hop_seconds)?;
    check_key_id("key.id", &raw.key.id)?;
    let secret = read_secret("key.secret_env", &raw.key.secret_env, env)?;
    check_range("lifetime_seconds", raw.lifetime_seconds, 1, 300)?;
    check_body("max_body_bytes", raw.max_body_bytes)?;
    for (i, name) in raw.drop_headers.iter().enumerate() {
        check_header_name(&format!("drop_headers[{i}]"), name)?;
    }
    for (i, prefix) in raw.verify_responses.iter().enumerate() {
        if !prefix.starts_with('/') {
            return Err(error(
                format!("verify_responses[{i}]"),
                "path prefixes start with /",
            ));
        }
    }
    check_body("max_response_body_bytes", raw.max_response_body_bytes)?;
    check_range(
        "response_max_age_seconds",
        raw.response_max_age_seconds,
        1,
        300,
    )?;
    check_range("future_skew_seconds", raw.future_skew_seconds, 0, 60)?;

    Ok(SignConfig {
        identity: raw.identity,
        trust_domain,
        audience: raw.audience,
        hop_seconds: raw.hop_seconds,
        key_id: raw.key.id,
        secret,
        lifetime_seconds: raw.lifetime_seconds,
        max_body_bytes: raw.max_body_bytes,
        drop_headers: raw.drop_headers,
        verify_responses: raw.verify_responses,
        max_response_body_bytes: raw.max_response_body_bytes,
        response_window: crate::response::Window {
            max_age: raw.response_max_age_seconds,
            future_skew: raw.future_skew_seconds,
        },
    })
}

fn check_verify(
    raw: RawVerify,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<VerifyConfig, ConfigError> {
    check_audience(&raw.audience)?;
    check_hop(raw.hop_seconds)?;
    check_range("max_age_seconds", raw.max_age_seconds, 1, 300)?;
    check_range("future_skew_seconds", raw.future_skew_seconds, 0, 60)?;
    check_range("max_lifetime_seconds", raw.max_lifetime_seconds, 1, 300)?;
    check_body("max_body_bytes", raw.max_body_bytes)?;
    check_header_name("verified_identity_header", &raw.verified_identity_header)?;
    check_range("replay.shards", u64::from(raw.replay_shards), 1, 65_536)?;
    check_range(
        "replay.entries_per_shard",
        raw.replay_entries_per_shard as u64,
        1,
        4096,
    )?;
    check_range(
        "response_lifetime_seconds",
        raw.response_lifetime_seconds,
        1,
        300,
    )?;
    check_body("max_response_body_bytes", raw.max_response_body_bytes)?;

    if raw.keys.is_empty() {
        return Err(error("keys", "at least one key is required"));
    }
    let mut keys: Vec<VerifyKey> = Vec::with_capacity(raw.keys.len());
    for (i, key) in raw.keys.into_iter().enumerate() {
        check_key_id(&format!("keys[{i}].id"), &key.id)?;
        if keys.iter().any(|k| k.id == key.id) {
            return Err(error(format!("keys[{i}].id"), "duplicate key id"));
        }
        if key.alg != profile::ALG {
            return Err(error(
                format!("keys[{i}].alg"),
                "only hmac-sha256 is supported",
            ));
        }
        if key.trust_domains.is_empty() {
            return Err(error(
                format!("keys[{i}].trust_domains"),
                "at least one trust domain is required",
            ));
        }
        for (j, domain) in key.trust_domains.iter().enumerate() {
            if !identity::is_trust_domain(domain) {
                return Err(error(
                    format!("keys[{i}].trust_domains[{j}]"),
                    "not a trust domain name",
                ));
            }
        }
        let secret = read_secret(&format!("keys[{i}].secret_env"), &key.secret_env, env)?;
        keys.push(VerifyKey {
            id: key.id,
            secret,
            alg: key.alg,
            trust_domains: key.trust_domains,
        });
    }

    let mut routes = Vec::with_capacity(raw.routes.len());
    for (i, route) in raw.routes.into_iter().enumerate() {
        routes.push(check_route(i, route)?);
    }

    let replay = ReplayCache::new(
        raw.hop_seconds,
        raw.max_age_seconds,
        raw.future_skew_seconds,
        raw.replay_shards,
        raw.replay_entries_per_shard,
    );
    Ok(VerifyConfig {
        audience: raw.audience,
        hop_seconds: raw.hop_seconds,
        keys,
        max_age_seconds: raw.max_age_seconds,
        future_skew_seconds: raw.future_skew_seconds,
        max_lifetime_seconds: raw.max_lifetime_seconds,
        max_body_bytes: raw.max_body_bytes,
        verified_identity_header: raw.verified_identity_header,
        routes,
        replay,
        sign_responses: raw.sign_responses,
        response_lifetime_seconds: raw.response_lifetime_seconds,
        max_response_body_bytes: raw.max_response_body_bytes,
        mtls_binding: raw.mtls_binding,
    })
}

fn check_route(i: usize, raw: RawRoute) -> Result<Route, ConfigError> {
    let field = |name: &str| format!("routes[{i}].{name}");
    let path = match (raw.path_exact, raw.path_prefix) {
        (Some(exact), None) if exact.starts_with('/') => PathMatch::Exact(exact),
        (None, Some(prefix)) if prefix.starts_with('/') => PathMatch::Prefix(prefix),
        (Some(_), Some(_)) => {
            return Err(error(
                field("path_exact"),
                "give path_exact or path_prefix, not both",
            ))
        }
        (None, None) => {
            return Err(error(
                field("path_prefix"),
                "a route needs path_exact or path_prefix",
            ))
        }
        _ => return Err(error(field("path_prefix"), "paths start with /")),
    };
    if let Some(methods) = &raw.methods {
        for (j, method) in methods.iter().enumerate() {
            let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
            if !token {
                return Err(error(
                    field(&format!("methods[{j}]")),
                    "methods are upper-case tokens",
                ));
            }
        }
    }
    if raw.allow.is_empty() {
        return Err(error(
            field("allow"),
            "at least one principal is required (a route allowing nobody is a typo)",
        ));
    }
    let mut allow = Vec::with_capacity(raw.allow.len());
    for (j, principal) in raw.allow.into_iter().enumerate() {
        let parsed = match principal
            .strip_suffix("/*")
            .and_then(|p| p.strip_prefix("spiffe://"))
        {
            Some(domain) if identity::is_trust_domain(domain) => {
                Principal::TrustDomain(domain.to_string())
            }
            Some(_) => return Err(error(field(&format!("allow[{j}]")), "not a trust domain")),
            None => {
                identity::parse(&principal)
                    .map_err(|_| error(field(&format!("allow[{j}]")), "not a SPIFFE ID"))?;
                Principal::Id(principal)
            }
        };
        allow.push(parsed);
    }
    Ok(Route {
        methods: raw.methods,
        path,
        allow,
    })
}

fn check_audience(audience: &str) -> Result<(), ConfigError> {
    let printable = audience.bytes().all(|b| (0x21..0x7f).contains(&b));
    if audience.is_empty() || audience.len() > 255 || !printable {
        return Err(error(
            "audience",
            "1 to 255 printable ASCII characters, no spaces",
        ));
    }
    Ok(())
}

fn check_hop(hop: u64) -> Result<(), ConfigError> {
    check_range("hop_seconds", hop, *HOP_SECONDS.start(), *HOP_SECONDS.end())
}

fn check_range(field: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(error(
            field,
            format!("must be between {min} and {max}, got {value}"),
        ));
    }
    Ok(())
}

fn check_body(field: &str, value: usize) -> Result<(), ConfigError> {
    check_range(field, value as u64, 0, 64 * 1024 * 1024)
}

fn check_key_id(field: &str, id: &str) -> Result<(), ConfigError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !valid {
        return Err(error(field, "1 to 64 characters of A-Z a-z 0-9 . - _"));
    }
    Ok(())
}

fn check_header_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if !valid {
        return Err(error(field, "a lowercase header name"));
    }
    if profile::CREDENTIAL_HEADERS.contains(&name) {
        return Err(error(
            field,
            "keyhop's own credential headers cannot be used here",
        ));
    }
    Ok(())
}

fn read_secret(
    field: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RootSecret, ConfigError> {
    if var.is_empty() {
        return Err(error(
            field,
            "names the VM environment variable holding the root secret",
        ));
    }
    let value = env(var).ok_or_else(|| {
        error(
            field,
            format!("environment variable {var} is not set (in Envoy, give it through vm_config.environment_variables)"),
        )
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| {
            error(
                field,
                format!("environment variable {var} is not standard base64"),
            )
        })?;
    RootSecret::new(bytes).ok_or_else(|| {
        error(
            field,
            format!("environment variable {var} holds fewer than {MIN_SECRET_LEN} bytes"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

    fn env(name: &str) -> Option<String> {
        match name {
            "GOOD" => Some(SECRET.to_string()),
            "SHORT" => Some("c2hvcnQ=".to_string()),
            "NOTB64" => Some("not base64!".to_string()),
            _ => None,
        }
    }

    fn verify_json(extra: &str) -> String {
        format!(
            r#"{{"mode":"verify","audience":"spiffe://p.example/edge",
                "keys":[{{"id":"k1","secret_env":"GOOD","trust_domains":["f.example"]}}]{extra}}}"#
        )
    }

    fn field_of(json: &str) -> String {
        match Config::from_json(json.as_bytes(), &env) {
            Err(e) => e.field,
            Ok(_) => "(accepted)".to_string(),
        }
    }

    #[test]
    fn accepts_a_minimal_verify_config_with_defaults() {
        let Ok(Config::Verify(v)) = Config::from_json(verify_json("").as_bytes(), &env) else {
            panic!("expected a verify config");
        };
        assert_eq!(v.hop_seconds, 10);
        assert_eq!(v.verified_identity_header, "keyhop-verified-identity");
        assert!(v.routes.is_empty());
        assert_eq!(v.replay.shards, 1024);
    }

    #[test]
    fn accepts_a_sign_config() {
        let json = r#"{"mode":"sign","identity":"spiffe://f.example/ns/a/sa/b","audience":"aud",
            "key":{"id":"k1","secret_env":"GOOD"},"drop_headers":["x-api-key"]}"#;
        let Ok(Config::Sign(s)) = Config::from_json(json.as_bytes(), &env) else {
            panic!("expected a sign config");
        };
        assert_eq!(s.trust_domain, "f.example");
        assert_eq!(s.lifetime_seconds, 10);
    }

    #[test]
    fn a_key_named_twice_is_refused_with_its_path() {
        let sign = r#"{"mode":"sign","identity":"spiffe://f.example/ns/a/sa/first","audience":"aud",
            "key":{"id":"k1","secret_env":"GOOD"},"identity":"spiffe://f.example/ns/a/sa/second"}"#;
        let refused = Config::from_json(sign.as_bytes(), &env).err();
        assert_eq!(
            refused.map(|e| (e.field, e.message)),
            Some((
                "identity".to_string(),
                "duplicate field `identity`".to_string()
            ))
        );
        assert_eq!(field_of(&verify_json(r#","mode":"verify""#)), "mode");
        assert_eq!(
            field_of(&verify_json(
                r#","routes":[{"path_prefix":"/a","allow":[]},{"path_exact":"/b","allow":[],"allow":[]}]"#
            )),
            "routes[1].allow"
        );
        // The same key in two objects is not a repeat; syntax errors still read as such.
        assert_eq!(
            field_of(&verify_json(r#","replay":{"shards":4}"#)),
            "(accepted)"
        );
        assert_eq!(field_of(r#"{"mode":"verify","#), "(json)");
        // An empty key is named too (the fuzz target found it): the field is "", the
        // message says which.
        let empty = Config::from_json(br#"{"mode":"verify","":1,"":2}"#, &env).err();
        assert_eq!(
            empty.map(|e| (e.field, e.message)),
            Some((String::new(), "duplicate field ``".to_string()))
        );
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(field_of(&verify_json(r#","colour":"red""#)), "colour");
        assert_eq!(field_of(&verify_json(r#","hop_seconds":2"#)), "hop_seconds");
        assert_eq!(
            field_of(&verify_json(r#","hop_seconds":31"#)),
            "hop_seconds"
        );
        assert_eq!(
            field_of(&verify_json(r#","future_skew_seconds":600"#)),
            "future_skew_seconds"
        );
        assert_eq!(
            field_of(&verify_json(r#","replay":{"shards":0}"#)),
            "replay.shards"
        );
        assert_eq!(
            field_of(&verify_json(r#","replay":{"size":1}"#)),
            "replay.size"
        );
        assert_eq!(
            field_of(&verify_json(r#","verified_identity_header":"signature""#)),
            "verified_identity_header"
        );
        assert_eq!(
            field_of(&verify_json(
                r#","routes":[{"path_prefix":"/v1/","allow":[]}]"#
            )),
            "routes[0].allow"
        );
        assert_eq!(
            field_of(&verify_json(
                r#","routes":[{"path_prefix":"/v1/","allow":["bob"]}]"#
            )),
            "routes[0].allow[0]"
        );
        assert_eq!(
            field_of(&verify_json(r#","mtls_binding":"always""#)),
            "mtls_binding"
        );
        assert_eq!(
            field_of(&verify_json(r#","hop_seconds":"ten""#)),
            "hop_seconds"
        );
        assert_eq!(
            field_of(
                r#"{"mode":"verify","audience":"a",
                    "keys":[{"id":"k","secret_env":"GOOD","trust_domains":["f.example"],"algo":"x"}]}"#
            ),
            "keys[0].algo"
        );
        assert_eq!(
            field_of(&verify_json(r#","routes":[{"path_prefix":"/"}]"#)),
            "routes[0].allow"
        );
        assert_eq!(field_of(r#"{"mode":"shout"}"#), "mode");
        assert_eq!(field_of("{"), "(json)");
        assert_eq!(field_of(r#"{"mode":"verify","audience":"a"}"#), "keys");
    }

    #[test]
    fn wrong_types_name_the_field_with_its_path() {
        for (extra, field) in [
            (r#","hop_seconds":10.5"#, "hop_seconds"),
            (r#","max_body_bytes":-1"#, "max_body_bytes"),
            (r#","sign_responses":"yes""#, "sign_responses"),
            (r#","replay":[]"#, "replay"),
            (r#","replay":{"shards":70000}"#, "replay.shards"),
            (r#","replay":{"shards":4294967296}"#, "replay.shards"),
            (r#","routes":{}"#, "routes"),
            (r#","routes":[7]"#, "routes[0]"),
            (
                r#","routes":[{"path_prefix":"/v1/","allow":["spiffe://f.example/a",3]}]"#,
                "routes[0].allow[1]",
            ),
            (
                r#","routes":[{"path_prefix":"/v1/","methods":"GET","allow":["spiffe://f.example/a"]}]"#,
                "routes[0].methods",
            ),
        ] {
            assert_eq!(field_of(&verify_json(extra)), field, "{extra}");
        }
        let json = r#"{"mode":"verify","audience":"a","keys":[
            {"id":"k","secret_env":"GOOD","trust_domains":["f.example",null]}]}"#;
        assert_eq!(field_of(json), "keys[0].trust_domains[1]");
        // `null` is an absent optional field (the route's methods and paths), and the wrong
        // type anywhere else: a default is never taken for a value that is there.
        let json = verify_json(
            r#","routes":[{"methods":null,"path_exact":null,"path_prefix":"/v1/","allow":["spiffe://f.example/a"]}]"#,
        );
        assert_eq!(field_of(&json), "(accepted)");
        for field in [
            "mtls_binding",
            "hop_seconds",
            "replay",
            "routes",
            "sign_responses",
            "verified_identity_header",
        ] {
            assert_eq!(
                field_of(&verify_json(&format!(r#","{field}":null"#))),
                field
            );
        }
        // A misspelt field is named as unknown, not as the required field it was meant to be.
        assert_eq!(
            field_of(r#"{"mode":"verify","audiance":"aud","keys":[]}"#),
            "audiance"
        );
        assert_eq!(
            field_of(&verify_json("").replace("trust_domains", "trust_domain")),
            "keys[0].trust_domain"
        );
    }

    #[test]
    fn secrets_must_exist_be_base64_and_long_enough() {
        for (var, _) in [("MISSING", ()), ("SHORT", ()), ("NOTB64", ()), ("", ())] {
            let json = format!(
                r#"{{"mode":"verify","audience":"a","keys":[{{"id":"k","secret_env":"{var}","trust_domains":["f.example"]}}]}}"#
            );
            let err = Config::from_json(json.as_bytes(), &env).expect_err("refused");
            assert_eq!(err.field, "keys[0].secret_env");
            assert!(!err.message.contains(SECRET));
        }
    }

    #[test]
    fn keys_must_be_unique_and_hmac() {
        let json = r#"{"mode":"verify","audience":"a","keys":[
            {"id":"k","secret_env":"GOOD","trust_domains":["f.example"]},
            {"id":"k","secret_env":"GOOD","trust_domains":["f.example"]}]}"#;
        assert_eq!(field_of(json), "keys[1].id");
        let json = r#"{"mode":"verify","audience":"a","keys":[
            {"id":"k","secret_env":"GOOD","alg":"rsa-pss-sha512","trust_domains":["f.example"]}]}"#;
        assert_eq!(field_of(json), "keys[0].alg");
    }
}
