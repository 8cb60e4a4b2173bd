//! capfd nodes on one PostgreSQL store, for the cluster tests (`#[path]`-included by the test
//! binaries that need it): each node its own data directory (with the cluster's one
//! authentication-string key file) and port, killed (SIGKILL) on drop.

// Each test binary uses a part of these.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use capf_lsc::{Curve, KeySpec};
use capf_phone::{Enrollment, KeySource, Phone, PhoneConfig};
use capf_store::{DeviceName, PgStore};

/// The cluster's authentication-string key: every node's data directory holds this file.
pub(crate) const KEY: [u8; 32] = [0x5a; 32];

/// The key spec the tests' devices are scheduled for: EC, so no RSA key generation dominates.
pub(crate) const SPEC: KeySpec = KeySpec::Ec(Curve::P256);

/// A scratch directory, removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("capf-cluster-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Node `n`'s data directory, holding the cluster's key file.
    pub(crate) fn node_dir(&self, n: u32) -> PathBuf {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = self.0.join(format!("node{n}"));
        if !dir.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.join("auth-string.key"))
                .unwrap();
            std::io::Write::write_all(&mut file, &KEY).unwrap();
        }
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The store as the tests see it (not a node: no leases of its own).
pub(crate) fn store(url: &str) -> PgStore {
    PgStore::connect(url.parse().unwrap(), KEY).unwrap()
}

/// One capfd process serving from `url`.
pub(crate) struct Node {
    child: Option<Child>,
    pub(crate) dir: PathBuf,
    pub(crate) url: String,
    pub(crate) host: &'static str,
    pub(crate) port: u16,
    args: Vec<String>,
}

impl Node {
    /// Starts capfd on `host` at a free port, with data directory `dir`, and waits until it
    /// listens.
    pub(crate) fn start(dir: &Path, url: &str, host: &'static str) -> Node {
        Node::start_with(dir, url, host, &[])
    }

    /// As [`Node::start`], with more arguments (`--node NAME`, `--config FILE`).
    pub(crate) fn start_with(dir: &Path, url: &str, host: &'static str, args: &[&str]) -> Node {
        let port = TcpListener::bind((host, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut node = Node {
            child: None,
            dir: dir.to_owned(),
            url: url.to_owned(),
            host,
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        node.spawn();
        node
    }

    /// `host:port`.
    pub(crate) fn listen(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("capfd.log"))
            .unwrap();
        let mut command = Command::new(crate::common::example("capfd"));
        command
            .arg("--data")
            .arg(&self.dir)
            .args(["--store", &self.url, "--listen", &self.listen()])
            .env_remove("PGPASSWORD")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        command.args(&self.args);
        let mut child = command.spawn().unwrap();
        let started = Instant::now();
        while TcpStream::connect(self.listen()).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("capfd exited ({status}): {}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "capfd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    /// The node's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("capfd.log")).unwrap_or_default()
    }

    /// Whether the process still runs.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().is_ok_and(|status| status.is_none()))
    }

    /// SIGKILL, no grace.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, on the same port and data directory.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The CAPF certificate the node's data directory holds (PEM).
    pub(crate) fn capf_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("capf.pem")).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One phone session against `node` (no retries), trusting `trust_pem`.
pub(crate) async fn phone(
    host: &str,
    port: u16,
    trust_pem: &[u8],
    name: &DeviceName,
    keys: Arc<dyn KeySource>,
) -> Enrollment {
    try_phone(host, port, trust_pem, name, keys).await.unwrap()
}

/// As [`phone`], a connection failure (TLS refused, say) as an error.
pub(crate) async fn try_phone(
    host: &str,
    port: u16,
    trust_pem: &[u8],
    name: &DeviceName,
    keys: Arc<dyn KeySource>,
) -> Result<Enrollment, capf_phone::Error> {
    let mut config = PhoneConfig::new(name.clone(), host, trust_pem).unwrap();
    config.port = port;
    config.retries = 0;
    Phone::new(config, keys).unwrap().run_once().await
}

/// A tokio runtime for the phones: the store's synchronous client must not run inside one, so
/// the tests call the store outside `block_on`.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
