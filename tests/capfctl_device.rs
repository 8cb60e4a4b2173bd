//! `capfctl device ...` as processes: the compiled example binary (built by `cargo test` with
//! the other examples) is run against a store in a scratch data directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn capfctl() -> PathBuf {
    common::example("capfctl")
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capfctl-device-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(capfctl())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with exit status 1 and one line on stderr; returns it.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("capfctl: "), "{err}");
    err
}

/// `device list --json` (in the default data directory, ./capf-data).
fn list(dir: &Path) -> Vec<Value> {
    let text = ok(dir, &["device", "list", "--json"]);
    match serde_json::from_str(&text).unwrap() {
        Value::Array(items) => items,
        other => panic!("not an array: {other}"),
    }
}

fn names(devices: &[Value]) -> Vec<&str> {
    devices
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect()
}

#[test]
fn add_list_show_schedule_remove() {
    let dir = scratch("flow");
    ok(
        &dir,
        &[
            "device",
            "add",
            "SEP001122334455",
            "--description",
            "lobby phone",
            "--model",
            "Cisco 8865",
            "--operation",
            "install",
            "--key-order",
            "ec-preferred",
            "--curve",
            "P-384",
            "--auth-string",
            "123456",
            "--complete-by",
            "2099-12-31",
        ],
    );
    assert!(dir.join("capf-data/capf.sqlite").is_file());
    ok(&dir, &["device", "add", "CSFjsmith", "--pool", "Default"]);
    ok(
        &dir,
        &[
            "device",
            "add",
            "SEP00AABBCCDDEE",
            "--auth",
            "certificate-mic-first",
        ],
    );
    let by_certificate = list(&dir);
    assert_eq!(by_certificate[2]["auth_mode"], "certificate-mic-first");
    ok(&dir, &["device", "remove", "SEP00AABBCCDDEE"]);

    let devices = list(&dir);
    assert_eq!(names(&devices), ["CSFjsmith", "SEP001122334455"]);
    let sep = &devices[1];
    assert_eq!(sep["operation"]["type"], "install");
    assert_eq!(sep["operation"]["key_order"], "ec-preferred");
    assert_eq!(sep["operation"]["rsa_bits"], 2048);
    assert_eq!(sep["operation"]["curve"], "P-384");
    assert_eq!(sep["status"], "pending");
    assert_eq!(sep["auth_mode"], "auth-string");
    assert_eq!(sep["has_auth_string"], true);
    assert_eq!(sep["attempts"], 0);
    assert_eq!(sep["complete_by"], "2099-12-31T23:59:59Z");
    assert_eq!(devices[0]["operation"]["type"], "none");
    assert_eq!(devices[0]["status"], "none");
    assert_eq!(devices[0]["device_pool"], "Default");

    let text = ok(&dir, &["device", "list"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("SEP001122334455")
            && text.contains("Install/Upgrade (EC Preferred, RSA Backup, RSA 2048, P-384)")
            && text.contains("Pending"),
        "{text}"
    );

    // Names are looked up ignoring case.
    let show = ok(&dir, &["device", "show", "sep001122334455"]);
    assert!(
        show.contains(
            "operation:                Install/Upgrade (EC Preferred, RSA Backup, RSA 2048, P-384)"
        ),
        "{show}"
    );
    assert!(
        show.contains("lobby phone") && show.contains("device added"),
        "{show}"
    );
    assert!(!show.contains("123456"), "{show}");
    let json: Value =
        serde_json::from_str(&ok(&dir, &["device", "show", "CSFjsmith", "--json"])).unwrap();
    assert_eq!(json["operation"]["type"], "none");
    assert_eq!(json["lscs"], Value::Array(Vec::new()));
    assert_eq!(json["audit"][0]["action"], "device added");

    ok(
        &dir,
        &[
            "device",
            "schedule",
            "CSFjsmith",
            "--operation",
            "install",
            "--rsa",
            "3072",
        ],
    );
    ok(
        &dir,
        &[
            "device",
            "schedule",
            "SEP001122334455",
            "--operation",
            "delete",
        ],
    );
    let devices = list(&dir);
    assert_eq!(devices[0]["operation"]["type"], "install");
    assert_eq!(devices[0]["operation"]["key_order"], "rsa-only");
    assert_eq!(devices[0]["operation"]["rsa_bits"], 3072);
    assert_eq!(devices[0]["operation"]["curve"], "P-256");
    assert_eq!(devices[0]["status"], "pending");
    assert_eq!(devices[1]["operation"]["type"], "delete");
    assert_eq!(devices[1]["complete_by"], Value::Null);
    let show = ok(&dir, &["device", "show", "CSFjsmith"]);
    assert!(
        show.contains("operation:                Install/Upgrade (RSA Only, RSA 3072, P-256)")
            && show.contains("operation scheduled"),
        "{show}"
    );

    ok(&dir, &["device", "remove", "SEP001122334455"]);
    assert_eq!(names(&list(&dir)), ["CSFjsmith"]);
    ok(&dir, &["device", "remove", "csfjsmith"]);
    assert!(list(&dir).is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_one_line_exit_1_and_changes_nothing() {
    let dir = scratch("bad");

    // Nothing is created for a bad name, even the data directory.
    let err = fails(&dir, &["device", "add", "SEP 1"]);
    assert!(
        err.contains("invalid device name") && err.contains("offset 3"),
        "{err}"
    );
    assert!(!dir.join("capf-data").exists());

    ok(
        &dir,
        &[
            "device",
            "add",
            "SEP001122334455",
            "--operation",
            "troubleshoot",
        ],
    );
    let before = list(&dir);
    assert_eq!(names(&before), ["SEP001122334455"]);

    let err = fails(&dir, &["device", "add", "SEPXYZ112233445"]);
    assert!(err.contains("invalid device name"), "{err}");
    let err = fails(&dir, &["device", "add", "sep001122334455"]);
    assert!(err.contains("already registered"), "{err}");
    let err = fails(
        &dir,
        &["device", "add", "CSFjsmith", "--auth-string", "123"],
    );
    assert!(
        err.contains("4 to 10") && err.contains("3 characters"),
        "{err}"
    );
    assert!(!err.contains("123"), "the string is never shown: {err}");
    let err = fails(
        &dir,
        &["device", "add", "CSFjsmith", "--complete-by", "2030-02-30"],
    );
    assert!(err.contains("--complete-by"), "{err}");
    let err = fails(
        &dir,
        &["device", "add", "CSFjsmith", "--complete-by", "31/12/2030"],
    );
    assert!(err.contains("YYYY-MM-DD"), "{err}");
    let err = fails(&dir, &["device", "add", "CSFjsmith", "--rsa", "4096"]);
    assert!(err.contains("--operation install"), "{err}");
    let err = fails(
        &dir,
        &[
            "device",
            "schedule",
            "SEP001122334455",
            "--operation",
            "install",
            "--auth-string",
            "123",
        ],
    );
    assert!(err.contains("4 to 10"), "{err}");
    assert_eq!(list(&dir), before);

    for verb in ["show", "remove"] {
        let err = fails(&dir, &["device", verb, "SEP665544332211"]);
        assert!(
            err.contains("SEP665544332211") && err.contains("not registered"),
            "{verb}: {err}"
        );
    }
    let err = fails(
        &dir,
        &[
            "device",
            "schedule",
            "SEP665544332211",
            "--operation",
            "delete",
        ],
    );
    assert!(err.contains("not registered"), "{err}");
    assert_eq!(list(&dir), before);

    // A data directory without a store is not created by the read-only verbs.
    let err = fails(&dir, &["device", "list", "--data", "elsewhere"]);
    assert!(err.contains("no device store"), "{err}");
    assert!(!dir.join("elsewhere").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// The guide's Online CA limit at `device add`: in the Online CA mode a device registered with
/// an EC key order is refused with the reason and nothing is added, as scheduling one is.
#[test]
fn device_add_with_an_ec_key_order_is_refused_in_online_ca_mode() {
    let dir = scratch("online-ca-ec");
    ok(&dir, &["device", "add", "SEP000000000001"]);
    ok(
        &dir,
        &["settings", "set", "certificate_issuer", "online-ca"],
    );
    let before = list(&dir);
    for order in ["ec-only", "ec-preferred"] {
        let err = fails(
            &dir,
            &[
                "device",
                "add",
                "SEP001122334455",
                "--operation",
                "install",
                "--key-order",
                order,
            ],
        );
        assert!(
            err.contains("device SEP001122334455")
                && err.contains("Online CA does not support ECDSA"),
            "{order}: {err}"
        );
        assert_eq!(list(&dir), before, "{order}");
    }
    ok(
        &dir,
        &[
            "device",
            "add",
            "SEP001122334455",
            "--operation",
            "install",
            "--key-order",
            "rsa-only",
        ],
    );
    assert_eq!(names(&list(&dir)), ["SEP000000000001", "SEP001122334455"]);
    std::fs::remove_dir_all(&dir).ok();
}
