//! Properties (`proxy_get_property`): Envoy's attributes, by dotted path.
//!
//! A value comes from, in order: what the guest set on the stream (or on the
//! root context), the request's own properties, the host-wide properties,
//! and finally attributes derived from the request itself (`request.path`,
//! `request.method`, ...) and the plugin (`plugin_name`, ...). Values use
//! Envoy's encoding: strings as raw bytes, integers as 8-byte little endian.

use crate::state::VmState;

/// The guest's path (segments separated by NUL) as a dotted string.
pub(crate) fn dotted(path: &[u8]) -> String {
    path.split(|b| *b == 0)
        .filter(|segment| !segment.is_empty())
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn lookup(state: &VmState, path: &str) -> Option<Vec<u8>> {
    let stream = state.stream();
    if let Some(value) = stream.and_then(|s| s.properties.get(path)) {
        return Some(value.clone());
    }
    if let Some(value) = state.root_properties.get(path) {
        return Some(value.clone());
    }
    if let Some(value) = state.config.properties.get(path) {
        return Some(value.clone());
    }

    let config = &state.config;
    let derived = match path {
        "plugin_name" => config.plugin_name.as_bytes().to_vec(),
        "plugin_root_id" => config.root_id.as_bytes().to_vec(),
        "plugin_vm_id" => config.vm_id.as_bytes().to_vec(),
        _ => {
            let stream = stream?;
            let header = |name: &str| stream.request_header(name).map(<[u8]>::to_vec);
            let (url_path, query) = split_path(stream.request_header(":path").unwrap_or_default());
            match path {
                "request.path" => header(":path")?,
                "request.url_path" => url_path.to_vec(),
                "request.query" => query.to_vec(),
                "request.host" => header(":authority")?,
                "request.method" => header(":method")?,
                "request.scheme" => header(":scheme")?,
                "request.id" => header("x-request-id")?,
                "request.referer" => header("referer")?,
                "request.useragent" => header("user-agent")?,
                "request.time" => (stream.start_nanos as i64).to_le_bytes().to_vec(),
                "response.code" => {
                    let status = stream
                        .response_headers
                        .as_ref()?
                        .iter()
                        .find(|(k, _)| k.as_slice() == b":status")?;
                    let code: i64 = std::str::from_utf8(&status.1).ok()?.parse().ok()?;
                    code.to_le_bytes().to_vec()
                }
                _ => return None,
            }
        }
    };
    Some(derived)
}

fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().position(|b| *b == b'?') {
        Some(at) => {
            let (before, after) = path.split_at(at);
            (before, after.get(1..).unwrap_or_default())
        }
        None => (path, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_with_dots() {
        assert_eq!(dotted(b"request\0path"), "request.path");
        assert_eq!(dotted(b"plugin_name"), "plugin_name");
        assert_eq!(dotted(b"a\0b\0"), "a.b");
    }

    #[test]
    fn query_is_split_off() {
        assert_eq!(split_path(b"/a/b?x=1&y"), (&b"/a/b"[..], &b"x=1&y"[..]));
        assert_eq!(split_path(b"/a"), (&b"/a"[..], &b""[..]));
    }
}
