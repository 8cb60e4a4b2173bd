//! Who is calling: login with a password (a session cookie and its CSRF token), API tokens for
//! automation, throttled logins, and the read-only role.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use capf_admin::accounts::{token_hash, verify_password};
use capf_store::{Account, AccountName, DeviceStore, Role};
use serde::Deserialize;

use crate::AppState;
use crate::api::{blocking, parse_json};
use crate::error::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "capf_session";
/// The header that carries the CSRF token on a state-changing request made with the cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A logged-in caller, as the handlers see it.
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) account: AccountName,
    pub(crate) role: Role,
    /// The store, auditing every change as this account's.
    pub(crate) store: Arc<dyn DeviceStore>,
}

#[derive(Clone)]
struct Session {
    account: AccountName,
    role: Role,
    csrf: String,
    last_seen: Instant,
}

/// Login failures in a window, per key (an account or a source address).
#[derive(Default)]
struct Throttle {
    failures: HashMap<String, (u32, Instant)>,
}

impl Throttle {
    fn blocked(&mut self, key: &str, limit: u32, window: Duration, now: Instant) -> bool {
        match self.failures.get(key) {
            Some((_, start)) if now.duration_since(*start) >= window => {
                self.failures.remove(key);
                false
            }
            Some((count, _)) => *count >= limit,
            None => false,
        }
    }

    fn fail(&mut self, key: String, now: Instant) {
        let entry = self.failures.entry(key).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
    }

    fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

/// Sessions and login throttling, in memory: a restart logs everyone out.
#[derive(Default)]
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
}

pub(crate) fn random_hex() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| ApiError::internal())?;
    Ok(hex::encode(bytes))
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message)
}

/// The login request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    name: String,
    password: String,
}

pub(crate) fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed logins; try again later",
    )
}

/// A successful login: the new session's id (the cookie's value), its CSRF token and the
/// account.
pub(crate) struct LoggedIn {
    pub(crate) id: String,
    pub(crate) csrf: String,
    pub(crate) account: Account,
}

/// Checks a login (throttled per account and per source address, Argon2id off the async
/// threads) and opens a session: the one login of the API and of the login page.
pub(crate) async fn check_login(
    state: &Arc<AppState>,
    peer: SocketAddr,
    name: &str,
    password: String,
) -> Result<LoggedIn, ApiError> {
    let config = &state.config;
    let wrong = || unauthorized("wrong account name or password");
    let Ok(name) = AccountName::new(name) else {
        return Err(wrong());
    };
    let account_key = format!("account:{}", name.as_str().to_ascii_lowercase());
    let address_key = format!("address:{}", address_bucket(peer.ip()));
    {
        let now = Instant::now();
        let mut t = state
            .sessions
            .throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if t.blocked(
            &account_key,
            config.login_failures_per_account,
            config.login_window,
            now,
        ) || t.blocked(
            &address_key,
            config.login_failures_per_address,
            config.login_window,
            now,
        ) {
            return Err(too_many());
        }
    }
    let store = Arc::clone(&state.store);
    let check_name = name.clone();
    let dummy = state.dummy_hash.clone();
    // Argon2id costs tens of milliseconds of CPU and 19 MiB: off the async threads. An unknown
    // account still pays for a hash, so the answer's timing does not tell which names exist.
    let found = blocking(move || -> Result<Option<Account>, ApiError> {
        let account = store.account(&check_name)?;
        let hash = account.as_ref().map_or("", |a| a.password_hash.as_str());
        let hash = if hash.is_empty() {
            dummy.as_str()
        } else {
            hash
        };
        let ok = verify_password(hash, &password);
        let now = SystemTime::now();
        match account {
            Some(a) if ok => Ok(Some(store.record_login(&a.name, now)?)),
            Some(a) => {
                store.record_login_failure(&a.name, now)?;
                Ok(None)
            }
            None => Ok(None),
        }
    })
    .await?;
    let now = Instant::now();
    let Some(account) = found else {
        let mut t = state
            .sessions
            .throttle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        t.fail(account_key, now);
        t.fail(address_key, now);
        return Err(wrong());
    };
    state
        .sessions
        .throttle
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear(&account_key);
    let id = random_hex()?;
    let csrf = random_hex()?;
    state
        .sessions
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            id.clone(),
            Session {
                account: account.name.clone(),
                role: account.role,
                csrf: csrf.clone(),
                last_seen: now,
            },
        );
    Ok(LoggedIn { id, csrf, account })
}

/// The session cookie: Secure, HttpOnly, SameSite=Strict, for the idle lifetime.
pub(crate) fn session_cookie(id: &str, idle: Duration) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        idle.as_secs()
    )
}

/// The cookie that ends the session cookie.
pub(crate) fn ended_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// `POST /api/login`: `{ "name", "password" }` -> the session cookie (Secure, HttpOnly,
/// SameSite=Strict) and `{ "account", "role", "csrf_token" }`.
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let login: Login = parse_json(&body)?;
    let done = check_login(&state, peer, &login.name, login.password).await?;
    Ok((
        [(
            header::SET_COOKIE,
            session_cookie(&done.id, state.config.session_idle),
        )],
        axum::Json(serde_json::json!({
            "account": done.account.name.as_str(),
            "role": done.account.role.as_str(),
            "csrf_token": done.csrf,
        })),
    )
        .into_response())
}

/// The source-address bucket: an IPv4 address, or an IPv6 /64 (one host's many addresses).
fn address_bucket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Ends the session of the request's cookie, if any.
pub(crate) fn end_session(state: &AppState, headers: &HeaderMap) {
    if let Some(id) = cookie_value(headers, SESSION_COOKIE) {
        state
            .sessions
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// `POST /api/logout`: ends the cookie's session.
pub(crate) async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    end_session(&state, &headers);
    (
        [(header::SET_COOKIE, ended_cookie())],
        axum::Json(serde_json::json!({ "logged_out": true })),
    )
        .into_response()
}

/// The live session of the request's cookie (its idle time restarted): the account, its role
/// and the session's CSRF token.
pub(crate) fn cookie_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(AccountName, Role, String), ApiError> {
    let Some(id) = cookie_value(headers, SESSION_COOKIE) else {
        return Err(unauthorized(
            "log in first (POST /api/login) or send an API token",
        ));
    };
    let mut sessions = state
        .sessions
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    let Some(session) = sessions.get_mut(id) else {
        return Err(unauthorized("the session has ended; log in again"));
    };
    if now.duration_since(session.last_seen) >= state.config.session_idle {
        sessions.remove(id);
        return Err(unauthorized("the session has expired; log in again"));
    }
    session.last_seen = now;
    Ok((session.account.clone(), session.role, session.csrf.clone()))
}

/// Whether `sent` is the session's CSRF token.
pub(crate) fn csrf_matches(sent: &[u8], csrf: &str) -> bool {
    same_secret(sent, csrf.as_bytes())
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware in front of every API route but login: a bearer API token, or the session
/// cookie (with the CSRF header on every state-changing request); the read-only role may only
/// read. Hands the handlers a [`Caller`].
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let headers = req.headers();
    let write = is_write(req.method());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let (account, role) = if let Some(token) = bearer {
        let hash = token_hash(token.trim());
        let store = Arc::clone(&state.store);
        let found = blocking(move || Ok(store.api_token_account(&hash)?)).await?;
        let Some((account, _)) = found else {
            return Err(unauthorized("unknown API token"));
        };
        (account.name, account.role)
    } else {
        let (account, role, csrf) = cookie_session(&state, headers)?;
        if write {
            let sent = headers
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !csrf_matches(sent, &csrf) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token (header X-CSRF-Token)",
                ));
            }
        }
        (account, role)
    };
    if write && !role.can_write() && req.uri().path() != "/api/logout" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the read-only role cannot change anything",
        ));
    }
    let store = state.store.acting_as(&account);
    req.extensions_mut().insert(Caller {
        account,
        role,
        store,
    });
    Ok(next.run(req).await)
}
