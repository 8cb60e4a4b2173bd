//! Manage Scheduled Jobs: the jobs (Run Later bulk insert and update, the certificate monitor)
//! with their state and result, and a Cancel button on each one still scheduled.

use axum::Extension;
use axum::extract::Path;
use axum::response::Response;
use capf_admin::jobs::JobView;
use capf_store::JobState;

use super::html::{self, Notice, esc, url_part};
use super::{FormData, PageCaller};
use crate::error::ApiError;
use crate::scheduled as core;

/// `GET /jobs`.
pub(super) async fn page(Extension(pc): Extension<PageCaller>) -> Response {
    render(&pc, Notice::None).await
}

/// What a job did: devices changed, the items it refused, why it failed.
fn result(job: &JobView) -> String {
    let mut parts = Vec::new();
    if let Some(n) = job.devices_changed {
        parts.push(format!("{n} devices changed"));
    }
    if !job.errors.is_empty() {
        parts.push(format!(
            "{} refused: {}",
            job.errors.len(),
            job.errors.join("; ")
        ));
    }
    if let Some(why) = &job.failure {
        parts.push(format!("failed: {why}"));
    }
    esc(&parts.join("; "))
}

async fn render(pc: &PageCaller, notice: Notice) -> Response {
    let (notice, body) = match core::list_jobs_core(pc.caller.clone(), None).await {
        Err(e) => (Notice::Refused(e), String::new()),
        Ok(jobs) => {
            let rows: Vec<Vec<String>> = jobs
                .iter()
                .map(|job| {
                    let cancel = if job.state == JobState::Scheduled.as_str() && pc.caller.role.can_write() {
                        format!(
                            r#"<form method="post" action="/jobs/{id}/cancel">{}<button type="submit" id="cancel-{id}">Cancel</button></form>"#,
                            html::csrf_field(&pc.csrf),
                            id = url_part(&job.id.to_string()),
                        )
                    } else {
                        String::new()
                    };
                    vec![
                        job.id.to_string(),
                        esc(&job.kind),
                        esc(&job.description),
                        format!(r#"<span id="job-{}-state">{}</span>"#, job.id, esc(job.state)),
                        esc(&job.due),
                        esc(job.node.as_deref().unwrap_or("")),
                        esc(job.finished_at.as_deref().unwrap_or("")),
                        format!(r#"<span id="job-{}-result">{}</span>"#, job.id, result(job)),
                        cancel,
                    ]
                })
                .collect();
            (
                notice,
                format!(
                    r#"<section><p class="muted">Bulk insert and update with Run Later (<code>at</code>) are checked when stored and run by capfd when due; the certificate monitor schedules its own next run.</p>{}</section>"#,
                    html::table(
                        "jobs",
                        &[
                            "Job",
                            "Kind",
                            "Description",
                            "Status",
                            "Due",
                            "Node",
                            "Finished",
                            "Result",
                            "",
                        ],
                        &rows,
                    )
                ),
            )
        }
    };
    html::page(
        "Scheduled Jobs",
        "/jobs",
        Some(&pc.viewer()),
        &notice,
        &body,
    )
}

/// `POST /jobs/{id}/cancel`: the API's cancel, then the list again.
pub(super) async fn cancel(
    Extension(pc): Extension<PageCaller>,
    Path(id): Path<String>,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let result: Result<JobView, ApiError> = async {
        pc.may_change(&form)?;
        core::cancel_job_core(pc.caller.clone(), core::job_id(&id)?).await
    }
    .await;
    let notice = match result {
        Ok(job) => Notice::Done(format!("Cancelled job {}: {}.", job.id, job.description)),
        Err(e) => Notice::Refused(e),
    };
    render(&pc, notice).await
}
