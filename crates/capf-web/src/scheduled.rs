//! Scheduled jobs (the guide's Manage Scheduled Jobs): `capfctl job list|show|cancel` over
//! HTTP, and the Run Later of bulk insert and update (an `at` time stores a job that the
//! running capfd runs then, instead of applying now). Every rule is capf-admin's `jobs`.

use std::time::SystemTime;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use capf_admin::jobs::JobView;
use capf_store::JobState;

use crate::api::{BulkUpdate, blocking, state_param};
use crate::auth::Caller;
use crate::error::ApiError;

/// `GET /api/jobs[?state=scheduled|running|succeeded|failed|cancelled]`: the jobs by number,
/// with their state and result.
pub(crate) async fn list_jobs(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
) -> Result<Json<Vec<JobView>>, ApiError> {
    let state = state_param::<JobState>(&uri)?;
    Ok(Json(list_jobs_core(caller, state).await?))
}

/// The jobs, or those in `state` (the API and the Jobs page).
pub(crate) async fn list_jobs_core(
    caller: Caller,
    state: Option<JobState>,
) -> Result<Vec<JobView>, ApiError> {
    blocking(move || {
        Ok(capf_admin::jobs::list_jobs(&*caller.store, state)?
            .iter()
            .map(JobView::from)
            .collect())
    })
    .await
}

/// A job's number from the path: 404 for one that cannot be a job's, as for an unknown one.
pub(crate) fn job_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("job {text:?} does not exist"),
        )
    })
}

/// `GET /api/jobs/{id}`: one job.
pub(crate) async fn show_job(
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = job_id(&id)?;
    blocking(move || {
        Ok(Json(JobView::from(&capf_admin::jobs::job(
            &*caller.store,
            id,
        )?)))
    })
    .await
}

/// `POST /api/jobs/{id}/cancel`: a scheduled job will never run (409 once it runs or ran).
pub(crate) async fn cancel_job(
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(cancel_job_core(caller, job_id(&id)?).await?))
}

/// Cancels a scheduled job (the API and the Jobs page).
pub(crate) async fn cancel_job_core(caller: Caller, id: i64) -> Result<JobView, ApiError> {
    blocking(move || {
        Ok(JobView::from(&capf_admin::jobs::cancel_job(
            &*caller.store,
            id,
            SystemTime::now(),
        )?))
    })
    .await
}

/// The Run Later time of a bulk request (RFC 3339, as `capfctl bulk ... --at`).
pub(crate) fn due(at: &str) -> Result<SystemTime, ApiError> {
    Ok(capf_admin::parse_rfc3339(at, "at")?)
}

/// Stores a bulk insert of `csv` to run at `due`: every row is checked now (a bad file is
/// refused with its line, and no job is stored).
pub(crate) async fn schedule_insert_core(
    caller: Caller,
    file: String,
    csv: Bytes,
    template: Option<String>,
    due: SystemTime,
) -> Result<JobView, ApiError> {
    let csv = String::from_utf8(csv.to_vec()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{file}: not UTF-8 text ({e})"),
        )
    })?;
    blocking(move || {
        Ok(JobView::from(&capf_admin::jobs::schedule_bulk_insert(
            &*caller.store,
            csv,
            &file,
            template.as_deref(),
            due,
            SystemTime::now(),
        )?))
    })
    .await
}

/// Stores a bulk update by query to run at `due`: the change is checked now, and again when
/// it runs. A dry run cannot be scheduled (it changes nothing to run later).
pub(crate) async fn schedule_update_core(
    caller: Caller,
    body: BulkUpdate,
    due: SystemTime,
) -> Result<JobView, ApiError> {
    if body.dry_run {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a dry run cannot be scheduled: leave out \"at\" to see what would change now",
        ));
    }
    let filter = body.filter.to_filter()?;
    let params = body.change_params()?;
    blocking(move || {
        Ok(JobView::from(&capf_admin::jobs::schedule_bulk_update(
            &*caller.store,
            &filter,
            &params,
            due,
            SystemTime::now(),
        )?))
    })
    .await
}
