//! `capfctl lsc issue`: issue a Locally Significant Certificate by hand.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use capf_lsc::{Issuer, LscParams, ValidityDays};

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
            capf_lsc::DeviceName::new(&device).context("--device")?;
            let mut pem = std::fs::read_to_string(&issuer)
                .with_context(|| format!("reading --issuer {}", issuer.display()))?;
            if let Some(path) = &issuer_key {
                pem.push('\n');
                pem.push_str(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("reading --issuer-key {}", path.display()))?,
                );
            }
            let issuer =
                Issuer::from_pem(&pem).with_context(|| format!("--issuer {}", issuer.display()))?;
            let bytes = std::fs::read(&public_key)
                .with_context(|| format!("reading --public-key {}", public_key.display()))?;
            let key = capf_lsc::public_key_from_pem_or_der(&bytes)
                .with_context(|| format!("--public-key {}", public_key.display()))?;
            let serial = capf_admin::random_serial()?;
            let lsc = issuer.issue_lsc(
                &key,
                &LscParams {
                    device_name: device,
                    validity,
                },
                SystemTime::now(),
                &mut || serial,
            )?;
            write_out(out.as_deref(), &capf_lsc::certificate_to_pem(&lsc)?, false)
        }
        LscCommand::Revoke(args) => crate::lsc_revoke::run(args),
    }
}
