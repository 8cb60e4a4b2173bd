//! The web API over real HTTPS on 127.0.0.1: every endpoint's success, and the bad inputs of
//! issue 18 (malformed body, unknown device, bad CSV, missing or expired session, wrong CSRF
//! token, the read-only role writing), each with its status and message and nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, SystemTime};

use capf_store::{AccountName, AdminStore, SessionStore};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn health_checks_answer_without_login_and_nothing_else_does() {
    let s = start(capf_web::WebConfig::default()).await;
    let none = Auth::default();
    assert_eq!(
        s.call(Method::GET, "/healthz", &none, None).await.status,
        StatusCode::OK
    );
    let ready = s.call(Method::GET, "/readyz", &none, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    // Every route the API's router is built with (read from its source, so a route added
    // later is checked too), with every method: 401 before anything else happens.
    let mut routes = routes_between(
        include_str!("../src/lib.rs"),
        "let api = Router::new()",
        ".route_layer(",
    );
    // The LDAP sync's routes are a router of their own, behind the same authentication.
    routes.extend(routes_between(
        include_str!("../src/ldap.rs"),
        "Router::new()",
        ".route_layer(",
    ));
    for expected in [
        "/api/devices/{name}",
        "/api/jobs/{id}/cancel",
        "/metrics",
        "/api/ldap/sync",
    ] {
        assert!(routes.contains(&expected.to_owned()), "{routes:?}");
    }
    assert!(routes.len() >= 30, "{routes:?}");
    for route in &routes {
        let path = sample_path(route);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let a = s.call(method.clone(), &path, &none, None).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(a.error().starts_with("log in first"), "{}", a.error());
        }
    }
    // Every page but the login page (and its style sheet and script) sends the browser to
    // the login page.
    let mut pages = routes_between(
        include_str!("../src/pages/mod.rs"),
        "let protected = Router::new()",
        ".route_layer(",
    );
    pages.extend(routes_between(
        include_str!("../src/pages/ldap.rs"),
        "Router::new()",
        ".route_layer(",
    ));
    assert!(pages.contains(&"/jobs".to_owned()), "{pages:?}");
    assert!(pages.contains(&"/ldap".to_owned()), "{pages:?}");
    let no_redirects = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(s.dir.join(capf_web::tls::CERT_FILE)).unwrap(),
            )
            .unwrap(),
        )
        .resolve("localhost", s.addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for route in &pages {
        let path = sample_path(route);
        for method in [Method::GET, Method::POST] {
            let res = no_redirects
                .request(method.clone(), s.url(&path))
                .send()
                .await
                .unwrap();
            assert!(res.status().is_redirection(), "{method} {path}");
            assert_eq!(res.headers()["location"], "/login", "{method} {path}");
        }
    }
    assert_eq!(s.device_count(), 0);
}

#[tokio::test]
async fn login_refuses_wrong_passwords_and_malformed_bodies_then_throttles() {
    let s = start(capf_web::WebConfig::default()).await;
    let none = Auth::default();
    let malformed = s
        .call(Method::POST, "/api/login", &none, Some(Raw("{\"name\":")))
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed.error().starts_with("malformed JSON body"),
        "{}",
        malformed.error()
    );
    for _ in 0..5 {
        let a = s
            .call(
                Method::POST,
                "/api/login",
                &none,
                Some(J(json!({ "name": "alice", "password": "wrong password!" }))),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.error(), "wrong account name or password");
        assert!(!a.body.to_string().contains("wrong password!"));
    }
    let account = s
        .store
        .account(&AccountName::new("alice").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(account.login_failures, 5);
    // The sixth try is refused before the password is checked, even the right one.
    let throttled = s
        .call(
            Method::POST,
            "/api/login",
            &none,
            Some(J(json!({ "name": "alice", "password": PASSWORD }))),
        )
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.error(), "too many failed logins; try again later");
    // Another account from the same address still logs in.
    s.login("reader").await;
    let unknown = s
        .call(
            Method::POST,
            "/api/login",
            &none,
            Some(J(json!({ "name": "nobody", "password": PASSWORD }))),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.error(), "wrong account name or password");
}

#[tokio::test]
async fn devices_are_added_listed_shown_updated_scheduled_and_removed_with_the_account_audited() {
    let (s, auth) = admin_server().await;
    let me = s.call(Method::GET, "/api/me", &auth, None).await;
    assert_eq!(me.body, json!({ "account": "alice", "role": "admin" }));
    let added = s
        .call(
            Method::POST,
            "/api/devices",
            &auth,
            Some(J(
                json!({ "name": "SEP001122334455", "device_pool": "Lobby", "model": "Cisco 8865" }),
            )),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["name"], "SEP001122334455");
    s.call(
        Method::POST,
        "/api/devices",
        &auth,
        Some(J(
            json!({ "name": "SEP0011223344AA", "device_pool": "Office" }),
        )),
    )
    .await;
    let listed = s
        .call(Method::GET, "/api/devices?pool=Lobby", &auth, None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let all = s
        .call(Method::GET, "/api/devices?name=SEP0011*", &auth, None)
        .await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);
    // Without limit, the default page: here all of them, and no other page to link to.
    assert_eq!(all.total_count.as_deref(), Some("2"));
    assert_eq!(all.link, None);
    // A page: in name order from the offset, with the number matching in all, and a link to
    // the page before it with the same filter.
    let page = s
        .call(
            Method::GET,
            "/api/devices?name=SEP0011*&limit=1&offset=1",
            &auth,
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body.as_array().unwrap().len(), 1);
    assert_eq!(page.body[0]["name"], "SEP0011223344AA");
    assert_eq!(page.total_count.as_deref(), Some("2"));
    assert_eq!(
        page.link.as_deref(),
        Some("</api/devices?name=SEP0011%2A&limit=1&offset=0>; rel=\"prev\"")
    );
    let first = s
        .call(Method::GET, "/api/devices?limit=1", &auth, None)
        .await;
    assert_eq!(first.body[0]["name"], "SEP001122334455");
    assert_eq!(
        first.link.as_deref(),
        Some("</api/devices?limit=1&offset=1>; rel=\"next\"")
    );
    // Following rel="next" reaches the second device.
    let next = first.link.as_deref().unwrap();
    let next = &next[1..next.find('>').unwrap()];
    let second = s.call(Method::GET, next, &auth, None).await;
    assert_eq!(second.body[0]["name"], "SEP0011223344AA");
    let bad = s
        .call(Method::GET, "/api/devices?limit=many", &auth, None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let too_many = s
        .call(
            Method::GET,
            &format!("/api/devices?limit={}", capf_web::MAX_PAGE_LIMIT + 1),
            &auth,
            None,
        )
        .await;
    assert_eq!(
        too_many.status,
        StatusCode::BAD_REQUEST,
        "{}",
        too_many.body
    );
    assert!(
        too_many
            .error()
            .contains(&format!("at most {}", capf_web::MAX_PAGE_LIMIT)),
        "{}",
        too_many.error()
    );
    let updated = s
        .call(
            Method::PATCH,
            "/api/devices/SEP001122334455",
            &auth,
            Some(J(json!({ "description": "front desk" }))),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let scheduled = s
        .call(
            Method::POST,
            "/api/devices/sep001122334455/schedule",
            &auth,
            Some(J(
                json!({ "operation": "install", "rsa": "2048", "auth_string": "123456" }),
            )),
        )
        .await;
    assert_eq!(scheduled.status, StatusCode::OK, "{}", scheduled.body);
    let device = s
        .store
        .device(&capf_store::DeviceName::new("SEP001122334455").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(device.description, "front desk");
    assert!(device.has_operation_to_run());
    assert!(!scheduled.body.to_string().contains("123456"));
    let shown = s
        .call(Method::GET, "/api/devices/SEP001122334455", &auth, None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body["name"], "SEP001122334455");
    let removed = s
        .call(Method::DELETE, "/api/devices/SEP0011223344AA", &auth, None)
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(s.device_count(), 1);
    // Every change names alice.
    let audit = s
        .call(Method::GET, "/api/audit?limit=50", &auth, None)
        .await;
    let changes: Vec<&Value> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["device"].is_string())
        .collect();
    assert!(changes.len() >= 5, "{}", audit.body);
    assert!(
        changes.iter().all(|e| e["actor"] == "alice"),
        "{}",
        audit.body
    );
}

#[tokio::test]
async fn bad_device_requests_get_their_status_and_change_nothing() {
    let (s, auth) = admin_server().await;
    s.call(
        Method::POST,
        "/api/devices",
        &auth,
        Some(J(json!({ "name": "SEP001122334455" }))),
    )
    .await;
    let before = (s.device_count(), s.audit_len());
    let cases: Vec<(Method, &str, Option<Body>, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/devices",
            Some(Raw("{not json")),
            StatusCode::BAD_REQUEST,
            "malformed JSON body",
        ),
        (
            Method::POST,
            "/api/devices",
            Some(J(json!({ "name": "SEP001122334455", "colour": "red" }))),
            StatusCode::BAD_REQUEST,
            "malformed JSON body: unknown field `colour`",
        ),
        (
            Method::POST,
            "/api/devices",
            Some(J(json!({ "name": "SEP001122334455" }))),
            StatusCode::CONFLICT,
            "device SEP001122334455 is already registered",
        ),
        (
            Method::POST,
            "/api/devices",
            Some(J(json!({ "name": "a b" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cannot register the device",
        ),
        (
            Method::POST,
            "/api/devices",
            Some(J(json!({ "name": "SEP0011223344AB", "auth_string": "12" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "the authentication string for SEP0011223344AB must be 4 to 10 ASCII digits",
        ),
        (
            Method::GET,
            "/api/devices/SEP00000000FFFF",
            None,
            StatusCode::NOT_FOUND,
            "device SEP00000000FFFF is not registered",
        ),
        (
            Method::PATCH,
            "/api/devices/SEP00000000FFFF",
            Some(J(json!({ "model": "x" }))),
            StatusCode::NOT_FOUND,
            "device SEP00000000FFFF is not registered",
        ),
        (
            Method::DELETE,
            "/api/devices/SEP00000000FFFF",
            None,
            StatusCode::NOT_FOUND,
            "device SEP00000000FFFF is not registered",
        ),
        (
            Method::POST,
            "/api/devices/SEP00000000FFFF/schedule",
            Some(J(json!({ "operation": "delete" }))),
            StatusCode::NOT_FOUND,
            "device SEP00000000FFFF is not registered",
        ),
        (
            Method::POST,
            "/api/devices/SEP001122334455/schedule",
            Some(J(json!({ "operation": "reboot" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "operation: operation \"reboot\"",
        ),
        (
            Method::POST,
            "/api/devices/SEP001122334455/schedule",
            Some(J(json!({ "operation": "delete", "rsa": "2048" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "--key-order, --rsa and --curve only apply",
        ),
        (
            Method::GET,
            "/api/devices?status=running",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "status:",
        ),
        (
            Method::GET,
            "/api/devices?colour=red",
            None,
            StatusCode::BAD_REQUEST,
            "malformed query string",
        ),
        (
            Method::PUT,
            "/api/settings",
            Some(J(json!({ "keepalive_minutes": "1000" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            Method::PUT,
            "/api/settings",
            Some(J(json!({ "no_such_key": "1" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            Method::GET,
            "/api/nothing-here",
            None,
            StatusCode::NOT_FOUND,
            "no such endpoint",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let a = s.call(method.clone(), path, &auth, body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.body);
        assert!(
            a.error().starts_with(message),
            "{method} {path}: {}",
            a.error()
        );
        assert!(!a.error().contains('\n'));
    }
    assert_eq!((s.device_count(), s.audit_len()), before);
    let settings = s.store.settings().unwrap();
    assert_eq!(settings, capf_store::Settings::default());
}

#[tokio::test]
async fn the_device_list_is_one_default_page_without_a_limit_and_links_the_next() {
    let (s, auth) = admin_server().await;
    let n = capf_web::DEFAULT_PAGE_LIMIT + 1;
    let mut csv = String::from("device_name,device_pool\n");
    for i in 0..n {
        csv.push_str(&format!("SEP{i:012X},Lobby\n"));
    }
    let added = s
        .call(
            Method::POST,
            "/api/bulk/insert",
            &auth,
            Some(Body::Text(csv)),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let first = s
        .call(Method::GET, "/api/devices?pool=Lobby", &auth, None)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let devices = first.body.as_array().unwrap();
    assert_eq!(devices.len(), capf_web::DEFAULT_PAGE_LIMIT);
    assert_eq!(devices[0]["name"], "SEP000000000000");
    assert_eq!(first.total_count, Some(n.to_string()));
    let limit = capf_web::DEFAULT_PAGE_LIMIT;
    assert_eq!(
        first.link,
        Some(format!(
            "</api/devices?pool=Lobby&limit={limit}&offset={limit}>; rel=\"next\""
        ))
    );
    let last = s
        .call(
            Method::GET,
            &format!("/api/devices?pool=Lobby&limit={limit}&offset={limit}"),
            &auth,
            None,
        )
        .await;
    assert_eq!(last.body.as_array().unwrap().len(), 1);
    assert_eq!(last.body[0]["name"], format!("SEP{:012X}", n - 1));
    // The last page links only back.
    assert_eq!(
        last.link,
        Some(format!(
            "</api/devices?pool=Lobby&limit={limit}&offset=0>; rel=\"prev\""
        ))
    );
}

#[tokio::test]
async fn a_bad_csv_row_is_named_by_its_line_and_nothing_is_added() {
    let (s, auth) = admin_server().await;
    let audit = s.audit_len();
    let bad = s
        .call(
            Method::POST,
            "/api/bulk/insert",
            &auth,
            Some(Raw("device_name,operation,auth_string\nSEP001122334455,install,\nSEP001122334456,delete,12\n")),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(
        bad.error(),
        "upload.csv:3: the authentication string for SEP001122334456 must be 4 to 10 ASCII \
         digits (0-9); the one given has 2 characters"
    );
    assert_eq!((s.device_count(), s.audit_len()), (0, audit));
    let good = s
        .call(
            Method::POST,
            "/api/bulk/insert",
            &auth,
            Some(Raw(
                "device_name,model\nSEP001122334455,Cisco 8865\nSEP001122334456,Cisco 8865\n",
            )),
        )
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.body);
    assert_eq!(good.body["added"], 2);
    // A name given twice: the store refuses it, still by line, still nothing added.
    let twice = s
        .call(
            Method::POST,
            "/api/bulk/insert",
            &auth,
            Some(Raw("device_name\nSEP0011223344AA\nSEP001122334455\n")),
        )
        .await;
    assert_eq!(
        twice.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        twice.body
    );
    assert!(
        twice.error().starts_with("upload.csv:3:"),
        "{}",
        twice.error()
    );
    assert_eq!(s.device_count(), 2);
    let unknown_template = s
        .call(
            Method::POST,
            "/api/bulk/insert?template=none",
            &auth,
            Some(Raw("device_name\nSEP0011223344AB\n")),
        )
        .await;
    assert_eq!(
        unknown_template.status,
        StatusCode::NOT_FOUND,
        "{}",
        unknown_template.body
    );
    assert_eq!(s.device_count(), 2);
}

#[tokio::test]
async fn bulk_update_previews_with_a_dry_run_then_applies() {
    let (s, auth) = admin_server().await;
    s.call(
        Method::POST,
        "/api/bulk/insert",
        &auth,
        Some(Raw("device_name,device_pool\nSEP001122334455,Lobby\nSEP001122334456,Lobby\nSEP001122334457,Office\n")),
    )
    .await;
    let audit = s.audit_len();
    let body = json!({ "filter": { "pool": "Lobby" }, "model": "Cisco 8865", "dry_run": true });
    let dry = s
        .call(Method::POST, "/api/bulk/update", &auth, Some(J(body)))
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.body);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["changed"], 2);
    assert_eq!(s.audit_len(), audit);
    assert!(
        s.store
            .list_devices()
            .unwrap()
            .iter()
            .all(|d| d.model.is_empty())
    );
    let body = json!({ "filter": { "pool": "Lobby" }, "model": "Cisco 8865" });
    let done = s
        .call(Method::POST, "/api/bulk/update", &auth, Some(J(body)))
        .await;
    assert_eq!(done.body["changed"], 2);
    assert_eq!(s.audit_len(), audit + 2);
    let nothing = s
        .call(
            Method::POST,
            "/api/bulk/update",
            &auth,
            Some(J(json!({ "filter": {} }))),
        )
        .await;
    assert_eq!(
        nothing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        nothing.body
    );
}

/// The guide's Online CA limit at `POST /api/devices`: in the Online CA mode a device with an
/// EC key order is refused (422) with the reason and nothing is added or audited.
#[tokio::test]
async fn adding_a_device_with_an_ec_key_order_is_refused_in_online_ca_mode() {
    let (s, auth) = admin_server().await;
    let set = s
        .call(
            Method::PUT,
            "/api/settings",
            &auth,
            Some(J(json!({ "certificate_issuer": "online-ca" }))),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let before = (s.device_count(), s.audit_len());
    let ec = json!({ "name": "SEP001122334455", "operation": "install", "key_order": "ec-only" });
    let a = s
        .call(Method::POST, "/api/devices", &auth, Some(J(ec)))
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        a.error().contains("device SEP001122334455")
            && a.error().contains("Online CA does not support ECDSA"),
        "{}",
        a.error()
    );
    assert_eq!((s.device_count(), s.audit_len()), before);
    let rsa = json!({ "name": "SEP001122334455", "operation": "install", "key_order": "rsa-only" });
    let a = s
        .call(Method::POST, "/api/devices", &auth, Some(J(rsa)))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(s.device_count(), 1);
}

#[tokio::test]
async fn reports_and_settings_read_and_write() {
    let (s, auth) = admin_server().await;
    s.call(
        Method::POST,
        "/api/devices",
        &auth,
        Some(J(
            json!({ "name": "SEP001122334455", "operation": "install" }),
        )),
    )
    .await;
    let status = s
        .call(Method::GET, "/api/reports/status", &auth, None)
        .await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(status.body["pending"], 1);
    for path in [
        "/api/reports/stale-lscs",
        "/api/reports/csrs?state=pending",
        "/api/reports/expiring?days=90",
    ] {
        let a = s.call(Method::GET, path, &auth, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert_eq!(a.body, json!([]), "{path}");
    }
    let bad_state = s
        .call(Method::GET, "/api/reports/csrs?state=lost", &auth, None)
        .await;
    assert_eq!(bad_state.status, StatusCode::UNPROCESSABLE_ENTITY);
    let shown = s.call(Method::GET, "/api/settings", &auth, None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert!(
        shown.body.to_string().contains("keepalive"),
        "{}",
        shown.body
    );
    let set = s
        .call(
            Method::PUT,
            "/api/settings",
            &auth,
            Some(J(json!({ "keepalive_minutes": "30" }))),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(s.store.settings().unwrap().keepalive.minutes(), 30);
    let entry = &s.store.audit(None, 1).unwrap()[0];
    assert_eq!(entry.action, capf_store::action::SETTINGS_UPDATED);
    assert_eq!(entry.actor.as_deref(), Some("alice"));
}

#[tokio::test]
async fn cookie_writes_need_the_csrf_token_and_tokens_do_not() {
    let (s, auth) = admin_server().await;
    let audit = s.audit_len();
    let add = json!({ "name": "SEP001122334455" });
    for csrf in [None, Some("0".repeat(64))] {
        let a = s
            .call(
                Method::POST,
                "/api/devices",
                &Auth {
                    csrf,
                    ..auth.clone()
                },
                Some(J(add.clone())),
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN);
        assert_eq!(
            a.error(),
            "missing or wrong CSRF token (header X-CSRF-Token)"
        );
    }
    // Reads need none.
    let read = s
        .call(
            Method::GET,
            "/api/devices",
            &Auth {
                csrf: None,
                ..auth.clone()
            },
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!((s.device_count(), s.audit_len()), (0, audit));
    let (token, _) = capf_admin::accounts::create_api_token(
        &*s.store,
        &AccountName::new("alice").unwrap(),
        "test",
        SystemTime::now(),
    )
    .unwrap();
    let bearer = Auth {
        bearer: Some(token),
        ..Auth::default()
    };
    let a = s
        .call(Method::POST, "/api/devices", &bearer, Some(J(add)))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let wrong = Auth {
        bearer: Some("capf_0000".to_owned()),
        ..Auth::default()
    };
    let a = s.call(Method::GET, "/api/devices", &wrong, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error(), "unknown API token");
}

#[tokio::test]
async fn the_read_only_role_reads_and_every_write_is_forbidden() {
    let s = start(capf_web::WebConfig::default()).await;
    let admin = s.login("alice").await;
    s.call(
        Method::POST,
        "/api/devices",
        &admin,
        Some(J(json!({ "name": "SEP001122334455" }))),
    )
    .await;
    let reader = s.login("reader").await;
    let before = (s.device_count(), s.audit_len());
    for (method, path) in [
        (Method::GET, "/api/devices"),
        (Method::GET, "/api/devices/SEP001122334455"),
        (Method::GET, "/api/reports/status"),
        (Method::GET, "/api/settings"),
    ] {
        assert_eq!(
            s.call(method.clone(), path, &reader, None).await.status,
            StatusCode::OK,
            "{method} {path}"
        );
    }
    let writes: Vec<(Method, &str, Body)> = vec![
        (
            Method::POST,
            "/api/devices",
            J(json!({ "name": "SEP0011223344AA" })),
        ),
        (
            Method::PATCH,
            "/api/devices/SEP001122334455",
            J(json!({ "model": "x" })),
        ),
        (Method::DELETE, "/api/devices/SEP001122334455", Raw("")),
        (
            Method::POST,
            "/api/devices/SEP001122334455/schedule",
            J(json!({ "operation": "delete" })),
        ),
        (
            Method::POST,
            "/api/bulk/insert",
            Raw("device_name\nSEP0011223344AB\n"),
        ),
        (Method::POST, "/api/bulk/update", J(json!({ "model": "x" }))),
        (
            Method::PUT,
            "/api/settings",
            J(json!({ "keepalive_minutes": "30" })),
        ),
    ];
    for (method, path, body) in writes {
        let a = s.call(method.clone(), path, &reader, Some(body)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(a.error(), "the read-only role cannot change anything");
    }
    assert_eq!((s.device_count(), s.audit_len()), before);
    // Logging out is not a change.
    let out = s.call(Method::POST, "/api/logout", &reader, None).await;
    assert_eq!(out.status, StatusCode::OK);
    let after = s.call(Method::GET, "/api/devices", &reader, None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.error(), "the session has ended; log in again");
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let s = start(capf_web::WebConfig::default().with_session_idle(Duration::ZERO)).await;
    let auth = s.login("alice").await;
    let a = s
        .call(
            Method::POST,
            "/api/devices",
            &auth,
            Some(J(json!({ "name": "SEP001122334455" }))),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.error(), "the session has expired; log in again");
    assert_eq!(s.device_count(), 0);
}

// ------------------------------------------------------------------------------------------
// Templates, authentication strings, Online CA, trust stores, CAPF certificate, Offline CA

#[tokio::test]
async fn device_templates_are_saved_listed_shown_and_removed_and_bad_requests_change_nothing() {
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let body = json!({
        "description": "lobby phones",
        "device_pool": "Lobby",
        "model": "Cisco 8865",
        "auth_mode": "auth-string",
        "operation": "install",
        "key_order": "rsa",
        "rsa": "3072",
    });
    let a = s
        .call(
            Method::PUT,
            "/api/templates/lobby",
            &auth,
            Some(J(body.clone())),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["name"], "lobby");
    assert_eq!(a.body["device_pool"], "Lobby");
    let listed = s.call(Method::GET, "/api/templates", &reader, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let shown = s
        .call(Method::GET, "/api/templates/lobby", &reader, None)
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, a.body);
    let saved = s.store.templates().unwrap();
    let wrong = wrong_csrf(&auth);

    // Bad inputs: each its status and message, and the template as it was.
    let mut bad: Vec<Case<'_, &str>> = vec![
        (
            Method::PUT,
            "/api/templates/lobby",
            &auth,
            Some(Raw("{not json")),
            StatusCode::BAD_REQUEST,
            "malformed JSON body",
        ),
        (
            Method::PUT,
            "/api/templates/lobby",
            &auth,
            Some(J(json!({ "colour": "red" }))),
            StatusCode::BAD_REQUEST,
            "malformed JSON body",
        ),
        (
            Method::PUT,
            "/api/templates/lobby",
            &auth,
            Some(J(json!({ "operation": "reboot" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "operation",
        ),
        (
            Method::PUT,
            "/api/templates/lobby",
            &auth,
            Some(J(json!({ "operation": "delete", "rsa": "2048" }))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            Method::GET,
            "/api/templates/nope",
            &auth,
            None,
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            Method::DELETE,
            "/api/templates/nope",
            &auth,
            None,
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            Method::PUT,
            "/api/templates/lobby",
            &reader,
            Some(J(json!({}))),
            StatusCode::FORBIDDEN,
            "read-only",
        ),
        (
            Method::DELETE,
            "/api/templates/lobby",
            &reader,
            None,
            StatusCode::FORBIDDEN,
            "read-only",
        ),
    ];
    bad.push((
        Method::DELETE,
        "/api/templates/lobby",
        &wrong,
        None,
        StatusCode::FORBIDDEN,
        "CSRF",
    ));
    for (method, path, who, body, status, message) in bad {
        let a = s.call(method.clone(), path, who, body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.body);
        assert!(
            a.error().contains(message),
            "{method} {path}: {}",
            a.error()
        );
        assert_eq!(s.store.templates().unwrap(), saved, "{method} {path}");
    }

    let a = s
        .call(Method::DELETE, "/api/templates/lobby", &auth, None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["removed"], "lobby");
    assert!(s.store.templates().unwrap().is_empty());
}

#[tokio::test]
async fn authentication_strings_are_unique_and_their_csv_is_downloadable_once() {
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    for name in ["SEP000000000001", "SEP000000000002", "SEP000000000003"] {
        let a = s
            .call(
                Method::POST,
                "/api/devices",
                &auth,
                Some(J(json!({ "name": name }))),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let before: Vec<_> = s.store.list_devices().unwrap();
    let audit_before = s.audit_len();

    // Bad inputs first: nothing set.
    let wrong = wrong_csrf(&auth);
    let cases: Vec<(&Auth, Body, StatusCode, &str)> = vec![
        (
            &auth,
            Raw("[1,"),
            StatusCode::BAD_REQUEST,
            "malformed JSON body",
        ),
        (
            &auth,
            J(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no devices selected",
        ),
        (
            &auth,
            J(json!({ "devices": ["SEP0000000000FF"] })),
            StatusCode::NOT_FOUND,
            "SEP0000000000FF",
        ),
        (
            &auth,
            J(json!({ "all": true, "length": 3 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            &auth,
            J(json!({ "filter": { "name": "NOMATCH*" } })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            &reader,
            J(json!({ "all": true })),
            StatusCode::FORBIDDEN,
            "read-only",
        ),
        (
            &wrong,
            J(json!({ "all": true })),
            StatusCode::FORBIDDEN,
            "CSRF",
        ),
    ];
    for (who, body, status, message) in cases {
        let a = s
            .call(Method::POST, "/api/auth-strings", who, Some(body))
            .await;
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.error().contains(message), "{}", a.error());
        assert_eq!(s.store.list_devices().unwrap(), before);
        assert_eq!(s.audit_len(), audit_before);
    }

    let a = s
        .call(
            Method::POST,
            "/api/auth-strings",
            &auth,
            Some(J(json!({ "devices": ["SEP000000000001"], "filter": { "name": "SEP00000000000*" }, "length": 6 }))),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["set"], 3);
    let csv_path = a.body["csv"].as_str().unwrap().to_owned();
    assert!(csv_path.starts_with("/api/auth-strings/csv/"), "{csv_path}");
    // Another account cannot take it.
    let (status, _, _) = s.download(&csv_path, &reader).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, kind, csv) = s.download(&csv_path, &auth).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/csv"), "{kind}");
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "device_name,auth_string");
    assert_eq!(lines.len(), 4, "{csv}");
    let mut strings = std::collections::HashSet::new();
    for line in &lines[1..] {
        let (name, string) = line.split_once(',').unwrap();
        assert_eq!(string.len(), 6, "{line}");
        // The answer to the generation never held the strings; the store checks them.
        assert!(!a.body.to_string().contains(string));
        let name = capf_store::DeviceName::new(name).unwrap();
        assert!(s.store.check_auth_string(&name, string).unwrap(), "{line}");
        assert!(strings.insert(string.to_owned()), "not unique: {csv}");
    }
    // The audit names the account, and never a string.
    let audit = s.store.audit(None, usize::MAX).unwrap();
    assert!(audit.len() > audit_before);
    for e in &audit[..audit.len() - audit_before] {
        assert_eq!(e.actor.as_deref(), Some("alice"), "{e:?}");
        for string in &strings {
            assert!(!e.detail.contains(string.as_str()), "{e:?}");
        }
    }

    // Once: then gone.
    let (status, _, body) = s.download(&csv_path, &auth).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("downloadable once"),
        "{body}"
    );
}

#[tokio::test]
async fn the_online_ca_password_is_never_shown_echoed_or_audited() {
    const SECRET: &str = "s3cret-Online-CA-pw";
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let shown = s.call(Method::GET, "/api/online-ca", &reader, None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, Value::Null);

    let good = json!({
        "host": "ca.example.com",
        "type": "est",
        "username": "estuser",
        "password": SECRET,
    });
    let wrong = wrong_csrf(&auth);
    let cases: Vec<(&Auth, Body, StatusCode, &str)> = vec![
        (
            &auth,
            Bytes(format!("{{\"password\": \"{SECRET}\", ").into_bytes()),
            StatusCode::BAD_REQUEST,
            "malformed JSON body",
        ),
        (
            &auth,
            J(
                json!({ "host": "ca.example.com", "type": "est", "username": "u", "password": 12_345_678_901u64 }),
            ),
            StatusCode::BAD_REQUEST,
            "malformed JSON body",
        ),
        (
            &auth,
            J(
                json!({ "host": "ca.example.com", "port": SECRET, "type": "est", "username": "u", "password": SECRET }),
            ),
            StatusCode::BAD_REQUEST,
            "malformed JSON body",
        ),
        (
            &auth,
            J(
                json!({ "host": "ca.example.com", "type": "nope", "username": "u", "password": SECRET }),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (
            &auth,
            J(
                json!({ "host": "ca.example.com", "port": 0, "type": "est", "username": "u", "password": SECRET }),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
        (&reader, J(good.clone()), StatusCode::FORBIDDEN, "read-only"),
        (&wrong, J(good.clone()), StatusCode::FORBIDDEN, "CSRF"),
    ];
    let audit_before = s.audit_len();
    for (who, body, status, message) in cases {
        let a = s.call(Method::PUT, "/api/online-ca", who, Some(body)).await;
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.error().contains(message), "{}", a.error());
        let text = a.body.to_string();
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("12345678901"), "{text}");
        assert!(s.store.online_ca_config().unwrap().is_none());
        assert_eq!(s.audit_len(), audit_before);
    }

    let a = s
        .call(Method::PUT, "/api/online-ca", &auth, Some(J(good)))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["password"], "********");
    assert_eq!(a.body["hostname"], "ca.example.com");
    assert_eq!(a.body["port"], 443);
    assert!(!a.body.to_string().contains(SECRET));
    let shown = s.call(Method::GET, "/api/online-ca", &reader, None).await;
    assert_eq!(shown.body, a.body);
    assert_eq!(
        s.store
            .online_ca_config()
            .unwrap()
            .unwrap()
            .password
            .expose(),
        SECRET
    );
    let audit = s.store.audit(None, usize::MAX).unwrap();
    assert!(audit.len() > audit_before);
    for e in &audit {
        assert!(!e.detail.contains(SECRET), "{e:?}");
    }
    assert_eq!(audit[0].actor.as_deref(), Some("alice"), "{:?}", audit[0]);
}

#[tokio::test]
async fn trust_uploads_follow_the_guides_rules_and_a_capf_common_name_is_refused() {
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let listed = s.call(Method::GET, "/api/trust", &reader, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body, json!([]));

    let a = s
        .call(
            Method::POST,
            "/api/trust/CAPF-trust",
            &auth,
            Some(Bytes(trust_fixture("root"))),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["certificates"][0]["verdict"], "accepted");
    let fingerprint = a.body["certificates"][0]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let files = s.trust_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let listed = s
        .call(Method::GET, "/api/trust?purpose=CAPF-trust", &reader, None)
        .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0]["fingerprint_sha256"], fingerprint.as_str());

    // The guide's rule: a CA whose CN holds "CAPF-" is refused, with capf-trust's message, and
    // nothing is written.
    let wrong = wrong_csrf(&auth);
    let cases: Vec<Case<'_, String>> = vec![
        (
            Method::POST,
            "/api/trust/CAPF-trust".into(),
            &auth,
            Some(Bytes(trust_fixture("reserved-ascii"))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "contains \"CAPF-\", reserved for CAPF certificates",
        ),
        (
            Method::POST,
            "/api/trust/CAPF-trust".into(),
            &auth,
            Some(Raw("not a certificate")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "upload",
        ),
        (
            Method::POST,
            "/api/trust/.hidden".into(),
            &auth,
            Some(Bytes(trust_fixture("root"))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "purpose",
        ),
        (
            Method::DELETE,
            "/api/trust/CAPF-trust/abcdef0123".into(),
            &auth,
            None,
            StatusCode::NOT_FOUND,
            "abcdef0123",
        ),
        (
            Method::DELETE,
            format!("/api/trust/CallManager-trust/{}", &fingerprint[..12]),
            &auth,
            None,
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            Method::DELETE,
            "/api/trust/CAPF-trust/abc".into(),
            &auth,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "at least 8 hex digits",
        ),
        (
            Method::POST,
            "/api/trust/CAPF-trust".into(),
            &reader,
            Some(Bytes(trust_fixture("inter"))),
            StatusCode::FORBIDDEN,
            "read-only",
        ),
        (
            Method::DELETE,
            format!("/api/trust/CAPF-trust/{fingerprint}"),
            &reader,
            None,
            StatusCode::FORBIDDEN,
            "read-only",
        ),
        (
            Method::DELETE,
            format!("/api/trust/CAPF-trust/{fingerprint}"),
            &wrong,
            None,
            StatusCode::FORBIDDEN,
            "CSRF",
        ),
    ];
    for (method, path, who, body, status, message) in cases {
        let a = s.call(method.clone(), &path, who, body).await;
        assert_eq!(a.status, status, "{method} {path}: {}", a.body);
        assert!(
            a.error().contains(message),
            "{method} {path}: {}",
            a.error()
        );
        assert_eq!(s.trust_files(), files, "{method} {path}");
    }

    let a = s
        .call(
            Method::DELETE,
            &format!("/api/trust/CAPF-trust/{}", &fingerprint[..16]),
            &auth,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["deleted"], fingerprint.as_str());
    assert!(s.trust_files().is_empty());
}

#[tokio::test]
async fn the_capf_certificate_is_shown_and_replaced_by_a_checked_bundle() {
    use capf_lsc::{Curve, KeySpec};
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let a = s.call(Method::GET, "/api/capf-cert", &reader, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.error().contains("capf.pem"), "{}", a.error());

    let spec = KeySpec::Ec(Curve::P256);
    let issuer = capf_test_support::capf_issuer(spec);
    let cert_pem = capf_lsc::certificate_to_pem(issuer.certificate()).unwrap();
    let key_pem = capf_test_support::key_pem(spec);
    let other_key = capf_test_support::key_pem(KeySpec::Ec(Curve::P384));
    let wrong = wrong_csrf(&auth);
    let bundle = format!("{cert_pem}{key_pem}").into_bytes();
    let cases: Vec<(&Auth, Body, StatusCode, &str)> = vec![
        (
            &auth,
            Raw("garbage"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "upload",
        ),
        (
            &auth,
            Bytes(cert_pem.clone().into_bytes()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no private key",
        ),
        (
            &auth,
            Bytes(format!("{cert_pem}{other_key}").into_bytes()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "upload",
        ),
        (
            &auth,
            Bytes([trust_fixture("root"), key_pem.as_bytes().to_vec()].concat()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "upload",
        ),
        (
            &reader,
            Bytes(bundle.clone()),
            StatusCode::FORBIDDEN,
            "read-only",
        ),
        (&wrong, Bytes(bundle.clone()), StatusCode::FORBIDDEN, "CSRF"),
    ];
    for (who, body, status, message) in cases {
        let a = s.call(Method::PUT, "/api/capf-cert", who, Some(body)).await;
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.error().contains(message), "{}", a.error());
        assert!(!a.body.to_string().contains("PRIVATE KEY"));
        assert!(!s.data().join("capf.pem").exists());
        assert!(!s.data().join("capf.key").exists());
    }

    let a = s
        .call(Method::PUT, "/api/capf-cert", &auth, Some(Bytes(bundle)))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body["subject"]
            .as_str()
            .unwrap()
            .contains("CAPF-0000cafe"),
        "{}",
        a.body
    );
    assert_eq!(a.body["profile_problems"], json!([]));
    assert!(!a.body.to_string().contains("PRIVATE KEY"));
    let written = capf_lsc::CertificateAndKey::from_pem_or_der(
        &[
            std::fs::read(s.data().join("capf.pem")).unwrap(),
            std::fs::read(s.data().join("capf.key")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(&written.certificate, issuer.certificate());
    assert!(written.key.is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data().join("capf.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let shown = s.call(Method::GET, "/api/capf-cert", &reader, None).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.body, a.body);
}

#[tokio::test]
async fn pending_csrs_export_as_a_tgz_and_bad_imports_are_refused_with_the_report() {
    use capf_store::{CaRequestState, CertificateIssuer, NewCaRequest};
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let name = capf_store::DeviceName::new("SEP0000000000AA").unwrap();
    s.store
        .add_device(&capf_store::NewDevice::new(name.clone()), SystemTime::now())
        .unwrap();
    let key = capf_test_support::issuer_key(capf_lsc::KeySpec::Ec(capf_lsc::Curve::P256));
    let subject: capf_lsc::x509_cert::name::Name =
        std::str::FromStr::from_str("CN=SEP0000000000AA").unwrap();
    let csr = capf_lsc::der::Encode::to_der(&capf_lsc::capf_csr(&subject, &key).unwrap()).unwrap();
    let spki = capf_lsc::der::Encode::to_der(capf_lsc::LscSigner::public_key(&key)).unwrap();
    let request = s
        .store
        .record_ca_request(
            &name,
            &NewCaRequest {
                mode: CertificateIssuer::OfflineCa,
                csr: &csr,
                public_key: &spki,
                ca_request_id: None,
            },
            SystemTime::now(),
        )
        .unwrap();

    let (status, kind, archive) = s.download("/api/csrs/export", &reader).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind, "application/gzip");
    let (members, refused) = capf_admin::csr::read_tgz("export.tgz", &archive);
    assert!(refused.is_empty(), "{refused:?}");
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("export.tgz:SEP0000000000AA-{}.csr", request.id).as_str(),
            "export.tgz:index.csv"
        ]
    );
    assert!(
        String::from_utf8_lossy(&members[0].data).starts_with("-----BEGIN CERTIFICATE REQUEST")
    );
    let (status, _, body) = s.download("/api/csrs/export?der=maybe", &reader).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // Imports that apply nothing: each refused with its reason, the request still Pending.
    let unknown_key = capf_test_support::capf_issuer(capf_lsc::KeySpec::Ec(capf_lsc::Curve::P384));
    let leaf = capf_lsc::certificate_to_pem(unknown_key.certificate()).unwrap();
    let not_ca_leaf = trust_fixture("lsc-a");
    let wrong = wrong_csrf(&auth);
    let cases: Vec<(&Auth, Body, StatusCode, &str)> = vec![
        (
            &auth,
            Raw("garbage"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
        ),
        (
            &auth,
            Bytes(vec![0x1f, 0x8b, 0, 1, 2, 3]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
        ),
        (
            &auth,
            Bytes(not_ca_leaf),
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
        ),
        (
            &reader,
            Bytes(leaf.clone().into_bytes()),
            StatusCode::FORBIDDEN,
            "read-only",
        ),
        (
            &wrong,
            Bytes(leaf.into_bytes()),
            StatusCode::FORBIDDEN,
            "CSRF",
        ),
    ];
    for (who, body, status, message) in cases {
        let a = s
            .call(Method::POST, "/api/certs/import", who, Some(body))
            .await;
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.error().contains(message), "{}", a.error());
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            let refused = a.body["refused"].as_array().unwrap();
            assert!(!refused.is_empty(), "{}", a.body);
            assert!(refused[0]["source"].as_str().unwrap().starts_with("upload"));
            assert!(!refused[0]["reason"].as_str().unwrap().is_empty());
            assert_eq!(a.body["imported"], json!([]));
        }
        let pending = s.store.ca_requests(Some(CaRequestState::Pending)).unwrap();
        assert_eq!(pending.len(), 1);
        assert!(s.store.lscs(&name).unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_standalone_web_has_no_metrics_and_they_need_a_login() {
    let s = start(capf_web::WebConfig::default()).await;
    let none = Auth::default();
    let refused = s.call(Method::GET, "/metrics", &none, None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    // Logged in (any role), a capf-web without a server in its process has none to give.
    let reader = s.login("reader").await;
    let missing = s.call(Method::GET, "/metrics", &reader, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body["error"]
            .as_str()
            .unwrap()
            .contains("--admin-listen"),
        "{}",
        missing.body
    );
    // Its readiness is the store's alone.
    let ready = s.call(Method::GET, "/readyz", &none, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["checks"], json!({ "store": "ok" }));
}

#[tokio::test]
async fn the_capf_certificate_is_regenerated_keeping_its_id_and_bad_requests_change_nothing() {
    use capf_lsc::{KeySpec, RsaBits};
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let spec = KeySpec::Rsa(RsaBits::B2048);
    let issuer = capf_test_support::capf_issuer(spec);
    let cert_pem = capf_lsc::certificate_to_pem(issuer.certificate()).unwrap();
    std::fs::write(s.data().join("capf.pem"), &cert_pem).unwrap();
    std::fs::write(s.data().join("capf.key"), capf_test_support::key_pem(spec)).unwrap();
    let before = s
        .call(Method::GET, "/api/capf-cert", &auth, None)
        .await
        .body;
    let audit = s.audit_len();
    let wrong = wrong_csrf(&auth);
    let nobody = Auth::default();
    let cases: Vec<(&Auth, Body, StatusCode, &str)> = vec![
        (&auth, Raw("{"), StatusCode::BAD_REQUEST, "malformed JSON"),
        (
            &auth,
            J(json!({ "colour": "red" })),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (
            &auth,
            J(json!({ "key_type": "rsa512" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key_type",
        ),
        (
            &auth,
            J(json!({ "days": "1826" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "days",
        ),
        (
            &auth,
            J(json!({ "hash": "md5" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "hash",
        ),
        (
            &auth,
            J(json!({ "capf_id": "xyz" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            "xyz",
        ),
        (&reader, J(json!({})), StatusCode::FORBIDDEN, "read-only"),
        (&wrong, J(json!({})), StatusCode::FORBIDDEN, "CSRF"),
        (&nobody, J(json!({})), StatusCode::UNAUTHORIZED, "log in"),
    ];
    for (who, body, status, message) in cases {
        let a = s
            .call(Method::POST, "/api/capf-cert/regenerate", who, Some(body))
            .await;
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.error().contains(message), "{}", a.error());
        assert_eq!(
            std::fs::read_to_string(s.data().join("capf.pem")).unwrap(),
            cert_pem
        );
        assert_eq!(s.audit_len(), audit);
    }

    let a = s
        .call(
            Method::POST,
            "/api/capf-cert/regenerate",
            &auth,
            Some(J(json!({ "key_type": "p256", "days": "730" }))),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_ne!(a.body["serial"], before["serial"]);
    // The CN keeps the CAPF- id of the certificate it replaces.
    assert!(
        a.body["subject"]
            .as_str()
            .unwrap()
            .contains("CAPF-0000cafe"),
        "{}",
        a.body
    );
    assert_eq!(a.body["key"], "EC P-256");
    assert_eq!(a.body["profile_problems"], json!([]));
    let written = capf_lsc::CertificateAndKey::from_pem_or_der(
        &[
            std::fs::read(s.data().join("capf.pem")).unwrap(),
            std::fs::read(s.data().join("capf.key")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    capf_admin::check_capf_certificate(
        &written,
        std::path::Path::new("capf.pem"),
        SystemTime::now(),
    )
    .unwrap();
    assert!(!s.data().join("capf.pem.regenerated").exists());
    assert_eq!(
        s.call(Method::GET, "/api/capf-cert", &reader, None)
            .await
            .body,
        a.body
    );
    let entry = &s.store.audit(None, 1).unwrap()[0];
    assert_eq!(
        entry.action,
        capf_store::action::CAPF_CERTIFICATE_REGENERATED
    );
    assert_eq!(entry.device, None);
    assert_eq!(entry.actor.as_deref(), Some("alice"));

    // Without a data directory there is nothing to regenerate.
    let s = start(capf_web::WebConfig::default()).await;
    let _ = std::fs::remove_dir_all(s.data());
    let auth = s.login("alice").await;
    let a = s
        .call(
            Method::POST,
            "/api/capf-cert/regenerate",
            &auth,
            Some(J(json!({}))),
        )
        .await;
    assert_ne!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn trust_and_capf_certificate_changes_are_audited_with_the_account_and_no_device() {
    use capf_lsc::{Curve, KeySpec};
    let (s, auth) = admin_server().await;
    let a = s
        .call(
            Method::POST,
            "/api/trust/CAPF-trust",
            &auth,
            Some(Bytes(trust_fixture("root"))),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let fingerprint = a.body["certificates"][0]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    // A refused upload saves nothing and audits nothing.
    let audit = s.audit_len();
    let a = s
        .call(
            Method::POST,
            "/api/trust/CAPF-trust",
            &auth,
            Some(Bytes(trust_fixture("reserved-ascii"))),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s.audit_len(), audit);
    let a = s
        .call(
            Method::DELETE,
            &format!("/api/trust/CAPF-trust/{fingerprint}"),
            &auth,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let spec = KeySpec::Ec(Curve::P256);
    let issuer = capf_test_support::capf_issuer(spec);
    let bundle = format!(
        "{}{}",
        capf_lsc::certificate_to_pem(issuer.certificate()).unwrap(),
        capf_test_support::key_pem(spec)
    );
    let a = s
        .call(
            Method::PUT,
            "/api/capf-cert",
            &auth,
            Some(Bytes(bundle.into_bytes())),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let entries = s.store.audit(None, 3).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            capf_store::action::CAPF_CERTIFICATE_REPLACED,
            capf_store::action::TRUST_DELETED,
            capf_store::action::TRUST_UPLOADED,
        ]
    );
    for e in &entries {
        assert_eq!(e.device, None);
        assert_eq!(e.actor.as_deref(), Some("alice"));
    }
    assert!(
        entries[1].detail.contains(&fingerprint),
        "{}",
        entries[1].detail
    );
    assert!(
        entries[0].detail.contains("CAPF-0000cafe"),
        "{}",
        entries[0].detail
    );
    let listed = s.call(Method::GET, "/api/audit?limit=3", &auth, None).await;
    assert_eq!(listed.body[0]["actor"], "alice");
    assert_eq!(listed.body[0]["device"], Value::Null);
}

#[tokio::test]
async fn run_later_bulk_requests_store_jobs_that_are_listed_shown_run_and_cancelled() {
    let (s, auth) = admin_server().await;
    let none = s.call(Method::GET, "/api/jobs", &auth, None).await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.body, json!([]));
    let audit = s.audit_len();

    // A bad file with a Run Later time: refused now with its line, no job stored.
    let bad = s
        .call(
            Method::POST,
            "/api/bulk/insert?at=2030-01-01T00:00:00Z",
            &auth,
            Some(Raw(
                "device_name,operation,auth_string\nSEP001122334455,install,12\n",
            )),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.error().starts_with("upload.csv:2:"), "{}", bad.error());
    let bad_time = s
        .call(
            Method::POST,
            "/api/bulk/insert?at=tomorrow",
            &auth,
            Some(Raw("device_name\nSEP001122334455\n")),
        )
        .await;
    assert_eq!(bad_time.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_time.error().contains("at"), "{}", bad_time.error());
    let dry = s
        .call(
            Method::POST,
            "/api/bulk/update",
            &auth,
            Some(J(
                json!({ "model": "Cisco 8865", "dry_run": true, "at": "2030-01-01T00:00:00Z" }),
            )),
        )
        .await;
    assert_eq!(dry.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", dry.body);
    assert!(dry.error().starts_with("a dry run cannot be scheduled"));
    assert_eq!(
        s.call(Method::GET, "/api/jobs", &auth, None).await.body,
        json!([])
    );

    // A good file due now: stored, not applied, until capfd's scheduler runs it.
    let insert = s
        .call(
            Method::POST,
            "/api/bulk/insert?at=2020-01-01T00:00:00Z",
            &auth,
            Some(Raw(
                "device_name,device_pool\nSEP001122334455,Lobby\nSEP001122334456,Lobby\n",
            )),
        )
        .await;
    assert_eq!(insert.status, StatusCode::ACCEPTED, "{}", insert.body);
    assert_eq!(insert.body["state"], "scheduled");
    assert_eq!(insert.body["kind"], "bulk-insert");
    let insert_id = insert.body["id"].as_i64().unwrap();
    assert_eq!(s.device_count(), 0);
    // An update for later: the change is checked now.
    let bad_update = s
        .call(
            Method::POST,
            "/api/bulk/update",
            &auth,
            Some(J(
                json!({ "operation": "fly", "at": "2030-01-01T00:00:00Z" }),
            )),
        )
        .await;
    assert_eq!(bad_update.status, StatusCode::UNPROCESSABLE_ENTITY);
    let update = s
        .call(
            Method::POST,
            "/api/bulk/update",
            &auth,
            Some(J(json!({
                "filter": { "pool": "Lobby" },
                "model": "Cisco 8865",
                "at": "2030-01-01T00:00:00Z"
            }))),
        )
        .await;
    assert_eq!(update.status, StatusCode::ACCEPTED, "{}", update.body);
    assert_eq!(update.body["kind"], "bulk-update");
    let update_id = update.body["id"].as_i64().unwrap();
    let listed = s.call(Method::GET, "/api/jobs", &auth, None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2, "{}", listed.body);
    let scheduled = s
        .call(Method::GET, "/api/jobs?state=scheduled", &auth, None)
        .await;
    assert_eq!(scheduled.body.as_array().unwrap().len(), 2);
    let bad_state = s
        .call(Method::GET, "/api/jobs?state=sleeping", &auth, None)
        .await;
    assert_eq!(bad_state.status, StatusCode::UNPROCESSABLE_ENTITY);

    // capfd's scheduler runs the due one; the API shows its result.
    let scheduler = capf_admin::jobs::Scheduler::new(
        "test-node",
        capf_admin::jobs::MonitorConfig {
            enabled: false,
            ..Default::default()
        },
    );
    scheduler.run_due(&*s.store, SystemTime::now()).unwrap();
    assert_eq!(s.device_count(), 2);
    let ran = s
        .call(Method::GET, &format!("/api/jobs/{insert_id}"), &auth, None)
        .await;
    assert_eq!(ran.status, StatusCode::OK);
    assert_eq!(ran.body["state"], "succeeded", "{}", ran.body);
    assert_eq!(ran.body["devices_changed"], 2);
    assert_eq!(ran.body["node"], "test-node");

    // Cancelling: the read-only role may not; a job that ran cannot be; an unknown one is 404.
    let reader = s.login("reader").await;
    let path = format!("/api/jobs/{update_id}/cancel");
    let refused = s.call(Method::POST, &path, &reader, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let too_late = s
        .call(
            Method::POST,
            &format!("/api/jobs/{insert_id}/cancel"),
            &auth,
            None,
        )
        .await;
    assert_eq!(too_late.status, StatusCode::CONFLICT, "{}", too_late.body);
    for unknown in ["/api/jobs/999/cancel", "/api/jobs/x/cancel"] {
        let a = s.call(Method::POST, unknown, &auth, None).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{unknown}");
    }
    assert_eq!(
        s.call(Method::GET, "/api/jobs/999", &auth, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let cancelled = s.call(Method::POST, &path, &auth, None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["state"], "cancelled");
    // The cancelled update never runs.
    scheduler
        .run_due(
            &*s.store,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
        )
        .unwrap();
    let devices = s.store.list_devices().unwrap();
    assert!(devices.iter().all(|d| d.model.is_empty()), "{devices:?}");
    // The stores and the cancel are audited with the account (the run, by the scheduler).
    let entries = s.store.audit(None, usize::MAX).unwrap();
    assert!(entries.len() > audit);
    let by_alice: Vec<&str> = entries
        .iter()
        .filter(|e| e.actor.as_deref() == Some("alice"))
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(
        by_alice,
        ["job cancelled", "job scheduled", "job scheduled"],
        "{entries:?}"
    );
}

#[tokio::test]
async fn lscs_are_revoked_stale_ones_deleted_and_ca_requests_deleted_as_capfctl_does() {
    use capf_store::{DeviceName, LscState};
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let name = DeviceName::new("SEP0000000000AA").unwrap();
    s.store
        .add_device(&capf_store::NewDevice::new(name.clone()), SystemTime::now())
        .unwrap();
    s.import_lscs(
        "SEP0000000000AA",
        &[
            ([0x0a, 1], LscState::Installed),
            ([0x0b, 1], LscState::Stale),
            ([0x0c, 1], LscState::Stale),
        ],
    );

    // Revoke: bad input first, each with its status, nothing changed.
    let before = s.audit_len();
    for (who, path, status) in [
        (&reader, "/api/lscs/0a01/revoke", StatusCode::FORBIDDEN),
        (
            &auth,
            "/api/lscs/zz/revoke",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (&auth, "/api/lscs/ff01/revoke", StatusCode::NOT_FOUND),
    ] {
        let a = s.call(Method::POST, path, who, None).await;
        assert_eq!(a.status, status, "{path}: {}", a.body);
        assert!(!a.error().is_empty());
    }
    assert_eq!(s.audit_len(), before);
    let revoked = s
        .call(Method::POST, "/api/lscs/0a:01/revoke", &auth, None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["serial"], "0a01");
    assert_eq!(revoked.body["state"], "revoked");
    assert_eq!(
        s.store.lsc(&[0x0a, 1]).unwrap().unwrap().state,
        LscState::Revoked
    );
    let again = s
        .call(Method::POST, "/api/lscs/0a01/revoke", &auth, None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // The Stale LSC report's delete.
    let refused = s
        .call(Method::DELETE, "/api/reports/stale-lscs", &reader, None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(s.store.stale_lscs().unwrap().len(), 2);
    let deleted = s
        .call(Method::DELETE, "/api/reports/stale-lscs", &auth, None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body, json!({ "deleted": 2 }));
    let report = s
        .call(Method::GET, "/api/reports/stale-lscs", &reader, None)
        .await;
    assert_eq!(report.body, json!([]));
    assert!(s.store.lsc(&[0x0a, 1]).unwrap().is_some());

    // Requests to an external CA: one by id, or all with all=true.
    let request = s.record_offline_request("SEP0000000000AA");
    for (who, path, status) in [
        (
            &reader,
            format!("/api/csrs/{}", request.id),
            StatusCode::FORBIDDEN,
        ),
        (&auth, "/api/csrs/999".to_owned(), StatusCode::NOT_FOUND),
        (&auth, "/api/csrs/x".to_owned(), StatusCode::NOT_FOUND),
        (
            &auth,
            "/api/csrs".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let a = s.call(Method::DELETE, &path, who, None).await;
        assert_eq!(a.status, status, "{path}: {}", a.body);
    }
    assert_eq!(s.store.ca_requests(None).unwrap().len(), 1);
    let one = s
        .call(
            Method::DELETE,
            &format!("/api/csrs/{}", request.id),
            &auth,
            None,
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body, json!({ "deleted": 1 }));
    assert!(s.store.ca_requests(None).unwrap().is_empty());
    let all = s
        .call(Method::DELETE, "/api/csrs?all=true", &auth, None)
        .await;
    assert_eq!(all.body, json!({ "deleted": 0 }));
}
