//! The Offline CA at the `capfctl` level (issue 13): pending requests exported (directory and
//! .tgz, with index.csv), signed by a real `openssl ca` (a root and a pathlen:0 intermediate made
//! here with the openssl CLI from capf-test-support's fixture keys, in a temporary directory),
//! and imported back (multi-certificate PEM, PKCS#7 DER and PEM, DER, a .tgz), every bad input
//! the issue names refused on one line each with its reason, and `openssl verify` accepting the
//! certificates the store now holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::time::SystemTime;

use capf_lsc::der::Encode;
use capf_lsc::x509_cert::name::Name;
use capf_lsc::{Curve, IssuerKey, KeyPolicy, KeySpec, LscSigner, RsaBits};
use capf_store::{
    AdminStore, CaRequestState, CertificateIssuer, DeviceName, LscState, NewCaRequest, NewDevice,
    Operation, SessionStore, SqliteStore,
};
use capf_test_support::{intermediate_key_pem, key_pem};
use serde_json::Value;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("capfctl-csr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn capfctl(&self, args: &[&str]) -> Output {
        Command::new(common::example("capfctl"))
            .current_dir(&self.0)
            .args(args)
            .arg("--data")
            .arg(self.path("data"))
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.capfctl(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Runs `openssl ARGS` in the scratch directory; it must succeed.
    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(&self.0)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.path("data")).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

/// A PKCS#10 request for `common_name` signed by `key` (capf-lsc's CSR builder over x509-cert;
/// its CA extensions do not matter: `openssl ca` applies its own), and the key's SPKI DER.
fn csr(common_name: &str, key: &IssuerKey) -> (Vec<u8>, Vec<u8>) {
    let subject = Name::from_str(&format!("CN={common_name}")).unwrap();
    let request = capf_lsc::capf_csr(&subject, key).unwrap();
    (
        request.to_der().unwrap(),
        key.public_key().to_der().unwrap(),
    )
}

fn key(pem: &str) -> IssuerKey {
    IssuerKey::from_pkcs8_pem(pem).unwrap()
}

const CA_CONFIG: &str = r#"
[ ca ]
default_ca = offline
[ offline ]
dir = ./ca
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = ./inter.pem
private_key = ./inter.key
default_md = sha256
default_days = 365
policy = any_name
email_in_dn = no
unique_subject = no
copy_extensions = none
[ any_name ]
commonName = supplied
[ inter ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,digitalSignature,keyCertSign,cRLSign
[ lsc_rsa ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
[ lsc_ec ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = serverAuth,clientAuth
[ lsc_no_ke ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
"#;

/// A root (fixture P-384 key) and a pathlen:0 intermediate (fixture P-256 key) made with the
/// openssl CLI, an `openssl ca` directory over the intermediate, and a rogue root (fixture
/// P-521 key) the store does not trust.
fn make_ca(s: &Scratch) {
    s.write("root.key", key_pem(KeySpec::Ec(Curve::P384)));
    s.write("inter.key", intermediate_key_pem(KeySpec::Ec(Curve::P256)));
    s.write("rogue.key", key_pem(KeySpec::Ec(Curve::P521)));
    s.write("ca.cnf", CA_CONFIG);
    std::fs::create_dir_all(s.path("ca/newcerts")).unwrap();
    s.write("ca/index.txt", "");
    s.write("ca/serial", "1000\n");
    for (key, out, cn) in [
        ("root.key", "root.pem", "Offline Test Root"),
        ("rogue.key", "rogue.pem", "Rogue Test Root"),
    ] {
        s.openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            key,
            "-out",
            out,
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,digitalSignature,keyCertSign,cRLSign",
        ]);
    }
    s.openssl(&[
        "req",
        "-new",
        "-key",
        "inter.key",
        "-subj",
        "/CN=Offline Test Issuing CA",
        "-out",
        "inter.csr",
    ]);
    s.openssl(&[
        "x509",
        "-req",
        "-in",
        "inter.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-set_serial",
        "7",
        "-days",
        "3650",
        "-extfile",
        "ca.cnf",
        "-extensions",
        "inter",
        "-out",
        "inter.pem",
    ]);
}

/// `openssl ca` signs `csr` with the extension section `ext`; extra arguments follow.
fn sign(s: &Scratch, csr: &Path, ext: &str, out: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "ca",
        "-batch",
        "-config",
        "ca.cnf",
        "-notext",
        "-extensions",
        ext,
        "-in",
    ];
    let csr = csr.to_str().unwrap().to_owned();
    args.push(&csr);
    args.extend(["-out", out]);
    args.extend(extra);
    s.openssl(&args);
    s.path(out)
}

fn pem_to_der(s: &Scratch, pem: &Path, out: &str) -> PathBuf {
    s.openssl(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        out,
    ]);
    s.path(out)
}

/// A .tgz whose members are written as given, including a path the tar crate's own builder
/// would refuse (`../`), so the import sees what a hostile archive holds.
fn raw_tgz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        header.as_gnu_mut().unwrap().name[..bytes.len()].copy_from_slice(bytes);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append(&header, *data).unwrap();
    }
    let mut link = tar::Header::new_gnu();
    link.as_gnu_mut().unwrap().name[..8].copy_from_slice(b"link.pem");
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_link_name("/etc/passwd").unwrap();
    link.set_size(0);
    link.set_cksum();
    tar.append(&link, &[][..]).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

const GOOD_RSA: &str = "SEP0000000000A1";
const GOOD_EC: &str = "SEP0000000000A2";
const NO_KE: &str = "SEP0000000000A3";
const UNTRUSTED: &str = "SEP0000000000A4";
const OTHER: &str = "SEP0000000000A5";
const EXPIRED: &str = "SEP0000000000A6";

#[test]
fn export_openssl_ca_and_import_round_trip_refusing_each_bad_certificate_with_its_reason() {
    let s = Scratch::new("round-trip");
    make_ca(&s);
    let store = s.store();
    // Each device's phone key (fixture keys: tests never generate RSA keys), and the CN its
    // CSR carries (the "other device" phone asks for another name).
    let phones = [
        (
            GOOD_RSA,
            key(key_pem(KeySpec::Rsa(RsaBits::B2048))),
            GOOD_RSA,
        ),
        (GOOD_EC, key(key_pem(KeySpec::Ec(Curve::P256))), GOOD_EC),
        (NO_KE, key(key_pem(KeySpec::Rsa(RsaBits::B3072))), NO_KE),
        (
            UNTRUSTED,
            key(key_pem(KeySpec::Rsa(RsaBits::B4096))),
            UNTRUSTED,
        ),
        (
            OTHER,
            key(intermediate_key_pem(KeySpec::Rsa(RsaBits::B2048))),
            "SEP0000000000FF",
        ),
        (EXPIRED, key(key_pem(KeySpec::Ec(Curve::P384))), EXPIRED),
    ];
    for (device, key, cn) in &phones {
        let mut new = NewDevice::new(dn(device));
        new.operation = Operation::InstallUpgrade(KeyPolicy::default());
        store.add_device(&new, SystemTime::now()).unwrap();
        let (csr, spki) = csr(cn, key);
        store
            .record_ca_request(
                &dn(device),
                &NewCaRequest {
                    mode: CertificateIssuer::OfflineCa,
                    csr: &csr,
                    public_key: &spki,
                    ca_request_id: None,
                },
                SystemTime::now(),
            )
            .unwrap();
    }
    assert_eq!(s.ok(&["csr", "count"]).trim(), "6");
    let listed = s.json(&["csr", "list", "--state", "pending"]);
    assert_eq!(listed.as_array().unwrap().len(), 6);
    assert_eq!(listed[0]["device"], GOOD_RSA);
    assert_eq!(listed[0]["mode"], "offline-ca");

    // Export: a directory and a .tgz, each with index.csv.
    s.ok(&["csr", "export", "--dir", "out"]);
    let index = std::fs::read_to_string(s.path("out/index.csv")).unwrap();
    let mut lines = index.lines();
    assert_eq!(
        lines.next(),
        Some("id,device,mode,received_at,public_key_sha256,file")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 6);
    let file_of = |device: &str| {
        let row = rows.iter().find(|r| r[1] == device).unwrap();
        assert_eq!(row[5], format!("{device}-{}.csr", row[0]));
        assert_eq!(row[4].len(), 64);
        s.path("out").join(&row[5])
    };
    // `csr dump` prints what the export wrote.
    let first_id = rows[0][0].clone();
    assert_eq!(
        s.ok(&["csr", "dump", &first_id]),
        std::fs::read_to_string(file_of(&rows[0][1])).unwrap()
    );
    s.ok(&["csr", "export", "--tgz", "out.tgz", "--der"]);
    let listing = Command::new("tar")
        .args(["tzf"])
        .arg(s.path("out.tgz"))
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.lines().any(|l| l == "index.csv"), "{listing}");
    assert_eq!(listing.lines().filter(|l| l.ends_with(".der")).count(), 6);
    // Export never overwrites.
    assert!(
        !s.capfctl(&["csr", "export", "--tgz", "out.tgz"])
            .status
            .success()
    );

    // The offline CA signs each CSR.
    let good_rsa = sign(&s, &file_of(GOOD_RSA), "lsc_rsa", "good-rsa.pem", &[]);
    sign(&s, &file_of(GOOD_EC), "lsc_ec", "good-ec.pem", &[]);
    sign(&s, &file_of(NO_KE), "lsc_no_ke", "no-ke.pem", &[]);
    let other = sign(&s, &file_of(OTHER), "lsc_rsa", "other.pem", &[]);
    let expired = sign(
        &s,
        &file_of(EXPIRED),
        "lsc_ec",
        "expired.pem",
        &[
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20210101000000Z",
        ],
    );
    // The rogue CA signs one (same openssl ca, another key and certificate).
    let untrusted = sign(
        &s,
        &file_of(UNTRUSTED),
        "lsc_rsa",
        "untrusted.pem",
        &["-cert", "rogue.pem", "-keyfile", "rogue.key"],
    );
    // A certificate for a key no pending request holds (the rogue root's P-521 key; openssl
    // makes its CSR).
    s.openssl(&[
        "req",
        "-new",
        "-key",
        "rogue.key",
        "-subj",
        "/CN=SEP0000000000B1",
        "-out",
        "unknown.csr",
    ]);
    let unknown = sign(&s, &s.path("unknown.csr"), "lsc_ec", "unknown.pem", &[]);

    // The inputs, in every form import takes.
    let read = |p: &Path| std::fs::read(p).unwrap();
    let inter = read(&s.path("inter.pem"));
    let chain_pem = s.write(
        "good-rsa-chain.pem",
        [read(&good_rsa), inter.clone()].concat(),
    );
    s.openssl(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        "good-ec.pem",
        "-certfile",
        "inter.pem",
        "-outform",
        "DER",
        "-out",
        "good-ec.p7b",
    ]);
    s.openssl(&[
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        "no-ke.pem",
        "-certfile",
        "inter.pem",
        "-outform",
        "PEM",
        "-out",
        "no-ke.p7b",
    ]);
    let untrusted_der = pem_to_der(&s, &untrusted, "untrusted.der");
    let garbage = s.write("garbage.bin", b"\x30\x82\xff\xffnot a certificate at all");
    let expired_chain = [read(&expired), inter.clone()].concat();
    let other_chain = [read(&other), inter.clone()].concat();
    s.write(
        "bad.tgz",
        raw_tgz(&[
            ("expired.pem", &expired_chain),
            ("other.pem", &other_chain),
            ("../outside.pem", &read(&good_rsa)),
            ("/etc/absolute.pem", &read(&good_rsa)),
        ]),
    );
    s.write("not-gzip.tgz", b"plain garbage, not gzip");
    // CAPF-trust holds the external root (uploaded under the guide's rules).
    let trust = s.path("trust");
    let trust = trust.to_str().unwrap();
    let out = Command::new(common::example("capfctl"))
        .current_dir(&s.0)
        .args([
            "trust",
            "upload",
            "--store",
            trust,
            "--purpose",
            "CAPF-trust",
            "root.pem",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = s.capfctl(&[
        "cert",
        "import",
        "--trust",
        trust,
        chain_pem.to_str().unwrap(),
        "good-ec.p7b",
        "no-ke.p7b",
        untrusted_der.to_str().unwrap(),
        unknown.to_str().unwrap(),
        garbage.to_str().unwrap(),
        "--tgz",
        "bad.tgz",
        "--tgz",
        "not-gzip.tgz",
    ]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("capfctl:"))
        .collect();
    let line = |source: &str, reason: &str| {
        assert!(
            refused
                .iter()
                .any(|l| l.starts_with(&format!("{source}: ")) && l.contains(reason)),
            "no refusal `{source}: ...{reason}...` in:\n{stderr}"
        );
    };
    line("no-ke.p7b#1", "KeyUsage lacks keyEncipherment");
    line(
        untrusted_der.to_str().unwrap(),
        "does not chain to CAPF-trust",
    );
    line(
        unknown.to_str().unwrap(),
        "certifies a key no pending request has",
    );
    line(garbage.to_str().unwrap(), "not a certificate");
    line("bad.tgz:expired.pem#1", "expired at 2021-01-01");
    line("bad.tgz:other.pem#1", "names device \"SEP0000000000FF\"");
    line("bad.tgz:../outside.pem", "its path leaves the archive");
    line("bad.tgz:/etc/absolute.pem", "its path leaves the archive");
    line("bad.tgz:link.pem", "a link");
    line("not-gzip.tgz", "not a .tgz archive");
    // One line per refusal, and a last line with the count.
    assert_eq!(refused.len(), 10, "{stderr}");
    assert!(
        stderr
            .lines()
            .last()
            .unwrap()
            .starts_with("capfctl: 10 certificate(s) or file(s) refused, 2 imported"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");

    // The two good ones are Issued, awaiting delivery; nothing of a refused one was applied.
    let issued = s.json(&["csr", "list", "--state", "issued"]);
    let devices: Vec<&str> = issued
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, [GOOD_RSA, GOOD_EC]);
    assert_eq!(s.ok(&["csr", "count", "--state", "pending"]).trim(), "4");
    for device in [GOOD_RSA, GOOD_EC] {
        let request = store.open_ca_request(&dn(device)).unwrap().unwrap();
        assert_eq!(request.state, CaRequestState::Issued);
        let serial = request.lsc_serial.unwrap();
        assert_eq!(
            store.lsc_state(&dn(device), &serial).unwrap(),
            Some(LscState::Issued)
        );
        // openssl accepts what the store will deliver.
        let lsc = store.lsc(&serial).unwrap().unwrap();
        let pem = capf_lsc::certificate_to_pem(
            &<capf_lsc::x509_cert::Certificate as capf_lsc::der::Decode>::from_der(&lsc.der)
                .unwrap(),
        )
        .unwrap();
        let path = s.write(&format!("{device}-lsc.pem"), pem);
        s.openssl(&[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "inter.pem",
            path.to_str().unwrap(),
        ]);
    }
    for device in [NO_KE, UNTRUSTED, OTHER, EXPIRED] {
        assert!(store.lscs(&dn(device)).unwrap().is_empty(), "{device}");
    }

    // Importing the same certificate again is refused: its request is no longer pending.
    let out = s.capfctl(&[
        "cert",
        "import",
        "--trust",
        trust,
        chain_pem.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no pending request has"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Delete one, then all.
    let id = issued[0]["id"].as_i64().unwrap().to_string();
    s.ok(&["csr", "delete", &id]);
    assert_eq!(s.ok(&["csr", "count"]).trim(), "5");
    // The deleted Issued request's certificate will never be delivered: a stale LSC.
    let stale = s.json(&["stale-lsc", "list"]);
    assert_eq!(stale.as_array().unwrap().len(), 1);
    assert_eq!(stale[0]["device"], GOOD_RSA);
    s.ok(&["csr", "delete", "--all"]);
    assert_eq!(s.ok(&["csr", "count"]).trim(), "0");
}

#[test]
fn settings_show_the_issuer_mode_next_to_the_validity() {
    let s = Scratch::new("settings");
    drop(s.store());
    s.ok(&["settings", "set", "certificate_issuer", "Offline CA"]);
    s.ok(&["settings", "set", "lsc_validity_days", "365"]);
    let text = s.ok(&["settings", "show"]);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("certificate_issuer = offline-ca"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        lines[at].contains("Certificate Issuer to Endpoint: Offline CA"),
        "{text}"
    );
    assert!(
        lines[at + 1].starts_with("lsc_validity_days = 365  (Duration Of Certificate Validity"),
        "{text}"
    );
    let bad = s.capfctl(&["settings", "set", "lsc_validity_days", "1826"]);
    assert_eq!(bad.status.code(), Some(1));
    let json = s.json(&["settings", "show"]);
    let issuer = json
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "certificate_issuer")
        .unwrap();
    assert_eq!(issuer["value"], "offline-ca");
}

#[test]
fn csr_verbs_refuse_unknown_ids_and_garbage_without_panicking() {
    let s = Scratch::new("garbage");
    drop(s.store());
    for args in [
        &["csr", "dump", "42"][..],
        &["csr", "delete", "42"],
        &["csr", "list", "--state", "waiting"],
    ] {
        let out = s.capfctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let dump = s.capfctl(&["csr", "dump", "42"]);
    assert!(
        String::from_utf8_lossy(&dump.stderr).contains("no certificate request number 42"),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    // Random bytes as every kind of input: refusals, never a panic.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut files = Vec::new();
    for i in 0..8 {
        let data: Vec<u8> = (0..(64 + i * 97))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut data = data;
        if i % 2 == 0 {
            data.splice(0..0, b"-----BEGIN PKCS7-----\n".iter().copied());
        }
        files.push(s.write(&format!("junk{i}.bin"), data));
    }
    let mut args = vec!["cert", "import", "--trust", "trust"];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    args.extend(["--tgz", "junk0.bin"]);
    let out = s.capfctl(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 9 + 1, "{err}");
}
