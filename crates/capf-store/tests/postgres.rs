//! capf-store on PostgreSQL: the conformance suite, the migrations, and what only a shared
//! database shows (two stores on one database, as two nodes). One throwaway cluster for this
//! test binary (capf-test-support's `postgres`), a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capf_store::postgres::NodeId;
use capf_store::{AdminStore, DeviceName, Error, NewDevice, Operation, PgStore, SessionStore};
use capf_test_support::postgres::cluster;

/// A store on a fresh database.
fn fresh() -> PgStore {
    open(&cluster().database().url, [9; 32])
}

fn open(url: &str, key: [u8; 32]) -> PgStore {
    let config: postgres::Config = url.parse().unwrap();
    PgStore::connect(config, key).unwrap()
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

fn name(s: &str) -> DeviceName {
    DeviceName::new(s).unwrap()
}

mod conformance {
    capf_store::conformance_tests!(super::fresh);
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_error() {
    let db = cluster().database();
    drop(open(&db.url, [9; 32]));
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute("UPDATE capf_schema SET version = version + 1")
        .unwrap();
    let config: postgres::Config = db.url.parse().unwrap();
    let err = PgStore::connect(config, [9; 32]).unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported }
            if found == capf_store::postgres::PG_SCHEMA_VERSION + 1
                && supported == capf_store::postgres::PG_SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("newer than"), "{err}");
}

#[test]
fn a_node_with_another_key_file_is_refused() {
    let db = cluster().database();
    drop(open(&db.url, [9; 32]));
    let config: postgres::Config = db.url.parse().unwrap();
    let err = PgStore::connect(config, [8; 32]).unwrap_err();
    assert!(matches!(err, Error::ClusterKeyMismatch), "{err}");
}

#[test]
fn two_nodes_cannot_both_begin_an_attempt_for_one_device() {
    let db = cluster().database();
    let lease = Duration::from_secs(60);
    let a = open(&db.url, [9; 32]).with_node(NodeId::new("a").unwrap(), lease);
    let b = open(&db.url, [9; 32]).with_node(NodeId::new("b").unwrap(), lease);
    let phone = name("SEP00AA00BB00CC");
    let mut new = NewDevice::new(phone.clone());
    new.operation = Operation::InstallUpgrade(capf_lsc::KeyPolicy::default());
    a.add_device(&new, now()).unwrap();
    // Both at once, many times over: exactly one wins each round.
    let a = Arc::new(a);
    let b = Arc::new(b);
    for round in 0..20u64 {
        let t = now() + Duration::from_secs(round * 1000);
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| a.begin_attempt(&phone, t));
            let hb = s.spawn(|| b.begin_attempt(&phone, t));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        assert!(ra.is_ok() != rb.is_ok(), "round {round}: {ra:?} {rb:?}");
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(
            matches!(loser, Err(Error::AttemptOnAnotherNode { .. })),
            "{loser:?}"
        );
        a.end_attempt(
            &phone,
            capf_store::AttemptEnd::Interrupted {
                reason: "test".into(),
            },
            t,
        )
        .unwrap();
    }
    // A lease that ran out no longer holds the device.
    a.begin_attempt(&phone, now()).unwrap();
    b.begin_attempt(&phone, now() + lease + Duration::from_secs(1))
        .unwrap();
}

#[test]
fn a_restart_recovers_only_its_own_attempts_and_a_dead_nodes_after_its_lease() {
    let db = cluster().database();
    let lease = Duration::from_secs(60);
    let a = open(&db.url, [9; 32]).with_node(NodeId::new("a").unwrap(), lease);
    let b = open(&db.url, [9; 32]).with_node(NodeId::new("b").unwrap(), lease);
    let (pa, pb) = (name("SEP0000000000AA"), name("SEP0000000000BB"));
    for p in [&pa, &pb] {
        let mut new = NewDevice::new(p.clone());
        new.operation = Operation::InstallUpgrade(capf_lsc::KeyPolicy::default());
        a.add_device(&new, now()).unwrap();
    }
    a.begin_attempt(&pa, now()).unwrap();
    b.begin_attempt(&pb, now()).unwrap();
    // b restarts: only its own attempt goes back to pending.
    let ended = b.recover_attempts("stopped", now()).unwrap();
    assert_eq!(ended.iter().map(|d| &d.name).collect::<Vec<_>>(), [&pb]);
    assert_eq!(
        a.device(&pa).unwrap().unwrap().status,
        capf_store::OperationStatus::InProgress
    );
    // a renews while alive: b's look before the lease runs out ends nothing.
    let later = now() + Duration::from_secs(50);
    assert!(a.renew_leases("stopped", later).unwrap().is_empty());
    assert!(
        b.renew_leases("stopped", later + Duration::from_secs(50))
            .unwrap()
            .is_empty()
    );
    // a dies (no more renewals): once its lease runs out, b puts its attempt back to pending,
    // audited.
    let ended = b
        .renew_leases("stopped", later + lease + Duration::from_secs(1))
        .unwrap();
    assert_eq!(ended.len(), 1);
    let device = a.device(&pa).unwrap().unwrap();
    assert_eq!(device.status, capf_store::OperationStatus::Pending);
    assert_eq!(
        a.audit(Some(&pa), 1).unwrap()[0].action,
        capf_store::action::ATTEMPT_INTERRUPTED
    );
}

#[test]
fn the_first_node_creates_the_capf_certificate_and_a_replacement_reaches_every_node() {
    let db = cluster().database();
    let a = open(&db.url, [9; 32]).with_node(NodeId::new("a").unwrap(), Duration::from_secs(60));
    let b = open(&db.url, [9; 32]).with_node(NodeId::new("b").unwrap(), Duration::from_secs(60));
    assert!(a.capf_certificate().unwrap().is_none());
    let key = |s: &str| capf_store::Secret::new(s);
    let (ca, cb) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.capf_certificate_or_insert("CERT-A", &key("KEY-A"), now()));
        let hb = s.spawn(|| b.capf_certificate_or_insert("CERT-B", &key("KEY-B"), now()));
        (ha.join().unwrap().unwrap(), hb.join().unwrap().unwrap())
    });
    assert_eq!(ca, cb, "both nodes serve the one certificate");
    assert_eq!(ca.generation, 1);
    let replaced = a
        .replace_capf_certificate("CERT-C", &key("KEY-C"), now())
        .unwrap();
    assert_eq!(replaced.generation, 2);
    let seen = b.capf_certificate().unwrap().unwrap();
    assert_eq!(seen.certificate_pem, "CERT-C");
    assert_eq!(seen.key_pem.expose(), "KEY-C");
    // The key is sealed in the database, never stored in clear.
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let sealed: Vec<u8> = client
        .query_one("SELECT sealed_key FROM capf_certificate", &[])
        .unwrap()
        .get(0);
    assert!(!sealed.windows(5).any(|w| w == b"KEY-C"));
}
