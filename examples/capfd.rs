//! `capfd`: the CAPF server.
//!
//! `capfd [--config FILE] [--data DIR] [--store URL] [--store-password-file FILE]
//! [--listen ADDR]... [--legacy-tls-listen ADDR]... [--enable-ipv6 BOOL] [--check-config]`
//!
//! `--store postgres://user@host/db` serves from a PostgreSQL database that several capfd nodes
//! share (a cluster); the password comes from `--store-password-file` or `PGPASSWORD`, never
//! from the command line. The default is the SQLite store in the data directory.
//! `--check-config` reads and checks the configuration, prints one line and exits.
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
use std::time::SystemTime;

use capf_server::{CapfServer, ConfigFile, ensure_capf_files};
use capf_store::{StoreUrl, open_store, store_password};
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
    /// The store: `sqlite:DIR` (default: the data directory's) or `postgres://user@host/db`
    /// (several nodes on one database; no password in the URL).
    #[arg(long)]
    store: Option<String>,
    /// A file whose first line is the PostgreSQL password (else `PGPASSWORD`).
    #[arg(long)]
    store_password_file: Option<PathBuf>,
    /// Check the configuration (file, flags, store URL), print one line, and exit.
    #[arg(long)]
    check_config: bool,
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
    let store_url = match &cli.store {
        Some(url) => url.parse::<StoreUrl>()?,
        None => StoreUrl::sqlite(&data),
    };
    if cli.check_config {
        let mut settings = capf_store::Settings::default();
        file.apply_settings(&mut settings)?;
        let mut config = file.server_config(
            &data,
            &capf_server::CapfFiles {
                certificate: data.join("capf.pem"),
                key: data.join("capf.key"),
                created: false,
            },
        )?;
        if !cli.listen.is_empty() {
            config.listen = cli.listen;
        }
        config.validate()?;
        println!(
            "capfd: configuration OK (store {store_url}, data {})",
            data.display()
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let files = ensure_capf_files(&data, SystemTime::now())?;
    if files.created {
        tracing::info!(certificate = %files.certificate.display(), "first run: CAPF certificate generated");
    }
    let password = store_password(cli.store_password_file.as_deref())?;
    // The store is synchronous (PostgreSQL's client runs its own runtime): open and read it on
    // the blocking pool. A damaged SQLite store is refused, not served (issue 12).
    let (store, file) = {
        let data = data.clone();
        let url = store_url.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = open_store(&url, &data, password.as_ref())?;
            let mut settings = store.settings()?;
            if file.apply_settings(&mut settings)? {
                store.update_settings(&settings, SystemTime::now())?;
            }
            Ok((store, file))
        })
        .await??
    };
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
    tracing::info!(addrs = ?server.local_addrs(), legacy_tls = ?server.legacy_tls_addrs(), data = %data.display(), store = %store_url, "CAPF serving");
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
