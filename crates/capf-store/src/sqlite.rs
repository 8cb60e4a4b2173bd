//! [`SqliteStore`]: both store traits on an embedded SQLite database. This file opens the
//! database and holds what both share (the connection, transactions, row encodings, the audit
//! log); `session` implements [`SessionStore`](crate::SessionStore), `admin`
//! [`AdminStore`](crate::AdminStore), over the work in bulk in `bulk`.

use core::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use capf_lsc::{Curve, DeviceName, KeyOrder, KeyPolicy, RsaBits};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, params};

use crate::auth::{self, AUTH_KEY_LEN};
use crate::types::hex;
use crate::{
    AuthMode, Device, Error, LscRecord, LscState, NewDevice, Operation, OperationStatus, schema,
};

mod accounts;
mod admin;
mod bulk;
mod ca;
mod group_commit;
pub(crate) mod jobs;
mod online_ca;
mod session;

// The row encodings the PostgreSQL backend shares (one set of rules for both).
#[cfg(feature = "postgres")]
pub(crate) use accounts::{RawAccount, account_from_raw};
#[cfg(feature = "postgres")]
pub(crate) use bulk::apply as apply_bulk_change;
#[cfg(feature = "postgres")]
pub(crate) use bulk::{RawTemplate, template_parse};
#[cfg(feature = "postgres")]
pub(crate) use ca::Raw as RawCaRequest;
#[cfg(feature = "postgres")]
pub(crate) use session::succeed;

pub use group_commit::WriteStats;
use group_commit::{Db, Shared};

/// The store on an embedded SQLite database (bundled SQLite):
/// [`SessionStore`](crate::SessionStore) and [`AdminStore`](crate::AdminStore), so also a
/// [`DeviceStore`](crate::DeviceStore).
///
/// The database is opened in WAL mode with a 5 s busy timeout (retried every millisecond) and
/// every write in an IMMEDIATE transaction, so several processes (the running server and an
/// administration CLI) can use the same file at once: a writer waits for another instead of
/// failing with "database is locked". Foreign keys are on, and a durable write's commit is
/// synced (it survives a power loss): the store syncs the write-ahead log after it, or, where
/// WAL cannot work, `synchronous` is FULL. One connection is shared behind a mutex.
///
/// Writes are committed in groups (issue 19): a write that finds other writes waiting for the
/// connection leaves its transaction open for them, the last one commits them all (one sync),
/// and each caller returns only after that commit, so a write is durable when its call
/// returns; each write runs in its own savepoint, so one that fails undoes only itself.
/// [`SqliteStore::write_stats`] counts them.
///
/// Times are stored as whole unix seconds: sub-second parts are dropped, and what the store
/// returns is what it stored.
pub struct SqliteStore {
    conn: Arc<Shared>,
    key: [u8; AUTH_KEY_LEN],
    path: Option<PathBuf>,
    /// Who this handle's changes are audited as ([`crate::AdminStore::acting_as`]).
    actor: Option<String>,
}

/// Shows the database path, never the key.
impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The database file's name in the data directory.
    pub const DATABASE_FILE: &'static str = "capf.sqlite";
    /// The HMAC key file's name in the data directory.
    pub const KEY_FILE: &'static str = "auth-string.key";
    /// How long a write waits for another connection's write to finish.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// Opens the store in `data_dir`, creating the directory (mode 0700), the database
    /// ([`Self::DATABASE_FILE`], mode 0600, migrated to the current schema) and the HMAC key
    /// file ([`Self::KEY_FILE`]: 32 random bytes, mode 0600, created atomically) when missing.
    /// An existing directory looser than that is tightened first ([`crate::secure_data_dir`]).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::Random`], [`Error::KeyFilePermissions`] when the key file is
    /// accessible by group or others, [`Error::KeyFileLength`] when it is not 32 bytes,
    /// [`Error::SchemaTooNew`] for a database written by newer code, or a database error.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, Error> {
        crate::data_dir::secure_data_dir(data_dir)?;
        let key = auth::load_or_create_key(&data_dir.join(Self::KEY_FILE))?;
        let path = data_dir.join(Self::DATABASE_FILE);
        crate::data_dir::create_private_file(&path)?;
        let mut conn = Connection::open(&path).map_err(Error::db("opening the database"))?;
        configure(&mut conn)?;
        // The journal mode is a property of the file, kept once set; "memory" or "delete" come
        // back only where WAL cannot work, and the store still works there, with less
        // concurrency.
        let mode = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(Error::db("switching the database to WAL mode"))?;
        schema::migrate(&mut conn)?;
        // In WAL mode the store syncs the log itself, after the commits that must be durable
        // (group_commit.rs; the migrations above were synced by `FULL`); elsewhere `FULL`
        // syncs every commit.
        let wal = mode
            .eq_ignore_ascii_case("wal")
            .then(|| group_commit::Wal::of(&path));
        if wal.is_some() {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(Error::db("setting synchronous mode"))?;
        }
        // The log is checkpointed on its own thread; the writer's own checkpoint only past a
        // backstop (group_commit.rs).
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            group_commit::WAL_AUTOCHECKPOINT_BACKSTOP,
        )
        .map_err(Error::db("setting the checkpoint threshold"))?;
        let mut second = Connection::open(&path).map_err(Error::db("opening the database"))?;
        configure(&mut second)?;
        let checkpointer =
            group_commit::Checkpointer::start(second).map_err(|source| Error::Io {
                action: "starting the checkpoint thread for",
                path: path.clone(),
                source,
            })?;
        Ok(SqliteStore {
            conn: Arc::new(Shared::new(conn, Some(checkpointer), wal)),
            key,
            path: Some(path),
            actor: None,
        })
    }

    /// A store in memory, with the given HMAC key (for tests).
    ///
    /// # Errors
    /// A database error.
    pub fn open_in_memory(hmac_key: [u8; 32]) -> Result<SqliteStore, Error> {
        let mut conn =
            Connection::open_in_memory().map_err(Error::db("opening an in-memory database"))?;
        configure(&mut conn)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Shared::new(conn, None, None)),
            key: hmac_key,
            path: None,
            actor: None,
        })
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// SQLite's `PRAGMA quick_check` (the b-trees' structure, without comparing indexes to
    /// their tables, so it is fast enough for every start): a server checks its store before
    /// serving, rather than failing each session on a damaged page (END_SESSION 7 to everyone).
    ///
    /// # Errors
    /// [`Error::Damaged`] with what the check found, also when SQLite cannot even run it on a
    /// malformed file; another database error.
    pub fn check_integrity(&self) -> Result<(), Error> {
        let path = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(":memory:"));
        let conn = self.lock();
        let rows = conn.prepare("PRAGMA quick_check").and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        });
        let problems = match rows {
            Ok(rows) => rows.into_iter().filter(|r| r != "ok").collect::<Vec<_>>(),
            Err(rusqlite::Error::SqliteFailure(e, message))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
                ) =>
            {
                vec![message.unwrap_or_else(|| e.to_string())]
            }
            Err(source) => return Err(Error::db("checking integrity")(source)),
        };
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Damaged { path, problems })
        }
    }

    /// SQLite's `PRAGMA integrity_check`: the problems it finds (empty when the database is
    /// sound).
    ///
    /// # Errors
    /// A database error.
    pub fn integrity_check(&self) -> Result<Vec<String>, Error> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("PRAGMA integrity_check")
            .map_err(Error::db("checking integrity"))?;
        let rows = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(Error::db("checking integrity"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::db("checking integrity"))?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// The connection, for reads. A read may see the writes of a group not yet committed
    /// (they are committed before any of their callers returns).
    fn lock(&self) -> MutexGuard<'_, Db> {
        self.conn.lock()
    }

    /// How many writes, commits and synced commits this store (and every handle sharing its
    /// connection) has made: what an enrollment costs the disk (issue 19).
    pub fn write_stats(&self) -> WriteStats {
        self.conn.stats()
    }

    /// Runs `f` as one write, committed (in a group, see [`SqliteStore`]) before this returns;
    /// the group's transaction is IMMEDIATE (the write lock is taken up front, so a busy
    /// database makes it wait, up to the busy timeout, instead of failing on the first write).
    fn write<T>(
        &self,
        device: Option<&str>,
        f: impl FnOnce(&Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.conn.write(device, true, false, |tx| {
            let mark = self.audit_mark(tx)?;
            let out = f(tx)?;
            self.stamp_actor(tx, mark)?;
            Ok(out)
        })
    }

    /// As [`SqliteStore::write`], but the write need not be durable when this returns: its
    /// commit does not sync, and the next synced commit (any write's) makes it durable with
    /// its own (WAL frames are synced in order, so a crash loses at most the latest unsynced
    /// writes, never one before a synced one). For a record nothing depends on until a later
    /// durable write: the beginning of an attempt.
    fn write_lazily<T>(
        &self,
        device: Option<&str>,
        f: impl FnOnce(&Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.conn.write(device, false, false, |tx| {
            let mark = self.audit_mark(tx)?;
            let out = f(tx)?;
            self.stamp_actor(tx, mark)?;
            Ok(out)
        })
    }

    /// A handle sharing this store's connection whose changes are audited as `actor`'s.
    pub(crate) fn with_actor(&self, actor: &str) -> SqliteStore {
        SqliteStore {
            conn: Arc::clone(&self.conn),
            key: self.key,
            path: self.path.clone(),
            actor: Some(actor.to_owned()),
        }
    }

    /// The audit log's last entry id before a write, when this handle acts for an account.
    fn audit_mark(&self, tx: &Connection) -> Result<Option<i64>, Error> {
        if self.actor.is_none() {
            return Ok(None);
        }
        tx.query_row("SELECT coalesce(max(id), 0) FROM audit", [], |r| r.get(0))
            .map(Some)
            .map_err(Error::db("reading the audit log"))
    }

    /// Names this handle's account on every audit entry the write appended (after `mark`), in
    /// the write's own transaction: every change path appends its entries in one place or
    /// another, and this covers them all at once.
    fn stamp_actor(&self, tx: &Connection, mark: Option<i64>) -> Result<(), Error> {
        if let (Some(actor), Some(mark)) = (&self.actor, mark) {
            tx.execute(
                "UPDATE audit SET actor = ?1 WHERE id > ?2 AND actor IS NULL",
                params![actor, mark],
            )
            .map_err(Error::db("naming the account in the audit log"))?;
        }
        Ok(())
    }

    /// Runs `f` as one write that is rolled back (a dry run) or committed.
    fn write_or_roll_back<T>(
        &self,
        roll_back: bool,
        f: impl FnOnce(&Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.conn.write(None, true, roll_back, |tx| {
            let mark = self.audit_mark(tx)?;
            let out = f(tx)?;
            self.stamp_actor(tx, mark)?;
            Ok(out)
        })
    }

    /// Loads the device, lets `f` change it, and (when `f` says what it did) stores it and
    /// logs `action` with that detail, all in one transaction. Returns the device as stored.
    fn change(
        &self,
        name: &str,
        now: SystemTime,
        action: &'static str,
        f: impl FnOnce(&Connection, &mut DeviceRow) -> Result<Option<String>, Error>,
    ) -> Result<Device, Error> {
        self.change_in(true, name, now, action, f)
    }

    /// [`SqliteStore::change`], durable when this returns or (not `durable`) with the next
    /// durable write ([`SqliteStore::write_lazily`]).
    fn change_in(
        &self,
        durable: bool,
        name: &str,
        now: SystemTime,
        action: &'static str,
        f: impl FnOnce(&Connection, &mut DeviceRow) -> Result<Option<String>, Error>,
    ) -> Result<Device, Error> {
        let work = |tx: &Connection| {
            let mut row = load_required(tx, name)?;
            let before = row.clone();
            let Some(detail) = f(tx, &mut row)? else {
                return Ok(row.device);
            };
            store_changed_device(tx, Some(&before), &mut row, now, action, &detail)?;
            // As stored: not read back (issue 19: work done twice).
            Ok(row.device)
        };
        if durable {
            self.write(Some(name), work)
        } else {
            self.write_lazily(Some(name), work)
        }
    }

    fn tag(&self, device: &str, auth_string: Option<&str>) -> Result<Option<Vec<u8>>, Error> {
        auth_string
            .map(|s| {
                auth::validate(device, s)?;
                Ok(auth::tag(&self.key, device, s))
            })
            .transpose()
    }
}

fn configure(conn: &mut Connection) -> Result<(), Error> {
    // SQLite's own busy timeout sleeps ever longer between tries (100 ms after the first few),
    // so a waiting process rarely hits the short gaps between a busy writer's transactions and
    // can be starved into "database is locked". Trying again every millisecond, for up to the
    // same 5 s, catches those gaps.
    let mut started = Instant::now();
    conn.busy_handler(Some(move |count: i32| {
        if count == 0 {
            started = Instant::now();
        }
        if started.elapsed() >= SqliteStore::BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(BUSY_RETRY);
        true
    }))
    .map_err(Error::db("setting the busy handler"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(Error::db("turning foreign keys on"))?;
    // Every statement of the session and administration paths stays prepared: rusqlite's
    // default of 16 evicted some on each enrollment, re-planned on the next (issue 19).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // And stays planned: without the query planner stability guarantee, SQLite re-plans a
    // statement whose plan might depend on a bound value (an equality next to an ORDER BY,
    // as in finding a device's open certificate request) each time that value changes.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(Error::db("fixing query plans"))?;
    // A batch's savepoints keep their pages in memory: past 64 kB SQLite spilled them to a
    // temporary file, created and deleted once per batch.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(Error::db("keeping temporary data in memory"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(Error::db("setting synchronous mode"))?;
    Ok(())
}

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// How long a connection waits before trying a locked database again.
const BUSY_RETRY: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// Encodings

/// Unix seconds, rounded down.
pub(crate) fn to_unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            i64::try_from(secs).map_or(i64::MIN, |s| -s)
        }
    }
}

/// `t` as a column of the store gives it back: whole seconds.
fn as_stored(t: SystemTime) -> SystemTime {
    from_unix(to_unix(t), "", "").unwrap_or(t)
}

pub(crate) fn from_unix(
    secs: i64,
    table: &'static str,
    column: &'static str,
) -> Result<SystemTime, Error> {
    let t = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    t.ok_or(Error::Corrupt {
        table,
        column,
        value: secs.to_string(),
    })
}

/// A device name read back from the store's own rows: it was valid when it was written, so one
/// that does not parse was edited by hand or damaged.
pub(crate) fn name_from_db(
    text: String,
    table: &'static str,
    column: &'static str,
) -> Result<DeviceName, Error> {
    DeviceName::new(&text).map_err(|_| Error::Corrupt {
        table,
        column,
        value: text,
    })
}

pub(crate) fn from_unix_opt(
    secs: Option<i64>,
    table: &'static str,
    column: &'static str,
) -> Result<Option<SystemTime>, Error> {
    secs.map(|s| from_unix(s, table, column)).transpose()
}

/// The operation as (operation, key_order, key_size, key_curve) columns.
pub(crate) fn operation_columns(
    op: &Operation,
) -> (
    &'static str,
    Option<&'static str>,
    Option<u16>,
    Option<&'static str>,
) {
    match op {
        Operation::None => ("none", None, None, None),
        Operation::InstallUpgrade(policy) => (
            "install_upgrade",
            Some(match policy.order {
                KeyOrder::RsaOnly => "rsa_only",
                KeyOrder::EcOnly => "ec_only",
                KeyOrder::EcPreferredRsaBackup => "ec_preferred_rsa_backup",
            }),
            Some(policy.rsa.bits()),
            Some(policy.curve.name()),
        ),
        Operation::Delete => ("delete", None, None, None),
        Operation::Troubleshoot => ("troubleshoot", None, None, None),
    }
}

pub(crate) fn operation_from_columns(
    op: &str,
    order: Option<&str>,
    size: Option<i64>,
    curve: Option<&str>,
) -> Result<Operation, Error> {
    let parsed = match (op, order, size, curve) {
        ("none", None, None, None) => Some(Operation::None),
        ("delete", None, None, None) => Some(Operation::Delete),
        ("troubleshoot", None, None, None) => Some(Operation::Troubleshoot),
        ("install_upgrade", Some(order), Some(size), Some(curve)) => {
            let order = match order {
                "rsa_only" => Some(KeyOrder::RsaOnly),
                "ec_only" => Some(KeyOrder::EcOnly),
                "ec_preferred_rsa_backup" => Some(KeyOrder::EcPreferredRsaBackup),
                _ => None,
            };
            let rsa = usize::try_from(size)
                .ok()
                .and_then(|s| RsaBits::from_bits(s).ok());
            let curve = Curve::ALL.into_iter().find(|c| c.name() == curve);
            match (order, rsa, curve) {
                (Some(order), Some(rsa), Some(curve)) => {
                    Some(Operation::InstallUpgrade(KeyPolicy { order, rsa, curve }))
                }
                _ => None,
            }
        }
        _ => None,
    };
    parsed.ok_or_else(|| Error::Corrupt {
        table: "devices",
        column: "operation",
        value: format!("{op} {order:?} {size:?} {curve:?}"),
    })
}

// ---------------------------------------------------------------------------------------------
// Devices

/// A device as stored: the public record plus the authentication-string tag.
#[derive(Clone)]
pub(crate) struct DeviceRow {
    pub(crate) device: Device,
    pub(crate) auth_hash: Option<Vec<u8>>,
}

pub(crate) const DEVICE_COLUMNS: &str = "name, description, device_pool, model, operation, key_order, \
     key_size, key_curve, auth_mode, auth_hash, complete_by, status, failure_reason, last_error, \
     attempts, ec_key_generation_failed, auth_failures, last_auth_failure, updated_at";

/// A `devices` row as SQLite returns it.
pub(crate) struct RawDevice {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) device_pool: String,
    pub(crate) model: String,
    pub(crate) operation: String,
    pub(crate) key_order: Option<String>,
    pub(crate) key_size: Option<i64>,
    pub(crate) key_curve: Option<String>,
    pub(crate) auth_mode: String,
    pub(crate) auth_hash: Option<Vec<u8>>,
    pub(crate) complete_by: Option<i64>,
    pub(crate) status: String,
    pub(crate) failure_reason: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) ec_key_generation_failed: bool,
    pub(crate) auth_failures: u32,
    pub(crate) last_auth_failure: Option<i64>,
    pub(crate) updated_at: i64,
}

impl RawDevice {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawDevice> {
        Ok(RawDevice {
            name: row.get(0)?,
            description: row.get(1)?,
            device_pool: row.get(2)?,
            model: row.get(3)?,
            operation: row.get(4)?,
            key_order: row.get(5)?,
            key_size: row.get(6)?,
            key_curve: row.get(7)?,
            auth_mode: row.get(8)?,
            auth_hash: row.get(9)?,
            complete_by: row.get(10)?,
            status: row.get(11)?,
            failure_reason: row.get(12)?,
            last_error: row.get(13)?,
            attempts: row.get(14)?,
            ec_key_generation_failed: row.get(15)?,
            auth_failures: row.get(16)?,
            last_auth_failure: row.get(17)?,
            updated_at: row.get(18)?,
        })
    }

    pub(crate) fn parse(self) -> Result<DeviceRow, Error> {
        let corrupt = |column, value: &str| Error::Corrupt {
            table: "devices",
            column,
            value: value.to_owned(),
        };
        let operation = operation_from_columns(
            &self.operation,
            self.key_order.as_deref(),
            self.key_size,
            self.key_curve.as_deref(),
        )?;
        let auth_mode = AuthMode::from_db(&self.auth_mode)
            .ok_or_else(|| corrupt("auth_mode", &self.auth_mode))?;
        let status = OperationStatus::from_db(&self.status, self.failure_reason)
            .ok_or_else(|| corrupt("status", &self.status))?;
        Ok(DeviceRow {
            device: Device {
                name: name_from_db(self.name, "devices", "name")?,
                description: self.description,
                device_pool: self.device_pool,
                model: self.model,
                operation,
                auth_mode,
                has_auth_string: self.auth_hash.is_some(),
                complete_by: from_unix_opt(self.complete_by, "devices", "complete_by")?,
                status,
                last_error: self.last_error,
                attempts: self.attempts,
                ec_key_generation_failed: self.ec_key_generation_failed,
                auth_failures: self.auth_failures,
                last_auth_failure: from_unix_opt(
                    self.last_auth_failure,
                    "devices",
                    "last_auth_failure",
                )?,
                updated_at: from_unix(self.updated_at, "devices", "updated_at")?,
            },
            auth_hash: self.auth_hash,
        })
    }
}

fn load(conn: &Connection, name: &str) -> Result<Option<DeviceRow>, Error> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE name = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([name], RawDevice::read).optional())
        .map_err(Error::db_device("loading the device", name))?
        .map(RawDevice::parse)
        .transpose()
}

fn load_required(conn: &Connection, name: &str) -> Result<DeviceRow, Error> {
    load(conn, name)?.ok_or_else(|| Error::UnknownDevice {
        name: name.to_owned(),
    })
}

/// Stores a changed device, its `updated_at` set to `now`, with the audit entry `action`
/// `detail` in the same transaction (every change has one).
fn store_changed_device(
    conn: &Connection,
    before: Option<&DeviceRow>,
    row: &mut DeviceRow,
    now: SystemTime,
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    // The times as the database keeps them (whole seconds), so the device returned is the
    // one stored.
    row.device.updated_at = as_stored(now);
    row.device.complete_by = row.device.complete_by.map(as_stored);
    row.device.last_auth_failure = row.device.last_auth_failure.map(as_stored);
    row.device.has_auth_string = row.auth_hash.is_some();
    // Only the columns that changed (issue 19): SQLite rewrites the entries of every index on
    // a column an UPDATE sets, changed or not (the device pool's and the model's on each of
    // an enrollment's three writes).
    let new = DeviceColumns::of(row);
    let old = before.map(DeviceColumns::of);
    let old = old.as_ref().map(DeviceColumns::values);
    let name = row.device.name.as_str();
    let mut sql = String::from("UPDATE devices SET ");
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&name];
    for (i, (column, value)) in new.values().into_iter().enumerate() {
        let changed = column == "updated_at"
            || old
                .as_ref()
                .is_none_or(|old| old[i].1.to_sql().ok() != value.to_sql().ok());
        if changed {
            if values.len() > 1 {
                sql.push_str(", ");
            }
            values.push(value);
            let _ = write!(sql, "{column} = ?{}", values.len());
        }
    }
    sql.push_str(" WHERE name = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(values)))
        .map_err(Error::db_device("storing the device", name))?;
    append_audit(conn, now, Some(name), action, detail)
}

/// A device row's values as its columns hold them, for [`store_changed_device`].
struct DeviceColumns<'a> {
    row: &'a DeviceRow,
    operation: (
        &'static str,
        Option<&'static str>,
        Option<u16>,
        Option<&'static str>,
    ),
    auth_mode: &'static str,
    status: &'static str,
    failure_reason: Option<&'a str>,
    complete_by: Option<i64>,
    last_auth_failure: Option<i64>,
    updated_at: i64,
}

impl<'a> DeviceColumns<'a> {
    fn of(row: &'a DeviceRow) -> Self {
        let d = &row.device;
        DeviceColumns {
            row,
            operation: operation_columns(&d.operation),
            auth_mode: d.auth_mode.as_db(),
            status: d.status.as_db(),
            failure_reason: d.status.failure_reason(),
            complete_by: d.complete_by.map(to_unix),
            last_auth_failure: d.last_auth_failure.map(to_unix),
            updated_at: to_unix(d.updated_at),
        }
    }

    /// Every column an update may set (all but the name), `updated_at` last.
    fn values(&self) -> [(&'static str, &dyn rusqlite::ToSql); 18] {
        let d = &self.row.device;
        let (operation, key_order, key_size, key_curve) = &self.operation;
        [
            ("description", &d.description),
            ("device_pool", &d.device_pool),
            ("model", &d.model),
            ("operation", operation),
            ("key_order", key_order),
            ("key_size", key_size),
            ("key_curve", key_curve),
            ("auth_mode", &self.auth_mode),
            ("auth_hash", &self.row.auth_hash),
            ("complete_by", &self.complete_by),
            ("status", &self.status),
            ("failure_reason", &self.failure_reason),
            ("last_error", &d.last_error),
            ("attempts", &d.attempts),
            ("ec_key_generation_failed", &d.ec_key_generation_failed),
            ("auth_failures", &d.auth_failures),
            ("last_auth_failure", &self.last_auth_failure),
            ("updated_at", &self.updated_at),
        ]
    }
}

/// Inserts a new device row (status Pending, or None for no operation).
fn insert_device(
    conn: &Connection,
    new: &NewDevice,
    auth_hash: Option<&[u8]>,
    now: SystemTime,
) -> rusqlite::Result<()> {
    let status = if new.operation.is_none() {
        OperationStatus::None
    } else {
        OperationStatus::Pending
    };
    let (operation, key_order, key_size, key_curve) = operation_columns(&new.operation);
    conn.prepare_cached(
        "INSERT INTO devices (name, description, device_pool, model, operation, \
         key_order, key_size, key_curve, auth_mode, auth_hash, complete_by, status, \
         failure_reason, last_error, attempts, ec_key_generation_failed, auth_failures, \
         last_auth_failure, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, \
         ?8, ?9, ?10, ?11, ?12, NULL, NULL, 0, 0, 0, NULL, ?13, ?13)",
    )?
    .execute(params![
        new.name.as_str(),
        new.description,
        new.device_pool,
        new.model,
        operation,
        key_order,
        key_size,
        key_curve,
        new.auth_mode.as_db(),
        auth_hash,
        new.complete_by.map(to_unix),
        status.as_db(),
        to_unix(now),
    ])?;
    Ok(())
}

/// The audit detail of a device registered.
pub(crate) fn added_detail(new: &NewDevice, has_auth_string: bool) -> String {
    format!(
        "operation {}, complete by {}, auth mode {}, authentication string {}",
        new.operation,
        describe_time(new.complete_by),
        new.auth_mode,
        if has_auth_string { "set" } else { "not set" },
    )
}

fn append_audit(
    conn: &Connection,
    at: SystemTime,
    device: Option<&str>,
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    conn.prepare_cached("INSERT INTO audit (at, device, action, detail) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut stmt| stmt.execute(params![to_unix(at), device, action, detail]))
        .map_err(|source| Error::Database {
            action: "appending to the audit log",
            device: device.map(str::to_owned),
            source,
        })?;
    Ok(())
}

pub(crate) fn describe_time(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "none".to_owned(), |t| format!("unix {}", to_unix(t)))
}

// ---------------------------------------------------------------------------------------------
// LSCs

pub(crate) const LSC_COLUMNS: &str =
    "serial, device, der, not_before, not_after, issued_at, state, state_changed_at";

pub(crate) struct RawLsc {
    pub(crate) serial: Vec<u8>,
    pub(crate) device: String,
    pub(crate) der: Vec<u8>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) issued_at: i64,
    pub(crate) state: String,
    pub(crate) state_changed_at: i64,
}

impl RawLsc {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawLsc> {
        Ok(RawLsc {
            serial: row.get(0)?,
            device: row.get(1)?,
            der: row.get(2)?,
            not_before: row.get(3)?,
            not_after: row.get(4)?,
            issued_at: row.get(5)?,
            state: row.get(6)?,
            state_changed_at: row.get(7)?,
        })
    }

    pub(crate) fn parse(self) -> Result<LscRecord, Error> {
        Ok(LscRecord {
            state: LscState::from_db(&self.state).ok_or_else(|| Error::Corrupt {
                table: "lscs",
                column: "state",
                value: self.state.clone(),
            })?,
            serial: self.serial,
            device: name_from_db(self.device, "lscs", "device")?,
            der: self.der,
            not_before: from_unix(self.not_before, "lscs", "not_before")?,
            not_after: from_unix(self.not_after, "lscs", "not_after")?,
            issued_at: from_unix(self.issued_at, "lscs", "issued_at")?,
            state_changed_at: from_unix(self.state_changed_at, "lscs", "state_changed_at")?,
        })
    }
}

/// Every row `sql` selects with `params`, each read by `read` (the statement cached).
fn all_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare_cached(sql)?
        .query_map(params, read)?
        .collect::<Result<Vec<_>, _>>()
}

/// Checks an LSC about to be recorded (issued or imported) for `device`: a serial, a
/// certificate, and notBefore no later than notAfter.
pub(crate) fn check_lsc(
    device: &str,
    serial: &[u8],
    der: &[u8],
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidLsc {
        serial: hex(serial),
        device: device.to_owned(),
        reason,
    };
    if serial.is_empty() {
        return Err(invalid("the serial number is empty"));
    }
    if der.is_empty() {
        return Err(invalid("the certificate is empty"));
    }
    if not_after < not_before {
        return Err(invalid("notAfter is before notBefore"));
    }
    Ok(())
}

fn query_lscs(
    conn: &Connection,
    filter: &str,
    param: &dyn rusqlite::ToSql,
    action: &'static str,
) -> Result<Vec<LscRecord>, Error> {
    let sql = format!("SELECT {LSC_COLUMNS} FROM lscs WHERE {filter} ORDER BY issued_at, rowid");
    let raws = all_rows(conn, &sql, [param], RawLsc::read).map_err(Error::db(action))?;
    raws.into_iter().map(RawLsc::parse).collect()
}

fn load_lsc(conn: &Connection, serial: &[u8]) -> Result<Option<LscRecord>, Error> {
    let sql = format!("SELECT {LSC_COLUMNS} FROM lscs WHERE serial = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([serial], RawLsc::read).optional())
        .map_err(Error::db("loading an LSC"))?
        .map(RawLsc::parse)
        .transpose()
}

/// Moves the device's LSCs in state `from` to `to`; returns their serials in hex.
/// One device's LSCs in one state, oldest first (served by the `lscs_by_device` index).
const DEVICE_LSCS_IN_STATE: &str =
    "SELECT serial FROM lscs WHERE device = ?1 AND state = ?2 ORDER BY issued_at, rowid";

fn move_lscs(
    conn: &Connection,
    device: &str,
    from: LscState,
    to: LscState,
    now: SystemTime,
) -> Result<Vec<String>, Error> {
    let serials = all_rows(
        conn,
        DEVICE_LSCS_IN_STATE,
        params![device, from.as_str()],
        |r| r.get::<_, Vec<u8>>(0),
    )
    .map_err(Error::db_device("finding LSCs to move", device))?;
    let mut moved = Vec::new();
    for serial in serials {
        set_lsc_state(conn, &serial, to, now)?;
        moved.push(hex(&serial));
    }
    Ok(moved)
}

fn set_lsc_state(
    conn: &Connection,
    serial: &[u8],
    state: LscState,
    now: SystemTime,
) -> Result<(), Error> {
    conn.prepare_cached("UPDATE lscs SET state = ?2, state_changed_at = ?3 WHERE serial = ?1")
        .and_then(|mut stmt| stmt.execute(params![serial, state.as_str(), to_unix(now)]))
        .map_err(Error::db("changing an LSC's state"))?;
    Ok(())
}

pub(crate) fn list_of(serials: &[String]) -> String {
    serials.join(", ")
}

#[cfg(test)]
mod tests;
