//! `capfctl` administration as processes: bulk insert from CSV, update by query with a dry run,
//! authentication-string generation, reports, keep-alive, monitoring with a real local SMTP
//! server (aiosmtpd, started and stopped here on 127.0.0.1), the CRL checked by `openssl crl`,
//! export; and the CLI writing while another process's store writes too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::smtp::SmtpServer;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use capf_lsc::KeyPolicy;
use capf_store::{
    AdminStore, AuthMode, DeviceName, IssuedLsc, LscState, NewDevice, Operation, OperationStatus,
    SessionStore, SqliteStore,
};
use serde_json::Value;

/// A device name the test knows is valid.
fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn capfctl() -> PathBuf {
    common::example("capfctl")
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("capfctl-admin-{tag}-{}", std::process::id()));
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

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(capfctl());
        command.current_dir(&self.0).args(args);
        // The certificate verbs work on files, not on the store (`lsc revoke` does).
        if !matches!(args.first(), Some(&"capf-cert" | &"lsc")) || args.get(1) == Some(&"revoke") {
            command.arg("--data").arg(self.data());
        }
        command.output().unwrap()
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

    /// Runs a command that must fail with exit status 1 and one line on stderr; returns it.
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
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// Registers `name` and records an LSC for it (installed unless `install` is false).
fn with_lsc(
    store: &SqliteStore,
    name: &str,
    serial: &[u8],
    der: &[u8],
    not_after: SystemTime,
    install: bool,
) {
    let now = SystemTime::now();
    if store.device(&dn(name)).unwrap().is_none() {
        store.add_device(&NewDevice::new(dn(name)), now).unwrap();
    }
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
                der: der.to_vec(),
                not_before: now - days(400),
                not_after,
            },
            now,
        )
        .unwrap();
    if install {
        store.confirm_lsc_installed(&dn(name), serial, now).unwrap();
    }
}

const CSV: &str = "\
Device Name,Description,Device Pool,Model,Operation,Auth Mode,Auth String,Key Spec,Complete-By
SEP001122334455,lobby phone,Lobby,Cisco 8865,install,,123456,ec-preferred/3072/P-384,2099-12-31
SEP001122334466,,Lobby,Cisco 8865,delete,null-string,,,
SEP0011223344AA,,,,,,,,
CSFjsmith,jabber,Remote,Jabber,none,,,,
";

#[test]
fn bulk_insert_from_csv_with_a_template_and_line_numbered_errors() {
    let s = Scratch::new("insert");
    s.ok(&[
        "template",
        "add",
        "Lobby 8865",
        "--pool",
        "Lobby",
        "--model",
        "Cisco 8865",
        "--operation",
        "install",
        "--key-order",
        "ec-only",
        "--curve",
        "P-384",
        "--auth",
        "auth-string",
    ]);
    let templates = s.json(&["template", "list"]);
    assert_eq!(names(&templates), ["Lobby 8865"]);
    assert_eq!(templates[0]["operation"]["key_order"], "ec-only");

    let file = s.write("devices.csv", CSV);
    let out = s.ok(&[
        "bulk",
        "insert",
        file.to_str().unwrap(),
        "--template",
        "lobby 8865",
    ]);
    assert!(out.contains("added 4 devices"), "{out}");
    let list = s.json(&["device", "list"]);
    assert_eq!(
        names(&list),
        [
            "CSFjsmith",
            "SEP001122334455",
            "SEP001122334466",
            "SEP0011223344AA"
        ]
    );
    // Columns given win; empty ones take the template's values.
    let explicit = &list[1];
    assert_eq!(explicit["description"], "lobby phone");
    assert_eq!(explicit["operation"]["key_order"], "ec-preferred");
    assert_eq!(explicit["operation"]["rsa_bits"], 3072);
    assert_eq!(explicit["operation"]["curve"], "P-384");
    assert_eq!(explicit["auth_mode"], "auth-string");
    assert_eq!(explicit["has_auth_string"], true);
    assert_eq!(explicit["complete_by"], "2099-12-31T23:59:59Z");
    assert_eq!(list[2]["operation"]["type"], "delete");
    assert_eq!(list[2]["auth_mode"], "null-string");
    let from_template = &list[3];
    assert_eq!(from_template["device_pool"], "Lobby");
    assert_eq!(from_template["model"], "Cisco 8865");
    assert_eq!(from_template["operation"]["key_order"], "ec-only");
    assert_eq!(from_template["operation"]["curve"], "P-384");
    assert_eq!(from_template["auth_mode"], "auth-string");
    assert_eq!(from_template["status"], "pending");
    assert_eq!(list[0]["operation"]["type"], "none");
    assert_eq!(list[0]["device_pool"], "Remote");
    assert!(
        s.store()
            .check_auth_string(&dn("SEP001122334455"), "123456")
            .unwrap()
    );

    // A bad row anywhere: its file and line, and nothing from the file is applied.
    let bad_rows = [
        ("SEP00AA00000002,install,rsa-only/1000,,,", "RSA size"),
        (
            "SEP00AA00000002,delete,rsa-only/2048,,,",
            "only for operation install",
        ),
        ("SEP00AA00000002,reboot,,,,", "operation \"reboot\""),
        ("SEP00AA00000002,,,sometimes,,", "auth_mode \"sometimes\""),
        ("SEP00AA00000002,,,,12a4,", "4 to 10 ASCII digits"),
        (
            "SEP00AA00000002,,,null-string,123456,",
            "needs auth_mode auth-string",
        ),
        ("SEP00AA00000002,,,,,2001-01-01", "that date has passed"),
        ("SEP00AA00000002,,,,,2030-02-30", "no such date"),
        ("bad name!,,,,,", "cannot register the device"),
        ("SEP00AA00000001,,,,,", "already on line 2"),
        ("SEP00AA00000002,,", "3 fields, but the header line has 6"),
        ("SEP001122334455,,,,,", "already registered"),
    ];
    for (row, message) in bad_rows {
        let text = format!(
            "device_name,operation,key_spec,auth_mode,auth_string,complete_by\n\
             SEP00AA00000001,,,,,\n{row}\nSEP00AA00000003,,,,,\n"
        );
        let file = s.write("bad.csv", &text);
        let err = s.fails(&["bulk", "insert", file.to_str().unwrap()]);
        assert!(err.contains("bad.csv:3: "), "{row}: {err}");
        assert!(err.contains(message), "{row}: {err}");
        assert_eq!(
            s.json(&["device", "list"]).as_array().unwrap().len(),
            4,
            "{row}"
        );
    }
    // A spreadsheet's byte-order mark and CRLF line ends are fine.
    let file = s.write(
        "excel.csv",
        "\u{feff}Device Name,Operation\r\nSEP00AA000000EE,troubleshoot\r\n",
    );
    s.ok(&["bulk", "insert", file.to_str().unwrap()]);
    assert_eq!(
        s.store()
            .device(&dn("SEP00AA000000EE"))
            .unwrap()
            .unwrap()
            .operation,
        Operation::Troubleshoot
    );
    s.ok(&["device", "remove", "SEP00AA000000EE"]);
    let file = s.write("bad.csv", "device,operation\nSEP00AA00000001,none\n");
    let err = s.fails(&["bulk", "insert", file.to_str().unwrap()]);
    assert!(
        err.contains("bad.csv:1: unknown column \"device\""),
        "{err}"
    );
    let err = s.fails(&["bulk", "insert", "missing.csv"]);
    assert!(err.contains("missing.csv"), "{err}");
    let err = s.fails(&[
        "bulk",
        "insert",
        file.to_str().unwrap(),
        "--template",
        "nope",
    ]);
    assert!(err.contains("device template nope does not exist"), "{err}");

    s.ok(&["template", "remove", "Lobby 8865"]);
    assert!(s.json(&["template", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn update_by_query_dry_run_then_for_real() {
    let s = Scratch::new("update");
    let file = s.write("devices.csv", CSV);
    s.ok(&["bulk", "insert", file.to_str().unwrap()]);
    let store = s.store();
    let soon = SystemTime::now() + days(10);
    with_lsc(&store, "SEP001122334466", &[0x51, 1], &[0x30], soon, true);
    with_lsc(
        &store,
        "CSFjsmith",
        &[0x51, 2],
        &[0x30],
        SystemTime::now() + days(300),
        true,
    );

    let expiring = s.json(&["device", "list", "--lsc-expires-before", "2099-01-01"]);
    assert_eq!(names(&expiring), ["CSFjsmith", "SEP001122334466"]);
    let near = (SystemTime::now() + days(30))
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let near = der::DateTime::from_unix_duration(near).unwrap();
    let near = format!("{:04}-{:02}-{:02}", near.year(), near.month(), near.day());
    let args = [
        "bulk",
        "update",
        "--lsc-expires-before",
        &near,
        "--operation",
        "install",
        "--rsa",
        "4096",
        "--complete-by",
        "2099-06-30",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = s.json(&dry);
    assert_eq!(out["dry_run"], true);
    assert_eq!(out["changed"], 1);
    assert_eq!(out["devices"][0]["name"], "SEP001122334466");
    assert!(
        out["devices"][0]["change"]
            .as_str()
            .unwrap()
            .contains("RSA 4096"),
        "{out}"
    );
    let text = s.ok(&dry);
    assert!(text.contains("dry run: 1 devices would change"), "{text}");
    assert_eq!(
        store
            .device(&dn("SEP001122334466"))
            .unwrap()
            .unwrap()
            .status,
        OperationStatus::Success
    );
    let out = s.json(&args);
    assert_eq!(out["changed"], 1);
    let d = store.device(&dn("SEP001122334466")).unwrap().unwrap();
    assert_eq!(d.status, OperationStatus::Pending);
    assert!(d.operation.to_string().contains("RSA 4096"));

    // By pool and name pattern, descriptive fields only.
    let out = s.json(&[
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--name",
        "sep*55",
        "--model",
        "Cisco 8865NR",
    ]);
    assert_eq!(out["changed"], 1);
    assert_eq!(
        store.device(&dn("SEP001122334455")).unwrap().unwrap().model,
        "Cisco 8865NR"
    );
    assert_eq!(
        store.device(&dn("SEP001122334466")).unwrap().unwrap().model,
        "Cisco 8865"
    );
    let pending = s.json(&[
        "device",
        "list",
        "--status",
        "pending",
        "--of-model",
        "Cisco 8865",
    ]);
    assert_eq!(names(&pending), ["SEP001122334466"]);

    let err = s.fails(&["bulk", "update", "--model", "X"]);
    assert!(err.contains("--all"), "{err}");
    let err = s.fails(&["bulk", "update", "--all"]);
    assert!(err.contains("nothing to change"), "{err}");
    let out = s.json(&[
        "bulk",
        "update",
        "--all",
        "--description",
        "fleet",
        "--dry-run",
    ]);
    assert_eq!(out["changed"], 4);
    assert!(
        store
            .list_devices()
            .unwrap()
            .iter()
            .all(|d| d.description != "fleet")
    );

    // device update: one device's fields and string.
    let updated = s.json(&[
        "device",
        "update",
        "CSFjsmith",
        "--pool",
        "Home",
        "--auth-string",
        "98765",
    ]);
    assert_eq!(updated["device_pool"], "Home");
    assert_eq!(updated["has_auth_string"], true);
    let d = store.device(&dn("CSFjsmith")).unwrap().unwrap();
    assert_eq!(d.device_pool, "Home");
    assert!(store.check_auth_string(&dn("CSFjsmith"), "98765").unwrap());
    s.ok(&[
        "device",
        "update",
        "CSFjsmith",
        "--clear-auth-string",
        "--auth",
        "null-string",
    ]);
    let d = store.device(&dn("CSFjsmith")).unwrap().unwrap();
    assert!(!d.has_auth_string);
    assert_eq!(d.auth_mode, AuthMode::NullString);
    let err = s.fails(&["device", "update", "CSFjsmith"]);
    assert!(err.contains("nothing to change"), "{err}");
}

#[test]
fn generated_strings_are_digits_printed_once_in_a_private_csv_and_stored_as_hmac() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("strings");
    let file = s.write("devices.csv", CSV);
    s.ok(&["bulk", "insert", file.to_str().unwrap()]);

    let out = s.json(&[
        "auth-string",
        "generate",
        "--name",
        "SEP*",
        "--csv",
        "unique.csv",
    ]);
    let devices = out["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    let csv_text = std::fs::read_to_string(s.path("unique.csv")).unwrap();
    let mode = std::fs::metadata(s.path("unique.csv"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut lines = csv_text.lines();
    assert_eq!(lines.next(), Some("device_name,auth_string"));
    let store = s.store();
    let mut strings = Vec::new();
    for (line, d) in lines.zip(devices) {
        let name = d["name"].as_str().unwrap();
        let string = d["auth_string"].as_str().unwrap();
        assert_eq!(line, format!("{name},{string}"));
        assert_eq!(string.len(), 8);
        assert!(string.bytes().all(|b| b.is_ascii_digit()));
        assert!(store.check_auth_string(&dn(name), string).unwrap());
        let device = store.device(&dn(name)).unwrap().unwrap();
        assert_eq!(device.auth_mode, AuthMode::AuthenticationString);
        strings.push(string.to_owned());
    }
    // Unique per device (equal 8-digit strings would be a 1-in-10^8 coincidence).
    strings.sort();
    strings.dedup();
    assert_eq!(strings.len(), 3);
    // Only the keyed hash reaches the database file.
    let db = std::fs::read(s.data().join("capf.sqlite")).unwrap();
    let wal = std::fs::read(s.data().join("capf.sqlite-wal")).unwrap_or_default();
    for string in &strings {
        let needle = string.as_bytes();
        assert!(!db.windows(needle.len()).any(|w| w == needle));
        assert!(!wal.windows(needle.len()).any(|w| w == needle));
    }

    let text = s.ok(&[
        "auth-string",
        "generate",
        "--device",
        "csfjsmith",
        "--device",
        "SEP001122334455",
        "--same",
        "--length",
        "4",
        "--csv",
        "same.csv",
    ]);
    let rows: Vec<&str> = text.lines().take(2).collect();
    let string = rows[0].split_whitespace().nth(1).unwrap();
    assert_eq!(string.len(), 4);
    assert_eq!(rows[1].split_whitespace().nth(1), Some(string));
    assert!(store.check_auth_string(&dn("CSFjsmith"), string).unwrap());
    assert!(
        store
            .check_auth_string(&dn("SEP001122334455"), string)
            .unwrap()
    );

    let err = s.fails(&["auth-string", "generate", "--all", "--csv", "same.csv"]);
    assert!(err.contains("never overwritten"), "{err}");
    for bad in ["3", "11"] {
        let err = s.fails(&[
            "auth-string",
            "generate",
            "--all",
            "--length",
            bad,
            "--csv",
            "x.csv",
        ]);
        assert!(err.contains("4 to 10 digits"), "{err}");
    }
    let err = s.fails(&["auth-string", "generate", "--csv", "x.csv"]);
    assert!(err.contains("no devices selected"), "{err}");
    assert!(!s.path("x.csv").exists());
}

#[test]
fn reports_stale_lscs_csrs_status_and_keep_alive() {
    let s = Scratch::new("reports");
    let file = s.write("devices.csv", CSV);
    s.ok(&["bulk", "insert", file.to_str().unwrap()]);
    let store = s.store();
    let later = SystemTime::now() + days(100);
    // Two LSCs issued to one phone, neither confirmed: the first is stale.
    with_lsc(&store, "SEP0011223344AA", &[0x61, 1], &[0x30], later, false);
    store
        .end_attempt(
            &dn("SEP0011223344AA"),
            capf_store::AttemptEnd::Interrupted {
                reason: "hang-up".into(),
            },
            SystemTime::now(),
        )
        .unwrap();
    with_lsc(&store, "SEP0011223344AA", &[0x61, 2], &[0x30], later, false);
    store
        .end_attempt(
            &dn("SEP0011223344AA"),
            capf_store::AttemptEnd::Failed {
                reason: "key generation failed".into(),
            },
            SystemTime::now(),
        )
        .unwrap();
    store
        .record_ca_request(
            &dn("SEP001122334466"),
            &capf_store::NewCaRequest {
                mode: capf_store::CertificateIssuer::OfflineCa,
                csr: &[0x30, 0x00],
                public_key: &[0x30, 0x01],
                ca_request_id: None,
            },
            SystemTime::now(),
        )
        .unwrap();

    let stale = s.json(&["stale-lsc", "list"]);
    assert_eq!(stale.as_array().unwrap().len(), 1);
    assert_eq!(stale[0]["serial"], "6101");
    assert_eq!(stale[0]["device"], "SEP0011223344AA");
    let err = s.fails(&["stale-lsc", "delete"]);
    assert!(err.contains("--all"), "{err}");
    assert_eq!(s.json(&["stale-lsc", "delete", "--all"])["deleted"], 1);
    assert!(
        s.json(&["stale-lsc", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.lsc(&[0x61, 2]).unwrap().unwrap().state,
        LscState::Issued
    );

    let csrs = s.json(&["csr", "list"]);
    assert_eq!(csrs.as_array().unwrap().len(), 1);
    assert_eq!(csrs[0]["device"], "SEP001122334466");
    assert_eq!(csrs[0]["bytes"], 2);
    assert!(csrs[0]["received_at"].as_str().unwrap().ends_with('Z'));

    let status = s.json(&["status"]);
    assert_eq!(status["pending"], 2);
    assert_eq!(status["failed"], 1);
    assert_eq!(status["no_operation"], 1);
    assert_eq!(status["failed_devices"][0]["name"], "SEP0011223344AA");
    assert_eq!(
        status["failed_devices"][0]["reason"],
        "key generation failed"
    );
    let text = s.ok(&["status"]);
    assert!(text.contains("failed: SEP0011223344AA"), "{text}");

    assert_eq!(s.json(&["keep-alive", "show"])["keepalive_minutes"], 15);
    assert_eq!(
        s.json(&["keep-alive", "set", "42"])["keepalive_minutes"],
        42
    );
    assert_eq!(s.json(&["keep-alive", "show"])["keepalive_minutes"], 42);
    assert_eq!(store.settings().unwrap().keepalive.minutes(), 42);
    for bad in ["4", "61", "0", "-5", "ten", "15.5"] {
        let err = s.fails(&["keep-alive", "set", bad]);
        assert!(err.contains("5 to 60"), "{bad}: {err}");
    }
    assert_eq!(store.settings().unwrap().keepalive.minutes(), 42);

    // Every run-time limit and deadline (issue 12 item 2), by key.
    let shown = s.json(&["settings", "show"]);
    let keys: Vec<&str> = shown
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, capf_store::Settings::KEYS);
    let set = s.json(&["settings", "set", "max_sessions", "250"]);
    assert_eq!(
        (&set["key"], &set["value"]),
        (&"max_sessions".into(), &"250".into())
    );
    s.ok(&["settings", "set", "auth_response_timeout_seconds", "3"]);
    let settings = store.settings().unwrap();
    assert_eq!(settings.max_sessions, 250);
    assert_eq!(settings.auth_response_timeout.as_secs(), 3);
    assert_eq!(settings.keepalive.minutes(), 42);
    let text = s.ok(&["settings", "show"]);
    assert!(text.contains("max_sessions = 250"), "{text}");
    for (key, bad) in [
        ("max_session", "1"),
        ("max_sessions", "0"),
        ("max_sessions", "x"),
    ] {
        let err = s.fails(&["settings", "set", key, bad]);
        assert!(err.contains(key), "{key} {bad}: {err}");
    }
    assert_eq!(store.settings().unwrap().max_sessions, 250);
}

fn openssl(dir: &Path, args: &[&str]) -> Output {
    Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl")
}

#[test]
fn monitor_mails_expiring_lscs_revokes_expired_ones_and_crl_lists_them() {
    let s = Scratch::new("monitor");
    std::fs::create_dir_all(s.data()).unwrap();
    s.ok(&[
        "capf-cert",
        "generate",
        "--key-type",
        "p256",
        "--days",
        "30",
        "--cert-out",
        "data/capf.pem",
        "--key-out",
        "data/capf.key",
    ]);
    let store = s.store();
    let now = SystemTime::now();
    with_lsc(
        &store,
        "SEP00AA00000001",
        &[0x71, 1],
        &[0x30],
        now + days(5),
        true,
    );
    with_lsc(
        &store,
        "SEP00AA00000002",
        &[0x71, 2],
        &[0x30],
        now - days(1),
        true,
    );
    with_lsc(
        &store,
        "SEP00AA00000003",
        &[0x71, 3],
        &[0x30],
        now + days(200),
        true,
    );

    let smtp = SmtpServer::start(s.path("maildir"));
    let server = format!("127.0.0.1:{}", smtp.port);
    let out = s.json(&[
        "monitor",
        "--days",
        "30",
        "--smtp-server",
        &server,
        "--mail-from",
        "capf@example.test",
        "--mail-to",
        "pki-team@example.test",
    ]);
    assert_eq!(out["mailed"], true);
    let expiring: Vec<&str> = out["expiring"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["serial"].as_str().unwrap())
        .collect();
    assert_eq!(expiring, ["7101"]);
    assert_eq!(out["revoked"][0]["serial"], "7102");
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
    assert!(mail.contains("From: capf@example.test"), "{mail}");
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

    // A second run has nothing newly revoked but still reports the expiring LSC: one mail.
    let out = s.json(&[
        "monitor",
        "--days",
        "30",
        "--smtp-server",
        &server,
        "--mail-from",
        "capf@example.test",
        "--mail-to",
        "pki-team@example.test",
    ]);
    assert!(out["revoked"].as_array().unwrap().is_empty());
    assert_eq!(smtp.messages().len(), 2);
    // Nothing to report, nothing mailed.
    let out = s.json(&[
        "monitor",
        "--days",
        "1",
        "--smtp-server",
        &server,
        "--mail-from",
        "capf@example.test",
        "--mail-to",
        "pki-team@example.test",
    ]);
    assert_eq!(out["mailed"], false);
    assert_eq!(smtp.messages().len(), 2);
    drop(smtp);

    let err = s.fails(&[
        "monitor",
        "--smtp-server",
        &server,
        "--mail-from",
        "capf@example.test",
        "--mail-to",
        "pki-team@example.test",
        "--days",
        "30",
    ]);
    assert!(err.contains("sending the notification"), "{err}");

    let crl = s.json(&["crl", "--out", "revoked.crl"]);
    assert_eq!(crl["revoked"], serde_json::json!(["7102"]));
    assert!(
        crl["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN X509 CRL-----")
    );
    let out = openssl(
        &s.0,
        &[
            "crl",
            "-in",
            "revoked.crl",
            "-CAfile",
            "data/capf.pem",
            "-noout",
            "-text",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("verify OK") || text.contains("verify OK"),
        "{text}{err}"
    );
    assert!(text.contains("Serial Number: 7102"), "{text}");
    assert!(!text.contains("Serial Number: 7101"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    // Against another CA's certificate, the signature does not verify.
    s.ok(&[
        "capf-cert",
        "generate",
        "--key-type",
        "p256",
        "--cert-out",
        "other.pem",
        "--key-out",
        "other.key",
    ]);
    let out = openssl(
        &s.0,
        &[
            "crl",
            "-in",
            "revoked.crl",
            "-CAfile",
            "other.pem",
            "-noout",
        ],
    );
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stderr).contains("verify failure")
    );
    let err = s.fails(&["crl", "--out", "revoked.crl"]);
    assert!(err.contains("never overwritten"), "{err}");
}

#[test]
fn lsc_revoke_revokes_a_valid_lsc_once_and_the_crl_lists_it() {
    let s = Scratch::new("lsc-revoke");
    std::fs::create_dir_all(s.data()).unwrap();
    s.ok(&[
        "capf-cert",
        "generate",
        "--key-type",
        "p256",
        "--days",
        "30",
        "--cert-out",
        "data/capf.pem",
        "--key-out",
        "data/capf.key",
    ]);
    let store = s.store();
    let now = SystemTime::now();
    with_lsc(
        &store,
        "SEP00AA00000011",
        &[0x72, 1],
        &[0x30],
        now + days(30),
        true,
    );
    with_lsc(
        &store,
        "SEP00AA00000012",
        &[0x72, 2],
        &[0x30],
        now + days(30),
        true,
    );
    let crl = s.json(&["crl"]);
    assert_eq!(crl["revoked"], serde_json::json!([]));

    let revoked = s.json(&["lsc", "revoke", "72:01"]);
    assert_eq!(revoked["serial"], "7201");
    assert_eq!(revoked["device"], "SEP00AA00000011");
    assert_eq!(revoked["state"], "revoked");
    let text = s.ok(&["lsc", "revoke", "7202"]);
    assert!(
        text.starts_with("revoked LSC 7202 of SEP00AA00000012"),
        "{text}"
    );
    assert_eq!(
        store.lsc(&[0x72, 1]).unwrap().unwrap().state,
        LscState::Revoked
    );
    let crl = s.json(&["crl"]);
    assert_eq!(crl["revoked"], serde_json::json!(["7201", "7202"]));

    let err = s.fails(&["lsc", "revoke", "7201"]);
    assert!(err.contains("revoked"), "{err}");
    let err = s.fails(&["lsc", "revoke", "7299"]);
    assert!(err.contains("no LSC with serial 7299"), "{err}");
    let err = s.fails(&["lsc", "revoke", "zz"]);
    assert!(err.contains("hex"), "{err}");
}

#[test]
fn export_an_lsc_or_a_query_as_pem_or_csv() {
    let s = Scratch::new("export");
    std::fs::create_dir_all(s.data()).unwrap();
    s.ok(&[
        "capf-cert",
        "generate",
        "--key-type",
        "p256",
        "--cert-out",
        "capf.pem",
        "--key-out",
        "capf.key",
    ]);
    let key = openssl(
        &s.0,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "phone.key",
        ],
    );
    assert!(key.status.success());
    assert!(
        openssl(
            &s.0,
            &["pkey", "-in", "phone.key", "-pubout", "-out", "phone.pub"]
        )
        .status
        .success()
    );
    let pem = s.ok(&[
        "lsc",
        "issue",
        "--issuer",
        "capf.pem",
        "--issuer-key",
        "capf.key",
        "--public-key",
        "phone.pub",
        "--device",
        "SEP00BB00000001",
        "--days",
        "365",
    ]);
    let cert = capf_lsc::certificate_from_pem_or_der(pem.as_bytes()).unwrap();
    let der = capf_lsc::certificate_to_der(&cert).unwrap();
    let serial = cert.tbs_certificate().serial_number().as_bytes().to_vec();
    let store = s.store();
    with_lsc(
        &store,
        "SEP00BB00000001",
        &serial,
        &der,
        SystemTime::now() + days(365),
        true,
    );
    with_lsc(
        &store,
        "SEP00BB00000002",
        &[0x72, 2],
        &[0x30, 0x00],
        SystemTime::now() + days(9),
        true,
    );
    let hex_serial = hex::encode(&serial);

    let out = s.ok(&["export", "--serial", &hex_serial]);
    assert_eq!(out.trim(), pem.trim());
    s.ok(&["export", "--serial", &hex_serial, "--out", "one.pem"]);
    let text = openssl(&s.0, &["x509", "-in", "one.pem", "-noout", "-subject"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("SEP00BB00000001"));

    let all = s.ok(&["export", "--all"]);
    assert_eq!(all.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    let csv = s.ok(&["export", "--name", "*02", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "device_name,serial,state,not_before,not_after,issued_at"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with("SEP00BB00000002,7202,installed,"),
        "{csv}"
    );

    let json: Value =
        serde_json::from_str(&s.ok(&["export", "--all", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["serial"], hex_serial.as_str());
    assert_eq!(json[0]["pem"].as_str().unwrap().trim(), pem.trim());
    let err = s.fails(&["export"]);
    assert!(err.contains("nothing selected"), "{err}");
    let err = s.fails(&["export", "--serial", "zz"]);
    assert!(err.contains("hex"), "{err}");
    let err = s.fails(&["export", "--serial", "0102"]);
    assert!(err.contains("no LSC with serial 0102"), "{err}");
}

#[test]
fn the_cli_and_another_writer_share_the_store_without_lock_errors_or_lost_updates() {
    let s = Scratch::new("shared");
    let store = s.store();
    store
        .add_device(&NewDevice::new(dn("SEP00CC00000000")), SystemTime::now())
        .unwrap();
    let mut csv = String::from("device_name,device_pool,operation\n");
    for i in 1..=3000 {
        csv.push_str(&format!("SEP00CC{i:08},Pool{},install\n", i % 3));
    }
    let file = s.write("many.csv", &csv);
    const WRITES: u32 = 400;
    let writer = std::thread::spawn(move || {
        // Another process's handle (the server's, in production), writing all along.
        for _ in 0..WRITES {
            store
                .record_auth_failure(&dn("SEP00CC00000000"), SystemTime::now())
                .unwrap();
        }
        store
    });
    s.ok(&["bulk", "insert", file.to_str().unwrap()]);
    s.ok(&[
        "bulk",
        "update",
        "--in-pool",
        "Pool1",
        "--operation",
        "delete",
    ]);
    s.ok(&["keep-alive", "set", "20"]);
    let store = writer.join().unwrap();
    assert_eq!(
        store
            .device(&dn("SEP00CC00000000"))
            .unwrap()
            .unwrap()
            .auth_failures,
        WRITES
    );
    assert_eq!(store.list_devices().unwrap().len(), 3001);
    let deleted = store
        .list_devices()
        .unwrap()
        .into_iter()
        .filter(|d| d.operation == Operation::Delete)
        .count();
    assert_eq!(deleted, 1000);
    assert_eq!(store.settings().unwrap().keepalive.minutes(), 20);
}

fn example(name: &str) -> PathBuf {
    capfctl().with_file_name(name)
}

/// What the kernel reports (in /proc/net/tcp, clock ticks) as the keepalive timer of the
/// server's side of a new connection to `port`: the TCP keepalive capfd set from its settings.
fn server_keepalive_ticks(port: u16) -> u64 {
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let local = format!(":{port:04X}");
    let remote = format!(":{client_port:04X}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st tx:rx tr:tm->when
            if f.len() > 5
                && f[1].ends_with(&local)
                && f[2].ends_with(&remote)
                && f[3] == "01"
                && let Some(("02", when)) = f[5].split_once(':')
            {
                return u64::from_str_radix(when, 16).unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no keepalive timer on capfd's side of {client_port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_running_server_picks_up_a_new_keep_alive_without_a_restart() {
    let s = Scratch::new("keepalive");
    std::fs::create_dir_all(s.data()).unwrap();
    s.ok(&[
        "capf-cert",
        "generate",
        "--key-type",
        "p256",
        "--cert-out",
        "data/capf.pem",
        "--key-out",
        "data/capf.key",
    ]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut capfd = Command::new(example("capfd"))
        .arg("--data")
        .arg(s.data())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut capfd);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "capfd did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let default = server_keepalive_ticks(port);
    assert_eq!(s.json(&["keep-alive", "show"])["keepalive_minutes"], 15);

    s.ok(&["keep-alive", "set", "42"]);
    // The server re-reads its settings every 2 s; new connections then get 42 minutes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ratio = loop {
        let ratio = server_keepalive_ticks(port) as f64 / default as f64;
        if ratio > 2.0 || Instant::now() > deadline {
            break ratio;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!((2.75..2.85).contains(&ratio), "42/15 expected, got {ratio}");
}

#[test]
fn capf_cert_upload_replaces_the_data_directorys_pair_on_sqlite() {
    let s = Scratch::new("capf-upload");
    s.ok(&["device", "add", "SEP001122334455"]);
    s.ok(&[
        "capf-cert",
        "generate",
        "--key-type",
        "p256",
        "--cert-out",
        "new.pem",
        "--key-out",
        "new.key",
    ]);
    let data = s.data();
    let data = data.to_str().unwrap();
    let out = s.ok(&[
        "capf-cert",
        "upload",
        "new.pem",
        "--key",
        "new.key",
        "--data",
        data,
    ]);
    assert!(out.contains("capfd reloads it"), "{out}");
    assert_eq!(
        std::fs::read(s.data().join("capf.pem")).unwrap(),
        std::fs::read(s.path("new.pem")).unwrap()
    );
    assert_eq!(
        std::fs::read(s.data().join("capf.key")).unwrap(),
        std::fs::read(s.path("new.key")).unwrap()
    );
    assert_eq!(
        s.store().audit(None, 1).unwrap()[0].action,
        capf_store::action::CAPF_CERTIFICATE_REPLACED
    );
    // A file that cannot be read is one line and exit 1.
    let err = s.fails(&["capf-cert", "upload", "missing.pem", "--data", data]);
    assert!(err.contains("missing.pem"), "{err}");
}
