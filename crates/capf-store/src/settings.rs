//! Settings the administrator changes at run time.

use core::fmt;
use std::time::Duration;

use capf_lsc::{CertificateIssuer, SudiPolicy, ValidityDays};

use crate::Error;

/// The CAPF keepalive timer, in minutes: 5 to 60 inclusive (the guide's range), 15 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeepaliveMinutes(u32);

impl KeepaliveMinutes {
    /// The shortest keepalive allowed.
    pub const MIN: KeepaliveMinutes = KeepaliveMinutes(5);
    /// The longest keepalive allowed.
    pub const MAX: KeepaliveMinutes = KeepaliveMinutes(60);
    /// The default, 15 minutes.
    pub const DEFAULT: KeepaliveMinutes = KeepaliveMinutes(15);

    /// Validates `minutes`.
    ///
    /// # Errors
    /// [`Error::KeepaliveOutOfRange`] outside 5..=60.
    pub fn new(minutes: u32) -> Result<Self, Error> {
        if (Self::MIN.0..=Self::MAX.0).contains(&minutes) {
            Ok(KeepaliveMinutes(minutes))
        } else {
            Err(Error::KeepaliveOutOfRange {
                minutes: u64::from(minutes),
            })
        }
    }

    /// The number of minutes.
    pub fn minutes(self) -> u32 {
        self.0
    }

    /// The timer as a duration.
    pub fn as_duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0) * 60)
    }
}

impl Default for KeepaliveMinutes {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for KeepaliveMinutes {
    type Error = Error;

    fn try_from(minutes: u32) -> Result<Self, Error> {
        Self::new(minutes)
    }
}

impl fmt::Display for KeepaliveMinutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} min", self.0)
    }
}

/// The settings the running server re-reads, so changing them needs no restart.
///
/// Stored as key/value rows in table `settings`: `keepalive_minutes`, `max_sessions`,
/// `max_key_generation_sessions`, `key_generation_queue`, `auth_failure_limit`,
/// `auth_lockout_seconds`, `key_generation_queue_wait_seconds`, `key_generation_total_seconds`,
/// `max_unauthenticated_sessions`, `max_sessions_per_address`, `tls_handshake_timeout_seconds`,
/// `auth_response_timeout_seconds`, `lsc_validity_days`, `ca_retry_delay_seconds` (decimal
/// text), `sudi_policy` (`require` or `when-trusted`), `certificate_issuer` (`capf`,
/// `online-ca` or `offline-ca`); a missing row means the default. [`Settings::KEYS`] names them, [`Settings::set`] parses one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// The CAPF keepalive timer.
    pub keepalive: KeepaliveMinutes,
    /// The most CAPF sessions at once.
    pub max_sessions: u32,
    /// The most sessions waiting for a phone's key generation at once.
    pub max_key_generation_sessions: u32,
    /// How many sessions may queue for a key-generation slot.
    pub key_generation_queue: u32,
    /// Failed authentication-string attempts before the device is locked out (0: never).
    pub auth_failure_limit: u32,
    /// How long a lockout lasts after the last failure (stored in whole seconds).
    pub auth_lockout: Duration,
    /// The longest a session waits in the key-generation queue before it is refused (whole
    /// seconds).
    pub key_generation_queue_wait: Duration,
    /// The longest a session waits for the phone's key in all, from KEY_GEN_REQUEST, however
    /// many REQUEST_IN_PROGRESS renew the spec's 60 minutes (whole seconds).
    pub key_generation_total: Duration,
    /// The most sessions at once that have not authenticated yet (TCP connected, in the TLS
    /// handshake, or waiting for AUTH_RESPONSE), part of `max_sessions`: a flood of bare
    /// connections cannot take every session (issue 12 item 2).
    pub max_unauthenticated_sessions: u32,
    /// The most sessions at once from one source address.
    pub max_sessions_per_address: u32,
    /// How long a TLS handshake may take (whole seconds).
    pub tls_handshake_timeout: Duration,
    /// How long the server waits for AUTH_RESPONSE once the TLS handshake is done (whole
    /// seconds).
    pub auth_response_timeout: Duration,
    /// What authentication by existing certificate does with SUDI data (stored as its name).
    pub sudi_policy: SudiPolicy,
    /// The guide's "Certificate Issuer to Endpoint": who signs LSCs (stored as its name). A
    /// change applies to the next session; requests already with an external CA keep the mode
    /// that took them.
    pub certificate_issuer: CertificateIssuer,
    /// The guide's "Duration Of Certificate Validity" of the LSCs CAPF signs: 1 to 1825 days.
    pub lsc_validity_days: ValidityDays,
    /// RETRY_DELAY told to a phone whose request is pending with an external CA: 1 to 604800
    /// seconds (a week; the wire's range).
    pub ca_retry_delay: Duration,
}

/// Keepalive 15 minutes, 1000 sessions, 64 key-generation sessions, a queue of 256, lockout
/// after 5 failures for 5 minutes, a queue wait of 60 s, key generation of 2 hours in all, 500
/// sessions before authentication, 64 per source address, 10 s for the TLS handshake and 10 s
/// for AUTH_RESPONSE, SUDI policy `require`, CAPF signing LSCs valid 1825 days, a phone with a
/// pending CA request told to come back after an hour.
impl Default for Settings {
    fn default() -> Self {
        Settings {
            keepalive: KeepaliveMinutes::DEFAULT,
            max_sessions: 1000,
            max_key_generation_sessions: 64,
            key_generation_queue: 256,
            auth_failure_limit: 5,
            auth_lockout: Duration::from_secs(5 * 60),
            key_generation_queue_wait: Duration::from_secs(60),
            key_generation_total: Duration::from_secs(2 * 60 * 60),
            max_unauthenticated_sessions: 500,
            max_sessions_per_address: 64,
            tls_handshake_timeout: Duration::from_secs(10),
            auth_response_timeout: Duration::from_secs(10),
            sudi_policy: SudiPolicy::Require,
            certificate_issuer: CertificateIssuer::Capf,
            lsc_validity_days: ValidityDays::MAX,
            ca_retry_delay: Duration::from_secs(3600),
        }
    }
}

pub(crate) const KEEPALIVE: &str = "keepalive_minutes";
pub(crate) const MAX_SESSIONS: &str = "max_sessions";
pub(crate) const MAX_KEY_GENERATION_SESSIONS: &str = "max_key_generation_sessions";
pub(crate) const KEY_GENERATION_QUEUE: &str = "key_generation_queue";
pub(crate) const AUTH_FAILURE_LIMIT: &str = "auth_failure_limit";
pub(crate) const AUTH_LOCKOUT: &str = "auth_lockout_seconds";
pub(crate) const KEY_GENERATION_QUEUE_WAIT: &str = "key_generation_queue_wait_seconds";
pub(crate) const KEY_GENERATION_TOTAL: &str = "key_generation_total_seconds";
pub(crate) const MAX_UNAUTHENTICATED_SESSIONS: &str = "max_unauthenticated_sessions";
pub(crate) const MAX_SESSIONS_PER_ADDRESS: &str = "max_sessions_per_address";
pub(crate) const TLS_HANDSHAKE_TIMEOUT: &str = "tls_handshake_timeout_seconds";
pub(crate) const AUTH_RESPONSE_TIMEOUT: &str = "auth_response_timeout_seconds";
pub(crate) const SUDI_POLICY: &str = "sudi_policy";
pub(crate) const CERTIFICATE_ISSUER: &str = "certificate_issuer";
pub(crate) const LSC_VALIDITY_DAYS: &str = "lsc_validity_days";
pub(crate) const CA_RETRY_DELAY: &str = "ca_retry_delay_seconds";

/// The longest RETRY_DELAY a phone may be told: a week (the wire's range, spec section 16).
pub const MAX_CA_RETRY_DELAY_SECS: u64 = 604_800;

impl Settings {
    /// The key of [`Settings::certificate_issuer`].
    pub const CERTIFICATE_ISSUER_KEY: &'static str = CERTIFICATE_ISSUER;
    /// The key of [`Settings::lsc_validity_days`].
    pub const LSC_VALIDITY_DAYS_KEY: &'static str = LSC_VALIDITY_DAYS;
    /// The key of [`Settings::ca_retry_delay`].
    pub const CA_RETRY_DELAY_KEY: &'static str = CA_RETRY_DELAY;

    /// Every setting's key, as stored and as `capfctl settings set KEY VALUE` names it; the
    /// certificate issuer mode and the LSC validity next to each other, as the guide shows them.
    pub const KEYS: [&'static str; 16] = [
        KEEPALIVE,
        MAX_SESSIONS,
        MAX_UNAUTHENTICATED_SESSIONS,
        MAX_SESSIONS_PER_ADDRESS,
        MAX_KEY_GENERATION_SESSIONS,
        KEY_GENERATION_QUEUE,
        KEY_GENERATION_QUEUE_WAIT,
        KEY_GENERATION_TOTAL,
        TLS_HANDSHAKE_TIMEOUT,
        AUTH_RESPONSE_TIMEOUT,
        AUTH_FAILURE_LIMIT,
        AUTH_LOCKOUT,
        SUDI_POLICY,
        CERTIFICATE_ISSUER,
        LSC_VALIDITY_DAYS,
        CA_RETRY_DELAY,
    ];

    /// [`Settings::ca_retry_delay`] in whole seconds, as RETRY_DELAY carries it (the setting's
    /// range, 1 to 604800, fits a `u32`).
    pub fn ca_retry_delay_secs(&self) -> u32 {
        u32::try_from(self.ca_retry_delay.as_secs()).unwrap_or(u32::MAX)
    }

    /// Every setting as (key, value as text), in the order of [`Settings::KEYS`].
    pub fn rows(self) -> Vec<(&'static str, String)> {
        let rows = self.to_rows();
        Settings::KEYS
            .iter()
            .filter_map(|key| rows.iter().find(|(k, _)| k == key).cloned())
            .collect()
    }

    /// Sets the setting `key` from its text: decimal (seconds for a `…_seconds` key, minutes
    /// for `keepalive_minutes`, days for `lsc_validity_days`), `require` / `when-trusted` for
    /// `sudi_policy`, or `capf` / `online-ca` / `offline-ca` (or the guide's labels) for
    /// `certificate_issuer`.
    ///
    /// # Errors
    /// [`Error::UnknownSetting`] for a key not in [`Settings::KEYS`],
    /// [`Error::InvalidSetting`] for a value that is not one the key takes.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let Some(key) = Settings::KEYS.iter().copied().find(|k| *k == key) else {
            return Err(Error::UnknownSetting {
                key: key.to_owned(),
            });
        };
        let mut changed = *self;
        changed
            .apply_row(key, value)
            .map_err(|_| Error::InvalidSetting {
                key,
                value: value.to_owned(),
            })?;
        if changed.max_sessions == 0
            || changed.max_unauthenticated_sessions == 0
            || changed.max_sessions_per_address == 0
            || changed.tls_handshake_timeout.is_zero()
            || changed.auth_response_timeout.is_zero()
            || changed.ca_retry_delay.is_zero()
        {
            // Zero would refuse every phone or cut every session at once.
            return Err(Error::InvalidSetting {
                key,
                value: value.to_owned(),
            });
        }
        *self = changed;
        Ok(())
    }

    /// The settings as key/value rows.
    pub(crate) fn to_rows(self) -> [(&'static str, String); 16] {
        [
            (KEEPALIVE, self.keepalive.minutes().to_string()),
            (MAX_SESSIONS, self.max_sessions.to_string()),
            (
                MAX_KEY_GENERATION_SESSIONS,
                self.max_key_generation_sessions.to_string(),
            ),
            (KEY_GENERATION_QUEUE, self.key_generation_queue.to_string()),
            (AUTH_FAILURE_LIMIT, self.auth_failure_limit.to_string()),
            (AUTH_LOCKOUT, self.auth_lockout.as_secs().to_string()),
            (
                KEY_GENERATION_QUEUE_WAIT,
                self.key_generation_queue_wait.as_secs().to_string(),
            ),
            (
                KEY_GENERATION_TOTAL,
                self.key_generation_total.as_secs().to_string(),
            ),
            (
                MAX_UNAUTHENTICATED_SESSIONS,
                self.max_unauthenticated_sessions.to_string(),
            ),
            (
                MAX_SESSIONS_PER_ADDRESS,
                self.max_sessions_per_address.to_string(),
            ),
            (
                TLS_HANDSHAKE_TIMEOUT,
                self.tls_handshake_timeout.as_secs().to_string(),
            ),
            (
                AUTH_RESPONSE_TIMEOUT,
                self.auth_response_timeout.as_secs().to_string(),
            ),
            (SUDI_POLICY, self.sudi_policy.as_str().to_owned()),
            (
                CERTIFICATE_ISSUER,
                self.certificate_issuer.as_str().to_owned(),
            ),
            (LSC_VALIDITY_DAYS, self.lsc_validity_days.days().to_string()),
            (CA_RETRY_DELAY, self.ca_retry_delay.as_secs().to_string()),
        ]
    }

    /// Applies one stored row; unknown keys (from a newer version) are ignored.
    pub(crate) fn apply_row(&mut self, key: &str, value: &str) -> Result<(), Error> {
        fn number<T: core::str::FromStr>(column: &'static str, value: &str) -> Result<T, Error> {
            value.parse().map_err(|_| Error::Corrupt {
                table: "settings",
                column,
                value: value.to_owned(),
            })
        }
        match key {
            KEEPALIVE => {
                self.keepalive =
                    KeepaliveMinutes::new(number(KEEPALIVE, value)?).map_err(|_| {
                        Error::Corrupt {
                            table: "settings",
                            column: KEEPALIVE,
                            value: value.to_owned(),
                        }
                    })?;
            }
            MAX_SESSIONS => self.max_sessions = number(MAX_SESSIONS, value)?,
            MAX_KEY_GENERATION_SESSIONS => {
                self.max_key_generation_sessions = number(MAX_KEY_GENERATION_SESSIONS, value)?;
            }
            KEY_GENERATION_QUEUE => {
                self.key_generation_queue = number(KEY_GENERATION_QUEUE, value)?;
            }
            AUTH_FAILURE_LIMIT => self.auth_failure_limit = number(AUTH_FAILURE_LIMIT, value)?,
            AUTH_LOCKOUT => {
                self.auth_lockout = Duration::from_secs(number(AUTH_LOCKOUT, value)?);
            }
            KEY_GENERATION_QUEUE_WAIT => {
                self.key_generation_queue_wait =
                    Duration::from_secs(number(KEY_GENERATION_QUEUE_WAIT, value)?);
            }
            KEY_GENERATION_TOTAL => {
                self.key_generation_total =
                    Duration::from_secs(number(KEY_GENERATION_TOTAL, value)?);
            }
            MAX_UNAUTHENTICATED_SESSIONS => {
                self.max_unauthenticated_sessions = number(MAX_UNAUTHENTICATED_SESSIONS, value)?;
            }
            MAX_SESSIONS_PER_ADDRESS => {
                self.max_sessions_per_address = number(MAX_SESSIONS_PER_ADDRESS, value)?;
            }
            TLS_HANDSHAKE_TIMEOUT => {
                self.tls_handshake_timeout =
                    Duration::from_secs(number(TLS_HANDSHAKE_TIMEOUT, value)?);
            }
            AUTH_RESPONSE_TIMEOUT => {
                self.auth_response_timeout =
                    Duration::from_secs(number(AUTH_RESPONSE_TIMEOUT, value)?);
            }
            SUDI_POLICY => self.sudi_policy = number(SUDI_POLICY, value)?,
            CERTIFICATE_ISSUER => {
                self.certificate_issuer = number(CERTIFICATE_ISSUER, value)?;
            }
            LSC_VALIDITY_DAYS => self.lsc_validity_days = number(LSC_VALIDITY_DAYS, value)?,
            CA_RETRY_DELAY => {
                let secs: u64 = number(CA_RETRY_DELAY, value)?;
                if !(1..=MAX_CA_RETRY_DELAY_SECS).contains(&secs) {
                    return Err(Error::Corrupt {
                        table: "settings",
                        column: CA_RETRY_DELAY,
                        value: value.to_owned(),
                    });
                }
                self.ca_retry_delay = Duration::from_secs(secs);
            }
            _ => {}
        }
        Ok(())
    }
}

/// `keepalive 15 min, max sessions 1000, ...`, for the audit log.
impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keepalive {}, max sessions {}, max key-generation sessions {}, key-generation queue \
             {}, auth failure limit {}, auth lockout {} s, key-generation queue wait {} s, \
             key generation {} s in all, max unauthenticated sessions {}, max sessions per \
             address {}, TLS handshake timeout {} s, AUTH_RESPONSE timeout {} s, SUDI policy {}, \
             certificate issuer {}, LSC validity {}, CA retry delay {} s",
            self.keepalive,
            self.max_sessions,
            self.max_key_generation_sessions,
            self.key_generation_queue,
            self.auth_failure_limit,
            self.auth_lockout.as_secs(),
            self.key_generation_queue_wait.as_secs(),
            self.key_generation_total.as_secs(),
            self.max_unauthenticated_sessions,
            self.max_sessions_per_address,
            self.tls_handshake_timeout.as_secs(),
            self.auth_response_timeout.as_secs(),
            self.sudi_policy,
            self.certificate_issuer,
            self.lsc_validity_days,
            self.ca_retry_delay.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_accepts_5_to_60_minutes_only() {
        for bad in [0, 4, 61, u32::MAX] {
            assert!(matches!(
                KeepaliveMinutes::new(bad),
                Err(Error::KeepaliveOutOfRange { minutes }) if minutes == u64::from(bad)
            ));
        }
        for good in [5, 15, 60] {
            assert_eq!(
                KeepaliveMinutes::new(good)
                    .map(KeepaliveMinutes::minutes)
                    .ok(),
                Some(good)
            );
        }
        assert_eq!(
            KeepaliveMinutes::default().as_duration(),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn keepalive_error_names_the_range() {
        let message = KeepaliveMinutes::new(61).err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("a CAPF keepalive of 61 minutes is outside the allowed range of 5 to 60 minutes")
        );
    }

    #[test]
    fn the_issuer_mode_and_the_lsc_validity_are_listed_next_to_each_other() {
        let keys = Settings::KEYS;
        let at = |k| keys.iter().position(|x| *x == k);
        assert_eq!(at(CERTIFICATE_ISSUER).map(|i| i + 1), at(LSC_VALIDITY_DAYS));
        let mut s = Settings::default();
        s.set(CERTIFICATE_ISSUER, "Offline CA").unwrap();
        assert_eq!(s.certificate_issuer, CertificateIssuer::OfflineCa);
        assert_eq!(Settings::default().lsc_validity_days.days(), 1825);
        assert_eq!(Settings::default().ca_retry_delay.as_secs(), 3600);
    }

    #[test]
    fn settings_rows_round_trip() {
        let settings = Settings {
            keepalive: KeepaliveMinutes(42),
            max_sessions: 7,
            max_key_generation_sessions: 3,
            key_generation_queue: 9,
            auth_failure_limit: 0,
            auth_lockout: Duration::from_secs(61),
            key_generation_queue_wait: Duration::from_secs(5),
            key_generation_total: Duration::from_secs(600),
            max_unauthenticated_sessions: 11,
            max_sessions_per_address: 12,
            tls_handshake_timeout: Duration::from_secs(2),
            auth_response_timeout: Duration::from_secs(3),
            sudi_policy: SudiPolicy::WhenTrusted,
            certificate_issuer: CertificateIssuer::OfflineCa,
            lsc_validity_days: ValidityDays::MIN,
            ca_retry_delay: Duration::from_secs(604_800),
        };
        let mut back = Settings::default();
        for (key, value) in settings.to_rows() {
            back.apply_row(key, &value).ok();
        }
        assert_eq!(back, settings);
    }

    #[test]
    fn rejects_unreadable_setting_rows_and_ignores_unknown_keys() {
        let mut s = Settings::default();
        assert!(matches!(
            s.apply_row(KEEPALIVE, "61"),
            Err(Error::Corrupt {
                column: KEEPALIVE,
                ..
            })
        ));
        assert!(matches!(
            s.apply_row(MAX_SESSIONS, "many"),
            Err(Error::Corrupt {
                column: MAX_SESSIONS,
                ..
            })
        ));
        assert!(matches!(
            s.apply_row(SUDI_POLICY, "sometimes"),
            Err(Error::Corrupt {
                column: SUDI_POLICY,
                ..
            })
        ));
        for (key, bad) in [
            (CERTIFICATE_ISSUER, "ca"),
            (LSC_VALIDITY_DAYS, "1826"),
            (CA_RETRY_DELAY, "604801"),
        ] {
            assert!(
                matches!(s.apply_row(key, bad), Err(Error::Corrupt { column, .. }) if column == key),
                "{key} = {bad}"
            );
        }
        assert!(s.apply_row("from_a_newer_version", "x").is_ok());
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn set_names_every_key_and_refuses_unknown_keys_and_bad_values() {
        let mut s = Settings::default();
        // Every key but `sudi_policy` and `certificate_issuer` takes a number.
        let value = |key: &str| match key {
            SUDI_POLICY => "when-trusted",
            CERTIFICATE_ISSUER => "offline-ca",
            _ => "7",
        };
        for (key, _) in Settings::default().rows() {
            s.set(key, value(key)).unwrap();
        }
        let as_set = |s: &Settings| s.rows().iter().all(|(k, v)| v == value(k));
        assert!(as_set(&s));
        assert_eq!(s.rows().len(), Settings::KEYS.len());
        assert!(matches!(
            s.set("max_session", "1"),
            Err(Error::UnknownSetting { .. })
        ));
        for (key, bad) in [
            (MAX_SESSIONS, "-1"),
            (KEEPALIVE, "61"),
            (MAX_SESSIONS, "0"),
            (TLS_HANDSHAKE_TIMEOUT, "0"),
            (AUTH_RESPONSE_TIMEOUT, "x"),
            (SUDI_POLICY, "sometimes"),
            (CERTIFICATE_ISSUER, "ca"),
            (LSC_VALIDITY_DAYS, "0"),
            (LSC_VALIDITY_DAYS, "1826"),
            (CA_RETRY_DELAY, "0"),
            (CA_RETRY_DELAY, "604801"),
        ] {
            assert!(
                matches!(s.set(key, bad), Err(Error::InvalidSetting { .. })),
                "{key} = {bad}"
            );
        }
        assert!(as_set(&s));
    }
}
