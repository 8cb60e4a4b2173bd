//! `capfctl auth-string generate`: UCM's "Generate String" for many devices at once.
//!
//! The strings come from the operating system's cryptographic random source, are printed
//! once and written to a new CSV file (mode 0600, `device_name,auth_string`) for the phones'
//! installers; the store keeps only their keyed hash.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use capf_store::{AUTH_STRING_MAX_LEN, AUTH_STRING_MIN_LEN, AdminStore, SessionStore};
use serde_json::json;

use crate::device::{DataArgs, open_existing};
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

/// `length` random decimal digits from the OS's cryptographic random source (each byte below
/// 250 gives one digit, so every digit is equally likely).
pub(crate) fn random_digits(length: usize) -> Result<String> {
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 32];
    while out.len() < length {
        getrandom::fill(&mut buf).map_err(|e| anyhow!("the OS random source failed: {e}"))?;
        for b in buf {
            if b < 250 && out.len() < length {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
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
    let min = AUTH_STRING_MIN_LEN as i64;
    let max = AUTH_STRING_MAX_LEN as i64;
    if !(min..=max).contains(&length) {
        bail!("--length {length}: an authentication string has {min} to {max} digits");
    }
    let length = usize::try_from(length).unwrap_or(AUTH_STRING_MIN_LEN);
    if devices.is_empty() && query.is_empty() && !all {
        bail!("no devices selected: give --device NAME, filters (--name, --in-pool, ...) or --all");
    }
    let store = open_existing(&data.data)?;
    let mut names: Vec<String> = Vec::new();
    for name in &devices {
        let device = store
            .device(name)?
            .ok_or_else(|| anyhow!("device {name} is not registered"))?;
        names.push(device.name);
    }
    if !query.is_empty() || all {
        let found = store.query_devices(&query.query(SystemTime::now())?)?;
        names.extend(found.into_iter().map(|d| d.name));
    }
    names.sort_by_key(|n| n.to_ascii_lowercase());
    names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    if names.is_empty() {
        bail!("no devices match");
    }
    let shared = if same {
        Some(random_digits(length)?)
    } else {
        None
    };
    let strings = names
        .into_iter()
        .map(|name| {
            let s = match &shared {
                Some(s) => s.clone(),
                None => random_digits(length)?,
            };
            Ok((name, s))
        })
        .collect::<Result<Vec<_>>>()?;
    // The file first: if it cannot be created, no string is set that nobody could read.
    let mut text = String::from("device_name,auth_string\n");
    for (name, s) in &strings {
        text.push_str(name);
        text.push(',');
        text.push_str(s);
        text.push('\n');
    }
    write_private_new(&csv, &text)?;
    if let Err(e) = store.set_auth_strings(&strings, SystemTime::now()) {
        let _ = std::fs::remove_file(&csv);
        return Err(e.into());
    }
    if json {
        let items: Vec<_> = strings
            .iter()
            .map(|(name, s)| json!({ "name": name, "auth_string": s }))
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "csv": csv.display().to_string(),
                "devices": items,
            }))?
        );
        return Ok(());
    }
    for (name, s) in &strings {
        outln!("{name}  {s}");
    }
    outln!(
        "{} authentication strings set (shown once; also in {})",
        strings.len(),
        csv.display()
    );
    Ok(())
}

fn write_private_new(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
