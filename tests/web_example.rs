//! The `capf-web` example as a process (issue 18: "one command with embedded defaults starts
//! it", "it works against either store"): with nothing but a free port it serves HTTPS on
//! loopback with a self-signed certificate it made on first run (and keeps), and `/healthz`
//! answers over TLS; against a PostgreSQL store (`--store postgres://...`) the API's flows
//! (devices, paging, scheduling, bulk insert and update, settings, a Run Later job, the audit
//! with the account) work and land in the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use capf_store::{AdminStore, DeviceName, JobState, PgStore, SessionStore};
use capf_test_support::postgres::cluster;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capf-web-example-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// capf-web running: the process (killed on drop) and where it listens.
struct Web {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts capf-web in `dir` with `args` and reads its log until it says where it listens
/// (the port is the OS's choice: `--listen 127.0.0.1:0`).
fn start_web(dir: &Path, args: &[&str]) -> Web {
    let mut child = Command::new(common::example("capf-web"))
        .current_dir(dir)
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .env_remove("PGPASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            panic!("capf-web ended before listening: {seen:#?}");
        };
        let line = line.unwrap();
        if let Some(at) = line.find("listening on https://") {
            let rest = &line[at + "listening on https://".len()..];
            let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
            break rest[..end].parse::<SocketAddr>().unwrap();
        }
        seen.push(line);
    };
    // Keep reading its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Web { child, addr }
}

fn client(cert: &Path, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(cert).unwrap()).unwrap(),
        )
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn one_command_with_its_embedded_defaults_serves_healthz_over_tls() {
    let dir = scratch("defaults");
    // The defaults it documents: loopback, the data directory capf-data (the test listens on
    // a free loopback port instead of 8443, which another program may hold).
    let help = Command::new(common::example("capf-web"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("[default: 127.0.0.1:8443]"), "{help}");
    assert!(help.contains("[default: capf-data]"), "{help}");

    let cert = dir.join("capf-data").join(capf_web::tls::CERT_FILE);
    assert!(!cert.exists());
    let mut first_cert = Vec::new();
    for run in 0..2 {
        let web = start_web(&dir, &[]);
        // A self-signed certificate made on the first run, the same one after.
        let pem = std::fs::read(&cert).unwrap();
        if run == 0 {
            first_cert = pem;
        } else {
            assert_eq!(pem, first_cert);
        }
        let (status, body) = rt().block_on(async {
            let res = client(&cert, web.addr)
                .get(format!("https://localhost:{}/healthz", web.addr.port()))
                .send()
                .await
                .unwrap();
            (res.status(), res.json::<Value>().await.unwrap())
        });
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_eq!(body, json!({ "status": "ok" }));
        // Plain HTTP is not served.
        let plain = rt().block_on(async {
            reqwest::Client::new()
                .get(format!("http://{}/healthz", web.addr))
                .send()
                .await
        });
        assert!(
            plain.as_ref().map_or(true, |r| !r.status().is_success()),
            "{plain:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A JSON API call: status, `X-Total-Count`, body.
async fn call(
    c: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    csrf: &str,
    cookie: &str,
    body: Option<reqwest::Body>,
) -> (reqwest::StatusCode, Option<String>, Value) {
    let mut req = c
        .request(method, format!("{base}{path}"))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf);
    if let Some(b) = body {
        req = req.body(b).header("content-type", "application/json");
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let total = res
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    (
        status,
        total,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn the_api_works_against_a_postgresql_store() {
    let dir = scratch("postgres");
    let data = dir.join("data");
    let db = cluster().database();
    // The first administrator, made by capfctl in the database (the password on stdin).
    let mut add = Command::new(common::example("capfctl"))
        .args(["admin", "add", "alice", "--role", "admin", "--data"])
        .arg(&data)
        .args(["--store", &db.url])
        .env_remove("PGPASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let web = start_web(
        &dir,
        &["--data", data.to_str().unwrap(), "--store", &db.url],
    );
    let cert = data.join(capf_web::tls::CERT_FILE);
    let c = client(&cert, web.addr);
    let base = format!("https://localhost:{}", web.addr.port());
    use reqwest::Method as M;
    use reqwest::StatusCode as S;
    let j = |v: Value| Some(reqwest::Body::from(v.to_string()));
    rt().block_on(async {
        let ready = c.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), S::OK);
        let login = c
            .post(format!("{base}/api/login"))
            .json(&json!({ "name": "alice", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), S::OK);
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = login.json::<Value>().await.unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let api = |m: M, path: &str, body: Option<reqwest::Body>| {
            let (c, base, csrf, cookie) = (&c, &base, &csrf, &cookie);
            let path = path.to_owned();
            async move { call(c, base, m, &path, csrf, cookie, body).await }
        };

        let (status, _, body) = api(
            M::POST,
            "/api/devices",
            j(json!({ "name": "SEP001122334455", "device_pool": "Lobby" })),
        )
        .await;
        assert_eq!(status, S::CREATED, "{body}");
        let (status, _, body) = api(
            M::POST,
            "/api/devices/SEP001122334455/schedule",
            j(json!({ "operation": "install", "auth_string": "123456" })),
        )
        .await;
        assert_eq!(status, S::OK, "{body}");
        let csv = "device_name,device_pool\nSEP0000000000A1,Lobby\nSEP0000000000A2,Office\n";
        let (status, _, body) = api(
            M::POST,
            "/api/bulk/insert",
            Some(reqwest::Body::from(csv)),
        )
        .await;
        assert_eq!(status, S::OK, "{body}");
        assert_eq!(body["added"], 2);
        let (status, total, body) = api(M::GET, "/api/devices?pool=Lobby&limit=1", None).await;
        assert_eq!(status, S::OK, "{body}");
        assert_eq!(total.as_deref(), Some("2"));
        assert_eq!(body[0]["name"], "SEP0000000000A1");
        let (_, _, preview) = api(
            M::POST,
            "/api/bulk/update",
            j(json!({ "filter": { "pool": "Lobby" }, "model": "Cisco 8865", "dry_run": true })),
        )
        .await;
        assert_eq!(preview["changed"], 2, "{preview}");
        let (status, _, applied) = api(
            M::POST,
            "/api/bulk/update",
            j(json!({ "filter": { "pool": "Lobby" }, "model": "Cisco 8865" })),
        )
        .await;
        assert_eq!(status, S::OK, "{applied}");
        let (status, _, body) = api(
            M::PUT,
            "/api/settings",
            j(json!({ "keepalive_minutes": "20" })),
        )
        .await;
        assert_eq!(status, S::OK, "{body}");
        let (status, _, job) = api(
            M::POST,
            "/api/bulk/update",
            j(json!({ "filter": { "pool": "Office" }, "model": "Cisco 7821", "at": "2030-01-01T00:00:00Z" })),
        )
        .await;
        assert_eq!(status, S::ACCEPTED, "{job}");
        let (status, _, cancelled) = api(
            M::POST,
            &format!("/api/jobs/{}/cancel", job["id"]),
            None,
        )
        .await;
        assert_eq!(status, S::OK, "{cancelled}");
        let (status, _, body) = api(M::GET, "/api/devices/SEP00000000FFFF", None).await;
        assert_eq!(status, S::NOT_FOUND, "{body}");
    });

    // What the API did is in the database, as a node reads it.
    let key: [u8; 32] = std::fs::read(data.join("auth-string.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let store = PgStore::connect(db.url.parse().unwrap(), key).unwrap();
    let device = |n: &str| store.device(&DeviceName::new(n).unwrap()).unwrap().unwrap();
    let phone = device("SEP001122334455");
    assert!(phone.has_operation_to_run());
    assert!(phone.has_auth_string);
    assert_eq!(phone.model, "Cisco 8865");
    assert_eq!(device("SEP0000000000A2").model, "");
    assert_eq!(
        store.settings().unwrap().rows()[0],
        ("keepalive_minutes", "20".to_owned())
    );
    let jobs = store.jobs(None).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Cancelled);
    let audit = store.audit(None, 1000).unwrap();
    let changes: Vec<_> = audit.iter().filter(|e| e.device.is_some()).collect();
    assert!(changes.len() >= 5, "{audit:?}");
    assert!(
        changes.iter().all(|e| e.actor.as_deref() == Some("alice")),
        "{audit:?}"
    );
    drop(web);
    let _ = std::fs::remove_dir_all(&dir);
}
