//! `capf-web`: the web administration (capf-web's HTTPS JSON API) over a data directory.
//!
//! `cargo run --example capf-web -- --data DIR [--listen 127.0.0.1:8443] [--cert C --key K]`
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
    let store = capf_admin::open_store(&args.data)?;
    if capf_store::AdminStore::accounts(&store)?.is_empty() {
        tracing::warn!(
            "no administrator account yet: add one with `capfctl admin add --data {} NAME --role admin`",
            args.data.display()
        );
    }
    let (cert, key) = match (args.cert, args.key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => capf_web::tls::self_signed_files(&args.data)?,
        _ => bail!("--cert and --key go together"),
    };
    let tls = Arc::new(capf_web::tls::server_config(&cert, &key)?);
    let app = capf_web::router(
        Arc::new(store),
        capf_web::WebConfig::default().with_data_dir(&args.data),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!("capf-web listening on https://{}", listener.local_addr()?);
    tokio::select! {
        served = capf_web::tls::serve(listener, tls, app) => served?,
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
    }
    Ok(())
}
