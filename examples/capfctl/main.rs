//! `capfctl`: administration of a capf installation (CAPF certificate, LSCs, trust stores,
//! devices one by one and in bulk, reports, monitoring and revocation).
//!
//! Every verb that reads or writes the store works on the server's data directory while the
//! server runs (WAL, IMMEDIATE transactions and capf-store's busy handler), or with `--store
//! postgres://user@host/db` on a cluster's PostgreSQL store (the password from
//! `--store-password-file` or `PGPASSWORD`; the data directory holds the cluster's
//! authentication-string key file); `--json` gives machine-readable output, and long jobs show
//! a progress bar on a terminal.
//!
//! Every verb lives in its own module, a thin layer of argument parsing and output over
//! capf-admin; bad input ends in one line on stderr and exit status 1.

/// `println!` that returns an error instead of panicking when standard output is closed (a
/// pipe into `head`, say): use it in functions returning `anyhow::Result`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::anyhow!("writing to standard output: {e}"))?;
    }};
}

/// `print!` as [`outln!`] is `println!`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::anyhow!("writing to standard output: {e}"))?;
    }};
}

mod admin;
mod auth_string;
mod bulk;
mod capf_cert;
mod csr;
mod device;
mod job;
mod ldap;
mod lsc;
mod lsc_revoke;
mod names;
mod online_ca;
mod query;
mod report;
mod trust;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "capfctl", version, about = "Administer a capf installation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Administrator accounts of the web administration: add, list, remove, API tokens.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// The CAPF certificate: generate, show, check, CSR.
    #[command(subcommand)]
    CapfCert(capf_cert::CapfCertCommand),
    /// Devices in the server's store: add, update, list, show, schedule an operation, remove.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Devices in bulk: insert from a CSV file, update by query (with a dry run).
    #[command(subcommand)]
    Bulk(bulk::BulkCommand),
    /// The LDAP directory sync with a device template.
    #[command(subcommand)]
    Ldap(ldap::LdapCommand),
    /// Scheduled jobs (bulk ... --at TIME, the certificate monitor): list, show, cancel.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Device templates applied to the devices a bulk insert brings in.
    #[command(subcommand)]
    Template(bulk::TemplateCommand),
    /// Authentication strings: generate them for many devices at once.
    #[command(subcommand)]
    AuthString(auth_string::AuthStringCommand),
    /// Requests to an external CA (endpoint CSRs): list, count, delete, dump, export.
    #[command(subcommand)]
    Csr(csr::CsrCommand),
    /// Certificates an offline CA signed: import.
    #[command(subcommand)]
    Cert(csr::CertCommand),
    /// Stale LSCs (issued, never confirmed, replaced): list, delete.
    #[command(subcommand)]
    StaleLsc(report::StaleLscCommand),
    /// The operation status report: pending, in progress, succeeded, failed, past complete-by.
    Status {
        #[command(flatten)]
        data: device::DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The CAPF keepalive timer (5 to 60 minutes, default 15).
    #[command(subcommand)]
    KeepAlive(report::KeepAliveCommand),
    /// Run-time limits and deadlines (sessions, queues, timeouts), re-read by a running capfd.
    #[command(subcommand)]
    Settings(report::SettingsCommand),
    /// LSCs expiring soon (optionally by email); expired LSCs are marked revoked.
    Monitor(report::MonitorArgs),
    /// A CRL of the revoked LSCs, signed by the CAPF key.
    Crl(report::CrlArgs),
    /// Export an LSC, or the installed LSCs of a query, as PEM or a CSV report.
    Export(report::ExportArgs),
    /// Locally Significant Certificates.
    #[command(subcommand)]
    Lsc(lsc::LscCommand),
    /// Trust stores (CAPF-trust, CallManager-trust, ...).
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// The Online CA (EST, Microsoft CA): its settings and its CA chain.
    #[command(subcommand)]
    OnlineCa(online_ca::OnlineCaCommand),
}

fn main() -> ExitCode {
    // Warnings from the libraries (a data directory's permissions tightened) on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Admin(cmd) => admin::run(cmd),
        Command::CapfCert(cmd) => capf_cert::run(cmd),
        Command::Device(cmd) => device::run(cmd),
        Command::Bulk(cmd) => bulk::run(cmd),
        Command::Job(cmd) => job::run(cmd),
        Command::Ldap(cmd) => ldap::run(cmd),
        Command::Template(cmd) => bulk::run_template(cmd),
        Command::AuthString(cmd) => auth_string::run(cmd),
        Command::Csr(cmd) => csr::run(cmd),
        Command::Cert(cmd) => csr::run_cert(cmd),
        Command::StaleLsc(cmd) => report::run_stale(cmd),
        Command::Status { data, json } => report::run_status(&data, json),
        Command::KeepAlive(cmd) => report::run_keep_alive(cmd),
        Command::Settings(cmd) => report::run_settings(cmd),
        Command::Monitor(args) => report::run_monitor(args),
        Command::Crl(args) => report::run_crl(args),
        Command::Export(args) => report::run_export(args),
        Command::Lsc(cmd) => lsc::run(cmd),
        Command::Trust(cmd) => trust::run(cmd),
        Command::OnlineCa(cmd) => online_ca::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line that says what is wrong and where.
            eprintln!("capfctl: {}", capf_admin::error_chain(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// Prints a view as pretty JSON.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Writes `data` to a new file (never overwriting one), or to standard output without a path.
fn write_out(path: Option<&Path>, data: &str, private: bool) -> anyhow::Result<()> {
    match path {
        Some(path) => capf_admin::write_new_file(path, data.as_bytes(), private)?,
        None => out!("{data}"),
    }
    Ok(())
}
