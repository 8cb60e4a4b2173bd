#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod account;
mod admin;
mod auth;
mod ca_request;
mod cluster;
mod data_dir;
mod error;
mod job;
mod online_ca;
#[cfg(feature = "postgres")]
pub mod postgres;
mod schema;
mod settings;
mod sqlite;
mod store;
mod types;
mod url;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use account::{
    ACCOUNT_NAME_MAX_LEN, Account, AccountName, ApiToken, NewAccount, Role, TOKEN_HASH_LEN,
};
pub use admin::{
    BulkChange, DeviceChange, DevicePage, DeviceQuery, DeviceTemplate, Schedule, StatusKind,
    StatusReport,
};
pub use auth::{
    AUTH_KEY_LEN, AUTH_STRING_MAX_LEN, AUTH_STRING_MIN_LEN, is_valid_auth_string,
    validate as validate_auth_string,
};
pub use ca_request::{CaRequest, CaRequestState, NewCaRequest};
/// The validated device name every method about a device takes (capf-wire's, re-exported).
pub use capf_lsc::{
    CertificateIssuer, EnrollmentLabel, OnlineCaConfig, OnlineCaHost, OnlineCaParams, OnlineCaType,
    Secret, SudiPolicy, ValidityDays,
};
pub use capf_wire::DeviceName;
pub use cluster::{CapfCertificate, NodeId};
pub use data_dir::{DATA_DIR_MODE, DATA_FILE_MODE, Tightened, secure_data_dir};
pub use error::Error;
pub use job::{
    DEFAULT_JOB_LEASE, DirectoryConfigRecord, DirectoryDevice, DirectoryEntry,
    DirectorySyncOutcome, DirectorySyncState, Job, JobResult, JobState, JobWork, NewJob,
};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use schema::SCHEMA_VERSION;
pub use settings::{KeepaliveMinutes, MAX_CA_RETRY_DELAY_SECS, Settings};
pub use sqlite::{SqliteStore, WriteStats};
pub use store::{AdminStore, DeviceStore, SessionStore};
pub use types::{
    AttemptEnd, AuditEntry, AuthMode, Device, DeviceUpdate, FetchedCertificate, IssuedLsc,
    LscRecord, LscState, NewDevice, Operation, OperationStatus, TroubleshootResult,
};
pub use url::{StoreUrl, open_node_store, open_store, store_password};

/// The `action` names of [`AuditEntry`]: one per kind of change.
pub mod action {
    /// [`AdminStore::add_device`](crate::AdminStore::add_device).
    pub const DEVICE_ADDED: &str = "device added";
    /// [`AdminStore::remove_device`](crate::AdminStore::remove_device).
    pub const DEVICE_REMOVED: &str = "device removed";
    /// [`AdminStore::update_device`](crate::AdminStore::update_device).
    pub const DEVICE_UPDATED: &str = "device updated";
    /// [`AdminStore::schedule`](crate::AdminStore::schedule).
    pub const OPERATION_SCHEDULED: &str = "operation scheduled";
    /// [`AdminStore::set_auth_string`](crate::AdminStore::set_auth_string) with a string.
    pub const AUTH_STRING_SET: &str = "auth string set";
    /// [`AdminStore::set_auth_string`](crate::AdminStore::set_auth_string) with `None`.
    pub const AUTH_STRING_CLEARED: &str = "auth string cleared";
    /// [`SessionStore::record_auth_failure`](crate::SessionStore::record_auth_failure).
    pub const AUTH_FAILURE: &str = "auth failure";
    /// [`SessionStore::record_refused_session`](crate::SessionStore::record_refused_session).
    pub const SESSION_REFUSED: &str = "session refused";
    /// [`SessionStore::begin_attempt`](crate::SessionStore::begin_attempt).
    pub const ATTEMPT_BEGUN: &str = "attempt begun";
    /// [`SessionStore::record_ec_key_generation_failure`](crate::SessionStore::record_ec_key_generation_failure).
    pub const EC_KEY_GENERATION_FAILED: &str = "ec key generation failed";
    /// [`SessionStore::record_lsc_issued`](crate::SessionStore::record_lsc_issued).
    pub const LSC_ISSUED: &str = "lsc issued";
    /// [`SessionStore::confirm_lsc_installed`](crate::SessionStore::confirm_lsc_installed).
    pub const LSC_INSTALLED: &str = "lsc installed";
    /// [`AdminStore::revoke_lsc`](crate::AdminStore::revoke_lsc).
    pub const LSC_REVOKED: &str = "lsc revoked";
    /// [`SessionStore::record_delete_done`](crate::SessionStore::record_delete_done).
    pub const DELETE_DONE: &str = "delete done";
    /// [`SessionStore::record_fetch_done`](crate::SessionStore::record_fetch_done).
    pub const FETCH_DONE: &str = "fetch done";
    /// [`SessionStore::end_attempt`](crate::SessionStore::end_attempt) with
    /// [`AttemptEnd::Interrupted`](crate::AttemptEnd::Interrupted).
    pub const ATTEMPT_INTERRUPTED: &str = "attempt interrupted";
    /// [`SessionStore::end_attempt`](crate::SessionStore::end_attempt) with
    /// [`AttemptEnd::Failed`](crate::AttemptEnd::Failed).
    pub const ATTEMPT_FAILED: &str = "attempt failed";
    /// [`SessionStore::mark_expired`](crate::SessionStore::mark_expired).
    pub const OPERATION_EXPIRED: &str = "operation expired";
    /// [`AdminStore::update_settings`](crate::AdminStore::update_settings) and
    /// [`AdminStore::set_keepalive`](crate::AdminStore::set_keepalive).
    pub const SETTINGS_UPDATED: &str = "settings updated";
    /// [`AdminStore::add_devices`](crate::AdminStore::add_devices): one entry per device.
    pub const DEVICE_BULK_ADDED: &str = "device added in bulk";
    /// [`AdminStore::update_devices`](crate::AdminStore::update_devices): one entry per device.
    pub const DEVICE_BULK_UPDATED: &str = "device updated in bulk";
    /// [`AdminStore::delete_stale_lscs`](crate::AdminStore::delete_stale_lscs): one entry per
    /// LSC record deleted.
    pub const STALE_LSC_DELETED: &str = "stale lsc deleted";
    /// [`AdminStore::revoke_expired_lscs`](crate::AdminStore::revoke_expired_lscs): one entry
    /// per LSC.
    pub const EXPIRED_LSC_REVOKED: &str = "expired lsc revoked";
    /// [`AdminStore::save_template`](crate::AdminStore::save_template).
    pub const TEMPLATE_SAVED: &str = "device template saved";
    /// [`AdminStore::remove_template`](crate::AdminStore::remove_template).
    pub const TEMPLATE_REMOVED: &str = "device template removed";
    /// [`SessionStore::record_ca_request`](crate::SessionStore::record_ca_request).
    pub const CA_REQUEST_RECORDED: &str = "ca request recorded";
    /// [`SessionStore::ca_request_issued`](crate::SessionStore::ca_request_issued).
    pub const CA_REQUEST_ISSUED: &str = "ca request issued";
    /// [`SessionStore::ca_request_failed`](crate::SessionStore::ca_request_failed).
    pub const CA_REQUEST_FAILED: &str = "ca request failed";
    /// [`AdminStore::delete_ca_request`](crate::AdminStore::delete_ca_request) and
    /// [`AdminStore::delete_ca_requests`](crate::AdminStore::delete_ca_requests): one entry
    /// per request.
    pub const CA_REQUEST_DELETED: &str = "ca request deleted";
    /// [`AdminStore::import_lscs`](crate::AdminStore::import_lscs): one entry per LSC.
    pub const LSC_IMPORTED: &str = "lsc imported";
    /// [`AdminStore::set_online_ca_config`](crate::AdminStore::set_online_ca_config) (the
    /// detail never shows the password).
    pub const ONLINE_CA_SET: &str = "online ca set";
    /// [`SessionStore::ca_request_pending`](crate::SessionStore::ca_request_pending).
    pub const CA_REQUEST_PENDING: &str = "ca request pending";
    /// [`AdminStore::add_account`](crate::AdminStore::add_account).
    pub const ACCOUNT_ADDED: &str = "account added";
    /// [`AdminStore::remove_account`](crate::AdminStore::remove_account).
    pub const ACCOUNT_REMOVED: &str = "account removed";
    /// [`AdminStore::record_login_failure`](crate::AdminStore::record_login_failure).
    pub const LOGIN_FAILED: &str = "login failed";
    /// [`AdminStore::record_login`](crate::AdminStore::record_login).
    pub const LOGIN: &str = "login";
    /// [`AdminStore::add_api_token`](crate::AdminStore::add_api_token).
    pub const API_TOKEN_CREATED: &str = "api token created";
    /// [`AdminStore::remove_api_token`](crate::AdminStore::remove_api_token).
    pub const API_TOKEN_REMOVED: &str = "api token removed";
    /// [`AdminStore::record_admin_action`](crate::AdminStore::record_admin_action): a
    /// certificate uploaded to a trust store (the web administration, capfctl).
    pub const TRUST_UPLOADED: &str = "trust certificate uploaded";
    /// [`AdminStore::record_admin_action`](crate::AdminStore::record_admin_action): a
    /// certificate deleted from a trust store.
    pub const TRUST_DELETED: &str = "trust certificate deleted";
    /// [`AdminStore::record_admin_action`](crate::AdminStore::record_admin_action): the CAPF
    /// certificate replaced by an uploaded one.
    pub const CAPF_CERTIFICATE_REPLACED: &str = "capf certificate replaced";
    /// [`AdminStore::record_admin_action`](crate::AdminStore::record_admin_action): the CAPF
    /// certificate regenerated (a new key and self-signed certificate).
    pub const CAPF_CERTIFICATE_REGENERATED: &str = "capf certificate regenerated";
    /// The cluster's CAPF certificate stored or replaced (the PostgreSQL store).
    pub const CAPF_CERTIFICATE_STORED: &str = "capf certificate stored";
    /// [`AdminStore::add_job`](crate::AdminStore::add_job).
    pub const JOB_SCHEDULED: &str = "job scheduled";
    /// [`AdminStore::cancel_job`](crate::AdminStore::cancel_job).
    pub const JOB_CANCELLED: &str = "job cancelled";
    /// [`AdminStore::claim_due_job`](crate::AdminStore::claim_due_job): a first claim, or a
    /// claim of a job whose node died or restarted while it ran (the detail says so).
    pub const JOB_STARTED: &str = "job started";
    /// [`AdminStore::finish_job`](crate::AdminStore::finish_job) and
    /// [`AdminStore::finish_job_with_work`](crate::AdminStore::finish_job_with_work).
    pub const JOB_FINISHED: &str = "job finished";
    /// [`AdminStore::release_running_jobs`](crate::AdminStore::release_running_jobs): a node
    /// restarted while the job ran; it will be claimed again.
    pub const JOB_RELEASED: &str = "job released";
    /// [`AdminStore::sync_directory`](crate::AdminStore::sync_directory): one entry per device
    /// registered.
    pub const DEVICE_DIRECTORY_ADDED: &str = "device added by directory sync";
    /// [`AdminStore::sync_directory`](crate::AdminStore::sync_directory): one entry per sync.
    pub const DIRECTORY_SYNCED: &str = "directory synced";
    /// [`AdminStore::set_directory_config`](crate::AdminStore::set_directory_config): the
    /// directory configuration stored (the detail never holds the password).
    pub const DIRECTORY_CONFIG_SET: &str = "directory configuration set";
}
