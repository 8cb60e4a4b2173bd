#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod auth_string;
pub mod bulk;
mod device;
mod error;
mod files;
mod names;
mod progress;
mod query;
mod reports;
mod time;
mod views;

pub use auth_string::{
    AuthStringLength, DeviceSelection, auth_strings_csv, generate_auth_strings, random_digits,
    set_auth_strings,
};
pub use bulk::{
    BulkInsert, COLUMNS, ChangeParams, CsvDevices, TemplateParams, insert_devices_csv,
    parse_key_spec, read_devices_csv, update_devices,
};
pub use device::{
    AUDIT_ENTRIES, DeviceDetail, DeviceEdit, add_device, check_auth_string, check_device_name,
    check_new_device, device_detail, list_devices, lookup_name, new_device_auth_mode,
    require_device, schedule_device,
};
pub use error::{DateProblem, Error};
pub use files::{open_existing_store, open_store, random_serial, read_text, write_new_file};
pub use names::{
    KEY_ORDERS, KeyChoice, OperationKind, key_order_name, parse_curve, parse_key_order,
    parse_rsa_bits,
};
#[cfg(feature = "terminal")]
pub use progress::TerminalProgress;
pub use progress::{NoProgress, Progress};
pub use query::DeviceFilter;
pub use reports::{
    Crl, LscSelection, MonitorReport, SmtpRelay, export_csv, export_pem, export_views, keepalive,
    load_issuer, lsc_pem, monitor, parse_serial, revoked_lscs_crl, select_lscs, send_notification,
    set_keepalive, set_setting, settings, status_report,
};
pub use time::{complete_by, day_start, parse_ymd, rfc3339, rfc3339_opt};
pub use views::{
    AuditView, AuthStringView, AuthStringsView, BulkInsertView, BulkUpdateView, ChangeView,
    CrlView, CsrView, DeletedView, DeviceDetailView, DeviceLscView, DeviceView, ExportedLscView,
    FailedDeviceView, KeepaliveView, LscView, MonitorView, OperationView, PastCompleteByView,
    RemovedView, SettingView, StatusView, TemplateView,
};

/// An error and its causes on one line, `outer: cause: cause`, as capfctl prints them.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
