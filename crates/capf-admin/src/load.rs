//! Devices for a load test or a demo: many devices scheduled for Install/Upgrade of one key,
//! session limits raised for the run, and how many ended with an installed LSC.

use std::time::SystemTime;

use capf_lsc::{KeyPolicy, KeySpec};
use capf_store::{DeviceName, DeviceStore, LscState, NewDevice, Operation};

use crate::Error;

/// How much room above the run's sessions the limits get.
const SESSION_HEADROOM: u32 = 100;

/// Schedules every device of `names` for Install/Upgrade of exactly `spec`, adding the
/// devices not yet registered, and raises the server's session limits (in all, per address,
/// before authentication) and its key-generation limit to at least `sessions` plus headroom
/// (the server re-reads its settings every 2 s).
///
/// # Errors
/// The store's.
pub fn provision_load_devices<'a>(
    store: &dyn DeviceStore,
    names: impl IntoIterator<Item = &'a DeviceName>,
    spec: KeySpec,
    sessions: u32,
    now: SystemTime,
) -> Result<(), Error> {
    let policy = KeyPolicy::only(spec);
    for name in names {
        if store.device(name)?.is_none() {
            store.add_device(&NewDevice::new(name.clone()), now)?;
        }
        store.schedule(name, Operation::InstallUpgrade(policy), None, now)?;
    }
    let mut settings = store.settings()?;
    let wanted = sessions.saturating_add(SESSION_HEADROOM);
    settings.max_sessions = settings.max_sessions.max(wanted);
    settings.max_key_generation_sessions = settings.max_key_generation_sessions.max(wanted);
    // Every simulated phone comes from this one address, and they connect at once.
    settings.max_sessions_per_address = settings.max_sessions_per_address.max(wanted);
    settings.max_unauthenticated_sessions = settings.max_unauthenticated_sessions.max(wanted);
    store.update_settings(&settings, now)?;
    Ok(())
}

/// Registers the demo's devices (model Cisco 8865), each scheduled for Install/Upgrade of
/// exactly `spec`.
///
/// # Errors
/// The store's (a device registered already, say).
pub fn add_demo_devices<'a>(
    store: &dyn DeviceStore,
    names: impl IntoIterator<Item = &'a DeviceName>,
    spec: KeySpec,
    now: SystemTime,
) -> Result<(), Error> {
    let policy = KeyPolicy::only(spec);
    for name in names {
        let mut device = NewDevice::new(name.clone());
        device.operation = Operation::InstallUpgrade(policy);
        device.model = "Cisco 8865".into();
        store.add_device(&device, now)?;
    }
    Ok(())
}

/// How many of `names` hold an installed LSC (a device the store cannot read counts as not).
pub fn count_installed<'a>(
    store: &dyn DeviceStore,
    names: impl IntoIterator<Item = &'a DeviceName>,
) -> usize {
    names
        .into_iter()
        .filter(|n| {
            store
                .lscs(n)
                .is_ok_and(|l| l.iter().any(|r| r.state == LscState::Installed))
        })
        .count()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use capf_lsc::{Curve, KeySpec};
    use capf_store::{SessionStore, SqliteStore};

    use super::*;

    #[test]
    fn provisions_devices_and_raises_the_limits() {
        let dir = std::env::temp_dir().join(format!("capf-admin-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir).unwrap();
        let now = SystemTime::now();
        let spec = KeySpec::Ec(Curve::P384);
        let names = ["SEP000000000001", "SEP000000000002"].map(|n| DeviceName::new(n).unwrap());
        add_demo_devices(&store, &names[..1], spec, now).unwrap();
        provision_load_devices(&store, &names, spec, 5000, now).unwrap();
        for name in &names {
            let device = store.device(name).unwrap().unwrap();
            assert_eq!(
                device.operation,
                Operation::InstallUpgrade(KeyPolicy::only(spec))
            );
        }
        let settings = store.settings().unwrap();
        assert!(settings.max_sessions >= 5100 && settings.max_key_generation_sessions >= 5100);
        assert!(
            settings.max_sessions_per_address >= 5100
                && settings.max_unauthenticated_sessions >= 5100
        );
        assert_eq!(count_installed(&store, &names), 0);
        drop(store);
        std::fs::remove_dir_all(&dir).ok();
    }
}
