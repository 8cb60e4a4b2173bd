//! The store thread (issue 19): for a store that [batches](SessionStore::batches), every
//! session's store calls run on one thread of its own, batch by batch. A batch takes the calls
//! queued while the last one ran, makes them one after another, and commits them together (one
//! sync); only then does each caller get its answer, so a phone still receives nothing the disk
//! does not hold. No blocking-pool thread is woken per call, and no call waits on another's
//! commit on a thread of its own.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use capf_store::SessionStore;

/// At most this many calls share a batch, so a steady stream of calls cannot hold the first
/// one's answer back for ever.
const MAX_BATCH: usize = 256;

/// What a call does once its batch is committed (or failed to be): answer its caller.
pub(crate) type Finish = Box<dyn FnOnce(Result<(), Arc<capf_store::Error>>) + Send>;

/// One store call: makes its calls on the store and returns how to answer.
pub(crate) type Call = Box<dyn FnOnce(&dyn SessionStore) -> Finish + Send>;

/// The thread and the queue of calls to it. Dropped, it lets the thread finish the calls
/// already queued and waits for it.
pub(crate) struct StoreThread {
    calls: Option<mpsc::Sender<Call>>,
    thread: Option<JoinHandle<()>>,
}

impl StoreThread {
    /// Starts the thread over `store`.
    pub(crate) fn start(store: Arc<dyn SessionStore>) -> std::io::Result<StoreThread> {
        let (calls, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("capf-store".to_owned())
            .spawn(move || run(store.as_ref(), &queue))?;
        Ok(StoreThread {
            calls: Some(calls),
            thread: Some(thread),
        })
    }

    /// Queues `call`. Should the thread be gone, the call is dropped with its answer's
    /// sender, which its caller sees.
    pub(crate) fn submit(&self, call: Call) {
        if let Some(calls) = &self.calls {
            let _ = calls.send(call);
        }
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        self.calls = None;
        if let Some(thread) = self.thread.take() {
            // Dropped by one of its own calls (the last holder of the service): it ends by
            // itself once that call returns.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

fn run(store: &dyn SessionStore, queue: &mpsc::Receiver<Call>) {
    while let Ok(first) = queue.recv() {
        store.begin_batch();
        let mut finishes = Vec::new();
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(call) = next {
            taken += 1;
            // A call that panics drops its answer's sender (its caller sees that); its write,
            // if any, was rolled back alone and the batch goes on.
            if let Ok(finish) = catch_unwind(AssertUnwindSafe(|| call(store))) {
                finishes.push(finish);
            }
            next = if taken < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        // A panic here answers nobody: every caller of the batch sees its sender dropped.
        let Ok(committed) = catch_unwind(AssertUnwindSafe(|| store.end_batch())) else {
            continue;
        };
        let committed = committed.map_err(Arc::new);
        for finish in finishes {
            finish(committed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    use capf_lsc::DeviceName;
    use capf_store::{SessionStore, SqliteStore};

    use super::{Call, Finish, StoreThread};

    /// A call that looks `name` up; it sends whether the device is unknown and whether its
    /// batch was committed.
    fn look_up(name: &str, answers: &mpsc::Sender<(bool, bool)>) -> Call {
        let name = DeviceName::new(name).unwrap();
        let answers = answers.clone();
        Box::new(move |store: &dyn SessionStore| {
            let unknown = store.device(&name).map(|d| d.is_none());
            let finish: Finish = Box::new(move |committed| {
                answers
                    .send((unknown.unwrap_or(false), committed.is_ok()))
                    .unwrap();
            });
            finish
        })
    }

    #[test]
    fn calls_are_answered_after_their_batch_and_a_panicking_call_only_loses_its_own_answer() {
        let store = Arc::new(SqliteStore::open_in_memory([7; 32]).unwrap());
        let thread = StoreThread::start(Arc::clone(&store) as Arc<dyn SessionStore>).unwrap();
        let (answers, answered) = mpsc::channel();
        // A panicking call: its answer's sender (captured) is dropped, the thread goes on.
        let (lost, never) = mpsc::channel::<()>();
        thread.submit(Box::new(move |_| {
            let _keep = lost;
            panic!("a bug in a store call");
        }));
        for _ in 0..3 {
            thread.submit(look_up("SEP00112233AABB", &answers));
        }
        for _ in 0..3 {
            let (unknown, committed) = answered.recv_timeout(Duration::from_secs(30)).unwrap();
            assert!(unknown && committed);
        }
        assert!(never.recv_timeout(Duration::from_secs(30)).is_err());
        // Dropping it lets the queued calls finish and waits for the thread.
        thread.submit(look_up("SEP00112233AABB", &answers));
        drop(thread);
        assert!(answered.try_recv().is_ok());
    }
}
