//! The enrollment handler: a session's events answered over the device store, the issuer and
//! the trust store, without sockets or TLS (the driver owns those). Tests drive it with a
//! `ServerSession` in memory.

use std::collections::HashSet;
use std::mem;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use capf_ca::{CertificateAuthority, IssueOutcome, IssueRequest, OfflineCa, OnlineCa};
use capf_lsc::{
    CertificateIssuer, DeviceName, EndpointCsr, KeySpec, OnlineCaPolicy, PhonePublicKey,
};
use capf_session::{Authentication, Decision, Outcome, ServerEvent, ServerSession, State};
use capf_store::{
    AttemptEnd, AuthMode, CaRequest, CaRequestState, Device, LscState, NewCaRequest, Operation,
    SessionStore, Settings,
};
use capf_trust::{CertificateKind, DeviceProof, Precedence, TrustStore, authenticate_device_with};
use capf_wire::{CertificateType, Reason};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::Error;
use crate::auth_throttle::AuthThrottle;
use crate::limits::{KeyGenLimiter, KeyGenPermit};
use crate::metrics::{self, AuthKind, CaMode, CaOutcome, Metrics, SessionState};
use crate::store_thread::StoreThread;

/// Store calls running at once on the blocking pool, for a store that does not batch
/// (PostgreSQL, with a pool of 16 connections); a store that batches has the store thread.
const STORE_THREADS: usize = 16;

/// What every session's [`EnrollmentHandler`] shares: the device store, the issuers (CAPF's own
/// and the external CAs), the trust store for authentication by existing certificate, the
/// run-time settings (among them the certificate issuer mode and the LSC validity), and the
/// key-generation limit.
///
/// The trust store and the settings are replaced while sessions run
/// ([`set_trust`](Self::set_trust), [`set_settings`](Self::set_settings)); a session reads them
/// when it needs them.
pub struct EnrollmentService {
    store: Arc<dyn SessionStore>,
    /// The issuer of the CAPF mode (CAPF's own signer).
    ca: Arc<dyn CertificateAuthority>,
    /// The issuer of the Offline CA mode.
    offline_ca: Arc<dyn CertificateAuthority>,
    /// The issuer of the Online CA mode, once one is configured (issue 14).
    online_ca: Option<Arc<dyn CertificateAuthority>>,
    /// The Online CA itself, when the server runs one: its settings are refreshed and its
    /// pending requests polled (`crate::online`).
    pub(crate) online: Option<Arc<OnlineCa>>,
    /// Held from reading the Online CA settings to applying them, so a refresh that read an
    /// older row never replaces what a later refresh applied (the poller's and a session's).
    pub(crate) online_refresh: tokio::sync::Mutex<()>,
    /// When each pending Online CA request is next asked about (store request id -> when):
    /// honours the CA's Retry-After, bounded by `ca_retry_delay`.
    pub(crate) polls: Mutex<std::collections::HashMap<i64, Instant>>,
    /// The longest a session waits for an online CA's answer: then RETRY_LATER, and the
    /// poller asks again (a slow CA never holds a session).
    pub(crate) ca_call_deadline: std::time::Duration,
    /// CAPF-trust (with the CAPF certificate), MIC roots and SUDI roots.
    trust: RwLock<Arc<TrustStore>>,
    settings: RwLock<Settings>,
    key_generation: Arc<KeyGenLimiter>,
    /// Failed authentication strings, per (device, source address) and per device.
    auth_throttle: AuthThrottle,
    /// The devices a session is serving now (their names in upper case, as the store looks
    /// names up ignoring case): one session per device at a time, as UCM refuses a device
    /// already being served (issue 12 item 1). In process for now; a cluster needs it in the
    /// store.
    serving: Mutex<HashSet<String>>,
    /// Attempts whose end could not be recorded because the store was unreachable (a
    /// PostgreSQL server lost), with when the session closed: recorded once it is back
    /// ([`EnrollmentService::end_unended`]), so the operation is pending again rather than left
    /// in progress under this node's lease.
    unended: Mutex<Vec<(DeviceName, AttemptEnd, SystemTime)>>,
    /// Store calls running at once: a burst of phones must not start hundreds of blocking
    /// threads (each with its stack and malloc arena).
    store_slots: tokio::sync::Semaphore,
    /// The thread that makes every store call, batch by batch, for a store that batches
    /// (`None`: the blocking pool, `store_slots` calls at once).
    store_thread: Option<StoreThread>,
    /// Counters, gauges and histograms of every session ([`Metrics`]).
    metrics: Arc<Metrics>,
    /// The Online CA's reachability as last seen (by a call or a probe), for readiness.
    pub(crate) ca_health: Mutex<Option<crate::online::CaHealth>>,
    /// Held while readiness probes the Online CA, so probes never pile up.
    pub(crate) ca_probe: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for EnrollmentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentService")
            .field("ca", &self.ca.mode())
            .field("online_ca", &self.online_ca.as_ref().map(|ca| ca.mode()))
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

impl EnrollmentService {
    /// A service over `store`, with `ca` signing in the CAPF mode and an [`OfflineCa`] in the
    /// Offline CA mode, authenticating certificates against `trust`, with the run-time
    /// `settings` (limits, throttling, the certificate issuer mode, the LSC validity).
    pub fn new(
        store: Arc<dyn SessionStore>,
        ca: Arc<dyn CertificateAuthority>,
        trust: TrustStore,
        settings: Settings,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        EnrollmentService {
            ca,
            offline_ca: Arc::new(OfflineCa),
            online_ca: None,
            online: None,
            online_refresh: tokio::sync::Mutex::new(()),
            polls: Mutex::new(std::collections::HashMap::new()),
            ca_call_deadline: crate::online::CA_CALL_DEADLINE,
            trust: RwLock::new(Arc::new(trust)),
            settings: RwLock::new(settings),
            key_generation: Arc::new(KeyGenLimiter::with_metrics(Arc::clone(&metrics))),
            auth_throttle: AuthThrottle::default(),
            serving: Mutex::new(HashSet::new()),
            unended: Mutex::new(Vec::new()),
            store_slots: tokio::sync::Semaphore::new(STORE_THREADS),
            store_thread: start_store_thread(&store),
            store,
            metrics,
            ca_health: Mutex::new(None),
            ca_probe: tokio::sync::Mutex::new(()),
        }
    }

    /// The metrics of every session of this service.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The `mode` label of the CA metrics for `mode` (an Online CA by its type).
    pub(crate) fn ca_mode_label(&self, mode: CertificateIssuer) -> CaMode {
        match mode {
            CertificateIssuer::OfflineCa => CaMode::Offline,
            CertificateIssuer::OnlineCa => {
                let kind = self
                    .online
                    .as_ref()
                    .and_then(|o| o.config())
                    .map(|c| c.ca_type);
                match kind {
                    Some(capf_lsc::OnlineCaType::Microsoft) => CaMode::OnlineMicrosoft,
                    _ => CaMode::OnlineEst,
                }
            }
            _ => CaMode::Capf,
        }
    }

    /// Counts a CA call that began at `started` with its answer.
    pub(crate) fn count_ca_call<T>(
        &self,
        mode: CaMode,
        started: Instant,
        answer: &Result<IssueOutcome, T>,
        ca_error: impl FnOnce(&T) -> CaOutcome,
    ) {
        let outcome = match answer {
            Ok(IssueOutcome::Pending { .. }) => CaOutcome::Pending,
            Ok(_) => CaOutcome::Issued,
            Err(e) => ca_error(e),
        };
        self.metrics.ca_call(mode, outcome, started.elapsed());
    }

    /// The handler for a new session with the phone at `peer` (authentication-string
    /// failures are throttled per device and source address).
    pub fn handler(self: &Arc<Self>, peer: SocketAddr) -> EnrollmentHandler {
        EnrollmentHandler {
            service: Arc::clone(self),
            attempt: Attempt::NoDevice,
            peer,
            hung_up: CancellationToken::new(),
            serving: None,
            key_generation_deadline: None,
            started: Instant::now(),
            key_at: None,
            outcome: None,
            gauge: None,
            counted: false,
        }
        .tracked()
    }

    /// The device store.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The CAPF mode's issuer's name, for logs ("CAPF", ...).
    pub fn ca_mode(&self) -> &'static str {
        self.ca.mode()
    }

    /// Sets the issuer of the Online CA mode (without one, an Online CA request fails with a
    /// reason saying so).
    #[must_use]
    pub fn with_online_ca(mut self, ca: Arc<dyn CertificateAuthority>) -> Self {
        self.online_ca = Some(ca);
        self
    }

    /// Runs `online` as the Online CA mode's issuer: the server refreshes its settings from
    /// the store and polls its pending requests.
    #[must_use]
    pub fn with_online(mut self, online: Arc<OnlineCa>) -> Self {
        self.online_ca = Some(Arc::clone(&online) as Arc<dyn CertificateAuthority>);
        self.online = Some(online);
        self
    }

    /// Sets how long a session waits for an online CA's answer before it tells the phone to
    /// come back (RETRY_LATER) and leaves the request to the poller.
    #[must_use]
    pub fn with_ca_call_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.ca_call_deadline = deadline;
        self
    }

    /// The external CA of `mode`: `None` for CAPF, or an Online CA mode with no CA configured.
    fn external_ca(&self, mode: CertificateIssuer) -> Option<Arc<dyn CertificateAuthority>> {
        match mode {
            CertificateIssuer::OfflineCa => Some(Arc::clone(&self.offline_ca)),
            CertificateIssuer::OnlineCa => self.online_ca.clone(),
            _ => None,
        }
    }

    /// The run-time settings sessions use now.
    pub fn settings(&self) -> Settings {
        *self.settings.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the run-time settings (re-read from the store while the server runs).
    pub fn set_settings(&self, settings: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings;
    }

    /// The trust store sessions use now.
    pub fn trust(&self) -> Arc<TrustStore> {
        Arc::clone(&self.trust.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the trust store (the trust directory or the CAPF certificate changed).
    pub fn set_trust(&self, trust: TrustStore) {
        *self.trust.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(trust);
    }

    /// Records the ends of attempts the store could not take when their sessions closed (it
    /// was unreachable), now that it may be back; those it still cannot take wait for the next
    /// call. An attempt is ended only while no session of this node serves the device and the
    /// device has not changed since (no other node began an attempt meanwhile).
    pub async fn end_unended(&self) {
        let waiting = mem::take(&mut *self.unended.lock().unwrap_or_else(PoisonError::into_inner));
        for (device, end, closed) in waiting {
            let Some(key) = self.claim(&device) else {
                // A session of this node serves it again: that session ends its attempt.
                continue;
            };
            let name = device.clone();
            let call = end.clone();
            let ended = self
                .store_call("end an interrupted attempt", move |s| {
                    let current = s.device(&name)?;
                    match current {
                        Some(d)
                            if d.status == capf_store::OperationStatus::InProgress
                                && d.updated_at <= closed =>
                        {
                            s.end_attempt(&name, call, SystemTime::now()).map(Some)
                        }
                        _ => Ok(None),
                    }
                })
                .await;
            self.release(&key);
            match ended {
                Ok(Some(_)) => info!(device = %device, "attempt ended now that the store is back"),
                Ok(None) => {}
                Err(Error::Store { source, .. }) if source.is_unreachable() => {
                    self.unended
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((device, end, closed));
                }
                Err(e) => warn!(device = %device, error = %e, "ending an interrupted attempt"),
            }
        }
    }

    /// Claims `device` for one session; `None` when another session is serving it.
    fn claim(&self, device: &DeviceName) -> Option<String> {
        let key = device.as_str().to_ascii_uppercase();
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        serving.insert(key.clone()).then_some(key)
    }

    /// Ends a claim of [`claim`](Self::claim).
    fn release(&self, key: &str) {
        self.serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Runs a store call on the store thread, or on the blocking pool for a store that does
    /// not batch.
    pub(crate) async fn store_call<T, F>(&self, context: &'static str, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&dyn SessionStore) -> Result<T, capf_store::Error> + Send + 'static,
    {
        if let Some(thread) = &self.store_thread {
            let metrics = Arc::clone(&self.metrics);
            let (answer, answered) = tokio::sync::oneshot::channel();
            thread.submit(Box::new(move |store| {
                let started = Instant::now();
                let result = f(store);
                Box::new(move |committed| {
                    metrics.store_call(started.elapsed(), result.is_ok() && committed.is_ok());
                    let _ = answer.send(match committed {
                        Ok(()) => result.map_err(|source| Error::Store { context, source }),
                        Err(source) => Err(Error::StoreCommit { context, source }),
                    });
                })
            }));
            return answered
                .await
                .map_err(|source| Error::StoreCallLost { context, source })?;
        }
        let store = Arc::clone(&self.store);
        let _slot = self
            .store_slots
            .acquire()
            .await
            .map_err(|source| Error::Closed { context, source })?;
        let metrics = Arc::clone(&self.metrics);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = f(store.as_ref());
            metrics.store_call(started.elapsed(), result.is_ok());
            result
        })
        .await
        .map_err(|source| Error::Task { context, source })?
        .map_err(|source| Error::Store { context, source })
    }

    /// A store call about `device`, at the time it runs. The blocking pool needs owned data:
    /// the session's one validated name is shared with it, not copied.
    async fn device_call<T, F>(
        &self,
        device: &Arc<DeviceName>,
        context: &'static str,
        f: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&dyn SessionStore, &DeviceName, SystemTime) -> Result<T, capf_store::Error>
            + Send
            + 'static,
    {
        let device = Arc::clone(device);
        self.store_call(context, move |s| f(s, &device, SystemTime::now()))
            .await
    }
}

/// The store thread for a store that batches; `None` (the blocking pool) for one that does
/// not, or when the thread cannot start.
fn start_store_thread(store: &Arc<dyn SessionStore>) -> Option<StoreThread> {
    if !store.batches() {
        return None;
    }
    StoreThread::start(Arc::clone(store))
        .inspect_err(|e| warn!(error = %e, "no store thread: store calls go to the blocking pool"))
        .ok()
}

/// The operation a session runs, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OperationKind {
    InstallUpgrade,
    Delete,
    Troubleshoot,
}

impl OperationKind {
    fn of(operation: &Operation) -> Option<Self> {
        match operation {
            Operation::InstallUpgrade(_) => Some(OperationKind::InstallUpgrade),
            Operation::Delete => Some(OperationKind::Delete),
            Operation::Troubleshoot => Some(OperationKind::Troubleshoot),
            _ => None,
        }
    }

    /// The `operation` label of the metrics.
    fn metric(kind: Option<Self>) -> metrics::Operation {
        match kind {
            Some(OperationKind::InstallUpgrade) => metrics::Operation::InstallUpgrade,
            Some(OperationKind::Delete) => metrics::Operation::Delete,
            Some(OperationKind::Troubleshoot) => metrics::Operation::Troubleshoot,
            None => metrics::Operation::None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            OperationKind::InstallUpgrade => "install/upgrade",
            OperationKind::Delete => "delete",
            OperationKind::Troubleshoot => "troubleshoot",
        }
    }
}

/// What this session has done to its device, so the session's end is recorded once and
/// correctly: only the `…Requested` and `LscIssued` states have an attempt in progress in the
/// store, which an end other than success leaves Interrupted.
#[derive(Debug, Default)]
enum Attempt {
    /// No device: AUTH_RESPONSE not handled yet, or it named no known device.
    #[default]
    NoDevice,
    /// The device is known and the store holds nothing in progress for this session: nothing
    /// to do, or refused before the attempt began (complete-by passed, authentication failed,
    /// key-generation queue full).
    NotBegun {
        device: Arc<DeviceName>,
        operation: Option<OperationKind>,
    },
    /// Install/Upgrade begun: KEY_GEN_REQUEST sent for `requested`; `permit` holds a
    /// key-generation slot. `mode` is the certificate issuer mode of this session (read once at
    /// authentication); `issued` the device's request whose certificate awaits delivery, if
    /// any (spec 16.z).
    KeyRequested {
        device: Arc<DeviceName>,
        requested: KeySpec,
        permit: KeyGenPermit,
        mode: CertificateIssuer,
        issued: Option<Box<CaRequest>>,
    },
    /// External CA: SIGN_CERT_REQUEST sent with `info` for `key` (DER `spki_der`, spec 16.x).
    CsrRequested {
        device: Arc<DeviceName>,
        key: Box<PhonePublicKey>,
        spki_der: Vec<u8>,
        info: Vec<u8>,
        mode: CertificateIssuer,
        permit: KeyGenPermit,
    },
    /// The LSC with this serial is issued and recorded, STORE_CERT_REQUEST sent; installed
    /// only on STORE_CERT_RESPONSE (spec 8.2 project rule).
    LscIssued {
        device: Arc<DeviceName>,
        serial: Vec<u8>,
        #[expect(
            dead_code,
            reason = "held for its drop, which frees the key-generation slot"
        )]
        permit: KeyGenPermit,
    },
    /// Troubleshoot begun: FETCH_CERT_REQUEST sent.
    FetchRequested { device: Arc<DeviceName> },
    /// Delete begun: DELETE_CERT_REQUEST sent.
    DeleteRequested { device: Arc<DeviceName> },
    /// The attempt is over and the store has recorded how (succeeded, failed or interrupted).
    Ended {
        device: Arc<DeviceName>,
        operation: Option<OperationKind>,
    },
}

impl Attempt {
    fn device(&self) -> Option<&Arc<DeviceName>> {
        match self {
            Attempt::NoDevice => None,
            Attempt::NotBegun { device, .. }
            | Attempt::KeyRequested { device, .. }
            | Attempt::CsrRequested { device, .. }
            | Attempt::LscIssued { device, .. }
            | Attempt::FetchRequested { device }
            | Attempt::DeleteRequested { device }
            | Attempt::Ended { device, .. } => Some(device),
        }
    }

    fn device_name(&self) -> Option<&str> {
        self.device().map(|d| d.as_str())
    }

    fn operation(&self) -> Option<OperationKind> {
        match self {
            Attempt::NoDevice => None,
            Attempt::NotBegun { operation, .. } | Attempt::Ended { operation, .. } => *operation,
            Attempt::KeyRequested { .. }
            | Attempt::CsrRequested { .. }
            | Attempt::LscIssued { .. } => Some(OperationKind::InstallUpgrade),
            Attempt::FetchRequested { .. } => Some(OperationKind::Troubleshoot),
            Attempt::DeleteRequested { .. } => Some(OperationKind::Delete),
        }
    }

    fn operation_name(&self) -> Option<&'static str> {
        self.operation().map(OperationKind::as_str)
    }

    /// The state the metrics count this session in.
    fn session_state(&self) -> SessionState {
        match self {
            Attempt::NoDevice => SessionState::Authenticating,
            Attempt::NotBegun { .. } => SessionState::Authenticated,
            Attempt::KeyRequested { .. } => SessionState::KeyGeneration,
            Attempt::CsrRequested { .. } => SessionState::CsrSignature,
            Attempt::LscIssued { .. } => SessionState::StoringCertificate,
            Attempt::FetchRequested { .. } => SessionState::Troubleshoot,
            Attempt::DeleteRequested { .. } => SessionState::Delete,
            Attempt::Ended { .. } => SessionState::Ending,
        }
    }

    /// The store holds this session's attempt in progress (begun, not ended).
    fn in_progress(&self) -> bool {
        matches!(
            self,
            Attempt::KeyRequested { .. }
                | Attempt::CsrRequested { .. }
                | Attempt::LscIssued { .. }
                | Attempt::FetchRequested { .. }
                | Attempt::DeleteRequested { .. }
        )
    }

    /// The attempt is over: the key-generation slot, if any, is released.
    fn end(&mut self) {
        let operation = self.operation();
        *self = match mem::take(self) {
            Attempt::NoDevice => Attempt::NoDevice,
            Attempt::NotBegun { device, .. }
            | Attempt::KeyRequested { device, .. }
            | Attempt::CsrRequested { device, .. }
            | Attempt::LscIssued { device, .. }
            | Attempt::FetchRequested { device }
            | Attempt::DeleteRequested { device }
            | Attempt::Ended { device, .. } => Attempt::Ended { device, operation },
        };
    }
}

/// The application's answer to a [`ServerEvent`], applied to the session with
/// [`Answer::apply`] once the work is done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// [`ServerSession::decide`] with this decision.
    Decide(Decision),
    /// [`ServerSession::deliver_certificate`] with this LSC (DER).
    Certificate(Vec<u8>),
    /// [`ServerSession::issuance_failed`].
    IssuanceFailed,
    /// [`ServerSession::request_csr_signature`] with this CertificationRequestInfo (DER).
    RequestCsrSignature(Vec<u8>),
    /// [`ServerSession::retry_later`] with this RETRY_DELAY in seconds.
    RetryLater(u32),
    /// [`ServerSession::abort`] with END_SESSION 7: the server could not do its part (a store
    /// or issuer failure).
    Abort,
    /// Nothing to tell the session.
    Nothing,
}

impl Answer {
    /// Applies the answer to `session` at `now`.
    ///
    /// # Errors
    /// The session's error when it cannot take the answer, in practice because it closed
    /// meanwhile (the phone spoke out of turn or hung up while the work ran).
    pub fn apply(
        self,
        session: &mut ServerSession,
        now: Instant,
    ) -> Result<(), capf_session::Error> {
        match self {
            Answer::Decide(decision) => session.decide(now, decision),
            Answer::Certificate(der) => session.deliver_certificate(now, &der),
            Answer::IssuanceFailed => session.issuance_failed(),
            Answer::RequestCsrSignature(info) => session.request_csr_signature(now, &info),
            Answer::RetryLater(delay_secs) => session.retry_later(now, delay_secs),
            Answer::Abort => session.abort(Reason::INVALID_ELEMENT),
            Answer::Nothing => Ok(()),
        }
    }
}

/// One session's enrollment policy (spec sections 7 and 8): turns the session's
/// [`ServerEvent`]s into [`Answer`]s over the device store, the issuer and the trust store, and
/// records every state change in the store once (begun, issued, installed only after
/// STORE_CERT_RESPONSE, failed, or interrupted).
///
/// It does no I/O of its own but store calls (on tokio's blocking pool) and the issuer, so it
/// runs under any transport: the driver feeds the session, hands each event to
/// [`handle`](Self::handle) and applies the answer, and calls [`closed`](Self::closed) with the
/// session's last event. Get one per session from [`EnrollmentService::handler`].
#[derive(Debug)]
pub struct EnrollmentHandler {
    service: Arc<EnrollmentService>,
    attempt: Attempt,
    /// The phone's address, as the driver accepted it.
    peer: SocketAddr,
    /// Set once the session has ended while work ran: waits give up, and no attempt begins.
    hung_up: CancellationToken,
    /// This session's claim on its device (see [`EnrollmentService::claim`]).
    serving: Option<String>,
    /// When the wait for the phone's key is over, however many REQUEST_IN_PROGRESS came.
    key_generation_deadline: Option<Instant>,
    /// When the session began (the handler is made after the TLS handshake).
    started: Instant,
    /// When the phone's public key arrived.
    key_at: Option<Instant>,
    /// How the session ended for its device, as the metrics count it.
    outcome: Option<metrics::Outcome>,
    /// The state the metrics count this session in now (`None` once it ended).
    gauge: Option<SessionState>,
    /// The session's end is counted.
    counted: bool,
}

impl Drop for EnrollmentHandler {
    fn drop(&mut self) {
        if let Some(key) = self.serving.take() {
            self.service.release(&key);
        }
        self.service.metrics.session_state(self.gauge.take(), None);
    }
}

impl EnrollmentHandler {
    /// Counted in the metrics' sessions from now on.
    fn tracked(mut self) -> Self {
        self.track();
        self
    }

    /// Moves the session's gauge to the attempt's state (or out, once counted as ended).
    fn track(&mut self) {
        let now = (!self.counted).then(|| self.attempt.session_state());
        self.service.metrics.session_state(self.gauge, now);
        self.gauge = now;
    }

    /// Counts the session's end once: its operation and how it ended.
    fn count_end(&mut self) {
        if self.counted {
            return;
        }
        self.counted = true;
        let outcome = self.outcome.unwrap_or(match self.attempt {
            Attempt::NoDevice => metrics::Outcome::NotAuthenticated,
            _ => metrics::Outcome::Interrupted,
        });
        self.service
            .metrics
            .enrollment(OperationKind::metric(self.attempt.operation()), outcome);
        self.track();
    }

    /// The device this session is about, once AUTH_RESPONSE named a known one.
    pub fn device(&self) -> Option<&DeviceName> {
        self.attempt.device().map(Arc::as_ref)
    }

    /// When the session must end because the phone has taken too long to make its key in all
    /// (the setting `key_generation_total`; the spec's 60 minutes are renewed by each of up to
    /// 16 REQUEST_IN_PROGRESS): the driver aborts the session then. `None` unless the session
    /// waits for the phone's key.
    pub fn deadline(&self) -> Option<Instant> {
        match self.attempt {
            Attempt::KeyRequested { .. } => self.key_generation_deadline,
            _ => None,
        }
    }

    /// Whether the store holds this session's attempt in progress, so that the session's end
    /// records how it ended.
    pub fn attempt_in_progress(&self) -> bool {
        self.attempt.in_progress()
    }

    /// Answers `event` as [`handle`](Self::handle) does while `hang_up` watches the phone
    /// (the driver feeds the session its bytes meanwhile, and completes `hang_up` once the
    /// session has closed). Work in flight is never dropped: once the phone has gone, waits give
    /// up and no attempt begins, but a store call already made finishes, so the
    /// [`closed`](Self::closed) that follows sees every attempt that began and ends it (issue
    /// 12 item 9). `None` when the phone hung up meanwhile (the answer has no session to go to).
    pub async fn handle_until(
        &mut self,
        event: ServerEvent,
        hang_up: impl Future<Output = ()>,
    ) -> Option<Answer> {
        let hung_up = self.hung_up.clone();
        let mut work = std::pin::pin!(self.handle(event));
        let mut hang_up = std::pin::pin!(hang_up);
        loop {
            tokio::select! {
                answer = &mut work => return (!hung_up.is_cancelled()).then_some(answer),
                () = &mut hang_up, if !hung_up.is_cancelled() => hung_up.cancel(),
            }
        }
    }

    /// Answers one event. A store or issuer failure ends the session
    /// ([`Answer::Abort`]), and the attempt, still in progress, ends as interrupted on
    /// [`ServerEvent::Closed`], which this hands to [`closed`](Self::closed).
    pub async fn handle(&mut self, event: ServerEvent) -> Answer {
        let result = match event {
            ServerEvent::Authenticate(auth) => self.authenticate(*auth).await.map(Answer::Decide),
            ServerEvent::PublicKey { spki_der } => self.issue(spki_der).await,
            ServerEvent::KeyGenerationInProgress { count } => {
                debug!(count, "phone generating its key");
                Ok(Answer::Nothing)
            }
            ServerEvent::KeyGenerationFailed { reason } => self.key_generation_failed(reason).await,
            ServerEvent::CsrSigned { signature } => self.csr_signed(signature).await,
            ServerEvent::CsrSigningFailed { reason } => {
                self.end(AttemptEnd::Failed {
                    reason: format!(
                        "the phone could not sign the endpoint CSR an external CA needs (SIGN_CERT_RESPONSE REASON {})",
                        reason.0
                    ),
                })
                .await
            }
            ServerEvent::CertificateStored => self.installed().await,
            ServerEvent::StoreFailed { reason } => {
                self.end(AttemptEnd::Failed {
                    reason: format!("the phone could not store the LSC (REASON {})", reason.0),
                })
                .await
            }
            ServerEvent::Fetched {
                reason,
                certificate,
            } => self.fetched(reason, certificate).await,
            ServerEvent::Deleted { reason } => self.deleted(reason).await,
            ServerEvent::Closed { outcome } => {
                self.closed(&outcome).await;
                Ok(Answer::Nothing)
            }
            other => {
                debug!(event = ?other, "event");
                Ok(Answer::Nothing)
            }
        };
        let answer = result.unwrap_or_else(|e| {
            warn!(error = %e, device = self.attempt.device_name(), "ending the session");
            self.outcome.get_or_insert(metrics::Outcome::Error);
            Answer::Abort
        });
        self.track();
        answer
    }

    /// The session is over: an attempt still in progress ends as interrupted (its operation
    /// stays scheduled for the phone's next attempt; the store changes only a device still in
    /// progress, so a success is never clobbered).
    pub async fn closed(&mut self, outcome: &Outcome) {
        if let Attempt::CsrRequested { .. } = self.attempt {
            // A phone without endpoint-CSR support: the operation fails with a reason an
            // administrator reads (spec 16), not an interruption retried for ever.
            let end = AttemptEnd::Failed {
                reason: csr_failure_reason(outcome),
            };
            if let Err(e) = self.end(end.clone()).await {
                self.end_later(&e, end);
            }
        }
        if self.attempt.in_progress() {
            let reason = match outcome {
                Outcome::Ended { reason } => format!("session ended with END_SESSION {}", reason.0),
                Outcome::PeerClosed { state } => {
                    format!("the phone closed the connection ({})", state.as_str())
                }
                Outcome::TimedOut { state, .. } => {
                    format!("timed out waiting in {}", state.as_str())
                }
                other => format!("{other:?}"),
            };
            let end = AttemptEnd::Interrupted { reason };
            if let Err(e) = self.end(end.clone()).await {
                self.end_later(&e, end);
            }
        }
        // Whatever the store said, the key-generation slot and the device are free now.
        self.attempt.end();
        if let Some(key) = self.serving.take() {
            self.service.release(&key);
        }
        self.count_end();
        info!(
            device = self.attempt.device_name(),
            operation = self.attempt.operation_name(),
            outcome = ?outcome,
            "session closed"
        );
    }

    /// The end of the attempt could not be recorded (`e`): when the store was unreachable,
    /// the service records it once the store is back.
    fn end_later(&self, e: &Error, end: AttemptEnd) {
        warn!(error = %e, "recording the end of the attempt");
        let (Error::Store { source, .. }, Some(device)) = (e, self.attempt.device()) else {
            return;
        };
        if source.is_unreachable() {
            self.service
                .unended
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((DeviceName::clone(device), end, SystemTime::now()));
        }
    }

    /// Spec section 7 steps 4-6: device lookup, authentication, dispatch.
    async fn authenticate(&mut self, auth: Authentication) -> Result<Decision, Error> {
        let now = SystemTime::now();
        // The session validated the name once (an invalid one got END_SESSION 9 there); the
        // attempt holds it for every store call of the session.
        let device = Arc::new(auth.device_name.clone());
        // One hand-off to the blocking pool for both reads (issue 19): the device, and for an
        // install its open request with an external CA (read before authentication, used only
        // after it).
        let (record, open) = self
            .service
            .device_call(&device, "device lookup", |s, name, _| {
                let Some(record) = s.device(name)? else {
                    return Ok((None, None));
                };
                let open = if record.has_operation_to_run()
                    && matches!(record.operation, Operation::InstallUpgrade(_))
                {
                    s.open_ca_request(&record.name)?
                } else {
                    None
                };
                Ok((Some(record), open))
            })
            .await?;
        let Some(record) = record else {
            info!(device = %device, outcome = "unknown device", "END_SESSION 9");
            self.outcome = Some(metrics::Outcome::UnknownDevice);
            return Ok(Decision::UnknownDevice);
        };
        // The lookup ignores case: from here on, the device is named as registered, so the
        // LSC's CN and every store call spell it as the administrator did, not as the phone.
        let device = Arc::new(record.name.clone());
        if self.serving.is_none() {
            let Some(key) = self.service.claim(&device) else {
                // Changes nothing but the audit: the session serving the device goes on.
                info!(device = %device, outcome = "device already being served", "END_SESSION 7");
                self.outcome = Some(metrics::Outcome::Refused);
                self.service
                    .device_call(&device, "record refused session", |s, name, now| {
                        s.record_refused_session(name, "device already being served", now)
                    })
                    .await?;
                return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
            };
            self.serving = Some(key);
        }
        if !record.has_operation_to_run() {
            // Nothing to protect: the one-time authentication string is cleared once an
            // operation succeeds, so a phone checking in afterwards is told there is nothing
            // to do.
            info!(device = %device, outcome = "no pending operation", "END_SESSION 0");
            self.outcome = Some(metrics::Outcome::NoOperation);
            self.attempt = Attempt::NotBegun {
                device,
                operation: None,
            };
            return Ok(Decision::NoPendingOperation);
        }
        self.attempt = Attempt::NotBegun {
            device,
            operation: OperationKind::of(&record.operation),
        };
        if !self.authenticated(&record, &auth, now).await? {
            self.outcome = Some(metrics::Outcome::AuthenticationFailed);
            return Ok(Decision::AuthenticationFailed);
        }
        // Only after authentication: a session that never authenticated changes no status
        // (issue 12 item 4), not even to Expired.
        if record.is_past_complete_by(now) {
            let Some(device) = self.attempt.device() else {
                return Ok(Decision::UnknownDevice);
            };
            self.service
                .device_call(device, "mark expired", move |s, name, _| {
                    s.mark_expired(name, now)
                })
                .await?;
            info!(device = %device, outcome = "complete-by date passed", "END_SESSION 7");
            self.outcome = Some(metrics::Outcome::Refused);
            return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
        }
        let decision = match &record.operation {
            Operation::InstallUpgrade(policy) => {
                let settings = self.service.settings();
                // Requests with an external CA keep the mode that took them (the guide): the
                // lookup read the device's open one whatever the mode is now.
                let issued = match open {
                    Some(request) if request.state == CaRequestState::Pending => {
                        // Spec 16.y: the CA has not answered; nothing begins.
                        let delay_secs = settings.ca_retry_delay_secs();
                        info!(
                            device = self.attempt.device_name(),
                            request = request.id,
                            mode = %request.mode,
                            delay_secs,
                            "request pending with the CA: RETRY_LATER"
                        );
                        self.outcome = Some(metrics::Outcome::RetryLater);
                        return Ok(Decision::RetryLater { delay_secs });
                    }
                    Some(request) => Some(Box::new(request)),
                    None => None,
                };
                // Delivery (spec 16.z): ask for the key the certificate certifies, which the
                // phone still holds if it kept its pending key.
                let issued_spec = issued
                    .as_ref()
                    .and_then(|r| PhonePublicKey::from_der(&r.public_key).ok())
                    .map(|k| k.spec());
                let Some(spec) = issued_spec.or_else(|| {
                    policy.key_to_request(record.ec_key_generation_failed, auth.can_request_ec())
                }) else {
                    self.fail_before_beginning(format!(
                        "key order EC only, but the client (VERSION {}) cannot be asked for EC",
                        auth.version
                    ))
                    .await?;
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                };
                if settings.certificate_issuer == CertificateIssuer::OnlineCa
                    && issued_spec.is_none()
                    && let Err(e) = OnlineCaPolicy.check_key(spec)
                {
                    // The guide: a phone is never asked for a key no one can sign.
                    self.fail_before_beginning(e.to_string()).await?;
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                }
                let acquire = self.service.key_generation.acquire(
                    settings.max_key_generation_sessions,
                    settings.key_generation_queue,
                );
                // Every wait in the queue has a deadline (issue 12 item 1).
                let acquire = tokio::time::timeout(settings.key_generation_queue_wait, acquire);
                let permit = tokio::select! {
                    permit = acquire => permit.ok().flatten(),
                    () = self.hung_up.cancelled() => {
                        debug!(device = self.attempt.device_name(), "hung up in the key-generation queue");
                        self.outcome = Some(metrics::Outcome::Refused);
                        return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                    }
                };
                let Some(permit) = permit else {
                    // No "retry later" message exists (spec section 3): END_SESSION 7, and the
                    // operation stays pending for the phone's next attempt.
                    info!(
                        device = self.attempt.device_name(),
                        outcome = "key-generation queue full or its wait over",
                        "END_SESSION 7"
                    );
                    self.service.metrics.key_generation_refused();
                    self.outcome = Some(metrics::Outcome::Refused);
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                };
                let mode = settings.certificate_issuer;
                if !self
                    .begin(|device| Attempt::KeyRequested {
                        device,
                        requested: spec,
                        permit,
                        mode,
                        issued,
                    })
                    .await?
                {
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                }
                self.key_generation_deadline =
                    Instant::now().checked_add(settings.key_generation_total);
                Decision::Install(spec.into())
            }
            Operation::Delete => {
                if !self
                    .begin(|device| Attempt::DeleteRequested { device })
                    .await?
                {
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                }
                Decision::Delete
            }
            Operation::Troubleshoot => {
                if !self
                    .begin(|device| Attempt::FetchRequested { device })
                    .await?
                {
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                }
                Decision::Fetch
            }
            _ => {
                self.outcome = Some(metrics::Outcome::NoOperation);
                Decision::NoPendingOperation
            }
        };
        info!(
            device = self.attempt.device_name(),
            operation = self.attempt.operation_name(),
            decision = ?decision,
            "authenticated"
        );
        Ok(decision)
    }

    /// The authentication of spec section 7 step 5 for the device's mode, with throttling of
    /// failed authentication strings.
    async fn authenticated(
        &mut self,
        record: &Device,
        auth: &Authentication,
        now: SystemTime,
    ) -> Result<bool, Error> {
        let Some(device) = self.attempt.device() else {
            return Ok(false);
        };
        match record.auth_mode {
            AuthMode::NullString => Ok(true),
            AuthMode::AuthenticationString => {
                // Throttled and wrong guesses get the same reply after the same work (the
                // HMAC check and the failure's store write, with its audit entry), so neither
                // content nor timing tells them apart; see `auth_throttle` for the scheme.
                let settings = self.service.settings();
                let source = self.peer.ip();
                let throttle = &self.service.auth_throttle;
                let throttled = throttle.is_throttled(device, source, &settings, Instant::now());
                let candidate = auth.password().unwrap_or_default().to_owned();
                let empty = candidate.is_empty();
                let matches = self
                    .service
                    .device_call(device, "authentication string", move |s, name, _| {
                        s.check_auth_string(name, &candidate)
                    })
                    .await?;
                let ok = matches && !empty && !throttled;
                if ok {
                    throttle.record_success(device, source);
                } else {
                    throttle.record_failure(device, source, &settings, Instant::now());
                    self.service
                        .device_call(device, "record failed authentication", move |s, name, _| {
                            s.record_auth_failure(name, now)
                        })
                        .await?;
                    self.service
                        .metrics
                        .authentication_failed(AuthKind::AuthenticationString, throttled);
                    let outcome = if throttled {
                        "throttled"
                    } else {
                        "authentication failed"
                    };
                    info!(device = %device, %source, outcome, "END_SESSION 7");
                }
                Ok(ok)
            }
            AuthMode::ExistingCertificateLscFirst | AuthMode::ExistingCertificateMicFirst => {
                let precedence = if record.auth_mode == AuthMode::ExistingCertificateLscFirst {
                    Precedence::LscFirst
                } else {
                    Precedence::MicFirst
                };
                let trust = self.service.trust();
                let sudi_policy = self.service.settings().sudi_policy;
                // Chain and signatures: milliseconds of CPU, off the I/O threads.
                let auth = auth.clone();
                let verdict = tokio::task::spawn_blocking(move || {
                    let proof = DeviceProof::from_auth_response(auth.session_id, auth.response());
                    authenticate_device_with(&trust, &proof, precedence, sudi_policy, now)
                })
                .await
                .map_err(|source| Error::Task {
                    context: "certificate authentication",
                    source,
                })?;
                match verdict {
                    Ok(by) => {
                        if by.digest_info_used {
                            // Spec 6.3 project rule: accepted for interoperability, logged.
                            warn!(device = %device, "signature in the DigestInfo form, not the bare digest");
                        }
                        if let Some(subject) = &by.sudi_ignored {
                            info!(device = %device, sudi = %subject, %sudi_policy, "SUDI data ignored: its issuer is not in CAPF-trust-SUDI");
                        }
                        if by.kind == CertificateKind::Lsc
                            && let Some(refused) = self.lsc_refused(device, by.serial).await?
                        {
                            let reason =
                                format!("authentication by existing certificate failed: {refused}");
                            info!(device = %device, %reason, "END_SESSION 7");
                            self.service
                                .metrics
                                .authentication_failed(AuthKind::ExistingCertificate, false);
                            // Not authenticated: audited only, no status changes (item 4).
                            self.refused(reason).await?;
                            return Ok(false);
                        }
                        info!(
                            device = %device,
                            certificate = %by.kind,
                            subject = %by.subject,
                            preferred = by.preferred,
                            sudi = ?by.sudi,
                            "authenticated by existing certificate"
                        );
                        Ok(true)
                    }
                    Err(failure) => {
                        let reason =
                            format!("authentication by existing certificate failed: {failure}");
                        info!(device = %device, %reason, "END_SESSION 7");
                        self.service
                            .metrics
                            .authentication_failed(AuthKind::ExistingCertificate, false);
                        // A session that never authenticated changes no status: audited only
                        // (issue 12 item 4).
                        self.refused(reason).await?;
                        Ok(false)
                    }
                }
            }
            _ => {
                info!(device = %device, outcome = "authentication mode not supported", "END_SESSION 7");
                self.service
                    .metrics
                    .authentication_failed(AuthKind::Other, false);
                Ok(false)
            }
        }
    }

    /// Why the store refuses an LSC that chained to CAPF-trust, or `None` when it holds it as
    /// the device's installed, current LSC (issue 12 item 5: a superseded or revoked LSC no
    /// longer proves anything).
    async fn lsc_refused(
        &self,
        device: &Arc<DeviceName>,
        serial: Vec<u8>,
    ) -> Result<Option<String>, Error> {
        let hex = capf_lsc::hex(&serial);
        let state = self
            .service
            .device_call(device, "LSC state", move |s, name, _| {
                s.lsc_state(name, &serial)
            })
            .await?;
        Ok(match state {
            Some(LscState::Installed) => None,
            Some(LscState::Revoked) => Some(format!("LSC revoked (serial {hex})")),
            Some(LscState::Superseded) => Some(format!("LSC superseded (serial {hex})")),
            Some(other) => Some(format!("LSC {other}, not installed (serial {hex})")),
            None => Some(format!(
                "LSC not issued to this device by this CAPF's store (serial {hex})"
            )),
        })
    }

    /// Begins the attempt in the store; `next` is the state it is in then. `false` when another
    /// node of a cluster runs an attempt for the device: the session is refused (END_SESSION 7,
    /// as for a device another session of this node serves) and the device stays as it was.
    async fn begin(
        &mut self,
        next: impl FnOnce(Arc<DeviceName>) -> Attempt,
    ) -> Result<bool, Error> {
        let Some(device) = self.attempt.device() else {
            return Ok(true);
        };
        if self.hung_up.is_cancelled() {
            // The phone has gone: an attempt begun now would have no session to end it.
            debug!(device = %device, "hung up before the attempt began");
            return Ok(true);
        }
        let begun = self
            .service
            .device_call(device, "begin attempt", |s, name, now| {
                s.begin_attempt(name, now)
            })
            .await;
        if let Err(e) = begun {
            self.served_elsewhere(e).await?;
            return Ok(false);
        }
        if let Attempt::NotBegun { device, .. } = mem::take(&mut self.attempt) {
            self.attempt = next(device);
        }
        Ok(true)
    }

    /// `Ok` when `e` says another node of the cluster holds the device's attempt (recorded as
    /// a refused session, which changes nothing but the audit: the phone comes back later, as
    /// the session on that node goes on); any other error as itself.
    async fn served_elsewhere(&mut self, e: Error) -> Result<(), Error> {
        let Error::Store {
            source: capf_store::Error::AttemptOnAnotherNode { node, .. },
            ..
        } = &e
        else {
            return Err(e);
        };
        let Some(device) = self.attempt.device() else {
            return Err(e);
        };
        let reason = format!("device being served by node {node}");
        info!(device = %device, %node, outcome = "device being served by another node", "END_SESSION 7");
        self.outcome = Some(metrics::Outcome::Refused);
        self.service
            .device_call(device, "record refused session", move |s, name, now| {
                s.record_refused_session(name, &reason, now)
            })
            .await?;
        Ok(())
    }

    /// Audits a session refused before it authenticated; the device does not change.
    async fn refused(&self, reason: String) -> Result<(), Error> {
        let Some(device) = self.attempt.device() else {
            return Ok(());
        };
        self.service
            .device_call(device, "record refused session", move |s, name, now| {
                s.record_refused_session(name, &reason, now)
            })
            .await
    }

    /// Fails the operation before its attempt began (the attempt is begun and failed in one
    /// store call, so its status carries `reason`).
    async fn fail_before_beginning(&mut self, reason: String) -> Result<(), Error> {
        let Some(device) = self.attempt.device() else {
            return Ok(());
        };
        let failed = self
            .service
            .device_call(device, "fail the attempt", move |s, name, now| {
                s.begin_attempt(name, now)?;
                s.end_attempt(name, AttemptEnd::Failed { reason }, now)
            })
            .await;
        if let Err(e) = failed {
            // Another node's attempt goes on: this one changes nothing.
            return self.served_elsewhere(e).await;
        }
        self.outcome = Some(metrics::Outcome::Failed);
        self.attempt.end();
        Ok(())
    }

    /// Records the end of the attempt.
    async fn end(&mut self, end: AttemptEnd) -> Result<Answer, Error> {
        let Some(device) = self.attempt.device() else {
            return Ok(Answer::Nothing);
        };
        info!(device = %device, operation = self.attempt.operation_name(), outcome = ?end, "attempt ended");
        self.outcome = Some(match &end {
            AttemptEnd::Failed { .. } => metrics::Outcome::Failed,
            _ => metrics::Outcome::Interrupted,
        });
        self.service
            .device_call(device, "end attempt", move |s, name, now| {
                s.end_attempt(name, end, now)
            })
            .await?;
        self.attempt.end();
        Ok(Answer::Nothing)
    }

    /// KEY_GEN_RESPONSE with a key: it must be the key asked for; then the issuer signs.
    async fn issue(&mut self, spki_der: Vec<u8>) -> Result<Answer, Error> {
        let Attempt::KeyRequested {
            device,
            requested,
            mode,
            issued,
            ..
        } = &self.attempt
        else {
            // The session asks for a key only after an Install decision.
            debug!("a public key outside an install attempt");
            return Ok(Answer::IssuanceFailed);
        };
        let mode = *mode;
        self.key_at = Some(Instant::now());
        let key = match PhonePublicKey::from_der(&spki_der) {
            Ok(key) => key,
            Err(e) => {
                self.end(AttemptEnd::Failed {
                    reason: format!("the phone's public key is not acceptable: {e}"),
                })
                .await?;
                return Ok(Answer::IssuanceFailed);
            }
        };
        if let Err(e) = key.check_matches(*requested) {
            self.end(AttemptEnd::Failed {
                reason: format!("the phone sent another key than asked for: {e}"),
            })
            .await?;
            return Ok(Answer::IssuanceFailed);
        }
        if self.hung_up.is_cancelled() {
            // No LSC for a phone that has gone; the session's end interrupts the attempt.
            return Ok(Answer::IssuanceFailed);
        }
        if let Some(request) = issued
            && request.public_key == spki_der
        {
            // Spec 16.z: the phone still holds the key the CA certified: deliver, no signing.
            return self
                .deliver_issued(request.id, request.lsc_serial.clone())
                .await;
        }
        if mode.is_external() {
            // Spec 16.x: the phone signs the endpoint CSR (an older Issued request becomes
            // stale when the new one is recorded).
            let info = match capf_lsc::endpoint_csr_info(device, &key) {
                Ok(info) => info,
                Err(e) => {
                    self.end(AttemptEnd::Failed {
                        reason: format!("the endpoint CSR cannot be built: {e}"),
                    })
                    .await?;
                    return Ok(Answer::IssuanceFailed);
                }
            };
            if let Attempt::KeyRequested { device, permit, .. } = mem::take(&mut self.attempt) {
                self.attempt = Attempt::CsrRequested {
                    device,
                    key: Box::new(key),
                    spki_der,
                    info: info.clone(),
                    mode,
                    permit,
                };
            }
            return Ok(Answer::RequestCsrSignature(info));
        }
        let request = IssueRequest {
            device: DeviceName::clone(device),
            public_key: key,
            validity: self.service.settings().lsc_validity_days,
            endpoint_csr: None,
            reenroll: false,
        };
        if let Some(signer) = self.service.ca.blocking_signer() {
            // The LSC is recorded, synced, before the phone receives it.
            let (signed, took) = if self.service.store_thread.is_some() {
                // Signed here, not on the store thread, where every phone's signature would
                // wait for the others': it costs this thread what the TLS handshake's own
                // signature does (issue 19).
                let started = Instant::now();
                let signed = signer.sign(&request, SystemTime::now());
                let took = started.elapsed();
                let signed = match signed {
                    Ok(lsc) => Ok(self
                        .service
                        .device_call(device, "record issued LSC", move |s, name, now| {
                            s.record_lsc_issued(name, &lsc, now).map(|_| lsc)
                        })
                        .await?),
                    Err(e) => Err(e),
                };
                (signed, took)
            } else {
                // Signed and recorded in one hand-off to the blocking pool, not two (issue 19:
                // an RSA-2048 signature is about 0.3 ms, less than the hand-offs it would take
                // on its own).
                self.service
                    .device_call(device, "sign and record LSC", move |s, name, now| {
                        let started = Instant::now();
                        let signed = signer.sign(&request, now);
                        let took = started.elapsed();
                        if let Ok(lsc) = &signed {
                            s.record_lsc_issued(name, lsc, now)?;
                        }
                        Ok((signed, took))
                    })
                    .await?
            };
            let outcome = match &signed {
                Ok(_) => CaOutcome::Issued,
                Err(e) => crate::online::ca_error_outcome(e),
            };
            self.service.metrics.ca_call(CaMode::Capf, outcome, took);
            let lsc = signed?;
            info!(device = %device, serial = %capf_lsc::hex(&lsc.serial), ca = self.service.ca.mode(), "LSC issued");
            self.attempt_issued(lsc.serial);
            return Ok(Answer::Certificate(lsc.der));
        }
        let started = Instant::now();
        let answer = self.service.ca.issue(request, SystemTime::now()).await;
        self.service.count_ca_call(
            CaMode::Capf,
            started,
            &answer,
            crate::online::ca_error_outcome,
        );
        match answer? {
            IssueOutcome::Issued(lsc) => {
                let record = lsc.clone();
                self.service
                    .device_call(device, "record issued LSC", move |s, name, now| {
                        s.record_lsc_issued(name, &record, now)
                    })
                    .await?;
                info!(device = %device, serial = %capf_lsc::hex(&lsc.serial), ca = self.service.ca.mode(), "LSC issued");
                self.attempt_issued(lsc.serial);
                Ok(Answer::Certificate(lsc.der))
            }
            IssueOutcome::Pending { request_id, .. } => {
                self.end(AttemptEnd::Interrupted {
                    reason: format!(
                        "the CA holds the request as pending ({})",
                        request_id.as_deref().unwrap_or("no CA request id")
                    ),
                })
                .await?;
                Ok(Answer::IssuanceFailed)
            }
            other => {
                self.end(AttemptEnd::Failed {
                    reason: format!("unexpected answer from the CA: {other:?}"),
                })
                .await?;
                Ok(Answer::IssuanceFailed)
            }
        }
    }

    /// The attempt's LSC with `serial` is issued and recorded; STORE_CERT_REQUEST goes out.
    fn attempt_issued(&mut self, serial: Vec<u8>) {
        self.service
            .metrics
            .certificate_ready(self.started.elapsed(), self.key_at.map(|at| at.elapsed()));
        if let Attempt::KeyRequested { device, permit, .. }
        | Attempt::CsrRequested { device, permit, .. } = mem::take(&mut self.attempt)
        {
            self.attempt = Attempt::LscIssued {
                device,
                serial,
                permit,
            };
        }
    }

    /// Spec 16.z: delivers the certificate the CA issued for request `id` (its LSC, recorded as
    /// Issued when it arrived); STORE_CERT_RESPONSE confirms it, and the request becomes
    /// Delivered with it.
    async fn deliver_issued(&mut self, id: i64, serial: Option<Vec<u8>>) -> Result<Answer, Error> {
        let Some(device) = self.attempt.device().cloned() else {
            return Ok(Answer::IssuanceFailed);
        };
        let lsc = match serial {
            Some(serial) => {
                self.service
                    .device_call(&device, "issued LSC", move |s, name, _| {
                        s.issued_lsc(name, &serial)
                    })
                    .await?
            }
            None => None,
        };
        let Some(lsc) = lsc else {
            self.end(AttemptEnd::Failed {
                reason: format!(
                    "the certificate of CA request {id} is no longer held as issued for this device"
                ),
            })
            .await?;
            return Ok(Answer::IssuanceFailed);
        };
        info!(device = %device, request = id, serial = %capf_lsc::hex(&lsc.serial), "delivering the certificate the CA issued");
        self.attempt_issued(lsc.serial);
        Ok(Answer::Certificate(lsc.der))
    }

    /// SIGN_CERT_RESPONSE with the phone's signature (spec 16.x): assemble and verify the
    /// endpoint CSR, record the request, and ask the external CA.
    async fn csr_signed(&mut self, signature: Vec<u8>) -> Result<Answer, Error> {
        let Attempt::CsrRequested {
            device,
            key,
            spki_der,
            info,
            mode,
            ..
        } = &self.attempt
        else {
            debug!("a CSR signature outside a CSR request");
            return Ok(Answer::IssuanceFailed);
        };
        let (device, mode) = (Arc::clone(device), *mode);
        let csr = match EndpointCsr::assemble(info, &signature, key) {
            Ok(csr) => csr,
            Err(e) => {
                self.end(AttemptEnd::Failed {
                    reason: format!("the phone's endpoint CSR is refused: {e}"),
                })
                .await?;
                return Ok(Answer::IssuanceFailed);
            }
        };
        let public_key = spki_der.clone();
        let key = PhonePublicKey::clone(key);
        if self.hung_up.is_cancelled() {
            return Ok(Answer::IssuanceFailed);
        }
        let record = (csr.der().to_vec(), public_key);
        let request = self
            .service
            .device_call(&device, "record CA request", move |s, name, now| {
                s.record_ca_request(
                    name,
                    &NewCaRequest {
                        mode,
                        csr: &record.0,
                        public_key: &record.1,
                        ca_request_id: None,
                    },
                    now,
                )
            })
            .await?;
        let id = request.id;
        if mode == CertificateIssuer::OnlineCa {
            // This session asks the CA about its new request; the poller waits until the
            // session has its answer (or `online_pending` schedules the next poll).
            self.service
                .hold_poll(id, self.service.ca_call_deadline.saturating_mul(2));
            // The settings as the administrator left them, not as of the last refresh.
            self.service.refresh_online_ca().await;
        }
        let Some(ca) = self.service.external_ca(mode) else {
            let reason = format!(
                "the certificate issuer is {} but no such CA is configured",
                mode.label()
            );
            self.ca_request_failed(id, reason.clone()).await?;
            self.end(AttemptEnd::Failed { reason }).await?;
            return Ok(Answer::IssuanceFailed);
        };
        let settings = self.service.settings();
        let reenroll = mode == CertificateIssuer::OnlineCa
            && self
                .service
                .device_call(&device, "installed LSC's issuer", |s, name, _| {
                    s.installed_lsc_mode(name)
                })
                .await?
                == Some(CertificateIssuer::OnlineCa);
        let issue = IssueRequest {
            device: DeviceName::clone(&device),
            public_key: key,
            validity: settings.lsc_validity_days,
            endpoint_csr: Some(csr),
            reenroll,
        };
        let label = self.service.ca_mode_label(mode);
        let started = Instant::now();
        let answer = if mode == CertificateIssuer::OnlineCa {
            // A slow CA never holds the session: past the deadline the request stays
            // pending and the poller asks again.
            match tokio::time::timeout(
                self.service.ca_call_deadline,
                ca.issue(issue, SystemTime::now()),
            )
            .await
            {
                Ok(answer) => {
                    self.service.count_ca_call(
                        label,
                        started,
                        &answer,
                        crate::online::ca_error_outcome,
                    );
                    self.service.online_ca_answered(answer.as_ref().map(|_| ()));
                    answer
                }
                Err(_) => {
                    info!(device = %device, request = id, "the online CA did not answer in the session's time: RETRY_LATER");
                    self.service
                        .metrics
                        .ca_call(label, CaOutcome::Timeout, started.elapsed());
                    self.service.online_ca_timed_out();
                    Ok(IssueOutcome::Pending {
                        request_id: None,
                        retry_after: Some(std::time::Duration::ZERO),
                    })
                }
            }
        } else {
            let answer = ca.issue(issue, SystemTime::now()).await;
            self.service
                .count_ca_call(label, started, &answer, crate::online::ca_error_outcome);
            answer
        };
        match answer {
            Ok(IssueOutcome::Certificate { der, chain }) => {
                let public_key = spki_der_of(&self.attempt);
                match self
                    .service
                    .accept_external(id, &device, der, chain, public_key)
                    .await?
                {
                    Ok(lsc) => {
                        info!(device = %device, request = id, serial = %capf_lsc::hex(&lsc.serial), ca = ca.mode(), "LSC issued by the CA");
                        self.attempt_issued(lsc.serial);
                        Ok(Answer::Certificate(lsc.der))
                    }
                    Err(reason) => {
                        self.end(AttemptEnd::Failed { reason }).await?;
                        Ok(Answer::IssuanceFailed)
                    }
                }
            }
            Ok(IssueOutcome::Pending {
                request_id,
                retry_after,
            }) => {
                if mode == CertificateIssuer::OnlineCa {
                    self.service
                        .online_pending(id, request_id, retry_after)
                        .await?;
                }
                let delay_secs = settings.ca_retry_delay_secs();
                info!(device = %device, request = id, mode = %mode, delay_secs, "endpoint CSR recorded, pending with the CA: RETRY_LATER");
                // The operation stays scheduled: the phone comes back for its certificate.
                self.end(AttemptEnd::Interrupted {
                    reason: format!(
                        "the endpoint CSR is pending with the {} (request {id}); the phone was told to come back in {delay_secs} s",
                        mode.label()
                    ),
                })
                .await?;
                self.outcome = Some(metrics::Outcome::RetryLater);
                Ok(Answer::RetryLater(delay_secs))
            }
            Ok(IssueOutcome::Issued(lsc)) => {
                let record = lsc.clone();
                self.service
                    .store_call("record CA certificate", move |s| {
                        s.ca_request_issued(id, &record, SystemTime::now())
                    })
                    .await?;
                info!(device = %device, request = id, serial = %capf_lsc::hex(&lsc.serial), ca = ca.mode(), "LSC issued by the CA");
                self.attempt_issued(lsc.serial);
                Ok(Answer::Certificate(lsc.der))
            }
            Ok(other) => {
                let reason = format!("unexpected answer from the {}: {other:?}", ca.mode());
                self.ca_request_failed(id, reason.clone()).await?;
                self.end(AttemptEnd::Failed { reason })
                    .await
                    .map(|_| Answer::IssuanceFailed)
            }
            Err(e) => {
                let reason = format!("the {} refused the request: {e}", ca.mode());
                self.ca_request_failed(id, reason.clone()).await?;
                self.end(AttemptEnd::Failed { reason }).await?;
                Ok(Answer::IssuanceFailed)
            }
        }
    }

    /// Records that CA request `id` failed. A request already ended (deleted by an
    /// administrator meanwhile) stays as it is: the attempt still ends with the reason.
    async fn ca_request_failed(&self, id: i64, reason: String) -> Result<(), Error> {
        match self
            .service
            .store_call("CA request failed", move |s| {
                s.ca_request_failed(id, &reason, SystemTime::now())
            })
            .await
        {
            Err(Error::Store { source, .. }) if source.is_ca_request_refusal() => {
                debug!(request = id, error = %source, "CA request already ended");
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn key_generation_failed(&mut self, reason: Option<Reason>) -> Result<Answer, Error> {
        if let Attempt::KeyRequested {
            device, requested, ..
        } = &self.attempt
            && requested.is_ec()
        {
            // Key order "EC preferred, RSA backup": the next attempt asks for RSA.
            self.service
                .device_call(device, "record EC failure", |s, name, now| {
                    s.record_ec_key_generation_failure(name, now)
                })
                .await?;
        }
        self.end(AttemptEnd::Failed {
            reason: format!(
                "the phone could not generate its key (REASON {})",
                reason.map_or_else(|| "absent".to_owned(), |r| r.0.to_string())
            ),
        })
        .await
    }

    async fn installed(&mut self) -> Result<Answer, Error> {
        let Attempt::LscIssued { device, serial, .. } = &self.attempt else {
            return Ok(Answer::Nothing);
        };
        let serial = serial.clone();
        self.service
            .device_call(device, "confirm installed LSC", move |s, name, now| {
                s.confirm_lsc_installed(name, &serial, now)
            })
            .await?;
        info!(device = %device, outcome = "LSC installed", "operation succeeded");
        self.outcome = Some(metrics::Outcome::Succeeded);
        self.attempt.end();
        Ok(Answer::Nothing)
    }

    async fn fetched(
        &mut self,
        reason: Reason,
        certificate: Option<capf_session::Certificate>,
    ) -> Result<Answer, Error> {
        let Attempt::FetchRequested { device } = &self.attempt else {
            return Ok(Answer::Nothing);
        };
        let kind = certificate.as_ref().map(|c| {
            if c.certificate_type == CertificateType::MIC {
                "MIC"
            } else {
                "LSC"
            }
        });
        self.service
            .device_call(device, "record troubleshoot", move |s, name, now| {
                s.record_fetch_done(
                    name,
                    certificate.map(|c| (c.certificate_type.0, c.der)),
                    now,
                )
            })
            .await?;
        info!(device = %device, reason = reason.0, certificate = ?kind, "troubleshoot done");
        self.outcome = Some(metrics::Outcome::Succeeded);
        self.attempt.end();
        Ok(Answer::Nothing)
    }

    async fn deleted(&mut self, reason: Reason) -> Result<Answer, Error> {
        let Attempt::DeleteRequested { device } = &self.attempt else {
            return Ok(Answer::Nothing);
        };
        if reason != Reason::UPDATE_CERTIFICATE {
            return self
                .end(AttemptEnd::Failed {
                    reason: format!("the phone deleted nothing (REASON {})", reason.0),
                })
                .await;
        }
        self.service
            .device_call(device, "record delete", |s, name, now| {
                s.record_delete_done(name, now)
            })
            .await?;
        info!(device = %device, outcome = "LSC deleted", "operation succeeded");
        self.outcome = Some(metrics::Outcome::Succeeded);
        self.attempt.end();
        Ok(Answer::Nothing)
    }
}

/// The phone's key (SubjectPublicKeyInfo, DER) of an attempt waiting for its CSR.
fn spki_der_of(attempt: &Attempt) -> Vec<u8> {
    match attempt {
        Attempt::CsrRequested { spki_der, .. } => spki_der.clone(),
        _ => Vec::new(),
    }
}

/// Why an attempt waiting for the phone's SIGN_CERT_RESPONSE failed, in words an administrator
/// reads (spec 16: a phone without endpoint-CSR support).
fn csr_failure_reason(outcome: &Outcome) -> String {
    const WHAT: &str = "the phone does not support the endpoint CSR an external CA needs";
    if let Some(command) = outcome.unexpected_in(State::WaitCsrSignature) {
        let name = command
            .name()
            .map_or_else(|| format!("command {}", command.0), str::to_owned);
        return format!("{WHAT}: it answered SIGN_CERT_REQUEST with {name}");
    }
    match outcome {
        Outcome::PeerClosed { .. } => {
            format!("{WHAT}: it closed the connection when asked to sign it (SIGN_CERT_REQUEST)")
        }
        Outcome::TimedOut { .. } => {
            format!("{WHAT}: it did not answer SIGN_CERT_REQUEST in time")
        }
        other => format!("{WHAT}: the session ended while it was asked to sign it ({other})"),
    }
}
