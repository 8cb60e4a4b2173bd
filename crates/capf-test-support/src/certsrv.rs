//! The Microsoft AD CS test double (`tests/support/certsrv_double.py`), started on 127.0.0.1
//! with certificates made by `openssl` from the fixture keys (never generated keys).
//!
//! The double's HTTPS certificate follows one of the guide's four upload scenarios
//! ([`HttpsScenario`]); its CA signs LSCs with `openssl ca` under the root's fixture key.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The host name the double's HTTPS certificate names (the Online CA Hostname).
pub const HOST: &str = "localhost";
/// The NTLM account (`DOMAIN\user`); Basic uses the same name.
pub const USER: &str = "CAPFLAB\\capf-enroll";
/// The account's password.
pub const PASSWORD: &str = "Enr0ll-Pa55!";
/// The template the double issues at once.
pub const TEMPLATE: &str = "CiscoRA";
/// The template that waits for an administrator (pending, issued on a later poll).
pub const PENDING_TEMPLATE: &str = "CiscoRAApproval";

/// How the double authenticates (the guide's Online CA takes a username and password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// HTTP Basic.
    Basic,
    /// NTLM (Windows authentication, as Cisco's setup documents require of IIS).
    Ntlm,
}

/// The guide's Upload Certificate Scenarios: which certificate IIS presents, and what the
/// administrator uploads to CAPF-trust (capf-trust's `upload_scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpsScenario {
    /// 1: the CA root is the HTTPS certificate (its CN is the host name).
    SameAsRoot,
    /// 2: the HTTPS certificate is issued by the CA root.
    IssuedByRoot,
    /// 3: issued by an intermediate CA (itself issued by the root) that IIS sends along.
    IssuedByIntermediate,
    /// 4: issued by an intermediate CA that IIS does not send, so the root alone cannot
    /// complete the chain: the HTTPS certificate is uploaded too.
    ChainIncomplete,
}

/// What the double is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Basic or NTLM.
    pub auth: Auth,
    /// The HTTPS certificate's scenario.
    pub https: HttpsScenario,
    /// Pages in German instead of English (`--language de`).
    pub german: bool,
    /// The poll of a pending ReqID that issues it (2: the first poll is still pending).
    pub approve_after: u32,
    /// LSCs are signed by an issuing CA below the root (a two-tier PKI), which `certnew.p7b`
    /// serves; by default the root signs them.
    pub issuing_ca: bool,
    /// The days an issued LSC is valid (the CA's own validity, `openssl ca -days`).
    pub lsc_days: u32,
    /// Issued LSCs have KeyUsage digitalSignature only, without the keyEncipherment secure
    /// registration needs (a template set up wrongly).
    pub lsc_without_key_encipherment: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth: Auth::Ntlm,
            https: HttpsScenario::IssuedByRoot,
            german: false,
            approve_after: 2,
            issuing_ca: false,
            lsc_days: 365,
            lsc_without_key_encipherment: false,
        }
    }
}

/// A running double; killed and its directory removed on drop.
#[derive(Debug)]
pub struct CertsrvDouble {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its scratch directory (certificates, `openssl ca`'s database).
    pub dir: PathBuf,
    /// The CA root (PEM): signs the LSCs (unless [`Options::issuing_ca`]), and is the root of
    /// the HTTPS chain.
    pub root_pem: PathBuf,
    /// The issuing CA of [`Options::issuing_ca`] (PEM), signed by the root, if any.
    pub issuing_pem: Option<PathBuf>,
    /// The HTTPS certificate alone (PEM).
    pub https_pem: PathBuf,
    /// The intermediate CA of scenarios 3 and 4 (PEM), if any.
    pub intermediate_pem: Option<PathBuf>,
}

impl Drop for CertsrvDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The double's script, `tests/support/certsrv_double.py` of the workspace.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/certsrv_double.py")
}

/// The fixture file `name` (a key of `fixtures/`).
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A fresh scratch directory under the system's temporary directory.
pub fn scratch_dir(what: &str) -> PathBuf {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "capf-{what}-{}-{}-{nanos}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl (installed by `cargo xtask test`): {e}"));
    if !out.status.success() {
        panic!(
            "openssl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A PKCS#10 request (PEM) for CN=`cn` under the fixture key `key` (e.g. `rsa-2048.pem`).
pub fn csr_pem(dir: &Path, key: &str, cn: &str) -> String {
    let out = dir.join(format!("{cn}.csr"));
    let key = fixture_path(key);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key.to_string_lossy(),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &out.to_string_lossy(),
        ],
    );
    read(&out)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A CA certificate for CN=`cn` under fixture key `key`, self-signed, or signed by `issuer`
/// (certificate, key). CA:TRUE, keyCertSign; `server` adds the localhost SAN and serverAuth
/// (scenario 1's root that IIS presents itself).
fn ca_cert(
    dir: &Path,
    name: &str,
    cn: &str,
    key: &Path,
    issuer: Option<(&Path, &Path)>,
    server: bool,
) -> PathBuf {
    let ext = dir.join(format!("{name}.ext"));
    let mut text = String::from(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n",
    );
    if server {
        text.push_str(&format!(
            "subjectAltName=DNS:{HOST}\nextendedKeyUsage=serverAuth\n"
        ));
    }
    write(&ext, &text);
    sign(dir, name, cn, key, issuer, &ext)
}

fn sign(
    dir: &Path,
    name: &str,
    cn: &str,
    key: &Path,
    issuer: Option<(&Path, &Path)>,
    ext: &Path,
) -> PathBuf {
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    let key_s = key.to_string_lossy().into_owned();
    let csr_s = csr.to_string_lossy().into_owned();
    let cert_s = cert.to_string_lossy().into_owned();
    let ext_s = ext.to_string_lossy().into_owned();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key_s,
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &csr_s,
        ],
    );
    let mut args = vec![
        "x509", "-req", "-in", &csr_s, "-out", &cert_s, "-days", "30", "-sha256", "-extfile",
        &ext_s,
    ];
    let (ca_s, ca_key_s);
    match issuer {
        Some((ca, ca_key)) => {
            ca_s = ca.to_string_lossy().into_owned();
            ca_key_s = ca_key.to_string_lossy().into_owned();
            args.extend(["-CA", &ca_s, "-CAkey", &ca_key_s, "-set_serial", "7"]);
        }
        None => args.extend(["-key", &key_s]),
    }
    openssl(dir, &args);
    cert
}

impl CertsrvDouble {
    /// Starts the double with `options`; returns once it accepts connections.
    pub fn start(options: &Options) -> CertsrvDouble {
        let dir = scratch_dir("certsrv");
        let root_key = fixture_path("rsa-2048.pem");
        let intermediate_key = fixture_path("intermediate-rsa-2048.pem");
        let https_key = fixture_path("p256.pem");
        // No "CAPF-" in a CA's name: CAPF-trust refuses it (reserved for CAPF certificates).
        let root_cn = match options.https {
            HttpsScenario::SameAsRoot => HOST,
            _ => "capf test AD CS Root",
        };
        let root = ca_cert(
            &dir,
            "root",
            root_cn,
            &root_key,
            None,
            options.https == HttpsScenario::SameAsRoot,
        );
        let server_ext = dir.join("server.ext");
        write(
            &server_ext,
            &format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:{HOST}\n"
            ),
        );
        let (https_pem, https_key_path, tls_chain, intermediate_pem) = match options.https {
            HttpsScenario::SameAsRoot => (root.clone(), root_key.clone(), root.clone(), None),
            HttpsScenario::IssuedByRoot => {
                let leaf = sign(
                    &dir,
                    "https",
                    HOST,
                    &https_key,
                    Some((&root, &root_key)),
                    &server_ext,
                );
                (leaf.clone(), https_key.clone(), leaf, None)
            }
            HttpsScenario::IssuedByIntermediate | HttpsScenario::ChainIncomplete => {
                let intermediate = ca_cert(
                    &dir,
                    "intermediate",
                    "capf test AD CS Web Intermediate",
                    &intermediate_key,
                    Some((&root, &root_key)),
                    false,
                );
                let leaf = sign(
                    &dir,
                    "https",
                    HOST,
                    &https_key,
                    Some((&intermediate, &intermediate_key)),
                    &server_ext,
                );
                let chain = if options.https == HttpsScenario::IssuedByIntermediate {
                    let chain = dir.join("https-chain.pem");
                    write(&chain, &(read(&leaf) + &read(&intermediate)));
                    chain
                } else {
                    leaf.clone()
                };
                (leaf, https_key.clone(), chain, Some(intermediate))
            }
        };
        let state = dir.join("ca");
        let (signer, signer_key, issuing_pem) = if options.issuing_ca {
            let issuing_key = fixture_path("rsa-3072.pem");
            let issuing = ca_cert(
                &dir,
                "issuing",
                "capf test AD CS Issuing CA",
                &issuing_key,
                Some((&root, &root_key)),
                false,
            );
            (issuing.clone(), issuing_key, Some(issuing))
        } else {
            (root.clone(), root_key.clone(), None)
        };
        let ca_chain = dir.join("ca-chain.pem");
        let mut chain_text = read(&signer);
        if options.issuing_ca {
            chain_text.push_str(&read(&root));
        }
        write(&ca_chain, &chain_text);
        let mut command = Command::new("python3");
        command
            .arg(script())
            .arg("--state")
            .arg(&state)
            .arg("--ca-cert")
            .arg(&signer)
            .arg("--ca-key")
            .arg(&signer_key)
            .arg("--ca-chain")
            .arg(&ca_chain)
            .arg("--tls-cert")
            .arg(&tls_chain)
            .arg("--tls-key")
            .arg(&https_key_path)
            .args([
                "--auth",
                match options.auth {
                    Auth::Basic => "basic",
                    Auth::Ntlm => "ntlm",
                },
            ])
            .args(["--user", USER, "--password", PASSWORD])
            .args([
                "--template",
                TEMPLATE,
                "--pending-template",
                PENDING_TEMPLATE,
            ])
            .args(["--approve-after", &options.approve_after.to_string()])
            .args(["--language", if options.german { "de" } else { "en" }])
            .args(["--days", &options.lsc_days.to_string()])
            .args([
                "--key-usage",
                if options.lsc_without_key_encipherment {
                    "digitalSignature"
                } else {
                    "digitalSignature, keyEncipherment"
                },
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!("python3 (installed by `cargo xtask test`, with pyspnego): {e}")
        });
        let port = match child.stdout.take() {
            Some(stdout) => read_port(stdout),
            None => None,
        };
        let Some(port) = port else {
            let status = child.wait();
            panic!(
                "the certsrv double did not start ({status:?}); is pyspnego installed? (python3 -m pip install pyspnego)"
            );
        };
        CertsrvDouble {
            child,
            port,
            dir,
            root_pem: root,
            issuing_pem,
            https_pem,
            intermediate_pem,
        }
    }
}

/// Reads `LISTENING <port>` from the double's standard output.
fn read_port(stdout: ChildStdout) -> Option<u16> {
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).ok()?;
    line.trim().strip_prefix("LISTENING ")?.parse().ok()
}
