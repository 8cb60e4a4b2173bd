//! `capfctl capf-cert ...` and `capfctl lsc issue` as processes: the compiled example binary
//! (built by `cargo test` with the other examples) is run on real files, and OpenSSL checks
//! what it writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn capfctl() -> PathBuf {
    common::example("capfctl")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/capf-test-support/fixtures")
        .join(name)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capfctl-lsc-{tag}-{}", std::process::id()));
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
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("capfctl: "), "{err}");
    err
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

#[test]
fn generate_check_csr_and_issue_an_lsc_that_openssl_verifies() {
    let dir = scratch("flow");
    ok(
        &dir,
        &[
            "capf-cert",
            "generate",
            "--key-type",
            "p256",
            "--days",
            "30",
            "--capf-id",
            "0123abcd",
            "--org",
            "Example",
            "--country",
            "NZ",
            "--cert-out",
            "capf.pem",
            "--key-out",
            "capf.key",
        ],
    );
    let check = ok(
        &dir,
        &["capf-cert", "check", "capf.pem", "--key", "capf.key"],
    );
    assert!(check.contains("OK (CAPF-0123abcd, EC P-256"), "{check}");
    let show = ok(&dir, &["capf-cert", "show", "capf.pem"]);
    assert!(
        show.contains("CA:TRUE pathlen:0") && show.contains("CAPF profile: OK"),
        "{show}"
    );
    let text = openssl(&dir, &["x509", "-noout", "-text", "-in", "capf.pem"]);
    assert!(
        text.contains("Digital Signature, Certificate Sign, CRL Sign"),
        "{text}"
    );

    ok(
        &dir,
        &[
            "capf-cert",
            "csr",
            "--cert",
            "capf.pem",
            "--key",
            "capf.key",
            "--out",
            "capf.csr",
        ],
    );
    openssl(&dir, &["req", "-verify", "-noout", "-in", "capf.csr"]);

    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("capf.pem")).unwrap(),
        std::fs::read_to_string(dir.join("capf.key")).unwrap()
    );
    std::fs::write(dir.join("bundle.pem"), bundle).unwrap();
    let rsa = fixture("phone-rsa-2048.pub.pem");
    ok(
        &dir,
        &[
            "lsc",
            "issue",
            "--issuer",
            "bundle.pem",
            "--public-key",
            rsa.to_str().unwrap(),
            "--device",
            "SEP001122334455",
            "--days",
            "1825",
            "--out",
            "lsc.pem",
        ],
    );
    let verify = openssl(
        &dir,
        &["verify", "-x509_strict", "-CAfile", "capf.pem", "lsc.pem"],
    );
    assert!(verify.contains("lsc.pem: OK"), "{verify}");

    // DER public key, separate issuer key, PEM on stdout.
    let der = dir.join("p384.der");
    openssl(
        &dir,
        &[
            "pkey",
            "-pubin",
            "-in",
            fixture("phone-p384.pub.pem").to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ],
    );
    let pem = ok(
        &dir,
        &[
            "lsc",
            "issue",
            "--issuer",
            "capf.pem",
            "--issuer-key",
            "capf.key",
            "--public-key",
            "p384.der",
            "--device",
            "CSFjsmith",
            "--days",
            "1",
        ],
    );
    std::fs::write(dir.join("lsc2.pem"), pem).unwrap();
    let text = openssl(
        &dir,
        &["x509", "-noout", "-subject", "-issuer", "-in", "lsc2.pem"],
    );
    assert!(
        text.contains("subject=C = NZ, O = Example, CN = CSFjsmith"),
        "{text}"
    );
    assert!(
        text.contains("issuer=C = NZ, O = Example, CN = CAPF-0123abcd"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_input_is_one_line_and_exit_status_1() {
    let dir = scratch("bad");
    ok(
        &dir,
        &[
            "capf-cert",
            "generate",
            "--key-type",
            "p384",
            "--cert-out",
            "capf.pem",
            "--key-out",
            "capf.key",
        ],
    );
    let key = fixture("phone-p256.pub.pem");
    let key = key.to_str().unwrap();
    let issue = |days: &str, device: &str, public_key: &str, issuer: &str| {
        fails(
            &dir,
            &[
                "lsc",
                "issue",
                "--issuer",
                issuer,
                "--issuer-key",
                "capf.key",
                "--public-key",
                public_key,
                "--device",
                device,
                "--days",
                days,
            ],
        )
    };
    for days in ["0", "1826", "-3"] {
        assert!(issue(days, "SEP001122334455", key, "capf.pem").contains("1 to 1825"));
    }
    assert!(issue("x", "SEP001122334455", key, "capf.pem").contains("not a number"));
    assert!(issue("5", "", key, "capf.pem").contains("--device"));
    assert!(issue("5", "SEP 1", key, "capf.pem").contains("offset 3"));
    assert!(issue("5", "SEP001122334455", "capf.pem", "capf.pem").contains("--public-key"));
    assert!(issue("5", "SEP001122334455", key, "missing.pem").contains("missing.pem"));

    let err = fails(
        &dir,
        &[
            "capf-cert",
            "generate",
            "--key-type",
            "rsa1024",
            "--cert-out",
            "a",
            "--key-out",
            "b",
        ],
    );
    assert!(err.contains("RSA-1024"), "{err}");
    // An existing file is never overwritten.
    let before = std::fs::read(dir.join("capf.key")).unwrap();
    let err = fails(
        &dir,
        &[
            "capf-cert",
            "generate",
            "--key-type",
            "p256",
            "--cert-out",
            "new.pem",
            "--key-out",
            "capf.key",
        ],
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(dir.join("capf.key")).unwrap(), before);
    assert!(!dir.join("new.pem").exists());

    // An LSC is not a CAPF certificate; a foreign key does not match.
    ok(
        &dir,
        &[
            "lsc",
            "issue",
            "--issuer",
            "capf.pem",
            "--issuer-key",
            "capf.key",
            "--public-key",
            key,
            "--device",
            "SEP001122334455",
            "--days",
            "5",
            "--out",
            "lsc.pem",
        ],
    );
    let err = fails(&dir, &["capf-cert", "check", "lsc.pem"]);
    assert!(err.contains("CA:FALSE") && err.contains("14SU2"), "{err}");
    let other = fixture("p256.pem");
    let err = fails(
        &dir,
        &[
            "capf-cert",
            "check",
            "capf.pem",
            "--key",
            other.to_str().unwrap(),
        ],
    );
    assert!(err.contains("does not match"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `capf-cert check` (and `csr`) read a certificate through the loader `lsc issue --issuer`
/// uses, so the certificate + key bundle that one takes, the other takes too.
#[test]
fn check_takes_the_bundle_lsc_issue_takes() {
    let dir = scratch("bundle");
    ok(
        &dir,
        &[
            "capf-cert",
            "generate",
            "--key-type",
            "p256",
            "--capf-id",
            "0123abcd",
            "--cert-out",
            "capf.pem",
            "--key-out",
            "capf.key",
        ],
    );
    let cert = std::fs::read_to_string(dir.join("capf.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("capf.key")).unwrap();
    std::fs::write(dir.join("bundle.pem"), format!("{cert}{key}")).unwrap();
    std::fs::write(dir.join("key-first.pem"), format!("{key}{cert}")).unwrap();
    for bundle in ["bundle.pem", "key-first.pem"] {
        let check = ok(&dir, &["capf-cert", "check", bundle]);
        assert!(check.contains("OK (CAPF-0123abcd, EC P-256"), "{check}");
        // The bundle's key is checked against its certificate.
        let show = ok(&dir, &["capf-cert", "show", bundle]);
        assert!(show.contains("CAPF profile: OK"), "{show}");
    }
    let phone = fixture("phone-p256.pub.pem");
    ok(
        &dir,
        &[
            "lsc",
            "issue",
            "--issuer",
            "bundle.pem",
            "--public-key",
            phone.to_str().unwrap(),
            "--device",
            "SEP001122334455",
            "--days",
            "30",
            "--out",
            "lsc.pem",
        ],
    );
    ok(
        &dir,
        &[
            "capf-cert",
            "csr",
            "--cert",
            "bundle.pem",
            "--key",
            "capf.key",
            "--out",
            "capf.csr",
        ],
    );
    openssl(&dir, &["req", "-verify", "-noout", "-in", "capf.csr"]);

    // A bundle whose key is not the certificate's fails as a separate --key would.
    let other = std::fs::read_to_string(fixture("p256.pem")).unwrap();
    std::fs::write(dir.join("mismatch.pem"), format!("{cert}{other}")).unwrap();
    let err = fails(&dir, &["capf-cert", "check", "mismatch.pem"]);
    assert!(err.contains("does not match"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
