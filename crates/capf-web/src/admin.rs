//! Device templates, authentication strings (generated, their CSV downloadable once) and the
//! Online CA settings: `capfctl template`, `auth-string generate` and `online-ca` over HTTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use capf_admin::{AuthStringLength, DeviceSelection, OnlineCaView, TemplateParams, TemplateView};
use capf_lsc::{OnlineCaParams, Secret};
use capf_store::{AccountName, AuthMode};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::api::{FilterParams, Keys, blocking, parse_json, parse_name};
use crate::auth::Caller;
use crate::error::ApiError;

// ------------------------------------------------------------------------------------------
// Device templates

/// `GET /api/templates`: every device template.
pub(crate) async fn list_templates(
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TemplateView>>, ApiError> {
    blocking(move || {
        Ok(Json(
            caller
                .store
                .templates()?
                .iter()
                .map(TemplateView::from)
                .collect(),
        ))
    })
    .await
}

/// `GET /api/templates/{name}`.
pub(crate) async fn show_template(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<TemplateView>, ApiError> {
    blocking(move || {
        let template = caller
            .store
            .template(&name)?
            .ok_or(capf_admin::Error::UnknownTemplate { name })?;
        Ok(Json(TemplateView::from(&template)))
    })
    .await
}

/// `PUT /api/templates/{name}`'s body: what `capfctl template add` takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateBody {
    #[serde(default)]
    description: String,
    #[serde(default)]
    device_pool: String,
    #[serde(default)]
    model: String,
    auth_mode: Option<String>,
    operation: Option<String>,
    #[serde(flatten)]
    keys: Keys,
    complete_by: Option<String>,
}

/// `PUT /api/templates/{name}`: stores a device template, replacing one of the same name.
pub(crate) async fn save_template(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<TemplateView>, ApiError> {
    let body: TemplateBody = parse_json(&body)?;
    let now = SystemTime::now();
    let template = TemplateParams {
        name,
        description: body.description,
        device_pool: body.device_pool,
        model: body.model,
        auth_mode: body
            .auth_mode
            .as_deref()
            .map(|m| parse_name::<AuthMode>("auth_mode", m))
            .transpose()?
            .unwrap_or_default(),
        operation: body
            .operation
            .as_deref()
            .map(|o| parse_name("operation", o))
            .transpose()?,
        keys: body.keys.choice()?,
        complete_by: body.complete_by,
    }
    .to_template(now)?;
    blocking(move || {
        caller.store.save_template(&template, now)?;
        Ok(Json(TemplateView::from(&template)))
    })
    .await
}

/// `DELETE /api/templates/{name}`.
pub(crate) async fn remove_template(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        caller.store.remove_template(&name, SystemTime::now())?;
        Ok(Json(json!({ "removed": name })))
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Authentication strings

/// One authentication-string CSV waiting for its download.
struct Download {
    account: AccountName,
    csv: String,
    made: Instant,
}

/// The CSV files of generated authentication strings, each given once to the account that
/// generated it and then forgotten (the store keeps only the strings' keyed hash).
#[derive(Default)]
pub(crate) struct Downloads {
    waiting: Mutex<HashMap<String, Download>>,
}

/// `POST /api/auth-strings`'s body: `capfctl auth-string generate`'s selection and options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateBody {
    #[serde(default)]
    devices: Vec<String>,
    filter: Option<FilterParams>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    same: bool,
    length: Option<i64>,
}

/// `POST /api/auth-strings`: generates a string for each selected device (unique per device
/// unless `same`), sets them (and By Authentication String), and answers the devices and the
/// address of the CSV with the strings, which can be downloaded once. The strings are not in
/// this answer.
pub(crate) async fn generate_auth_strings(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body: GenerateBody = parse_json(&body)?;
    let length = body
        .length
        .map_or(Ok(AuthStringLength::default()), AuthStringLength::new)?;
    let selection = DeviceSelection {
        devices: body.devices,
        filter: body
            .filter
            .as_ref()
            .map(FilterParams::to_filter)
            .transpose()?
            .unwrap_or_default(),
        all: body.all,
    };
    if selection.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no devices selected: give \"devices\", a \"filter\" or \"all\": true",
        ));
    }
    let same = body.same;
    let store = Arc::clone(&caller.store);
    let strings = blocking(move || {
        let now = SystemTime::now();
        let names = selection.names(&*store, now)?;
        let strings = capf_admin::generate_auth_strings(names, length, same)?;
        let pairs: Vec<_> = strings
            .iter()
            .map(|s| (s.name.clone(), s.auth_string.clone()))
            .collect();
        store.set_auth_strings(&pairs, now)?;
        Ok(strings)
    })
    .await?;
    let id = crate::auth::random_hex()?;
    let now = Instant::now();
    let idle = state.config.session_idle;
    {
        let mut waiting = state
            .downloads
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A CSV nobody fetched within a session's idle time is dropped.
        waiting.retain(|_, d| now.duration_since(d.made) < idle);
        waiting.insert(
            id.clone(),
            Download {
                account: caller.account.clone(),
                csv: capf_admin::auth_strings_csv(&strings),
                made: now,
            },
        );
    }
    Ok(Json(json!({
        "set": strings.len(),
        "devices": strings.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "csv": format!("/api/auth-strings/csv/{id}"),
    })))
}

/// `GET /api/auth-strings/csv/{id}`: the CSV (`device_name,auth_string`) of one generation,
/// once, to the account that generated it; then it is gone (404).
pub(crate) async fn download_auth_strings(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let gone = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such authentication-string CSV (each is downloadable once, by the account \
             that generated it)",
        )
    };
    let download = {
        let mut waiting = state
            .downloads
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match waiting.get(&id) {
            Some(d)
                if d.account == caller.account && d.made.elapsed() < state.config.session_idle =>
            {
                waiting.remove(&id).ok_or_else(gone)?
            }
            _ => return Err(gone()),
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"auth-strings.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        download.csv,
    )
        .into_response())
}

// ------------------------------------------------------------------------------------------
// Online CA

/// `GET /api/online-ca`: the Online CA settings with the password as `********`, or `null`.
pub(crate) async fn show_online_ca(
    Extension(caller): Extension<Caller>,
) -> Result<Json<Option<OnlineCaView>>, ApiError> {
    blocking(move || Ok(Json(capf_admin::online_ca(&*caller.store)?))).await
}

/// `PUT /api/online-ca`'s body: `capfctl online-ca set`'s settings, the password among them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnlineCaBody {
    host: String,
    #[serde(default = "https_port")]
    port: u32,
    #[serde(rename = "type")]
    ca_type: String,
    username: String,
    password: String,
    template: Option<String>,
    label: Option<String>,
}

fn https_port() -> u32 {
    443
}

/// `PUT /api/online-ca`: checks and stores the Online CA settings (the password sealed by the
/// store) and answers them as shown. The password is never echoed: not in the answer, not in
/// an error (a malformed body's message names only where, never what), not in the audit.
pub(crate) async fn set_online_ca(
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<OnlineCaView>, ApiError> {
    let body: OnlineCaBody = serde_json::from_slice(&body).map_err(|e| {
        // serde's own text can quote a value (an invalid type shows it): only where and what.
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
            _ => "missing, unknown or mistyped field",
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "malformed JSON body: {what} at line {} column {} (host, port, type, username, \
                 password, template, label)",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(Json(set_online_ca_core(caller, body).await?))
}

/// Checks and stores the Online CA settings (the API and the service parameters page).
pub(crate) async fn set_online_ca_core(
    caller: Caller,
    body: OnlineCaBody,
) -> Result<OnlineCaView, ApiError> {
    let params = OnlineCaParams {
        host: body.host,
        port: body.port,
        ca_type: body.ca_type,
        username: body.username,
        password: Secret::new(body.password),
        template: body.template,
        label: body.label,
    };
    blocking(move || {
        Ok(capf_admin::set_online_ca(
            &*caller.store,
            &params,
            SystemTime::now(),
        )?)
    })
    .await
}
