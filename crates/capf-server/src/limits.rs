//! The key-generation limit: at most N sessions past KEY_GEN_REQUEST at once, a bounded queue
//! of phones waiting for theirs (the guide warns that many certificates at once disturb call
//! processing). Both bounds come from the store's run-time settings, so they can change while
//! the server runs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use capf_store::Settings;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// Sessions at once: in all, before authentication, and per source address (issue 12 item 2:
/// bare connections from one address cannot take every session).
#[derive(Debug, Default)]
pub(crate) struct Admissions {
    counts: Mutex<AdmissionCounts>,
}

#[derive(Debug, Default)]
struct AdmissionCounts {
    total: u32,
    unauthenticated: u32,
    per_address: HashMap<IpAddr, u32>,
}

/// Which budget refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_sessions`.
    Sessions,
    /// `max_unauthenticated_sessions`.
    Unauthenticated,
    /// `max_sessions_per_address`.
    Address,
}

impl Refusal {
    /// For logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Sessions => "maximum concurrent sessions",
            Refusal::Unauthenticated => "maximum sessions before authentication",
            Refusal::Address => "maximum sessions from one address",
        }
    }
}

/// One admitted session's place in the budgets; given back on drop.
#[derive(Debug)]
pub(crate) struct Admission {
    admissions: Arc<Admissions>,
    ip: IpAddr,
    unauthenticated: bool,
}

impl Admissions {
    fn lock(&self) -> MutexGuard<'_, AdmissionCounts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection from `ip`, counted as not authenticated yet.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        settings: &Settings,
    ) -> Result<Admission, Refusal> {
        let mut counts = self.lock();
        if counts.total >= settings.max_sessions {
            return Err(Refusal::Sessions);
        }
        if counts.unauthenticated >= settings.max_unauthenticated_sessions {
            return Err(Refusal::Unauthenticated);
        }
        let from_ip = counts.per_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= settings.max_sessions_per_address {
            return Err(Refusal::Address);
        }
        counts.total += 1;
        counts.unauthenticated += 1;
        counts.per_address.insert(ip, from_ip + 1);
        Ok(Admission {
            admissions: Arc::clone(self),
            ip,
            unauthenticated: true,
        })
    }

    /// Sessions running now.
    pub(crate) fn total(&self) -> u32 {
        self.lock().total
    }
}

impl Admission {
    /// The session authenticated: it leaves the budget before authentication.
    pub(crate) fn authenticated(&mut self) {
        if self.unauthenticated {
            self.unauthenticated = false;
            self.admissions.lock().unauthenticated -= 1;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.admissions.lock();
        counts.total -= 1;
        if self.unauthenticated {
            counts.unauthenticated -= 1;
        }
        if let Some(n) = counts.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.ip);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    active: u32,
    waiting: u32,
}

/// Admission to key generation.
#[derive(Debug, Default)]
pub(crate) struct KeyGenLimiter {
    counts: Mutex<Counts>,
    released: Notify,
    /// Where the counts are published (the `capf_key_generation_*` gauges).
    metrics: Arc<Metrics>,
}

/// The counts, locked; published to the metrics when the guard goes.
struct CountsGuard<'a> {
    counts: MutexGuard<'a, Counts>,
    metrics: &'a Metrics,
}

impl std::ops::Deref for CountsGuard<'_> {
    type Target = Counts;
    fn deref(&self) -> &Counts {
        &self.counts
    }
}

impl std::ops::DerefMut for CountsGuard<'_> {
    fn deref_mut(&mut self) -> &mut Counts {
        &mut self.counts
    }
}

impl Drop for CountsGuard<'_> {
    fn drop(&mut self) {
        self.metrics
            .key_generation(self.counts.active, self.counts.waiting);
    }
}

/// A key-generation slot; released on drop.
#[derive(Debug)]
pub(crate) struct KeyGenPermit {
    limiter: Arc<KeyGenLimiter>,
}

impl Drop for KeyGenPermit {
    fn drop(&mut self) {
        self.limiter.lock().active -= 1;
        self.limiter.released.notify_one();
    }
}

impl KeyGenLimiter {
    /// A limiter publishing its counts to `metrics`.
    pub(crate) fn with_metrics(metrics: Arc<Metrics>) -> Self {
        KeyGenLimiter {
            counts: Mutex::default(),
            released: Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> CountsGuard<'_> {
        // The counters stay consistent under every panic-free path; recover them regardless.
        CountsGuard {
            counts: self.counts.lock().unwrap_or_else(PoisonError::into_inner),
            metrics: &self.metrics,
        }
    }

    /// A slot now, or after waiting in the queue; `None` when the queue is full too.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        max_active: u32,
        max_waiting: u32,
    ) -> Option<KeyGenPermit> {
        let mut queued = false;
        loop {
            // Register for the wake-up before looking, so a release in between is not lost.
            let released = self.released.notified();
            {
                let mut counts = self.lock();
                if counts.active < max_active.max(1) {
                    counts.active += 1;
                    if queued {
                        counts.waiting -= 1;
                    }
                    return Some(KeyGenPermit {
                        limiter: Arc::clone(self),
                    });
                }
                if !queued {
                    if counts.waiting >= max_waiting {
                        return None;
                    }
                    counts.waiting += 1;
                    queued = true;
                }
            }
            let mut leave = LeaveQueueOnCancel {
                limiter: self,
                armed: true,
            };
            released.await;
            leave.armed = false;
        }
    }

    /// Sessions holding a slot, and phones waiting for one.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u32, u32) {
        let c = self.lock();
        (c.active, c.waiting)
    }
}

/// A waiter whose session ends while queued (the phone hung up) leaves the queue.
struct LeaveQueueOnCancel<'a> {
    limiter: &'a KeyGenLimiter,
    armed: bool,
}

impl Drop for LeaveQueueOnCancel<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.limiter.lock().waiting -= 1;
            // Pass on a wake-up this waiter may have consumed.
            self.limiter.released.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn admission_has_budgets_in_all_before_authentication_and_per_address() {
        let a = Arc::new(Admissions::default());
        let settings = Settings {
            max_sessions: 4,
            max_unauthenticated_sessions: 3,
            max_sessions_per_address: 2,
            ..Settings::default()
        };
        let one: IpAddr = [127, 0, 0, 2].into();
        let two: IpAddr = [127, 0, 0, 1].into();
        let three: IpAddr = [127, 0, 0, 3].into();
        let mut first = a.admit(one, &settings).unwrap();
        let _second = a.admit(one, &settings).unwrap();
        assert_eq!(a.admit(one, &settings).err(), Some(Refusal::Address));
        let _third = a.admit(two, &settings).unwrap();
        assert_eq!(
            a.admit(three, &settings).err(),
            Some(Refusal::Unauthenticated)
        );
        first.authenticated();
        let _fourth = a.admit(three, &settings).unwrap();
        assert_eq!(a.admit(three, &settings).err(), Some(Refusal::Sessions));
        drop(first);
        assert_eq!(a.total(), 3);
        assert_eq!(
            a.admit(one, &settings).err(),
            Some(Refusal::Unauthenticated)
        );
    }

    #[tokio::test]
    async fn queue_waits_for_a_slot_and_refuses_past_its_bound() {
        let l = Arc::new(KeyGenLimiter::default());
        let first = l.acquire(1, 1).await.unwrap();
        let waiter = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.acquire(1, 1).await.is_some() })
        };
        while l.counts().1 == 0 {
            tokio::task::yield_now().await;
        }
        // The queue (1) is full: a third phone is refused.
        assert!(l.acquire(1, 1).await.is_none());
        drop(first);
        assert!(waiter.await.unwrap());
        assert_eq!(l.counts(), (0, 0));
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let l = Arc::new(KeyGenLimiter::default());
        let _first = l.acquire(1, 4).await.unwrap();
        let waiter = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.acquire(1, 4).await.map(drop) })
        };
        while l.counts().1 == 0 {
            tokio::task::yield_now().await;
        }
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(l.counts(), (1, 0));
    }
}
