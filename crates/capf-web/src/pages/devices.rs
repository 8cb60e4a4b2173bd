//! Find and list (the device list with capfctl's filters, and adding a phone) and the phone
//! configuration's CAPF pane.

use std::fmt::Write as _;

use axum::Extension;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use capf_admin::{DeviceDetail, DeviceView, KEY_ORDERS, OperationKind, key_order_name, rfc3339};
use capf_lsc::{Curve, RsaBits};
use capf_store::{AuthMode, LscState, StatusKind};

use super::html::{self, Notice, esc, url_part};
use super::{FormData, PageCaller};
use crate::api::{self, AddDevice, FilterParams, ScheduleBody, UpdateDevice, blocking};
use crate::error::ApiError;

/// Devices shown on one page of the list.
const PAGE_SIZE: usize = 100;

const FILTER_KEYS: [&str; 5] = ["name", "pool", "model", "status", "lsc_expires_before"];
const FILTER_FLAGS: [&str; 1] = ["past_complete_by"];

fn query_pairs(uri: &axum::http::Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// `GET /devices?name=&pool=&model=&status=&lsc_expires_before=&past_complete_by=&page=`.
pub(super) async fn list(Extension(pc): Extension<PageCaller>, uri: axum::http::Uri) -> Response {
    render_list(pc, FormData::from_pairs(query_pairs(&uri)), Notice::None).await
}

/// The status filter's choices: any, then the store's names.
fn status_options() -> Vec<(String, String)> {
    std::iter::once((String::new(), "(any)".to_owned()))
        .chain(
            StatusKind::ALL
                .iter()
                .map(|s| (s.as_str().to_owned(), s.label().to_owned())),
        )
        .collect()
}

async fn render_list(pc: PageCaller, query: FormData, notice: Notice) -> Response {
    let filter_form = format!(
        r#"<section><form method="get" action="/devices" id="find" class="grid">{}{}{}{}{}{}<div class="actions"><button type="submit" id="find-button">Find</button></div></form></section>"#,
        html::input(
            "Device Name (a pattern, * for any)",
            "name",
            query.get("name"),
            "text"
        ),
        html::input("Device Pool", "pool", query.get("pool"), "text"),
        html::input("Model", "model", query.get("model"), "text"),
        html::select("Status", "status", &status_options(), query.get("status")),
        html::input(
            "LSC expires before",
            "lsc_expires_before",
            query.get("lsc_expires_before"),
            "date"
        ),
        html::checkbox(
            "Past Operation Completes By",
            "past_complete_by",
            !query.get("past_complete_by").is_empty()
        ),
    );
    let add_form = format!(
        r#"<details class="card"><summary>Add a phone</summary><form method="post" action="/devices" id="add-device" class="grid">{}{}{}{}{}<div class="actions"><button type="submit" id="add-button">Add</button></div></form></details>"#,
        html::csrf_field(&pc.csrf),
        html::input("Device Name", "device_name", "", "text"),
        html::input("Description", "description", "", "text"),
        html::input("Device Pool", "device_pool", "", "text"),
        html::input("Model", "model", "", "text"),
    );
    let page: usize = query.get("page").parse().unwrap_or(1).max(1);
    let (notice, table) = match query
        .body::<FilterParams>(&FILTER_KEYS, &FILTER_FLAGS)
        .map(|params| (params, pc.caller.clone()))
    {
        Err(e) => (Notice::Refused(e), String::new()),
        Ok((params, caller)) => {
            let offset = (page - 1).saturating_mul(PAGE_SIZE);
            match api::device_page_core(caller, &params, offset, PAGE_SIZE).await {
                Err(e) => (Notice::Refused(e), String::new()),
                Ok(found) => (notice, device_table(&found, page, &query)),
            }
        }
    };
    html::page(
        "Find and List Phones",
        "/devices",
        Some(&pc.viewer()),
        &notice,
        &format!("{filter_form}{add_form}{table}"),
    )
}

/// The table of one page of devices (`found`: page `page` of the query), with links to the
/// pages around it.
fn device_table(found: &capf_store::DevicePage, page: usize, query: &FormData) -> String {
    let total = found.total;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let rows: Vec<Vec<String>> = found
        .devices
        .iter()
        .map(|d| {
            let v = DeviceView::from(d);
            vec![
                format!(
                    r#"<a href="/devices/{}">{}</a>"#,
                    url_part(&v.name),
                    esc(&v.name)
                ),
                esc(&v.description),
                esc(&v.device_pool),
                esc(&v.model),
                esc(&v.operation_text),
                esc(v.status),
                esc(&d.auth_mode.to_string()),
            ]
        })
        .collect();
    let mut html = format!(
        r#"<p id="device-count">{total} device(s) found{}</p>"#,
        if pages > 1 {
            format!("; page {page} of {pages}")
        } else {
            String::new()
        }
    );
    html.push_str(&html::table(
        "devices",
        &[
            "Device Name",
            "Description",
            "Device Pool",
            "Model",
            "Certificate Operation",
            "Status",
            "Authentication Mode",
        ],
        &rows,
    ));
    if pages > 1 {
        let keep: String = FILTER_KEYS
            .iter()
            .chain(&FILTER_FLAGS)
            .filter(|k| !query.get(k).is_empty())
            .map(|k| format!("&{k}={}", url_part(query.get(k))))
            .collect();
        html.push_str(r#"<p class="actions">"#);
        if page > 1 {
            let _ = write!(
                html,
                r#"<a href="/devices?page={}{keep}" id="previous">Previous</a>"#,
                page - 1
            );
        }
        if page < pages {
            let _ = write!(
                html,
                r#"<a href="/devices?page={}{keep}" id="next">Next</a>"#,
                page + 1
            );
        }
        html.push_str("</p>");
    }
    html
}

/// `POST /devices`: adds a phone (the API's `POST /api/devices`), then shows its CAPF pane.
pub(super) async fn add(
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let mut form = FormData::from_pairs(fields);
    // The list's filter is also called `name`: the add form's field is `device_name`.
    let name = form.get("device_name").trim().to_owned();
    form.fields.push(("name".to_owned(), name));
    let added = match pc.may_change(&form) {
        Err(e) => Err(e),
        Ok(()) => {
            match form.body::<AddDevice>(&["name", "description", "device_pool", "model"], &[]) {
                Err(e) => Err(e),
                Ok(add) => api::add_device_core(pc.caller.clone(), add).await,
            }
        }
    };
    match added {
        Ok(device) => Redirect::to(&format!(
            "/devices/{}?added=1",
            url_part(device.name.as_str())
        ))
        .into_response(),
        Err(e) => render_list(pc, FormData::default(), Notice::Refused(e)).await,
    }
}

/// What the CAPF pane's fields hold.
struct Pane {
    operation: String,
    auth_mode: String,
    auth_string: String,
    key_order: String,
    rsa: String,
    curve: String,
    complete_by: String,
}

impl Pane {
    fn of(view: &DeviceView) -> Pane {
        Pane {
            operation: view.operation.kind.clone(),
            auth_mode: view.auth_mode.to_owned(),
            auth_string: String::new(),
            key_order: view.operation.key_order.unwrap_or("rsa-only").to_owned(),
            rsa: view.operation.rsa_bits.unwrap_or(2048).to_string(),
            curve: view.operation.curve.unwrap_or("P-256").to_owned(),
            complete_by: view
                .complete_by
                .as_deref()
                .map(|d| d.chars().take(10).collect())
                .unwrap_or_default(),
        }
    }

    fn from_form(form: &FormData) -> Pane {
        Pane {
            operation: form.get("operation").to_owned(),
            auth_mode: form.get("auth_mode").to_owned(),
            auth_string: form.get("auth_string").to_owned(),
            key_order: form.get("key_order").to_owned(),
            rsa: form.get("rsa").to_owned(),
            curve: form.get("curve").to_owned(),
            complete_by: form.get("complete_by").to_owned(),
        }
    }
}

/// `GET /devices/{name}`: the phone's CAPF pane.
pub(super) async fn pane(
    Extension(pc): Extension<PageCaller>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Response {
    let notice = match uri.query() {
        Some("added=1") => Notice::Done(format!("{name} added.")),
        Some("saved=1") => Notice::Done("Saved.".to_owned()),
        _ => Notice::None,
    };
    render_pane(pc, name, None, notice).await
}

async fn render_pane(
    pc: PageCaller,
    name: String,
    values: Option<Pane>,
    notice: Notice,
) -> Response {
    let store = std::sync::Arc::clone(&pc.caller.store);
    let lookup = name.clone();
    let detail = blocking(move || {
        Ok(capf_admin::device_detail(
            &*store,
            &lookup,
            capf_admin::AUDIT_ENTRIES,
        )?)
    })
    .await;
    let detail = match detail {
        Ok(d) => d,
        Err(e) => {
            return html::page(
                "Phone Configuration",
                "/devices",
                Some(&pc.viewer()),
                &Notice::Refused(e),
                r#"<p><a href="/devices">Back to the device list</a></p>"#,
            );
        }
    };
    let body = pane_html(&pc, &detail, values);
    html::page(
        &format!("Phone Configuration: {}", detail.device.name),
        "/devices",
        Some(&pc.viewer()),
        &notice,
        &body,
    )
}

fn pane_html(pc: &PageCaller, detail: &DeviceDetail, values: Option<Pane>) -> String {
    let view = DeviceView::from(&detail.device);
    let values = values.unwrap_or_else(|| Pane::of(&view));
    let operations: Vec<(String, String)> = OperationKind::ALL
        .iter()
        .map(|k| {
            let label = match k {
                OperationKind::None => "No Pending Operation",
                OperationKind::Install => "Install/Upgrade",
                OperationKind::Delete => "Delete",
                OperationKind::Troubleshoot => "Troubleshoot",
                _ => k.as_str(),
            };
            (k.as_str().to_owned(), label.to_owned())
        })
        .collect();
    let modes: Vec<(String, String)> = AuthMode::ALL
        .iter()
        .map(|m| (m.as_str().to_owned(), m.to_string()))
        .collect();
    let orders: Vec<(String, String)> = KEY_ORDERS
        .iter()
        .map(|o| {
            let label = match key_order_name(*o) {
                "rsa-only" => "RSA Only",
                "ec-only" => "EC Only",
                _ => "EC Preferred, RSA Backup",
            };
            (key_order_name(*o).to_owned(), label.to_owned())
        })
        .collect();
    let rsa: Vec<(String, String)> = RsaBits::ALL
        .iter()
        .map(|b| (b.bits().to_string(), b.bits().to_string()))
        .collect();
    let curves: Vec<(String, String)> = Curve::ALL
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.name().trim_start_matches("P-").to_owned(),
            )
        })
        .collect();
    let status = match &view.failure_reason {
        Some(reason) => format!("{}: {reason}", view.status),
        None => view.status.to_owned(),
    };
    let string_note = if view.has_auth_string {
        "An authentication string is set (it is never shown); a new one replaces it."
    } else {
        "No authentication string is set."
    };
    let mut html = format!(
        r#"<section><h2>Device Information</h2><dl class="fields"><dt>Device Name</dt><dd id="device-name">{}</dd><dt>Description</dt><dd>{}</dd><dt>Device Pool</dt><dd>{}</dd><dt>Model</dt><dd>{}</dd></dl></section>
<section><h2>Certification Authority Proxy Function (CAPF) Information</h2>
<form method="post" action="/devices/{}" id="capf-pane" class="grid">{}
{}{}
<div>{}<button type="submit" name="action" value="generate" class="secondary" id="generate-string">Generate String</button></div>
{}{}{}{}
<div class="actions"><button type="submit" name="action" value="save" id="save">Save</button></div>
</form>
<p class="muted">{}</p>
<dl class="fields"><dt>Certificate Operation Status</dt><dd id="operation-status">{}</dd><dt>Attempts</dt><dd>{}</dd><dt>Authentication failures</dt><dd>{}</dd></dl></section>"#,
        esc(&view.name),
        esc(&view.description),
        esc(&view.device_pool),
        esc(&view.model),
        url_part(&view.name),
        html::csrf_field(&pc.csrf),
        html::select(
            "Certificate Operation",
            "operation",
            &operations,
            &values.operation
        ),
        html::select(
            "Authentication Mode",
            "auth_mode",
            &modes,
            &values.auth_mode
        ),
        html::input(
            "Authentication String",
            "auth_string",
            &values.auth_string,
            "text"
        ),
        html::select("Key Order", "key_order", &orders, &values.key_order),
        html::select("RSA Key Size (Bits)", "rsa", &rsa, &values.rsa),
        html::select("EC Key Size (Bits)", "curve", &curves, &values.curve),
        html::input(
            "Operation Completes By (YYYY-MM-DD, UTC)",
            "complete_by",
            &values.complete_by,
            "date"
        ),
        esc(string_note),
        esc(&status),
        view.attempts,
        view.auth_failures,
    );
    let lscs: Vec<Vec<String>> = detail
        .lscs
        .iter()
        .map(|l| {
            let serial = l.serial_hex();
            // Only a certificate that still authenticates has anything to revoke.
            let revoke = if pc.caller.role.can_write()
                && matches!(l.state, LscState::Issued | LscState::Installed)
            {
                format!(
                    r#"<form method="post" action="/devices/{}/lscs/{}/revoke">{}<button type="submit" class="secondary" id="revoke-{}">Revoke</button></form>"#,
                    url_part(view.name.as_str()),
                    url_part(&serial),
                    html::csrf_field(&pc.csrf),
                    esc(&serial),
                )
            } else {
                String::new()
            };
            vec![
                format!("<code>{}</code>", esc(&serial)),
                esc(l.state.as_str()),
                esc(&rfc3339(l.not_before)),
                esc(&rfc3339(l.not_after)),
                esc(&rfc3339(l.issued_at)),
                revoke,
            ]
        })
        .collect();
    html.push_str("<section><h2>Locally Significant Certificates</h2>");
    html.push_str(&html::table(
        "lscs",
        &["Serial", "State", "Not Before", "Not After", "Issued", ""],
        &lscs,
    ));
    html.push_str("</section><section><h2>Latest changes</h2>");
    let audit: Vec<Vec<String>> = detail
        .audit
        .iter()
        .map(|a| {
            vec![
                esc(&rfc3339(a.at)),
                esc(&a.action),
                esc(&a.detail),
                esc(a.actor.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    html.push_str(&html::table(
        "audit",
        &["When", "What", "Detail", "Who"],
        &audit,
    ));
    html.push_str(r#"</section><p><a href="/devices">Back to the device list</a></p>"#);
    html
}

/// `POST /devices/{name}/lscs/{serial}/revoke`: the API's LSC revoke, then the pane again.
pub(super) async fn revoke_lsc(
    Extension(pc): Extension<PageCaller>,
    Path((name, serial)): Path<(String, String)>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        crate::records::revoke_lsc_core(pc.caller.clone(), serial).await
    }
    .await;
    let notice = match result {
        Ok(lsc) => Notice::Done(format!("Revoked LSC {}.", lsc.serial)),
        Err(e) => Notice::Refused(e),
    };
    render_pane(pc, name, None, notice).await
}

/// `POST /devices/{name}`: the pane's Generate String (a new string in the field, not yet
/// stored) or Save (the API's schedule, then its update of the authentication mode).
pub(super) async fn save(
    Extension(pc): Extension<PageCaller>,
    Path(name): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let mut values = Pane::from_form(&form);
    if form.get("action") == "generate" {
        let made = capf_admin::random_digits(capf_admin::AuthStringLength::default().digits());
        return match made {
            Ok(string) => {
                values.auth_string = string;
                values.auth_mode = AuthMode::AuthenticationString.as_str().to_owned();
                let notice = Notice::Done(
                    "A new authentication string is in the field; Save to set it.".to_owned(),
                );
                render_pane(pc, name, Some(values), notice).await
            }
            Err(e) => render_pane(pc, name, Some(values), Notice::Refused(e.into())).await,
        };
    }
    match save_pane(&pc, &name, &form).await {
        Ok(()) => Redirect::to(&format!("/devices/{}?saved=1", url_part(&name))).into_response(),
        Err(e) => render_pane(pc, name, Some(values), Notice::Refused(e)).await,
    }
}

async fn save_pane(pc: &PageCaller, name: &str, form: &FormData) -> Result<(), ApiError> {
    pc.may_change(form)?;
    let install =
        form.get("operation").parse::<OperationKind>().ok() == Some(OperationKind::Install);
    let keys: &[&str] = if install {
        &[
            "operation",
            "key_order",
            "rsa",
            "curve",
            "complete_by",
            "auth_string",
        ]
    } else {
        &["operation", "complete_by", "auth_string"]
    };
    let schedule: ScheduleBody = form.body(keys, &[])?;
    let update: UpdateDevice = form.body(&["auth_mode"], &[])?;
    api::schedule_core(pc.caller.clone(), name.to_owned(), schedule).await?;
    if !form.get("auth_mode").is_empty() {
        api::update_device_core(pc.caller.clone(), name.to_owned(), update).await?;
    }
    Ok(())
}
