//! The guide's Online CA settings (`capfctl online-ca set/show`), and its limit: Online CA does
//! not support ECDSA keys, so an EC key order and the Online CA mode are never set together.

use std::time::SystemTime;

use capf_lsc::{CertificateIssuer, OnlineCaConfig, OnlineCaParams, OnlineCaPolicy, Secret};
use capf_store::{DeviceStore, Operation, Settings};
use serde::Serialize;

use crate::Error;

/// The Online CA settings as shown: the password is never shown, only `********`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnlineCaView {
    /// Online CA Hostname.
    pub hostname: String,
    /// Online CA Port.
    pub port: u16,
    /// Online CA Type: `est` or `microsoft`.
    #[serde(rename = "type")]
    pub ca_type: &'static str,
    /// The type in the guide's words.
    pub type_label: &'static str,
    /// Online CA Username.
    pub username: String,
    /// Always `********`.
    pub password: &'static str,
    /// Online CA Template (Microsoft CA).
    pub template: Option<String>,
    /// Certificate Enrollment Profile Label (EST).
    pub label: Option<String>,
}

impl From<&OnlineCaConfig> for OnlineCaView {
    fn from(c: &OnlineCaConfig) -> Self {
        OnlineCaView {
            hostname: c.host.to_string(),
            port: c.port,
            ca_type: c.ca_type.as_str(),
            type_label: c.ca_type.label(),
            username: c.username.clone(),
            password: Secret::MASK,
            template: c.template.clone(),
            label: c.label.as_ref().map(ToString::to_string),
        }
    }
}

/// Validates and stores the Online CA settings (the password sealed by the store).
///
/// # Errors
/// [`Error::Lsc`] naming the setting and its rule (never the password), or the store's.
pub fn set_online_ca(
    store: &dyn DeviceStore,
    params: &OnlineCaParams,
    now: SystemTime,
) -> Result<OnlineCaView, Error> {
    let config = OnlineCaConfig::new(params)?;
    store.set_online_ca_config(&config, now)?;
    Ok((&config).into())
}

/// The Online CA settings, if set.
///
/// # Errors
/// The store's (a password that cannot be unsealed among them).
pub fn online_ca(store: &dyn DeviceStore) -> Result<Option<OnlineCaView>, Error> {
    Ok(store.online_ca_config()?.as_ref().map(Into::into))
}

/// The guide's limit for `settings` about to be stored: in the Online CA mode, no device may
/// have an Install/Upgrade scheduled with a key order that asks for EC.
///
/// # Errors
/// [`Error::OnlineCaRefusesEc`] naming the first such device, or the store's.
pub fn check_online_ca_key_orders(
    store: &dyn DeviceStore,
    settings: &Settings,
) -> Result<(), Error> {
    if settings.certificate_issuer != CertificateIssuer::OnlineCa {
        return Ok(());
    }
    for device in store.list_devices()? {
        if device.has_operation_to_run() {
            check_operation(settings, device.name.as_str(), &device.operation)?;
        }
    }
    Ok(())
}

/// The guide's limit for one operation about to be scheduled under `settings`.
///
/// # Errors
/// [`Error::OnlineCaRefusesEc`] when the mode is Online CA and the key order asks for EC.
pub fn check_operation(
    settings: &Settings,
    device: &str,
    operation: &Operation,
) -> Result<(), Error> {
    if settings.certificate_issuer != CertificateIssuer::OnlineCa {
        return Ok(());
    }
    if let Operation::InstallUpgrade(policy) = operation {
        OnlineCaPolicy
            .check_key_policy(policy)
            .map_err(|source| Error::OnlineCaRefusesEc {
                device: device.to_owned(),
                source: Box::new(source),
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, UNIX_EPOCH};

    use capf_lsc::{Curve, KeyOrder, KeyPolicy, RsaBits};
    use capf_store::{AdminStore, NewDevice, SessionStore, SqliteStore};

    use super::*;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn ec_install() -> Operation {
        Operation::InstallUpgrade(KeyPolicy {
            order: KeyOrder::EcPreferredRsaBackup,
            rsa: RsaBits::B2048,
            curve: Curve::P256,
        })
    }

    #[test]
    fn online_ca_mode_and_an_ec_key_order_are_never_set_together() {
        let store = SqliteStore::open_in_memory([9; 32]).unwrap();
        let name = crate::check_device_name("SEP001122AABBCC").unwrap();
        store.add_device(&NewDevice::new(name), now()).unwrap();
        crate::schedule_device(&store, "SEP001122AABBCC", ec_install(), None, None, now()).unwrap();
        // The mode cannot become Online CA while the device's order asks for EC.
        let err = crate::set_setting(&store, "certificate_issuer", "online-ca", now()).unwrap_err();
        assert!(matches!(err, Error::OnlineCaRefusesEc { .. }), "{err}");
        assert!(
            crate::error_chain(&err).contains("Online CA does not support ECDSA"),
            "{}",
            crate::error_chain(&err)
        );
        assert_eq!(
            store.settings().unwrap().certificate_issuer,
            CertificateIssuer::Capf
        );
        // RSA only: the mode is set; then an EC order is refused.
        crate::schedule_device(
            &store,
            "SEP001122AABBCC",
            Operation::InstallUpgrade(KeyPolicy::default()),
            None,
            None,
            now(),
        )
        .unwrap();
        crate::set_setting(&store, "certificate_issuer", "online-ca", now()).unwrap();
        let err =
            crate::schedule_device(&store, "SEP001122AABBCC", ec_install(), None, None, now())
                .unwrap_err();
        assert!(matches!(err, Error::OnlineCaRefusesEc { .. }), "{err}");
    }

    #[test]
    fn the_view_never_shows_the_password() {
        let store = SqliteStore::open_in_memory([9; 32]).unwrap();
        let params = OnlineCaParams {
            host: "ca.example.com".into(),
            port: 443,
            ca_type: "est".into(),
            username: "estuser".into(),
            password: Secret::new("estpwd-secret"),
            template: None,
            label: None,
        };
        let view = set_online_ca(&store, &params, now()).unwrap();
        let shown = format!("{view:?}");
        assert!(!shown.contains("estpwd"), "{shown}");
        assert_eq!(online_ca(&store).unwrap(), Some(view.clone()));
        assert_eq!(view.password, "********");
    }
}
