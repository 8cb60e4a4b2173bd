//! `capf-phone`: one CAPF phone, N simulated phones as a load generator, or the whole demo.
//!
//! ```text
//! capf-phone --demo [--phones N] [--concurrency C]
//!     starts a CAPF server in-process with embedded defaults (temporary data directory,
//!     generated CAPF certificate, N devices scheduled for Install/Upgrade), enrolls N phones,
//!     verifies every LSC and prints what happened.
//! capf-phone --server HOST[:PORT] --trust CAPF.pem --device NAME [--auth-string DIGITS] [--out DIR]
//!     one phone (its key generated on request); writes lsc.pem and lsc.key to DIR.
//! capf-phone --server HOST[:PORT] --trust CAPF.pem --phones N --prefix SEP0000 [--concurrency C]
//!     N phones SEP0000...1..N against a running server (provision them with capfctl),
//!     with an RSA/EC key pool made before timing.
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use capf_lsc::der::Decode;
use capf_lsc::x509_cert::Certificate;
use capf_lsc::{Curve, KeyOrder, KeyPolicy, KeySpec, RsaBits, verify_signature};
use capf_phone::{GenerateKeys, KeyPool, KeySource, Phone, PhoneAuth, PhoneConfig, PhoneKey};
use capf_server::{CapfServer, Config, ensure_capf_files};
use capf_store::{DeviceStore, LscState, NewDevice, Operation, SqliteStore};
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
    /// Where one phone writes its LSC and key.
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    if cli.demo {
        return demo(&cli).await;
    }
    let server = cli
        .server
        .as_deref()
        .context("--server HOST[:PORT] is required (or --demo)")?;
    let trust_path = cli.trust.as_ref().context("--trust CAPF.pem is required")?;
    let trust = std::fs::read(trust_path).with_context(|| trust_path.display().to_string())?;
    let (host, port) = split_host_port(server)?;
    if let Some(device) = &cli.device {
        let mut config = PhoneConfig::new(device, &host, &trust)?;
        config.port = port;
        if let Some(s) = &cli.auth_string {
            config.auth = PhoneAuth::AuthenticationString(s.clone());
        }
        let mut phone = Phone::new(config, Arc::new(GenerateKeys))?;
        let e = phone.run().await?;
        println!(
            "{device}: {:?} over {} after {} session(s)",
            e.outcome, e.server, e.sessions
        );
        if let (Some(dir), Some((der, key))) = (&cli.out, &e.installed) {
            std::fs::create_dir_all(dir)?;
            let cert = Certificate::from_der(der)?;
            std::fs::write(dir.join("lsc.pem"), capf_lsc::certificate_to_pem(&cert)?)?;
            std::fs::write(dir.join("lsc.key"), key.to_pkcs8_pem()?.as_bytes())?;
            println!("LSC and key written to {}", dir.display());
        }
        if !e.succeeded() {
            std::process::exit(1);
        }
        return Ok(());
    }
    let keys = key_pool(parse_spec(&cli.key)?)?;
    let names = (1..=cli.phones)
        .map(|n| device_name(&cli.prefix, n))
        .collect();
    let report = enroll(names, &host, port, &trust, keys, cli.concurrency).await?;
    report.print();
    Ok(())
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

fn device_name(prefix: &str, n: u32) -> String {
    let width = 15usize.saturating_sub(prefix.len());
    format!("{prefix}{n:0width$X}")
}

fn parse_spec(s: &str) -> anyhow::Result<KeySpec> {
    s.parse::<KeySpec>()
        .map_err(|e| anyhow::anyhow!("--key {s}: {e}"))
}

/// A pool made before timing: key generation is the phone's cost, not the server's.
fn key_pool(spec: KeySpec) -> anyhow::Result<Arc<dyn KeySource>> {
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(PhoneKey::generate(spec)?);
    }
    Ok(Arc::new(KeyPool(keys)))
}

struct Report {
    enrolled: usize,
    failed: Vec<String>,
    latencies: Vec<Duration>,
    elapsed: Duration,
    lscs: Vec<Vec<u8>>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.latencies.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i.min(v.len() - 1)]
    }

    fn print(&self) {
        let total = self.enrolled + self.failed.len();
        println!(
            "enrolled {}/{} in {:.2} s: {:.1} enrollments/s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            self.enrolled,
            total,
            self.elapsed.as_secs_f64(),
            self.enrolled as f64 / self.elapsed.as_secs_f64().max(1e-9),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.95)),
            ms(self.percentile(0.99)),
        );
        for f in &self.failed {
            println!("failed: {f}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn enroll(
    names: Vec<String>,
    host: &str,
    port: u16,
    trust: &[u8],
    keys: Arc<dyn KeySource>,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for name in names {
        let mut config = PhoneConfig::new(&name, host, trust)?;
        config.port = port;
        config.retries = 0;
        let mut phone = Phone::new(config, Arc::clone(&keys))?;
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _slot = limit.acquire_owned().await;
            let t = Instant::now();
            let result = phone.run_once().await;
            (name, t.elapsed(), result)
        });
    }
    let mut report = Report {
        enrolled: 0,
        failed: Vec::new(),
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        lscs: Vec::new(),
    };
    while let Some(joined) = tasks.join_next().await {
        let (name, latency, result) = joined?;
        match result {
            Ok(e) if e.succeeded() && e.installed.is_some() => {
                report.enrolled += 1;
                report.latencies.push(latency);
                if let Some((der, _)) = e.installed {
                    report.lscs.push(der);
                }
            }
            Ok(e) => report.failed.push(format!("{name}: {:?}", e.outcome)),
            Err(err) => report.failed.push(format!("{name}: {err}")),
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The main job with embedded defaults: a server, N devices, N phones, every LSC verified.
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
    let policy = match spec {
        KeySpec::Rsa(bits) => KeyPolicy {
            order: KeyOrder::RsaOnly,
            rsa: bits,
            curve: Curve::P256,
        },
        KeySpec::Ec(curve) => KeyPolicy {
            order: KeyOrder::EcOnly,
            rsa: RsaBits::B2048,
            curve,
        },
    };
    let names: Vec<String> = (1..=cli.phones).map(|n| device_name("SEP", n)).collect();
    for name in &names {
        let mut d = NewDevice::new(name.as_str());
        d.operation = Operation::InstallUpgrade(policy);
        d.model = "Cisco 8865".into();
        store.add_device(&d, SystemTime::now())?;
    }
    println!(
        "{} devices scheduled for Install/Upgrade ({spec})",
        names.len()
    );
    let mut config = Config::new(&files.certificate, &files.key);
    config.listen = vec!["127.0.0.1:0".parse()?, "[::1]:0".parse()?];
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
    let port = addrs.first().map(|a| a.port()).context("no listener")?;
    let handle = server.spawn();
    let keys = key_pool(spec)?;
    let report = enroll(
        names.clone(),
        "127.0.0.1",
        port,
        &capf_pem,
        keys,
        cli.concurrency,
    )
    .await?;
    report.print();
    // Every LSC chains to the CAPF certificate, and the store holds it as installed.
    let mut verified = 0;
    for der in &report.lscs {
        let cert = Certificate::from_der(der)?;
        verify_signature(&cert, capf.tbs_certificate().subject_public_key_info())?;
        verified += 1;
    }
    let installed = names
        .iter()
        .filter(|n| {
            store
                .lscs(n)
                .is_ok_and(|l| l.iter().any(|r| r.state == LscState::Installed))
        })
        .count();
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
