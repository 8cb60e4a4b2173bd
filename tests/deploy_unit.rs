//! The deployment's systemd unit (issue 16): `systemd-analyze verify` accepts
//! deploy/capfd.service without a warning, with capfd at the path of this build (the unit names
//! /usr/local/bin/capfd, which verify requires to exist), and the unit keeps its hardening.
//! systemd-analyze comes from Debian's `systemd` package (`cargo xtask deps`); the test fails
//! when it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

/// The unit as committed.
fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/capfd.service");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn systemd_analyze_verifies_the_unit_without_a_warning() {
    let capfd = common::example("capfd");
    let unit = unit();
    assert!(unit.contains("/usr/local/bin/capfd "), "{unit}");
    let dir = std::env::temp_dir().join(format!("capf-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("capfd.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/capfd", capfd.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze ({e}): install Debian's `systemd` package (cargo xtask deps)")
        });
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // verify reports an unknown key or a bad value as a warning and still exits 0.
    assert!(stderr.trim().is_empty(), "{stderr}");
}

#[test]
fn the_unit_checks_the_configuration_and_keeps_its_hardening() {
    let unit = unit();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for line in [
        "User=capf",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "MemoryDenyWriteExecute=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "UMask=0077",
    ] {
        assert!(lines.contains(&line), "deploy/capfd.service lacks {line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ExecStartPre=") && l.ends_with("--check-config")),
        "{unit}"
    );
}
