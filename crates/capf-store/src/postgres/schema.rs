//! The PostgreSQL schema and its migrations: PostgreSQL's own list, numbered from 1.
//!
//! Version 1 is SQLite's schema at its version 6, table for table and constraint for
//! constraint; version 2 adds what only a cluster needs (node leases, the cluster's key check,
//! the cluster's CAPF certificate); version 3 is SQLite's version 7 (scheduled jobs, the
//! directory sync). The version is the one row of `capf_schema`. Each step runs
//! in one transaction holding an advisory lock, so nodes starting at once apply it once; DDL is
//! transactional in PostgreSQL, so a failed step leaves the previous version. A database at a
//! version above [`PG_SCHEMA_VERSION`] was written by newer code and is refused. Append new
//! steps; never edit one that has shipped.
//!
//! Names compare ignoring ASCII case as SQLite's `COLLATE NOCASE` does: `citext` (a trusted
//! extension: the database's owner may create it) with the "C" collation, so `lower` folds ASCII
//! only and names sort by bytes, as SQLite sorts them.

use postgres::Client;

use super::pg;
use crate::Error;

/// Version 1: SQLite's version 6.
const V1: &str = r#"
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE devices (
    name citext COLLATE "C" NOT NULL PRIMARY KEY,
    description TEXT NOT NULL,
    device_pool TEXT NOT NULL,
    model TEXT NOT NULL,
    operation TEXT NOT NULL
        CHECK (operation IN ('none', 'install_upgrade', 'delete', 'troubleshoot')),
    key_order TEXT CHECK (key_order IN ('rsa_only', 'ec_only', 'ec_preferred_rsa_backup')),
    key_size INTEGER CHECK (key_size IN (1024, 2048, 3072, 4096)),
    key_curve TEXT CHECK (key_curve IN ('P-256', 'P-384', 'P-521')),
    auth_mode TEXT NOT NULL,
    auth_hash BYTEA CHECK (auth_hash IS NULL OR length(auth_hash) = 32),
    complete_by BIGINT,
    status TEXT NOT NULL
        CHECK (status IN ('none', 'pending', 'in_progress', 'success', 'failed', 'expired')),
    failure_reason TEXT,
    last_error TEXT,
    attempts BIGINT NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
    ec_key_generation_failed BOOLEAN NOT NULL,
    auth_failures BIGINT NOT NULL CHECK (auth_failures BETWEEN 0 AND 4294967295),
    last_auth_failure BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (CASE WHEN operation = 'install_upgrade'
                THEN key_order IS NOT NULL AND key_size IS NOT NULL AND key_curve IS NOT NULL
                ELSE key_order IS NULL AND key_size IS NULL AND key_curve IS NULL END),
    CHECK ((status = 'failed') = (failure_reason IS NOT NULL)),
    CHECK (CASE WHEN operation = 'none' THEN status IN ('none', 'success')
                ELSE status IN ('pending', 'in_progress', 'failed', 'expired') END)
);
CREATE INDEX devices_by_pool ON devices (device_pool);
CREATE INDEX devices_by_model ON devices (model);
CREATE INDEX devices_by_status ON devices (status, complete_by);

CREATE TABLE lscs (
    serial BYTEA NOT NULL PRIMARY KEY CHECK (length(serial) > 0),
    seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    device citext COLLATE "C" NOT NULL,
    der BYTEA NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('issued', 'installed', 'stale', 'superseded', 'deleted', 'revoked')),
    state_changed_at BIGINT NOT NULL
);
CREATE INDEX lscs_by_device ON lscs (device, state, issued_at);
CREATE INDEX lscs_by_state ON lscs (state, issued_at);
CREATE INDEX lscs_by_expiry ON lscs (state, not_after);

CREATE TABLE troubleshoot_results (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device citext COLLATE "C" NOT NULL REFERENCES devices (name) ON DELETE CASCADE,
    cert_type INTEGER CHECK (cert_type BETWEEN 0 AND 255),
    der BYTEA,
    fetched_at BIGINT NOT NULL,
    CHECK ((cert_type IS NULL) = (der IS NULL))
);
CREATE INDEX troubleshoot_by_device ON troubleshoot_results (device, id);

CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    device citext COLLATE "C",
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    actor TEXT
);
CREATE INDEX audit_by_device ON audit (device, id);

CREATE TABLE device_templates (
    name citext COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(name) > 0),
    description TEXT NOT NULL,
    device_pool TEXT NOT NULL,
    model TEXT NOT NULL,
    operation TEXT NOT NULL
        CHECK (operation IN ('none', 'install_upgrade', 'delete', 'troubleshoot')),
    key_order TEXT CHECK (key_order IN ('rsa_only', 'ec_only', 'ec_preferred_rsa_backup')),
    key_size INTEGER CHECK (key_size IN (1024, 2048, 3072, 4096)),
    key_curve TEXT CHECK (key_curve IN ('P-256', 'P-384', 'P-521')),
    auth_mode TEXT NOT NULL,
    complete_by BIGINT,
    updated_at BIGINT NOT NULL,
    CHECK (CASE WHEN operation = 'install_upgrade'
                THEN key_order IS NOT NULL AND key_size IS NOT NULL AND key_curve IS NOT NULL
                ELSE key_order IS NULL AND key_size IS NULL AND key_curve IS NULL END)
);

CREATE TABLE ca_requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device citext COLLATE "C" NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('online-ca', 'offline-ca')),
    csr BYTEA NOT NULL CHECK (length(csr) > 0),
    public_key BYTEA NOT NULL CHECK (length(public_key) > 0),
    ca_request_id TEXT,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'issued', 'delivered', 'stale', 'failed')),
    lsc_serial BYTEA,
    failure TEXT,
    received_at BIGINT NOT NULL,
    state_changed_at BIGINT NOT NULL,
    CHECK ((state IN ('issued', 'delivered', 'stale')) = (lsc_serial IS NOT NULL)),
    CHECK ((state = 'failed') = (failure IS NOT NULL))
);
CREATE INDEX ca_requests_by_device ON ca_requests (device, state, id);
CREATE INDEX ca_requests_by_state ON ca_requests (state, id);
CREATE INDEX ca_requests_by_lsc ON ca_requests (lsc_serial) WHERE lsc_serial IS NOT NULL;

CREATE TABLE online_ca (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    host TEXT NOT NULL CHECK (length(host) > 0),
    port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    ca_type TEXT NOT NULL CHECK (ca_type IN ('est', 'microsoft')),
    username TEXT NOT NULL,
    sealed_password BYTEA NOT NULL CHECK (length(sealed_password) > 12),
    template TEXT,
    label TEXT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE admin_accounts (
    name citext COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    role TEXT NOT NULL CHECK (role IN ('admin', 'read-only')),
    password_hash TEXT NOT NULL CHECK (length(password_hash) > 0),
    created_at BIGINT NOT NULL,
    login_failures BIGINT NOT NULL CHECK (login_failures BETWEEN 0 AND 4294967295),
    last_login_failure BIGINT,
    last_login BIGINT
);

CREATE TABLE api_tokens (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account citext COLLATE "C" NOT NULL REFERENCES admin_accounts (name) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_tokens_by_account ON api_tokens (account, id);
"#;

/// Version 2: the cluster. An attempt in progress belongs to the node running it until its
/// lease runs out (`lease_node`, `lease_until`, exactly when the status is in_progress, or
/// NULL for attempts begun before the upgrade); the check of the authentication-string key every
/// node must share (an HMAC of a fixed text under it, which reveals nothing of the key); the
/// cluster's one CAPF certificate with its key sealed under that key, and a generation number
/// that each replacement raises, so every node sees a replacement on its next look.
const V2: &str = "
ALTER TABLE devices ADD COLUMN lease_node TEXT, ADD COLUMN lease_until BIGINT,
    ADD CHECK (status = 'in_progress' OR (lease_node IS NULL AND lease_until IS NULL));
CREATE INDEX devices_in_progress ON devices (lease_node, lease_until) WHERE status = 'in_progress';

CREATE TABLE cluster (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_check BYTEA NOT NULL CHECK (length(key_check) = 32),
    created_at BIGINT NOT NULL
);

CREATE TABLE capf_certificate (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    certificate_pem TEXT NOT NULL CHECK (length(certificate_pem) > 0),
    sealed_key BYTEA NOT NULL CHECK (length(sealed_key) > 12),
    generation BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
";

/// Version 3: SQLite's version 7 (issue 17): scheduled jobs, their refused items, and what the
/// directory sync remembers.
const V3: &str = r#"
CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL CHECK (length(kind) > 0),
    description TEXT NOT NULL,
    payload TEXT NOT NULL,
    due BIGINT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    singleton BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    node TEXT,
    finished_at BIGINT,
    devices_changed BIGINT CHECK (devices_changed >= 0),
    failure TEXT,
    CHECK ((state IN ('running', 'succeeded', 'failed')) = (started_at IS NOT NULL)),
    CHECK ((started_at IS NULL) = (node IS NULL)),
    CHECK ((state IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CHECK ((state IN ('succeeded', 'failed')) = (devices_changed IS NOT NULL)),
    CHECK ((state = 'failed') = (failure IS NOT NULL))
);
CREATE INDEX jobs_due ON jobs (state, due, id);
CREATE UNIQUE INDEX jobs_singleton ON jobs (kind)
    WHERE singleton AND state IN ('scheduled', 'running');

CREATE TABLE job_errors (
    job BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job, seq)
);

CREATE TABLE directory_devices (
    name citext COLLATE "C" NOT NULL PRIMARY KEY,
    dn TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);

CREATE TABLE directory_sync (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    first_sync_at BIGINT NOT NULL,
    last_sync_at BIGINT NOT NULL
);
"#;

/// Version 4: SQLite's version 8: a job's lease and its claim count, so a job whose node died
/// or restarted is claimed again; the stored directory configuration.
const V4: &str = "
CREATE TABLE directory_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL,
    bind_dn TEXT NOT NULL,
    sealed_password BYTEA NOT NULL CHECK (length(sealed_password) > 12),
    base TEXT NOT NULL,
    filter TEXT NOT NULL,
    device_name TEXT NOT NULL,
    template TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
ALTER TABLE jobs ADD COLUMN claims BIGINT NOT NULL DEFAULT 0 CHECK (claims >= 0),
    ADD COLUMN lease_until BIGINT;
UPDATE jobs SET claims = 1 WHERE started_at IS NOT NULL;
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 'running';
";

/// The migration steps, in order: step `i` takes the database from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The PostgreSQL schema version this code creates and understands.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock that serializes migrations across nodes ("CAPF" in ASCII).
const MIGRATION_LOCK: i64 = 0x4341_5046;

/// Brings the database to [`PG_SCHEMA_VERSION`].
pub(crate) fn migrate(client: &mut Client) -> Result<(), Error> {
    migrate_with(client, MIGRATIONS)
}

/// The database's schema version (0 for an empty database).
pub(crate) fn version(client: &mut Client) -> Result<i64, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('capf_schema') IS NOT NULL", &[])
        .and_then(|r| r.try_get(0))
        .map_err(pg("reading the schema version"))?;
    if !exists {
        return Ok(0);
    }
    client
        .query_opt("SELECT version FROM capf_schema", &[])
        .map_err(pg("reading the schema version"))?
        .map_or(Ok(0), |r| {
            r.try_get::<_, i64>(0)
                .map_err(pg("reading the schema version"))
        })
}

pub(crate) fn migrate_with(client: &mut Client, steps: &[&str]) -> Result<(), Error> {
    let supported = steps.len() as i64;
    let check = |found: i64| {
        if found > supported {
            Err(Error::SchemaTooNew { found, supported })
        } else {
            Ok(())
        }
    };
    let found = version(client)?;
    check(found)?;
    if found == supported {
        return Ok(());
    }
    loop {
        let mut tx = client
            .transaction()
            .map_err(pg("beginning a schema migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(pg("locking the schema for a migration"))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS capf_schema (version BIGINT NOT NULL)")
            .map_err(pg("creating the schema version table"))?;
        let version = tx
            .query_opt("SELECT version FROM capf_schema", &[])
            .map_err(pg("reading the schema version"))?
            .map_or(Ok(0), |r| {
                r.try_get::<_, i64>(0)
                    .map_err(pg("reading the schema version"))
            })?;
        check(version)?;
        let Some(step) = usize::try_from(version).ok().and_then(|v| steps.get(v)) else {
            return Ok(());
        };
        tx.batch_execute(step)
            .map_err(pg("applying a schema migration"))?;
        tx.execute("DELETE FROM capf_schema", &[])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO capf_schema (version) VALUES ($1)",
                    &[&(version + 1)],
                )
            })
            .map_err(pg("recording the schema version"))?;
        tx.commit().map_err(pg("committing a schema migration"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceName, PgStore, SessionStore};

    fn client() -> (Client, String) {
        let db = capf_test_support::postgres::cluster().database();
        let client = Client::connect(&db.url, postgres::NoTls).unwrap();
        (client, db.url)
    }

    #[test]
    fn applies_every_step_in_order_once() {
        let (mut c, _) = client();
        let steps = [
            "CREATE TABLE a (x INTEGER);",
            "INSERT INTO a VALUES (1);",
            "INSERT INTO a VALUES (2);",
        ];
        migrate_with(&mut c, &steps[..2]).unwrap();
        assert_eq!(version(&mut c).unwrap(), 2);
        migrate_with(&mut c, &steps).unwrap();
        migrate_with(&mut c, &steps).unwrap();
        assert_eq!(version(&mut c).unwrap(), 3);
        let rows: Vec<i32> = c
            .query("SELECT x FROM a ORDER BY x", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(rows, [1, 2]);
    }

    #[test]
    fn a_failing_step_leaves_the_previous_version() {
        let (mut c, _) = client();
        let steps = [
            "CREATE TABLE a (x INTEGER);",
            "CREATE TABLE b (y INTEGER); NOT SQL",
        ];
        assert!(matches!(
            migrate_with(&mut c, &steps),
            Err(Error::Postgres { .. })
        ));
        assert_eq!(version(&mut c).unwrap(), 1);
        let b: bool = c
            .query_one("SELECT to_regclass('b') IS NOT NULL", &[])
            .unwrap()
            .get(0);
        assert!(!b);
    }

    #[test]
    fn an_upgrade_from_version_1_keeps_the_data() {
        let (mut c, url) = client();
        migrate_with(&mut c, &MIGRATIONS[..1]).unwrap();
        c.batch_execute(
            "INSERT INTO devices (name, description, device_pool, model, operation, key_order, \
             key_size, key_curve, auth_mode, status, attempts, ec_key_generation_failed, \
             auth_failures, created_at, updated_at) VALUES ('SEP001122334455', 'lobby', 'Lobby', \
             '', 'install_upgrade', 'rsa_only', 2048, 'P-256', 'null_string', 'in_progress', 1, \
             false, 0, 1, 1)",
        )
        .unwrap();
        let store = PgStore::connect(url.parse().unwrap(), [9; 32]).unwrap();
        assert_eq!(version(&mut c).unwrap(), PG_SCHEMA_VERSION);
        let name = DeviceName::new("sep001122334455").unwrap();
        let device = store.device(&name).unwrap().unwrap();
        assert_eq!(device.description, "lobby");
        assert_eq!(device.device_pool, "Lobby");
        assert_eq!(device.attempts, 1);
        // An attempt begun before the upgrade has no lease: any node may take it over.
        let lease: (Option<String>, Option<i64>) = c
            .query_one("SELECT lease_node, lease_until FROM devices", &[])
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!(lease, (None, None));
    }

    #[test]
    fn creates_the_latest_schema_and_names_compare_ignoring_case() {
        let (mut c, _) = client();
        migrate(&mut c).unwrap();
        assert_eq!(version(&mut c).unwrap(), PG_SCHEMA_VERSION);
        for bad in [
            // the constraints hold as in SQLite
            "INSERT INTO ca_requests (device, mode, csr, public_key, state, received_at, \
             state_changed_at) VALUES ('SEP1', 'offline-ca', '\\x30', '\\x30', 'failed', 1, 1)",
            "INSERT INTO admin_accounts (name, role, password_hash, created_at, login_failures) \
             VALUES ('a', 'root', 'h', 1, 0)",
        ] {
            assert!(c.batch_execute(bad).is_err(), "{bad}");
        }
        c.batch_execute("INSERT INTO settings VALUES ('k', 'v')")
            .unwrap();
        c.batch_execute(
            "INSERT INTO audit (at, device, action, detail) VALUES (1, 'SEPaa', 'x', 'y')",
        )
        .unwrap();
        let n: i64 = c
            .query_one("SELECT count(*) FROM audit WHERE device = 'sepAA'", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }
}
