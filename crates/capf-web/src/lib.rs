#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod api;
mod auth;
mod error;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use capf_store::DeviceStore;

pub use auth::{CSRF_HEADER, SESSION_COOKIE};
pub use error::Error;

/// The largest upload (a bulk CSV file of 100,000 devices is about 10 MB).
pub const MAX_UPLOAD: usize = 64 * 1024 * 1024;

/// How the web administration behaves: sessions and login throttling.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WebConfig {
    /// A session with no request for this long ends (default 30 minutes).
    pub session_idle: Duration,
    /// Failed logins of one account within [`WebConfig::login_window`] before its logins are
    /// refused for the rest of the window (default 5).
    pub login_failures_per_account: u32,
    /// Failed logins from one source address (an IPv6 /64) within the window before its logins
    /// are refused (default 20).
    pub login_failures_per_address: u32,
    /// The throttling window (default 15 minutes).
    pub login_window: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle: Duration::from_secs(30 * 60),
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            login_window: Duration::from_secs(15 * 60),
        }
    }
}

impl WebConfig {
    /// The defaults with another idle session lifetime.
    pub fn with_session_idle(mut self, idle: Duration) -> Self {
        self.session_idle = idle;
        self
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    store: Arc<dyn DeviceStore>,
    config: WebConfig,
    sessions: auth::Sessions,
    /// An Argon2id hash checked for unknown accounts, so a login's time does not tell whether
    /// the account exists.
    dummy_hash: String,
}

/// The web administration's routes over `store`, as an axum [`Router`] to serve with
/// [`tls::serve`] (HTTPS only).
///
/// Unauthenticated: `GET /healthz`, `GET /readyz` (the store answers) and `POST /api/login`.
/// Everything else needs a session cookie (and `X-CSRF-Token` on every state-changing request)
/// or `Authorization: Bearer TOKEN`; the read-only role gets 403 on every write.
///
/// # Errors
/// [`Error::Io`] when the OS random source fails (making the hash that unknown accounts'
/// logins are checked against).
pub fn router(store: Arc<dyn DeviceStore>, config: WebConfig) -> Result<Router, Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| Error::Io {
        action: "reading the OS random source",
        path: "getrandom".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let dummy_hash =
        capf_admin::accounts::hash_password(&hex::encode(secret)).map_err(|e| Error::Io {
            action: "hashing",
            path: "argon2".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let state = Arc::new(AppState {
        store,
        config,
        sessions: auth::Sessions::default(),
        dummy_hash,
    });
    let api = Router::new()
        .route("/api/me", get(api::me))
        .route("/api/logout", post(auth::logout))
        .route("/api/devices", get(api::list_devices).post(api::add_device))
        .route(
            "/api/devices/{name}",
            get(api::show_device)
                .patch(api::update_device)
                .delete(api::remove_device),
        )
        .route("/api/devices/{name}/schedule", post(api::schedule_device))
        .route(
            "/api/bulk/insert",
            post(api::bulk_insert).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/api/bulk/update", post(api::bulk_update))
        .route("/api/reports/status", get(api::status))
        .route("/api/reports/stale-lscs", get(api::stale_lscs))
        .route("/api/reports/csrs", get(api::csrs))
        .route("/api/reports/expiring", get(api::expiring))
        .route("/api/settings", get(api::settings).put(api::set_settings))
        .route("/api/audit", get(api::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::authenticate,
        ));
    Ok(Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/api/login", post(auth::login))
        .merge(api)
        .fallback(|| async {
            error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such endpoint")
        })
        .with_state(state))
}
