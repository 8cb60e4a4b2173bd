//! `capf-phone`: one CAPF phone, N simulated phones as a load generator, or the whole demo.
//!
//! ```text
//! capf-phone --demo [--phones N] [--concurrency C]
//!     starts a CAPF server in-process with embedded defaults (temporary data directory,
//!     generated CAPF certificate, N devices scheduled for Install/Upgrade), enrolls N phones,
//!     verifies every LSC and prints what happened.
//! capf-phone --server HOST[:PORT] --trust CAPF.pem --device NAME [--auth-string DIGITS] [--out DIR]
//!            [--certificate LSC-or-MIC.pem --certificate-key KEY.pem [--mic]
//!             [--sudi SUDI.pem --sudi-key KEY.pem]] [--max-retry-wait SECS] [--no-endpoint-csr]
//!     one phone (its key generated on request); keeps its pending key in DIR (pending.key,
//!     0600) until a certificate for it is stored, answering a later request for the same key
//!     type with it, and writes lsc.pem and lsc.key to DIR. With --certificate it
//!     authenticates by existing certificate, signing with that key. It signs the endpoint CSR
//!     an external CA needs (--no-endpoint-csr plays a phone that cannot); told RETRY_LATER, it
//!     waits and connects again when the delay is at most --max-retry-wait (default 3600 s),
//!     else exits with status 2.
//! capf-phone --server HOST[:PORT] --trust CAPF.pem --phones N [--prefix SEP] [--concurrency C]
//!            [--provision DATA_DIR] [--idle M --idle-secs S] [--server-pid PID] [--tls12]
//!     N phones against a running server, with an RSA/EC key pool made before timing; every
//!     LSC is verified against the trusted CAPF certificate. --provision schedules the N (and M)
//!     devices in the server's store and raises its session limits for the run; --idle first
//!     opens M more sessions that stay mid-install (key generation taking S seconds);
//!     --server-pid reports the server's CPU per enrollment and memory (from /proc); --tls12
//!     offers TLS 1.2 only, as phone firmware without TLS 1.3 does.
//! --legacy-tls 1.0|1.1 (with the `legacy-tls` feature)
//!     offers only that TLS version with AES-CBC-SHA suites, as 7900- and 9900-series phones
//!     do, for capfd's legacy listener (`--legacy-tls-listen`; --demo turns it on).
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use capf_lsc::{DeviceName, KeySpec};
use capf_phone::load::{
    IdleSessions, LoadReport, LoadTarget, ProcessStats, enroll, simulated_device_name,
};
use capf_phone::{
    CertificateProof, GenerateKeys, KeyDir, KeyPool, KeySource, Phone, PhoneAuth, PhoneConfig,
    PhoneKey, TlsVersions,
};
use capf_server::{CapfServer, Config, ensure_capf_files};
use capf_store::SqliteStore;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "capf-phone",
    version,
    about = "CAPF phone, load generator and demo"
)]
struct Cli {
    /// Run the demo: an in-process server with embedded defaults and N phones.
    #[arg(long)]
    demo: bool,
    /// CAPF's host, with an optional :PORT (default 3804).
    #[arg(long)]
    server: Option<String>,
    /// The CAPF certificate (PEM) the phones trust.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// One phone's device name.
    #[arg(long)]
    device: Option<String>,
    /// The authentication string, for By Authentication String.
    #[arg(long)]
    auth_string: Option<String>,
    /// Authenticate by existing certificate: the phone's LSC or MIC (PEM).
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// The PKCS#8 key of --certificate.
    #[arg(long)]
    certificate_key: Option<PathBuf>,
    /// --certificate is a MIC (the CERTIFICATE type byte 2).
    #[arg(long)]
    mic: bool,
    /// SUDI certificate (PEM) to send SUDI_DATA with.
    #[arg(long)]
    sudi: Option<PathBuf>,
    /// The PKCS#8 key of --sudi.
    #[arg(long)]
    sudi_key: Option<PathBuf>,
    /// One phone's output directory: its pending key between runs, then its LSC and key.
    #[arg(long)]
    out: Option<PathBuf>,
    /// How many simulated phones.
    #[arg(long, default_value_t = 20)]
    phones: u32,
    /// How many run at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Device-name prefix of simulated phones: the name is the prefix and the phone's number,
    /// zero-padded to 15 characters (SEP + 12 hex digits).
    #[arg(long, default_value = "SEP")]
    prefix: String,
    /// The key type the server is expected to ask for in the demo.
    #[arg(long, default_value = "RSA-2048")]
    key: String,
    /// Schedule the simulated devices in the store of this data directory first.
    #[arg(long)]
    provision: Option<PathBuf>,
    /// With --provision: the store to schedule them in, when it is not the data directory's
    /// SQLite (`postgres://user@host/db`; the password from PGPASSWORD). The data directory
    /// still holds the authentication-string key file.
    #[arg(long)]
    store: Option<String>,
    /// Load runs: verify the LSCs against this CA certificate (PEM) instead of the CAPF
    /// certificate, as in the Online CA mode, where the external CA signs them.
    #[arg(long)]
    lsc_issuer: Option<PathBuf>,
    /// Sessions held open mid-install while the others enroll.
    #[arg(long, default_value_t = 0)]
    idle: u32,
    /// How long the idle sessions' key generation takes.
    #[arg(long, default_value_t = 600)]
    idle_secs: u64,
    /// The server's process id, for its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Writes each enrolled phone's latency (ms, one a line, in the order they finished) here,
    /// to see what a tail is made of.
    #[arg(long)]
    latencies: Option<PathBuf>,
    /// Offer TLS 1.2 only, as phone firmware without TLS 1.3 does.
    #[arg(long)]
    tls12: bool,
    /// One phone: the longest RETRY_DELAY (seconds) it waits out before connecting again when
    /// the server holds its request with an external CA; a longer one makes it exit with
    /// status 2, saying when to come back (the guide's 3 retries are for communication
    /// failures only).
    #[arg(long, default_value_t = 3600)]
    max_retry_wait: u64,
    /// One phone: how many more sessions it runs after a communication failure (the guide: 3,
    /// at 30 s).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// One phone: play a phone without endpoint-CSR support (SIGN_CERT_REQUEST is an unexpected
    /// command: it closes the connection, spec 9.3).
    #[arg(long)]
    no_endpoint_csr: bool,
    /// Offer only TLS 1.0 or 1.1 with AES-CBC-SHA suites, as 7900/9900-series phones do
    /// (built with the `legacy-tls` feature).
    #[arg(long, value_name = "VERSION", value_parser = ["1.0", "1.1"], conflicts_with = "tls12")]
    legacy_tls: Option<String>,
}

impl Cli {
    fn tls_versions(&self) -> TlsVersions {
        match (self.tls12, self.legacy_tls.as_deref()) {
            (_, Some("1.0")) => TlsVersions::Tls10Only,
            (_, Some(_)) => TlsVersions::Tls11Only,
            (true, None) => TlsVersions::Tls12Only,
            (false, None) => TlsVersions::default(),
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            // One line: what went wrong, with its causes.
            eprintln!("capf-phone: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    if cli.demo {
        return demo(&cli).await.map(|()| std::process::ExitCode::SUCCESS);
    }
    let server = cli
        .server
        .as_deref()
        .context("--server HOST[:PORT] is required (or --demo)")?;
    let trust_path = cli.trust.as_ref().context("--trust CAPF.pem is required")?;
    let trust = std::fs::read(trust_path).with_context(|| trust_path.display().to_string())?;
    let (host, port) = split_host_port(server)?;
    if let Some(device) = &cli.device {
        let name = DeviceName::new(device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
        let mut config = PhoneConfig::new(name, &host, &trust)?;
        config.tls_versions = cli.tls_versions();
        config.port = port;
        // The pending key between runs and the LSC with its key (spec section 16).
        config.key_dir = cli.out.clone().map(KeyDir::new);
        config.max_retry_wait = Duration::from_secs(cli.max_retry_wait);
        config.session.endpoint_csr = !cli.no_endpoint_csr;
        config.retries = cli.retries;
        if let Some(s) = &cli.auth_string {
            config.auth = PhoneAuth::AuthenticationString(s.clone());
        }
        if let Some(path) = &cli.certificate {
            let key = cli
                .certificate_key
                .as_ref()
                .context("--certificate needs --certificate-key")?;
            let sudi = match (&cli.sudi, &cli.sudi_key) {
                (Some(cert), Some(key)) => Some((read_der(cert)?, read_key(key)?)),
                (None, None) => None,
                _ => bail!("--sudi and --sudi-key go together"),
            };
            config.auth = PhoneAuth::ExistingCertificate(Box::new(CertificateProof {
                certificate_type: if cli.mic {
                    capf_wire::CertificateType::MIC
                } else {
                    capf_wire::CertificateType::LSC
                },
                certificate: read_der(path)?,
                key: read_key(key)?,
                sudi,
            }));
        }
        let mut phone = Phone::new(config, Arc::new(GenerateKeys))?;
        let e = phone.run().await?;
        println!(
            "{device}: {:?} over {} after {} session(s)",
            e.outcome, e.server, e.sessions
        );
        if let (Some(dir), Some(_)) = (&cli.out, &e.installed) {
            // The phone library wrote them when it stored the LSC (capf_phone::KeyDir).
            println!("LSC and key written to {}", dir.display());
        }
        if let Some(delay) = e.retry_after {
            println!(
                "{device}: the request is pending with the CA; come back in {} s",
                delay.as_secs()
            );
            return Ok(std::process::ExitCode::from(2));
        }
        if !e.succeeded() {
            return Ok(std::process::ExitCode::FAILURE);
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let spec = parse_spec(&cli.key)?;
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(spec)?);
    let names = (1..=cli.phones)
        .map(|n| simulated_name(&cli.prefix, n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let idle_names = (1..=cli.idle)
        .map(|n| simulated_name(&cli.prefix, 0x8000_0000 + n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(dir) = &cli.provision {
        let url = match &cli.store {
            Some(url) => url.parse()?,
            None => capf_store::StoreUrl::sqlite(dir),
        };
        let (dir, all) = (
            dir.clone(),
            names.iter().chain(&idle_names).cloned().collect::<Vec<_>>(),
        );
        let sessions = cli.phones + cli.idle;
        // The store is synchronous (PostgreSQL's client runs its own runtime): the blocking pool.
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let password = capf_store::store_password(None)?;
            let store = capf_store::open_store(&url, &dir, password.as_ref())?;
            capf_admin::provision_load_devices(
                store.as_ref(),
                all.iter(),
                spec,
                sessions,
                SystemTime::now(),
            )?;
            Ok(())
        })
        .await??;
        // The server re-reads its settings every 2 s.
        std::thread::sleep(Duration::from_millis(2500));
    }
    let target = LoadTarget {
        host,
        port,
        trust_pem: trust,
        tls_versions: cli.tls_versions(),
    };
    let baseline = cli.server_pid.and_then(ProcessStats::of);
    let mut idle = IdleSessions::start(
        &target,
        &idle_names,
        Arc::clone(&keys),
        Duration::from_secs(cli.idle_secs),
    )?;
    if cli.idle > 0 {
        // Wait until every idle phone has been asked for its key.
        if !idle.wait_until_mid_install(Duration::from_secs(600)).await {
            bail!("idle phones did not all reach key generation");
        }
        // Let the server settle (the last handshakes' buffers freed).
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("{} sessions held mid-install", cli.idle);
    }
    let before = cli.server_pid.and_then(ProcessStats::of);
    if let (Some(baseline), Some(before), true) = (baseline, before, cli.idle > 0) {
        println!(
            "server: {} idle sessions take {} kB resident, {:.1} kB each",
            cli.idle,
            before.rss_kb.saturating_sub(baseline.rss_kb),
            before.rss_kb.saturating_sub(baseline.rss_kb) as f64 / f64::from(cli.idle),
        );
    }
    let report = enroll(&target, names, keys, cli.concurrency).await?;
    print_report(&report);
    if let Some(path) = &cli.latencies {
        let lines: String = report
            .latencies
            .iter()
            .map(|l| format!("{:.3}\n", ms(*l)))
            .collect();
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    let (issuer_pem, issuer_name) = match &cli.lsc_issuer {
        Some(path) => (
            std::fs::read(path).with_context(|| path.display().to_string())?,
            path.display().to_string(),
        ),
        None => (target.trust_pem.clone(), "the CAPF certificate".to_owned()),
    };
    let issuer = capf_lsc::certificate_from_pem_or_der(&issuer_pem)?;
    let verified = report.verify_lscs(&issuer)?;
    println!("{verified} LSCs verified against {issuer_name}");
    if let (Some(before), Some(after)) = (before, cli.server_pid.and_then(ProcessStats::of)) {
        let cpu = after.cpu.saturating_sub(before.cpu);
        let n = report.enrolled.max(1) as f64;
        println!(
            "server: {:.2} ms CPU per enrollment; resident memory {} kB before the run, {} kB after ({} idle sessions held)",
            ms(cpu) / n,
            before.rss_kb,
            after.rss_kb,
            cli.idle,
        );
        let switches = after.context_switches.since(before.context_switches);
        println!(
            "server: {:.1} voluntary and {:.1} involuntary context switches per enrollment",
            switches.voluntary as f64 / n,
            switches.involuntary as f64 / n,
        );
    }
    idle.abort();
    if !report.failed.is_empty() {
        bail!("{} phones did not enroll", report.failed.len());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn read_der(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let cert = capf_lsc::certificate_from_pem_or_der(&bytes)
        .with_context(|| path.display().to_string())?;
    Ok(capf_lsc::certificate_to_der(&cert)?)
}

fn read_key(path: &std::path::Path) -> anyhow::Result<PhoneKey> {
    let pem = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    PhoneKey::from_pkcs8_pem(&pem).with_context(|| path.display().to_string())
}

fn split_host_port(server: &str) -> anyhow::Result<(String, u16)> {
    if let Ok(addr) = server.parse::<std::net::SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((
            host.trim_matches(['[', ']']).to_owned(),
            port.parse().with_context(|| format!("port in {server}"))?,
        )),
        _ => Ok((server.trim_matches(['[', ']']).to_owned(), 3804)),
    }
}

fn parse_spec(s: &str) -> anyhow::Result<KeySpec> {
    s.parse::<KeySpec>()
        .map_err(|e| anyhow::anyhow!("--key {s}: {e}"))
}

fn print_report(report: &LoadReport) {
    let total = report.enrolled + report.failed.len();
    let (mean, p99) = (ms(report.mean()), ms(report.percentile(0.99)));
    println!(
        "enrolled {}/{} in {:.2} s: {:.1} enrollments/s; latency mean {mean:.1} ms, p50 {:.1} ms, p95 {:.1} ms, p99 {p99:.1} ms ({:.2}x the mean)",
        report.enrolled,
        total,
        report.elapsed.as_secs_f64(),
        report.rate(),
        ms(report.percentile(0.50)),
        ms(report.percentile(0.95)),
        p99 / mean.max(1e-9),
    );
    if !report.certificate_waits.is_empty() {
        println!(
            "certificate wait (KEY_GEN_RESPONSE sent to the certificate received): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            ms(report.certificate_wait(0.50)),
            ms(report.certificate_wait(0.95)),
            ms(report.certificate_wait(0.99)),
        );
    }
    for f in &report.failed {
        println!("failed: {f}");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The main job with embedded defaults: a server, N devices, N phones, every LSC verified.
/// It wires capf-server, capf-admin and capf-phone together, which no one library can do
/// (capf-server and capf-phone are of one level and do not depend on each other).
async fn demo(cli: &Cli) -> anyhow::Result<()> {
    let spec = parse_spec(&cli.key)?;
    let dir = std::env::temp_dir().join(format!("capf-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    println!("data directory: {}", dir.display());
    let files = ensure_capf_files(&dir, SystemTime::now())?;
    let capf_pem = std::fs::read(&files.certificate)?;
    let capf = capf_lsc::certificate_from_pem_or_der(&capf_pem)?;
    println!(
        "CAPF certificate: {} (generated on first run)",
        capf.tbs_certificate().subject()
    );
    let store = Arc::new(SqliteStore::open(&dir)?);
    let names = (1..=cli.phones)
        .map(|n| simulated_name("SEP", n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    capf_admin::add_demo_devices(store.as_ref(), &names, spec, SystemTime::now())?;
    println!(
        "{} devices scheduled for Install/Upgrade ({spec})",
        names.len()
    );
    let mut config = Config::new(&files.certificate, &files.key);
    config.listen = vec!["127.0.0.1:0".parse()?, "[::1]:0".parse()?];
    let legacy = cli.tls_versions().is_legacy();
    if legacy {
        config.legacy_tls_listen = vec!["127.0.0.1:0".parse()?];
    }
    let server = match CapfServer::bind(config.clone(), store.clone()).await {
        Ok(s) => s,
        Err(_) => {
            // No IPv6 loopback on this machine: IPv4 only.
            config.listen = vec!["127.0.0.1:0".parse()?];
            CapfServer::bind(config, store.clone()).await?
        }
    };
    let addrs = server.local_addrs();
    println!("CAPF listening on {addrs:?}");
    let legacy_addrs = server.legacy_tls_addrs();
    if legacy {
        println!("legacy TLS listening on {legacy_addrs:?}");
    }
    let phones_to = if legacy { &legacy_addrs } else { &addrs };
    let port = phones_to.first().map(|a| a.port()).context("no listener")?;
    let handle = server.spawn();
    let target = LoadTarget {
        host: "127.0.0.1".to_owned(),
        port,
        trust_pem: capf_pem,
        tls_versions: cli.tls_versions(),
    };
    let keys: Arc<dyn KeySource> = Arc::new(KeyPool::generate(spec)?);
    let report = enroll(&target, names.clone(), keys, cli.concurrency).await?;
    print_report(&report);
    // Every LSC chains to the CAPF certificate, and the store holds it as installed.
    let verified = report.verify_lscs(&capf)?;
    let installed = capf_admin::count_installed(store.as_ref(), &names);
    println!(
        "{verified} LSCs verified against the CAPF certificate; {installed} installed in the store"
    );
    handle.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
    if !report.failed.is_empty() || installed != names.len() {
        bail!("{} phones did not enroll", names.len() - installed);
    }
    Ok(())
}

/// Simulated phone `n`'s device name, checked once (a bad `--prefix` is one line).
fn simulated_name(prefix: &str, n: u32) -> anyhow::Result<DeviceName> {
    DeviceName::new(&simulated_device_name(prefix, n)).with_context(|| format!("--prefix {prefix}"))
}
