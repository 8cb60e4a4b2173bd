//! The key-generation limit: at most N sessions past KEY_GEN_REQUEST at once, a bounded queue
//! of phones waiting for theirs (the guide warns that many certificates at once disturb call
//! processing). Both bounds come from the store's run-time settings, so they can change while
//! the server runs.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

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
    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counters stay consistent under every panic-free path; recover them regardless.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
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
