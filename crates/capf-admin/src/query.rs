//! Device filters: a name pattern, device pool, model, operation status, LSC expiry,
//! complete-by.

use std::time::SystemTime;

use capf_store::{DeviceQuery, StatusKind};

/// Which devices: every filter given must match (the default matches every device).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Device names matching a pattern (`*` any run of characters, `?` one; case ignored),
    /// such as `SEP0011*`.
    pub name_pattern: Option<String>,
    /// Devices of this device pool.
    pub device_pool: Option<String>,
    /// Devices of this model.
    pub model: Option<String>,
    /// Devices whose operation has this status.
    pub status: Option<StatusKind>,
    /// Phones whose installed LSC expires before this time (see
    /// [`day_start`](crate::day_start) for a date).
    pub lsc_expires_before: Option<SystemTime>,
    /// Devices with an operation still to run whose complete-by date has passed.
    pub past_complete_by: bool,
}

impl DeviceFilter {
    /// Whether no filter is set (the filter matches every device).
    pub fn is_empty(&self) -> bool {
        *self == DeviceFilter::default()
    }

    /// The store's query, at `now` (for the complete-by filter).
    pub fn to_query(&self, now: SystemTime) -> DeviceQuery {
        DeviceQuery {
            name_pattern: self.name_pattern.clone(),
            device_pool: self.device_pool.clone(),
            model: self.model.clone(),
            status: self.status,
            lsc_expires_before: self.lsc_expires_before,
            complete_by_before: self.past_complete_by.then_some(now),
        }
    }
}
