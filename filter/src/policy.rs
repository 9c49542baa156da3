//! Route policy: which verified identities may call which method and path.
//!
//! With no routes configured every verified caller passes. Once any route exists the policy
//! is default deny: the first route matching the method and path decides, and a request no
//! route matches is refused.

use crate::identity::SpiffeId;
use crate::reason::Reason;

/// How a route matches the request path (the path without its query, never decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The path equals this string.
    Exact(String),
    /// The path starts with this string.
    Prefix(String),
}

/// Who a route lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// One SPIFFE ID.
    Id(String),
    /// Every workload of a trust domain (`spiffe://domain/*` in the configuration).
    TrustDomain(String),
}

/// One route rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Upper-case methods; `None` matches any.
    pub methods: Option<Vec<String>>,
    /// The path matcher.
    pub path: PathMatch,
    /// The identities allowed.
    pub allow: Vec<Principal>,
}

impl Route {
    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = match &self.methods {
            Some(methods) => methods.iter().any(|m| m == method),
            None => true,
        };
        let path_ok = match &self.path {
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
        };
        method_ok && path_ok
    }

    fn allows(&self, identity: &SpiffeId<'_>) -> bool {
        self.allow.iter().any(|principal| match principal {
            Principal::Id(id) => id == identity.id,
            Principal::TrustDomain(domain) => domain == identity.trust_domain,
        })
    }
}

/// Whether a path could mean something else once a server normalises it: empty, `.` or `..`
/// segments, or encoded dots, slashes and backslashes. Route prefixes are compared with the
/// raw path, so such a path could satisfy `/v1/risk/` and land elsewhere.
fn is_ambiguous(path: &str) -> bool {
    // One pass over the bytes: this runs on every request.
    let bytes = path.as_bytes();
    let encoded = |at: usize| {
        let code = (
            bytes.get(at + 1).copied(),
            bytes.get(at + 2).map(u8::to_ascii_lowercase),
        );
        matches!(
            code,
            (Some(b'2'), Some(b'e' | b'f')) | (Some(b'5'), Some(b'c'))
        )
    };
    let dots = |from: usize, to: usize| matches!(bytes.get(from..to), Some(b"." | b".."));
    let mut segment = 0;
    for (at, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' => return true,
            b'%' if encoded(at) => return true,
            b'/' => {
                if dots(segment, at) || (at > 0 && bytes.get(at - 1) == Some(&b'/')) {
                    return true;
                }
                segment = at + 1;
            }
            _ => {}
        }
    }
    dots(segment, bytes.len())
}

/// Decides whether `identity` may call `method` on `path`.
pub fn decide(
    routes: &[Route],
    method: &str,
    path: &str,
    identity: &SpiffeId<'_>,
) -> Result<(), Reason> {
    if routes.is_empty() {
        return Ok(());
    }
    // Defence in depth: Envoy's normalize_path should have resolved these already.
    if is_ambiguous(path) {
        return Err(Reason::NoMatchingPolicy);
    }
    let route = routes
        .iter()
        .find(|r| r.matches(method, path))
        .ok_or(Reason::NoMatchingPolicy)?;
    if route.allows(identity) {
        Ok(())
    } else {
        Err(Reason::PolicyDenied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity;

    fn routes() -> Vec<Route> {
        vec![
            Route {
                methods: Some(vec!["POST".into()]),
                path: PathMatch::Prefix("/v1/risk/".into()),
                allow: vec![Principal::Id(
                    "spiffe://fin.example/ns/portal/sa/web".into(),
                )],
            },
            Route {
                methods: None,
                path: PathMatch::Exact("/v1/health".into()),
                allow: vec![Principal::TrustDomain("fin.example".into())],
            },
        ]
    }

    /// The reading the one-pass check must agree with.
    fn ambiguous_plainly(path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        path.contains("//")
            || path.contains('\\')
            || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e))
            || path
                .split('/')
                .any(|segment| segment == "." || segment == "..")
    }

    #[test]
    fn the_one_pass_ambiguity_check_agrees_with_the_plain_reading() {
        let alphabet = ['/', '.', '%', '2', '5', 'e', 'E', 'f', 'c', 'C', '\\', 'a'];
        let mut paths = vec![String::new()];
        let mut checked = 0;
        for _ in 0..5 {
            let mut longer = Vec::new();
            for path in &paths {
                for c in alphabet {
                    let mut next = path.clone();
                    next.push(c);
                    assert_eq!(is_ambiguous(&next), ambiguous_plainly(&next), "{next:?}");
                    checked += 1;
                    longer.push(next);
                }
            }
            paths = longer;
        }
        assert!(checked > 250_000);
    }

    #[test]
    fn first_matching_route_decides_and_default_is_deny() {
        let web = identity::parse("spiffe://fin.example/ns/portal/sa/web").expect("id");
        let batch = identity::parse("spiffe://fin.example/ns/batch/sa/job").expect("id");
        let stranger = identity::parse("spiffe://other.example/ns/x/sa/y").expect("id");
        let r = routes();
        assert_eq!(decide(&r, "POST", "/v1/risk/assess", &web), Ok(()));
        assert_eq!(
            decide(&r, "POST", "/v1/risk/assess", &batch),
            Err(Reason::PolicyDenied)
        );
        assert_eq!(
            decide(&r, "GET", "/v1/risk/assess", &web),
            Err(Reason::NoMatchingPolicy)
        );
        assert_eq!(decide(&r, "GET", "/v1/health", &batch), Ok(()));
        assert_eq!(
            decide(&r, "GET", "/v1/health", &stranger),
            Err(Reason::PolicyDenied)
        );
        assert_eq!(
            decide(&r, "GET", "/v1/healthz", &web),
            Err(Reason::NoMatchingPolicy)
        );
        assert_eq!(decide(&[], "DELETE", "/anything", &stranger), Ok(()));
        for sneaky in [
            "/v1/risk/../admin",
            "/v1/risk/%2e%2e/admin",
            "/v1/risk//x",
            "/v1/risk/%2Fadmin",
            "/v1/risk/.\\x",
            "/v1/risk/./x",
            "/v1/risk/%2E%2E/admin",
            "/v1/risk/%5Cadmin",
            "/v1/risk/%5cadmin",
            "/v1/risk/%2fadmin",
        ] {
            assert_eq!(
                decide(&r, "POST", sneaky, &web),
                Err(Reason::NoMatchingPolicy),
                "{sneaky}"
            );
        }
        for plain in [
            "/v1/risk/%20x",
            "/v1/risk/%25",
            "/v1/risk/%2",
            "/v1/risk/%",
            "/v1/risk/a.b/..c/",
        ] {
            assert_eq!(decide(&r, "POST", plain, &web), Ok(()), "{plain}");
        }
    }
}
