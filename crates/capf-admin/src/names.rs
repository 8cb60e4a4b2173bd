//! Name tables of the enums capf-admin owns (the store's own enums, [`AuthMode`] and
//! [`StatusKind`], have theirs in capf-store: `as_str`/`label` and `FromStr`), and the key
//! choices of an Install/Upgrade operation.
//!
//! [`AuthMode`]: capf_store::AuthMode
//! [`StatusKind`]: capf_store::StatusKind

use core::fmt;
use core::str::FromStr;

use capf_lsc::{Curve, KeyOrder, KeyPolicy, RsaBits};
use capf_store::Operation;

use crate::Error;

/// The certificate operation without its key policy (UCM's "Certificate Operation").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationKind {
    /// No Pending Operation.
    None,
    /// Install/Upgrade an LSC.
    Install,
    /// Delete the phone's LSC.
    Delete,
    /// Troubleshoot: fetch the phone's LSC or MIC.
    Troubleshoot,
}

impl OperationKind {
    /// Every kind, in the order capfctl lists them.
    pub const ALL: [OperationKind; 4] = [
        OperationKind::None,
        OperationKind::Install,
        OperationKind::Delete,
        OperationKind::Troubleshoot,
    ];

    /// The name people type and read (capfctl, JSON, CSV): `none`, `install`, `delete`,
    /// `troubleshoot`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::None => "none",
            OperationKind::Install => "install",
            OperationKind::Delete => "delete",
            OperationKind::Troubleshoot => "troubleshoot",
        }
    }

    /// The kind of a store operation (`None` for a kind this crate does not know yet).
    pub fn of(operation: &Operation) -> Option<OperationKind> {
        match operation {
            Operation::None => Some(OperationKind::None),
            Operation::InstallUpgrade(_) => Some(OperationKind::Install),
            Operation::Delete => Some(OperationKind::Delete),
            Operation::Troubleshoot => Some(OperationKind::Troubleshoot),
            _ => None,
        }
    }
}

/// Parses the name ([`OperationKind::as_str`]) or UCM's words (`Install/Upgrade`, `No Pending
/// Operation`, `upgrade`); case is ignored, `-`, `_` and spaces are alike.
impl FromStr for OperationKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Ok(
            match text.to_ascii_lowercase().replace(['-', '_'], " ").trim() {
                "install" | "install/upgrade" | "install upgrade" | "upgrade" => {
                    OperationKind::Install
                }
                "delete" => OperationKind::Delete,
                "troubleshoot" => OperationKind::Troubleshoot,
                "none" | "no pending operation" => OperationKind::None,
                _ => {
                    return Err(Error::OperationName {
                        text: text.to_owned(),
                    });
                }
            },
        )
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every key order, in the order capfctl lists them.
pub const KEY_ORDERS: [KeyOrder; 3] = [
    KeyOrder::RsaOnly,
    KeyOrder::EcOnly,
    KeyOrder::EcPreferredRsaBackup,
];

/// The name of a key order people type and read (capfctl, JSON, CSV): `rsa-only`, `ec-only`,
/// `ec-preferred`.
pub fn key_order_name(order: KeyOrder) -> &'static str {
    match order {
        KeyOrder::RsaOnly => "rsa-only",
        KeyOrder::EcOnly => "ec-only",
        KeyOrder::EcPreferredRsaBackup => "ec-preferred",
    }
}

/// A key order by [`key_order_name`], or the short and long forms `rsa`, `ec`,
/// `ec-preferred-rsa-backup`; case is ignored.
pub fn parse_key_order(text: &str) -> Option<KeyOrder> {
    match text.to_ascii_lowercase().as_str() {
        "rsa-only" | "rsa" => Some(KeyOrder::RsaOnly),
        "ec-only" | "ec" => Some(KeyOrder::EcOnly),
        "ec-preferred" | "ec-preferred-rsa-backup" => Some(KeyOrder::EcPreferredRsaBackup),
        _ => None,
    }
}

/// An RSA key size: `1024`, `2048`, `3072` or `4096`.
///
/// # Errors
/// [`Error::RsaBits`].
pub fn parse_rsa_bits(text: &str) -> Result<RsaBits, Error> {
    text.parse::<usize>()
        .ok()
        .and_then(|bits| RsaBits::from_bits(bits).ok())
        .ok_or_else(|| Error::RsaBits {
            text: text.to_owned(),
        })
}

/// An EC curve: `P-256`, `P-384` or `P-521` (case ignored).
///
/// # Errors
/// [`Error::Curve`].
pub fn parse_curve(text: &str) -> Result<Curve, Error> {
    Curve::ALL
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| Error::Curve {
            text: text.to_owned(),
        })
}

/// The key settings of an Install/Upgrade operation; what is not given takes UCM's default
/// (RSA only, 2048, P-256).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyChoice {
    /// The key order.
    pub order: Option<KeyOrder>,
    /// The RSA key size.
    pub rsa: Option<RsaBits>,
    /// The EC curve.
    pub curve: Option<Curve>,
}

impl KeyChoice {
    /// Whether nothing is chosen.
    pub fn is_empty(&self) -> bool {
        self.order.is_none() && self.rsa.is_none() && self.curve.is_none()
    }

    /// The operation of `kind` with these keys: key choices with any operation other than
    /// Install/Upgrade are a mistake.
    ///
    /// # Errors
    /// [`Error::KeysWithoutInstall`].
    pub fn operation(&self, kind: OperationKind) -> Result<Operation, Error> {
        if kind != OperationKind::Install {
            if !self.is_empty() {
                return Err(Error::KeysWithoutInstall);
            }
            return Ok(match kind {
                OperationKind::Delete => Operation::Delete,
                OperationKind::Troubleshoot => Operation::Troubleshoot,
                OperationKind::None | OperationKind::Install => Operation::None,
            });
        }
        let defaults = KeyPolicy::default();
        Ok(Operation::InstallUpgrade(KeyPolicy {
            order: self.order.unwrap_or(defaults.order),
            rsa: self.rsa.unwrap_or(defaults.rsa),
            curve: self.curve.unwrap_or(defaults.curve),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in OperationKind::ALL {
            assert_eq!(kind.as_str().parse::<OperationKind>().unwrap(), kind);
        }
        for order in KEY_ORDERS {
            assert_eq!(parse_key_order(key_order_name(order)), Some(order));
        }
        assert_eq!(
            "Install/Upgrade".parse::<OperationKind>().unwrap(),
            OperationKind::Install
        );
    }

    #[test]
    fn key_choices_only_with_install() {
        let keys = KeyChoice {
            curve: Some(Curve::P384),
            ..KeyChoice::default()
        };
        assert!(matches!(
            keys.operation(OperationKind::Delete),
            Err(Error::KeysWithoutInstall)
        ));
        let Operation::InstallUpgrade(policy) = keys.operation(OperationKind::Install).unwrap()
        else {
            panic!("not install");
        };
        assert_eq!(policy.curve, Curve::P384);
        assert_eq!(policy.rsa, KeyPolicy::default().rsa);
    }
}
