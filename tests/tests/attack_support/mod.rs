//! The red team's tools, shared by `attacks.rs`, `legitimate.rs`, `faults.rs` and
//! `differential.rs`:
//!
//! - [`mint`]: real credentials from the filter crate's own signer;
//! - [`catalogue`]: the attack classes, each a list of requests built from a fresh credential
//!   with one thing changed, and the refusal each must meet;
//! - [`outcome`]: what came back, how it is judged, and the per-class table;
//! - [`envoy_run`] and [`sim_run`]: firing the catalogue at a real Envoy and at the simulator.

#![allow(dead_code)]

pub mod catalogue;
pub mod envoy_run;
pub mod mint;
pub mod outcome;
pub mod relay;
pub mod sim_run;

use keyhop_e2e::envoy;

/// The demo's caller identities, audience and key (as in `envoy/partner-ingress.yaml`).
pub const PORTAL_WEB: &str = "spiffe://finsphere.example/ns/portal/sa/portal-web";
pub const REPORT_JOB: &str = "spiffe://finsphere.example/ns/batch/sa/report-job";
pub const AUDIENCE: &str = "spiffe://riskpartner.example/edge";
pub const KEY_ID: &str = "portal-2026";
pub const HOP_SECONDS: u64 = 5;

/// The plugin configuration (JSON) written in `envoy/partner-ingress.yaml`: the block under
/// `value: |`, up to `vm_config:`, dedented. The simulator and the rotation tests start from it
/// so that they test the verifier exactly as documented.
pub fn partner_plugin_json() -> String {
    let yaml = envoy::read_config("partner-ingress.yaml").expect("envoy/partner-ingress.yaml");
    let (_, after) = yaml.split_once("value: |\n").expect("a `value: |` block");
    let (block, _) = after
        .split_once("vm_config:")
        .expect("`vm_config:` after the block");
    let json: String = block.lines().map(str::trim).collect::<Vec<_>>().join("\n");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("the block is JSON");
    assert_eq!(parsed["mode"], "verify");
    json
}

/// Replaces the plugin configuration block of a rendered partner config with `json`,
/// indented as the block it replaces.
pub fn with_plugin_json(yaml: &str, json: &str) -> String {
    let (head, after) = yaml.split_once("value: |\n").expect("a `value: |` block");
    let (block, tail) = after
        .split_once("vm_config:")
        .expect("`vm_config:` after the block");
    let indent: String = block.chars().take_while(|c| *c == ' ').collect();
    let vm_indent = block.lines().last().unwrap_or_default();
    let body: Vec<String> = json.lines().map(|line| format!("{indent}{line}")).collect();
    format!(
        "{head}value: |\n{}\n{vm_indent}vm_config:{tail}",
        body.join("\n")
    )
}

/// Adds inline VM environment variables (Envoy `environment_variables.key_values`) next to
/// the `host_env_keys` of a rendered config: a second root secret for a rotation test.
pub fn with_inline_env(yaml: &str, vars: &[(&str, &str)]) -> String {
    let marker = "host_env_keys: [\"KEYHOP_PORTAL_SECRET\"]";
    let line = yaml
        .lines()
        .find(|l| l.contains(marker))
        .expect("host_env_keys in the config");
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    let pairs: Vec<String> = vars.iter().map(|(k, v)| format!("{k}: \"{v}\"")).collect();
    yaml.replace(
        marker,
        &format!("{marker}\n{indent}key_values: {{ {} }}", pairs.join(", ")),
    )
}

/// The partner's documented plugin configuration with a second key, as during a rotation:
/// `next_key_id` under the root secret in the VM variable `next_secret_env`.
pub fn rotation_plugin_json(next_key_id: &str, next_secret_env: &str) -> String {
    let mut config: serde_json::Value = serde_json::from_str(&partner_plugin_json()).expect("JSON");
    let keys = config["keys"].as_array_mut().expect("keys");
    let mut next = keys[0].clone();
    next["id"] = next_key_id.into();
    next["secret_env"] = next_secret_env.into();
    keys.push(next);
    serde_json::to_string_pretty(&config).expect("JSON")
}
