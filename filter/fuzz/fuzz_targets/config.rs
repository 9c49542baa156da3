//! Plugin configuration parsing: never panics, whatever the JSON; a refusal names a field.

#![no_main]

use keyhop_filter::config::Config;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "a2V5aG9wLWZ1enotcm9vdC1zZWNyZXQtb2YtMzItYnl0ZXM=";

fuzz_target!(|data: &[u8]| {
    let env = |name: &str| match name {
        "KEYHOP_PORTAL_SECRET" | "S" => Some(SECRET.to_string()),
        "SHORT" => Some("c2hvcnQ=".to_string()),
        "GARBAGE" => Some("not base64!".to_string()),
        _ => None,
    };
    if let Err(error) = Config::from_json(data, &env) {
        // A JSON key that is itself empty is the one case where the field's name is "".
        let empty_key = error.message.contains("field ``");
        assert!(
            !error.field.is_empty() || empty_key,
            "a refusal without a field: {error:?}"
        );
        assert!(
            !error.message.contains(SECRET),
            "a refusal quotes the secret"
        );
    }
});
