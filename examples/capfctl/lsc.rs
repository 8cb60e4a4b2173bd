//! `capfctl lsc issue`: issue a Locally Significant Certificate by hand.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use capf_admin::NamedFile;
use capf_lsc::{DeviceName, ValidityDays};

use crate::write_out;

/// The LSC verbs.
#[derive(clap::Subcommand)]
pub(crate) enum LscCommand {
    /// Issue an LSC for a phone's public key, signed by the issuer (the CAPF or a CA).
    Issue {
        /// PEM file with the issuer's CERTIFICATE and PKCS#8 PRIVATE KEY (any order).
        #[arg(long)]
        issuer: PathBuf,
        /// The issuer's private key, when it is not in the --issuer file.
        #[arg(long)]
        issuer_key: Option<PathBuf>,
        /// The phone's SubjectPublicKeyInfo (PEM PUBLIC KEY or DER).
        #[arg(long)]
        public_key: PathBuf,
        /// The device name (such as SEP001122334455 or CSFjsmith).
        #[arg(long, allow_hyphen_values = true)]
        device: String,
        /// Validity in days, 1 to 1825.
        #[arg(long, allow_hyphen_values = true)]
        days: String,
        /// Where to write the LSC (PEM; default: standard output). Never overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke an LSC: it no longer authenticates a phone, and the CRL lists it.
    Revoke(crate::lsc_revoke::RevokeArgs),
}

pub(crate) fn run(cmd: LscCommand) -> Result<()> {
    match cmd {
        LscCommand::Issue {
            issuer,
            issuer_key,
            public_key,
            device,
            days,
            out,
        } => {
            let validity: ValidityDays = days.parse().context("--days")?;
            let device = DeviceName::new(&device).context("--device")?;
            let issuer = capf_admin::read_issuer(
                NamedFile::flagged("--issuer", &issuer),
                issuer_key
                    .as_deref()
                    .map(|path| NamedFile::flagged("--issuer-key", path)),
            )?;
            let key = capf_admin::read_public_key(NamedFile::flagged("--public-key", &public_key))?;
            let pem =
                capf_admin::issue_lsc_pem(&issuer, &key, &device, validity, SystemTime::now())?;
            write_out(out.as_deref(), &pem, false)
        }
        LscCommand::Revoke(args) => crate::lsc_revoke::run(args),
    }
}
