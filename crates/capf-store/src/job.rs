//! Scheduled jobs (the guide's Run Later and Manage Scheduled Jobs, and the built-in certificate
//! monitor) and what a directory sync remembers between runs.
//!
//! The store keeps a job's kind and payload as text and never reads them: what a kind means is
//! capf-admin's (`capf_admin::jobs`). What the store owns is the lifecycle, so that a job runs
//! exactly once: [`AdminStore::claim_due_job`](crate::AdminStore::claim_due_job) moves one due
//! job from Scheduled to Running in one statement, whichever process or node asks, leased to
//! the node for a while; a job whose node died (its lease ran out) or restarted is claimed
//! again. That is safe because a job's store work and its end are one transaction
//! ([`AdminStore::finish_job_with_work`](crate::AdminStore::finish_job_with_work)): a run that
//! crashed committed nothing, and a run whose claim was taken over commits nothing.

use core::fmt;
use std::time::{Duration, SystemTime};

use capf_lsc::DeviceName;

use crate::{BulkChange, DeviceQuery, Error, NewDevice, Secret};

/// How long a claim holds a job when the caller gives no lease of its own: a node renews its
/// jobs' leases well within it ([`AdminStore::renew_job_leases`](crate::AdminStore::renew_job_leases)).
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(30);

/// Where a job stands.
///
/// Stored as text in column `jobs.state`: `scheduled`, `running`, `succeeded`, `failed`,
/// `cancelled`. One name table: [`JobState::as_str`], parsed by `FromStr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for its time.
    Scheduled,
    /// Claimed by a server, which is running it.
    Running,
    /// It ran to the end ([`Job::result`] says what it changed and which items it refused).
    Succeeded,
    /// It ran and failed, or was interrupted ([`Job::result`]'s failure says why).
    Failed,
    /// Cancelled before it ran; it never will.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] = [
        JobState::Scheduled,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The state's name, as stored and typed.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job is over (Succeeded, Failed or Cancelled).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for JobState {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| Error::UnknownName {
                what: "job state",
                name: name.to_owned(),
            })
    }
}

/// A job to store ([`AdminStore::add_job`](crate::AdminStore::add_job)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// What kind of job it is (capf-admin's name, such as `bulk-update`); not empty.
    pub kind: String,
    /// One line for people (`job list`).
    pub description: String,
    /// What the job needs to run (capf-admin's encoding of its parameters, such as the CSV
    /// file's content), kept as given.
    pub payload: String,
    /// When it is due.
    pub due: SystemTime,
    /// At most one job of this kind may be Scheduled or Running at a time (the built-in
    /// monitor): adding a second is refused with [`Error::JobAlreadyScheduled`].
    pub singleton: bool,
}

/// What a job did: recorded when it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobResult {
    /// How many devices it changed (added, updated, whose LSC it revoked).
    pub devices_changed: u64,
    /// The items it refused while the rest went on (a directory entry with a bad device name),
    /// one line each.
    pub errors: Vec<String>,
    /// Why it failed as a whole; `None` when it succeeded.
    pub failure: Option<String>,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Job {
    /// Its number, given by the store.
    pub id: i64,
    /// What kind of job it is.
    pub kind: String,
    /// One line for people.
    pub description: String,
    /// Its parameters, as stored.
    pub payload: String,
    /// When it is (or was) due.
    pub due: SystemTime,
    /// Where it stands.
    pub state: JobState,
    /// Whether it is a singleton ([`NewJob::singleton`]).
    pub singleton: bool,
    /// When it was stored.
    pub created_at: SystemTime,
    /// When a server claimed it.
    pub started_at: Option<SystemTime>,
    /// Which server claimed it (the name given to
    /// [`AdminStore::claim_due_job`](crate::AdminStore::claim_due_job)).
    pub node: Option<String>,
    /// How many times it was claimed: 1 for a run that was never interrupted, more when a node
    /// died or restarted while it ran. A run names its claim by it, so a run whose claim was
    /// taken over records nothing.
    pub claims: u32,
    /// While Running: until when its node holds it; after that another node may claim it.
    pub lease_until: Option<SystemTime>,
    /// When it ended (ran, failed, or was cancelled).
    pub finished_at: Option<SystemTime>,
    /// What it did, once it ran (Succeeded or Failed).
    pub result: Option<JobResult>,
}

/// A job's work on the store, done in the same transaction as the job's end
/// ([`AdminStore::finish_job_with_work`](crate::AdminStore::finish_job_with_work)), so a job
/// either did its work and is Succeeded, or did none of it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum JobWork<'a> {
    /// Register these devices, all or none ([`AdminStore::add_devices`](crate::AdminStore::add_devices)).
    AddDevices(&'a [NewDevice]),
    /// Apply a change to the devices a query matches
    /// ([`AdminStore::update_devices`](crate::AdminStore::update_devices)).
    UpdateDevices {
        /// Which devices.
        query: &'a DeviceQuery,
        /// What changes.
        change: &'a BulkChange,
    },
}

/// One directory entry a sync brings in: the device it makes (with the template's settings)
/// and the entry's DN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The device to register when it is new.
    pub device: NewDevice,
    /// The entry's distinguished name.
    pub dn: String,
}

/// A device a directory sync brought in (or found registered already), as remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryDevice {
    /// The device.
    pub name: DeviceName,
    /// Its directory entry's DN when last seen.
    pub dn: String,
    /// When a sync first found it.
    pub first_seen: SystemTime,
    /// When a sync last found it in the directory.
    pub last_seen: SystemTime,
}

/// What one directory sync did ([`AdminStore::sync_directory`](crate::AdminStore::sync_directory)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectorySyncOutcome {
    /// Whether this was the directory's first sync (none had been applied before).
    pub first_sync: bool,
    /// The devices registered by this sync, in input order.
    pub added: Vec<DeviceName>,
    /// Entries whose device was registered already (by an earlier sync or otherwise), left as
    /// they are.
    pub already_registered: Vec<DeviceName>,
    /// Devices an earlier sync brought in that the directory no longer lists: reported, never
    /// deleted.
    pub departed: Vec<DirectoryDevice>,
}

/// The directory a sync reads, as stored ([`AdminStore::set_directory_config`](crate::AdminStore::set_directory_config)):
/// the bind password is sealed in the store as the Online CA password is, and never shown
/// (`Debug` masks it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryConfigRecord {
    /// `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]`.
    pub url: String,
    /// The DN to bind as.
    pub bind_dn: String,
    /// The bind password.
    pub password: Secret,
    /// The search base.
    pub base: String,
    /// The search filter.
    pub filter: String,
    /// How an entry gives its device name: capf-admin's rule text (`uid`, `CSF+uid`).
    pub device_name: String,
    /// The device template whose settings the devices get.
    pub template: String,
}

/// Where the directory sync stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectorySyncState {
    /// When the first sync was applied; `None` before it.
    pub first_sync_at: Option<SystemTime>,
    /// When the last sync was applied.
    pub last_sync_at: Option<SystemTime>,
    /// Every device a sync found, ordered by name.
    pub devices: Vec<DirectoryDevice>,
}
