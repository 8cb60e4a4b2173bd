#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod admin;
mod api;
mod auth;
mod certs;
mod error;
mod ldap;
mod ops;
mod pages;
mod records;
mod scheduled;
pub mod tls;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use capf_store::DeviceStore;

pub use api::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
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
    /// The server's data directory, holding the trust stores (`trust/`) and the CAPF
    /// certificate (`capf.pem`, `capf.key`) as capfd reads them. Without it the trust-store
    /// and CAPF-certificate endpoints answer 404.
    pub data_dir: Option<PathBuf>,
    /// The CAPF server running in this process (capfd's `--admin-listen`): `/metrics` renders
    /// its metrics and `/readyz` checks its Online CA. Without it (the standalone capf-web),
    /// `/metrics` answers 404 and `/readyz` checks the store only.
    pub server: Option<Arc<capf_server::EnrollmentService>>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle: Duration::from_secs(30 * 60),
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            login_window: Duration::from_secs(15 * 60),
            data_dir: None,
            server: None,
        }
    }
}

impl WebConfig {
    /// The defaults with another idle session lifetime.
    pub fn with_session_idle(mut self, idle: Duration) -> Self {
        self.session_idle = idle;
        self
    }

    /// The defaults with the server's data directory (see [`WebConfig::data_dir`]).
    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// With the CAPF server running in this process (see [`WebConfig::server`]).
    pub fn with_server(mut self, service: Arc<capf_server::EnrollmentService>) -> Self {
        self.server = Some(service);
        self
    }
}

/// The largest certificate upload (a trust bundle, a CAPF certificate with its key).
pub const MAX_CERTIFICATE_UPLOAD: usize = 1024 * 1024;

/// What every handler shares.
pub(crate) struct AppState {
    store: Arc<dyn DeviceStore>,
    config: WebConfig,
    sessions: auth::Sessions,
    /// An Argon2id hash checked for unknown accounts, so a login's time does not tell whether
    /// the account exists.
    dummy_hash: String,
    /// Authentication-string CSV files waiting for their one download.
    downloads: admin::Downloads,
    /// Serialises changes to the files of the data directory (trust stores, CAPF certificate).
    files: Mutex<()>,
}

/// The web administration's routes over `store`, as an axum [`Router`] to serve with
/// [`tls::serve`] (HTTPS only).
///
/// Unauthenticated: `GET /healthz`, `GET /readyz` (the store answers, and in the Online CA
/// mode the CA: 200, or 503 naming what is not ready) and `POST /api/login`. Everything else,
/// `GET /metrics` (Prometheus; capfd's server only) included, needs a session cookie (and `X-CSRF-Token` on every state-changing request)
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
        downloads: admin::Downloads::default(),
        files: Mutex::new(()),
    });
    let api = Router::new()
        .route("/api/me", get(api::me))
        .route("/metrics", get(ops::metrics))
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
        .route("/api/templates", get(admin::list_templates))
        .route(
            "/api/templates/{name}",
            get(admin::show_template)
                .put(admin::save_template)
                .delete(admin::remove_template),
        )
        .route("/api/auth-strings", post(admin::generate_auth_strings))
        .route(
            "/api/auth-strings/csv/{id}",
            get(admin::download_auth_strings),
        )
        .route(
            "/api/online-ca",
            get(admin::show_online_ca).put(admin::set_online_ca),
        )
        .route("/api/trust", get(certs::list_trust))
        .route(
            "/api/trust/{purpose}",
            post(certs::upload_trust).layer(DefaultBodyLimit::max(MAX_CERTIFICATE_UPLOAD)),
        )
        .route(
            "/api/trust/{purpose}/{fingerprint}",
            delete(certs::delete_trust),
        )
        .route(
            "/api/capf-cert",
            get(certs::show_capf_cert)
                .put(certs::upload_capf_cert)
                .layer(DefaultBodyLimit::max(MAX_CERTIFICATE_UPLOAD)),
        )
        .route(
            "/api/capf-cert/regenerate",
            post(certs::regenerate_capf_cert),
        )
        .route("/api/csrs/export", get(certs::export_csrs))
        .route(
            "/api/certs/import",
            post(certs::import_certs).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        // Scheduled jobs (capfctl job list|show|cancel)
        .route("/api/jobs", get(scheduled::list_jobs))
        .route("/api/jobs/{id}", get(scheduled::show_job))
        .route("/api/jobs/{id}/cancel", post(scheduled::cancel_job))
        // LSC and certificate-request records (capfctl lsc revoke, stale-lsc delete, csr delete)
        .route("/api/lscs/{serial}/revoke", post(records::revoke_lsc))
        .route(
            "/api/reports/stale-lscs",
            delete(records::delete_stale_lscs),
        )
        .route("/api/csrs", delete(records::delete_all_csrs))
        .route("/api/csrs/{id}", delete(records::delete_csr))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::authenticate,
        ));
    let pages = pages::routes(&state);
    Ok(Router::new()
        .merge(pages)
        .merge(pages::ldap::routes(&state))
        .merge(ldap::routes(&state))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/api/login", post(auth::login))
        .merge(api)
        .fallback(|| async {
            error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such endpoint")
        })
        .with_state(state))
}
