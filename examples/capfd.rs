//! `capfd`: the CAPF server.
//!
//! `capfd [--config FILE] [--data DIR] [--listen ADDR]... [--enable-ipv6 BOOL]`
//!
//! With no configuration at all it creates its data directory (`capf-data`): the SQLite device
//! store, and a CAPF certificate and key on the first run; then it serves on port 3804 (IPv4
//! and IPv6) until SIGINT or SIGTERM, letting running sessions finish for up to 30 s.
//! SIGHUP (or changing the files) reloads the CAPF certificate and key; the trust stores for
//! authentication by existing certificate live in `capf-data/trust` (reloaded when they change).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use capf_server::{CapfServer, Config, ensure_capf_files};
use capf_store::{AdminStore, SessionStore, SqliteStore};
use clap::Parser;
use serde::Deserialize;

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
    /// The Enable IPv6 enterprise parameter.
    #[arg(long)]
    enable_ipv6: Option<bool>,
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<Vec<SocketAddr>>,
    enable_ipv6: Option<bool>,
    capf_certificate: Option<PathBuf>,
    capf_key: Option<PathBuf>,
    trust_dir: Option<PathBuf>,
    lsc_validity_days: Option<i64>,
    tls_handshake_timeout_secs: Option<u64>,
    message_timeout_secs: Option<u64>,
    key_generation_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    /// Run-time settings (`capfctl settings show` lists the keys), stored at start; capfctl
    /// changes them later without a restart.
    settings: Option<std::collections::BTreeMap<String, toml::Value>>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(code) => code,
        Err(e) => {
            // One line: what went wrong, with its causes.
            eprintln!("capfd: {e:#}");
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
    let file: FileConfig = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).map_err(|e| {
                // One line: file, line and what is wrong (toml's own text draws the line).
                let line = e.span().map_or(1, |span| {
                    1 + text.as_bytes()[..span.start.min(text.len())]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count()
                });
                anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
            })?
        }
        None => FileConfig::default(),
    };
    let data = cli
        .data
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("capf-data"));
    let files = ensure_capf_files(&data, SystemTime::now())?;
    if files.created {
        tracing::info!(certificate = %files.certificate.display(), "first run: CAPF certificate generated");
    }
    let store = Arc::new(SqliteStore::open(&data)?);
    if let Some(values) = file.settings {
        let mut settings = store.settings()?;
        for (key, value) in values {
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            // The error names the key.
            settings.set(&key, &text).context("[settings]")?;
        }
        store.update_settings(&settings, SystemTime::now())?;
    }
    let mut config = Config::new(
        file.capf_certificate.unwrap_or(files.certificate),
        file.capf_key.unwrap_or(files.key),
    );
    // CAPF-trust, CAPF-trust-MIC, CAPF-trust-SUDI for authentication by existing certificate
    // (capfctl trust ... --store DIR manages it); a missing directory is an empty store.
    config.trust_dir = Some(file.trust_dir.unwrap_or_else(|| data.join("trust")));
    if let Some(listen) = file.listen {
        config.listen = listen;
    }
    if !cli.listen.is_empty() {
        config.listen = cli.listen;
    }
    if let Some(v6) = cli.enable_ipv6.or(file.enable_ipv6) {
        config.enable_ipv6 = v6.into();
    }
    if let Some(days) = file.lsc_validity_days {
        config.lsc_validity = capf_lsc::ValidityDays::new(days).context("lsc_validity_days")?;
    }
    if let Some(s) = file.tls_handshake_timeout_secs {
        config.tls_handshake_timeout = Duration::from_secs(s);
    }
    if let Some(s) = file.message_timeout_secs {
        config.session.timeouts.message = Duration::from_secs(s);
    }
    if let Some(s) = file.key_generation_timeout_secs {
        config.session.timeouts.key_generation = Duration::from_secs(s);
    }
    let grace = Duration::from_secs(file.shutdown_grace_secs.unwrap_or(30));
    let server = CapfServer::bind(config, store).await?;
    tracing::info!(addrs = ?server.local_addrs(), data = %data.display(), "CAPF serving");
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
