//! The Offline CA end to end over TLS (issue 13): `capfd`, `capfctl` and `capf-phone` as
//! processes, with a real offline CA: OpenSSL's `openssl ca` and Debian's easy-rsa, each with a
//! root and a pathlen:0 intermediate. The phone is told to come back (RETRY_LATER), the
//! administrator exports the endpoint CSRs, the CA signs them, the certificates are imported,
//! and the phone reconnects and installs its LSC, which `openssl verify` accepts.
//!
//! Each test runs its own capfd (its own data directory and port): the certificate issuer mode
//! is a store-wide setting, which the mode-change test changes. Phones never generate RSA keys
//! here: a fixture key is put in the phone's output directory as its pending key, which the
//! phone answers KEY_GEN_REQUEST with (the same key spec), as a phone coming back does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::example;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/capf-test-support/fixtures")
        .join(name)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command that must succeed; its standard output.
fn ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// One capfd in the Offline CA mode, with its data directory and a scratch directory.
struct Capfd {
    dir: PathBuf,
    listen: String,
    child: Child,
}

impl Drop for Capfd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Capfd {
    /// capfd with `[settings]` certificate_issuer = offline-ca and a RETRY_DELAY of 1 s.
    fn start(tag: &str) -> Capfd {
        let dir = std::env::temp_dir().join(format!("offline-ca-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let config = dir.join("capfd.toml");
        std::fs::write(
            &config,
            "[settings]\ncertificate_issuer = \"offline-ca\"\nca_retry_delay_seconds = 1\n",
        )
        .unwrap();
        let child = Command::new(example("capfd"))
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(dir.join("data"))
            .args(["--listen", &listen])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let capfd = Capfd { dir, listen, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&capfd.listen).is_err() {
            assert!(Instant::now() < deadline, "capfd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        capfd
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `capfctl ARGS --data DATA` in the scratch directory.
    fn capfctl(&self, args: &[&str]) -> Command {
        let mut command = Command::new(example("capfctl"));
        command
            .current_dir(&self.dir)
            .args(args)
            .arg("--data")
            .arg(self.data());
        command
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&ok(&mut self.capfctl(&args))).unwrap()
    }

    /// Registers `device` for Install/Upgrade (RSA-2048, null string).
    fn add_device(&self, device: &str) {
        ok(&mut self.capfctl(&["device", "add", device, "--operation", "install"]));
    }

    /// Uploads `root` to CAPF-trust (the guide: the external CA's root goes there).
    fn trust_root(&self, root: &Path) {
        let store = self.data().join("trust");
        let mut command = Command::new(example("capfctl"));
        command
            .current_dir(&self.dir)
            .args(["trust", "upload", "--purpose", "CAPF-trust", "--store"])
            .arg(&store)
            .arg(root);
        ok(&mut command);
    }

    /// The phone `device` with output directory `out`, waiting out no RETRY_DELAY.
    fn phone(&self, device: &str, out: &Path, extra: &[&str]) -> Output {
        Command::new(example("capf-phone"))
            .args(["--server", &self.listen, "--device", device, "--trust"])
            .arg(self.data().join("capf.pem"))
            .arg("--out")
            .arg(out)
            .args(["--max-retry-wait", "0"])
            .args(extra)
            .output()
            .unwrap()
    }

    /// The device's status and last error, as `capfctl device show` reports them.
    fn device(&self, device: &str) -> Value {
        let shown = self.json(&["device", "show", device]);
        shown.get("device").cloned().unwrap_or(shown)
    }

    /// The device once its status is `status` (the server records a session's end just after
    /// the phone has gone), within 10 s.
    fn device_when(&self, device: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let shown = self.device(device);
            if shown["status"] == status || Instant::now() > deadline {
                return shown;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every CA request, as `capfctl csr list --json` shows them.
    fn requests(&self) -> Vec<Value> {
        match self.json(&["csr", "list"]) {
            Value::Array(list) => list,
            other => other["requests"].as_array().cloned().unwrap_or_default(),
        }
    }

    /// `capfctl csr export --dir DIR`: the exported CSR files (not the index).
    fn export(&self, dir: &Path) -> Vec<PathBuf> {
        let _ = std::fs::remove_dir_all(dir);
        ok(&mut self.capfctl(&["csr", "export", "--dir", dir.to_str().unwrap()]));
        assert!(dir.join("index.csv").exists(), "no index.csv");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csr"))
            .collect();
        files.sort();
        files
    }

    /// `capfctl cert import FILES...`.
    fn import(&self, files: &[PathBuf]) -> Output {
        let trust = self.data().join("trust");
        let mut args = vec!["cert", "import", "--trust", trust.to_str().unwrap()];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        self.capfctl(&args).output().unwrap()
    }
}

/// A phone's output directory holding `key` (a fixture) as its pending key.
fn phone_dir(capfd: &Capfd, name: &str, key: &str) -> PathBuf {
    let out = capfd.path(name);
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(fixture(key), out.join("pending.key")).unwrap();
    out
}

fn assert_told_to_come_back(out: &Output) {
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    assert!(text(out).contains("come back in 1 s"), "{}", text(out));
}

/// An `openssl ca` root and pathlen:0 intermediate (fixture EC keys), in `dir`.
struct OpensslCa {
    dir: PathBuf,
}

const OPENSSL_CNF: &str = r#"
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
default_md = sha256
default_days = 365
policy = policy_any
email_in_dn = no
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[ v3_intermediate ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_lsc ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth,1.3.6.1.5.5.7.3.5
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"#;

impl OpensslCa {
    fn new(dir: PathBuf) -> OpensslCa {
        std::fs::create_dir_all(dir.join("newcerts")).unwrap();
        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::copy(fixture("p256.pem"), dir.join("root.key")).unwrap();
        std::fs::copy(
            fixture("intermediate-p256.pem"),
            dir.join("intermediate.key"),
        )
        .unwrap();
        let ca = OpensslCa { dir };
        ca.openssl(&[
            "req",
            "-new",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "v3_root",
            "-key",
            "root.key",
            "-subj",
            "/O=Example/CN=Example Offline Root",
            "-days",
            "3650",
            "-out",
            "root.pem",
        ]);
        ca.openssl(&[
            "req",
            "-new",
            "-config",
            "openssl.cnf",
            "-key",
            "intermediate.key",
            "-subj",
            "/O=Example/CN=Example Offline Intermediate",
            "-out",
            "intermediate.csr",
        ]);
        ca.openssl(&[
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-cert",
            "root.pem",
            "-keyfile",
            "root.key",
            "-extensions",
            "v3_intermediate",
            "-days",
            "3650",
            "-notext",
            "-in",
            "intermediate.csr",
            "-out",
            "intermediate.pem",
        ]);
        ca
    }

    fn openssl(&self, args: &[&str]) -> String {
        ok(Command::new("openssl").current_dir(&self.dir).args(args))
    }

    /// Signs `csr` with the intermediate; the file holds the LSC and the intermediate (PEM).
    fn sign(&self, csr: &Path) -> PathBuf {
        let name = csr.file_stem().unwrap().to_str().unwrap();
        let lsc = self.dir.join(format!("{name}.lsc.pem"));
        self.openssl(&[
            "ca",
            "-batch",
            "-config",
            "openssl.cnf",
            "-cert",
            "intermediate.pem",
            "-keyfile",
            "intermediate.key",
            "-extensions",
            "v3_lsc",
            "-notext",
            "-in",
            csr.to_str().unwrap(),
            "-out",
            lsc.to_str().unwrap(),
        ]);
        let chain = self.dir.join(format!("{name}.pem"));
        let mut pem = std::fs::read_to_string(&lsc).unwrap();
        pem.push_str(&std::fs::read_to_string(self.dir.join("intermediate.pem")).unwrap());
        std::fs::write(&chain, pem).unwrap();
        chain
    }

    /// `openssl verify -CAfile root -untrusted intermediate LSC`.
    fn verify(&self, lsc: &Path) {
        let out = self.openssl(&[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "intermediate.pem",
            lsc.to_str().unwrap(),
        ]);
        assert!(out.trim_end().ends_with(": OK"), "{out}");
    }
}

const DEVICE: &str = "SEP0A0B0C0D0E01";

/// Steps 1 to 7 of the issue with `openssl ca`, the phone waiting out its RETRY_DELAY and
/// reconnecting by itself while the administrator exports, signs and imports.
#[test]
fn openssl_ca_signs_the_exported_csr_and_the_phone_comes_back_and_installs() {
    let capfd = Capfd::start("openssl");
    let ca = OpensslCa::new(capfd.path("ca"));
    capfd.trust_root(&ca.dir.join("root.pem"));
    capfd.add_device(DEVICE);
    let out = phone_dir(&capfd, "phone", "rsa-2048.pem");

    // 2. The phone connects, signs the endpoint CSR, and is told to come back.
    let first = capfd.phone(DEVICE, &out, &[]);
    assert_told_to_come_back(&first);
    assert!(out.join("pending.key").exists(), "the pending key is kept");
    let requests = capfd.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["state"], "pending", "{requests:?}");
    let device = capfd.device(DEVICE);
    assert_eq!(device["status"], "pending", "{device}");
    assert!(
        device["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("pending with the Offline CA")),
        "{device}"
    );

    // The phone comes back by itself (RETRY_DELAY 1 s) while the request is pending.
    let mut waiting = Command::new(example("capf-phone"))
        .args(["--server", &capfd.listen, "--device", DEVICE, "--trust"])
        .arg(capfd.data().join("capf.pem"))
        .arg("--out")
        .arg(&out)
        .args(["--max-retry-wait", "5"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // 3-5. Export, sign with the intermediate, import.
    let files = capfd.export(&capfd.path("export"));
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with(&format!("{DEVICE}-")), "{name}");
    ca.openssl(&[
        "req",
        "-verify",
        "-noout",
        "-in",
        files[0].to_str().unwrap(),
    ]);
    let signed = ca.sign(&files[0]);
    let imported = capfd.import(&[signed]);
    assert!(imported.status.success(), "{}", text(&imported));

    // 6. The phone reconnects and installs: no new key, the certificate delivered.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = waiting.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = waiting.kill();
            panic!("the phone did not install within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = waiting.wait_with_output().unwrap();
    assert!(status.success(), "{}", text(&done));
    assert!(!out.join("pending.key").exists(), "promoted to lsc.key");
    assert_eq!(
        std::fs::read_to_string(out.join("lsc.key")).unwrap(),
        std::fs::read_to_string(fixture("rsa-2048.pem")).unwrap()
    );
    let requests = capfd.requests();
    assert_eq!(requests[0]["state"], "delivered", "{requests:?}");
    assert_eq!(capfd.device_when(DEVICE, "success")["status"], "success");

    // 7. OpenSSL accepts the installed LSC against the root and the intermediate.
    ca.verify(&out.join("lsc.pem"));
}

/// The same with Debian's easy-rsa: an EC root PKI, a sub-CA PKI signed with pathlen 0, and
/// `sign-req serverClient` (digitalSignature + keyEncipherment, which the guide requires).
#[test]
fn easy_rsa_signs_the_exported_csr_and_the_phone_installs() {
    let capfd = Capfd::start("easyrsa");
    let dir = capfd.path("easyrsa");
    std::fs::create_dir_all(&dir).unwrap();
    // The guide (from 14SU2) wants digitalSignature in a CA certificate uploaded to CAPF-trust;
    // easy-rsa's `ca` type has keyCertSign and cRLSign only: a copy of its types, amended.
    let types = dir.join("x509-types");
    std::fs::create_dir_all(&types).unwrap();
    for entry in std::fs::read_dir("/usr/share/easy-rsa/x509-types").unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), types.join(entry.file_name())).unwrap();
    }
    let ca_type = std::fs::read_to_string(types.join("ca")).unwrap();
    std::fs::write(
        types.join("ca"),
        ca_type.replace(
            "keyUsage = cRLSign, keyCertSign",
            "keyUsage = critical, digitalSignature, cRLSign, keyCertSign",
        ),
    )
    .unwrap();
    let easyrsa = |pki: &str, args: &[&str]| {
        let mut command = Command::new("/usr/share/easy-rsa/easyrsa");
        command
            .current_dir(&dir)
            .env("EASYRSA_EXT_DIR", &types)
            .env("EASYRSA_BATCH", "1")
            .env("EASYRSA_ALGO", "ec")
            .env("EASYRSA_CURVE", "prime256v1")
            .arg(format!("--pki-dir={}", dir.join(pki).display()))
            .args(args);
        ok(&mut command)
    };
    easyrsa("root", &["init-pki"]);
    easyrsa(
        "root",
        &["--req-cn=Example easy-rsa Root", "build-ca", "nopass"],
    );
    easyrsa("sub", &["init-pki"]);
    easyrsa(
        "sub",
        &[
            "--req-cn=Example easy-rsa Sub",
            "build-ca",
            "nopass",
            "subca",
        ],
    );
    let sub_req = dir.join("sub/reqs/ca.req");
    easyrsa("root", &["import-req", sub_req.to_str().unwrap(), "sub"]);
    easyrsa("root", &["--subca-len=0", "sign-req", "ca", "sub"]);
    std::fs::copy(dir.join("root/issued/sub.crt"), dir.join("sub/ca.crt")).unwrap();
    capfd.trust_root(&dir.join("root/ca.crt"));

    let device = "SEP0A0B0C0D0E02";
    capfd.add_device(device);
    let out = phone_dir(&capfd, "phone", "rsa-2048.pem");
    assert_told_to_come_back(&capfd.phone(device, &out, &[]));

    let files = capfd.export(&capfd.path("export"));
    assert_eq!(files.len(), 1, "{files:?}");
    easyrsa("sub", &["import-req", files[0].to_str().unwrap(), device]);
    easyrsa("sub", &["sign-req", "serverClient", device]);
    let issued = dir.join(format!("sub/issued/{device}.crt"));
    // The intermediate comes with the certificate, in one file.
    let chain = dir.join(format!("{device}.pem"));
    let mut pem = std::fs::read_to_string(&issued).unwrap();
    pem.push_str(&std::fs::read_to_string(dir.join("sub/ca.crt")).unwrap());
    std::fs::write(&chain, pem).unwrap();
    let imported = capfd.import(&[chain]);
    assert!(imported.status.success(), "{}", text(&imported));

    let installed = capfd.phone(device, &out, &[]);
    assert!(installed.status.success(), "{}", text(&installed));
    let verify = ok(Command::new("openssl")
        .current_dir(&dir)
        .args([
            "verify",
            "-CAfile",
            "root/ca.crt",
            "-untrusted",
            "sub/ca.crt",
        ])
        .arg(out.join("lsc.pem")));
    assert!(verify.trim_end().ends_with(": OK"), "{verify}");
}

/// The phone lost its key after the certificate was issued: it makes a new key and a new CSR,
/// and the old certificate becomes a stale LSC (the guide's sense).
#[test]
fn a_phone_that_lost_its_key_makes_the_issued_certificate_a_stale_lsc() {
    let capfd = Capfd::start("stale");
    let ca = OpensslCa::new(capfd.path("ca"));
    capfd.trust_root(&ca.dir.join("root.pem"));
    let device = "SEP0A0B0C0D0E03";
    capfd.add_device(device);
    let out = phone_dir(&capfd, "phone", "rsa-2048.pem");
    assert_told_to_come_back(&capfd.phone(device, &out, &[]));
    let files = capfd.export(&capfd.path("export"));
    let imported = capfd.import(&[ca.sign(&files[0])]);
    assert!(imported.status.success(), "{}", text(&imported));
    assert_eq!(capfd.requests()[0]["state"], "issued");

    // The phone lost its key: a new one (another fixture RSA-2048 key) answers KEY_GEN_REQUEST.
    std::fs::copy(
        fixture("intermediate-rsa-2048.pem"),
        out.join("pending.key"),
    )
    .unwrap();
    assert_told_to_come_back(&capfd.phone(device, &out, &[]));
    let requests = capfd.requests();
    let states: Vec<&str> = requests
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["stale", "pending"], "{requests:?}");
    let stale = capfd.json(&["stale-lsc", "list"]);
    assert!(stale.to_string().contains(device), "{stale}");
    assert!(!out.join("lsc.pem").exists(), "nothing was installed");
}

/// A phone without endpoint-CSR support closes the connection at SIGN_CERT_REQUEST; the
/// operation fails with a reason an administrator reads.
#[test]
fn a_phone_without_csr_support_fails_the_operation_with_a_reason() {
    let capfd = Capfd::start("no-csr");
    let device = "SEP0A0B0C0D0E04";
    capfd.add_device(device);
    let out = phone_dir(&capfd, "phone", "rsa-2048.pem");
    let run = capfd.phone(device, &out, &["--no-endpoint-csr", "--retries", "0"]);
    assert!(!run.status.success(), "{}", text(&run));
    let shown = capfd.device_when(device, "failed");
    assert_eq!(shown["status"], "failed", "{shown}");
    let reason = shown["failure_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("does not support the endpoint CSR")
            && reason.contains("closed the connection"),
        "{shown}"
    );
    assert!(capfd.requests().is_empty(), "no request recorded");
}

/// Requests keep the mode that took them: after a change to the CAPF mode, a pending request
/// still has its phone told to come back, and once imported its certificate is delivered;
/// a device without a request is signed by CAPF at once.
#[test]
fn a_mode_change_leaves_pending_requests_with_their_mode() {
    let capfd = Capfd::start("mode");
    let ca = OpensslCa::new(capfd.path("ca"));
    capfd.trust_root(&ca.dir.join("root.pem"));
    let device = "SEP0A0B0C0D0E05";
    capfd.add_device(device);
    let out = phone_dir(&capfd, "phone", "rsa-2048.pem");
    assert_told_to_come_back(&capfd.phone(device, &out, &[]));

    ok(&mut capfd.capfctl(&["settings", "set", "certificate_issuer", "capf"]));
    // capfd re-reads its settings every 2 s.
    std::thread::sleep(Duration::from_millis(2500));
    assert_told_to_come_back(&capfd.phone(device, &out, &[]));
    assert_eq!(capfd.requests()[0]["mode"], "offline-ca");

    let files = capfd.export(&capfd.path("export"));
    let imported = capfd.import(&[ca.sign(&files[0])]);
    assert!(imported.status.success(), "{}", text(&imported));
    let installed = capfd.phone(device, &out, &[]);
    assert!(installed.status.success(), "{}", text(&installed));
    ca.verify(&out.join("lsc.pem"));

    // A device with no request: CAPF signs at once (its LSC chains to the CAPF certificate).
    let other = "SEP0A0B0C0D0E06";
    capfd.add_device(other);
    let out = phone_dir(&capfd, "other", "rsa-2048.pem");
    let run = capfd.phone(other, &out, &[]);
    assert!(run.status.success(), "{}", text(&run));
    let verify = ok(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(capfd.data().join("capf.pem"))
        .arg(out.join("lsc.pem")));
    assert!(verify.trim_end().ends_with(": OK"), "{verify}");
    assert_eq!(capfd.requests().len(), 1);
}
