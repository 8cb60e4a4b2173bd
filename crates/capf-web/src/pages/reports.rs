//! Reports (Cisco Unified Reporting's): operation status, stale LSCs, pending CSRs and expiring
//! LSCs, with two pictures: operations by status, and LSC expiry by month over the coming
//! months.

use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use capf_admin::{CsrView, LscView, StatusView, rfc3339};
use capf_store::CaRequestState;

use super::html::{self, Notice, esc};
use super::{FormData, PageCaller, svg};
use crate::api::blocking;
use crate::error::ApiError;
use crate::records;
use axum::extract::Path;
use capf_admin::csr::CsrSelection;

/// Rows shown per report table (the rest are counted).
const ROWS: usize = 200;
/// The months the expiry picture covers, this one first.
const MONTHS: usize = 12;
/// The expiring-LSC report's look-ahead.
const EXPIRING_DAYS: u64 = 30;

struct Reports {
    status: StatusView,
    stale: Vec<LscView>,
    pending: Vec<CsrView>,
    expiring: Vec<LscView>,
    by_month: Vec<(String, u64)>,
    expired: u64,
}

/// `YYYY-MM` of a time.
fn month(t: SystemTime) -> String {
    rfc3339(t).chars().take(7).collect()
}

/// The `YYYY-MM` names of this month and the `n - 1` after it.
fn months_from(now: SystemTime, n: usize) -> Vec<String> {
    let first = month(now);
    let year: i32 = first.get(..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    let mon: i32 = first.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    (0..i32::try_from(n).unwrap_or(0))
        .map(|i| {
            let m = mon - 1 + i;
            format!("{:04}-{:02}", year + m / 12, m % 12 + 1)
        })
        .collect()
}

async fn load(pc: &PageCaller) -> Result<Reports, ApiError> {
    let store = std::sync::Arc::clone(&pc.caller.store);
    blocking(move || {
        let now = SystemTime::now();
        let status = capf_admin::status_report(&*store, now)?;
        let stale = store.stale_lscs()?.iter().map(LscView::from).collect();
        let pending = store
            .ca_requests(Some(CaRequestState::Pending))?
            .iter()
            .map(CsrView::from)
            .collect();
        let months = months_from(now, MONTHS);
        let horizon = now + Duration::from_secs(86_400 * 31 * MONTHS as u64);
        let soon = now + Duration::from_secs(86_400 * EXPIRING_DAYS);
        let mut by_month: Vec<(String, u64)> = months.iter().map(|m| (m.clone(), 0)).collect();
        let mut expired = 0;
        let mut expiring = Vec::new();
        for lsc in store.lscs_expiring_before(horizon)? {
            if lsc.not_after < now {
                expired += 1;
                continue;
            }
            if lsc.not_after < soon {
                expiring.push(LscView::from(&lsc));
            }
            let m = month(lsc.not_after);
            if let Some(slot) = by_month.iter_mut().find(|(name, _)| *name == m) {
                slot.1 += 1;
            }
        }
        Ok(Reports {
            status,
            stale,
            pending,
            expiring,
            by_month,
            expired,
        })
    })
    .await
}

fn operations_chart(s: &StatusView) -> String {
    svg::horizontal_bars(
        "operations-by-status",
        "Operations by status",
        &[
            ("pending", s.pending, "#e0a800"),
            ("in-progress", s.in_progress, "#0b5fa5"),
            ("success", s.succeeded, "#1f7a3a"),
            ("failed", s.failed, "#b3261e"),
            ("expired", s.expired, "#6b4f9e"),
            ("none", s.no_operation, "#8a99a8"),
        ],
    )
}

fn expiry_chart(r: &Reports) -> String {
    svg::columns(
        "lsc-expiry-by-month",
        "LSCs expiring, by month",
        &r.by_month,
    )
}

fn lsc_rows(lscs: &[LscView]) -> Vec<Vec<String>> {
    lscs.iter()
        .take(ROWS)
        .map(|l| {
            vec![
                esc(&l.device),
                format!("<code>{}</code>", esc(&l.serial)),
                esc(l.state),
                esc(&l.not_after),
            ]
        })
        .collect()
}

fn more(total: usize) -> String {
    if total > ROWS {
        format!(
            r#"<p class="muted">{} more not shown (the API has them all).</p>"#,
            total - ROWS
        )
    } else {
        String::new()
    }
}

/// `GET /reports`.
pub(super) async fn page(Extension(pc): Extension<PageCaller>) -> Response {
    render(&pc, Notice::None).await
}

/// `POST /reports/stale-lscs/delete`: the Stale LSC report's delete (every stale record).
pub(super) async fn delete_stale(
    Extension(pc): Extension<PageCaller>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        records::delete_stale_lscs_core(pc.caller.clone()).await
    }
    .await;
    let notice = match result {
        Ok(d) => Notice::Done(format!("Deleted {} stale LSC record(s).", d.deleted)),
        Err(e) => Notice::Refused(e),
    };
    render(&pc, notice).await
}

/// `POST /reports/csrs/{id}/delete`: one request to an external CA.
pub(super) async fn delete_csr(
    Extension(pc): Extension<PageCaller>,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result = async {
        pc.may_change(&form)?;
        let id = records::csr_id(&id)?;
        records::delete_csrs_core(pc.caller.clone(), CsrSelection::One(id))
            .await
            .map(|_| id)
    }
    .await;
    let notice = match result {
        Ok(id) => Notice::Done(format!("Deleted certificate request {id}.")),
        Err(e) => Notice::Refused(e),
    };
    render(&pc, notice).await
}

/// A form of one button posting to `action` with the session's CSRF token.
fn button_form(pc: &PageCaller, action: &str, id: &str, label: &str) -> String {
    format!(
        r#"<form method="post" action="{}">{}<button type="submit" class="secondary" id="{}">{}</button></form>"#,
        esc(action),
        html::csrf_field(&pc.csrf),
        esc(id),
        esc(label)
    )
}

async fn render(pc: &PageCaller, notice: Notice) -> Response {
    let can_write = pc.caller.role.can_write();
    let r = match load(pc).await {
        Ok(r) => r,
        Err(e) => return html::page("Reports", "/reports", Some(&pc.viewer()), &e.into(), ""),
    };
    let s = &r.status;
    let counts = html::table(
        "status",
        &[
            "Pending",
            "In progress",
            "Succeeded",
            "Failed",
            "Expired",
            "No operation",
            "Past Operation Completes By",
        ],
        &[vec![
            s.pending.to_string(),
            s.in_progress.to_string(),
            s.succeeded.to_string(),
            s.failed.to_string(),
            s.expired.to_string(),
            s.no_operation.to_string(),
            s.past_complete_by.to_string(),
        ]],
    );
    let failed: Vec<Vec<String>> = s
        .failed_devices
        .iter()
        .take(ROWS)
        .map(|f| vec![esc(&f.name), esc(&f.operation), esc(&f.reason)])
        .collect();
    let pending: Vec<Vec<String>> = r
        .pending
        .iter()
        .take(ROWS)
        .map(|c| {
            vec![
                c.id.to_string(),
                esc(&c.device),
                esc(c.mode),
                esc(&c.received_at),
                esc(&c.key),
                if can_write {
                    button_form(
                        pc,
                        &format!("/reports/csrs/{}/delete", c.id),
                        &format!("delete-csr-{}", c.id),
                        "Delete",
                    )
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let delete_stale = if can_write && !r.stale.is_empty() {
        button_form(
            pc,
            "/reports/stale-lscs/delete",
            "delete-stale",
            "Delete all stale LSC records",
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<section><h2>Operation status</h2>{counts}<div class="scroll">{ops}</div>
<h2>Failed operations</h2>{failed}{failed_more}</section>
<section><h2>LSC expiry over the coming months</h2><div class="scroll">{expiry}</div><p class="muted" id="expired-count">{expired} LSC(s) already expired (Issued or Installed).</p>
<h2>LSCs expiring within {EXPIRING_DAYS} days</h2>{expiring}{expiring_more}</section>
<section><h2>Stale LSCs</h2>{stale}{stale_more}{delete_stale}</section>
<section><h2>Pending CSRs</h2>{pending}{pending_more}</section>"#,
        ops = operations_chart(s),
        failed = html::table("failed", &["Device", "Operation", "Reason"], &failed),
        failed_more = more(s.failed_devices.len()),
        expiry = expiry_chart(&r),
        expired = r.expired,
        expiring = html::table(
            "expiring",
            &["Device", "Serial", "State", "Not After"],
            &lsc_rows(&r.expiring)
        ),
        expiring_more = more(r.expiring.len()),
        stale = html::table(
            "stale",
            &["Device", "Serial", "State", "Not After"],
            &lsc_rows(&r.stale)
        ),
        stale_more = more(r.stale.len()),
        pending = html::table(
            "pending-csrs",
            &["Request", "Device", "Mode", "Received", "Key", ""],
            &pending
        ),
        pending_more = more(r.pending.len()),
    );
    html::page("Reports", "/reports", Some(&pc.viewer()), &notice, &body)
}

fn svg_response(svg: String) -> Response {
    let mut response = svg.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(html::CONTENT_SECURITY_POLICY),
    );
    response
}

/// `GET /reports/operations.svg`: the operations-by-status picture alone.
pub(super) async fn operations_svg(Extension(pc): Extension<PageCaller>) -> Response {
    match load(&pc).await {
        Ok(r) => svg_response(operations_chart(&r.status)),
        Err(e) => e.into_response(),
    }
}

/// `GET /reports/lsc-expiry.svg`: the LSC-expiry-by-month picture alone.
pub(super) async fn expiry_svg(Extension(pc): Extension<PageCaller>) -> Response {
    match load(&pc).await {
        Ok(r) => svg_response(expiry_chart(&r)),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_roll_over_the_year() {
        // 2026-11-15
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_794_700_800);
        assert_eq!(
            months_from(t, 4),
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        );
    }
}
