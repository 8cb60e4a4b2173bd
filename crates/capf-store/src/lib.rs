#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod admin;
mod auth;
mod error;
mod schema;
mod settings;
mod sqlite;
mod store;
mod types;

pub use admin::{
    BulkChange, DeviceChange, DeviceQuery, DeviceTemplate, PendingCsr, Schedule, StatusKind,
    StatusReport,
};
pub use auth::{AUTH_KEY_LEN, AUTH_STRING_MAX_LEN, AUTH_STRING_MIN_LEN, is_valid_auth_string};
pub use error::Error;
pub use schema::SCHEMA_VERSION;
pub use settings::{KeepaliveMinutes, Settings};
pub use sqlite::SqliteStore;
pub use store::DeviceStore;
pub use types::{
    AttemptEnd, AuditEntry, AuthMode, Device, DeviceUpdate, FetchedCertificate, IssuedLsc,
    LscRecord, LscState, NewDevice, Operation, OperationStatus, TroubleshootResult,
};

/// The `action` names of [`AuditEntry`]: one per kind of change.
pub mod action {
    /// [`DeviceStore::add_device`](crate::DeviceStore::add_device).
    pub const DEVICE_ADDED: &str = "device added";
    /// [`DeviceStore::remove_device`](crate::DeviceStore::remove_device).
    pub const DEVICE_REMOVED: &str = "device removed";
    /// [`DeviceStore::update_device`](crate::DeviceStore::update_device).
    pub const DEVICE_UPDATED: &str = "device updated";
    /// [`DeviceStore::schedule`](crate::DeviceStore::schedule).
    pub const OPERATION_SCHEDULED: &str = "operation scheduled";
    /// [`DeviceStore::set_auth_string`](crate::DeviceStore::set_auth_string) with a string.
    pub const AUTH_STRING_SET: &str = "auth string set";
    /// [`DeviceStore::set_auth_string`](crate::DeviceStore::set_auth_string) with `None`.
    pub const AUTH_STRING_CLEARED: &str = "auth string cleared";
    /// [`DeviceStore::record_auth_failure`](crate::DeviceStore::record_auth_failure).
    pub const AUTH_FAILURE: &str = "auth failure";
    /// [`DeviceStore::begin_attempt`](crate::DeviceStore::begin_attempt).
    pub const ATTEMPT_BEGUN: &str = "attempt begun";
    /// [`DeviceStore::record_ec_key_generation_failure`](crate::DeviceStore::record_ec_key_generation_failure).
    pub const EC_KEY_GENERATION_FAILED: &str = "ec key generation failed";
    /// [`DeviceStore::record_lsc_issued`](crate::DeviceStore::record_lsc_issued).
    pub const LSC_ISSUED: &str = "lsc issued";
    /// [`DeviceStore::confirm_lsc_installed`](crate::DeviceStore::confirm_lsc_installed).
    pub const LSC_INSTALLED: &str = "lsc installed";
    /// [`DeviceStore::revoke_lsc`](crate::DeviceStore::revoke_lsc).
    pub const LSC_REVOKED: &str = "lsc revoked";
    /// [`DeviceStore::record_delete_done`](crate::DeviceStore::record_delete_done).
    pub const DELETE_DONE: &str = "delete done";
    /// [`DeviceStore::record_fetch_done`](crate::DeviceStore::record_fetch_done).
    pub const FETCH_DONE: &str = "fetch done";
    /// [`DeviceStore::end_attempt`](crate::DeviceStore::end_attempt) with
    /// [`AttemptEnd::Interrupted`](crate::AttemptEnd::Interrupted).
    pub const ATTEMPT_INTERRUPTED: &str = "attempt interrupted";
    /// [`DeviceStore::end_attempt`](crate::DeviceStore::end_attempt) with
    /// [`AttemptEnd::Failed`](crate::AttemptEnd::Failed).
    pub const ATTEMPT_FAILED: &str = "attempt failed";
    /// [`DeviceStore::mark_expired`](crate::DeviceStore::mark_expired).
    pub const OPERATION_EXPIRED: &str = "operation expired";
    /// [`DeviceStore::update_settings`](crate::DeviceStore::update_settings) and
    /// [`DeviceStore::set_keepalive`](crate::DeviceStore::set_keepalive).
    pub const SETTINGS_UPDATED: &str = "settings updated";
    /// [`DeviceStore::add_devices`](crate::DeviceStore::add_devices): one entry per device.
    pub const DEVICE_BULK_ADDED: &str = "device added in bulk";
    /// [`DeviceStore::update_devices`](crate::DeviceStore::update_devices): one entry per device.
    pub const DEVICE_BULK_UPDATED: &str = "device updated in bulk";
    /// [`DeviceStore::delete_stale_lscs`](crate::DeviceStore::delete_stale_lscs): one entry per
    /// LSC record deleted.
    pub const STALE_LSC_DELETED: &str = "stale lsc deleted";
    /// [`DeviceStore::revoke_expired_lscs`](crate::DeviceStore::revoke_expired_lscs): one entry
    /// per LSC.
    pub const EXPIRED_LSC_REVOKED: &str = "expired lsc revoked";
    /// [`DeviceStore::save_template`](crate::DeviceStore::save_template).
    pub const TEMPLATE_SAVED: &str = "device template saved";
    /// [`DeviceStore::remove_template`](crate::DeviceStore::remove_template).
    pub const TEMPLATE_REMOVED: &str = "device template removed";
    /// [`DeviceStore::add_pending_csr`](crate::DeviceStore::add_pending_csr).
    pub const CSR_RECEIVED: &str = "certificate request received";
    /// [`DeviceStore::remove_pending_csr`](crate::DeviceStore::remove_pending_csr).
    pub const CSR_REMOVED: &str = "certificate request removed";
}
