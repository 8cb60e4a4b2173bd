//! A throwaway PostgreSQL cluster for tests: one per test binary, on 127.0.0.1 at a free port,
//! its data in a temporary directory, a fresh database per test.
//!
//! [`cluster`] starts it on first use (Debian's `postgresql` package: `initdb` and `postgres`
//! from `/usr/lib/postgresql/<version>/bin`, run as the `postgres` user when the tests run as
//! root, since PostgreSQL refuses to run as root). A small shell keeper runs the server and
//! reads its standard input from this process: when the test binary ends, however it ends, the
//! pipe closes, and the keeper stops the server (fast shutdown) and removes the directory. A
//! missing binary fails the test with a message naming the package to install.
//! [`Cluster::stop`] and [`Cluster::restart`] take the server away and bring it back (a database
//! lost mid-run).
//!
//! Every role logs in without a password (trust) except [`PASSWORD_ROLE`], which must give
//! [`PASSWORD`] (scram-sha-256 on 127.0.0.1): [`Cluster::password_database`] is a database it
//! owns, for the tests of the password's paths (a file, `PGPASSWORD`, a wrong one).
//!
//! ```no_run
//! # fn main() -> Result<(), postgres::Error> {
//! let db = capf_test_support::postgres::cluster().database();
//! let mut client = postgres::Client::connect(&db.url, postgres::NoTls)?;
//! client.simple_query("SELECT 1")?;
//! # Ok(())
//! # }
//! ```

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What to install when the server binaries are missing.
pub const INSTALL: &str = "install Debian's `postgresql` package (apt-get install -y postgresql), \
     or run `cargo xtask deps`";

/// The role that logs in with a password (scram-sha-256); every other role is trusted.
pub const PASSWORD_ROLE: &str = "capf_pw";

/// [`PASSWORD_ROLE`]'s password: distinctive, so a test can look for it in logs and output.
pub const PASSWORD: &str = "Pw-6d1f0c2e9b-never-shown";

/// The one cluster of this test binary.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    /// The keeper's standard input: closed when this process ends, which stops the server.
    _keeper_stdin: Mutex<ChildStdin>,
    _keeper: Mutex<Child>,
    next: AtomicU32,
}

/// A fresh, empty database of the cluster.
#[derive(Debug, Clone)]
pub struct Database {
    /// Its name.
    pub name: String,
    /// A `postgres://` URL that reaches it as the superuser `postgres` (trust authentication).
    pub url: String,
    /// The cluster's port.
    pub port: u16,
}

/// The cluster of this test binary, started on first use.
///
/// # Panics
/// When PostgreSQL is not installed (the message names the package) or does not start.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// The directory of the newest installed PostgreSQL server's binaries.
///
/// # Panics
/// When none is installed, naming the package.
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!("PostgreSQL's server (initdb, postgres) is not installed: {INSTALL}"),
    }
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("cannot find a free port for PostgreSQL: {e}"),
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The keeper: initialise, start, say "ready", then wait for its standard input to close and
/// stop the server and remove the directory.
const KEEPER: &str = r#"
set -e
BIN=$1; DIR=$2; PORT=$3; OPTIONS=$4; PASSWORD_ROLE=$5
"$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 \
  || { cat "$DIR/initdb.log" >&2; exit 1; }
# The password role's line first: the first matching line decides.
{ echo "host all $PASSWORD_ROLE 127.0.0.1/32 scram-sha-256"; cat "$DIR/data/pg_hba.conf"; } >"$DIR/hba"
mv "$DIR/hba" "$DIR/data/pg_hba.conf"
"$BIN/postgres" -D "$DIR/data" $OPTIONS -p "$PORT" -k "$DIR" >"$DIR/server.log" 2>&1 &
PID=$!
echo started
read -r _ || true
# pg_ctl stops the server whether this shell started it or a test restarted it (Cluster::restart).
"$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || kill -INT "$PID" 2>/dev/null || true
wait "$PID" 2>/dev/null || true
rm -rf "$DIR"
"#;

/// The server's options, as the keeper and [`Cluster::restart`] give them.
const SERVER_OPTIONS: &str = "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300";

impl Cluster {
    fn start() -> Cluster {
        let bin = bin_dir();
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("capf-pg-{}-{port}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        let mut command = if is_root() {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status();
            if !chown.is_ok_and(|s| s.success()) {
                panic!(
                    "cannot give {} to the postgres user (PostgreSQL refuses to run as root): {INSTALL}",
                    dir.display()
                );
            }
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", KEEPER, "keeper"]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", KEEPER, "keeper"]);
            c
        };
        command
            .arg(&bin)
            .arg(&dir)
            .arg(port.to_string())
            .arg(SERVER_OPTIONS)
            .arg(PASSWORD_ROLE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut keeper = match command.spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot start PostgreSQL's keeper shell: {e}"),
        };
        let stdin = keeper.stdin.take();
        let mut line = String::new();
        if let Some(out) = keeper.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != "started" {
            let mut err = String::new();
            if let Some(mut e) = keeper.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("PostgreSQL did not start ({}): {err}", bin.display());
        }
        let Some(stdin) = stdin else {
            panic!("the keeper shell has no standard input");
        };
        let cluster = Cluster {
            port,
            dir,
            _keeper_stdin: Mutex::new(stdin),
            _keeper: Mutex::new(keeper),
            next: AtomicU32::new(0),
        };
        cluster.wait_ready();
        cluster.admin(&format!(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'"
        ));
        cluster
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let result = postgres::Client::connect(&self.admin_url(), postgres::NoTls)
                .and_then(|mut c| c.simple_query("SELECT 1"));
            match result {
                Ok(_) => return,
                Err(_) => {
                    if Instant::now() > deadline {
                        let log = std::fs::read_to_string(self.dir.join("server.log"))
                            .unwrap_or_default();
                        panic!(
                            "PostgreSQL on port {} did not accept connections in 60 s ({:?}): {log}",
                            self.port,
                            result.err()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Stops the server (fast shutdown: sessions are cut off), as a database lost mid-run.
    /// Every test of the binary loses it: a test that calls this has a binary of its own.
    ///
    /// # Panics
    /// When `pg_ctl` fails.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Starts the server again after [`Cluster::stop`], on the same port and data, and waits
    /// until it accepts connections.
    ///
    /// # Panics
    /// When `pg_ctl` fails or the server does not come back.
    pub fn restart(&self) {
        let options = format!(
            "{SERVER_OPTIONS} -p {} -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.pg_ctl(&[
            "-w",
            "-l",
            &log.display().to_string(),
            "-o",
            &options,
            "start",
        ]);
        self.wait_ready();
    }

    /// Runs `pg_ctl` on the cluster's data, as the `postgres` user when the tests run as root.
    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = bin_dir().join("pg_ctl");
        let data = self.dir.join("data");
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let out = command.arg("-D").arg(&data).args(args).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "pg_ctl {args:?} failed: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => panic!("cannot run {}: {e}", pg_ctl.display()),
        }
    }

    /// The cluster's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (its data, logs and socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A URL of the maintenance database `postgres`, as the superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A URL of the database `name`, as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh, empty database and returns it.
    ///
    /// # Panics
    /// When the server refuses.
    pub fn database(&self) -> Database {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("capf_test_{n}");
        self.admin(&format!("CREATE DATABASE {name}"));
        Database {
            url: self.url(&name),
            name,
            port: self.port,
        }
    }

    /// Creates a fresh, empty database owned by [`PASSWORD_ROLE`]; its `url` names that role
    /// (without the password, which is [`PASSWORD`]).
    ///
    /// # Panics
    /// When the server refuses.
    pub fn password_database(&self) -> Database {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("capf_test_{n}");
        self.admin(&format!("CREATE DATABASE {name} OWNER {PASSWORD_ROLE}"));
        Database {
            url: format!("postgres://{PASSWORD_ROLE}@127.0.0.1:{}/{name}", self.port),
            name,
            port: self.port,
        }
    }

    /// Runs one statement on the maintenance database, as the superuser.
    ///
    /// # Panics
    /// When the statement fails.
    pub fn admin(&self, sql: &str) {
        let result = postgres::Client::connect(&self.admin_url(), postgres::NoTls)
            .and_then(|mut c| c.batch_execute(sql));
        if let Err(e) = result {
            panic!("PostgreSQL refused {sql:?}: {e}");
        }
    }
}
