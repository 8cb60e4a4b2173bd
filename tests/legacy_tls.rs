//! The opt-in legacy listener (issue 15, feature `legacy-tls`): phones that speak only TLS 1.0
//! or 1.1 enroll through it, Python's `ssl` at TLS 1.0 / security level 0 drives a whole
//! enrollment as an independent client, the rustls listener still refuses TLS 1.0, and bad
//! input is handled as on the main listener. Built only with the feature
//! (`required-features` in Cargo.toml); `cargo xtask test` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_lsc::{Curve, KeyOrder, KeyPolicy, KeySpec, RsaBits, certificate_to_pem};
use capf_phone::{KeyPool, Phone, PhoneConfig, PhoneKey, TlsVersions};
use capf_server::{CapfServer, Config, ServerHandle, ensure_capf_files};
use capf_store::{
    AdminStore, AuthMode, DeviceName, LscState, NewDevice, Operation, OperationStatus,
    SessionStore, SqliteStore,
};
use capf_wire::Reason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PHONE: &str = "SEP001A2B3C4D5E";

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

/// capfd's own setup (an RSA-2048 CAPF certificate generated in a fresh data directory), the
/// rustls listener and the legacy listener on 127.0.0.1, and one device scheduled for
/// Install/Upgrade RSA-2048 with no authentication string.
struct Lab {
    dir: PathBuf,
    store: Arc<SqliteStore>,
    server: Option<ServerHandle>,
    capf_pem: String,
    capf_path: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn lab(name: &str, tune: impl FnOnce(&mut Config)) -> Lab {
    let dir = std::env::temp_dir().join(format!("capf-legacy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let files = ensure_capf_files(&dir, SystemTime::now()).unwrap();
    let capf_pem = std::fs::read_to_string(&files.certificate).unwrap();
    let store = Arc::new(SqliteStore::open(&dir).unwrap());
    let mut device = NewDevice::new(dn(PHONE));
    device.operation = Operation::InstallUpgrade(KeyPolicy {
        order: KeyOrder::RsaOnly,
        rsa: RsaBits::B2048,
        curve: Curve::P256,
    });
    device.auth_mode = AuthMode::NullString;
    store.add_device(&device, SystemTime::now()).unwrap();
    let mut config = Config::new(&files.certificate, &files.key);
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.legacy_tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    tune(&mut config);
    let server = CapfServer::bind(config, store.clone()).await.unwrap();
    let server = server.spawn();
    Lab {
        dir,
        store,
        server: Some(server),
        capf_pem,
        capf_path: files.certificate,
    }
}

impl Lab {
    fn legacy_addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().legacy_tls_addrs()[0]
    }

    fn main_addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addrs()[0]
    }

    fn phone(&self, addr: SocketAddr, versions: TlsVersions) -> Phone {
        let mut config =
            PhoneConfig::new(dn(PHONE), &addr.ip().to_string(), self.capf_pem.as_bytes()).unwrap();
        config.port = addr.port();
        config.retries = 0;
        config.connect_timeout = Duration::from_secs(20);
        config.tls_versions = versions;
        let key =
            PhoneKey::from_pkcs8_pem(capf_test_support::key_pem(KeySpec::Rsa(RsaBits::B2048)))
                .unwrap();
        Phone::new(config, Arc::new(KeyPool(vec![key]))).unwrap()
    }

    fn status(&self) -> OperationStatus {
        self.store.device(&dn(PHONE)).unwrap().unwrap().status
    }

    /// Nothing was started for the device: still pending, no attempt, no LSC.
    fn unchanged(&self) {
        let d = self.store.device(&dn(PHONE)).unwrap().unwrap();
        assert_eq!((d.status, d.attempts), (OperationStatus::Pending, 0));
        assert!(self.store.lscs(&dn(PHONE)).unwrap().is_empty());
    }

    /// The device's LSC is installed in the store, and is `der`.
    fn installed(&self, der: &[u8]) {
        assert_eq!(self.status(), OperationStatus::Success);
        let lscs = self.store.lscs(&dn(PHONE)).unwrap();
        assert_eq!(lscs.len(), 1);
        assert_eq!(lscs[0].state, LscState::Installed);
        assert_eq!(lscs[0].der, der);
    }

    async fn stop(mut self) {
        self.server
            .take()
            .unwrap()
            .shutdown(Duration::from_secs(1))
            .await;
    }
}

/// `openssl verify` of an LSC (DER) against the CAPF certificate.
fn openssl_verify(dir: &Path, capf: &Path, lsc_der: &[u8]) {
    let lsc = capf_lsc::certificate_from_pem_or_der(lsc_der).unwrap();
    let lsc_path = dir.join("lsc-verify.pem");
    std::fs::write(&lsc_path, certificate_to_pem(&lsc).unwrap()).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-CAfile"])
        .arg(capf)
        .arg(&lsc_path)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn legacy_phone_enrolls(name: &str, versions: TlsVersions) {
    let lab = lab(name, |_| {}).await;
    let mut phone = lab.phone(lab.legacy_addr(), versions);
    let e = phone.run().await.unwrap();
    assert_eq!(e.end_reason(), Some(Reason::UPDATE_CERTIFICATE), "{e:?}");
    assert!(e.succeeded());
    assert_eq!(e.server, lab.legacy_addr());
    let (der, _) = e.installed.clone().expect("an LSC installed");
    lab.installed(&der);
    openssl_verify(&lab.dir, &lab.capf_path, &der);
    // The operation is done: the next session through the legacy listener hears so.
    let again = phone.run_once().await.unwrap();
    assert_eq!(again.end_reason(), Some(Reason::NO_ACTION));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_offering_only_tls_1_0_enrolls_through_the_legacy_listener() {
    legacy_phone_enrolls("tls10", TlsVersions::Tls10Only).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_offering_only_tls_1_1_enrolls_through_the_legacy_listener() {
    legacy_phone_enrolls("tls11", TlsVersions::Tls11Only).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rustls_listener_refuses_tls_1_0_and_1_1_with_no_session_started() {
    let lab = lab("refused", |_| {}).await;
    for versions in [TlsVersions::Tls10Only, TlsVersions::Tls11Only] {
        let mut phone = lab.phone(lab.main_addr(), versions);
        match phone.run_once().await {
            Err(capf_phone::Error::Connect { last, .. }) => {
                assert!(last.to_string().contains("TLS handshake"), "{last}");
            }
            other => panic!("{versions:?} got through the rustls listener: {other:?}"),
        }
    }
    lab.unchanged();
    // The same through Python's ssl: the handshake fails, no AUTH_REQUEST arrives.
    let out = tokio::task::block_in_place(|| python(&lab, lab.main_addr(), "enroll", "1.0"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SSL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.unchanged();
    lab.stop().await;
}

#[test]
fn without_an_rsa_capf_key_the_legacy_listener_is_refused_at_start() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("capf-legacy-ec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = KeySpec::Ec(Curve::P256);
    let issuer = capf_test_support::capf_issuer(spec);
    std::fs::write(
        dir.join("capf.pem"),
        certificate_to_pem(issuer.certificate()).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("capf.key"), capf_test_support::key_pem(spec)).unwrap();
    let store = Arc::new(SqliteStore::open(&dir).unwrap());
    let mut config = Config::new(dir.join("capf.pem"), dir.join("capf.key"));
    config.listen = vec!["127.0.0.1:0".parse().unwrap()];
    config.legacy_tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    let err = runtime
        .block_on(CapfServer::bind(config.clone(), store.clone()))
        .unwrap_err();
    assert!(
        matches!(err, capf_server::Error::LegacyTlsNeedsRsa { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("needs an RSA CAPF certificate"),
        "{err}"
    );
    // Without the legacy listener the same EC identity serves.
    config.legacy_tls_listen.clear();
    runtime
        .block_on(CapfServer::bind(config, store))
        .expect("an EC CAPF certificate serves the rustls listener");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The independent client: Python's `ssl` module (CPython over the system OpenSSL) at TLS 1.0
/// and security level 0, offering only AES128-SHA (RSA key exchange), speaking the CAPF
/// messages by hand from the spec's bytes (sections 2, 4 and 12), its RSA key made by the
/// `openssl` command. Modes: `enroll` (a whole Install/Upgrade), `bad-element` (an
/// AUTH_RESPONSE with an unknown element), `garbage` (bytes that are no CAPF message, inside
/// TLS), `not-tls` (bytes that are no TLS record, on the socket after the handshake).
const PYTHON_PHONE: &str = r#"
import os, socket, ssl, struct, subprocess, sys

import warnings
warnings.simplefilter("ignore", DeprecationWarning)   # TLSVersion.TLSv1, on purpose

host, port, cafile, device, mode, workdir, tls = sys.argv[1:8]
port = int(port)

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False          # the CAPF certificate names no host (spec rule T3)
ctx.load_verify_locations(cafile)
if tls == "1.0":
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("AES128-SHA:@SECLEVEL=0")
else:                               # the rustls listener, for comparison
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=30))
print("version", s.version())
print("cipher", s.cipher()[0])

def read_exact(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data

def recv():
    # header: protocol id 0x55, command, session id (u32), body length (u16)
    try:
        head = read_exact(8)
    except (ssl.SSLError, ConnectionError):
        return None
    if head is None:
        return None
    proto, command, sid, length = struct.unpack(">BBIH", head)
    assert proto == 0x55, head
    body = read_exact(length)
    elements = {}
    i = 0
    while i < len(body):
        tag, l = struct.unpack(">BH", body[i:i + 3])
        elements[tag] = body[i + 3:i + 3 + l]
        i += 3 + l
    return command, sid, elements

def tlv(tag, value):
    return struct.pack(">BH", tag, len(value)) + value

def send(command, sid, body):
    s.sendall(struct.pack(">BBIH", 0x55, command, sid, len(body)) + body)

def closed():
    m = recv()
    assert m is None, m
    print("closed")

command, sid, e = recv()
assert command == 1, command                         # AUTH_REQUEST
print("AUTH_REQUEST version", e[7][0])

def end():
    m = recv()
    if m is not None:
        command, _, e = m
        assert command == 0x0f, command
        print("END_SESSION", e[1][0])
    closed()
    sys.exit(0)

if mode == "bad-element":
    send(2, sid, tlv(0x99, b"\x00"))                 # unknown tag 0x99, framing intact
    end()
if mode == "framing":
    s.sendall(struct.pack(">BBIH", 0x55, 2, sid, 0xffff))   # a body past the 16376-byte cap
    end()
if mode == "garbage":
    s.sendall(b"\x16" * 40)                          # not a CAPF header
    end()
if mode == "not-tls":
    os.write(s.fileno(), b"\x99\x03\x01\xff\xff" + b"\x00" * 16)   # past the TLS layer
    end()

# AUTH_RESPONSE: REASON 1, VERSION 3, PASSWORD "" (no authentication string), DEVICE_NAME
send(2, sid, tlv(1, b"\x01") + tlv(7, b"\x03") + tlv(0x0b, b"\x00")
     + tlv(0x0d, device.encode() + b"\x00"))
command, _, e = recv()
assert command == 3, command                         # KEY_GEN_REQUEST
assert e[0x0a] == b"\x08\x00", e                     # KEY_SIZE 2048
key = os.path.join(workdir, "py-key.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", key], check=True, capture_output=True)
spki = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                      check=True, capture_output=True).stdout
send(4, sid, tlv(9, spki))                           # KEY_GEN_RESPONSE: PUBLIC_KEY
command, _, e = recv()
assert command == 9, command                         # STORE_CERT_REQUEST
assert e[3] == b"\x01", e                            # CERTIFICATE_TYPE LSC
value = e[4]
assert value[0] == 1 and value[3:5] == b"\x00\x01", value[:5]
der = value[5:]
assert struct.unpack(">H", value[1:3])[0] == len(der) + 2
lsc = os.path.join(workdir, "py-lsc.der")
with open(lsc, "wb") as f:
    f.write(der)
# the LSC carries the key made here
lsc_spki = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", lsc, "-noout", "-pubkey"],
                          check=True, capture_output=True).stdout
key_spki = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"],
                          check=True, capture_output=True).stdout
assert lsc_spki == key_spki
send(10, sid, tlv(1, b"\x01"))                       # STORE_CERT_RESPONSE success
command, _, e = recv()
assert command == 0x0f, command                      # END_SESSION
print("END_SESSION", e[1][0])
closed()
"#;

/// Runs the Python phone in `mode` at TLS `tls` ("1.0", or "1.2" for the rustls listener).
fn python(lab: &Lab, addr: SocketAddr, mode: &str, tls: &str) -> std::process::Output {
    let script = lab.dir.join("python_phone.py");
    std::fs::write(&script, PYTHON_PHONE).unwrap();
    Command::new("python3")
        .arg(&script)
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(&lab.capf_path)
        .arg(PHONE)
        .arg(mode)
        .arg(&lab.dir)
        .arg(tls)
        .output()
        .expect("python3 runs")
}

/// Runs the Python phone in `mode` against the legacy listener at TLS 1.0, off the runtime's
/// threads; what it printed.
async fn python_ok(lab: &Lab, mode: &str) -> String {
    let out = tokio::task::block_in_place(|| python(lab, lab.legacy_addr(), mode, "1.0"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python phone ({mode}): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("version TLSv1\n"), "{stdout}");
    assert!(stdout.contains("cipher AES128-SHA\n"), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ssl_at_tls_1_0_and_security_level_0_enrolls_through_the_legacy_listener() {
    let lab = lab("python", |_| {}).await;
    let stdout = python_ok(&lab, "enroll").await;
    assert!(stdout.contains("AUTH_REQUEST version 3\n"), "{stdout}");
    assert!(stdout.contains("END_SESSION 1\n"), "{stdout}");
    assert!(stdout.ends_with("closed\n"), "{stdout}");
    let der = std::fs::read(lab.dir.join("py-lsc.der")).unwrap();
    lab.installed(&der);
    openssl_verify(&lab.dir, &lab.capf_path, &der);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_handshake_is_handled_as_on_the_rustls_listener() {
    let lab = lab("garbage", |_| {}).await;
    // What the phone hears after AUTH_REQUEST, on each listener.
    let after_auth_request = |stdout: &str| {
        let at = stdout
            .find("AUTH_REQUEST version 3\n")
            .expect("AUTH_REQUEST");
        stdout[at..].to_owned()
    };
    let cases = [
        // Bad content with intact framing: END_SESSION 7, then the close.
        ("bad-element", "END_SESSION 7\nclosed\n"),
        // A header announcing a body past the cap: closed without a message.
        ("framing", "closed\n"),
        // No CAPF header at all (protocol id 0x16): END_SESSION 7.
        ("garbage", "END_SESSION 7\nclosed\n"),
        // Bytes that are no TLS record: the TLS layer fails, the session ends unheard.
        ("not-tls", "closed\n"),
    ];
    for (mode, heard) in cases {
        let legacy = after_auth_request(&python_ok(&lab, mode).await);
        assert_eq!(legacy, format!("AUTH_REQUEST version 3\n{heard}"), "{mode}");
        lab.unchanged();
        let out = tokio::task::block_in_place(|| python(&lab, lab.main_addr(), mode, "1.2"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{mode} over rustls: {stdout}");
        assert_eq!(
            after_auth_request(&stdout),
            legacy,
            "{mode}: as on the rustls listener"
        );
        lab.unchanged();
    }
    // The listener still serves a phone afterwards.
    let mut phone = lab.phone(lab.legacy_addr(), TlsVersions::Tls10Only);
    assert!(phone.run().await.unwrap().succeeded());
    lab.stop().await;
}

/// A TLS 1.0 ClientHello (record version 3.1, client version 3.1) offering
/// TLS_RSA_WITH_AES_128_CBC_SHA only, with no extensions.
fn tls10_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x01];
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x02, 0x00, 0x2f]); // one suite: AES128-SHA
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(hello.len()).unwrap().to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_1_0_client_hello_then_silence_is_cut_off_at_the_handshake_deadline() {
    let lab = lab("silent", |c| {
        c.tls_handshake_timeout = Duration::from_secs(1)
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(lab.legacy_addr())
        .await
        .unwrap();
    tcp.write_all(&tls10_client_hello()).await.unwrap();
    // The server answers (ServerHello, TLS 1.0), waits for the rest of the handshake, and
    // closes the connection at its deadline while this client stays silent.
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
            .await
            .expect("the server closes the connection")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        &received[..3],
        &[0x16, 0x03, 0x01],
        "a TLS 1.0 handshake record"
    );
    assert_eq!(received[5], 0x02, "ServerHello");
    lab.unchanged();
    // The silent peer held nothing: a phone enrolls next.
    let mut phone = lab.phone(lab.legacy_addr(), TlsVersions::Tls10Only);
    assert!(phone.run().await.unwrap().succeeded());
    lab.stop().await;
}
