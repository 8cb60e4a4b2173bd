//! A throwaway LDAP directory for tests: Debian's `slapd` on 127.0.0.1 at a free port, with
//! its own configuration file and mdb database in a temporary directory (never the system's
//! instance), optionally `ldaps` with a certificate from a test CA made by `openssl`. Stopped
//! and removed when dropped.
//!
//! Needs the Debian packages `slapd` and `ldap-utils` (`cargo xtask test` installs them); a
//! missing one fails the test with a message naming what to install.
//!
//! The directory is `dc=example,dc=test` with `ou=people`; the administrator
//! [`Slapd::ADMIN_DN`] binds with [`Slapd::PASSWORD`]. Entries added before the start go in by
//! `slapadd` (fast, for large directories); entries added while it runs go in by `ldapadd`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What to install when slapd or the LDAP tools are missing.
const INSTALL: &str = "install Debian's slapd and ldap-utils (apt-get install slapd ldap-utils; `cargo xtask test` does)";

/// A test CA and the directory's certificate it signed, for `ldaps` (PEM files made by
/// `openssl`).
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate (CA:TRUE, keyCertSign): what a test puts in CAPF-trust.
    pub ca_cert: PathBuf,
    /// The directory's certificate, for `127.0.0.1` and `localhost`.
    pub server_cert: PathBuf,
    /// The directory's key.
    pub server_key: PathBuf,
}

/// A program of /usr/sbin by its full path (a user's PATH may lack it), others by name.
fn program(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

fn run(dir: &Path, name: &str, args: &[&str]) {
    let program = program(name);
    let program = program.display().to_string();
    let out = Command::new(&program)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} ({INSTALL}; and openssl)"));
    if !out.status.success() {
        panic!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl TestCa {
    /// Makes a P-256 CA named `CN=LDAP Test CA` and a server certificate for `127.0.0.1` and
    /// `localhost` in `dir`.
    pub fn generate(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        std::fs::write(
            dir.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE,pathlen:0\n\
             keyUsage=critical,keyCertSign,cRLSign,digitalSignature\n\
             subjectKeyIdentifier=hash\n",
        )
        .unwrap_or_else(|e| panic!("ca.ext: {e}"));
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap_or_else(|e| panic!("server.ext: {e}"));
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-new"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-subj",
            "/O=capf tests/CN=LDAP Test CA",
            "-out",
            "ca.csr",
        ]);
        run(dir, "openssl", &ca);
        run(
            dir,
            "openssl",
            &[
                "x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "30", "-sha256",
                "-extfile", "ca.ext", "-out", "ca.pem",
            ],
        );
        let mut server = vec!["req", "-new"];
        server.extend(ec);
        server.extend([
            "-keyout",
            "server.key",
            "-subj",
            "/O=capf tests/CN=localhost",
            "-out",
            "server.csr",
        ]);
        run(dir, "openssl", &server);
        run(
            dir,
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-sha256",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        TestCa {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// A running slapd; stopped and its directory removed on drop.
#[derive(Debug)]
pub struct Slapd {
    child: Child,
    dir: PathBuf,
    port: u16,
    tls_port: Option<u16>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// An `inetOrgPerson` entry for `uid` under `ou=people`, as LDIF (with its blank line).
pub fn person_ldif(uid: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
         sn: {uid}\n\n",
        base = Slapd::BASE
    )
}

impl Slapd {
    /// The directory's suffix.
    pub const BASE: &'static str = "dc=example,dc=test";
    /// Where the people are.
    pub const PEOPLE: &'static str = "ou=people,dc=example,dc=test";
    /// The administrator (the rootdn).
    pub const ADMIN_DN: &'static str = "cn=admin,dc=example,dc=test";
    /// The administrator's password.
    pub const PASSWORD: &'static str = "capf-test-secret";

    /// Starts slapd in a new directory under the system's temporary directory (named after
    /// `tag` and the process), with the base entries and `ldif` loaded first (`slapadd`), and,
    /// with `tls`, `ldaps` beside `ldap`. Returns once it accepts connections.
    pub fn start(tag: &str, ldif: &str, tls: Option<&TestCa>) -> Slapd {
        let dir = std::env::temp_dir().join(format!("capf-slapd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut conf = String::new();
        for schema in ["core", "cosine", "inetorgperson", "nis"] {
            conf.push_str(&format!("include /etc/ldap/schema/{schema}.schema\n"));
        }
        conf.push_str(&format!(
            "pidfile {dir}/slapd.pid\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n",
            dir = dir.display()
        ));
        if let Some(ca) = tls {
            conf.push_str(&format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                ca.server_cert.display(),
                ca.server_key.display()
            ));
        }
        conf.push_str(&format!(
            "sizelimit 500\ndatabase mdb\nmaxsize 4294967296\nsuffix \"{}\"\nrootdn \"{}\"\n\
             rootpw {}\ndirectory {}/db\n",
            Self::BASE,
            Self::ADMIN_DN,
            Self::PASSWORD,
            dir.display()
        ));
        let conf_path = dir.join("slapd.conf");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("slapd.conf: {e}"));
        let base = format!(
            "dn: {base}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n\
             o: Example\n\ndn: {people}\nobjectClass: organizationalUnit\nou: people\n\n{ldif}",
            base = Self::BASE,
            people = Self::PEOPLE
        );
        std::fs::write(dir.join("base.ldif"), base).unwrap_or_else(|e| panic!("base.ldif: {e}"));
        let conf_arg = conf_path.display().to_string();
        run(&dir, "slapadd", &["-q", "-f", &conf_arg, "-l", "base.ldif"]);

        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let mut urls = format!("ldap://127.0.0.1:{port}/");
        if let Some(p) = tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let child = Command::new(program("slapd"))
            .args(["-f", &conf_arg, "-h", &urls, "-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("slapd: {e} ({INSTALL})"));
        let mut slapd = Slapd {
            child,
            dir,
            port,
            tls_port,
        };
        slapd.wait_listening(port);
        if let Some(p) = tls_port {
            slapd.wait_listening(p);
        }
        slapd
    }

    fn wait_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("slapd exited with {status} ({INSTALL})");
            }
            if Instant::now() > deadline {
                panic!("slapd did not listen on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://HOST:PORT` (started with TLS), with `host` the name the client checks
    /// (`127.0.0.1` or `localhost`, both in the certificate).
    pub fn ldaps_url(&self, host: &str) -> String {
        let port = self
            .tls_port
            .unwrap_or_else(|| panic!("slapd was started without TLS"));
        format!("ldaps://{host}:{port}")
    }

    /// The directory holding the configuration and the database.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the administrator's password to a file (what a sync reads) and returns it.
    pub fn password_file(&self) -> PathBuf {
        let path = self.dir.join("bind-password");
        std::fs::write(&path, format!("{}\n", Self::PASSWORD))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    fn tool(&self, program: &str, extra: &[&str], input: &str) {
        let url = self.url();
        let mut args = vec!["-x", "-H", &url, "-D", Self::ADMIN_DN, "-w", Self::PASSWORD];
        args.extend(extra);
        let mut child = Command::new(program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e} ({INSTALL})"));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("{program}: {e}"));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        if !out.status.success() {
            panic!("{program} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// Adds entries (LDIF) to the running directory (`ldapadd`).
    pub fn add(&self, ldif: &str) {
        self.tool("ldapadd", &[], ldif);
    }

    /// Deletes the entry `dn` (`ldapdelete`).
    pub fn delete(&self, dn: &str) {
        self.tool("ldapdelete", &[dn], "");
    }

    /// Stops slapd (the directory goes down; the files stay until drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
