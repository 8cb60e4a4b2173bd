//! Scheduled jobs as processes: `capfctl bulk ... --at TIME` stores a job, `capfctl job
//! list|show|cancel` manages it, and a running `capfd` runs it when due, exactly once: a job due
//! in 2 s runs once; a restart of capfd before it is due still runs it once; a cancelled job
//! never runs; a job that fails records why; a job left Running by a node that died runs again
//! once its lease runs out, and one left by this node's name runs again at its restart, each
//! applied once. The built-in monitor job mails through a real local SMTP server (aiosmtpd, as
//! the monitor test of `capfctl_admin` does); with `[monitor] enabled = false` no monitor job is
//! scheduled or run.
//!
//! Two capfd processes on one store running a job once needs a store two servers share:
//! `tests/capfd_cluster.rs` runs it on PostgreSQL (`two_nodes_run_each_due_job_exactly_once`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::smtp::SmtpServer;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use capf_lsc::KeyPolicy;
use capf_store::{
    AdminStore, DeviceName, IssuedLsc, Job, JobState, LscState, NewDevice, Operation, SessionStore,
    SqliteStore, action,
};
use serde_json::Value;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("capfd-jobs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn data(&self) -> PathBuf {
        self.path("data")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(common::example("capfctl"))
            .current_dir(&self.0)
            .args(args)
            .arg("--data")
            .arg(self.data())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        err
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data()).unwrap()
    }

    /// A capfd configuration file with `[monitor]` as given.
    fn config(&self, monitor: &str) -> PathBuf {
        let path = self.path("capfd.toml");
        std::fs::write(&path, format!("[monitor]\n{monitor}")).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running capfd, killed (SIGKILL) on drop.
struct Capfd(Child);

impl Capfd {
    fn start(data: &Path, config: &Path) -> Capfd {
        Capfd::start_with(data, config, &[])
    }

    /// [`Capfd::start`] with more arguments.
    fn start_with(data: &Path, config: &Path, extra: &[&str]) -> Capfd {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(common::example("capfd"))
            .arg("--config")
            .arg(config)
            .arg("--data")
            .arg(data)
            .args(["--listen", &listen])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut capfd = Capfd(child);
        let started = Instant::now();
        while TcpStream::connect(&listen).is_err() {
            if let Ok(Some(status)) = capfd.0.try_wait() {
                panic!("capfd exited with {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "capfd did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        capfd
    }
}

impl Drop for Capfd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

/// An RFC 3339 time `secs` seconds from now.
fn in_secs(secs: u64) -> String {
    capf_admin::rfc3339(SystemTime::now() + Duration::from_secs(secs))
}

/// Waits (up to a minute) until job `id` is in a final state; returns it.
fn wait_done(store: &SqliteStore, id: i64) -> Job {
    let started = Instant::now();
    loop {
        let job = store.job(id).unwrap().unwrap();
        if job.state.is_final() {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "job {id} still {}",
            job.state
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many times job `id` was started, by the audit log.
fn starts(store: &SqliteStore, id: i64) -> usize {
    store
        .audit(None, 10_000)
        .unwrap()
        .iter()
        .filter(|e| e.action == action::JOB_STARTED && e.detail.starts_with(&format!("job {id} ")))
        .count()
}

fn add_lobby_devices(s: &Scratch) {
    for name in ["SEP001122334455", "SEP001122334456"] {
        s.ok(&["device", "add", name, "--pool", "Lobby"]);
    }
}

#[test]
fn a_job_due_in_two_seconds_runs_once_and_a_cancelled_one_never() {
    let s = Scratch::new("due");
    add_lobby_devices(&s);
    let at = in_secs(2);
    let job = s.json(&[
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--model",
        "Cisco 8865",
        "--at",
        &at,
    ]);
    assert_eq!(job["state"], "scheduled");
    assert_eq!(job["kind"], "bulk-update");
    assert_eq!(job["due"], at.as_str());
    let id = job["id"].as_i64().unwrap();
    let cancelled = s.json(&[
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--description",
        "never",
        "--at",
        &at,
    ]);
    let cancelled_id = cancelled["id"].as_i64().unwrap();
    let text = s.ok(&["job", "cancel", &cancelled_id.to_string()]);
    assert!(
        text.starts_with(&format!("cancelled job {cancelled_id}")),
        "{text}"
    );
    let err = s.fails(&["job", "cancel", &cancelled_id.to_string()]);
    assert!(
        err.contains("is cancelled, so it cannot be cancelled"),
        "{err}"
    );
    // Nothing ran yet: capfd runs the jobs.
    let store = s.store();
    assert_eq!(store.job(id).unwrap().unwrap().state, JobState::Scheduled);

    let _capfd = Capfd::start(&s.data(), &s.config("enabled = false\n"));
    let done = wait_done(&store, id);
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.result.as_ref().unwrap().devices_changed, 2);
    assert!(done.started_at.unwrap() >= capf_admin::parse_rfc3339(&at, "at").unwrap());
    // Long enough for several more ticks: it still ran once, and the cancelled one never.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(starts(&store, id), 1);
    assert_eq!(starts(&store, cancelled_id), 0);
    assert_eq!(
        store.job(cancelled_id).unwrap().unwrap().state,
        JobState::Cancelled
    );
    for name in ["SEP001122334455", "SEP001122334456"] {
        let device = store.device(&dn(name)).unwrap().unwrap();
        assert_eq!(device.model, "Cisco 8865");
        assert_eq!(device.description, "");
    }
    let shown = s.json(&["job", "show", &id.to_string()]);
    assert_eq!(shown["state"], "succeeded");
    assert_eq!(shown["devices_changed"], 2);
    assert!(shown["node"].as_str().is_some());
    let list = s.json(&["job", "list", "--state", "cancelled"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], cancelled_id);
}

#[test]
fn a_restart_before_the_job_is_due_still_runs_it_once() {
    let s = Scratch::new("restart");
    add_lobby_devices(&s);
    let config = s.config("enabled = false\n");
    let job = s.json(&[
        "bulk",
        "update",
        "--all",
        "--operation",
        "delete",
        "--at",
        &in_secs(5),
    ]);
    let id = job["id"].as_i64().unwrap();
    let store = s.store();
    {
        let _first = Capfd::start(&s.data(), &config);
        std::thread::sleep(Duration::from_millis(500));
        // killed here, before the job is due
    }
    assert_eq!(store.job(id).unwrap().unwrap().state, JobState::Scheduled);
    let _second = Capfd::start(&s.data(), &config);
    let done = wait_done(&store, id);
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.result.unwrap().devices_changed, 2);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(starts(&store, id), 1);
    let device = store.device(&dn("SEP001122334455")).unwrap().unwrap();
    assert_eq!(device.operation, Operation::Delete);
}

#[test]
fn a_bad_file_is_refused_at_once_and_a_failing_job_records_why() {
    let s = Scratch::new("fail");
    s.ok(&["device", "add", "SEP0011223344AA"]);
    let bad = s.path("bad.csv");
    std::fs::write(
        &bad,
        "device_name,operation\nSEP001122334455,install\nSEP1,bogus\n",
    )
    .unwrap();
    let err = s.fails(&["bulk", "insert", bad.to_str().unwrap(), "--at", &in_secs(2)]);
    assert!(err.contains("bad.csv:3: "), "{err}");
    assert!(s.store().jobs(None).unwrap().is_empty());

    // A good file whose device someone adds before the job's time: the job fails and says why.
    let csv = s.path("phones.csv");
    std::fs::write(&csv, "device_name,model\nSEP001122334466,Cisco 7841\n").unwrap();
    let job = s.json(&["bulk", "insert", csv.to_str().unwrap(), "--at", &in_secs(2)]);
    assert_eq!(job["kind"], "bulk-insert");
    let id = job["id"].as_i64().unwrap();
    // The content is kept in the job: changing the file does not change it.
    std::fs::write(&csv, "device_name\nSEP0011223344BB\n").unwrap();
    s.ok(&["device", "add", "SEP001122334466"]);
    let store = s.store();
    let _capfd = Capfd::start(&s.data(), &s.config("enabled = false\n"));
    let done = wait_done(&store, id);
    assert_eq!(done.state, JobState::Failed, "{done:?}");
    let failure = done.result.unwrap().failure.unwrap();
    assert!(failure.contains("phones.csv:2"), "{failure}");
    assert!(failure.contains("SEP001122334466"), "{failure}");
    assert!(store.device(&dn("SEP0011223344BB")).unwrap().is_none());
    let shown = s.ok(&["job", "show", &id.to_string()]);
    assert!(shown.contains("failed: "), "{shown}");
}

/// Registers `name` and records an installed LSC for it expiring at `not_after`.
fn with_lsc(store: &SqliteStore, name: &str, serial: &[u8], not_after: SystemTime) {
    let now = SystemTime::now();
    store.add_device(&NewDevice::new(dn(name)), now).unwrap();
    store
        .schedule(
            &dn(name),
            Operation::InstallUpgrade(KeyPolicy::default()),
            None,
            now,
        )
        .unwrap();
    store.begin_attempt(&dn(name), now).unwrap();
    store
        .record_lsc_issued(
            &dn(name),
            &IssuedLsc {
                serial: serial.to_vec(),
                der: vec![0x30],
                not_before: now - Duration::from_secs(400 * 86_400),
                not_after,
            },
            now,
        )
        .unwrap();
    store.confirm_lsc_installed(&dn(name), serial, now).unwrap();
}

#[test]
fn the_monitor_job_mails_revokes_and_schedules_its_next_run() {
    let s = Scratch::new("monitor");
    s.ok(&["device", "add", "SEP00AA00000009"]);
    let store = s.store();
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    with_lsc(&store, "SEP00AA00000001", &[0x71, 1], now + 5 * day);
    with_lsc(&store, "SEP00AA00000002", &[0x71, 2], now - day);
    with_lsc(&store, "SEP00AA00000003", &[0x71, 3], now + 200 * day);

    let smtp = SmtpServer::start(s.path("maildir"));
    let config = s.config(&format!(
        "days = 30\nsmtp_server = \"127.0.0.1:{}\"\nmail_from = \"capf@example.test\"\n\
         mail_to = [\"pki-team@example.test\"]\n",
        smtp.port
    ));
    let _capfd = Capfd::start(&s.data(), &config);
    let started = Instant::now();
    let ran = loop {
        let done: Vec<Job> = store
            .jobs(None)
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == "monitor" && j.state.is_final())
            .collect();
        if !done.is_empty() {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no monitor run"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ran.len(), 1);
    assert_eq!(ran[0].state, JobState::Succeeded, "{:?}", ran[0]);
    assert_eq!(ran[0].result.as_ref().unwrap().devices_changed, 1);
    assert_eq!(
        store.lsc(&[0x71, 2]).unwrap().unwrap().state,
        LscState::Revoked
    );
    assert_eq!(
        store.lsc(&[0x71, 1]).unwrap().unwrap().state,
        LscState::Installed
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let mail = &messages[0];
    assert!(mail.contains("To: pki-team@example.test"), "{mail}");
    assert!(mail.contains("1 LSCs expire within 30 days"), "{mail}");
    assert!(
        mail.contains("SEP00AA00000001") && mail.contains("7101"),
        "{mail}"
    );
    assert!(
        mail.contains("SEP00AA00000002") && mail.contains("7102"),
        "{mail}"
    );
    assert!(!mail.contains("SEP00AA00000003"), "{mail}");
    // The next run is scheduled a day later (no LSC expires within a day now).
    let next: Vec<Job> = store.jobs(Some(JobState::Scheduled)).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].kind, "monitor");
    let delay = next[0]
        .due
        .duration_since(ran[0].finished_at.unwrap())
        .unwrap();
    assert_eq!(delay, day);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.messages().len(), 1, "one notification per run");
}

#[test]
fn a_switched_off_monitor_is_neither_scheduled_nor_run() {
    let s = Scratch::new("monitor-off");
    add_lobby_devices(&s);
    let store = s.store();
    let now = SystemTime::now();
    with_lsc(
        &store,
        "SEP00AA00000002",
        &[0x72, 2],
        now - Duration::from_secs(86_400),
    );
    // A monitor run left scheduled while the monitor was on, due now.
    let left = store
        .add_job(
            &capf_store::NewJob {
                kind: "monitor".to_owned(),
                description: "certificate monitor".to_owned(),
                payload: String::new(),
                due: now,
                singleton: true,
            },
            now,
        )
        .unwrap();
    // A bulk job due after capfd started: once it ran, capfd's start and its ticks are past.
    let marker = s.json(&[
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--model",
        "Cisco 8865",
        "--at",
        &in_secs(2),
    ]);
    let _capfd = Capfd::start(&s.data(), &s.config("enabled = false\n"));
    let done = wait_done(&store, marker["id"].as_i64().unwrap());
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    // The left-over run ended with nothing done, and no monitor job was scheduled again.
    let left = wait_done(&store, left.id);
    assert_eq!(left.state, JobState::Succeeded, "{left:?}");
    assert_eq!(left.result.unwrap().devices_changed, 0);
    let monitors: Vec<Job> = store
        .jobs(None)
        .unwrap()
        .into_iter()
        .filter(|j| j.kind == "monitor")
        .collect();
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    assert_eq!(
        store.lsc(&[0x72, 2]).unwrap().unwrap().state,
        LscState::Installed,
        "the switched-off monitor revoked nothing"
    );
}

#[test]
fn a_job_left_running_by_a_dead_node_or_a_restart_runs_again_once() {
    let s = Scratch::new("rerun");
    add_lobby_devices(&s);
    let store = s.store();
    let job = s.json(&[
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--model",
        "Cisco 8865",
        "--at",
        &in_secs(0),
    ]);
    let id = job["id"].as_i64().unwrap();
    // Another node claimed it with a 2 s lease and died before its work committed.
    let now = SystemTime::now();
    let dead = store
        .claim_due_job("dead-node", Duration::from_secs(2), now)
        .unwrap()
        .unwrap();
    assert_eq!(dead.id, id);
    // This node left a second job Running (a long lease) when it was killed.
    let second = s.json(&[
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--description",
        "after the restart",
        "--at",
        &in_secs(0),
    ]);
    let second_id = second["id"].as_i64().unwrap();
    let mine = store
        .claim_due_job("capf-a", Duration::from_secs(3600), SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(mine.id, second_id);
    assert!(
        store
            .device(&dn("SEP001122334455"))
            .unwrap()
            .unwrap()
            .model
            .is_empty()
    );

    let _capfd = Capfd::start_with(
        &s.data(),
        &s.config("enabled = false\n"),
        &["--node", "capf-a"],
    );
    for id in [id, second_id] {
        let done = wait_done(&store, id);
        assert_eq!(done.state, JobState::Succeeded, "{done:?}");
        assert_eq!(done.claims, 2);
        assert_eq!(done.node.as_deref(), Some("capf-a"));
        assert_eq!(done.result.unwrap().devices_changed, 2);
        assert_eq!(starts(&store, id), 2);
    }
    let device = store.device(&dn("SEP001122334456")).unwrap().unwrap();
    assert_eq!(device.model, "Cisco 8865");
    assert_eq!(device.description, "after the restart");
    // Each job's change applied once: one bulk-update audit entry per device per job.
    let changes = store
        .audit(Some(&dn("SEP001122334456")), 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action::DEVICE_BULK_UPDATED)
        .count();
    assert_eq!(changes, 2);
    // The dead node's run, were it to come back, records nothing.
    assert!(matches!(
        store.finish_job(&dead, &capf_store::JobResult::default(), SystemTime::now()),
        Err(capf_store::Error::JobWrongState { .. })
    ));
}
