//! The guide's Online CA settings (`capfctl online-ca set/show`), and its limit: Online CA does
//! not support ECDSA keys, so an EC key order and the Online CA mode are never set together.

use std::time::SystemTime;

use capf_lsc::{CertificateIssuer, OnlineCaConfig, OnlineCaParams, OnlineCaPolicy, Secret};
use capf_store::{DeviceStore, DeviceTemplate, Operation, Settings};
use capf_trust::{Cert, Fingerprint};
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
    refuse_ec(settings, operation, || format!("device {device}"))
}

/// The one owner of the guide's limit: in the Online CA mode an Install/Upgrade whose key
/// order asks for EC is refused, naming `subject` (built only when refused).
pub(crate) fn refuse_ec(
    settings: &Settings,
    operation: &Operation,
    subject: impl FnOnce() -> String,
) -> Result<(), Error> {
    if settings.certificate_issuer != CertificateIssuer::OnlineCa {
        return Ok(());
    }
    if let Operation::InstallUpgrade(policy) = operation {
        OnlineCaPolicy
            .check_key_policy(policy)
            .map_err(|source| Error::OnlineCaRefusesEc {
                subject: subject(),
                source: Box::new(source),
            })?;
    }
    Ok(())
}

/// Saves a device template (the guide's Universal Device Template), refusing in the Online CA
/// mode one whose Install/Upgrade key order asks for EC.
///
/// # Errors
/// [`Error::OnlineCaRefusesEc`], or the store's.
pub fn save_template(
    store: &dyn DeviceStore,
    template: &DeviceTemplate,
    now: SystemTime,
) -> Result<(), Error> {
    refuse_ec(&store.settings()?, &template.operation, || {
        format!("device template {}", template.name)
    })?;
    store.save_template(template, now)?;
    Ok(())
}

/// The one check before a CA chain fetched **without authenticating the server** (EST's
/// `/cacerts` bootstrap, RFC 7030 section 4.1.1) may be added to CAPF-trust: its self-signed
/// root has the SHA-256 `fingerprint` the administrator obtained from the CA out of band.
///
/// # Errors
/// [`Error::BootstrapNeedsFingerprint`] (none given), [`Error::Trust`] (not 64 hex digits),
/// [`Error::BootstrapNoRoot`], [`Error::BootstrapRootMismatch`].
pub fn confirm_bootstrap_root(chain: &[Cert], fingerprint: Option<&str>) -> Result<(), Error> {
    let expected: Fingerprint = fingerprint
        .ok_or(Error::BootstrapNeedsFingerprint)?
        .trim()
        .to_ascii_lowercase()
        .parse()?;
    let root = chain
        .iter()
        .find(|c| c.is_self_issued())
        .ok_or(Error::BootstrapNoRoot)?;
    if root.fingerprint() != expected {
        return Err(Error::BootstrapRootMismatch {
            subject: root.subject(),
            actual: root.fingerprint().to_string(),
            expected: expected.to_string(),
        });
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
        // Registering a device with an EC order is scheduling it: refused the same way, with
        // the reason, and nothing is added; with an RSA-only order it is added.
        let new = NewDevice {
            operation: ec_install(),
            ..NewDevice::new(crate::check_device_name("SEP00112233EEFF").unwrap())
        };
        let err = crate::add_device(&store, &new, now()).unwrap_err();
        assert!(matches!(err, Error::OnlineCaRefusesEc { .. }), "{err}");
        let chain = crate::error_chain(&err);
        assert!(chain.starts_with("device SEP00112233EEFF: "), "{chain}");
        assert!(
            chain.contains("Online CA does not support ECDSA"),
            "{chain}"
        );
        assert!(store.device(&new.name).unwrap().is_none());
        let rsa = NewDevice {
            operation: Operation::InstallUpgrade(KeyPolicy::default()),
            ..new
        };
        crate::add_device(&store, &rsa, now()).unwrap();
    }

    /// The bulk paths apply the same rule: a CSV row (its own key order or its template's) by
    /// FILE:LINE, a bulk update by query (dry run too), a template saved in the mode; nothing
    /// is applied.
    #[test]
    fn the_bulk_paths_refuse_an_ec_key_order_in_online_ca_mode() {
        use crate::{DeviceFilter, NoProgress, OperationKind};
        use capf_store::DeviceTemplate;

        let store = SqliteStore::open_in_memory([9; 32]).unwrap();
        // Saved before the mode changes: a template is an order only when it is used.
        let ec_template = DeviceTemplate {
            name: "ec-phones".into(),
            operation: ec_install(),
            ..DeviceTemplate::default()
        };
        store.save_template(&ec_template, now()).unwrap();
        crate::set_setting(&store, "certificate_issuer", "online-ca", now()).unwrap();
        let insert = |csv: &str, template: Option<&DeviceTemplate>| {
            crate::insert_devices_csv_from(
                &store,
                csv.as_bytes(),
                "phones.csv",
                template.cloned(),
                &mut NoProgress,
                now(),
            )
        };
        let refused = |err: &Error, at: &str| {
            let Error::Row { source, .. } = err else {
                panic!("not a row error: {err}");
            };
            assert!(matches!(**source, Error::OnlineCaRefusesEc { .. }), "{err}");
            let chain = crate::error_chain(err);
            assert!(chain.starts_with(at), "{chain}");
            assert!(
                chain.contains("Online CA does not support ECDSA"),
                "{chain}"
            );
        };

        // A row asking for EC, after a good one: refused by its line, nothing added.
        let err = insert(
            "device_name,operation,key_spec\n\
             SEP000000000001,install,rsa-only/2048\n\
             SEP000000000002,install,ec-preferred/2048/P-256\n",
            None,
        )
        .unwrap_err();
        refused(&err, "phones.csv:3: device SEP000000000002: ");
        assert!(store.list_devices().unwrap().is_empty());

        // The template's EC order fills a row that does not say: refused by that row's line;
        // a row that overrides it with RSA only is not the one named.
        let err = insert(
            "device_name,key_spec\n\
             SEP000000000003,rsa-only/2048\n\
             SEP000000000004,\n",
            Some(&ec_template),
        )
        .unwrap_err();
        refused(&err, "phones.csv:3: device SEP000000000004: ");
        assert!(store.list_devices().unwrap().is_empty());

        // A template with an EC order is not saved in the mode; an RSA-only one is.
        let err = save_template(
            &store,
            &DeviceTemplate {
                name: "ec-again".into(),
                ..ec_template.clone()
            },
            now(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::OnlineCaRefusesEc { .. }), "{err}");
        assert!(
            crate::error_chain(&err).starts_with("device template ec-again: "),
            "{}",
            crate::error_chain(&err)
        );
        assert!(store.template("ec-again").unwrap().is_none());
        let rsa_template = DeviceTemplate {
            name: "rsa-phones".into(),
            operation: Operation::InstallUpgrade(KeyPolicy::default()),
            ..DeviceTemplate::default()
        };
        save_template(&store, &rsa_template, now()).unwrap();

        // A bulk update scheduling EC: refused, dry run or not, nothing changed.
        insert(
            "device_name\nSEP000000000005\nSEP000000000006\n",
            Some(&rsa_template),
        )
        .unwrap();
        let before = store.list_devices().unwrap();
        assert_eq!(before.len(), 2);
        let change = crate::ChangeParams {
            operation: Some(OperationKind::Install),
            keys: crate::KeyChoice {
                order: Some(KeyOrder::EcOnly),
                ..crate::KeyChoice::default()
            },
            ..crate::ChangeParams::default()
        }
        .to_change(now())
        .unwrap();
        for dry_run in [true, false] {
            let err = crate::update_devices(
                &store,
                &DeviceFilter::default(),
                &change,
                dry_run,
                &mut NoProgress,
                now(),
            )
            .unwrap_err();
            assert!(matches!(err, Error::OnlineCaRefusesEc { .. }), "{err}");
            assert!(
                crate::error_chain(&err).starts_with("the devices matching the query: "),
                "{}",
                crate::error_chain(&err)
            );
        }
        assert_eq!(store.list_devices().unwrap(), before);
        // In the CAPF mode the same update applies.
        crate::set_setting(&store, "certificate_issuer", "capf", now()).unwrap();
        let changed = crate::update_devices(
            &store,
            &DeviceFilter::default(),
            &change,
            false,
            &mut NoProgress,
            now(),
        )
        .unwrap();
        assert_eq!(changed.len(), 2);
    }

    /// A bootstrap chain is added only with its root's fingerprint confirmed: none given, not
    /// a fingerprint, another one, or no root in the chain are refused, each with its reason.
    #[test]
    fn a_bootstrap_chain_needs_its_roots_fingerprint() {
        let fixture = |name: &str| {
            let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../capf-trust/tests/fixtures")
                .join(format!("{name}.pem"));
            Cert::from_pem(&std::fs::read(path).unwrap()).unwrap()
        };
        let (inter, root) = (fixture("inter"), fixture("root"));
        let chain = [inter.clone(), root.clone()];
        let hex = root.fingerprint().to_string();
        confirm_bootstrap_root(&chain, Some(&hex)).unwrap();
        // `openssl x509 -fingerprint -sha256` prints it upper case with colons.
        let colons: Vec<String> = hex
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).to_uppercase())
            .collect();
        confirm_bootstrap_root(&chain, Some(&colons.join(":"))).unwrap();
        assert!(matches!(
            confirm_bootstrap_root(&chain, None),
            Err(Error::BootstrapNeedsFingerprint)
        ));
        assert!(matches!(
            confirm_bootstrap_root(&chain, Some("abc")),
            Err(Error::Trust(_))
        ));
        let other = inter.fingerprint().to_string();
        let err = confirm_bootstrap_root(&chain, Some(&other)).unwrap_err();
        assert!(matches!(err, Error::BootstrapRootMismatch { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(&hex) && text.contains(&other), "{text}");
        assert!(matches!(
            confirm_bootstrap_root(&[inter], Some(&hex)),
            Err(Error::BootstrapNoRoot)
        ));
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
