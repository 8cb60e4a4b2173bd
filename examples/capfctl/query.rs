//! The device filters shared by `device list`, `bulk update`, `auth-string generate` and
//! `export`: a name pattern, device pool, model, operation status, LSC expiry, complete-by.

use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use capf_store::{DeviceQuery, StatusKind};

/// An operation status, as the filters name it.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StatusArg {
    /// No operation, no result.
    None,
    /// Scheduled, waiting for the phone.
    Pending,
    /// A session has begun.
    InProgress,
    /// Succeeded.
    Success,
    /// The last attempt failed.
    Failed,
    /// The complete-by date passed.
    Expired,
}

impl StatusArg {
    fn kind(self) -> StatusKind {
        match self {
            StatusArg::None => StatusKind::None,
            StatusArg::Pending => StatusKind::Pending,
            StatusArg::InProgress => StatusKind::InProgress,
            StatusArg::Success => StatusKind::Success,
            StatusArg::Failed => StatusKind::Failed,
            StatusArg::Expired => StatusKind::Expired,
        }
    }
}

/// Which devices: every filter given must match.
#[derive(clap::Args, Default)]
pub(crate) struct QueryArgs {
    /// Device names matching a pattern (`*` any run of characters, `?` one; case ignored),
    /// such as `SEP0011*`.
    #[arg(long, value_name = "PATTERN", allow_hyphen_values = true)]
    name: Option<String>,
    /// Devices of this device pool.
    #[arg(long = "in-pool", value_name = "POOL")]
    in_pool: Option<String>,
    /// Devices of this model.
    #[arg(long = "of-model", value_name = "MODEL")]
    of_model: Option<String>,
    /// Devices whose operation has this status.
    #[arg(long, value_enum)]
    status: Option<StatusArg>,
    /// Phones whose installed LSC expires before this date (UTC midnight).
    #[arg(long, value_name = "YYYY-MM-DD", allow_hyphen_values = true)]
    lsc_expires_before: Option<String>,
    /// Devices with an operation still to run whose complete-by date has passed.
    #[arg(long)]
    past_complete_by: bool,
}

impl QueryArgs {
    /// Whether no filter is given (the query matches every device).
    pub(crate) fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.in_pool.is_none()
            && self.of_model.is_none()
            && self.status.is_none()
            && self.lsc_expires_before.is_none()
            && !self.past_complete_by
    }

    /// The store's query.
    pub(crate) fn query(&self, now: SystemTime) -> Result<DeviceQuery> {
        Ok(DeviceQuery {
            name_pattern: self.name.clone(),
            device_pool: self.in_pool.clone(),
            model: self.of_model.clone(),
            status: self.status.map(StatusArg::kind),
            lsc_expires_before: self
                .lsc_expires_before
                .as_deref()
                .map(|d| day_start(d, "--lsc-expires-before"))
                .transpose()?,
            complete_by_before: self.past_complete_by.then_some(now),
        })
    }
}

/// `YYYY-MM-DD` as (year, month, day), or why not.
pub(crate) fn parse_ymd(text: &str) -> Option<(u16, u8, u8)> {
    let b = text.as_bytes();
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return None;
    }
    Some((
        text[..4].parse().ok()?,
        text[5..7].parse().ok()?,
        text[8..].parse().ok()?,
    ))
}

/// `YYYY-MM-DD` as the start of that day, UTC (any date, past or future).
pub(crate) fn day_start(text: &str, what: &str) -> Result<SystemTime> {
    let (year, month, day) = parse_ymd(text)
        .ok_or_else(|| anyhow!("{what} {text:?}: expected a date like 2030-01-31 (YYYY-MM-DD)"))?;
    let Ok(t) = der::DateTime::new(year, month, day, 0, 0, 0) else {
        bail!("{what} {text:?}: no such date");
    };
    Ok(t.to_system_time())
}
