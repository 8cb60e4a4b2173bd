//! The LDAP directory sync over the web administration, against a real directory (Debian's
//! slapd on 127.0.0.1, capf-test-support's `slapd`): `GET /api/ldap/config` shows the stored
//! configuration without its password, `POST /api/ldap/sync` runs the dry run and the sync from
//! it, with the API's CSRF and role rules; the LDAP page offers the sync.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::SystemTime;

use capf_admin::ldap::{DeviceNameRule, DirectoryConfig};
use capf_store::{AccountName, AdminStore, DeviceStore, Role, Secret, SqliteStore};
use capf_test_support::slapd::{Slapd, person_ldif};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

struct Web {
    store: Arc<SqliteStore>,
    base: String,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<Result<(), capf_web::Error>>,
    dir: std::path::PathBuf,
}

impl Drop for Web {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start() -> Web {
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
    let dir = std::env::temp_dir().join(format!("capf-web-ldap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let (cert, key) = capf_web::tls::self_signed_files(&dir).unwrap();
    let tls = Arc::new(capf_web::tls::server_config(&cert, &key).unwrap());
    let dyn_store: Arc<dyn DeviceStore> = store.clone();
    let app = capf_web::router(
        dyn_store,
        capf_web::WebConfig::default().with_data_dir(dir.join("data")),
    )
    .unwrap();
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
    Web {
        store,
        base: format!("https://localhost:{}", addr.port()),
        client,
        task,
        dir,
    }
}

/// A session: the cookie and the CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

impl Web {
    async fn login(&self, name: &str) -> Session {
        let res = self
            .client
            .post(format!("{}/api/login", self.base))
            .json(&json!({ "name": name, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let cookie = res.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        Session {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(
        &self,
        post: Option<Value>,
        path: &str,
        session: &Session,
        csrf: bool,
    ) -> (StatusCode, String) {
        let url = format!("{}{path}", self.base);
        let mut req = match post {
            Some(body) => self.client.post(url).json(&body),
            None => self.client.get(url),
        }
        .header("cookie", &session.cookie);
        if csrf {
            req = req.header("x-csrf-token", &session.csrf);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sync_runs_from_the_stored_configuration_through_the_api() {
    let dir = Slapd::start("web-ldap", &person_ldif("alice"), None);
    let web = start().await;
    let alice = web.login("alice").await;

    // Nothing stored yet: the config is null and a sync says what to do.
    let (status, body) = web.call(None, "/api/ldap/config", &alice, false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "null"));
    let (status, body) = web
        .call(Some(json!({})), "/api/ldap/sync", &alice, true)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("ldap config set"), "{body}");

    let template = capf_admin::TemplateParams {
        name: "phones".to_owned(),
        device_pool: "Directory".to_owned(),
        ..capf_admin::TemplateParams::default()
    }
    .to_template(SystemTime::now())
    .unwrap();
    web.store
        .save_template(&template, SystemTime::now())
        .unwrap();
    let config = DirectoryConfig {
        url: dir.url(),
        bind_dn: Slapd::ADMIN_DN.to_owned(),
        password: Secret::new(Slapd::PASSWORD),
        base: Slapd::PEOPLE.to_owned(),
        filter: "(objectClass=inetOrgPerson)".to_owned(),
        device_name: DeviceNameRule::parse("CSF+uid").unwrap(),
        template: "phones".to_owned(),
    };
    capf_admin::ldap::save_config(&*web.store, &config, SystemTime::now()).unwrap();

    let (status, body) = web.call(None, "/api/ldap/config", &alice, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.contains(Slapd::PASSWORD), "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["url"], dir.url());
    assert_eq!(shown["password_set"], true);
    assert_eq!(shown["device_name"], "CSF+uid");

    // A dry run reports and applies nothing.
    let (status, body) = web
        .call(
            Some(json!({"dry_run": true})),
            "/api/ldap/sync",
            &alice,
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["added"], json!(["CSFalice"]));
    assert!(web.store.list_devices().unwrap().is_empty());

    // Without the CSRF token, or as the read-only role: refused, nothing applied.
    let (status, _) = web
        .call(Some(json!({})), "/api/ldap/sync", &alice, false)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reader = web.login("reader").await;
    let (status, _) = web
        .call(Some(json!({})), "/api/ldap/sync", &reader, true)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(web.store.list_devices().unwrap().is_empty());

    let (status, body) = web
        .call(Some(json!({})), "/api/ldap/sync", &alice, true)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["first_sync"], true);
    assert_eq!(report["added"], json!(["CSFalice"]));
    let devices = web.store.list_devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_pool, "Directory");

    // The page shows the configuration (not the password) and the sync form with its token.
    let (status, page) = web.call(None, "/ldap", &alice, false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="ldap-sync-form""#), "{page}");
    assert!(page.contains(&alice.csrf));
    assert!(page.contains(Slapd::PEOPLE));
    assert!(!page.contains(Slapd::PASSWORD));
}
