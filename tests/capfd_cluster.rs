//! Several capfd nodes on one PostgreSQL store (issue 16): a device another node is serving is
//! refused and left as it was; the same device hit from both nodes at once is installed
//! exactly once; the cluster serves one CAPF certificate, and a replacement reaches every node
//! without a restart; 1,000 phones enroll across two nodes while one is killed and restarted;
//! a job due in 2 s runs exactly once across both (issue 17); a dead node's attempt is pending
//! again when its lease runs out and enrolls at the other node; a setting changed through
//! capfctl reaches both running nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_lsc::KeyPolicy;
use capf_phone::{KeyPool, KeySource};
use capf_store::{
    AdminStore, AttemptEnd, DeviceName, LscState, NewDevice, Operation, OperationStatus, PgStore,
    SessionStore, action,
};
use capf_test_support::postgres::cluster as pg;
use capf_wire::Reason;
use cluster::{Node, SPEC, Scratch, phone, runtime, store, try_phone};

/// The loopback address this test binary's nodes listen on.
const HOST: &str = "127.0.0.8";

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn schedule(store: &PgStore, name: &DeviceName) {
    let mut new = NewDevice::new(name.clone());
    new.operation = Operation::InstallUpgrade(KeyPolicy::only(SPEC));
    store.add_device(&new, SystemTime::now()).unwrap();
}

#[test]
fn a_device_another_node_serves_is_refused_and_left_as_it_was() {
    let db = pg().database();
    let s = Scratch::new("refused");
    let node = Node::start(&s.node_dir(1), &db.url, HOST);
    let store = store(&db.url);
    let name = dn("SEP00AABBCC0201");
    schedule(&store, &name);
    // Another node began an attempt and holds its lease.
    let other = store_as(&db.url, "other-node");
    other.begin_attempt(&name, SystemTime::now()).unwrap();
    let before = store.device(&name).unwrap().unwrap();

    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(SPEC).unwrap());
    let rt = runtime();
    let trust = node.capf_pem();
    let e = rt.block_on(phone(HOST, node.port, &trust, &name, Arc::clone(&keys)));
    assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT), "{e:?}");
    assert!(e.requested.is_none(), "{e:?}");
    let after = store.device(&name).unwrap().unwrap();
    assert_eq!(after.status, OperationStatus::InProgress);
    assert_eq!(after.attempts, before.attempts);
    assert!(store.lscs(&name).unwrap().is_empty());
    let audit = store.audit(Some(&name), 1).unwrap();
    assert_eq!(audit[0].action, action::SESSION_REFUSED);
    assert!(
        audit[0].detail.contains("being served by node other-node"),
        "{audit:?}"
    );

    // Once the other node's attempt ends, the phone that comes back enrolls here.
    other
        .end_attempt(
            &name,
            AttemptEnd::Interrupted {
                reason: "hung up".into(),
            },
            SystemTime::now(),
        )
        .unwrap();
    let e = rt.block_on(phone(HOST, node.port, &trust, &name, keys));
    assert!(e.succeeded() && e.installed.is_some(), "{e:?}");
    assert_eq!(
        store.device(&name).unwrap().unwrap().status,
        OperationStatus::Success
    );
}

/// The store as node `node`, whose leases last two minutes.
fn store_as(url: &str, node: &str) -> PgStore {
    store(url).with_node(
        capf_store::postgres::NodeId::new(node).unwrap(),
        Duration::from_secs(120),
    )
}

#[test]
fn the_same_device_hit_from_both_nodes_at_once_is_installed_once() {
    let db = pg().database();
    let s = Scratch::new("race");
    let a = Node::start(&s.node_dir(1), &db.url, HOST);
    let b = Node::start(&s.node_dir(2), &db.url, HOST);
    let store = store(&db.url);
    let names: Vec<DeviceName> = (0..12)
        .map(|n| dn(&format!("SEP00AABBCC03{n:02X}")))
        .collect();
    for name in &names {
        schedule(&store, name);
    }
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(SPEC).unwrap());
    let (trust_a, trust_b) = (a.capf_pem(), b.capf_pem());
    let results = runtime().block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for name in &names {
            for (port, trust) in [(a.port, trust_a.clone()), (b.port, trust_b.clone())] {
                let (name, keys) = (name.clone(), Arc::clone(&keys));
                tasks.spawn(async move {
                    let e = phone(HOST, port, &trust, &name, keys).await;
                    (name, e)
                });
            }
        }
        tasks.join_all().await
    });
    for name in &names {
        let mine: Vec<_> = results.iter().filter(|(n, _)| n == name).collect();
        let installed = mine.iter().filter(|(_, e)| e.installed.is_some()).count();
        assert_eq!(installed, 1, "{name}: {mine:?}");
        // The other phone was refused (the attempt ran on the other node) or came after it
        // and was told there is nothing to do.
        for (_, e) in mine.iter().filter(|(_, e)| e.installed.is_none()) {
            assert!(
                matches!(e.end_reason(), Some(r) if r == Reason::INVALID_ELEMENT || r == Reason::NO_ACTION),
                "{name}: {e:?}"
            );
        }
        let device = store.device(name).unwrap().unwrap();
        assert_eq!(device.status, OperationStatus::Success, "{name}");
        let lscs = store.lscs(name).unwrap();
        assert_eq!(lscs.len(), 1, "{name}: {lscs:?}");
        assert_eq!(lscs[0].state, LscState::Installed);
    }
}

#[test]
fn the_cluster_serves_one_capf_certificate_and_a_replacement_reaches_every_node() {
    let db = pg().database();
    let s = Scratch::new("capf-cert");
    // Each node starts with a candidate of its own; the first one stored is the cluster's.
    let a = Node::start(&s.node_dir(1), &db.url, HOST);
    let b = Node::start(&s.node_dir(2), &db.url, HOST);
    assert_eq!(a.capf_pem(), b.capf_pem());
    let store = store(&db.url);
    let stored = store.cluster_capf_certificate().unwrap().unwrap();
    assert_eq!(stored.generation, 1);
    assert_eq!(stored.certificate_pem.as_bytes(), a.capf_pem());
    let names: Vec<DeviceName> = (0..4)
        .map(|n| dn(&format!("SEP00AABBCC04{n:02X}")))
        .collect();
    for name in &names {
        schedule(&store, name);
    }
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(SPEC).unwrap());
    let rt = runtime();
    let first = a.capf_pem();
    // A phone trusting the one certificate enrolls at either node.
    for (node, name) in [(&a, &names[0]), (&b, &names[1])] {
        let e = rt.block_on(phone(HOST, node.port, &first, name, Arc::clone(&keys)));
        assert!(e.installed.is_some(), "{e:?}");
    }

    // The administrator replaces it with capfctl on the cluster's store.
    let cert = s.0.join("new.pem");
    let key = s.0.join("new.key");
    let out = std::process::Command::new(common::example("capfctl"))
        .args(["capf-cert", "generate", "--key-type", "p256"])
        .arg("--cert-out")
        .arg(&cert)
        .arg("--key-out")
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(common::example("capfctl"))
        .args(["capf-cert", "upload"])
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--data")
        .arg(&a.dir)
        .args(["--store", &db.url])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("generation 2"), "{stdout}");
    let new = std::fs::read(&cert).unwrap();
    assert_eq!(
        store
            .cluster_capf_certificate()
            .unwrap()
            .unwrap()
            .certificate_pem
            .as_bytes(),
        new
    );
    // Both nodes serve it without a restart: a phone that trusts only the new certificate
    // enrolls at each (its TLS pins the certificate the node presents).
    for (node, name) in [(&a, &names[2]), (&b, &names[3])] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let e = rt.block_on(try_phone(HOST, node.port, &new, name, Arc::clone(&keys)));
            if e.as_ref().is_ok_and(|e| e.installed.is_some()) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {} did not serve the new certificate: {e:?}\n{}",
                node.port,
                node.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(node.capf_pem(), new);
    }
}

/// Phone names from a load report's failures (`NAME: why`).
fn failed_names(report: &capf_phone::load::LoadReport) -> Vec<DeviceName> {
    report
        .failed
        .iter()
        .map(|f| dn(f.split_once(':').map_or(f.as_str(), |(n, _)| n)))
        .collect()
}

/// The two-node test of issue 16: 1,000 phones (capf-phone's load generator, provisioned into
/// the PostgreSQL store) enroll across two nodes; one node is killed with SIGKILL mid-run and
/// started again under its name; the phones that failed come back. Every device ends with
/// exactly one installed LSC, none in progress, and the audit agrees with the devices.
#[test]
fn a_thousand_phones_enroll_across_two_nodes_with_one_killed_mid_run() {
    use capf_phone::load::{LoadTarget, enroll, simulated_device_name};
    const PHONES: u32 = 1000;
    let db = pg().database();
    let s = Scratch::new("thousand");
    let store = store(&db.url);
    let names: Vec<DeviceName> = (1..=PHONES)
        .map(|n| dn(&simulated_device_name("SEP", n)))
        .collect();
    capf_admin::provision_load_devices(&store, names.iter(), SPEC, PHONES, SystemTime::now())
        .unwrap();
    let a = Node::start_with(&s.node_dir(1), &db.url, HOST, &["--node", "node-a"]);
    let b = Node::start_with(&s.node_dir(2), &db.url, HOST, &["--node", "node-b"]);
    let trust = a.capf_pem();
    assert_eq!(trust, b.capf_pem());
    let target = |port| LoadTarget {
        host: HOST.to_owned(),
        port,
        trust_pem: trust.clone(),
        tls_versions: capf_phone::TlsVersions::default(),
    };
    let (to_a, to_b) = (target(a.port), target(b.port));
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(SPEC).unwrap());

    // The killer: once a fifth of the phones enrolled, node b dies (SIGKILL) and comes back.
    let killer = std::thread::spawn({
        let url = db.url.clone();
        let mut b = b;
        move || {
            let store = cluster::store(&url);
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            while store.status_report(SystemTime::now()).unwrap().succeeded < u64::from(PHONES / 5)
            {
                assert!(std::time::Instant::now() < deadline, "no progress");
                std::thread::sleep(Duration::from_millis(50));
            }
            b.kill();
            std::thread::sleep(Duration::from_millis(500));
            b.restart();
            b
        }
    });
    let (half_a, half_b): (Vec<_>, Vec<_>) = names
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let rt = runtime();
    let (ra, rb) = rt.block_on(async {
        tokio::join!(
            enroll(
                &to_a,
                half_a.into_iter().map(|(_, n)| n).collect(),
                Arc::clone(&keys),
                16
            ),
            enroll(
                &to_b,
                half_b.into_iter().map(|(_, n)| n).collect(),
                Arc::clone(&keys),
                16
            ),
        )
    });
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let _b = killer.join().unwrap();
    assert_eq!(
        ra.enrolled + ra.failed.len() + rb.enrolled + rb.failed.len(),
        1000
    );
    // Node b died with most of its 500 phones still to come: some of them failed.
    assert!(!rb.failed.is_empty());
    eprintln!(
        "node a: {} enrolled, {} failed; node b: {} enrolled, {} failed",
        ra.enrolled,
        ra.failed.len(),
        rb.enrolled,
        rb.failed.len()
    );
    // The phones node b's death cut off come back (to either node), as phones do.
    let mut again: Vec<DeviceName> = failed_names(&ra)
        .into_iter()
        .chain(failed_names(&rb))
        .collect();
    // A phone whose install node b made durable just before it died never saw END_SESSION;
    // its retry finds nothing to do (NO_ACTION). The store checks below show it installed.
    let no_action = format!("reason: {:?} }}", Reason::NO_ACTION);
    let mut why = Vec::new();
    for round in 0..3 {
        if again.is_empty() {
            break;
        }
        let to = if round % 2 == 0 { &to_b } else { &to_a };
        let mut report = rt
            .block_on(enroll(to, again.clone(), Arc::clone(&keys), 16))
            .unwrap();
        report.failed.retain(|f| !f.ends_with(&no_action));
        again = failed_names(&report);
        why.push(report.failed);
    }
    assert!(
        again.is_empty(),
        "{again:?} still failed, round by round: {why:?}"
    );

    let report = store.status_report(SystemTime::now()).unwrap();
    assert_eq!(report.succeeded, u64::from(PHONES), "{report:?}");
    assert_eq!(report.in_progress, 0, "{report:?}");
    for name in &names {
        let device = store.device(name).unwrap().unwrap();
        assert_eq!(device.status, OperationStatus::Success, "{name}");
        let lscs = store.lscs(name).unwrap();
        let installed: Vec<_> = lscs
            .iter()
            .filter(|l| l.state == LscState::Installed)
            .collect();
        assert_eq!(installed.len(), 1, "{name}: {lscs:?}");
        // Any other LSC was sent and never confirmed (the node died): stale, never installed.
        assert!(
            lscs.iter()
                .all(|l| matches!(l.state, LscState::Installed | LscState::Stale)),
            "{name}: {lscs:?}"
        );
        // The audit agrees: one install, of that LSC, and one entry per attempt begun.
        let audit = store.audit(Some(name), 100).unwrap();
        let installs: Vec<_> = audit
            .iter()
            .filter(|e| e.action == action::LSC_INSTALLED)
            .collect();
        assert_eq!(installs.len(), 1, "{name}: {audit:?}");
        assert!(
            installs[0].detail.contains(&installed[0].serial_hex()),
            "{name}: {audit:?}"
        );
        let begun = audit
            .iter()
            .filter(|e| e.action == action::ATTEMPT_BEGUN)
            .count();
        assert_eq!(
            u64::try_from(begun).unwrap(),
            u64::from(device.attempts),
            "{name}: {audit:?}"
        );
    }
}

/// Issue 17 on a cluster: jobs due in 2 s, stored by capfctl on the cluster's store, each run
/// exactly once by the two nodes together.
#[test]
fn two_nodes_run_each_due_job_exactly_once() {
    use capf_store::JobState;
    let db = pg().database();
    let s = Scratch::new("jobs");
    let config = s.0.join("capfd.toml");
    std::fs::write(&config, "[monitor]\nenabled = false\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let store = store(&db.url);
    for n in 0..4 {
        schedule(&store, &dn(&format!("SEP00AABBCC05{n:02X}")));
    }
    let due = capf_admin::rfc3339(SystemTime::now() + Duration::from_secs(2));
    let ids: Vec<i64> = (0..6)
        .map(|n| {
            let out = std::process::Command::new(common::example("capfctl"))
                .args(["bulk", "update", "--all", "--description"])
                .arg(format!("job {n}"))
                .args(["--at", &due, "--json", "--store", &db.url])
                .arg("--data")
                .arg(s.node_dir(1))
                .env_remove("PGPASSWORD")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            job["id"].as_i64().unwrap()
        })
        .collect();
    let _a = Node::start_with(
        &s.node_dir(1),
        &db.url,
        HOST,
        &["--config", &config, "--node", "node-a"],
    );
    let _b = Node::start_with(
        &s.node_dir(2),
        &db.url,
        HOST,
        &["--config", &config, "--node", "node-b"],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ids
        .iter()
        .all(|id| store.job(*id).unwrap().unwrap().state.is_final())
    {
        assert!(std::time::Instant::now() < deadline, "jobs not done");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Several more ticks of both schedulers: still once each.
    std::thread::sleep(Duration::from_secs(3));
    let audit = store.audit(None, 10_000).unwrap();
    for id in &ids {
        let job = store.job(*id).unwrap().unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert!(
            matches!(job.node.as_deref(), Some("node-a" | "node-b")),
            "{job:?}"
        );
        assert_eq!(job.result.unwrap().devices_changed, 4);
        let starts = audit
            .iter()
            .filter(|e| {
                e.action == action::JOB_STARTED && e.detail.starts_with(&format!("job {id} "))
            })
            .count();
        assert_eq!(starts, 1, "job {id}");
    }
}

/// A dead node's attempts become pending again when its lease runs out (issue 16), with the
/// processes: a phone stalls in key generation on node b, node b is SIGKILLed and not
/// restarted; node a refuses the device while b's lease runs, then puts the attempt back to
/// pending (its lease renewal, every 10 s), and the phone enrolls at node a. The audit shows
/// the interrupted attempt.
#[test]
fn a_dead_nodes_attempt_is_pending_again_when_its_lease_runs_out() {
    let db = pg().database();
    let s = Scratch::new("lease");
    let config = s.0.join("capfd.toml");
    // The shortest lease capfd takes.
    std::fs::write(&config, "lease_secs = 30\n[monitor]\nenabled = false\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let a = Node::start_with(
        &s.node_dir(1),
        &db.url,
        HOST,
        &["--config", &config, "--node", "node-a"],
    );
    let mut b = Node::start_with(
        &s.node_dir(2),
        &db.url,
        HOST,
        &["--config", &config, "--node", "node-b"],
    );
    let store = store(&db.url);
    let name = dn("SEP00AABBCC0601");
    schedule(&store, &name);
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(SPEC).unwrap());
    let trust = a.capf_pem();
    let rt = runtime();

    // A phone that takes ten minutes to generate its key: its attempt runs on node b.
    let stalled = rt.spawn({
        let (name, keys, trust, port) = (name.clone(), Arc::clone(&keys), trust.clone(), b.port);
        async move {
            let mut config = capf_phone::PhoneConfig::new(name, HOST, &trust).unwrap();
            config.port = port;
            config.retries = 0;
            config.key_generation_delay = Duration::from_secs(600);
            capf_phone::Phone::new(config, keys)
                .unwrap()
                .run_once()
                .await
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while store.device(&name).unwrap().unwrap().status != OperationStatus::InProgress {
        assert!(std::time::Instant::now() < deadline, "{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let begun = store.audit(Some(&name), 1).unwrap();
    assert_eq!(begun[0].action, action::ATTEMPT_BEGUN);
    assert!(begun[0].detail.ends_with("on node node-b"), "{begun:?}");

    b.kill();
    stalled.abort();
    // While b's lease runs (at least 20 s more: renewed every 10 s for 30 s), node a leaves
    // the attempt alone and refuses the device.
    let e = rt.block_on(phone(HOST, a.port, &trust, &name, Arc::clone(&keys)));
    assert_eq!(e.end_reason(), Some(Reason::INVALID_ELEMENT), "{e:?}");
    assert_eq!(
        store.device(&name).unwrap().unwrap().status,
        OperationStatus::InProgress
    );

    // Node a takes the attempt back once the lease has run out: no restart of b, no phone.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let device = store.device(&name).unwrap().unwrap();
        if device.status == OperationStatus::Pending {
            assert_eq!(
                device.last_error.as_deref(),
                Some("CAPF stopped while the session ran")
            );
            break;
        }
        assert_eq!(device.status, OperationStatus::InProgress);
        assert!(std::time::Instant::now() < deadline, "{}", a.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        a.log()
            .contains("another node's attempts whose lease ran out are pending again"),
        "{}",
        a.log()
    );

    // The phone comes back, to node a, and enrolls.
    let e = rt.block_on(phone(HOST, a.port, &trust, &name, keys));
    assert!(e.succeeded() && e.installed.is_some(), "{e:?}");
    let device = store.device(&name).unwrap().unwrap();
    assert_eq!(device.status, OperationStatus::Success);
    assert_eq!(device.attempts, 2);
    let lscs = store.lscs(&name).unwrap();
    assert_eq!(lscs.len(), 1, "{lscs:?}");
    assert_eq!(lscs[0].state, LscState::Installed);
    // The audit, oldest first: b's attempt, a's refusal, its interruption, a's attempt, the
    // install.
    let mut audit = store.audit(Some(&name), 100).unwrap();
    audit.reverse();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    let at = |what: &str| actions.iter().position(|a| *a == what).unwrap();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == action::ATTEMPT_INTERRUPTED)
            .count(),
        1,
        "{audit:?}"
    );
    let interrupted = &audit[at(action::ATTEMPT_INTERRUPTED)];
    assert!(
        interrupted.detail.starts_with("attempt 1 interrupted"),
        "{audit:?}"
    );
    assert!(at(action::ATTEMPT_BEGUN) < at(action::SESSION_REFUSED));
    assert!(at(action::SESSION_REFUSED) < at(action::ATTEMPT_INTERRUPTED));
    let second = actions
        .iter()
        .rposition(|a| *a == action::ATTEMPT_BEGUN)
        .unwrap();
    assert!(at(action::ATTEMPT_INTERRUPTED) < second, "{audit:?}");
    assert!(
        audit[second].detail.ends_with("on node node-a"),
        "{audit:?}"
    );
    assert!(second < at(action::LSC_INSTALLED), "{audit:?}");
}

/// The days of the LSC `name` holds (its notAfter less its notBefore).
fn validity_days(store: &PgStore, name: &DeviceName) -> u64 {
    let lscs = store.lscs(name).unwrap();
    assert_eq!(lscs.len(), 1, "{name}: {lscs:?}");
    lscs[0]
        .not_after
        .duration_since(lscs[0].not_before)
        .unwrap()
        .as_secs()
        / 86_400
}

/// Cluster-wide settings (issue 16): a setting changed by capfctl on the cluster's store is
/// applied by both running nodes, without a restart. The setting is the LSC validity, which
/// each node reads for every LSC it issues: the phones' LSCs show it.
#[test]
fn both_nodes_apply_a_setting_changed_through_capfctl_on_the_store() {
    let db = pg().database();
    let s = Scratch::new("settings");
    let a = Node::start(&s.node_dir(1), &db.url, HOST);
    let b = Node::start(&s.node_dir(2), &db.url, HOST);
    let store = store(&db.url);
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(SPEC).unwrap());
    let trust = a.capf_pem();
    let rt = runtime();
    let mut next = 0u32;
    let mut enroll = |node: &Node| {
        next += 1;
        let name = dn(&format!("SEP00AABBCC07{next:02X}"));
        schedule(&store, &name);
        let e = rt.block_on(phone(HOST, node.port, &trust, &name, Arc::clone(&keys)));
        assert!(e.installed.is_some(), "{e:?}\n{}", node.log());
        validity_days(&store, &name)
    };
    // The default, 1825 days, at both.
    assert_eq!(enroll(&a), 1825);
    assert_eq!(enroll(&b), 1825);

    let out = std::process::Command::new(common::example("capfctl"))
        .args([
            "settings",
            "set",
            "lsc_validity_days",
            "7",
            "--store",
            &db.url,
        ])
        .arg("--data")
        .arg(&a.dir)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each node re-reads the settings every 2 s: its phones soon get 7-day LSCs.
    for node in [&a, &b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let days = enroll(node);
            if days == 7 {
                break;
            }
            assert_eq!(days, 1825);
            assert!(
                std::time::Instant::now() < deadline,
                "node {} kept the old validity",
                node.port
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // Both processes still run: the change needed no restart.
    let (mut a, mut b) = (a, b);
    assert!(a.is_running() && b.is_running());
}
