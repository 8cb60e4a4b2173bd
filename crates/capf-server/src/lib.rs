#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod auth_throttle;
mod config;
mod config_file;
mod data_dir;
mod driver;
mod error;
mod handler;
mod identity;
mod legacy_tls;
mod limits;
pub mod metrics;
pub mod online;
mod store_thread;
mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use capf_ca::{CapfSigner, CertificateAuthority};
use capf_store::SessionStore;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::{CAPF_PORT, Config};
pub use config_file::{
    ConfigFile, DEFAULT_DATA_DIR, DEFAULT_LEASE, DEFAULT_SHUTDOWN_GRACE, LEASE_SECS, LogFormat,
    MonitorSection,
};
pub use data_dir::{
    CapfFiles, adopt_cluster_capf_certificate, ensure_capf_files, refresh_cluster_capf_certificate,
};
pub use error::Error;
pub use handler::{Answer, EnrollmentHandler, EnrollmentService};
pub use identity::{CapfIdentity, tls_provider};
pub use metrics::Metrics;

/// State every connection shares.
struct Shared {
    config: Config,
    /// The store, the issuer, the trust store, the run-time settings and the limits every
    /// session's handler uses.
    enrollment: Arc<EnrollmentService>,
    /// The CAPF signer to hand a reloaded key to, when CAPF signs LSCs itself.
    capf_signer: Option<Arc<CapfSigner>>,
    identity: RwLock<Arc<CapfIdentity>>,
    /// Sessions in all, before authentication, per source address.
    admissions: Arc<limits::Admissions>,
    /// Set when the shutdown grace period is over: sessions still running end now.
    hard_stop: watch::Receiver<bool>,
}

impl Shared {
    fn tls(&self) -> Arc<rustls::ServerConfig> {
        let identity = self.identity.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&identity.tls)
    }

    /// The legacy listener's OpenSSL context for the CAPF certificate being served.
    #[cfg(feature = "legacy-tls")]
    fn legacy_tls(&self) -> Option<openssl::ssl::SslContext> {
        let identity = self.identity.read().unwrap_or_else(PoisonError::into_inner);
        identity.legacy_tls.clone()
    }
}

/// Which TLS a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListenerKind {
    /// rustls: TLS 1.3 and 1.2.
    Main,
    /// OpenSSL: TLS 1.0 to 1.2 with the AES-CBC-SHA suites (`legacy_tls_listen`).
    #[cfg(feature = "legacy-tls")]
    LegacyTls,
}

/// The CAPF service, bound and ready to serve.
pub struct CapfServer {
    shared: Arc<Shared>,
    listeners: Vec<(TcpListener, ListenerKind)>,
    hard_stop: watch::Sender<bool>,
}

impl std::fmt::Debug for CapfServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapfServer")
            .field("local_addrs", &self.local_addrs())
            .field("ca", &self.shared.enrollment.ca_mode())
            .finish_non_exhaustive()
    }
}

impl CapfServer {
    /// Loads and checks the CAPF certificate and key, and binds every listen address. CAPF
    /// signs LSCs itself with that key (the guide's default mode).
    ///
    /// # Errors
    /// [`Error::Config`] for a value out of range ([`Config::validate`]), as
    /// [`CapfIdentity::load`], [`Error::Listen`] for an address that cannot be bound,
    /// [`Error::Store`] when the run-time settings cannot be read.
    pub async fn bind(config: Config, store: Arc<dyn SessionStore>) -> Result<Self, Error> {
        config.validate()?;
        let mut identity = CapfIdentity::load_with(
            &config.capf_certificate,
            &config.capf_key,
            SystemTime::now(),
            config.lsc_signer,
        )?;
        info!(signer = ?identity.lsc_signer(), "LSC signer");
        let signer = identity.take_issuer().map(|i| Arc::new(CapfSigner::new(i)));
        let Some(signer) = signer else {
            return Err(Error::NoIssuer {
                path: config.capf_key.clone(),
            });
        };
        let ca: Arc<dyn CertificateAuthority> = signer.clone();
        Self::bind_with(config, store, ca, Some(signer), identity).await
    }

    /// Binds with another issuer (an online or offline CA); `capf_signer` receives reloaded
    /// CAPF keys when it is the CAPF's own signer.
    ///
    /// # Errors
    /// As [`CapfServer::bind`].
    pub async fn bind_with(
        config: Config,
        store: Arc<dyn SessionStore>,
        ca: Arc<dyn CertificateAuthority>,
        capf_signer: Option<Arc<CapfSigner>>,
        identity: CapfIdentity,
    ) -> Result<Self, Error> {
        config.validate()?;
        let mut listeners = Vec::new();
        for addr in &config.listen {
            listeners.push((listen(*addr, config.backlog)?, ListenerKind::Main));
        }
        #[cfg(feature = "legacy-tls")]
        if !config.legacy_tls_listen.is_empty() {
            if identity.legacy_tls.is_none() {
                return Err(Error::LegacyTlsNeedsRsa {
                    path: config.capf_certificate.clone(),
                });
            }
            for addr in &config.legacy_tls_listen {
                listeners.push((listen(*addr, config.backlog)?, ListenerKind::LegacyTls));
            }
            warn!(addrs = ?config.legacy_tls_listen, "{}", legacy_tls::WARNING);
        }
        let settings = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || store.settings())
                .await
                .map_err(|source| Error::Task {
                    context: "reading settings",
                    source,
                })?
                .map_err(|source| Error::Store {
                    context: "reading settings",
                    source,
                })?
        };
        let recovered = {
            let store = Arc::clone(&store);
            tokio::task::spawn_blocking(move || recover_interrupted(store.as_ref()))
                .await
                .map_err(|source| Error::Task {
                    context: "recovering interrupted attempts",
                    source,
                })??
        };
        if recovered > 0 {
            info!(
                devices = recovered,
                "attempts cut off by the last stop are pending again"
            );
        }
        let trust = load_trust(config.trust_dir.as_deref(), &identity.certificate)?;
        let (hard_stop, hard_stop_rx) = watch::channel(false);
        let enrollment = Arc::new(
            EnrollmentService::new(store, ca, trust, settings)
                .with_online(Arc::new(capf_ca::OnlineCa::new())),
        );
        enrollment.metrics().capf_certificate(&identity.certificate);
        let shared = Arc::new(Shared {
            config,
            enrollment,
            capf_signer,
            identity: RwLock::new(Arc::new(identity)),
            admissions: Arc::default(),
            hard_stop: hard_stop_rx,
        });
        Ok(CapfServer {
            shared,
            listeners,
            hard_stop,
        })
    }

    /// The bound addresses (with the ports the system chose for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs_of(ListenerKind::Main)
    }

    /// The legacy listener's bound addresses (`legacy_tls_listen`; empty when it is off or
    /// built without the `legacy-tls` feature).
    pub fn legacy_tls_addrs(&self) -> Vec<SocketAddr> {
        #[cfg(feature = "legacy-tls")]
        return self.addrs_of(ListenerKind::LegacyTls);
        #[cfg(not(feature = "legacy-tls"))]
        Vec::new()
    }

    fn addrs_of(&self, kind: ListenerKind) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, k)| *k == kind)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// The service every session uses: its [`Metrics`] and the Online CA's readiness
    /// ([`EnrollmentService::online_ca_readiness`]), for an administration listener.
    pub fn service(&self) -> Arc<EnrollmentService> {
        Arc::clone(&self.shared.enrollment)
    }

    /// The CAPF certificate being served now.
    pub fn capf_certificate(&self) -> capf_lsc::x509_cert::Certificate {
        let identity = self
            .shared
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        identity.certificate.clone()
    }

    /// Serves until `shutdown` completes with a grace period, then stops accepting and lets
    /// running sessions finish for up to that long; sessions still running then end with
    /// END_SESSION 7.
    pub async fn run(self, shutdown: impl std::future::Future<Output = Duration>) {
        let tracker = TaskTracker::new();
        let (stop_accepting, _) = watch::channel(false);
        for (listener, kind) in self.listeners {
            let shared = Arc::clone(&self.shared);
            let connections = tracker.clone();
            let mut stop = stop_accepting.subscribe();
            tracker.spawn(async move {
                loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((tcp, peer)) => {
                                connections.spawn(connection_task(Arc::clone(&shared), tcp, peer, kind));
                            }
                            Err(e) => {
                                // Out of descriptors, say: back off instead of spinning.
                                warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        },
                        _ = stop.changed() => break,
                    }
                }
            });
        }
        let reload = tokio::spawn(reload_loop(Arc::clone(&self.shared)));
        let refresh = tokio::spawn(settings_loop(Arc::clone(&self.shared)));
        let leases = tokio::spawn(lease_loop(Arc::clone(&self.shared)));
        let online_ca = tokio::spawn(online::run(
            Arc::clone(&self.shared.enrollment),
            self.shared.config.settings_refresh,
        ));
        let grace = shutdown.await;
        info!(
            sessions = self.shared.admissions.total(),
            ?grace,
            "shutting down"
        );
        let _ = stop_accepting.send(true);
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            warn!("grace period over: ending the sessions still running");
            let _ = self.hard_stop.send(true);
            tracker.wait().await;
        }
        reload.abort();
        refresh.abort();
        leases.abort();
        online_ca.abort();
    }

    /// Runs the server on the current runtime in the background.
    pub fn spawn(self) -> ServerHandle {
        let (stop, grace) = tokio::sync::oneshot::channel::<Duration>();
        let addrs = self.local_addrs();
        let legacy_tls_addrs = self.legacy_tls_addrs();
        let task = tokio::spawn(self.run(async move { grace.await.unwrap_or(Duration::ZERO) }));
        ServerHandle {
            stop,
            task,
            addrs,
            legacy_tls_addrs,
        }
    }
}

/// A server running in the background (see [`CapfServer::spawn`]).
#[derive(Debug)]
pub struct ServerHandle {
    stop: tokio::sync::oneshot::Sender<Duration>,
    task: tokio::task::JoinHandle<()>,
    addrs: Vec<SocketAddr>,
    legacy_tls_addrs: Vec<SocketAddr>,
}

impl ServerHandle {
    /// The bound addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The legacy listener's bound addresses ([`CapfServer::legacy_tls_addrs`]).
    pub fn legacy_tls_addrs(&self) -> &[SocketAddr] {
        &self.legacy_tls_addrs
    }

    /// Stops accepting, lets running sessions finish for up to `grace`, and waits for the end.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(grace);
        let _ = self.task.await;
    }
}

/// Devices left In Progress by a server that stopped mid-session (a crash, a kill) go back to
/// Pending, so their phones' next attempts run the operation again.
fn recover_interrupted(store: &dyn SessionStore) -> Result<usize, Error> {
    // Only this node's attempts on a shared store (and those whose lease ran out).
    store
        .recover_attempts(INTERRUPTED_BY_STOP, SystemTime::now())
        .map(|ended| ended.len())
        .map_err(|source| Error::Store {
            context: "recovering interrupted attempts",
            source,
        })
}

/// Why an attempt cut off by a stopped server (this one, or another node of the cluster whose
/// lease ran out) is pending again.
const INTERRUPTED_BY_STOP: &str = "CAPF stopped while the session ran";

/// How often a node renews its leases on attempts in progress and takes back those of a
/// stopped node (a shared store's; nothing for SQLite).
const LEASE_RENEWAL: Duration = Duration::from_secs(10);

/// Renews this node's leases and puts a stopped node's attempts back to pending.
async fn lease_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(LEASE_RENEWAL);
    loop {
        tick.tick().await;
        let store = Arc::clone(shared.enrollment.store());
        match tokio::task::spawn_blocking(move || {
            store.renew_leases(INTERRUPTED_BY_STOP, SystemTime::now())
        })
        .await
        {
            Ok(Ok(ended)) if !ended.is_empty() => {
                info!(
                    devices = ended.len(),
                    "another node's attempts whose lease ran out are pending again"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "renewing the leases"),
            Err(e) => warn!(error = %e, "renewing the leases"),
        }
    }
}

/// One accepted connection's task; a plain function returning one `async move` block, so its
/// arguments are stored once (see [`driver::serve`]).
#[allow(clippy::manual_async_fn)] // see driver::serve: arguments stored once
fn connection_task(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
) -> impl std::future::Future<Output = ()> {
    async move {
        // The settings copy is dropped before the session: it is not held by idle connections.
        let admitted = shared
            .admissions
            .admit(peer.ip(), &shared.enrollment.settings());
        let admission = match admitted {
            Ok(admission) => admission,
            Err(refusal) => {
                // Over a session budget: close at once, as capfd does (spec 8.12); the phone
                // retries later.
                info!(%peer, "refused: {}", refusal.as_str());
                return;
            }
        };
        // The same admission on every listener; only the TLS layer differs.
        match kind {
            ListenerKind::Main => driver::serve(shared, tcp, peer, admission).await,
            #[cfg(feature = "legacy-tls")]
            ListenerKind::LegacyTls => legacy_tls::serve(shared, tcp, peer, admission).await,
        }
    }
}

fn listen(addr: SocketAddr, backlog: u32) -> Result<TcpListener, Error> {
    let err = |source| Error::Listen { addr, source };
    let socket = if addr.is_ipv6() {
        TcpSocket::new_v6().map_err(err)?
    } else {
        TcpSocket::new_v4().map_err(err)?
    };
    if addr.is_ipv6() {
        // IPv6-only, so [::]:3804 and 0.0.0.0:3804 both bind and each family is its own.
        socket2::SockRef::from(&socket)
            .set_only_v6(true)
            .map_err(err)?;
    }
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(backlog).map_err(err)
}

/// Reloads the CAPF certificate and key when their files change or on SIGHUP (the guide: no
/// restart after regenerating the CAPF certificate). A bad new pair is logged and the old one
/// kept.
async fn reload_loop(shared: Arc<Shared>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(shared.config.reload_interval);
    // Empty, so the first tick loads the directory once more: nothing changed since bind is
    // missed.
    let mut trust_seen = Vec::new();
    let mut seen = {
        let identity = shared
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        identity.files.clone()
    };
    loop {
        #[cfg(unix)]
        let forced = async {
            match hup.as_mut() {
                Some(h) => h.recv().await.is_some(),
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let forced = std::future::pending::<bool>();
        let forced = tokio::select! {
            _ = tick.tick() => false,
            f = forced => f,
        };
        reload_trust(&shared, &mut trust_seen);
        let files = [
            std::fs::read(&shared.config.capf_certificate),
            std::fs::read(&shared.config.capf_key),
        ];
        let files = match files {
            [Ok(certificate_pem), Ok(key_pem)] => identity::LoadedFiles {
                certificate_pem,
                key_pem,
            },
            _ => continue,
        };
        if !forced && files == seen {
            continue;
        }
        // A bad new pair is not retried every tick: only when the files change again.
        seen = files;
        match CapfIdentity::load_with(
            &shared.config.capf_certificate,
            &shared.config.capf_key,
            SystemTime::now(),
            shared.config.lsc_signer,
        ) {
            #[cfg(feature = "legacy-tls")]
            Ok(identity)
                if identity.legacy_tls.is_none() && !shared.config.legacy_tls_listen.is_empty() =>
            {
                warn!(
                    "CAPF certificate not reloaded: its key is not RSA, which the legacy TLS \
                     listener needs; keeping the current one"
                );
            }
            Ok(mut identity) => {
                if let (Some(signer), Some(issuer)) =
                    (shared.capf_signer.as_ref(), identity.take_issuer())
                {
                    signer.replace(issuer);
                }
                info!(
                    subject = %identity.certificate.tbs_certificate().subject(),
                    "CAPF certificate reloaded"
                );
                let certificate = identity.certificate.clone();
                shared.enrollment.metrics().capf_certificate(&certificate);
                *shared
                    .identity
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Arc::new(identity);
                // The new CAPF certificate is an LSC issuer from now on.
                match load_trust(shared.config.trust_dir.as_deref(), &certificate) {
                    Ok(trust) => shared.enrollment.set_trust(trust),
                    Err(e) => warn!(error = %e, "trust store not reloaded"),
                }
            }
            Err(e) => {
                warn!(error = %e, "CAPF certificate not reloaded; keeping the current one");
            }
        }
    }
}

/// The trust store for certificate authentication: the directory's stores, plus the CAPF
/// certificate in CAPF-trust. Files that do not load are logged, never silently skipped.
fn load_trust(
    dir: Option<&std::path::Path>,
    capf: &capf_lsc::x509_cert::Certificate,
) -> Result<capf_trust::TrustStore, Error> {
    let mut store = match dir {
        Some(dir) => {
            let loaded = capf_trust::StoreDir::new(dir)
                .load(capf_trust::Release::default())
                .map_err(|source| Error::Trust {
                    path: dir.to_owned(),
                    source,
                })?;
            for bad in &loaded.bad_files {
                warn!(file = %bad.path.display(), error = %bad.error, "trust file not loaded");
            }
            loaded.store
        }
        None => capf_trust::TrustStore::new(capf_trust::Release::default()),
    };
    let cert = capf_trust::Cert::from_certificate(capf.clone()).map_err(|source| Error::Trust {
        path: dir.map(ToOwned::to_owned).unwrap_or_default(),
        source,
    })?;
    store.insert_unchecked(&capf_trust::Purpose::CAPF_TRUST, cert);
    Ok(store)
}

/// Reloads the trust store when the directory's files changed since `seen` (names, sizes and
/// modification times, two levels deep: `<dir>/<purpose>/<file>`), so a quiet directory costs a
/// listing per tick, not a parse of every certificate.
fn reload_trust(shared: &Shared, seen: &mut Vec<(std::path::PathBuf, u64, SystemTime)>) {
    let Some(dir) = shared.config.trust_dir.as_deref() else {
        return;
    };
    let stamp = dir_stamp(dir);
    if stamp == *seen {
        return;
    }
    *seen = stamp;
    let capf = {
        let identity = shared
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        identity.certificate.clone()
    };
    match load_trust(Some(dir), &capf) {
        Ok(trust) => {
            info!(certificates = trust.len(), "trust store loaded");
            shared.enrollment.set_trust(trust);
        }
        Err(e) => warn!(error = %e, "trust store not reloaded"),
    }
}

/// Every file under `dir` and its purpose folders, with size and modification time, sorted.
fn dir_stamp(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut folders = vec![dir.to_owned()];
    for depth in 0..2 {
        let mut next = Vec::new();
        for folder in &folders {
            let Ok(entries) = std::fs::read_dir(folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() && depth == 0 {
                    next.push(entry.path());
                } else if meta.is_file() {
                    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    out.push((entry.path(), meta.len(), modified));
                }
            }
        }
        folders = next;
    }
    out.sort();
    out
}

/// Re-reads the run-time settings (keepalive, limits, throttling) from the store.
async fn settings_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.settings_refresh);
    loop {
        tick.tick().await;
        let store = Arc::clone(shared.enrollment.store());
        match tokio::task::spawn_blocking(move || store.settings()).await {
            Ok(Ok(settings)) => shared.enrollment.set_settings(settings),
            Ok(Err(e)) => warn!(error = %e, "reading settings"),
            Err(e) => warn!(error = %e, "reading settings"),
        }
        // Attempts whose end a lost store could not take (a PostgreSQL server gone).
        shared.enrollment.end_unended().await;
    }
}
