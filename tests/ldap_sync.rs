//! `capfctl ldap sync` against a real directory: Debian's slapd started here on 127.0.0.1 with
//! its own configuration and mdb database (capf-test-support's `slapd`). The first sync applies
//! the template and the devices then enroll with capfd and capf-phone; a later sync adds only
//! the new users and reports the removed one; a bad entry is reported with its DN; a wrong bind
//! password and a directory that is down fail in one line with nothing applied; `ldaps` is
//! verified against a CA in CAPF-trust.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use capf_store::{AdminStore, DeviceName, Operation, OperationStatus, SessionStore, SqliteStore};
use capf_test_support::slapd::{Slapd, TestCa, person_ldif};
use serde_json::Value;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("capf-ldap-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
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

    /// A command that must fail with exit status 1 and one line on stderr; returns it.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("capfctl: "), "{err}");
        err
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data()).unwrap()
    }

    /// `template add phones` with an Install/Upgrade operation by null string.
    fn template(&self, operation: &str) {
        self.ok(&[
            "template",
            "add",
            "phones",
            "--operation",
            operation,
            "--auth",
            "null-string",
            "--pool",
            "Directory",
        ]);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sync_args<'a>(url: &'a str, password: &'a str) -> Vec<&'a str> {
    vec![
        "ldap",
        "sync",
        "--url",
        url,
        "--bind-dn",
        Slapd::ADMIN_DN,
        "--password-file",
        password,
        "--base",
        Slapd::PEOPLE,
        "--device-name",
        "CSF+uid",
        "--template",
        "phones",
    ]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

/// Runs capfd on the data directory at a free loopback port, then `capf-phone` for `device`.
fn enroll(data: &Path, device: &str) -> Output {
    const HOST: &str = "127.0.0.1";
    let port = std::net::TcpListener::bind((HOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("{HOST}:{port}");
    let mut capfd = Command::new(common::example("capfd"))
        .arg("--data")
        .arg(data)
        .args(["--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !(data.join("capf.pem").exists() && std::net::TcpStream::connect(&listen).is_ok()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "capfd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(common::example("capf-phone"))
        .args(["--server", &listen, "--device", device, "--trust"])
        .arg(data.join("capf.pem"))
        .output()
        .unwrap();
    let _ = capfd.kill();
    let _ = capfd.wait();
    out
}

#[test]
fn the_first_sync_applies_the_template_and_a_later_one_adds_only_new_users() {
    let s = Scratch::new("sync");
    let ldif = format!(
        "{}{}{}",
        person_ldif("alice"),
        person_ldif("bob"),
        // CSF + this uid is no device name (an apostrophe): reported, the rest proceed.
        person_ldif("o'brien"),
    );
    let dir = Slapd::start("sync", &ldif, None);
    let url = dir.url();
    let password = dir.password_file();
    let password = password.to_str().unwrap();
    s.template("install");

    // A dry run works it out and applies nothing.
    let mut args = sync_args(&url, password);
    args.push("--dry-run");
    let dry = s.json(&args);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["first_sync"], true);
    assert_eq!(strings(&dry["added"]), ["CSFalice", "CSFbob"]);
    assert!(s.store().list_devices().unwrap().is_empty());
    assert_eq!(
        s.store().directory_sync_state().unwrap().first_sync_at,
        None
    );

    let first = s.json(&sync_args(&url, password));
    assert_eq!(first["first_sync"], true);
    assert_eq!(first["entries"], 3);
    assert_eq!(first["template"], "phones");
    assert_eq!(strings(&first["added"]), ["CSFalice", "CSFbob"]);
    let bad = first["bad_entries"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{first}");
    assert_eq!(bad[0]["dn"], "uid=o'brien,ou=people,dc=example,dc=test");
    assert!(
        bad[0]["reason"].as_str().unwrap().contains("CSFo'brien"),
        "{bad:?}"
    );
    let store = s.store();
    let alice = store.device(&dn("CSFalice")).unwrap().unwrap();
    assert!(matches!(alice.operation, Operation::InstallUpgrade(_)));
    assert_eq!(alice.status, OperationStatus::Pending);
    assert_eq!(alice.device_pool, "Directory");
    let audit = store.audit(Some(&dn("CSFalice")), 5).unwrap();
    assert_eq!(audit[0].action, capf_store::action::DEVICE_DIRECTORY_ADDED);
    assert!(
        audit[0]
            .detail
            .contains("uid=alice,ou=people,dc=example,dc=test"),
        "{}",
        audit[0].detail
    );
    drop(store);

    // The devices the sync brought in enroll.
    let out = enroll(&s.data(), "CSFalice");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let alice = s.store().device(&dn("CSFalice")).unwrap().unwrap();
    assert_eq!(alice.status, OperationStatus::Success);

    // Carol joins, Bob leaves; the template changes, but only new devices get it.
    dir.add(&person_ldif("carol"));
    dir.delete("uid=bob,ou=people,dc=example,dc=test");
    s.template("delete");
    let second = s.json(&sync_args(&url, password));
    assert_eq!(second["first_sync"], false);
    assert_eq!(strings(&second["added"]), ["CSFcarol"]);
    assert_eq!(strings(&second["already_registered"]), ["CSFalice"]);
    let departed = second["departed"].as_array().unwrap();
    assert_eq!(departed.len(), 1, "{second}");
    assert_eq!(departed[0]["name"], "CSFbob");
    assert_eq!(departed[0]["dn"], "uid=bob,ou=people,dc=example,dc=test");
    let store = s.store();
    assert!(
        store.device(&dn("CSFbob")).unwrap().is_some(),
        "never deleted"
    );
    assert_eq!(
        store.device(&dn("CSFcarol")).unwrap().unwrap().operation,
        Operation::Delete
    );
    assert_eq!(
        store.device(&dn("CSFalice")).unwrap().unwrap().status,
        OperationStatus::Success
    );

    // The text output names the departed device and the bad entry.
    let text = s.ok(&sync_args(&url, password));
    assert!(text.contains("departed CSFbob"), "{text}");
    assert!(
        text.contains("bad entry uid=o'brien,ou=people,dc=example,dc=test: "),
        "{text}"
    );
}

#[test]
fn a_wrong_password_or_a_directory_down_fails_in_one_line_and_applies_nothing() {
    let s = Scratch::new("fail");
    let mut dir = Slapd::start("fail", &person_ldif("alice"), None);
    let url = dir.url();
    s.template("install");
    let wrong = s.0.join("wrong-password");
    std::fs::write(&wrong, "not the password\n").unwrap();
    let err = s.fails(&sync_args(&url, wrong.to_str().unwrap()));
    assert!(
        err.contains(&format!("binding to {url} as {}", Slapd::ADMIN_DN)),
        "{err}"
    );
    assert!(err.contains("rc=49"), "{err}");
    let store = s.store();
    assert!(store.list_devices().unwrap().is_empty());
    assert_eq!(store.directory_sync_state().unwrap().first_sync_at, None);

    let password = dir.password_file();
    dir.stop();
    let err = s.fails(&sync_args(&url, password.to_str().unwrap()));
    assert!(err.contains(&format!("connecting to {url}")), "{err}");
    assert!(store.list_devices().unwrap().is_empty());
    assert!(
        store
            .audit(None, 10)
            .unwrap()
            .iter()
            .all(|e| e.action != capf_store::action::DIRECTORY_SYNCED)
    );
}

#[test]
fn ldaps_is_verified_against_a_ca_in_capf_trust() {
    let s = Scratch::new("ldaps");
    let ca = TestCa::generate(&s.0.join("ca"));
    let dir = Slapd::start("ldaps", &person_ldif("alice"), Some(&ca));
    let url = dir.ldaps_url("localhost");
    let password = dir.password_file();
    let password = password.to_str().unwrap();
    s.template("install");
    // Without the CA in CAPF-trust (nor in the system's store) the directory is not trusted.
    let err = s.fails(&sync_args(&url, password));
    assert!(err.contains(&format!("connecting to {url}")), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(s.store().list_devices().unwrap().is_empty());

    let trust = s.data().join("trust");
    let out = Command::new(common::example("capfctl"))
        .args(["trust", "upload", "--purpose", "CAPF-trust", "--store"])
        .arg(&trust)
        .arg(&ca.ca_cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = s.json(&sync_args(&url, password));
    assert_eq!(strings(&report["added"]), ["CSFalice"]);
}
