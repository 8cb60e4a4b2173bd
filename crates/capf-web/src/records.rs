//! Changes to the records of issued LSCs and of requests to an external CA, as capfctl makes
//! them: `lsc revoke`, `report stale-lsc delete --all` and `csr delete ID|--all`, each through
//! the capf-admin or store call capfctl makes.

use std::time::SystemTime;

use axum::Extension;
use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use capf_admin::csr::CsrSelection;
use capf_admin::{DeletedView, LscView};
use serde::Deserialize;

use crate::api::{blocking, query};
use crate::auth::Caller;
use crate::error::ApiError;

/// `POST /api/lscs/{serial}/revoke`: the LSC (serial in hex, colons allowed) no longer
/// authenticates a phone, and the next CRL lists it; 404 for an unknown serial, 409 for one
/// already revoked.
pub(crate) async fn revoke_lsc(
    Extension(caller): Extension<Caller>,
    Path(serial): Path<String>,
) -> Result<Json<LscView>, ApiError> {
    Ok(Json(revoke_lsc_core(caller, serial).await?))
}

/// Revokes an LSC by its serial (the API and the CAPF pane's Revoke).
pub(crate) async fn revoke_lsc_core(caller: Caller, serial: String) -> Result<LscView, ApiError> {
    blocking(move || {
        let lsc = capf_admin::revoke_lsc(&*caller.store, &serial, SystemTime::now())?;
        Ok(LscView::from(&lsc))
    })
    .await
}

/// `DELETE /api/reports/stale-lscs`: deletes every stale LSC record (the guide's Stale LSC
/// report's delete); answers how many.
pub(crate) async fn delete_stale_lscs(
    Extension(caller): Extension<Caller>,
) -> Result<Json<DeletedView>, ApiError> {
    Ok(Json(delete_stale_lscs_core(caller).await?))
}

/// Deletes every stale LSC record (the API and the Reports page).
pub(crate) async fn delete_stale_lscs_core(caller: Caller) -> Result<DeletedView, ApiError> {
    blocking(move || {
        let deleted = caller.store.delete_stale_lscs(SystemTime::now())?;
        Ok(DeletedView { deleted })
    })
    .await
}

/// `DELETE /api/csrs/{id}`: one request to an external CA, whatever its state.
pub(crate) async fn delete_csr(
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<DeletedView>, ApiError> {
    Ok(Json(
        delete_csrs_core(caller, CsrSelection::One(csr_id(&id)?)).await?,
    ))
}

/// A request's number from a path: 404 for one that cannot be a request's, as for an unknown
/// one.
pub(crate) fn csr_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("certificate request {text:?} does not exist"),
        )
    })
}

/// `DELETE /api/csrs?all=true`: every request (the guide's `csr delete all`); without
/// `all=true` it is refused, as `capfctl csr delete` without `--all` is.
pub(crate) async fn delete_all_csrs(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
) -> Result<Json<DeletedView>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        #[serde(default)]
        all: bool,
    }
    let params: Params = query(uri.query())?;
    if !params.all {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "deleting every certificate request needs all=true (or DELETE /api/csrs/{id} for one)",
        ));
    }
    Ok(Json(delete_csrs_core(caller, CsrSelection::All).await?))
}

/// Deletes the requests selected (the API and the Reports page).
pub(crate) async fn delete_csrs_core(
    caller: Caller,
    which: CsrSelection,
) -> Result<DeletedView, ApiError> {
    blocking(move || {
        let deleted = capf_admin::csr::delete_csrs(&*caller.store, which, SystemTime::now())?;
        Ok(DeletedView { deleted })
    })
    .await
}
