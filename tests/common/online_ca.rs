//! What the Online CA tests (`online_ca_est.rs`, `online_ca_microsoft.rs`) share: capfd in the
//! Online CA mode as a process, with capfctl and capf-phone against it. Included by each with
//! `#[path]` next to `mod common`.

// Each test binary uses a part of these.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::example;

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/capf-test-support/fixtures")
        .join(name)
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The configuration file of [`Capfd::start`]: the Online CA mode.
pub(crate) const ONLINE_CA_CONFIG: &str =
    "[settings]\ncertificate_issuer = \"online-ca\"\nca_retry_delay_seconds = 1\n";

/// One capfd in the Online CA mode, with its data directory.
pub(crate) struct Capfd {
    pub(crate) dir: PathBuf,
    pub(crate) listen: String,
    child: Child,
}

impl Drop for Capfd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Capfd {
    pub(crate) fn start(tag: &str) -> Capfd {
        Capfd::start_with(tag, ONLINE_CA_CONFIG, &[])
    }

    /// capfd with the configuration file `config` and more command-line arguments.
    pub(crate) fn start_with(tag: &str, config: &str, extra: &[&str]) -> Capfd {
        let dir = std::env::temp_dir().join(format!("online-ca-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let text = config;
        let config = dir.join("capfd.toml");
        std::fs::write(&config, text).unwrap();
        let child = Command::new(example("capfd"))
            .arg("--config")
            .arg(&config)
            .arg("--data")
            .arg(dir.join("data"))
            .args(["--listen", &listen])
            .args(extra)
            .stdout(std::fs::File::create(dir.join("capfd.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("capfd.err")).unwrap())
            .spawn()
            .unwrap();
        let capfd = Capfd { dir, listen, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&capfd.listen).is_err()
            || !capfd.data().join("capf.pem").exists()
        {
            assert!(Instant::now() < deadline, "capfd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        capfd
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn capfctl(&self, args: &[&str]) -> Command {
        let mut command = Command::new(example("capfctl"));
        command
            .current_dir(&self.dir)
            .args(args)
            .arg("--data")
            .arg(self.data());
        command
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&ok(&mut self.capfctl(&args))).unwrap()
    }

    /// `capfctl online-ca set` for `est`, the password on standard input.
    pub(crate) fn set_online_ca(&self, port: u16, password: &str, label: Option<&str>) -> Output {
        let port = port.to_string();
        let mut args = vec![
            "online-ca",
            "set",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--type",
            "est",
            "--username",
            "estuser",
            "--password-stdin",
        ];
        if let Some(label) = label {
            args.extend(["--label", label]);
        }
        self.set_with_password(&args, password)
    }

    /// `capfctl online-ca set` for `microsoft` on `localhost` (the name the double's HTTPS
    /// certificate carries), the password on standard input.
    pub(crate) fn set_microsoft(
        &self,
        port: u16,
        username: &str,
        password: &str,
        template: &str,
    ) -> Output {
        let port = port.to_string();
        self.set_with_password(
            &[
                "online-ca",
                "set",
                "--host",
                "localhost",
                "--port",
                &port,
                "--type",
                "microsoft",
                "--username",
                username,
                "--password-stdin",
                "--template",
                template,
            ],
            password,
        )
    }

    /// `capfctl ARGS`, writing `password` as one line to its standard input.
    pub(crate) fn set_with_password(&self, args: &[&str], password: &str) -> Output {
        let mut child = self
            .capfctl(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{password}").unwrap();
        }
        child.wait_with_output().unwrap()
    }

    pub(crate) fn trust_root(&self, root: &Path) {
        let mut command = Command::new(example("capfctl"));
        command
            .current_dir(&self.dir)
            .args(["trust", "upload", "--purpose", "CAPF-trust", "--store"])
            .arg(self.data().join("trust"))
            .arg(root);
        ok(&mut command);
    }

    pub(crate) fn add_device(&self, device: &str) {
        ok(&mut self.capfctl(&["device", "add", device, "--operation", "install"]));
    }

    pub(crate) fn phone(&self, device: &str, out: &Path, max_retry_wait: &str) -> Output {
        Command::new(example("capf-phone"))
            .args(["--server", &self.listen, "--device", device, "--trust"])
            .arg(self.data().join("capf.pem"))
            .arg("--out")
            .arg(out)
            .args(["--max-retry-wait", max_retry_wait])
            .output()
            .unwrap()
    }

    pub(crate) fn device(&self, device: &str) -> Value {
        let shown = self.json(&["device", "show", device]);
        shown.get("device").cloned().unwrap_or(shown)
    }

    /// The device once its status is `status`, within 10 s.
    pub(crate) fn device_when(&self, device: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let shown = self.device(device);
            if shown["status"] == status || Instant::now() > deadline {
                return shown;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A phone directory with a fixture key as its pending key.
    pub(crate) fn phone_dir(&self, name: &str, key: &str) -> PathBuf {
        let out = self.path(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(fixture(key), out.join("pending.key")).unwrap();
        out
    }

    /// Waits until capfd has picked up the Online CA settings and the trust store (each
    /// re-read every 2 s).
    pub(crate) fn settle(&self) {
        std::thread::sleep(Duration::from_millis(2500));
    }
}

/// The LSC a phone stored in `out`, as a PEM file for `openssl verify`.
pub(crate) fn lsc_pem(out: &Path) -> PathBuf {
    for name in ["lsc.pem", "lsc.der", "lsc.crt"] {
        let path = out.join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "no LSC in {}: {:?}",
        out.display(),
        std::fs::read_dir(out).unwrap().collect::<Vec<_>>()
    );
}
