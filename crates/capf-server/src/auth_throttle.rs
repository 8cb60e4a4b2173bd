//! Throttling of authentication-string guesses (issue 12 item 3), in memory.
//!
//! A count per device alone hands anyone who knows a device name a lock on its installer: one
//! wrong try every few minutes keeps it locked. So failures are counted per (device, source
//! address), in a leaky bucket that drains `auth_failure_limit` failures per `auth_lockout`:
//! a source that reaches the limit is refused for that device until its bucket drains, and
//! only that source. On top, a per-device bucket of [`DEVICE_FACTOR`] times the limit bounds
//! guessing spread over many addresses; filling it takes that many failures within one
//! window, which one stranger's address cannot do (its own bucket stops it first).
//!
//! The buckets live in the server's memory: a restart empties them (the store still counts
//! every failure, for the administrator).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use capf_lsc::DeviceName;
use capf_store::Settings;

/// The per-device bucket holds this many times `auth_failure_limit`.
pub(crate) const DEVICE_FACTOR: u32 = 8;

/// Buckets kept at most; beyond it, drained ones are dropped, then the fullest are kept.
const MAX_BUCKETS: usize = 65_536;

/// A leaky bucket: `level` failures, as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    /// The level at `now`, drained at `limit` per `window`.
    fn level(&self, now: Instant, limit: u32, window: Duration) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let rate = if window.is_zero() {
            f64::INFINITY
        } else {
            f64::from(limit) / window.as_secs_f64()
        };
        (self.level - elapsed * rate).max(0.0)
    }
}

/// The device's name as the store looks it up (case-insensitive).
fn device_key(device: &DeviceName) -> String {
    device.as_str().to_ascii_uppercase()
}

/// The buckets of every (device, source) pair and every device.
#[derive(Debug, Default)]
pub(crate) struct AuthThrottle {
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_source: HashMap<(String, IpAddr), Bucket>,
    by_device: HashMap<String, Bucket>,
}

impl AuthThrottle {
    /// Whether a guess for `device` from `source` is refused now, whatever it is.
    pub(crate) fn is_throttled(
        &self,
        device: &DeviceName,
        source: IpAddr,
        settings: &Settings,
        now: Instant,
    ) -> bool {
        let limit = settings.auth_failure_limit;
        if limit == 0 {
            return false;
        }
        let window = settings.auth_lockout;
        let key = device_key(device);
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Full: one more failure would overflow it.
        let full = |bucket: Option<&Bucket>, capacity: u32| {
            bucket.is_some_and(|b| b.level(now, limit, window) + 1.0 > f64::from(capacity))
        };
        full(buckets.by_source.get(&(key.clone(), source)), limit)
            || full(
                buckets.by_device.get(&key),
                limit.saturating_mul(DEVICE_FACTOR),
            )
    }

    /// Counts a refused guess for `device` from `source`.
    pub(crate) fn record_failure(
        &self,
        device: &DeviceName,
        source: IpAddr,
        settings: &Settings,
        now: Instant,
    ) {
        let limit = settings.auth_failure_limit;
        if limit == 0 {
            return;
        }
        let window = settings.auth_lockout;
        let key = device_key(device);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let add = |bucket: &mut Bucket| {
            bucket.level = bucket.level(now, limit, window) + 1.0;
            bucket.at = now;
        };
        let fresh = Bucket {
            level: 0.0,
            at: now,
        };
        add(buckets
            .by_source
            .entry((key.clone(), source))
            .or_insert(fresh));
        add(buckets.by_device.entry(key).or_insert(fresh));
        if buckets.by_source.len() > MAX_BUCKETS || buckets.by_device.len() > MAX_BUCKETS {
            buckets
                .by_source
                .retain(|_, b| b.level(now, limit, window) > 0.0);
            buckets
                .by_device
                .retain(|_, b| b.level(now, limit, window) > 0.0);
        }
    }

    /// The right string from `source`: its bucket for `device` is emptied (the device's own
    /// bucket drains on its own, so a success does not reopen guessing from elsewhere).
    pub(crate) fn record_success(&self, device: &DeviceName, source: IpAddr) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.by_source.remove(&(device_key(device), source));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn settings(limit: u32, window_secs: u64) -> Settings {
        Settings {
            auth_failure_limit: limit,
            auth_lockout: Duration::from_secs(window_secs),
            ..Settings::default()
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn a_source_is_throttled_alone_and_its_bucket_drains() {
        let t = AuthThrottle::default();
        let s = settings(3, 300);
        let d = DeviceName::new("SEP001122334455").unwrap();
        let lower = DeviceName::new("sep001122334455").unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!t.is_throttled(&d, ip(9), &s, t0));
            t.record_failure(&lower, ip(9), &s, t0);
        }
        assert!(
            t.is_throttled(&d, ip(9), &s, t0),
            "the stranger, any spelling"
        );
        assert!(!t.is_throttled(&d, ip(1), &s, t0), "the installer is not");
        // One failure drains every 100 s.
        assert!(t.is_throttled(&d, ip(9), &s, t0 + Duration::from_secs(99)));
        assert!(!t.is_throttled(&d, ip(9), &s, t0 + Duration::from_secs(101)));
        // Success empties the source's bucket.
        t.record_success(&d, ip(9));
        assert!(!t.is_throttled(&d, ip(9), &s, t0));
    }

    #[test]
    fn the_device_bucket_bounds_guessing_from_many_sources() {
        let t = AuthThrottle::default();
        let s = settings(2, 300);
        let d = DeviceName::new("SEP001122334455").unwrap();
        let t0 = Instant::now();
        for source in 0..(2 * DEVICE_FACTOR) {
            let source = ip(u8::try_from(source).unwrap());
            assert!(!t.is_throttled(&d, source, &s, t0));
            t.record_failure(&d, source, &s, t0);
        }
        assert!(t.is_throttled(&d, ip(200), &s, t0));
        let other = DeviceName::new("SEP0011223344AA").unwrap();
        assert!(!t.is_throttled(&other, ip(200), &s, t0));
    }

    #[test]
    fn limit_zero_never_throttles() {
        let t = AuthThrottle::default();
        let s = settings(0, 300);
        let d = DeviceName::new("SEP001122334455").unwrap();
        let t0 = Instant::now();
        for _ in 0..100 {
            t.record_failure(&d, ip(9), &s, t0);
        }
        assert!(!t.is_throttled(&d, ip(9), &s, t0));
    }
}
