//! capfd on a PostgreSQL store (issue 16): a phone enrolls through capfd serving from
//! PostgreSQL, the database unreachable at start is one line and exit 1, a password in the URL
//! is refused without being shown, and `--check-config` checks and exits; a role with a
//! password (scram-sha-256) is reached with `--store-password-file` and with `PGPASSWORD`, the
//! password in no log line and no output, and a wrong one is one line and exit 1 without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::example;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use capf_store::{
    AdminStore, AuthMode, DeviceName, NewDevice, Operation, OperationStatus, PgStore, SessionStore,
};
use capf_test_support::postgres::cluster;

/// Where this test's capfd listens (a loopback address no other test binary uses).
const CAPFD_HOST: &str = "127.0.0.7";

fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("capfd-pg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_phone_enrolls_through_capfd_serving_from_postgresql() {
    let db = cluster().database();
    let dir = scratch("enroll");
    let port = {
        let l = std::net::TcpListener::bind((CAPFD_HOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("{CAPFD_HOST}:{port}");
    let mut capfd = Command::new(example("capfd"))
        .arg("--data")
        .arg(&dir)
        .args(["--store", &db.url, "--listen", &listen])
        .env_remove("PGPASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !(dir.join("capf.pem").exists() && std::net::TcpStream::connect(&listen).is_ok()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "capfd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The administrator registers the phone in the cluster's database, with this data
    // directory's key file (every node holds the same).
    let key: [u8; 32] = std::fs::read(dir.join("auth-string.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let store = PgStore::connect(db.url.parse().unwrap(), key).unwrap();
    let name = DeviceName::new("SEP00AABBCC0016").unwrap();
    let mut new = NewDevice::new(name.clone());
    new.operation = Operation::InstallUpgrade(capf_lsc::KeyPolicy::default());
    new.auth_mode = AuthMode::NullString;
    store.add_device(&new, SystemTime::now()).unwrap();
    let out = Command::new(example("capf-phone"))
        .args(["--server", &listen, "--device", name.as_str(), "--trust"])
        .arg(dir.join("capf.pem"))
        .output()
        .unwrap();
    let _ = capfd.kill();
    let _ = capfd.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let device = store.device(&name).unwrap().unwrap();
    assert_eq!(device.status, OperationStatus::Success);
    let lscs = store.lscs(&name).unwrap();
    assert_eq!(lscs.len(), 1);
    assert_eq!(lscs[0].state, capf_store::LscState::Installed);
}

#[test]
fn the_database_unreachable_at_start_is_one_line_and_exit_1() {
    let dir = scratch("down");
    // Port 1 on loopback: nothing listens there.
    let out = Command::new(example("capfd"))
        .arg("--data")
        .arg(&dir)
        .args(["--store", "postgres://capf@127.0.0.1:1/capf"])
        .args(["--listen", &format!("{CAPFD_HOST}:0")])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("capfd:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("connecting to the database"), "{stderr}");
}

#[test]
fn a_password_in_the_store_url_is_refused_without_showing_it() {
    let out = Command::new(example("capfd"))
        .args([
            "--store",
            "postgres://capf:hunter2@127.0.0.1:1/capf",
            "--check-config",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.contains("PGPASSWORD"), "{stderr}");
}

#[test]
fn check_config_checks_and_exits() {
    let dir = scratch("check");
    let out = Command::new(example("capfd"))
        .arg("--data")
        .arg(&dir)
        .args([
            "--store",
            "postgres://capf@db.example/capf",
            "--check-config",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(!dir.exists(), "--check-config creates nothing");
    let config = dir.with_extension("toml");
    std::fs::write(&config, "listen = [\"127.0.0.1:3804\"]\nno_such_key = 1\n").unwrap();
    let out = Command::new(example("capfd"))
        .arg("--config")
        .arg(&config)
        .arg("--check-config")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&config);
    assert_eq!(out.status.code(), Some(1));
}

/// A password file (owner-only) holding `password` and a newline.
fn password_file(dir: &std::path::Path, name: &str, password: &str) -> std::path::PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes()).unwrap();
    path
}

/// capfd on `url` with `password` from a file (`Some`) or `PGPASSWORD`: it serves a phone
/// (at debug level, so every log line the connection makes is written) and its log holds
/// neither the password nor the URL with it. Returns the log.
fn capfd_serves_with_a_password(
    dir: &std::path::Path,
    url: &str,
    file: Option<&std::path::Path>,
    env: Option<&str>,
    device: &str,
) -> String {
    use capf_test_support::postgres::PASSWORD;
    let port = {
        let l = std::net::TcpListener::bind((CAPFD_HOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("{CAPFD_HOST}:{port}");
    let log_path = dir.join(format!("capfd-{device}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(example("capfd"));
    command
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--store", url, "--listen", &listen])
        .env("RUST_LOG", "debug")
        .env_remove("PGPASSWORD")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    if let Some(file) = file {
        command.arg("--store-password-file").arg(file);
    }
    if let Some(password) = env {
        command.env("PGPASSWORD", password);
    }
    let mut capfd = command.spawn().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(&listen).is_err() {
        if let Ok(Some(status)) = capfd.try_wait() {
            panic!(
                "capfd exited ({status}): {}",
                std::fs::read_to_string(&log_path).unwrap()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "capfd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The administrator registers the phone with capfctl, the password given the same way.
    let mut capfctl = Command::new(example("capfctl"));
    capfctl
        .args([
            "device",
            "add",
            device,
            "--operation",
            "install",
            "--key-order",
        ])
        .args(["ec-only", "--json", "--store", url, "--data"])
        .arg(dir.join("data"))
        .env_remove("PGPASSWORD");
    if let Some(file) = file {
        capfctl.arg("--store-password-file").arg(file);
    }
    if let Some(password) = env {
        capfctl.env("PGPASSWORD", password);
    }
    let added = capfctl.output().unwrap();
    let phone = Command::new(example("capf-phone"))
        .args(["--server", &listen, "--device", device, "--trust"])
        .arg(dir.join("data/capf.pem"))
        .output()
        .unwrap();
    let _ = capfd.kill();
    let _ = capfd.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let added_out = format!(
        "{}{}",
        String::from_utf8_lossy(&added.stdout),
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(added.status.success(), "{added_out}");
    assert!(!added_out.contains(PASSWORD), "{added_out}");
    assert!(
        phone.status.success(),
        "{}{}\n{log}",
        String::from_utf8_lossy(&phone.stdout),
        String::from_utf8_lossy(&phone.stderr)
    );
    assert!(log.contains("DEBUG"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    log
}

#[test]
fn a_password_from_a_file_or_pgpassword_reaches_the_store_and_is_never_shown() {
    use capf_test_support::postgres::PASSWORD;
    let db = cluster().password_database();
    let dir = scratch("password");
    std::fs::create_dir_all(&dir).unwrap();
    let file = password_file(&dir, "pg-password", PASSWORD);
    capfd_serves_with_a_password(&dir, &db.url, Some(&file), None, "SEP00AABBCC1601");
    capfd_serves_with_a_password(&dir, &db.url, None, Some(PASSWORD), "SEP00AABBCC1602");
    // Both phones enrolled into the one store.
    let key: [u8; 32] = std::fs::read(dir.join("data/auth-string.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let url = format!(
        "postgres://{}:{PASSWORD}@127.0.0.1:{}/{}",
        capf_test_support::postgres::PASSWORD_ROLE,
        db.port,
        db.name
    );
    let store = PgStore::connect(url.parse().unwrap(), key).unwrap();
    for name in ["SEP00AABBCC1601", "SEP00AABBCC1602"] {
        let device = store
            .device(&DeviceName::new(name).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(device.status, OperationStatus::Success, "{name}");
    }
    // Without a password the role is refused.
    let out = Command::new(example("capfd"))
        .arg("--data")
        .arg(dir.join("data"))
        .args(["--store", &db.url, "--listen", &format!("{CAPFD_HOST}:0")])
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_password_is_one_line_and_exit_1_without_the_password() {
    use capf_test_support::postgres::PASSWORD;
    let db = cluster().password_database();
    let dir = scratch("wrong-password");
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = format!("{PASSWORD}-but-wrong");
    let file = password_file(&dir, "pg-password", &wrong);
    for by_file in [true, false] {
        let mut command = Command::new(example("capfd"));
        command
            .arg("--data")
            .arg(dir.join("data"))
            .args(["--store", &db.url, "--listen", &format!("{CAPFD_HOST}:0")])
            .env_remove("PGPASSWORD");
        if by_file {
            command.arg("--store-password-file").arg(&file);
        } else {
            command.env("PGPASSWORD", &wrong);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("capfd:")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].contains("password authentication failed"),
            "{stderr}"
        );
        // Neither the wrong password nor the right one (a prefix of it) anywhere.
        assert!(!stderr.contains(PASSWORD), "{stderr}");
        assert!(!stdout.contains(PASSWORD), "{stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
