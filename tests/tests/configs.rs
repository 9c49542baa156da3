//! The files in `envoy/` are ready to run: Envoy validates each of them, and a broken plugin
//! configuration keeps Envoy from starting instead of letting traffic through unverified.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use keyhop_e2e::envoy::{self, Envoy, EnvoySpec};
use keyhop_e2e::topology::{documented, free_port, generate_secret, new_run_dir, SECRET_ENV};

fn envoy_configs() -> Vec<PathBuf> {
    let dir = envoy::repo_root().join("envoy");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("envoy/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_config_in_envoy_dir_passes_envoy_validate() {
    envoy::check_prerequisites().expect("prerequisites");
    let files = envoy_configs();
    assert!(files.len() >= 2, "{files:?}");

    // The files name the module relative to the repository root; validate them as they are
    // when the module is there, else point them at $KEYHOP_WASM.
    let as_is = envoy::wasm_module() == envoy::repo_root().join(envoy::DOCUMENTED_WASM_PATH);
    let run_dir = new_run_dir("validate").expect("run dir");

    for file in files {
        let config = if as_is {
            file.clone()
        } else {
            let text = fs::read_to_string(&file).expect("config").replace(
                envoy::DOCUMENTED_WASM_PATH,
                &envoy::wasm_module().display().to_string(),
            );
            let copy = run_dir.join(file.file_name().expect("file name"));
            fs::write(&copy, text).expect("write copy");
            copy
        };

        let output = Command::new(envoy::envoy_binary())
            .args(["--mode", "validate", "--disable-hot-restart", "-c"])
            .arg(&config)
            .current_dir(envoy::repo_root())
            .env(SECRET_ENV, generate_secret().unwrap())
            .output()
            .expect("run envoy");

        assert!(
            output.status.success(),
            "{} does not validate:\n{}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Starts the partner's Envoy with `edit` applied to its rendered config; returns the process
/// (which must have exited) and its log.
fn start_partner_with(label: &str, edit: impl Fn(String) -> String) -> (Envoy, Result<(), String>) {
    envoy::check_prerequisites().expect("prerequisites");
    let run_dir = new_run_dir(label).expect("run dir");
    let admin = free_port().unwrap();
    let config = envoy::render_config(
        &envoy::read_config("partner-ingress.yaml").unwrap(),
        &[
            (documented::PARTNER, free_port().unwrap()),
            (documented::PARTNER_ADMIN, admin),
            (documented::RISK_API, free_port().unwrap()),
        ],
        &envoy::wasm_module(),
    )
    .unwrap();
    let spec = EnvoySpec {
        name: "partner-ingress".into(),
        config: edit(config),
        admin: ([127, 0, 0, 1], admin).into(),
        env: vec![(SECRET_ENV.into(), generate_secret().unwrap())],
    };
    let mut partner = Envoy::spawn(spec, &run_dir).expect("spawn");
    let ready = partner.wait_ready().map_err(|e| e.to_string());
    (partner, ready)
}

#[test]
fn unmodified_partner_config_starts() {
    let (_partner, ready) = start_partner_with("config-ok", |config| config);
    ready.expect("the documented config starts");
}

#[test]
fn unknown_plugin_config_field_keeps_envoy_from_starting() {
    let (mut partner, ready) = start_partner_with("config-unknown-field", |config| {
        config.replacen(
            r#""mode": "verify","#,
            r#""mode": "verify", "max_age_secondz": 15,"#,
            1,
        )
    });

    assert!(
        ready.is_err(),
        "Envoy became ready with a bad plugin config"
    );
    let exited = partner.wait_exit(Duration::from_secs(10)).expect("wait");
    assert!(
        exited.is_some_and(|s| !s.success()),
        "Envoy still running: {exited:?}"
    );
    assert!(
        partner.log().contains("max_age_secondz"),
        "the log should name the field: {}",
        partner.log_path().display()
    );
}
