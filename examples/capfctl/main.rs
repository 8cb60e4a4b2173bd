//! `capfctl`: administration of a capf installation (CAPF certificate, LSCs, trust stores,
//! devices).
//!
//! Every verb lives in its own module; bad input ends in one line on stderr and exit status 1.

mod capf_cert;
mod device;
mod lsc;
mod trust;

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
    /// The CAPF certificate: generate, show, check, CSR.
    #[command(subcommand)]
    CapfCert(capf_cert::CapfCertCommand),
    /// Devices in the server's store: add, list, show, schedule an operation, remove.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Locally Significant Certificates.
    #[command(subcommand)]
    Lsc(lsc::LscCommand),
    /// Trust stores (CAPF-trust, CallManager-trust, ...).
    #[command(subcommand)]
    Trust(trust::TrustCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CapfCert(cmd) => capf_cert::run(cmd),
        Command::Device(cmd) => device::run(cmd),
        Command::Lsc(cmd) => lsc::run(cmd),
        Command::Trust(cmd) => trust::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line that says what is wrong and where.
            eprintln!("capfctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}
