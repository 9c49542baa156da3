//! Validating a custom resource against its CustomResourceDefinition the way the Kubernetes
//! API server would, as far as a test can without one.
//!
//! The CRD's `openAPIV3Schema` is turned into a JSON Schema for the `jsonschema` crate:
//!
//! - `nullable: true` adds `null` to the allowed types;
//! - `format: int32` / `int64` become numeric bounds (the API server enforces them);
//! - objects with `properties` and no `x-kubernetes-preserve-unknown-fields` refuse other
//!   fields (`kubectl apply` validates strictly by default and refuses unknown fields);
//! - the root gets `apiVersion`, `kind` and `metadata`, which the API server adds itself;
//! - `x-kubernetes-list-type: set` becomes `uniqueItems`; `map` lists are checked here
//!   (their `x-kubernetes-list-map-keys` must be unique);
//! - `x-kubernetes-validations` rules are CEL, evaluated with the `cel` crate and `self` bound
//!   to the value at the rule's place. Kubernetes' URL library (`isURL`, `url`, `getScheme`)
//!   is not part of CEL's standard library; [`add_kubernetes_url_functions`] provides the
//!   subset the WasmPlugin rules use, following Go's `url.ParseRequestURI`.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _, Result};
use cel::extractors::This;
use cel::objects::Value as CelValue;
use cel::{Context as CelContext, ExecutionError, Program};
use serde_json::{json, Map, Value};

/// One CRD version's schema, ready to validate resources.
pub struct CrdSchema {
    validator: jsonschema::Validator,
    /// The converted schema, kept to walk beside instances for list maps and CEL rules.
    original: Value,
}

impl CrdSchema {
    /// Loads `version` of the CRD in `crd_yaml`.
    pub fn load(crd_yaml: &str, version: &str) -> Result<Self> {
        let crd: Value = serde_norway::from_str(crd_yaml).context("parsing the CRD")?;
        let versions = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("the CRD has no spec.versions"))?;
        let original = versions
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
            .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
            .ok_or_else(|| anyhow!("the CRD has no openAPIV3Schema for version {version}"))?
            .clone();

        let mut schema = to_json_schema(&original);
        add_root_fields(&mut schema);
        let validator = jsonschema::draft4::new(&schema)
            .map_err(|e| anyhow!("the converted schema does not compile: {e}"))?;
        Ok(Self {
            validator,
            original,
        })
    }

    /// Every way `resource` breaks the schema, list-map keys or CEL rules, as readable lines.
    pub fn violations(&self, resource: &Value) -> Vec<String> {
        let mut found: Vec<String> = self
            .validator
            .iter_errors(resource)
            .map(|e| format!("{}: {e}", path_or_root(&e.instance_path().to_string())))
            .collect();
        walk(&self.original, resource, "", &mut found);
        found
    }
}

fn path_or_root(path: &str) -> &str {
    if path.is_empty() {
        "(root)"
    } else {
        path
    }
}

/// Converts one OpenAPI v3 (structural) schema node and its children.
fn to_json_schema(node: &Value) -> Value {
    let Some(object) = node.as_object() else {
        return node.clone();
    };
    let mut out = Map::new();

    for (key, value) in object {
        match key.as_str() {
            "properties" => {
                let converted = value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), to_json_schema(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(key.clone(), Value::Object(converted));
            }
            "items" | "additionalProperties" if value.is_object() => {
                out.insert(key.clone(), to_json_schema(value));
            }
            "anyOf" | "allOf" | "oneOf" => {
                let converted = value
                    .as_array()
                    .map(|list| list.iter().map(to_json_schema).collect());
                out.insert(key.clone(), Value::Array(converted.unwrap_or_default()));
            }
            "format" => match value.as_str() {
                Some("int32") => {
                    out.insert("minimum".into(), json!(i32::MIN));
                    out.insert("maximum".into(), json!(i32::MAX));
                }
                Some("int64") => {
                    out.insert("minimum".into(), json!(i64::MIN));
                    out.insert("maximum".into(), json!(i64::MAX));
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            },
            "x-kubernetes-list-type" if value.as_str() == Some("set") => {
                out.insert("uniqueItems".into(), Value::Bool(true));
            }
            "description" | "nullable" => {}
            other if other.starts_with("x-kubernetes-") => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }

    if object.get("nullable").and_then(Value::as_bool) == Some(true) {
        if let Some(kind) = out.get("type").cloned() {
            out.insert("type".into(), json!([kind, "null"]));
        }
    }

    let preserves_unknown = object
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if object.contains_key("properties")
        && !object.contains_key("additionalProperties")
        && !preserves_unknown
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }

    Value::Object(out)
}

/// The API server accepts these on every resource without the CRD declaring them.
fn add_root_fields(schema: &mut Value) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert("apiVersion".into(), json!({ "type": "string" }));
        properties.insert("kind".into(), json!({ "type": "string" }));
        properties.insert("metadata".into(), json!({ "type": "object" }));
    }
}

/// Walks the original schema beside the instance, checking list-map keys and CEL rules.
fn walk(schema: &Value, instance: &Value, path: &str, found: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };

    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            if let Err(message) = check_rule(rule, instance) {
                found.push(format!("{}: {message}", path_or_root(path)));
            }
        }
    }

    if let (Some(keys), Some(items)) = (
        schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array),
        instance.as_array(),
    ) {
        let mut seen: Vec<Vec<&Value>> = Vec::new();
        for item in items {
            let key: Vec<&Value> = keys
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|k| item.get(k))
                .collect();
            if seen.contains(&key) {
                found.push(format!(
                    "{}: duplicate list-map key {key:?}",
                    path_or_root(path)
                ));
            }
            seen.push(key);
        }
    }

    match instance {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (name, value) in fields {
                let child = properties.and_then(|p| p.get(name)).or(additional);
                if let Some(child) = child {
                    walk(child, value, &format!("{path}/{name}"), found);
                }
            }
        }
        Value::Array(items) => {
            if let Some(child) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    walk(child, item, &format!("{path}/{index}"), found);
                }
            }
        }
        _ => {}
    }
}

/// Evaluates one `x-kubernetes-validations` entry with `self` bound to `value`.
fn check_rule(rule: &Value, value: &Value) -> std::result::Result<(), String> {
    let source = rule
        .get("rule")
        .and_then(Value::as_str)
        .ok_or("a validation without a rule")?;
    let message = rule
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or(source);

    let program =
        Program::compile(source).map_err(|e| format!("rule {source:?} does not parse: {e}"))?;
    let mut context = CelContext::default();
    add_kubernetes_url_functions(&mut context).map_err(|e| format!("{e}"))?;
    let bound = cel::to_value(value).map_err(|e| format!("cannot bind self: {e}"))?;
    context.add_variable_from_value("self", bound);

    match program.execute(&context) {
        Ok(CelValue::Bool(true)) => Ok(()),
        Ok(CelValue::Bool(false)) => Err(message.to_owned()),
        Ok(other) => Err(format!("rule {source:?} gave {other:?}, not a bool")),
        Err(error) => Err(format!("rule {source:?} failed: {error}")),
    }
}

/// `isURL(string)`, `url(string)` and `<url>.getScheme()` of the Kubernetes CEL URL library.
/// A URL is carried as its string; `url()` refuses what `isURL` refuses.
pub fn add_kubernetes_url_functions(context: &mut CelContext) -> Result<()> {
    context
        .add_function("isURL", |text: Arc<String>| {
            request_uri_scheme(&text).is_some()
        })
        .map_err(|e| anyhow!("isURL: {e:?}"))?;
    context
        .add_function(
            "url",
            |text: Arc<String>| -> std::result::Result<Arc<String>, ExecutionError> {
                match request_uri_scheme(&text) {
                    Some(_) => Ok(text),
                    None => Err(ExecutionError::function_error(
                        "url",
                        format!("not a URL: {text}"),
                    )),
                }
            },
        )
        .map_err(|e| anyhow!("url: {e:?}"))?;
    context
        .add_function("getScheme", |This(text): This<Arc<String>>| {
            request_uri_scheme(&text).unwrap_or_default()
        })
        .map_err(|e| anyhow!("getScheme: {e:?}"))?;
    Ok(())
}

/// The scheme of `text` if Go's `url.ParseRequestURI` accepts it (`""` for an absolute path),
/// `None` if it refuses it. Covers what the rules need: scheme syntax, absolute paths, and a
/// numeric port in the authority.
fn request_uri_scheme(text: &str) -> Option<String> {
    if text.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    if text.starts_with('/') {
        return Some(String::new());
    }

    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !first_is_letter || !rest_ok {
        return None;
    }

    if let Some(after) = rest.strip_prefix("//") {
        let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        if let Some((_, port)) = host_port.rsplit_once(':') {
            if !host_port.ends_with(']') && !port.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
        }
    }
    Some(scheme.to_ascii_lowercase())
}

/// Splits a multi-document YAML text into JSON values, skipping empty documents.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>> {
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uri_follows_go() -> Result<()> {
        let cases = [
            ("oci://registry.example/keyhop:0.1.0", Some("oci")),
            ("https://registry.example:5000/k", Some("https")),
            ("/var/lib/keyhop.wasm", Some("")),
            ("registry.example/keyhop:0.1.0", None),
            ("https://registry.example:port/k", None),
            ("1oci://x", None),
        ];
        for (text, scheme) in cases {
            if request_uri_scheme(text).as_deref() != scheme {
                bail!("{text:?}: expected {scheme:?}");
            }
        }
        Ok(())
    }
}
