//! Views of the store's records for people and programs: serde types whose JSON is capfctl's
//! `--json` output (field order kept), and the texts CSV and PEM come from.

use capf_lsc::DeviceName;
use capf_store::{
    AuditEntry, CaRequest, Device, DeviceTemplate, LscRecord, Operation, OperationStatus,
    StatusKind,
};
use serde::Serialize;

use crate::names::{OperationKind, key_order_name};
use crate::time::{rfc3339, rfc3339_opt};

/// An operation with short, stable names: `{"type": "install", "key_order": "rsa-only",
/// "rsa_bits": 2048, "curve": "P-256"}`, `{"type": "delete"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperationView {
    /// `none`, `install`, `delete`, `troubleshoot`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For install: the key order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_order: Option<&'static str>,
    /// For install: the RSA key size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_bits: Option<u16>,
    /// For install: the EC curve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curve: Option<&'static str>,
}

impl From<&Operation> for OperationView {
    fn from(op: &Operation) -> Self {
        let kind = OperationKind::of(op).map_or_else(|| op.to_string(), |k| k.as_str().to_owned());
        let policy = match op {
            Operation::InstallUpgrade(policy) => Some(policy),
            _ => None,
        };
        OperationView {
            kind,
            key_order: policy.map(|p| key_order_name(p.order)),
            rsa_bits: policy.map(|p| p.rsa.bits()),
            curve: policy.map(|p| p.curve.name()),
        }
    }
}

/// A device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceView {
    /// The device name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The device pool.
    pub device_pool: String,
    /// The model.
    pub model: String,
    /// The operation.
    pub operation: OperationView,
    /// The operation in UCM's words.
    pub operation_text: String,
    /// The status ([`StatusKind::label`]).
    pub status: &'static str,
    /// Why the last attempt failed, when the status is failed.
    pub failure_reason: Option<String>,
    /// The authentication mode ([`AuthMode::as_str`](capf_store::AuthMode::as_str)).
    pub auth_mode: &'static str,
    /// Whether an authentication string is set.
    pub has_auth_string: bool,
    /// The complete-by date, RFC 3339.
    pub complete_by: Option<String>,
    /// Sessions begun for the operation.
    pub attempts: u32,
    /// The last error.
    pub last_error: Option<String>,
    /// Whether the phone failed to generate an EC key.
    pub ec_key_generation_failed: bool,
    /// Failed authentication-string attempts.
    pub auth_failures: u32,
    /// The last failed authentication-string attempt, RFC 3339.
    pub last_auth_failure: Option<String>,
    /// The last change, RFC 3339.
    pub updated_at: String,
}

impl From<&Device> for DeviceView {
    fn from(d: &Device) -> Self {
        DeviceView {
            name: d.name.to_string(),
            description: d.description.clone(),
            device_pool: d.device_pool.clone(),
            model: d.model.clone(),
            operation: (&d.operation).into(),
            operation_text: d.operation.to_string(),
            status: StatusKind::of(&d.status).label(),
            failure_reason: match &d.status {
                OperationStatus::Failed { reason } => Some(reason.clone()),
                _ => None,
            },
            auth_mode: d.auth_mode.as_str(),
            has_auth_string: d.has_auth_string,
            complete_by: rfc3339_opt(d.complete_by),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            ec_key_generation_failed: d.ec_key_generation_failed,
            auth_failures: d.auth_failures,
            last_auth_failure: rfc3339_opt(d.last_auth_failure),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// One LSC of a device (its device is the one shown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceLscView {
    /// The serial number, hex.
    pub serial: String,
    /// The state ([`LscState::as_str`](capf_store::LscState::as_str)).
    pub state: &'static str,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// When its state last changed, RFC 3339.
    pub state_changed_at: String,
}

impl From<&LscRecord> for DeviceLscView {
    fn from(l: &LscRecord) -> Self {
        DeviceLscView {
            serial: l.serial_hex(),
            state: l.state.as_str(),
            not_before: rfc3339(l.not_before),
            not_after: rfc3339(l.not_after),
            issued_at: rfc3339(l.issued_at),
            state_changed_at: rfc3339(l.state_changed_at),
        }
    }
}

/// An LSC record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LscView {
    /// The serial number, hex.
    pub serial: String,
    /// The device it was issued to.
    pub device: String,
    /// The state ([`LscState::as_str`](capf_store::LscState::as_str)).
    pub state: &'static str,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// When its state last changed, RFC 3339.
    pub state_changed_at: String,
}

impl From<&LscRecord> for LscView {
    fn from(l: &LscRecord) -> Self {
        LscView {
            serial: l.serial_hex(),
            device: l.device.to_string(),
            state: l.state.as_str(),
            not_before: rfc3339(l.not_before),
            not_after: rfc3339(l.not_after),
            issued_at: rfc3339(l.issued_at),
            state_changed_at: rfc3339(l.state_changed_at),
        }
    }
}

/// An audit entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditView {
    /// When, RFC 3339.
    pub at: String,
    /// What happened (a [`capf_store::action`] name).
    pub action: String,
    /// Details.
    pub detail: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(a: &AuditEntry) -> Self {
        AuditView {
            at: rfc3339(a.at),
            action: a.action.clone(),
            detail: a.detail.clone(),
        }
    }
}

/// A device with its LSCs and its latest audit entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceDetailView {
    /// The device.
    #[serde(flatten)]
    pub device: DeviceView,
    /// Its LSCs.
    pub lscs: Vec<DeviceLscView>,
    /// Its latest audit entries, newest first.
    pub audit: Vec<AuditView>,
}

/// A device template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TemplateView {
    /// The template's name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The device pool.
    pub device_pool: String,
    /// The model.
    pub model: String,
    /// The operation.
    pub operation: OperationView,
    /// The authentication mode.
    pub auth_mode: &'static str,
    /// The complete-by date, RFC 3339.
    pub complete_by: Option<String>,
}

impl From<&DeviceTemplate> for TemplateView {
    fn from(t: &DeviceTemplate) -> Self {
        TemplateView {
            name: t.name.clone(),
            description: t.description.clone(),
            device_pool: t.device_pool.clone(),
            model: t.model.clone(),
            operation: (&t.operation).into(),
            auth_mode: t.auth_mode.as_str(),
            complete_by: rfc3339_opt(t.complete_by),
        }
    }
}

/// A request to an external CA (the guide's `csr list`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CsrView {
    /// The request id (the Offline CA's request id, in exported file names).
    pub id: i64,
    /// The device that sent it.
    pub device: String,
    /// The mode that took it: `online-ca` or `offline-ca`.
    pub mode: &'static str,
    /// Where it stands: `pending`, `issued`, `delivered`, `stale`, `failed`.
    pub state: &'static str,
    /// When the phone's CSR was recorded, RFC 3339.
    pub received_at: String,
    /// When the state last changed, RFC 3339.
    pub state_changed_at: String,
    /// The CSR's size in bytes.
    pub bytes: usize,
    /// The key type (`Ec(P256)`, `Rsa(B2048)`), or `unknown` when the key does not parse.
    pub key: String,
    /// The SHA-256 of the phone's SubjectPublicKeyInfo DER, hex: what an imported
    /// certificate is matched by.
    pub public_key_sha256: String,
    /// The CA's own request id (Online CA), if any.
    pub ca_request_id: Option<String>,
    /// The serial of the LSC it became, hex, once issued.
    pub lsc_serial: Option<String>,
    /// Why it failed, when failed.
    pub failure: Option<String>,
}

impl From<&CaRequest> for CsrView {
    fn from(c: &CaRequest) -> Self {
        CsrView {
            id: c.id,
            device: c.device.to_string(),
            mode: c.mode.as_str(),
            state: c.state.as_str(),
            received_at: rfc3339(c.received_at),
            state_changed_at: rfc3339(c.state_changed_at),
            bytes: c.csr.len(),
            key: capf_lsc::PhonePublicKey::from_der(&c.public_key)
                .map_or_else(|_| "unknown".to_owned(), |k| format!("{:?}", k.spec())),
            public_key_sha256: capf_trust::Fingerprint::of(&c.public_key).to_string(),
            ca_request_id: c.ca_request_id.clone(),
            lsc_serial: c.lsc_serial.as_deref().map(capf_lsc::hex),
            failure: c.failure.clone(),
        }
    }
}

/// A device whose operation failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailedDeviceView {
    /// The device.
    pub name: String,
    /// Its operation, in UCM's words.
    pub operation: String,
    /// Why it failed.
    pub reason: String,
}

/// A device whose operation is past its complete-by date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PastCompleteByView {
    /// The device.
    pub name: String,
    /// Its operation, in UCM's words.
    pub operation: String,
    /// Its complete-by date, RFC 3339.
    pub complete_by: Option<String>,
}

/// The operation status report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// Operations waiting for the phone.
    pub pending: u64,
    /// Operations whose session has begun.
    pub in_progress: u64,
    /// Operations that succeeded.
    pub succeeded: u64,
    /// Operations whose last attempt failed.
    pub failed: u64,
    /// Operations marked Expired.
    pub expired: u64,
    /// Devices with no operation.
    pub no_operation: u64,
    /// Operations past their complete-by date, not yet marked Expired.
    pub past_complete_by: u64,
    /// The failed devices.
    pub failed_devices: Vec<FailedDeviceView>,
    /// The devices past their complete-by date.
    pub past_complete_by_devices: Vec<PastCompleteByView>,
}

/// An exported LSC: its record and its PEM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedLscView {
    /// The record.
    #[serde(flatten)]
    pub lsc: LscView,
    /// The certificate, PEM.
    pub pem: String,
}

/// One device changed (or that would change) by a bulk update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeView {
    /// The device.
    pub name: String,
    /// What changed.
    pub change: String,
}

/// The result of a bulk update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BulkUpdateView {
    /// Whether nothing was written.
    pub dry_run: bool,
    /// How many devices changed (or would).
    pub changed: usize,
    /// Each device's change.
    pub devices: Vec<ChangeView>,
}

/// The result of a bulk insert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BulkInsertView {
    /// The CSV file.
    pub file: String,
    /// How many devices were added.
    pub added: usize,
    /// The device template applied.
    pub template: Option<String>,
}

/// A device and its new authentication string (shown once).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AuthStringView {
    /// The device (as registered: the store takes it back without parsing it again).
    #[serde(serialize_with = "name_as_str")]
    pub name: DeviceName,
    /// Its authentication string.
    pub auth_string: String,
}

/// A device name in JSON: its text.
fn name_as_str<S: serde::Serializer>(name: &DeviceName, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(name)
}

impl core::fmt::Debug for AuthStringView {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AuthStringView")
            .field("name", &self.name)
            .field("auth_string", &"<redacted>")
            .finish()
    }
}

/// The authentication strings generated, and the CSV file they were written to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthStringsView {
    /// The CSV file.
    pub csv: String,
    /// Each device's string.
    pub devices: Vec<AuthStringView>,
}

/// The monitor's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonitorView {
    /// The look-ahead in days.
    pub days: u32,
    /// The LSCs expiring within it.
    pub expiring: Vec<LscView>,
    /// The expired LSCs marked revoked now.
    pub revoked: Vec<LscView>,
    /// Whether the notification was sent.
    pub mailed: bool,
}

/// A CRL written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrlView {
    /// Where it was written.
    pub out: Option<String>,
    /// thisUpdate, RFC 3339.
    pub this_update: String,
    /// nextUpdate, RFC 3339.
    pub next_update: String,
    /// The revoked serials, hex.
    pub revoked: Vec<String>,
    /// The CRL, PEM.
    pub pem: String,
}

/// Something removed, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemovedView {
    /// Its name.
    pub removed: String,
}

/// How many records were deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeletedView {
    /// How many.
    pub deleted: usize,
}

/// One run-time setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettingView {
    /// Its key (`max_sessions`, `auth_response_timeout_seconds`, ...).
    pub key: &'static str,
    /// Its value, in decimal text (or the mode's name).
    pub value: String,
    /// The guide's name for it, where that helps (the certificate issuer mode's label, the
    /// Duration Of Certificate Validity); absent from JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl SettingView {
    /// The view of one setting row.
    pub fn new(key: &'static str, value: String) -> Self {
        use capf_store::Settings;
        let note = match key {
            Settings::CERTIFICATE_ISSUER_KEY => value
                .parse::<capf_lsc::CertificateIssuer>()
                .ok()
                .map(|m| format!("Certificate Issuer to Endpoint: {}", m.label())),
            Settings::LSC_VALIDITY_DAYS_KEY => {
                Some("Duration Of Certificate Validity, in days".to_owned())
            }
            Settings::CA_RETRY_DELAY_KEY => {
                Some("a phone whose request is pending comes back after this".to_owned())
            }
            _ => None,
        };
        SettingView { key, value, note }
    }
}

/// The CAPF keepalive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct KeepaliveView {
    /// Minutes, 5 to 60.
    pub keepalive_minutes: u32,
}
