//! capfctl against a PostgreSQL store (issue 16: "every capfctl verb works against either
//! store"): the key flows with `--store postgres://...`, the state read back through `PgStore`
//! with the data directory's key file: devices added, scheduled and shown; a bulk insert and an
//! update by query (dry run and real); settings and the keepalive; generated authentication
//! strings that the store checks; the status report; a Run Later job listed and cancelled; the
//! password never on the command line and a missing key file refused; a role with a password
//! reached with `--store-password-file` and `PGPASSWORD`, the password in no output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use capf_store::{AdminStore, DeviceName, JobState, OperationStatus, PgStore, SessionStore};
use capf_test_support::postgres::{Database, cluster};
use serde_json::Value;

struct Scratch {
    dir: PathBuf,
    db: Database,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("capfctl-pg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch {
            dir,
            db: cluster().database(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(common::example("capfctl"))
            .current_dir(&self.dir)
            .args(args)
            .arg("--data")
            .arg(self.data())
            .args(["--store", &self.db.url])
            .env_remove("PGPASSWORD")
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

    /// The store as a node sees it, with the data directory's key file.
    fn store(&self) -> PgStore {
        let key: [u8; 32] = std::fs::read(self.data().join("auth-string.key"))
            .unwrap()
            .try_into()
            .unwrap();
        PgStore::connect(self.db.url.parse().unwrap(), key).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

const CSV: &str = "\
Device Name,Description,Device Pool,Model,Operation,Auth Mode,Auth String,Key Spec,Complete-By
SEP001122334455,lobby phone,Lobby,Cisco 8865,install,,123456,ec-preferred/3072/P-384,2099-12-31
SEP001122334466,,Lobby,Cisco 8865,delete,null-string,,,
SEP0011223344AA,,,,,,,,
CSFjsmith,jabber,Remote,Jabber,none,,,,
";

#[test]
fn the_key_capfctl_flows_work_against_postgresql() {
    let s = Scratch::new("flows");
    // One device by hand, then scheduled and shown.
    let added = s.json(&["device", "add", "CSFjane", "--pool", "Home"]);
    assert_eq!(added["status"], "none");
    let scheduled = s.json(&[
        "device",
        "schedule",
        "CSFjane",
        "--operation",
        "install",
        "--rsa",
        "3072",
    ]);
    assert_eq!(scheduled["status"], "pending");
    let shown = s.json(&["device", "show", "CSFjane"]);
    assert_eq!(shown["operation"]["rsa_bits"], 3072);
    assert_eq!(shown["audit"][0]["action"], "operation scheduled");
    let store = s.store();
    let jane = store.device(&dn("CSFjane")).unwrap().unwrap();
    assert_eq!(jane.status, OperationStatus::Pending);
    assert_eq!(jane.device_pool, "Home");

    // A bulk insert (one transaction), then an update by query: dry run, then for real.
    std::fs::write(s.dir.join("devices.csv"), CSV).unwrap();
    let inserted = s.json(&["bulk", "insert", "devices.csv"]);
    assert_eq!(inserted["added"], 4, "{inserted}");
    let err = s.fails(&["bulk", "insert", "devices.csv"]);
    assert!(err.contains("devices.csv:2"), "{err}");
    assert_eq!(store.list_devices().unwrap().len(), 5);
    let args = [
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--model",
        "Cisco 8845",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = s.json(&dry);
    assert_eq!(
        (&out["dry_run"], &out["changed"]),
        (&true.into(), &2.into())
    );
    assert_eq!(
        store.device(&dn("SEP001122334455")).unwrap().unwrap().model,
        "Cisco 8865"
    );
    assert_eq!(s.json(&args)["changed"], 2);
    assert_eq!(
        store.device(&dn("SEP001122334466")).unwrap().unwrap().model,
        "Cisco 8845"
    );
    let listed = s.json(&["device", "list", "--in-pool", "Lobby"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Settings and the keepalive are the cluster's: what capfctl sets, every node reads.
    assert_eq!(
        s.json(&["keep-alive", "set", "42"])["keepalive_minutes"],
        42
    );
    s.ok(&["settings", "set", "max_sessions", "250"]);
    let settings = store.settings().unwrap();
    assert_eq!(settings.keepalive.minutes(), 42);
    assert_eq!(settings.max_sessions, 250);
    let shown = s.json(&["settings", "show"]);
    assert_eq!(
        shown.as_array().unwrap().len(),
        capf_store::Settings::KEYS.len()
    );

    // Generated authentication strings: printed once, stored as HMACs the store checks.
    let out = s.json(&[
        "auth-string",
        "generate",
        "--name",
        "SEP*",
        "--csv",
        "strings.csv",
    ]);
    let devices = out["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    for d in devices {
        let name = d["name"].as_str().unwrap();
        let string = d["auth_string"].as_str().unwrap();
        assert!(store.check_auth_string(&dn(name), string).unwrap());
    }

    // The status report.
    let status = s.json(&["status"]);
    assert_eq!(status["pending"], 3, "{status}");
    assert_eq!(status["no_operation"], 2, "{status}");

    // A Run Later job: stored, listed, cancelled.
    let job = s.json(&[
        "bulk",
        "update",
        "--all",
        "--description",
        "later",
        "--at",
        "2099-01-01T00:00:00Z",
    ]);
    let id = job["id"].as_i64().unwrap();
    let list = s.json(&["job", "list"]);
    assert_eq!(list[0]["id"], id);
    s.ok(&["job", "cancel", &id.to_string()]);
    assert_eq!(store.job(id).unwrap().unwrap().state, JobState::Cancelled);

    // Removal, and the audit of it.
    s.ok(&["device", "remove", "CSFjane"]);
    assert!(store.device(&dn("CSFjane")).unwrap().is_none());
}

#[test]
fn a_data_directory_without_the_key_file_is_refused_and_the_password_comes_from_a_file() {
    let s = Scratch::new("key");
    // Reading an existing store needs the cluster's key file: none is made by a typo.
    let err = s.fails(&["device", "list"]);
    assert!(err.contains("authentication-string key file"), "{err}");
    assert!(!s.data().exists());
    // The password from a file (trust authentication ignores it; the file must be readable).
    let pw = s.dir.join("pw");
    std::fs::write(&pw, "not-needed\n").unwrap();
    s.ok(&["device", "add", "CSFjane"]);
    let out = s.run(&[
        "device",
        "list",
        "--store-password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A password in the URL is refused without being shown.
    let out = Command::new(common::example("capfctl"))
        .args(["device", "list", "--store"])
        .arg(format!("postgres://capf:hunter2@127.0.0.1:{}/x", s.db.port))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("PGPASSWORD"), "{err}");
}

/// The PostgreSQL password, given to capfctl one way.
#[derive(Clone, Copy, Debug)]
enum Password<'a> {
    File(&'a std::path::Path),
    Env(&'a str),
}

/// capfctl `args` on the password database `url` with data directory `data`, the password
/// given as `password`.
fn capfctl_with(
    url: &str,
    data: &std::path::Path,
    password: Password<'_>,
    args: &[&str],
) -> Output {
    let mut command = Command::new(common::example("capfctl"));
    command
        .args(args)
        .arg("--data")
        .arg(data)
        .args(["--store", url])
        .env_remove("PGPASSWORD");
    match password {
        Password::File(path) => {
            command.arg("--store-password-file").arg(path);
        }
        Password::Env(password) => {
            command.env("PGPASSWORD", password);
        }
    }
    command.output().unwrap()
}

/// A role with a password (scram-sha-256): capfctl reaches it with `--store-password-file` and
/// with `PGPASSWORD`, and the password is in no output, `--json` or not; a wrong one is one line
/// and exit 1 without it.
#[test]
fn capfctl_reaches_a_password_role_and_never_shows_the_password() {
    use capf_test_support::postgres::PASSWORD;
    let s = Scratch::new("password");
    let db = cluster().password_database();
    let file = s.dir.join("pg-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let shows_no_password = |out: &Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(PASSWORD), "{text}");
        text
    };
    let by_file = Password::File(&file);
    let by_env = Password::Env(PASSWORD);
    for (password, name) in [(by_file, "CSFfile"), (by_env, "CSFenv")] {
        for args in [
            &["device", "add", name, "--json"][..],
            &["device", "list", "--json"],
            &["device", "show", name],
            &["settings", "show", "--json"],
            &["status", "--json"],
        ] {
            let out = capfctl_with(&db.url, &s.data(), password, args);
            let text = shows_no_password(&out);
            assert!(out.status.success(), "{password:?} {args:?}: {text}");
        }
    }
    let out = capfctl_with(&db.url, &s.data(), by_env, &["device", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CSFenv", "CSFfile"], "{listed}");

    // A wrong password, either way: one line, exit 1, neither password in it.
    let wrong = format!("{PASSWORD}-but-wrong");
    let wrong_file = s.dir.join("wrong-password");
    std::fs::write(&wrong_file, format!("{wrong}\n")).unwrap();
    for password in [Password::File(&wrong_file), Password::Env(&wrong)] {
        let out = capfctl_with(&db.url, &s.data(), password, &["device", "list", "--json"]);
        let text = shows_no_password(&out);
        assert_eq!(out.status.code(), Some(1), "{password:?}: {text}");
        assert!(out.stdout.is_empty(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("password authentication failed"), "{err}");
    }
    // No password at all: refused as well.
    let out = Command::new(common::example("capfctl"))
        .args(["device", "list", "--store", &db.url, "--data"])
        .arg(s.data())
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
