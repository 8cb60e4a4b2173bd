//! The LDAP page: the stored directory configuration (never its password) and the sync, with
//! a dry run, through the API's [`sync_core`](crate::ldap::sync_core). Its routes are its own
//! ([`routes`]), behind the pages' session check.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use capf_admin::ldap::{DirectoryConfigView, SyncReport};

use super::html::{self, Notice, esc};
use super::{FormData, PageCaller};
use crate::AppState;
use crate::ldap::{SyncRequest, config_core, sync_core};

/// `GET /ldap` and `POST /ldap/sync`.
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/ldap", get(page))
        .route("/ldap/sync", post(sync))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            super::require_session,
        ))
}

async fn render(pc: &PageCaller, report: Option<&SyncReport>, notice: Notice) -> Response {
    let config = config_core(pc.caller.clone()).await;
    let (config, notice) = match (config, notice) {
        (Ok(config), notice) => (config, notice),
        (Err(e), Notice::None) => (None, Notice::Refused(e)),
        (Err(_), notice) => (None, notice),
    };
    let body = format!(
        "{}{}",
        config_section(pc, config.as_ref()),
        report.map(report_section).unwrap_or_default()
    );
    html::page(
        "LDAP Directory",
        "/ldap",
        Some(&pc.viewer()),
        &notice,
        &body,
    )
}

fn config_section(pc: &PageCaller, config: Option<&DirectoryConfigView>) -> String {
    let Some(c) = config else {
        return r#"<section><p id="no-config">No directory configuration is stored. Store one with <code>capfctl ldap config set --url URL --bind-dn DN --password-file FILE --base DN --template NAME</code>.</p></section>"#.to_owned();
    };
    let rows = [
        ("URL", c.url.as_str()),
        ("Bind DN", c.bind_dn.as_str()),
        ("Password", if c.password_set { "set" } else { "not set" }),
        ("Search base", c.base.as_str()),
        ("Filter", c.filter.as_str()),
        ("Device name", c.device_name.as_str()),
        ("Device template", c.template.as_str()),
    ]
    .iter()
    .map(|(k, v)| vec![esc(k), esc(v)])
    .collect::<Vec<_>>();
    format!(
        r#"<section><h2>Directory</h2>{}<form method="post" action="/ldap/sync" id="ldap-sync-form">{}{}<div class="actions"><button type="submit" id="ldap-sync">Sync now</button></div></form><p class="muted">The first sync applies the template; later syncs add only new devices. Devices that left the directory are reported, never deleted.</p></section>"#,
        html::table("ldap-config", &["Setting", "Value"], &rows),
        html::csrf_field(&pc.csrf),
        html::checkbox("Dry run (apply nothing)", "dry_run", true),
    )
}

fn report_section(r: &SyncReport) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for name in &r.added {
        rows.push(vec![esc(name), "added".to_owned(), String::new()]);
    }
    for d in &r.departed {
        rows.push(vec![
            esc(&d.name),
            "departed (still registered)".to_owned(),
            esc(&d.dn),
        ]);
    }
    for bad in &r.bad_entries {
        rows.push(vec![String::new(), esc(&bad.reason), esc(&bad.dn)]);
    }
    format!(
        r#"<section><h2>{}</h2><p id="ldap-summary">{} entries: {} added, {} already registered, {} departed, {} bad entries (template {}).</p>{}</section>"#,
        if r.dry_run {
            "Dry run: nothing applied"
        } else {
            "Sync applied"
        },
        r.entries,
        r.added.len(),
        r.already_registered.len(),
        r.departed.len(),
        r.bad_entries.len(),
        esc(&r.template),
        html::table("ldap-report", &["Device", "What", "DN"], &rows),
    )
}

/// `GET /ldap`.
async fn page(Extension(pc): Extension<PageCaller>) -> Response {
    render(&pc, None, Notice::None).await
}

/// `POST /ldap/sync`: the sync or its dry run, as the API runs it.
async fn sync(
    State(state): State<Arc<AppState>>,
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        let request = SyncRequest {
            dry_run: matches!(form.get("dry_run"), "true" | "on" | "1"),
        };
        sync_core(&state, pc.caller.clone(), request).await
    }
    .await;
    match result {
        Ok(report) => {
            let notice = Notice::Done(if report.dry_run {
                format!(
                    "Dry run: {} device(s) would be added; nothing was changed.",
                    report.added.len()
                )
            } else {
                format!("{} device(s) added.", report.added.len())
            });
            render(&pc, Some(&report), notice).await
        }
        Err(e) => render(&pc, None, Notice::Refused(e)).await,
    }
}
