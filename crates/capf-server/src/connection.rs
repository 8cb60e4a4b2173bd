//! One phone connection: TLS, then the sans-io session driven with the store and the issuer.
//! The read-feed-write-timer loop lives here once (ARCHITECTURE.md: drivers are thin).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use capf_ca::{IssueOutcome, IssueRequest};
use capf_ipmode::{PeerAdmission, admit_peer};
use capf_lsc::{DeviceName, KeySpec, PhonePublicKey};
use capf_session::{Authentication, Decision, Outcome, ServerEvent, ServerSession, State};
use capf_store::{AttemptEnd, AuthMode, Device, DeviceStore, Operation};
use capf_trust::{DeviceProof, Precedence, authenticate_device};
use capf_wire::{CertificateType, Reason};
use tokio::net::TcpStream;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::limits::KeyGenPermit;
use crate::tls::TlsConnection;
use crate::{Error, Shared};

/// Serves one accepted TCP connection to its end.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    if admit_peer(shared.config.enable_ipv6, peer.ip()) == PeerAdmission::RefusedIpv6Disabled {
        // The guide: with Enable IPv6 false, CAPF refuses phones that use IPv6.
        info!(%peer, "refused: IPv6 peer while Enable IPv6 is False");
        return;
    }
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(%peer, error = %e, "TCP_NODELAY");
    }
    let settings = shared.settings();
    // Keepalive on connections that wait on the phone, so firewalls keep them (the guide's
    // CAPF keepalive timer, 5 to 60 minutes).
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(settings.keepalive.as_duration())
        .with_interval(settings.keepalive.as_duration());
    if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
        debug!(%peer, error = %e, "TCP keepalive");
    }
    let conn = match rustls::server::UnbufferedServerConnection::new(shared.tls()) {
        Ok(conn) => conn,
        Err(e) => {
            warn!(%peer, error = %e, "TLS connection");
            return;
        }
    };
    // Boxed: an async fn keeps its argument and its moved copy apart, so a 1.2 kB value
    // passed by value would be held twice in every connection's future.
    let mut tls = Box::new(TlsConnection::new(tcp, conn));
    match tokio::time::timeout(shared.config.tls_handshake_timeout, tls.handshake()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            info!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            info!(%peer, "TLS handshake timed out");
            return;
        }
    }
    let session_id = match random_session_id() {
        Ok(id) => id,
        Err(e) => {
            warn!(%peer, error = %e, "no session id");
            return;
        }
    };
    let span = info_span!("session", id = format_args!("{session_id:08x}"), %peer);
    drive(shared, tls, session_id).instrument(span).await;
}

/// Session ids are random, not a counter (the SUDI challenge depends on them, spec 6.4).
fn random_session_id() -> Result<u32, Error> {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(Error::Random)?;
        let id = u32::from_be_bytes(b);
        if id != 0 {
            return Ok(id);
        }
    }
}

/// What this session did to its device, so its end is recorded once and correctly.
#[derive(Debug, Default)]
struct Attempt {
    device: Option<DeviceName>,
    operation: Option<&'static str>,
    /// The store has this session's attempt in progress (begun, not yet ended), so the
    /// session's end must record how it ended.
    in_progress: bool,
    requested: Option<KeySpec>,
    issued_serial: Option<Vec<u8>>,
    permit: Option<KeyGenPermit>,
}

impl Attempt {
    /// The device's name, for the store (set once the device is found).
    fn name(&self) -> String {
        self.device.as_deref().unwrap_or_default().to_owned()
    }
}

async fn drive(shared: Arc<Shared>, mut tls: Box<TlsConnection>, session_id: u32) {
    let mut session = ServerSession::new(shared.config.session.clone(), session_id, Instant::now());
    let mut attempt = Attempt::default();
    let mut hard_stop = shared.hard_stop.clone();
    loop {
        if let Some(event) = session.poll_event() {
            if let ServerEvent::Closed { outcome } = &event {
                // Boxed (here and below): its store call's state exists only at the end, not
                // in every idle connection's future.
                Box::pin(finish(&shared, &mut attempt, outcome)).await;
                break;
            }
            // Work for the application; the phone's bytes meanwhile still reach the session.
            let answer = {
                // Boxed: the work's state exists only while it runs, not in every idle
                // connection's future.
                let mut work = Box::pin(handle_event(&shared, &mut attempt, event));
                loop {
                    tokio::select! {
                        answer = &mut work => break Some(answer),
                        read = tls.read() => {
                            feed(&mut session, read);
                            if session.is_closed() {
                                break None;
                            }
                        }
                        _ = hard_stop.changed() => {
                            let _ = session.abort(Reason::INVALID_ELEMENT);
                            break None;
                        }
                    }
                }
            };
            if let Some(answer) = answer {
                apply(&mut session, &mut attempt, answer);
            }
            continue;
        }
        // The store has recorded every event before the phone hears the answer (an LSC is
        // installed in the store before END_SESSION 1 goes out).
        while let Some(message) = session.poll_transmit() {
            // One message per TLS write (spec rule T9).
            if let Err(e) = tls.write(&message).await {
                debug!(error = %e, "write failed");
                session.handle_eof(Instant::now());
                break;
            }
        }
        if session.is_closed() {
            // Its Closed event is the last one.
            while let Some(event) = session.poll_event() {
                if let ServerEvent::Closed { outcome } = &event {
                    Box::pin(finish(&shared, &mut attempt, outcome)).await;
                }
            }
            break;
        }
        let deadline = session.poll_timeout();
        tokio::select! {
            read = tls.read() => feed(&mut session, read),
            _ = sleep_until(deadline) => session.handle_timeout(Instant::now()),
            _ = hard_stop.changed() => {
                let _ = session.abort(Reason::INVALID_ELEMENT);
            }
        }
    }
    // Drain what is left (END_SESSION after an abort), then close_notify (spec section 1).
    while let Some(message) = session.poll_transmit() {
        if tls.write(&message).await.is_err() {
            break;
        }
    }
    let _ = tls.shutdown().await;
}

fn feed(session: &mut ServerSession, read: std::io::Result<Option<Vec<u8>>>) {
    match read {
        Ok(Some(bytes)) => session.handle_input(Instant::now(), &bytes),
        Ok(None) | Err(_) => session.handle_eof(Instant::now()),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The application's answer to an event, applied to the session afterwards.
#[derive(Debug)]
enum Answer {
    Decide(Decision),
    Certificate(Vec<u8>),
    IssuanceFailed,
    Abort,
    Nothing,
}

fn apply(session: &mut ServerSession, attempt: &mut Attempt, answer: Answer) {
    let result = match answer {
        Answer::Decide(decision) => session.decide(Instant::now(), decision),
        Answer::Certificate(der) => session.deliver_certificate(Instant::now(), &der),
        Answer::IssuanceFailed => session.issuance_failed(),
        Answer::Abort => session.abort(Reason::INVALID_ELEMENT),
        Answer::Nothing => Ok(()),
    };
    if let Err(e) = result {
        // The session closed meanwhile (the phone spoke out of turn or hung up).
        debug!(error = %e, device = ?attempt.device, "answer not applied");
    }
}

/// Runs a store call on the blocking pool.
async fn store<T, F>(shared: &Shared, context: &'static str, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&dyn DeviceStore) -> Result<T, capf_store::Error> + Send + 'static,
{
    let store = Arc::clone(&shared.store);
    // The SQLite store serialises its calls: a few threads suffice, and a burst of phones must
    // not start hundreds of blocking threads (each with its stack and malloc arena).
    let _slot = shared
        .store_slots
        .acquire()
        .await
        .map_err(|e| Error::Task {
            context,
            detail: e.to_string(),
        })?;
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| Error::Task {
            context,
            detail: e.to_string(),
        })?
        .map_err(|source| Error::Store { context, source })
}

async fn handle_event(shared: &Shared, attempt: &mut Attempt, event: ServerEvent) -> Answer {
    let result = match event {
        ServerEvent::Authenticate(auth) => authenticate(shared, attempt, *auth)
            .await
            .map(Answer::Decide),
        ServerEvent::PublicKey { spki_der } => issue(shared, attempt, spki_der).await,
        ServerEvent::KeyGenerationInProgress { count } => {
            debug!(count, "phone generating its key");
            Ok(Answer::Nothing)
        }
        ServerEvent::KeyGenerationFailed { reason } => {
            key_generation_failed(shared, attempt, reason).await
        }
        ServerEvent::CertificateStored => installed(shared, attempt).await,
        ServerEvent::StoreFailed { reason } => {
            end(
                shared,
                attempt,
                AttemptEnd::Failed {
                    reason: format!("the phone could not store the LSC (REASON {})", reason.0),
                },
            )
            .await
        }
        ServerEvent::Fetched {
            reason,
            certificate,
        } => fetched(shared, attempt, reason, certificate).await,
        ServerEvent::Deleted { reason } => deleted(shared, attempt, reason).await,
        other => {
            debug!(event = ?other, "event");
            Ok(Answer::Nothing)
        }
    };
    result.unwrap_or_else(|e| {
        warn!(error = %e, device = ?attempt.device, "ending the session");
        Answer::Abort
    })
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::InstallUpgrade(_) => "install/upgrade",
        Operation::Delete => "delete",
        Operation::Troubleshoot => "troubleshoot",
        _ => "none",
    }
}

/// Spec section 7 steps 4-6: device lookup, authentication, dispatch.
async fn authenticate(
    shared: &Shared,
    attempt: &mut Attempt,
    auth: Authentication,
) -> Result<Decision, Error> {
    let name = auth.device_name.clone();
    let now = SystemTime::now();
    let lookup = name.clone();
    let Some(device) = store(shared, "device lookup", move |s| s.device(&lookup)).await? else {
        info!(device = %name, outcome = "unknown device", "END_SESSION 9");
        return Ok(Decision::UnknownDevice);
    };
    attempt.device = Some(name.clone());
    if !device.has_operation_to_run() {
        // Nothing to protect: the one-time authentication string is cleared once an operation
        // succeeds, so a phone checking in afterwards is told there is nothing to do.
        info!(device = %name, outcome = "no pending operation", "END_SESSION 0");
        return Ok(Decision::NoPendingOperation);
    }
    attempt.operation = Some(operation_name(&device.operation));
    if device.is_past_complete_by(now) {
        let n = name.clone();
        store(shared, "mark expired", move |s| s.mark_expired(&n, now)).await?;
        info!(device = %name, outcome = "complete-by date passed", "END_SESSION 7");
        return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
    }
    if !authenticated(shared, &device, &auth, now).await? {
        return Ok(Decision::AuthenticationFailed);
    }
    let decision =
        match &device.operation {
            Operation::InstallUpgrade(policy) => {
                let Some(spec) =
                    policy.key_to_request(device.ec_key_generation_failed, auth.can_request_ec())
                else {
                    begin(shared, attempt).await?;
                    end(shared, attempt, AttemptEnd::Failed {
                    reason: format!(
                        "key order EC only, but the client (VERSION {}) cannot be asked for EC",
                        auth.version
                    ),
                })
                .await?;
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                };
                let settings = shared.settings();
                let Some(permit) = shared
                    .key_generation
                    .acquire(
                        settings.max_key_generation_sessions,
                        settings.key_generation_queue,
                    )
                    .await
                else {
                    // No "retry later" message exists (spec section 3): END_SESSION 7, and the
                    // operation stays pending for the phone's next attempt.
                    info!(device = %name, outcome = "key-generation queue full", "END_SESSION 7");
                    return Ok(Decision::Refuse(Reason::INVALID_ELEMENT));
                };
                attempt.permit = Some(permit);
                attempt.requested = Some(spec);
                begin(shared, attempt).await?;
                Decision::Install(spec.into())
            }
            Operation::Delete => {
                begin(shared, attempt).await?;
                Decision::Delete
            }
            Operation::Troubleshoot => {
                begin(shared, attempt).await?;
                Decision::Fetch
            }
            _ => Decision::NoPendingOperation,
        };
    info!(device = %name, operation = attempt.operation, decision = ?decision, "authenticated");
    Ok(decision)
}

/// The authentication of spec section 7 step 5 for the device's mode, with throttling of failed
/// authentication strings.
async fn authenticated(
    shared: &Shared,
    device: &Device,
    auth: &Authentication,
    now: SystemTime,
) -> Result<bool, Error> {
    let name = device.name.clone();
    match device.auth_mode {
        AuthMode::NullString => Ok(true),
        AuthMode::AuthenticationString => {
            let settings = shared.settings();
            if device.is_auth_locked_out(&settings, now) {
                info!(device = %name, failures = device.auth_failures, outcome = "throttled", "END_SESSION 7");
                return Ok(false);
            }
            let candidate = auth.password().unwrap_or_default().to_owned();
            let n = name.clone();
            let ok = !candidate.is_empty()
                && store(shared, "authentication string", move |s| {
                    s.check_auth_string(&n, &candidate)
                })
                .await?;
            if !ok {
                let n = name.clone();
                store(shared, "record failed authentication", move |s| {
                    s.record_auth_failure(&n, now)
                })
                .await?;
                info!(device = %name, outcome = "authentication failed", "END_SESSION 7");
            }
            Ok(ok)
        }
        AuthMode::ExistingCertificateLscFirst | AuthMode::ExistingCertificateMicFirst => {
            let precedence = if device.auth_mode == AuthMode::ExistingCertificateLscFirst {
                Precedence::LscFirst
            } else {
                Precedence::MicFirst
            };
            let trust = shared.trust();
            // Chain and signatures: milliseconds of CPU, off the I/O threads.
            let auth = auth.clone();
            let verdict = tokio::task::spawn_blocking(move || {
                let proof = DeviceProof::from_auth_response(auth.session_id, auth.response());
                authenticate_device(&trust, &proof, precedence, now)
            })
            .await
            .map_err(|e| Error::Task {
                context: "certificate authentication",
                detail: e.to_string(),
            })?;
            match verdict {
                Ok(by) => {
                    if by.digest_info_used {
                        // Spec 6.3 project rule: accepted for interoperability, logged.
                        warn!(device = %name, "signature in the DigestInfo form, not the bare digest");
                    }
                    info!(
                        device = %name,
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
                    info!(device = %name, %reason, "END_SESSION 7");
                    // The operation fails, with the reason in its status (the guide's rule).
                    let n = name.clone();
                    store(
                        shared,
                        "record failed certificate authentication",
                        move |s| {
                            s.begin_attempt(&n, now)?;
                            s.end_attempt(&n, AttemptEnd::Failed { reason }, now)
                        },
                    )
                    .await?;
                    Ok(false)
                }
            }
        }
        _ => {
            info!(device = %name, outcome = "authentication mode not supported", "END_SESSION 7");
            Ok(false)
        }
    }
}

async fn begin(shared: &Shared, attempt: &mut Attempt) -> Result<(), Error> {
    let name = attempt.name();
    store(shared, "begin attempt", move |s| {
        s.begin_attempt(&name, SystemTime::now())
    })
    .await?;
    attempt.in_progress = true;
    Ok(())
}

async fn end(shared: &Shared, attempt: &mut Attempt, end: AttemptEnd) -> Result<Answer, Error> {
    let name = attempt.name();
    info!(device = %name, operation = attempt.operation, outcome = ?end, "attempt ended");
    store(shared, "end attempt", move |s| {
        s.end_attempt(&name, end, SystemTime::now())
    })
    .await?;
    attempt.in_progress = false;
    Ok(Answer::Nothing)
}

/// KEY_GEN_RESPONSE with a key: it must be the key asked for; then the issuer signs.
async fn issue(shared: &Shared, attempt: &mut Attempt, spki_der: Vec<u8>) -> Result<Answer, Error> {
    let name = attempt.name();
    let key = match PhonePublicKey::from_der(&spki_der) {
        Ok(key) => key,
        Err(e) => {
            end(
                shared,
                attempt,
                AttemptEnd::Failed {
                    reason: format!("the phone's public key is not acceptable: {e}"),
                },
            )
            .await?;
            return Ok(Answer::IssuanceFailed);
        }
    };
    if let Some(Err(e)) = attempt.requested.map(|r| key.check_matches(r)) {
        end(
            shared,
            attempt,
            AttemptEnd::Failed {
                reason: format!("the phone sent another key than asked for: {e}"),
            },
        )
        .await?;
        return Ok(Answer::IssuanceFailed);
    }
    // The session validated the name once; a key is only asked for after the device was found.
    let Some(device) = attempt.device.clone() else {
        return Ok(Answer::IssuanceFailed);
    };
    let request = IssueRequest {
        device,
        public_key: key,
        validity: shared.config.lsc_validity,
    };
    match shared.ca.issue(request, SystemTime::now()).await? {
        IssueOutcome::Issued(lsc) => {
            let n = name.clone();
            let record = lsc.clone();
            store(shared, "record issued LSC", move |s| {
                s.record_lsc_issued(&n, &record, SystemTime::now())
            })
            .await?;
            info!(device = %name, serial = %capf_lsc::hex(&lsc.serial), ca = shared.ca.mode(), "LSC issued");
            attempt.issued_serial = Some(lsc.serial);
            Ok(Answer::Certificate(lsc.der))
        }
        IssueOutcome::Pending { request_id } => {
            end(
                shared,
                attempt,
                AttemptEnd::Interrupted {
                    reason: format!("the CA holds the request as pending ({request_id})"),
                },
            )
            .await?;
            Ok(Answer::IssuanceFailed)
        }
        other => {
            end(
                shared,
                attempt,
                AttemptEnd::Failed {
                    reason: format!("unexpected answer from the CA: {other:?}"),
                },
            )
            .await?;
            Ok(Answer::IssuanceFailed)
        }
    }
}

async fn key_generation_failed(
    shared: &Shared,
    attempt: &mut Attempt,
    reason: Option<Reason>,
) -> Result<Answer, Error> {
    if attempt.requested.is_some_and(KeySpec::is_ec) {
        // Key order "EC preferred, RSA backup": the next attempt asks for RSA.
        let name = attempt.name();
        store(shared, "record EC failure", move |s| {
            s.record_ec_key_generation_failure(&name, SystemTime::now())
        })
        .await?;
    }
    end(
        shared,
        attempt,
        AttemptEnd::Failed {
            reason: format!(
                "the phone could not generate its key (REASON {})",
                reason.map_or_else(|| "absent".to_owned(), |r| r.0.to_string())
            ),
        },
    )
    .await
}

async fn installed(shared: &Shared, attempt: &mut Attempt) -> Result<Answer, Error> {
    let name = attempt.name();
    let Some(serial) = attempt.issued_serial.clone() else {
        return Ok(Answer::Nothing);
    };
    let n = name.clone();
    store(shared, "confirm installed LSC", move |s| {
        s.confirm_lsc_installed(&n, &serial, SystemTime::now())
    })
    .await?;
    attempt.in_progress = false;
    info!(device = %name, outcome = "LSC installed", "operation succeeded");
    Ok(Answer::Nothing)
}

async fn fetched(
    shared: &Shared,
    attempt: &mut Attempt,
    reason: Reason,
    certificate: Option<capf_session::Certificate>,
) -> Result<Answer, Error> {
    let name = attempt.name();
    let kind = certificate.as_ref().map(|c| {
        if c.certificate_type == CertificateType::MIC {
            "MIC"
        } else {
            "LSC"
        }
    });
    let n = name.clone();
    store(shared, "record troubleshoot", move |s| {
        s.record_fetch_done(
            &n,
            certificate.map(|c| (c.certificate_type.0, c.der)),
            SystemTime::now(),
        )
    })
    .await?;
    attempt.in_progress = false;
    info!(device = %name, reason = reason.0, certificate = ?kind, "troubleshoot done");
    Ok(Answer::Nothing)
}

async fn deleted(shared: &Shared, attempt: &mut Attempt, reason: Reason) -> Result<Answer, Error> {
    if reason != Reason::UPDATE_CERTIFICATE {
        return end(
            shared,
            attempt,
            AttemptEnd::Failed {
                reason: format!("the phone deleted nothing (REASON {})", reason.0),
            },
        )
        .await;
    }
    let name = attempt.name();
    let n = name.clone();
    store(shared, "record delete", move |s| {
        s.record_delete_done(&n, SystemTime::now())
    })
    .await?;
    attempt.in_progress = false;
    info!(device = %name, outcome = "LSC deleted", "operation succeeded");
    Ok(Answer::Nothing)
}

/// The session is over: an attempt that did not succeed goes back to pending (its operation
/// stays scheduled for the phone's next attempt).
async fn finish(shared: &Shared, attempt: &mut Attempt, outcome: &Outcome) {
    attempt.permit = None;
    if attempt.in_progress {
        let reason = match outcome {
            Outcome::Ended { reason } => format!("session ended with END_SESSION {}", reason.0),
            Outcome::PeerClosed { state } => {
                format!("the phone closed the connection ({})", state_name(*state))
            }
            Outcome::TimedOut { state, .. } => {
                format!("timed out waiting in {}", state_name(*state))
            }
            other => format!("{other:?}"),
        };
        // Only changes a device still in progress, so a success is never clobbered.
        if let Err(e) = end(shared, attempt, AttemptEnd::Interrupted { reason }).await {
            warn!(error = %e, "recording the end of the attempt");
        }
    }
    info!(device = ?attempt.device, operation = attempt.operation, outcome = ?outcome, "session closed");
}

fn state_name(state: State) -> String {
    format!("{state:?}")
}
