//! What only the SQLite store shows: its stored rows, encodings, schema constraints and query
//! plans. The behaviour every backend shares is the conformance suite
//! (`crate::conformance`, run in `tests/capf-store.rs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capf_lsc::KeyPolicy;

use super::*;
use crate::{AdminStore, SessionStore};

/// A device name the test knows is valid.
fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

const PHONE: &str = "SEP001122AABBCC";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn store() -> SqliteStore {
    SqliteStore::open_in_memory([9; 32]).unwrap()
}

fn install() -> Operation {
    Operation::InstallUpgrade(KeyPolicy::default())
}

fn with_phone(operation: Operation) -> SqliteStore {
    let s = store();
    let mut new = NewDevice::new(dn(PHONE));
    new.operation = operation;
    s.add_device(&new, t(0)).unwrap();
    s
}

#[test]
fn equal_strings_on_two_devices_are_stored_differently() {
    let s = store();
    for name in ["SEP0011223344AA", "SEP0011223344BB"] {
        let mut new = NewDevice::new(dn(name));
        new.auth_string = Some("1234".into());
        s.add_device(&new, t(0)).unwrap();
    }
    let hashes: Vec<Vec<u8>> = s
        .lock()
        .prepare("SELECT auth_hash FROM devices ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(hashes.len(), 2);
    assert_ne!(hashes[0], hashes[1]);
}

#[test]
fn a_different_key_does_not_accept_the_string() {
    let s = with_phone(install());
    s.set_auth_string(&dn(PHONE), Some("1234"), t(0)).unwrap();
    let hash: Vec<u8> = s
        .lock()
        .query_row("SELECT auth_hash FROM devices", [], |r| r.get(0))
        .unwrap();
    assert!(auth::verify(&[9; 32], PHONE, "1234", &hash));
    assert!(!auth::verify(&[8; 32], PHONE, "1234", &hash));
}

#[test]
fn times_are_stored_as_whole_unix_seconds() {
    let s = store();
    let mut new = NewDevice::new(dn(PHONE));
    new.operation = install();
    new.complete_by = Some(t(10) + Duration::from_millis(999));
    let d = s
        .add_device(&new, t(1) + Duration::from_millis(500))
        .unwrap();
    assert_eq!(d.complete_by, Some(t(10)));
    assert_eq!(d.updated_at, t(1));
    assert_eq!(to_unix(UNIX_EPOCH - Duration::from_millis(1500)), -2);
    assert_eq!(
        from_unix(-2, "t", "c").unwrap(),
        UNIX_EPOCH - Duration::from_secs(2)
    );
    assert_eq!(to_unix(UNIX_EPOCH + Duration::from_secs(5)), 5);
}

#[test]
fn the_schema_refuses_impossible_rows() {
    let s = with_phone(Operation::None);
    let conn = s.lock();
    for sql in [
        "UPDATE devices SET status = 'pending'",
        "UPDATE devices SET operation = 'delete', status = 'success'",
        "UPDATE devices SET operation = 'install_upgrade', status = 'pending'",
        "UPDATE devices SET status = 'failed'",
        "UPDATE devices SET attempts = -1",
    ] {
        assert!(conn.execute(sql, []).is_err(), "{sql}");
    }
}

#[test]
fn an_unreadable_stored_value_is_a_typed_error() {
    let s = with_phone(Operation::None);
    s.lock()
        .execute(
            "UPDATE devices SET auth_mode = 'by_existing_certificate'",
            [],
        )
        .unwrap();
    assert!(matches!(
        s.device(&dn(PHONE)),
        Err(Error::Corrupt { table: "devices", column: "auth_mode", value }) if value == "by_existing_certificate"
    ));
    s.lock()
        .execute("INSERT INTO settings VALUES ('keepalive_minutes', '4')", [])
        .unwrap();
    assert!(matches!(
        s.settings(),
        Err(Error::Corrupt {
            column: "keepalive_minutes",
            ..
        })
    ));
}

#[test]
fn debug_output_hides_the_key_and_the_auth_string() {
    let s = SqliteStore::open_in_memory([0xab; 32]).unwrap();
    let shown = format!("{s:?}");
    assert!(
        !shown.contains("171") && !shown.contains("ab, ab"),
        "{shown}"
    );
    let mut new = NewDevice::new(dn(PHONE));
    new.auth_string = Some("86753".into());
    let shown = format!("{new:?}");
    assert!(
        !shown.contains("86753") && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[test]
fn one_devices_lscs_in_a_state_are_found_by_device_not_by_scanning_the_state() {
    let s = store();
    let conn = s.conn.lock();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {DEVICE_LSCS_IN_STATE}"))
        .unwrap()
        .query_map(params![PHONE, LscState::Installed.as_str()], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // Each install reads one device's LSCs; by the state index it would read every installed
    // LSC of every device (schema step 3).
    assert!(
        plan.iter()
            .any(|step| step.contains("lscs_by_device (device=? AND state=?)")),
        "{plan:?}"
    );
}

fn online_ca() -> capf_lsc::OnlineCaConfig {
    capf_lsc::OnlineCaConfig::new(&capf_lsc::OnlineCaParams {
        host: "127.0.0.1".into(),
        port: 8085,
        ca_type: "est".into(),
        username: "estuser".into(),
        password: capf_lsc::Secret::new("estpwd-secret"),
        template: None,
        label: Some("cucm-lsc".into()),
    })
    .unwrap()
}

#[test]
fn the_online_ca_password_is_sealed_in_the_database_and_not_audited() {
    let s = store();
    assert_eq!(s.online_ca_config().unwrap(), None);
    s.set_online_ca_config(&online_ca(), t(1)).unwrap();
    assert_eq!(s.online_ca_config().unwrap(), Some(online_ca()));
    let conn = s.lock();
    let sealed: Vec<u8> = conn
        .query_row("SELECT sealed_password FROM online_ca", [], |r| r.get(0))
        .unwrap();
    assert!(!sealed.windows(6).any(|w| w == b"estpwd"));
    let detail: String = conn
        .query_row(
            "SELECT detail FROM audit WHERE action = ?1",
            [crate::action::ONLINE_CA_SET],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!detail.contains("estpwd"), "{detail}");
    assert!(detail.contains("password set"), "{detail}");
}

#[test]
fn a_database_copied_without_its_key_file_does_not_reveal_the_online_ca_password() {
    let dir = std::env::temp_dir().join(format!("capf-online-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = SqliteStore::open(&dir).unwrap();
    s.set_online_ca_config(&online_ca(), t(1)).unwrap();
    drop(s);
    // Another key file: the copy cannot unseal the password.
    std::fs::remove_file(dir.join(SqliteStore::KEY_FILE)).unwrap();
    let copy = SqliteStore::open(&dir).unwrap();
    let err = copy.online_ca_config().unwrap_err();
    assert!(matches!(err, Error::SealedPassword), "{err}");
    assert!(!err.to_string().contains("estpwd"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
