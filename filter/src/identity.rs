//! SPIFFE IDs: the workload identities keyhop vouches for.
//!
//! Only the syntax of the SPIFFE ID standard is checked here (scheme, trust domain, path
//! segments); whether a key may vouch for the trust domain is the verifier's business.

use crate::reason::Reason;

/// The longest SPIFFE ID accepted, in bytes (the standard's URI limit).
pub const MAX_LEN: usize = 2048;

/// A parsed SPIFFE ID, borrowed from the string it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiffeId<'a> {
    /// The whole ID, `spiffe://trust-domain/path`.
    pub id: &'a str,
    /// The trust domain, lowercase.
    pub trust_domain: &'a str,
}

/// Parses a workload SPIFFE ID: `spiffe://` + trust domain + a non-empty path.
pub fn parse(id: &str) -> Result<SpiffeId<'_>, Reason> {
    if id.len() > MAX_LEN {
        return Err(Reason::InvalidIdentity);
    }
    let rest = id
        .strip_prefix("spiffe://")
        .ok_or(Reason::InvalidIdentity)?;
    let (trust_domain, path) = rest.split_once('/').ok_or(Reason::InvalidIdentity)?;

    if !is_trust_domain(trust_domain) {
        return Err(Reason::InvalidIdentity);
    }
    for segment in path.split('/') {
        let valid = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid {
            return Err(Reason::InvalidIdentity);
        }
    }
    Ok(SpiffeId { id, trust_domain })
}

/// A trust domain name: lowercase letters, digits, dots, dashes and underscores.
pub fn is_trust_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_workload_id() {
        let id = parse("spiffe://finsphere.example/ns/portal/sa/portal-web").expect("valid");
        assert_eq!(id.trust_domain, "finsphere.example");
    }

    #[test]
    fn refuses_what_the_spiffe_standard_refuses() {
        for bad in [
            "",
            "spiffe://",
            "spiffe://finsphere.example",
            "spiffe://finsphere.example/",
            "spiffe://Finsphere.example/a",
            "spiffe://finsphere.example:443/a",
            "spiffe://user@finsphere.example/a",
            "spiffe://finsphere.example/a//b",
            "spiffe://finsphere.example/a/../b",
            "spiffe://finsphere.example/a?b",
            "spiffe://finsphere.example/a#b",
            "spiffe://finsphere.example/a%20b",
            "SPIFFE://finsphere.example/a",
            "https://finsphere.example/a",
        ] {
            assert_eq!(parse(bad), Err(Reason::InvalidIdentity), "{bad}");
        }
        let long = format!("spiffe://a/{}", "b".repeat(MAX_LEN));
        assert_eq!(parse(&long), Err(Reason::InvalidIdentity));
    }
}
