//! Requests to an external CA (Online CA, Offline CA): recording the endpoint CSR, the
//! certificate's arrival, delivery, replacement (failed and stale), deletion and the settings
//! of the external modes.
//!
//! Each behaviour takes a factory of fresh, empty stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Must;

use capf_lsc::{CertificateIssuer, KeyPolicy, ValidityDays};

use crate::{
    CaRequest, CaRequestState, DeviceName, DeviceStore, Error, IssuedLsc, LscState, NewCaRequest,
    NewDevice, Operation, action,
};

const PHONE: &str = "SEP00AA00BB00CC";

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).must()
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn with_phone<S: DeviceStore>(new_store: impl Fn() -> S) -> S {
    let s = new_store();
    let mut new = NewDevice::new(dn(PHONE));
    new.operation = Operation::InstallUpgrade(KeyPolicy::default());
    s.add_device(&new, t(0)).must();
    s
}

/// A request of `mode` whose CSR and key end in `n`.
fn request(s: &impl DeviceStore, name: &str, n: u8, at: SystemTime) -> CaRequest {
    s.record_ca_request(
        &dn(name),
        &NewCaRequest {
            mode: CertificateIssuer::OfflineCa,
            csr: &[0x30, 0x01, n],
            public_key: &[0x30, 0x02, n],
            ca_request_id: None,
        },
        at,
    )
    .must()
}

fn lsc(serial: u8) -> IssuedLsc {
    IssuedLsc {
        serial: vec![0x7e, serial],
        der: vec![0x30, 0x03, 0x02, 0x01, serial],
        not_before: t(0),
        not_after: t(86_400),
    }
}

fn audit_actions(s: &impl DeviceStore) -> Vec<String> {
    s.audit(None, 1000)
        .must()
        .into_iter()
        .map(|e| e.action)
        .collect()
}

/// Requests are recorded Pending with what was given, listed oldest first (all, or by state),
/// found by id, and deleted one at a time; a device that is not registered cannot make one,
/// and a name in another case finds the registered device.
pub fn ca_requests_are_recorded_listed_and_deleted<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(new_store);
    assert!(matches!(
        s.record_ca_request(
            &dn("SEP000000000009"),
            &NewCaRequest {
                mode: CertificateIssuer::OnlineCa,
                csr: &[0x30],
                public_key: &[0x30],
                ca_request_id: None,
            },
            t(1)
        ),
        Err(Error::UnknownDevice { .. })
    ));
    let a = s
        .record_ca_request(
            &dn(&PHONE.to_lowercase()),
            &NewCaRequest {
                mode: CertificateIssuer::OnlineCa,
                csr: &[0x30, 1],
                public_key: &[0x30, 2],
                ca_request_id: Some("AD-17"),
            },
            t(1),
        )
        .must();
    assert_eq!(a.device, PHONE);
    assert_eq!(a.mode, CertificateIssuer::OnlineCa);
    assert_eq!(a.csr, [0x30, 1]);
    assert_eq!(a.public_key, [0x30, 2]);
    assert_eq!(a.ca_request_id.as_deref(), Some("AD-17"));
    assert_eq!(a.state, CaRequestState::Pending);
    assert_eq!((a.lsc_serial.clone(), a.failure.clone()), (None, None));
    assert_eq!((a.received_at, a.state_changed_at), (t(1), t(1)));
    let b = request(&s, PHONE, 2, t(2));
    let a = s.ca_request(a.id).must().must();
    assert_eq!(a.state, CaRequestState::Failed);
    assert_eq!(s.ca_requests(None).must(), [a.clone(), b.clone()]);
    assert_eq!(
        s.ca_requests(Some(CaRequestState::Pending)).must(),
        std::slice::from_ref(&b)
    );
    assert_eq!(s.delete_ca_request(a.id, t(3)).must(), a);
    assert_eq!(s.ca_requests(None).must(), [b]);
    assert!(matches!(
        s.delete_ca_request(a.id, t(3)),
        Err(Error::UnknownCsr { .. })
    ));
    assert_eq!(s.ca_request(a.id).must(), None);
}

/// A request is Pending, then Issued when its certificate arrives (the LSC recorded as Issued
/// for its device), then Delivered when the phone confirms that LSC.
pub fn a_request_is_issued_then_delivered_when_the_phone_confirms<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(new_store);
    let r = request(&s, PHONE, 1, t(1));
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), Some(r.clone()));
    let issued = s.ca_request_issued(r.id, &lsc(1), t(2)).must();
    assert_eq!(issued.state, CaRequestState::Issued);
    assert_eq!(issued.lsc_serial.as_deref(), Some(&lsc(1).serial[..]));
    assert_eq!(issued.state_changed_at, t(2));
    assert_eq!(
        s.lsc_state(&dn(PHONE), &lsc(1).serial).must(),
        Some(LscState::Issued)
    );
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), Some(issued));
    // The certificate to deliver: this device's, while Issued.
    let held = s.issued_lsc(&dn(PHONE), &lsc(1).serial).must().must();
    assert_eq!(held.der, lsc(1).der);
    assert_eq!(
        s.issued_lsc(&dn("SEP00AABBCCDDEE"), &lsc(1).serial).must(),
        None
    );
    s.begin_attempt(&dn(PHONE), t(3)).must();
    s.confirm_lsc_installed(&dn(PHONE), &lsc(1).serial, t(4))
        .must();
    let delivered = s.ca_request(r.id).must().must();
    assert_eq!(delivered.state, CaRequestState::Delivered);
    assert_eq!(delivered.state_changed_at, t(4));
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), None);
    assert_eq!(
        s.lsc_state(&dn(PHONE), &lsc(1).serial).must(),
        Some(LscState::Installed)
    );
    assert_eq!(s.issued_lsc(&dn(PHONE), &lsc(1).serial).must(), None);
    let last = s.audit(Some(&dn(PHONE)), 1).must();
    assert!(last[0].detail.contains("delivered"), "{}", last[0].detail);
}

/// A new request ends the device's open ones: a Pending one Failed ("replaced by a new
/// request"), an Issued one Stale with its LSC (the guide's stale LSC, in `stale_lscs`).
pub fn a_new_request_fails_the_pending_one_and_makes_the_issued_one_stale<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(new_store);
    let first = request(&s, PHONE, 1, t(1));
    let second = request(&s, PHONE, 2, t(2));
    let first = s.ca_request(first.id).must().must();
    assert_eq!(first.state, CaRequestState::Failed);
    assert_eq!(first.failure.as_deref(), Some("replaced by a new request"));
    assert_eq!(first.state_changed_at, t(2));
    s.ca_request_issued(second.id, &lsc(2), t(3)).must();
    // The phone lost its key: a new key, a new CSR.
    let third = request(&s, PHONE, 3, t(4));
    let second = s.ca_request(second.id).must().must();
    assert_eq!(second.state, CaRequestState::Stale);
    assert_eq!(second.lsc_serial.as_deref(), Some(&lsc(2).serial[..]));
    let stale = s.stale_lscs().must();
    assert_eq!(stale.len(), 1);
    assert_eq!(stale[0].serial, lsc(2).serial);
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), Some(third));
}

/// A certificate arrives only for a Pending request; a request fails only while Pending; an
/// unknown id is a typed error; the LSC is checked as an issuance is (a serial recorded once).
pub fn certificates_and_failures_apply_only_to_pending_requests<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(new_store);
    assert!(matches!(
        s.ca_request_issued(99, &lsc(1), t(1)),
        Err(Error::UnknownCsr { id: 99 })
    ));
    assert!(matches!(
        s.ca_request_failed(99, "x", t(1)),
        Err(Error::UnknownCsr { id: 99 })
    ));
    let a = request(&s, PHONE, 1, t(1));
    let bad = IssuedLsc {
        serial: Vec::new(),
        ..lsc(1)
    };
    assert!(matches!(
        s.ca_request_issued(a.id, &bad, t(2)),
        Err(Error::InvalidLsc { .. })
    ));
    s.ca_request_issued(a.id, &lsc(1), t(2)).must();
    assert!(matches!(
        s.ca_request_issued(a.id, &lsc(2), t(2)),
        Err(Error::CaRequestWrongState {
            state: CaRequestState::Issued,
            ..
        })
    ));
    assert!(matches!(
        s.ca_request_failed(a.id, "x", t(2)),
        Err(Error::CaRequestWrongState { .. })
    ));
    let b = request(&s, PHONE, 2, t(3));
    assert!(matches!(
        s.ca_request_issued(b.id, &lsc(1), t(4)),
        Err(Error::DuplicateSerial { .. })
    ));
    assert_eq!(
        s.ca_request(b.id).must().must().state,
        CaRequestState::Pending
    );
    let failed = s
        .ca_request_failed(b.id, "the CA refused the request", t(5))
        .must();
    assert_eq!(failed.state, CaRequestState::Failed);
    assert_eq!(
        failed.failure.as_deref(),
        Some("the CA refused the request")
    );
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), None);
}

/// Only an external CA mode takes a request, with a CSR and a key.
pub fn a_request_needs_an_external_mode_a_csr_and_a_key<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(new_store);
    for (mode, csr, key) in [
        (CertificateIssuer::Capf, &[0x30][..], &[0x30][..]),
        (CertificateIssuer::OfflineCa, &[], &[0x30]),
        (CertificateIssuer::OfflineCa, &[0x30], &[]),
    ] {
        let new = NewCaRequest {
            mode,
            csr,
            public_key: key,
            ca_request_id: None,
        };
        assert!(
            matches!(
                s.record_ca_request(&dn(PHONE), &new, t(1)),
                Err(Error::InvalidCaRequest { .. })
            ),
            "{new:?}"
        );
    }
    assert!(s.ca_requests(None).must().is_empty());
}

/// The open request is the device's newest Pending or Issued one, per device.
pub fn the_open_request_is_the_newest_pending_or_issued_one_of_the_device<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(new_store);
    s.add_device(&NewDevice::new(dn("SEP00AA00BB00DD")), t(0))
        .must();
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), None);
    let mine = request(&s, PHONE, 1, t(1));
    let other = request(&s, "SEP00AA00BB00DD", 2, t(2));
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), Some(mine.clone()));
    assert_eq!(
        s.open_ca_request(&dn("sep00aa00bb00dd")).must(),
        Some(other)
    );
    s.ca_request_failed(mine.id, "no", t(3)).must();
    assert_eq!(s.open_ca_request(&dn(PHONE)).must(), None);
}

/// Deleting requests (one, or all at once) appends one audit entry each; deleting an Issued one
/// makes its undelivered LSC stale.
pub fn deleting_requests_is_audited_and_stales_an_undelivered_lsc<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = with_phone(new_store);
    s.add_device(&NewDevice::new(dn("SEP00AA00BB00DD")), t(0))
        .must();
    let a = request(&s, PHONE, 1, t(1));
    request(&s, "SEP00AA00BB00DD", 2, t(1));
    s.ca_request_issued(a.id, &lsc(1), t(2)).must();
    let before = audit_actions(&s).len();
    assert_eq!(s.delete_ca_requests(t(3)).must(), 2);
    let actions = audit_actions(&s);
    assert_eq!(actions.len(), before + 2);
    assert!(actions[..2].iter().all(|a| a == action::CA_REQUEST_DELETED));
    assert!(s.ca_requests(None).must().is_empty());
    assert_eq!(
        s.lsc_state(&dn(PHONE), &lsc(1).serial).must(),
        Some(LscState::Stale)
    );
    assert_eq!(s.delete_ca_requests(t(4)).must(), 0);
}

/// Every change to a request appends its one audit entry, named by its action.
pub fn every_request_change_is_audited<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(new_store);
    let a = request(&s, PHONE, 1, t(1));
    s.ca_request_issued(a.id, &lsc(1), t(2)).must();
    let b = request(&s, PHONE, 2, t(3));
    s.ca_request_failed(b.id, "refused", t(4)).must();
    s.delete_ca_request(b.id, t(5)).must();
    assert_eq!(
        audit_actions(&s)[..5],
        [
            action::CA_REQUEST_DELETED,
            action::CA_REQUEST_FAILED,
            action::CA_REQUEST_RECORDED,
            action::CA_REQUEST_ISSUED,
            action::CA_REQUEST_RECORDED,
        ]
    );
}

/// An LSC CAPF signs itself makes the device's Issued request (and its LSC) stale, as any
/// unconfirmed LSC.
pub fn a_capf_issuance_makes_an_issued_request_stale<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(new_store);
    let a = request(&s, PHONE, 1, t(1));
    s.ca_request_issued(a.id, &lsc(1), t(2)).must();
    s.begin_attempt(&dn(PHONE), t(3)).must();
    s.record_lsc_issued(&dn(PHONE), &lsc(2), t(3)).must();
    assert_eq!(
        s.ca_request(a.id).must().must().state,
        CaRequestState::Stale
    );
    assert_eq!(
        s.lsc_state(&dn(PHONE), &lsc(1).serial).must(),
        Some(LscState::Stale)
    );
}

/// The settings of the external modes default to CAPF, 1825 days, 3600 s and round-trip.
pub fn external_ca_settings_default_and_round_trip<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let mut settings = s.settings().must();
    assert_eq!(settings.certificate_issuer, CertificateIssuer::Capf);
    assert_eq!(settings.lsc_validity_days, ValidityDays::MAX);
    assert_eq!(settings.ca_retry_delay_secs(), 3600);
    settings.certificate_issuer = CertificateIssuer::OfflineCa;
    settings.lsc_validity_days = ValidityDays::new(365).must();
    settings.ca_retry_delay = Duration::from_secs(60);
    s.update_settings(&settings, t(1)).must();
    assert_eq!(s.settings().must(), settings);
}

/// Certificates applied in a batch (an offline CA's import) are judged one by one: each gets
/// its own result in order, a refused one (not Pending, unknown, a serial taken) changes
/// nothing, and the others apply as [`crate::SessionStore::ca_request_issued`] would.
pub fn a_batch_of_certificates_applies_each_on_its_own<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = with_phone(new_store);
    let mut other = NewDevice::new(dn("SEP00AA00BB00CD"));
    other.operation = Operation::InstallUpgrade(KeyPolicy::default());
    s.add_device(&other, t(0)).must();
    let a = request(&s, PHONE, 1, t(1));
    let b = request(&s, "SEP00AA00BB00CD", 2, t(1));
    let results = s
        .ca_requests_issued(
            &[(a.id, lsc(1)), (99, lsc(2)), (b.id, lsc(1)), (b.id, lsc(3))],
            t(2),
        )
        .must();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0].as_ref().must().state, CaRequestState::Issued);
    assert!(matches!(results[1], Err(Error::UnknownCsr { id: 99 })));
    assert!(matches!(results[2], Err(Error::DuplicateSerial { .. })));
    assert_eq!(
        results[3].as_ref().must().lsc_serial.as_deref(),
        Some(&lsc(3).serial[..])
    );
    // The refused ones left nothing behind: one LSC per applied certificate.
    assert_eq!(s.lscs(&dn(PHONE)).must().len(), 1);
    assert_eq!(s.lscs(&dn("SEP00AA00BB00CD")).must().len(), 1);
    assert_eq!(s.lsc(&lsc(2).serial).must(), None);
    assert_eq!(
        s.ca_request(b.id).must().must().lsc_serial.as_deref(),
        Some(&lsc(3).serial[..])
    );
}
