//! Issue 12 items 1 and 4. Key-generation slots cannot be held through one device: one session per
//! device at a time, a deadline on every wait in the key-generation queue, and key generation
//! bounded in all. A session that never authenticated changes no device's status.

use std::time::Duration;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_for_a_device_being_served_is_refused_and_changes_nothing() {
    let bench = Bench::new("one-per-device");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut first = bench.session().await;
    key_request(&first.authenticate(3, "").await);
    assert_eq!(bench.device().attempts, 1);

    // The same device, spelt in lower case (the store ignores case): refused with 7.
    let mut second = bench.session().await;
    let lower = PHONE.to_ascii_lowercase();
    let response = AuthResponse::new(&lower, 3)
        .unwrap()
        .with_password("")
        .unwrap();
    assert_eq!(ended(&second.send(response).await), Reason::INVALID_ELEMENT);
    assert!(!second.handler.attempt_in_progress());
    let d = bench.device();
    assert_eq!(d.status, OperationStatus::InProgress);
    assert_eq!(d.attempts, 1);

    // The first session goes on and installs; then the device is free for the next one.
    install_through(&mut first, KeySpec::Rsa(RsaBits::B2048)).await;
    assert_eq!(bench.status(), OperationStatus::Success);
    let mut third = bench.session().await;
    assert_eq!(ended(&third.authenticate(3, "").await), Reason::NO_ACTION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_free_again_once_its_session_is_dropped_or_closed() {
    let bench = Bench::new("one-per-device-free");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut first = bench.session().await;
    key_request(&first.authenticate(3, "").await);
    first.hang_up().await;
    let mut second = bench.session().await;
    key_request(&second.authenticate(3, "").await);
    // A session dropped without its end (the task was cancelled) frees the device too.
    drop(second);
    let mut third = bench.session().await;
    key_request(&third.authenticate(3, "").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_in_the_key_generation_queue_has_a_deadline() {
    let bench = Bench::new("queue-deadline");
    bench.with_settings(|s| {
        s.max_key_generation_sessions = 1;
        s.key_generation_queue = 16;
        s.key_generation_queue_wait = Duration::ZERO;
    });
    let other = "SEP00000000BEEF";
    bench.add(rsa_install(), AuthMode::NullString, None);
    bench.add_named(other, rsa_install(), AuthMode::NullString, None);
    let mut holder = bench.session().await;
    let response = AuthResponse::new(other, 3)
        .unwrap()
        .with_password("")
        .unwrap();
    key_request(&holder.send(response).await);
    // The queue has room, but the wait is over at once.
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "").await),
        Reason::INVALID_ELEMENT
    );
    assert_eq!(bench.status(), OperationStatus::Pending);
    assert_eq!(bench.device().attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_generation_has_a_deadline_in_all_and_its_end_interrupts_the_attempt() {
    let bench = Bench::new("key-generation-total");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    assert_eq!(sim.handler.deadline(), None);
    key_request(&sim.authenticate(3, "").await);
    assert!(sim.handler.deadline().is_some());
    // REQUEST_IN_PROGRESS does not move it.
    let deadline = sim.handler.deadline();
    sim.send(capf_wire::RequestInProgress::new()).await;
    assert_eq!(sim.handler.deadline(), deadline);
    // The driver aborts the session at the deadline: the attempt ends as interrupted.
    sim.session.abort(Reason::INVALID_ELEMENT).unwrap();
    sim.pump().await;
    assert_eq!(bench.status(), OperationStatus::Pending);
    assert_eq!(sim.handler.deadline(), None);

    // A limit too large for the clock means no deadline, not a panic.
    bench.with_settings(|s| s.key_generation_total = Duration::MAX);
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    assert_eq!(sim.handler.deadline(), None);
}

/// Issue 12 item 4: a session that never authenticated changes no status; it is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_auth_response_in_certificate_mode_is_audited_and_changes_nothing() {
    let bench = Bench::new("unauthenticated");
    bench.add(rsa_install(), AuthMode::ExistingCertificateLscFirst, None);
    let before = bench.device();
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "").await),
        Reason::INVALID_ELEMENT
    );
    assert!(bench.refused_reason().contains("no certificate"));
    let after = bench.device();
    assert_eq!(after.status, OperationStatus::Pending);
    assert_eq!(
        (after.attempts, after.last_error),
        (before.attempts, before.last_error)
    );
}
