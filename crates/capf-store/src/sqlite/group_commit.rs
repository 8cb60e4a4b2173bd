//! Group commit on the one shared connection (issue 19): concurrent sessions' writes share one
//! COMMIT, so one sync, while every caller still returns only after its write is durable.
//!
//! A writer counts itself in `queued` before it waits for the connection. Holding it, it joins
//! the open group (or begins one: `BEGIN IMMEDIATE`), runs its work in a savepoint (released, or
//! rolled back alone when the work fails), and then commits the group if no other writer is
//! queued to join it; otherwise it leaves the group open and waits until the last one in
//! commits it. No group stays open without a writer on its way to close it.
//!
//! A store on disk runs with `synchronous = NORMAL` and syncs the write-ahead log itself, after
//! the COMMIT of a group that a durable write joined: the same one fsync per commit as `FULL`
//! makes, but only for the groups that need it. SQLite fixes a transaction's `synchronous`
//! when it begins, so with `FULL` for durable writes and `NORMAL` for the others a durable
//! write could not join a group begun by another kind: it had to commit that group first, a
//! second commit writing the same pages again.
//!
//! A thread may also open a batch ([`Shared::begin_batch`]): its writes then join the group
//! without committing or waiting, and [`Shared::end_batch`] commits them at once. A server that
//! runs every session's store calls on one thread so pays one sync per batch, with no thread
//! woken per call (issue 19).
//!
//! A store on disk checkpoints its write-ahead log on a thread of its own ([`Checkpointer`]),
//! so no session's write pays for a checkpoint: SQLite's automatic checkpoint runs in the
//! COMMIT that crosses its threshold, two more syncs and the copy of the log into the database
//! inside one caller's write (the tail of an enrollment at concurrency 1, issue 19).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::Error;

/// At most this many writes share a commit, so a steady stream of writers cannot keep the
/// first one waiting for ever.
const MAX_GROUP: usize = 256;

/// How many recent failed commits are remembered for the callers still to wake up.
const FAILED_KEPT: usize = 64;

/// The checkpointer runs after this many commits (a few pages of log each).
const CHECKPOINT_EVERY: u64 = 32;

/// The write connection's own automatic checkpoint, in pages of log (SQLite's default is
/// 1,000): only a backstop, for when the checkpointer cannot keep up.
pub(crate) const WAL_AUTOCHECKPOINT_BACKSTOP: u32 = 10_000;

thread_local! {
    /// This thread's open batch: the store's address and the groups its writes joined.
    static BATCH: RefCell<Option<(usize, Vec<u64>)>> = const { RefCell::new(None) };
}

/// What a store's writes have cost (see [`SqliteStore::write_stats`](crate::SqliteStore::write_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Writes made (each one the store's transaction of a call: its changes and audit entry,
    /// all or nothing).
    pub writes: u64,
    /// COMMITs that wrote (one per group of writes).
    pub commits: u64,
    /// Of those, commits made durable, a durable write being in their group (one fsync of the
    /// write-ahead log each; checkpoints sync on top of these).
    pub syncs: u64,
}

/// The connection and the group of writes open on it.
pub(crate) struct Db {
    conn: Connection,
    group: Option<Group>,
    last_group: u64,
    /// Every group up to this number has been committed or rolled back.
    closed_through: u64,
    /// Recent groups whose commit failed, with SQLite's error.
    failed: VecDeque<(u64, rusqlite::ffi::Error, Option<String>)>,
    /// The write-ahead log this store syncs after a durable group's COMMIT (`None`: the
    /// connection's `synchronous = FULL` syncs every commit, or the database is in memory).
    wal: Option<Wal>,
    /// Commits since the checkpointer was last woken.
    uncheckpointed: u64,
}

struct Group {
    id: u64,
    /// Writes kept in it (released savepoints).
    writes: usize,
    /// Whether a durable write joined it: its commit is synced.
    durable: bool,
}

/// The write-ahead log file, opened on the first sync (SQLite creates it on the first write).
pub(crate) struct Wal {
    path: PathBuf,
    file: Option<File>,
}

impl Wal {
    /// The log of the database at `database` (its `-wal` file).
    pub(crate) fn of(database: &std::path::Path) -> Wal {
        let mut path = database.as_os_str().to_owned();
        path.push("-wal");
        Wal {
            path: PathBuf::from(path),
            file: None,
        }
    }

    /// Syncs what SQLite wrote to the log (its COMMIT wrote the frames, not synced under
    /// `synchronous = NORMAL`).
    fn sync(&mut self) -> std::io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            none => none.insert(File::open(&self.path)?),
        };
        file.sync_data().inspect_err(|_| {
            // Opened again next time, in case the file itself is what failed.
            self.file = None;
        })
    }
}

impl Deref for Db {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for Db {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// The connection shared by every handle of one store.
pub(crate) struct Shared {
    db: Mutex<Db>,
    closed: Condvar,
    /// Writers waiting for the connection.
    queued: AtomicUsize,
    writes: AtomicU64,
    commits: AtomicU64,
    syncs: AtomicU64,
    checkpointer: Option<Checkpointer>,
}

/// A thread with its own connection that checkpoints the write-ahead log when woken
/// (`PRAGMA wal_checkpoint(PASSIVE)`: it copies what it can without waiting for, or blocking,
/// the writer). The writer's COMMIT then no longer checkpoints, below the backstop threshold.
pub(crate) struct Checkpointer {
    wake: Arc<(Mutex<Wake>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Wake {
    due: bool,
    stop: bool,
}

impl Checkpointer {
    /// Starts the thread over `conn` (a second connection to the store's database).
    pub(crate) fn start(conn: Connection) -> std::io::Result<Checkpointer> {
        let wake = Arc::new((Mutex::new(Wake::default()), Condvar::new()));
        let theirs = Arc::clone(&wake);
        let thread = std::thread::Builder::new()
            .name("capf-store-checkpoint".to_owned())
            .spawn(move || {
                let (lock, cv) = &*theirs;
                loop {
                    {
                        let mut w = lock.lock().unwrap_or_else(PoisonError::into_inner);
                        while !w.due && !w.stop {
                            w = cv.wait(w).unwrap_or_else(PoisonError::into_inner);
                        }
                        if w.stop {
                            return;
                        }
                        w.due = false;
                    }
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        // The next one tries again; the backstop bounds the log meanwhile.
                        tracing::debug!(error = %e, "checkpointing the write-ahead log");
                    }
                }
            })?;
        Ok(Checkpointer {
            wake,
            thread: Some(thread),
        })
    }

    fn wake(&self) {
        let (lock, cv) = &*self.wake;
        lock.lock().unwrap_or_else(PoisonError::into_inner).due = true;
        cv.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.wake;
        lock.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        cv.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Over `conn`, with `checkpointer` checkpointing its log (`None`: SQLite's automatic
    /// checkpoint, as for a database in memory) and `wal` the log this store syncs itself
    /// (`conn` then runs with `synchronous = NORMAL`; `None`: `FULL`, or in memory).
    pub(crate) fn new(
        conn: Connection,
        checkpointer: Option<Checkpointer>,
        wal: Option<Wal>,
    ) -> Shared {
        Shared {
            db: Mutex::new(Db {
                conn,
                group: None,
                last_group: 0,
                closed_through: 0,
                failed: VecDeque::new(),
                wal,
                uncheckpointed: 0,
            }),
            closed: Condvar::new(),
            queued: AtomicUsize::new(0),
            writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            checkpointer,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Db> {
        // A panic while the lock was held leaves no half-done write: the work runs under
        // catch_unwind and its savepoint is rolled back before the panic goes on.
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            writes: self.writes.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` as one write in a group; returns once the group is committed (and synced, when
    /// `durable`). With `roll_back` the write's changes are undone and its answer returned (a
    /// dry run).
    pub(crate) fn write<T>(
        &self,
        device: Option<&str>,
        durable: bool,
        roll_back: bool,
        f: impl FnOnce(&Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let fail = |action: &'static str| {
            move |source| Error::Database {
                action,
                device: device.map(str::to_owned),
                source,
            }
        };
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut db = self.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::Relaxed);
        let id = match &mut db.group {
            Some(group) => {
                group.durable |= durable;
                group.id
            }
            None => {
                run(&db.conn, "BEGIN IMMEDIATE").map_err(fail("beginning a write"))?;
                db.last_group += 1;
                let id = db.last_group;
                db.group = Some(Group {
                    id,
                    writes: 0,
                    durable,
                });
                id
            }
        };
        let mut broken = None;
        let outcome = match run(&db.conn, "SAVEPOINT capf_write") {
            Err(e) => {
                broken = Some(());
                Ok(Err(fail("beginning a write")(e)))
            }
            Ok(()) => {
                let outcome = catch_unwind(AssertUnwindSafe(|| f(&db.conn)));
                let keep = !roll_back && matches!(outcome, Ok(Ok(_)));
                let rolled_back = if keep {
                    Ok(())
                } else {
                    run(&db.conn, "ROLLBACK TO capf_write")
                };
                match rolled_back.and_then(|()| run(&db.conn, "RELEASE capf_write")) {
                    Ok(()) => {
                        if let (true, Some(group)) = (keep, db.group.as_mut()) {
                            group.writes += 1;
                        }
                        outcome
                    }
                    Err(e) => {
                        broken = Some(());
                        match outcome {
                            Ok(_) => Ok(Err(fail("ending a write")(e))),
                            panic => panic,
                        }
                    }
                }
            }
        };
        // Commit the group unless another writer is on its way to join it, or this thread's
        // batch commits it at its end.
        let batched = self.batch_joined(id);
        let last = broken.is_some()
            || (!batched && self.queued.load(Ordering::SeqCst) == 0)
            || db.group.as_ref().is_some_and(|g| g.writes >= MAX_GROUP);
        if last {
            self.close(&mut db, broken.is_some());
        } else if batched {
            drop(db);
            return match outcome {
                Err(panic) => resume_unwind(panic),
                Ok(result) => result,
            };
        } else {
            while db.closed_through < id {
                db = self.closed.wait(db).unwrap_or_else(PoisonError::into_inner);
            }
        }
        let committed = match db.failed.iter().find(|(g, _, _)| *g == id) {
            Some((_, code, message)) => Err(fail("committing a write")(
                rusqlite::Error::SqliteFailure(*code, message.clone()),
            )),
            None => Ok(()),
        };
        drop(db);
        match outcome {
            Err(panic) => resume_unwind(panic),
            Ok(result) => {
                let out = result?;
                committed?;
                Ok(out)
            }
        }
    }

    /// This store's identity for a thread's batch (the shared connection's address).
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether this thread has a batch open on this store; if so, records that it joined group
    /// `id`.
    fn batch_joined(&self, id: u64) -> bool {
        let me = self.address();
        BATCH.with_borrow_mut(|batch| match batch {
            Some((store, groups)) if *store == me => {
                if groups.last() != Some(&id) {
                    groups.push(id);
                }
                true
            }
            _ => false,
        })
    }

    /// Opens a batch on this thread: its writes join groups without committing them or
    /// waiting, until [`end_batch`](Self::end_batch). A batch already open on this thread
    /// (of this store or another) is replaced.
    pub(crate) fn begin_batch(&self) {
        let me = self.address();
        BATCH.set(Some((me, Vec::new())));
    }

    /// Ends this thread's batch: commits the group its last writes joined (synced if any of
    /// them was durable) and tells whether every group its writes joined was committed.
    pub(crate) fn end_batch(&self) -> Result<(), Error> {
        let me = self.address();
        let groups = match BATCH.take() {
            Some((store, groups)) if store == me => groups,
            other => {
                // Another store's batch: left as it was.
                BATCH.set(other);
                return Ok(());
            }
        };
        let Some(&newest) = groups.last() else {
            return Ok(());
        };
        let mut db = self.lock();
        if db.group.as_ref().is_some_and(|g| g.id == newest) {
            self.close(&mut db, false);
        }
        // Groups close in order, one open at a time: every one of the batch is closed now.
        match db.failed.iter().find(|(g, _, _)| groups.contains(g)) {
            Some((_, code, message)) => Err(Error::Database {
                action: "committing a batch of writes",
                device: None,
                source: rusqlite::Error::SqliteFailure(*code, message.clone()),
            }),
            None => Ok(()),
        }
    }

    /// Commits the open group (rolls it back when `broken` or empty) and wakes its writers.
    fn close(&self, db: &mut Db, broken: bool) {
        let Some(group) = db.group.take() else {
            return;
        };
        let committing = !broken && group.writes > 0;
        let result = if committing {
            run(&db.conn, "COMMIT").inspect(|()| {
                self.commits.fetch_add(1, Ordering::Relaxed);
            })
        } else {
            run(&db.conn, "ROLLBACK")
        };
        // The group's writers hear of their commit once it is on disk.
        let synced = match (&result, &mut db.wal) {
            (Ok(()), Some(wal)) if committing && group.durable => wal.sync().map(|()| true),
            // `synchronous = FULL` synced it, or the database is in memory.
            (Ok(()), None) => Ok(committing && group.durable),
            _ => Ok(false),
        };
        if let Ok(true) = synced {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        if let (Ok(()), Some(checkpointer)) = (&result, &self.checkpointer) {
            db.uncheckpointed += 1;
            if db.uncheckpointed >= CHECKPOINT_EVERY {
                db.uncheckpointed = 0;
                checkpointer.wake();
            }
        }
        let failure = match result {
            Ok(()) if !broken => synced.err().map(|e| {
                // Committed but perhaps not on disk: its writers must not act on it.
                (
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
                    Some(format!("syncing the write-ahead log: {e}")),
                )
            }),
            Ok(()) => Some((
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("a write of the group could not end its savepoint".to_owned()),
            )),
            Err(e) => {
                // COMMIT failed: nothing of the group is kept.
                let _ = run(&db.conn, "ROLLBACK");
                Some(match e {
                    rusqlite::Error::SqliteFailure(code, message) => (code, message),
                    other => (
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                        Some(other.to_string()),
                    ),
                })
            }
        };
        if let Some((code, message)) = failure {
            if db.failed.len() == FAILED_KEPT {
                db.failed.pop_front();
            }
            db.failed.push_back((group.id, code, message));
        }
        db.closed_through = group.id;
        self.closed.notify_all();
    }
}

/// Runs one of the transaction statements, prepared once per connection (parsing them on every
/// write was a visible share of an enrollment's SQLite time, issue 19).
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::sync::{Arc, Barrier};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use capf_lsc::{DeviceName, IssuedLsc, KeyPolicy};

    use super::WriteStats;
    use crate::{AdminStore, NewDevice, Operation, OperationStatus, SessionStore, SqliteStore};

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn name(i: usize) -> DeviceName {
        DeviceName::new(&format!("SEP0011223344{i:02X}")).unwrap()
    }

    fn lsc(i: usize) -> IssuedLsc {
        IssuedLsc {
            serial: vec![1, u8::try_from(i).unwrap()],
            der: vec![0x30, 0x00],
            not_before: t(0),
            not_after: t(86_400),
        }
    }

    /// A store on disk (WAL, `synchronous` FULL, as capfd runs it) with `n` devices to install.
    fn store(test: &str, n: usize) -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("capf-store-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteStore::open(&dir).unwrap();
        for i in 0..n {
            let mut new = NewDevice::new(name(i));
            new.operation = Operation::InstallUpgrade(KeyPolicy::default());
            store.add_device(&new, t(0)).unwrap();
        }
        (store, dir)
    }

    fn since(store: &SqliteStore, before: WriteStats) -> WriteStats {
        let now = store.write_stats();
        WriteStats {
            writes: now.writes - before.writes,
            commits: now.commits - before.commits,
            syncs: now.syncs - before.syncs,
        }
    }

    /// The store calls of one enrollment, as capf-server's handler makes them.
    fn enroll(store: &SqliteStore, i: usize) {
        let device = name(i);
        assert!(store.device(&device).unwrap().is_some());
        assert!(store.open_ca_request(&device).unwrap().is_none());
        store.begin_attempt(&device, t(1)).unwrap();
        store.record_lsc_issued(&device, &lsc(i), t(2)).unwrap();
        let done = store
            .confirm_lsc_installed(&device, &lsc(i).serial, t(3))
            .unwrap();
        assert_eq!(done.status, OperationStatus::Success);
    }

    #[test]
    fn one_enrollment_costs_three_writes_and_two_syncs() {
        let (store, dir) = store("one-enrollment", 1);
        let before = store.write_stats();
        enroll(&store, 0);
        // Begun (not synced on its own), issued (synced before the phone gets it), installed
        // (synced before END_SESSION). Before issue 19: 3 writes, 3 commits, 3 syncs.
        assert_eq!(
            since(&store, before),
            WriteStats {
                writes: 3,
                commits: 3,
                syncs: 2
            }
        );
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_enrollments_all_land_and_never_take_more_syncs_than_writes() {
        const N: usize = 24;
        let (store, dir) = store("concurrent", N);
        let store = Arc::new(store);
        let before = store.write_stats();
        let start = Arc::new(Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|i| {
                let (store, start) = (Arc::clone(&store), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    enroll(&store, i);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let cost = since(&store, before);
        assert_eq!(cost.writes, 3 * N as u64);
        assert!(cost.commits <= cost.writes, "{cost:?}");
        assert!(cost.syncs <= 2 * N as u64, "{cost:?}");
        // Every enrollment is on disk: a second connection reads them.
        let again = SqliteStore::open(&dir).unwrap();
        for i in 0..N {
            let device = again.device(&name(i)).unwrap().unwrap();
            assert_eq!(device.status, OperationStatus::Success, "{i}");
            assert_eq!(device.attempts, 1);
        }
        drop(again);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_batch_commits_its_enrollments_at_its_end_with_one_sync() {
        const N: usize = 8;
        let (store, dir) = store("batch", N);
        let other = SqliteStore::open(&dir).unwrap();
        let before = store.write_stats();
        store.begin_batch();
        // The calls of eight sessions interleaved, as the store thread runs them.
        for i in 0..N {
            store.begin_attempt(&name(i), t(1)).unwrap();
        }
        for i in 0..N {
            store.record_lsc_issued(&name(i), &lsc(i), t(2)).unwrap();
            // The batch reads its own writes...
            assert_eq!(store.lscs(&name(i)).unwrap().len(), 1);
        }
        // ...and nothing of it is committed yet: another connection sees the devices as they
        // were, and no LSC.
        for i in 0..N {
            assert_eq!(other.device(&name(i)).unwrap().unwrap().attempts, 0, "{i}");
            assert!(other.lscs(&name(i)).unwrap().is_empty(), "{i}");
        }
        for i in 0..N {
            store
                .confirm_lsc_installed(&name(i), &lsc(i).serial, t(3))
                .unwrap();
        }
        store.end_batch().unwrap();
        // One commit, synced as its durable writes need (stop 23's group commit: two, the
        // unsynced begins committed apart when the first durable write came).
        assert_eq!(
            since(&store, before),
            WriteStats {
                writes: 3 * N as u64,
                commits: 1,
                syncs: 1
            }
        );
        for i in 0..N {
            let seen = other.device(&name(i)).unwrap().unwrap();
            assert_eq!(seen.status, OperationStatus::Success, "{i}");
        }
        // A batch of writes none of which must be durable commits without a sync.
        let before = store.write_stats();
        store.begin_batch();
        store.begin_attempt(&name(1), t(4)).unwrap_err();
        let mut new = NewDevice::new(name(N + 1));
        new.operation = Operation::InstallUpgrade(KeyPolicy::default());
        store.add_device(&new, t(4)).unwrap();
        store.end_batch().unwrap();
        assert_eq!(since(&store, before).syncs, 1, "the add is durable");
        let before = store.write_stats();
        store.begin_batch();
        store.begin_attempt(&name(N + 1), t(5)).unwrap();
        store.end_batch().unwrap();
        assert_eq!(
            since(&store, before),
            WriteStats {
                writes: 1,
                commits: 1,
                syncs: 0
            }
        );
        // Outside a batch, writes commit as they come again.
        store.begin_attempt(&name(0), t(4)).unwrap_err();
        let mut new = NewDevice::new(name(N));
        new.operation = Operation::InstallUpgrade(KeyPolicy::default());
        store.add_device(&new, t(5)).unwrap();
        assert!(other.device(&name(N)).unwrap().is_some());
        drop((other, store));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_write_in_a_batch_undoes_only_itself_and_the_batch_commits() {
        let (store, dir) = store("batch-failing", 2);
        store.begin_batch();
        store.begin_attempt(&name(0), t(1)).unwrap();
        store.record_lsc_issued(&name(0), &lsc(0), t(2)).unwrap();
        store.begin_attempt(&name(1), t(1)).unwrap();
        // The same serial again: refused, and nothing of it is kept.
        assert!(store.record_lsc_issued(&name(1), &lsc(0), t(2)).is_err());
        store.end_batch().unwrap();
        drop(store);
        let again = SqliteStore::open(&dir).unwrap();
        assert_eq!(again.lscs(&name(0)).unwrap().len(), 1);
        assert!(again.lscs(&name(1)).unwrap().is_empty());
        assert_eq!(
            again.device(&name(1)).unwrap().unwrap().status,
            OperationStatus::InProgress
        );
        drop(again);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_log_is_checkpointed_by_its_own_thread_not_by_a_write() {
        let (store, dir) = store("checkpoint", 0);
        let db = dir.join(SqliteStore::DATABASE_FILE);
        let threshold: u32 = store
            .conn
            .lock()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(threshold, super::WAL_AUTOCHECKPOINT_BACKSTOP);
        let size = || std::fs::metadata(&db).unwrap().len();
        let before = size();
        // Enough commits to wake the checkpointer, far too few pages for the backstop: only
        // the checkpointer copies them into the database file.
        for i in 0..2 * super::CHECKPOINT_EVERY as usize {
            let mut new = NewDevice::new(name(i));
            new.operation = Operation::InstallUpgrade(KeyPolicy::default());
            store.add_device(&new, t(0)).unwrap();
        }
        // A wait with a generous bound, not a timing assertion.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while size() == before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(size() > before, "the database file never grew: {before}");
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_or_panicking_write_undoes_only_itself() {
        let (store, dir) = store("failing", 2);
        store.begin_attempt(&name(0), t(1)).unwrap();
        store.record_lsc_issued(&name(0), &lsc(0), t(2)).unwrap();
        // The same serial again: refused, and nothing of it is kept.
        assert!(store.record_lsc_issued(&name(1), &lsc(0), t(2)).is_err());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.conn.write::<()>(None, true, false, |tx| {
                tx.execute("DELETE FROM devices", []).unwrap();
                panic!("a bug in a write");
            })
        }));
        assert!(panicked.is_err());
        // Both devices are still there, and the store still writes.
        assert!(store.device(&name(1)).unwrap().is_some());
        enroll(&store, 1);
        assert_eq!(store.lscs(&name(1)).unwrap().len(), 1);
        drop(store);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
