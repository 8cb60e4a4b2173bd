//! Scheduled jobs (table `jobs`, their refused items in `job_errors`) and the directory sync
//! state (`directory_devices`, `directory_sync`) on SQLite.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    added_detail, all_rows, append_audit, from_unix, from_unix_opt, insert_device, to_unix,
};
use crate::auth::AUTH_KEY_LEN;
use crate::online_ca;
use crate::{
    DirectoryConfigRecord, DirectoryDevice, DirectoryEntry, DirectorySyncOutcome,
    DirectorySyncState, Error, Job, JobResult, JobState, NewJob, action,
};

const COLUMNS: &str = "id, kind, description, payload, due, state, singleton, created_at, \
     started_at, node, finished_at, devices_changed, failure, claims, lease_until";

/// A row as SQLite holds it, before its state and times are parsed.
struct Raw {
    id: i64,
    kind: String,
    description: String,
    payload: String,
    due: i64,
    state: String,
    singleton: bool,
    created_at: i64,
    started_at: Option<i64>,
    node: Option<String>,
    finished_at: Option<i64>,
    devices_changed: Option<i64>,
    failure: Option<String>,
    claims: i64,
    lease_until: Option<i64>,
}

impl Raw {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
        Ok(Raw {
            id: row.get(0)?,
            kind: row.get(1)?,
            description: row.get(2)?,
            payload: row.get(3)?,
            due: row.get(4)?,
            state: row.get(5)?,
            singleton: row.get(6)?,
            created_at: row.get(7)?,
            started_at: row.get(8)?,
            node: row.get(9)?,
            finished_at: row.get(10)?,
            devices_changed: row.get(11)?,
            failure: row.get(12)?,
            claims: row.get(13)?,
            lease_until: row.get(14)?,
        })
    }

    fn parse(self, conn: &Connection) -> Result<Job, Error> {
        let state: JobState = self.state.parse().map_err(|_| Error::Corrupt {
            table: "jobs",
            column: "state",
            value: self.state.clone(),
        })?;
        let result = match self.devices_changed {
            Some(changed) => Some(JobResult {
                devices_changed: u64::try_from(changed).map_err(|_| Error::Corrupt {
                    table: "jobs",
                    column: "devices_changed",
                    value: changed.to_string(),
                })?,
                errors: all_rows(
                    conn,
                    "SELECT message FROM job_errors WHERE job = ?1 ORDER BY seq",
                    [self.id],
                    |r| r.get(0),
                )
                .map_err(Error::db("reading a job's errors"))?,
                failure: self.failure,
            }),
            None => None,
        };
        Ok(Job {
            id: self.id,
            kind: self.kind,
            description: self.description,
            payload: self.payload,
            due: from_unix(self.due, "jobs", "due")?,
            state,
            singleton: self.singleton,
            created_at: from_unix(self.created_at, "jobs", "created_at")?,
            started_at: from_unix_opt(self.started_at, "jobs", "started_at")?,
            node: self.node,
            claims: u32::try_from(self.claims).map_err(|_| Error::Corrupt {
                table: "jobs",
                column: "claims",
                value: self.claims.to_string(),
            })?,
            lease_until: from_unix_opt(self.lease_until, "jobs", "lease_until")?,
            finished_at: from_unix_opt(self.finished_at, "jobs", "finished_at")?,
            result,
        })
    }
}

pub(super) fn load(conn: &Connection, id: i64) -> Result<Option<Job>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], Raw::read).optional())
        .map_err(Error::db("loading a job"))?
        .map(|raw| raw.parse(conn))
        .transpose()
}

fn load_required(conn: &Connection, id: i64) -> Result<Job, Error> {
    load(conn, id)?.ok_or(Error::UnknownJob { id })
}

pub(super) fn list(conn: &Connection, state: Option<JobState>) -> Result<Vec<Job>, Error> {
    let raws = match state {
        Some(state) => all_rows(
            conn,
            &format!("SELECT {COLUMNS} FROM jobs WHERE state = ?1 ORDER BY id"),
            [state.as_str()],
            Raw::read,
        ),
        None => all_rows(
            conn,
            &format!("SELECT {COLUMNS} FROM jobs ORDER BY id"),
            [],
            Raw::read,
        ),
    }
    .map_err(Error::db("listing the jobs"))?;
    raws.into_iter().map(|raw| raw.parse(conn)).collect()
}

pub(super) fn add(tx: &Connection, job: &NewJob, now: SystemTime) -> Result<Job, Error> {
    if job.kind.trim().is_empty() {
        return Err(Error::InvalidJob {
            reason: "the kind is empty",
        });
    }
    tx.prepare_cached(
        "INSERT INTO jobs (kind, description, payload, due, state, singleton, created_at) \
         VALUES (?1, ?2, ?3, ?4, 'scheduled', ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            job.kind,
            job.description,
            job.payload,
            to_unix(job.due),
            job.singleton,
            to_unix(now),
        ])
    })
    .map_err(|source| match source {
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Error::JobAlreadyScheduled {
                kind: job.kind.clone(),
            }
        }
        source => Error::db("storing a job")(source),
    })?;
    let id = tx.last_insert_rowid();
    append_audit(
        tx,
        now,
        None,
        action::JOB_SCHEDULED,
        &format!(
            "job {id} ({}) due unix {}: {}",
            job.kind,
            to_unix(job.due),
            job.description
        ),
    )?;
    load_required(tx, id)
}

pub(super) fn cancel(tx: &Connection, id: i64, now: SystemTime) -> Result<Job, Error> {
    let job = load_required(tx, id)?;
    if job.state != JobState::Scheduled {
        return Err(Error::JobWrongState {
            id,
            state: job.state,
            wanted: "cancelled",
        });
    }
    tx.prepare_cached(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1 \
         AND state = 'scheduled'",
    )
    .and_then(|mut stmt| stmt.execute(params![id, to_unix(now)]))
    .map_err(Error::db("cancelling a job"))?;
    append_audit(
        tx,
        now,
        None,
        action::JOB_CANCELLED,
        &format!("job {id} ({}): {}", job.kind, job.description),
    )?;
    load_required(tx, id)
}

/// The claim: one conditional UPDATE of the earliest due Scheduled job or Running job whose
/// lease ran out. The outer condition is checked again on the row itself, so under a backend
/// whose subquery may read an older snapshot (PostgreSQL, READ COMMITTED) a row another caller
/// claimed first is not claimed twice.
pub(super) fn claim(
    tx: &Connection,
    node: &str,
    lease: Duration,
    now: SystemTime,
) -> Result<Option<Job>, Error> {
    let now_s = to_unix(now);
    let until = now_s.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
    let id: Option<i64> = tx
        .prepare_cached(
            "UPDATE jobs SET state = 'running', started_at = ?2, node = ?1, \
                 claims = claims + 1, lease_until = ?3 \
             WHERE id = (SELECT id FROM jobs WHERE \
                             (state = 'scheduled' AND due <= ?2) \
                          OR (state = 'running' AND (lease_until IS NULL OR lease_until < ?2)) \
                         ORDER BY due, id LIMIT 1) \
               AND ((state = 'scheduled' AND due <= ?2) \
                 OR (state = 'running' AND (lease_until IS NULL OR lease_until < ?2))) \
             RETURNING id",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![node, now_s, until], |r| r.get(0))
                .optional()
        })
        .map_err(Error::db("claiming a due job"))?;
    let Some(id) = id else {
        return Ok(None);
    };
    let job = load_required(tx, id)?;
    append_audit(
        tx,
        now,
        None,
        action::JOB_STARTED,
        &claim_detail(&job, node),
    )?;
    Ok(Some(job))
}

/// The audit detail of a claim: a claim after the first says the job runs again.
pub(crate) fn claim_detail(job: &Job, node: &str) -> String {
    let again = if job.claims > 1 {
        format!(
            " (claim {}: its node stopped before it ended, nothing of it was applied)",
            job.claims
        )
    } else {
        String::new()
    };
    format!(
        "job {} ({}) on {node}{again}: {}",
        job.id, job.kind, job.description
    )
}

pub(super) fn renew(
    tx: &Connection,
    node: &str,
    lease: Duration,
    now: SystemTime,
) -> Result<usize, Error> {
    let until = to_unix(now).saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
    tx.prepare_cached(
        "UPDATE jobs SET lease_until = ?2 WHERE state = 'running' AND node = ?1 \
         AND lease_until IS NOT NULL",
    )
    .and_then(|mut stmt| stmt.execute(params![node, until]))
    .map_err(Error::db("renewing the job leases"))
}

/// Checks that `claimed`'s run still holds its job: Running, under the same claim.
pub(crate) fn check_claim(current: &Job, claimed: &Job) -> Result<(), Error> {
    if current.state != JobState::Running {
        return Err(Error::JobWrongState {
            id: current.id,
            state: current.state,
            wanted: "finished",
        });
    }
    if current.claims != claimed.claims || current.node != claimed.node {
        return Err(Error::JobClaimLost {
            id: current.id,
            node: current.node.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

fn record_result(
    tx: &Connection,
    job: &Job,
    result: &JobResult,
    now: SystemTime,
) -> Result<(), Error> {
    let state = if result.failure.is_some() {
        JobState::Failed
    } else {
        JobState::Succeeded
    };
    tx.prepare_cached(
        "UPDATE jobs SET state = ?2, finished_at = ?3, devices_changed = ?4, failure = ?5, \
         lease_until = NULL WHERE id = ?1 AND state = 'running'",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            job.id,
            state.as_str(),
            to_unix(now),
            i64::try_from(result.devices_changed).unwrap_or(i64::MAX),
            result.failure,
        ])
    })
    .map_err(Error::db("recording a job's result"))?;
    for (seq, message) in result.errors.iter().enumerate() {
        tx.prepare_cached("INSERT INTO job_errors (job, seq, message) VALUES (?1, ?2, ?3)")
            .and_then(|mut stmt| {
                stmt.execute(params![
                    job.id,
                    i64::try_from(seq).unwrap_or(i64::MAX),
                    message
                ])
            })
            .map_err(Error::db("recording a job's errors"))?;
    }
    append_audit(
        tx,
        now,
        None,
        action::JOB_FINISHED,
        &format!(
            "job {} ({}) {state}: {} devices changed, {} errors{}",
            job.id,
            job.kind,
            result.devices_changed,
            result.errors.len(),
            result
                .failure
                .as_deref()
                .map(|f| format!("; {f}"))
                .unwrap_or_default()
        ),
    )
}

pub(super) fn finish(
    tx: &Connection,
    claimed: &Job,
    result: &JobResult,
    now: SystemTime,
) -> Result<Job, Error> {
    let job = load_required(tx, claimed.id)?;
    check_claim(&job, claimed)?;
    record_result(tx, &job, result, now)?;
    load_required(tx, claimed.id)
}

/// The claim is checked first, so a run whose claim was taken over does no work.
pub(super) fn finish_with(
    tx: &Connection,
    claimed: &Job,
    work: impl FnOnce(&Connection) -> Result<u64, Error>,
    now: SystemTime,
) -> Result<Job, Error> {
    let job = load_required(tx, claimed.id)?;
    check_claim(&job, claimed)?;
    let devices_changed = work(tx)?;
    let result = JobResult {
        devices_changed,
        ..JobResult::default()
    };
    record_result(tx, &job, &result, now)?;
    load_required(tx, claimed.id)
}

pub(super) fn release_running(
    tx: &Connection,
    node: &str,
    now: SystemTime,
) -> Result<Vec<Job>, Error> {
    let ids: Vec<i64> = all_rows(
        tx,
        "UPDATE jobs SET lease_until = NULL WHERE state = 'running' AND node = ?1 \
         AND lease_until IS NOT NULL RETURNING id",
        [node],
        |r| r.get(0),
    )
    .map_err(Error::db("releasing the running jobs"))?;
    let mut released = Vec::with_capacity(ids.len());
    for id in ids {
        let job = load_required(tx, id)?;
        append_audit(
            tx,
            now,
            None,
            action::JOB_RELEASED,
            &format!(
                "job {id} ({}): {node} restarted while it ran; it runs again",
                job.kind
            ),
        )?;
        released.push(job);
    }
    released.sort_by_key(|j| j.id);
    Ok(released)
}

// ---------------------------------------------------------------------------------------------
// The directory sync

fn directory_devices(conn: &Connection) -> Result<Vec<DirectoryDevice>, Error> {
    let rows: Vec<(String, String, i64, i64)> = all_rows(
        conn,
        "SELECT name, dn, first_seen, last_seen FROM directory_devices ORDER BY name",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .map_err(Error::db("reading the directory devices"))?;
    rows.into_iter()
        .map(|(name, dn, first, last)| {
            Ok(DirectoryDevice {
                name: super::name_from_db(name, "directory_devices", "name")?,
                dn,
                first_seen: from_unix(first, "directory_devices", "first_seen")?,
                last_seen: from_unix(last, "directory_devices", "last_seen")?,
            })
        })
        .collect()
}

fn sync_times(conn: &Connection) -> Result<Option<(i64, i64)>, Error> {
    conn.prepare_cached("SELECT first_sync_at, last_sync_at FROM directory_sync WHERE id = 1")
        .and_then(|mut stmt| {
            stmt.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(Error::db("reading the directory sync state"))
}

pub(super) fn set_directory_config(
    tx: &Connection,
    key: &[u8; AUTH_KEY_LEN],
    config: &DirectoryConfigRecord,
    now: SystemTime,
) -> Result<(), Error> {
    let sealed = online_ca::seal(key, &config.password)?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO directory_config (id, url, bind_dn, sealed_password, base, \
         filter, device_name, template, updated_at) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            config.url,
            config.bind_dn,
            sealed,
            config.base,
            config.filter,
            config.device_name,
            config.template,
            to_unix(now),
        ])
    })
    .map_err(Error::db("storing the directory configuration"))?;
    append_audit(
        tx,
        now,
        None,
        action::DIRECTORY_CONFIG_SET,
        &config_detail(config),
    )
}

/// The audit detail of a stored directory configuration: everything but the password.
pub(crate) fn config_detail(config: &DirectoryConfigRecord) -> String {
    format!(
        "{} as {}, base {}, filter {}, device name {}, template {}, password set",
        config.url, config.bind_dn, config.base, config.filter, config.device_name, config.template
    )
}

pub(super) fn directory_config(
    conn: &Connection,
    key: &[u8; AUTH_KEY_LEN],
) -> Result<Option<DirectoryConfigRecord>, Error> {
    type Row = (String, String, Vec<u8>, String, String, String, String);
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT url, bind_dn, sealed_password, base, filter, device_name, template \
             FROM directory_config WHERE id = 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .optional()
        })
        .map_err(Error::db("reading the directory configuration"))?;
    row.map(
        |(url, bind_dn, sealed, base, filter, device_name, template)| {
            Ok(DirectoryConfigRecord {
                url,
                bind_dn,
                password: online_ca::open(key, &sealed)?,
                base,
                filter,
                device_name,
                template,
            })
        },
    )
    .transpose()
}

pub(super) fn sync_state(conn: &Connection) -> Result<DirectorySyncState, Error> {
    let times = sync_times(conn)?;
    Ok(DirectorySyncState {
        first_sync_at: from_unix_opt(times.map(|t| t.0), "directory_sync", "first_sync_at")?,
        last_sync_at: from_unix_opt(times.map(|t| t.1), "directory_sync", "last_sync_at")?,
        devices: directory_devices(conn)?,
    })
}

pub(super) fn sync_directory(
    tx: &Connection,
    entries: &[DirectoryEntry],
    hashes: &[Option<Vec<u8>>],
    now: SystemTime,
) -> Result<DirectorySyncOutcome, Error> {
    let item = |index: usize| {
        move |e: Error| Error::BulkItem {
            index,
            source: Box::new(e),
        }
    };
    let first_sync = sync_times(tx)?.is_none();
    let known = directory_devices(tx)?;
    let mut outcome = DirectorySyncOutcome {
        first_sync,
        ..DirectorySyncOutcome::default()
    };
    let mut seen: HashSet<String> = HashSet::with_capacity(entries.len());
    for (index, (entry, hash)) in entries.iter().zip(hashes).enumerate() {
        let new = &entry.device;
        if !seen.insert(new.name.to_ascii_lowercase()) {
            return Err(item(index)(Error::DuplicateDevice {
                name: new.name.to_string(),
            }));
        }
        let registered: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM devices WHERE name = ?1)")
            .and_then(|mut stmt| stmt.query_row([new.name.as_str()], |r| r.get(0)))
            .map_err(Error::db_device("looking the device up", &new.name))
            .map_err(item(index))?;
        if registered {
            outcome.already_registered.push(new.name.clone());
        } else {
            insert_device(tx, new, hash.as_deref(), now)
                .map_err(Error::db_device("adding the device", &new.name))
                .map_err(item(index))?;
            append_audit(
                tx,
                now,
                Some(&new.name),
                action::DEVICE_DIRECTORY_ADDED,
                &format!("from {}; {}", entry.dn, added_detail(new, hash.is_some())),
            )
            .map_err(item(index))?;
            outcome.added.push(new.name.clone());
        }
        tx.prepare_cached(
            "INSERT INTO directory_devices (name, dn, first_seen, last_seen) \
             VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (name) DO UPDATE SET dn = excluded.dn, last_seen = excluded.last_seen",
        )
        .and_then(|mut stmt| stmt.execute(params![new.name.as_str(), entry.dn, to_unix(now)]))
        .map_err(Error::db_device(
            "remembering the directory device",
            &new.name,
        ))
        .map_err(item(index))?;
    }
    outcome.departed = known
        .into_iter()
        .filter(|d| !seen.contains(&d.name.to_ascii_lowercase()))
        .collect();
    tx.prepare_cached(
        "INSERT INTO directory_sync (id, first_sync_at, last_sync_at) VALUES (1, ?1, ?1) \
         ON CONFLICT (id) DO UPDATE SET last_sync_at = excluded.last_sync_at",
    )
    .and_then(|mut stmt| stmt.execute([to_unix(now)]))
    .map_err(Error::db("recording the directory sync"))?;
    append_audit(
        tx,
        now,
        None,
        action::DIRECTORY_SYNCED,
        &format!(
            "{}{} entries: {} devices added, {} already registered, {} departed",
            if first_sync { "first sync, " } else { "" },
            entries.len(),
            outcome.added.len(),
            outcome.already_registered.len(),
            outcome.departed.len()
        ),
    )?;
    Ok(outcome)
}
