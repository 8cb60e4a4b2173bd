//! Certificate purposes: which trust store a certificate belongs to.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A trust store's purpose, as Cisco Unified OS Administration names it ("CAPF-trust",
/// "CallManager-trust", ...). An open set: unknown purposes are kept, so a store written by a
/// newer release loads. Known names are matched case-insensitively (the guide itself writes
/// both "CallManager-trust" and "callmanager-trust") and kept in their canonical spelling;
/// other names are kept in lower case, so two spellings never make two directories.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Purpose(Cow<'static, str>);

impl Purpose {
    /// CAPF-trust: CAs that sign LSCs (third-party CAs, this and other clusters' CAPF).
    pub const CAPF_TRUST: Self = Self(Cow::Borrowed("CAPF-trust"));
    /// CAPF-trust certificates tagged as manufacturing (MIC) roots: a phone whose certificate
    /// chains to one authenticates with its MIC.
    pub const CAPF_TRUST_MIC: Self = Self(Cow::Borrowed("CAPF-trust-MIC"));
    /// CAPF-trust certificates tagged as SUDI roots (SUDI_DATA, spec 6.4).
    pub const CAPF_TRUST_SUDI: Self = Self(Cow::Borrowed("CAPF-trust-SUDI"));
    /// CallManager-trust: what Unified CM trusts for phones' TLS connections (LSC and MIC roots).
    pub const CALLMANAGER_TRUST: Self = Self(Cow::Borrowed("CallManager-trust"));
    /// tomcat-trust: the web server's trust store.
    pub const TOMCAT_TRUST: Self = Self(Cow::Borrowed("tomcat-trust"));
    /// ipsec-trust: IPsec peers' certificates (the guide's 14SU3 rule applies here).
    pub const IPSEC_TRUST: Self = Self(Cow::Borrowed("ipsec-trust"));
    /// Phone-trust.
    pub const PHONE_TRUST: Self = Self(Cow::Borrowed("Phone-trust"));
    /// Phone-VPN-trust.
    pub const PHONE_VPN_TRUST: Self = Self(Cow::Borrowed("Phone-VPN-trust"));
    /// Phone-SAST-trust.
    pub const PHONE_SAST_TRUST: Self = Self(Cow::Borrowed("Phone-SAST-trust"));
    /// Phone-CTL-trust.
    pub const PHONE_CTL_TRUST: Self = Self(Cow::Borrowed("Phone-CTL-trust"));

    /// The purposes this crate names.
    pub const KNOWN: [Self; 10] = [
        Self::CAPF_TRUST,
        Self::CAPF_TRUST_MIC,
        Self::CAPF_TRUST_SUDI,
        Self::CALLMANAGER_TRUST,
        Self::TOMCAT_TRUST,
        Self::IPSEC_TRUST,
        Self::PHONE_TRUST,
        Self::PHONE_VPN_TRUST,
        Self::PHONE_SAST_TRUST,
        Self::PHONE_CTL_TRUST,
    ];

    /// Longest accepted name; it becomes a directory name.
    pub const MAX_LEN: usize = 64;

    /// Parses a purpose name. It must be 1-64 characters of ASCII letters, digits, `-`, `_`
    /// and `.`, not starting with `.`, because it names a directory of the store.
    pub fn new(name: &str) -> Result<Self, Error> {
        let valid = !name.is_empty()
            && name.len() <= Self::MAX_LEN
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(Error::InvalidPurpose {
                name: name.to_owned(),
            });
        }
        for known in Self::KNOWN {
            if known.as_str().eq_ignore_ascii_case(name) {
                return Ok(known);
            }
        }
        Ok(Self(Cow::Owned(name.to_ascii_lowercase())))
    }

    /// The purpose's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Purpose {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_known_names_case_insensitively() {
        assert_eq!(
            Purpose::new("callmanager-trust").unwrap(),
            Purpose::CALLMANAGER_TRUST
        );
        assert_eq!(Purpose::new("capf-TRUST").unwrap().as_str(), "CAPF-trust");
    }

    #[test]
    fn keeps_unknown_purposes_lowercased() {
        assert_eq!(
            Purpose::new("ITLRecovery-Trust").unwrap().as_str(),
            "itlrecovery-trust"
        );
    }

    #[test]
    fn rejects_path_like_purpose() {
        for bad in ["", "../x", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(
                matches!(Purpose::new(bad), Err(Error::InvalidPurpose { .. })),
                "{bad}"
            );
        }
    }
}
