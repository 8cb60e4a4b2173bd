//! The device lifecycle: registration, schedules, authentication strings, attempts, LSCs issued,
//! installed, deleted and revoked, troubleshoot results, settings and the audit log.
//!
//! Each behaviour takes a factory of fresh, empty stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Must;

use capf_lsc::{Curve, KeyOrder, KeyPolicy, KeySpec, RsaBits};

use crate::{
    AdminStore, AttemptEnd, AuthMode, Device, DeviceName, DeviceStore, DeviceUpdate, Error,
    FetchedCertificate, IssuedLsc, KeepaliveMinutes, LscState, NewDevice, Operation,
    OperationStatus, Settings, TroubleshootResult, action,
};

const PHONE: &str = "SEP001122AABBCC";

/// A device name the test knows is valid.
fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).must()
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn install() -> Operation {
    Operation::InstallUpgrade(KeyPolicy::default())
}

fn with_phone<S: DeviceStore>(new_store: impl Fn() -> S, operation: Operation) -> S {
    let s = new_store();
    let mut new = NewDevice::new(dn(PHONE));
    new.operation = operation;
    s.add_device(&new, t(0)).must();
    s
}

fn lsc(serial: u8) -> IssuedLsc {
    IssuedLsc {
        serial: vec![0x01, serial],
        der: vec![0x30, 0x03, 0x02, 0x01, serial],
        not_before: t(0),
        not_after: t(86_400),
    }
}

/// An LSC valid for a year from `at`.
fn lsc_at(serial: &[u8], at: SystemTime) -> IssuedLsc {
    IssuedLsc {
        serial: serial.to_vec(),
        der: [&[0x30, 0x82, 0x01, 0x00][..], serial].concat(),
        not_before: at,
        not_after: at + Duration::from_secs(365 * 86_400),
    }
}

fn audit_count<S: AdminStore + ?Sized>(s: &S) -> usize {
    s.audit(None, usize::MAX).must().len()
}

fn states<S: AdminStore + ?Sized>(s: &S) -> Vec<LscState> {
    s.lscs(&dn(PHONE))
        .must()
        .into_iter()
        .map(|l| l.state)
        .collect()
}

/// Adds a device pending when an operation is given.
pub fn adds_a_device_pending_when_an_operation_is_given<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let mut new = NewDevice::new(dn(PHONE));
    new.description = "lobby".into();
    new.device_pool = "Default".into();
    new.model = "Cisco 8865".into();
    new.operation = install();
    new.auth_mode = AuthMode::AuthenticationString;
    new.auth_string = Some("123456".into());
    new.complete_by = Some(t(3600));
    let d = s.add_device(&new, t(5)).must();
    assert_eq!(
        d,
        Device {
            name: dn(PHONE),
            description: "lobby".into(),
            device_pool: "Default".into(),
            model: "Cisco 8865".into(),
            operation: install(),
            auth_mode: AuthMode::AuthenticationString,
            has_auth_string: true,
            complete_by: Some(t(3600)),
            status: OperationStatus::Pending,
            last_error: None,
            attempts: 0,
            ec_key_generation_failed: false,
            auth_failures: 0,
            last_auth_failure: None,
            updated_at: t(5),
        }
    );
    assert!(d.has_operation_to_run());
    assert_eq!(s.device(&dn(PHONE)).must(), Some(d));
}

/// Adds a device without operation with status none.
pub fn adds_a_device_without_operation_with_status_none<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let d = s.add_device(&NewDevice::new(dn("CSFjsmith")), t(0)).must();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.status, OperationStatus::None);
    assert_eq!(d.auth_mode, AuthMode::NullString);
    assert!(!d.has_auth_string && !d.has_operation_to_run());
}

/// Rejects a duplicate name ignoring case.
pub fn rejects_a_duplicate_name_ignoring_case<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, Operation::None);
    let lower = PHONE.to_ascii_lowercase();
    assert!(matches!(
        s.add_device(&NewDevice::new(dn(&lower)), t(1)),
        Err(Error::DuplicateDevice { name }) if name == lower
    ));
    assert_eq!(
        s.device(&dn(&lower)).must().map(|d| d.name),
        Some(dn(PHONE))
    );
    assert_eq!(audit_count(&s), 1);
}

/// Lists devices ordered by name.
pub fn lists_devices_ordered_by_name<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    for name in ["TABuser", "BOTuser", "SEP0011223344AA", "csfuser"] {
        s.add_device(&NewDevice::new(dn(name)), t(0)).must();
    }
    let names: Vec<DeviceName> = s
        .list_devices()
        .must()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["BOTuser", "csfuser", "SEP0011223344AA", "TABuser"]);
}

/// Unknown devices are a typed error for writes and none for reads.
pub fn unknown_devices_are_a_typed_error_for_writes_and_none_for_reads<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    assert_eq!(s.device(&dn("SEP000000000000")).must(), None);
    assert!(s.lscs(&dn("SEP000000000000")).must().is_empty());
    for result in [
        s.schedule(&dn("SEP000000000000"), install(), None, t(0)),
        s.begin_attempt(&dn("SEP000000000000"), t(0)),
        s.record_auth_failure(&dn("SEP000000000000"), t(0)),
        s.mark_expired(&dn("SEP000000000000"), t(0)),
    ] {
        assert!(matches!(result, Err(Error::UnknownDevice { name }) if name == "SEP000000000000"));
    }
    assert!(matches!(
        s.remove_device(&dn("SEP000000000000"), t(0)),
        Err(Error::UnknownDevice { .. })
    ));
    assert!(matches!(
        s.check_auth_string(&dn("SEP000000000000"), "1234"),
        Err(Error::UnknownDevice { .. })
    ));
    assert_eq!(audit_count(&s), 0);
}

/// Updates only the fields given.
pub fn updates_only_the_fields_given<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    let d = s
        .update_device(
            &dn(PHONE),
            &DeviceUpdate {
                model: Some("Cisco 7841".into()),
                auth_mode: Some(AuthMode::AuthenticationString),
                ..DeviceUpdate::default()
            },
            t(9),
        )
        .must();
    assert_eq!(d.model, "Cisco 7841");
    assert_eq!(d.auth_mode, AuthMode::AuthenticationString);
    assert_eq!(d.description, "");
    assert_eq!(d.status, OperationStatus::Pending);
    assert_eq!(d.updated_at, t(9));
    let before = audit_count(&s);
    let same = s
        .update_device(&dn(PHONE), &DeviceUpdate::default(), t(10))
        .must();
    assert_eq!(same, d);
    assert_eq!(audit_count(&s), before);
}

/// Every operation and key policy round-trips.
pub fn every_operation_and_key_policy_round_trips<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, Operation::None);
    let mut operations = vec![Operation::None, Operation::Delete, Operation::Troubleshoot];
    for order in [
        KeyOrder::RsaOnly,
        KeyOrder::EcOnly,
        KeyOrder::EcPreferredRsaBackup,
    ] {
        for rsa in RsaBits::ALL {
            for curve in Curve::ALL {
                operations.push(Operation::InstallUpgrade(KeyPolicy { order, rsa, curve }));
            }
        }
    }
    for op in operations {
        let d = s.schedule(&dn(PHONE), op, Some(t(60)), t(1)).must();
        assert_eq!(d.operation, op);
        assert_eq!(s.device(&dn(PHONE)).must().map(|d| d.operation), Some(op));
    }
}

/// Scheduling resets the attempts, the EC key-generation flag and the last error.
pub fn schedule_resets_attempts_the_ec_flag_and_the_last_error<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    s.begin_attempt(&dn(PHONE), t(1)).must();
    s.record_ec_key_generation_failure(&dn(PHONE), t(2)).must();
    s.end_attempt(
        &dn(PHONE),
        AttemptEnd::Failed {
            reason: "no key".into(),
        },
        t(3),
    )
    .must();
    let d = s
        .schedule(&dn(PHONE), Operation::Delete, Some(t(100)), t(4))
        .must();
    assert_eq!(d.operation, Operation::Delete);
    assert_eq!(d.status, OperationStatus::Pending);
    assert_eq!((d.attempts, d.ec_key_generation_failed), (0, false));
    assert_eq!(d.last_error, None);
    assert_eq!(d.complete_by, Some(t(100)));
    let none = s.schedule(&dn(PHONE), Operation::None, None, t(5)).must();
    assert_eq!(none.status, OperationStatus::None);
    assert!(!none.has_operation_to_run());
}

/// Beginning an attempt needs an operation to run.
pub fn begin_attempt_needs_an_operation_to_run<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, Operation::None);
    assert!(matches!(
        s.begin_attempt(&dn(PHONE), t(1)),
        Err(Error::NoOperationToRun {
            status: OperationStatus::None,
            ..
        })
    ));
    s.schedule(&dn(PHONE), install(), None, t(2)).must();
    let d = s.begin_attempt(&dn(PHONE), t(3)).must();
    assert_eq!(
        (d.status.clone(), d.attempts),
        (OperationStatus::InProgress, 1)
    );
    // A session that died with the server leaves InProgress: the next one may still begin.
    assert_eq!(s.begin_attempt(&dn(PHONE), t(4)).must().attempts, 2);
}

/// Authentication failures count, lock out, and reset when an attempt begins.
pub fn auth_failures_count_lock_out_and_reset_when_an_attempt_begins<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    let settings = Settings::default();
    let mut d = s.device(&dn(PHONE)).must().must();
    for i in 1..=settings.auth_failure_limit {
        assert!(!d.is_auth_locked_out(&settings, t(u64::from(i))));
        d = s.record_auth_failure(&dn(PHONE), t(u64::from(i))).must();
        assert_eq!(d.auth_failures, i);
        assert_eq!(d.last_auth_failure, Some(t(u64::from(i))));
    }
    let last = u64::from(settings.auth_failure_limit);
    assert!(d.is_auth_locked_out(&settings, t(last + 1)));
    assert!(!d.is_auth_locked_out(&settings, t(last + settings.auth_lockout.as_secs())));
    let off = Settings {
        auth_failure_limit: 0,
        ..settings
    };
    assert!(!d.is_auth_locked_out(&off, t(last + 1)));
    let d = s.begin_attempt(&dn(PHONE), t(100)).must();
    assert_eq!(d.auth_failures, 0);
}

/// Interrupted attempts go back to pending and failed ones stay scheduled.
pub fn interrupted_attempts_go_back_to_pending_and_failed_ones_stay_scheduled<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    s.begin_attempt(&dn(PHONE), t(1)).must();
    let d = s
        .end_attempt(
            &dn(PHONE),
            AttemptEnd::Interrupted {
                reason: "phone hung up".into(),
            },
            t(2),
        )
        .must();
    assert_eq!(d.status, OperationStatus::Pending);
    assert_eq!(d.last_error.as_deref(), Some("phone hung up"));
    assert_eq!(d.operation, install());
    s.begin_attempt(&dn(PHONE), t(3)).must();
    let d = s
        .end_attempt(
            &dn(PHONE),
            AttemptEnd::Failed {
                reason: "bad key".into(),
            },
            t(4),
        )
        .must();
    assert_eq!(
        d.status,
        OperationStatus::Failed {
            reason: "bad key".into()
        }
    );
    assert_eq!(d.last_error.as_deref(), Some("bad key"));
    assert!(d.has_operation_to_run());
    assert_eq!(s.begin_attempt(&dn(PHONE), t(5)).must().attempts, 3);
}

/// A late `end_attempt` never clobbers a success.
pub fn a_late_end_attempt_never_clobbers_a_success<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    s.begin_attempt(&dn(PHONE), t(1)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(2)).must();
    let done = s
        .confirm_lsc_installed(&dn(PHONE), &lsc(1).serial, t(3))
        .must();
    let before = audit_count(&s);
    for end in [
        AttemptEnd::Interrupted {
            reason: "late".into(),
        },
        AttemptEnd::Failed {
            reason: "late".into(),
        },
    ] {
        assert_eq!(s.end_attempt(&dn(PHONE), end, t(4)).must(), done);
    }
    assert_eq!(audit_count(&s), before);
}

/// Expiry applies only to an operation to run.
pub fn expiry_applies_only_to_an_operation_to_run<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, Operation::None);
    let before = audit_count(&s);
    assert_eq!(
        s.mark_expired(&dn(PHONE), t(1)).must().status,
        OperationStatus::None
    );
    assert_eq!(audit_count(&s), before);
    let d = s
        .schedule(&dn(PHONE), Operation::Troubleshoot, Some(t(10)), t(2))
        .must();
    assert!(!d.is_past_complete_by(t(10)) && d.is_past_complete_by(t(11)));
    let d = s.mark_expired(&dn(PHONE), t(11)).must();
    assert_eq!(d.status, OperationStatus::Expired);
    assert_eq!(d.operation, Operation::Troubleshoot);
    assert!(!d.has_operation_to_run());
    assert!(matches!(
        s.begin_attempt(&dn(PHONE), t(12)),
        Err(Error::NoOperationToRun {
            status: OperationStatus::Expired,
            ..
        })
    ));
}

/// An EC key-generation failure makes the next attempt ask for RSA.
pub fn an_ec_key_generation_failure_makes_the_next_attempt_ask_for_rsa<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let policy = KeyPolicy {
        order: KeyOrder::EcPreferredRsaBackup,
        rsa: RsaBits::B3072,
        curve: Curve::P384,
    };
    let s = with_phone(&new_store, Operation::InstallUpgrade(policy));
    let d = s.begin_attempt(&dn(PHONE), t(1)).must();
    assert_eq!(
        policy.key_to_request(d.ec_key_generation_failed, true),
        Some(KeySpec::Ec(Curve::P384))
    );
    s.record_ec_key_generation_failure(&dn(PHONE), t(2)).must();
    s.end_attempt(
        &dn(PHONE),
        AttemptEnd::Interrupted {
            reason: "EC key generation failed".into(),
        },
        t(3),
    )
    .must();
    let d = s.begin_attempt(&dn(PHONE), t(4)).must();
    assert!(d.ec_key_generation_failed);
    assert_eq!(
        policy.key_to_request(d.ec_key_generation_failed, true),
        Some(KeySpec::Rsa(RsaBits::B3072))
    );
}

/// A new issuance makes unconfirmed ones stale and an install supersedes the old.
pub fn a_new_issuance_makes_unconfirmed_ones_stale_and_an_install_supersedes_the_old<
    S: DeviceStore,
>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    s.begin_attempt(&dn(PHONE), t(1)).must();
    let first = s.record_lsc_issued(&dn(PHONE), &lsc(1), t(2)).must();
    assert_eq!(first.state, LscState::Issued);
    assert_eq!(first.serial_hex(), "0101");
    assert_eq!(first.issued_at, t(2));
    s.record_lsc_issued(&dn(PHONE), &lsc(2), t(3)).must();
    assert_eq!(states(&s), [LscState::Stale, LscState::Issued]);
    assert_eq!(
        s.stale_lscs()
            .must()
            .into_iter()
            .map(|l| l.serial)
            .collect::<Vec<_>>(),
        [lsc(1).serial]
    );
    // The stale one cannot be confirmed any more.
    assert!(matches!(
        s.confirm_lsc_installed(&dn(PHONE), &lsc(1).serial, t(4)),
        Err(Error::LscWrongState {
            state: LscState::Stale,
            ..
        })
    ));
    s.confirm_lsc_installed(&dn(PHONE), &lsc(2).serial, t(4))
        .must();
    // A second install/upgrade supersedes the installed LSC.
    s.schedule(&dn(PHONE), install(), None, t(5)).must();
    s.begin_attempt(&dn(PHONE), t(6)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(3), t(7)).must();
    assert_eq!(
        states(&s),
        [LscState::Stale, LscState::Installed, LscState::Issued]
    );
    s.confirm_lsc_installed(&dn(PHONE), &lsc(3).serial, t(8))
        .must();
    assert_eq!(
        states(&s),
        [LscState::Stale, LscState::Superseded, LscState::Installed]
    );
    let installed = s.lsc(&lsc(3).serial).must().must();
    assert_eq!(installed.state_changed_at, t(8));
    assert_eq!(installed.der, lsc(3).der);
    assert_eq!(
        (installed.not_before, installed.not_after),
        (t(0), t(86_400))
    );
}

/// Confirming clears the operation and the one-time authentication string.
pub fn confirming_clears_the_operation_and_the_one_time_auth_string<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    s.set_auth_string(&dn(PHONE), Some("2468"), t(1)).must();
    s.begin_attempt(&dn(PHONE), t(2)).must();
    s.end_attempt(
        &dn(PHONE),
        AttemptEnd::Interrupted {
            reason: "timeout".into(),
        },
        t(3),
    )
    .must();
    s.begin_attempt(&dn(PHONE), t(4)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(5)).must();
    let d = s
        .confirm_lsc_installed(&dn(PHONE), &lsc(1).serial, t(6))
        .must();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.status, OperationStatus::Success);
    assert_eq!(d.last_error, None);
    assert!(!d.has_auth_string);
    assert!(!s.check_auth_string(&dn(PHONE), "2468").must());
    assert_eq!(d.attempts, 2);
}

/// Confirming rejects unknown and foreign serials.
pub fn confirming_rejects_unknown_and_foreign_serials<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    s.add_device(&NewDevice::new(dn("SEP00112233DDEE")), t(0))
        .must();
    s.record_lsc_issued(&dn("SEP00112233DDEE"), &lsc(9), t(1))
        .must();
    assert!(matches!(
        s.confirm_lsc_installed(&dn(PHONE), &[0xde, 0xad], t(2)),
        Err(Error::UnknownLsc { serial }) if serial == "dead"
    ));
    assert!(matches!(
        s.confirm_lsc_installed(&dn(PHONE), &lsc(9).serial, t(2)),
        Err(Error::LscOfAnotherDevice { owner, .. }) if owner == "SEP00112233DDEE"
    ));
    assert_eq!(
        s.device(&dn(PHONE)).must().map(|d| d.status),
        Some(OperationStatus::Pending)
    );
}

/// Rejects duplicate serials and malformed records.
pub fn rejects_duplicate_serials_and_malformed_records<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(1)).must();
    assert!(matches!(
        s.record_lsc_issued(&dn(PHONE), &lsc(1), t(2)),
        Err(Error::DuplicateSerial { serial, owner }) if serial == "0101" && owner == PHONE
    ));
    let mut empty = lsc(2);
    empty.serial.clear();
    let mut backwards = lsc(3);
    backwards.not_after = t(0) - Duration::from_secs(1);
    for bad in [empty, backwards] {
        assert!(matches!(
            s.record_lsc_issued(&dn(PHONE), &bad, t(2)),
            Err(Error::InvalidLsc { .. })
        ));
    }
    assert!(matches!(
        s.record_lsc_issued(&dn("SEP000000000000"), &lsc(4), t(2)),
        Err(Error::UnknownDevice { .. })
    ));
    assert_eq!(states(&s), [LscState::Issued]);
}

/// Delete done deletes installed LSCs only.
pub fn delete_done_deletes_installed_lscs_only<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    s.set_auth_string(&dn(PHONE), Some("1357"), t(0)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(1)).must();
    s.confirm_lsc_installed(&dn(PHONE), &lsc(1).serial, t(2))
        .must();
    s.schedule(&dn(PHONE), install(), None, t(3)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(2), t(4)).must();
    s.set_auth_string(&dn(PHONE), Some("1357"), t(5)).must();
    s.schedule(&dn(PHONE), Operation::Delete, None, t(5)).must();
    s.begin_attempt(&dn(PHONE), t(6)).must();
    let d = s.record_delete_done(&dn(PHONE), t(7)).must();
    assert_eq!(states(&s), [LscState::Deleted, LscState::Issued]);
    assert_eq!(
        (d.operation, d.status),
        (Operation::None, OperationStatus::Success)
    );
    assert!(!d.has_auth_string);
}

/// Fetch done stores the certificate and succeeds.
pub fn fetch_done_stores_the_certificate_and_succeeds<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, Operation::Troubleshoot);
    s.set_auth_string(&dn(PHONE), Some("97531"), t(0)).must();
    s.begin_attempt(&dn(PHONE), t(1)).must();
    let d = s
        .record_fetch_done(
            &dn(PHONE),
            Some((FetchedCertificate::MIC, vec![0x30, 0x00])),
            t(2),
        )
        .must();
    assert_eq!(
        (d.operation, d.status),
        (Operation::None, OperationStatus::Success)
    );
    assert!(!d.has_auth_string);
    s.schedule(&dn(PHONE), Operation::Troubleshoot, None, t(3))
        .must();
    s.begin_attempt(&dn(PHONE), t(4)).must();
    s.record_fetch_done(&dn(PHONE), None, t(5)).must();
    assert_eq!(
        s.troubleshoot_results(&dn(PHONE)).must(),
        [
            TroubleshootResult {
                device: dn(PHONE),
                certificate: Some(FetchedCertificate {
                    cert_type: 2,
                    der: vec![0x30, 0x00]
                }),
                fetched_at: t(2),
            },
            TroubleshootResult {
                device: dn(PHONE),
                certificate: None,
                fetched_at: t(5),
            },
        ]
    );
}

/// Removing a device keeps its LSCs and drops its troubleshoot results.
pub fn removing_a_device_keeps_its_lscs_and_drops_its_troubleshoot_results<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(1)).must();
    s.schedule(&dn(PHONE), Operation::Troubleshoot, None, t(2))
        .must();
    s.record_fetch_done(&dn(PHONE), Some((1, vec![1])), t(3))
        .must();
    s.remove_device(&dn(PHONE), t(4)).must();
    assert_eq!(s.device(&dn(PHONE)).must(), None);
    assert_eq!(states(&s), [LscState::Issued]);
    assert_eq!(
        s.lsc(&lsc(1).serial).must().map(|l| l.device),
        Some(dn(PHONE))
    );
    assert!(s.troubleshoot_results(&dn(PHONE)).must().is_empty());
    let removed = &s.audit(Some(&dn(PHONE)), 1).must()[0];
    assert_eq!(removed.action, action::DEVICE_REMOVED);
    assert!(
        removed.detail.contains("1 LSC record(s) kept"),
        "{}",
        removed.detail
    );
    // Registered again, the name sees its history.
    s.add_device(&NewDevice::new(dn(PHONE)), t(5)).must();
    assert_eq!(s.lscs(&dn(PHONE)).must().len(), 1);
}

/// Revokes an LSC once.
pub fn revokes_an_lsc_once<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(1)).must();
    let r = s.revoke_lsc(&lsc(1).serial, t(2)).must();
    assert_eq!((r.state, r.state_changed_at), (LscState::Revoked, t(2)));
    assert!(matches!(
        s.revoke_lsc(&lsc(1).serial, t(3)),
        Err(Error::LscWrongState {
            state: LscState::Revoked,
            ..
        })
    ));
    assert!(matches!(
        s.revoke_lsc(&[7], t(3)),
        Err(Error::UnknownLsc { .. })
    ));
    assert_eq!(s.audit(None, 1).must()[0].action, action::LSC_REVOKED);
}

/// Authentication strings follow the rule, and check under any case of the name.
pub fn auth_strings_follow_the_rule_and_check_under_any_case_of_the_name<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    for bad in ["123", "12345678901", "12a4", ""] {
        assert!(matches!(
            s.set_auth_string(&dn(PHONE), Some(bad), t(1)),
            Err(Error::InvalidAuthString { .. })
        ));
    }
    assert!(!s.check_auth_string(&dn(PHONE), "1234").must());
    assert!(
        s.set_auth_string(&dn(PHONE), Some("1234"), t(1))
            .must()
            .has_auth_string
    );
    assert!(s.check_auth_string(&dn(PHONE), "1234").must());
    assert!(
        s.check_auth_string(&dn(&PHONE.to_ascii_lowercase()), "1234")
            .must()
    );
    assert!(!s.check_auth_string(&dn(PHONE), "12345").must());
    assert!(!s.check_auth_string(&dn(PHONE), "abcd").must());
    assert!(
        !s.set_auth_string(&dn(PHONE), None, t(2))
            .must()
            .has_auth_string
    );
    assert!(!s.check_auth_string(&dn(PHONE), "1234").must());
    let mut new = NewDevice::new(dn("SEP00112233DDEE"));
    new.auth_string = Some("12".into());
    assert!(matches!(
        s.add_device(&new, t(3)),
        Err(Error::InvalidAuthString {
            len: 2,
            all_digits: true,
            ..
        })
    ));
    let actions: Vec<String> = s
        .audit(Some(&dn(PHONE)), 2)
        .must()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        [action::AUTH_STRING_CLEARED, action::AUTH_STRING_SET]
    );
}

/// Settings default, and round-trip.
pub fn settings_default_and_round_trip<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    assert_eq!(s.settings().must(), Settings::default());
    let changed = Settings {
        keepalive: KeepaliveMinutes::new(60).must(),
        max_sessions: 10,
        max_key_generation_sessions: 2,
        key_generation_queue: 3,
        auth_failure_limit: 0,
        auth_lockout: Duration::from_secs(30),
        sudi_policy: capf_lsc::SudiPolicy::WhenTrusted,
        key_generation_queue_wait: Duration::from_secs(7),
        key_generation_total: Duration::from_secs(900),
        max_unauthenticated_sessions: 4,
        max_sessions_per_address: 5,
        tls_handshake_timeout: Duration::from_secs(6),
        auth_response_timeout: Duration::from_secs(8),
        certificate_issuer: capf_lsc::CertificateIssuer::OnlineCa,
        lsc_validity_days: capf_lsc::ValidityDays::new(30).must(),
        ca_retry_delay: Duration::from_secs(120),
    };
    s.update_settings(&changed, t(1)).must();
    assert_eq!(s.settings().must(), changed);
    let entry = &s.audit(None, 1).must()[0];
    assert_eq!(entry.action, action::SETTINGS_UPDATED);
    assert_eq!(entry.device, None);
    assert!(
        entry.detail.contains("keepalive 60 min"),
        "{}",
        entry.detail
    );
}

/// The audit log is newest first, filtered and limited.
pub fn audit_is_newest_first_filtered_and_limited<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    s.add_device(&NewDevice::new(dn("SEP00112233DDEE")), t(1))
        .must();
    s.begin_attempt(&dn(PHONE), t(2)).must();
    s.update_settings(&Settings::default(), t(3)).must();
    let all = s.audit(None, 10).must();
    let actions: Vec<&str> = all.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            action::SETTINGS_UPDATED,
            action::ATTEMPT_BEGUN,
            action::DEVICE_ADDED,
            action::DEVICE_ADDED
        ]
    );
    assert_eq!(all[1].at, t(2));
    assert_eq!(all[1].device.as_deref(), Some(PHONE));
    let mine = s.audit(Some(&dn(&PHONE.to_ascii_lowercase())), 10).must();
    assert_eq!(mine.len(), 2);
    assert_eq!(s.audit(None, 1).must().len(), 1);
    assert!(s.audit(None, 0).must().is_empty());
}

/// Every change appends exactly one audit entry.
pub fn every_change_appends_exactly_one_audit_entry<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let mut expected = 0;
    let mut step = |what: &str, s: &S| {
        expected += 1;
        assert_eq!(audit_count(s), expected, "after {what}");
    };
    let mut new = NewDevice::new(dn(PHONE));
    new.operation = install();
    s.add_device(&new, t(0)).must();
    step("add", &s);
    s.update_device(
        &dn(PHONE),
        &DeviceUpdate {
            model: Some("m".into()),
            ..Default::default()
        },
        t(1),
    )
    .must();
    step("update", &s);
    s.set_auth_string(&dn(PHONE), Some("1234"), t(1)).must();
    step("set auth string", &s);
    s.record_auth_failure(&dn(PHONE), t(1)).must();
    step("auth failure", &s);
    s.begin_attempt(&dn(PHONE), t(2)).must();
    step("begin", &s);
    s.record_ec_key_generation_failure(&dn(PHONE), t(2)).must();
    step("ec failure", &s);
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(2)).must();
    step("issued", &s);
    s.end_attempt(
        &dn(PHONE),
        AttemptEnd::Interrupted { reason: "x".into() },
        t(3),
    )
    .must();
    step("interrupted", &s);
    s.begin_attempt(&dn(PHONE), t(4)).must();
    step("begin", &s);
    s.end_attempt(&dn(PHONE), AttemptEnd::Failed { reason: "y".into() }, t(4))
        .must();
    step("failed", &s);
    s.begin_attempt(&dn(PHONE), t(5)).must();
    step("begin", &s);
    s.record_lsc_issued(&dn(PHONE), &lsc(2), t(5)).must();
    step("issued", &s);
    s.confirm_lsc_installed(&dn(PHONE), &lsc(2).serial, t(6))
        .must();
    step("installed", &s);
    s.schedule(&dn(PHONE), Operation::Delete, None, t(7)).must();
    step("schedule", &s);
    s.record_delete_done(&dn(PHONE), t(8)).must();
    step("delete done", &s);
    s.schedule(&dn(PHONE), Operation::Troubleshoot, Some(t(9)), t(8))
        .must();
    step("schedule", &s);
    s.mark_expired(&dn(PHONE), t(10)).must();
    step("expired", &s);
    s.schedule(&dn(PHONE), Operation::Troubleshoot, None, t(11))
        .must();
    step("schedule", &s);
    s.record_fetch_done(&dn(PHONE), None, t(12)).must();
    step("fetch done", &s);
    s.revoke_lsc(&lsc(1).serial, t(13)).must();
    step("revoke", &s);
    s.set_auth_string(&dn(PHONE), None, t(14)).must();
    step("clear auth string", &s);
    s.update_settings(&Settings::default(), t(15)).must();
    step("settings", &s);
    s.remove_device(&dn(PHONE), t(16)).must();
    step("remove", &s);
}

/// The store is usable as a trait object across threads.
pub fn the_store_is_usable_as_a_trait_object_across_threads<S: DeviceStore + 'static>(
    new_store: impl Fn() -> S,
) {
    let s: std::sync::Arc<dyn DeviceStore> = std::sync::Arc::new(new_store());
    let handles: Vec<_> = (0..4u8)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let name = format!("SEP0011223344{i:02X}");
                s.add_device(&NewDevice::new(dn(name.as_str())), t(0))
                    .must();
            })
        })
        .collect();
    for h in handles {
        h.join().must();
    }
    assert_eq!(s.list_devices().must().len(), 4);
}

/// An interrupted install keeps the LSC issued and the next issuance makes it stale.
pub fn an_interrupted_install_keeps_the_lsc_issued_and_the_next_issuance_makes_it_stale<
    S: DeviceStore,
>(
    new_store: impl Fn() -> S,
) {
    let store = new_store();
    const PHONE: &str = "SEP0011223344AA";
    let mut new = NewDevice::new(dn(PHONE));
    new.operation = install();
    store.add_device(&new, t(0)).must();

    store.begin_attempt(&dn(PHONE), t(1)).must();
    store
        .record_lsc_issued(&dn(PHONE), &lsc_at(&[1], t(2)), t(2))
        .must();
    let d = store
        .end_attempt(
            &dn(PHONE),
            AttemptEnd::Interrupted {
                reason: "the phone closed the connection before STORE_CERT_RESPONSE".into(),
            },
            t(3),
        )
        .must();
    assert_eq!(d.status, OperationStatus::Pending);
    assert_eq!(d.operation, install());
    assert!(d.last_error.is_some());
    assert_eq!(store.lsc(&[1]).must().must().state, LscState::Issued);
    assert!(store.stale_lscs().must().is_empty());

    let d = store.begin_attempt(&dn(PHONE), t(4)).must();
    assert_eq!(d.attempts, 2);
    store
        .record_lsc_issued(&dn(PHONE), &lsc_at(&[2], t(5)), t(5))
        .must();
    assert_eq!(store.lsc(&[1]).must().must().state, LscState::Stale);
    assert_eq!(store.stale_lscs().must()[0].serial, [1]);
    store.confirm_lsc_installed(&dn(PHONE), &[2], t(6)).must();
    let states: Vec<LscState> = store
        .lscs(&dn(PHONE))
        .must()
        .iter()
        .map(|l| l.state)
        .collect();
    assert_eq!(states, [LscState::Stale, LscState::Installed]);
}

/// Failed authentication is counted, locked out and reset.
pub fn failed_authentication_is_counted_locked_out_and_reset<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let store = new_store();
    const PHONE: &str = "SEP0011223344BB";
    let mut new = NewDevice::new(dn(PHONE));
    new.operation = install();
    new.auth_mode = AuthMode::AuthenticationString;
    new.auth_string = Some("1234".into());
    store.add_device(&new, t(0)).must();
    let settings = Settings {
        auth_failure_limit: 3,
        auth_lockout: Duration::from_secs(60),
        ..Settings::default()
    };
    store.update_settings(&settings, t(0)).must();
    let settings = store.settings().must();

    for (i, guess) in ["0000", "1111", "2222"].into_iter().enumerate() {
        assert!(!store.check_auth_string(&dn(PHONE), guess).must());
        let d = store
            .record_auth_failure(&dn(PHONE), t(10 + i as u64))
            .must();
        assert_eq!(d.auth_failures, i as u32 + 1);
    }
    let d = store.device(&dn(PHONE)).must().must();
    assert_eq!(d.last_auth_failure, Some(t(12)));
    assert!(d.is_auth_locked_out(&settings, t(13)));
    assert!(d.is_auth_locked_out(&settings, t(71)));
    assert!(!d.is_auth_locked_out(&settings, t(72)));
    assert!(store.check_auth_string(&dn(PHONE), "1234").must());
    let d = store.begin_attempt(&dn(PHONE), t(80)).must();
    assert_eq!(d.auth_failures, 0);
    let failures = store
        .audit(Some(&dn(PHONE)), 100)
        .must()
        .iter()
        .filter(|a| a.action == action::AUTH_FAILURE)
        .count();
    assert_eq!(failures, 3);
}

/// Devices in progress are exactly those with an attempt running, ordered by name.
pub fn devices_in_progress_are_those_with_an_attempt_running<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    assert!(s.devices_in_progress().must().is_empty());
    for name in ["SEP0011223344CC", "SEP0011223344AA", "SEP0011223344BB"] {
        let mut new = NewDevice::new(dn(name));
        new.operation = install();
        s.add_device(&new, t(0)).must();
    }
    s.add_device(&NewDevice::new(dn("SEP0011223344DD")), t(0))
        .must();
    s.begin_attempt(&dn("SEP0011223344CC"), t(1)).must();
    s.begin_attempt(&dn("SEP0011223344AA"), t(1)).must();
    let running: Vec<DeviceName> = s
        .devices_in_progress()
        .must()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(running, ["SEP0011223344AA", "SEP0011223344CC"]);
    s.end_attempt(
        &dn("SEP0011223344AA"),
        AttemptEnd::Interrupted {
            reason: "CAPF stopped while the session ran".into(),
        },
        t(2),
    )
    .must();
    let running = s.devices_in_progress().must();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].name, "SEP0011223344CC");
    assert_eq!(running[0].status, OperationStatus::InProgress);
}

/// The LSC state authentication by existing certificate reads: only for the device it was
/// issued to (under any case of the name), through issued, installed, superseded and revoked.
pub fn lsc_state_is_per_device_and_follows_the_lifecycle<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(&new_store, install());
    assert_eq!(s.lsc_state(&dn(PHONE), &lsc(1).serial).must(), None);
    s.begin_attempt(&dn(PHONE), t(1)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(1), t(2)).must();
    assert_eq!(
        s.lsc_state(&dn(PHONE), &lsc(1).serial).must(),
        Some(LscState::Issued)
    );
    s.confirm_lsc_installed(&dn(PHONE), &lsc(1).serial, t(3))
        .must();
    let lower = dn(&PHONE.to_ascii_lowercase());
    assert_eq!(
        s.lsc_state(&lower, &lsc(1).serial).must(),
        Some(LscState::Installed)
    );
    s.add_device(&NewDevice::new(dn("SEP00AABBCCDDEE")), t(3))
        .must();
    assert_eq!(
        s.lsc_state(&dn("SEP00AABBCCDDEE"), &lsc(1).serial).must(),
        None,
        "another device's LSC"
    );
    s.schedule(&dn(PHONE), install(), None, t(4)).must();
    s.begin_attempt(&dn(PHONE), t(5)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(2), t(6)).must();
    s.confirm_lsc_installed(&dn(PHONE), &lsc(2).serial, t(7))
        .must();
    assert_eq!(
        s.lsc_state(&dn(PHONE), &lsc(1).serial).must(),
        Some(LscState::Superseded)
    );
    s.revoke_lsc(&lsc(2).serial, t(8)).must();
    assert_eq!(
        s.lsc_state(&dn(PHONE), &lsc(2).serial).must(),
        Some(LscState::Revoked)
    );
}

/// A refused session (it never authenticated) is audited, under the registered name, and
/// changes nothing else.
pub fn a_refused_session_is_audited_and_changes_nothing<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(&new_store, install());
    let before = s.device(&dn(PHONE)).must();
    s.record_refused_session(
        &dn(&PHONE.to_ascii_lowercase()),
        "certificate refused",
        t(5),
    )
    .must();
    assert_eq!(s.device(&dn(PHONE)).must(), before);
    let entry = &s.audit(None, 1).must()[0];
    assert_eq!(entry.action, action::SESSION_REFUSED);
    assert_eq!(entry.device.as_ref().map(DeviceName::as_str), Some(PHONE));
    assert_eq!(entry.detail, "certificate refused");
    assert!(matches!(
        s.record_refused_session(&dn("SEP000000000000"), "x", t(6)),
        Err(Error::UnknownDevice { .. })
    ));
}
