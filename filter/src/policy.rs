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
    let lower = path.to_ascii_lowercase();
    path.contains("//")
        || path.contains('\\')
        || ["%2e", "%2f", "%5c"]
            .iter()
            .any(|encoded| lower.contains(encoded))
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
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
        ] {
            assert_eq!(
                decide(&r, "POST", sneaky, &web),
                Err(Reason::NoMatchingPolicy),
                "{sneaky}"
            );
        }
    }
}
