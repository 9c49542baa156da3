//! mTLS binding against a real Envoy (V8) running the built module: the partner's listener
//! terminates TLS, Envoy verifies the client certificate against a test CA, and the verifier
//! compares the certificate's URI SAN (`connection.uri_san_peer_certificate`) with the
//! credential's `keyhop-identity`, as `mtls_binding` asks (`docs/PROTOCOL.md`, "mTLS binding").
//!
//! Everything runs on loopback. The CA and the certificates are made for each run with the
//! `openssl` command; the requests are sent with `curl`, which presents (or withholds) a client
//! certificate; the credentials are minted in this process with the filter crate's own signer
//! and the root secret the Envoy gets in its environment. The listeners are the one in
//! `envoy/partner-ingress.yaml`, filter block and all, with a TLS transport socket added and
//! `mtls_binding` set.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use keyhop_e2e::envoy::{self, Envoy, EnvoySpec};
use keyhop_e2e::http::read_response;
use keyhop_e2e::topology::{
    generate_secret, new_run_dir, PORTAL_WEB_ID, REPORT_JOB_ID, SECRET_ENV,
};
use keyhop_e2e::upstream::RiskApi;
use keyhop_e2e::{Echo, Request, Response, CREDENTIAL_HEADERS, VERIFIED_IDENTITY_HEADER};
use keyhop_filter::config::{Config, SignConfig};
use keyhop_filter::keys::EpochKeyCache;
use keyhop_filter::{message, sign};

/// The audience and key id written in `envoy/partner-ingress.yaml`.
const AUDIENCE: &str = "spiffe://riskpartner.example/edge";
const KEY_ID: &str = "portal-2026";
const HOP_SECONDS: u64 = 5;

/// The ports in `envoy/partner-ingress.yaml` that this file rewrites.
const DOCUMENTED_LISTENER: u16 = 10002;
const DOCUMENTED_ADMIN: u16 = 9902;
const DOCUMENTED_RISK_API: u16 = 10003;

const SCORE_PATH: &str = "/v1/risk/score";
const SCORE_BODY: &str = r#"{"customer":"c-1042","amount":100}"#;

// ---------------------------------------------------------------------------------------------
// Certificates

/// A client certificate the tests present, by what its SAN says.
#[derive(Clone, Copy, Debug)]
enum ClientCert {
    /// URI SAN `spiffe://finsphere.example/ns/portal/sa/portal-web`, signed by the test CA.
    PortalWeb,
    /// URI SAN `spiffe://finsphere.example/ns/batch/sa/report-job`, signed by the test CA.
    ReportJob,
    /// Signed by the test CA, with a DNS SAN and no URI SAN at all.
    NoUriSan,
    /// URI SAN of portal-web, but signed by a CA the partner does not trust.
    UntrustedPortalWeb,
}

impl ClientCert {
    fn stem(self) -> &'static str {
        match self {
            ClientCert::PortalWeb => "portal-web",
            ClientCert::ReportJob => "report-job",
            ClientCert::NoUriSan => "no-uri-san",
            ClientCert::UntrustedPortalWeb => "untrusted-portal-web",
        }
    }
}

/// The test PKI, as files in the run directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Makes a CA, a server certificate for 127.0.0.1 and the client certificates, plus a
    /// second, untrusted CA for the impostor.
    fn generate(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.join("pki"),
        };
        fs::create_dir_all(&pki.dir).expect("pki directory");

        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "ca",
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        );
        for (cert, san) in [
            (ClientCert::PortalWeb, format!("URI:{PORTAL_WEB_ID}")),
            (ClientCert::ReportJob, format!("URI:{REPORT_JOB_ID}")),
            (
                ClientCert::NoUriSan,
                "DNS:portal-web.finsphere.example".to_owned(),
            ),
        ] {
            let ext = format!("subjectAltName={san}\nextendedKeyUsage=clientAuth");
            pki.leaf("ca", cert.stem(), &ext);
        }
        pki.leaf(
            "other-ca",
            ClientCert::UntrustedPortalWeb.stem(),
            &format!("subjectAltName=URI:{PORTAL_WEB_ID}\nextendedKeyUsage=clientAuth"),
        );
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn cert(&self, stem: &str) -> PathBuf {
        self.path(&format!("{stem}.crt"))
    }

    fn key(&self, stem: &str) -> PathBuf {
        self.path(&format!("{stem}.key"))
    }

    /// A self-signed P-256 CA valid for a day.
    fn ca(&self, stem: &str) {
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN=keyhop test {stem}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path_str(&self.key(stem)),
            "-out",
            path_str(&self.cert(stem)),
        ]);
    }

    /// A P-256 end-entity certificate signed by `ca`, with the extensions in `extensions`.
    fn leaf(&self, ca: &str, stem: &str, extensions: &str) {
        let csr = self.path(&format!("{stem}.csr"));
        let ext = self.path(&format!("{stem}.ext"));
        fs::write(&ext, format!("basicConstraints=CA:FALSE\n{extensions}\n")).expect("ext file");

        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={stem}"),
            "-keyout",
            path_str(&self.key(stem)),
            "-out",
            path_str(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(&self.cert(ca)),
            "-CAkey",
            path_str(&self.key(ca)),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            path_str(&ext),
            "-out",
            path_str(&self.cert(stem)),
        ]);
    }
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command (this test makes its certificates with it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

// ---------------------------------------------------------------------------------------------
// The partner Envoy

/// One TLS listener of the partner: how the TLS layer treats client certificates, and what the
/// verifier's `mtls_binding` is.
#[derive(Clone, Copy, Debug)]
struct ListenerSpec {
    name: &'static str,
    mtls_binding: &'static str,
    /// `require_client_certificate` of the DownstreamTlsContext. Without it a client may send
    /// no certificate, but one it does send must still chain to the test CA.
    tls_requires_client_cert: bool,
}

/// Each listener's name and its loopback port.
type ListenerPorts = Vec<(&'static str, u16)>;

/// A partner Envoy with TLS listeners, in front of the in-process risk API. Dropping it kills
/// the Envoy, then stops the risk API.
struct Partner {
    // Fields drop in this order: the Envoy goes before the risk API it forwards to.
    envoy: Envoy,
    risk_api: RiskApi,
    ports: ListenerPorts,
    pki: Pki,
    secret: String,
    run_dir: PathBuf,
}

impl Partner {
    fn start(label: &str, listeners: &[ListenerSpec]) -> Partner {
        envoy::check_prerequisites().expect("Envoy and the module");
        for (tool, version) in [("openssl", "version"), ("curl", "--version")] {
            let found = Command::new(tool)
                .arg(version)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(found, "this test needs the `{tool}` command on PATH");
        }

        let run_dir = new_run_dir(label).expect("run directory");
        let pki = Pki::generate(&run_dir);
        let secret = generate_secret().expect("secret");

        // Ports are chosen free but bound later by Envoy; should another process take one in
        // between, Envoy exits and we start again on new ones.
        let mut attempt = 1;
        loop {
            match Partner::start_once(&run_dir, &pki, &secret, listeners, attempt) {
                Ok((envoy, risk_api, ports)) => {
                    return Partner {
                        envoy,
                        risk_api,
                        ports,
                        pki,
                        secret,
                        run_dir,
                    }
                }
                Err(e) if attempt < 3 && e.to_string().contains("Address already in use") => {
                    attempt += 1;
                }
                Err(e) => panic!("partner Envoy: {e}"),
            }
        }
    }

    fn start_once(
        run_dir: &Path,
        pki: &Pki,
        secret: &str,
        listeners: &[ListenerSpec],
        attempt: usize,
    ) -> std::io::Result<(Envoy, RiskApi, ListenerPorts)> {
        // Hold every port until all are chosen, so no two roles share one.
        let held = (0..listeners.len() + 1)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()?;
        let mut free = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        drop(held);
        let admin = free
            .pop()
            .ok_or_else(|| std::io::Error::other("no admin port"))?;
        let ports: ListenerPorts = listeners.iter().map(|l| l.name).zip(free).collect();

        let risk_api = RiskApi::start(0)?;
        let config = partner_config(pki, listeners, &ports, admin, risk_api.addr().port())?;
        let envoy = Envoy::start(
            EnvoySpec {
                name: format!("partner-mtls-{attempt}"),
                config,
                admin: ([127, 0, 0, 1], admin).into(),
                env: vec![(SECRET_ENV.into(), secret.to_owned())],
            },
            run_dir,
        )?;
        Ok((envoy, risk_api, ports))
    }

    fn port(&self, listener: &str) -> u16 {
        self.ports
            .iter()
            .find(|(name, _)| *name == listener)
            .map(|&(_, port)| port)
            .unwrap_or_else(|| panic!("no listener {listener}"))
    }

    /// Sends a POST to the score endpoint on `listener`, signed as `identity`, presenting
    /// `cert` (or none).
    fn score(&self, listener: &str, cert: Option<ClientCert>, identity: &str) -> Outcome {
        let request = mint(
            &self.secret,
            identity,
            &Request::post_json(SCORE_PATH, SCORE_BODY),
        );
        self.send(listener, cert, &request)
    }

    /// Sends a GET to the health endpoint (open to the whole trust domain), signed as
    /// `identity`, presenting `cert` (or none).
    fn health(&self, listener: &str, cert: Option<ClientCert>, identity: &str) -> Outcome {
        let request = mint(&self.secret, identity, &Request::get("/v1/health"));
        self.send(listener, cert, &request)
    }

    /// Sends `request` with curl over TLS, trusting the test CA for the server.
    fn send(&self, listener: &str, cert: Option<ClientCert>, request: &Request) -> Outcome {
        let url = format!(
            "https://127.0.0.1:{}{}",
            self.port(listener),
            request.target
        );
        let mut command = Command::new("curl");
        command
            // -q first: no ~/.curlrc; everything this request does is on this line.
            .args(["-q", "--silent", "--show-error", "--include", "--http1.1"])
            .args(["--noproxy", "*", "--max-time", "15"])
            .arg("--cacert")
            .arg(self.pki.cert("ca"))
            .args(["--request", &request.method]);
        if let Some(cert) = cert {
            command
                .arg("--cert")
                .arg(self.pki.cert(cert.stem()))
                .arg("--key")
                .arg(self.pki.key(cert.stem()));
        }
        for (name, value) in &request.headers.0 {
            // curl frames the body itself.
            if name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            command
                .arg("--header")
                .arg(format!("{name}: {}", String::from_utf8_lossy(value)));
        }
        if !request.body.is_empty() {
            command
                .arg("--data-binary")
                .arg(String::from_utf8_lossy(&request.body).as_ref());
        }
        let output = command
            .arg(&url)
            .stdin(Stdio::null())
            .output()
            .expect("the curl command");
        Outcome::from_curl(&output, &request.method)
    }

    /// Envoy's TLS counter `name` (e.g. `fail_verify_no_cert`) for `listener`.
    fn ssl_counter(&self, listener: &str, name: &str) -> u64 {
        let stat = format!("listener.127.0.0.1_{}.ssl.{name}", self.port(listener));
        self.envoy.counter(&stat).expect("admin /stats")
    }
}

/// The partner config: the listener of `envoy/partner-ingress.yaml`, once per `listeners`
/// entry, each with a TLS transport socket and its `mtls_binding`; the admin port and the risk
/// API rewritten as the harness does.
fn partner_config(
    pki: &Pki,
    listeners: &[ListenerSpec],
    ports: &[(&'static str, u16)],
    admin: u16,
    risk_api: u16,
) -> std::io::Result<String> {
    let template = envoy::read_config("partner-ingress.yaml")?;
    let (head, rest) = template
        .split_once("  listeners:\n")
        .expect("a `listeners:` section");
    let (listener, clusters) = rest
        .split_once("\n  clusters:")
        .expect("a `clusters:` section after the listener");
    assert_eq!(
        listener.matches("- name: partner_ingress").count(),
        1,
        "one documented listener"
    );

    let mut out = format!("{head}  listeners:\n");
    for (spec, &(_, port)) in listeners.iter().zip(ports) {
        out.push_str(&tls_listener(listener, spec, port, pki));
        out.push('\n');
    }
    out.push_str("  clusters:");
    out.push_str(clusters);

    envoy::render_config(
        &out,
        &[(DOCUMENTED_ADMIN, admin), (DOCUMENTED_RISK_API, risk_api)],
        &envoy::wasm_module(),
    )
}

/// One copy of the documented listener: renamed, on `port`, terminating TLS, with the
/// verifier's `mtls_binding` set.
fn tls_listener(documented: &str, spec: &ListenerSpec, port: u16, pki: &Pki) -> String {
    let name = "- name: partner_ingress";
    let listen = format!("port_value: {DOCUMENTED_LISTENER}");
    let chain = "    filter_chains:\n    - filters:\n";
    let mode = "\"mode\": \"verify\",";
    for what in [name, &listen, chain, mode] {
        assert!(
            documented.contains(what),
            "envoy/partner-ingress.yaml has no `{what}`"
        );
    }

    // The plugin JSON sits in a YAML block scalar: the new member takes the indentation of
    // the line it follows.
    let mode_line = documented
        .lines()
        .find(|line| line.contains(mode))
        .unwrap_or_default();
    let indent = &mode_line[..mode_line.len() - mode_line.trim_start().len()];

    // The filter chain gets a transport socket next to its filters.
    let transport = [
        "    filter_chains:".to_owned(),
        "    - transport_socket:".to_owned(),
        "        name: envoy.transport_sockets.tls".to_owned(),
        "        typed_config:".to_owned(),
        "          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.\
         DownstreamTlsContext"
            .to_owned(),
        format!(
            "          require_client_certificate: {}",
            spec.tls_requires_client_cert
        ),
        "          common_tls_context:".to_owned(),
        "            tls_certificates:".to_owned(),
        format!(
            "            - certificate_chain: {{ filename: \"{}\" }}",
            path_str(&pki.cert("server"))
        ),
        format!(
            "              private_key: {{ filename: \"{}\" }}",
            path_str(&pki.key("server"))
        ),
        "            validation_context:".to_owned(),
        format!(
            "              trusted_ca: {{ filename: \"{}\" }}",
            path_str(&pki.cert("ca"))
        ),
        "      filters:\n".to_owned(),
    ]
    .join("\n");

    documented
        .replacen(name, &format!("- name: {}", spec.name), 1)
        .replace(&listen, &format!("port_value: {port}"))
        .replacen(chain, &transport, 1)
        .replacen(
            mode,
            &format!(
                "{mode}\n{indent}\"mtls_binding\": \"{}\",",
                spec.mtls_binding
            ),
            1,
        )
}

// ---------------------------------------------------------------------------------------------
// Credentials

/// `request` with a fresh credential for `identity`, minted by the filter crate's own signer
/// with the partner's root secret, as the portal Envoy would send it.
fn mint(secret: &str, identity: &str, request: &Request) -> Request {
    let json = serde_json::json!({
        "mode": "sign",
        "identity": identity,
        "audience": AUDIENCE,
        "hop_seconds": HOP_SECONDS,
        "key": {"id": KEY_ID, "secret_env": "KEYHOP_MTLS_TEST_SECRET"},
        "lifetime_seconds": 10,
    });
    let env = |name: &str| (name == "KEYHOP_MTLS_TEST_SECRET").then(|| secret.to_owned());
    let config: SignConfig = match Config::from_json(json.to_string().as_bytes(), &env) {
        Ok(Config::Sign(config)) => config,
        other => panic!("sign config: {other:?}"),
    };

    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).expect("random nonce");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();

    let authority = request.headers.get_str("host").unwrap_or_default();
    // @scheme is not covered, so the TLS listener's `https` does not enter the signature base.
    let view = message::Request {
        method: &request.method,
        scheme: "https",
        authority: &authority,
        path_and_query: &request.target,
        headers: message::HeaderMap::empty(),
    };
    let signed = sign::sign(
        &config,
        &mut EpochKeyCache::new(2),
        &view,
        &request.body,
        i64::try_from(now).expect("seconds fit"),
        &nonce,
    )
    .unwrap_or_else(|reason| panic!("the filter's signer refused: {reason:?}"));

    let mut out = request.clone();
    for (name, value) in [
        ("content-digest", signed.content_digest),
        ("keyhop-identity", signed.identity),
        ("signature-input", signed.signature_input),
        ("signature", signed.signature),
    ] {
        out.headers.set(name, value);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Outcomes

/// What came back: an HTTP response, or a connection that failed before one (curl's exit code).
#[derive(Debug)]
enum Outcome {
    Response(Response),
    NoResponse {
        curl_exit: Option<i32>,
        /// What curl said, for the failure message of an unexpected outcome.
        #[allow(dead_code)]
        stderr: String,
    },
}

impl Outcome {
    fn from_curl(output: &Output, method: &str) -> Outcome {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Outcome::NoResponse {
                curl_exit: output.status.code(),
                stderr,
            };
        }
        match read_response(&mut output.stdout.as_slice(), method) {
            Ok(Some(response)) => Outcome::Response(response),
            other => panic!("curl succeeded but printed no response ({other:?}); stderr: {stderr}"),
        }
    }

    fn response(&self) -> &Response {
        match self {
            Outcome::Response(response) => response,
            other => panic!("expected an HTTP response, got {other:?}"),
        }
    }

    /// The verifier's refusal: `status` with `keyhop-reason: reason`.
    fn assert_refused(&self, status: u16, reason: &str) {
        let response = self.response();
        assert_eq!(
            (response.status, response.reason().as_deref()),
            (status, Some(reason)),
            "body: {}",
            response.text()
        );
    }

    /// An allow: the risk API answered, saw `identity` as the verified caller and none of the
    /// credential headers.
    fn assert_allowed_as(&self, identity: &str) {
        let response = self.response();
        assert_eq!(
            (response.status, response.reason()),
            (200, None),
            "body: {}",
            response.text()
        );
        let seen = Echo::from_response(response).expect("an allow is answered by the risk API");
        assert_eq!(seen.header_all(VERIFIED_IDENTITY_HEADER), [identity]);
        for name in CREDENTIAL_HEADERS {
            assert_eq!(seen.header(name), None, "{name} reached the risk API");
        }
    }

    /// The connection died in TLS: curl got no HTTP response. Which of its exit codes it gives
    /// depends on when the server's alert arrives (with TLS 1.3 the client may finish its side
    /// of the handshake first): 35 the handshake failed, 55 sending failed, 56 receiving
    /// failed. The callers confirm the cause with Envoy's TLS counters.
    fn assert_tls_refused(&self) {
        match self {
            Outcome::NoResponse {
                curl_exit: Some(35 | 55 | 56),
                ..
            } => {}
            other => panic!("expected the TLS handshake to be refused, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

const REQUIRE: ListenerSpec = ListenerSpec {
    name: "require",
    mtls_binding: "require",
    tls_requires_client_cert: true,
};

/// `require` behind a TLS layer that lets a client in without a certificate: only the
/// verifier stands between a certificate-less client and the risk API.
const REQUIRE_CERT_OPTIONAL: ListenerSpec = ListenerSpec {
    name: "require_cert_optional",
    mtls_binding: "require",
    tls_requires_client_cert: false,
};

const PREFER: ListenerSpec = ListenerSpec {
    name: "prefer",
    mtls_binding: "prefer",
    tls_requires_client_cert: false,
};

/// The default: the TLS layer still checks certificates, the verifier ignores them.
const OFF: ListenerSpec = ListenerSpec {
    // Not `off`: YAML would read that as false.
    name: "binding_off",
    mtls_binding: "off",
    tls_requires_client_cert: false,
};

#[test]
fn require_binds_the_credential_to_the_client_certificate() {
    let partner = Partner::start("mtls-require", &[REQUIRE, REQUIRE_CERT_OPTIONAL]);
    let portal = Some(ClientCert::PortalWeb);
    let report = Some(ClientCert::ReportJob);

    // The certificate and the credential name the same workload: allowed, for either workload.
    partner
        .score("require", portal, PORTAL_WEB_ID)
        .assert_allowed_as(PORTAL_WEB_ID);
    partner
        .health("require", report, REPORT_JOB_ID)
        .assert_allowed_as(REPORT_JOB_ID);
    assert_eq!(partner.risk_api.received().len(), 2);

    // A credential presented over another workload's connection, both ways round. The second
    // would pass the route policy: the binding, not the policy, refuses it.
    partner
        .score("require", report, PORTAL_WEB_ID)
        .assert_refused(401, "peer_identity_mismatch");
    partner
        .health("require", portal, REPORT_JOB_ID)
        .assert_refused(401, "peer_identity_mismatch");

    // A certificate from the CA but without a URI SAN names nobody.
    partner
        .score("require", Some(ClientCert::NoUriSan), PORTAL_WEB_ID)
        .assert_refused(401, "peer_identity_missing");

    // No certificate: with require_client_certificate Envoy's TLS layer refuses the
    // handshake, so the filter never runs.
    let before = partner.ssl_counter("require", "fail_verify_no_cert");
    partner
        .score("require", None, PORTAL_WEB_ID)
        .assert_tls_refused();
    assert_eq!(
        partner.ssl_counter("require", "fail_verify_no_cert"),
        before + 1
    );

    // Without it, the filter refuses the request itself.
    partner
        .score("require_cert_optional", None, PORTAL_WEB_ID)
        .assert_refused(401, "peer_identity_missing");
    partner
        .score("require_cert_optional", portal, PORTAL_WEB_ID)
        .assert_allowed_as(PORTAL_WEB_ID);

    // A certificate naming portal-web from a CA the partner does not trust never gets as far
    // as the filter, on either listener.
    for listener in ["require", "require_cert_optional"] {
        let before = partner.ssl_counter(listener, "fail_verify_error");
        partner
            .score(
                listener,
                Some(ClientCert::UntrustedPortalWeb),
                PORTAL_WEB_ID,
            )
            .assert_tls_refused();
        assert_eq!(
            partner.ssl_counter(listener, "fail_verify_error"),
            before + 1
        );
    }

    // Only the three allowed calls reached the risk API.
    assert_eq!(
        partner.risk_api.received().len(),
        3,
        "run directory: {}",
        partner.run_dir.display()
    );
}

#[test]
fn prefer_checks_a_certificate_when_there_is_one() {
    let partner = Partner::start("mtls-prefer", &[PREFER]);

    // No certificate: the credential alone decides.
    partner
        .score("prefer", None, PORTAL_WEB_ID)
        .assert_allowed_as(PORTAL_WEB_ID);

    // A matching certificate: allowed.
    partner
        .score("prefer", Some(ClientCert::PortalWeb), PORTAL_WEB_ID)
        .assert_allowed_as(PORTAL_WEB_ID);

    // A certificate naming another workload: refused, both ways round.
    partner
        .score("prefer", Some(ClientCert::ReportJob), PORTAL_WEB_ID)
        .assert_refused(401, "peer_identity_mismatch");
    partner
        .health("prefer", Some(ClientCert::PortalWeb), REPORT_JOB_ID)
        .assert_refused(401, "peer_identity_mismatch");

    // A certificate without a URI SAN carries no identity to compare: as with no certificate,
    // the credential decides (PROTOCOL.md: the URI SAN is checked "when present").
    partner
        .score("prefer", Some(ClientCert::NoUriSan), PORTAL_WEB_ID)
        .assert_allowed_as(PORTAL_WEB_ID);

    // An untrusted certificate is refused by the TLS layer even though a certificate is
    // optional: one that is presented must verify.
    let before = partner.ssl_counter("prefer", "fail_verify_error");
    partner
        .score(
            "prefer",
            Some(ClientCert::UntrustedPortalWeb),
            PORTAL_WEB_ID,
        )
        .assert_tls_refused();
    assert_eq!(
        partner.ssl_counter("prefer", "fail_verify_error"),
        before + 1
    );

    assert_eq!(
        partner.risk_api.received().len(),
        3,
        "run directory: {}",
        partner.run_dir.display()
    );
}

#[test]
fn off_ignores_the_client_certificate() {
    let partner = Partner::start("mtls-off", &[OFF]);

    partner
        .score("binding_off", Some(ClientCert::ReportJob), PORTAL_WEB_ID)
        .assert_allowed_as(PORTAL_WEB_ID);
    partner
        .score("binding_off", None, PORTAL_WEB_ID)
        .assert_allowed_as(PORTAL_WEB_ID);
}
