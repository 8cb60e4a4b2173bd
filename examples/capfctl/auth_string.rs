//! `capfctl auth-string generate`: UCM's "Generate String" for many devices at once (unique per
//! device unless `--same`), printed once and written to a new CSV file (mode 0600,
//! `device_name,auth_string`) for the phones' installers; the store keeps only their keyed
//! hash.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Result, bail};
use capf_admin::{AuthStringLength, AuthStringsView, DeviceSelection};

use crate::device::DataArgs;
use crate::print_json;
use crate::query::QueryArgs;

/// The authentication-string verbs.
#[derive(clap::Subcommand)]
pub(crate) enum AuthStringCommand {
    /// Generate authentication strings for the selected devices (the named ones, or those
    /// matching the filters) and set their authentication mode to By Authentication String.
    Generate {
        #[command(flatten)]
        data: DataArgs,
        /// A device (repeat for more); with filters, the devices matching them are added.
        #[arg(long = "device", value_name = "NAME", allow_hyphen_values = true)]
        devices: Vec<String>,
        #[command(flatten)]
        query: QueryArgs,
        /// Every device (required when no device and no filter is given).
        #[arg(long)]
        all: bool,
        /// One string for all the selected devices (default: a unique one per device).
        #[arg(long)]
        same: bool,
        /// Digits per string, 4 to 10.
        #[arg(long, default_value_t = 8, allow_hyphen_values = true)]
        length: i64,
        /// The CSV file to create for the installers (never overwritten).
        #[arg(long, value_name = "FILE")]
        csv: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: AuthStringCommand) -> Result<()> {
    let AuthStringCommand::Generate {
        data,
        devices,
        query,
        all,
        same,
        length,
        csv,
        json,
    } = cmd;
    let length = AuthStringLength::new(length)?;
    if devices.is_empty() && query.is_empty() && !all {
        bail!("no devices selected: give --device NAME, filters (--name, --in-pool, ...) or --all");
    }
    let store = data.open_existing()?;
    let selection = DeviceSelection {
        devices,
        filter: query.filter()?,
        all,
    };
    let names = selection.names(&*store, SystemTime::now())?;
    let strings = capf_admin::generate_auth_strings(names, length, same)?;
    capf_admin::set_auth_strings(&*store, &strings, &csv, SystemTime::now())?;
    if json {
        return print_json(&AuthStringsView {
            csv: csv.display().to_string(),
            devices: strings,
        });
    }
    for s in &strings {
        outln!("{}  {}", s.name, s.auth_string);
    }
    outln!(
        "{} authentication strings set (shown once; also in {})",
        strings.len(),
        csv.display()
    );
    Ok(())
}
