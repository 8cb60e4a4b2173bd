//! How times and bytes are written in messages, logs and the store: one formatter each for the
//! lower crates (the guide's rule: one rule, one owner).

use core::fmt::Write;
use std::time::SystemTime;

/// RFC 3339 in UTC, such as `2026-11-25T18:00:00Z` (the `Debug` form for a time X.509 cannot
/// represent).
pub fn format_time(t: SystemTime) -> String {
    der::DateTime::from_system_time(t)
        .map(|d| d.to_string())
        .unwrap_or_else(|_| format!("{t:?}"))
}

/// Lower-case hex of `bytes`, such as a serial number `01ab`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339_utc_and_lower_case_hex() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(format_time(t), "2027-01-15T08:00:00Z");
        assert_eq!(hex(&[0x01, 0xab, 0x00]), "01ab00");
        assert_eq!(hex(&[]), "");
    }
}
