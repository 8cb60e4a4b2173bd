//! `capfctl trust ...`: the trust stores (CAPF-trust, CallManager-trust, ...) in a store
//! directory, with the guide's upload rules, chain verification and advice (capf-trust).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use capf_admin::rfc3339;
use capf_trust::{
    Cert, ChainVerdict, Fingerprint, MIC_ROOTS, Purpose, Release, StoreDir, TrustStore, Verdict,
    contains_reserved_capf_name, mic_root_advice, parse_bundle, upload_scenario,
};

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
fn load(args: &StoreArgs) -> Result<(StoreDir, TrustStore)> {
    let dir = StoreDir::new(&args.store);
    let loaded = dir
        .load(args.release)
        .with_context(|| format!("loading {}", args.store.display()))?;
    for bad in &loaded.bad_files {
        eprintln!(
            "capfctl: warning: {}: {} (not loaded)",
            bad.path.display(),
            bad.error
        );
    }
    Ok((dir, loaded.store))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_certs(path: &Path) -> Result<Vec<Cert>> {
    let bytes = read(path)?;
    let parsed = parse_bundle(&bytes).with_context(|| path.display().to_string())?;
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, c)| c.with_context(|| format!("{}: certificate {}", path.display(), i + 1)))
        .collect()
}

fn read_one(path: &Path) -> Result<Cert> {
    let mut certs = read_certs(path)?;
    if certs.len() != 1 {
        bail!(
            "{}: expected one certificate, found {}",
            path.display(),
            certs.len()
        );
    }
    Ok(certs.remove(0))
}

fn describe(cert: &Cert) -> String {
    cert.common_name()
        .map_or_else(|| cert.subject(), |cn| format!("CN={cn}"))
}

/// Saves every accepted certificate and prints one line per verdict; fails if any was rejected.
fn store_verdicts(
    dir: &StoreDir,
    store: &TrustStore,
    purpose: &Purpose,
    file: &Path,
    verdicts: &[capf_trust::CertVerdict],
) -> Result<()> {
    for v in verdicts {
        let fp = v.fingerprint;
        if v.verdict.is_accepted() {
            let cert = store
                .certificates(purpose)
                .iter()
                .find(|c| c.fingerprint() == fp)
                .ok_or_else(|| anyhow!("{fp}: accepted but not in the store"))?;
            dir.save(purpose, cert)?;
        }
        let verdict = match &v.verdict {
            Verdict::Accepted => "accepted".to_owned(),
            other => other.to_string(),
        };
        outln!("{purpose}  {fp}  {} ({}): {verdict}", v.subject, v.role);
    }
    let rejected = verdicts.iter().filter(|v| !v.verdict.is_accepted()).count();
    if rejected > 0 {
        let first = verdicts
            .iter()
            .find_map(|v| match &v.verdict {
                Verdict::Rejected { rule, .. } => Some(format!("{}: {rule}", v.subject)),
                _ => None,
            })
            .unwrap_or_default();
        bail!(
            "{}: {rejected} of {} certificate(s) rejected, first: {first}",
            file.display(),
            verdicts.len()
        );
    }
    Ok(())
}

fn upload(args: &StoreArgs, purpose: &Purpose, file: &Path) -> Result<()> {
    let bundle = read_certs(file)?;
    let (dir, mut store) = load(args)?;
    let report = store.upload(purpose, bundle, SystemTime::now());
    store_verdicts(&dir, &store, purpose, file, &report.verdicts)
}

fn add_capf(args: &StoreArgs, purpose: &Purpose, file: &Path) -> Result<()> {
    let cert = read_one(file)?;
    let (dir, mut store) = load(args)?;
    let verdict = store
        .add_capf(purpose, cert, SystemTime::now())
        .with_context(|| file.display().to_string())?;
    store_verdicts(&dir, &store, purpose, file, &[verdict])
}

fn list(args: &StoreArgs, only: Option<&Purpose>, json: bool) -> Result<()> {
    let (_, store) = load(args)?;
    let rows: Vec<(&Purpose, &Cert)> = store
        .iter()
        .filter(|(p, _)| only.is_none_or(|o| o == *p))
        .collect();
    if json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|(p, c)| {
                let cn = c.common_name();
                serde_json::json!({
                    "purpose": p.as_str(),
                    "fingerprint_sha256": c.fingerprint().to_string(),
                    "subject": c.subject(),
                    "issuer": c.issuer(),
                    "common_name": cn,
                    "not_before": rfc3339(c.not_before()),
                    "not_after": rfc3339(c.not_after()),
                    "self_issued": c.is_self_issued(),
                    "ca": c.is_ca(),
                    "capf": cn.as_deref().is_some_and(contains_reserved_capf_name),
                    "mic_root": cn.as_deref().is_some_and(|n| MIC_ROOTS.iter().any(|m| m.eq_ignore_ascii_case(n))),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if rows.is_empty() {
        let scope = only.map_or_else(String::new, |p| format!(" for {p}"));
        outln!("no certificates in {}{scope}", args.store.display());
    }
    for (p, c) in rows {
        outln!(
            "{p}  {}  {}  (until {})",
            c.fingerprint(),
            c.subject(),
            rfc3339(c.not_after())
        );
    }
    Ok(())
}

fn delete(args: &StoreArgs, purpose: &Purpose, text: &str) -> Result<()> {
    let (dir, mut store) = load(args)?;
    let wanted: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if wanted.len() < 8 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("fingerprint {text:?}: expected at least 8 hex digits");
    }
    let matches: Vec<Fingerprint> = store
        .certificates(purpose)
        .iter()
        .map(Cert::fingerprint)
        .filter(|fp| fp.to_string().starts_with(&wanted))
        .collect();
    let fp = match matches.as_slice() {
        [fp] => *fp,
        [] => bail!("{purpose}: no certificate with fingerprint {text}"),
        _ => bail!(
            "{purpose}: fingerprint prefix {text} matches {} certificates",
            matches.len()
        ),
    };
    let cert = store
        .remove(purpose, fp)
        .ok_or_else(|| anyhow!("{fp}: vanished"))?;
    dir.delete(purpose, fp)?;
    outln!("deleted from {purpose}: {fp}  {}", cert.subject());
    Ok(())
}

fn verify(args: &StoreArgs, purpose: &Purpose, at: Option<&str>, file: &Path) -> Result<()> {
    let now = match at {
        Some(text) => text
            .parse::<der::DateTime>()
            .map_err(|e| {
                anyhow!("--at {text:?}: expected RFC 3339 like 2030-01-01T00:00:00Z ({e})")
            })?
            .to_system_time(),
        None => SystemTime::now(),
    };
    let mut certs = read_certs(file)?;
    let leaf = certs.remove(0);
    let (_, store) = load(args)?;
    match store.verify(purpose, &leaf, &certs, now) {
        ChainVerdict::Trusted(chain) => {
            outln!(
                "trusted by {purpose}: {} (anchor {})",
                chain.subjects.join(" <- "),
                chain.anchor
            );
            Ok(())
        }
        ChainVerdict::Untrusted(failure) => {
            bail!("{}: not trusted by {purpose}: {failure}", file.display())
        }
    }
}

fn advise(
    args: &StoreArgs,
    root: Option<&Path>,
    https: Option<&Path>,
    intermediates: &[PathBuf],
) -> Result<()> {
    if let (Some(root), Some(https)) = (root, https) {
        let root_cert = read_one(root)?;
        let https_cert = read_one(https)?;
        let mut inter = Vec::new();
        for path in intermediates {
            inter.extend(read_certs(path)?);
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
                describe(cert),
                to.join(" and ")
            );
        }
    }
    let (_, store) = load(args)?;
    let mic = mic_root_advice(&store);
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
