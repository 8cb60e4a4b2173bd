//! Certificate validity in days, within the range UCM allows.

use core::fmt;
use std::time::{Duration, SystemTime};

use crate::Error;

/// How long an issued certificate is valid, in whole days: 1 to 1825.
///
/// The guide: "enter a number between 1 and 1825 to represent the number of days that a
/// certificate issued by CAPF is valid". A value outside that range cannot be represented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidityDays(u16);

impl ValidityDays {
    /// The shortest validity: 1 day.
    pub const MIN: ValidityDays = ValidityDays(1);
    /// The longest validity: 1825 days (five years), UCM's upper limit.
    pub const MAX: ValidityDays = ValidityDays(1825);

    /// Checks `days` against the allowed range 1..=1825.
    ///
    /// # Errors
    /// [`Error::ValidityOutOfRange`], naming the range, for 0, negative values and values
    /// above 1825.
    pub fn new(days: i64) -> Result<Self, Error> {
        if (i64::from(Self::MIN.0)..=i64::from(Self::MAX.0)).contains(&days) {
            // The range check above makes the conversion lossless.
            Ok(ValidityDays(
                u16::try_from(days).map_err(|_| Error::ValidityOutOfRange { days })?,
            ))
        } else {
            Err(Error::ValidityOutOfRange { days })
        }
    }

    /// The number of days.
    pub fn days(self) -> u16 {
        self.0
    }

    /// The validity as a duration (days of 86 400 seconds).
    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0) * 86_400)
    }

    /// The end of a validity period starting at `not_before`.
    pub fn not_after(self, not_before: SystemTime) -> SystemTime {
        not_before + self.duration()
    }
}

/// UCM's default "Duration Of Certificate Validity": five years (1825 days).
impl Default for ValidityDays {
    fn default() -> Self {
        Self::MAX
    }
}

impl TryFrom<i64> for ValidityDays {
    type Error = Error;

    fn try_from(days: i64) -> Result<Self, Error> {
        Self::new(days)
    }
}

impl core::str::FromStr for ValidityDays {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let days = s
            .trim()
            .parse::<i64>()
            .map_err(|_| Error::ValidityNotANumber {
                input: s.to_owned(),
            })?;
        Self::new(days)
    }
}

impl fmt::Display for ValidityDays {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} days", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_boundaries_one_and_1825() {
        assert_eq!(ValidityDays::new(1).unwrap().days(), 1);
        assert_eq!(ValidityDays::new(1825).unwrap().days(), 1825);
    }

    #[test]
    fn rejects_zero_negative_and_1826_with_the_range_in_the_message() {
        for days in [0, -1, 1826, i64::MIN, i64::MAX] {
            let err = ValidityDays::new(days).unwrap_err();
            assert!(matches!(err, Error::ValidityOutOfRange { days: d } if d == days));
            assert!(err.to_string().contains("1 to 1825"), "{err}");
        }
    }

    #[test]
    fn parses_from_text() {
        assert_eq!("365".parse::<ValidityDays>().unwrap().days(), 365);
        assert!(matches!(
            "x".parse::<ValidityDays>(),
            Err(Error::ValidityNotANumber { .. })
        ));
        assert!(matches!(
            "0".parse::<ValidityDays>(),
            Err(Error::ValidityOutOfRange { .. })
        ));
    }
}
