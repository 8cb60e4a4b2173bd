//! The web pages in a real browser (Debian's chromium under chromedriver, over WebDriver):
//! the issue's seven steps over one data directory served by capf-web and capf-server on
//! 127.0.0.1, a simulated phone enrolling over TLS in between; then the read-only role and a
//! phone-sized screen. Screenshots go to `target/screenshots/` (not in git).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use capf_lsc::{KeySpec, RsaBits, certificate_to_pem};
use capf_phone::{KeyPool, Phone, PhoneAuth, PhoneConfig, PhoneKey};
use capf_server::{CapfServer, Config};
use capf_store::{
    AccountName, AdminStore, DeviceName, DeviceStore, LscState, Role, SessionStore, SqliteStore,
};
use capf_test_support::browser::Browser;

const PASSWORD: &str = "correct horse battery staple";
const PHONE: &str = "SEP001122334455";

fn screenshots() -> PathBuf {
    // target/tmp is the integration tests' scratch directory: screenshots beside it.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capf-web-pages-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Lab {
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
    data: PathBuf,
    store: Arc<SqliteStore>,
    web: SocketAddr,
    capf: SocketAddr,
    capf_pem: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One data directory (store, CAPF certificate, trust stores), capf-web and capf-server over it.
fn lab() -> Lab {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = temp_dir("lab");
    let data = dir.join("data");
    let store = Arc::new(SqliteStore::open(&data).unwrap());
    // The first administrator, as `capfctl admin add` makes it (no default password).
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
    let spec = KeySpec::Rsa(RsaBits::B2048);
    let issuer = capf_test_support::capf_issuer(spec);
    let capf_pem = certificate_to_pem(issuer.certificate()).unwrap();
    std::fs::write(data.join("capf.pem"), &capf_pem).unwrap();
    std::fs::write(data.join("capf.key"), capf_test_support::key_pem(spec)).unwrap();

    let (cert, key) = capf_web::tls::self_signed_files(&dir.join("https")).unwrap();
    let tls = Arc::new(capf_web::tls::server_config(&cert, &key).unwrap());
    let dyn_store: Arc<dyn DeviceStore> = store.clone();
    let app = capf_web::router(
        dyn_store,
        capf_web::WebConfig::default().with_data_dir(&data),
    )
    .unwrap();
    let (web, capf) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let web = listener.local_addr().unwrap();
        tokio::spawn(capf_web::tls::serve(listener, tls, app));
        let mut config = Config::new(data.join("capf.pem"), data.join("capf.key"));
        config.listen = vec!["127.0.0.1:0".parse().unwrap()];
        let server = CapfServer::bind(config, store.clone())
            .await
            .unwrap()
            .spawn();
        let capf = server.local_addrs()[0];
        // The server runs as long as the runtime does.
        std::mem::forget(server);
        (web, capf)
    });
    Lab {
        rt,
        dir,
        data,
        store,
        web,
        capf,
        capf_pem,
    }
}

impl Lab {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.web.port())
    }

    fn trust_files(&self) -> usize {
        walk(&self.data.join("trust"))
    }

    /// The simulated phone: enrolls over TLS with the authentication string.
    fn enroll(&self, auth_string: &str) -> Vec<u8> {
        let mut config = PhoneConfig::new(
            DeviceName::new(PHONE).unwrap(),
            &self.capf.ip().to_string(),
            self.capf_pem.as_bytes(),
        )
        .unwrap();
        config.port = self.capf.port();
        config.retries = 0;
        config.auth = PhoneAuth::AuthenticationString(auth_string.to_owned());
        let key =
            PhoneKey::from_pkcs8_pem(capf_test_support::key_pem(KeySpec::Rsa(RsaBits::B2048)))
                .unwrap();
        let mut phone = Phone::new(config, Arc::new(KeyPool(vec![key]))).unwrap();
        let enrollment = self.rt.block_on(phone.run()).unwrap();
        enrollment.installed.expect("the phone installed an LSC").0
    }
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() { walk(&path) } else { 1 }
        })
        .sum()
}

fn login(b: &Browser, lab: &Lab, name: &str) {
    b.goto(&lab.url("/devices")).unwrap();
    // No session: the login page.
    b.find("#login-form").unwrap();
    assert!(b.url().unwrap().ends_with("/login"), "{}", b.url().unwrap());
    b.type_into("#name", name).unwrap();
    b.type_into("#password", PASSWORD).unwrap();
    b.click("#login").unwrap();
    b.wait_text("#who", name).unwrap();
}

#[test]
fn the_issues_seven_steps_in_a_real_browser() {
    let lab = lab();
    let b = Browser::start(&screenshots(), 1280, 900).unwrap();

    // 1. First login, with the account the admin library made.
    b.goto(&lab.url("/login")).unwrap();
    b.find("#login-form").unwrap();
    b.screenshot("01-login").unwrap();
    // A wrong password is refused on the page, and no session begins.
    b.type_into("#name", "alice").unwrap();
    b.type_into("#password", "not the password").unwrap();
    b.click("#login").unwrap();
    b.wait_text("#notice", "wrong account name or password")
        .unwrap();
    login(&b, &lab, "alice");
    b.screenshot("01-logged-in").unwrap();

    // 2. Add a phone, then schedule Install/Upgrade with an authentication string.
    b.click("details.card summary").unwrap();
    b.type_into("#device_name", PHONE).unwrap();
    b.type_into("#description", "Lobby phone").unwrap();
    b.click("#add-button").unwrap();
    b.wait_text("#notice", "added").unwrap();
    assert_eq!(b.text("#device-name").unwrap(), PHONE);
    b.choose("#operation", "install").unwrap();
    b.click("#generate-string").unwrap();
    b.wait_text("#notice", "new authentication string").unwrap();
    let auth_string = b.value("#auth_string").unwrap();
    assert!(
        (4..=10).contains(&auth_string.len()) && auth_string.bytes().all(|c| c.is_ascii_digit()),
        "{auth_string:?}"
    );
    assert_eq!(b.value("#auth_mode").unwrap(), "auth-string");
    b.screenshot("02-generate-string").unwrap();
    b.click("#save").unwrap();
    b.wait_text("#notice", "Saved").unwrap();
    assert_eq!(b.text("#operation-status").unwrap(), "pending");
    b.screenshot("02-scheduled").unwrap();
    let device = lab
        .store
        .device(&DeviceName::new(PHONE).unwrap())
        .unwrap()
        .unwrap();
    assert!(device.has_auth_string);
    assert_eq!(device.auth_mode, capf_store::AuthMode::AuthenticationString);
    let audit = lab.store.audit(Some(&device.name), 10).unwrap();
    assert!(audit.iter().all(|e| e.actor.as_deref() == Some("alice")));

    // 3. A simulated phone enrolls over TLS.
    let lsc = lab.enroll(&auth_string);

    // 4. The page shows Certificate Operation Status succeeded, and the LSC.
    b.goto(&lab.url(&format!("/devices/{PHONE}"))).unwrap();
    b.wait_text("#operation-status", "success").unwrap();
    let stored = lab.store.lscs(&device.name).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].der, lsc);
    assert_eq!(stored[0].state, LscState::Installed);
    let lscs = b.text("#lscs").unwrap();
    assert!(lscs.contains(&stored[0].serial_hex()), "{lscs}");
    assert!(lscs.contains("installed"), "{lscs}");
    b.screenshot("04-enrolled").unwrap();

    // 5. A CSV file with a bad row: the line's error, nothing applied.
    let csv = lab.dir.join("phones.csv");
    std::fs::write(
        &csv,
        "device_name,operation,auth_string\nSEP00000000AAAA,install,1234\nSEP00000000BBBB,install,12\n",
    )
    .unwrap();
    b.goto(&lab.url("/bulk")).unwrap();
    b.type_into("#csv-file", csv.to_str().unwrap()).unwrap();
    b.click("#insert").unwrap();
    let message = b.wait_text("#notice", "phones.csv:3:").unwrap();
    assert!(message.contains("4 to 10 ASCII digits"), "{message}");
    assert_eq!(lab.store.list_devices().unwrap().len(), 1);
    b.screenshot("05-bad-csv").unwrap();

    // 6. A trust upload with a "CAPF-" common name: refused with the guide's message.
    let reserved = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../capf-trust/tests/fixtures/reserved-ascii.pem")
        .canonicalize()
        .unwrap();
    b.goto(&lab.url("/certificates")).unwrap();
    b.choose("#purpose", "CAPF-trust").unwrap();
    b.type_into("#trust-file", reserved.to_str().unwrap())
        .unwrap();
    b.click("#trust-upload-button").unwrap();
    b.wait_text("#notice", "reserved for CAPF certificates")
        .unwrap();
    assert_eq!(lab.trust_files(), 0);
    b.screenshot("06-capf-name-refused").unwrap();

    // 7. Logout: the login page, and the pages need a login again.
    b.click("#logout").unwrap();
    b.wait_text("#notice", "logged out").unwrap();
    b.goto(&lab.url("/reports")).unwrap();
    b.find("#login-form").unwrap();
    assert!(b.url().unwrap().ends_with("/login"));
    b.screenshot("07-logged-out").unwrap();

    // The read-only role sees the pages, and its changes are refused.
    login(&b, &lab, "reader");
    b.goto(&lab.url(&format!("/devices/{PHONE}"))).unwrap();
    b.choose("#operation", "delete").unwrap();
    b.click("#save").unwrap();
    b.wait_text("#notice", "the read-only role cannot change anything")
        .unwrap();
    let after = lab
        .store
        .device(&DeviceName::new(PHONE).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(after.operation, capf_store::Operation::None);
    b.goto(&lab.url("/reports")).unwrap();
    b.find("#operations-by-status").unwrap();
    b.find("#lsc-expiry-by-month").unwrap();
    let bars = b
        .execute(
            "return document.querySelector('#operations-by-status g[data-label=\"success\"]').getAttribute('data-count')",
        )
        .unwrap();
    assert_eq!(bars, "1");
    b.screenshot("08-reports-read-only").unwrap();

    // A phone's screen: the same pages, nothing wider than the screen.
    b.resize(390, 844).unwrap();
    for (path, name) in [
        ("/devices", "09-phone-devices"),
        (&format!("/devices/{PHONE}")[..], "09-phone-pane"),
        ("/bulk", "09-phone-bulk"),
    ] {
        b.goto(&lab.url(path)).unwrap();
        b.find("main").unwrap();
        let fits = b
            .execute("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            .unwrap();
        assert_eq!(fits, true, "{path} is wider than a phone's screen");
        b.screenshot(name).unwrap();
    }
    drop(b);
}
