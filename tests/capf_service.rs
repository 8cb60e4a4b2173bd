//! The service's example binaries as processes: `capf-phone --demo` (the README's main job) and
//! `capfd` on a first run, reached by `capf-phone` on 127.0.0.3.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::example;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_demo_enrolls_every_phone_and_verifies_every_lsc() {
    let out = Command::new(example("capf-phone"))
        .args(["--demo", "--phones", "6", "--concurrency", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("enrolled 6/6"), "{stdout}");
    assert!(
        stdout.contains("6 LSCs verified against the CAPF certificate; 6 installed in the store"),
        "{stdout}"
    );
}

/// Where the first-run test's capfd listens.
const CAPFD_HOST: &str = "127.0.0.3";

#[test]
fn capfd_first_run_creates_its_data_directory_and_serves() {
    let dir = std::env::temp_dir().join(format!("capfd-first-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A loopback address no other test listens on (127.0.0.2 and up stand for "another host"
    // elsewhere): a port freed here cannot be taken by another test's listener in between.
    let port = {
        let l = std::net::TcpListener::bind((CAPFD_HOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("{CAPFD_HOST}:{port}");
    let mut capfd = Command::new(example("capfd"))
        .arg("--data")
        .arg(&dir)
        .args(["--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // capfd writes its certificate before it opens the store and listens: wait for both.
    let reached = loop {
        if dir.join("capf.pem").exists() && std::net::TcpStream::connect(&listen).is_ok() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let result = reached.then(|| {
        Command::new(example("capf-phone"))
            .args([
                "--server",
                &listen,
                "--device",
                "SEP00AABBCCDDEE",
                "--trust",
            ])
            .arg(dir.join("capf.pem"))
            .output()
            .unwrap()
    });
    let _ = capfd.kill();
    let _ = capfd.wait();
    assert!(dir.join("capf.sqlite").exists() && dir.join("capf.key").exists());
    let _ = std::fs::remove_dir_all(&dir);
    let out = result.expect("capfd listening");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // An unprovisioned device: the server answers END_SESSION 9 and the phone exits 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Ended { reason: Reason(9) }") || stdout.contains("UNKNOWN_DEVICE"),
        "{stdout}"
    );
}
