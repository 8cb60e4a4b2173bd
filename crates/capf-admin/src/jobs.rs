//! Scheduled jobs: the guide's Run Later for Bulk Administration (a bulk update by query or a
//! CSV insert stored to run at a time), Manage Scheduled Jobs (list, show, cancel), and the
//! certificate monitor as a built-in job.
//!
//! A job is checked when it is stored, so a bad CSV file or change is refused at once (with
//! its line numbers) rather than at its time. Its parameters are kept in the store as JSON
//! (the CSV file's content itself for an insert), so the job does not depend on files that
//! may change or go. A running server calls [`Scheduler::run_due`] every second: each call
//! claims due jobs one at a time through the store's one-statement claim
//! ([`AdminStore::claim_due_job`](capf_store::AdminStore::claim_due_job)), leased to the node,
//! and records what it did ([`JobResult`]: devices changed, items refused, or why it failed).
//!
//! A job runs exactly once, even across restarts and nodes: a bulk job's store work commits in
//! the same transaction as its end
//! ([`AdminStore::finish_job_with_work`](capf_store::AdminStore::finish_job_with_work)), so a
//! job whose node died mid-run (its lease ran out: [`Scheduler::renew`] keeps a live node's
//! leases) or restarted ([`Scheduler::start`] releases them) applied nothing and is simply run
//! again, and a run whose claim was taken over applies nothing. The monitor's store work
//! (revoking expired LSCs) is the same however often it runs; an interrupted monitor run may
//! mail its notification again.
//!
//! # The monitor job
//!
//! With [`MonitorConfig::enabled`], one `monitor` job is always scheduled (a singleton, so
//! two servers never both schedule it). Each run does what `capfctl monitor` does: marks the
//! LSCs past their notAfter revoked and lists those expiring within [`MonitorConfig::days`],
//! mails one notification when there is anything to tell and a relay is configured
//! ([`send_notification`](crate::send_notification)), and schedules the next run: in a day,
//! or in an hour while an LSC expires within a day (the guide's rule). Switched off, a
//! monitor job that comes due ends at once with nothing done and is not scheduled again.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use capf_store::{
    DEFAULT_JOB_LEASE, DeviceStore, Job, JobResult, JobState, JobWork, NewJob, StatusKind,
};
use serde::{Deserialize, Serialize};

use crate::bulk::{check_devices_csv, refused_row};
use crate::names::{OperationKind, key_order_name, parse_curve, parse_key_order, parse_rsa_bits};
use crate::{
    ChangeParams, DeviceFilter, Error, KeyChoice, NoProgress, SmtpRelay, error_chain,
    parse_rfc3339, rfc3339, rfc3339_opt,
};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// What a job does. One name table: [`JobKind::as_str`], parsed by `FromStr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobKind {
    /// A bulk update by query ([`schedule_bulk_update`]).
    BulkUpdate,
    /// A bulk insert from a CSV file ([`schedule_bulk_insert`]).
    BulkInsert,
    /// The built-in certificate monitor.
    Monitor,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 3] = [JobKind::BulkUpdate, JobKind::BulkInsert, JobKind::Monitor];

    /// The name as stored and shown: `bulk-update`, `bulk-insert`, `monitor`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::BulkUpdate => "bulk-update",
            JobKind::BulkInsert => "bulk-insert",
            JobKind::Monitor => "monitor",
        }
    }
}

impl core::str::FromStr for JobKind {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or(())
    }
}

/// A bulk update's filter and change as stored: the names people type, parsed again when the
/// job runs (so the past-complete-by filter is taken at the run's time).
#[derive(Debug, Default, Serialize, Deserialize)]
struct UpdatePayload {
    name_pattern: Option<String>,
    device_pool: Option<String>,
    model: Option<String>,
    status: Option<String>,
    lsc_expires_before: Option<String>,
    past_complete_by: bool,
    new_description: Option<String>,
    new_device_pool: Option<String>,
    new_model: Option<String>,
    new_auth_mode: Option<String>,
    operation: Option<String>,
    key_order: Option<String>,
    rsa_bits: Option<String>,
    curve: Option<String>,
    complete_by: Option<String>,
}

impl UpdatePayload {
    fn new(filter: &DeviceFilter, change: &ChangeParams) -> UpdatePayload {
        UpdatePayload {
            name_pattern: filter.name_pattern.clone(),
            device_pool: filter.device_pool.clone(),
            model: filter.model.clone(),
            status: filter.status.map(|s| s.label().to_owned()),
            lsc_expires_before: filter.lsc_expires_before.map(rfc3339),
            past_complete_by: filter.past_complete_by,
            new_description: change.description.clone(),
            new_device_pool: change.device_pool.clone(),
            new_model: change.model.clone(),
            new_auth_mode: change.auth_mode.map(|m| m.as_str().to_owned()),
            operation: change.operation.map(|o| o.as_str().to_owned()),
            key_order: change.keys.order.map(|o| key_order_name(o).to_owned()),
            rsa_bits: change.keys.rsa.map(|r| r.bits().to_string()),
            curve: change.keys.curve.map(|c| c.name().to_owned()),
            complete_by: change.complete_by.clone(),
        }
    }

    fn filter(&self) -> Result<DeviceFilter, Error> {
        Ok(DeviceFilter {
            name_pattern: self.name_pattern.clone(),
            device_pool: self.device_pool.clone(),
            model: self.model.clone(),
            status: self
                .status
                .as_deref()
                .map(str::parse::<StatusKind>)
                .transpose()?,
            lsc_expires_before: self
                .lsc_expires_before
                .as_deref()
                .map(|t| parse_rfc3339(t, "lsc_expires_before"))
                .transpose()?,
            past_complete_by: self.past_complete_by,
        })
    }

    fn change(&self) -> Result<ChangeParams, Error> {
        Ok(ChangeParams {
            description: self.new_description.clone(),
            device_pool: self.new_device_pool.clone(),
            model: self.new_model.clone(),
            auth_mode: self
                .new_auth_mode
                .as_deref()
                .map(|m| {
                    m.parse()
                        .map_err(|_| Error::AuthModeName { text: m.to_owned() })
                })
                .transpose()?,
            operation: self
                .operation
                .as_deref()
                .map(str::parse::<OperationKind>)
                .transpose()?,
            keys: KeyChoice {
                order: self
                    .key_order
                    .as_deref()
                    .map(|o| {
                        parse_key_order(o).ok_or_else(|| Error::KeySpec { text: o.to_owned() })
                    })
                    .transpose()?,
                rsa: self.rsa_bits.as_deref().map(parse_rsa_bits).transpose()?,
                curve: self.curve.as_deref().map(parse_curve).transpose()?,
            },
            complete_by: self.complete_by.clone(),
        })
    }
}

/// A bulk insert as stored: the CSV file's content, the name it is shown by, the template.
#[derive(Debug, Serialize, Deserialize)]
struct InsertPayload {
    file: String,
    template: Option<String>,
    csv: String,
}

fn new_job(kind: JobKind, description: String, payload: String, due: SystemTime) -> NewJob {
    NewJob {
        kind: kind.as_str().to_owned(),
        description,
        payload,
        due,
        singleton: kind == JobKind::Monitor,
    }
}

fn encode(payload: &impl Serialize) -> String {
    // Strings, options and bools only: serde_json cannot fail on them.
    serde_json::to_string(payload).unwrap_or_default()
}

/// Stores a bulk update of the devices matching `filter` to run at `due` (Run Later). The
/// change is checked now ([`ChangeParams::to_change`], and an EC key order in the Online CA
/// mode is refused), so a mistake is refused at once; it is checked again when it runs.
///
/// # Errors
/// The checks' errors, or the store's.
pub fn schedule_bulk_update(
    store: &dyn DeviceStore,
    filter: &DeviceFilter,
    change: &ChangeParams,
    due: SystemTime,
    now: SystemTime,
) -> Result<Job, Error> {
    crate::bulk::refuse_ec_change(store, &change.to_change(now)?)?;
    let payload = UpdatePayload::new(filter, change);
    let description = format!(
        "bulk update of {}",
        if filter.is_empty() {
            "every device".to_owned()
        } else {
            "the devices matching the query".to_owned()
        }
    );
    Ok(store.add_job(
        &new_job(JobKind::BulkUpdate, description, encode(&payload), due),
        now,
    )?)
}

/// Stores a bulk insert of the CSV text `csv` (shown as `file`) to run at `due` (Run Later).
/// Every row is checked now, as [`insert_devices_csv`](crate::insert_devices_csv) would
/// check it (the template must exist), so a bad file is refused at once with its line
/// numbers; the content is kept in the job, and the rows are checked again when it runs.
///
/// # Errors
/// [`Error::UnknownTemplate`], [`Error::Row`], [`Error::NoRows`], or the store's.
pub fn schedule_bulk_insert(
    store: &dyn DeviceStore,
    csv: String,
    file: &str,
    template: Option<&str>,
    due: SystemTime,
    now: SystemTime,
) -> Result<Job, Error> {
    let found = template
        .map(|name| {
            store.template(name)?.ok_or_else(|| Error::UnknownTemplate {
                name: name.to_owned(),
            })
        })
        .transpose()?;
    let checked = check_devices_csv(
        store,
        csv.as_bytes(),
        file,
        found.as_ref(),
        &mut NoProgress,
        now,
    )?;
    let description = format!(
        "bulk insert of {} devices from {file}{}",
        checked.devices.len(),
        template
            .map(|t| format!(" with template {t}"))
            .unwrap_or_default()
    );
    let payload = InsertPayload {
        file: file.to_owned(),
        template: template.map(str::to_owned),
        csv,
    };
    Ok(store.add_job(
        &new_job(JobKind::BulkInsert, description, encode(&payload), due),
        now,
    )?)
}

/// Every job, or those in `state`, by number.
///
/// # Errors
/// The store's.
pub fn list_jobs(store: &dyn DeviceStore, state: Option<JobState>) -> Result<Vec<Job>, Error> {
    Ok(store.jobs(state)?)
}

/// The job with number `id`.
///
/// # Errors
/// [`capf_store::Error::UnknownJob`] (as [`Error::Store`]), or the store's.
pub fn job(store: &dyn DeviceStore, id: i64) -> Result<Job, Error> {
    store
        .job(id)?
        .ok_or_else(|| capf_store::Error::UnknownJob { id }.into())
}

/// Cancels a scheduled job: it will never run.
///
/// # Errors
/// [`capf_store::Error::UnknownJob`], [`capf_store::Error::JobWrongState`] (it is running or
/// over), or the store's.
pub fn cancel_job(store: &dyn DeviceStore, id: i64, now: SystemTime) -> Result<Job, Error> {
    Ok(store.cancel_job(id, now)?)
}

/// The built-in certificate monitor's configuration (capfd's `[monitor]` table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Whether the monitor runs (on by default, as the guide's system does).
    pub enabled: bool,
    /// The look-ahead of the notification, in days (30 by default).
    pub days: u32,
    /// Where the notification goes; `None` reports only in the job's result and the log.
    pub relay: Option<SmtpRelay>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            enabled: true,
            days: 30,
            relay: None,
        }
    }
}

/// Runs the jobs of one node (a capfd process): what capfd calls every second.
#[derive(Clone, Debug)]
pub struct Scheduler {
    node: String,
    monitor: MonitorConfig,
    lease: Duration,
}

impl Scheduler {
    /// A scheduler for the node named `node` (stable across restarts: the host name), with
    /// the monitor's configuration.
    pub fn new(node: impl Into<String>, monitor: MonitorConfig) -> Scheduler {
        Scheduler {
            node: node.into(),
            monitor,
            lease: DEFAULT_JOB_LEASE,
        }
    }

    /// The lease of each claim (30 s by default): how long after this node stops renewing
    /// ([`renew`](Self::renew)) another node may run its job again.
    pub fn with_lease(mut self, lease: Duration) -> Scheduler {
        self.lease = lease;
        self
    }

    /// The lease of each claim.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// At the node's start: the jobs it left Running are released, to be claimed and run
    /// again (their work was not applied: it commits with their end), and the monitor is
    /// scheduled when it is on and none is. Returns the jobs released.
    ///
    /// # Errors
    /// The store's.
    pub fn start(&self, store: &dyn DeviceStore, now: SystemTime) -> Result<Vec<Job>, Error> {
        let released = store.release_running_jobs(&self.node, now)?;
        self.schedule_monitor(store, now)?;
        Ok(released)
    }

    /// Extends the leases of the jobs this node is running; a server calls it every third of
    /// the lease, beside [`run_due`](Self::run_due). Returns how many.
    ///
    /// # Errors
    /// The store's.
    pub fn renew(&self, store: &dyn DeviceStore, now: SystemTime) -> Result<usize, Error> {
        Ok(store.renew_job_leases(&self.node, self.lease, now)?)
    }

    fn schedule_monitor(&self, store: &dyn DeviceStore, due: SystemTime) -> Result<(), Error> {
        if !self.monitor.enabled {
            return Ok(());
        }
        let job = new_job(
            JobKind::Monitor,
            format!(
                "certificate monitor: revoke expired LSCs, notify of those expiring within {} days",
                self.monitor.days
            ),
            String::new(),
            due,
        );
        match store.add_job(&job, due) {
            Ok(_) | Err(capf_store::Error::JobAlreadyScheduled { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs every job due at `now` (and every job whose node died or restarted), one claim at
    /// a time, and returns them as they ended. A job's own failure is recorded in its result,
    /// not returned; a job whose claim another node took over meanwhile is left to it.
    ///
    /// # Errors
    /// The store's (claiming or recording); a job claimed before it stays Running and runs
    /// again once its lease runs out, or at the node's next [`start`](Self::start).
    pub fn run_due(&self, store: &dyn DeviceStore, now: SystemTime) -> Result<Vec<Job>, Error> {
        let mut done = Vec::new();
        while let Some(job) = store.claim_due_job(&self.node, self.lease, now)? {
            match self.run(store, &job, now) {
                Ok(ended) => done.push(ended),
                Err(e) if claim_lost(&e) => continue,
                Err(e) => return Err(e),
            }
            if job.kind == JobKind::Monitor.as_str() {
                let next = if soon_expiring(store, now)? {
                    HOUR
                } else {
                    DAY
                };
                self.schedule_monitor(store, now + next)?;
            }
        }
        Ok(done)
    }

    /// Runs the claimed `job` and records its end: a bulk job's work in the same transaction.
    fn run(&self, store: &dyn DeviceStore, job: &Job, now: SystemTime) -> Result<Job, Error> {
        let outcome = match job.kind.parse::<JobKind>() {
            Ok(JobKind::BulkUpdate) => run_update(store, job, now),
            Ok(JobKind::BulkInsert) => run_insert(store, job, now),
            Ok(JobKind::Monitor) => {
                return Ok(store.finish_job(job, &self.run_monitor(store, now), now)?);
            }
            Err(()) => Err(Error::UnknownJobKind {
                id: job.id,
                kind: job.kind.clone(),
            }),
        };
        match outcome {
            Ok(ended) => Ok(ended),
            Err(e) if claim_lost(&e) => Err(e),
            Err(e) => {
                let failed = JobResult {
                    failure: Some(error_chain(&e)),
                    ..JobResult::default()
                };
                Ok(store.finish_job(job, &failed, now)?)
            }
        }
    }

    fn run_monitor(&self, store: &dyn DeviceStore, now: SystemTime) -> JobResult {
        if !self.monitor.enabled {
            return JobResult::default();
        }
        let report = match crate::monitor(store, self.monitor.days, now) {
            Ok(report) => report,
            Err(e) => {
                return JobResult {
                    failure: Some(error_chain(&e)),
                    ..JobResult::default()
                };
            }
        };
        let devices: BTreeSet<String> = report
            .revoked
            .iter()
            .map(|l| l.device.to_ascii_lowercase())
            .collect();
        let failure = match &self.monitor.relay {
            Some(relay) if !report.is_empty() => crate::send_notification(relay, &report)
                .err()
                .map(|e| error_chain(&e)),
            _ => None,
        };
        JobResult {
            devices_changed: devices.len() as u64,
            errors: Vec::new(),
            failure,
        }
    }
}

/// Whether the run's claim was taken over by another node (its lease ran out): it recorded
/// nothing, and the other node's run records the job's end.
fn claim_lost(e: &Error) -> bool {
    matches!(e, Error::Store(s) if matches!(**s, capf_store::Error::JobClaimLost { .. }))
}

/// Whether an Issued or Installed LSC expires within a day: the monitor then runs hourly.
fn soon_expiring(store: &dyn DeviceStore, now: SystemTime) -> Result<bool, Error> {
    Ok(!store.lscs_expiring_before(now + DAY)?.is_empty())
}

fn payload<T: for<'de> Deserialize<'de>>(job: &Job) -> Result<T, Error> {
    serde_json::from_str(&job.payload).map_err(|source| Error::JobPayload {
        id: job.id,
        kind: job.kind.clone(),
        source,
    })
}

fn run_update(store: &dyn DeviceStore, job: &Job, now: SystemTime) -> Result<Job, Error> {
    let p: UpdatePayload = payload(job)?;
    let change = p.change()?.to_change(now)?;
    crate::bulk::refuse_ec_change(store, &change)?;
    let query = p.filter()?.to_query(now);
    let work = JobWork::UpdateDevices {
        query: &query,
        change: &change,
    };
    Ok(store.finish_job_with_work(job, &work, now)?)
}

fn run_insert(store: &dyn DeviceStore, job: &Job, now: SystemTime) -> Result<Job, Error> {
    let p: InsertPayload = payload(job)?;
    let template = p
        .template
        .as_deref()
        .map(|name| {
            store.template(name)?.ok_or_else(|| Error::UnknownTemplate {
                name: name.to_owned(),
            })
        })
        .transpose()?;
    let checked = check_devices_csv(
        store,
        p.csv.as_bytes(),
        &p.file,
        template.as_ref(),
        &mut NoProgress,
        now,
    )?;
    store
        .finish_job_with_work(job, &JobWork::AddDevices(&checked.devices), now)
        .map_err(|e| refused_row(&p.file, &checked.lines, e))
}

/// The name of this host, as a node name for [`Scheduler::new`] (Linux's
/// `/proc/sys/kernel/hostname`; `capfd` where it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "capfd".to_owned())
}

/// A job for people and programs (`capfctl job list|show --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobView {
    /// Its number.
    pub id: i64,
    /// `bulk-update`, `bulk-insert`, `monitor`.
    pub kind: String,
    /// One line about it.
    pub description: String,
    /// `scheduled`, `running`, `succeeded`, `failed`, `cancelled`.
    pub state: &'static str,
    /// When it is (or was) due, RFC 3339.
    pub due: String,
    /// When it was stored.
    pub created_at: String,
    /// When a server claimed it.
    pub started_at: Option<String>,
    /// Which server claimed it.
    pub node: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// How many devices it changed, once it ran.
    pub devices_changed: Option<u64>,
    /// The items it refused while the rest went on.
    pub errors: Vec<String>,
    /// Why it failed.
    pub failure: Option<String>,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        JobView {
            id: job.id,
            kind: job.kind.clone(),
            description: job.description.clone(),
            state: job.state.as_str(),
            due: rfc3339(job.due),
            created_at: rfc3339(job.created_at),
            started_at: rfc3339_opt(job.started_at),
            node: job.node.clone(),
            finished_at: rfc3339_opt(job.finished_at),
            devices_changed: job.result.as_ref().map(|r| r.devices_changed),
            errors: job
                .result
                .as_ref()
                .map(|r| r.errors.clone())
                .unwrap_or_default(),
            failure: job.result.as_ref().and_then(|r| r.failure.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use capf_store::{AdminStore, NewDevice, SessionStore, SqliteStore};

    use super::*;

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn store() -> SqliteStore {
        SqliteStore::open_in_memory([7; 32]).unwrap()
    }

    fn scheduler() -> Scheduler {
        Scheduler::new(
            "node-a",
            MonitorConfig {
                enabled: false,
                ..MonitorConfig::default()
            },
        )
    }

    #[test]
    fn a_bad_csv_is_refused_when_stored_with_its_line() {
        let s = store();
        let err = schedule_bulk_insert(
            &s,
            "device_name,operation\nSEP001122334455,install\nSEP0011,bogus\n".to_owned(),
            "phones.csv",
            None,
            t(10),
            t(0),
        )
        .unwrap_err();
        assert!(error_chain(&err).starts_with("phones.csv:3: "), "{err}");
        assert!(s.jobs(None).unwrap().is_empty());
    }

    #[test]
    fn a_stored_insert_runs_once_when_due_and_a_failure_records_why() {
        let s = store();
        let sched = scheduler();
        let job = schedule_bulk_insert(
            &s,
            "device_name\nSEP001122334455\nSEP001122334456\n".to_owned(),
            "phones.csv",
            None,
            t(10),
            t(0),
        )
        .unwrap();
        assert!(sched.run_due(&s, t(9)).unwrap().is_empty());
        let done = sched.run_due(&s, t(10)).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].id, job.id);
        assert_eq!(done[0].state, JobState::Succeeded);
        assert_eq!(done[0].result.as_ref().unwrap().devices_changed, 2);
        assert!(sched.run_due(&s, t(20)).unwrap().is_empty());

        // The same file again: the devices exist now, so the job fails and says why.
        let again = schedule_bulk_insert(
            &s,
            "device_name\nSEP001122334455\n".to_owned(),
            "phones.csv",
            None,
            t(30),
            t(21),
        )
        .unwrap();
        let done = sched.run_due(&s, t(30)).unwrap();
        assert_eq!(done[0].id, again.id);
        assert_eq!(done[0].state, JobState::Failed);
        let failure = done[0].result.as_ref().unwrap().failure.clone().unwrap();
        assert!(failure.contains("phones.csv:2"), "{failure}");
    }

    #[test]
    fn a_stored_update_applies_its_change_at_its_time() {
        let s = store();
        for name in ["SEP001122334455", "SEP001122334456"] {
            let mut d = NewDevice::new(crate::check_device_name(name).unwrap());
            d.device_pool = "Lobby".to_owned();
            s.add_device(&d, t(0)).unwrap();
        }
        let filter = DeviceFilter {
            device_pool: Some("Lobby".to_owned()),
            ..DeviceFilter::default()
        };
        let change = ChangeParams {
            operation: Some(OperationKind::Delete),
            model: Some("Cisco 8865".to_owned()),
            ..ChangeParams::default()
        };
        assert!(matches!(
            schedule_bulk_update(&s, &filter, &ChangeParams::default(), t(5), t(0)),
            Err(Error::NothingToChange)
        ));
        schedule_bulk_update(&s, &filter, &change, t(5), t(0)).unwrap();
        let done = scheduler().run_due(&s, t(6)).unwrap();
        assert_eq!(done[0].result.as_ref().unwrap().devices_changed, 2);
        let d = s
            .device(&crate::check_device_name("SEP001122334456").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(d.model, "Cisco 8865");
        assert_eq!(d.operation, capf_store::Operation::Delete);
    }

    #[test]
    fn the_monitor_is_scheduled_once_and_reschedules_itself() {
        let s = store();
        let sched = Scheduler::new("node-a", MonitorConfig::default());
        sched.start(&s, t(0)).unwrap();
        sched.start(&s, t(1)).unwrap();
        let jobs = s.jobs(Some(JobState::Scheduled)).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, "monitor");
        let done = sched.run_due(&s, t(2)).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, JobState::Succeeded);
        let next = s.jobs(Some(JobState::Scheduled)).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].due, t(2) + DAY);
    }

    fn lsc(device: &str, serial: u8, not_after: SystemTime) -> capf_store::LscRecord {
        capf_store::LscRecord {
            serial: vec![serial],
            device: crate::check_device_name(device).unwrap(),
            der: vec![0x30, 0x00],
            not_before: t(0),
            not_after,
            issued_at: t(0),
            state: capf_store::LscState::Installed,
            state_changed_at: t(0),
        }
    }

    #[test]
    fn the_monitor_runs_hourly_while_an_lsc_expires_within_a_day() {
        let s = store();
        let sched = Scheduler::new("node-a", MonitorConfig::default());
        sched.start(&s, t(0)).unwrap();
        // Expires in a day and a minute: not within a day of the first run, so the next is daily.
        let expiry = t(100) + DAY + Duration::from_secs(60);
        s.import_lscs(&mut [lsc("SEP001122334455", 1, expiry)].into_iter(), t(0))
            .unwrap();
        sched.run_due(&s, t(100)).unwrap();
        let next = s.jobs(Some(JobState::Scheduled)).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].due, t(100) + DAY);
        // At that run it expires within a day: the monitor comes back in an hour.
        let day_later = t(100) + DAY;
        let done = sched.run_due(&s, day_later).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, JobState::Succeeded);
        let next = s.jobs(Some(JobState::Scheduled)).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].kind, "monitor");
        assert_eq!(next[0].due, day_later + HOUR);
        // By the hourly run it expired: the run revokes it, nothing expires within a day, and
        // the monitor is daily again.
        let after = day_later + HOUR;
        assert!(after > expiry);
        let done = sched.run_due(&s, after).unwrap();
        assert_eq!(done[0].result.as_ref().unwrap().devices_changed, 1);
        let next = s.jobs(Some(JobState::Scheduled)).unwrap();
        assert_eq!(next[0].due, after + DAY);
    }

    #[test]
    fn a_job_of_a_dead_node_runs_on_another_once_and_a_restart_runs_its_own_again() {
        let s = store();
        let a = scheduler();
        let b = Scheduler::new(
            "node-b",
            MonitorConfig {
                enabled: false,
                ..MonitorConfig::default()
            },
        );
        let csv = "device_name\nSEP001122334455\nSEP001122334456\n".to_owned();
        let job = schedule_bulk_insert(&s, csv.clone(), "phones.csv", None, t(10), t(0)).unwrap();
        // Node a claims it and dies before its work commits.
        let claimed = s
            .claim_due_job("node-a", a.lease(), t(10))
            .unwrap()
            .unwrap();
        assert_eq!(claimed.id, job.id);
        assert!(b.run_due(&s, t(10) + a.lease()).unwrap().is_empty());
        let done = b.run_due(&s, t(11) + a.lease()).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, JobState::Succeeded);
        assert_eq!(done[0].node.as_deref(), Some("node-b"));
        assert_eq!(done[0].claims, 2);
        assert_eq!(
            s.query_devices(&capf_store::DeviceQuery::default())
                .unwrap()
                .len(),
            2
        );
        assert!(a.run_due(&s, t(1000)).unwrap().is_empty());

        // Node a claims another and restarts under its name: its start releases the job, and it
        // runs once.
        let again = schedule_bulk_insert(
            &s,
            "device_name\nSEP0011223344AA\n".to_owned(),
            "more.csv",
            None,
            t(2000),
            t(1000),
        )
        .unwrap();
        s.claim_due_job("node-a", a.lease(), t(2000))
            .unwrap()
            .unwrap();
        let released = a.start(&s, t(2001)).unwrap();
        assert_eq!(
            released.iter().map(|j| j.id).collect::<Vec<_>>(),
            [again.id]
        );
        let done = a.run_due(&s, t(2001)).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, JobState::Succeeded);
        assert_eq!(done[0].result.as_ref().unwrap().devices_changed, 1);
        assert!(a.run_due(&s, t(9000)).unwrap().is_empty());
        assert_eq!(
            s.query_devices(&capf_store::DeviceQuery::default())
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn job_kinds_round_trip() {
        for kind in JobKind::ALL {
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(kind));
        }
        assert!("ldap".parse::<JobKind>().is_err());
    }
}
