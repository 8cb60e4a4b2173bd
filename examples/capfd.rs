//! `capfd`: the CAPF server.
//!
//! `capfd [--config FILE] [--data DIR] [--listen ADDR]... [--legacy-tls-listen ADDR]...
//! [--enable-ipv6 BOOL]`
//!
//! With no configuration at all it creates its data directory (`capf-data`): the SQLite device
//! store, and a CAPF certificate and key on the first run; then it serves on port 3804 (IPv4
//! and IPv6) until SIGINT or SIGTERM, letting running sessions finish for up to 30 s.
//! SIGHUP (or changing the files) reloads the CAPF certificate and key; the trust stores for
//! authentication by existing certificate live in `capf-data/trust` (reloaded when they change).
//!
//! `--legacy-tls-listen` (or `legacy_tls_listen` in the file) turns on the opt-in legacy
//! listener for 7900- and 9900-series phones: TLS 1.0 to 1.2 with AES-CBC-SHA suites, through
//! OpenSSL. It needs a build with the `legacy-tls` feature and an RSA CAPF certificate, and it
//! logs a warning about the weakness it accepts.
//!
//! Every second capfd runs the scheduled jobs that are due (`capfctl bulk ... --at TIME`, and
//! the built-in certificate monitor, set by the file's `[monitor]` table: `enabled`, `days`,
//! `smtp_server`, `mail_from`, `mail_to`), each exactly once (capf-admin's `jobs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use capf_server::{CapfServer, ConfigFile, ensure_capf_files};
use capf_store::{AdminStore, SessionStore, SqliteStore};
use clap::Parser;

#[derive(Parser)]
#[command(name = "capfd", version, about = "The CAPF server")]
struct Cli {
    /// TOML configuration file (every key optional; flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data directory (store, CAPF certificate and key).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Listen address (repeat for several); default 0.0.0.0:3804 and [::]:3804.
    #[arg(long)]
    listen: Vec<SocketAddr>,
    /// The opt-in legacy TLS listener's address (repeat for several): TLS 1.0 to 1.2 with
    /// AES-CBC-SHA suites, for 7900/9900-series phones. Off by default; needs the `legacy-tls`
    /// feature and an RSA CAPF certificate.
    #[arg(long)]
    legacy_tls_listen: Vec<SocketAddr>,
    /// The Enable IPv6 enterprise parameter.
    #[arg(long)]
    enable_ipv6: Option<bool>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            // One line: what went wrong, with its causes.
            eprintln!("capfd: {}", capf_admin::error_chain(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    let data = file.data_dir(cli.data);
    let files = ensure_capf_files(&data, SystemTime::now())?;
    if files.created {
        tracing::info!(certificate = %files.certificate.display(), "first run: CAPF certificate generated");
    }
    let store = Arc::new(SqliteStore::open(&data)?);
    store.check_integrity()?; // a damaged store is refused, not served (issue 12)
    let mut settings = store.settings()?;
    if file.apply_settings(&mut settings)? {
        store.update_settings(&settings, SystemTime::now())?;
    }
    // CAPF-trust, CAPF-trust-MIC, CAPF-trust-SUDI for authentication by existing certificate
    // live in <data>/trust unless the file says otherwise (capfctl trust ... --store DIR).
    let mut config = file.server_config(&data, &files)?;
    if !cli.listen.is_empty() {
        config.listen = cli.listen;
    }
    if !cli.legacy_tls_listen.is_empty() {
        config.legacy_tls_listen = cli.legacy_tls_listen;
    }
    if let Some(v6) = cli.enable_ipv6 {
        config.enable_ipv6 = v6.into();
    }
    let grace = config.shutdown_grace;
    let scheduler = capf_admin::jobs::Scheduler::new(
        capf_admin::jobs::host_name(),
        monitor_config(file.monitor.as_ref())?,
    );
    let jobs_store: Arc<dyn capf_store::DeviceStore> = store.clone();
    let server = CapfServer::bind(config, store).await?;
    // Scheduled jobs (issue 17): wiring only; capf-admin claims and runs them.
    tokio::spawn(run_jobs(scheduler, jobs_store));
    tracing::info!(addrs = ?server.local_addrs(), legacy_tls = ?server.legacy_tls_addrs(), data = %data.display(), "CAPF serving");
    server
        .run(async move {
            shutdown_signal().await;
            grace
        })
        .await;
    Ok(std::process::ExitCode::SUCCESS)
}

/// The monitor job's configuration from the file's `[monitor]` table.
fn monitor_config(
    section: Option<&capf_server::MonitorSection>,
) -> anyhow::Result<capf_admin::jobs::MonitorConfig> {
    let mut config = capf_admin::jobs::MonitorConfig::default();
    let Some(section) = section else {
        return Ok(config);
    };
    config.enabled = section.enabled.unwrap_or(config.enabled);
    config.days = section.days.unwrap_or(config.days);
    if let Some(server) = &section.smtp_server {
        let (Some(from), Some(to)) = (&section.mail_from, &section.mail_to) else {
            anyhow::bail!("[monitor] smtp_server needs mail_from and mail_to");
        };
        config.relay = Some(capf_admin::SmtpRelay {
            server: server.clone(),
            from: from.clone(),
            to: to.clone(),
        });
    }
    Ok(config)
}

/// Every second, runs the scheduled jobs that are due (on the blocking pool: the store and
/// the jobs are synchronous); at start, fails the jobs this node left running.
async fn run_jobs(scheduler: capf_admin::jobs::Scheduler, store: Arc<dyn capf_store::DeviceStore>) {
    let scheduler = Arc::new(scheduler);
    let mut started = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (s, st) = (scheduler.clone(), store.clone());
        let first = !started;
        let ran = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            if first {
                for job in s.start(&*st, now)? {
                    tracing::warn!(job = job.id, kind = %job.kind, "job interrupted by a restart: failed");
                }
            }
            s.run_due(&*st, now)
        })
        .await;
        match ran {
            Ok(Ok(done)) => {
                started = true;
                for job in done {
                    let result = job.result.unwrap_or_default();
                    match &result.failure {
                        None => {
                            tracing::info!(job = job.id, kind = %job.kind, devices_changed = result.devices_changed, errors = result.errors.len(), "job done")
                        }
                        Some(why) => {
                            tracing::warn!(job = job.id, kind = %job.kind, failure = %why, "job failed")
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %capf_admin::error_chain(&e), "running scheduled jobs")
            }
            Err(e) => tracing::warn!(error = %e, "the job scheduler's task failed"),
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
