//! Devices one by one: the checks made before the store is touched, and the changes.
//!
//! Everything that can be checked before the store is touched is checked first (the device
//! name, the authentication string, the date, the key options), so bad input writes nothing.

use std::time::SystemTime;

use capf_lsc::DeviceName;
use capf_store::{
    AuditEntry, AuthMode, Device, DeviceStore, DeviceUpdate, LscRecord, NewDevice, Operation,
    validate_auth_string,
};

use crate::{DeviceFilter, Error};

/// How many audit entries [`device_detail`] returns by default.
pub const AUDIT_ENTRIES: usize = 10;

/// Checks a device name with capf-lsc's rules.
///
/// # Errors
/// [`Error::DeviceName`].
pub fn check_device_name(name: &str) -> Result<DeviceName, Error> {
    DeviceName::new(name).map_err(|error| Error::DeviceName {
        error: Box::new(error),
    })
}

/// Checks an authentication string for `device` (4 to 10 ASCII digits) by the store's rule;
/// the error never shows the string.
///
/// # Errors
/// [`Error::Store`] with [`capf_store::Error::InvalidAuthString`].
pub fn check_auth_string(device: &str, s: &str) -> Result<(), Error> {
    Ok(validate_auth_string(device, s)?)
}

/// The authentication mode of a new device: By Authentication String when a string is given
/// (an explicit other mode with a string is a mistake), else the mode given, else By Null
/// String.
///
/// # Errors
/// [`Error::AuthStringNeedsAuthMode`].
pub fn new_device_auth_mode(given: Option<AuthMode>, has_string: bool) -> Result<AuthMode, Error> {
    match (given, has_string) {
        (Some(AuthMode::AuthenticationString), _) | (None, true) => {
            Ok(AuthMode::AuthenticationString)
        }
        (Some(mode), true) => Err(Error::AuthStringNeedsAuthMode { mode }),
        (Some(mode), false) => Ok(mode),
        (None, false) => Ok(AuthMode::NullString),
    }
}

/// Checks a new device before the store is touched: its authentication string (its name is a
/// [`DeviceName`], checked where it was given, with [`check_device_name`]).
///
/// # Errors
/// [`Error::DeviceName`], [`Error::Store`] ([`capf_store::Error::InvalidAuthString`]).
pub fn check_new_device(new: &NewDevice) -> Result<(), Error> {
    if let Some(s) = &new.auth_string {
        check_auth_string(&new.name, s)?;
    }
    Ok(())
}

/// Registers a device, after [`check_new_device`] and, as scheduling does, the guide's Online
/// CA limit on its operation ([`check_operation`](crate::check_operation)).
///
/// # Errors
/// The checks' errors, [`Error::OnlineCaRefusesEc`], and the store's (such as a name already
/// registered).
pub fn add_device(
    store: &dyn DeviceStore,
    new: &NewDevice,
    now: SystemTime,
) -> Result<Device, Error> {
    check_new_device(new)?;
    crate::check_operation(&store.settings()?, new.name.as_str(), &new.operation)?;
    Ok(store.add_device(new, now)?)
}

/// The device named `name` (ignoring case), after [`lookup_name`].
///
/// # Errors
/// [`Error::UnknownDevice`], or the store's.
pub fn require_device(store: &dyn DeviceStore, name: &str) -> Result<Device, Error> {
    store
        .device(&lookup_name(name)?)?
        .ok_or_else(|| Error::UnknownDevice {
            name: name.to_owned(),
        })
}

/// Parses a name an administrator gives to find a registered device. A name no device can
/// have is not registered either, so it is the same error as a valid name nobody registered.
///
/// # Errors
/// [`Error::UnknownDevice`].
pub fn lookup_name(name: &str) -> Result<DeviceName, Error> {
    DeviceName::new(name).map_err(|_| Error::UnknownDevice {
        name: name.to_owned(),
    })
}

/// Changes to one device: its descriptive fields and its authentication string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeviceEdit {
    /// The descriptive fields (`None` leaves one as it is).
    pub update: DeviceUpdate,
    /// `Some(Some(s))` sets the authentication string, `Some(None)` clears it.
    pub auth_string: Option<Option<String>>,
}

impl core::fmt::Debug for DeviceEdit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let string = match &self.auth_string {
            Some(Some(_)) => "set",
            Some(None) => "clear",
            None => "keep",
        };
        f.debug_struct("DeviceEdit")
            .field("update", &self.update)
            .field("auth_string", &string)
            .finish()
    }
}

impl DeviceEdit {
    /// Checks the edit of `name` before the store is touched.
    ///
    /// # Errors
    /// [`Error::Store`] ([`capf_store::Error::InvalidAuthString`]), [`Error::NothingToUpdate`].
    pub fn check(&self, name: &str) -> Result<(), Error> {
        if let Some(Some(s)) = &self.auth_string {
            check_auth_string(name, s)?;
        }
        if self.update == DeviceUpdate::default() && self.auth_string.is_none() {
            return Err(Error::NothingToUpdate);
        }
        Ok(())
    }

    /// Applies the edit to the device `name`, after [`DeviceEdit::check`].
    ///
    /// # Errors
    /// The check's errors, [`Error::UnknownDevice`], or the store's.
    pub fn apply(
        &self,
        store: &dyn DeviceStore,
        name: &str,
        now: SystemTime,
    ) -> Result<Device, Error> {
        self.check(name)?;
        let existing = require_device(store, name)?;
        let mut device = store.update_device(&existing.name, &self.update, now)?;
        if let Some(s) = &self.auth_string {
            device = store.set_auth_string(&existing.name, s.as_deref(), now)?;
        }
        Ok(device)
    }
}

/// Schedules `operation` for the device `name` (replacing any other; attempts start again at
/// 0), with an optional new authentication string. An unknown device changes nothing.
///
/// # Errors
/// [`Error::UnknownDevice`], or the store's (such as
/// [`InvalidAuthString`](capf_store::Error::InvalidAuthString)).
pub fn schedule_device(
    store: &dyn DeviceStore,
    name: &str,
    operation: Operation,
    complete_by: Option<SystemTime>,
    auth_string: Option<&str>,
    now: SystemTime,
) -> Result<Device, Error> {
    if let Some(s) = auth_string {
        check_auth_string(name, s)?;
    }
    let existing = require_device(store, name)?;
    crate::check_operation(&store.settings()?, existing.name.as_str(), &operation)?;
    let mut device = store.schedule(&existing.name, operation, complete_by, now)?;
    if let Some(s) = auth_string {
        device = store.set_auth_string(&existing.name, Some(s), now)?;
    }
    Ok(device)
}

/// The devices matching `filter` (every device for an empty filter).
///
/// # Errors
/// The store's.
pub fn list_devices(
    store: &dyn DeviceStore,
    filter: &DeviceFilter,
    now: SystemTime,
) -> Result<Vec<Device>, Error> {
    Ok(if filter.is_empty() {
        store.list_devices()?
    } else {
        store.query_devices(&filter.to_query(now))?
    })
}

/// One page of the devices matching `filter`, in name order: at most `limit` from position
/// `offset`, with how many match in all (the web administration's list).
///
/// # Errors
/// The store's.
pub fn device_page(
    store: &dyn DeviceStore,
    filter: &DeviceFilter,
    offset: usize,
    limit: usize,
    now: SystemTime,
) -> Result<capf_store::DevicePage, Error> {
    Ok(store.device_page(&filter.to_query(now), offset, limit)?)
}

/// A device with its LSCs and its latest audit entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceDetail {
    /// The device.
    pub device: Device,
    /// Its LSCs.
    pub lscs: Vec<LscRecord>,
    /// Its latest audit entries, newest first.
    pub audit: Vec<AuditEntry>,
}

impl DeviceDetail {
    /// The view for JSON.
    pub fn view(&self) -> crate::DeviceDetailView {
        crate::DeviceDetailView {
            device: (&self.device).into(),
            lscs: self.lscs.iter().map(Into::into).collect(),
            audit: self.audit.iter().map(Into::into).collect(),
        }
    }
}

/// The device `name` with its LSCs and its latest `audit_entries` audit entries.
///
/// # Errors
/// [`Error::UnknownDevice`], or the store's.
pub fn device_detail(
    store: &dyn DeviceStore,
    name: &str,
    audit_entries: usize,
) -> Result<DeviceDetail, Error> {
    let device = require_device(store, name)?;
    let lscs = store.lscs(&device.name)?;
    let audit = store.audit(Some(&device.name), audit_entries)?;
    Ok(DeviceDetail {
        device,
        lscs,
        audit,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use capf_store::{AdminStore, SqliteStore};

    use super::*;

    /// Moved from the store's conformance suite: the store takes a `DeviceName`, so a name is
    /// refused here, where an administrator gives it, and nothing reaches the store.
    #[test]
    fn rejects_invalid_device_names_and_logs_nothing() {
        let store = SqliteStore::open_in_memory([9; 32]).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for bad in ["", "SEP00112233445G", "a b", "SEP\0", &"A".repeat(65)] {
            let added = check_device_name(bad)
                .and_then(|name| add_device(&store, &NewDevice::new(name), now));
            match added {
                Err(e @ Error::DeviceName { .. }) => assert!(
                    e.to_string().starts_with("cannot register the device: "),
                    "{e}"
                ),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(store.audit(None, usize::MAX).unwrap().is_empty());
        assert!(store.list_devices().unwrap().is_empty());
    }

    /// A name no device can have is looked up as not registered, as before names were typed.
    #[test]
    fn an_invalid_name_to_look_up_is_not_registered() {
        let store = SqliteStore::open_in_memory([9; 32]).unwrap();
        assert!(matches!(
            require_device(&store, "a b"),
            Err(Error::UnknownDevice { name }) if name == "a b"
        ));
    }
}
