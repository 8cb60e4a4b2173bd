//! How the service runs: listeners, Enable IPv6, timeouts, validity.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use capf_lsc::SignerBackend;

use capf_ipmode::EnableIpv6;

use crate::Error;

/// The CAPF port (spec rule T1).
pub const CAPF_PORT: u16 = 3804;

/// The service's static configuration. Settings the administrator changes while it runs
/// (keepalive, limits, throttling) live in the device store instead
/// ([`capf_store::Settings`]) and are re-read every [`Config::settings_refresh`].
///
/// Every value is range-checked at start ([`Config::validate`], which
/// [`CapfServer::bind`](crate::CapfServer::bind) calls), so a value that makes no sense is one
/// line naming its key and the allowed range, not a panic on every connection. The keys are
/// capfd's configuration file's (the fields it does not read go by their own names):
///
/// | key | allowed | default |
/// |---|---|---|
/// | `listen` | 1 to 64 distinct addresses | `0.0.0.0:3804`, `[::]:3804` |
/// | `legacy_tls_listen` | 0 to 64 distinct addresses, not in `listen`; only with the `legacy-tls` feature | none (off) |
/// | `tls_handshake_timeout_secs` | 1 to 300 s | 10 s |
/// | `message_timeout_secs` | 1 to 3600 s | 30 s |
/// | `key_generation_timeout_secs` | 1 to 7200 s | 3600 s |
/// | `max_requests_in_progress` | 0 to 1000 | 16 |
/// | `shutdown_grace_secs` | 0 to 3600 s | 30 s |
/// | `reload_interval_secs` | 0.010 to 3600 s | 2 s |
/// | `settings_refresh_secs` | 0.010 to 3600 s | 2 s |
/// | `backlog` | 1 to 65535 | 4096 |
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen: by default `0.0.0.0:3804` and `[::]:3804` (IPv6-only, so both bind).
    pub listen: Vec<SocketAddr>,
    /// Where the opt-in legacy listener listens (TLS 1.0 to 1.2 with AES-CBC-SHA suites, for
    /// 7900- and 9900-series phones; needs the `legacy-tls` feature and an RSA CAPF key). Empty,
    /// the default, turns it off.
    pub legacy_tls_listen: Vec<SocketAddr>,
    /// The Enable IPv6 enterprise parameter: with `False` every IPv6 peer is refused.
    pub enable_ipv6: EnableIpv6,
    /// The CAPF certificate (PEM); checked against the CAPF certificate profile at start and at
    /// every reload.
    pub capf_certificate: PathBuf,
    /// Its PKCS#8 private key (PEM).
    pub capf_key: PathBuf,
    /// The trust-store directory (`capf-trust`'s layout: one folder per purpose) holding
    /// CAPF-trust, CAPF-trust-MIC and CAPF-trust-SUDI, for authentication by existing
    /// certificate. Reloaded when it changes. The CAPF certificate itself is always trusted
    /// as an LSC issuer.
    pub trust_dir: Option<PathBuf>,
    /// How often the certificate and key files are checked for changes (they are also reloaded
    /// on SIGHUP).
    pub reload_interval: Duration,
    /// How long a TLS handshake may take, so a silent peer holds nothing for long.
    pub tls_handshake_timeout: Duration,
    /// The protocol session's configuration (message deadlines, strictness).
    pub session: capf_session::ServerConfig,
    /// The listen backlog.
    pub backlog: u32,
    /// How often the run-time settings are re-read from the store.
    pub settings_refresh: Duration,
    /// How long running sessions may finish after a shutdown is asked for (capfd's
    /// `shutdown_grace_secs`; [`CapfServer::run`](crate::CapfServer::run) takes the grace from
    /// its caller).
    pub shutdown_grace: Duration,
    /// Which library signs the LSCs with the CAPF key (capfd's `lsc_signer`); `None` for the
    /// default ([`SignerBackend::default_backend`], falling back to RustCrypto for a key and
    /// digest it does not sign).
    pub lsc_signer: Option<SignerBackend>,
}

impl Config {
    /// The defaults, serving the CAPF certificate and key at these paths.
    pub fn new(capf_certificate: impl Into<PathBuf>, capf_key: impl Into<PathBuf>) -> Self {
        Config {
            listen: vec![
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, CAPF_PORT)),
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, CAPF_PORT)),
            ],
            legacy_tls_listen: Vec::new(),
            enable_ipv6: EnableIpv6::True,
            capf_certificate: capf_certificate.into(),
            capf_key: capf_key.into(),
            trust_dir: None,
            reload_interval: Duration::from_secs(2),
            tls_handshake_timeout: Duration::from_secs(10),
            session: capf_session::ServerConfig::default(),
            backlog: 4096,
            settings_refresh: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            lsc_signer: None,
        }
    }

    /// Checks every value against its allowed range (the table above).
    ///
    /// # Errors
    /// [`Error::Config`], naming the first key out of range, its value and the range.
    pub fn validate(&self) -> Result<(), Error> {
        if self.listen.is_empty() || self.listen.len() > MAX_LISTEN {
            return Err(config_error(
                "listen",
                format!("{} addresses", self.listen.len()),
                "1 to 64 addresses",
            ));
        }
        for (i, addr) in self.listen.iter().enumerate() {
            // Port 0 asks the system for a port, so it may repeat.
            if addr.port() != 0 && self.listen[..i].contains(addr) {
                return Err(config_error(
                    "listen",
                    format!("{addr} twice"),
                    "distinct addresses",
                ));
            }
        }
        crate::legacy_tls::validate(self)?;
        let session = &self.session;
        let durations = [
            (
                "tls_handshake_timeout_secs",
                self.tls_handshake_timeout,
                TLS_HANDSHAKE_TIMEOUT_SECS,
            ),
            (
                "message_timeout_secs",
                session.timeouts.message,
                MESSAGE_TIMEOUT_SECS,
            ),
            (
                "key_generation_timeout_secs",
                session.timeouts.key_generation,
                KEY_GENERATION_TIMEOUT_SECS,
            ),
            (
                "shutdown_grace_secs",
                self.shutdown_grace,
                SHUTDOWN_GRACE_SECS,
            ),
            ("reload_interval_secs", self.reload_interval, INTERVAL_SECS),
            (
                "settings_refresh_secs",
                self.settings_refresh,
                INTERVAL_SECS,
            ),
        ];
        for (key, value, range) in durations {
            if !range.contains(&value) {
                let allowed = format!("{} to {} s", seconds(*range.start()), seconds(*range.end()));
                return Err(config_error(key, format_secs(value), allowed));
            }
        }
        if session.max_requests_in_progress > MAX_REQUESTS_IN_PROGRESS {
            return Err(config_error(
                "max_requests_in_progress",
                session.max_requests_in_progress.to_string(),
                format!("0 to {MAX_REQUESTS_IN_PROGRESS}"),
            ));
        }
        if !BACKLOG.contains(&self.backlog) {
            return Err(config_error(
                "backlog",
                self.backlog.to_string(),
                range_text(&BACKLOG, ""),
            ));
        }
        Ok(())
    }
}

/// At most this many listen addresses (a host has few interfaces; each is a socket and a task).
const MAX_LISTEN: usize = 64;
/// A handshake is a few round trips; 0 would refuse every phone, minutes only hold sockets.
const TLS_HANDSHAKE_TIMEOUT_SECS: RangeInclusive<Duration> = secs(1)..=secs(300);
/// The phone answers each message at once (spec 9.3: 30 s); an hour is already generous.
const MESSAGE_TIMEOUT_SECS: RangeInclusive<Duration> = secs(1)..=secs(3600);
/// A phone generates an RSA-4096 key in minutes; spec 9.3 waits 60 min, twice that at most.
const KEY_GENERATION_TIMEOUT_SECS: RangeInclusive<Duration> = secs(1)..=secs(7200);
/// 0 stops at once; an hour covers any session that is still making progress.
const SHUTDOWN_GRACE_SECS: RangeInclusive<Duration> = secs(0)..=secs(3600);
/// Timer periods (short ones for tests): 0 would spin, and panics tokio's interval.
const INTERVAL_SECS: RangeInclusive<Duration> = Duration::from_millis(10)..=secs(3600);

const fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// REQUEST_IN_PROGRESS messages per key generation (spec 8.2 project rule: 16).
const MAX_REQUESTS_IN_PROGRESS: u32 = 1000;
/// The kernel clamps a listen backlog to `somaxconn` anyway; 0 is meaningless.
const BACKLOG: RangeInclusive<u32> = 1..=65535;

fn config_error(key: &'static str, value: String, allowed: impl Into<String>) -> Error {
    Error::Config {
        key,
        value,
        allowed: allowed.into(),
    }
}

fn range_text<T: std::fmt::Display>(range: &RangeInclusive<T>, unit: &str) -> String {
    format!("{} to {}{unit}", range.start(), range.end())
}

fn format_secs(value: Duration) -> String {
    format!("{} s", seconds(value))
}

/// Whole seconds as an integer, others to the millisecond.
fn seconds(value: Duration) -> String {
    if value.subsec_nanos() == 0 {
        value.as_secs().to_string()
    } else {
        format!("{:.3}", value.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn config() -> Config {
        Config::new("capf.pem", "capf.key")
    }

    fn refused(config: &Config) -> String {
        match config.validate() {
            Err(e @ Error::Config { .. }) => e.to_string(),
            other => panic!("accepted or wrong error: {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_in_range() {
        config().validate().unwrap();
    }

    #[test]
    fn a_timeout_too_long_for_the_clock_is_refused_with_its_key_and_range() {
        let mut c = config();
        c.session.timeouts.message = Duration::from_secs(u64::MAX);
        assert_eq!(
            refused(&c),
            "configuration: message_timeout_secs = 18446744073709551615 s is out of range: \
             allowed 1 to 3600 s"
        );
        let mut c = config();
        c.session.timeouts.key_generation = Duration::from_secs(u64::MAX);
        assert!(refused(&c).contains("key_generation_timeout_secs"));
        let mut c = config();
        c.session.timeouts.key_generation = Duration::from_secs(7201);
        assert!(refused(&c).contains("allowed 1 to 7200 s"));
    }

    #[test]
    fn a_zero_handshake_timeout_and_no_listen_address_are_refused() {
        let mut c = config();
        c.tls_handshake_timeout = Duration::ZERO;
        assert_eq!(
            refused(&c),
            "configuration: tls_handshake_timeout_secs = 0 s is out of range: allowed 1 to 300 s"
        );
        let mut c = config();
        c.listen.clear();
        assert_eq!(
            refused(&c),
            "configuration: listen = 0 addresses is out of range: allowed 1 to 64 addresses"
        );
        let mut c = config();
        c.listen = vec![c.listen[0], c.listen[0]];
        assert!(refused(&c).contains("twice"));
    }

    #[test]
    fn every_other_value_is_range_checked() {
        let mut c = config();
        c.shutdown_grace = Duration::from_secs(3601);
        assert!(refused(&c).contains("shutdown_grace_secs"));
        let mut c = config();
        c.reload_interval = Duration::ZERO;
        assert!(refused(&c).contains("reload_interval_secs"));
        let mut c = config();
        c.settings_refresh = Duration::from_millis(5);
        assert!(refused(&c).contains("settings_refresh_secs = 0.005 s"));
        let mut c = config();
        c.backlog = 0;
        assert!(refused(&c).contains("backlog = 0"));
        let mut c = config();
        c.session.max_requests_in_progress = 1001;
        assert!(refused(&c).contains("max_requests_in_progress"));
        let mut c = config();
        c.shutdown_grace = Duration::ZERO;
        c.tls_handshake_timeout = Duration::from_secs(300);
        c.session.timeouts.key_generation = Duration::from_secs(7200);
        c.validate().unwrap();
    }
}
