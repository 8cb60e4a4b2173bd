//! Dates and times: the `YYYY-MM-DD` dates of filters and complete-by dates (UTC); times are
//! shown by capf-lsc's one RFC 3339 formatter.

use std::time::SystemTime;

use capf_lsc::der::DateTime;

use crate::{DateProblem, Error};

/// RFC 3339 UTC, such as `2030-01-31T23:59:59Z`: capf-lsc's [`format_time`](capf_lsc::format_time).
pub use capf_lsc::format_time as rfc3339;

/// RFC 3339 UTC of an optional time; `None` stays `None`.
pub fn rfc3339_opt(t: Option<SystemTime>) -> Option<String> {
    t.map(rfc3339)
}

/// `YYYY-MM-DD` as (year, month, day), or `None` when it is not of that form.
pub fn parse_ymd(text: &str) -> Option<(u16, u8, u8)> {
    let b = text.as_bytes();
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return None;
    }
    Some((
        text[..4].parse().ok()?,
        text[5..7].parse().ok()?,
        text[8..].parse().ok()?,
    ))
}

fn date_error(field: &str, text: &str, problem: DateProblem) -> Error {
    Error::Date {
        field: field.to_owned(),
        text: text.to_owned(),
        problem,
    }
}

fn at(text: &str, field: &str, hour: u8, minute: u8, second: u8) -> Result<SystemTime, Error> {
    let (year, month, day) =
        parse_ymd(text).ok_or_else(|| date_error(field, text, DateProblem::Format))?;
    DateTime::new(year, month, day, hour, minute, second)
        .map(|d| d.to_system_time())
        .map_err(|_| date_error(field, text, DateProblem::NoSuchDate))
}

/// `YYYY-MM-DD` as the start of that day, UTC (any date, past or future). `field` names the
/// value in the error (such as `--lsc-expires-before`).
///
/// # Errors
/// [`Error::Date`].
pub fn day_start(text: &str, field: &str) -> Result<SystemTime, Error> {
    at(text, field, 0, 0, 0)
}

/// A complete-by date: `YYYY-MM-DD` as the end of that day, UTC (the operation may run until
/// the day ends); a day that ended before `now` is refused.
///
/// # Errors
/// [`Error::Date`].
pub fn complete_by(text: &str, field: &str, now: SystemTime) -> Result<SystemTime, Error> {
    let end = at(text, field, 23, 59, 59)?;
    if end < now {
        return Err(date_error(field, text, DateProblem::Passed));
    }
    Ok(end)
}

/// An RFC 3339 UTC time such as `2030-01-01T00:00:00Z` (the form [`rfc3339`] writes).
/// `field` names the value in the error (such as `--at`).
///
/// # Errors
/// [`Error::Rfc3339`].
pub fn parse_rfc3339(text: &str, field: &str) -> Result<SystemTime, Error> {
    text.parse::<DateTime>()
        .map(|d| d.to_system_time())
        .map_err(|error| Error::Rfc3339 {
            field: field.to_owned(),
            text: text.to_owned(),
            error,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_896_134_399);
        assert_eq!(rfc3339(t), "2030-01-31T23:59:59Z");
    }

    #[test]
    fn parses_dates_and_refuses_bad_ones() {
        assert_eq!(parse_ymd("2030-01-31"), Some((2030, 1, 31)));
        for bad in ["2030-1-31", "2030/01/31", "20300131", "2030-01-3x", ""] {
            assert_eq!(parse_ymd(bad), None, "{bad}");
        }
        let err = day_start("2030-02-30", "--x").unwrap_err().to_string();
        assert_eq!(err, "--x \"2030-02-30\": no such date");
        let err = day_start("tomorrow", "--x").unwrap_err().to_string();
        assert!(err.contains("YYYY-MM-DD"), "{err}");
    }

    #[test]
    fn parses_rfc3339_as_it_formats_it() {
        let t = parse_rfc3339("2030-01-31T23:59:59Z", "--at").unwrap();
        assert_eq!(rfc3339(t), "2030-01-31T23:59:59Z");
        let err = parse_rfc3339("2030-01-31", "--at").unwrap_err().to_string();
        assert!(
            err.starts_with("--at \"2030-01-31\": expected RFC 3339 like 2030-01-01T00:00:00Z ("),
            "{err}"
        );
    }

    #[test]
    fn complete_by_is_the_end_of_the_day_and_not_past() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_896_134_000);
        let end = complete_by("2030-01-31", "--complete-by", now).unwrap();
        assert_eq!(rfc3339(end), "2030-01-31T23:59:59Z");
        let err = complete_by("2030-01-30", "complete_by", now).unwrap_err();
        assert_eq!(
            err.to_string(),
            "complete_by 2030-01-30: that date has passed"
        );
    }
}
