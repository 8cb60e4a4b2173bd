//! capfctl against a PostgreSQL store (issue 16: "every capfctl verb works against either
//! store"): the key flows with `--store postgres://...`, the state read back through `PgStore`
//! with the data directory's key file: devices added, scheduled and shown; a bulk insert and an
//! update by query (dry run and real); settings and the keepalive; generated authentication
//! strings that the store checks; the status report; a Run Later job listed and cancelled; the
//! password never on the command line and a missing key file refused; a role with a password
//! reached with `--store-password-file` and `PGPASSWORD`, the password in no output; and every
//! other verb that takes `--store` (templates, device update, job show, the Offline CA's CSR
//! export and certificate import, the Online CA settings, LSC revoke, monitor, CRL, export,
//! stale LSCs, accounts and tokens, the LDAP sync), each with its effect checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use capf_store::{AdminStore, DeviceName, JobState, OperationStatus, PgStore, SessionStore};
use capf_test_support::postgres::{Database, cluster};
use serde_json::Value;

struct Scratch {
    dir: PathBuf,
    db: Database,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("capfctl-pg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch {
            dir,
            db: cluster().database(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(common::example("capfctl"))
            .current_dir(&self.dir)
            .args(args)
            .arg("--data")
            .arg(self.data())
            .args(["--store", &self.db.url])
            .env_remove("PGPASSWORD")
            .output()
            .unwrap()
    }

    /// As [`Scratch::run`], `stdin` written to its standard input.
    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(common::example("capfctl"))
            .current_dir(&self.dir)
            .args(args)
            .arg("--data")
            .arg(self.data())
            .args(["--store", &self.db.url])
            .env_remove("PGPASSWORD")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A verb without a store (`capf-cert generate`, `lsc issue`, `trust ...`), in the scratch
    /// directory: its standard output.
    fn plain(&self, args: &[&str]) -> String {
        let out = Command::new(common::example("capfctl"))
            .current_dir(&self.dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
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

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        err
    }

    /// The store as a node sees it, with the data directory's key file.
    fn store(&self) -> PgStore {
        let key: [u8; 32] = std::fs::read(self.data().join("auth-string.key"))
            .unwrap()
            .try_into()
            .unwrap();
        PgStore::connect(self.db.url.parse().unwrap(), key).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dn(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

const CSV: &str = "\
Device Name,Description,Device Pool,Model,Operation,Auth Mode,Auth String,Key Spec,Complete-By
SEP001122334455,lobby phone,Lobby,Cisco 8865,install,,123456,ec-preferred/3072/P-384,2099-12-31
SEP001122334466,,Lobby,Cisco 8865,delete,null-string,,,
SEP0011223344AA,,,,,,,,
CSFjsmith,jabber,Remote,Jabber,none,,,,
";

#[test]
fn the_key_capfctl_flows_work_against_postgresql() {
    let s = Scratch::new("flows");
    // One device by hand, then scheduled and shown.
    let added = s.json(&["device", "add", "CSFjane", "--pool", "Home"]);
    assert_eq!(added["status"], "none");
    let scheduled = s.json(&[
        "device",
        "schedule",
        "CSFjane",
        "--operation",
        "install",
        "--rsa",
        "3072",
    ]);
    assert_eq!(scheduled["status"], "pending");
    let shown = s.json(&["device", "show", "CSFjane"]);
    assert_eq!(shown["operation"]["rsa_bits"], 3072);
    assert_eq!(shown["audit"][0]["action"], "operation scheduled");
    let store = s.store();
    let jane = store.device(&dn("CSFjane")).unwrap().unwrap();
    assert_eq!(jane.status, OperationStatus::Pending);
    assert_eq!(jane.device_pool, "Home");

    // A bulk insert (one transaction), then an update by query: dry run, then for real.
    std::fs::write(s.dir.join("devices.csv"), CSV).unwrap();
    let inserted = s.json(&["bulk", "insert", "devices.csv"]);
    assert_eq!(inserted["added"], 4, "{inserted}");
    let err = s.fails(&["bulk", "insert", "devices.csv"]);
    assert!(err.contains("devices.csv:2"), "{err}");
    assert_eq!(store.list_devices().unwrap().len(), 5);
    let args = [
        "bulk",
        "update",
        "--in-pool",
        "Lobby",
        "--model",
        "Cisco 8845",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = s.json(&dry);
    assert_eq!(
        (&out["dry_run"], &out["changed"]),
        (&true.into(), &2.into())
    );
    assert_eq!(
        store.device(&dn("SEP001122334455")).unwrap().unwrap().model,
        "Cisco 8865"
    );
    assert_eq!(s.json(&args)["changed"], 2);
    assert_eq!(
        store.device(&dn("SEP001122334466")).unwrap().unwrap().model,
        "Cisco 8845"
    );
    let listed = s.json(&["device", "list", "--in-pool", "Lobby"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Settings and the keepalive are the cluster's: what capfctl sets, every node reads.
    assert_eq!(
        s.json(&["keep-alive", "set", "42"])["keepalive_minutes"],
        42
    );
    s.ok(&["settings", "set", "max_sessions", "250"]);
    let settings = store.settings().unwrap();
    assert_eq!(settings.keepalive.minutes(), 42);
    assert_eq!(settings.max_sessions, 250);
    let shown = s.json(&["settings", "show"]);
    assert_eq!(
        shown.as_array().unwrap().len(),
        capf_store::Settings::KEYS.len()
    );

    // Generated authentication strings: printed once, stored as HMACs the store checks.
    let out = s.json(&[
        "auth-string",
        "generate",
        "--name",
        "SEP*",
        "--csv",
        "strings.csv",
    ]);
    let devices = out["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    for d in devices {
        let name = d["name"].as_str().unwrap();
        let string = d["auth_string"].as_str().unwrap();
        assert!(store.check_auth_string(&dn(name), string).unwrap());
    }

    // The status report.
    let status = s.json(&["status"]);
    assert_eq!(status["pending"], 3, "{status}");
    assert_eq!(status["no_operation"], 2, "{status}");

    // A Run Later job: stored, listed, cancelled.
    let job = s.json(&[
        "bulk",
        "update",
        "--all",
        "--description",
        "later",
        "--at",
        "2099-01-01T00:00:00Z",
    ]);
    let id = job["id"].as_i64().unwrap();
    let list = s.json(&["job", "list"]);
    assert_eq!(list[0]["id"], id);
    s.ok(&["job", "cancel", &id.to_string()]);
    assert_eq!(store.job(id).unwrap().unwrap().state, JobState::Cancelled);

    // Removal, and the audit of it.
    s.ok(&["device", "remove", "CSFjane"]);
    assert!(store.device(&dn("CSFjane")).unwrap().is_none());
}

#[test]
fn a_data_directory_without_the_key_file_is_refused_and_the_password_comes_from_a_file() {
    let s = Scratch::new("key");
    // Reading an existing store needs the cluster's key file: none is made by a typo.
    let err = s.fails(&["device", "list"]);
    assert!(err.contains("authentication-string key file"), "{err}");
    assert!(!s.data().exists());
    // The password from a file (trust authentication ignores it; the file must be readable).
    let pw = s.dir.join("pw");
    std::fs::write(&pw, "not-needed\n").unwrap();
    s.ok(&["device", "add", "CSFjane"]);
    let out = s.run(&[
        "device",
        "list",
        "--store-password-file",
        pw.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A password in the URL is refused without being shown.
    let out = Command::new(common::example("capfctl"))
        .args(["device", "list", "--store"])
        .arg(format!("postgres://capf:hunter2@127.0.0.1:{}/x", s.db.port))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("PGPASSWORD"), "{err}");
}

/// The PostgreSQL password, given to capfctl one way.
#[derive(Clone, Copy, Debug)]
enum Password<'a> {
    File(&'a std::path::Path),
    Env(&'a str),
}

/// capfctl `args` on the password database `url` with data directory `data`, the password
/// given as `password`.
fn capfctl_with(
    url: &str,
    data: &std::path::Path,
    password: Password<'_>,
    args: &[&str],
) -> Output {
    let mut command = Command::new(common::example("capfctl"));
    command
        .args(args)
        .arg("--data")
        .arg(data)
        .args(["--store", url])
        .env_remove("PGPASSWORD");
    match password {
        Password::File(path) => {
            command.arg("--store-password-file").arg(path);
        }
        Password::Env(password) => {
            command.env("PGPASSWORD", password);
        }
    }
    command.output().unwrap()
}

/// A role with a password (scram-sha-256): capfctl reaches it with `--store-password-file` and
/// with `PGPASSWORD`, and the password is in no output, `--json` or not; a wrong one is one line
/// and exit 1 without it.
#[test]
fn capfctl_reaches_a_password_role_and_never_shows_the_password() {
    use capf_test_support::postgres::PASSWORD;
    let s = Scratch::new("password");
    let db = cluster().password_database();
    let file = s.dir.join("pg-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let shows_no_password = |out: &Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(PASSWORD), "{text}");
        text
    };
    let by_file = Password::File(&file);
    let by_env = Password::Env(PASSWORD);
    for (password, name) in [(by_file, "CSFfile"), (by_env, "CSFenv")] {
        for args in [
            &["device", "add", name, "--json"][..],
            &["device", "list", "--json"],
            &["device", "show", name],
            &["settings", "show", "--json"],
            &["status", "--json"],
        ] {
            let out = capfctl_with(&db.url, &s.data(), password, args);
            let text = shows_no_password(&out);
            assert!(out.status.success(), "{password:?} {args:?}: {text}");
        }
    }
    let out = capfctl_with(&db.url, &s.data(), by_env, &["device", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["CSFenv", "CSFfile"], "{listed}");

    // A wrong password, either way: one line, exit 1, neither password in it.
    let wrong = format!("{PASSWORD}-but-wrong");
    let wrong_file = s.dir.join("wrong-password");
    std::fs::write(&wrong_file, format!("{wrong}\n")).unwrap();
    for password in [Password::File(&wrong_file), Password::Env(&wrong)] {
        let out = capfctl_with(&db.url, &s.data(), password, &["device", "list", "--json"]);
        let text = shows_no_password(&out);
        assert_eq!(out.status.code(), Some(1), "{password:?}: {text}");
        assert!(out.stdout.is_empty(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("password authentication failed"), "{err}");
    }
    // No password at all: refused as well.
    let out = Command::new(common::example("capfctl"))
        .args(["device", "list", "--store", &db.url, "--data"])
        .arg(s.data())
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

fn days(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n * 86_400)
}

/// Registers `name` and records an LSC for it on `store`, installed unless `install` is false.
fn with_lsc(
    store: &PgStore,
    name: &str,
    serial: &[u8],
    der: &[u8],
    not_after: std::time::SystemTime,
    install: bool,
) {
    use capf_store::{IssuedLsc, NewDevice, Operation};
    let now = std::time::SystemTime::now();
    if store.device(&dn(name)).unwrap().is_none() {
        store.add_device(&NewDevice::new(dn(name)), now).unwrap();
    }
    store
        .schedule(
            &dn(name),
            Operation::InstallUpgrade(capf_lsc::KeyPolicy::default()),
            None,
            now,
        )
        .unwrap();
    store.begin_attempt(&dn(name), now).unwrap();
    store
        .record_lsc_issued(
            &dn(name),
            &IssuedLsc {
                serial: serial.to_vec(),
                der: der.to_vec(),
                not_before: now - days(400),
                not_after,
            },
            now,
        )
        .unwrap();
    if install {
        store.confirm_lsc_installed(&dn(name), serial, now).unwrap();
    }
}

/// The rest of capfctl's verbs that take `--store`, against PostgreSQL, each with its effect
/// read back from the store or from its output: template add/list/remove (and a bulk insert
/// that applies the template), device update, job show, the Offline CA (csr list, count, dump,
/// export, delete; cert import of a certificate the CA signed for the exported CSR), Online CA
/// settings set/show, lsc revoke, monitor, crl, export, stale-lsc list/delete, keep-alive show,
/// cacerts (reading the stored CA), admin add/list/token create/remove. (`trust ...` takes a
/// trust directory as `--store`, not a database; `ldap sync` is the next test.)
#[test]
fn the_other_verbs_work_against_postgresql() {
    use capf_lsc::LscSigner;
    use capf_store::{
        CaRequestState, CertificateIssuer, LscState, NewCaRequest, NewDevice, Operation,
    };
    use capf_test_support::key_pem;
    use std::time::SystemTime;
    let s = Scratch::new("verbs");
    // The data directory: the cluster's key file (made by the first verb) and a CAPF
    // certificate (P-256) that signs the CRL, the hand-issued LSC and, as the offline CA, the
    // imported certificate.
    s.ok(&["device", "add", "SEP00DD00000001"]);
    s.plain(&[
        "capf-cert",
        "generate",
        "--key-type",
        "p256",
        "--days",
        "30",
        "--cert-out",
        "data/capf.pem",
        "--key-out",
        "data/capf.key",
    ]);
    let store = s.store();

    // Templates, and a bulk insert that applies one.
    s.ok(&[
        "template",
        "add",
        "Lobby",
        "--pool",
        "Lobby",
        "--model",
        "Cisco 8865",
        "--operation",
        "install",
        "--key-order",
        "ec-only",
        "--curve",
        "P-384",
    ]);
    let templates = s.json(&["template", "list"]);
    assert_eq!(templates[0]["name"], "Lobby", "{templates}");
    assert_eq!(templates[0]["operation"]["key_order"], "ec-only");
    std::fs::write(
        s.dir.join("t.csv"),
        "Device Name,Description\nSEP00DD00000002,by template\n",
    )
    .unwrap();
    let inserted = s.json(&["bulk", "insert", "t.csv", "--template", "Lobby"]);
    assert_eq!(inserted["added"], 1, "{inserted}");
    let templated = store.device(&dn("SEP00DD00000002")).unwrap().unwrap();
    assert_eq!(templated.device_pool, "Lobby");
    assert_eq!(templated.status, OperationStatus::Pending);
    s.ok(&["template", "remove", "Lobby"]);
    assert!(s.json(&["template", "list"]).as_array().unwrap().is_empty());

    // device update.
    s.ok(&[
        "device",
        "update",
        "SEP00DD00000001",
        "--description",
        "front desk",
        "--pool",
        "Desk",
    ]);
    let updated = store.device(&dn("SEP00DD00000001")).unwrap().unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.device_pool.as_str()),
        ("front desk", "Desk")
    );

    // job show, of a Run Later job.
    let at = capf_admin::rfc3339(SystemTime::now() + days(1));
    let job = s.json(&[
        "bulk",
        "update",
        "--all",
        "--description",
        "later",
        "--at",
        &at,
    ]);
    let id = job["id"].as_i64().unwrap().to_string();
    let shown = s.json(&["job", "show", &id]);
    assert_eq!(shown["id"], job["id"], "{shown}");
    assert_eq!(shown["state"], "scheduled", "{shown}");
    s.ok(&["job", "cancel", &id]);

    // The Offline CA: two requests (a phone's endpoint CSR, as capfd records them).
    let phone_key =
        capf_lsc::IssuerKey::from_pkcs8_pem(key_pem(capf_lsc::KeySpec::Ec(capf_lsc::Curve::P256)))
            .unwrap();
    let spki = capf_lsc::der::Encode::to_der(phone_key.public_key()).unwrap();
    let mut requests = Vec::new();
    for name in ["SEP00DD00000003", "SEP00DD00000004"] {
        let mut new = NewDevice::new(dn(name));
        new.operation = Operation::InstallUpgrade(capf_lsc::KeyPolicy::default());
        store.add_device(&new, SystemTime::now()).unwrap();
        let subject: capf_lsc::x509_cert::name::Name = format!("CN={name}").parse().unwrap();
        let csr = capf_lsc::der::Encode::to_der(&capf_lsc::capf_csr(&subject, &phone_key).unwrap())
            .unwrap();
        let request = store
            .record_ca_request(
                &dn(name),
                &NewCaRequest {
                    mode: CertificateIssuer::OfflineCa,
                    csr: &csr,
                    public_key: &spki,
                    ca_request_id: None,
                },
                SystemTime::now(),
            )
            .unwrap();
        requests.push(request.id.to_string());
    }
    assert_eq!(s.ok(&["csr", "count"]).trim(), "2");
    let listed = s.json(&["csr", "list", "--state", "pending"]);
    assert_eq!(listed[0]["device"], "SEP00DD00000003", "{listed}");
    assert_eq!(listed[0]["mode"], "offline-ca");
    s.ok(&["csr", "export", "--dir", "out"]);
    let index = std::fs::read_to_string(s.dir.join("out/index.csv")).unwrap();
    assert_eq!(index.lines().count(), 3, "{index}");
    let file = format!("SEP00DD00000003-{}.csr", requests[0]);
    assert_eq!(
        s.ok(&["csr", "dump", &requests[0]]),
        std::fs::read_to_string(s.dir.join("out").join(&file)).unwrap()
    );
    s.ok(&["csr", "delete", &requests[1]]);
    assert_eq!(s.ok(&["csr", "count"]).trim(), "1");
    // The "offline CA" (this data directory's CAPF certificate, trusted in CAPF-trust) signs
    // the exported request's key; cert import records it for the request.
    let public_key = s.dir.join("phone.pub");
    std::fs::write(
        &public_key,
        capf_lsc::der::EncodePem::to_pem(
            phone_key.public_key(),
            capf_lsc::der::pem::LineEnding::LF,
        )
        .unwrap(),
    )
    .unwrap();
    s.plain(&[
        "lsc",
        "issue",
        "--issuer",
        "data/capf.pem",
        "--issuer-key",
        "data/capf.key",
        "--public-key",
        "phone.pub",
        "--device",
        "SEP00DD00000003",
        "--days",
        "365",
        "--out",
        "signed.pem",
    ]);
    s.plain(&[
        "trust",
        "add-capf",
        "data/capf.pem",
        "--store",
        "data/trust",
    ]);
    let imported = s.json(&["cert", "import", "signed.pem", "--trust", "data/trust"]);
    let request = store
        .ca_request(requests[0].parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(request.state, CaRequestState::Issued, "{imported}");
    let serial = request.lsc_serial.unwrap();
    assert_eq!(store.lsc(&serial).unwrap().unwrap().state, LscState::Issued);
    let pending = s.json(&["csr", "list", "--state", "pending"]);
    assert!(pending.as_array().unwrap().is_empty(), "{pending}");

    // Online CA settings: the password from standard input, never shown.
    let out = s.run_stdin(
        &[
            "online-ca",
            "set",
            "--host",
            "ca.example.test",
            "--type",
            "est",
            "--username",
            "capf",
            "--password-stdin",
            "--label",
            "phones",
        ],
        "ca-Secret-1138\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = s.json(&["online-ca", "show"]);
    assert_eq!(shown["hostname"], "ca.example.test", "{shown}");
    assert_eq!(shown["label"], "phones", "{shown}");
    assert!(!shown.to_string().contains("ca-Secret-1138"), "{shown}");
    // cacerts asks the CA the store names: one at a port where nothing listens, so the error
    // shows the PostgreSQL-stored settings were read.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let out = s.run_stdin(
        &[
            "online-ca",
            "set",
            "--host",
            "localhost",
            "--port",
            &closed,
            "--type",
            "est",
            "--username",
            "capf",
            "--password-stdin",
        ],
        "ca-Secret-1138\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = s.fails(&["online-ca", "cacerts", "--trust", "data/trust"]);
    assert!(err.contains(&format!("localhost:{closed}")), "{err}");
    assert!(!err.contains("ca-Secret-1138"), "{err}");

    // LSCs: one installed (a real certificate, for export), one expired, one expiring soon, one
    // stale.
    let now = SystemTime::now();
    let pem = s.plain(&[
        "lsc",
        "issue",
        "--issuer",
        "data/capf.pem",
        "--issuer-key",
        "data/capf.key",
        "--public-key",
        "phone.pub",
        "--device",
        "SEP00DD00000005",
        "--days",
        "365",
    ]);
    let cert = capf_lsc::certificate_from_pem_or_der(pem.as_bytes()).unwrap();
    let real_der = capf_lsc::certificate_to_der(&cert).unwrap();
    let real_serial = cert.tbs_certificate().serial_number().as_bytes().to_vec();
    with_lsc(
        &store,
        "SEP00DD00000005",
        &real_serial,
        &real_der,
        now + days(365),
        true,
    );
    with_lsc(
        &store,
        "SEP00DD00000006",
        &[0x76, 6],
        &[0x30],
        now - days(1),
        true,
    );
    with_lsc(
        &store,
        "SEP00DD00000007",
        &[0x76, 7],
        &[0x30],
        now + days(9),
        true,
    );
    with_lsc(
        &store,
        "SEP00DD00000008",
        &[0x76, 8],
        &[0x30],
        now + days(99),
        false,
    );
    with_lsc(
        &store,
        "SEP00DD00000008",
        &[0x76, 9],
        &[0x30],
        now + days(99),
        true,
    );

    let exported = s.ok(&["export", "--serial", &capf_lsc::hex(&real_serial)]);
    assert_eq!(exported.trim(), pem.trim());
    // The installed LSCs of a query: 05, 06, 07 and 08's second.
    let csv = s.ok(&["export", "--name", "SEP00DD*", "--format", "csv"]);
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(
        csv.lines().any(|l| l.starts_with("SEP00DD00000008,7609,")),
        "{csv}"
    );

    // monitor: the expired LSC is revoked, the one expiring within 30 days reported.
    let report = s.json(&["monitor", "--days", "30"]);
    let text = report.to_string();
    assert!(text.contains("SEP00DD00000007"), "{report}");
    assert_eq!(
        store.lsc(&[0x76, 6]).unwrap().unwrap().state,
        LscState::Revoked,
        "{report}"
    );
    assert_eq!(
        store.lsc(&[0x76, 7]).unwrap().unwrap().state,
        LscState::Installed
    );

    // lsc revoke, and the CRL lists both revoked serials.
    let revoked = s.json(&["lsc", "revoke", "7607"]);
    assert_eq!(revoked["state"], "revoked", "{revoked}");
    assert_eq!(
        store.lsc(&[0x76, 7]).unwrap().unwrap().state,
        LscState::Revoked
    );
    let crl = s.json(&["crl", "--out", "revoked.crl"]);
    assert_eq!(crl["revoked"], serde_json::json!(["7606", "7607"]), "{crl}");
    assert!(std::fs::metadata(s.dir.join("revoked.crl")).unwrap().len() > 0);

    // stale-lsc: the replaced, never-installed one.
    let stale = s.json(&["stale-lsc", "list"]);
    assert_eq!(stale.as_array().unwrap().len(), 1, "{stale}");
    assert_eq!(stale[0]["serial"], "7608", "{stale}");
    assert_eq!(s.json(&["stale-lsc", "delete", "--all"])["deleted"], 1);
    assert!(store.lsc(&[0x76, 8]).unwrap().is_none());

    // keep-alive show.
    s.ok(&["keep-alive", "set", "33"]);
    assert_eq!(s.json(&["keep-alive", "show"])["keepalive_minutes"], 33);

    // Administrator accounts and an API token.
    let out = s.run_stdin(
        &["admin", "add", "alice", "--role", "read-only"],
        "Alice-pw-7731\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accounts = store.accounts().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].name.as_str(), "alice");
    assert!(!accounts[0].password_hash.contains("Alice-pw-7731"));
    let listed = s.json(&["admin", "list"]);
    assert_eq!(listed[0]["name"], "alice", "{listed}");
    let token = s.ok(&["admin", "token", "create", "alice", "--label", "metrics"]);
    assert!(!token.trim().is_empty());
    s.ok(&["admin", "remove", "alice"]);
    assert!(store.accounts().unwrap().is_empty());
}

/// `ldap sync` on PostgreSQL: the first sync applies the template to the directory's users.
#[test]
fn ldap_sync_adds_the_directorys_users_to_postgresql() {
    use capf_test_support::slapd::{Slapd, person_ldif};
    let s = Scratch::new("ldap");
    let ldif = format!("{}{}", person_ldif("alice"), person_ldif("bob"));
    let directory = Slapd::start("pg-sync", &ldif, None);
    let url = directory.url();
    let password = directory.password_file();
    s.ok(&[
        "template",
        "add",
        "phones",
        "--operation",
        "install",
        "--auth",
        "null-string",
        "--pool",
        "Directory",
    ]);
    let synced = s.json(&[
        "ldap",
        "sync",
        "--url",
        &url,
        "--bind-dn",
        Slapd::ADMIN_DN,
        "--password-file",
        password.to_str().unwrap(),
        "--base",
        Slapd::PEOPLE,
        "--device-name",
        "CSF+uid",
        "--template",
        "phones",
    ]);
    assert_eq!(synced["first_sync"], true, "{synced}");
    let store = s.store();
    for name in ["CSFalice", "CSFbob"] {
        let device = store.device(&dn(name)).unwrap().unwrap();
        assert_eq!(device.device_pool, "Directory", "{name}");
        assert_eq!(device.status, OperationStatus::Pending, "{name}");
    }
    assert!(
        store
            .directory_sync_state()
            .unwrap()
            .first_sync_at
            .is_some()
    );
}
