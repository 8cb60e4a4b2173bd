//! Operations: the health checks (no login: a load balancer or an orchestrator asks them) and
//! Prometheus metrics (an API token, as every other read: Prometheus sends it with
//! `authorization: { credentials_file: ... }`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::api::blocking;
use crate::error::ApiError;

/// How long `/readyz` waits for the store's answer: a store that hangs (a lock held, a disk
/// gone slow) is not ready either.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers a cheap query (it reads the settings) and, when capfd's
/// server runs in the Online CA mode, the CA is reachable (capf-server's cached check). 200
/// `{"status": "ready", "checks": {...}}`, or 503 with `"not_ready"` naming each check that
/// failed and `"checks"` saying why.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut checks = Map::new();
    let mut not_ready = Vec::new();
    let store = Arc::clone(&state.store);
    let store_check = tokio::time::timeout(
        STORE_CHECK_TIMEOUT,
        tokio::task::spawn_blocking(move || store.settings()),
    )
    .await;
    match store_check {
        Ok(Ok(Ok(_))) => {
            checks.insert("store".into(), "ok".into());
        }
        Ok(Ok(Err(e))) => {
            checks.insert(
                "store".into(),
                format!("the store does not answer: {}", capf_admin::error_chain(&e)).into(),
            );
            not_ready.push("store");
        }
        Ok(Err(_)) => {
            checks.insert("store".into(), "the store check did not finish".into());
            not_ready.push("store");
        }
        Err(_) => {
            checks.insert(
                "store".into(),
                format!(
                    "the store did not answer within {} s",
                    STORE_CHECK_TIMEOUT.as_secs()
                )
                .into(),
            );
            not_ready.push("store");
        }
    }
    if let Some(server) = &state.config.server
        && let Some(ca) = server.online_ca_readiness().await
    {
        match ca {
            Ok(()) => {
                checks.insert("online_ca".into(), "ok".into());
            }
            Err(why) => {
                checks.insert("online_ca".into(), why.into());
                not_ready.push("online_ca");
            }
        }
    }
    if not_ready.is_empty() {
        Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "not_ready": not_ready, "checks": checks })),
        )
            .into_response()
    }
}

/// `GET /metrics`: the running server's metrics in the Prometheus text format 0.0.4; 404 in
/// the standalone capf-web, which runs no server to measure.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let Some(server) = state.config.server.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no CAPF server runs in this process: metrics are served by capfd's administration listener (--admin-listen)",
        ));
    };
    let text = blocking(move || Ok(server.metrics().render(SystemTime::now()))).await?;
    Ok((
        [(header::CONTENT_TYPE, capf_server::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response())
}
