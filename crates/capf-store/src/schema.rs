//! The schema and its migrations.
//!
//! [`MIGRATIONS`] is an ordered list of SQL steps; step `i` takes the database from
//! `PRAGMA user_version` `i` to `i + 1`, in one transaction (the new user_version is part of
//! it, so a crash leaves the database at one version or the next). A database whose
//! user_version is above the number of steps was written by newer code and is refused.
//! Append new steps; never edit one that has shipped.

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;

/// Version 1: devices, LSCs, troubleshoot results, settings, the audit log.
///
/// Times are unix seconds (INTEGER). Names compare case-insensitively (UCM matches device names
/// that way). The CHECK constraints hold the invariants the code keeps, so a bug or a hand edit
/// that breaks one fails instead of storing it. `auth_mode` has no CHECK so that new modes need
/// no table rebuild. LSC records and audit entries have no foreign key to `devices`: they outlive
/// a removed device, for the audit; troubleshoot results are removed with their device.
const V1: &str = "
CREATE TABLE devices (
    name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    description TEXT NOT NULL,
    device_pool TEXT NOT NULL,
    model TEXT NOT NULL,
    operation TEXT NOT NULL
        CHECK (operation IN ('none', 'install_upgrade', 'delete', 'troubleshoot')),
    key_order TEXT CHECK (key_order IN ('rsa_only', 'ec_only', 'ec_preferred_rsa_backup')),
    key_size INTEGER CHECK (key_size IN (1024, 2048, 3072, 4096)),
    key_curve TEXT CHECK (key_curve IN ('P-256', 'P-384', 'P-521')),
    auth_mode TEXT NOT NULL,
    auth_hash BLOB CHECK (auth_hash IS NULL OR length(auth_hash) = 32),
    complete_by INTEGER,
    status TEXT NOT NULL
        CHECK (status IN ('none', 'pending', 'in_progress', 'success', 'failed', 'expired')),
    failure_reason TEXT,
    last_error TEXT,
    attempts INTEGER NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
    ec_key_generation_failed INTEGER NOT NULL CHECK (ec_key_generation_failed IN (0, 1)),
    auth_failures INTEGER NOT NULL CHECK (auth_failures BETWEEN 0 AND 4294967295),
    last_auth_failure INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    -- the key policy is there exactly when the operation is Install/Upgrade
    CHECK (CASE WHEN operation = 'install_upgrade'
                THEN key_order IS NOT NULL AND key_size IS NOT NULL AND key_curve IS NOT NULL
                ELSE key_order IS NULL AND key_size IS NULL AND key_curve IS NULL END),
    -- a failure reason exactly when the status is failed
    CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
    -- the operation/status pairs the code produces
    CHECK (CASE WHEN operation = 'none' THEN status IN ('none', 'success')
                ELSE status IN ('pending', 'in_progress', 'failed', 'expired') END)
) STRICT;

CREATE TABLE lscs (
    serial BLOB NOT NULL PRIMARY KEY CHECK (length(serial) > 0),
    device TEXT NOT NULL COLLATE NOCASE,
    der BLOB NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('issued', 'installed', 'stale', 'superseded', 'deleted', 'revoked')),
    state_changed_at INTEGER NOT NULL
) STRICT;
CREATE INDEX lscs_by_device ON lscs (device, issued_at);
CREATE INDEX lscs_by_state ON lscs (state, issued_at);

CREATE TABLE troubleshoot_results (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL COLLATE NOCASE REFERENCES devices (name) ON DELETE CASCADE,
    cert_type INTEGER CHECK (cert_type BETWEEN 0 AND 255),
    der BLOB,
    fetched_at INTEGER NOT NULL,
    CHECK ((cert_type IS NULL) = (der IS NULL))
) STRICT;
CREATE INDEX troubleshoot_by_device ON troubleshoot_results (device, id);

CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    device TEXT COLLATE NOCASE,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_device ON audit (device, id);
";

/// Version 2: administration in bulk. Pending certificate requests (public keys received and
/// not yet answered with a certificate), device templates (the guide's Universal Device
/// Template), and the indexes that keep queries over 100,000 devices and reports over 1,000,000
/// LSCs fast: devices by pool, model and status, LSCs by state and expiry.
const V2: &str = "
CREATE TABLE pending_csrs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL COLLATE NOCASE,
    request BLOB NOT NULL CHECK (length(request) > 0),
    received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX pending_csrs_by_device ON pending_csrs (device, id);

CREATE TABLE device_templates (
    name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE CHECK (length(name) > 0),
    description TEXT NOT NULL,
    device_pool TEXT NOT NULL,
    model TEXT NOT NULL,
    operation TEXT NOT NULL
        CHECK (operation IN ('none', 'install_upgrade', 'delete', 'troubleshoot')),
    key_order TEXT CHECK (key_order IN ('rsa_only', 'ec_only', 'ec_preferred_rsa_backup')),
    key_size INTEGER CHECK (key_size IN (1024, 2048, 3072, 4096)),
    key_curve TEXT CHECK (key_curve IN ('P-256', 'P-384', 'P-521')),
    auth_mode TEXT NOT NULL,
    complete_by INTEGER,
    updated_at INTEGER NOT NULL,
    CHECK (CASE WHEN operation = 'install_upgrade'
                THEN key_order IS NOT NULL AND key_size IS NOT NULL AND key_curve IS NOT NULL
                ELSE key_order IS NULL AND key_size IS NULL AND key_curve IS NULL END)
) STRICT;

CREATE INDEX devices_by_pool ON devices (device_pool);
CREATE INDEX devices_by_model ON devices (model);
CREATE INDEX devices_by_status ON devices (status, complete_by);
CREATE INDEX lscs_by_expiry ON lscs (state, not_after);
";

/// Version 3: LSCs by device and state. Every install, issue and delete looks up one device's
/// LSCs in one state; with only `(device, issued_at)` and `(state, issued_at)` to choose from,
/// SQLite took the state index and read every installed LSC of every device, so each
/// enrollment cost time in proportion to all LSCs ever installed.
const V3: &str = "
DROP INDEX lscs_by_device;
CREATE INDEX lscs_by_device ON lscs (device, state, issued_at);
";

/// Version 4: requests to an external CA (issue 13), replacing the `pending_csrs` placeholder.
///
/// The placeholder's rows are dropped, not migrated: only the administration API ever wrote
/// them (no server did), and they hold neither the phone's key nor the mode, so none can become
/// a request an external CA could answer. A request's LSC serial is there exactly when a
/// certificate arrived (Issued, Delivered, Stale), a failure exactly when it Failed; the mode is
/// one of the external CA modes (CAPF signs itself and records no request).
const V4: &str = "
DROP TABLE pending_csrs;

CREATE TABLE ca_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL COLLATE NOCASE,
    mode TEXT NOT NULL CHECK (mode IN ('online-ca', 'offline-ca')),
    csr BLOB NOT NULL CHECK (length(csr) > 0),
    public_key BLOB NOT NULL CHECK (length(public_key) > 0),
    ca_request_id TEXT,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'issued', 'delivered', 'stale', 'failed')),
    lsc_serial BLOB,
    failure TEXT,
    received_at INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL,
    CHECK ((state IN ('issued', 'delivered', 'stale')) = (lsc_serial IS NOT NULL)),
    CHECK ((state = 'failed') = (failure IS NOT NULL))
) STRICT;
CREATE INDEX ca_requests_by_device ON ca_requests (device, state, id);
CREATE INDEX ca_requests_by_state ON ca_requests (state, id);
CREATE INDEX ca_requests_by_lsc ON ca_requests (lsc_serial) WHERE lsc_serial IS NOT NULL;
";

/// Version 5: the Online CA settings (issue 14), one row. The password is sealed
/// (ChaCha20-Poly1305 under a key derived from the data directory's key file), never stored in
/// clear: a copy of the database alone does not reveal it.
const V5: &str = "
CREATE TABLE online_ca (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    host TEXT NOT NULL CHECK (length(host) > 0),
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    ca_type TEXT NOT NULL CHECK (ca_type IN ('est', 'microsoft')),
    username TEXT NOT NULL,
    sealed_password BLOB NOT NULL CHECK (length(sealed_password) > 12),
    template TEXT,
    label TEXT,
    updated_at INTEGER NOT NULL
) STRICT;
";

/// Version 6: administrator accounts of the web administration and their API tokens (issue 18),
/// and who made each change in the audit log (`actor`, an account name; NULL for the server
/// and for tools acting without an account). A token is kept only as its SHA-256 hash; a
/// password only as its PHC hash string. An account's tokens go with it.
const V6: &str = "
ALTER TABLE audit ADD COLUMN actor TEXT;

CREATE TABLE admin_accounts (
    name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE CHECK (length(name) BETWEEN 1 AND 64),
    role TEXT NOT NULL CHECK (role IN ('admin', 'read-only')),
    password_hash TEXT NOT NULL CHECK (length(password_hash) > 0),
    created_at INTEGER NOT NULL,
    login_failures INTEGER NOT NULL CHECK (login_failures BETWEEN 0 AND 4294967295),
    last_login_failure INTEGER,
    last_login INTEGER
) STRICT;

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL COLLATE NOCASE REFERENCES admin_accounts (name) ON DELETE CASCADE,
    token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX api_tokens_by_account ON api_tokens (account, id);
";

/// Version 7: scheduled jobs (issue 17: Run Later bulk jobs, the built-in certificate monitor)
/// and what the directory sync remembers.
///
/// A job's kind and payload are capf-admin's text, never read here. The state columns hold
/// the lifecycle's invariants: a claimed job has its start and node, a finished one its end,
/// a job that ran its result (a failure exactly when it Failed). `jobs_singleton` lets at most
/// one singleton job of a kind be Scheduled or Running, so two servers cannot both schedule the
/// next monitor run. `jobs_due` serves the claim (`state = 'scheduled' AND due <= now`). A
/// job's refused items are rows of `job_errors`, in order, removed with it.
///
/// `directory_devices` are the devices a directory sync found (one row per device, by name),
/// and `directory_sync` one row once the first sync was applied.
const V7: &str = "
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (length(kind) > 0),
    description TEXT NOT NULL,
    payload TEXT NOT NULL,
    due INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    singleton INTEGER NOT NULL CHECK (singleton IN (0, 1)),
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    node TEXT,
    finished_at INTEGER,
    devices_changed INTEGER CHECK (devices_changed >= 0),
    failure TEXT,
    CHECK ((state IN ('running', 'succeeded', 'failed')) = (started_at IS NOT NULL)),
    CHECK ((started_at IS NULL) = (node IS NULL)),
    CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK ((state IN ('succeeded', 'failed')) = (devices_changed IS NOT NULL)),
    CHECK ((state = 'failed') = (failure IS NOT NULL))
) STRICT;
CREATE INDEX jobs_due ON jobs (state, due, id);
CREATE UNIQUE INDEX jobs_singleton ON jobs (kind)
    WHERE singleton = 1 AND state IN ('scheduled', 'running');

CREATE TABLE job_errors (
    job INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job, seq)
) STRICT;

CREATE TABLE directory_devices (
    name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    dn TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
) STRICT;

CREATE TABLE directory_sync (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    first_sync_at INTEGER NOT NULL,
    last_sync_at INTEGER NOT NULL
) STRICT;
";

/// Version 8: a job is leased to the node running it (`lease_until`) and counts its claims
/// (`claims`), so a job whose node died or restarted is claimed again: the claim takes a
/// Running job whose lease ran out (`jobs_lease` serves it). Jobs claimed before the upgrade
/// have no lease and count one claim. `directory_config` is the directory a sync reads (one
/// row), its bind password sealed as the Online CA password is.
const V8: &str = "
CREATE TABLE directory_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    bind_dn TEXT NOT NULL,
    sealed_password BLOB NOT NULL CHECK (length(sealed_password) > 12),
    base TEXT NOT NULL,
    filter TEXT NOT NULL,
    device_name TEXT NOT NULL,
    template TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
ALTER TABLE jobs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0 CHECK (claims >= 0);
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
UPDATE jobs SET claims = 1 WHERE started_at IS NOT NULL;
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
";

/// The migration steps, in order: step `i` takes user_version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8];

/// The schema version this code creates and understands: the number of migration steps.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(conn: &Connection) -> Result<i64, Error> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(Error::db("reading the schema version"))
}

/// Brings the database to [`SCHEMA_VERSION`], one transaction per step.
///
/// The version is read again inside each step's write transaction, so two processes opening a
/// new database at once apply each step once.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), Error> {
    migrate_with(conn, MIGRATIONS)
}

fn migrate_with(conn: &mut Connection, steps: &[&str]) -> Result<(), Error> {
    let supported = steps.len() as i64;
    let check = |found: i64| {
        if found > supported {
            Err(Error::SchemaTooNew { found, supported })
        } else if found < 0 {
            Err(Error::Corrupt {
                table: "PRAGMA",
                column: "user_version",
                value: found.to_string(),
            })
        } else {
            Ok(())
        }
    };
    let found = user_version(conn)?;
    check(found)?;
    if found == supported {
        return Ok(());
    }
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Error::db("beginning a schema migration"))?;
        let version = user_version(&tx)?;
        check(version)?;
        let Some(step) = usize::try_from(version).ok().and_then(|v| steps.get(v)) else {
            return Ok(());
        };
        tx.execute_batch(step)
            .map_err(Error::db("applying a schema migration"))?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(Error::db("recording the schema version"))?;
        tx.commit()
            .map_err(Error::db("committing a schema migration"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_every_step_in_order_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        let steps = [
            "CREATE TABLE a (x INTEGER);",
            "INSERT INTO a VALUES (1);",
            "INSERT INTO a VALUES (2);",
        ];
        migrate_with(&mut conn, &steps[..2]).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 2);
        migrate_with(&mut conn, &steps).unwrap();
        migrate_with(&mut conn, &steps).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 3);
        let rows: Vec<i64> = conn
            .prepare("SELECT x FROM a ORDER BY x")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn a_failing_step_leaves_the_previous_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let steps = ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y); NOT SQL"];
        assert!(matches!(
            migrate_with(&mut conn, &steps),
            Err(Error::Database { .. })
        ));
        assert_eq!(user_version(&conn).unwrap(), 1);
        let b: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(b, 0);
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(Error::SchemaTooNew { found, supported })
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ));
    }

    #[test]
    fn creates_the_latest_schema() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn version_2_keeps_version_1_data_and_adds_the_administration_tables() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute_batch(
            "INSERT INTO devices (name, description, device_pool, model, operation, auth_mode, \
             status, attempts, ec_key_generation_failed, auth_failures, created_at, updated_at) \
             VALUES ('SEP001122334455', '', 'Lobby', '', 'none', 'null_string', 'none', 0, 0, 0, \
             1, 1);",
        )
        .unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..2]).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 2);
        let pool: String = conn
            .query_row("SELECT device_pool FROM devices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pool, "Lobby");
        for name in [
            "pending_csrs",
            "device_templates",
            "devices_by_pool",
            "devices_by_model",
            "devices_by_status",
            "lscs_by_expiry",
        ] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{name}");
        }
    }

    #[test]
    fn version_3_keeps_the_lscs_and_indexes_them_by_device_and_state() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..2]).unwrap();
        conn.execute_batch(
            "INSERT INTO lscs (serial, device, der, not_before, not_after, issued_at, state, \
             state_changed_at) VALUES (x'01', 'SEP001122334455', x'30', 1, 2, 1, 'installed', 1);",
        )
        .unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..3]).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 3);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM lscs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_index_info('lscs_by_device') ORDER BY seqno")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(columns, ["device", "state", "issued_at"]);
    }

    #[test]
    fn version_4_replaces_the_pending_csr_placeholder_with_ca_requests() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..3]).unwrap();
        conn.execute_batch(
            "INSERT INTO pending_csrs (device, request, received_at) \
             VALUES ('SEP001122334455', x'30', 1);",
        )
        .unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..4]).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 4);
        let count = |name: &str| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(count("pending_csrs"), 0);
        assert_eq!(count("ca_requests"), 1);
        // The constraints hold: a Failed request needs its reason, an Issued one its LSC.
        for bad in [
            "INSERT INTO ca_requests (device, mode, csr, public_key, state, received_at, \
             state_changed_at) VALUES ('SEP1', 'offline-ca', x'30', x'30', 'failed', 1, 1)",
            "INSERT INTO ca_requests (device, mode, csr, public_key, state, received_at, \
             state_changed_at) VALUES ('SEP1', 'offline-ca', x'30', x'30', 'issued', 1, 1)",
            "INSERT INTO ca_requests (device, mode, csr, public_key, state, received_at, \
             state_changed_at) VALUES ('SEP1', 'capf', x'30', x'30', 'pending', 1, 1)",
        ] {
            assert!(conn.execute_batch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_7_adds_jobs_and_the_directory_sync_state_with_their_rules() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..6]).unwrap();
        conn.execute_batch(
            "INSERT INTO audit (at, device, action, detail) VALUES (1, 'SEP1', 'x', 'y');",
        )
        .unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..7]).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 7);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let ok = "INSERT INTO jobs (kind, description, payload, due, state, singleton, \
                  created_at) VALUES ('monitor', '', '', 1, 'scheduled', 1, 1)";
        conn.execute_batch(ok).unwrap();
        for bad in [
            // a second scheduled singleton of the kind
            ok,
            // running without its start and node
            "INSERT INTO jobs (kind, description, payload, due, state, singleton, created_at) \
             VALUES ('x', '', '', 1, 'running', 0, 1)",
            // failed without a reason
            "INSERT INTO jobs (kind, description, payload, due, state, singleton, created_at, \
             started_at, node, finished_at, devices_changed) \
             VALUES ('x', '', '', 1, 'failed', 0, 1, 1, 'n', 1, 0)",
            "INSERT INTO jobs (kind, description, payload, due, state, singleton, created_at) \
             VALUES ('', '', '', 1, 'scheduled', 0, 1)",
            "INSERT INTO directory_sync (id, first_sync_at, last_sync_at) VALUES (2, 1, 1)",
        ] {
            assert!(conn.execute_batch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn version_6_keeps_the_audit_and_adds_accounts_tokens_and_the_actor() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..5]).unwrap();
        conn.execute_batch(
            "INSERT INTO audit (at, device, action, detail) VALUES (1, 'SEP1', 'x', 'y');",
        )
        .unwrap();
        migrate_with(&mut conn, &MIGRATIONS[..6]).unwrap();
        assert_eq!(user_version(&conn).unwrap(), 6);
        let actor: Option<String> = conn
            .query_row("SELECT actor FROM audit", [], |r| r.get(0))
            .unwrap();
        assert_eq!(actor, None);
        for bad in [
            "INSERT INTO admin_accounts (name, role, password_hash, created_at, login_failures) \
             VALUES ('a', 'root', 'h', 1, 0)",
            "INSERT INTO admin_accounts (name, role, password_hash, created_at, login_failures) \
             VALUES ('a', 'admin', '', 1, 0)",
            "INSERT INTO api_tokens (account, token_hash, label, created_at) \
             VALUES ('nobody', x'00', '', 1)",
        ] {
            assert!(conn.execute_batch(bad).is_err(), "{bad}");
        }
    }
}
