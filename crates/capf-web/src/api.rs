//! The JSON API over capf-admin: the calls capfctl makes, so both behave the same.

use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capf_admin::{
    BulkInsertView, BulkUpdateView, ChangeParams, ChangeView, CsrView, DeviceDetailView,
    DeviceEdit, DeviceFilter, DeviceView, KeyChoice, LscView, NoProgress, OperationKind,
    SettingView, StatusView,
};
use capf_store::{AuthMode, CaRequestState, Device, DeviceUpdate, NewDevice, StatusKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::pages::html::url_part;

/// Runs blocking store work (SQLite, Argon2id) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal())?
}

/// A JSON body, or 400 with serde's one line on what is wrong with it.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON body: {e}")))
}

pub(crate) fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

pub(crate) fn parse_name<T: core::str::FromStr>(field: &str, text: &str) -> Result<T, ApiError>
where
    T::Err: std::error::Error + 'static,
{
    text.parse().map_err(|e: T::Err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field}: {}", capf_admin::error_chain(&e)),
        )
    })
}

/// A list's only query parameter, `?state=NAME`, parsed by `T`'s own name table; `None`
/// without it.
pub(crate) fn state_param<T: core::str::FromStr>(
    uri: &axum::http::Uri,
) -> Result<Option<T>, ApiError>
where
    T::Err: std::error::Error + 'static,
{
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        state: Option<String>,
    }
    let params: Params = query(uri.query())?;
    params
        .state
        .as_deref()
        .map(|s| parse_name::<T>("state", s))
        .transpose()
}

/// `GET /api/me`: the caller's account and role.
pub(crate) async fn me(Extension(caller): Extension<Caller>) -> Json<serde_json::Value> {
    Json(json!({ "account": caller.account.as_str(), "role": caller.role.as_str() }))
}

// ------------------------------------------------------------------------------------------
// Devices

/// capfctl's device filters, as query parameters.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterParams {
    name: Option<String>,
    pool: Option<String>,
    model: Option<String>,
    status: Option<String>,
    lsc_expires_before: Option<String>,
    #[serde(default)]
    past_complete_by: bool,
    /// The API's paging: at most this many devices ([`DEFAULT_PAGE_LIMIT`] without it).
    limit: Option<usize>,
    /// The API's paging: from this position in name order (0 without it).
    offset: Option<usize>,
}

impl FilterParams {
    pub(crate) fn to_filter(&self) -> Result<DeviceFilter, ApiError> {
        Ok(DeviceFilter {
            name_pattern: self.name.clone(),
            device_pool: self.pool.clone(),
            model: self.model.clone(),
            status: self
                .status
                .as_deref()
                .map(|s| parse_name::<StatusKind>("status", s))
                .transpose()?,
            lsc_expires_before: self
                .lsc_expires_before
                .as_deref()
                .map(|d| capf_admin::day_start(d, "lsc_expires_before"))
                .transpose()?,
            past_complete_by: self.past_complete_by,
        })
    }
}

pub(crate) fn query<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    let raw = raw.unwrap_or("");
    serde_urlencoded_parse(raw)
}

fn serde_urlencoded_parse<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| bad_request("malformed query string".to_owned()))?,
    )
    .map(|q| q.0)
    .map_err(|e| bad_request(format!("malformed query string: {}", e.body_text())))
}

/// Devices in a page of `GET /api/devices` without `limit`.
pub const DEFAULT_PAGE_LIMIT: usize = 500;

/// The largest `limit` of `GET /api/devices`: a page stays a few hundred kilobytes of JSON
/// however many devices the store holds (all 100,000 in one answer were 31 MB and half a
/// second).
pub const MAX_PAGE_LIMIT: usize = 1000;

/// `GET /api/devices?name=&pool=&model=&status=&lsc_expires_before=&past_complete_by=&limit=&offset=`.
///
/// Always one page, in name order: `limit` devices (default [`DEFAULT_PAGE_LIMIT`], at most
/// [`MAX_PAGE_LIMIT`]) from position `offset` (default 0). `X-Total-Count` is the number
/// matching in all, and `Link` (RFC 8288) gives the `next` and `prev` pages as relative
/// references with the same filters, so a client pages through 100,000 devices by following
/// `rel="next"` until there is none.
pub(crate) async fn list_devices(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let params = query::<FilterParams>(uri.query())?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if limit > MAX_PAGE_LIMIT {
        return Err(bad_request(format!(
            "limit {limit}: at most {MAX_PAGE_LIMIT} devices a page (follow the Link header's \
             rel=\"next\" for the rest)"
        )));
    }
    let offset = params.offset.unwrap_or(0);
    let page = device_page_core(caller, &params, offset, limit).await?;
    let views: Vec<DeviceView> = page.devices.iter().map(DeviceView::from).collect();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-total-count", page.total.into());
    let links = page_links(uri.path(), uri.query(), offset, limit, page.total);
    if !links.is_empty()
        && let Ok(value) = axum::http::HeaderValue::from_str(&links)
    {
        headers.insert(axum::http::header::LINK, value);
    }
    Ok((headers, Json(views)).into_response())
}

/// The RFC 8288 `Link` value of a page at `offset` of `limit` among `total`: `rel="next"` when
/// devices follow it, `rel="prev"` when some come before it; each the same path and query
/// with only `limit` and `offset` replaced.
fn page_links(
    path: &str,
    query: Option<&str>,
    offset: usize,
    limit: usize,
    total: usize,
) -> String {
    let kept: Vec<(String, String)> = Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{}", query.unwrap_or(""))
            .parse()
            .unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
    .into_iter()
    .filter(|(k, _)| k != "limit" && k != "offset")
    .collect();
    let link = |at: usize, rel: &str| {
        let mut target = format!("{path}?");
        for (k, v) in &kept {
            target.push_str(&url_part(k));
            target.push('=');
            target.push_str(&url_part(v));
            target.push('&');
        }
        format!("<{target}limit={limit}&offset={at}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if limit > 0 && offset.saturating_add(limit) < total {
        links.push(link(offset + limit, "next"));
    }
    if offset > 0 && limit > 0 {
        links.push(link(offset.saturating_sub(limit), "prev"));
    }
    links.join(", ")
}

/// One page of the devices matching capfctl's filters, with the total (the API's list and the
/// device list page).
pub(crate) async fn device_page_core(
    caller: Caller,
    params: &FilterParams,
    offset: usize,
    limit: usize,
) -> Result<capf_store::DevicePage, ApiError> {
    let filter = params.to_filter()?;
    blocking(move || {
        Ok(capf_admin::device_page(
            &*caller.store,
            &filter,
            offset,
            limit,
            SystemTime::now(),
        )?)
    })
    .await
}

/// `GET /api/devices/{name}`: the device, its LSCs and its newest audit entries.
pub(crate) async fn show_device(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<DeviceDetailView>, ApiError> {
    blocking(move || {
        let detail = capf_admin::device_detail(&*caller.store, &name, capf_admin::AUDIT_ENTRIES)?;
        Ok(Json(detail.view()))
    })
    .await
}

/// Key choices of an Install/Upgrade operation, by their capfctl names.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Keys {
    key_order: Option<String>,
    rsa: Option<String>,
    curve: Option<String>,
}

impl Keys {
    pub(crate) fn choice(&self) -> Result<KeyChoice, ApiError> {
        Ok(KeyChoice {
            order: self
                .key_order
                .as_deref()
                .map(|o| {
                    capf_admin::parse_key_order(o).ok_or_else(|| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            format!(
                                "key_order {o:?}: expected one of {}",
                                capf_admin::KEY_ORDERS
                                    .map(capf_admin::key_order_name)
                                    .join(", ")
                            ),
                        )
                    })
                })
                .transpose()?,
            rsa: self
                .rsa
                .as_deref()
                .map(capf_admin::parse_rsa_bits)
                .transpose()?,
            curve: self
                .curve
                .as_deref()
                .map(capf_admin::parse_curve)
                .transpose()?,
        })
    }
}

/// `POST /api/devices`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddDevice {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    device_pool: String,
    #[serde(default)]
    model: String,
    operation: Option<String>,
    #[serde(flatten)]
    keys: Keys,
    auth_mode: Option<String>,
    auth_string: Option<String>,
    complete_by: Option<String>,
}

/// `POST /api/devices`: registers a device (201).
pub(crate) async fn add_device(
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let device = add_device_core(caller, parse_json(&body)?).await?;
    Ok((StatusCode::CREATED, Json(DeviceView::from(&device))))
}

/// Registers a device (the API and the device list page's form).
pub(crate) async fn add_device_core(caller: Caller, add: AddDevice) -> Result<Device, ApiError> {
    let now = SystemTime::now();
    let kind = add
        .operation
        .as_deref()
        .map(|o| parse_name::<OperationKind>("operation", o))
        .transpose()?
        .unwrap_or(OperationKind::None);
    let given_mode = add
        .auth_mode
        .as_deref()
        .map(|m| parse_name::<AuthMode>("auth_mode", m))
        .transpose()?;
    let new = NewDevice {
        description: add.description,
        device_pool: add.device_pool,
        model: add.model,
        operation: add.keys.choice()?.operation(kind)?,
        auth_mode: capf_admin::new_device_auth_mode(given_mode, add.auth_string.is_some())?,
        auth_string: add.auth_string,
        complete_by: add
            .complete_by
            .as_deref()
            .map(|d| capf_admin::complete_by(d, "complete_by", now))
            .transpose()?,
        ..NewDevice::new(capf_admin::check_device_name(&add.name)?)
    };
    blocking(move || Ok(capf_admin::add_device(&*caller.store, &new, now)?)).await
}

/// `PATCH /api/devices/{name}`'s body: the fields to change; `auth_string` null clears it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateDevice {
    description: Option<String>,
    device_pool: Option<String>,
    model: Option<String>,
    auth_mode: Option<String>,
    #[serde(default, deserialize_with = "present")]
    auth_string: Option<Option<String>>,
}

/// A field that is there (even as null) is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/devices/{name}`.
pub(crate) async fn update_device(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<DeviceView>, ApiError> {
    let device = update_device_core(caller, name, parse_json(&body)?).await?;
    Ok(Json(DeviceView::from(&device)))
}

/// Changes a device's fields (the API and the phone's CAPF pane).
pub(crate) async fn update_device_core(
    caller: Caller,
    name: String,
    update: UpdateDevice,
) -> Result<Device, ApiError> {
    let edit = DeviceEdit {
        update: DeviceUpdate {
            description: update.description,
            device_pool: update.device_pool,
            model: update.model,
            auth_mode: update
                .auth_mode
                .as_deref()
                .map(|m| parse_name::<AuthMode>("auth_mode", m))
                .transpose()?,
        },
        auth_string: update.auth_string,
    };
    blocking(move || Ok(edit.apply(&*caller.store, &name, SystemTime::now())?)).await
}

/// `DELETE /api/devices/{name}`.
pub(crate) async fn remove_device(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    blocking(move || {
        let device = capf_admin::require_device(&*caller.store, &name)?;
        caller
            .store
            .remove_device(&device.name, SystemTime::now())?;
        Ok(Json(json!({ "removed": device.name.as_str() })))
    })
    .await
}

/// `POST /api/devices/{name}/schedule`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleBody {
    operation: String,
    #[serde(flatten)]
    keys: Keys,
    complete_by: Option<String>,
    auth_string: Option<String>,
}

/// `POST /api/devices/{name}/schedule`: an operation (with its keys, complete-by date and
/// authentication string), as `capfctl device schedule`.
pub(crate) async fn schedule_device(
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<DeviceView>, ApiError> {
    let device = schedule_core(caller, name, parse_json(&body)?).await?;
    Ok(Json(DeviceView::from(&device)))
}

/// Schedules an operation (the API and the phone's CAPF pane).
pub(crate) async fn schedule_core(
    caller: Caller,
    name: String,
    body: ScheduleBody,
) -> Result<Device, ApiError> {
    let now = SystemTime::now();
    let kind = parse_name::<OperationKind>("operation", &body.operation)?;
    let operation = body.keys.choice()?.operation(kind)?;
    let complete_by = body
        .complete_by
        .as_deref()
        .map(|d| capf_admin::complete_by(d, "complete_by", now))
        .transpose()?;
    blocking(move || {
        Ok(capf_admin::schedule_device(
            &*caller.store,
            &name,
            operation,
            complete_by,
            body.auth_string.as_deref(),
            now,
        )?)
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Bulk

/// `POST /api/bulk/insert[?template=NAME]`: the body is the CSV file (the guide's Bulk
/// Administration columns); every row or none is added, and a bad row is named by its line.
///
/// With `at` (RFC 3339, `capfctl bulk insert --at`), the file is checked now and kept in a
/// scheduled job that the running capfd runs then: 202 with the job (`GET /api/jobs/{id}`).
pub(crate) async fn bulk_insert(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        template: Option<String>,
        at: Option<String>,
    }
    let params: Params = query(uri.query())?;
    let file = "upload.csv".to_owned();
    if let Some(at) = params.at {
        let due = crate::scheduled::due(&at)?;
        let job = crate::scheduled::schedule_insert_core(caller, file, body, params.template, due)
            .await?;
        return Ok((StatusCode::ACCEPTED, Json(job)).into_response());
    }
    Ok(Json(bulk_insert_core(caller, file, body, params.template).await?).into_response())
}

/// A bulk insert from a CSV file named `file` in messages (the API and Bulk Administration's
/// upload): every row or none.
pub(crate) async fn bulk_insert_core(
    caller: Caller,
    file: String,
    body: Bytes,
    template: Option<String>,
) -> Result<BulkInsertView, ApiError> {
    blocking(move || {
        let template = template
            .map(|name| {
                caller
                    .store
                    .template(&name)?
                    .ok_or(capf_admin::Error::UnknownTemplate { name })
            })
            .transpose()?;
        let inserted = capf_admin::insert_devices_csv_from(
            &*caller.store,
            &body[..],
            &file,
            template,
            &mut NoProgress,
            SystemTime::now(),
        )?;
        Ok(BulkInsertView {
            file,
            added: inserted.added,
            template: inserted.template.map(|t| t.name),
        })
    })
    .await
}

/// `POST /api/bulk/update`'s body: which devices (capfctl's filters), what changes, and
/// whether only to show it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkUpdate {
    #[serde(default)]
    pub(crate) filter: FilterParams,
    description: Option<String>,
    device_pool: Option<String>,
    model: Option<String>,
    auth_mode: Option<String>,
    operation: Option<String>,
    #[serde(flatten)]
    keys: Keys,
    complete_by: Option<String>,
    #[serde(default)]
    pub(crate) dry_run: bool,
    /// Run Later (RFC 3339): store the update as a job the running capfd runs then.
    pub(crate) at: Option<String>,
}

impl BulkUpdate {
    /// What changes, as capf-admin's parameters (checked by `to_change`).
    pub(crate) fn change_params(&self) -> Result<ChangeParams, ApiError> {
        Ok(ChangeParams {
            description: self.description.clone(),
            device_pool: self.device_pool.clone(),
            model: self.model.clone(),
            auth_mode: self
                .auth_mode
                .as_deref()
                .map(|m| parse_name::<AuthMode>("auth_mode", m))
                .transpose()?,
            operation: self
                .operation
                .as_deref()
                .map(|o| parse_name::<OperationKind>("operation", o))
                .transpose()?,
            keys: self.keys.choice()?,
            complete_by: self.complete_by.clone(),
        })
    }
}

/// `POST /api/bulk/update`: an update by query, or its dry run (what would change); with
/// `"at"`, the change is checked now and stored as a scheduled job (202 with the job).
pub(crate) async fn bulk_update(
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut body: BulkUpdate = parse_json(&body)?;
    if let Some(at) = body.at.take() {
        let due = crate::scheduled::due(&at)?;
        let job = crate::scheduled::schedule_update_core(caller, body, due).await?;
        return Ok((StatusCode::ACCEPTED, Json(job)).into_response());
    }
    Ok(Json(bulk_update_core(caller, body).await?).into_response())
}

/// An update by query or its dry run (the API and Bulk Administration's preview and apply).
pub(crate) async fn bulk_update_core(
    caller: Caller,
    body: BulkUpdate,
) -> Result<BulkUpdateView, ApiError> {
    let now = SystemTime::now();
    let filter = body.filter.to_filter()?;
    let change = body.change_params()?.to_change(now)?;
    let dry_run = body.dry_run;
    blocking(move || {
        let changes = capf_admin::update_devices(
            &*caller.store,
            &filter,
            &change,
            dry_run,
            &mut NoProgress,
            now,
        )?;
        Ok(BulkUpdateView {
            dry_run,
            changed: changes.len(),
            devices: changes
                .iter()
                .map(|c| ChangeView {
                    name: c.name.to_string(),
                    change: c.detail.clone(),
                })
                .collect(),
        })
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Reports and settings

/// `GET /api/reports/status`.
pub(crate) async fn status(
    Extension(caller): Extension<Caller>,
) -> Result<Json<StatusView>, ApiError> {
    blocking(move || {
        Ok(Json(capf_admin::status_report(
            &*caller.store,
            SystemTime::now(),
        )?))
    })
    .await
}

/// `GET /api/reports/stale-lscs`.
pub(crate) async fn stale_lscs(
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<LscView>>, ApiError> {
    blocking(move || {
        Ok(Json(
            caller
                .store
                .stale_lscs()?
                .iter()
                .map(LscView::from)
                .collect(),
        ))
    })
    .await
}

/// `GET /api/reports/csrs[?state=pending]`: requests to an external CA (`capfctl csr list`).
pub(crate) async fn csrs(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
) -> Result<Json<Vec<CsrView>>, ApiError> {
    let state = state_param::<CaRequestState>(&uri)?;
    blocking(move || {
        Ok(Json(
            caller
                .store
                .ca_requests(state)?
                .iter()
                .map(CsrView::from)
                .collect(),
        ))
    })
    .await
}

/// `GET /api/reports/expiring[?days=30]`: Issued and Installed LSCs expiring within the days.
pub(crate) async fn expiring(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
) -> Result<Json<Vec<LscView>>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        days: Option<u32>,
    }
    let params: Params = query(uri.query())?;
    let days = params.days.unwrap_or(30);
    let before = SystemTime::now()
        .checked_add(Duration::from_secs(u64::from(days) * 86_400))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("days {days}: too far ahead"),
            )
        })?;
    blocking(move || {
        Ok(Json(
            caller
                .store
                .lscs_expiring_before(before)?
                .iter()
                .map(LscView::from)
                .collect(),
        ))
    })
    .await
}

/// `GET /api/settings`: every run-time setting (keepalive, limits, issuer, validity, ...).
pub(crate) async fn settings(
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<SettingView>>, ApiError> {
    blocking(move || Ok(Json(capf_admin::settings(&*caller.store)?))).await
}

/// `PUT /api/settings`: `{ "key": "value", ... }`, each as `capfctl settings set`; all are
/// checked before any is stored.
pub(crate) async fn set_settings(
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Json<Vec<SettingView>>, ApiError> {
    Ok(Json(set_settings_core(caller, parse_json(&body)?).await?))
}

/// Sets run-time settings, each as `capfctl settings set`, all checked before any is stored
/// (the API and the service parameters page).
pub(crate) async fn set_settings_core(
    caller: Caller,
    values: std::collections::BTreeMap<String, String>,
) -> Result<Vec<SettingView>, ApiError> {
    blocking(move || {
        let mut settings = caller.store.settings()?;
        for (key, value) in &values {
            settings
                .set(key, value.trim())
                .map_err(capf_admin::Error::from)?;
        }
        caller.store.update_settings(&settings, SystemTime::now())?;
        Ok(capf_admin::settings(&*caller.store)?)
    })
    .await
}

/// `GET /api/audit[?device=NAME&limit=N]`: the newest audit entries, with who made each change.
pub(crate) async fn audit(
    Extension(caller): Extension<Caller>,
    uri: axum::http::Uri,
) -> Result<Json<serde_json::Value>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        device: Option<String>,
        limit: Option<usize>,
    }
    let params: Params = query(uri.query())?;
    blocking(move || {
        let device = params
            .device
            .as_deref()
            .map(capf_admin::lookup_name)
            .transpose()?;
        let entries = caller
            .store
            .audit(device.as_ref(), params.limit.unwrap_or(100).min(10_000))?;
        Ok(Json(serde_json::Value::Array(
            entries
                .iter()
                .map(|e| {
                    json!({
                        "at": capf_admin::rfc3339(e.at),
                        "device": e.device.as_ref().map(|d| d.as_str()),
                        "action": e.action,
                        "detail": e.detail,
                        "actor": e.actor,
                    })
                })
                .collect(),
        )))
    })
    .await
}
