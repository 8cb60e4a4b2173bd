//! The web pages over HTTPS, as a browser without scripts submits them: every page form
//! refuses a missing or wrong CSRF token and changes nothing; every page answers with the
//! content security policy and references nothing of another origin; and the pages the browser
//! test does not drive (service parameters, bulk update's preview and apply, a CSV insert and a
//! trust upload that succeed, scheduled jobs) do what they say.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use capf_store::{AdminStore, DeviceName, JobState, SessionStore};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A page's answer: status, content security policy, body.
struct Page {
    status: StatusCode,
    csp: Option<String>,
    location: Option<String>,
    html: String,
}

/// One part of a multipart form: a text field, or a file with its name.
enum Part<'a> {
    Field(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

fn urlencode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc = |t: &str| {
                t.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                            char::from(b).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

const BOUNDARY: &str = "capf-test-boundary-7f3a";

fn multipart(parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Field(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, file, data) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(data);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

impl Server {
    async fn page_request(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Page {
        let client = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(
                    &std::fs::read(self.dir.join(capf_web::tls::CERT_FILE)).unwrap(),
                )
                .unwrap(),
            )
            .resolve("localhost", self.addr)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut req = client.request(method, self.url(path));
        if let Some(c) = &auth.cookie {
            req = req.header("cookie", c);
        }
        if let Some((kind, data)) = body {
            req = req.header("content-type", kind).body(data);
        }
        let res = req.send().await.unwrap();
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let (csp, location) = (header("content-security-policy"), header("location"));
        Page {
            status: res.status(),
            csp,
            location,
            html: res.text().await.unwrap(),
        }
    }

    async fn get_page(&self, path: &str, auth: &Auth) -> Page {
        self.page_request(Method::GET, path, auth, None).await
    }

    async fn post_form(&self, path: &str, auth: &Auth, fields: &[(&str, &str)]) -> Page {
        let body = urlencode(fields).into_bytes();
        self.page_request(
            Method::POST,
            path,
            auth,
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    async fn post_multipart(&self, path: &str, auth: &Auth, parts: &[Part<'_>]) -> Page {
        let kind: &'static str = "multipart/form-data; boundary=capf-test-boundary-7f3a";
        self.page_request(Method::POST, path, auth, Some((kind, multipart(parts))))
            .await
    }

    fn device(&self, name: &str) -> capf_store::Device {
        self.store
            .device(&DeviceName::new(name).unwrap())
            .unwrap()
            .unwrap()
    }
}

/// The notice a page shows (`id="notice"`), unescaped enough to compare.
fn notice(page: &Page) -> String {
    let Some(start) = page.html.find(r#"id="notice">"#) else {
        return String::new();
    };
    let rest = &page.html[start + r#"id="notice">"#.len()..];
    rest[..rest.find("</p>").unwrap()]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

const CSRF_REFUSED: &str = "missing or wrong CSRF token (the form's hidden field); reload the page";

/// What a refused form must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    devices: Vec<capf_store::Device>,
    audit: usize,
    settings: Vec<capf_admin::SettingView>,
    trust: Vec<std::path::PathBuf>,
    jobs: Vec<JobState>,
    capf_pem: Option<Vec<u8>>,
    online_ca: bool,
    lscs: Vec<capf_store::LscRecord>,
    requests: usize,
}

fn snapshot(s: &Server) -> Snapshot {
    Snapshot {
        devices: s.store.list_devices().unwrap(),
        audit: s.audit_len(),
        settings: capf_admin::settings(&*s.store).unwrap(),
        trust: s.trust_files(),
        jobs: s
            .store
            .jobs(None)
            .unwrap()
            .iter()
            .map(|j| j.state)
            .collect(),
        capf_pem: std::fs::read(s.data().join("capf.pem")).ok(),
        online_ca: capf_admin::online_ca(&*s.store).unwrap().is_some(),
        lscs: s.store.lscs(&DeviceName::new(PHONE).unwrap()).unwrap(),
        requests: s.store.ca_requests(None).unwrap().len(),
    }
}

const PHONE: &str = "SEP001122334455";

#[tokio::test]
async fn page_forms_refuse_a_missing_or_wrong_csrf_token_and_change_nothing() {
    let (s, auth) = admin_server().await;
    let csrf = auth.csrf.clone().unwrap();
    s.call(
        Method::POST,
        "/api/devices",
        &auth,
        Some(J(json!({ "name": PHONE, "device_pool": "Lobby" }))),
    )
    .await;
    let job = s
        .call(
            Method::POST,
            "/api/bulk/insert?at=2030-01-01T00:00:00Z",
            &auth,
            Some(Raw("device_name\nSEP0000000000B1\n")),
        )
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
    let cancel_path = format!("/jobs/{}/cancel", job.body["id"]);
    s.import_lscs(
        PHONE,
        &[
            ([0x0a, 1], capf_store::LscState::Installed),
            ([0x0b, 1], capf_store::LscState::Stale),
        ],
    );
    let request = s.record_offline_request(PHONE);
    let csr_path = format!("/reports/csrs/{}/delete", request.id);

    // Each form as a browser posts it, with the token in `csrf` left out or replaced.
    enum Form<'a> {
        Fields(&'a str, Vec<(&'a str, &'a str)>),
        Multi(&'a str, Vec<Part<'a>>),
    }
    let forms = |token: Option<&'static str>| -> Vec<Form<'_>> {
        let with = |mut fields: Vec<(&'static str, &'static str)>| {
            if let Some(t) = token {
                fields.push(("csrf", t));
            }
            fields
        };
        let multi = |mut parts: Vec<Part<'static>>| {
            if let Some(t) = token {
                parts.push(Part::Field("csrf", t));
            }
            parts
        };
        vec![
            Form::Fields("/devices", with(vec![("device_name", "SEP0000000000A2")])),
            Form::Fields(
                "/devices/SEP001122334455",
                with(vec![("operation", "delete"), ("auth_mode", "null-string")]),
            ),
            Form::Fields(
                "/bulk/update",
                with(vec![
                    ("filter.pool", "Lobby"),
                    ("model", "Cisco 8865"),
                    ("apply", "1"),
                ]),
            ),
            Form::Fields("/parameters", with(vec![("keepalive_minutes", "17")])),
            Form::Fields(
                "/parameters/online-ca",
                with(vec![
                    ("host", "ca.example.com"),
                    ("type", "est"),
                    ("username", "capf"),
                    ("password", "secret"),
                ]),
            ),
            Form::Fields(
                "/certificates/trust/delete",
                with(vec![
                    ("purpose", "CAPF-trust"),
                    ("fingerprint", "0123456789"),
                ]),
            ),
            Form::Fields(
                "/certificates/capf/regenerate",
                with(vec![("key_type", "p256")]),
            ),
            Form::Fields("/logout", with(vec![])),
            Form::Multi(
                "/bulk/insert",
                multi(vec![Part::File(
                    "csv",
                    "phones.csv",
                    b"device_name\nSEP0000000000A3\n",
                )]),
            ),
            Form::Multi(
                "/certificates/trust",
                multi(vec![
                    Part::Field("purpose", "CAPF-trust"),
                    Part::File(
                        "certificate",
                        "root.pem",
                        include_bytes!("../../capf-trust/tests/fixtures/root.pem"),
                    ),
                ]),
            ),
        ]
    };
    let before = snapshot(&s);
    for token in [
        None,
        Some("0000000000000000000000000000000000000000000000000000000000000000"),
    ] {
        let mut posted: Vec<(String, Page)> = Vec::new();
        for form in forms(token) {
            match form {
                Form::Fields(path, fields) => {
                    posted.push((path.to_owned(), s.post_form(path, &auth, &fields).await));
                }
                Form::Multi(path, parts) => {
                    posted.push((path.to_owned(), s.post_multipart(path, &auth, &parts).await));
                }
            }
        }
        let token_only: Vec<(&str, &str)> = token.map(|t| ("csrf", t)).into_iter().collect();
        for path in [
            cancel_path.as_str(),
            csr_path.as_str(),
            "/reports/stale-lscs/delete",
            "/devices/SEP001122334455/lscs/0a01/revoke",
        ] {
            posted.push((path.to_owned(), s.post_form(path, &auth, &token_only).await));
        }
        for (path, page) in &posted {
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} {token:?}");
            assert_eq!(notice(page), CSRF_REFUSED, "{path} {token:?}");
        }
        assert_eq!(snapshot(&s), before, "{token:?}");
    }
    // The session survived the refused logout.
    assert_eq!(
        s.call(Method::GET, "/api/me", &auth, None).await.status,
        StatusCode::OK
    );

    // The same forms with the session's token do change things (so the refusals above were
    // the token's): one of each kind.
    let added = s
        .post_form(
            "/devices",
            &auth,
            &[("device_name", "SEP0000000000A2"), ("csrf", &csrf)],
        )
        .await;
    assert!(
        added.status.is_success() || added.status.is_redirection(),
        "{}",
        added.html
    );
    assert_eq!(s.device_count(), 2);
    let cancelled = s.post_form(&cancel_path, &auth, &[("csrf", &csrf)]).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.html);
    assert!(
        notice(&cancelled).starts_with("Cancelled job"),
        "{}",
        notice(&cancelled)
    );
    assert_eq!(s.store.jobs(None).unwrap()[0].state, JobState::Cancelled);
}

/// The policy every page and picture answers with: this server's own files only.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; object-src 'none'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Every `http:`, `https:` or protocol-relative reference in a page (the SVG namespace, a
/// name and never fetched, left out).
fn foreign_references(text: &str) -> Vec<String> {
    let text = text.replace(r#"xmlns="http://www.w3.org/2000/svg""#, "");
    let mut found = Vec::new();
    for needle in ["http://", "https://", "=\"//", "='//", "url(//"] {
        let mut at = 0;
        while let Some(i) = text[at..].find(needle) {
            let start = at + i;
            found.push(text[start..text.len().min(start + 60)].to_owned());
            at = start + needle.len();
        }
    }
    found
}

#[tokio::test]
async fn every_page_answers_with_the_content_security_policy_and_references_nothing_elsewhere() {
    let (s, auth) = admin_server().await;
    s.call(
        Method::POST,
        "/api/devices",
        &auth,
        Some(J(json!({ "name": PHONE, "device_pool": "Lobby" }))),
    )
    .await;
    let pages = [
        "/devices",
        "/devices?pool=Lobby&page=1",
        "/devices/SEP001122334455",
        "/bulk",
        "/certificates",
        "/parameters",
        "/reports",
        "/reports/operations.svg",
        "/reports/lsc-expiry.svg",
        "/jobs",
    ];
    let login = s.get_page("/login", &Auth::default()).await;
    for (path, page) in std::iter::once(("/login", login)).chain({
        let mut got = Vec::new();
        for path in pages {
            got.push((path, s.get_page(path, &auth).await));
        }
        got
    }) {
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(page.csp.as_deref(), Some(POLICY), "{path}");
        assert!(
            foreign_references(&page.html).is_empty(),
            "{path}: {:?}",
            foreign_references(&page.html)
        );
        // No inline script or style for the policy to block: scripts and the style sheet
        // are files of this server.
        assert!(!page.html.contains("<script>"), "{path}");
        assert!(!page.html.contains("<style"), "{path}");
        assert!(!page.html.contains(" style="), "{path}");
    }
    // Every page route (read from the router's source, so a page added later is checked
    // too) that answers a GET with HTML or a picture carries the policy.
    let mut routes = routes_between(
        include_str!("../src/pages/mod.rs"),
        "let protected = Router::new()",
        ".route_layer(",
    );
    routes.extend(routes_between(
        include_str!("../src/pages/ldap.rs"),
        "Router::new()",
        ".route_layer(",
    ));
    assert!(routes.contains(&"/ldap".to_owned()), "{routes:?}");
    let mut checked = 0;
    for route in &routes {
        let path = sample_path(route).replace("x1", PHONE);
        let page = s.get_page(&path, &auth).await;
        if page.status.is_redirection() || page.status == StatusCode::METHOD_NOT_ALLOWED {
            continue;
        }
        assert_eq!(page.csp.as_deref(), Some(POLICY), "{path}");
        assert!(foreign_references(&page.html).is_empty(), "{path}");
        assert!(!page.html.contains("<script>"), "{path}");
        checked += 1;
    }
    assert!(checked >= pages.len() - 1, "{checked} of {routes:?}");
    // The files the pages load are served here, to anyone (the login page needs the style).
    for (path, kind) in [
        ("/assets/capf.css", "text/css"),
        ("/assets/bulk-upload.js", "text/javascript"),
    ] {
        let res = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let text = res.text().await.unwrap();
        assert!(!text.is_empty());
        assert!(foreign_references(&text).is_empty(), "{path}");
    }
    let bulk = s.get_page("/bulk", &auth).await;
    assert!(
        bulk.html
            .contains(r#"<script src="/assets/bulk-upload.js"></script>"#)
    );
    // Without a session a page sends the browser to the login page.
    let away = s.get_page("/devices", &Auth::default()).await;
    assert!(away.status.is_redirection());
    assert_eq!(away.location.as_deref(), Some("/login"));
}

#[tokio::test]
async fn service_parameters_bulk_update_csv_insert_trust_upload_and_jobs_work_from_their_pages() {
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let csrf = auth.csrf.clone().unwrap();

    // Service parameters: a value out of its range is refused with the rule, then one is saved.
    let keepalive = || capf_admin::settings(&*s.store).unwrap();
    let before = keepalive();
    let bad = s
        .post_form(
            "/parameters",
            &auth,
            &[("keepalive_minutes", "99"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        notice(&bad)
    );
    assert!(
        notice(&bad).contains("keepalive_minutes"),
        "{}",
        notice(&bad)
    );
    assert_eq!(keepalive(), before);
    let saved = s
        .post_form(
            "/parameters",
            &auth,
            &[
                ("keepalive_minutes", "17"),
                ("lsc_validity_days", "400"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", notice(&saved));
    assert_eq!(notice(&saved), "Saved.");
    let value = |key: &str| {
        keepalive()
            .into_iter()
            .find(|v| v.key == key)
            .unwrap()
            .value
    };
    assert_eq!(value("keepalive_minutes"), "17");
    assert_eq!(value("lsc_validity_days"), "400");
    let shown = s.get_page("/parameters", &reader).await;
    assert!(shown.html.contains(r#"value="17""#), "{}", shown.html);

    // A CSV insert that succeeds.
    let csv = b"device_name,device_pool,model\nSEP0000000000A1,Lobby,Cisco 7841\nSEP0000000000A2,Lobby,Cisco 7841\nSEP0000000000A3,Office,Cisco 7841\n";
    let inserted = s
        .post_multipart(
            "/bulk/insert",
            &auth,
            &[
                Part::Field("csrf", &csrf),
                Part::File("csv", "phones.csv", csv),
            ],
        )
        .await;
    assert_eq!(inserted.status, StatusCode::OK, "{}", notice(&inserted));
    assert_eq!(notice(&inserted), "Added 3 device(s) from phones.csv.");
    assert_eq!(s.device_count(), 3);

    // Bulk update by query: the preview names what would change and changes nothing, then
    // Apply changes exactly those.
    let update = |button: (&'static str, &'static str)| {
        vec![
            ("filter.pool", "Lobby"),
            ("model", "Cisco 8865"),
            button,
            ("csrf", csrf.as_str()),
        ]
    };
    let audit = s.audit_len();
    let preview = s
        .post_form("/bulk/update", &auth, &update(("dry_run", "true")))
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", notice(&preview));
    assert_eq!(
        notice(&preview),
        "Preview: 2 device(s) would change; nothing was changed."
    );
    assert!(preview.html.contains(r#"id="changes""#));
    for name in ["SEP0000000000A1", "SEP0000000000A2"] {
        assert!(preview.html.contains(name), "{name}");
        assert_eq!(s.device(name).model, "Cisco 7841");
    }
    assert!(!preview.html.contains("SEP0000000000A3"));
    assert_eq!(s.audit_len(), audit);
    let applied = s
        .post_form("/bulk/update", &auth, &update(("apply", "1")))
        .await;
    assert_eq!(applied.status, StatusCode::OK, "{}", notice(&applied));
    assert_eq!(notice(&applied), "2 device(s) changed.");
    assert_eq!(s.device("SEP0000000000A1").model, "Cisco 8865");
    assert_eq!(s.device("SEP0000000000A2").model, "Cisco 8865");
    assert_eq!(s.device("SEP0000000000A3").model, "Cisco 7841");

    // A trust upload that succeeds, listed on the page, then deleted from it.
    let root = trust_fixture("root");
    let uploaded = s
        .post_multipart(
            "/certificates/trust",
            &auth,
            &[
                Part::Field("csrf", &csrf),
                Part::Field("purpose", "CAPF-trust"),
                Part::File("certificate", "root.pem", &root),
            ],
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", notice(&uploaded));
    assert_eq!(
        notice(&uploaded),
        "Uploaded to CAPF-trust: 1 certificate(s) accepted."
    );
    assert_eq!(s.trust_files().len(), 1);
    let listed = s.call(Method::GET, "/api/trust", &auth, None).await;
    let fingerprint = listed.body[0]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = s.get_page("/certificates", &reader).await;
    assert!(page.html.contains(&fingerprint[..16]), "{}", page.html);
    let deleted = s
        .post_form(
            "/certificates/trust/delete",
            &auth,
            &[
                ("purpose", "CAPF-trust"),
                ("fingerprint", &fingerprint),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", notice(&deleted));
    assert!(
        notice(&deleted).starts_with("Deleted "),
        "{}",
        notice(&deleted)
    );
    assert!(s.trust_files().is_empty());

    // Run Later from the Bulk Administration page: the update and the CSV are checked now and
    // stored as jobs; nothing changes until capfd runs them. A preview with a time previews now.
    let later = |button: (&'static str, &'static str)| {
        vec![
            ("filter.pool", "Office"),
            ("model", "Cisco 7821"),
            ("at", "2030-01-01T00:00:00Z"),
            button,
            ("csrf", csrf.as_str()),
        ]
    };
    let preview = s
        .post_form("/bulk/update", &auth, &later(("dry_run", "true")))
        .await;
    assert_eq!(
        notice(&preview),
        "Preview: 1 device(s) would change; nothing was changed."
    );
    assert!(s.store.jobs(None).unwrap().is_empty());
    let stored = s
        .post_form("/bulk/update", &auth, &later(("apply", "1")))
        .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", notice(&stored));
    let jobs = s.store.jobs(None).unwrap();
    assert_eq!(jobs.len(), 1);
    let id = jobs[0].id;
    assert!(
        notice(&stored).starts_with(&format!("Scheduled job {id} for 2030-01-01T00:00:00Z: ")),
        "{}",
        notice(&stored)
    );
    assert_eq!(s.device("SEP0000000000A3").model, "Cisco 7841");
    let bad_time = s
        .post_form(
            "/bulk/update",
            &auth,
            &[
                ("model", "X"),
                ("at", "soon"),
                ("apply", "1"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(bad_time.status, StatusCode::UNPROCESSABLE_ENTITY);
    let csv_later = s
        .post_multipart(
            "/bulk/insert",
            &auth,
            &[
                Part::Field("csrf", &csrf),
                Part::File("csv", "later.csv", b"device_name\nSEP0000000000A4\n"),
                Part::Field("at", "2030-01-01T00:00:00Z"),
            ],
        )
        .await;
    assert_eq!(csv_later.status, StatusCode::OK, "{}", notice(&csv_later));
    assert!(notice(&csv_later).contains("bulk insert of 1 devices from later.csv"));
    assert_eq!(s.device_count(), 3);
    assert_eq!(s.store.jobs(None).unwrap().len(), 2);

    // Scheduled jobs: listed with their state, Cancel only for a writer and a scheduled job.
    let jobs = s.get_page("/jobs", &auth).await;
    assert_eq!(jobs.status, StatusCode::OK);
    assert!(
        jobs.html
            .contains(&format!(r#"<span id="job-{id}-state">scheduled</span>"#))
    );
    assert!(jobs.html.contains(&format!(r#"id="cancel-{id}""#)));
    let read_only = s.get_page("/jobs", &reader).await;
    assert!(read_only.html.contains(&format!(r#"id="job-{id}-state""#)));
    assert!(!read_only.html.contains(&format!(r#"id="cancel-{id}""#)));
    let refused = s
        .post_form(
            &format!("/jobs/{id}/cancel"),
            &reader,
            &[("csrf", reader.csrf.as_deref().unwrap())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(s.store.job(id).unwrap().unwrap().state, JobState::Scheduled);
    let cancelled = s
        .post_form(&format!("/jobs/{id}/cancel"), &auth, &[("csrf", &csrf)])
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", notice(&cancelled));
    assert!(
        cancelled
            .html
            .contains(&format!(r#"<span id="job-{id}-state">cancelled</span>"#))
    );
    assert_eq!(s.store.job(id).unwrap().unwrap().state, JobState::Cancelled);
    let again = s
        .post_form(&format!("/jobs/{id}/cancel"), &auth, &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", notice(&again));
}

#[tokio::test]
async fn an_lsc_is_revoked_and_stale_lscs_and_ca_requests_deleted_from_their_pages() {
    use capf_store::LscState;
    let (s, auth) = admin_server().await;
    let reader = s.login("reader").await;
    let csrf = auth.csrf.clone().unwrap();
    s.call(
        Method::POST,
        "/api/devices",
        &auth,
        Some(J(json!({ "name": PHONE }))),
    )
    .await;
    s.import_lscs(
        PHONE,
        &[
            ([0x0a, 1], LscState::Installed),
            ([0x0b, 1], LscState::Stale),
        ],
    );
    let request = s.record_offline_request(PHONE);

    // The read-only role sees the records and no button to change them.
    let pane = s.get_page("/devices/SEP001122334455", &reader).await;
    assert!(pane.html.contains("<code>0a01</code>"));
    assert!(!pane.html.contains(r#"id="revoke-0a01""#));
    let reports = s.get_page("/reports", &reader).await;
    assert!(reports.html.contains("<code>0b01</code>"));
    assert!(!reports.html.contains(r#"id="delete-stale""#));
    assert!(
        !reports
            .html
            .contains(&format!(r#"id="delete-csr-{}""#, request.id))
    );
    let refused = s
        .post_form(
            "/devices/SEP001122334455/lscs/0a01/revoke",
            &reader,
            &[("csrf", reader.csrf.as_deref().unwrap())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.store.lsc(&[0x0a, 1]).unwrap().unwrap().state,
        LscState::Installed
    );

    // Revoke from the CAPF pane: only the installed LSC has the button.
    let pane = s.get_page("/devices/SEP001122334455", &auth).await;
    assert!(pane.html.contains(r#"id="revoke-0a01""#));
    assert!(!pane.html.contains(r#"id="revoke-0b01""#));
    let revoked = s
        .post_form(
            "/devices/SEP001122334455/lscs/0a01/revoke",
            &auth,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", notice(&revoked));
    assert_eq!(notice(&revoked), "Revoked LSC 0a01.");
    assert!(!revoked.html.contains(r#"id="revoke-0a01""#));
    assert_eq!(
        s.store.lsc(&[0x0a, 1]).unwrap().unwrap().state,
        LscState::Revoked
    );
    let again = s
        .post_form(
            "/devices/SEP001122334455/lscs/0a01/revoke",
            &auth,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", notice(&again));

    // The Stale LSC report's delete, and a pending request's, from the Reports page.
    let reports = s.get_page("/reports", &auth).await;
    assert!(reports.html.contains(r#"id="delete-stale""#));
    let deleted = s
        .post_form("/reports/stale-lscs/delete", &auth, &[("csrf", &csrf)])
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", notice(&deleted));
    assert_eq!(notice(&deleted), "Deleted 1 stale LSC record(s).");
    assert!(s.store.stale_lscs().unwrap().is_empty());
    assert!(!deleted.html.contains(r#"id="delete-stale""#));
    let path = format!("/reports/csrs/{}/delete", request.id);
    let gone = s.post_form(&path, &auth, &[("csrf", &csrf)]).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", notice(&gone));
    assert_eq!(
        notice(&gone),
        format!("Deleted certificate request {}.", request.id)
    );
    assert!(s.store.ca_requests(None).unwrap().is_empty());
    let unknown = s.post_form(&path, &auth, &[("csrf", &csrf)]).await;
    assert_eq!(
        unknown.status,
        StatusCode::NOT_FOUND,
        "{}",
        notice(&unknown)
    );
}
