//! `capfctl ldap sync` against a real directory: Debian's slapd started here on 127.0.0.1 with
//! its own configuration and mdb database (capf-test-support's `slapd`). The first sync applies
//! the template and the devices then enroll with capfd and capf-phone; a later sync adds only
//! the new users and reports the removed one; a bad entry is reported with its DN; a wrong bind
//! password and a directory that is down fail in one line with nothing applied; `ldaps` is
//! verified against a CA in CAPF-trust or in the system's store (`SSL_CERT_FILE`, which
//! rustls-native-certs reads); the configuration is stored (`ldap config set|show`, the password
//! never shown) and a sync runs from it.
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
        self.command(args).output().unwrap()
    }

    /// capfctl with `args` and the data directory, the system trust store's variables unset.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(common::example("capfctl"));
        cmd.current_dir(&self.0)
            .args(args)
            .arg("--data")
            .arg(self.data())
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        cmd
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

#[test]
fn ldaps_is_verified_against_a_ca_in_the_system_store() {
    let s = Scratch::new("ldaps-system");
    let ca = TestCa::generate(&s.0.join("ca"));
    let dir = Slapd::start("ldaps-system", &person_ldif("alice"), Some(&ca));
    let url = dir.ldaps_url("localhost");
    let password = dir.password_file();
    let password = password.to_str().unwrap();
    s.template("install");
    assert!(!s.data().join("trust").exists());
    // The system store without the CA: not trusted, one line, nothing applied.
    let err = s.fails(&sync_args(&url, password));
    assert!(err.contains(&format!("connecting to {url}")), "{err}");
    assert!(s.store().list_devices().unwrap().is_empty());
    // The system store is the CA's file (SSL_CERT_FILE), nothing in CAPF-trust: trusted.
    let out = s
        .command(&sync_args(&url, password))
        .env("SSL_CERT_FILE", &ca.ca_cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("added CSFalice"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!s.data().join("trust").exists());
    assert_eq!(s.store().list_devices().unwrap().len(), 1);
}

#[test]
fn the_configuration_is_stored_without_showing_its_password_and_a_sync_runs_from_it() {
    let s = Scratch::new("config");
    let dir = Slapd::start(
        "config",
        &format!("{}{}", person_ldif("alice"), person_ldif("bob")),
        None,
    );
    let url = dir.url();
    let password = dir.password_file();
    s.template("install");
    // Nothing stored: show and a sync without flags say so in one line.
    let err = s.fails(&["ldap", "config", "show"]);
    assert!(err.contains("ldap config set"), "{err}");
    let err = s.fails(&["ldap", "sync"]);
    assert!(
        err.contains("is needed: no directory configuration is stored"),
        "{err}"
    );
    // A template that does not exist is refused.
    let mut set = sync_args(&url, password.to_str().unwrap());
    set[1] = "set";
    set.insert(1, "config");
    let unknown: Vec<&str> = set
        .iter()
        .map(|a| if *a == "phones" { "nosuch" } else { a })
        .collect();
    s.fails(&unknown);
    assert!(s.store().directory_config().unwrap().is_none());

    let text = s.ok(&set);
    assert!(!text.contains(Slapd::PASSWORD), "{text}");
    assert!(text.contains("password     set"), "{text}");
    let shown = s.json(&["ldap", "config", "show"]);
    assert!(!shown.to_string().contains(Slapd::PASSWORD), "{shown}");
    assert_eq!(shown["url"], url.as_str());
    assert_eq!(shown["bind_dn"], Slapd::ADMIN_DN);
    assert_eq!(shown["base"], Slapd::PEOPLE);
    assert_eq!(shown["device_name"], "CSF+uid");
    assert_eq!(shown["template"], "phones");
    assert_eq!(shown["password_set"], true);
    let text = s.ok(&["ldap", "config", "show"]);
    assert!(!text.contains(Slapd::PASSWORD), "{text}");
    // The password is sealed in the store, not kept as text.
    for file in ["capf.sqlite", "capf.sqlite-wal"] {
        let db = std::fs::read(s.data().join(file)).unwrap_or_default();
        assert!(
            !db.windows(Slapd::PASSWORD.len())
                .any(|w| w == Slapd::PASSWORD.as_bytes()),
            "{file}"
        );
    }
    // The password file can go: the stored configuration carries the password.
    std::fs::remove_file(&password).unwrap();

    // A flag overrides the stored value for one run: a filter that finds only bob.
    let dry = s.json(&["ldap", "sync", "--dry-run", "--filter", "(uid=bob)"]);
    assert_eq!(strings(&dry["added"]), ["CSFbob"]);
    assert!(s.store().list_devices().unwrap().is_empty());
    let report = s.json(&["ldap", "sync"]);
    assert_eq!(report["first_sync"], true);
    assert_eq!(strings(&report["added"]), ["CSFalice", "CSFbob"]);
    // `config set` with one flag keeps the other stored fields.
    s.ok(&["ldap", "config", "set", "--filter", "(uid=alice)"]);
    let shown = s.json(&["ldap", "config", "show"]);
    assert_eq!(shown["filter"], "(uid=alice)");
    assert_eq!(shown["url"], url.as_str());
    let report = s.json(&["ldap", "sync"]);
    assert_eq!(strings(&report["already_registered"]), ["CSFalice"]);
}
