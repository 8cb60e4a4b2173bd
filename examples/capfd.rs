//! `capfd`: the CAPF server.
//!
//! `capfd [--config FILE] [--data DIR] [--listen ADDR]... [--legacy-tls-listen ADDR]...
//! [--enable-ipv6 BOOL] [--admin-listen ADDR] [--log-format text|json]`
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
//! `--admin-listen` (or `admin_listen` in the file; off by default) serves the web
//! administration (capf-web's HTTPS API) from inside capfd, over the same store and data
//! directory, with `/metrics` (Prometheus, from the running server; an API token from
//! `capfctl admin token create`, sent as a bearer token), `/healthz` and `/readyz` (no login).
//! Keep it on loopback or a management network. Its certificate is `web-cert.pem` and
//! `web-key.pem` in the data directory (self-signed for localhost on first use; replace both
//! files with your own). `--log-format json` writes one JSON object a line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use capf_server::{CapfServer, ConfigFile, LogFormat, ensure_capf_files};
use capf_store::{AdminStore, DeviceStore, SessionStore, SqliteStore};
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
    /// The web administration's HTTPS listener (API, /metrics, /healthz, /readyz); off by
    /// default. Keep it on loopback (127.0.0.1:8443) or a management network.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Log lines as `text` (default) or `json` (one object a line).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

/// The log subscriber: `RUST_LOG` or `info`, as text or JSON lines on standard output.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => logs.json().init(),
        _ => logs.init(),
    }
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
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    init_logs(cli.log_format.or(file.log_format).unwrap_or_default());
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
    let server = CapfServer::bind(config, store.clone()).await?;
    tracing::info!(addrs = ?server.local_addrs(), legacy_tls = ?server.legacy_tls_addrs(), data = %data.display(), "CAPF serving");
    if let Some(addr) = cli.admin_listen.or(file.admin_listen) {
        // The web administration over the same store and data directory, with this server's
        // metrics and readiness.
        let (cert, key) = capf_web::tls::self_signed_files(&data)?;
        let tls = Arc::new(capf_web::tls::server_config(&cert, &key)?);
        let store: Arc<dyn DeviceStore> = store;
        let app = capf_web::router(
            store,
            capf_web::WebConfig::default()
                .with_data_dir(&data)
                .with_server(server.service()),
        )?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("admin listener on {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "web administration serving (HTTPS)");
        tokio::spawn(async move {
            if let Err(e) = capf_web::tls::serve(listener, tls, app).await {
                tracing::error!(error = %e, "web administration stopped");
            }
        });
    }
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
