//! Metrics and health (issue 18): capfd as a process with its administration listener
//! (`admin_listen`), phones enrolling over TLS with capf-phone, and `/metrics` read over HTTPS
//! with an API token: after a known set of sessions the counters read exactly that. `/readyz`
//! is 200, 503 naming the store when the store cannot answer, and in the Online CA mode 503
//! naming the CA when it is down (the AD CS test double, stopped). Logs in JSON parse line by
//! line and hold no secret.
//!
//! Phones never generate RSA keys here: a fixture key is the phone's pending key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/online_ca.rs"]
mod online_ca;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use capf_test_support::certsrv::{CertsrvDouble, Options, PASSWORD, TEMPLATE, USER};
use online_ca::{Capfd, free_port, ok, text};
use serde_json::Value;

const ADMIN_PASSWORD: &str = "a long monitoring password";
/// The authentication string of the device whose phone guesses wrong.
const AUTH_STRING: &str = "8231945";
const WRONG_GUESS: &str = "1111111";

/// The web administration of a capfd, as Prometheus and a load balancer reach it.
struct Admin {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    /// Waits for the listener, makes a read-only account and its API token.
    fn new(capfd: &Capfd, addr: SocketAddr) -> Admin {
        let cert = capfd.data().join("web-cert.pem");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() || !cert.exists() {
            assert!(
                Instant::now() < deadline,
                "the admin listener did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let added = capfd.set_with_password(
            &["admin", "add", "prometheus", "--role", "read-only"],
            ADMIN_PASSWORD,
        );
        assert!(added.status.success(), "{}", text(&added));
        let token = ok(&mut capfd.capfctl(&[
            "admin",
            "token",
            "create",
            "prometheus",
            "--label",
            "scrape",
        ]))
        .trim()
        .to_owned();
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
            )
            .resolve("localhost", addr)
            .build()
            .unwrap();
        Admin {
            client,
            base: format!("https://localhost:{}", addr.port()),
            token,
        }
    }

    async fn get(&self, path: &str, token: bool) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if token {
            req = req.bearer_auth(&self.token);
        }
        req.send().await.unwrap()
    }

    async fn readyz(&self) -> (u16, Value) {
        let resp = self.get("/readyz", false).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// Every sample of `/metrics`, by its name with labels.
    async fn metrics(&self) -> BTreeMap<String, f64> {
        let resp = self.get("/metrics", true).await;
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = resp.text().await.unwrap();
        parse_exposition(&text)
    }

    /// The metrics once no session runs any more (the phones have gone, the server may still
    /// be recording their ends), within 10 s.
    async fn metrics_when_idle(&self) -> BTreeMap<String, f64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.metrics().await;
            let running: f64 = m
                .iter()
                .filter(|(k, _)| k.starts_with("capf_sessions{"))
                .map(|(_, v)| v)
                .sum();
            if running == 0.0 || Instant::now() > deadline {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Samples of the text exposition format; every family has its HELP and TYPE before it.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut typed = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let family = series.split('{').next().unwrap();
        assert!(
            typed.iter().any(|t| family.starts_with(t.as_str())),
            "no TYPE for {line}"
        );
        samples.insert(series.to_owned(), value.parse::<f64>().unwrap());
    }
    samples
}

/// A phone session for `device`: with a fixture pending key when `key_dir` is given, an
/// authentication string when `auth` is, and no retries.
fn phone(capfd: &Capfd, device: &str, key_dir: Option<&Path>, auth: Option<&str>) -> Output {
    let mut command = Command::new(common::example("capf-phone"));
    command
        .args(["--server", &capfd.listen, "--device", device, "--trust"])
        .arg(capfd.data().join("capf.pem"))
        .args(["--retries", "0", "--max-retry-wait", "0"]);
    if let Some(dir) = key_dir {
        command.arg("--out").arg(dir);
    }
    if let Some(auth) = auth {
        command.args(["--auth-string", auth]);
    }
    command.stdin(Stdio::null()).output().unwrap()
}

/// Every line of capfd's log is a JSON object with a level and fields; none holds `secrets`.
fn check_json_log(capfd: &Capfd, secrets: &[&str]) -> usize {
    let log = std::fs::read_to_string(capfd.path("capfd.log")).unwrap();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
        lines += 1;
    }
    for secret in secrets {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
    let err = std::fs::read_to_string(capfd.path("capfd.err")).unwrap();
    for secret in secrets {
        assert!(!err.contains(secret), "{secret:?} in stderr:\n{err}");
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn after_known_enrollments_the_counters_read_exactly_that_and_readiness_follows_the_store() {
    let admin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // The file's keys this time (the Online CA test below uses the flags); CAPF signs.
    let capfd = Capfd::start_with(
        "metrics-capf",
        &format!("admin_listen = \"{admin_addr}\"\nlog_format = \"json\"\n"),
        &[],
    );
    let admin = Admin::new(&capfd, admin_addr);

    // Before any session: nothing counted, ready.
    let (status, ready) = admin.readyz().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["store"], "ok");
    assert!(ready["checks"].get("online_ca").is_none(), "{ready}");
    assert_eq!(admin.get("/healthz", false).await.status().as_u16(), 200);
    // Nothing of the API but the health checks without a token: /metrics neither.
    assert_eq!(admin.get("/metrics", false).await.status().as_u16(), 401);

    // 3 installs that succeed, 1 wrong authentication string, 1 unknown device, 1 device with
    // nothing to do.
    for n in 1..=3 {
        let device = format!("SEP00000000000{n}");
        capfd.add_device(&device);
        let out = capfd.phone_dir(&format!("phone{n}"), "rsa-2048.pem");
        let ran = phone(&capfd, &device, Some(&out), None);
        assert!(ran.status.success(), "{device}: {}", text(&ran));
    }
    ok(&mut capfd.capfctl(&[
        "device",
        "add",
        "SEP0000000000A1",
        "--operation",
        "install",
        "--auth-string",
        AUTH_STRING,
    ]));
    let ran = phone(&capfd, "SEP0000000000A1", None, Some(WRONG_GUESS));
    assert!(!ran.status.success(), "{}", text(&ran));
    let ran = phone(&capfd, "SEP0000000000FF", None, None);
    assert!(!ran.status.success(), "{}", text(&ran));
    ok(&mut capfd.capfctl(&["device", "add", "SEP0000000000B1"]));
    let ran = phone(&capfd, "SEP0000000000B1", None, None);
    assert!(ran.status.success(), "{}", text(&ran));

    let m = admin.metrics_when_idle().await;
    let enrollments: BTreeMap<&str, f64> = m
        .iter()
        .filter(|(k, v)| k.starts_with("capf_enrollments_total{") && **v != 0.0)
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        enrollments,
        BTreeMap::from([
            (
                "capf_enrollments_total{operation=\"install_upgrade\",outcome=\"authentication_failed\"}",
                1.0
            ),
            (
                "capf_enrollments_total{operation=\"install_upgrade\",outcome=\"succeeded\"}",
                3.0
            ),
            (
                "capf_enrollments_total{operation=\"none\",outcome=\"no_operation\"}",
                1.0
            ),
            (
                "capf_enrollments_total{operation=\"none\",outcome=\"unknown_device\"}",
                1.0
            ),
        ]),
        "{m:#?}"
    );
    let at = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in {m:#?}"));
    assert_eq!(at("capf_enrollment_seconds_count"), 3.0);
    assert_eq!(at("capf_enrollment_seconds_bucket{le=\"+Inf\"}"), 3.0);
    assert_eq!(at("capf_key_to_certificate_seconds_count"), 3.0);
    assert_eq!(
        at("capf_ca_calls_total{mode=\"capf\",outcome=\"issued\"}"),
        3.0
    );
    let other_ca_calls: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("capf_ca_calls_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(other_ca_calls, 3.0);
    assert_eq!(at("capf_ca_call_seconds_count{mode=\"capf\"}"), 3.0);
    assert_eq!(
        at("capf_authentication_failures_total{mode=\"authentication_string\"}"),
        1.0
    );
    assert_eq!(
        at("capf_authentication_failures_total{mode=\"existing_certificate\"}"),
        0.0
    );
    assert_eq!(at("capf_authentication_lockouts_total"), 0.0);
    assert_eq!(at("capf_key_generation_active"), 0.0);
    assert_eq!(at("capf_key_generation_queued"), 0.0);
    assert_eq!(at("capf_key_generation_refused_total"), 0.0);
    assert!(at("capf_store_call_seconds_count") > 0.0);
    assert_eq!(at("capf_store_call_errors_total"), 0.0);
    // capfd's first-run CAPF certificate is valid for years.
    assert!(at("capf_certificate_expiry_seconds") > 86_400.0 * 300.0);
    assert!(at("capf_certificate_not_after_timestamp_seconds") > 0.0);

    // The store cannot answer (its settings table is gone): not ready, naming the store; then
    // repaired, ready again.
    let db = rusqlite::Connection::open(capfd.data().join("capf.sqlite")).unwrap();
    db.execute_batch("ALTER TABLE settings RENAME TO settings_away")
        .unwrap();
    let (status, ready) = admin.readyz().await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not ready");
    assert_eq!(ready["not_ready"], serde_json::json!(["store"]));
    assert!(
        ready["checks"]["store"]
            .as_str()
            .unwrap()
            .contains("the store does not answer"),
        "{ready}"
    );
    db.execute_batch("ALTER TABLE settings_away RENAME TO settings")
        .unwrap();
    let (status, ready) = admin.readyz().await;
    assert_eq!(status, 200, "{ready}");

    let lines = check_json_log(
        &capfd,
        &[AUTH_STRING, WRONG_GUESS, ADMIN_PASSWORD, &admin.token],
    );
    assert!(lines > 10, "{lines} log lines");
}

/// The phone's RSA-2048 fixture key: not the double's root key (`rsa-2048.pem`).
const ONLINE_PHONE_KEY: &str = "intermediate-rsa-2048.pem";

#[tokio::test(flavor = "multi_thread")]
async fn in_the_online_ca_mode_readiness_follows_the_ca_and_ca_calls_are_counted_by_type() {
    let double = CertsrvDouble::start(&Options::default());
    let admin_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let addr = admin_addr.to_string();
    let capfd = Capfd::start_with(
        "metrics-online",
        online_ca::ONLINE_CA_CONFIG,
        &["--admin-listen", &addr, "--log-format", "json"],
    );
    capfd.trust_root(&double.root_pem);
    let set = capfd.set_microsoft(double.port, USER, PASSWORD, TEMPLATE);
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device("SEP001122334455");
    capfd.settle();
    let admin = Admin::new(&capfd, admin_addr);

    // The CA is up: ready, by a probe (no CA call yet).
    let (status, ready) = admin.readyz().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["online_ca"], "ok", "{ready}");

    let out = capfd.phone_dir("phone", ONLINE_PHONE_KEY);
    let ran = phone(&capfd, "SEP001122334455", Some(&out), None);
    assert!(ran.status.success(), "{}", text(&ran));
    let m = admin.metrics_when_idle().await;
    assert_eq!(
        m["capf_ca_calls_total{mode=\"online_microsoft\",outcome=\"issued\"}"], 1.0,
        "{m:#?}"
    );
    assert_eq!(
        m["capf_ca_call_seconds_count{mode=\"online_microsoft\"}"],
        1.0
    );
    assert_eq!(m["capf_ca_call_seconds_count{mode=\"capf\"}"], 0.0);
    assert_eq!(
        m["capf_enrollments_total{operation=\"install_upgrade\",outcome=\"succeeded\"}"],
        1.0
    );

    // The CA goes down: once the last answer is older than the readiness cache, a probe finds
    // it unreachable and readiness names it (the store is fine).
    drop(double);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, ready) = loop {
        let (status, ready) = admin.readyz().await;
        if status == 503 || Instant::now() > deadline {
            break (status, ready);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        ready["not_ready"],
        serde_json::json!(["online_ca"]),
        "{ready}"
    );
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");
    assert!(ready["checks"]["online_ca"].is_string(), "{ready}");

    check_json_log(&capfd, &[PASSWORD, ADMIN_PASSWORD, &admin.token]);
}
