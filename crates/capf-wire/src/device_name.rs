//! Device names: who a phone says it is (DEVICE_NAME), the key of the device registry, the CN
//! and subjectAltName of its LSC. Validated once, where the name first arrives (the session, an
//! administrator's input), then carried as a [`DeviceName`].

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use core::fmt;

use crate::error::Error;
use crate::value::MAX_DEVICE_NAME_LEN;

/// What kind of endpoint a device name denotes, recognised from its form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DeviceNameKind {
    /// A hardware phone: `SEP` + 12 hex digits (the MAC address).
    Sep,
    /// Cisco Jabber for desktop (`CSF...`).
    Csf,
    /// Jabber for Android phones (`BOT...`).
    Bot,
    /// Jabber for iPhone (`TCT...`).
    Tct,
    /// Jabber for tablets (`TAB...`).
    Tab,
    /// Any other UCM device name (ATAs, Webex devices, gateways, third-party SIP endpoints...).
    Other,
}

/// Why a device name was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceNameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_DEVICE_NAME_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A byte outside UCM's device-name alphabet (letters, digits, `.`, `_`, `-`).
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the name.
        offset: usize,
    },
    /// `SEP` followed by 12 characters that are not all hex digits.
    BadSepMac,
}

impl fmt::Display for DeviceNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the name is empty"),
            Self::TooLong { len } => {
                write!(
                    f,
                    "{len} bytes is longer than the {MAX_DEVICE_NAME_LEN}-byte limit"
                )
            }
            Self::InvalidByte { byte, offset } => write!(
                f,
                "byte 0x{byte:02x} at offset {offset} is not a letter, digit, '.', '_' or '-'"
            ),
            Self::BadSepMac => {
                f.write_str("SEP must be followed by 12 hex digits (the MAC address)")
            }
        }
    }
}

/// A validated device name.
///
/// Accepted: 1 to 64 bytes of ASCII letters, digits, `.`, `_` and `-`, the characters UCM
/// allows in device names. That covers phones (`SEP` + 12 hex digits), Jabber (`CSF`, `BOT`,
/// `TCT`, `TAB` + user part) and the other endpoint types (ATAs, Webex devices) whose names
/// UCM also lets the administrator choose, so they are accepted as [`DeviceNameKind::Other`].
/// NUL, control characters, spaces and non-ASCII bytes are rejected: the name goes into an
/// IA5String subjectAltName and must survive a CAPF string element (spec section 4.2).
/// A name of the form `SEP` + 12 characters must have hex digits there, since that is the
/// reserved MAC-address form (lower-case hex is accepted, as UCM matches case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceName {
    name: String,
    kind: DeviceNameKind,
}

impl DeviceName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`Error::InvalidDeviceName`] with the reason.
    pub fn new(name: &str) -> Result<Self, Error> {
        let fail = |reason| Error::InvalidDeviceName {
            name: name.escape_debug().to_string(),
            reason,
        };
        let bytes = name.as_bytes();
        if bytes.is_empty() {
            return Err(fail(DeviceNameError::Empty));
        }
        if bytes.len() > MAX_DEVICE_NAME_LEN {
            return Err(fail(DeviceNameError::TooLong { len: bytes.len() }));
        }
        if let Some((offset, &byte)) = bytes
            .iter()
            .enumerate()
            .find(|(_, b)| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return Err(fail(DeviceNameError::InvalidByte { byte, offset }));
        }
        let prefix = bytes.get(..3).map(|p| p.to_ascii_uppercase());
        let kind = match prefix.as_deref() {
            Some(b"SEP") if bytes.len() == 15 => {
                if !bytes[3..].iter().all(u8::is_ascii_hexdigit) {
                    return Err(fail(DeviceNameError::BadSepMac));
                }
                DeviceNameKind::Sep
            }
            Some(b"CSF") => DeviceNameKind::Csf,
            Some(b"BOT") => DeviceNameKind::Bot,
            Some(b"TCT") => DeviceNameKind::Tct,
            Some(b"TAB") => DeviceNameKind::Tab,
            _ => DeviceNameKind::Other,
        };
        Ok(DeviceName {
            name: name.to_owned(),
            kind,
        })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The name, owned.
    pub fn into_string(self) -> String {
        self.name
    }

    /// What kind of endpoint the name denotes.
    pub fn kind(&self) -> DeviceNameKind {
        self.kind
    }
}

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A device name is read as the text it is (store keys, logs, string elements).
impl core::ops::Deref for DeviceName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl AsRef<str> for DeviceName {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl PartialEq<str> for DeviceName {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}

impl PartialEq<&str> for DeviceName {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other
    }
}

impl core::str::FromStr for DeviceName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(name: &str) -> DeviceNameError {
        match DeviceName::new(name) {
            Err(Error::InvalidDeviceName { reason, .. }) => reason,
            other => panic!("{name:?} gave {other:?}"),
        }
    }

    #[test]
    fn recognises_phone_and_softphone_names() {
        assert_eq!(
            DeviceName::new("SEP001122AABBCC").unwrap().kind(),
            DeviceNameKind::Sep
        );
        assert_eq!(
            DeviceName::new("CSFjsmith").unwrap().kind(),
            DeviceNameKind::Csf
        );
        assert_eq!(
            DeviceName::new("BOTJSMITH").unwrap().kind(),
            DeviceNameKind::Bot
        );
        assert_eq!(
            DeviceName::new("TCTJSMITH").unwrap().kind(),
            DeviceNameKind::Tct
        );
        assert_eq!(
            DeviceName::new("TABJSMITH").unwrap().kind(),
            DeviceNameKind::Tab
        );
        assert_eq!(
            DeviceName::new("ATA0011223344").unwrap().kind(),
            DeviceNameKind::Other
        );
        assert_eq!(
            DeviceName::new("SEP1").unwrap().kind(),
            DeviceNameKind::Other
        );
    }

    #[test]
    fn rejects_empty_nul_control_and_over_long_names() {
        assert_eq!(reason(""), DeviceNameError::Empty);
        assert_eq!(
            reason("SEP\0"),
            DeviceNameError::InvalidByte { byte: 0, offset: 3 }
        );
        assert_eq!(
            reason("a\nb"),
            DeviceNameError::InvalidByte {
                byte: b'\n',
                offset: 1
            }
        );
        assert_eq!(
            reason("a b"),
            DeviceNameError::InvalidByte {
                byte: b' ',
                offset: 1
            }
        );
        assert_eq!(
            reason("é"),
            DeviceNameError::InvalidByte {
                byte: 0xc3,
                offset: 0
            }
        );
        assert_eq!(
            reason(&"A".repeat(65)),
            DeviceNameError::TooLong { len: 65 }
        );
        assert!(DeviceName::new(&"A".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_sep_with_non_hex_mac() {
        assert_eq!(reason("SEP00112233445G"), DeviceNameError::BadSepMac);
    }
}
