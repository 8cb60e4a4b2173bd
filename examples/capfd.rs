//! `capfd`: the CAPF server.
//!
//! `capfd [--config FILE] [--data DIR] [--store URL] [--store-password-file FILE] [--node NAME]
//! [--listen ADDR]... [--legacy-tls-listen ADDR]... [--enable-ipv6 BOOL]
//! [--admin-listen ADDR] [--log-format text|json] [--check-config]`
//!
//! Every key of the file and every flag, its default and whether it is reloaded at run time:
//! `docs/configuration.md`.
//!
//! `--store postgres://user@host/db` serves from a PostgreSQL database that several capfd nodes
//! share (a cluster); the password comes from `--store-password-file` or `PGPASSWORD`, never
//! from the command line. The default is the SQLite store in the data directory. On a cluster,
//! `--node` names this node (its leases on attempts in progress, its jobs), and the CAPF
//! certificate is the cluster's: the first node stores its own, the others serve that one, and
//! a replacement (`capfctl capf-cert upload --store ...`) reaches every node within seconds.
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
//!
//! `--admin-listen` (or `admin_listen` in the file; off by default) serves the web
//! administration (capf-web's HTTPS API) from inside capfd, over the same store and data
//! directory, with `/metrics` (Prometheus, from the running server; an API token from
//! `capfctl admin token create`, sent as a bearer token), `/healthz` and `/readyz` (no login).
//! Keep it on loopback or a management network. Its certificate is `web-cert.pem` and
//! `web-key.pem` in the data directory (self-signed for localhost on first use; replace both
//! files with your own). `--log-format json` writes one JSON object a line.
//!
//! Every second capfd runs the scheduled jobs that are due (`capfctl bulk ... --at TIME`, and
//! the built-in certificate monitor, set by the file's `[monitor]` table: `enabled`, `days`,
//! `smtp_server`, `mail_from`, `mail_to`), each exactly once (capf-admin's `jobs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use capf_server::{
    CapfFiles, CapfServer, ConfigFile, LogFormat, adopt_cluster_capf_certificate,
    ensure_capf_files, refresh_cluster_capf_certificate,
};
use capf_store::{DeviceStore, StoreUrl, open_node_store, store_password};
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
    /// This node's name in a cluster (default: the host name and process id); a node
    /// restarted under its name ends its own interrupted attempts at once.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
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
    /// The web administration's HTTPS listener (API, /metrics, /healthz, /readyz); off by
    /// default. Keep it on loopback (127.0.0.1:8443) or a management network.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Log lines as `text` (default) or `json` (one object a line).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

/// The log subscriber: `RUST_LOG` or `info`, as text or JSON lines on standard output; in
/// colour only on a terminal (a file or the journal gets no escape codes).
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Json => logs.json().init(),
        _ => logs.init(),
    }
}

/// jemalloc, configured in `.cargo/config.toml` to give freed pages back within a second:
/// with glibc's malloc the memory of a burst of TLS handshakes stayed resident, fragmented,
/// under the idle sessions that followed (about 4 kB per idle session, issue 19).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    let store_url = match cli.store.as_ref().or(file.store.as_ref()) {
        Some(url) => url.parse::<StoreUrl>()?,
        None => StoreUrl::sqlite(&data),
    };
    let (node, lease) = file.node(cli.node.as_deref())?;
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
    let password = store_password(
        cli.store_password_file
            .as_deref()
            .or(file.store_password_file.as_deref()),
    )?;
    // The files the server reads: on a cluster they hold the cluster's CAPF certificate.
    let served = CapfFiles {
        certificate: file
            .capf_certificate
            .clone()
            .unwrap_or_else(|| files.certificate.clone()),
        key: file.capf_key.clone().unwrap_or_else(|| files.key.clone()),
        created: files.created,
    };
    // The store is synchronous (PostgreSQL's client runs its own runtime): open and read it on
    // the blocking pool. A damaged SQLite store is refused, not served (issue 12).
    let (store, file) = {
        let data = data.clone();
        let url = store_url.clone();
        let cluster_files = served.clone();
        let node = node.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let store = open_node_store(&url, &data, password.as_ref(), node, lease)?;
            let mut settings = store.settings()?;
            if file.apply_settings(&mut settings)? {
                store.update_settings(&settings, SystemTime::now())?;
            }
            // A cluster serves one CAPF certificate: this node's files are its candidate, and
            // hold the stored one from here on.
            if let Some(generation) =
                adopt_cluster_capf_certificate(&*store, &cluster_files, SystemTime::now())?
            {
                tracing::info!(generation, "serving the cluster's CAPF certificate");
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
    // Jobs are claimed under the node's given name, else the host name, leased for the node's
    // lease: a restart releases the jobs it left running to run again, never another node's
    // (give each node of a cluster on one host its own name); a dead node's run again once
    // their lease runs out.
    let scheduler = capf_admin::jobs::Scheduler::new(
        cli.node
            .clone()
            .or_else(|| file.node.clone())
            .unwrap_or_else(capf_admin::jobs::host_name),
        monitor_config(file.monitor.as_ref())?,
    )
    .with_lease(lease);
    let jobs_store: Arc<dyn capf_store::DeviceStore> = store.clone();
    let server = CapfServer::bind(config, store.clone()).await?;
    // Scheduled jobs (issue 17): wiring only; capf-admin claims and runs them.
    tokio::spawn(run_jobs(scheduler, jobs_store));
    if store_url.is_shared() {
        tokio::spawn(follow_cluster_capf_certificate(
            store.clone(),
            files.clone(),
        ));
    }
    tracing::info!(addrs = ?server.local_addrs(), legacy_tls = ?server.legacy_tls_addrs(), data = %data.display(), store = %store_url, %node, "CAPF serving");
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
/// the jobs are synchronous); at start, releases the jobs this node left running, to run them
/// again. Beside it, renews the leases of the jobs it runs every third of the lease.
async fn run_jobs(scheduler: capf_admin::jobs::Scheduler, store: Arc<dyn capf_store::DeviceStore>) {
    let scheduler = Arc::new(scheduler);
    tokio::spawn(renew_job_leases(scheduler.clone(), store.clone()));
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
                    tracing::warn!(job = job.id, kind = %job.kind, "job interrupted by a restart: it runs again");
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

/// Every third of the lease, extends the leases of the jobs this node runs, so a long job is
/// not taken over by another node while this one is alive.
async fn renew_job_leases(
    scheduler: Arc<capf_admin::jobs::Scheduler>,
    store: Arc<dyn capf_store::DeviceStore>,
) {
    let mut tick = tokio::time::interval(scheduler.lease() / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (s, st) = (scheduler.clone(), store.clone());
        match tokio::task::spawn_blocking(move || s.renew(&*st, SystemTime::now())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %capf_admin::error_chain(&e), "renewing the job leases")
            }
            Err(e) => tracing::warn!(error = %e, "renewing the job leases"),
        }
    }
}

/// Every 2 s (with the settings refresh), on a cluster: when the stored CAPF certificate
/// changed (`capfctl capf-cert upload`, or the web administration), writes it into this node's
/// files, which the server reloads without a restart.
async fn follow_cluster_capf_certificate(store: Arc<dyn DeviceStore>, files: CapfFiles) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (st, f) = (store.clone(), files.clone());
        let refreshed = tokio::task::spawn_blocking(move || {
            refresh_cluster_capf_certificate(&*st, &f).map_err(anyhow::Error::from)
        });
        match refreshed.await {
            Ok(Ok(Some(generation))) => {
                tracing::info!(
                    generation,
                    "the cluster's CAPF certificate changed: reloading"
                )
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %capf_admin::error_chain(e.as_ref()), "following the cluster's CAPF certificate")
            }
            Err(e) => tracing::warn!(error = %e, "the CAPF certificate task failed"),
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
