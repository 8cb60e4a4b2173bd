//! Unified CM releases: the guide's rules apply from a given release on.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A Unified Communications Manager release such as 12.5SU7, 14SU2 or 15. Ordered, so rules
/// can say "from 14SU2 on". A store configured for a release before a rule warns instead of
/// rejecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    major: u8,
    minor: u8,
    su: u8,
}

impl Release {
    /// 14SU2: root and intermediate CAs need CA:TRUE with a sufficient path length and
    /// digitalSignature + keyCertSign (the guide).
    pub const R14SU2: Self = Self::new(14, 0, 2);
    /// 14SU3: CA-signed IPsec certificates must not carry CA:TRUE (the guide).
    pub const R14SU3: Self = Self::new(14, 0, 3);
    /// The newest release whose rules this crate knows; the default.
    pub const LATEST: Self = Self::new(15, 0, 0);

    /// `major.minor` with service update `su` (0: the base release).
    pub const fn new(major: u8, minor: u8, su: u8) -> Self {
        Self { major, minor, su }
    }
}

impl Default for Release {
    fn default() -> Self {
        Self::LATEST
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.major)?;
        if self.minor != 0 {
            write!(f, ".{}", self.minor)?;
        }
        if self.su != 0 {
            write!(f, "SU{}", self.su)?;
        }
        Ok(())
    }
}

impl FromStr for Release {
    type Err = Error;

    /// Parses `14`, `14SU2`, `14 SU 3`, `12.5SU7` (SU in any case).
    fn from_str(s: &str) -> Result<Self, Error> {
        let err = || Error::InvalidRelease { text: s.to_owned() };
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let upper = compact.to_ascii_uppercase();
        let (version, su) = match upper.split_once("SU") {
            Some((v, su)) => (v, su.parse::<u8>().map_err(|_| err())?),
            None => (upper.as_str(), 0),
        };
        let (major, minor) = match version.split_once('.') {
            Some((a, b)) => (a, b),
            None => (version, "0"),
        };
        let major = major.parse::<u8>().map_err(|_| err())?;
        let minor = minor.parse::<u8>().map_err(|_| err())?;
        if major == 0 {
            return Err(err());
        }
        Ok(Self::new(major, minor, su))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_service_updates() {
        let r = |s: &str| s.parse::<Release>().unwrap();
        assert!(r("14SU1") < Release::R14SU2);
        assert!(Release::R14SU2 < Release::R14SU3);
        assert!(r("12.5SU7") < r("14"));
        assert!(r("15") > Release::R14SU3);
        assert_eq!(r("14 su 3"), Release::R14SU3);
        assert_eq!(r("12.5SU7").to_string(), "12.5SU7");
    }

    #[test]
    fn rejects_malformed_release() {
        for bad in ["", "SU2", "14SU", "fourteen", "0", "14SU2x", "300"] {
            assert!(bad.parse::<Release>().is_err(), "{bad}");
        }
    }
}
