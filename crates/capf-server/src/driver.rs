//! The thin driver: one accepted phone connection's admission, socket options and TLS
//! handshake, then the read-feed-write-timer loop, the only one of the server (ARCHITECTURE.md:
//! drivers are thin). The loop runs over any [`Transport`], and the enrollment policy is the
//! [`EnrollmentHandler`]'s.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use capf_ipmode::{PeerAdmission, admit_peer};
use capf_session::{Outcome, ServerEvent, ServerSession};
use capf_wire::Reason;
use tokio::net::TcpStream;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::handler::EnrollmentHandler;
use crate::limits::Admission;
use crate::metrics::HandshakeKind;
use crate::tls::TlsConnection;
use crate::{Error, Shared};

/// A phone's connection once its TLS handshake is done, as the loop uses it. Every method is
/// cancel-safe: the loop's `select!` drops a read to run a timer or to apply an answer.
///
/// The methods return their futures directly (no `async fn` wrapper around a transport's own
/// `async fn`), so the loop holds exactly the transport's read future while a session idles.
pub(crate) trait Transport {
    /// The next application data, or `None` once the phone has closed.
    fn read(&mut self) -> impl Future<Output = io::Result<Option<Vec<u8>>>>;
    /// Sends one whole message (one TLS write each: spec rule T9).
    fn write(&mut self, message: &[u8]) -> impl Future<Output = io::Result<()>>;
    /// Says goodbye at the TLS layer (close_notify, spec section 1) and closes the sending
    /// side.
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>>;
}

impl Transport for TlsConnection {
    fn read(&mut self) -> impl Future<Output = io::Result<Option<Vec<u8>>>> {
        TlsConnection::read(self)
    }

    fn write(&mut self, message: &[u8]) -> impl Future<Output = io::Result<()>> {
        TlsConnection::write(self, message)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        TlsConnection::shutdown(self)
    }
}

/// Serves one accepted TCP connection to its end.
///
/// This and [`start`] and [`drive`] are plain functions returning one `async move` block, not
/// `async fn`s: an `async fn` keeps each argument twice in its future (the argument and the
/// body's copy of it), and every idle connection holds these futures (issue 19).
#[allow(clippy::manual_async_fn)] // arguments stored once, below
pub(crate) fn serve(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    admission: Admission,
) -> impl Future<Output = ()> {
    async move {
        if !prepare(&shared, &tcp, peer) {
            return;
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
        match tokio::time::timeout(handshake_timeout(&shared), tls.handshake()).await {
            Ok(Ok(())) => shared.enrollment.metrics().handshake(if tls.resumed() {
                HandshakeKind::Resumed
            } else {
                HandshakeKind::Full
            }),
            Ok(Err(e)) => {
                info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                info!(%peer, "TLS handshake timed out");
                return;
            }
        }
        start(shared, tls, admission, peer).await;
    }
}

/// Before any TLS, on every listener: the Enable IPv6 check and the socket options; `false`
/// when the peer is refused.
pub(crate) fn prepare(shared: &Shared, tcp: &TcpStream, peer: SocketAddr) -> bool {
    if admit_peer(shared.config.enable_ipv6, peer.ip()) == PeerAdmission::RefusedIpv6Disabled {
        // The guide: with Enable IPv6 false, CAPF refuses phones that use IPv6.
        info!(%peer, "refused: IPv6 peer while Enable IPv6 is False");
        return false;
    }
    if let Err(e) = tcp.set_nodelay(true) {
        debug!(%peer, error = %e, "TCP_NODELAY");
    }
    let settings = shared.enrollment.settings();
    // Keepalive on connections that wait on the phone, so firewalls keep them (the guide's
    // CAPF keepalive timer, 5 to 60 minutes).
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(settings.keepalive.as_duration())
        .with_interval(settings.keepalive.as_duration());
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive) {
        debug!(%peer, error = %e, "TCP keepalive");
    }
    true
}

/// How long a TLS handshake may take on any listener: short before authentication (issue 12
/// item 2), the run-time setting within the configuration's bound.
pub(crate) fn handshake_timeout(shared: &Shared) -> std::time::Duration {
    shared
        .config
        .tls_handshake_timeout
        .min(shared.enrollment.settings().tls_handshake_timeout)
}

/// After the TLS handshake, on any listener: a session id, its span, and the loop.
#[allow(clippy::manual_async_fn)] // see serve: arguments stored once
pub(crate) fn start<T: Transport>(
    shared: Arc<Shared>,
    transport: Box<T>,
    admission: Admission,
    peer: SocketAddr,
) -> impl Future<Output = ()> {
    async move {
        let session_id = match random_session_id() {
            Ok(id) => id,
            Err(e) => {
                warn!(%peer, error = %e, "no session id");
                return;
            }
        };
        let span = info_span!("session", id = format_args!("{session_id:08x}"), %peer);
        drive(shared, transport, session_id, admission, peer)
            .instrument(span)
            .await;
    }
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

/// The loop: feed the phone's bytes to the session, hand its events to the handler and apply
/// the answers, write its messages, arm its timer; until the session closes.
#[allow(clippy::manual_async_fn)] // see serve: arguments stored once
pub(crate) fn drive<T: Transport>(
    shared: Arc<Shared>,
    mut transport: Box<T>,
    session_id: u32,
    mut admission: Admission,
    peer: SocketAddr,
) -> impl Future<Output = ()> {
    async move {
        let started = Instant::now();
        let mut session = ServerSession::new(shared.config.session.clone(), session_id, started);
        // The wait for AUTH_RESPONSE is short (issue 12 item 2); it is over once the phone's
        // AUTH_RESPONSE has arrived.
        let mut auth_deadline =
            started.checked_add(shared.enrollment.settings().auth_response_timeout);
        let mut handler = shared.enrollment.handler(peer);
        let mut hard_stop = shared.hard_stop.clone();
        loop {
            if let Some(event) = session.poll_event() {
                if let ServerEvent::Closed { outcome } = &event {
                    // Boxed (here and below): its store call's state exists only at the end, not
                    // in every idle connection's future.
                    Box::pin(closed(&session, &mut handler, outcome)).await;
                    break;
                }
                let authenticating = matches!(event, ServerEvent::Authenticate(_));
                if authenticating {
                    auth_deadline = None;
                }
                // Work for the application; the phone's bytes meanwhile still reach the session.
                // A hang-up (or the grace period's end) lets the work finish its store calls, so
                // `closed` below ends every attempt that began.
                let hang_up = async {
                    loop {
                        tokio::select! {
                            read = transport.read() => {
                                feed(&mut session, read);
                                if session.is_closed() {
                                    return;
                                }
                            }
                            _ = hard_stop.changed() => {
                                let _ = session.abort(Reason::INVALID_ELEMENT);
                                return;
                            }
                        }
                    }
                };
                // Boxed: the work's state exists only while it runs, not in every idle connection.
                let answer = Box::pin(handler.handle_until(event, hang_up)).await;
                if authenticating && handler.attempt_in_progress() {
                    admission.authenticated();
                }
                if let Some(answer) = answer
                    && let Err(e) = answer.apply(&mut session, Instant::now())
                {
                    // The session closed meanwhile (the phone spoke out of turn or hung up).
                    debug!(error = %e, device = handler.device().map(capf_lsc::DeviceName::as_str), "answer not applied");
                }
                continue;
            }
            // The store has recorded every event before the phone hears the answer (an LSC is
            // installed in the store before END_SESSION 1 goes out).
            while let Some(message) = session.poll_transmit() {
                // One message per TLS write (spec rule T9).
                if let Err(e) = transport.write(&message).await {
                    debug!(error = %e, "write failed");
                    session.handle_eof(Instant::now());
                    break;
                }
            }
            if session.is_closed() {
                // Its Closed event is the last one.
                while let Some(event) = session.poll_event() {
                    if let ServerEvent::Closed { outcome } = &event {
                        Box::pin(closed(&session, &mut handler, outcome)).await;
                    }
                }
                break;
            }
            // One timer for the three deadlines (each timer is 136 bytes of every idle
            // connection's future); which one passed is sorted out when it fires.
            let deadline = [session.poll_timeout(), auth_deadline, handler.deadline()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                read = transport.read() => feed(&mut session, read),
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    let passed = |d: Option<Instant>| d.is_some_and(|d| d <= now);
                    if passed(session.poll_timeout()) {
                        session.handle_timeout(now);
                    } else if passed(auth_deadline) {
                        info!("no AUTH_RESPONSE in time");
                        auth_deadline = None;
                        let _ = session.abort(Reason::INVALID_ELEMENT);
                    } else if passed(handler.deadline()) {
                        // Key generation is bounded in all (issue 12 item 1): END_SESSION 7, and
                        // the attempt ends as interrupted.
                        info!(device = handler.device().map(capf_lsc::DeviceName::as_str), "key generation took too long in all");
                        let _ = session.abort(Reason::INVALID_ELEMENT);
                    }
                }
                _ = hard_stop.changed() => {
                    let _ = session.abort(Reason::INVALID_ELEMENT);
                }
            }
        }
        // Drain what is left (END_SESSION after an abort), then close_notify (spec section 1).
        while let Some(message) = session.poll_transmit() {
            if transport.write(&message).await.is_err() {
                break;
            }
        }
        let _ = transport.shutdown().await;
    }
}

/// The session's end: the bytes of a message that broke the protocol are logged (spec 9.3),
/// then the handler records how the attempt ended.
async fn closed(session: &ServerSession, handler: &mut EnrollmentHandler, outcome: &Outcome) {
    if let Some(head) = failing_message_head(session, outcome) {
        info!(
            outcome = %outcome,
            message_head = %head,
            "protocol error"
        );
    }
    handler.closed(outcome).await;
}

/// The first bytes of the message that broke the protocol, in hex (spec 9.3: log the first 32
/// bytes); `None` for any other end.
fn failing_message_head(session: &ServerSession, outcome: &Outcome) -> Option<String> {
    matches!(outcome, Outcome::ProtocolError { .. }).then(|| capf_lsc::hex(session.message_head()))
}

fn feed(session: &mut ServerSession, read: io::Result<Option<Vec<u8>>>) {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn closed_outcome(session: &mut ServerSession) -> Outcome {
        while let Some(event) = session.poll_event() {
            if let ServerEvent::Closed { outcome } = event {
                return outcome;
            }
        }
        panic!("the session did not close");
    }

    #[test]
    fn the_head_of_a_message_with_broken_framing_is_logged() {
        let now = Instant::now();
        let mut session = ServerSession::new(capf_session::ServerConfig::default(), 7, now);
        // AUTH_RESPONSE announcing a body past the 16376-byte cap.
        let header = [0x55, 2, 0, 0, 0, 7, 0xff, 0xff];
        session.handle_input(now, &header);
        let outcome = closed_outcome(&mut session);
        assert!(matches!(
            outcome,
            Outcome::ProtocolError {
                end_session: None,
                ..
            }
        ));
        assert_eq!(
            failing_message_head(&session, &outcome).as_deref(),
            Some("550200000007ffff")
        );
    }

    #[test]
    fn the_head_of_a_frame_split_then_cut_off_or_with_a_bad_protocol_id_is_logged() {
        // As tried against capfd over TLS (RELIABILITY.md, item 11): a header in two reads,
        // then the phone hangs up inside the body.
        let now = Instant::now();
        let mut session = ServerSession::new(capf_session::ServerConfig::default(), 7, now);
        session.handle_input(now, &[0x55, 2, 0, 0]);
        session.handle_input(now, &[0, 7, 0, 0x40, 1, 2]);
        session.handle_eof(now);
        let outcome = closed_outcome(&mut session);
        assert_eq!(
            failing_message_head(&session, &outcome).as_deref(),
            Some("55020000000700400102")
        );
        // Not a CAPF header at all: its first bytes, at most 32.
        let mut session = ServerSession::new(capf_session::ServerConfig::default(), 7, now);
        session.handle_input(now, &[0x16; 40]);
        let outcome = closed_outcome(&mut session);
        assert_eq!(
            failing_message_head(&session, &outcome).as_deref(),
            Some("16".repeat(32).as_str())
        );
    }

    #[test]
    fn other_ends_log_no_head() {
        let now = Instant::now();
        let mut session = ServerSession::new(capf_session::ServerConfig::default(), 7, now);
        session.handle_eof(now);
        let outcome = closed_outcome(&mut session);
        assert_eq!(failing_message_head(&session, &outcome), None);
    }
}
