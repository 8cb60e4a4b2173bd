//! Reports and monitoring over the store: `stale-lsc list|delete`, `status`,
//! `keep-alive set|show`, `monitor` (expiring LSCs, notification email, revocation of expired
//! ones), `crl` (a CRL signed by the CAPF key) and `export` (LSCs as PEM, or a CSV report);
//! the reports themselves are capf-admin's.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use capf_admin::{DeletedView, KeepaliveView, LscSelection, LscView, SmtpRelay, rfc3339};
use capf_store::KeepaliveMinutes;

use crate::device::DataArgs;
use crate::query::QueryArgs;
use crate::{print_json, write_out};

/// `stale-lsc ...` (the guide's `utils capf stale-lsc`).
#[derive(clap::Subcommand)]
pub(crate) enum StaleLscCommand {
    /// The stale LSCs: issued to a phone, never confirmed, then replaced.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete the stale LSC records.
    Delete {
        #[command(flatten)]
        data: DataArgs,
        /// Every stale LSC (required: there is no other selection).
        #[arg(long)]
        all: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `settings ...`: every run-time limit and deadline, which the running server re-reads.
#[derive(clap::Subcommand)]
pub(crate) enum SettingsCommand {
    /// Set one setting (`capfctl settings show` lists the keys).
    Set {
        #[command(flatten)]
        data: DataArgs,
        /// The setting's key, e.g. max_sessions.
        key: String,
        /// Its value (seconds for a `..._seconds` key).
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show every setting.
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run_settings(cmd: SettingsCommand) -> Result<()> {
    match cmd {
        SettingsCommand::Set {
            data,
            key,
            value,
            json,
        } => {
            let store = data.open_existing()?;
            let set = capf_admin::set_setting(&*store, &key, &value, SystemTime::now())?;
            if json {
                return print_json(&set);
            }
            outln!(
                "{} set to {} (the running server picks it up)",
                set.key,
                set.value
            );
            Ok(())
        }
        SettingsCommand::Show { data, json } => {
            let store = data.open_existing()?;
            let settings = capf_admin::settings(&*store)?;
            if json {
                return print_json(&settings);
            }
            for s in settings {
                match s.note {
                    Some(note) => outln!("{} = {}  ({note})", s.key, s.value),
                    None => outln!("{} = {}", s.key, s.value),
                }
            }
            Ok(())
        }
    }
}

/// `keep-alive ...`: the CAPF keepalive timer, which the running server re-reads.
#[derive(clap::Subcommand)]
pub(crate) enum KeepAliveCommand {
    /// Set the keepalive, in minutes (5 to 60).
    Set {
        #[command(flatten)]
        data: DataArgs,
        /// Minutes, 5 to 60.
        #[arg(allow_hyphen_values = true)]
        minutes: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the keepalive.
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `monitor`.
#[derive(clap::Args)]
pub(crate) struct MonitorArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Report the LSCs that expire within this many days.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// The SMTP server (HOST or HOST:PORT, port 25 by default; plain SMTP, for a local
    /// relay) to send the notification email through.
    #[arg(long, value_name = "HOST[:PORT]", requires_all = ["mail_from", "mail_to"])]
    smtp_server: Option<String>,
    /// The notification's sender address.
    #[arg(long, value_name = "ADDRESS")]
    mail_from: Option<String>,
    /// A recipient of the notification (repeat for more).
    #[arg(long, value_name = "ADDRESS")]
    mail_to: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `crl`.
#[derive(clap::Args)]
pub(crate) struct CrlArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The CAPF certificate (default: capf.pem in the data directory).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The CAPF private key (default: capf.key in the data directory).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Days until the CRL's nextUpdate.
    #[arg(long, default_value_t = 7)]
    next_update_days: u32,
    /// Where to write the PEM CRL (never overwritten; default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON (the revoked serials and the PEM) instead of the PEM alone.
    #[arg(long)]
    json: bool,
}

/// The formats of `export`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// The certificates, PEM.
    Pem,
    /// A CSV report: device, serial, state, dates.
    Csv,
    /// JSON: each LSC's fields and its PEM.
    Json,
}

/// Arguments of `export`.
#[derive(clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    data: DataArgs,
    /// One LSC, by serial number (hex), in whatever state.
    #[arg(long, value_name = "HEX", conflicts_with = "all")]
    serial: Option<String>,
    #[command(flatten)]
    query: QueryArgs,
    /// The installed LSCs of every device (required when no serial and no filter is given).
    #[arg(long)]
    all: bool,
    /// The output format.
    #[arg(long, value_enum, default_value = "pem")]
    format: ExportFormat,
    /// Where to write (never overwritten; default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(crate) fn run_stale(cmd: StaleLscCommand) -> Result<()> {
    match cmd {
        StaleLscCommand::List { data, json } => {
            let store = data.open_existing()?;
            let stale = store.stale_lscs()?;
            if json {
                return print_json(&stale.iter().map(LscView::from).collect::<Vec<_>>());
            }
            if stale.is_empty() {
                outln!("no stale LSCs");
            }
            for l in &stale {
                outln!(
                    "{}  {}  issued {}  stale since {}",
                    l.serial_hex(),
                    l.device,
                    rfc3339(l.issued_at),
                    rfc3339(l.state_changed_at)
                );
            }
            Ok(())
        }
        StaleLscCommand::Delete { data, all, json } => {
            if !all {
                bail!("stale-lsc delete needs --all (it deletes every stale LSC record)");
            }
            let store = data.open_existing()?;
            let deleted = store.delete_stale_lscs(SystemTime::now())?;
            if json {
                return print_json(&DeletedView { deleted });
            }
            outln!("deleted {deleted} stale LSC records");
            Ok(())
        }
    }
}

/// `status`: the operation status report.
pub(crate) fn run_status(data: &DataArgs, json: bool) -> Result<()> {
    let store = data.open_existing()?;
    let report = capf_admin::status_report(&*store, SystemTime::now())?;
    if json {
        return print_json(&report);
    }
    outln!("pending:            {}", report.pending);
    outln!("in progress:        {}", report.in_progress);
    outln!("succeeded:          {}", report.succeeded);
    outln!("failed:             {}", report.failed);
    outln!("expired:            {}", report.expired);
    outln!("no operation:       {}", report.no_operation);
    outln!("past complete-by:   {}", report.past_complete_by);
    for d in &report.failed_devices {
        outln!("failed: {}  {}: {}", d.name, d.operation, d.reason);
    }
    for d in &report.past_complete_by_devices {
        outln!(
            "past complete-by: {}  {}  (complete by {})",
            d.name,
            d.operation,
            d.complete_by.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

pub(crate) fn run_keep_alive(cmd: KeepAliveCommand) -> Result<()> {
    match cmd {
        KeepAliveCommand::Set {
            data,
            minutes,
            json,
        } => {
            let n: u32 = minutes.trim().parse().map_err(|_| {
                anyhow!("keep-alive set {minutes:?}: expected a whole number of minutes, 5 to 60")
            })?;
            let keepalive = KeepaliveMinutes::new(n)?;
            let store = data.open_existing()?;
            capf_admin::set_keepalive(&*store, keepalive, SystemTime::now())?;
            if json {
                return print_json(&KeepaliveView {
                    keepalive_minutes: keepalive.minutes(),
                });
            }
            outln!("CAPF keepalive set to {keepalive} (the running server picks it up)");
            Ok(())
        }
        KeepAliveCommand::Show { data, json } => {
            let store = data.open_existing()?;
            let keepalive = capf_admin::keepalive(&*store)?;
            if json {
                return print_json(&KeepaliveView {
                    keepalive_minutes: keepalive.minutes(),
                });
            }
            outln!("CAPF keepalive: {keepalive}");
            Ok(())
        }
    }
}

pub(crate) fn run_monitor(args: MonitorArgs) -> Result<()> {
    let store = args.data.open_existing()?;
    let report = capf_admin::monitor(&*store, args.days, SystemTime::now())?;
    let mut mailed = false;
    if let Some(server) = &args.smtp_server
        && !report.is_empty()
    {
        let relay = SmtpRelay {
            server: server.clone(),
            from: args.mail_from.clone().unwrap_or_default(),
            to: args.mail_to.clone(),
        };
        capf_admin::send_notification(&relay, &report)?;
        mailed = true;
    }
    if args.json {
        return print_json(&report.view(mailed));
    }
    outln!("{}", report.text());
    if mailed {
        outln!("notification sent to {}", args.mail_to.join(", "));
    }
    Ok(())
}

pub(crate) fn run_crl(args: CrlArgs) -> Result<()> {
    let dir = &args.data.data;
    let cert = args.cert.unwrap_or_else(|| dir.join("capf.pem"));
    let key = args.key.unwrap_or_else(|| dir.join("capf.key"));
    let issuer = capf_admin::load_issuer(&cert, &key)?;
    let store = args.data.open_existing()?;
    let crl =
        capf_admin::revoked_lscs_crl(&*store, &issuer, args.next_update_days, SystemTime::now())?;
    if args.json {
        if let Some(out) = &args.out {
            write_out(Some(out), &crl.pem, false)?;
        }
        return print_json(&crl.view(args.out.as_deref()));
    }
    write_out(args.out.as_deref(), &crl.pem, false)?;
    if let Some(out) = &args.out {
        outln!(
            "wrote a CRL of {} revoked LSCs to {}",
            crl.revoked.len(),
            out.display()
        );
    }
    Ok(())
}

pub(crate) fn run_export(args: ExportArgs) -> Result<()> {
    if args.serial.is_none() && args.query.is_empty() && !args.all {
        bail!("nothing selected: give --serial HEX, filters (--name, --in-pool, ...) or --all");
    }
    if let Some(text) = &args.serial {
        capf_admin::parse_serial(text)?;
    }
    let store = args.data.open_existing()?;
    let selection = match &args.serial {
        Some(text) => LscSelection::Serial(text.clone()),
        None => LscSelection::Installed(args.query.filter()?),
    };
    let lscs = capf_admin::select_lscs(&*store, &selection, SystemTime::now())?;
    let text = match args.format {
        ExportFormat::Pem => capf_admin::export_pem(&lscs)?,
        ExportFormat::Csv => capf_admin::export_csv(&lscs)?,
        ExportFormat::Json => {
            let mut text = serde_json::to_string_pretty(&capf_admin::export_views(&lscs)?)?;
            text.push('\n');
            text
        }
    };
    write_out(args.out.as_deref(), &text, false)?;
    if let Some(out) = &args.out {
        outln!("wrote {} LSCs to {}", lscs.len(), out.display());
    }
    Ok(())
}
