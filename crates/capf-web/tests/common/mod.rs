//! The web administration over real HTTPS on 127.0.0.1, shared by its test binaries: a server
//! over an in-memory store with two accounts (alice, admin; reader, read-only), callers with a
//! session (cookie and CSRF token) or a bearer token, and answers read as JSON.

// Each test binary uses a part of these.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use capf_store::{AccountName, AdminStore, DeviceStore, Role, SqliteStore};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

pub(crate) struct Server {
    pub(crate) store: Arc<SqliteStore>,
    pub(crate) addr: SocketAddr,
    pub(crate) client: reqwest::Client,
    pub(crate) task: tokio::task::JoinHandle<Result<(), capf_web::Error>>,
    pub(crate) dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) async fn start(config: capf_web::WebConfig) -> Server {
    let store = Arc::new(SqliteStore::open_in_memory([5; 32]).unwrap());
    for (name, role) in [("alice", Role::Admin), ("reader", Role::ReadOnly)] {
        capf_admin::accounts::add_account(
            &*store,
            &AccountName::new(name).unwrap(),
            role,
            PASSWORD,
            SystemTime::now(),
        )
        .unwrap();
    }
    let dir = std::env::temp_dir().join(format!(
        "capf-web-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let (cert, key) = capf_web::tls::self_signed_files(&dir).unwrap();
    // The server's data directory (trust stores, CAPF certificate), unless the test gives one.
    let config = if config.data_dir.is_none() {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        config.with_data_dir(dir.join("data"))
    } else {
        config
    };
    let tls = Arc::new(capf_web::tls::server_config(&cert, &key).unwrap());
    let dyn_store: Arc<dyn DeviceStore> = store.clone();
    let app = capf_web::router(dyn_store, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(capf_web::tls::serve(listener, tls, app));
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .resolve("localhost", addr)
        .build()
        .unwrap();
    Server {
        store,
        addr,
        client,
        task,
        dir,
    }
}

/// A logged-in caller: the cookie and the CSRF token, or a bearer token.
#[derive(Clone, Default)]
pub(crate) struct Auth {
    pub(crate) cookie: Option<String>,
    pub(crate) csrf: Option<String>,
    pub(crate) bearer: Option<String>,
}

pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) set_cookie: Option<String>,
    /// The paged list's `X-Total-Count`.
    pub(crate) total_count: Option<String>,
    /// The paged list's `Link` (RFC 8288).
    pub(crate) link: Option<String>,
}

impl Answer {
    pub(crate) fn error(&self) -> &str {
        self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {}", self.body))
    }
}

impl Server {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Body>,
    ) -> Answer {
        let mut req = self.client.request(method, self.url(path));
        if let Some(c) = &auth.cookie {
            req = req.header("cookie", c);
        }
        if let Some(t) = &auth.csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = &auth.bearer {
            req = req.bearer_auth(b);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Raw(text)) => req.body(text),
            Some(Body::Text(text)) => req.body(text),
            Some(Body::Bytes(data)) => req.body(data),
            None => req,
        };
        let res = req.send().await.unwrap();
        let status = res.status();
        let set_cookie = res
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned());
        let total_count = res
            .headers()
            .get("x-total-count")
            .map(|v| v.to_str().unwrap().to_owned());
        let link = res
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            set_cookie,
            total_count,
            link,
        }
    }

    pub(crate) async fn login(&self, name: &str) -> Auth {
        let a = self
            .call(
                Method::POST,
                "/api/login",
                &Auth::default(),
                Some(Body::Json(json!({ "name": name, "password": PASSWORD }))),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let cookie = a.set_cookie.unwrap();
        for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(cookie.contains(attr), "{cookie}");
        }
        Auth {
            cookie: Some(cookie.split(';').next().unwrap().to_owned()),
            csrf: Some(a.body["csrf_token"].as_str().unwrap().to_owned()),
            bearer: None,
        }
    }

    pub(crate) fn device_count(&self) -> usize {
        self.store.list_devices().unwrap().len()
    }

    pub(crate) fn audit_len(&self) -> usize {
        self.store.audit(None, usize::MAX).unwrap().len()
    }
}

pub(crate) enum Body {
    Json(Value),
    Raw(&'static str),
    Text(String),
    Bytes(Vec<u8>),
}

pub(crate) use Body::{Bytes, Json as J, Raw};

pub(crate) async fn admin_server() -> (Server, Auth) {
    let s = start(capf_web::WebConfig::default()).await;
    let auth = s.login("alice").await;
    (s, auth)
}

impl Server {
    /// A GET whose answer is a file: its status, content type and bytes.
    pub(crate) async fn download(&self, path: &str, auth: &Auth) -> (StatusCode, String, Vec<u8>) {
        let mut req = self.client.get(self.url(path));
        if let Some(c) = &auth.cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let kind = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, kind, res.bytes().await.unwrap().to_vec())
    }

    pub(crate) fn data(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    /// Every file under the data directory's trust stores, sorted.
    pub(crate) fn trust_files(&self) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data().join("trust"), &mut out);
        out.sort();
        out
    }
}

/// A bad request: method, path, caller, body, the status and a part of the message.
pub(crate) type Case<'a, P> = (Method, P, &'a Auth, Option<Body>, StatusCode, &'static str);

pub(crate) fn wrong_csrf(auth: &Auth) -> Auth {
    Auth {
        csrf: Some("0".repeat(64)),
        ..auth.clone()
    }
}

pub(crate) fn trust_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../capf-trust/tests/fixtures")
            .join(format!("{name}.pem")),
    )
    .unwrap()
}

impl Server {
    /// Imports LSC records of `device` as the store keeps them (an offline CA's, or another
    /// store's): each serial (two bytes) in its state.
    pub(crate) fn import_lscs(&self, device: &str, lscs: &[([u8; 2], capf_store::LscState)]) {
        let now = SystemTime::now();
        let mut records = lscs.iter().map(|(serial, state)| capf_store::LscRecord {
            serial: serial.to_vec(),
            device: capf_store::DeviceName::new(device).unwrap(),
            der: vec![0x30, 0x00],
            not_before: now,
            not_after: now + std::time::Duration::from_secs(86_400),
            issued_at: now,
            state: *state,
            state_changed_at: now,
        });
        self.store.import_lscs(&mut records, now).unwrap();
    }

    /// Records a Pending request of `device` to the Offline CA, with a real CSR (a fixture
    /// key).
    pub(crate) fn record_offline_request(&self, device: &str) -> capf_store::CaRequest {
        use capf_store::SessionStore;
        let key = capf_test_support::issuer_key(capf_lsc::KeySpec::Ec(capf_lsc::Curve::P256));
        let subject: capf_lsc::x509_cert::name::Name =
            std::str::FromStr::from_str(&format!("CN={device}")).unwrap();
        let csr =
            capf_lsc::der::Encode::to_der(&capf_lsc::capf_csr(&subject, &key).unwrap()).unwrap();
        let spki = capf_lsc::der::Encode::to_der(capf_lsc::LscSigner::public_key(&key)).unwrap();
        self.store
            .record_ca_request(
                &capf_store::DeviceName::new(device).unwrap(),
                &capf_store::NewCaRequest {
                    mode: capf_store::CertificateIssuer::OfflineCa,
                    csr: &csr,
                    public_key: &spki,
                    ca_request_id: None,
                },
                SystemTime::now(),
            )
            .unwrap()
    }
}

/// The paths of the `.route("...", ...)` calls in `source` between `from` and `to`.
pub(crate) fn routes_between(source: &str, from: &str, to: &str) -> Vec<String> {
    let start = source.find(from).unwrap();
    let end = start + source[start..].find(to).unwrap();
    let mut routes = Vec::new();
    let mut rest = &source[start..end];
    while let Some(at) = rest.find(".route(") {
        rest = rest[at + ".route(".len()..].trim_start();
        let path = rest.strip_prefix('"').unwrap();
        let close = path.find('"').unwrap();
        routes.push(path[..close].to_owned());
        rest = &path[close..];
    }
    routes
}

/// A route's path with a sample value for each parameter.
pub(crate) fn sample_path(route: &str) -> String {
    let mut path = String::new();
    let mut rest = route;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        path.push_str("x1");
        rest = &rest[open + rest[open..].find('}').unwrap() + 1..];
    }
    path.push_str(rest);
    path
}
