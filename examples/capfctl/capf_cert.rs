//! `capfctl capf-cert generate|show|check|csr`: the CAPF certificate.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use capf_admin::rfc3339;
use capf_lsc::der::referenced::OwnedToRef;
use capf_lsc::x509_cert::Certificate;
use capf_lsc::x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use capf_lsc::{
    CaCertificateParams, IssuerKey, KeySpec, LscSigner, SignatureHash, ValidityDays, cert_info,
};

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
        /// The certificate file (PEM or DER).
        cert: PathBuf,
        /// The CAPF private key (PKCS#8 PEM) that must match the certificate.
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
    }
}

pub(crate) fn read_certificate(path: &Path) -> Result<Certificate> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    capf_lsc::certificate_from_pem_or_der(&bytes).with_context(|| format!("{}", path.display()))
}

pub(crate) fn read_key(path: &Path) -> Result<IssuerKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    IssuerKey::from_pkcs8_pem(&text).with_context(|| format!("{}", path.display()))
}

fn generate(args: GenerateArgs) -> Result<()> {
    let spec: KeySpec = args.key_type.parse().context("--key-type")?;
    let validity: ValidityDays = args.days.parse().context("--days")?;
    let hash: SignatureHash = args.hash.parse().context("--hash")?;
    let capf_id = match &args.capf_id {
        Some(hex) => {
            if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("--capf-id: {hex:?} is not 8 hex digits");
            }
            u32::from_str_radix(hex, 16).context("--capf-id")?
        }
        None => {
            let b = capf_admin::random_serial()?;
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        }
    };
    for path in [&args.cert_out, &args.key_out] {
        if path.exists() {
            bail!("{} already exists; it is never overwritten", path.display());
        }
    }
    let mut params = CaCertificateParams::capf(capf_id);
    params.validity = validity;
    params.organization = args.org;
    params.organizational_unit = args.ou;
    params.locality = args.locality;
    params.state = args.state;
    params.country = args.country;
    params.subject().context("subject")?;
    let key = IssuerKey::generate(spec, &mut getrandom::SysRng)
        .context("generating the CAPF key")?
        .with_hash(hash);
    let serial = capf_admin::random_serial()?;
    let cert = params.self_signed(&key, SystemTime::now(), &mut || serial)?;
    let key_pem = key.to_pkcs8_pem()?;
    write_out(Some(&args.key_out), &key_pem, true)?;
    write_out(
        Some(&args.cert_out),
        &capf_lsc::certificate_to_pem(&cert)?,
        false,
    )?;
    eprintln!(
        "wrote {} ({}) and {} ({spec}, {validity})",
        args.cert_out.display(),
        params.common_name,
        args.key_out.display()
    );
    Ok(())
}

fn show(path: &Path) -> Result<()> {
    let cert = read_certificate(path)?;
    let tbs = cert.tbs_certificate();
    let (nb, na) = cert_info::validity(&cert);
    outln!("subject:     {}", tbs.subject());
    outln!("issuer:      {}", tbs.issuer());
    outln!(
        "serial:      {}",
        hex::encode(tbs.serial_number().as_bytes())
    );
    outln!("not before:  {}", rfc3339(nb));
    outln!("not after:   {}", rfc3339(na));
    match KeySpec::of_spki(tbs.subject_public_key_info().owned_to_ref()) {
        Ok(spec) => outln!("key:         {spec}"),
        Err(e) => outln!("key:         unsupported ({e})"),
    }
    outln!("signature:   {}", cert.signature_algorithm().oid);
    match cert_info::extension::<BasicConstraints>(&cert)? {
        Some(bc) => outln!(
            "constraints: CA:{}{}",
            if bc.ca { "TRUE" } else { "FALSE" },
            bc.path_len_constraint
                .map(|n| format!(" pathlen:{n}"))
                .unwrap_or_default()
        ),
        None => outln!("constraints: (none)"),
    }
    match cert_info::extension::<KeyUsage>(&cert)? {
        Some(ku) => {
            let names = [
                (ku.digital_signature(), "digitalSignature"),
                (ku.non_repudiation(), "nonRepudiation"),
                (ku.key_encipherment(), "keyEncipherment"),
                (ku.data_encipherment(), "dataEncipherment"),
                (ku.key_agreement(), "keyAgreement"),
                (ku.key_cert_sign(), "keyCertSign"),
                (ku.crl_sign(), "cRLSign"),
            ];
            let set: Vec<&str> = names
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| *n)
                .collect();
            outln!("key usage:   {}", set.join(", "));
        }
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
    let cert = read_certificate(path)?;
    let key = key.map(read_key).transpose()?;
    let spki = key.as_ref().map(|k| k.public_key());
    let problems = capf_lsc::capf_certificate_problems(&cert, spki, SystemTime::now())
        .with_context(|| format!("{}", path.display()))?;
    if !problems.is_empty() {
        let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
        bail!(
            "{}: not a valid CAPF certificate: {} ({})",
            path.display(),
            all.join("; "),
            capf_lsc::CAPF_PROFILE_RULE
        );
    }
    let report = capf_lsc::check_capf_certificate(&cert, spki, SystemTime::now())
        .with_context(|| format!("{}", path.display()))?;
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
    let cert = read_certificate(cert)?;
    let key = read_key(key)?;
    if key.public_key() != cert.tbs_certificate().subject_public_key_info() {
        bail!("--key does not match the public key of --cert");
    }
    let req = capf_lsc::capf_csr(cert.tbs_certificate().subject(), &key)?;
    write_out(out, &capf_lsc::csr_to_pem(&req)?, false)
}
