//! Reports and monitoring over the store: `csr list`, `stale-lsc list|delete`, `status`,
//! `keep-alive set|show`, `monitor` (expiring LSCs, notification email, revocation of expired
//! ones), `crl` (a CRL signed by the CAPF key) and `export` (LSCs as PEM, or a CSV report).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use capf_lsc::Issuer;
use capf_lsc::der::asn1::{BitString, OctetString, Uint};
use capf_lsc::der::oid::AssociatedOid;
use capf_lsc::der::pem::LineEnding;
use capf_lsc::der::{Encode, EncodePem};
use capf_lsc::x509_cert::certificate::Version;
use capf_lsc::x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use capf_lsc::x509_cert::ext::Extension;
use capf_lsc::x509_cert::ext::pkix::CrlNumber;
use capf_lsc::x509_cert::serial_number::SerialNumber;
use capf_lsc::x509_cert::time::Time;
use capf_store::{AdminStore, KeepaliveMinutes, LscRecord, SessionStore, StatusKind};
use serde_json::{Value, json};

use crate::capf_cert::write_new;
use crate::device::{DataArgs, open_existing, time_text};
use crate::query::QueryArgs;

/// `csr ...`.
#[derive(clap::Subcommand)]
pub(crate) enum CsrCommand {
    /// The pending certificate requests: public keys received and not yet answered with a
    /// certificate, oldest first.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

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

fn lsc_json(l: &LscRecord) -> Value {
    json!({
        "serial": l.serial_hex(),
        "device": l.device,
        "state": l.state.as_str(),
        "not_before": time_text(l.not_before),
        "not_after": time_text(l.not_after),
        "issued_at": time_text(l.issued_at),
        "state_changed_at": time_text(l.state_changed_at),
    })
}

fn print_json(value: &Value) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn run_csr(cmd: CsrCommand) -> Result<()> {
    let CsrCommand::List { data, json } = cmd;
    let store = open_existing(&data.data)?;
    let csrs = store.pending_csrs()?;
    let key_type = |request: &[u8]| {
        capf_lsc::PhonePublicKey::from_der(request)
            .map_or_else(|_| "request".to_owned(), |k| format!("{:?}", k.spec()))
    };
    if json {
        let items: Vec<Value> = csrs
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "device": c.device,
                    "received_at": time_text(c.received_at),
                    "bytes": c.request.len(),
                    "key": key_type(&c.request),
                })
            })
            .collect();
        return print_json(&Value::Array(items));
    }
    if csrs.is_empty() {
        outln!("no pending certificate requests");
    }
    for c in &csrs {
        outln!(
            "{}  {}  received {}  {} ({} bytes)",
            c.id,
            c.device,
            time_text(c.received_at),
            key_type(&c.request),
            c.request.len()
        );
    }
    Ok(())
}

pub(crate) fn run_stale(cmd: StaleLscCommand) -> Result<()> {
    match cmd {
        StaleLscCommand::List { data, json } => {
            let store = open_existing(&data.data)?;
            let stale = store.stale_lscs()?;
            if json {
                return print_json(&Value::Array(stale.iter().map(lsc_json).collect()));
            }
            if stale.is_empty() {
                outln!("no stale LSCs");
            }
            for l in &stale {
                outln!(
                    "{}  {}  issued {}  stale since {}",
                    l.serial_hex(),
                    l.device,
                    time_text(l.issued_at),
                    time_text(l.state_changed_at)
                );
            }
            Ok(())
        }
        StaleLscCommand::Delete { data, all, json } => {
            if !all {
                bail!("stale-lsc delete needs --all (it deletes every stale LSC record)");
            }
            let store = open_existing(&data.data)?;
            let deleted = store.delete_stale_lscs(SystemTime::now())?;
            if json {
                return print_json(&json!({ "deleted": deleted }));
            }
            outln!("deleted {deleted} stale LSC records");
            Ok(())
        }
    }
}

/// `status`: the operation status report.
pub(crate) fn run_status(data: &DataArgs, json: bool) -> Result<()> {
    let store = open_existing(&data.data)?;
    let now = SystemTime::now();
    let report = store.status_report(now)?;
    let failed = store.query_devices(&capf_store::DeviceQuery {
        status: Some(StatusKind::Failed),
        ..Default::default()
    })?;
    let past = store.query_devices(&capf_store::DeviceQuery {
        complete_by_before: Some(now),
        ..Default::default()
    })?;
    let reason = |d: &capf_store::Device| match &d.status {
        capf_store::OperationStatus::Failed { reason } => reason.clone(),
        other => other.to_string(),
    };
    if json {
        return print_json(&json!({
            "pending": report.pending,
            "in_progress": report.in_progress,
            "succeeded": report.succeeded,
            "failed": report.failed,
            "expired": report.expired,
            "no_operation": report.none,
            "past_complete_by": report.past_complete_by,
            "failed_devices": failed
                .iter()
                .map(|d| json!({ "name": d.name, "operation": d.operation.to_string(), "reason": reason(d) }))
                .collect::<Vec<_>>(),
            "past_complete_by_devices": past
                .iter()
                .map(|d| json!({
                    "name": d.name,
                    "operation": d.operation.to_string(),
                    "complete_by": d.complete_by.map(time_text),
                }))
                .collect::<Vec<_>>(),
        }));
    }
    outln!("pending:            {}", report.pending);
    outln!("in progress:        {}", report.in_progress);
    outln!("succeeded:          {}", report.succeeded);
    outln!("failed:             {}", report.failed);
    outln!("expired:            {}", report.expired);
    outln!("no operation:       {}", report.none);
    outln!("past complete-by:   {}", report.past_complete_by);
    for d in &failed {
        outln!("failed: {}  {}: {}", d.name, d.operation, reason(d));
    }
    for d in &past {
        outln!(
            "past complete-by: {}  {}  (complete by {})",
            d.name,
            d.operation,
            d.complete_by.map_or_else(|| "-".to_owned(), time_text)
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
            let store = open_existing(&data.data)?;
            store.set_keepalive(keepalive, SystemTime::now())?;
            if json {
                return print_json(&json!({ "keepalive_minutes": keepalive.minutes() }));
            }
            outln!("CAPF keepalive set to {keepalive} (the running server picks it up)");
            Ok(())
        }
        KeepAliveCommand::Show { data, json } => {
            let store = open_existing(&data.data)?;
            let keepalive = store.settings()?.keepalive;
            if json {
                return print_json(&json!({ "keepalive_minutes": keepalive.minutes() }));
            }
            outln!("CAPF keepalive: {keepalive}");
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// monitor

pub(crate) fn run_monitor(args: MonitorArgs) -> Result<()> {
    let store = open_existing(&args.data.data)?;
    let now = SystemTime::now();
    let revoked = store.revoke_expired_lscs(now)?;
    let horizon = now
        .checked_add(Duration::from_secs(u64::from(args.days) * 86_400))
        .ok_or_else(|| anyhow!("--days {}: too far ahead", args.days))?;
    let expiring = store.lscs_expiring_before(horizon)?;
    let mut mailed = false;
    if let Some(server) = &args.smtp_server
        && (!expiring.is_empty() || !revoked.is_empty())
    {
        send_notification(&args, server, &expiring, &revoked)?;
        mailed = true;
    }
    if args.json {
        return print_json(&json!({
            "days": args.days,
            "expiring": expiring.iter().map(lsc_json).collect::<Vec<_>>(),
            "revoked": revoked.iter().map(lsc_json).collect::<Vec<_>>(),
            "mailed": mailed,
        }));
    }
    outln!("{}", notification_text(args.days, &expiring, &revoked));
    if mailed {
        outln!("notification sent to {}", args.mail_to.join(", "));
    }
    Ok(())
}

fn notification_text(days: u32, expiring: &[LscRecord], revoked: &[LscRecord]) -> String {
    let mut text = format!("{} LSCs expire within {days} days:\n", expiring.len());
    for l in expiring {
        text.push_str(&format!(
            "  {}  serial {}  notAfter {}\n",
            l.device,
            l.serial_hex(),
            time_text(l.not_after)
        ));
    }
    text.push_str(&format!(
        "{} expired LSCs were marked revoked:\n",
        revoked.len()
    ));
    for l in revoked {
        text.push_str(&format!(
            "  {}  serial {}  notAfter {}\n",
            l.device,
            l.serial_hex(),
            time_text(l.not_after)
        ));
    }
    text
}

fn send_notification(
    args: &MonitorArgs,
    server: &str,
    expiring: &[LscRecord],
    revoked: &[LscRecord],
) -> Result<()> {
    use lettre::message::header::ContentType;
    use lettre::{Message, SmtpTransport, Transport};

    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| anyhow!("--smtp-server {server:?}: the port is not a number"))?,
        ),
        None => (server, 25),
    };
    let from = args.mail_from.as_deref().unwrap_or_default();
    let mut builder = Message::builder()
        .from(
            from.parse()
                .map_err(|e| anyhow!("--mail-from {from:?}: {e}"))?,
        )
        .subject(format!(
            "CAPF: {} LSCs expire within {} days, {} revoked",
            expiring.len(),
            args.days,
            revoked.len()
        ))
        .header(ContentType::TEXT_PLAIN);
    for to in &args.mail_to {
        builder = builder.to(to.parse().map_err(|e| anyhow!("--mail-to {to:?}: {e}"))?);
    }
    let message = builder
        .body(notification_text(args.days, expiring, revoked))
        .context("building the notification email")?;
    SmtpTransport::builder_dangerous(host)
        .port(port)
        .timeout(Some(Duration::from_secs(30)))
        .build()
        .send(&message)
        .map_err(|e| anyhow!("sending the notification through {server}: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// crl

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The CRL of the revoked LSCs, signed by `issuer`, as PEM.
pub(crate) fn build_crl(
    issuer: &Issuer,
    revoked: &[LscRecord],
    now: SystemTime,
    next_update: SystemTime,
) -> Result<String> {
    let signer = issuer.signer();
    let time = |t: SystemTime| Time::try_from(t).map_err(|e| anyhow!("a CRL time: {e}"));
    let entries = revoked
        .iter()
        .map(|l| {
            Ok(RevokedCert::<capf_lsc::x509_cert::certificate::Rfc5280> {
                serial_number: SerialNumber::new(&l.serial)
                    .map_err(|e| anyhow!("LSC serial {}: {e}", l.serial_hex()))?,
                revocation_date: time(l.state_changed_at)?,
                crl_entry_extensions: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    // The CRL number grows with time, so a newer CRL has a larger one.
    let number = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let number =
        CrlNumber(Uint::new(&number.to_be_bytes()).map_err(|e| anyhow!("CRL number: {e}"))?);
    let extension = Extension {
        extn_id: CrlNumber::OID,
        critical: false,
        extn_value: OctetString::new(number.to_der()?).map_err(|e| anyhow!("CRL number: {e}"))?,
    };
    let tbs = TbsCertList {
        version: Version::V2,
        signature: signer.signature_algorithm(),
        issuer: issuer.certificate().tbs_certificate().subject().clone(),
        this_update: time(now)?,
        next_update: Some(time(next_update)?),
        revoked_certificates: (!entries.is_empty()).then_some(entries),
        crl_extensions: Some(vec![extension]),
    };
    let signature = signer.sign(&tbs.to_der()?)?;
    let crl = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: signer.signature_algorithm(),
        signature: BitString::from_bytes(&signature).map_err(|e| anyhow!("signature: {e}"))?,
    };
    crl.to_pem(LineEnding::LF)
        .map_err(|e| anyhow!("encoding the CRL: {e}"))
}

pub(crate) fn run_crl(args: CrlArgs) -> Result<()> {
    let dir = &args.data.data;
    let cert = args.cert.unwrap_or_else(|| dir.join("capf.pem"));
    let key = args.key.unwrap_or_else(|| dir.join("capf.key"));
    let pem = format!("{}\n{}", read_text(&cert)?, read_text(&key)?);
    let issuer = Issuer::from_pem(&pem).with_context(|| {
        format!(
            "the CAPF certificate {} and key {}",
            cert.display(),
            key.display()
        )
    })?;
    let store = open_existing(dir)?;
    let revoked = store.revoked_lscs()?;
    let now = SystemTime::now();
    let next = now + Duration::from_secs(u64::from(args.next_update_days.max(1)) * 86_400);
    let pem = build_crl(&issuer, &revoked, now, next)?;
    if args.json {
        if let Some(out) = &args.out {
            write_new(Some(out), &pem, false)?;
        }
        return print_json(&json!({
            "out": args.out.as_ref().map(|p| p.display().to_string()),
            "this_update": time_text(now),
            "next_update": time_text(next),
            "revoked": revoked.iter().map(LscRecord::serial_hex).collect::<Vec<_>>(),
            "pem": pem,
        }));
    }
    write_new(args.out.as_deref(), &pem, false)?;
    if let Some(out) = &args.out {
        outln!(
            "wrote a CRL of {} revoked LSCs to {}",
            revoked.len(),
            out.display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// export

fn parse_serial(text: &str) -> Result<Vec<u8>> {
    let clean: String = text.chars().filter(|c| *c != ':').collect();
    hex::decode(&clean)
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| anyhow!("--serial {text:?}: expected the serial number in hex"))
}

pub(crate) fn run_export(args: ExportArgs) -> Result<()> {
    if args.serial.is_none() && args.query.is_empty() && !args.all {
        bail!("nothing selected: give --serial HEX, filters (--name, --in-pool, ...) or --all");
    }
    let serial = args.serial.as_deref().map(parse_serial).transpose()?;
    let store = open_existing(&args.data.data)?;
    let lscs = match (&serial, args.serial.as_deref()) {
        (Some(serial), Some(text)) => vec![
            store
                .lsc(serial)?
                .ok_or_else(|| anyhow!("no LSC with serial {text} is recorded"))?,
        ],
        _ => store.installed_lscs(&args.query.query(SystemTime::now())?)?,
    };
    let text = match args.format {
        ExportFormat::Pem => {
            let mut text = String::new();
            for l in &lscs {
                text.push_str(
                    &capf_lsc::der::pem::encode_string("CERTIFICATE", LineEnding::LF, &l.der)
                        .map_err(|e| anyhow!("LSC {}: {e}", l.serial_hex()))?,
                );
            }
            text
        }
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record([
                "device_name",
                "serial",
                "state",
                "not_before",
                "not_after",
                "issued_at",
            ])?;
            for l in &lscs {
                writer.write_record([
                    l.device.clone(),
                    l.serial_hex(),
                    l.state.as_str().to_owned(),
                    time_text(l.not_before),
                    time_text(l.not_after),
                    time_text(l.issued_at),
                ])?;
            }
            String::from_utf8(writer.into_inner().map_err(|e| anyhow!("{e}"))?)?
        }
        ExportFormat::Json => {
            let items = lscs
                .iter()
                .map(|l| {
                    let mut item = lsc_json(l);
                    item["pem"] = Value::String(
                        capf_lsc::der::pem::encode_string("CERTIFICATE", LineEnding::LF, &l.der)
                            .map_err(|e| anyhow!("LSC {}: {e}", l.serial_hex()))?,
                    );
                    Ok(item)
                })
                .collect::<Result<Vec<_>>>()?;
            let mut text = serde_json::to_string_pretty(&items)?;
            text.push('\n');
            text
        }
    };
    write_new(args.out.as_deref(), &text, false)?;
    if let Some(out) = &args.out {
        outln!("wrote {} LSCs to {}", lscs.len(), out.display());
    }
    Ok(())
}
