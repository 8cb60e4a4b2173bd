//! The LDAP directory sync over the web administration, against a real directory (Debian's
//! slapd on 127.0.0.1, capf-test-support's `slapd`): `GET /api/ldap/config` shows the stored
//! configuration without its password, `POST /api/ldap/sync` runs the dry run and the sync from
//! it, with the API's CSRF and role rules; the LDAP page offers the sync.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::SystemTime;

use capf_admin::ldap::{DeviceNameRule, DirectoryConfig};
use capf_store::{AdminStore, Secret};
use capf_test_support::slapd::{Slapd, person_ldif};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;

use common::{Auth, Body, Server, start};

/// A GET (`post` `None`) or a JSON POST as `caller`, with or without its CSRF token: the
/// status and the body's text.
async fn call(
    web: &Server,
    post: Option<Value>,
    path: &str,
    caller: &Auth,
    csrf: bool,
) -> (StatusCode, String) {
    let (method, body) = match post {
        Some(v) => (reqwest::Method::POST, Some(Body::Json(v))),
        None => (reqwest::Method::GET, None),
    };
    let caller = Auth {
        csrf: if csrf { caller.csrf.clone() } else { None },
        ..caller.clone()
    };
    let answer = web.call(method, path, &caller, body).await;
    let text = match answer.body {
        Value::String(text) => text,
        json => json.to_string(),
    };
    (answer.status, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sync_runs_from_the_stored_configuration_through_the_api() {
    let dir = Slapd::start("web-ldap", &person_ldif("alice"), None);
    let web = start(capf_web::WebConfig::default()).await;
    let alice = web.login("alice").await;

    // Nothing stored yet: the config is null and a sync says what to do.
    let (status, body) = call(&web, None, "/api/ldap/config", &alice, false).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "null"));
    let (status, body) = call(&web, Some(json!({})), "/api/ldap/sync", &alice, true).await;
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

    let (status, body) = call(&web, None, "/api/ldap/config", &alice, false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.contains(Slapd::PASSWORD), "{body}");
    let shown: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["url"], dir.url());
    assert_eq!(shown["password_set"], true);
    assert_eq!(shown["device_name"], "CSF+uid");

    // A dry run reports and applies nothing.
    let (status, body) = call(
        &web,
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
    let (status, _) = call(&web, Some(json!({})), "/api/ldap/sync", &alice, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reader = web.login("reader").await;
    let (status, _) = call(&web, Some(json!({})), "/api/ldap/sync", &reader, true).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(web.store.list_devices().unwrap().is_empty());

    let (status, body) = call(&web, Some(json!({})), "/api/ldap/sync", &alice, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["first_sync"], true);
    assert_eq!(report["added"], json!(["CSFalice"]));
    let devices = web.store.list_devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_pool, "Directory");

    // The page shows the configuration (not the password) and the sync form with its token.
    let (status, page) = call(&web, None, "/ldap", &alice, false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="ldap-sync-form""#), "{page}");
    assert!(page.contains(alice.csrf.as_deref().unwrap()));
    assert!(page.contains(Slapd::PEOPLE));
    assert!(!page.contains(Slapd::PASSWORD));
}
