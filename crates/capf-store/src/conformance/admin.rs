//! Administration in bulk: bulk inserts, queries, updates by query (and their dry runs),
//! generated authentication strings, reports, LSC expiry, revocation, stale-LSC deletion and
//! import, the keepalive and device templates (requests to an external CA: `ca_requests`).
//!
//! Each behaviour takes a factory of fresh, empty stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Must;

use capf_lsc::KeyPolicy;

use crate::{
    AuthMode, BulkChange, DeviceName, DeviceQuery, DeviceStore, DeviceTemplate, DeviceUpdate,
    Error, IssuedLsc, KeepaliveMinutes, LscRecord, LscState, NewDevice, Operation, OperationStatus,
    Schedule, StatusKind, action,
};

/// A device name the test knows is valid.
fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).must()
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn device(name: &str, pool: &str, model: &str) -> NewDevice {
    NewDevice {
        device_pool: pool.into(),
        model: model.into(),
        ..NewDevice::new(dn(name))
    }
}

fn names(devices: &[crate::Device]) -> Vec<&str> {
    devices.iter().map(|d| d.name.as_str()).collect()
}

fn issue<S: DeviceStore + ?Sized>(
    s: &S,
    name: &str,
    serial: u8,
    not_after: SystemTime,
    install: bool,
) {
    s.schedule(
        &dn(name),
        Operation::InstallUpgrade(KeyPolicy::default()),
        None,
        t(0),
    )
    .must();
    s.begin_attempt(&dn(name), t(1)).must();
    s.record_lsc_issued(
        &dn(name),
        &IssuedLsc {
            serial: vec![0x40, serial],
            der: vec![0x30, 0x03, 0x02, 0x01, serial],
            not_before: t(0),
            not_after,
        },
        t(2),
    )
    .must();
    if install {
        s.confirm_lsc_installed(&dn(name), &[0x40, serial], t(3))
            .must();
    }
}

/// Bulk insert is all or nothing and names the bad item.
pub fn bulk_insert_is_all_or_nothing_and_names_the_bad_item<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    s.add_device(&NewDevice::new(dn("SEP000000000003")), t(0))
        .must();
    let batch = [
        device("SEP000000000001", "A", "8865"),
        device("SEP000000000002", "A", "8865"),
        device("sep000000000003", "B", "7841"),
    ];
    match s.add_devices(&batch, t(1)) {
        Err(Error::BulkItem { index: 2, source }) => {
            assert!(matches!(*source, Error::DuplicateDevice { .. }), "{source}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.list_devices().must().len(), 1);

    let twice = [
        device("SEP000000000001", "A", "8865"),
        device("SEP000000000001", "A", "8865"),
    ];
    assert!(matches!(
        s.add_devices(&twice, t(1)),
        Err(Error::BulkItem { index: 1, .. })
    ));
    let bad_string = [NewDevice {
        auth_string: Some("12".into()),
        ..device("SEP000000000001", "A", "8865")
    }];
    assert!(matches!(
        s.add_devices(&bad_string, t(1)),
        Err(Error::BulkItem { index: 0, source }) if matches!(*source, Error::InvalidAuthString { .. })
    ));

    assert_eq!(s.add_devices(&batch[..2], t(1)).must(), 2);
    assert_eq!(s.list_devices().must().len(), 3);
    let audit = s.audit(Some(&dn("SEP000000000002")), 10).must();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, action::DEVICE_BULK_ADDED);
}

/// A page of a query is the query's devices in name order from the offset, with the total.
pub fn a_device_page_is_a_slice_of_the_query_with_its_total<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let batch: Vec<NewDevice> = (0..25)
        .map(|i| {
            device(
                &format!("SEP0000000000{i:02}"),
                if i % 2 == 0 { "Even" } else { "Odd" },
                "8865",
            )
        })
        .collect();
    s.add_devices(&batch, t(0)).must();
    let all = s.query_devices(&DeviceQuery::default()).must();
    let page = s.device_page(&DeviceQuery::default(), 10, 10).must();
    assert_eq!(page.total, 25);
    assert_eq!(page.devices, all[10..20]);
    let last = s.device_page(&DeviceQuery::default(), 20, 10).must();
    assert_eq!(names(&last.devices), names(&all[20..]));
    let beyond = s.device_page(&DeviceQuery::default(), 30, 10).must();
    assert_eq!((beyond.devices.len(), beyond.total), (0, 25));
    let even = DeviceQuery {
        device_pool: Some("Even".into()),
        ..DeviceQuery::default()
    };
    let page = s.device_page(&even, 0, 5).must();
    assert_eq!(page.total, 13);
    assert_eq!(page.devices, s.query_devices(&even).must()[..5]);
}

/// Queries combine name pattern, device pool, model, status and LSC expiry.
pub fn queries_combine_name_pattern_pool_model_status_and_lsc_expiry<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    s.add_devices(
        &[
            device("SEP00AA00000001", "Lobby", "8865"),
            device("SEP00AA00000002", "Lobby", "7841"),
            device("SEP00BB00000003", "Floor_2", "8865"),
            device("CSFjsmith", "Lobby", "Jabber"),
        ],
        t(0),
    )
    .must();
    let q = |f: &dyn Fn(&mut DeviceQuery)| {
        let mut query = DeviceQuery::default();
        f(&mut query);
        s.query_devices(&query).must()
    };
    assert_eq!(q(&|_| {}).len(), 4);
    assert_eq!(
        names(&q(&|q| q.name_pattern = Some("sep00aa*".into()))),
        ["SEP00AA00000001", "SEP00AA00000002"]
    );
    assert_eq!(
        names(&q(&|q| q.name_pattern = Some("SEP00??0000000?".into()))).len(),
        3
    );
    // LIKE's own wildcards are plain characters in a pattern.
    assert!(q(&|q| q.device_pool = Some("Floor%2".into())).is_empty());
    assert!(q(&|q| q.name_pattern = Some("SEP%".into())).is_empty());
    assert_eq!(
        names(&q(&|q| {
            q.device_pool = Some("Lobby".into());
            q.model = Some("8865".into());
        })),
        ["SEP00AA00000001"]
    );

    issue(&s, "SEP00AA00000001", 1, t(1_000), true);
    issue(&s, "SEP00AA00000002", 2, t(9_000), true);
    issue(&s, "SEP00BB00000003", 3, t(500), false); // issued only: not an installed LSC
    assert_eq!(
        names(&q(&|q| q.lsc_expires_before = Some(t(5_000)))),
        ["SEP00AA00000001"]
    );
    assert_eq!(
        names(&q(&|q| q.status = Some(StatusKind::Success))),
        ["SEP00AA00000001", "SEP00AA00000002"]
    );
    assert_eq!(
        names(&q(&|q| q.status = Some(StatusKind::InProgress))),
        ["SEP00BB00000003"]
    );
}

/// Bulk update dry run shows the changes and changes nothing.
pub fn bulk_update_dry_run_shows_the_changes_and_changes_nothing<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    s.add_devices(
        &[
            device("SEP000000000001", "Lobby", "8865"),
            device("SEP000000000002", "Lobby", "8865"),
            device("SEP000000000003", "Other", "8865"),
        ],
        t(0),
    )
    .must();
    let query = DeviceQuery {
        device_pool: Some("Lobby".into()),
        ..DeviceQuery::default()
    };
    let change = BulkChange {
        update: DeviceUpdate {
            model: Some("8865NR".into()),
            ..DeviceUpdate::default()
        },
        schedule: Some(Schedule {
            operation: Operation::Delete,
            complete_by: Some(t(86_400)),
        }),
    };
    let audit_before = s.audit(None, usize::MAX).must().len();
    let dry = s.update_devices(&query, &change, true, t(5)).must();
    assert_eq!(
        dry.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["SEP000000000001", "SEP000000000002"]
    );
    assert!(
        dry[0].detail.contains("model \"8865NR\""),
        "{}",
        dry[0].detail
    );
    assert!(dry[0].detail.contains("Delete"), "{}", dry[0].detail);
    assert!(s.list_devices().must().iter().all(|d| d.model == "8865"));
    assert_eq!(s.audit(None, usize::MAX).must().len(), audit_before);

    let done = s.update_devices(&query, &change, false, t(5)).must();
    assert_eq!(done, dry);
    let d = s.device(&dn("SEP000000000002")).must().must();
    assert_eq!(d.model, "8865NR");
    assert_eq!(d.operation, Operation::Delete);
    assert_eq!(d.status, OperationStatus::Pending);
    assert_eq!(d.complete_by, Some(t(86_400)));
    assert_eq!(s.device(&dn("SEP000000000003")).must().must().model, "8865");
    assert_eq!(
        s.audit(Some(&dn("SEP000000000001")), 1).must()[0].action,
        action::DEVICE_BULK_UPDATED
    );
    // The same change again changes nothing, so nothing is listed.
    assert!(
        s.update_devices(&query, &change, false, t(6))
            .must()
            .is_empty()
    );
}

/// Generated strings are set with the mode and only as a tag.
pub fn generated_strings_are_set_with_the_mode_and_only_as_a_tag<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    s.add_devices(
        &[
            device("SEP000000000001", "", ""),
            device("SEP000000000002", "", ""),
        ],
        t(0),
    )
    .must();
    let strings = vec![
        (dn("SEP000000000001"), "48151623".to_owned()),
        (dn("sep000000000002"), "4242".to_owned()),
    ];
    s.set_auth_strings(&strings, t(1)).must();
    for d in s.list_devices().must() {
        assert!(d.has_auth_string);
        assert_eq!(d.auth_mode, AuthMode::AuthenticationString);
    }
    assert!(
        s.check_auth_string(&dn("SEP000000000001"), "48151623")
            .must()
    );
    assert!(s.check_auth_string(&dn("SEP000000000002"), "4242").must());
    assert!(
        !s.check_auth_string(&dn("SEP000000000002"), "48151623")
            .must()
    );

    let bad = vec![
        (dn("SEP000000000001"), "1111".to_owned()),
        (dn("SEP000000000009"), "2222".to_owned()),
    ];
    assert!(matches!(
        s.set_auth_strings(&bad, t(2)),
        Err(Error::BulkItem { index: 1, source }) if matches!(*source, Error::UnknownDevice { .. })
    ));
    // Nothing of the failed call applied.
    assert!(
        s.check_auth_string(&dn("SEP000000000001"), "48151623")
            .must()
    );
}

/// The status report counts each status, and the devices past their complete-by date.
pub fn status_report_counts_each_status_and_past_complete_by<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let install = Operation::InstallUpgrade(KeyPolicy::default());
    s.add_devices(
        &[
            NewDevice {
                operation: install,
                complete_by: Some(t(100)),
                ..NewDevice::new(dn("SEP000000000001"))
            },
            NewDevice {
                operation: install,
                complete_by: Some(t(10_000)),
                ..NewDevice::new(dn("SEP000000000002"))
            },
            NewDevice::new(dn("SEP000000000003")),
            NewDevice {
                operation: Operation::Troubleshoot,
                ..NewDevice::new(dn("SEP000000000004"))
            },
        ],
        t(0),
    )
    .must();
    s.begin_attempt(&dn("SEP000000000004"), t(1)).must();
    s.end_attempt(
        &dn("SEP000000000004"),
        crate::AttemptEnd::Failed {
            reason: "no answer".into(),
        },
        t(2),
    )
    .must();
    let r = s.status_report(t(500)).must();
    assert_eq!(
        (
            r.none,
            r.pending,
            r.in_progress,
            r.succeeded,
            r.failed,
            r.expired
        ),
        (1, 2, 0, 0, 1, 0)
    );
    assert_eq!(r.past_complete_by, 1);
    let past = s
        .query_devices(&DeviceQuery {
            complete_by_before: Some(t(500)),
            ..DeviceQuery::default()
        })
        .must();
    assert_eq!(names(&past), ["SEP000000000001"]);
}

/// Expiring LSCs are listed, expired ones revoked, stale ones deleted.
pub fn expiry_revocation_and_stale_lsc_deletion<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    for n in 1..=3 {
        s.add_device(&NewDevice::new(dn(&format!("SEP00000000000{n}"))), t(0))
            .must();
    }
    issue(&s, "SEP000000000001", 1, t(1_000), true);
    issue(&s, "SEP000000000002", 2, t(50_000), true);
    // Two issued, never confirmed: the first becomes stale.
    issue(&s, "SEP000000000003", 3, t(50_000), false);
    s.begin_attempt(&dn("SEP000000000003"), t(4)).must();
    s.record_lsc_issued(
        &dn("SEP000000000003"),
        &IssuedLsc {
            serial: vec![0x40, 4],
            der: vec![1],
            not_before: t(0),
            not_after: t(60_000),
        },
        t(5),
    )
    .must();

    let soon: Vec<_> = s
        .lscs_expiring_before(t(55_000))
        .must()
        .into_iter()
        .map(|l| l.serial[1])
        .collect();
    assert_eq!(soon, [1, 2]);

    let revoked = s.revoke_expired_lscs(t(2_000)).must();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, [0x40, 1]);
    assert_eq!(s.lsc(&[0x40, 1]).must().must().state, LscState::Revoked);
    assert_eq!(s.revoked_lscs().must(), revoked);
    assert!(s.revoke_expired_lscs(t(2_000)).must().is_empty());

    let installed = s
        .installed_lscs(&DeviceQuery {
            name_pattern: Some("SEP*".into()),
            ..DeviceQuery::default()
        })
        .must();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].device, "SEP000000000002");

    assert_eq!(s.stale_lscs().must().len(), 1);
    assert_eq!(s.delete_stale_lscs(t(10)).must(), 1);
    assert!(s.stale_lscs().must().is_empty());
    assert!(s.lsc(&[0x40, 3]).must().is_none());
    let entry = &s.audit(Some(&dn("SEP000000000003")), 1).must()[0];
    assert_eq!(entry.action, action::STALE_LSC_DELETED);
    assert!(entry.detail.contains("4003"), "{}", entry.detail);
    assert_eq!(s.delete_stale_lscs(t(11)).must(), 0);
}

/// Keepalive is stored alone.
pub fn keepalive_is_stored_alone<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let mut settings = s.settings().must();
    settings.max_sessions = 12;
    s.update_settings(&settings, t(0)).must();
    s.set_keepalive(KeepaliveMinutes::new(42).must(), t(1))
        .must();
    let back = s.settings().must();
    assert_eq!(back.keepalive.minutes(), 42);
    assert_eq!(back.max_sessions, 12);
}

/// Device templates round-trip, are replaced by name and removed.
pub fn templates_round_trip_replace_and_remove<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let template = DeviceTemplate {
        name: "Lobby phones".into(),
        description: "lobby".into(),
        device_pool: "Lobby".into(),
        model: "Cisco 8865".into(),
        operation: Operation::InstallUpgrade(KeyPolicy::default()),
        auth_mode: AuthMode::AuthenticationString,
        complete_by: Some(t(3600)),
    };
    s.save_template(&template, t(0)).must();
    assert_eq!(s.template("lobby PHONES").must(), Some(template.clone()));
    let replaced = DeviceTemplate {
        operation: Operation::None,
        ..template.clone()
    };
    s.save_template(&replaced, t(1)).must();
    assert_eq!(s.templates().must(), [replaced]);
    let d = template.new_device(dn("SEP000000000001"));
    assert_eq!(d.device_pool, "Lobby");
    assert_eq!(d.auth_mode, AuthMode::AuthenticationString);
    assert!(matches!(
        s.save_template(&DeviceTemplate::default(), t(1)),
        Err(Error::EmptyTemplateName)
    ));
    s.remove_template("Lobby phones", t(2)).must();
    assert!(s.templates().must().is_empty());
    assert!(matches!(
        s.remove_template("Lobby phones", t(2)),
        Err(Error::UnknownTemplate { .. })
    ));
}

fn record(serial: u8, device: &str, state: LscState) -> LscRecord {
    LscRecord {
        serial: vec![0x50, serial],
        device: dn(device),
        der: vec![0x30, 0x03, 0x02, 0x01, serial],
        not_before: t(0),
        not_after: t(86_400),
        issued_at: t(10),
        state,
        state_changed_at: t(20),
    }
}

/// Imported LSC records are stored as given, with an audit entry each, all or none.
pub fn imported_lscs_are_stored_as_given_all_or_nothing<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    s.add_device(&NewDevice::new(dn("SEP000000000001")), t(0))
        .must();
    s.record_lsc_issued(
        &dn("SEP000000000001"),
        &IssuedLsc {
            serial: vec![0x40, 1],
            der: vec![1],
            not_before: t(0),
            not_after: t(1_000),
        },
        t(1),
    )
    .must();
    let audit_before = s.audit(None, usize::MAX).must().len();

    // The first bad record applies nothing, and is named by its index.
    let mut empty_der = record(3, "SEP000000000002", LscState::Installed);
    empty_der.der.clear();
    let mut backwards = record(4, "SEP000000000002", LscState::Installed);
    backwards.not_after = t(0) - Duration::from_secs(1);
    let mut taken = record(5, "SEP000000000002", LscState::Installed);
    taken.serial = vec![0x40, 1];
    let bad_batches = [
        (
            vec![record(1, "SEP000000000002", LscState::Installed), empty_der],
            1,
        ),
        (vec![backwards], 0),
        (
            vec![record(7, "SEP000000000002", LscState::Stale), taken],
            1,
        ),
        (
            vec![
                record(8, "SEP000000000002", LscState::Stale),
                record(8, "SEP000000000003", LscState::Stale),
            ],
            1,
        ),
    ];
    // A record's device name is validated where the record is made (a `DeviceName`), so a
    // record for "SEP 2" cannot reach the store.
    assert!(matches!(
        DeviceName::new("SEP 2"),
        Err(capf_wire::Error::InvalidDeviceName { .. })
    ));
    for (batch, bad) in bad_batches {
        match s.import_lscs(&mut batch.into_iter(), t(30)) {
            Err(Error::BulkItem { index, source }) => {
                assert_eq!(index, bad, "{source}");
                assert!(
                    matches!(
                        *source,
                        Error::InvalidLsc { .. } | Error::DuplicateSerial { .. }
                    ),
                    "{source}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.audit(None, usize::MAX).must().len(), audit_before);
    assert!(s.lscs(&dn("SEP000000000002")).must().is_empty());

    // A device not registered (or removed) may have LSCs; each keeps its state and times.
    let good = vec![
        record(1, "SEP000000000002", LscState::Superseded),
        record(2, "SEP000000000002", LscState::Installed),
        record(3, "SEP000000000003", LscState::Stale),
        record(4, "SEP000000000001", LscState::Revoked),
    ];
    assert_eq!(
        s.import_lscs(&mut good.clone().into_iter(), t(30)).must(),
        4
    );
    assert_eq!(s.lscs(&dn("SEP000000000002")).must(), good[..2]);
    assert_eq!(s.lsc(&[0x50, 3]).must().as_ref(), Some(&good[2]));
    assert_eq!(s.stale_lscs().must(), good[2..3]);
    assert_eq!(s.revoked_lscs().must(), good[3..]);
    assert_eq!(s.lscs(&dn("SEP000000000001")).must().len(), 2);
    let entry = &s.audit(Some(&dn("SEP000000000003")), 1).must()[0];
    assert_eq!(entry.action, action::LSC_IMPORTED);
    assert_eq!(entry.at, t(30));
    assert!(entry.detail.contains("5003"), "{}", entry.detail);
    assert_eq!(
        s.audit(None, usize::MAX).must().len(),
        audit_before + good.len()
    );
    assert_eq!(s.import_lscs(&mut std::iter::empty(), t(31)).must(), 0);
}
