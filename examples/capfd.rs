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
    let server = CapfServer::bind(config, store).await?;
    tracing::info!(addrs = ?server.local_addrs(), legacy_tls = ?server.legacy_tls_addrs(), data = %data.display(), "CAPF serving");
    server
        .run(async move {
            shutdown_signal().await;
            grace
        })
        .await;
    Ok(std::process::ExitCode::SUCCESS)
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
