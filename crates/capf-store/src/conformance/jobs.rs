//! Scheduled jobs (stored, listed, cancelled, claimed exactly once, finished with their
//! result, claimed again when their node died or restarted, their work committed with their end) and the directory sync state (first sync, new devices
//! only, departed devices reported and kept, all or nothing, dry runs).
//!
//! Each behaviour takes a factory of fresh, empty stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Must;

use crate::{
    AuthMode, BulkChange, DeviceName, DeviceQuery, DeviceStore, DeviceUpdate,
    DirectoryConfigRecord, DirectoryEntry, Error, JobResult, JobState, JobWork, NewDevice, NewJob,
    Operation, OperationStatus, Secret, action,
};

/// The lease every claim here takes.
const LEASE: Duration = Duration::from_secs(60);

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).must()
}

fn job(kind: &str, due: SystemTime) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        description: format!("a {kind} job"),
        payload: format!("payload of {kind}\nwith lines"),
        due,
        singleton: false,
    }
}

fn entry(name: &str) -> DirectoryEntry {
    DirectoryEntry {
        device: NewDevice {
            description: "from the directory".to_owned(),
            operation: Operation::Delete,
            auth_mode: AuthMode::ExistingCertificateMicFirst,
            ..NewDevice::new(dn(name))
        },
        dn: format!("uid={name},ou=people,dc=example,dc=test"),
    }
}

/// A job is stored Scheduled with everything given, listed by number and by state, found by
/// number; a Scheduled job is cancelled once and never claimed; an empty kind is refused.
pub fn jobs_are_stored_listed_and_cancelled<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let a = s.add_job(&job("bulk-update", t(100)), t(0)).must();
    assert_eq!(a.state, JobState::Scheduled);
    assert_eq!(a.kind, "bulk-update");
    assert_eq!(a.payload, "payload of bulk-update\nwith lines");
    assert_eq!(a.due, t(100));
    assert_eq!(a.created_at, t(0));
    assert_eq!(
        (a.started_at, a.finished_at, a.node.clone()),
        (None, None, None)
    );
    assert_eq!(a.result, None);
    let b = s.add_job(&job("bulk-insert", t(50)), t(1)).must();
    assert!(b.id > a.id);
    let ids: Vec<i64> = s.jobs(None).must().iter().map(|j| j.id).collect();
    assert_eq!(ids, [a.id, b.id]);
    assert_eq!(s.job(b.id).must().must(), b);
    assert!(s.job(b.id + 100).must().is_none());

    let cancelled = s.cancel_job(b.id, t(2)).must();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.finished_at, Some(t(2)));
    assert!(matches!(
        s.cancel_job(b.id, t(3)),
        Err(Error::JobWrongState {
            state: JobState::Cancelled,
            ..
        })
    ));
    assert!(matches!(
        s.cancel_job(b.id + 100, t(3)),
        Err(Error::UnknownJob { .. })
    ));
    let scheduled: Vec<i64> = s
        .jobs(Some(JobState::Scheduled))
        .must()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(scheduled, [a.id]);
    // The cancelled job is due first, but only the other one is ever claimed.
    let claimed = s.claim_due_job("node-a", LEASE, t(1000)).must().must();
    assert_eq!(claimed.id, a.id);
    assert!(s.claim_due_job("node-a", LEASE, t(1000)).must().is_none());
    assert!(matches!(
        s.cancel_job(a.id, t(1001)),
        Err(Error::JobWrongState {
            state: JobState::Running,
            ..
        })
    ));
    assert!(matches!(
        s.add_job(&job(" ", t(0)), t(0)),
        Err(Error::InvalidJob { .. })
    ));
}

/// A job is claimed only once due, by one caller, earliest due first; it finishes once with its
/// result (devices changed, errors in order), and a failure makes it Failed with the reason.
pub fn a_due_job_is_claimed_once_and_finished_with_its_result<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let late = s.add_job(&job("late", t(20)), t(0)).must();
    let early = s.add_job(&job("early", t(10)), t(0)).must();
    assert!(s.claim_due_job("node-a", LEASE, t(9)).must().is_none());
    let claimed = s.claim_due_job("node-a", LEASE, t(10)).must().must();
    assert_eq!(claimed.id, early.id);
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.started_at, Some(t(10)));
    assert_eq!(claimed.node.as_deref(), Some("node-a"));
    assert!(s.claim_due_job("node-b", LEASE, t(19)).must().is_none());

    let result = JobResult {
        devices_changed: 3,
        errors: vec!["line 4: bad name".to_owned(), "line 9: bad name".to_owned()],
        failure: None,
    };
    let done = s.finish_job(&claimed, &result, t(11)).must();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.finished_at, Some(t(11)));
    assert_eq!(done.result.as_ref(), Some(&result));
    assert_eq!(s.job(early.id).must().must().result, Some(result));
    assert!(matches!(
        s.finish_job(&claimed, &JobResult::default(), t(12)),
        Err(Error::JobWrongState {
            state: JobState::Succeeded,
            ..
        })
    ));
    assert!(matches!(
        s.finish_job(&late, &JobResult::default(), t(12)),
        Err(Error::JobWrongState {
            state: JobState::Scheduled,
            ..
        })
    ));

    let claimed = s.claim_due_job("node-b", LEASE, t(30)).must().must();
    assert_eq!(claimed.id, late.id);
    let failed = s
        .finish_job(
            &claimed,
            &JobResult {
                failure: Some("the CSV file names an unknown template".to_owned()),
                ..JobResult::default()
            },
            t(31),
        )
        .must();
    assert_eq!(failed.state, JobState::Failed);
    let result = failed.result.must();
    assert_eq!(
        result.failure.as_deref(),
        Some("the CSV file names an unknown template")
    );
    assert_eq!(result.devices_changed, 0);
    assert!(s.claim_due_job("node-a", LEASE, t(1000)).must().is_none());
}

/// Callers on many threads claiming at once get each due job exactly once.
pub fn concurrent_claims_take_each_job_exactly_once<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let mut ids: Vec<i64> = (0..20)
        .map(|i| s.add_job(&job("bulk-update", t(i)), t(0)).must().id)
        .collect();
    let mut claimed: Vec<i64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let s = &s;
                scope.spawn(move || {
                    let node = format!("node-{w}");
                    let mut mine = Vec::new();
                    while let Some(job) = s.claim_due_job(&node, LEASE, t(100)).must() {
                        mine.push(job.id);
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().must()).collect()
    });
    claimed.sort_unstable();
    ids.sort_unstable();
    assert_eq!(claimed, ids);
}

/// At most one singleton job of a kind is Scheduled or Running; once it ends, the next may be
/// added.
pub fn a_singleton_job_is_one_at_a_time<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let single = |due| NewJob {
        singleton: true,
        ..job("monitor", due)
    };
    let first = s.add_job(&single(t(10)), t(0)).must();
    assert!(first.singleton);
    assert!(matches!(
        s.add_job(&single(t(20)), t(1)),
        Err(Error::JobAlreadyScheduled { kind }) if kind == "monitor"
    ));
    // Another kind, or the same kind not as a singleton, is not held back.
    s.add_job(&job("monitor", t(20)), t(1)).must();
    let claimed = s.claim_due_job("node-a", LEASE, t(10)).must().must();
    assert_eq!(claimed.id, first.id);
    assert!(matches!(
        s.add_job(&single(t(20)), t(11)),
        Err(Error::JobAlreadyScheduled { .. })
    ));
    s.finish_job(&claimed, &JobResult::default(), t(12)).must();
    let next = s.add_job(&single(t(3600)), t(12)).must();
    assert_eq!(next.state, JobState::Scheduled);
}

/// The jobs a node left Running when it restarted are released and claimed again (by it or
/// another node), each audited; another node's running jobs and scheduled jobs are left
/// alone. The interrupted run's claim is lost: its finish records nothing and its work applies
/// nothing; the new claim's work applies once.
pub fn running_jobs_of_a_restarted_node_are_claimed_again<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let a = s.add_job(&job("a", t(1)), t(0)).must();
    let b = s.add_job(&job("b", t(2)), t(0)).must();
    let c = s.add_job(&job("c", t(500)), t(0)).must();
    let first = s.claim_due_job("node-a", LEASE, t(5)).must().must();
    assert_eq!((first.id, first.claims), (a.id, 1));
    assert_eq!(first.lease_until, Some(t(65)));
    assert_eq!(
        s.claim_due_job("node-b", LEASE, t(5)).must().must().id,
        b.id
    );
    let released = s.release_running_jobs("node-a", t(6)).must();
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].id, a.id);
    assert_eq!(released[0].state, JobState::Running);
    assert_eq!(s.audit(None, 1).must()[0].action, action::JOB_RELEASED);
    assert!(s.release_running_jobs("node-a", t(7)).must().is_empty());
    // Node b's job keeps its lease; node a's is claimed again at once.
    let again = s.claim_due_job("node-b", LEASE, t(7)).must().must();
    assert_eq!((again.id, again.claims), (a.id, 2));
    assert_eq!(again.node.as_deref(), Some("node-b"));
    assert!(s.claim_due_job("node-a", LEASE, t(8)).must().is_none());
    assert_eq!(s.job(c.id).must().must().state, JobState::Scheduled);
    let started = s.audit(None, 1).must().remove(0);
    assert_eq!(started.action, action::JOB_STARTED);
    assert!(started.detail.contains("claim 2"), "{}", started.detail);

    // The interrupted run comes back: it finishes nothing and applies nothing.
    let devices = [NewDevice::new(dn("SEP001122334455"))];
    assert!(matches!(
        s.finish_job_with_work(&first, &JobWork::AddDevices(&devices), t(9)),
        Err(Error::JobClaimLost { id, ref node }) if id == a.id && node == "node-b"
    ));
    assert!(matches!(
        s.finish_job(&first, &JobResult::default(), t(9)),
        Err(Error::JobClaimLost { .. })
    ));
    assert!(s.device(&devices[0].name).must().is_none());
    let done = s
        .finish_job_with_work(&again, &JobWork::AddDevices(&devices), t(10))
        .must();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result.must().devices_changed, 1);
    assert_eq!(done.lease_until, None);
    assert!(s.device(&devices[0].name).must().is_some());
}

/// A job whose node died is claimed again once its lease runs out, and not before; a node that
/// renews its leases keeps its jobs. The dead run's work, were it to come back, applies nothing.
pub fn a_job_of_a_dead_node_is_claimed_again_after_its_lease<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let a = s.add_job(&job("bulk-insert", t(10)), t(0)).must();
    let dead = s.claim_due_job("node-a", LEASE, t(10)).must().must();
    assert_eq!(dead.id, a.id);
    assert!(s.claim_due_job("node-b", LEASE, t(70)).must().is_none());
    // Renewed at t(50): held until t(110).
    assert_eq!(s.renew_job_leases("node-a", LEASE, t(50)).must(), 1);
    assert_eq!(s.renew_job_leases("node-b", LEASE, t(50)).must(), 0);
    assert_eq!(s.job(a.id).must().must().lease_until, Some(t(110)));
    assert!(s.claim_due_job("node-b", LEASE, t(110)).must().is_none());
    // Node a stops renewing (it died): node b takes the job over.
    let taken = s.claim_due_job("node-b", LEASE, t(111)).must().must();
    assert_eq!((taken.id, taken.claims), (a.id, 2));
    assert_eq!(taken.started_at, Some(t(111)));
    let devices = [
        NewDevice::new(dn("SEP001122334455")),
        NewDevice::new(dn("SEP001122334456")),
    ];
    assert!(matches!(
        s.finish_job_with_work(&dead, &JobWork::AddDevices(&devices), t(112)),
        Err(Error::JobClaimLost { .. })
    ));
    assert!(s.device(&devices[0].name).must().is_none());
    let done = s
        .finish_job_with_work(&taken, &JobWork::AddDevices(&devices), t(113))
        .must();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result.must().devices_changed, 2);
    assert_eq!(s.query_devices(&DeviceQuery::default()).must().len(), 2);
}

/// A job's work and its end commit together: once Succeeded it is never claimed or applied
/// again, however late; work that fails applies nothing and leaves the job Running under its
/// claim, which then records the failure.
pub fn a_job_whose_work_committed_is_not_run_again<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    for name in ["SEP001122334455", "SEP001122334456"] {
        s.add_device(&NewDevice::new(dn(name)), t(0)).must();
    }
    let update = s.add_job(&job("bulk-update", t(1)), t(0)).must();
    let claimed = s.claim_due_job("node-a", LEASE, t(1)).must().must();
    assert_eq!(claimed.id, update.id);
    let change = BulkChange {
        update: DeviceUpdate {
            model: Some("Cisco 8865".to_owned()),
            ..DeviceUpdate::default()
        },
        schedule: None,
    };
    let query = DeviceQuery::default();
    let work = JobWork::UpdateDevices {
        query: &query,
        change: &change,
    };
    let done = s.finish_job_with_work(&claimed, &work, t(2)).must();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result.must().devices_changed, 2);
    let audited = s.audit(None, 100).must().len();
    assert!(s.claim_due_job("node-b", LEASE, t(10_000)).must().is_none());
    assert!(matches!(
        s.finish_job_with_work(&claimed, &work, t(3)),
        Err(Error::JobWrongState {
            state: JobState::Succeeded,
            ..
        })
    ));
    assert_eq!(s.audit(None, 100).must().len(), audited);

    // A device that exists already: the insert applies nothing, the job stays Running.
    let insert = s.add_job(&job("bulk-insert", t(20)), t(0)).must();
    let claimed = s.claim_due_job("node-a", LEASE, t(20)).must().must();
    assert_eq!(claimed.id, insert.id);
    let devices = [
        NewDevice::new(dn("SEP0011223344AA")),
        NewDevice::new(dn("SEP001122334455")),
    ];
    assert!(matches!(
        s.finish_job_with_work(&claimed, &JobWork::AddDevices(&devices), t(21)),
        Err(Error::BulkItem { index: 1, .. })
    ));
    assert!(s.device(&devices[0].name).must().is_none());
    assert_eq!(s.job(insert.id).must().must().state, JobState::Running);
    let failed = s
        .finish_job(
            &claimed,
            &JobResult {
                failure: Some("SEP001122334455 exists".to_owned()),
                ..JobResult::default()
            },
            t(22),
        )
        .must();
    assert_eq!(failed.state, JobState::Failed);
}

/// Every job change appends one audit entry, naming the job.
pub fn job_changes_are_audited<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let a = s.add_job(&job("a", t(1)), t(0)).must();
    let b = s.add_job(&job("b", t(1)), t(0)).must();
    s.cancel_job(b.id, t(1)).must();
    let claimed = s.claim_due_job("node-a", LEASE, t(2)).must().must();
    assert_eq!(claimed.id, a.id);
    s.finish_job(&claimed, &JobResult::default(), t(3)).must();
    let actions: Vec<String> = s
        .audit(None, 10)
        .must()
        .into_iter()
        .map(|e| {
            assert!(e.device.is_none());
            assert!(e.detail.contains("job "), "{}", e.detail);
            e.action
        })
        .collect();
    assert_eq!(
        actions,
        [
            action::JOB_FINISHED,
            action::JOB_STARTED,
            action::JOB_CANCELLED,
            action::JOB_SCHEDULED,
            action::JOB_SCHEDULED
        ]
    );
}

/// The first sync registers every entry with the settings given and records that it ran; a
/// later sync registers only the new entries, leaves the others as they are (also a device
/// registered otherwise), and reports the devices that left the directory without removing
/// them; every device added has its audit entry naming its DN.
pub fn a_directory_sync_adds_new_devices_only_and_reports_departed_ones<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    assert_eq!(s.directory_sync_state().must().first_sync_at, None);
    s.add_device(&NewDevice::new(dn("CSFbob")), t(0)).must();
    let first = s
        .sync_directory(&[entry("CSFalice"), entry("CSFbob")], false, t(10))
        .must();
    assert!(first.first_sync);
    assert_eq!(first.added, [dn("CSFalice")]);
    assert_eq!(first.already_registered, [dn("CSFbob")]);
    assert!(first.departed.is_empty());
    let alice = s.device(&dn("csfalice")).must().must();
    assert_eq!(alice.description, "from the directory");
    assert_eq!(alice.operation, Operation::Delete);
    assert_eq!(alice.status, OperationStatus::Pending);
    assert_eq!(alice.auth_mode, AuthMode::ExistingCertificateMicFirst);
    let bob = s.device(&dn("CSFbob")).must().must();
    assert_eq!(bob.description, "");
    let audit = s.audit(Some(&dn("CSFalice")), 5).must();
    assert_eq!(audit[0].action, action::DEVICE_DIRECTORY_ADDED);
    assert!(
        audit[0]
            .detail
            .contains("uid=CSFalice,ou=people,dc=example,dc=test"),
        "{}",
        audit[0].detail
    );
    let state = s.directory_sync_state().must();
    assert_eq!(state.first_sync_at, Some(t(10)));
    assert_eq!(state.devices.len(), 2);

    // Alice's settings changed by hand stay; Bob left; Carol is new.
    s.update_device(
        &dn("CSFalice"),
        &crate::DeviceUpdate {
            description: Some("hers".to_owned()),
            ..Default::default()
        },
        t(11),
    )
    .must();
    let second = s
        .sync_directory(&[entry("CSFALICE"), entry("CSFcarol")], false, t(20))
        .must();
    assert!(!second.first_sync);
    assert_eq!(second.added, [dn("CSFcarol")]);
    assert_eq!(second.already_registered, [dn("CSFALICE")]);
    let departed: Vec<&str> = second.departed.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(departed, ["CSFbob"]);
    assert_eq!(second.departed[0].last_seen, t(10));
    assert_eq!(s.device(&dn("CSFalice")).must().must().description, "hers");
    assert!(s.device(&dn("CSFbob")).must().is_some());
    let state = s.directory_sync_state().must();
    assert_eq!(state.first_sync_at, Some(t(10)));
    assert_eq!(state.last_sync_at, Some(t(20)));
    let names: Vec<&str> = state.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.len(), 3);
    // Still reported on the next sync: a departed device is never forgotten silently.
    let third = s.sync_directory(&[entry("CSFcarol")], false, t(30)).must();
    assert_eq!(third.departed.len(), 2);
    assert!(third.added.is_empty());
}

/// A dry run works the sync out and applies nothing (not even the first-sync mark); an entry
/// given twice fails the whole sync by its index, and nothing is applied.
pub fn a_directory_sync_dry_run_or_a_bad_entry_applies_nothing<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let dry = s
        .sync_directory(&[entry("CSFalice"), entry("CSFbob")], true, t(10))
        .must();
    assert!(dry.first_sync);
    assert_eq!(dry.added.len(), 2);
    assert!(s.list_devices().must().is_empty());
    assert_eq!(s.directory_sync_state().must(), Default::default());
    assert!(s.audit(None, 10).must().is_empty());

    let Err(err) = s.sync_directory(
        &[entry("CSFalice"), entry("CSFbob"), entry("csfALICE")],
        false,
        t(11),
    ) else {
        panic!("a device given twice was accepted");
    };
    assert!(
        matches!(&err, Error::BulkItem { index: 2, source } if matches!(**source, Error::DuplicateDevice { .. })),
        "{err:?}"
    );
    assert!(s.list_devices().must().is_empty());
    assert_eq!(s.directory_sync_state().must().first_sync_at, None);
}

/// The directory configuration is none until set, round-trips with its password, is replaced
/// by the next, and its audit entry never holds the password.
pub fn the_directory_configuration_round_trips_without_showing_its_password<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    assert!(s.directory_config().must().is_none());
    let mut config = DirectoryConfigRecord {
        url: "ldaps://ldap.example.test:636".to_owned(),
        bind_dn: "cn=admin,dc=example,dc=test".to_owned(),
        password: Secret::new("s3cret-bind"),
        base: "ou=people,dc=example,dc=test".to_owned(),
        filter: "(objectClass=inetOrgPerson)".to_owned(),
        device_name: "CSF+uid".to_owned(),
        template: "phones".to_owned(),
    };
    s.set_directory_config(&config, t(1)).must();
    assert_eq!(s.directory_config().must().must(), config);
    assert!(!format!("{config:?}").contains("s3cret-bind"));
    config.password = Secret::new("other");
    config.template = "desks".to_owned();
    s.set_directory_config(&config, t(2)).must();
    assert_eq!(s.directory_config().must().must(), config);
    let entries = s.audit(None, 10).must();
    assert_eq!(entries[0].action, action::DIRECTORY_CONFIG_SET);
    assert!(
        entries[0].detail.contains("template desks"),
        "{}",
        entries[0].detail
    );
    for e in entries {
        assert!(!e.detail.contains("s3cret-bind") && !e.detail.contains("other"));
    }
}
