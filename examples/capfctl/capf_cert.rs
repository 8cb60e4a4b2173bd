//! `capfctl capf-cert generate|show|check|csr|upload`: the CAPF certificate.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use capf_admin::{CapfCertificateRequest, NamedFile, read_certificate_and_key, rfc3339};
use capf_lsc::{CertificateSummary, KeySpec, SignatureHash, ValidityDays};
use capf_store::Secret;

use crate::device::DataArgs;
use crate::write_out;

/// The CAPF certificate verbs.
#[derive(clap::Subcommand)]
pub(crate) enum CapfCertCommand {
    /// Generate a CAPF key and its self-signed CAPF certificate (CA:TRUE pathlen:0,
    /// digitalSignature + keyCertSign + cRLSign).
    Generate(GenerateArgs),
    /// Show a certificate (PEM or DER) and whether it passes the CAPF certificate profile.
    Show {
        /// The certificate file.
        cert: PathBuf,
    },
    /// Check a CAPF certificate (14SU2 extensions, dates, matching key); exit 1 if it fails.
    Check {
        /// The certificate file (PEM or DER), or a PEM bundle of the certificate and its key.
        cert: PathBuf,
        /// The CAPF private key (PKCS#8 PEM) that must match the certificate (when the
        /// certificate file holds none).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Replace the CAPF certificate the servers use by a checked certificate and key: on a
    /// cluster's store (`--store postgres://...`) it becomes the cluster's, which every node
    /// loads within seconds; otherwise it replaces the data directory's capf.pem and capf.key,
    /// which capfd reloads.
    Upload {
        #[command(flatten)]
        data: DataArgs,
        /// The certificate file (PEM or DER), or a PEM bundle of the certificate and its key.
        cert: PathBuf,
        /// The CAPF private key (PKCS#8 PEM), when the certificate file holds none.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Write a PKCS#10 request for the CAPF key, to have a third-party CA sign it.
    Csr {
        /// The current CAPF certificate (its subject goes into the request).
        #[arg(long)]
        cert: PathBuf,
        /// The CAPF private key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the PEM request (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Arguments of `capf-cert generate`.
#[derive(clap::Args)]
pub(crate) struct GenerateArgs {
    /// Key type: rsa2048, rsa3072, rsa4096, p256 or p384.
    #[arg(long, default_value = "rsa2048")]
    key_type: String,
    /// Validity in days, 1 to 1825.
    #[arg(long, default_value = "1825", allow_hyphen_values = true)]
    days: String,
    /// The 8 hex digits after "CAPF-" (default: random).
    #[arg(long)]
    capf_id: Option<String>,
    /// Signature digest: sha256 (the default, what phones expect), sha384 or sha512.
    #[arg(long, default_value = "sha256")]
    hash: String,
    /// Subject O.
    #[arg(long, default_value = "")]
    org: String,
    /// Subject OU.
    #[arg(long, default_value = "")]
    ou: String,
    /// Subject L.
    #[arg(long, default_value = "")]
    locality: String,
    /// Subject ST.
    #[arg(long, default_value = "")]
    state: String,
    /// Subject C (two letters).
    #[arg(long, default_value = "")]
    country: String,
    /// Where to write the certificate (PEM); must not exist.
    #[arg(long)]
    cert_out: PathBuf,
    /// Where to write the private key (PKCS#8 PEM, mode 0600); must not exist.
    #[arg(long)]
    key_out: PathBuf,
}

pub(crate) fn run(cmd: CapfCertCommand) -> Result<()> {
    match cmd {
        CapfCertCommand::Generate(args) => generate(args),
        CapfCertCommand::Show { cert } => show(&cert),
        CapfCertCommand::Check { cert, key } => check(&cert, key.as_deref()),
        CapfCertCommand::Csr { cert, key, out } => csr(&cert, &key, out.as_deref()),
        CapfCertCommand::Upload { data, cert, key } => upload(&data, &cert, key.as_deref()),
    }
}

fn upload(data: &DataArgs, path: &Path, key: Option<&Path>) -> Result<()> {
    let loaded = read_certificate_and_key(NamedFile::plain(path), key.map(NamedFile::plain))?;
    let now = SystemTime::now();
    let report = capf_admin::check_capf_certificate(&loaded, path, now)?;
    let key_pem = loaded
        .require_key()
        .with_context(|| format!("{}: give the CAPF key with --key", path.display()))?
        .to_pkcs8_pem()?;
    let key_pem = Secret::new(key_pem.as_str());
    let certificate_pem = capf_lsc::certificate_to_pem(&loaded.certificate)?;
    let cn = report.common_name.as_deref().unwrap_or("no CN");
    let store = data.open_existing()?;
    if let Some(stored) = store.replace_cluster_capf_certificate(&certificate_pem, &key_pem, now)? {
        outln!(
            "{cn} is the cluster's CAPF certificate (generation {}): every node serves it within seconds",
            stored.generation
        );
        return Ok(());
    }
    // One node: its data directory's files, each written beside and renamed over the old
    // one, the key first (capfd, seeing a new certificate with the old key, waits for the key).
    for (name, contents, private) in [
        ("capf.key", key_pem.expose(), true),
        ("capf.pem", certificate_pem.as_str(), false),
    ] {
        let target = data.data.join(name);
        let temp = target.with_extension("upload");
        let _ = std::fs::remove_file(&temp);
        capf_admin::write_new_file(&temp, contents.as_bytes(), private)?;
        std::fs::rename(&temp, &target)
            .with_context(|| format!("replacing {}", target.display()))?;
    }
    store.record_admin_action(
        capf_store::action::CAPF_CERTIFICATE_REPLACED,
        &format!("CN={cn} from {}", path.display()),
        now,
    )?;
    outln!(
        "{cn} written to {}: capfd reloads it within seconds",
        data.data.display()
    );
    Ok(())
}

fn generate(args: GenerateArgs) -> Result<()> {
    let spec: KeySpec = args.key_type.parse().context("--key-type")?;
    let validity: ValidityDays = args.days.parse().context("--days")?;
    let hash: SignatureHash = args.hash.parse().context("--hash")?;
    let capf_id = args
        .capf_id
        .as_deref()
        .map(capf_admin::parse_capf_id)
        .transpose()?;
    let request = CapfCertificateRequest {
        key: spec,
        validity,
        hash,
        capf_id,
        organization: args.org,
        organizational_unit: args.ou,
        locality: args.locality,
        state: args.state,
        country: args.country,
        certificate_out: args.cert_out,
        key_out: args.key_out,
    };
    let common_name = capf_admin::generate_capf_certificate(&request, SystemTime::now())?;
    eprintln!(
        "wrote {} ({common_name}) and {} ({spec}, {validity})",
        request.certificate_out.display(),
        request.key_out.display()
    );
    Ok(())
}

fn show(path: &Path) -> Result<()> {
    let cert = read_certificate_and_key(NamedFile::plain(path), None)?.certificate;
    let s = CertificateSummary::of(&cert)?;
    outln!("subject:     {}", s.subject);
    outln!("issuer:      {}", s.issuer);
    outln!("serial:      {}", s.serial_hex);
    outln!("not before:  {}", rfc3339(s.not_before));
    outln!("not after:   {}", rfc3339(s.not_after));
    match &s.key {
        Ok(spec) => outln!("key:         {spec}"),
        Err(e) => outln!("key:         unsupported ({e})"),
    }
    outln!("signature:   {}", s.signature_algorithm);
    match s.constraints_text() {
        Some(text) => outln!("constraints: {text}"),
        None => outln!("constraints: (none)"),
    }
    match &s.key_usage {
        Some(names) => outln!("key usage:   {}", names.join(", ")),
        None => outln!("key usage:   (none)"),
    }
    let problems = capf_lsc::capf_certificate_problems(&cert, None, SystemTime::now())?;
    if problems.is_empty() {
        outln!("CAPF profile: OK");
    } else {
        for p in problems {
            outln!("CAPF profile: {p}");
        }
    }
    Ok(())
}

fn check(path: &Path, key: Option<&Path>) -> Result<()> {
    let loaded = read_certificate_and_key(NamedFile::plain(path), key.map(NamedFile::plain))?;
    let report = capf_admin::check_capf_certificate(&loaded, path, SystemTime::now())?;
    outln!(
        "{}: OK ({}, {}, valid until {}{})",
        path.display(),
        report.common_name.as_deref().unwrap_or("no CN"),
        report.key,
        rfc3339(report.not_after),
        if report.reserved_common_name {
            ""
        } else {
            "; CN is not of the form CAPF-xxxxxxxx"
        }
    );
    Ok(())
}

fn csr(cert: &Path, key: &Path, out: Option<&Path>) -> Result<()> {
    let loaded = read_certificate_and_key(NamedFile::plain(cert), Some(NamedFile::plain(key)))?;
    write_out(out, &capf_admin::capf_csr_pem(&loaded)?, false)
}
