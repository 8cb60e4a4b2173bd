//! `capf-web`: the web administration (capf-web's HTTPS JSON API) over a data directory.
//!
//! `cargo run --example capf-web -- --data DIR [--store URL] [--store-password-file FILE]
//! [--listen 127.0.0.1:8443] [--cert C --key K]`
//!
//! `--store postgres://user@host/db` administers a cluster's PostgreSQL store (the password from
//! `--store-password-file` or `PGPASSWORD`, never the command line; the data directory holds
//! the cluster's authentication-string key file). The default is the data directory's SQLite
//! store.
//!
//! Loopback by default. Without `--cert`/`--key` it makes a self-signed certificate in the data
//! directory on first run. Log in with an account made by `capfctl admin add`.
//!
//! It runs no CAPF server, so it has no `/metrics` (404: capfd's `--admin-listen` serves them,
//! from the running server) and its `/readyz` checks the store only. `--log-format json`
//! writes one JSON object a line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use capf_store::{DeviceStore, StoreUrl, open_store, store_password};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "capf-web",
    about = "Web administration of capf (HTTPS JSON API)"
)]
struct Args {
    /// The server's data directory (capf.sqlite).
    #[arg(long, value_name = "DIR", default_value = "capf-data")]
    data: PathBuf,
    /// The store: `sqlite:DIR` (default: the data directory's) or `postgres://user@host/db`
    /// (no password in the URL).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// A file whose first line is the PostgreSQL password (else `PGPASSWORD`).
    #[arg(long, value_name = "FILE")]
    store_password_file: Option<PathBuf>,
    /// Where to listen (HTTPS).
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The HTTPS certificate chain (PEM); with --key.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The HTTPS certificate's key (PEM); with --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Log lines as `text` (default) or `json` (one object a line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: capf_server::LogFormat,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    match args.log_format {
        capf_server::LogFormat::Json => logs.json().init(),
        _ => logs.init(),
    }
    let url = match &args.store {
        Some(url) => url.parse::<StoreUrl>()?,
        None => StoreUrl::sqlite(&args.data),
    };
    let password = store_password(args.store_password_file.as_deref())?;
    // The store is synchronous (PostgreSQL's client runs its own runtime): open it on the
    // blocking pool.
    let (store, accounts) = {
        let data = args.data.clone();
        let url = url.clone();
        tokio::task::spawn_blocking(move || -> Result<(Arc<dyn DeviceStore>, usize)> {
            let store: Arc<dyn DeviceStore> = match &url {
                StoreUrl::Sqlite(dir) => Arc::new(capf_admin::open_store(dir)?),
                _ => open_store(&url, &data, password.as_ref())?,
            };
            let accounts = store.accounts()?.len();
            Ok((store, accounts))
        })
        .await??
    };
    if accounts == 0 {
        tracing::warn!(
            "no administrator account yet: add one with `capfctl admin add --data {}{} NAME --role admin`",
            args.data.display(),
            args.store
                .as_deref()
                .map_or_else(String::new, |s| format!(" --store {s}"))
        );
    }
    let (cert, key) = match (args.cert, args.key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => capf_web::tls::self_signed_files(&args.data)?,
        _ => bail!("--cert and --key go together"),
    };
    let tls = Arc::new(capf_web::tls::server_config(&cert, &key)?);
    let app = capf_web::router(
        store,
        capf_web::WebConfig::default().with_data_dir(&args.data),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(store = %url, "capf-web listening on https://{}", listener.local_addr()?);
    tokio::select! {
        served = capf_web::tls::serve(listener, tls, app) => served?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
