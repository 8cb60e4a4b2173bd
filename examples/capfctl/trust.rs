//! `capfctl trust ...`: the trust stores (CAPF-trust, CallManager-trust, ...) in a store
//! directory, with the guide's upload rules, chain verification and advice (capf-trust).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;
use capf_admin::{
    OpenTrustStore, check_verdicts, describe_certificate, parse_rfc3339, read_certificate,
    read_certificates, verdict_text,
};
use capf_trust::{CertVerdict, Purpose, Release, mic_root_advice, upload_scenario};

/// Where the store lives and which release's rules apply.
#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// The store directory: <DIR>/<purpose>/<sha256>.pem.
    #[arg(long, value_name = "DIR", default_value = "./capf-data/trust")]
    store: PathBuf,
    /// The Unified CM release whose rules apply (older than 14SU2: CA rules only warn).
    #[arg(long, value_name = "RELEASE", default_value_t = Release::LATEST, value_parser = parse_release)]
    release: Release,
}

fn parse_release(s: &str) -> Result<Release, String> {
    s.parse().map_err(|e: capf_trust::Error| e.to_string())
}

fn parse_purpose(s: &str) -> Result<Purpose, String> {
    Purpose::new(s).map_err(|e| e.to_string())
}

#[derive(clap::Subcommand)]
pub(crate) enum TrustCommand {
    /// Upload a certificate or a PEM chain to a trust store, applying the guide's rules.
    Upload {
        #[command(flatten)]
        store: StoreArgs,
        /// The certificate purpose (CAPF-trust, CallManager-trust, tomcat-trust, ipsec-trust, ...).
        #[arg(long, value_parser = parse_purpose)]
        purpose: Purpose,
        /// PEM (one or more certificates) or DER file.
        file: PathBuf,
    },
    /// Add a CAPF certificate (this cluster's, or another's for a migration).
    AddCapf {
        #[command(flatten)]
        store: StoreArgs,
        /// The certificate purpose.
        #[arg(long, value_parser = parse_purpose, default_value = "CAPF-trust")]
        purpose: Purpose,
        /// PEM or DER file with the CAPF certificate.
        file: PathBuf,
    },
    /// List the certificates of every purpose, or of one.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this purpose.
        #[arg(long, value_parser = parse_purpose)]
        purpose: Option<Purpose>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete a certificate by its SHA-256 fingerprint (or a unique prefix of 8+ hex digits).
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        /// The certificate purpose.
        #[arg(long, value_parser = parse_purpose)]
        purpose: Purpose,
        /// The fingerprint, as `trust list` prints it.
        fingerprint: String,
    },
    /// Verify an LSC or MIC (with any intermediates after it in the file) against a store.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// The certificate purpose to verify against.
        #[arg(long, value_parser = parse_purpose)]
        purpose: Purpose,
        /// Verify at this time (RFC 3339, e.g. 2030-01-01T00:00:00Z) instead of now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// PEM file: the certificate first, then any intermediates.
        cert: PathBuf,
    },
    /// Advice: which certificates to upload where (the guide's Upload Certificate Scenarios),
    /// and the MIC roots to remove from CallManager-trust.
    Advise {
        #[command(flatten)]
        store: StoreArgs,
        /// The CA root certificate (with --https).
        #[arg(long, requires = "https")]
        root: Option<PathBuf>,
        /// The HTTPS (IIS) certificate of the online CA (with --root).
        #[arg(long, requires = "root")]
        https: Option<PathBuf>,
        /// An intermediate CA certificate (repeatable).
        #[arg(long)]
        intermediate: Vec<PathBuf>,
    },
}

pub(crate) fn run(cmd: TrustCommand) -> Result<()> {
    match cmd {
        TrustCommand::Upload {
            store,
            purpose,
            file,
        } => upload(&store, &purpose, &file),
        TrustCommand::AddCapf {
            store,
            purpose,
            file,
        } => add_capf(&store, &purpose, &file),
        TrustCommand::List {
            store,
            purpose,
            json,
        } => list(&store, purpose.as_ref(), json),
        TrustCommand::Delete {
            store,
            purpose,
            fingerprint,
        } => delete(&store, &purpose, &fingerprint),
        TrustCommand::Verify {
            store,
            purpose,
            at,
            cert,
        } => verify(&store, &purpose, at.as_deref(), &cert),
        TrustCommand::Advise {
            store,
            root,
            https,
            intermediate,
        } => advise(&store, root.as_deref(), https.as_deref(), &intermediate),
    }
}

/// Loads the store, warning on stderr about every bad file (none is skipped silently).
fn load(args: &StoreArgs) -> Result<OpenTrustStore> {
    let opened = OpenTrustStore::load(&args.store, args.release)?;
    for bad in &opened.bad_files {
        eprintln!(
            "capfctl: warning: {}: {} (not loaded)",
            bad.path.display(),
            bad.error
        );
    }
    Ok(opened)
}

/// Prints one line per verdict; fails if any was rejected.
fn print_verdicts(purpose: &Purpose, file: &Path, verdicts: &[CertVerdict]) -> Result<()> {
    for v in verdicts {
        outln!(
            "{purpose}  {}  {} ({}): {}",
            v.fingerprint,
            v.subject,
            v.role,
            verdict_text(&v.verdict)
        );
    }
    Ok(check_verdicts(file, verdicts)?)
}

fn upload(args: &StoreArgs, purpose: &Purpose, file: &Path) -> Result<()> {
    let bundle = read_certificates(file)?;
    let mut opened = load(args)?;
    let verdicts = opened.upload(purpose, bundle, SystemTime::now())?;
    print_verdicts(purpose, file, &verdicts)
}

fn add_capf(args: &StoreArgs, purpose: &Purpose, file: &Path) -> Result<()> {
    let cert = read_certificate(file)?;
    let mut opened = load(args)?;
    let verdict = opened.add_capf(purpose, cert, file, SystemTime::now())?;
    print_verdicts(purpose, file, &[verdict])
}

fn list(args: &StoreArgs, only: Option<&Purpose>, json: bool) -> Result<()> {
    let views = load(args)?.views(only);
    if json {
        return crate::print_json(&views);
    }
    if views.is_empty() {
        let scope = only.map_or_else(String::new, |p| format!(" for {p}"));
        outln!("no certificates in {}{scope}", args.store.display());
    }
    for v in views {
        outln!(
            "{}  {}  {}  (until {})",
            v.purpose,
            v.fingerprint_sha256,
            v.subject,
            v.not_after
        );
    }
    Ok(())
}

fn delete(args: &StoreArgs, purpose: &Purpose, text: &str) -> Result<()> {
    let mut opened = load(args)?;
    let cert = opened.delete_by_prefix(purpose, text)?;
    outln!(
        "deleted from {purpose}: {}  {}",
        cert.fingerprint(),
        cert.subject()
    );
    Ok(())
}

fn verify(args: &StoreArgs, purpose: &Purpose, at: Option<&str>, file: &Path) -> Result<()> {
    let now = match at {
        Some(text) => parse_rfc3339(text, "--at")?,
        None => SystemTime::now(),
    };
    let chain = read_certificates(file)?;
    let verified = load(args)?.verify(purpose, file, &chain, now)?;
    outln!(
        "trusted by {purpose}: {} (anchor {})",
        verified.subjects.join(" <- "),
        verified.anchor
    );
    Ok(())
}

fn advise(
    args: &StoreArgs,
    root: Option<&Path>,
    https: Option<&Path>,
    intermediates: &[PathBuf],
) -> Result<()> {
    if let (Some(root), Some(https)) = (root, https) {
        let root_cert = read_certificate(root)?;
        let https_cert = read_certificate(https)?;
        let mut inter = Vec::new();
        for path in intermediates {
            inter.extend(read_certificates(path)?);
        }
        let advice = upload_scenario(&root_cert, &https_cert, &inter);
        outln!("Upload Certificate Scenarios, {}", advice.scenario);
        outln!("  guide: {}", advice.scenario.guide_result());
        for up in &advice.uploads {
            let (path, cert) = match up.certificate {
                capf_trust::ScenarioCertificate::CaRoot => (root, &root_cert),
                capf_trust::ScenarioCertificate::Https => (https, &https_cert),
            };
            let to: Vec<&str> = up.purposes.iter().map(Purpose::as_str).collect();
            outln!(
                "  upload {} ({}) to {}",
                path.display(),
                describe_certificate(cert),
                to.join(" and ")
            );
        }
    }
    let opened = load(args)?;
    let mic = mic_root_advice(&opened.store);
    if mic.is_empty() {
        outln!("CallManager-trust holds none of the MIC roots the guide recommends removing");
    } else {
        outln!(
            "The guide recommends removing these MIC roots from CallManager-trust once phones use LSCs:"
        );
        for m in mic {
            outln!(
                "  {}  {}  (capfctl trust delete --purpose CallManager-trust {})",
                m.common_name,
                m.fingerprint,
                m.fingerprint
            );
        }
    }
    Ok(())
}
