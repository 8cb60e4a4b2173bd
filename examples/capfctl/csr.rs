//! `capfctl csr list|count|delete|dump|export` and `capfctl cert import`: the Offline CA (the
//! guide's `utils capf csr ...` and `utils capf cert import`), over capf-admin's `csr` module.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Result, bail};
use capf_admin::OpenTrustStore;
use capf_admin::csr::{
    CsrEncoding, CsrExport, CsrSelection, ExportTarget, import_certificates, read_import_inputs,
};
use capf_store::CaRequestState;
use capf_trust::Release;

use crate::device::DataArgs;
use crate::print_json;

fn parse_state(s: &str) -> Result<CaRequestState, String> {
    s.parse()
        .map_err(|_| format!("{s:?}: expected pending, issued, delivered, stale or failed"))
}

/// `csr ...`.
#[derive(clap::Subcommand)]
pub(crate) enum CsrCommand {
    /// The requests to an external CA (endpoint CSRs), oldest first.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Only those in this state: pending, issued, delivered, stale, failed.
        #[arg(long, value_parser = parse_state)]
        state: Option<CaRequestState>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// How many requests there are (all, or in one state).
    Count {
        #[command(flatten)]
        data: DataArgs,
        /// Only those in this state.
        #[arg(long, value_parser = parse_state)]
        state: Option<CaRequestState>,
    },
    /// Delete one request, or all of them (an undelivered certificate becomes a stale LSC).
    Delete {
        #[command(flatten)]
        data: DataArgs,
        /// The request id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every request.
        #[arg(long)]
        all: bool,
    },
    /// One request's CSR as PEM, on standard output.
    Dump {
        #[command(flatten)]
        data: DataArgs,
        /// The request id.
        id: i64,
    },
    /// The pending CSRs, one file each (<DEVICE>-<id>.csr, PEM) with index.csv, for the CA.
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// Write into this directory (created when missing; no file is overwritten).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "tgz",
            conflicts_with = "tgz"
        )]
        dir: Option<PathBuf>,
        /// Write one gzip-compressed tar archive (a new file).
        #[arg(long, value_name = "FILE")]
        tgz: Option<PathBuf>,
        /// DER files (<DEVICE>-<id>.der) instead of PEM.
        #[arg(long)]
        der: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `cert ...`.
#[derive(clap::Subcommand)]
pub(crate) enum CertCommand {
    /// Import certificates an offline CA signed: DER, PEM (several per file), PKCS#7 .p7b (DER
    /// or PEM), or a .tgz of them. Each is matched to its pending request by public key and
    /// checked on its own; a refused one gets one line FILE: REASON, and the exit status is
    /// non-zero if any was refused.
    Import {
        #[command(flatten)]
        data: DataArgs,
        /// The CAPF-trust store directory, holding the external CA's root.
        #[arg(long, value_name = "DIR", default_value = "./capf-data/trust")]
        trust: PathBuf,
        /// Certificate files.
        #[arg(required_unless_present = "tgz")]
        files: Vec<PathBuf>,
        /// A .tgz of certificate files (read in memory; nothing is extracted to disk).
        #[arg(long, value_name = "FILE")]
        tgz: Vec<PathBuf>,
        /// Print JSON instead of text (refusals still make the exit status non-zero).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: CsrCommand) -> Result<()> {
    match cmd {
        CsrCommand::List { data, state, json } => {
            let store = data.open_existing()?;
            let csrs = capf_admin::csr::list_csrs(&*store, state)?;
            if json {
                return print_json(&csrs);
            }
            if csrs.is_empty() {
                outln!("no certificate requests");
            }
            for c in &csrs {
                outln!(
                    "{}  {}  {}  {}  received {}  {} ({} bytes){}",
                    c.id,
                    c.device,
                    c.mode,
                    c.state,
                    c.received_at,
                    c.key,
                    c.bytes,
                    c.failure
                        .as_deref()
                        .map(|f| format!("  failed: {f}"))
                        .unwrap_or_default()
                );
            }
        }
        CsrCommand::Count { data, state } => {
            let store = data.open_existing()?;
            outln!("{}", capf_admin::csr::count_csrs(&*store, state)?);
        }
        CsrCommand::Delete { data, id, all } => {
            let store = data.open_existing()?;
            let which = match (id, all) {
                (Some(id), false) => CsrSelection::One(id),
                (None, true) => CsrSelection::All,
                _ => bail!("give a request id or --all"),
            };
            let n = capf_admin::csr::delete_csrs(&*store, which, SystemTime::now())?;
            outln!("{n} certificate request(s) deleted");
        }
        CsrCommand::Dump { data, id } => {
            let store = data.open_existing()?;
            out!("{}", capf_admin::csr::csr_pem(&*store, id)?);
        }
        CsrCommand::Export {
            data,
            dir,
            tgz,
            der,
            json,
        } => {
            let store = data.open_existing()?;
            let target = match (dir, tgz) {
                (Some(dir), None) => ExportTarget::Dir(dir),
                (None, Some(tgz)) => ExportTarget::Tgz(tgz),
                _ => bail!("give --dir DIR or --tgz FILE"),
            };
            let encoding = if der {
                CsrEncoding::Der
            } else {
                CsrEncoding::Pem
            };
            let view = capf_admin::csr::export_csrs(&*store, &CsrExport { target, encoding })?;
            if json {
                return print_json(&view);
            }
            outln!(
                "{} pending request(s) exported to {} (with {})",
                view.exported.len(),
                view.target,
                capf_admin::csr::INDEX_FILE
            );
        }
    }
    Ok(())
}

pub(crate) fn run_cert(cmd: CertCommand) -> Result<()> {
    let CertCommand::Import {
        data,
        trust,
        files,
        tgz,
        json,
    } = cmd;
    let store = data.open_existing()?;
    let trust = OpenTrustStore::load(&trust, Release::LATEST)?;
    for bad in &trust.bad_files {
        eprintln!(
            "capfctl: trust store: {}: {}",
            bad.path.display(),
            bad.error
        );
    }
    let (inputs, mut refused) = read_import_inputs(&files, &tgz);
    let mut report = import_certificates(&*store, &trust.store, &inputs, SystemTime::now())?;
    refused.append(&mut report.refused);
    report.refused = refused;
    if json {
        print_json(&report)?;
    } else {
        for i in &report.imported {
            outln!(
                "{}: imported for {} (request {}, serial {}, valid until {})",
                i.source,
                i.device,
                i.request,
                i.serial,
                i.not_after
            );
        }
    }
    for r in &report.refused {
        eprintln!("{}: {}", r.source, r.reason);
    }
    if !report.refused.is_empty() {
        bail!(
            "{} certificate(s) or file(s) refused, {} imported",
            report.refused.len(),
            report.imported.len()
        );
    }
    Ok(())
}
