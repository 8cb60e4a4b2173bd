//! The device filters shared by `device list`, `bulk update`, `auth-string generate` and
//! `export`: a name pattern, device pool, model, operation status, LSC expiry, complete-by.

use anyhow::Result;
use capf_admin::DeviceFilter;
use capf_store::StatusKind;

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
    #[arg(long, value_parser = crate::names::status())]
    status: Option<StatusKind>,
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

    /// The filter.
    pub(crate) fn filter(&self) -> Result<DeviceFilter> {
        Ok(DeviceFilter {
            name_pattern: self.name.clone(),
            device_pool: self.in_pool.clone(),
            model: self.of_model.clone(),
            status: self.status,
            lsc_expires_before: self
                .lsc_expires_before
                .as_deref()
                .map(|d| capf_admin::day_start(d, "--lsc-expires-before"))
                .transpose()?,
            past_complete_by: self.past_complete_by,
        })
    }
}
