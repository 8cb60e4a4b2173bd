//! The Online CA mode with a Microsoft CA, end to end over TLS (issue 14): `capfd`, `capfctl`
//! and `capf-phone` as processes against the AD CS Web Enrollment test double
//! (tests/support/certsrv_double.py, NTLM, started on 127.0.0.1 by capf-test-support). The
//! double's CA root is uploaded to CAPF-trust (the guide's scenario 2: the HTTPS certificate is
//! issued by the root); every LSC is checked with `openssl verify` against that root.
//!
//! Phones never generate RSA keys here: a fixture key is the phone's pending key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/online_ca.rs"]
mod online_ca;

use std::path::Path;
use std::process::Command;

use capf_test_support::certsrv::{
    Auth, CertsrvDouble, Options, PASSWORD, PENDING_TEMPLATE, TEMPLATE, USER,
};
use online_ca::{Capfd, lsc_pem, text};

const DEVICE: &str = "SEP001122334455";
/// The phone's RSA-2048 fixture key: not the double's root key (`rsa-2048.pem`); scenario 2
/// has no intermediate CA, so this key is no CA's.
const PHONE_KEY: &str = "intermediate-rsa-2048.pem";

/// `openssl verify -CAfile ROOT LSC`.
fn verify(double: &CertsrvDouble, lsc: &Path) {
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&double.root_pem)
        .arg(lsc)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl verify: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
}

/// capfd in the Online CA mode with the double as its Microsoft CA (`template`), the double's
/// root in CAPF-trust, and `DEVICE` scheduled for an install.
fn capfd_with(double: &CertsrvDouble, tag: &str, template: &str) -> Capfd {
    let capfd = Capfd::start(tag);
    capfd.trust_root(&double.root_pem);
    let set = capfd.set_microsoft(double.port, USER, PASSWORD, template);
    assert!(set.status.success(), "{}", text(&set));
    assert!(!text(&set).contains(PASSWORD), "{}", text(&set));
    let shown = capfd.json(&["online-ca", "show"]);
    assert_eq!(shown["password"], "********", "{shown}");
    assert!(!shown.to_string().contains(PASSWORD), "{shown}");
    capfd.add_device(DEVICE);
    capfd.settle();
    capfd
}

#[test]
fn the_microsoft_ca_issues_the_lsc_in_the_session_and_openssl_verifies_it() {
    let double = CertsrvDouble::start(&Options::default());
    let capfd = capfd_with(&double, "microsoft-issue", TEMPLATE);
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(phone.status.success(), "{}", text(&phone));
    let device = capfd.device_when(DEVICE, "success");
    assert_eq!(device["status"], "success", "{device}");
    verify(&double, &lsc_pem(&out));
    let log = std::fs::read_to_string(capfd.path("capfd.log")).unwrap()
        + &std::fs::read_to_string(capfd.path("capfd.err")).unwrap();
    assert!(log.contains("LSC issued by the CA"), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn a_pending_microsoft_request_is_polled_and_the_phone_comes_back_and_installs() {
    // The double issues a pending ReqID at its second poll.
    let double = CertsrvDouble::start(&Options::default());
    let capfd = capfd_with(&double, "microsoft-pending", PENDING_TEMPLATE);
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let first = capfd.phone(DEVICE, &out, "0");
    assert!(!first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("come back"), "{}", text(&first));
    assert_ne!(capfd.device(DEVICE)["status"], "failed");
    // The poller asks about the ReqID (every 1 s here) until it is issued; the phone comes
    // back until its certificate is there, and installs it.
    let phone = capfd.phone(DEVICE, &out, "5");
    assert!(phone.status.success(), "{}", text(&phone));
    let device = capfd.device_when(DEVICE, "success");
    assert_eq!(device["status"], "success", "{device}");
    verify(&double, &lsc_pem(&out));
    let log = std::fs::read_to_string(capfd.path("capfd.log")).unwrap()
        + &std::fs::read_to_string(capfd.path("capfd.err")).unwrap();
    assert!(log.contains("pending with the"), "{log}");
    assert!(
        log.contains("the online CA issued the pending request"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[test]
fn the_microsoft_ca_over_basic_issues_the_lsc_and_openssl_verifies_it() {
    let double = CertsrvDouble::start(&Options {
        auth: Auth::Basic,
        ..Options::default()
    });
    let capfd = capfd_with(&double, "microsoft-basic", TEMPLATE);
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(phone.status.success(), "{}", text(&phone));
    assert_eq!(capfd.device_when(DEVICE, "success")["status"], "success");
    verify(&double, &lsc_pem(&out));
}

/// A denial (here the template the CA does not know) fails the operation with the CA's
/// disposition message as its reason, and the phone gets no certificate.
#[test]
fn an_unknown_template_fails_the_operation_with_the_disposition_message() {
    let double = CertsrvDouble::start(&Options::default());
    let capfd = capfd_with(&double, "microsoft-denied", "NoSuchTemplate");
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(!phone.status.success(), "{}", text(&phone));
    let device = capfd.device_when(DEVICE, "failed");
    let reason = device["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("0x80094800") && reason.contains("NoSuchTemplate"),
        "{device}"
    );
    for name in ["lsc.pem", "lsc.der", "lsc.crt"] {
        assert!(!out.join(name).exists(), "{name} written after a denial");
    }
}

/// Wrong credentials fail the operation with a reason naming the account, never the password.
#[test]
fn a_wrong_password_fails_the_operation_with_a_reason_and_no_password() {
    const WRONG: &str = "Wr0ng-Secret-42";
    let double = CertsrvDouble::start(&Options::default());
    let capfd = Capfd::start("microsoft-401");
    capfd.trust_root(&double.root_pem);
    let set = capfd.set_microsoft(double.port, USER, WRONG, TEMPLATE);
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let _ = capfd.phone(DEVICE, &out, "0");
    let device = capfd.device_when(DEVICE, "failed");
    let reason = device["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("capf-enroll"), "{device}");
    assert!(!device.to_string().contains(WRONG), "{device}");
    let log = std::fs::read_to_string(capfd.path("capfd.log")).unwrap()
        + &std::fs::read_to_string(capfd.path("capfd.err")).unwrap();
    assert!(!log.contains(WRONG), "{log}");
}

/// A two-tier PKI: an issuing CA below the root signs the LSC, and CAPF-trust holds only the
/// root. The client takes the issuing CA from the request's certnew.p7b, so the LSC chains.
#[test]
fn an_lsc_from_an_issuing_ca_chains_to_the_root_in_capf_trust() {
    let double = CertsrvDouble::start(&Options {
        issuing_ca: true,
        ..Options::default()
    });
    let capfd = capfd_with(&double, "microsoft-issuing", TEMPLATE);
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(
        phone.status.success(),
        "{}\n{}",
        text(&phone),
        capfd.device(DEVICE)
    );
    assert_eq!(capfd.device_when(DEVICE, "success")["status"], "success");
    let issuing = double.issuing_pem.as_ref().unwrap();
    let out_verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&double.root_pem)
        .arg("-untrusted")
        .arg(issuing)
        .arg(lsc_pem(&out))
        .output()
        .unwrap();
    assert!(out_verify.status.success(), "{}", text(&out_verify));
}

/// The guide: an LSC without KeyUsage digitalSignature and keyEncipherment breaks secure
/// registration. The CA (a template set up wrongly) issues one: it is refused with that reason,
/// the phone never receives it, and the operation fails with the reason (the device keeps no
/// LSC and the request is failed, not left pending).
#[test]
fn an_lsc_without_key_encipherment_is_refused_and_never_sent_to_the_phone() {
    let double = CertsrvDouble::start(&Options {
        lsc_without_key_encipherment: true,
        ..Options::default()
    });
    let capfd = capfd_with(&double, "microsoft-no-ke", TEMPLATE);
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(!phone.status.success(), "{}", text(&phone));
    for name in ["lsc.pem", "lsc.der", "lsc.crt"] {
        assert!(!out.join(name).exists(), "{name}: the phone got the LSC");
    }
    let shown = capfd.json(&["device", "show", DEVICE]);
    assert_eq!(shown["status"], "failed", "{shown}");
    let reason = shown["failure_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the online CA's certificate is refused")
            && reason.contains("keyEncipherment")
            && reason.contains("secure registration"),
        "{shown}"
    );
    assert_eq!(shown["last_error"], shown["failure_reason"], "{shown}");
    assert_eq!(shown["lscs"], serde_json::json!([]), "{shown}");
    // The request to the CA is failed with the same reason, not left to be delivered later.
    let csrs = capfd.json(&["csr", "list"]);
    let requests = csrs.as_array().unwrap();
    assert_eq!(requests.len(), 1, "{csrs}");
    assert_eq!(requests[0]["state"], "failed", "{csrs}");
    assert_eq!(requests[0]["lsc_serial"], serde_json::Value::Null, "{csrs}");
    assert!(
        requests[0]["failure"]
            .as_str()
            .unwrap_or_default()
            .contains("keyEncipherment"),
        "{csrs}"
    );
}

/// The guide: for an Online CA, the LSC's validity is whatever the CA gives. The double issues
/// for 400 days while CAPF's own validity setting is 30: the phone's LSC and the store's record
/// have the CA's period, neither capped nor changed.
#[test]
fn the_lsc_keeps_the_validity_the_ca_gives() {
    let double = CertsrvDouble::start(&Options {
        lsc_days: 400,
        ..Options::default()
    });
    let capfd = capfd_with(&double, "microsoft-validity", TEMPLATE);
    online_ca::ok(&mut capfd.capfctl(&["settings", "set", "lsc_validity_days", "30"]));
    let out = capfd.phone_dir("phone", PHONE_KEY);
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(phone.status.success(), "{}", text(&phone));
    let shown = capfd.json(&["device", "show", DEVICE]);
    assert_eq!(shown["status"], "success", "{shown}");
    let lsc = lsc_pem(&out);
    let bytes = std::fs::read(&lsc).unwrap();
    let cert = if bytes.starts_with(b"-----") {
        capf_trust::Cert::from_pem(&bytes).unwrap()
    } else {
        capf_trust::Cert::from_der(&bytes).unwrap()
    };
    let period = cert.not_after().duration_since(cert.not_before()).unwrap();
    assert_eq!(period.as_secs(), 400 * 86_400, "{shown}");
    let recorded = &shown["lscs"][0];
    assert_eq!(
        recorded["not_after"],
        capf_admin::rfc3339(cert.not_after()),
        "{shown}"
    );
    assert_eq!(
        recorded["not_before"],
        capf_admin::rfc3339(cert.not_before()),
        "{shown}"
    );
    verify(&double, &lsc);
}
