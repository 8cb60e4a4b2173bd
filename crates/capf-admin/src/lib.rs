#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod accounts;
mod auth_string;
pub mod bulk;
mod certificates;
pub mod csr;
mod device;
mod error;
mod files;
pub mod jobs;
pub mod ldap;
mod load;
mod names;
mod online_ca;
mod progress;
mod query;
mod reports;
mod time;
mod trust;
mod views;
pub mod wire;

pub use auth_string::{
    AuthStringLength, DeviceSelection, auth_strings_csv, generate_auth_strings, random_digits,
    set_auth_strings,
};
pub use bulk::{
    BulkInsert, COLUMNS, ChangeParams, CsvDevices, TemplateParams, insert_devices_csv,
    insert_devices_csv_from, parse_key_spec, read_devices_csv, update_devices,
};
pub use certificates::{
    CapfCertificateRequest, NamedFile, capf_csr_pem, check_capf_certificate,
    generate_capf_certificate, issue_lsc_pem, parse_capf_id, read_certificate_and_key, read_issuer,
    read_public_key,
};
pub use device::{
    AUDIT_ENTRIES, DeviceDetail, DeviceEdit, add_device, check_auth_string, check_device_name,
    check_new_device, device_detail, device_page, list_devices, lookup_name, new_device_auth_mode,
    require_device, schedule_device,
};
pub use error::{DateProblem, Error};
pub use files::{open_existing_store, open_store, random_serial, read_text, write_new_file};
pub use load::{add_demo_devices, count_installed, provision_load_devices};
pub use names::{
    KEY_ORDERS, KeyChoice, OperationKind, key_order_name, parse_curve, parse_key_order,
    parse_rsa_bits,
};
pub use online_ca::{
    OnlineCaView, check_online_ca_key_orders, check_operation, confirm_bootstrap_root, online_ca,
    save_template, set_online_ca,
};
#[cfg(feature = "terminal")]
pub use progress::TerminalProgress;
pub use progress::{NoProgress, Progress};
pub use query::DeviceFilter;
pub use reports::{
    Crl, LscSelection, MonitorReport, SmtpRelay, export_csv, export_pem, export_views, keepalive,
    load_issuer, lsc_pem, monitor, parse_serial, revoke_lsc, revoked_lscs_crl, select_lscs,
    send_notification, set_keepalive, set_setting, settings, status_report,
};
pub use time::{complete_by, day_start, parse_rfc3339, parse_ymd, rfc3339, rfc3339_opt};
pub use trust::{
    OpenTrustStore, TrustCertView, check_verdicts, describe_certificate, read_certificate,
    read_certificates, verdict_text,
};
pub use views::{
    AuditView, AuthStringView, AuthStringsView, BulkInsertView, BulkUpdateView, ChangeView,
    CrlView, CsrView, DeletedView, DeviceDetailView, DeviceLscView, DeviceView, ExportedLscView,
    FailedDeviceView, KeepaliveView, LscView, MonitorView, OperationView, PastCompleteByView,
    RemovedView, SettingView, StatusView, TemplateView,
};

/// An error and its causes on one line, `outer: cause: cause`, as capfctl and capfd print them.
/// A cause whose text the line already ends with is left out: some layers' messages embed their
/// cause (for the log's sake), and a line says each cause once.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
