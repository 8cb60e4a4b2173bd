//! capf-store: the conformance suite on SQLite, then SQLite over real database files (the
//! lifecycle across reopening, the key file, migrations, two handles on one file, a writer
//! killed mid-transaction), and properties of names and authentication strings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use capf_lsc::{DeviceName, KeyPolicy};
use capf_store::{
    AdminStore, AttemptEnd, AuthMode, Error, IssuedLsc, KeepaliveMinutes, LscState, NewDevice,
    Operation, OperationStatus, SCHEMA_VERSION, SessionStore, Settings, SqliteStore, action,
    is_valid_auth_string,
};
use proptest::prelude::*;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// A device name the test knows is valid.
fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "capf-store-test-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// A data directory inside it that does not exist yet.
    fn data_dir(&self) -> PathBuf {
        self.0.join("data")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600 + secs)
}

fn install() -> Operation {
    Operation::InstallUpgrade(KeyPolicy::default())
}

fn lsc(serial: &[u8], at: SystemTime) -> IssuedLsc {
    IssuedLsc {
        serial: serial.to_vec(),
        der: [&[0x30, 0x82, 0x01, 0x00][..], serial].concat(),
        not_before: at,
        not_after: at + Duration::from_secs(365 * 86_400),
    }
}

fn raw(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join(SqliteStore::DATABASE_FILE)).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A child process, killed (SIGKILL) and reaped when dropped, so a failing test leaves none.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// The conformance suite: what every backend must do, here on SQLite in memory

mod conformance {
    capf_store::conformance_tests!(|| capf_store::SqliteStore::open_in_memory([9; 32]).unwrap());
}

// ---------------------------------------------------------------------------------------------
// The lifecycle

#[test]
fn full_install_lifecycle_ends_in_success_with_the_string_cleared_and_survives_reopening() {
    let tmp = TempDir::new("lifecycle");
    let dir = tmp.data_dir();
    const PHONE: &str = "SEP001A2B3C4D5E";
    {
        let store = SqliteStore::open(&dir).unwrap();
        let mut new = NewDevice::new(dn(PHONE));
        new.model = "Cisco 8865".into();
        new.auth_mode = AuthMode::AuthenticationString;
        let d = store.add_device(&new, t(0)).unwrap();
        assert_eq!(d.status, OperationStatus::None);
        store
            .set_auth_string(&dn(PHONE), Some("482915"), t(1))
            .unwrap();
        let d = store
            .schedule(&dn(PHONE), install(), Some(t(86_400)), t(2))
            .unwrap();
        assert_eq!(d.status, OperationStatus::Pending);
        assert!(d.has_operation_to_run() && d.has_auth_string);

        assert!(store.check_auth_string(&dn(PHONE), "482915").unwrap());
        let d = store.begin_attempt(&dn(PHONE), t(10)).unwrap();
        assert_eq!(
            (d.status.clone(), d.attempts),
            (OperationStatus::InProgress, 1)
        );
        let issued = store
            .record_lsc_issued(&dn(PHONE), &lsc(&[0x51, 0x01], t(11)), t(11))
            .unwrap();
        assert_eq!(issued.state, LscState::Issued);
        let d = store
            .confirm_lsc_installed(&dn(PHONE), &[0x51, 0x01], t(12))
            .unwrap();
        assert_eq!(d.operation, Operation::None);
        assert_eq!(d.status, OperationStatus::Success);
        assert!(!d.has_auth_string);
        assert!(!store.check_auth_string(&dn(PHONE), "482915").unwrap());
    }
    let store = SqliteStore::open(&dir).unwrap();
    let d = store.device(&dn(PHONE)).unwrap().unwrap();
    assert_eq!(
        (d.operation, d.status),
        (Operation::None, OperationStatus::Success)
    );
    assert_eq!(d.model, "Cisco 8865");
    assert_eq!(
        store.lscs(&dn(PHONE)).unwrap()[0].state,
        LscState::Installed
    );
    let actions: Vec<String> = store
        .audit(Some(&dn(PHONE)), 100)
        .unwrap()
        .into_iter()
        .rev()
        .map(|a| a.action)
        .collect();
    assert_eq!(
        actions,
        [
            action::DEVICE_ADDED,
            action::AUTH_STRING_SET,
            action::OPERATION_SCHEDULED,
            action::ATTEMPT_BEGUN,
            action::LSC_ISSUED,
            action::LSC_INSTALLED
        ]
    );
}

#[test]
fn settings_round_trip_and_the_keepalive_range_is_5_to_60_minutes() {
    for bad in [4, 61] {
        let err = KeepaliveMinutes::new(bad).unwrap_err();
        assert!(matches!(err, Error::KeepaliveOutOfRange { minutes } if minutes == bad as u64));
        assert!(err.to_string().contains("5 to 60 minutes"), "{err}");
    }
    for good in [5, 60] {
        assert_eq!(KeepaliveMinutes::new(good).unwrap().minutes(), good);
    }

    let tmp = TempDir::new("settings");
    let dir = tmp.data_dir();
    let settings = Settings {
        keepalive: KeepaliveMinutes::new(5).unwrap(),
        max_sessions: 20_000,
        max_key_generation_sessions: 128,
        key_generation_queue: 1024,
        auth_failure_limit: 10,
        auth_lockout: Duration::from_secs(900),
        sudi_policy: capf_store::SudiPolicy::WhenTrusted,
        ..Settings::default()
    };
    {
        let store = SqliteStore::open(&dir).unwrap();
        assert_eq!(store.settings().unwrap(), Settings::default());
        store.update_settings(&settings, t(0)).unwrap();
    }
    // Another handle (the running server) reads what the administrator stored.
    let store = SqliteStore::open(&dir).unwrap();
    assert_eq!(store.settings().unwrap(), settings);
    let entry = &store.audit(None, 1).unwrap()[0];
    assert_eq!(entry.action, action::SETTINGS_UPDATED);
}

// ---------------------------------------------------------------------------------------------
// Authentication strings and the key file

#[test]
fn auth_strings_follow_ucm_rule_check_true_or_false_and_never_reach_the_database_file() {
    let tmp = TempDir::new("authstring");
    let dir = tmp.data_dir();
    const PHONE: &str = "SEP0011223344CC";
    const SECRET: &str = "8675309142";
    {
        let store = SqliteStore::open(&dir).unwrap();
        store.add_device(&NewDevice::new(dn(PHONE)), t(0)).unwrap();
        for bad in ["123", "12345678901", "12ab", "abcd"] {
            let err = store
                .set_auth_string(&dn(PHONE), Some(bad), t(1))
                .unwrap_err();
            assert!(matches!(err, Error::InvalidAuthString { .. }), "{bad}");
            let message = err.to_string();
            assert!(message.contains("4 to 10 ASCII digits"), "{message}");
            assert!(!message.contains(bad), "{message}");
        }
        store
            .set_auth_string(&dn(PHONE), Some(SECRET), t(2))
            .unwrap();
        assert!(store.check_auth_string(&dn(PHONE), SECRET).unwrap());
        assert!(!store.check_auth_string(&dn(PHONE), "8675309143").unwrap());
        assert!(!store.check_auth_string(&dn(PHONE), "867530914").unwrap());
        // The same string on another device works there too, stored differently.
        let mut other = NewDevice::new(dn("SEP0011223344DD"));
        other.auth_string = Some(SECRET.into());
        store.add_device(&other, t(3)).unwrap();
        assert!(
            store
                .check_auth_string(&dn("SEP0011223344DD"), SECRET)
                .unwrap()
        );
    }
    // Everything the store wrote to the database files, while the WAL is still there.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != SqliteStore::KEY_FILE {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(bytes.len() > 4096);
    let plain = Sha256::digest(SECRET.as_bytes());
    let with_name = Sha256::digest(format!("{PHONE}\0{SECRET}").as_bytes());
    let plain_hex: String = plain.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!contains(&bytes, SECRET.as_bytes()));
    assert!(!contains(&bytes, &plain));
    assert!(!contains(&bytes, &with_name));
    assert!(!contains(&bytes, plain_hex.as_bytes()));
    // And the key is not in the database either.
    let key = std::fs::read(dir.join(SqliteStore::KEY_FILE)).unwrap();
    assert!(!contains(&bytes, &key));
}

#[test]
fn the_key_file_is_owner_only_kept_across_opens_and_refused_when_others_can_read_it() {
    let tmp = TempDir::new("keyfile");
    let dir = tmp.data_dir();
    let key_path = dir.join(SqliteStore::KEY_FILE);
    const PHONE: &str = "SEP0011223344EE";
    {
        let store = SqliteStore::open(&dir).unwrap();
        let mut new = NewDevice::new(dn(PHONE));
        new.auth_string = Some("5555".into());
        store.add_device(&new, t(0)).unwrap();
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let key = std::fs::read(&key_path).unwrap();
    assert_eq!(key.len(), 32);
    assert_ne!(key, [0; 32]);
    // Reopened, the same key checks the stored string.
    assert!(
        SqliteStore::open(&dir)
            .unwrap()
            .check_auth_string(&dn(PHONE), "5555")
            .unwrap()
    );
    assert_eq!(std::fs::read(&key_path).unwrap(), key);

    for loose in [0o640, 0o604, 0o660] {
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(loose)).unwrap();
        let err = SqliteStore::open(&dir).unwrap_err();
        assert!(
            matches!(&err, Error::KeyFilePermissions { mode, path } if *mode == loose && *path == key_path),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(SqliteStore::open(&dir).is_ok());

    std::fs::write(&key_path, [1u8; 31]).unwrap();
    let err = SqliteStore::open(&dir).unwrap_err();
    assert!(matches!(err, Error::KeyFileLength { len: 31, .. }), "{err}");
    // No temporary key files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

// ---------------------------------------------------------------------------------------------
// Migrations

#[test]
fn a_fresh_database_has_the_latest_schema_version_and_a_newer_one_is_refused() {
    let tmp = TempDir::new("migrations");
    let dir = tmp.data_dir();
    drop(SqliteStore::open(&dir).unwrap());
    let conn = raw(&dir);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&dir).unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported } if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two handles on one file

#[test]
fn two_handles_on_one_file_interleave_writes_without_lock_errors() {
    let tmp = TempDir::new("twohandles");
    let dir = tmp.data_dir();
    let a = SqliteStore::open(&dir).unwrap();
    let b = SqliteStore::open(&dir).unwrap();

    // Strict alternation: each handle sees the other's writes at once.
    a.add_device(&NewDevice::new(dn("SEP0011223344F0")), t(0))
        .unwrap();
    b.schedule(&dn("SEP0011223344F0"), install(), None, t(1))
        .unwrap();
    a.begin_attempt(&dn("SEP0011223344F0"), t(2)).unwrap();
    b.record_lsc_issued(&dn("SEP0011223344F0"), &lsc(&[0xf0], t(3)), t(3))
        .unwrap();
    let d = a
        .confirm_lsc_installed(&dn("SEP0011223344F0"), &[0xf0], t(4))
        .unwrap();
    assert_eq!(b.device(&dn("SEP0011223344F0")).unwrap(), Some(d));

    // Concurrent writers on both handles, as the server and an administration CLI would.
    let stores = [Arc::new(a), Arc::new(b)];
    let barrier = Arc::new(Barrier::new(5));
    let threads: Vec<_> = (0..4u64)
        .map(|n| {
            let store = Arc::clone(&stores[(n % 2) as usize]);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..40u64 {
                    let name = format!("SEP{n:02X}{i:010X}");
                    let mut new = NewDevice::new(dn(name.as_str()));
                    new.operation = install();
                    store.add_device(&new, t(i)).unwrap();
                    store.begin_attempt(&dn(&name), t(i)).unwrap();
                    let serial = [0xee, n as u8, i as u8];
                    store
                        .record_lsc_issued(&dn(&name), &lsc(&serial, t(i)), t(i))
                        .unwrap();
                    store
                        .confirm_lsc_installed(&dn(&name), &serial, t(i))
                        .unwrap();
                    if i.is_multiple_of(10) {
                        store.update_settings(&Settings::default(), t(i)).unwrap();
                    }
                }
            })
        })
        .collect();

    // Meanwhile a third connection holds the write lock for a while: writers wait, not fail.
    let mut blocker = raw(&dir);
    let tx = blocker
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(300));
    tx.commit().unwrap();

    for thread in threads {
        thread.join().unwrap();
    }
    let devices = stores[0].list_devices().unwrap();
    assert_eq!(devices.len(), 1 + 4 * 40);
    assert!(devices.iter().all(|d| d.status == OperationStatus::Success));
    assert!(stores[1].integrity_check().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// A writer killed mid-transaction

const WRITER_DIR: &str = "CAPF_STORE_TEST_CRASH_WRITER_DIR";
const WRITER_ROUND: &str = "CAPF_STORE_TEST_CRASH_WRITER_ROUND";
const CRASH_TEST: &str = "a_writer_killed_mid_transaction_leaves_the_store_consistent";

/// The child: the full lifecycle on device after device until killed (with a deadline, so an
/// orphan never runs for long).
fn crash_writer(dir: &Path, round: u8) {
    let store = SqliteStore::open(dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        let name = format!("SEP{round:02X}{i:010X}");
        let now = t(i * 100);
        let serial = |k: u8| {
            let mut s = vec![round];
            s.extend((i as u32).to_be_bytes());
            s.push(k);
            s
        };
        let mut new = NewDevice::new(dn(name.as_str()));
        new.operation = install();
        new.auth_mode = AuthMode::AuthenticationString;
        new.auth_string = Some("1234".into());
        store.add_device(&new, now).unwrap();
        store.record_auth_failure(&dn(&name), now).unwrap();
        store.begin_attempt(&dn(&name), now).unwrap();
        store
            .record_lsc_issued(&dn(&name), &lsc(&serial(1), now), now)
            .unwrap();
        store
            .end_attempt(
                &dn(&name),
                AttemptEnd::Interrupted {
                    reason: "hung up".into(),
                },
                now,
            )
            .unwrap();
        store.begin_attempt(&dn(&name), now).unwrap();
        store
            .record_lsc_issued(&dn(&name), &lsc(&serial(2), now), now)
            .unwrap();
        store
            .confirm_lsc_installed(&dn(&name), &serial(2), now)
            .unwrap();
        if i.is_multiple_of(3) {
            store
                .schedule(&dn(&name), Operation::Delete, None, now)
                .unwrap();
            store.begin_attempt(&dn(&name), now).unwrap();
            store.record_delete_done(&dn(&name), now).unwrap();
        }
        if i.is_multiple_of(4) {
            store
                .schedule(&dn(&name), Operation::Troubleshoot, None, now)
                .unwrap();
            store.begin_attempt(&dn(&name), now).unwrap();
            store
                .record_fetch_done(&dn(&name), Some((1, vec![0x30, 0x00])), now)
                .unwrap();
        }
        if i.is_multiple_of(5) {
            store
                .schedule(&dn(&name), install(), Some(now), now)
                .unwrap();
            store.begin_attempt(&dn(&name), now).unwrap();
            store
                .end_attempt(
                    &dn(&name),
                    AttemptEnd::Failed {
                        reason: "no key".into(),
                    },
                    now,
                )
                .unwrap();
            if i.is_multiple_of(10) {
                store.mark_expired(&dn(&name), now).unwrap();
            }
        }
        if i.is_multiple_of(7) {
            store.remove_device(&dn(&name), now).unwrap();
        }
        i += 1;
    }
}

/// What a store must look like whatever moment the writer was killed at.
fn check_consistent(dir: &Path) -> i64 {
    let store = SqliteStore::open(dir).unwrap();
    assert_eq!(store.integrity_check().unwrap(), Vec::<String>::new());
    let devices = store.list_devices().unwrap();
    let conn = raw(dir);
    let per = |sql: &str, name: &str| -> i64 { conn.query_row(sql, [name], |r| r.get(0)).unwrap() };
    for d in &devices {
        // A pair the code can produce.
        let ok = match (&d.operation, &d.status) {
            (Operation::None, OperationStatus::None | OperationStatus::Success) => true,
            (
                Operation::None,
                OperationStatus::Pending
                | OperationStatus::InProgress
                | OperationStatus::Failed { .. }
                | OperationStatus::Expired,
            ) => false,
            (_, OperationStatus::None | OperationStatus::Success) => false,
            _ => true,
        };
        assert!(ok, "{}: {} / {}", d.name, d.operation, d.status);
        // At most one Issued and one Installed LSC per device.
        for state in ["issued", "installed"] {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM lscs WHERE device = ?1 AND state = ?2",
                    [&d.name, state],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(n <= 1, "{}: {n} {state} LSCs", d.name);
        }
        // A device with an installed LSC succeeded, or was scheduled again after the install.
        let installed = per(
            "SELECT count(*) FROM lscs WHERE device = ?1 AND state = 'installed'",
            &d.name,
        );
        if installed > 0 && d.status != OperationStatus::Success {
            let later = per(
                "SELECT count(*) FROM audit WHERE device = ?1 AND action = 'operation scheduled' \
                 AND id > (SELECT max(id) FROM audit WHERE device = ?1 AND action = 'lsc installed')",
                &d.name,
            );
            assert!(later > 0, "{}: installed LSC but {}", d.name, d.status);
        }
        if d.status == OperationStatus::Success {
            assert!(!d.has_auth_string, "{}: one-time string kept", d.name);
        }
        // Attempts are the attempts begun since the operation was scheduled.
        let begun = per(
            "SELECT count(*) FROM audit WHERE device = ?1 AND action = 'attempt begun' AND id > \
             (SELECT max(id) FROM audit WHERE device = ?1 \
              AND action IN ('device added', 'operation scheduled'))",
            &d.name,
        );
        assert_eq!(i64::from(d.attempts), begun, "{}", d.name);
    }
    // The audit log matches the records.
    let audits = |a: &str| {
        conn.query_row("SELECT count(*) FROM audit WHERE action = ?1", [a], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    assert_eq!(
        count(&conn, "SELECT count(*) FROM lscs"),
        audits(action::LSC_ISSUED)
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM lscs WHERE state IN ('installed', 'superseded', 'deleted')"
        ),
        audits(action::LSC_INSTALLED)
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM lscs WHERE state = 'stale'"),
        count(
            &conn,
            "SELECT count(*) FROM audit WHERE action = 'lsc issued' AND detail LIKE '%now stale%'"
        )
    );
    assert_eq!(
        devices.len() as i64,
        audits(action::DEVICE_ADDED) - audits(action::DEVICE_REMOVED)
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM troubleshoot_results"),
        count(
            &conn,
            "SELECT count(*) FROM audit WHERE action = 'fetch done' \
             AND device IN (SELECT name FROM devices)"
        )
    );
    count(&conn, "SELECT count(*) FROM audit")
}

#[test]
fn a_writer_killed_mid_transaction_leaves_the_store_consistent() {
    if let Some(dir) = std::env::var_os(WRITER_DIR) {
        let round = std::env::var(WRITER_ROUND).unwrap().parse().unwrap();
        crash_writer(Path::new(&dir), round);
        return;
    }
    let tmp = TempDir::new("crash");
    let dir = tmp.data_dir();
    let exe = std::env::current_exe().unwrap();
    let mut entries = 0;
    for round in 0..3u8 {
        let mut child = Killed(
            Command::new(&exe)
                .args([CRASH_TEST, "--exact", "--nocapture"])
                .env(WRITER_DIR, &dir)
                .env(WRITER_ROUND, round.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        // The administrator changes settings from this process meanwhile: no "database is
        // locked" although the writer leaves the lock free only for microseconds at a time.
        let mut admin = None;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            if let Some(status) = child.0.try_wait().unwrap() {
                let mut stderr = String::new();
                use std::io::Read;
                child
                    .0
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr)
                    .unwrap();
                panic!("the writer exited on its own ({status}):\n{stderr}");
            }
            if admin.is_none() && dir.join(SqliteStore::DATABASE_FILE).exists() {
                admin = SqliteStore::open(&dir).ok();
            }
            if let Some(admin) = &admin {
                admin.update_settings(&Settings::default(), t(0)).unwrap();
            }
            let progressed = admin.is_some()
                && count(
                    &raw(&dir),
                    "SELECT count(*) FROM audit WHERE action = 'lsc installed'",
                ) > 0;
            let elapsed = started.elapsed();
            if elapsed > Duration::from_secs(1) && progressed {
                break;
            }
            assert!(
                elapsed < Duration::from_secs(20),
                "the writer made no progress"
            );
        }
        drop(admin);
        eprintln!("round {round}: killing after {:?}", started.elapsed());
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        let checking = Instant::now();
        let now = check_consistent(&dir);
        eprintln!(
            "round {round}: checked {now} entries in {:?}",
            checking.elapsed()
        );
        assert!(now > entries, "round {round}: no new audit entries");
        entries = now;
    }
}

// ---------------------------------------------------------------------------------------------
// The data directory's permissions, and a damaged database (issue 12 items 8 and 11)

fn file_mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_new_data_directory_is_owner_only_and_so_are_the_database_and_its_wal_files() {
    let tmp = TempDir::new("modes-new");
    let dir = tmp.data_dir();
    let store = SqliteStore::open(&dir).unwrap();
    store
        .add_device(&NewDevice::new(dn("SEP0011223344AA")), t(0))
        .unwrap();
    assert_eq!(file_mode(&dir), 0o700);
    let db = dir.join(SqliteStore::DATABASE_FILE);
    assert_eq!(file_mode(&db), 0o600);
    // WAL mode: while the store is open its -wal and -shm files exist, with the database's mode.
    for suffix in ["-wal", "-shm"] {
        let side = dir.join(format!("{}{suffix}", SqliteStore::DATABASE_FILE));
        assert_eq!(file_mode(&side), 0o600, "{}", side.display());
    }
    assert_eq!(file_mode(&dir.join(SqliteStore::KEY_FILE)), 0o600);
}

#[test]
fn an_existing_looser_data_directory_is_tightened_and_says_so() {
    let tmp = TempDir::new("modes-old");
    let dir = tmp.data_dir();
    drop(SqliteStore::open(&dir).unwrap());
    // As an earlier version left it: the directory 0755, the database 0644, a file capfctl
    // wrote 0664, a folder 0755.
    let db = dir.join(SqliteStore::DATABASE_FILE);
    let other = dir.join("capf.pem");
    let folder = dir.join("trust");
    std::fs::write(&other, b"x").unwrap();
    std::fs::create_dir(&folder).unwrap();
    for (path, loose) in [
        (&dir, 0o755),
        (&db, 0o644),
        (&other, 0o664),
        (&folder, 0o755),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let tightened = capf_store::secure_data_dir(&dir).unwrap();
    let mut seen: Vec<_> = tightened
        .iter()
        .map(|t| (t.path.clone(), t.from, t.to))
        .collect();
    seen.sort();
    let mut expected = vec![
        (dir.clone(), 0o755, 0o700),
        (db.clone(), 0o644, 0o600),
        (other.clone(), 0o664, 0o600),
        (folder.clone(), 0o755, 0o700),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    assert!(
        tightened[0].to_string().contains("tightened to 0"),
        "{}",
        tightened[0]
    );
    // Opening does the same.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(SqliteStore::open(&dir).unwrap());
    assert_eq!(file_mode(&dir), 0o700);
    assert_eq!(file_mode(&db), 0o600);
    // Nothing left to tighten.
    assert_eq!(capf_store::secure_data_dir(&dir).unwrap(), vec![]);
}

#[test]
fn a_damaged_devices_table_fails_the_integrity_check_and_a_sound_one_passes() {
    let tmp = TempDir::new("damaged");
    let dir = tmp.data_dir();
    {
        let store = SqliteStore::open(&dir).unwrap();
        let devices: Vec<_> = (0..2000)
            .map(|i| NewDevice::new(dn(&format!("SEP{i:012X}"))))
            .collect();
        for device in &devices {
            store.add_device(device, t(0)).unwrap();
        }
        store.check_integrity().unwrap();
    }
    let db = dir.join(SqliteStore::DATABASE_FILE);
    let (page_size, root): (u32, u32) = {
        let conn = raw(&dir);
        // Everything in the main file, nothing left in the WAL.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        (
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap(),
            conn.query_row(
                "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
                [],
                |r| r.get(0),
            )
            .unwrap(),
        )
    };
    // Garbage over the devices b-tree's root page (an interior page: 2000 rows span many).
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        file.seek(SeekFrom::Start(u64::from(root - 1) * u64::from(page_size)))
            .unwrap();
        file.write_all(&vec![0xA5; usize::try_from(page_size).unwrap()])
            .unwrap();
        file.sync_all().unwrap();
    }
    let err = match SqliteStore::open(&dir) {
        Ok(store) => store.check_integrity().unwrap_err(),
        Err(err) => err,
    };
    assert!(
        matches!(&err, Error::Damaged { path, problems } if *path == db && !problems.is_empty()),
        "{err:?}"
    );
    assert!(err.to_string().contains("is damaged"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Properties

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._-]{1,64}",
        "SEP[0-9A-Fa-f]{12}",
        "(SEP|CSF|BOT|TCT|TAB).{0,14}",
        "[A-Za-z0-9 ._\\-\u{0}-\u{1f}é]{0,70}",
        any::<String>(),
    ]
}

fn auth_strings() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{0,12}", "[0-9a-z ]{3,11}", any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_names_and_auth_strings_never_panic_and_accepted_ones_round_trip(
        name in names(),
        auth in auth_strings(),
    ) {
        let store = SqliteStore::open_in_memory([3; 32]).unwrap();
        let name_ok = DeviceName::new(&name).is_ok();
        let auth_ok = is_valid_auth_string(&auth);
        // The name is validated where it is given (a `DeviceName`); only a valid one reaches
        // the store.
        let parsed = match DeviceName::new(&name) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                prop_assert!(!name_ok);
                prop_assert!(!err.to_string().is_empty());
                None
            }
        };
        if let Some(parsed) = &parsed {
            let mut new = NewDevice::new(parsed.clone());
            new.auth_string = Some(auth.clone());
            match store.add_device(&new, t(0)) {
                Ok(d) => {
                    prop_assert!(name_ok && auth_ok);
                    prop_assert_eq!(d.name.as_str(), name.as_str());
                    prop_assert!(d.has_auth_string);
                    prop_assert_eq!(store.device(parsed).unwrap(), Some(d));
                    prop_assert!(store.check_auth_string(parsed, &auth).unwrap());
                    let longer = format!("{auth}0");
                    prop_assert!(!store.check_auth_string(parsed, &longer).unwrap());
                }
                Err(Error::InvalidAuthString { device, len, all_digits }) => {
                    prop_assert!(name_ok && !auth_ok);
                    prop_assert_eq!(device, name.clone());
                    prop_assert_eq!(len, auth.chars().count());
                    prop_assert_eq!(all_digits, auth.chars().all(|c| c.is_ascii_digit()));
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
        // The string alone, on a device that exists.
        store.add_device(&NewDevice::new(dn("SEP00000000AA01")), t(0)).ok();
        let set = store.set_auth_string(&dn("SEP00000000AA01"), Some(&auth), t(1));
        prop_assert_eq!(set.is_ok(), auth_ok);
        prop_assert_eq!(store.check_auth_string(&dn("SEP00000000AA01"), &auth).unwrap(), auth_ok);
        // Looking up any (valid) name never fails.
        if let Some(parsed) = &parsed {
            prop_assert!(store.device(parsed).is_ok());
            prop_assert!(store.lscs(parsed).is_ok());
        }
    }
}
