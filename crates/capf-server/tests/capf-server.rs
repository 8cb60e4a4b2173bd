//! End to end over TLS on 127.0.0.1 and [::1]: the server with a real SQLite store and CAPF
//! certificate files, and `capf-phone` (or a raw TLS client) as the phone. The enrollment
//! handler's own tests, without sockets or TLS, are in `handler`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_lsc::{Curve, KeyOrder, KeyPolicy, KeySpec, RsaBits, certificate_to_pem};
use capf_phone::{KeyPool, Phone, PhoneAuth, PhoneConfig, PhoneKey};
use capf_server::{CapfServer, Config, ServerHandle};
use capf_store::{
    AdminStore, AuthMode, DeviceName, LscState, NewDevice, Operation, OperationStatus,
    SessionStore, SqliteStore,
};
use capf_wire::Reason;

/// The reason the last session was refused with before it authenticated: audited, and the
/// device's status neither Failed nor InProgress (issue 12 item 4).
fn refused_reason(store: &SqliteStore) -> String {
    let d = store.device(&dn(PHONE)).unwrap().unwrap();
    assert!(
        !matches!(
            d.status,
            OperationStatus::Failed { .. } | OperationStatus::InProgress
        ),
        "a refused session changed the status: {:?}",
        d.status
    );
    let refused = store.audit(None, 100).unwrap();
    let entry = refused
        .iter()
        .find(|e| e.action == capf_store::action::SESSION_REFUSED)
        .expect("the refusal is audited");
    entry.detail.clone()
}

#[path = "capf-server/handler.rs"]
mod handler;

const PHONE: &str = "SEP001122334455";

/// A device name the test knows is valid.
fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

struct Lab {
    dir: PathBuf,
    store: Arc<SqliteStore>,
    server: Option<ServerHandle>,
    capf_pem: String,
    /// The server's sessions' service (its metrics).
    service: Arc<capf_server::EnrollmentService>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capf-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The server on 127.0.0.1 and [::1] (ephemeral ports) with an RSA-2048 CAPF certificate.
async fn lab(name: &str, tune: impl FnOnce(&mut Config)) -> Lab {
    lab_with(name, None, tune).await
}

/// As [`lab`], with these run-time settings in the store before the server starts.
async fn lab_with(
    name: &str,
    settings: Option<capf_store::Settings>,
    tune: impl FnOnce(&mut Config),
) -> Lab {
    let dir = temp_dir(name);
    let issuer = capf_test_support::capf_issuer(KeySpec::Rsa(RsaBits::B2048));
    let capf_pem = certificate_to_pem(issuer.certificate()).unwrap();
    std::fs::write(dir.join("capf.pem"), &capf_pem).unwrap();
    std::fs::write(
        dir.join("capf.key"),
        capf_test_support::key_pem(KeySpec::Rsa(RsaBits::B2048)),
    )
    .unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("data")).unwrap());
    if let Some(settings) = settings {
        store.update_settings(&settings, SystemTime::now()).unwrap();
    }
    let mut config = Config::new(dir.join("capf.pem"), dir.join("capf.key"));
    config.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    config.reload_interval = Duration::from_millis(100);
    tune(&mut config);
    let server = CapfServer::bind(config, store.clone()).await.unwrap();
    let service = server.service();
    Lab {
        dir,
        store,
        server: Some(server.spawn()),
        capf_pem,
        service,
    }
}

impl Lab {
    fn addr(&self, v6: bool) -> SocketAddr {
        *self
            .server
            .as_ref()
            .unwrap()
            .local_addrs()
            .iter()
            .find(|a| a.is_ipv6() == v6)
            .unwrap()
    }

    fn add(&self, operation: Operation, auth: AuthMode, string: Option<&str>) {
        let mut d = NewDevice::new(dn(PHONE));
        d.operation = operation;
        d.auth_mode = auth;
        d.auth_string = string.map(str::to_owned);
        self.store.add_device(&d, SystemTime::now()).unwrap();
    }

    fn phone(&self, v6: bool, keys: Vec<PhoneKey>) -> Phone {
        self.phone_with(v6, keys, |_| {})
    }

    /// A phone for this lab, its configuration changed by `tune`.
    fn phone_with(
        &self,
        v6: bool,
        keys: Vec<PhoneKey>,
        tune: impl FnOnce(&mut PhoneConfig),
    ) -> Phone {
        let addr = self.addr(v6);
        let mut config =
            PhoneConfig::new(dn(PHONE), &addr.ip().to_string(), self.capf_pem.as_bytes()).unwrap();
        config.port = addr.port();
        config.retries = 0;
        tune(&mut config);
        Phone::new(config, Arc::new(KeyPool(keys))).unwrap()
    }

    fn status(&self) -> OperationStatus {
        self.store.device(&dn(PHONE)).unwrap().unwrap().status
    }

    async fn stop(mut self) {
        self.server
            .take()
            .unwrap()
            .shutdown(Duration::from_secs(1))
            .await;
    }
}

fn key(spec: KeySpec) -> PhoneKey {
    PhoneKey::from_pkcs8_pem(capf_test_support::key_pem(spec)).unwrap()
}

fn install(order: KeyOrder, rsa: RsaBits, curve: Curve) -> Operation {
    Operation::InstallUpgrade(KeyPolicy { order, rsa, curve })
}

/// Install/Upgrade with UCM's defaults: RSA only, 2048 bits.
fn rsa_install() -> Operation {
    install(KeyOrder::RsaOnly, RsaBits::B2048, Curve::P256)
}

/// `openssl verify` of an LSC against the CAPF certificate.
fn openssl_verify(dir: &Path, capf_pem: &str, lsc_der: &[u8]) {
    let lsc = capf_lsc::certificate_from_pem_or_der(lsc_der).unwrap();
    let lsc_path = dir.join("lsc.pem");
    std::fs::write(&lsc_path, certificate_to_pem(&lsc).unwrap()).unwrap();
    let ca_path = dir.join("capf-ca.pem");
    std::fs::write(&ca_path, capf_pem).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(&ca_path)
        .arg(&lsc_path)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 12 item 2: bare TCP connections from one address (127.0.0.2), more than the sessions
/// allowed in all, do not keep a phone on another address (127.0.0.1) from enrolling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_leave_room_for_phones_from_others() {
    let settings = capf_store::Settings {
        max_sessions: 150,
        max_sessions_per_address: 64,
        ..capf_store::Settings::default()
    };
    let lab = lab_with("flood", Some(settings), |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let target = lab.addr(false);
    let mut idle = Vec::new();
    for _ in 0..200 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(socket.connect(target).await.unwrap());
    }
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let e = phone.run().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::UPDATE_CERTIFICATE));
    assert_eq!(lab.status(), OperationStatus::Success);
    drop(idle);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_an_rsa_2048_lsc_over_ipv4_that_openssl_verifies() {
    let lab = lab("install-rsa", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let e = phone.run().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::UPDATE_CERTIFICATE));
    let (der, _) = e.installed.clone().expect("an LSC installed");
    assert!(e.succeeded());
    assert_eq!(lab.status(), OperationStatus::Success);
    let lscs = lab.store.lscs(&dn(PHONE)).unwrap();
    assert_eq!(lscs.len(), 1);
    assert_eq!(lscs[0].state, LscState::Installed);
    assert_eq!(lscs[0].der, der);
    openssl_verify(&lab.dir, &lab.capf_pem, &der);
    // The operation is done: the next session is told there is nothing to do.
    let again = phone.run_once().await.unwrap();
    assert_eq!(again.end_reason(), Some(Reason::NO_ACTION));
    lab.stop().await;
}

/// Issue 19: what one enrollment costs the store, through the real server, so it cannot grow
/// unseen: the attempt begun (committed without a sync of its own), the LSC issued (synced
/// before the phone receives it), the install (synced before END_SESSION).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_enrollment_costs_three_writes_and_two_syncs() {
    let lab = lab("write-count", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let before = lab.store.write_stats();
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    assert!(phone.run().await.unwrap().succeeded());
    let after = lab.store.write_stats();
    assert_eq!(after.writes - before.writes, 3, "{before:?} {after:?}");
    assert_eq!(after.commits - before.commits, 3, "{before:?} {after:?}");
    assert_eq!(after.syncs - before.syncs, 2, "{before:?} {after:?}");
    lab.stop().await;
}

/// The value of the metric sample `name_and_labels` in the server's metrics.
fn metric(lab: &Lab, name_and_labels: &str) -> u64 {
    let text = lab.service.metrics().render(SystemTime::now());
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"));
    line.parse().unwrap()
}

/// Issue 19: capf-phone's load generator gives each simulated phone its own TLS session cache,
/// so every phone's first contact is a full handshake (the CAPF key signs), as a fleet's is; a
/// phone that connects again resumes its own session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_makes_full_handshakes_and_a_returning_phone_resumes() {
    let lab = lab("handshakes", |_| {}).await;
    let names: Vec<DeviceName> = (1..=3)
        .map(|n| dn(&capf_phone::load::simulated_device_name("SEP", n)))
        .collect();
    for name in &names {
        let mut d = NewDevice::new(name.clone());
        d.operation = rsa_install();
        lab.store.add_device(&d, SystemTime::now()).unwrap();
    }
    let addr = lab.addr(false);
    let target = capf_phone::load::LoadTarget {
        host: addr.ip().to_string(),
        port: addr.port(),
        trust_pem: lab.capf_pem.clone().into_bytes(),
        tls_versions: capf_phone::TlsVersions::default(),
    };
    let keys = Arc::new(KeyPool(vec![key(KeySpec::Rsa(RsaBits::B2048))]));
    // One at a time, so a shared cache would have a ticket for every phone after the first.
    let report = capf_phone::load::enroll(&target, names, keys, 1)
        .await
        .unwrap();
    assert_eq!(report.enrolled, 3, "{:?}", report.failed);
    assert_eq!(metric(&lab, "capf_tls_handshakes_total{kind=\"full\"}"), 3);
    assert_eq!(
        metric(&lab, "capf_tls_handshakes_total{kind=\"resumed\"}"),
        0
    );
    // One phone, twice: its second session resumes its first.
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    assert!(phone.run().await.unwrap().succeeded());
    assert_eq!(
        phone.run_once().await.unwrap().end_reason(),
        Some(Reason::NO_ACTION)
    );
    assert_eq!(metric(&lab, "capf_tls_handshakes_total{kind=\"full\"}"), 4);
    assert_eq!(
        metric(&lab, "capf_tls_handshakes_total{kind=\"resumed\"}"),
        1
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_offering_only_tls_1_2_installs_its_lsc() {
    let lab = lab("tls12", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let keys = vec![key(KeySpec::Rsa(RsaBits::B2048))];
    let mut phone = lab.phone_with(false, keys, |c| {
        c.tls_versions = capf_phone::TlsVersions::Tls12Only;
    });
    let e = phone.run().await.unwrap();
    assert!(e.succeeded(), "{e:?}");
    let (der, _) = e.installed.clone().expect("an LSC installed");
    assert_eq!(lab.status(), OperationStatus::Success);
    assert_eq!(
        lab.store.lscs(&dn(PHONE)).unwrap()[0].state,
        LscState::Installed
    );
    openssl_verify(&lab.dir, &lab.capf_pem, &der);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_ec_lscs_on_every_curve_over_ipv6() {
    let lab = lab("install-ec", |_| {}).await;
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let op = install(KeyOrder::EcOnly, RsaBits::B2048, curve);
        if lab.store.device(&dn(PHONE)).unwrap().is_none() {
            lab.add(op, AuthMode::NullString, None);
        } else {
            lab.store
                .schedule(&dn(PHONE), op, None, SystemTime::now())
                .unwrap();
        }
        let mut phone = lab.phone(true, vec![key(KeySpec::Ec(curve))]);
        let e = phone.run_once().await.unwrap();
        assert_eq!(e.server, lab.addr(true));
        assert_eq!(e.requested, Some(KeySpec::Ec(curve)), "{curve}");
        let (der, _) = e.installed.expect("installed");
        openssl_verify(&lab.dir, &lab.capf_pem, &der);
    }
    let states: Vec<LscState> = lab
        .store
        .lscs(&dn(PHONE))
        .unwrap()
        .iter()
        .map(|l| l.state)
        .collect();
    assert_eq!(
        states,
        [
            LscState::Superseded,
            LscState::Superseded,
            LscState::Installed
        ]
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troubleshoot_fetches_the_lsc_and_delete_removes_it() {
    let lab = lab("fetch-delete", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let (der, _) = phone.run_once().await.unwrap().installed.unwrap();

    lab.store
        .schedule(&dn(PHONE), Operation::Troubleshoot, None, SystemTime::now())
        .unwrap();
    let e = phone.run_once().await.unwrap();
    assert!(e.fetched);
    assert_eq!(e.end_reason(), Some(Reason::NO_ACTION));
    let results = lab.store.troubleshoot_results(&dn(PHONE)).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].certificate.as_ref().unwrap().der, der);

    lab.store
        .schedule(&dn(PHONE), Operation::Delete, None, SystemTime::now())
        .unwrap();
    let e = phone.run_once().await.unwrap();
    assert!(e.deleted);
    assert_eq!(e.end_reason(), Some(Reason::UPDATE_CERTIFICATE));
    assert_eq!(lab.status(), OperationStatus::Success);
    assert_eq!(
        lab.store.lscs(&dn(PHONE)).unwrap()[0].state,
        LscState::Deleted
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_device_gets_9_and_no_operation_gets_0() {
    let lab = lab("unknown", |_| {}).await;
    let mut phone = lab.phone(false, vec![]);
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::UNKNOWN_DEVICE));
    lab.add(Operation::None, AuthMode::NullString, None);
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::NO_ACTION));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_authentication_string_fails_and_is_throttled() {
    let lab = lab("auth-string", |_| {}).await;
    lab.add(
        rsa_install(),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    let mut settings = lab.store.settings().unwrap();
    settings.auth_failure_limit = 2;
    lab.store
        .update_settings(&settings, SystemTime::now())
        .unwrap();
    // The server re-reads its settings every 2 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    phone.config_mut().auth = PhoneAuth::AuthenticationString("999999".into());
    for _ in 0..2 {
        let e = phone.run_once().await.unwrap();
        assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
    }
    assert_eq!(
        lab.store.device(&dn(PHONE)).unwrap().unwrap().auth_failures,
        2
    );
    // Locked out: even the right string is refused now, and nothing was issued.
    phone.config_mut().auth = PhoneAuth::AuthenticationString("123456".into());
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
    assert!(lab.store.lscs(&dn(PHONE)).unwrap().is_empty());
    assert_eq!(lab.status(), OperationStatus::Pending);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_authentication_string_installs_and_is_cleared() {
    let lab = lab("auth-ok", |_| {}).await;
    lab.add(
        rsa_install(),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    phone.config_mut().auth = PhoneAuth::AuthenticationString("123456".into());
    let e = phone.run_once().await.unwrap();
    assert!(e.installed.is_some());
    assert!(
        !lab.store
            .device(&dn(PHONE))
            .unwrap()
            .unwrap()
            .has_auth_string
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_by_date_passed_expires_the_operation() {
    let lab = lab("expired", |_| {}).await;
    let mut d = NewDevice::new(dn(PHONE));
    d.operation = rsa_install();
    d.complete_by = Some(SystemTime::now() - Duration::from_secs(60));
    lab.store.add_device(&d, SystemTime::now()).unwrap();
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
    assert_eq!(lab.status(), OperationStatus::Expired);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_ipv6_false_refuses_ipv6_peers_only() {
    let lab = lab("no-ipv6", |c| {
        c.enable_ipv6 = capf_ipmode::EnableIpv6::False
    })
    .await;
    lab.add(Operation::None, AuthMode::NullString, None);
    let mut v6 = lab.phone(true, vec![]);
    let err = v6.run_once().await.unwrap_err();
    assert!(matches!(err, capf_phone::Error::Connect { .. }), "{err}");
    let mut v4 = lab.phone(false, vec![]);
    assert_eq!(
        v4.run_once().await.unwrap().end_reason(),
        Some(Reason::NO_ACTION)
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_cannot_make_the_key_fails_the_attempt_and_keeps_it_scheduled() {
    let lab = lab("keygen-fail", |_| {}).await;
    lab.add(
        install(KeyOrder::EcPreferredRsaBackup, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    // No EC key: the phone reports a key-generation failure; the next attempt asks for RSA.
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.requested, Some(KeySpec::Ec(Curve::P256)));
    assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
    let d = lab.store.device(&dn(PHONE)).unwrap().unwrap();
    assert!(d.ec_key_generation_failed);
    assert!(matches!(d.status, OperationStatus::Failed { .. }));
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.requested, Some(KeySpec::Rsa(RsaBits::B2048)));
    assert!(e.installed.is_some());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regenerated_capf_certificate_is_served_without_restart() {
    let lab = lab("reload", |_| {}).await;
    lab.add(Operation::None, AuthMode::NullString, None);
    let next = capf_test_support::capf_issuer(KeySpec::Ec(Curve::P384));
    let next_pem = certificate_to_pem(next.certificate()).unwrap();
    std::fs::write(
        lab.dir.join("capf.key"),
        capf_test_support::key_pem(KeySpec::Ec(Curve::P384)),
    )
    .unwrap();
    std::fs::write(lab.dir.join("capf.pem"), &next_pem).unwrap();
    // A phone trusting only the new certificate gets through once the server reloaded.
    let addr = lab.addr(false);
    let mut config = PhoneConfig::new(dn(PHONE), "127.0.0.1", next_pem.as_bytes()).unwrap();
    config.port = addr.port();
    config.retries = 20;
    config.retry_interval = Duration::from_millis(100);
    let mut phone = Phone::new(config, Arc::new(KeyPool(vec![]))).unwrap();
    let e = phone.run().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::NO_ACTION));
    lab.stop().await;
}

#[test]
fn a_first_run_creates_a_capf_certificate_that_passes_the_profile() {
    let dir = temp_dir("first-run");
    let files = capf_server::ensure_capf_files(&dir, SystemTime::now()).unwrap();
    assert!(files.created);
    capf_server::CapfIdentity::load(&files.certificate, &files.key, SystemTime::now()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }
    let again = capf_server::ensure_capf_files(&dir, SystemTime::now()).unwrap();
    assert!(!again.created);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A raw CAPF client over TLS: sends exactly the bytes a test gives, reads whole messages.
struct Raw {
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    deframer: capf_wire::Deframer,
    pending: Vec<u8>,
}

impl Raw {
    async fn connect(lab: &Lab) -> Raw {
        let addr = lab.addr(false);
        let trust = vec![
            capf_lsc::certificate_to_der(
                &capf_lsc::certificate_from_pem_or_der(lab.capf_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        ];
        let connector =
            tokio_rustls::TlsConnector::from(capf_phone::client_config(&trust).unwrap());
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        Raw {
            tls: connector.connect(name, tcp).await.unwrap(),
            deframer: capf_wire::Deframer::new(capf_wire::Strictness::Strict),
            pending: Vec::new(),
        }
    }

    /// The next whole message, or `None` when the server closed.
    async fn recv(&mut self) -> Option<capf_wire::Message<'static>> {
        use tokio::io::AsyncReadExt;
        loop {
            if !self.pending.is_empty() {
                let input = std::mem::take(&mut self.pending);
                let (used, frame) = self.deframer.push(&input).unwrap();
                let message =
                    frame.map(|f| capf_wire::Message::from_frame(&f).unwrap().into_owned());
                self.pending = input[used..].to_vec();
                if message.is_some() {
                    return message;
                }
                continue;
            }
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.tls.read(&mut buf))
                .await
                .expect("server answers within 10 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.tls.write_all(bytes).await.unwrap();
        self.tls.flush().await.unwrap();
    }

    /// Reads AUTH_REQUEST and answers it with `version`, null string.
    async fn authenticate(&mut self, version: u8) -> u32 {
        let request = self.recv().await.expect("AUTH_REQUEST");
        assert_eq!(request.command(), capf_wire::Command::AUTH_REQUEST);
        let response = capf_wire::AuthResponse::new(PHONE, version)
            .unwrap()
            .with_password("")
            .unwrap();
        self.send(&capf_wire::Message::new(request.session_id, response).to_bytes())
            .await;
        request.session_id
    }
}

/// An AUTH_RESPONSE header (protocol id 0x55, command 2) announcing a body of `len` bytes.
fn auth_response_header(session_id: u32, len: u16) -> Vec<u8> {
    let mut bytes = vec![0x55, 2];
    bytes.extend_from_slice(&session_id.to_be_bytes());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes
}

fn end_session_reason(m: &capf_wire::Message<'_>) -> Reason {
    match &m.payload {
        capf_wire::Payload::EndSession(e) => e.reason(),
        other => panic!("expected END_SESSION, got {other:?}"),
    }
}

fn unchanged(lab: &Lab) {
    let d = lab.store.device(&dn(PHONE)).unwrap().unwrap();
    assert_eq!((d.status, d.attempts), (OperationStatus::Pending, 0));
    assert!(lab.store.lscs(&dn(PHONE)).unwrap().is_empty());
}

/// Issue 12 item 2: a peer past TLS that never sends AUTH_RESPONSE is cut off at the short
/// deadline before authentication, not the 30 s message timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_after_tls_gets_end_session_7_at_the_auth_response_deadline() {
    let settings = capf_store::Settings {
        auth_response_timeout: Duration::from_secs(1),
        ..capf_store::Settings::default()
    };
    let lab = lab_with("raw-silent", Some(settings), |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut raw = Raw::connect(&lab).await;
    let request = raw.recv().await.unwrap();
    assert_eq!(request.command(), capf_wire::Command::AUTH_REQUEST);
    let end = raw.recv().await.expect("END_SESSION");
    assert_eq!(end_session_reason(&end), Reason::INVALID_ELEMENT);
    assert!(raw.recv().await.is_none());
    unchanged(&lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_order_message_gets_end_session_7_and_changes_nothing() {
    let lab = lab("raw-order", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut raw = Raw::connect(&lab).await;
    let request = raw.recv().await.unwrap();
    // KEY_GEN_RESPONSE where AUTH_RESPONSE belongs.
    let spki = key(KeySpec::Rsa(RsaBits::B2048)).spki_der().to_vec();
    let wrong = capf_wire::KeyGenResponse::with_public_key(spki).unwrap();
    raw.send(&capf_wire::Message::new(request.session_id, wrong).to_bytes())
        .await;
    let end = raw.recv().await.expect("END_SESSION");
    assert_eq!(end_session_reason(&end), Reason::INVALID_ELEMENT);
    assert!(raw.recv().await.is_none(), "closed after END_SESSION");
    unchanged(&lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_content_with_intact_framing_gets_end_session_7() {
    let lab = lab("raw-content", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut raw = Raw::connect(&lab).await;
    let request = raw.recv().await.unwrap();
    // AUTH_RESPONSE with an unknown element tag 0x99 (length 1): the framing is intact.
    let mut bytes = auth_response_header(request.session_id, 4);
    bytes.extend_from_slice(&[0x99, 0x00, 0x01, 0x00]);
    raw.send(&bytes).await;
    assert_eq!(
        end_session_reason(&raw.recv().await.unwrap()),
        Reason::INVALID_ELEMENT
    );
    unchanged(&lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_framing_is_closed_without_a_message() {
    let lab = lab("raw-framing", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut raw = Raw::connect(&lab).await;
    let request = raw.recv().await.unwrap();
    // A header announcing a body past the 16376-byte cap.
    let bytes = auth_response_header(request.session_id, 0xffff);
    raw.send(&bytes).await;
    assert!(raw.recv().await.is_none(), "closed without END_SESSION");
    unchanged(&lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_client_is_asked_for_rsa_as_key_size_only() {
    let lab = lab("jabber", |_| {}).await;
    lab.add(
        install(KeyOrder::EcPreferredRsaBackup, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    let mut raw = Raw::connect(&lab).await;
    let session_id = raw.authenticate(2).await;
    let request = raw.recv().await.expect("KEY_GEN_REQUEST");
    let capf_wire::Payload::KeyGenRequest(k) = &request.payload else {
        panic!("expected KEY_GEN_REQUEST, got {request:?}");
    };
    // Spec 8.11: KEY_SIZE only, no KEY_TYPE, so RSA even though EC is preferred.
    assert_eq!((k.key_size(), k.key_type()), (Some(2048), None));
    let spki = key(KeySpec::Rsa(RsaBits::B2048)).spki_der().to_vec();
    let response = capf_wire::KeyGenResponse::with_public_key(spki).unwrap();
    raw.send(&capf_wire::Message::new(session_id, response).to_bytes())
        .await;
    let store = raw.recv().await.expect("STORE_CERT_REQUEST");
    assert_eq!(store.command(), capf_wire::Command::STORE_CERT_REQUEST);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_hangs_up_mid_install_leaves_an_unconfirmed_lsc_that_goes_stale() {
    let lab = lab("hang-up", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut raw = Raw::connect(&lab).await;
    let session_id = raw.authenticate(3).await;
    let _key_request = raw.recv().await.expect("KEY_GEN_REQUEST");
    let spki = key(KeySpec::Rsa(RsaBits::B2048)).spki_der().to_vec();
    let response = capf_wire::KeyGenResponse::with_public_key(spki).unwrap();
    raw.send(&capf_wire::Message::new(session_id, response).to_bytes())
        .await;
    let store = raw.recv().await.expect("STORE_CERT_REQUEST");
    assert_eq!(store.command(), capf_wire::Command::STORE_CERT_REQUEST);
    drop(raw); // gone before STORE_CERT_RESPONSE
    // The LSC stays issued and unconfirmed; the operation pending for the next attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lab.status() != OperationStatus::Pending {
        assert!(
            std::time::Instant::now() < deadline,
            "device still {:?}",
            lab.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lscs = lab.store.lscs(&dn(PHONE)).unwrap();
    assert_eq!(lscs.len(), 1);
    assert_eq!(lscs[0].state, LscState::Issued);
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    assert!(phone.run_once().await.unwrap().installed.is_some());
    let states: Vec<LscState> = lab
        .store
        .lscs(&dn(PHONE))
        .unwrap()
        .iter()
        .map(|l| l.state)
        .collect();
    assert_eq!(states, [LscState::Stale, LscState::Installed]);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_key_generation_queue_refuses_with_7_and_keeps_the_operation_pending() {
    let lab = lab("queue", |_| {}).await;
    let mut settings = lab.store.settings().unwrap();
    settings.max_key_generation_sessions = 1;
    settings.key_generation_queue = 0;
    lab.store
        .update_settings(&settings, SystemTime::now())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let other = "SEP00000000BEEF";
    for name in [PHONE, other] {
        let mut d = NewDevice::new(dn(name));
        d.operation = rsa_install();
        lab.store.add_device(&d, SystemTime::now()).unwrap();
    }
    // The other phone holds the only key-generation slot (it never answers KEY_GEN_REQUEST).
    let mut holder = Raw::connect(&lab).await;
    let request = holder.recv().await.unwrap();
    let response = capf_wire::AuthResponse::new(other, 3)
        .unwrap()
        .with_password("")
        .unwrap();
    holder
        .send(&capf_wire::Message::new(request.session_id, response).to_bytes())
        .await;
    assert_eq!(
        holder.recv().await.unwrap().command(),
        capf_wire::Command::KEY_GEN_REQUEST
    );
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
    assert_eq!(lab.status(), OperationStatus::Pending);
    drop(holder);
    // With the slot free again, the phone's next attempt installs.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(phone.run_once().await.unwrap().installed.is_some());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_session_in_flight_leaves_the_operation_to_the_next_attempt() {
    let mut lab = lab("restart", |_| {}).await;
    lab.add(rsa_install(), AuthMode::NullString, None);
    let mut raw = Raw::connect(&lab).await;
    raw.authenticate(3).await;
    assert_eq!(
        raw.recv().await.unwrap().command(),
        capf_wire::Command::KEY_GEN_REQUEST
    );
    // The phone is generating its key when CAPF stops: past the grace period the session ends
    // with END_SESSION 7.
    let stopping = tokio::spawn(
        lab.server
            .take()
            .unwrap()
            .shutdown(Duration::from_millis(300)),
    );
    let end = raw.recv().await.expect("END_SESSION");
    assert_eq!(end_session_reason(&end), Reason::INVALID_ELEMENT);
    stopping.await.unwrap();
    assert_eq!(lab.status(), OperationStatus::Pending);
    // A crash leaves a device In Progress: the next start puts it back to Pending.
    lab.store
        .begin_attempt(&dn(PHONE), SystemTime::now())
        .unwrap();
    let mut config = Config::new(lab.dir.join("capf.pem"), lab.dir.join("capf.key"));
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    lab.server = Some(
        CapfServer::bind(config, lab.store.clone())
            .await
            .unwrap()
            .spawn(),
    );
    assert_eq!(lab.status(), OperationStatus::Pending);
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    assert!(phone.run_once().await.unwrap().installed.is_some());
    lab.stop().await;
}

/// Authentication by existing certificate over TLS end to end: fixture CAs for a manufacturing
/// root, this CAPF, a foreign cluster's CAPF and a SUDI root.
mod certificate_authentication {
    use super::*;
    use capf_lsc::{Issuer, IssuerKey, LscParams, PhonePublicKey, ValidityDays};
    use capf_phone::CertificateProof;
    use capf_trust::{Cert, Purpose, StoreDir};
    use capf_wire::CertificateType;

    pub(crate) fn ca(cn: &str, spec: KeySpec, intermediate_key: bool) -> Issuer {
        let pem = if intermediate_key {
            capf_test_support::intermediate_key_pem(spec)
        } else {
            capf_test_support::key_pem(spec)
        };
        let key = IssuerKey::from_pkcs8_pem(pem).unwrap();
        let mut params = capf_test_support::ca_params(cn, Some(0));
        if cn.starts_with("CAPF-") {
            params.common_name = cn.to_owned();
        }
        let cert = params
            .self_signed(
                &key,
                capf_test_support::now(),
                &mut capf_test_support::serials(),
            )
            .unwrap();
        Issuer::new(cert, Box::new(key)).unwrap()
    }

    pub(crate) fn issue(issuer: &Issuer, device: &str, key: &PhoneKey) -> Vec<u8> {
        let public = PhonePublicKey::from_der(key.spki_der()).unwrap();
        let params = LscParams {
            device_name: device.to_owned(),
            validity: ValidityDays::MAX,
        };
        let cert = issuer
            .issue_lsc(
                &public,
                &params,
                capf_test_support::now(),
                &mut capf_test_support::serials(),
            )
            .unwrap();
        capf_lsc::certificate_to_der(&cert).unwrap()
    }

    /// Records `der` in `store` as the installed LSC of `device`, as a completed enrollment
    /// leaves it: only such an LSC authenticates (issue 12 item 5).
    pub(crate) fn record_installed(store: &SqliteStore, device: &str, der: &[u8]) {
        let cert = Cert::from_der(der).unwrap();
        let issued = capf_lsc::IssuedLsc::from_certificate(cert.certificate()).unwrap();
        let now = SystemTime::now();
        let record = capf_store::LscRecord {
            serial: issued.serial,
            device: dn(device),
            der: issued.der,
            not_before: issued.not_before,
            not_after: issued.not_after,
            issued_at: now,
            state: LscState::Installed,
            state_changed_at: now,
        };
        store
            .import_lscs(&mut std::iter::once(record), now)
            .unwrap();
    }

    pub(crate) struct Pki {
        pub(crate) capf: Issuer,
        pub(crate) manufacturing: Issuer,
        pub(crate) foreign_capf: Issuer,
        pub(crate) sudi_root: Issuer,
        pub(crate) phone_key: PhoneKey,
    }

    pub(crate) fn pki() -> Pki {
        Pki {
            // The lab's CAPF: the same certificate and key the server serves.
            capf: capf_test_support::capf_issuer(KeySpec::Rsa(RsaBits::B2048)),
            manufacturing: ca("Cisco Manufacturing CA", KeySpec::Ec(Curve::P384), false),
            foreign_capf: ca("CAPF-0f0e1d2c", KeySpec::Ec(Curve::P256), true),
            sudi_root: ca("ACT2 SUDI CA", KeySpec::Rsa(RsaBits::B2048), true),
            phone_key: key(KeySpec::Ec(Curve::P256)),
        }
    }

    /// A lab whose trust directory holds the MIC root and the SUDI root.
    async fn cert_lab(name: &str, pki: &Pki, mode: AuthMode) -> Lab {
        let trust_dir = temp_dir(&format!("{name}-trust"));
        let store_dir = StoreDir::new(&trust_dir);
        let save = |purpose: &Purpose, issuer: &Issuer| {
            store_dir
                .save(
                    purpose,
                    &Cert::from_certificate(issuer.certificate().clone()).unwrap(),
                )
                .unwrap();
        };
        save(&Purpose::CAPF_TRUST_MIC, &pki.manufacturing);
        save(&Purpose::CAPF_TRUST_SUDI, &pki.sudi_root);
        let dir = trust_dir.clone();
        let lab = lab(name, move |c| c.trust_dir = Some(dir)).await;
        lab.add(rsa_install(), mode, None);
        lab
    }

    fn phone_with(lab: &Lab, proof: CertificateProof) -> Phone {
        let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
        phone.config_mut().auth = PhoneAuth::ExistingCertificate(Box::new(proof));
        phone
    }

    fn proof(der: Vec<u8>, kind: CertificateType, key: &PhoneKey) -> CertificateProof {
        CertificateProof {
            certificate_type: kind,
            certificate: der,
            key: key.clone(),
            sudi: None,
        }
    }

    fn refused_reason(lab: &Lab) -> String {
        super::refused_reason(&lab.store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_lsc_of_this_capf_authenticates_and_installs() {
        let pki = pki();
        let lab = cert_lab("cert-lsc", &pki, AuthMode::ExistingCertificateLscFirst).await;
        let lsc = issue(&pki.capf, PHONE, &pki.phone_key);
        record_installed(&lab.store, PHONE, &lsc);
        let mut phone = phone_with(&lab, proof(lsc, CertificateType::LSC, &pki.phone_key));
        let e = phone.run_once().await.unwrap();
        assert!(e.installed.is_some(), "{:?}", e.outcome);
        lab.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mic_authenticates_in_either_precedence() {
        let pki = pki();
        let mic = issue(&pki.manufacturing, PHONE, &pki.phone_key);
        for mode in [
            AuthMode::ExistingCertificateMicFirst,
            AuthMode::ExistingCertificateLscFirst,
        ] {
            let lab = cert_lab(&format!("cert-mic-{mode:?}"), &pki, mode).await;
            // The type byte says LSC: the class comes from the anchor, not the byte.
            let mut phone = phone_with(
                &lab,
                proof(mic.clone(), CertificateType::LSC, &pki.phone_key),
            );
            let e = phone.run_once().await.unwrap();
            assert!(e.installed.is_some(), "{mode:?}: {:?}", e.outcome);
            lab.stop().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sudi_data_bound_to_the_session_authenticates() {
        let pki = pki();
        let lab = cert_lab("cert-sudi", &pki, AuthMode::ExistingCertificateLscFirst).await;
        let lsc = issue(&pki.capf, PHONE, &pki.phone_key);
        record_installed(&lab.store, PHONE, &lsc);
        let sudi_key = key(KeySpec::Rsa(RsaBits::B2048));
        let sudi = issue(&pki.sudi_root, PHONE, &sudi_key);
        let mut p = proof(lsc.clone(), CertificateType::LSC, &pki.phone_key);
        p.sudi = Some((sudi, sudi_key.clone()));
        let e = phone_with(&lab, p).run_once().await.unwrap();
        assert!(e.installed.is_some(), "{:?}", e.outcome);
        // A SUDI certificate from a root this cluster does not trust is refused.
        lab.store
            .schedule(&dn(PHONE), rsa_install(), None, SystemTime::now())
            .unwrap();
        let rogue = issue(&pki.foreign_capf, PHONE, &sudi_key);
        let mut p = proof(lsc, CertificateType::LSC, &pki.phone_key);
        p.sudi = Some((rogue, sudi_key));
        let e = phone_with(&lab, p).run_once().await.unwrap();
        assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
        assert!(
            refused_reason(&lab).contains("SUDI"),
            "{}",
            refused_reason(&lab)
        );
        lab.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_invalid_proof_fails_the_operation_with_its_reason() {
        let pki = pki();
        let lab = cert_lab("cert-reject", &pki, AuthMode::ExistingCertificateLscFirst).await;
        let other_key = key(KeySpec::Ec(Curve::P384));
        let cases: Vec<(&str, Option<CertificateProof>, &str)> = vec![
            // The guide's migration case: an LSC from another cluster's CAPF.
            (
                "foreign CAPF",
                Some(proof(
                    issue(&pki.foreign_capf, PHONE, &pki.phone_key),
                    CertificateType::LSC,
                    &pki.phone_key,
                )),
                "untrusted CAPF",
            ),
            // Another device's valid LSC.
            (
                "another device",
                Some(proof(
                    issue(&pki.capf, "SEP00AABBCCDDEE", &pki.phone_key),
                    CertificateType::LSC,
                    &pki.phone_key,
                )),
                "SEP00AABBCCDDEE",
            ),
            // A valid LSC signed with a key that is not its own.
            (
                "wrong key",
                Some(proof(
                    issue(&pki.capf, PHONE, &pki.phone_key),
                    CertificateType::LSC,
                    &other_key,
                )),
                "does not verify",
            ),
            // No certificate at all (the phone sends the null string).
            ("no certificate", None, "no certificate"),
        ];
        for (what, proof, expect) in cases {
            lab.store
                .schedule(&dn(PHONE), rsa_install(), None, SystemTime::now())
                .unwrap();
            let mut phone = match proof {
                Some(p) => phone_with(&lab, p),
                None => lab.phone(false, vec![]),
            };
            let e = phone.run_once().await.unwrap();
            assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT), "{what}");
            let reason = refused_reason(&lab);
            assert!(reason.contains(expect), "{what}: {reason}");
        }
        assert!(
            lab.store.lscs(&dn(PHONE)).unwrap().is_empty(),
            "nothing issued"
        );
        lab.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mic_root_added_to_the_trust_directory_is_used_without_restart() {
        let pki = pki();
        let lab = cert_lab("cert-reload", &pki, AuthMode::ExistingCertificateMicFirst).await;
        let other_root = ca("Other Manufacturing CA", KeySpec::Rsa(RsaBits::B2048), true);
        let mic = issue(&other_root, PHONE, &pki.phone_key);
        let mut phone = phone_with(&lab, proof(mic, CertificateType::MIC, &pki.phone_key));
        let e = phone.run_once().await.unwrap();
        assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
        // cert_lab's trust directory.
        StoreDir::new(std::env::temp_dir().join(format!(
            "capf-server-cert-reload-trust-{}",
            std::process::id()
        )))
        .save(
            &Purpose::CAPF_TRUST_MIC,
            &Cert::from_certificate(other_root.certificate().clone()).unwrap(),
        )
        .unwrap();
        lab.store
            .schedule(&dn(PHONE), rsa_install(), None, SystemTime::now())
            .unwrap();
        // The server looks at the directory every 100 ms in these tests.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let e = phone.run_once().await.unwrap();
        assert!(e.installed.is_some(), "{:?}", e.outcome);
        lab.stop().await;
    }
}
