//! End to end over TLS on 127.0.0.1 and [::1]: the server with a real SQLite store and CAPF
//! certificate files, and `capf-phone` (or a raw TLS client) as the phone.
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
    AuthMode, DeviceStore, LscState, NewDevice, Operation, OperationStatus, SqliteStore,
};
use capf_wire::Reason;

const PHONE: &str = "SEP001122334455";

struct Lab {
    dir: PathBuf,
    store: Arc<SqliteStore>,
    server: Option<ServerHandle>,
    capf_pem: String,
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
    let mut config = Config::new(dir.join("capf.pem"), dir.join("capf.key"));
    config.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
    config.reload_interval = Duration::from_millis(100);
    tune(&mut config);
    let server = CapfServer::bind(config, store.clone())
        .await
        .unwrap()
        .spawn();
    Lab {
        dir,
        store,
        server: Some(server),
        capf_pem,
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
        let mut d = NewDevice::new(PHONE);
        d.operation = operation;
        d.auth_mode = auth;
        d.auth_string = string.map(str::to_owned);
        self.store.add_device(&d, SystemTime::now()).unwrap();
    }

    fn phone(&self, v6: bool, keys: Vec<PhoneKey>) -> Phone {
        let addr = self.addr(v6);
        let mut config =
            PhoneConfig::new(PHONE, &addr.ip().to_string(), self.capf_pem.as_bytes()).unwrap();
        config.port = addr.port();
        config.retries = 0;
        Phone::new(config, Arc::new(KeyPool(keys))).unwrap()
    }

    fn status(&self) -> OperationStatus {
        self.store.device(PHONE).unwrap().unwrap().status
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_an_rsa_2048_lsc_over_ipv4_that_openssl_verifies() {
    let lab = lab("install-rsa", |_| {}).await;
    lab.add(
        install(KeyOrder::RsaOnly, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let e = phone.run().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::UPDATE_CERTIFICATE));
    let (der, _) = e.installed.clone().expect("an LSC installed");
    assert!(e.succeeded());
    assert_eq!(lab.status(), OperationStatus::Success);
    let lscs = lab.store.lscs(PHONE).unwrap();
    assert_eq!(lscs.len(), 1);
    assert_eq!(lscs[0].state, LscState::Installed);
    assert_eq!(lscs[0].der, der);
    openssl_verify(&lab.dir, &lab.capf_pem, &der);
    // The operation is done: the next session is told there is nothing to do.
    let again = phone.run_once().await.unwrap();
    assert_eq!(again.end_reason(), Some(Reason::NO_ACTION));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_ec_lscs_on_every_curve_over_ipv6() {
    let lab = lab("install-ec", |_| {}).await;
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let op = install(KeyOrder::EcOnly, RsaBits::B2048, curve);
        if lab.store.device(PHONE).unwrap().is_none() {
            lab.add(op, AuthMode::NullString, None);
        } else {
            lab.store
                .schedule(PHONE, op, None, SystemTime::now())
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
        .lscs(PHONE)
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
    lab.add(
        install(KeyOrder::RsaOnly, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    let (der, _) = phone.run_once().await.unwrap().installed.unwrap();

    lab.store
        .schedule(PHONE, Operation::Troubleshoot, None, SystemTime::now())
        .unwrap();
    let e = phone.run_once().await.unwrap();
    assert!(e.fetched);
    assert_eq!(e.end_reason(), Some(Reason::NO_ACTION));
    let results = lab.store.troubleshoot_results(PHONE).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].certificate.as_ref().unwrap().der, der);

    lab.store
        .schedule(PHONE, Operation::Delete, None, SystemTime::now())
        .unwrap();
    let e = phone.run_once().await.unwrap();
    assert!(e.deleted);
    assert_eq!(e.end_reason(), Some(Reason::UPDATE_CERTIFICATE));
    assert_eq!(lab.status(), OperationStatus::Success);
    assert_eq!(lab.store.lscs(PHONE).unwrap()[0].state, LscState::Deleted);
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
        install(KeyOrder::RsaOnly, RsaBits::B2048, Curve::P256),
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
    assert_eq!(lab.store.device(PHONE).unwrap().unwrap().auth_failures, 2);
    // Locked out: even the right string is refused now, and nothing was issued.
    phone.config_mut().auth = PhoneAuth::AuthenticationString("123456".into());
    let e = phone.run_once().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT));
    assert!(lab.store.lscs(PHONE).unwrap().is_empty());
    assert_eq!(lab.status(), OperationStatus::Pending);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_authentication_string_installs_and_is_cleared() {
    let lab = lab("auth-ok", |_| {}).await;
    lab.add(
        install(KeyOrder::RsaOnly, RsaBits::B2048, Curve::P256),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    let mut phone = lab.phone(false, vec![key(KeySpec::Rsa(RsaBits::B2048))]);
    phone.config_mut().auth = PhoneAuth::AuthenticationString("123456".into());
    let e = phone.run_once().await.unwrap();
    assert!(e.installed.is_some());
    assert!(!lab.store.device(PHONE).unwrap().unwrap().has_auth_string);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_by_date_passed_expires_the_operation() {
    let lab = lab("expired", |_| {}).await;
    let mut d = NewDevice::new(PHONE);
    d.operation = install(KeyOrder::RsaOnly, RsaBits::B2048, Curve::P256);
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
    let d = lab.store.device(PHONE).unwrap().unwrap();
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
    let mut config = PhoneConfig::new(PHONE, "127.0.0.1", next_pem.as_bytes()).unwrap();
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
