//! The manifests under `istio/` are ones Kubernetes, Istio and the filter all accept.
//!
//! - Every `WasmPlugin` validates against Istio's real CRD (schema and CEL rules), read from
//!   `../shared/istio/wasmplugin-crd.yaml` beside the repository (or `$KEYHOP_WASMPLUGIN_CRD`).
//! - Every `pluginConfig` is accepted by the filter's own configuration code, with the root
//!   secrets the manifest delivers through `vmConfig.env` and nothing else.
//! - Every root secret the VM reads is put into the istio-proxy environment from a Secret that
//!   the manifests create, under the same key.
//! - Every pinned checksum matches the built module (`make istio-pin` rewrites them).

#[path = "support/crd.rs"]
mod crd;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

use crd::{yaml_documents, CrdSchema};
use keyhop_filter::config::Config;
use keyhop_oci::pin::{self, Pins, MODULE_SHA256_ANNOTATION, PIN_COMMAND};

const CRD_VERSION: &str = "v1alpha1";

/// One YAML document and the file it came from.
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn name(&self) -> String {
        let name = self.value.pointer("/metadata/name").and_then(Value::as_str);
        format!("{} {}", self.file, name.unwrap_or("(patch)"))
    }
}

fn root() -> Result<PathBuf> {
    pin::workspace_root(Path::new(env!("CARGO_MANIFEST_DIR")))
}

fn crd_schema() -> Result<CrdSchema> {
    let root = root()?;
    let path = match std::env::var_os("KEYHOP_WASMPLUGIN_CRD") {
        Some(path) => root.join(path),
        None => root.join("../shared/istio/wasmplugin-crd.yaml"),
    };
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "Istio's WasmPlugin CRD is missing at {} (expected beside the repository clone, \
             or set KEYHOP_WASMPLUGIN_CRD)",
            path.display()
        )
    })?;
    CrdSchema::load(&text, CRD_VERSION)
}

/// Every document of every `*.yaml` under `istio/`.
fn istio_docs() -> Result<Vec<Doc>> {
    let root = root()?;
    let mut docs = Vec::new();
    for path in pin::yaml_files(&root.join("istio"))? {
        let text = std::fs::read_to_string(&path)?;
        let file = path
            .strip_prefix(&root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for value in yaml_documents(&text).with_context(|| format!("parsing {file}"))? {
            docs.push(Doc {
                file: file.clone(),
                value,
            });
        }
    }
    Ok(docs)
}

fn wasm_plugins(docs: &[Doc]) -> Result<Vec<&Doc>> {
    let plugins: Vec<&Doc> = docs.iter().filter(|d| d.kind() == "WasmPlugin").collect();
    // Verify on sidecars and at the ingress gateway, sign on sidecars and at the egress gateway.
    ensure!(
        plugins.len() >= 4,
        "expected at least 4 WasmPlugins under istio/, found {}",
        plugins.len()
    );
    Ok(plugins)
}

/// Names the manifest hands to the VM from the proxy's environment (`valueFrom: HOST`).
fn host_env_names(plugin: &Value) -> BTreeSet<String> {
    let entries = plugin
        .pointer("/spec/vmConfig/env")
        .and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter(|e| e.get("valueFrom").and_then(Value::as_str) == Some("HOST"))
        .filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The pluginConfig as the bytes Istio hands the filter (JSON of the YAML mapping).
fn plugin_config_json(plugin: &Value) -> Result<Vec<u8>> {
    let config = plugin
        .pointer("/spec/pluginConfig")
        .ok_or_else(|| anyhow!("no pluginConfig"))?;
    Ok(serde_json::to_vec(config)?)
}

fn valid_secret() -> String {
    base64::engine::general_purpose::STANDARD.encode([0x5a_u8; 32])
}

#[test]
fn wasm_plugins_match_istios_crd_schema_and_cel_rules() -> Result<()> {
    let schema = crd_schema()?;
    let docs = istio_docs()?;

    let mut problems = Vec::new();
    for plugin in wasm_plugins(&docs)? {
        ensure!(
            plugin.value.get("apiVersion").and_then(Value::as_str)
                == Some("extensions.istio.io/v1alpha1"),
            "{}: apiVersion must be extensions.istio.io/v1alpha1",
            plugin.name()
        );
        for violation in schema.violations(&plugin.value) {
            problems.push(format!("{}: {violation}", plugin.name()));
        }
    }
    ensure!(
        problems.is_empty(),
        "WasmPlugins the API server would refuse:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// The validator must catch what the API server catches, or the test above proves nothing.
#[test]
fn the_crd_check_refuses_what_the_api_server_refuses() -> Result<()> {
    let schema = crd_schema()?;
    let docs = istio_docs()?;
    let good = wasm_plugins(&docs)?
        .into_iter()
        .find(|d| d.value.pointer("/spec/selector").is_some())
        .ok_or_else(|| anyhow!("no WasmPlugin with a selector"))?
        .value
        .clone();
    ensure!(
        schema.violations(&good).is_empty(),
        "the base plugin must be valid"
    );

    type Mutation = Box<dyn Fn(&mut Value)>;
    let broken: Vec<(&str, Mutation)> = vec![
        (
            "an unknown field",
            Box::new(|p| set(p, "/spec/failurePolicy", json!("closed"))),
        ),
        (
            "a misspelt enum",
            Box::new(|p| set(p, "/spec/failStrategy", json!("FAIL_CLOSED"))),
        ),
        (
            "an uppercase sha256",
            Box::new(|p| set(p, "/spec/sha256", json!("AB".repeat(32)))),
        ),
        (
            "a priority beyond int32",
            Box::new(|p| set(p, "/spec/priority", json!(1_i64 << 40))),
        ),
        (
            "an unsupported URL scheme (CEL)",
            Box::new(|p| set(p, "/spec/url", json!("ftp://r/k"))),
        ),
        (
            "selector and targetRefs together (CEL)",
            Box::new(|p| {
                set(
                    p,
                    "/spec/targetRefs",
                    json!([{ "kind": "Gateway", "name": "g" }]),
                )
            }),
        ),
        (
            "a HOST env var with a value (CEL)",
            Box::new(|p| {
                set(
                    p,
                    "/spec/vmConfig/env",
                    json!([{ "name": "X", "valueFrom": "HOST", "value": "v" }]),
                )
            }),
        ),
        (
            "a wildcard label value (CEL)",
            Box::new(|p| set(p, "/spec/selector/matchLabels", json!({ "app": "*" }))),
        ),
        (
            "a wildcard label key (CEL over a map)",
            Box::new(|p| set(p, "/spec/selector/matchLabels", json!({ "app*": "x" }))),
        ),
        (
            "the same env name twice (list map)",
            Box::new(|p| {
                set(
                    p,
                    "/spec/vmConfig/env",
                    json!([{ "name": "X" }, { "name": "X" }]),
                )
            }),
        ),
        ("no url", Box::new(|p| remove(p, "/spec", "url"))),
    ];

    for (what, mutate) in broken {
        let mut plugin = good.clone();
        mutate(&mut plugin);
        ensure!(
            !schema.violations(&plugin).is_empty(),
            "{what} was not refused"
        );
    }
    Ok(())
}

fn set(value: &mut Value, pointer: &str, new: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.insert(key.to_owned(), new);
    }
}

fn remove(value: &mut Value, parent: &str, key: &str) {
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(key);
    }
}

#[test]
fn every_plugin_config_is_accepted_by_the_filter() -> Result<()> {
    let docs = istio_docs()?;
    for plugin in wasm_plugins(&docs)? {
        let names = host_env_names(&plugin.value);
        let env = |name: &str| names.contains(name).then(valid_secret);

        let config = Config::from_json(&plugin_config_json(&plugin.value)?, &env)
            .map_err(|e| anyhow!("{}: the filter refuses pluginConfig: {e}", plugin.name()))?;

        // Direction and attachment must fit the mode.
        let spec = plugin.value.get("spec").unwrap_or(&Value::Null);
        let modes: Vec<&str> = spec
            .get("match")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("mode").and_then(Value::as_str))
            .collect();
        match config {
            Config::Verify(_) => ensure!(
                modes == ["SERVER"] || (modes.is_empty() && spec.get("targetRefs").is_some()),
                "{}: verify belongs on inbound traffic (match SERVER) or on an ingress Gateway",
                plugin.name()
            ),
            Config::Sign(_) => ensure!(
                modes == ["CLIENT"] || (modes.is_empty() && spec.get("selector").is_some()),
                "{}: sign belongs on outbound traffic (match CLIENT) or on an egress gateway",
                plugin.name()
            ),
        }
        ensure!(
            spec.get("phase") == Some(&json!("AUTHN")),
            "{}: phase must be AUTHN",
            plugin.name()
        );
        ensure!(
            spec.get("failStrategy") == Some(&json!("FAIL_CLOSE")),
            "{}: failStrategy must be FAIL_CLOSE",
            plugin.name()
        );
        ensure!(
            spec.get("priority").is_some_and(Value::is_i64),
            "{}: priority must be set",
            plugin.name()
        );
    }
    Ok(())
}

/// Secrets only reach the VM through `vmConfig.env`: without them the configuration is refused,
/// and the placeholders in the shipped Secrets are refused too, so a forgotten replacement
/// fails closed.
#[test]
fn configs_need_their_secrets_and_placeholders_fail_closed() -> Result<()> {
    let docs = istio_docs()?;
    let placeholders: Vec<String> = docs
        .iter()
        .filter(|d| d.kind() == "Secret")
        .filter_map(|d| d.value.pointer("/stringData").and_then(Value::as_object))
        .flat_map(|data| data.values().filter_map(Value::as_str).map(str::to_owned))
        .collect();
    ensure!(
        !placeholders.is_empty(),
        "expected Secret manifests with stringData"
    );

    for plugin in wasm_plugins(&docs)? {
        let json = plugin_config_json(&plugin.value)?;
        ensure!(
            Config::from_json(&json, &|_| None).is_err(),
            "{}: accepted without any root secret",
            plugin.name()
        );
        for placeholder in &placeholders {
            ensure!(
                Config::from_json(&json, &|_| Some(placeholder.clone())).is_err(),
                "{}: accepted the placeholder secret {placeholder:?}",
                plugin.name()
            );
        }
    }
    Ok(())
}

/// Each name read with `valueFrom: HOST` is set in an istio-proxy container's environment from
/// a Secret key that a manifest under `istio/` creates.
#[test]
fn every_root_secret_reaches_the_proxy_environment() -> Result<()> {
    let docs = istio_docs()?;

    let secret_keys: BTreeSet<(String, String)> = docs
        .iter()
        .filter(|d| d.kind() == "Secret")
        .flat_map(|d| {
            let name = d
                .value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let keys = d
                .value
                .pointer("/stringData")
                .and_then(Value::as_object)
                .cloned();
            keys.unwrap_or_default()
                .into_iter()
                .map(move |(k, _)| (name.to_owned(), k))
        })
        .collect();

    // Deployment overlays: strategic merge patches in istio/patches/ and the `deployment`
    // entry of Gateway parametersRef ConfigMaps.
    let mut overlays: Vec<(String, Value)> = Vec::new();
    for doc in &docs {
        if doc.kind().is_empty() {
            overlays.push((doc.name(), doc.value.clone()));
        }
        if doc.kind() == "ConfigMap" {
            if let Some(text) = doc
                .value
                .pointer("/data/deployment")
                .and_then(Value::as_str)
            {
                overlays.push((doc.name(), serde_norway::from_str(text)?));
            }
        }
    }

    let mut delivered: BTreeSet<String> = BTreeSet::new();
    for (origin, overlay) in &overlays {
        let containers = overlay
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array);
        for container in containers.into_iter().flatten() {
            ensure!(
                container.get("name") == Some(&json!("istio-proxy")),
                "{origin}: overlays must target the istio-proxy container"
            );
            for env in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = env.get("name").and_then(Value::as_str).unwrap_or_default();
                let secret = env
                    .pointer("/valueFrom/secretKeyRef/name")
                    .and_then(Value::as_str);
                let key = env
                    .pointer("/valueFrom/secretKeyRef/key")
                    .and_then(Value::as_str);
                let (Some(secret), Some(key)) = (secret, key) else {
                    bail!("{origin}: env {name} must come from a secretKeyRef");
                };
                ensure!(
                    secret_keys.contains(&(secret.to_owned(), key.to_owned())),
                    "{origin}: env {name} reads Secret {secret} key {key}, which no manifest creates"
                );
                delivered.insert(name.to_owned());
            }
        }
    }

    for plugin in wasm_plugins(&docs)? {
        for name in host_env_names(&plugin.value) {
            ensure!(
                delivered.contains(&name),
                "{}: reads {name} from the proxy environment, but nothing puts it there",
                plugin.name()
            );
        }
    }
    Ok(())
}

#[test]
fn pinned_checksums_match_the_built_module() -> Result<()> {
    let root = root()?;
    let module_path = pin::module_path(&root);
    let pins = Pins::for_module(&pin::read_module(&module_path)?)?;
    let stale = |what: String| {
        anyhow!(
            "{what} does not match {} — run `{PIN_COMMAND}` (keyhop-oci pin) and commit the result",
            module_path.display()
        )
    };

    for plugin in wasm_plugins(&istio_docs()?)? {
        // The pins are image manifest digests, which is what Istio checks for oci:// only.
        let url = plugin
            .value
            .pointer("/spec/url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        ensure!(
            url.starts_with("oci://"),
            "{}: url must be an oci:// image",
            plugin.name()
        );

        let sha256 = plugin.value.pointer("/spec/sha256").and_then(Value::as_str);
        if sha256 != Some(pins.manifest.hex().as_str()) {
            return Err(stale(format!(
                "{}: spec.sha256 (image manifest digest)",
                plugin.name()
            )));
        }
        let annotation = plugin
            .value
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(MODULE_SHA256_ANNOTATION))
            .and_then(Value::as_str);
        if annotation != Some(pins.module.hex().as_str()) {
            return Err(stale(format!(
                "{}: {MODULE_SHA256_ANNOTATION}",
                plugin.name()
            )));
        }
    }

    let envoy = root.join(pin::ENVOY_REMOTE_CONFIG);
    let text =
        std::fs::read_to_string(&envoy).with_context(|| format!("reading {}", envoy.display()))?;
    if pin::pin_envoy_text(&text, &pins).1 != 0 {
        return Err(stale(format!(
            "{}: remote sha256",
            pin::ENVOY_REMOTE_CONFIG
        )));
    }
    Ok(())
}
