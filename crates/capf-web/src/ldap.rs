//! The LDAP directory sync over HTTPS (issue 17): `GET /api/ldap/config` (the stored
//! configuration, never its password) and `POST /api/ldap/sync` (`{"dry_run": true}` for a
//! dry run), which syncs from the configuration `capfctl ldap config set` stored, with
//! CAPF-trust of the data directory beside the system's store for `ldaps`. Its own routes, so
//! the page (`pages::ldap`) and the API share [`sync_core`].

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use capf_admin::ldap::{DirectoryConfigView, SyncReport};
use capf_admin::{NoProgress, OpenTrustStore};
use capf_trust::{Purpose, Release};
use serde::Deserialize;

use crate::AppState;
use crate::api::{blocking, parse_json};
use crate::auth::Caller;
use crate::error::ApiError;

/// The body of `POST /api/ldap/sync`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncRequest {
    /// Work the sync out and apply nothing.
    #[serde(default)]
    pub(crate) dry_run: bool,
}

/// The API's LDAP routes, behind the API's authentication.
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/ldap/config", get(config))
        .route("/api/ldap/sync", post(sync))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            crate::auth::authenticate,
        ))
}

/// `GET /api/ldap/config`.
async fn config(
    Extension(caller): Extension<Caller>,
) -> Result<Json<Option<DirectoryConfigView>>, ApiError> {
    Ok(Json(config_core(caller).await?))
}

/// The stored configuration without its password; `None` before one is stored.
pub(crate) async fn config_core(caller: Caller) -> Result<Option<DirectoryConfigView>, ApiError> {
    blocking(move || {
        Ok(capf_admin::ldap::stored_config(&*caller.store)?
            .as_ref()
            .map(DirectoryConfigView::from))
    })
    .await
}

/// `POST /api/ldap/sync`: the report of the sync (or dry run).
async fn sync(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<SyncReport>, ApiError> {
    let request: SyncRequest = if body.is_empty() {
        SyncRequest::default()
    } else {
        parse_json(&body)?
    };
    Ok(Json(sync_core(&state, caller, request).await?))
}

/// Syncs from the stored configuration (the API and the LDAP page).
pub(crate) async fn sync_core(
    state: &AppState,
    caller: Caller,
    request: SyncRequest,
) -> Result<SyncReport, ApiError> {
    let trust_dir = state.config.data_dir.as_ref().map(|d| d.join("trust"));
    blocking(move || {
        let config = capf_admin::ldap::stored_config(&*caller.store)?
            .ok_or(capf_admin::Error::NoDirectoryConfig)?;
        let capf_trust: Vec<Vec<u8>> = match trust_dir.filter(|d| d.exists()) {
            Some(dir) => OpenTrustStore::load(&dir, Release::LATEST)?
                .store
                .certificates(&Purpose::CAPF_TRUST)
                .iter()
                .map(|c| c.der().to_vec())
                .collect(),
            None => Vec::new(),
        };
        Ok(capf_admin::ldap::sync_directory(
            &*caller.store,
            &config,
            &capf_trust,
            request.dry_run,
            &mut NoProgress,
            SystemTime::now(),
        )?)
    })
    .await
}
