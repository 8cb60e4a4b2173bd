//! Scheduled jobs and the directory sync state on PostgreSQL: SQLite's (`sqlite/jobs.rs`) on
//! the same tables. The claim skips rows another node holds (`FOR UPDATE SKIP LOCKED`), so of
//! any number of nodes exactly one runs each job, and none waits for another's claim.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use postgres::Row;

use super::{Tx, append_audit, col, insert_device, pg_device};
use crate::auth::AUTH_KEY_LEN;
use crate::online_ca;
use crate::sqlite::jobs::{check_claim, claim_detail, config_detail};
use crate::sqlite::{added_detail, from_unix, from_unix_opt, name_from_db, to_unix};
use crate::{
    DirectoryConfigRecord, DirectoryDevice, DirectoryEntry, DirectorySyncOutcome,
    DirectorySyncState, Error, Job, JobResult, JobState, NewJob, action,
};

const COLUMNS: &str = "id, kind, description, payload, due, state, singleton, created_at, \
     started_at, node, finished_at, devices_changed, failure, claims, lease_until";

fn parse(tx: &mut Tx<'_>, row: &Row) -> Result<Job, Error> {
    let id: i64 = col(row, 0)?;
    let state: String = col(row, 5)?;
    let state: JobState = state.parse().map_err(|_| Error::Corrupt {
        table: "jobs",
        column: "state",
        value: state.clone(),
    })?;
    let devices_changed: Option<i64> = col(row, 11)?;
    let result = match devices_changed {
        Some(changed) => Some(JobResult {
            devices_changed: u64::try_from(changed).map_err(|_| Error::Corrupt {
                table: "jobs",
                column: "devices_changed",
                value: changed.to_string(),
            })?,
            errors: tx
                .rows(
                    "SELECT message FROM job_errors WHERE job = $1 ORDER BY seq",
                    &[&id],
                    "reading a job's errors",
                )?
                .iter()
                .map(|r| col(r, 0))
                .collect::<Result<_, _>>()?,
            failure: col(row, 12)?,
        }),
        None => None,
    };
    Ok(Job {
        id,
        kind: col(row, 1)?,
        description: col(row, 2)?,
        payload: col(row, 3)?,
        due: from_unix(col(row, 4)?, "jobs", "due")?,
        state,
        singleton: col(row, 6)?,
        created_at: from_unix(col(row, 7)?, "jobs", "created_at")?,
        started_at: from_unix_opt(col(row, 8)?, "jobs", "started_at")?,
        node: col(row, 9)?,
        claims: {
            let claims: i64 = col(row, 13)?;
            u32::try_from(claims).map_err(|_| Error::Corrupt {
                table: "jobs",
                column: "claims",
                value: claims.to_string(),
            })?
        },
        lease_until: from_unix_opt(col(row, 14)?, "jobs", "lease_until")?,
        finished_at: from_unix_opt(col(row, 10)?, "jobs", "finished_at")?,
        result,
    })
}

fn load_with(tx: &mut Tx<'_>, id: i64, lock: &str) -> Result<Option<Job>, Error> {
    let row = tx.opt(
        &format!("SELECT {COLUMNS} FROM jobs WHERE id = $1{lock}"),
        &[&id],
        "loading a job",
    )?;
    row.map(|r| parse(tx, &r)).transpose()
}

pub(super) fn load(tx: &mut Tx<'_>, id: i64) -> Result<Option<Job>, Error> {
    load_with(tx, id, "")
}

fn load_required(tx: &mut Tx<'_>, id: i64) -> Result<Job, Error> {
    load_with(tx, id, "")?.ok_or(Error::UnknownJob { id })
}

fn load_locked(tx: &mut Tx<'_>, id: i64) -> Result<Job, Error> {
    load_with(tx, id, " FOR UPDATE")?.ok_or(Error::UnknownJob { id })
}

pub(super) fn list(tx: &mut Tx<'_>, state: Option<JobState>) -> Result<Vec<Job>, Error> {
    let rows = match state {
        Some(state) => tx.rows(
            &format!("SELECT {COLUMNS} FROM jobs WHERE state = $1 ORDER BY id"),
            &[&state.as_str()],
            "listing the jobs",
        )?,
        None => tx.rows(
            &format!("SELECT {COLUMNS} FROM jobs ORDER BY id"),
            &[],
            "listing the jobs",
        )?,
    };
    rows.iter().map(|r| parse(tx, r)).collect()
}

pub(super) fn add(tx: &mut Tx<'_>, job: &NewJob, now: SystemTime) -> Result<Job, Error> {
    if job.kind.trim().is_empty() {
        return Err(Error::InvalidJob {
            reason: "the kind is empty",
        });
    }
    let row = tx.opt(
        "INSERT INTO jobs (kind, description, payload, due, state, singleton, created_at) \
         VALUES ($1, $2, $3, $4, 'scheduled', $5, $6) ON CONFLICT DO NOTHING RETURNING id",
        &[
            &job.kind,
            &job.description,
            &job.payload,
            &to_unix(job.due),
            &job.singleton,
            &to_unix(now),
        ],
        "storing a job",
    )?;
    let Some(row) = row else {
        // The only unique rule a new job can break: a singleton of its kind is scheduled or
        // running.
        return Err(Error::JobAlreadyScheduled {
            kind: job.kind.clone(),
        });
    };
    let id: i64 = col(&row, 0)?;
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

pub(super) fn cancel(tx: &mut Tx<'_>, id: i64, now: SystemTime) -> Result<Job, Error> {
    let job = load_locked(tx, id)?;
    if job.state != JobState::Scheduled {
        return Err(Error::JobWrongState {
            id,
            state: job.state,
            wanted: "cancelled",
        });
    }
    tx.exec(
        "UPDATE jobs SET state = 'cancelled', finished_at = $2 WHERE id = $1 \
         AND state = 'scheduled'",
        &[&id, &to_unix(now)],
        "cancelling a job",
    )?;
    append_audit(
        tx,
        now,
        None,
        action::JOB_CANCELLED,
        &format!("job {id} ({}): {}", job.kind, job.description),
    )?;
    load_required(tx, id)
}

pub(super) fn claim(
    tx: &mut Tx<'_>,
    node: &str,
    lease: Duration,
    now: SystemTime,
) -> Result<Option<Job>, Error> {
    let now_s = to_unix(now);
    let until = now_s.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
    let row = tx.opt(
        "UPDATE jobs SET state = 'running', started_at = $2, node = $1, \
             claims = claims + 1, lease_until = $3 \
         WHERE id = (SELECT id FROM jobs WHERE \
                         (state = 'scheduled' AND due <= $2) \
                      OR (state = 'running' AND (lease_until IS NULL OR lease_until < $2)) \
                     ORDER BY due, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
           AND ((state = 'scheduled' AND due <= $2) \
             OR (state = 'running' AND (lease_until IS NULL OR lease_until < $2))) \
         RETURNING id",
        &[&node, &now_s, &until],
        "claiming a due job",
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = col(&row, 0)?;
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

pub(super) fn renew(
    tx: &mut Tx<'_>,
    node: &str,
    lease: Duration,
    now: SystemTime,
) -> Result<usize, Error> {
    let until = to_unix(now).saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
    let n = tx.exec(
        "UPDATE jobs SET lease_until = $2 WHERE state = 'running' AND node = $1 \
         AND lease_until IS NOT NULL",
        &[&node, &until],
        "renewing the job leases",
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn record_result(
    tx: &mut Tx<'_>,
    job: &Job,
    result: &JobResult,
    now: SystemTime,
) -> Result<(), Error> {
    let state = if result.failure.is_some() {
        JobState::Failed
    } else {
        JobState::Succeeded
    };
    tx.exec(
        "UPDATE jobs SET state = $2, finished_at = $3, devices_changed = $4, failure = $5, \
         lease_until = NULL WHERE id = $1 AND state = 'running'",
        &[
            &job.id,
            &state.as_str(),
            &to_unix(now),
            &i64::try_from(result.devices_changed).unwrap_or(i64::MAX),
            &result.failure,
        ],
        "recording a job's result",
    )?;
    for (seq, message) in result.errors.iter().enumerate() {
        tx.exec(
            "INSERT INTO job_errors (job, seq, message) VALUES ($1, $2, $3)",
            &[&job.id, &i64::try_from(seq).unwrap_or(i64::MAX), message],
            "recording a job's errors",
        )?;
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
    tx: &mut Tx<'_>,
    claimed: &Job,
    result: &JobResult,
    now: SystemTime,
) -> Result<Job, Error> {
    let job = load_locked(tx, claimed.id)?;
    check_claim(&job, claimed)?;
    record_result(tx, &job, result, now)?;
    load_required(tx, claimed.id)
}

/// The job's row is locked and its claim checked first: a run whose claim was taken over does
/// no work, and a claim waiting on the lock finds the job ended once this commits.
pub(super) fn finish_with(
    tx: &mut Tx<'_>,
    claimed: &Job,
    work: &mut dyn FnMut(&mut Tx<'_>) -> Result<u64, Error>,
    now: SystemTime,
) -> Result<Job, Error> {
    let job = load_locked(tx, claimed.id)?;
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
    tx: &mut Tx<'_>,
    node: &str,
    now: SystemTime,
) -> Result<Vec<Job>, Error> {
    let ids: Vec<i64> = tx
        .rows(
            "UPDATE jobs SET lease_until = NULL WHERE state = 'running' AND node = $1 \
             AND lease_until IS NOT NULL RETURNING id",
            &[&node],
            "releasing the running jobs",
        )?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_, _>>()?;
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

fn directory_devices(tx: &mut Tx<'_>) -> Result<Vec<DirectoryDevice>, Error> {
    tx.rows(
        "SELECT name, dn, first_seen, last_seen FROM directory_devices ORDER BY name",
        &[],
        "reading the directory devices",
    )?
    .iter()
    .map(|r| {
        Ok(DirectoryDevice {
            name: name_from_db(col(r, 0)?, "directory_devices", "name")?,
            dn: col(r, 1)?,
            first_seen: from_unix(col(r, 2)?, "directory_devices", "first_seen")?,
            last_seen: from_unix(col(r, 3)?, "directory_devices", "last_seen")?,
        })
    })
    .collect()
}

fn sync_times(tx: &mut Tx<'_>) -> Result<Option<(i64, i64)>, Error> {
    tx.opt(
        "SELECT first_sync_at, last_sync_at FROM directory_sync WHERE id = 1",
        &[],
        "reading the directory sync state",
    )?
    .map(|r| Ok((col(&r, 0)?, col(&r, 1)?)))
    .transpose()
}

pub(super) fn set_directory_config(
    tx: &mut Tx<'_>,
    key: &[u8; AUTH_KEY_LEN],
    config: &DirectoryConfigRecord,
    now: SystemTime,
) -> Result<(), Error> {
    let sealed = online_ca::seal(key, &config.password)?;
    tx.exec(
        "INSERT INTO directory_config (id, url, bind_dn, sealed_password, base, filter, \
         device_name, template, updated_at) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, bind_dn = excluded.bind_dn, \
         sealed_password = excluded.sealed_password, base = excluded.base, \
         filter = excluded.filter, device_name = excluded.device_name, \
         template = excluded.template, updated_at = excluded.updated_at",
        &[
            &config.url,
            &config.bind_dn,
            &sealed,
            &config.base,
            &config.filter,
            &config.device_name,
            &config.template,
            &to_unix(now),
        ],
        "storing the directory configuration",
    )?;
    append_audit(
        tx,
        now,
        None,
        action::DIRECTORY_CONFIG_SET,
        &config_detail(config),
    )
}

pub(super) fn directory_config(
    tx: &mut Tx<'_>,
    key: &[u8; AUTH_KEY_LEN],
) -> Result<Option<DirectoryConfigRecord>, Error> {
    let Some(r) = tx.opt(
        "SELECT url, bind_dn, sealed_password, base, filter, device_name, template \
         FROM directory_config WHERE id = 1",
        &[],
        "reading the directory configuration",
    )?
    else {
        return Ok(None);
    };
    let sealed: Vec<u8> = col(&r, 2)?;
    Ok(Some(DirectoryConfigRecord {
        url: col(&r, 0)?,
        bind_dn: col(&r, 1)?,
        password: online_ca::open(key, &sealed)?,
        base: col(&r, 3)?,
        filter: col(&r, 4)?,
        device_name: col(&r, 5)?,
        template: col(&r, 6)?,
    }))
}

pub(super) fn sync_state(tx: &mut Tx<'_>) -> Result<DirectorySyncState, Error> {
    let times = sync_times(tx)?;
    Ok(DirectorySyncState {
        first_sync_at: from_unix_opt(times.map(|t| t.0), "directory_sync", "first_sync_at")?,
        last_sync_at: from_unix_opt(times.map(|t| t.1), "directory_sync", "last_sync_at")?,
        devices: directory_devices(tx)?,
    })
}

pub(super) fn sync_directory(
    tx: &mut Tx<'_>,
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
    // One sync at a time across nodes: the first-sync flag and the departed list are read and
    // written in the same transaction.
    tx.exec(
        "SELECT pg_advisory_xact_lock($1)",
        &[&DIRECTORY_SYNC_LOCK],
        "locking the directory sync",
    )?;
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
        let inserted = insert_device(tx, new, hash.as_deref(), now)
            .map_err(pg_device("adding the device", &new.name))
            .map_err(item(index))?;
        if inserted == 0 {
            outcome.already_registered.push(new.name.clone());
        } else {
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
        tx.exec(
            "INSERT INTO directory_devices (name, dn, first_seen, last_seen) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET dn = excluded.dn, last_seen = excluded.last_seen",
            &[&new.name.as_str(), &entry.dn, &to_unix(now)],
            "remembering the directory device",
        )
        .map_err(item(index))?;
    }
    outcome.departed = known
        .into_iter()
        .filter(|d| !seen.contains(&d.name.to_ascii_lowercase()))
        .collect();
    tx.exec(
        "INSERT INTO directory_sync (id, first_sync_at, last_sync_at) VALUES (1, $1, $1) \
         ON CONFLICT (id) DO UPDATE SET last_sync_at = excluded.last_sync_at",
        &[&to_unix(now)],
        "recording the directory sync",
    )?;
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

/// The advisory lock that runs one directory sync at a time across nodes.
const DIRECTORY_SYNC_LOCK: i64 = 0x4341_5053;
