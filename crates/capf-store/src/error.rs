//! The crate's error type.

use std::path::PathBuf;

use crate::CaRequestState;
use crate::types::{LscState, Operation, OperationStatus};

/// Everything that can go wrong in capf-store.
///
/// Each variant carries what went wrong and where: the file, the device, the serial, or what
/// the store was doing when the database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation on the data directory or the key file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What the store was doing, such as "creating the data directory".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The operating system's random number generator failed (creating the key file).
    #[error("the system random number generator failed: {source}")]
    Random {
        /// The getrandom error.
        source: getrandom::Error,
    },
    /// The HMAC key file is readable or writable by group or others.
    #[error(
        "refusing the authentication-string key file {}: its permissions are {mode:04o}, \
         but it must be accessible by its owner only (chmod 600)",
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The HMAC key file does not hold exactly 32 bytes (or is not a regular file).
    #[error(
        "the authentication-string key file {} holds {len} bytes, but must hold exactly 32 \
         (restore it from a backup: without it no stored authentication string can be checked)",
        path.display()
    )]
    KeyFileLength {
        /// The key file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// A SQLite call failed.
    #[error(
        "database error while {action}{}: {source}",
        device.as_ref().map(|d| format!(" (device {d})")).unwrap_or_default()
    )]
    Database {
        /// What the store was doing, such as "adding the device".
        action: &'static str,
        /// The device concerned, if any.
        device: Option<String>,
        /// The rusqlite error.
        source: rusqlite::Error,
    },
    /// A PostgreSQL call failed (the PostgreSQL store, feature `postgres`): the server refused
    /// a statement, or the connection failed or was lost.
    #[cfg(feature = "postgres")]
    #[error(
        "PostgreSQL error while {action}{}: {}",
        device.as_ref().map(|d| format!(" (device {d})")).unwrap_or_default(),
        crate::postgres::describe(source)
    )]
    Postgres {
        /// What the store was doing, such as "adding the device".
        action: &'static str,
        /// The device concerned, if any.
        device: Option<String>,
        /// The client's error.
        source: postgres::Error,
    },
    /// A store URL that cannot be used (see [`StoreUrl`](crate::StoreUrl)); the URL is shown
    /// without its password.
    #[error("the store URL {url} {reason}")]
    StoreUrl {
        /// The URL, its password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cluster's database was set up with another authentication-string key file: this
    /// node's stored authentication strings and sealed passwords would not check.
    #[error(
        "this node's authentication-string key file is not the one the cluster's database was \
         set up with: copy the key file ({}) of the first node to every node",
        crate::SqliteStore::KEY_FILE
    )]
    ClusterKeyMismatch,
    /// Another node runs an attempt for the device, and its lease has not run out: this node
    /// tells the phone to come back later.
    #[error("device {device} has an attempt in progress on node {node}")]
    AttemptOnAnotherNode {
        /// The device.
        device: String,
        /// The node whose lease holds the attempt.
        node: String,
    },
    /// SQLite's quick check found the database damaged ([`SqliteStore::check_integrity`]):
    /// serving from it would fail sessions one by one, so it is refused as a whole.
    ///
    /// [`SqliteStore::check_integrity`]: crate::SqliteStore::check_integrity
    #[error(
        "the database {} is damaged ({}{}): restore it from a backup, or recover it with \
         sqlite3's .recover",
        path.display(),
        problems.iter().take(3).cloned().collect::<Vec<_>>().join("; "),
        if problems.len() > 3 { format!("; and {} more", problems.len() - 3) } else { String::new() }
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What the check reported, one problem each.
        problems: Vec<String>,
    },
    /// The database was written by a newer version of capf-store.
    #[error(
        "the database has schema version {found}, newer than the {supported} this capf-store \
         understands: upgrade the software instead of opening it with this version"
    )]
    SchemaTooNew {
        /// The database's `PRAGMA user_version`.
        found: i64,
        /// The newest version this code can migrate to.
        supported: i64,
    },
    /// A value in the database that this code cannot read (edited by hand, or damaged).
    #[error("unreadable value {value:?} in {table}.{column}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column (or settings key).
        column: &'static str,
        /// The value, as text.
        value: String,
    },
    /// A device with this name (compared case-insensitively) is already registered.
    #[error("device {name} is already registered")]
    DuplicateDevice {
        /// The name given.
        name: String,
    },
    /// No device with this name is registered.
    #[error("device {name} is not registered")]
    UnknownDevice {
        /// The name given.
        name: String,
    },
    /// An authentication string that breaks UCM's rule. The string itself is never shown.
    #[error(
        "the authentication string for {device} must be 4 to 10 ASCII digits (0-9); the one \
         given has {len} characters{}",
        if *all_digits { "" } else { ", not all of them digits" }
    )]
    InvalidAuthString {
        /// The device.
        device: String,
        /// Its length in characters.
        len: usize,
        /// Whether every character was an ASCII digit.
        all_digits: bool,
    },
    /// A keepalive timer outside the guide's range.
    #[error(
        "a CAPF keepalive of {minutes} minutes is outside the allowed range of 5 to 60 minutes"
    )]
    KeepaliveOutOfRange {
        /// The rejected value.
        minutes: u64,
    },
    /// No run-time setting has this key (see [`Settings::KEYS`](crate::Settings::KEYS)).
    #[error("no setting is named {key}")]
    UnknownSetting {
        /// The key given.
        key: String,
    },
    /// A setting's value is not a number in its range.
    #[error("{value} is not a valid value for the setting {key}")]
    InvalidSetting {
        /// The setting.
        key: &'static str,
        /// The value given.
        value: String,
    },
    /// The device has no operation to run, so no session can begin one.
    #[error("device {device} has no operation to run (operation {operation}, status {status})")]
    NoOperationToRun {
        /// The device.
        device: String,
        /// Its operation.
        operation: Operation,
        /// Its status.
        status: OperationStatus,
    },
    /// An issued LSC record that cannot be stored.
    #[error("cannot record LSC {serial} for device {device}: {reason}")]
    InvalidLsc {
        /// The serial number, in hex.
        serial: String,
        /// The device.
        device: String,
        /// Why.
        reason: &'static str,
    },
    /// An LSC with this serial number is already recorded.
    #[error("an LSC with serial {serial} is already recorded (for device {owner})")]
    DuplicateSerial {
        /// The serial number, in hex.
        serial: String,
        /// The device it was issued to.
        owner: String,
    },
    /// No LSC with this serial number is recorded.
    #[error("no LSC with serial {serial} is recorded")]
    UnknownLsc {
        /// The serial number, in hex.
        serial: String,
    },
    /// The LSC was issued to another device.
    #[error("LSC {serial} was issued to device {owner}, not to {device}")]
    LscOfAnotherDevice {
        /// The serial number, in hex.
        serial: String,
        /// The device named in the call.
        device: String,
        /// The device the LSC was issued to.
        owner: String,
    },
    /// The LSC is not in the state the call needs.
    #[error("LSC {serial} is {state}, so it cannot be {wanted}")]
    LscWrongState {
        /// The serial number, in hex.
        serial: String,
        /// Its state.
        state: LscState,
        /// What the call wanted to do, such as "confirmed as installed".
        wanted: &'static str,
    },
    /// One item of a bulk call failed, so nothing of the call was applied.
    #[error("item {index} (counting from 0): {source}")]
    BulkItem {
        /// The item's position in the call's input, from 0.
        index: usize,
        /// What was wrong with it.
        source: Box<Error>,
    },
    /// No device template with this name is stored.
    #[error("device template {name} does not exist")]
    UnknownTemplate {
        /// The name given.
        name: String,
    },
    /// A device template needs a name.
    #[error("a device template needs a name")]
    EmptyTemplateName,
    /// No request to an external CA with this number is stored.
    #[error("no certificate request number {id}")]
    UnknownCsr {
        /// The number given.
        id: i64,
    },
    /// The request to an external CA is not in the state the call needs (a certificate for a
    /// request that is not Pending, for instance).
    #[error("certificate request {id} is {state}, so it cannot be {wanted}")]
    CaRequestWrongState {
        /// The request's number.
        id: i64,
        /// Its state.
        state: CaRequestState,
        /// What the call wanted to do, such as "given a certificate".
        wanted: &'static str,
    },
    /// A request to an external CA that cannot be recorded.
    #[error("cannot record a certificate request for device {device}: {reason}")]
    InvalidCaRequest {
        /// The device.
        device: String,
        /// Why.
        reason: &'static str,
    },
    /// The stored Online CA settings do not pass their rules any more (capf-lsc's check).
    #[error("the stored Online CA settings are unreadable: {source}")]
    OnlineCaConfig {
        /// What capf-lsc reported.
        #[source]
        source: capf_lsc::Error,
    },
    /// The stored Online CA password cannot be unsealed: the data directory's key file is not
    /// the one it was sealed under (a database copied without its key file), or it was altered.
    #[error(
        "the stored Online CA password cannot be unsealed (the data directory's key file is not the one it was sealed under): set it again with `capfctl online-ca set`"
    )]
    SealedPassword,
    /// No job with this number is stored.
    #[error("job {id} does not exist")]
    UnknownJob {
        /// The number given.
        id: i64,
    },
    /// The job is not in the state the call needs (cancelling one that already ran, say).
    #[error("job {id} is {state}, so it cannot be {wanted}")]
    JobWrongState {
        /// The job's number.
        id: i64,
        /// Its state.
        state: crate::JobState,
        /// What the call wanted to do, such as "cancelled".
        wanted: &'static str,
    },
    /// The job is Running under another claim than the caller's: its lease ran out and another
    /// node (or this one, restarted) claimed it again. The caller's run records nothing.
    #[error("job {id} was claimed again (by {node}) after this run's lease ran out")]
    JobClaimLost {
        /// The job's number.
        id: i64,
        /// The node holding it now.
        node: String,
    },
    /// A singleton job of this kind is already Scheduled or Running.
    #[error("a {kind} job is already scheduled")]
    JobAlreadyScheduled {
        /// The job's kind.
        kind: String,
    },
    /// A job that cannot be stored (an empty kind).
    #[error("invalid job: {reason}")]
    InvalidJob {
        /// Why.
        reason: &'static str,
    },
    /// A name that is none of an enum's names (`FromStr` of [`AuthMode`](crate::AuthMode) or
    /// [`StatusKind`](crate::StatusKind)).
    #[error("unknown {what} {name:?}")]
    UnknownName {
        /// What was named, such as "authentication mode".
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// An administrator account name that breaks the rule (1 to 64 ASCII letters, digits, `.`,
    /// `_`, `-`, `@`).
    #[error("account name {name:?} must be 1 to 64 ASCII letters, digits, '.', '_', '-' or '@'")]
    InvalidAccountName {
        /// The name given (at most 64 characters of it).
        name: String,
    },
    /// An administrator account with this name (compared ignoring case) already exists.
    #[error("account {name} already exists")]
    DuplicateAccount {
        /// The name given.
        name: String,
    },
    /// No administrator account with this name exists.
    #[error("account {name} does not exist")]
    UnknownAccount {
        /// The name given.
        name: String,
    },
    /// An account or token record the store refuses: an empty password hash, a token hash that
    /// is not 32 bytes.
    #[error("invalid account record: {reason}")]
    InvalidAccount {
        /// What is wrong.
        reason: &'static str,
    },
}

impl Error {
    /// A `map_err` adapter for rusqlite errors outside any one device.
    pub(crate) fn db(action: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| Error::Database {
            action,
            device: None,
            source,
        }
    }

    /// A `map_err` adapter for rusqlite errors about one device.
    pub(crate) fn db_device<'a>(
        action: &'static str,
        device: &'a str,
    ) -> impl FnOnce(rusqlite::Error) -> Error + 'a {
        move |source| Error::Database {
            action,
            device: Some(device.to_owned()),
            source,
        }
    }
}

impl Error {
    /// Whether the database could not be reached (a PostgreSQL connection lost or refused,
    /// rather than the database refusing a statement): the same call can succeed once the
    /// database is back.
    pub fn is_unreachable(&self) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            // No answer from a server, or its connection ended by the server going away
            // (SQLSTATE classes 08, connection exception, and 57P, operator intervention).
            Error::Postgres { source, .. } => source.as_db_error().is_none_or(|db| {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P")
            }),
            _ => false,
        }
    }

    /// Whether this refuses one CA certificate rather than failing the store: the request is
    /// unknown or not Pending, or the LSC is invalid or its serial taken
    /// ([`crate::SessionStore::ca_requests_issued`] goes on with the others after one).
    pub fn is_ca_request_refusal(&self) -> bool {
        matches!(
            self,
            Error::UnknownCsr { .. }
                | Error::CaRequestWrongState { .. }
                | Error::InvalidLsc { .. }
                | Error::DuplicateSerial { .. }
        )
    }
}

impl Error {
    /// A `map_err` for a file-system call: the I/O error of `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
