//! Scheduled jobs (stored, listed, cancelled, claimed exactly once, finished with their
//! result, failed when their node stopped) and the directory sync state (first sync, new devices
//! only, departed devices reported and kept, all or nothing, dry runs).
//!
//! Each behaviour takes a factory of fresh, empty stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Must;

use crate::{
    AuthMode, DeviceName, DeviceStore, DirectoryEntry, Error, JobResult, JobState, NewDevice,
    NewJob, Operation, OperationStatus, action,
};

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
    let claimed = s.claim_due_job("node-a", t(1000)).must().must();
    assert_eq!(claimed.id, a.id);
    assert!(s.claim_due_job("node-a", t(1000)).must().is_none());
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
    assert!(s.claim_due_job("node-a", t(9)).must().is_none());
    let claimed = s.claim_due_job("node-a", t(10)).must().must();
    assert_eq!(claimed.id, early.id);
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.started_at, Some(t(10)));
    assert_eq!(claimed.node.as_deref(), Some("node-a"));
    assert!(s.claim_due_job("node-b", t(19)).must().is_none());

    let result = JobResult {
        devices_changed: 3,
        errors: vec!["line 4: bad name".to_owned(), "line 9: bad name".to_owned()],
        failure: None,
    };
    let done = s.finish_job(early.id, &result, t(11)).must();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.finished_at, Some(t(11)));
    assert_eq!(done.result.as_ref(), Some(&result));
    assert_eq!(s.job(early.id).must().must().result, Some(result));
    assert!(matches!(
        s.finish_job(early.id, &JobResult::default(), t(12)),
        Err(Error::JobWrongState {
            state: JobState::Succeeded,
            ..
        })
    ));
    assert!(matches!(
        s.finish_job(late.id, &JobResult::default(), t(12)),
        Err(Error::JobWrongState {
            state: JobState::Scheduled,
            ..
        })
    ));

    let claimed = s.claim_due_job("node-b", t(30)).must().must();
    assert_eq!(claimed.id, late.id);
    let failed = s
        .finish_job(
            late.id,
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
    assert!(s.claim_due_job("node-a", t(1000)).must().is_none());
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
                    while let Some(job) = s.claim_due_job(&node, t(100)).must() {
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
    s.claim_due_job("node-a", t(10)).must().must();
    assert!(matches!(
        s.add_job(&single(t(20)), t(11)),
        Err(Error::JobAlreadyScheduled { .. })
    ));
    s.finish_job(first.id, &JobResult::default(), t(12)).must();
    let next = s.add_job(&single(t(3600)), t(12)).must();
    assert_eq!(next.state, JobState::Scheduled);
}

/// The jobs a node left Running fail with the reason given when it starts again; another
/// node's running jobs and scheduled jobs are left alone; a failed job is never claimed again.
pub fn running_jobs_of_a_restarted_node_fail_and_never_run_again<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let a = s.add_job(&job("a", t(1)), t(0)).must();
    let b = s.add_job(&job("b", t(2)), t(0)).must();
    let c = s.add_job(&job("c", t(500)), t(0)).must();
    assert_eq!(s.claim_due_job("node-a", t(5)).must().must().id, a.id);
    assert_eq!(s.claim_due_job("node-b", t(5)).must().must().id, b.id);
    let failed = s
        .fail_running_jobs("node-a", "interrupted: the server stopped", t(6))
        .must();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, a.id);
    assert_eq!(failed[0].state, JobState::Failed);
    assert_eq!(
        failed[0].result.as_ref().must().failure.as_deref(),
        Some("interrupted: the server stopped")
    );
    assert_eq!(s.job(b.id).must().must().state, JobState::Running);
    assert_eq!(s.job(c.id).must().must().state, JobState::Scheduled);
    assert!(
        s.fail_running_jobs("node-a", "again", t(7))
            .must()
            .is_empty()
    );
    assert_eq!(s.claim_due_job("node-a", t(600)).must().must().id, c.id);
    assert!(s.claim_due_job("node-a", t(600)).must().is_none());
}

/// Every job change appends one audit entry, naming the job.
pub fn job_changes_are_audited<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let a = s.add_job(&job("a", t(1)), t(0)).must();
    let b = s.add_job(&job("b", t(1)), t(0)).must();
    s.cancel_job(b.id, t(1)).must();
    s.claim_due_job("node-a", t(2)).must().must();
    s.finish_job(a.id, &JobResult::default(), t(3)).must();
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
