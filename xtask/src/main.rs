#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::process::{Command, ExitCode, Stdio};

/// One thing the tests need from the machine: how to tell it is there, and what provides it.
///
/// Later issues extend [`REQUIREMENTS`] (postgresql, slapd, chromium).
struct Requirement {
    /// What it is, as the messages name it.
    name: &'static str,
    /// Which tests need it, for the message when it is missing.
    used_by: &'static str,
    /// How to tell it is installed.
    check: Check,
    /// What installs it.
    package: Package,
}

/// How to tell a requirement is installed.
enum Check {
    /// This command runs and exits 0 (`["openssl", "version"]`).
    Command(&'static [&'static str]),
    /// `python3 -c "import <module>"` exits 0.
    PythonModule(&'static str),
}

/// What installs a requirement.
enum Package {
    /// Debian packages, installed with `apt-get install -y --no-install-recommends`.
    Apt(&'static [&'static str]),
    /// A PyPI package, installed with `python3 -m pip install` (pip itself from Debian's
    /// `python3-pip` when missing).
    Pip(&'static str),
    /// A shell script of this repository (its path from the workspace root), run with `sh`
    /// as root: for what Debian's own release does not package (libEST from trixie).
    Script(&'static str),
}

/// Everything the workspace's tests need beyond a Rust toolchain, in install order.
const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        name: "openssl",
        used_by: "independent checks of issued certificates, CSRs and CRLs in the capf-lsc, capf-server and capfctl tests",
        check: Check::Command(&["openssl", "version"]),
        package: Package::Apt(&["openssl"]),
    },
    Requirement {
        name: "OpenSSL headers",
        used_by: "building the `legacy-tls` feature (openssl-sys) for its tests",
        check: Check::Command(&["pkg-config", "--exists", "openssl"]),
        package: Package::Apt(&["libssl-dev", "pkg-config"]),
    },
    Requirement {
        name: "python3",
        used_by: "the SMTP server of capfctl's monitor test and the Microsoft AD CS test double",
        check: Check::Command(&["python3", "--version"]),
        package: Package::Apt(&["python3"]),
    },
    Requirement {
        name: "aiosmtpd",
        used_by: "the SMTP server of capfctl's monitor test",
        check: Check::PythonModule("aiosmtpd"),
        package: Package::Pip("aiosmtpd"),
    },
    Requirement {
        name: "pyspnego",
        used_by: "the NTLM acceptor of the Microsoft AD CS test double (tests/support/certsrv_double.py)",
        check: Check::PythonModule("spnego"),
        package: Package::Pip("pyspnego"),
    },
    Requirement {
        name: "certsrv",
        used_by: "the independent AD CS client that checks the test double (crates/capf-ca/tests/certsrv_double.rs)",
        check: Check::PythonModule("certsrv"),
        package: Package::Pip("certsrv"),
    },
    Requirement {
        name: "requests-ntlm",
        used_by: "NTLM for the certsrv client that checks the AD CS test double",
        check: Check::PythonModule("requests_ntlm"),
        package: Package::Pip("requests-ntlm"),
    },
    Requirement {
        name: "easy-rsa",
        used_by: "the Offline CA end-to-end test (tests/offline_ca.rs) signing endpoint CSRs with Debian's easy-rsa",
        check: Check::Command(&["test", "-x", "/usr/share/easy-rsa/easyrsa"]),
        package: Package::Apt(&["easy-rsa"]),
    },
    Requirement {
        name: "libEST estserver",
        used_by: "the Online CA EST end-to-end tests (tests/online_ca_est.rs): Cisco's EST server from Debian trixie's libest-utils, unpacked under /opt/libest",
        check: Check::Command(&[
            "sh",
            "-c",
            "LD_LIBRARY_PATH=/opt/libest/usr/lib/x86_64-linux-gnu /opt/libest/usr/bin/estserver --help 2>&1 | grep -q 'Available EST server options'",
        ]),
        package: Package::Script("scripts/install-libest.sh"),
    },
    Requirement {
        name: "slapd",
        used_by: "the LDAP directory sync tests (tests/ldap_sync.rs) and the sync figure (scripts/ldap-sync-figure.sh): a throwaway OpenLDAP directory (capf-test-support's `slapd`)",
        check: Check::Command(&[
            "sh",
            "-c",
            "command -v slapd && command -v slapadd && command -v ldapadd",
        ]),
        package: Package::Apt(&["slapd", "ldap-utils"]),
    },
    Requirement {
        name: "postgresql",
        used_by: "the PostgreSQL store's tests (capf-store's conformance suite on PostgreSQL, the two-node cluster tests): capf-test-support's `postgres` starts a throwaway cluster per test binary",
        check: Check::Command(&["sh", "-c", "ls /usr/lib/postgresql/*/bin/initdb"]),
        package: Package::Apt(&["postgresql"]),
    },
    Requirement {
        name: "nginx",
        used_by: "the EST label path in tests/online_ca_est.rs (Debian's libEST has no label support: nginx in front strips it)",
        check: Check::Command(&["/usr/sbin/nginx", "-v"]),
        package: Package::Apt(&["nginx-light"]),
    },
    Requirement {
        name: "systemd-analyze",
        used_by: "the check of the deployment's unit (tests/deploy_unit.rs: `systemd-analyze verify deploy/capfd.service`); Debian's `systemd` package, used as a tool, not as init",
        check: Check::Command(&["systemd-analyze", "--version"]),
        package: Package::Apt(&["systemd"]),
    },
    Requirement {
        name: "chromium and chromedriver",
        used_by: "the web pages' real-browser tests (crates/capf-web/tests/web_pages.rs, over WebDriver)",
        check: Check::Command(&["chromedriver", "--version"]),
        package: Package::Apt(&["chromium", "chromium-driver"]),
    },
];

/// A throwaway service the tests need running: started before `cargo test`, stopped after it
/// whatever the tests did. Later issues fill [`SERVICES`] (PostgreSQL, slapd, an EST server,
/// nginx); each names the [`REQUIREMENTS`] that provide it.
struct Service {
    /// What it is, as the messages name it.
    name: &'static str,
    /// The command that starts it and returns once it accepts connections.
    start: &'static [&'static str],
    /// The command that stops it.
    stop: &'static [&'static str],
}

/// The services `cargo xtask test` runs. Empty today: the monitor test starts and stops its own
/// SMTP server.
const SERVICES: &[Service] = &[];

/// Why a task failed, in one line (what to install is the one multi-line message).
#[derive(Debug)]
enum Error {
    /// The command line is not understood.
    Usage(String),
    /// Requirements are missing and cannot be installed here.
    Missing {
        /// Why this process cannot install them.
        why: String,
        /// The commands that would install them.
        commands: Vec<String>,
        /// The requirements, each with what needs it.
        missing: Vec<String>,
    },
    /// A program could not be started.
    Spawn {
        /// The program.
        program: String,
        /// The system's reason.
        source: io::Error,
    },
    /// An install or service command failed.
    Failed {
        /// The command line.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// A requirement is still missing after its package was installed.
    StillMissing(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(detail) => write!(f, "{detail}\n\n{USAGE}"),
            Error::Missing {
                why,
                commands,
                missing,
            } => {
                writeln!(f, "the tests need what is not installed here ({why}):")?;
                for m in missing {
                    writeln!(f, "  - {m}")?;
                }
                writeln!(f, "install it with:")?;
                for c in commands {
                    writeln!(f, "  {c}")?;
                }
                write!(f, "then run `cargo xtask test` again")
            }
            Error::Spawn { program, source } => write!(f, "cannot run {program}: {source}"),
            Error::Failed { command, status } => write!(f, "`{command}` failed ({status})"),
            Error::StillMissing(name) => {
                write!(f, "{name} is still missing after installing its package")
            }
        }
    }
}

const USAGE: &str = "usage: cargo xtask <task> [args]

tasks:
  test [args]   install what the tests need, start their services, then run
                `cargo test --workspace --locked [args]` (a -p/--package in args replaces
                --workspace); for the whole workspace, then capf-server and capf-phone with
                their opt-in `legacy-tls` feature on, and the root tests that need it; exit with
                the first failing status
  deps          only check for and install what the tests need
  help          this text";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let task = args.next();
    let rest: Vec<OsString> = args.collect();
    let result = match task.as_ref().and_then(|t| t.to_str()) {
        Some("test") => test(&rest),
        Some("deps") if rest.is_empty() => deps().map(|()| ExitCode::SUCCESS),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(Error::Usage(format!("unknown task or arguments: {other}"))),
        None => Err(Error::Usage("no task given".into())),
    };
    result.unwrap_or_else(|e| {
        eprintln!("cargo xtask: {e}");
        ExitCode::from(2)
    })
}

/// `cargo xtask test`: requirements, services, then the workspace's tests.
fn test(args: &[OsString]) -> Result<ExitCode, Error> {
    deps()?;
    let _services = Services::start()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let whole = !selects_packages(args);
    // The default build, then (for the whole workspace) the crates with an opt-in feature again
    // with it on: their own tests and the tests that need it (`required-features`). Only those,
    // so the feature's pass does not run the whole workspace twice.
    let passes: &[&[&str]] = if whole {
        &[&["--workspace"], OPT_IN_PASS, OPT_IN_TESTS]
    } else {
        &[&[]]
    };
    for pass in passes {
        let mut command = Command::new(&cargo);
        command.arg("test").args(*pass).arg("--locked").args(args);
        eprintln!("cargo xtask: {}", shown(&command));
        let status = command.status().map_err(|source| Error::Spawn {
            program: "cargo".into(),
            source,
        })?;
        // The services stop when `_services` drops, before the exit status goes back.
        match status.code() {
            Some(0) => {}
            Some(code) => return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1))),
            None => return Ok(ExitCode::FAILURE),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The crates with an opt-in feature, tested again with it on: the legacy TLS listener and
/// phones (issue 15), which link OpenSSL.
const OPT_IN_PASS: &[&str] = &[
    "-p",
    "capf-server",
    "-p",
    "capf-phone",
    "--features",
    "capf-server/legacy-tls,capf-phone/legacy-tls",
];

/// The root tests that need an opt-in feature.
const OPT_IN_TESTS: &[&str] = &[
    "-p",
    "capf",
    "--features",
    "legacy-tls",
    "--test",
    "legacy_tls",
];

/// Whether `cargo test` arguments pick packages (then `--workspace` would override them).
fn selects_packages(args: &[OsString]) -> bool {
    args.iter()
        .map_while(|a| a.to_str().filter(|a| *a != "--"))
        .any(|a| a == "-p" || a.starts_with("--package") || (a.starts_with("-p") && a.len() > 2))
}

/// `cargo xtask deps`: installs what is missing, or says what to install.
fn deps() -> Result<(), Error> {
    let missing: Vec<&Requirement> = REQUIREMENTS.iter().filter(|r| !installed(r)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let plan = Plan::for_missing(&missing);
    if let Some(why) = cannot_install(&plan) {
        return Err(Error::Missing {
            why,
            commands: plan.commands(if is_root() { "" } else { "sudo " }),
            missing: missing
                .iter()
                .map(|r| format!("{}: {}", r.name, r.used_by))
                .collect(),
        });
    }
    plan.run()?;
    match missing.iter().find(|r| !installed(r)) {
        Some(r) => Err(Error::StillMissing(r.name)),
        None => Ok(()),
    }
}

fn installed(r: &Requirement) -> bool {
    match r.check {
        Check::Command(argv) => succeeds(argv),
        Check::PythonModule(module) => succeeds(&["python3", "-c", &format!("import {module}")]),
    }
}

/// Runs `argv` quietly; whether it could start and exited 0.
fn succeeds(argv: &[&str]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What installs the missing requirements: Debian packages first (pip included when a PyPI
/// package needs it), then PyPI packages, then this repository's install scripts.
struct Plan {
    apt: Vec<&'static str>,
    pip: Vec<&'static str>,
    /// Scripts, as paths from the workspace root.
    scripts: Vec<&'static str>,
}

impl Plan {
    fn for_missing(missing: &[&Requirement]) -> Plan {
        let mut plan = Plan {
            apt: Vec::new(),
            pip: Vec::new(),
            scripts: Vec::new(),
        };
        for r in missing {
            match r.package {
                Package::Apt(packages) => plan.apt.extend_from_slice(packages),
                Package::Pip(package) => plan.pip.push(package),
                Package::Script(script) => plan.scripts.push(script),
            }
        }
        if !plan.pip.is_empty() && !succeeds(&["python3", "-m", "pip", "--version"]) {
            plan.apt.push("python3-pip");
        }
        plan.apt.sort_unstable();
        plan.apt.dedup();
        plan
    }

    /// The commands as a user would type them, each behind `sudo` (`"sudo "` or nothing).
    fn commands(&self, sudo: &str) -> Vec<String> {
        let mut out = Vec::new();
        if !self.apt.is_empty() {
            out.push(format!("{sudo}apt-get update"));
            out.push(format!(
                "{sudo}apt-get install -y --no-install-recommends {}",
                self.apt.join(" ")
            ));
        }
        if !self.pip.is_empty() {
            out.push(format!(
                "{sudo}python3 -m pip install {}   (add --break-system-packages if pip refuses)",
                self.pip.join(" ")
            ));
        }
        for script in &self.scripts {
            out.push(format!("{sudo}sh {}", workspace_path(script)));
        }
        out
    }

    fn run(&self) -> Result<(), Error> {
        if !self.apt.is_empty() {
            run(&["apt-get", "update"])?;
            let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
            install.extend_from_slice(&self.apt);
            run(&install)?;
        }
        if !self.pip.is_empty() {
            let mut install = vec!["python3", "-m", "pip", "install"];
            install.extend_from_slice(&self.pip);
            if run(&install).is_err() {
                // Debian's Python is externally managed (PEP 668): pip refuses without this.
                install.push("--break-system-packages");
                run(&install)?;
            }
        }
        for script in &self.scripts {
            run(&["sh", &workspace_path(script)])?;
        }
        Ok(())
    }
}

/// `path` (from the workspace root) as an absolute path: xtask may run from any directory.
fn workspace_path(path: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(path)
        .display()
        .to_string()
}

/// Why this process cannot carry out `plan`, if it cannot.
fn cannot_install(plan: &Plan) -> Option<String> {
    if !is_root() {
        return Some("installing needs root".into());
    }
    let needs_apt = !plan.apt.is_empty() || !plan.scripts.is_empty();
    if needs_apt && !succeeds(&["apt-get", "--version"]) {
        return Some("no apt-get on this machine: install the equivalent packages".into());
    }
    None
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
}

/// Runs `argv` in the foreground (its output shown), failing on a non-zero exit.
fn run(argv: &[&str]) -> Result<(), Error> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    if *program == "apt-get" {
        command.env("DEBIAN_FRONTEND", "noninteractive");
    }
    eprintln!("cargo xtask: {}", shown(&command));
    let status = command.status().map_err(|source| Error::Spawn {
        program: (*program).to_owned(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            command: argv.join(" "),
            status,
        })
    }
}

/// A command line as text, for messages.
fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The services that were started; dropping it stops them, last started first.
struct Services(Vec<&'static Service>);

impl Services {
    fn start() -> Result<Services, Error> {
        let mut started = Services(Vec::new());
        for service in SERVICES {
            eprintln!("cargo xtask: starting {}", service.name);
            // On failure `started` drops here and stops what already runs.
            run(service.start)?;
            started.0.push(service);
        }
        Ok(started)
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for service in self.0.iter().rev() {
            eprintln!("cargo xtask: stopping {}", service.name);
            if let Err(e) = run(service.stop) {
                eprintln!("cargo xtask: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_selection_replaces_workspace() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(selects_packages(&args(&["-p", "capf-wire"])));
        assert!(selects_packages(&args(&["-pcapf-wire"])));
        assert!(selects_packages(&args(&["--package=capf-wire"])));
        assert!(!selects_packages(&args(&["--test", "x", "--", "-p"])));
        assert!(!selects_packages(&args(&[])));
    }

    #[test]
    fn missing_pypi_package_plans_pip_and_says_what_to_run() {
        let aiosmtpd = REQUIREMENTS
            .iter()
            .find(|r| r.name == "aiosmtpd")
            .expect("in the table");
        let plan = Plan::for_missing(&[aiosmtpd]);
        assert_eq!(plan.pip, ["aiosmtpd"]);
        let commands = plan.commands("sudo ").join("\n");
        assert!(
            commands.contains("python3 -m pip install aiosmtpd"),
            "{commands}"
        );
    }

    #[test]
    fn every_requirement_names_a_package() {
        for r in REQUIREMENTS {
            match r.package {
                Package::Apt(packages) => assert!(!packages.is_empty(), "{}", r.name),
                Package::Pip(package) => assert!(!package.is_empty(), "{}", r.name),
                Package::Script(script) => assert!(
                    std::path::Path::new(&workspace_path(script)).is_file(),
                    "{}: {script}",
                    r.name
                ),
            }
        }
    }
}
