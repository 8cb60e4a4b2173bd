//! capf-store on PostgreSQL: the conformance suite, the migrations, and what only a shared
//! database shows (two stores on one database, as two nodes). One throwaway cluster for this
//! test binary (capf-test-support's `postgres`), a fresh database per test.

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
