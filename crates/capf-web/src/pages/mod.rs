//! The web pages for people, modelled on the guide's screens: server-rendered HTML over the
//! same functions as the JSON API (each page handler parses its form into the API's own
//! request type and calls the API's core), so a page, the API and capfctl apply the same rules.
//!
//! A page needs the session cookie (without one it sends the browser to `/login`); every form
//! carries the session's CSRF token as the hidden field `csrf`, and the read-only role sees
//! every page but has every change refused.

mod bulk;
mod certs;
mod devices;
pub(crate) mod html;
pub(crate) mod ldap;
mod params;
mod reports;
mod scheduled;
mod svg;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::{AppState, MAX_CERTIFICATE_UPLOAD, MAX_UPLOAD};
use html::{Notice, Viewer, esc};

/// A logged-in person looking at pages: the caller the API's cores take, and the session's
/// CSRF token for the forms.
#[derive(Clone)]
pub(crate) struct PageCaller {
    pub(crate) caller: Caller,
    pub(crate) csrf: String,
}

impl PageCaller {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            account: self.caller.account.as_str(),
            role: self.caller.role.as_str(),
            csrf: &self.csrf,
            can_write: self.caller.role.can_write(),
        }
    }

    /// A change is allowed: the form's CSRF token is the session's, and the role may write.
    fn may_change(&self, form: &FormData) -> Result<(), ApiError> {
        if !auth::csrf_matches(form.get("csrf").as_bytes(), &self.csrf) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (the form's hidden field); reload the page",
            ));
        }
        if !self.caller.role.can_write() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the read-only role cannot change anything",
            ));
        }
        Ok(())
    }
}

/// A file of a multipart form.
pub(crate) struct Upload {
    field: String,
    name: String,
    data: Bytes,
}

/// A submitted form: its text fields in order, and its files.
#[derive(Default)]
pub(crate) struct FormData {
    fields: Vec<(String, String)>,
    files: Vec<Upload>,
}

impl FormData {
    fn from_pairs(fields: Vec<(String, String)>) -> FormData {
        FormData {
            fields,
            files: Vec::new(),
        }
    }

    /// Reads a `multipart/form-data` body: text fields and files.
    async fn from_multipart(mut multipart: Multipart) -> Result<FormData, ApiError> {
        let bad = |e: axum::extract::multipart::MultipartError| {
            ApiError::new(e.status(), format!("malformed upload: {}", e.body_text()))
        };
        let mut form = FormData::default();
        while let Some(field) = multipart.next_field().await.map_err(bad)? {
            let name = field.name().unwrap_or_default().to_owned();
            match field.file_name().map(str::to_owned) {
                Some(file_name) => {
                    let data = field.bytes().await.map_err(bad)?;
                    form.files.push(Upload {
                        field: name,
                        name: file_name,
                        data,
                    });
                }
                None => {
                    let text = field.text().await.map_err(bad)?;
                    form.fields.push((name, text));
                }
            }
        }
        Ok(form)
    }

    /// The field's value ("" when absent).
    fn get(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The file of the field, when one was chosen.
    fn file(&self, field: &str) -> Option<&Upload> {
        self.files
            .iter()
            .find(|f| f.field == field && !(f.name.is_empty() && f.data.is_empty()))
    }

    /// The API's request type `T` from the fields `keys` (empty ones left out, as the API's
    /// optional fields are; `a.b` goes into the object `a`), `flags` as booleans (a ticked
    /// checkbox), so a form is checked by exactly the API's rules.
    fn body<T: DeserializeOwned>(&self, keys: &[&str], flags: &[&str]) -> Result<T, ApiError> {
        self.body_with_numbers(keys, flags, &[])
    }

    /// [`FormData::body`] with `numbers` as JSON numbers (a field that is not one is refused
    /// naming it).
    fn body_with_numbers<T: DeserializeOwned>(
        &self,
        keys: &[&str],
        flags: &[&str],
        numbers: &[&str],
    ) -> Result<T, ApiError> {
        use serde_json::{Map, Value};
        let mut object = Map::new();
        for key in keys.iter().chain(flags).chain(numbers) {
            let value = self.get(key).trim();
            if value.is_empty() {
                continue;
            }
            let value = if flags.contains(key) {
                Value::Bool(matches!(value, "true" | "on" | "1"))
            } else if numbers.contains(key) {
                Value::Number(
                    value
                        .parse::<u64>()
                        .map_err(|_| {
                            ApiError::new(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                format!("{key} {value:?}: not a whole number"),
                            )
                        })?
                        .into(),
                )
            } else {
                Value::String(value.to_owned())
            };
            match key.split_once('.') {
                Some((outer, inner)) => {
                    if let Value::Object(o) = object
                        .entry(outer.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        o.insert(inner.to_owned(), value);
                    }
                }
                None => {
                    object.insert((*key).to_owned(), value);
                }
            }
        }
        serde_json::from_value(Value::Object(object))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed form: {e}")))
    }
}

/// The pages' routes. The login page is open; every other page needs a session.
pub(crate) fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let protected = Router::new()
        .route("/", get(|| async { Redirect::to("/devices") }))
        .route("/devices", get(devices::list).post(devices::add))
        .route("/devices/{name}", get(devices::pane).post(devices::save))
        .route("/bulk", get(bulk::page))
        .route("/bulk/update", post(bulk::update))
        .route(
            "/bulk/insert",
            post(bulk::insert).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/certificates", get(certs::page))
        .route(
            "/certificates/trust",
            post(certs::upload_trust).layer(DefaultBodyLimit::max(MAX_CERTIFICATE_UPLOAD)),
        )
        .route("/certificates/trust/delete", post(certs::delete_trust))
        .route(
            "/certificates/capf",
            post(certs::upload_capf).layer(DefaultBodyLimit::max(MAX_CERTIFICATE_UPLOAD)),
        )
        .route("/certificates/capf/regenerate", post(certs::regenerate))
        .route("/parameters", get(params::page).post(params::save))
        .route("/parameters/online-ca", post(params::save_online_ca))
        .route("/reports", get(reports::page))
        .route("/reports/operations.svg", get(reports::operations_svg))
        .route("/reports/lsc-expiry.svg", get(reports::expiry_svg))
        // Manage Scheduled Jobs
        .route("/jobs", get(scheduled::page))
        .route("/jobs/{id}/cancel", post(scheduled::cancel))
        // LSC and certificate-request records
        .route(
            "/devices/{name}/lscs/{serial}/revoke",
            post(devices::revoke_lsc),
        )
        .route("/reports/stale-lscs/delete", post(reports::delete_stale))
        .route("/reports/csrs/{id}/delete", post(reports::delete_csr))
        .route("/logout", post(logout))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            require_session,
        ));
    Router::new()
        .route("/login", get(login_page).post(login))
        // The pages' own files: the login page needs the style sheet before any session.
        .route(
            "/assets/capf.css",
            get(|| async { html::asset("text/css; charset=utf-8", html::STYLE) }),
        )
        .route(
            "/assets/bulk-upload.js",
            get(|| async { html::asset("text/javascript; charset=utf-8", bulk::UPLOAD_SCRIPT) }),
        )
        .merge(protected)
}

/// The middleware in front of every page but the login page: the session cookie, or the
/// login page.
pub(crate) async fn require_session(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    match auth::cookie_session(&state, req.headers()) {
        Ok((account, role, csrf)) => {
            let store = state.store.acting_as(&account);
            req.extensions_mut().insert(PageCaller {
                caller: Caller {
                    account,
                    role,
                    store,
                },
                csrf,
            });
            next.run(req).await
        }
        Err(_) => Redirect::to("/login").into_response(),
    }
}

// ------------------------------------------------------------------------------------------
// Login and logout

/// The login form's own CSRF token (there is no session yet): a cookie the form must repeat.
const LOGIN_COOKIE: &str = "capf_login";

fn login_form(token: &str, notice: &Notice) -> Response {
    let body = format!(
        r#"<section><form method="post" action="/login" id="login-form" class="grid">
<input type="hidden" name="csrf" value="{token}">
{}{}
<div class="actions"><button type="submit" id="login">Log in</button></div></form>
<p class="muted">Accounts are made with <code>capfctl admin add NAME --role admin|read-only</code>; there is no default password.</p></section>"#,
        html::input("Account", "name", "", "text"),
        html::input("Password", "password", "", "password"),
        token = esc(token),
    );
    let mut response = html::page("Log in", "", None, notice, &body);
    if let Ok(cookie) = format!(
        "{LOGIN_COOKIE}={token}; Path=/login; Secure; HttpOnly; SameSite=Strict; Max-Age=3600"
    )
    .parse()
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /login`.
async fn login_page(uri: axum::http::Uri) -> Response {
    let notice = if uri.query() == Some("out=1") {
        Notice::Done("You have logged out.".to_owned())
    } else {
        Notice::None
    };
    match auth::random_hex() {
        Ok(token) => login_form(&token, &notice),
        Err(e) => e.into_response(),
    }
}

/// `POST /login`: the form's account and password, through the API's login (throttling and
/// all); a session cookie and the device list, or the form again with the refusal.
async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    let token = match auth::random_hex() {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    let expected = auth::cookie_value(&headers, LOGIN_COOKIE).unwrap_or("");
    if expected.is_empty() || !auth::csrf_matches(form.get("csrf").as_bytes(), expected) {
        let refused = ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (the form's hidden field); log in again",
        );
        return login_form(&token, &refused.into());
    }
    match auth::check_login(
        &state,
        peer,
        form.get("name"),
        form.get("password").to_owned(),
    )
    .await
    {
        Ok(done) => {
            let mut response = Redirect::to("/devices").into_response();
            if let Ok(cookie) = auth::session_cookie(&done.id, state.config.session_idle).parse() {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(e) => login_form(&token, &e.into()),
    }
}

/// `POST /logout`: ends the session and goes back to the login page.
async fn logout(
    State(state): State<Arc<AppState>>,
    axum::Extension(pc): axum::Extension<PageCaller>,
    headers: HeaderMap,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let form = FormData::from_pairs(fields);
    // Only the CSRF check: the read-only role may log out.
    if !auth::csrf_matches(form.get("csrf").as_bytes(), &pc.csrf) {
        let refused = ApiError::new(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token (the form's hidden field); reload the page",
        );
        return html::page("Log out", "", Some(&pc.viewer()), &refused.into(), "");
    }
    auth::end_session(&state, &headers);
    let mut response = Redirect::to("/login?out=1").into_response();
    if let Ok(cookie) = auth::ended_cookie().parse() {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
