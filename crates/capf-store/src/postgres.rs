//! [`PgStore`]: both store traits on PostgreSQL, for several CAPF nodes on one database (a
//! cluster). This file connects (a small pool of synchronous clients), runs the schema
//! migrations and holds what both traits share; `session` implements
//! [`SessionStore`](crate::SessionStore), `admin` [`AdminStore`](crate::AdminStore), over
//! `bulk`, `ca` and `accounts`, each the PostgreSQL side of the SQLite module of the same name.
//!
//! Concurrency is the database's: every write is one READ COMMITTED transaction that locks the
//! rows it changes (`SELECT ... FOR UPDATE` on the device, the request or the LSC) before it
//! reads them, so two nodes changing one device run one after the other, and the second sees
//! what the first did. A transaction that loses a deadlock or a serialization check is tried
//! again. Row encodings (times as unix seconds, the operation's columns, the device row's
//! parsing) are SQLite's, shared.

use core::fmt;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, Transaction};

use crate::auth::{self, AUTH_KEY_LEN};
use crate::sqlite::{
    DEVICE_COLUMNS, DeviceRow, LSC_COLUMNS, RawDevice, RawLsc, from_unix, operation_columns,
    to_unix,
};
use crate::types::hex;
use crate::{Device, Error, LscRecord, LscState, NewDevice, OperationStatus};

mod accounts;
mod admin;
mod bulk;
mod ca;
mod cluster;
mod jobs;
pub(crate) mod schema;
mod session;

pub use cluster::{CapfCertificate, NodeId};
pub use schema::PG_SCHEMA_VERSION;

/// A parameter list of a statement.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The store on PostgreSQL: [`SessionStore`](crate::SessionStore) and
/// [`AdminStore`](crate::AdminStore), so also a [`DeviceStore`](crate::DeviceStore).
///
/// Several processes (capfd nodes, capfctl) share one database. Each holds a small pool of
/// connections ([`PgStore::MAX_CONNECTIONS`]); a connection found broken is dropped and a new one
/// made on the next call, so a node carries on by itself once a lost database is back. The
/// authentication-string key (HMAC) stays outside the database, in each node's data directory
/// (the same file on every node, which [`PgStore::connect`] checks against the cluster's).
pub struct PgStore {
    pool: Arc<Pool>,
    key: [u8; AUTH_KEY_LEN],
    node: NodeId,
    lease: Duration,
    /// Who this handle's changes are audited as ([`crate::AdminStore::acting_as`]).
    actor: Option<Arc<str>>,
}

/// Shows the node and the database's host, never the password or the key.
impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("hosts", &self.pool.config.get_hosts())
            .field("dbname", &self.pool.config.get_dbname())
            .field("node", &self.node)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// How many connections one store opens at most.
    pub const MAX_CONNECTIONS: usize = 16;
    /// How long a node's lease on an attempt in progress lasts unless renewed (see
    /// [`PgStore::with_node`]).
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
    /// How long connecting waits for the server.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Connects to the database of `config` (a `postgres://` URL parsed by the client, the
    /// password already set in it), migrates it to the current schema, and checks that it was
    /// set up with the same authentication-string key (`hmac_key`, the data directory's key
    /// file), recording it when it is new. The node is named after the host name and process
    /// id until [`PgStore::with_node`] names it.
    ///
    /// # Errors
    /// [`Error::Postgres`] when the server cannot be reached or refuses,
    /// [`Error::SchemaTooNew`] for a database written by newer code,
    /// [`Error::ClusterKeyMismatch`] for another key.
    pub fn connect(
        mut config: postgres::Config,
        hmac_key: [u8; AUTH_KEY_LEN],
    ) -> Result<PgStore, Error> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Self::CONNECT_TIMEOUT);
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("capf");
        }
        let pool = Arc::new(Pool {
            config,
            idle: Mutex::new(Vec::new()),
            open: Mutex::new(0),
            freed: Condvar::new(),
        });
        let store = PgStore {
            pool,
            key: hmac_key,
            node: NodeId::default_for_process(),
            lease: Self::DEFAULT_LEASE,
            actor: None,
        };
        {
            let mut conn = store.pool.get()?;
            schema::migrate(&mut conn.client)?;
        }
        store.write(None, |tx| cluster::check_key(tx, &store.key))?;
        Ok(store)
    }

    /// This handle as node `node`, whose leases on attempts in progress last `lease` (renewed
    /// by [`SessionStore::renew_leases`](crate::SessionStore::renew_leases)).
    #[must_use]
    pub fn with_node(mut self, node: NodeId, lease: Duration) -> PgStore {
        self.node = node;
        self.lease = lease;
        self
    }

    /// The node this handle acts as.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The cluster's CAPF certificate, or `None` before the first node stored one. A node
    /// compares its [`CapfCertificate::generation`] with the one it serves, and reloads a
    /// newer one: a replacement reaches every node without a restart.
    ///
    /// # Errors
    /// [`Error::SealedPassword`] when the key cannot be unsealed with this node's key file, or
    /// a database error.
    pub fn capf_certificate(&self) -> Result<Option<CapfCertificate>, Error> {
        self.read(|tx| cluster::load_capf_certificate(tx, &self.key))
    }

    /// The cluster's CAPF certificate; when there is none yet, `candidate` (a certificate and
    /// its key this node made) becomes it. Under a database lock, so of nodes starting at once
    /// exactly one stores its candidate and the others get that one.
    ///
    /// # Errors
    /// As [`PgStore::capf_certificate`].
    pub fn capf_certificate_or_insert(
        &self,
        candidate_pem: &str,
        candidate_key: &crate::Secret,
        now: SystemTime,
    ) -> Result<CapfCertificate, Error> {
        self.write(None, |tx| {
            tx.exec(
                "SELECT pg_advisory_xact_lock($1)",
                &[&cluster::CAPF_CERTIFICATE_LOCK],
                "locking the CAPF certificate",
            )?;
            if let Some(existing) = cluster::load_capf_certificate(tx, &self.key)? {
                return Ok(existing);
            }
            cluster::store_capf_certificate(
                tx,
                &self.key,
                candidate_pem,
                candidate_key,
                self.node.as_str(),
                now,
            )
        })
    }

    /// Replaces the cluster's CAPF certificate (`capfctl capf-cert ...` on a shared store),
    /// audited; its generation goes up by one, and every node loads it on its next look.
    ///
    /// # Errors
    /// As [`PgStore::capf_certificate`].
    pub fn replace_capf_certificate(
        &self,
        certificate_pem: &str,
        key_pem: &crate::Secret,
        now: SystemTime,
    ) -> Result<CapfCertificate, Error> {
        let by = self
            .actor
            .as_deref()
            .map_or_else(|| self.node.to_string(), str::to_owned);
        self.write(None, |tx| {
            tx.exec(
                "SELECT pg_advisory_xact_lock($1)",
                &[&cluster::CAPF_CERTIFICATE_LOCK],
                "locking the CAPF certificate",
            )?;
            cluster::store_capf_certificate(tx, &self.key, certificate_pem, key_pem, &by, now)
        })
    }

    /// A handle sharing this store's pool whose changes are audited as `actor`'s.
    fn with_actor(&self, actor: &str) -> PgStore {
        PgStore {
            pool: Arc::clone(&self.pool),
            key: self.key,
            node: self.node.clone(),
            lease: self.lease,
            actor: Some(Arc::from(actor)),
        }
    }

    /// Runs `f` on a connection, outside a transaction (reads of one statement).
    fn read<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let mut conn = self.pool.get()?;
        let Conn { client, cache } = &mut *conn;
        let mut tx = Tx {
            inner: Inner::Plain(client),
            cache,
            actor: self.actor.clone(),
        };
        f(&mut tx)
    }

    /// Runs `f` in one transaction and commits it; one that loses a deadlock or a
    /// serialization check is run again (a few times).
    fn write<T>(
        &self,
        device: Option<&str>,
        mut f: impl FnMut(&mut Tx<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.write_once(device, false, &mut f) {
                Err(e) if tries < WRITE_TRIES && is_retryable(&e) => {
                    std::thread::sleep(Duration::from_millis(2 * tries));
                }
                result => return result,
            }
        }
    }

    /// Runs `f` in one transaction, rolled back (a dry run) or committed; not tried again.
    fn write_once<T>(
        &self,
        device: Option<&str>,
        roll_back: bool,
        f: &mut dyn FnMut(&mut Tx<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let fail = |action| {
            move |source| Error::Postgres {
                action,
                device: device.map(str::to_owned),
                source,
            }
        };
        let mut conn = self.pool.get()?;
        let Conn { client, cache } = &mut *conn;
        let t = client
            .transaction()
            .map_err(fail("beginning a transaction"))?;
        let mut tx = Tx {
            inner: Inner::Tx(t),
            cache,
            actor: self.actor.clone(),
        };
        let out = f(&mut tx)?;
        let Inner::Tx(t) = tx.inner else {
            return Ok(out);
        };
        if roll_back {
            t.rollback().map_err(fail("rolling a dry run back"))?;
        } else {
            t.commit().map_err(fail("committing a transaction"))?;
        }
        Ok(out)
    }

    /// Loads the device (locked), lets `f` change it, and (when `f` says what it did) stores it
    /// and logs `action` with that detail, all in one transaction.
    fn change(
        &self,
        name: &str,
        now: SystemTime,
        action: &'static str,
        mut f: impl FnMut(&mut Tx<'_>, &mut DeviceRow) -> Result<Option<String>, Error>,
    ) -> Result<Device, Error> {
        self.write(Some(name), |tx| {
            let mut row = load_locked(tx, name)?;
            let Some(detail) = f(tx, &mut row)? else {
                return Ok(row.device);
            };
            store_changed_device(tx, &mut row, now, action, &detail)?;
            Ok(row.device)
        })
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

/// How many times a write that lost a deadlock or a serialization check runs in all.
const WRITE_TRIES: u64 = 5;

fn is_retryable(e: &Error) -> bool {
    let source = match e {
        Error::Postgres { source, .. } => source,
        Error::BulkItem { source, .. } => return is_retryable(source),
        _ => return false,
    };
    matches!(
        source.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The server's message and SQLSTATE of a PostgreSQL error, or the client's for a connection
/// error: one line.
pub(crate) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(inner) => format!("{e}: {inner}"),
            None => e.to_string(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The pool

struct Pool {
    config: postgres::Config,
    idle: Mutex<Vec<Conn>>,
    open: Mutex<usize>,
    freed: Condvar,
}

/// A connection and its prepared statements.
struct Conn {
    client: Client,
    cache: HashMap<String, Statement>,
}

/// How often a call waiting for a free connection looks again.
const POOL_WAIT: Duration = Duration::from_secs(1);
/// Prepared statements kept per connection (the store's statements are a few dozen; dynamic
/// filters add at most a few hundred).
const CACHE_LIMIT: usize = 512;

impl Pool {
    fn lock_idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(self: &Arc<Self>) -> Result<Pooled, Error> {
        let connect_error = |source| Error::Postgres {
            action: "connecting to the database",
            device: None,
            source,
        };
        loop {
            if let Some(conn) = self.lock_idle().pop() {
                if conn.client.is_closed() {
                    self.release_slot();
                    continue;
                }
                return Ok(Pooled {
                    pool: Arc::clone(self),
                    conn: Some(conn),
                });
            }
            {
                let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
                if *open < PgStore::MAX_CONNECTIONS {
                    *open += 1;
                    drop(open);
                    return match self.config.connect(NoTls) {
                        Ok(client) => Ok(Pooled {
                            pool: Arc::clone(self),
                            conn: Some(Conn {
                                client,
                                cache: HashMap::new(),
                            }),
                        }),
                        Err(e) => {
                            self.release_slot();
                            Err(connect_error(e))
                        }
                    };
                }
                // Every connection is in use: wait for one to come back (checking again every
                // second, so a connection dropped as broken frees its slot too).
                let (guard, _) = self
                    .freed
                    .wait_timeout(open, POOL_WAIT)
                    .unwrap_or_else(PoisonError::into_inner);
                drop(guard);
            }
        }
    }

    fn release_slot(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open = open.saturating_sub(1);
        self.freed.notify_one();
    }
}

/// A connection out of the pool, back into it when dropped (or closed when it broke).
struct Pooled {
    pool: Arc<Pool>,
    conn: Option<Conn>,
}

impl core::ops::Deref for Pooled {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Always Some until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl core::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if conn.client.is_closed() {
                self.pool.release_slot();
            } else {
                if conn.cache.len() > CACHE_LIMIT {
                    conn.cache.clear();
                }
                self.pool.lock_idle().push(conn);
                self.pool.freed.notify_one();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One unit of work: a transaction (or a plain connection for reads) with the connection's
// prepared statements

enum Inner<'c> {
    Tx(Transaction<'c>),
    Plain(&'c mut Client),
}

pub(crate) struct Tx<'c> {
    inner: Inner<'c>,
    cache: &'c mut HashMap<String, Statement>,
    actor: Option<Arc<str>>,
}

impl Tx<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(stmt) = self.cache.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = match &mut self.inner {
            Inner::Tx(t) => t.prepare(sql)?,
            Inner::Plain(c) => c.prepare(sql)?,
        };
        self.cache.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    fn query_raw(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, postgres::Error> {
        let stmt = self.statement(sql)?;
        match &mut self.inner {
            Inner::Tx(t) => t.query(&stmt, params),
            Inner::Plain(c) => c.query(&stmt, params),
        }
    }

    fn execute_raw(&mut self, sql: &str, params: Params<'_>) -> Result<u64, postgres::Error> {
        let stmt = self.statement(sql)?;
        match &mut self.inner {
            Inner::Tx(t) => t.execute(&stmt, params),
            Inner::Plain(c) => c.execute(&stmt, params),
        }
    }

    /// Every row `sql` selects.
    pub(crate) fn rows(
        &mut self,
        sql: &str,
        params: Params<'_>,
        action: &'static str,
    ) -> Result<Vec<Row>, Error> {
        self.query_raw(sql, params).map_err(pg(action))
    }

    /// The first row `sql` selects, if any.
    pub(crate) fn opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
        action: &'static str,
    ) -> Result<Option<Row>, Error> {
        Ok(self.rows(sql, params, action)?.into_iter().next())
    }

    /// Runs `sql`; returns how many rows it changed.
    pub(crate) fn exec(
        &mut self,
        sql: &str,
        params: Params<'_>,
        action: &'static str,
    ) -> Result<u64, Error> {
        self.execute_raw(sql, params).map_err(pg(action))
    }

    /// Runs `f` inside a savepoint: undone alone when it fails with an error that `keep` says
    /// the caller goes on after.
    pub(crate) fn savepoint<T>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Inner::Tx(t) = &mut self.inner else {
            return f(self);
        };
        let sp = t.savepoint("capf").map_err(pg("opening a savepoint"))?;
        let mut inner = Tx {
            inner: Inner::Tx(sp),
            cache: self.cache,
            actor: self.actor.clone(),
        };
        let out = f(&mut inner);
        let Inner::Tx(sp) = inner.inner else {
            return out;
        };
        match out {
            Ok(v) => {
                sp.commit().map_err(pg("releasing a savepoint"))?;
                Ok(v)
            }
            Err(e) => {
                sp.rollback().map_err(pg("rolling a savepoint back"))?;
                Err(e)
            }
        }
    }
}

/// A `map_err` adapter for PostgreSQL errors outside any one device.
pub(crate) fn pg(action: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |source| Error::Postgres {
        action,
        device: None,
        source,
    }
}

/// A `map_err` adapter for PostgreSQL errors about one device.
pub(crate) fn pg_device<'a>(
    action: &'static str,
    device: &'a str,
) -> impl FnOnce(postgres::Error) -> Error + 'a {
    move |source| Error::Postgres {
        action,
        device: Some(device.to_owned()),
        source,
    }
}

/// Column `i` of `row` (a type the schema guarantees; a mismatch is a typed error, never a
/// panic).
pub(crate) fn col<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, Error> {
    row.try_get(i).map_err(pg("reading a row"))
}

/// A count column (BIGINT) as a `u32`.
fn col_u32(row: &Row, i: usize, table: &'static str, column: &'static str) -> Result<u32, Error> {
    let v: i64 = col(row, i)?;
    u32::try_from(v).map_err(|_| Error::Corrupt {
        table,
        column,
        value: v.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Devices

fn raw_device(row: &Row) -> Result<RawDevice, Error> {
    Ok(RawDevice {
        name: col(row, 0)?,
        description: col(row, 1)?,
        device_pool: col(row, 2)?,
        model: col(row, 3)?,
        operation: col(row, 4)?,
        key_order: col(row, 5)?,
        key_size: col::<Option<i32>>(row, 6)?.map(i64::from),
        key_curve: col(row, 7)?,
        auth_mode: col(row, 8)?,
        auth_hash: col(row, 9)?,
        complete_by: col(row, 10)?,
        status: col(row, 11)?,
        failure_reason: col(row, 12)?,
        last_error: col(row, 13)?,
        attempts: col_u32(row, 14, "devices", "attempts")?,
        ec_key_generation_failed: col(row, 15)?,
        auth_failures: col_u32(row, 16, "devices", "auth_failures")?,
        last_auth_failure: col(row, 17)?,
        updated_at: col(row, 18)?,
    })
}

pub(crate) fn parse_device(row: &Row) -> Result<DeviceRow, Error> {
    raw_device(row)?.parse()
}

pub(crate) fn load(tx: &mut Tx<'_>, name: &str) -> Result<Option<DeviceRow>, Error> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE name = $1");
    tx.query_raw(&sql, &[&name])
        .map_err(pg_device("loading the device", name))?
        .first()
        .map(parse_device)
        .transpose()
}

pub(crate) fn load_required(tx: &mut Tx<'_>, name: &str) -> Result<DeviceRow, Error> {
    load(tx, name)?.ok_or_else(|| Error::UnknownDevice {
        name: name.to_owned(),
    })
}

/// The device, its row locked until the transaction ends (`FOR UPDATE`).
pub(crate) fn load_locked(tx: &mut Tx<'_>, name: &str) -> Result<DeviceRow, Error> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE name = $1 FOR UPDATE");
    tx.query_raw(&sql, &[&name])
        .map_err(pg_device("loading the device", name))?
        .first()
        .map(parse_device)
        .transpose()?
        .ok_or_else(|| Error::UnknownDevice {
            name: name.to_owned(),
        })
}

/// Stores a changed device, its `updated_at` set to `now`, with the audit entry `action`
/// `detail` in the same transaction. A device that is no longer InProgress loses its lease.
pub(crate) fn store_changed_device(
    tx: &mut Tx<'_>,
    row: &mut DeviceRow,
    now: SystemTime,
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    row.device.updated_at = now;
    let d = &row.device;
    let (operation, key_order, key_size, key_curve) = operation_columns(&d.operation);
    let key_size = key_size.map(i32::from);
    tx.exec(
        "UPDATE devices SET description = $2, device_pool = $3, model = $4, operation = $5, \
         key_order = $6, key_size = $7, key_curve = $8, auth_mode = $9, auth_hash = $10, \
         complete_by = $11, status = $12, failure_reason = $13, last_error = $14, attempts = $15, \
         ec_key_generation_failed = $16, auth_failures = $17, last_auth_failure = $18, \
         updated_at = $19, \
         lease_node = CASE WHEN $12 = 'in_progress' THEN lease_node END, \
         lease_until = CASE WHEN $12 = 'in_progress' THEN lease_until END \
         WHERE name = $1",
        &[
            &d.name.as_str(),
            &d.description,
            &d.device_pool,
            &d.model,
            &operation,
            &key_order,
            &key_size,
            &key_curve,
            &d.auth_mode.as_db(),
            &row.auth_hash,
            &d.complete_by.map(to_unix),
            &d.status.as_db(),
            &d.status.failure_reason(),
            &d.last_error,
            &i64::from(d.attempts),
            &d.ec_key_generation_failed,
            &i64::from(d.auth_failures),
            &d.last_auth_failure.map(to_unix),
            &to_unix(d.updated_at),
        ],
        "storing the device",
    )?;
    append_audit(tx, now, Some(&d.name), action, detail)?;
    settle_stored(row)
}

/// How many devices a bulk insert or update writes per statement.
pub(crate) const BULK_CHUNK: usize = 1000;

/// Registers `devices` (with their authentication-string tags) in one statement, and their
/// audit entries (`action`, `details`) in another: two round trips for the chunk instead of two
/// per device. Returns the position in `devices` of the first one already registered (or given
/// twice), whose row was not written; the caller then fails and the transaction is rolled
/// back, so nothing of the bulk insert is applied.
pub(crate) fn insert_devices(
    tx: &mut Tx<'_>,
    devices: &[NewDevice],
    auth_hashes: &[Option<Vec<u8>>],
    now: SystemTime,
) -> Result<Option<usize>, Error> {
    let mut names = Vec::with_capacity(devices.len());
    let (mut descriptions, mut pools, mut models) = (Vec::new(), Vec::new(), Vec::new());
    let (mut operations, mut orders, mut sizes, mut curves) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut modes, mut completes, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
    for new in devices {
        let (operation, key_order, key_size, key_curve) = operation_columns(&new.operation);
        names.push(new.name.as_str());
        descriptions.push(new.description.as_str());
        pools.push(new.device_pool.as_str());
        models.push(new.model.as_str());
        operations.push(operation);
        orders.push(key_order);
        sizes.push(key_size.map(i32::from));
        curves.push(key_curve);
        modes.push(new.auth_mode.as_db());
        completes.push(new.complete_by.map(to_unix));
        statuses.push(if new.operation.is_none() {
            OperationStatus::None.as_db()
        } else {
            OperationStatus::Pending.as_db()
        });
    }
    let hashes: Vec<Option<&[u8]>> = auth_hashes.iter().map(Option::as_deref).collect();
    let inserted = tx.rows(
        "INSERT INTO devices (name, description, device_pool, model, operation, \
         key_order, key_size, key_curve, auth_mode, auth_hash, complete_by, status, \
         failure_reason, last_error, attempts, ec_key_generation_failed, auth_failures, \
         last_auth_failure, created_at, updated_at) \
         SELECT n, d, p, m, o, ko, ks, kc, am, ah, cb, st, NULL, NULL, 0, false, 0, NULL, $13, $13 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::int4[], $8::text[], $9::text[], $10::bytea[], $11::int8[], $12::text[]) \
         WITH ORDINALITY AS u(n, d, p, m, o, ko, ks, kc, am, ah, cb, st, i) ORDER BY i \
         ON CONFLICT (name) DO NOTHING RETURNING name::text",
        &[
            &names,
            &descriptions,
            &pools,
            &models,
            &operations,
            &orders,
            &sizes,
            &curves,
            &modes,
            &hashes,
            &completes,
            &statuses,
            &to_unix(now),
        ],
        "adding the devices",
    )?;
    if inserted.len() < devices.len() {
        // The first name not written: one registered before, or the second of a name given
        // twice (names compare ignoring case).
        let mut written: Vec<String> = inserted
            .iter()
            .map(|row| col::<String>(row, 0).map(|n| n.to_ascii_lowercase()))
            .collect::<Result<_, _>>()?;
        for (index, name) in names.iter().enumerate() {
            let name = name.to_ascii_lowercase();
            match written.iter().position(|w| *w == name) {
                Some(at) => {
                    written.swap_remove(at);
                }
                None => return Ok(Some(index)),
            }
        }
    }
    let details: Vec<String> = devices
        .iter()
        .zip(auth_hashes)
        .map(|(new, hash)| crate::sqlite::added_detail(new, hash.is_some()))
        .collect();
    append_audits(tx, now, &names, crate::action::DEVICE_BULK_ADDED, &details)?;
    Ok(None)
}

/// One audit entry per device of `names` (`action`, the detail at the same position), in one
/// statement, in that order.
fn append_audits(
    tx: &mut Tx<'_>,
    at: SystemTime,
    names: &[&str],
    action: &str,
    details: &[String],
) -> Result<(), Error> {
    let actor = tx.actor.clone();
    tx.exec(
        "INSERT INTO audit (at, device, action, detail, actor) \
         SELECT $1, d, $2, t, $3 FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS u(d, t, i) \
         ORDER BY i",
        &[&to_unix(at), &action, &actor.as_deref(), &names, &details],
        "appending to the audit log",
    )?;
    Ok(())
}

/// [`store_changed_device`] for many devices at once: their rows in one statement and their
/// audit entries (`action`, `details` at the same positions) in another.
pub(crate) fn store_changed_devices(
    tx: &mut Tx<'_>,
    rows: &mut [DeviceRow],
    now: SystemTime,
    action: &str,
    details: &[String],
) -> Result<(), Error> {
    let n = rows.len();
    let (mut names, mut descriptions, mut pools, mut models) =
        (Vec::with_capacity(n), Vec::new(), Vec::new(), Vec::new());
    let (mut operations, mut orders, mut sizes, mut curves) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut modes, mut hashes, mut completes, mut statuses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut reasons, mut errors, mut attempts, mut ec_failed) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut failures, mut last_failures) = (Vec::new(), Vec::new());
    for row in rows.iter_mut() {
        row.device.updated_at = now;
        let d = &row.device;
        let (operation, key_order, key_size, key_curve) = operation_columns(&d.operation);
        names.push(d.name.as_str());
        descriptions.push(d.description.as_str());
        pools.push(d.device_pool.as_str());
        models.push(d.model.as_str());
        operations.push(operation);
        orders.push(key_order);
        sizes.push(key_size.map(i32::from));
        curves.push(key_curve);
        modes.push(d.auth_mode.as_db());
        hashes.push(row.auth_hash.as_deref());
        completes.push(d.complete_by.map(to_unix));
        statuses.push(d.status.as_db());
        reasons.push(d.status.failure_reason());
        errors.push(d.last_error.as_deref());
        attempts.push(i64::from(d.attempts));
        ec_failed.push(d.ec_key_generation_failed);
        failures.push(i64::from(d.auth_failures));
        last_failures.push(d.last_auth_failure.map(to_unix));
    }
    tx.exec(
        "UPDATE devices SET description = u.d, device_pool = u.p, model = u.m, operation = u.o, \
         key_order = u.ko, key_size = u.ks, key_curve = u.kc, auth_mode = u.am, auth_hash = u.ah, \
         complete_by = u.cb, status = u.st, failure_reason = u.fr, last_error = u.le, \
         attempts = u.at, ec_key_generation_failed = u.ec, auth_failures = u.af, \
         last_auth_failure = u.la, updated_at = $19, \
         lease_node = CASE WHEN u.st = 'in_progress' THEN devices.lease_node END, \
         lease_until = CASE WHEN u.st = 'in_progress' THEN devices.lease_until END \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::int4[], $8::text[], $9::text[], $10::bytea[], $11::int8[], $12::text[], $13::text[], \
         $14::text[], $15::int8[], $16::bool[], $17::int8[], $18::int8[]) \
         AS u(n, d, p, m, o, ko, ks, kc, am, ah, cb, st, fr, le, at, ec, af, la) \
         WHERE devices.name = u.n",
        &[
            &names,
            &descriptions,
            &pools,
            &models,
            &operations,
            &orders,
            &sizes,
            &curves,
            &modes,
            &hashes,
            &completes,
            &statuses,
            &reasons,
            &errors,
            &attempts,
            &ec_failed,
            &failures,
            &last_failures,
            &to_unix(now),
        ],
        "storing the devices",
    )?;
    append_audits(tx, now, &names, action, details)?;
    for row in rows.iter_mut() {
        settle_stored(row)?;
    }
    Ok(())
}

/// The device as a read would return it (whole seconds, the tag's presence), without one.
fn settle_stored(row: &mut DeviceRow) -> Result<(), Error> {
    let d = &mut row.device;
    d.has_auth_string = row.auth_hash.is_some();
    d.updated_at = stored_time(d.updated_at, "devices", "updated_at")?;
    d.complete_by = d
        .complete_by
        .map(|t| stored_time(t, "devices", "complete_by"))
        .transpose()?;
    d.last_auth_failure = d
        .last_auth_failure
        .map(|t| stored_time(t, "devices", "last_auth_failure"))
        .transpose()?;
    Ok(())
}

/// Inserts a new device row (status Pending, or None for no operation).
pub(crate) fn insert_device(
    tx: &mut Tx<'_>,
    new: &NewDevice,
    auth_hash: Option<&[u8]>,
    now: SystemTime,
) -> Result<u64, postgres::Error> {
    let status = if new.operation.is_none() {
        OperationStatus::None
    } else {
        OperationStatus::Pending
    };
    let (operation, key_order, key_size, key_curve) = operation_columns(&new.operation);
    let key_size = key_size.map(i32::from);
    tx.execute_raw(
        "INSERT INTO devices (name, description, device_pool, model, operation, \
         key_order, key_size, key_curve, auth_mode, auth_hash, complete_by, status, \
         failure_reason, last_error, attempts, ec_key_generation_failed, auth_failures, \
         last_auth_failure, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
         $8, $9, $10, $11, $12, NULL, NULL, 0, false, 0, NULL, $13, $13) \
         ON CONFLICT (name) DO NOTHING",
        &[
            &new.name.as_str(),
            &new.description,
            &new.device_pool,
            &new.model,
            &operation,
            &key_order,
            &key_size,
            &key_curve,
            &new.auth_mode.as_db(),
            &auth_hash,
            &new.complete_by.map(to_unix),
            &status.as_db(),
            &to_unix(now),
        ],
    )
}

pub(crate) fn append_audit(
    tx: &mut Tx<'_>,
    at: SystemTime,
    device: Option<&str>,
    action: &str,
    detail: &str,
) -> Result<(), Error> {
    let actor = tx.actor.clone();
    tx.execute_raw(
        "INSERT INTO audit (at, device, action, detail, actor) VALUES ($1, $2, $3, $4, $5)",
        &[&to_unix(at), &device, &action, &detail, &actor.as_deref()],
    )
    .map_err(|source| Error::Postgres {
        action: "appending to the audit log",
        device: device.map(str::to_owned),
        source,
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// LSCs

pub(crate) fn parse_lsc(row: &Row) -> Result<LscRecord, Error> {
    RawLsc {
        serial: col(row, 0)?,
        device: col(row, 1)?,
        der: col(row, 2)?,
        not_before: col(row, 3)?,
        not_after: col(row, 4)?,
        issued_at: col(row, 5)?,
        state: col(row, 6)?,
        state_changed_at: col(row, 7)?,
    }
    .parse()
}

/// The LSCs `filter` selects (`$1` its one parameter), oldest first.
pub(crate) fn query_lscs(
    tx: &mut Tx<'_>,
    filter: &str,
    param: &(dyn ToSql + Sync),
    action: &'static str,
) -> Result<Vec<LscRecord>, Error> {
    let sql = format!("SELECT {LSC_COLUMNS} FROM lscs WHERE {filter} ORDER BY issued_at, seq");
    tx.rows(&sql, &[param], action)?
        .iter()
        .map(parse_lsc)
        .collect()
}

pub(crate) fn load_lsc(tx: &mut Tx<'_>, serial: &[u8]) -> Result<Option<LscRecord>, Error> {
    let sql = format!("SELECT {LSC_COLUMNS} FROM lscs WHERE serial = $1");
    tx.opt(&sql, &[&serial], "loading an LSC")?
        .as_ref()
        .map(parse_lsc)
        .transpose()
}

/// Moves the device's LSCs in state `from` to `to`; returns their serials in hex.
pub(crate) fn move_lscs(
    tx: &mut Tx<'_>,
    device: &str,
    from: LscState,
    to: LscState,
    now: SystemTime,
) -> Result<Vec<String>, Error> {
    let rows = tx
        .query_raw(
            "UPDATE lscs SET state = $3, state_changed_at = $4 WHERE device = $1 AND state = $2 \
             RETURNING serial, issued_at, seq",
            &[&device, &from.as_str(), &to.as_str(), &to_unix(now)],
        )
        .map_err(pg_device("moving LSCs", device))?;
    let mut moved = Vec::with_capacity(rows.len());
    for row in &rows {
        let serial: Vec<u8> = col(row, 0)?;
        let issued_at: i64 = col(row, 1)?;
        let seq: i64 = col(row, 2)?;
        moved.push((issued_at, seq, hex(&serial)));
    }
    moved.sort();
    Ok(moved.into_iter().map(|(_, _, s)| s).collect())
}

pub(crate) fn set_lsc_state(
    tx: &mut Tx<'_>,
    serial: &[u8],
    state: LscState,
    now: SystemTime,
) -> Result<(), Error> {
    tx.exec(
        "UPDATE lscs SET state = $2, state_changed_at = $3 WHERE serial = $1",
        &[&serial, &state.as_str(), &to_unix(now)],
        "changing an LSC's state",
    )?;
    Ok(())
}

/// Inserts an LSC issued at `now` for `device`; a serial already recorded is
/// [`Error::DuplicateSerial`].
pub(crate) fn insert_issued_lsc(
    tx: &mut Tx<'_>,
    device: &str,
    lsc: &crate::IssuedLsc,
    now: SystemTime,
) -> Result<(), Error> {
    let inserted = tx
        .execute_raw(
            "INSERT INTO lscs (serial, device, der, not_before, not_after, issued_at, state, \
             state_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6) \
             ON CONFLICT (serial) DO NOTHING",
            &[
                &lsc.serial,
                &device,
                &lsc.der,
                &to_unix(lsc.not_before),
                &to_unix(lsc.not_after),
                &to_unix(now),
                &LscState::Issued.as_str(),
            ],
        )
        .map_err(pg_device("recording the LSC", device))?;
    if inserted == 0 {
        let owner = load_lsc(tx, &lsc.serial)?.map_or_else(String::new, |l| l.device.into_string());
        return Err(Error::DuplicateSerial {
            serial: hex(&lsc.serial),
            owner,
        });
    }
    Ok(())
}

/// The time as stored (whole seconds), as the store returns it.
pub(crate) fn stored_time(
    t: SystemTime,
    table: &'static str,
    column: &'static str,
) -> Result<SystemTime, Error> {
    from_unix(to_unix(t), table, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_only_deadlocks_and_serialization_failures() {
        assert!(!is_retryable(&Error::EmptyTemplateName));
    }
}
