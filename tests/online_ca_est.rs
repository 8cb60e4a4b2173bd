//! The Online CA mode with an EST CA, end to end over TLS (issue 14): `capfd`, `capfctl` and
//! `capf-phone` as processes against Cisco's libEST `estserver` (Debian trixie's
//! libest-utils, installed under /opt/libest by `cargo xtask`), started here on 127.0.0.1 and
//! signing with an `openssl ca` configuration. Every LSC is checked with `openssl verify`
//! against the EST CA. The test fails, never skips, when estserver is missing.
//!
//! Phones never generate RSA keys here: a fixture key is the phone's pending key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/online_ca.rs"]
mod online_ca;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use online_ca::{Capfd, fixture, free_port, lsc_pem, ok, text};

/// Where `cargo xtask` installs libEST (Debian trixie's packages, unpacked).
const LIBEST: &str = "/opt/libest";
const DEVICE: &str = "SEP001122334455";

const OPENSSL_CNF: &str = r#"
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
certificate = ./ca.pem
private_key = ./ca.key
serial = ./serial
default_md = sha256
default_days = 365
policy = policy_any
email_in_dn = no
unique_subject = no
copy_extensions = none
x509_extensions = v3_lsc
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[ v3_lsc ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth,1.3.6.1.5.5.7.3.5
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"#;

/// An EST CA (fixture keys: the CA's and the HTTPS certificate's) served by `estserver` on
/// 127.0.0.1 (it listens on every address; only 127.0.0.1 is ever sent to).
struct Est {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Drop for Est {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Est {
    /// estserver in `dir`, with `extra` flags (`-m N` for manual approval).
    fn start(dir: &Path, extra: &[&str]) -> Est {
        let bin = Path::new(LIBEST).join("usr/bin/estserver");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo xtask deps` (libEST from Debian trixie)",
            bin.display()
        );
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::copy(fixture("rsa-2048.pem"), dir.join("ca.key")).unwrap();
        std::fs::copy(fixture("rsa-3072.pem"), dir.join("srv.key")).unwrap();
        let openssl = |args: &[&str]| ok(Command::new("openssl").current_dir(dir).args(args));
        openssl(&[
            "req",
            "-config",
            "openssl.cnf",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=capf test EST CA",
            "-days",
            "3650",
            "-extensions",
            "v3_root",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-config",
            "openssl.cnf",
            "-new",
            "-key",
            "srv.key",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            "srv.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "77",
            "-days",
            "365",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "v3_server",
            "-out",
            "srv.pem",
        ]);
        let port = free_port();
        let child = Command::new(&bin)
            .current_dir(dir)
            .env(
                "LD_LIBRARY_PATH",
                Path::new(LIBEST).join("usr/lib/x86_64-linux-gnu"),
            )
            .env("EST_CACERTS_RESP", "ca.pem")
            .env("EST_TRUSTED_CERTS", "ca.pem")
            .env("EST_OPENSSL_CACONFIG", "openssl.cnf")
            .args([
                "-c", "srv.pem", "-k", "srv.key", "-r", "estrealm", "-d", "600", "-p",
            ])
            .arg(port.to_string())
            .args(extra)
            .stdout(std::fs::File::create(dir.join("estserver.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("estserver.err")).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "estserver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Est {
            dir: dir.to_owned(),
            port,
            child,
        }
    }

    /// What estserver wrote (with `-v`, each request it served).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("estserver.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir.join("estserver.err")).unwrap_or_default()
    }

    /// `openssl verify -CAfile ca.pem LSC`.
    fn verify(&self, lsc: &Path) {
        let out = ok(Command::new("openssl")
            .current_dir(&self.dir)
            .args(["verify", "-CAfile", "ca.pem"])
            .arg(lsc));
        assert!(out.contains(": OK"), "{out}");
    }
}

/// Debian's nginx-light on 127.0.0.1 in front of estserver (the recipe's arrangement: Debian's
/// libEST has no label path segment support): `/.well-known/est/<label>/<operation>` for the
/// one known label goes to estserver without the label, everything else is 404. It presents
/// the EST CA's HTTPS certificate and verifies estserver's against the EST CA.
struct Nginx {
    port: u16,
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(est: &Est, label: &str) -> Nginx {
        let bin = Path::new("/usr/sbin/nginx");
        assert!(
            bin.exists(),
            "{} is missing: run `cargo xtask deps` (nginx-light)",
            bin.display()
        );
        let dir = est.dir.join("nginx");
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = free_port();
        let d = dir.display();
        let e = est.dir.display();
        // One process (no workers switching user), in the foreground, every path in `dir`.
        let conf = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {e}/srv.pem;
        ssl_certificate_key {e}/srv.key;
        location ~ ^/\.well-known/est/{label}/(cacerts|simpleenroll|simplereenroll|csrattrs)$ {{
            proxy_pass https://127.0.0.1:{est_port}/.well-known/est/$1;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {e}/ca.pem;
            proxy_set_header Authorization $http_authorization;
        }}
        location / {{ return 404; }}
    }}
}}
"#,
            est_port = est.port
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdout(std::fs::File::create(dir.join("logs/stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("logs/stderr")).unwrap())
            .spawn()
            .unwrap();
        let nginx = Nginx { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                std::fs::read_to_string(dir.join("logs/stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
    }
}

#[test]
fn est_issues_the_lsc_in_the_session_and_openssl_verifies_it() {
    let capfd = Capfd::start("issue");
    let est = Est::start(&capfd.path("est"), &[]);
    capfd.trust_root(&est.dir.join("ca.pem"));
    let set = capfd.set_online_ca(est.port, "estpwd", None);
    assert!(set.status.success(), "{}", text(&set));
    assert!(!text(&set).contains("estpwd"), "{}", text(&set));
    let shown = capfd.json(&["online-ca", "show"]);
    assert_eq!(shown["password"], "********", "{shown}");
    assert!(!shown.to_string().contains("estpwd"));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(phone.status.success(), "{}", text(&phone));
    let device = capfd.device_when(DEVICE, "success");
    assert_eq!(device["status"], "success", "{device}");
    est.verify(&lsc_pem(&out));
}

#[test]
fn a_wrong_password_fails_the_operation_with_a_401_reason_and_no_password() {
    let capfd = Capfd::start("401");
    let est = Est::start(&capfd.path("est"), &[]);
    capfd.trust_root(&est.dir.join("ca.pem"));
    let set = capfd.set_online_ca(est.port, "not-the-password", None);
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    let _ = capfd.phone(DEVICE, &out, "0");
    let device = capfd.device_when(DEVICE, "failed");
    let reason = device["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("HTTP 401"), "{device}");
    assert!(reason.contains("estuser"), "{device}");
    assert!(!reason.contains("not-the-password"), "{device}");
}

#[test]
fn an_unknown_label_is_a_404_reason() {
    let capfd = Capfd::start("404");
    let est = Est::start(&capfd.path("est"), &[]);
    capfd.trust_root(&est.dir.join("ca.pem"));
    let set = capfd.set_online_ca(est.port, "estpwd", Some("no-such-label"));
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    let _ = capfd.phone(DEVICE, &out, "0");
    let device = capfd.device_when(DEVICE, "failed");
    let reason = device["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("HTTP 404"), "{device}");
    assert!(
        reason.contains("/.well-known/est/no-such-label/simpleenroll"),
        "{device}"
    );
}

/// The certificate files of a trust store's CAPF-trust, sorted.
fn capf_trust_files(trust: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(trust.join("CAPF-trust"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `openssl x509 -fingerprint -sha256` of `pem`: upper-case hex with colons, as an
/// administrator would copy it from the CA.
fn openssl_fingerprint(pem: &Path) -> String {
    let out = ok(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem));
    out.trim().rsplit('=').next().unwrap().to_owned()
}

/// A command that must fail with one line on stderr, which it returns.
fn fails(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// RFC 7030 section 4.1.1's bootstrap: before anything is trusted the verified fetch fails;
/// `--bootstrap` shows the chain (subject, issuer, validity, SHA-256) marked unverified;
/// adding it needs the root's fingerprint, and a wrong one adds nothing.
#[test]
fn cacerts_bootstrap_shows_the_chain_and_adds_it_only_with_the_roots_fingerprint() {
    let capfd = Capfd::start("bootstrap");
    let est = Est::start(&capfd.path("est"), &[]);
    let set = capfd.set_online_ca(est.port, "estpwd", None);
    assert!(set.status.success(), "{}", text(&set));
    let trust = capfd.data().join("trust");
    let trust_arg = trust.to_str().unwrap();
    let before = capf_trust_files(&trust);
    let cacerts = |extra: &[&str]| {
        let mut args = vec!["online-ca", "cacerts", "--trust", trust_arg];
        args.extend_from_slice(extra);
        capfd.capfctl(&args)
    };

    // Verified against CAPF-trust, which does not hold the CA yet: refused.
    let err = fails(&mut cacerts(&[]));
    assert!(err.contains("TLS") && err.contains("CAPF-trust"), "{err}");

    let hex = openssl_fingerprint(&est.dir.join("ca.pem"));
    let lower = hex.replace(':', "").to_ascii_lowercase();
    let shown = ok(&mut cacerts(&["--bootstrap"]));
    assert!(shown.starts_with("UNVERIFIED: "), "{shown}");
    assert!(
        shown.contains("without authenticating the server"),
        "{shown}"
    );
    for expected in [
        "subject     CN=capf test EST CA",
        "issuer      CN=capf test EST CA",
        "not before  ",
        "not after   ",
        &format!("sha256      {lower}"),
    ] {
        assert!(shown.contains(expected), "{expected}: {shown}");
    }
    assert_eq!(capf_trust_files(&trust), before);

    // Adding needs the root confirmed: without --fingerprint, or with another, nothing is added.
    let err = fails(&mut cacerts(&["--bootstrap", "--add-to-trust"]));
    assert!(err.contains("--fingerprint"), "{err}");
    let wrong = "00".repeat(32);
    let err = fails(&mut cacerts(&[
        "--bootstrap",
        "--add-to-trust",
        "--fingerprint",
        &wrong,
    ]));
    assert!(
        err.contains(&lower) && err.contains(&wrong) && err.contains("nothing was added"),
        "{err}"
    );
    assert_eq!(capf_trust_files(&trust), before);

    // The right one, as openssl prints it: the root is added under the upload rules, and the
    // verified fetch now succeeds.
    let added = ok(&mut cacerts(&[
        "--bootstrap",
        "--add-to-trust",
        "--fingerprint",
        &hex,
    ]));
    assert!(
        added.contains(&format!(
            "CAPF-trust  {lower}  CN=capf test EST CA: accepted"
        )),
        "{added}"
    );
    let mut expected = before.clone();
    expected.push(format!("{lower}.pem"));
    expected.sort();
    assert_eq!(capf_trust_files(&trust), expected);
    let shown = ok(&mut cacerts(&[]));
    assert!(!shown.contains("UNVERIFIED"), "{shown}");
    assert!(shown.contains(&format!("sha256      {lower}")), "{shown}");
}

/// The verified fetch with `--add-to-trust`: CAPF-trust holds only the CA's HTTPS certificate
/// (the guide's upload scenario in which it is uploaded itself); the fetch is verified by it
/// and adds the CA root under the upload rules.
#[test]
fn cacerts_add_to_trust_adds_the_chain_fetched_over_verified_tls() {
    let capfd = Capfd::start("cacerts");
    let est = Est::start(&capfd.path("est"), &[]);
    let set = capfd.set_online_ca(est.port, "estpwd", None);
    assert!(set.status.success(), "{}", text(&set));
    // A trust directory of its own, holding only the HTTPS certificate.
    let trust = capfd.path("trust-https");
    ok(Command::new(common::example("capfctl"))
        .args(["trust", "upload", "--purpose", "CAPF-trust", "--store"])
        .arg(&trust)
        .arg(est.dir.join("srv.pem")));
    let before = capf_trust_files(&trust);
    assert_eq!(before.len(), 1, "{before:?}");
    let trust_arg = trust.to_str().unwrap();
    let root = openssl_fingerprint(&est.dir.join("ca.pem"))
        .replace(':', "")
        .to_ascii_lowercase();
    let added = ok(&mut capfd.capfctl(&[
        "online-ca",
        "cacerts",
        "--trust",
        trust_arg,
        "--add-to-trust",
    ]));
    assert!(!added.contains("UNVERIFIED"), "{added}");
    assert!(
        added.contains(&format!(
            "CAPF-trust  {root}  CN=capf test EST CA: accepted"
        )),
        "{added}"
    );
    let mut expected = before;
    expected.push(format!("{root}.pem"));
    expected.sort();
    assert_eq!(capf_trust_files(&trust), expected);
}

#[test]
fn the_ca_down_leaves_the_request_pending_and_tells_the_phone_to_come_back() {
    let capfd = Capfd::start("down");
    let est_dir = capfd.path("est");
    let port = {
        let est = Est::start(&est_dir, &[]);
        capfd.trust_root(&est.dir.join("ca.pem"));
        est.port
    }; // estserver stopped: connection refused.
    let set = capfd.set_online_ca(port, "estpwd", None);
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    let phone = capfd.phone(DEVICE, &out, "0");
    let device = capfd.device(DEVICE);
    assert_ne!(device["status"], "success", "{device}: {}", text(&phone));
    let reason = device["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("cannot connect to the online CA") || reason.contains("pending"),
        "{device}"
    );
}

#[test]
fn manual_approval_is_polled_and_the_phone_comes_back_and_installs() {
    let capfd = Capfd::start("manual");
    // 202 with Retry-After until 4 s have passed, then 200 for the same CSR.
    let est = Est::start(&capfd.path("est"), &["-m", "4"]);
    capfd.trust_root(&est.dir.join("ca.pem"));
    let set = capfd.set_online_ca(est.port, "estpwd", None);
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    let first = capfd.phone(DEVICE, &out, "0");
    assert!(!first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("come back"), "{}", text(&first));
    assert_ne!(capfd.device(DEVICE)["status"], "failed");
    // The poller asks again with the same CSR; the phone comes back (every 1 s) until the
    // certificate is there, and installs it.
    let phone = capfd.phone(DEVICE, &out, "5");
    assert!(phone.status.success(), "{}", text(&phone));
    let device = capfd.device_when(DEVICE, "success");
    assert_eq!(device["status"], "success", "{device}");
    est.verify(&lsc_pem(&out));
    let log = std::fs::read_to_string(capfd.path("capfd.log")).unwrap()
        + &std::fs::read_to_string(capfd.path("capfd.err")).unwrap();
    assert!(log.contains("pending with the"), "{log}");
    assert!(
        log.contains("the online CA issued the pending request"),
        "{log}"
    );
}

#[test]
fn a_slow_ca_holds_no_session_hostage() {
    let capfd = Capfd::start("slow");
    let est = Est::start(&capfd.path("est"), &[]);
    capfd.trust_root(&est.dir.join("ca.pem"));
    // A CA that accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    let set = capfd.set_online_ca(port, "estpwd", None);
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    // Past the session's deadline on the CA call the phone is told to come back; the request
    // stays pending for the poller.
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(!phone.status.success(), "{}", text(&phone));
    assert!(text(&phone).contains("come back"), "{}", text(&phone));
    let device = capfd.device(DEVICE);
    assert_ne!(device["status"], "failed", "{device}");
    assert_ne!(device["status"], "success", "{device}");
    let log = std::fs::read_to_string(capfd.path("capfd.log")).unwrap()
        + &std::fs::read_to_string(capfd.path("capfd.err")).unwrap();
    assert!(
        log.contains("the online CA did not answer in the session's time"),
        "{log}"
    );
}

#[test]
fn a_phone_with_an_lsc_from_this_ca_re_enrolls_through_simplereenroll() {
    let capfd = Capfd::start("reenroll");
    let est = Est::start(&capfd.path("est"), &["-v"]);
    capfd.trust_root(&est.dir.join("ca.pem"));
    let set = capfd.set_online_ca(est.port, "estpwd", None);
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    let first = capfd.phone(DEVICE, &out, "0");
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(capfd.device_when(DEVICE, "success")["status"], "success");
    est.verify(&lsc_pem(&out));
    let first_lsc = std::fs::read(lsc_pem(&out)).unwrap();
    assert!(!est.log().contains("simplereenroll"), "{}", est.log());
    // The device now holds an LSC this CA issued: its next install re-enrolls.
    ok(&mut capfd.capfctl(&["device", "schedule", DEVICE, "--operation", "install"]));
    std::fs::copy(fixture("rsa-2048.pem"), out.join("pending.key")).unwrap();
    let second = capfd.phone(DEVICE, &out, "0");
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(capfd.device_when(DEVICE, "success")["status"], "success");
    let second_lsc = std::fs::read(lsc_pem(&out)).unwrap();
    assert_ne!(first_lsc, second_lsc, "the phone kept its first LSC");
    est.verify(&lsc_pem(&out));
    assert!(est.log().contains("simplereenroll"), "{}", est.log());
}

#[test]
fn the_label_path_through_nginx_issues_and_an_unknown_label_is_a_404_reason() {
    let capfd = Capfd::start("label");
    let est = Est::start(&capfd.path("est"), &[]);
    let nginx = Nginx::start(&est, "cucm-lsc");
    capfd.trust_root(&est.dir.join("ca.pem"));
    let set = capfd.set_online_ca(nginx.port, "estpwd", Some("cucm-lsc"));
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(DEVICE);
    capfd.settle();
    let out = capfd.phone_dir("phone", "rsa-2048.pem");
    let phone = capfd.phone(DEVICE, &out, "0");
    assert!(phone.status.success(), "{}", text(&phone));
    let device = capfd.device_when(DEVICE, "success");
    assert_eq!(device["status"], "success", "{device}");
    est.verify(&lsc_pem(&out));

    // Another label: nginx knows only cucm-lsc.
    const OTHER: &str = "SEP00112233AABB";
    let set = capfd.set_online_ca(nginx.port, "estpwd", Some("other-profile"));
    assert!(set.status.success(), "{}", text(&set));
    capfd.add_device(OTHER);
    capfd.settle();
    let out = capfd.phone_dir("other", "rsa-2048.pem");
    let _ = capfd.phone(OTHER, &out, "0");
    let device = capfd.device_when(OTHER, "failed");
    let reason = device["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("HTTP 404"), "{device}");
    assert!(
        reason.contains("/.well-known/est/other-profile/simpleenroll"),
        "{device}"
    );
}

#[test]
fn a_garbage_csr_is_a_400_refusal_with_the_ca_s_own_line() {
    use capf_ca::est::EstClient;
    use capf_ca::http::TrustAnchors;
    use capf_lsc::{OnlineCaConfig, OnlineCaParams, Secret};

    let dir = std::env::temp_dir().join(format!("online-ca-est-400-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let est = Est::start(&dir, &[]);
    let root = capf_trust::Cert::from_pem(&std::fs::read(est.dir.join("ca.pem")).unwrap())
        .unwrap()
        .der()
        .to_vec();
    let config = OnlineCaConfig::new(&OnlineCaParams {
        host: "127.0.0.1".into(),
        port: u32::from(est.port),
        ca_type: "est".into(),
        username: "estuser".into(),
        password: Secret::new("estpwd"),
        template: None,
        label: None,
    })
    .unwrap();
    let client = EstClient::new(
        config,
        TrustAnchors::from_der([root]),
        Duration::from_secs(20),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = runtime.block_on(client.simple_enroll(b"this is not a PKCS#10 request", false));
    drop(est);
    let _ = std::fs::remove_dir_all(&dir);
    let error = answer.unwrap_err();
    let capf_ca::Error::CaRefused { status, detail } = &error else {
        panic!("expected CaRefused, got {error:?}");
    };
    assert_eq!(*status, 400, "{error}");
    let line = error.to_string();
    assert!(!line.contains('\n'), "{line:?}");
    assert!(!line.contains("estpwd"), "{line}");
    assert!(line.contains("HTTP 400"), "{line}");
    assert!(
        detail.to_ascii_lowercase().contains("pkcs10"),
        "the CA's own words: {line}"
    );
}
