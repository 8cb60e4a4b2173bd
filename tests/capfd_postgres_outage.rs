//! The database lost mid-run (issue 16): capfd on PostgreSQL keeps running while the server is
//! stopped; a session then fails cleanly (no LSC, the phone told to end), the attempt it had
//! begun goes back to pending once the database returns, and the node serves again by itself
//! (its pool reconnects): the phones enroll. Its own test binary: stopping the test cluster's
//! server would break every other test of the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use capf_lsc::KeyPolicy;
use capf_phone::{KeyPool, KeySource, Phone, PhoneConfig};
use capf_store::{
    AdminStore, DeviceName, LscState, NewDevice, Operation, OperationStatus, SessionStore,
};
use capf_test_support::postgres::cluster as pg;
use cluster::{Node, SPEC, Scratch, phone, runtime, store};

const HOST: &str = "127.0.0.9";

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

/// Waits (up to a minute) until `check` holds.
fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sessions_fail_cleanly_while_the_database_is_gone_and_the_node_serves_again_after() {
    let db = pg().database();
    let s = Scratch::new("outage");
    let mut node = Node::start_with(&s.node_dir(1), &db.url, HOST, &["--node", "outage-1"]);
    let admin = store(&db.url);
    let (mid, later) = (dn("SEP00AABBCC0601"), dn("SEP00AABBCC0602"));
    for name in [&mid, &later] {
        let mut new = NewDevice::new(name.clone());
        new.operation = Operation::InstallUpgrade(KeyPolicy::only(SPEC));
        admin.add_device(&new, SystemTime::now()).unwrap();
    }
    let trust = node.capf_pem();
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(SPEC).unwrap());
    let rt = runtime();

    // A phone whose key generation takes 3 s: its attempt has begun when the database goes.
    let slow = {
        let mut config = PhoneConfig::new(mid.clone(), HOST, &trust).unwrap();
        config.port = node.port;
        config.retries = 0;
        config.key_generation_delay = Duration::from_secs(3);
        let keys = Arc::clone(&keys);
        rt.spawn(async move { Phone::new(config, keys).unwrap().run_once().await })
    };
    wait_for("the attempt did not begin", || {
        admin.device(&mid).unwrap().unwrap().status == OperationStatus::InProgress
    });
    drop(admin);
    pg().stop();

    // The session in flight fails cleanly: no LSC, and capfd runs on.
    let e = rt.block_on(slow).unwrap();
    assert!(e.as_ref().map_or(true, |e| e.installed.is_none()), "{e:?}");
    // A new session while the database is gone: refused, nothing installed.
    let e = rt.block_on(cluster::try_phone(
        HOST,
        node.port,
        &trust,
        &later,
        Arc::clone(&keys),
    ));
    assert!(e.as_ref().map_or(true, |e| e.installed.is_none()), "{e:?}");
    assert!(node.is_running(), "{}", node.log());

    pg().restart();
    let admin = store(&db.url);
    // The attempt cut off is pending again (the node records its end once it can), and
    // nothing was installed meanwhile.
    wait_for("the interrupted attempt stayed in progress", || {
        admin.device(&mid).unwrap().unwrap().status == OperationStatus::Pending
    });
    assert_eq!(
        admin.device(&later).unwrap().unwrap().status,
        OperationStatus::Pending
    );
    assert!(
        admin
            .lscs(&mid)
            .unwrap()
            .iter()
            .all(|l| l.state != LscState::Installed)
    );
    // The node reconnected by itself: both phones enroll now.
    for name in [&mid, &later] {
        let mut e = rt.block_on(cluster::try_phone(
            HOST,
            node.port,
            &trust,
            name,
            Arc::clone(&keys),
        ));
        // The first call on a connection the server cut may fail once; a phone tries again.
        if !e.as_ref().is_ok_and(|e| e.installed.is_some()) {
            e = Ok(rt.block_on(phone(HOST, node.port, &trust, name, Arc::clone(&keys))));
        }
        assert!(
            e.as_ref().is_ok_and(|e| e.installed.is_some()),
            "{name}: {e:?}\n{}",
            node.log()
        );
        let device = admin.device(name).unwrap().unwrap();
        assert_eq!(device.status, OperationStatus::Success);
        let installed = admin
            .lscs(name)
            .unwrap()
            .into_iter()
            .filter(|l| l.state == LscState::Installed)
            .count();
        assert_eq!(installed, 1);
    }
    node.kill();
}
