//! The records of administration in bulk: device queries, bulk changes, status reports and
//! device templates.

use core::fmt;
use std::time::SystemTime;

use capf_lsc::DeviceName;

use crate::DeviceUpdate;
use crate::types::{AuthMode, NewDevice, Operation, OperationStatus};

/// An operation status without its details (the failure reason): what a query filters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusKind {
    /// Nothing scheduled.
    None,
    /// Scheduled, waiting for the phone.
    Pending,
    /// A session for the operation has begun.
    InProgress,
    /// The operation succeeded.
    Success,
    /// The last attempt failed.
    Failed,
    /// The complete-by date passed.
    Expired,
}

impl StatusKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [StatusKind; 6] = [
        StatusKind::None,
        StatusKind::Pending,
        StatusKind::InProgress,
        StatusKind::Success,
        StatusKind::Failed,
        StatusKind::Expired,
    ];

    /// The kind of `status`.
    pub fn of(status: &OperationStatus) -> StatusKind {
        match status {
            OperationStatus::None => StatusKind::None,
            OperationStatus::Pending => StatusKind::Pending,
            OperationStatus::InProgress => StatusKind::InProgress,
            OperationStatus::Success => StatusKind::Success,
            OperationStatus::Failed { .. } => StatusKind::Failed,
            OperationStatus::Expired => StatusKind::Expired,
        }
    }

    /// The name as stored in column `devices.status`: `none`, `pending`, `in_progress`,
    /// `success`, `failed`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::None => "none",
            StatusKind::Pending => "pending",
            StatusKind::InProgress => "in_progress",
            StatusKind::Success => "success",
            StatusKind::Failed => "failed",
            StatusKind::Expired => "expired",
        }
    }
}

impl StatusKind {
    /// The name people type and read (capfctl, JSON, CSV): [`as_str`](Self::as_str) with `-`
    /// for `_` (`in-progress`).
    pub fn label(self) -> &'static str {
        match self {
            StatusKind::InProgress => "in-progress",
            other => other.as_str(),
        }
    }
}

/// Parses a [`label`](StatusKind::label) or a stored name ([`as_str`](StatusKind::as_str)).
impl core::str::FromStr for StatusKind {
    type Err = crate::Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        StatusKind::ALL
            .into_iter()
            .find(|k| k.label() == name || k.as_str() == name)
            .ok_or_else(|| crate::Error::UnknownName {
                what: "operation status",
                name: name.to_owned(),
            })
    }
}

impl fmt::Display for StatusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which devices a bulk change, a listing or an export is about: a device matches when it
/// matches every filter that is set (the default matches every device).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceQuery {
    /// A name pattern: `*` matches any run of characters, `?` any one character; letters
    /// match either case (as device names do).
    pub name_pattern: Option<String>,
    /// The device pool, exactly.
    pub device_pool: Option<String>,
    /// The model, exactly.
    pub model: Option<String>,
    /// The operation status.
    pub status: Option<StatusKind>,
    /// Devices with an Installed LSC whose notAfter is before this time ("phones whose LSC
    /// expires before DATE").
    pub lsc_expires_before: Option<SystemTime>,
    /// Devices with an operation to run (Pending, InProgress or Failed) whose complete-by date
    /// is before this time (pass the current time for "past complete-by").
    pub complete_by_before: Option<SystemTime>,
}

/// A value of a device query's WHERE clause, for either backend to bind.
pub(crate) enum FilterValue {
    /// A text value.
    Text(String),
    /// A time as Unix seconds.
    Unix(i64),
}

/// The statuses of an operation still to run, as SQL.
pub(crate) const TO_RUN: &str = "('pending', 'in_progress', 'failed')";

/// A glob (`*`, `?`) as a LIKE pattern with `\` as the escape character.
fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `query` as a WHERE clause over `devices` and its values, the placeholders numbered after
/// `mark` (`?` for SQLite's `?1`, `$` for PostgreSQL's `$1`): one rule for both backends.
pub(crate) fn device_filter(query: &DeviceQuery, mark: char) -> (String, Vec<FilterValue>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<FilterValue> = Vec::new();
    let mut push = |clause: &str, value: FilterValue| {
        values.push(value);
        clauses.push(clause.replace('#', &format!("{mark}{}", values.len())));
    };
    if let Some(pattern) = &query.name_pattern {
        push(
            "name LIKE # ESCAPE '\\'",
            FilterValue::Text(like_pattern(pattern)),
        );
    }
    if let Some(pool) = &query.device_pool {
        push("device_pool = #", FilterValue::Text(pool.clone()));
    }
    if let Some(model) = &query.model {
        push("model = #", FilterValue::Text(model.clone()));
    }
    if let Some(status) = query.status {
        push("status = #", FilterValue::Text(status.as_str().to_owned()));
    }
    if let Some(before) = query.lsc_expires_before {
        push(
            "name IN (SELECT device FROM lscs WHERE state = 'installed' AND not_after < #)",
            FilterValue::Unix(crate::sqlite::to_unix(before)),
        );
    }
    if let Some(before) = query.complete_by_before {
        push(
            &format!("status IN {TO_RUN} AND complete_by < #"),
            FilterValue::Unix(crate::sqlite::to_unix(before)),
        );
    }
    let sql = if clauses.is_empty() {
        "1 = 1".to_owned()
    } else {
        clauses.join(" AND ")
    };
    (sql, values)
}

/// One page of a device query ([`AdminStore::device_page`](crate::AdminStore::device_page)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevicePage {
    /// The devices of the page, ordered by name.
    pub devices: Vec<crate::Device>,
    /// How many devices match the query in all.
    pub total: usize,
}

/// A new schedule for a device: the operation and its complete-by date.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The operation (replacing any other).
    pub operation: Operation,
    /// Its complete-by date.
    pub complete_by: Option<SystemTime>,
}

/// What a bulk update does to every device of a query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkChange {
    /// Changes to the descriptive fields (as [`AdminStore::update_device`](crate::AdminStore::update_device)).
    pub update: DeviceUpdate,
    /// A new operation (as [`AdminStore::schedule`](crate::AdminStore::schedule)).
    pub schedule: Option<Schedule>,
}

impl BulkChange {
    /// Whether the change changes nothing.
    pub fn is_empty(&self) -> bool {
        self.update == DeviceUpdate::default() && self.schedule.is_none()
    }
}

/// One device changed (or, in a dry run, that would change) by a bulk update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceChange {
    /// The device name.
    pub name: DeviceName,
    /// What changed, as the audit log records it.
    pub detail: String,
}

/// How many devices stand where: the operation status report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusReport {
    /// Devices with no operation and no result.
    pub none: u64,
    /// Operations waiting for the phone.
    pub pending: u64,
    /// Operations whose session has begun.
    pub in_progress: u64,
    /// Operations that succeeded.
    pub succeeded: u64,
    /// Operations whose last attempt failed.
    pub failed: u64,
    /// Operations whose complete-by date passed (marked Expired).
    pub expired: u64,
    /// Operations still to run (Pending, InProgress, Failed) whose complete-by date is past but
    /// that are not marked Expired yet.
    pub past_complete_by: u64,
}

/// A named set of CAPF settings applied to the devices a bulk insert brings in (the guide's
/// Universal Device Template): a field a CSV row leaves empty takes the template's value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceTemplate {
    /// The template's name (unique, compared ignoring case).
    pub name: String,
    /// The description.
    pub description: String,
    /// The device pool.
    pub device_pool: String,
    /// The model.
    pub model: String,
    /// The operation to schedule.
    pub operation: Operation,
    /// The authentication mode.
    pub auth_mode: AuthMode,
    /// The operation's complete-by date.
    pub complete_by: Option<SystemTime>,
}

impl DeviceTemplate {
    /// A new device named `name` with the template's settings.
    pub fn new_device(&self, name: DeviceName) -> NewDevice {
        NewDevice {
            description: self.description.clone(),
            device_pool: self.device_pool.clone(),
            model: self.model.clone(),
            operation: self.operation,
            auth_mode: self.auth_mode,
            complete_by: self.complete_by,
            ..NewDevice::new(name)
        }
    }
}

#[cfg(test)]
mod name_tests {
    use super::StatusKind;

    #[test]
    fn status_kind_parses_labels_and_stored_names() {
        for kind in StatusKind::ALL {
            assert_eq!(kind.label().parse::<StatusKind>().ok(), Some(kind));
            assert_eq!(kind.as_str().parse::<StatusKind>().ok(), Some(kind));
        }
        assert_eq!(StatusKind::InProgress.label(), "in-progress");
        assert!("running".parse::<StatusKind>().is_err());
    }
}
