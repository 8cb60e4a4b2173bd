//! The records the store keeps: devices, operations, LSCs, troubleshoot results, audit entries.

use core::fmt;
use std::time::SystemTime;

use capf_lsc::{DeviceName, KeyOrder, KeyPolicy};

use crate::settings::Settings;

/// A certificate operation the administrator schedules for a device (UCM's "Certificate
/// Operation" field).
///
/// Stored in the `devices` table as text: column `operation` is `none`, `install_upgrade`,
/// `delete` or `troubleshoot`; for `install_upgrade` the key policy is in `key_order`
/// (`rsa_only`, `ec_only`, `ec_preferred_rsa_backup`), `key_size` (the RSA modulus size in bits:
/// 1024, 2048, 3072 or 4096) and `key_curve` (`P-256`, `P-384`, `P-521`), which are NULL for the
/// other operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// No Pending Operation.
    #[default]
    None,
    /// Install/Upgrade an LSC, asking the phone for a key as the policy says.
    InstallUpgrade(KeyPolicy),
    /// Delete the phone's LSC.
    Delete,
    /// Troubleshoot: fetch the phone's LSC (or MIC) for the administrator.
    Troubleshoot,
}

impl Operation {
    /// Whether this is [`Operation::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Operation::None)
    }
}

fn key_order_name(order: KeyOrder) -> &'static str {
    match order {
        KeyOrder::RsaOnly => "RSA Only",
        KeyOrder::EcOnly => "EC Only",
        KeyOrder::EcPreferredRsaBackup => "EC Preferred, RSA Backup",
    }
}

/// UCM's names: `No Pending Operation`, `Install/Upgrade (RSA Only, RSA 2048, P-256)`, `Delete`,
/// `Troubleshoot`.
impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::None => f.write_str("No Pending Operation"),
            Operation::InstallUpgrade(policy) => write!(
                f,
                "Install/Upgrade ({}, RSA {}, {})",
                key_order_name(policy.order),
                policy.rsa.bits(),
                policy.curve
            ),
            Operation::Delete => f.write_str("Delete"),
            Operation::Troubleshoot => f.write_str("Troubleshoot"),
        }
    }
}

/// How a phone proves who it is to CAPF (UCM's "Authentication Mode").
///
/// Stored as text in column `auth_mode`: `authentication_string`, `null_string`,
/// `existing_certificate_lsc_first` or `existing_certificate_mic_first`. The column has no
/// CHECK constraint, so a mode can be added without rebuilding the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMode {
    /// By Authentication String: the user keys in the device's one-time string.
    AuthenticationString,
    /// By Null String: no authentication.
    #[default]
    NullString,
    /// By Existing Certificate (Precedence to LSC): the phone proves itself with its LSC, or
    /// with its MIC when it has no valid LSC.
    ExistingCertificateLscFirst,
    /// By Existing Certificate (Precedence to MIC): the phone proves itself with its MIC, or
    /// with its LSC when it has no valid MIC.
    ExistingCertificateMicFirst,
}

impl AuthMode {
    pub(crate) fn as_db(self) -> &'static str {
        match self {
            AuthMode::AuthenticationString => "authentication_string",
            AuthMode::NullString => "null_string",
            AuthMode::ExistingCertificateLscFirst => "existing_certificate_lsc_first",
            AuthMode::ExistingCertificateMicFirst => "existing_certificate_mic_first",
        }
    }

    pub(crate) fn from_db(text: &str) -> Option<Self> {
        match text {
            "authentication_string" => Some(AuthMode::AuthenticationString),
            "null_string" => Some(AuthMode::NullString),
            "existing_certificate_lsc_first" => Some(AuthMode::ExistingCertificateLscFirst),
            "existing_certificate_mic_first" => Some(AuthMode::ExistingCertificateMicFirst),
            _ => None,
        }
    }
}

impl AuthMode {
    /// Every mode, in the order capfctl lists them.
    pub const ALL: [AuthMode; 4] = [
        AuthMode::NullString,
        AuthMode::AuthenticationString,
        AuthMode::ExistingCertificateLscFirst,
        AuthMode::ExistingCertificateMicFirst,
    ];

    /// The short name people type and read (capfctl, JSON, CSV): `null-string`,
    /// `auth-string`, `certificate-lsc-first`, `certificate-mic-first`. (UCM's long name is
    /// the `Display` text.)
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::NullString => "null-string",
            AuthMode::AuthenticationString => "auth-string",
            AuthMode::ExistingCertificateLscFirst => "certificate-lsc-first",
            AuthMode::ExistingCertificateMicFirst => "certificate-mic-first",
        }
    }
}

/// Parses the short name ([`AuthMode::as_str`]), UCM's name (`By Authentication String`, the
/// `Display` text) or the field's own words `authentication string`; case is ignored, and `-`,
/// `_` and spaces are alike.
impl core::str::FromStr for AuthMode {
    type Err = crate::Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], " ");
        let wanted = norm(name);
        let wanted = wanted.trim();
        AuthMode::ALL
            .into_iter()
            .find(|m| {
                norm(m.as_str()) == wanted
                    || norm(&m.to_string()) == wanted
                    || (*m == AuthMode::AuthenticationString && wanted == "authentication string")
            })
            .ok_or_else(|| crate::Error::UnknownName {
                what: "authentication mode",
                name: name.to_owned(),
            })
    }
}

/// UCM's names: `By Authentication String`, `By Null String`.
impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::AuthenticationString => "By Authentication String",
            AuthMode::NullString => "By Null String",
            AuthMode::ExistingCertificateLscFirst => "By Existing Certificate (Precedence to LSC)",
            AuthMode::ExistingCertificateMicFirst => "By Existing Certificate (Precedence to MIC)",
        })
    }
}

/// Where a device's operation stands.
///
/// Stored as text in column `status` (`none`, `pending`, `in_progress`, `success`, `failed`,
/// `expired`), with the failure reason in `failure_reason`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationStatus {
    /// Nothing scheduled.
    #[default]
    None,
    /// Scheduled, waiting for the phone to connect.
    Pending,
    /// A session for the operation has begun.
    InProgress,
    /// The operation succeeded (the operation is then [`Operation::None`]).
    Success,
    /// The last attempt failed; the operation stays scheduled, so the phone's next attempt
    /// retries it until the complete-by date passes.
    Failed {
        /// Why.
        reason: String,
    },
    /// The complete-by date passed before the operation succeeded.
    Expired,
}

impl OperationStatus {
    pub(crate) fn as_db(&self) -> &'static str {
        match self {
            OperationStatus::None => "none",
            OperationStatus::Pending => "pending",
            OperationStatus::InProgress => "in_progress",
            OperationStatus::Success => "success",
            OperationStatus::Failed { .. } => "failed",
            OperationStatus::Expired => "expired",
        }
    }

    pub(crate) fn failure_reason(&self) -> Option<&str> {
        match self {
            OperationStatus::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    pub(crate) fn from_db(text: &str, reason: Option<String>) -> Option<Self> {
        Some(match (text, reason) {
            ("none", None) => OperationStatus::None,
            ("pending", None) => OperationStatus::Pending,
            ("in_progress", None) => OperationStatus::InProgress,
            ("success", None) => OperationStatus::Success,
            ("failed", Some(reason)) => OperationStatus::Failed { reason },
            ("expired", None) => OperationStatus::Expired,
            _ => return None,
        })
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OperationStatus::None => f.write_str("None"),
            OperationStatus::Pending => f.write_str("Pending"),
            OperationStatus::InProgress => f.write_str("In Progress"),
            OperationStatus::Success => f.write_str("Success"),
            OperationStatus::Failed { reason } => write!(f, "Failed ({reason})"),
            OperationStatus::Expired => f.write_str("Expired"),
        }
    }
}

/// A registered device, as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The device name, as it was registered (lookups ignore case).
    pub name: DeviceName,
    /// The administrator's description.
    pub description: String,
    /// The device pool.
    pub device_pool: String,
    /// The model, such as "Cisco 8865".
    pub model: String,
    /// The scheduled certificate operation.
    pub operation: Operation,
    /// How the phone authenticates.
    pub auth_mode: AuthMode,
    /// Whether an authentication string is set (the string itself is only stored as an HMAC).
    pub has_auth_string: bool,
    /// The operation's complete-by date.
    pub complete_by: Option<SystemTime>,
    /// Where the operation stands.
    pub status: OperationStatus,
    /// Why the last attempt was interrupted or failed.
    pub last_error: Option<String>,
    /// Sessions begun for the current operation.
    pub attempts: u32,
    /// The phone reported an EC key-generation failure in an earlier attempt of this operation
    /// (pass it to [`KeyPolicy::key_to_request`], which then asks for RSA).
    pub ec_key_generation_failed: bool,
    /// Failed authentication-string attempts since the last successful one.
    pub auth_failures: u32,
    /// When the last failed authentication-string attempt was.
    pub last_auth_failure: Option<SystemTime>,
    /// When the device was last changed.
    pub updated_at: SystemTime,
}

impl Device {
    /// Whether the device has an operation to run: an operation other than
    /// [`Operation::None`] with status Pending, InProgress or Failed (a failed operation stays
    /// scheduled, so the phone's next attempt retries it).
    pub fn has_operation_to_run(&self) -> bool {
        !self.operation.is_none()
            && matches!(
                self.status,
                OperationStatus::Pending
                    | OperationStatus::InProgress
                    | OperationStatus::Failed { .. }
            )
    }

    /// Whether the complete-by date has passed at `now`.
    pub fn is_past_complete_by(&self, now: SystemTime) -> bool {
        self.complete_by.is_some_and(|by| by < now)
    }

    /// Whether authentication-string attempts are locked out at `now`: at least
    /// [`Settings::auth_failure_limit`] failures (0 disables the lockout), the last one less
    /// than [`Settings::auth_lockout`] ago.
    pub fn is_auth_locked_out(&self, settings: &Settings, now: SystemTime) -> bool {
        if settings.auth_failure_limit == 0 || self.auth_failures < settings.auth_failure_limit {
            return false;
        }
        match self.last_auth_failure {
            Some(last) => last
                .checked_add(settings.auth_lockout)
                .is_none_or(|until| now < until),
            None => false,
        }
    }
}

/// A device to register: [`NewDevice::new`] and then set the fields that matter.
#[derive(Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// The device name, validated where it was given (a form, a CSV file, a session).
    pub name: DeviceName,
    /// The administrator's description.
    pub description: String,
    /// The device pool.
    pub device_pool: String,
    /// The model.
    pub model: String,
    /// The operation to schedule (anything but [`Operation::None`] makes the status Pending).
    pub operation: Operation,
    /// How the phone authenticates.
    pub auth_mode: AuthMode,
    /// The one-time authentication string: 4 to 10 ASCII digits.
    pub auth_string: Option<String>,
    /// The operation's complete-by date.
    pub complete_by: Option<SystemTime>,
}

impl NewDevice {
    /// A device with this name, empty description, pool and model, no operation, the null
    /// string authentication mode, no authentication string and no complete-by date.
    pub fn new(name: DeviceName) -> Self {
        NewDevice {
            name,
            description: String::new(),
            device_pool: String::new(),
            model: String::new(),
            operation: Operation::None,
            auth_mode: AuthMode::NullString,
            auth_string: None,
            complete_by: None,
        }
    }
}

/// Shows every field but the authentication string, which is redacted.
impl fmt::Debug for NewDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewDevice")
            .field("name", &self.name)
            .field("description", &self.description)
            .field("device_pool", &self.device_pool)
            .field("model", &self.model)
            .field("operation", &self.operation)
            .field("auth_mode", &self.auth_mode)
            .field(
                "auth_string",
                &self.auth_string.as_ref().map(|_| "<redacted>"),
            )
            .field("complete_by", &self.complete_by)
            .finish()
    }
}

/// Changes to a device's descriptive fields: `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceUpdate {
    /// A new description.
    pub description: Option<String>,
    /// A new device pool.
    pub device_pool: Option<String>,
    /// A new model.
    pub model: Option<String>,
    /// A new authentication mode.
    pub auth_mode: Option<AuthMode>,
}

/// How an attempt (a session for a device's operation) ended without success.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptEnd {
    /// The attempt did not finish (the phone hung up, a timeout, the key-generation queue was
    /// full): the status goes back to Pending, the operation stays scheduled.
    Interrupted {
        /// Why, kept as the device's last error.
        reason: String,
    },
    /// The attempt failed: the status becomes Failed, the operation stays scheduled.
    Failed {
        /// Why, kept as the failure reason and the device's last error.
        reason: String,
    },
}

/// Where an LSC stands.
///
/// Stored as text in column `lscs.state`: `issued`, `installed`, `stale`, `superseded`,
/// `deleted`, `revoked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LscState {
    /// Signed and sent to the phone, not yet confirmed by it.
    Issued,
    /// The phone confirmed it stored the LSC (STORE_CERT_RESPONSE).
    Installed,
    /// Issued but never confirmed before the device was issued another (the guide's stale LSC).
    Stale,
    /// Was installed; a newer LSC was installed since.
    Superseded,
    /// The phone deleted it in a Delete operation.
    Deleted,
    /// Revoked by the administrator.
    Revoked,
}

impl LscState {
    /// The state's name, as stored: `issued`, `installed`, `stale`, `superseded`, `deleted`,
    /// `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            LscState::Issued => "issued",
            LscState::Installed => "installed",
            LscState::Stale => "stale",
            LscState::Superseded => "superseded",
            LscState::Deleted => "deleted",
            LscState::Revoked => "revoked",
        }
    }

    pub(crate) fn from_db(text: &str) -> Option<Self> {
        [
            LscState::Issued,
            LscState::Installed,
            LscState::Stale,
            LscState::Superseded,
            LscState::Deleted,
            LscState::Revoked,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for LscState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An LSC the CAPF server has just signed and sent to a phone: capf-lsc's, as capf-ca issued
/// it.
pub use capf_lsc::IssuedLsc;

/// An LSC the store knows about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LscRecord {
    /// The certificate's serial number (unique in the store).
    pub serial: Vec<u8>,
    /// The device it was issued to.
    pub device: DeviceName,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its notBefore.
    pub not_before: SystemTime,
    /// Its notAfter.
    pub not_after: SystemTime,
    /// When it was issued.
    pub issued_at: SystemTime,
    /// Where it stands.
    pub state: LscState,
    /// When the state last changed.
    pub state_changed_at: SystemTime,
}

impl LscRecord {
    /// The serial number in lower-case hex, as the store shows it.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }
}

pub(crate) use capf_lsc::hex;

/// The certificate a phone sent back in a Troubleshoot (Fetch) operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedCertificate {
    /// The certificate type byte: [`FetchedCertificate::LSC`] or [`FetchedCertificate::MIC`]
    /// (others are kept as sent).
    pub cert_type: u8,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl FetchedCertificate {
    /// Certificate type 1: a Locally Significant Certificate.
    pub const LSC: u8 = 1;
    /// Certificate type 2: a Manufacturer Installed Certificate.
    pub const MIC: u8 = 2;
}

/// The outcome of one Troubleshoot operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TroubleshootResult {
    /// The device.
    pub device: DeviceName,
    /// The certificate the phone sent, or `None` when it had none to send.
    pub certificate: Option<FetchedCertificate>,
    /// When the phone sent it.
    pub fetched_at: SystemTime,
}

/// One entry of the audit log: every change the store makes appends one, in the same
/// transaction as the change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When (the `now` of the call).
    pub at: SystemTime,
    /// The device concerned (`None` for settings and templates).
    pub device: Option<DeviceName>,
    /// What happened: one of the [`action`](crate::action) names.
    pub action: String,
    /// Details for people (never an authentication string).
    pub detail: String,
    /// Who made the change: the administrator account of a store handle from
    /// [`AdminStore::acting_as`](crate::AdminStore::acting_as); `None` for the server and for
    /// tools acting without an account.
    pub actor: Option<String>,
}

#[cfg(test)]
mod name_tests {
    use super::AuthMode;

    #[test]
    fn auth_mode_names_round_trip_and_accept_ucm_names() {
        for mode in AuthMode::ALL {
            assert_eq!(mode.as_str().parse::<AuthMode>().ok(), Some(mode));
            assert_eq!(mode.to_string().parse::<AuthMode>().ok(), Some(mode));
        }
        assert_eq!(
            "Authentication_String".parse::<AuthMode>().ok(),
            Some(AuthMode::AuthenticationString)
        );
        assert!("by certificate".parse::<AuthMode>().is_err());
    }
}
