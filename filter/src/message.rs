//! The parts of an HTTP request that a signature can cover, and the RFC 9421 signature base.
//!
//! Values are taken as the host hands them over: the path and query are never decoded, and
//! only `@authority` is normalised (lowercase, default port dropped), as RFC 9421 §2.2.3 says.

use std::borrow::Cow;
use std::ops::Range;

use crate::reason::Reason;

/// The header field lines of a message, in one buffer: the names and values are read where
/// the host wrote them (the proxy-wasm serialisation), not copied out line by line.
#[derive(Debug, Clone, Default)]
pub struct HeaderMap {
    bytes: Vec<u8>,
    /// Where each line's name and value sit in `bytes`, in the host's order.
    lines: Vec<(Range<usize>, Range<usize>)>,
    /// Where the lines of the [`NOTED`] fields are, kept as lines come and go.
    noted: [Noted; NOTED.len()],
}

/// The fields keyhop reads on every request, several times each (the pseudo-headers of the
/// request's view, the header checks, the digest, the signature base): the map notes their
/// lines as it is built, so looking one up does not scan every line again.
pub const NOTED: [&str; 8] = [
    ":method",
    ":scheme",
    ":authority",
    ":path",
    "signature-input",
    "signature",
    "content-digest",
    "keyhop-identity",
];

/// Where a noted field's lines are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Noted {
    #[default]
    Absent,
    /// One line, this one.
    One(usize),
    /// Several lines, the first of them this one.
    Several(usize),
}

/// Which of the [`NOTED`] fields `name` is (any case).
fn noted_slot(name: &[u8]) -> Option<usize> {
    // By length first: most names have a length no noted field has.
    let candidates: &[usize] = match name.len() {
        5 => &[3],
        7 => &[0, 1],
        9 => &[5],
        10 => &[2],
        14 => &[6],
        15 => &[4, 7],
        _ => return None,
    };
    // Envoy hands names over in lowercase, so the exact comparison nearly always settles it.
    candidates.iter().copied().find(|&slot| {
        NOTED.get(slot).is_some_and(|noted| {
            noted.as_bytes() == name || noted.as_bytes().eq_ignore_ascii_case(name)
        })
    })
}

/// The bytes of one name or value of a map, by where it sits.
fn part<'b>(bytes: &'b [u8], at: &Range<usize>) -> &'b [u8] {
    bytes.get(at.clone()).unwrap_or_default()
}

/// No header fields at all.
static NO_HEADERS: HeaderMap = HeaderMap::new();

impl HeaderMap {
    /// An empty map.
    pub const fn new() -> HeaderMap {
        HeaderMap {
            bytes: Vec::new(),
            lines: Vec::new(),
            noted: [Noted::Absent; NOTED.len()],
        }
    }

    /// An empty map that lives forever, for requests with no fields.
    pub fn empty() -> &'static HeaderMap {
        &NO_HEADERS
    }

    /// Reads a map as the proxy-wasm ABI serialises it: the number of lines (u32, little
    /// endian), the length of each name and value (u32 pairs), then each name and each value
    /// followed by a NUL. `None` when the lengths do not fit the bytes or a NUL is missing.
    pub fn from_host(bytes: Vec<u8>) -> Option<HeaderMap> {
        if bytes.is_empty() {
            return Some(HeaderMap::new());
        }
        let word = |at: usize| -> Option<usize> {
            let raw = bytes.get(at..at.checked_add(4)?)?;
            let raw: [u8; 4] = raw.try_into().ok()?;
            usize::try_from(u32::from_le_bytes(raw)).ok()
        };
        let count = word(0)?;
        let mut at = count.checked_mul(8)?.checked_add(4)?;
        if at > bytes.len() {
            return None;
        }
        let mut lines = Vec::with_capacity(count);
        for line in 0..count {
            let sizes = 4 + line * 8;
            let mut take = |len: usize| -> Option<Range<usize>> {
                let end = at.checked_add(len)?;
                (bytes.get(end) == Some(&0)).then_some(())?;
                let range = at..end;
                at = end + 1;
                Some(range)
            };
            let name = take(word(sizes)?)?;
            let value = take(word(sizes + 4)?)?;
            lines.push((name, value));
        }
        let mut map = HeaderMap {
            bytes,
            lines,
            noted: [Noted::Absent; NOTED.len()],
        };
        map.note_all();
        Some(map)
    }

    /// Adds a field line at the end.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let name_at = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let value_at = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.lines
            .push((name_at..value_at, value_at..self.bytes.len()));
        self.note(self.lines.len() - 1);
    }

    /// Notes line `line` if it is one of the [`NOTED`] fields.
    fn note(&mut self, line: usize) {
        let Some((name, _)) = self.lines.get(line) else {
            return;
        };
        let slot = noted_slot(part(&self.bytes, name));
        if let Some(noted) = slot.and_then(|slot| self.noted.get_mut(slot)) {
            *noted = match *noted {
                Noted::Absent => Noted::One(line),
                Noted::One(first) | Noted::Several(first) => Noted::Several(first),
            };
        }
    }

    /// Notes every line afresh.
    fn note_all(&mut self) {
        self.noted = [Noted::Absent; NOTED.len()];
        for line in 0..self.lines.len() {
            self.note(line);
        }
    }

    /// The value of line `line`.
    fn value(&self, line: usize) -> &[u8] {
        self.lines
            .get(line)
            .map_or(&[][..], |(_, value)| part(&self.bytes, value))
    }

    /// What the map noted of `name`, if it is one of the [`NOTED`] fields.
    fn noted(&self, name: &str) -> Option<Noted> {
        noted_slot(name.as_bytes()).and_then(|slot| self.noted.get(slot).copied())
    }

    /// The field lines in order: name and value bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.lines
            .iter()
            .map(|(name, value)| (part(&self.bytes, name), part(&self.bytes, value)))
    }

    /// How many field lines there are.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The value of the first line named `name` (any case).
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        match self.noted(name) {
            Some(Noted::Absent) => None,
            Some(Noted::One(line) | Noted::Several(line)) => Some(self.value(line)),
            None => self.named(name).next(),
        }
    }

    /// The values of the lines named `name` (any case), in order. A line whose name has
    /// another length is passed over without reading its bytes: nearly every line, on every
    /// lookup.
    fn named<'m, 'n>(&'m self, name: &'n str) -> impl Iterator<Item = &'m [u8]> + use<'m, 'n> {
        self.lines.iter().filter_map(move |(n, v)| {
            let named =
                n.len() == name.len() && part(&self.bytes, n).eq_ignore_ascii_case(name.as_bytes());
            named.then(|| part(&self.bytes, v))
        })
    }

    /// Whether a line named `name` is there.
    pub fn contains(&self, name: &str) -> bool {
        self.first(name).is_some()
    }

    /// The single value of a field, `None` when absent; several field lines are refused as
    /// [`Reason::DuplicateHeader`].
    pub fn single(&self, name: &str) -> Result<Option<&[u8]>, Reason> {
        match self.noted(name) {
            Some(Noted::Absent) => return Ok(None),
            Some(Noted::One(line)) => return Ok(Some(self.value(line))),
            Some(Noted::Several(_)) => return Err(Reason::DuplicateHeader),
            None => {}
        }
        let mut values = self.named(name);
        let found = values.next();
        if values.next().is_some() {
            return Err(Reason::DuplicateHeader);
        }
        Ok(found)
    }

    /// Drops every line named `name` (any case); the bytes stay where they are.
    pub fn remove(&mut self, name: &str) {
        let bytes = &self.bytes;
        self.lines
            .retain(|(n, _)| !part(bytes, n).eq_ignore_ascii_case(name.as_bytes()));
        self.note_all();
    }
}

/// Two maps are equal when they hold the same field lines in the same order, wherever their
/// bytes sit.
impl PartialEq for HeaderMap {
    fn eq(&self, other: &HeaderMap) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for HeaderMap {}

impl<N: AsRef<str>, V: AsRef<[u8]>> FromIterator<(N, V)> for HeaderMap {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(lines: I) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.push(name.as_ref(), value.as_ref());
        }
        map
    }
}

/// A request as the filter sees it, borrowed from the host's header map.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:scheme` (`http` or `https`).
    pub scheme: &'a str,
    /// `:authority` as received.
    pub authority: &'a str,
    /// `:path`, including the query string, as received.
    pub path_and_query: &'a str,
    /// Every header field line, pseudo-headers included or not.
    pub headers: &'a HeaderMap,
}

impl<'a> Request<'a> {
    /// The path without the query; `/` when empty.
    pub fn path(&self) -> &'a str {
        let path = match self.query_at() {
            Some(at) => self.path_and_query.get(..at).unwrap_or_default(),
            None => self.path_and_query,
        };
        if path.is_empty() {
            "/"
        } else {
            path
        }
    }

    /// The query with its leading `?`, or `?` alone when there is none (RFC 9421 §2.2.7).
    pub fn query(&self) -> &'a str {
        match self.query_at() {
            Some(at) => self.path_and_query.get(at..).unwrap_or("?"),
            None => "?",
        }
    }

    /// Where the query starts (its `?`). A plain byte loop: targets are short, and this is
    /// cheaper inside a Wasm VM than the general string search.
    fn query_at(&self) -> Option<usize> {
        self.path_and_query.bytes().position(|b| b == b'?')
    }

    /// The single value of a field, `None` when absent; several field lines are refused.
    pub fn single_header(&self, name: &str) -> Result<Option<&'a [u8]>, Reason> {
        self.headers.single(name)
    }
}

/// `@authority`: lowercase, and without the scheme's default port. Borrowed when the
/// authority is already in that form, as it nearly always is.
pub fn normalize_authority<'a>(scheme: &str, authority: &'a str) -> Cow<'a, str> {
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        Some(":443")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some(":80")
    } else {
        None
    };
    let host = match default_port.and_then(|port| strip_suffix_ignore_case(authority, port)) {
        Some(host) if !host.is_empty() => host,
        _ => authority,
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// `value` less `suffix` (ASCII, any case), if it ends with it.
fn strip_suffix_ignore_case<'a>(value: &'a str, suffix: &str) -> Option<&'a str> {
    let at = value.len().checked_sub(suffix.len())?;
    let (head, tail) = (value.get(..at)?, value.get(at..)?);
    tail.eq_ignore_ascii_case(suffix).then_some(head)
}

/// A covered component that keyhop knows how to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// `@method`.
    Method,
    /// `@authority`, normalised.
    Authority,
    /// `@scheme`.
    Scheme,
    /// `@path`.
    Path,
    /// `@query`.
    Query,
    /// `@target-uri`.
    TargetUri,
    /// `@request-target`.
    RequestTarget,
    /// An HTTP field, by its lowercase name.
    Field(Cow<'static, str>),
}

impl Component {
    /// Reads a component identifier (`"@path"`, `"content-digest"`); anything keyhop does not
    /// compute is refused rather than guessed at.
    pub fn from_name(name: &str) -> Result<Component, Reason> {
        let component = match name {
            "@method" => Component::Method,
            "@authority" => Component::Authority,
            "@scheme" => Component::Scheme,
            "@path" => Component::Path,
            "@query" => Component::Query,
            "@target-uri" => Component::TargetUri,
            "@request-target" => Component::RequestTarget,
            field if is_field_name(field) => Component::Field(Cow::Owned(field.to_string())),
            _ => return Err(Reason::UnsupportedComponent),
        };
        Ok(component)
    }

    /// The identifier as it appears in `Signature-Input` and in the signature base.
    pub fn name(&self) -> &str {
        match self {
            Component::Method => "@method",
            Component::Authority => "@authority",
            Component::Scheme => "@scheme",
            Component::Path => "@path",
            Component::Query => "@query",
            Component::TargetUri => "@target-uri",
            Component::RequestTarget => "@request-target",
            Component::Field(name) => name,
        }
    }

    /// The component value alone, for the tests; the signature base writes values in place.
    #[cfg(test)]
    fn value(&self, request: &Request<'_>) -> Result<Vec<u8>, Reason> {
        let mut value = Vec::new();
        self.write_value(request, &mut value)?;
        Ok(value)
    }

    /// Appends the component value for this request (RFC 9421 §2.1 and §2.2) to `out`; on
    /// error `out` may hold part of it.
    pub fn write_value(&self, request: &Request<'_>, out: &mut Vec<u8>) -> Result<(), Reason> {
        let start = out.len();
        match self {
            Component::Method => out.extend_from_slice(request.method.as_bytes()),
            Component::Authority => out.extend_from_slice(
                normalize_authority(request.scheme, request.authority).as_bytes(),
            ),
            Component::Scheme => out.extend(request.scheme.bytes().map(|b| b.to_ascii_lowercase())),
            Component::Path => out.extend_from_slice(request.path().as_bytes()),
            Component::Query => out.extend_from_slice(request.query().as_bytes()),
            Component::TargetUri => {
                out.extend(request.scheme.bytes().map(|b| b.to_ascii_lowercase()));
                out.extend_from_slice(b"://");
                out.extend_from_slice(request.authority.as_bytes());
                out.extend_from_slice(request.path_and_query.as_bytes());
            }
            Component::RequestTarget => out.extend_from_slice(request.path_and_query.as_bytes()),
            Component::Field(name) => match request.single_header(name)? {
                Some(raw) => out.extend_from_slice(trim_ows(raw)),
                None => return Err(Reason::MissingComponent),
            },
        }
        let written = out.get(start..).unwrap_or_default();
        if memchr::memchr3(b'\r', b'\n', 0, written).is_some() {
            return Err(Reason::InvalidHeaderValue);
        }
        Ok(())
    }
}

/// A lowercase field name as RFC 9421 identifies it: a token of lowercase characters.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\''
                )
                || matches!(b, b'*' | b'+' | b'^' | b'`' | b'|' | b'~')
        })
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = value.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => value.get(s..=e).unwrap_or_default(),
        _ => &[],
    }
}

/// Builds the signature base (RFC 9421 §2.5): one line per covered component, then the
/// `@signature-params` line holding the serialised inner list, joined by LF, no final LF.
pub fn signature_base(
    components: &[Component],
    signature_params: &str,
    request: &Request<'_>,
) -> Result<Vec<u8>, Reason> {
    let mut base = Vec::with_capacity(512 + signature_params.len());
    for component in components {
        base.push(b'"');
        base.extend_from_slice(component.name().as_bytes());
        base.extend_from_slice(b"\": ");
        component.write_value(request, &mut base)?;
        base.push(b'\n');
    }
    base.extend_from_slice(b"\"@signature-params\": ");
    base.extend_from_slice(signature_params.as_bytes());
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(path: &'a str, headers: &'a HeaderMap) -> Request<'a> {
        Request {
            method: "POST",
            scheme: "https",
            authority: "Example.COM:443",
            path_and_query: path,
            headers,
        }
    }

    #[test]
    fn authority_is_lowercased_and_default_port_dropped() {
        assert_eq!(
            normalize_authority("https", "Example.COM:443"),
            "example.com"
        );
        assert_eq!(normalize_authority("http", "example.com:80"), "example.com");
        assert_eq!(
            normalize_authority("http", "example.com:443"),
            "example.com:443"
        );
        assert_eq!(
            normalize_authority("https", "example.com:8443"),
            "example.com:8443"
        );
    }

    #[test]
    fn path_and_query_are_split_without_decoding() {
        let r = request("/a%2Fb?x=1&y=%20", HeaderMap::empty());
        assert_eq!(r.path(), "/a%2Fb");
        assert_eq!(r.query(), "?x=1&y=%20");
        let r = request("/a", HeaderMap::empty());
        assert_eq!(r.query(), "?");
        let r = request("?q", HeaderMap::empty());
        assert_eq!(r.path(), "/");
    }

    #[test]
    fn duplicate_field_lines_are_refused() {
        let headers = HeaderMap::from_iter([("x-a", "1"), ("X-A", "2")]);
        let r = request("/", &headers);
        assert_eq!(r.single_header("x-a"), Err(Reason::DuplicateHeader));
    }

    /// The proxy-wasm serialisation of a header map, as a host writes it.
    fn serialised(lines: &[(&str, &str)]) -> Vec<u8> {
        let mut out = u32::try_from(lines.len()).unwrap().to_le_bytes().to_vec();
        for (name, value) in lines {
            out.extend_from_slice(&u32::try_from(name.len()).unwrap().to_le_bytes());
            out.extend_from_slice(&u32::try_from(value.len()).unwrap().to_le_bytes());
        }
        for (name, value) in lines {
            for part in [name, value] {
                out.extend_from_slice(part.as_bytes());
                out.push(0);
            }
        }
        out
    }

    #[test]
    fn a_host_map_is_read_in_place_in_order() {
        let lines = [
            (":method", "POST"),
            ("x-empty", ""),
            ("x-a", "1"),
            ("x-a", "2"),
        ];
        let map = HeaderMap::from_host(serialised(&lines)).expect("a well-formed map");
        let read: Vec<(&[u8], &[u8])> = map.iter().collect();
        let want: Vec<(&[u8], &[u8])> = lines
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        assert_eq!(read, want);
        assert_eq!(map, HeaderMap::from_iter(lines));
        assert_eq!(map.first("X-A"), Some(&b"1"[..]));
        assert_eq!(map.single(":method"), Ok(Some(&b"POST"[..])));
        assert_eq!(map.single("x-a"), Err(Reason::DuplicateHeader));
        assert_eq!(map.single("x-none"), Ok(None));
        assert_eq!(HeaderMap::from_host(Vec::new()), Some(HeaderMap::new()));
        assert_eq!(
            HeaderMap::from_host(serialised(&[])).map(|m| m.len()),
            Some(0)
        );
    }

    #[test]
    fn a_host_map_that_does_not_add_up_is_refused_at_every_cut() {
        let whole = serialised(&[(":path", "/v1/risk/score"), ("content-type", "json")]);
        for cut in 1..whole.len() {
            assert_eq!(
                HeaderMap::from_host(whole[..cut].to_vec()),
                None,
                "cut at {cut}"
            );
        }
        // A missing NUL after a value, and a count far past the bytes.
        let mut no_nul = whole.clone();
        *no_nul.last_mut().unwrap() = b'x';
        assert_eq!(HeaderMap::from_host(no_nul), None);
        let mut huge = whole;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(HeaderMap::from_host(huge), None);
    }

    /// What `single` and `first` answer.
    type Answers<'m> = (Result<Option<&'m [u8]>, Reason>, Option<&'m [u8]>);

    /// `single` and `first` as a plain scan of the lines would answer them.
    fn scanned<'m>(map: &'m HeaderMap, name: &str) -> Answers<'m> {
        let values: Vec<&[u8]> = map
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
            .collect();
        let single = match values.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(Reason::DuplicateHeader),
        };
        (single, values.first().copied())
    }

    #[test]
    fn noted_fields_are_found_as_a_scan_finds_them() {
        assert!(NOTED.contains(&crate::profile::IDENTITY_HEADER));
        for name in crate::profile::CREDENTIAL_HEADERS {
            assert!(NOTED.contains(&name), "{name}");
        }
        // Every noted field is found by its slot, and only by it.
        for (slot, name) in NOTED.iter().enumerate() {
            assert_eq!(noted_slot(name.as_bytes()), Some(slot));
            assert_eq!(noted_slot(name.to_ascii_uppercase().as_bytes()), Some(slot));
        }
        for other in ["x-method", ":methox", "signaturf", "content-digesT-", ""] {
            assert_eq!(noted_slot(other.as_bytes()), None, "{other}");
        }
        let names = [
            ":path",
            ":method",
            "signature",
            "Signature",
            "signature-input",
            "content-digest",
            "keyhop-identity",
            "KEYHOP-IDENTITY",
            "x-other",
            "signature-inpux",
        ];
        // Every map of up to three lines drawn from `names` (values say which line), then the
        // same map after removing each name and after adding a line of each.
        let mut maps = vec![HeaderMap::new()];
        for len in 1..=3u32 {
            for pick in 0..names.len().pow(len) {
                let mut map = HeaderMap::new();
                let mut rest = pick;
                for line in 0..len {
                    map.push(names[rest % names.len()], format!("v{line}").as_bytes());
                    rest /= names.len();
                }
                maps.push(map);
            }
        }
        let serialised_too: Vec<HeaderMap> = maps
            .iter()
            .map(|map| {
                let lines: Vec<(String, String)> = map
                    .iter()
                    .map(|(n, v)| {
                        (
                            String::from_utf8(n.to_vec()).unwrap(),
                            String::from_utf8(v.to_vec()).unwrap(),
                        )
                    })
                    .collect();
                let lines: Vec<(&str, &str)> = lines
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                HeaderMap::from_host(serialised(&lines)).unwrap()
            })
            .collect();
        let mut checked = 0;
        for map in maps.iter().chain(&serialised_too) {
            let mut variants = vec![map.clone()];
            for name in names {
                let mut removed = map.clone();
                removed.remove(name);
                variants.push(removed);
                let mut added = map.clone();
                added.push(name, b"added");
                variants.push(added);
            }
            for variant in &variants {
                for name in names {
                    let (single, first) = scanned(variant, name);
                    assert_eq!(variant.single(name), single, "{variant:?} {name}");
                    assert_eq!(variant.first(name), first, "{variant:?} {name}");
                    assert_eq!(variant.contains(name), first.is_some());
                    checked += 1;
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    #[test]
    fn removed_fields_are_gone_in_any_case() {
        let mut map = HeaderMap::from_iter([("x-a", "1"), ("X-B", "2"), ("x-a", "3")]);
        map.remove("X-a");
        assert!(!map.contains("x-a"));
        assert_eq!(map.len(), 1);
        assert_eq!(map.single("x-b"), Ok(Some(&b"2"[..])));
        map.push("x-c", b"4");
        assert_eq!(map.iter().last(), Some((&b"x-c"[..], &b"4"[..])));
    }

    #[test]
    fn field_values_are_trimmed_and_line_breaks_refused() {
        let headers = HeaderMap::from_iter([("x-a", "  v \t"), ("x-b", "a\nb")]);
        let r = request("/", &headers);
        assert_eq!(Component::Field("x-a".into()).value(&r), Ok(b"v".to_vec()));
        assert_eq!(
            Component::Field("x-b".into()).value(&r),
            Err(Reason::InvalidHeaderValue)
        );
        assert_eq!(
            Component::Field("x-c".into()).value(&r),
            Err(Reason::MissingComponent)
        );
    }

    #[test]
    fn unknown_derived_components_and_odd_names_are_refused() {
        assert_eq!(
            Component::from_name("@status"),
            Err(Reason::UnsupportedComponent)
        );
        assert_eq!(
            Component::from_name("Content-Type"),
            Err(Reason::UnsupportedComponent)
        );
        assert_eq!(Component::from_name(""), Err(Reason::UnsupportedComponent));
    }
}
