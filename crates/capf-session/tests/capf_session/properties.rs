//! Arbitrary bytes, in arbitrary chunks, never make a session panic: it either ends with exactly
//! one `Closed` event (its last) or is still waiting to read, and EOF always ends it.

use std::time::{Duration, Instant};

use capf_session::{
    Decision, KeyRequest, PhoneConfig, PhoneEvent, PhoneSession, ServerConfig, ServerEvent,
    ServerSession,
};
use capf_wire::{AuthRequest, AuthResponse, Message, RequestInProgress};
use proptest::prelude::*;

const ID: u32 = 0x0001_2345;

/// A prefix that takes the server to a deeper state, so the garbage lands there too.
fn server_prefix(depth: u8) -> Vec<u8> {
    let mut out = Vec::new();
    if depth >= 1 {
        Message::new(ID, AuthResponse::new("SEP001A2B3C4D5E", 3).unwrap()).encode(&mut out);
    }
    if depth >= 2 {
        Message::new(ID, RequestInProgress::new()).encode(&mut out);
    }
    out
}

fn phone_prefix(depth: u8) -> Vec<u8> {
    if depth >= 1 {
        Message::new(ID, AuthRequest::new(3)).to_bytes()
    } else {
        Vec::new()
    }
}

/// Splits `data` at the given points (taken modulo its length).
fn chunks(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| if data.is_empty() { 0 } else { c % data.len() })
        .collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.dedup();
    points
        .windows(2)
        .map(|w| data[w[0]..w[1]].to_vec())
        .collect()
}

fn check_closed_events<E: std::fmt::Debug>(events: &[E], is_closed_event: impl Fn(&E) -> bool) {
    let closed: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| is_closed_event(e))
        .map(|(i, _)| i)
        .collect();
    assert!(closed.len() <= 1, "more than one Closed: {events:?}");
    if let Some(&i) = closed.first() {
        assert_eq!(i, events.len() - 1, "Closed is not last: {events:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn server_survives_arbitrary_bytes_in_arbitrary_chunks(
        depth in 0u8..3,
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        pause_secs in 0u64..120,
    ) {
        let mut now = Instant::now();
        let mut s = ServerSession::new(ServerConfig::default(), ID, now);
        let mut events = Vec::new();
        let data = [server_prefix(depth), garbage].concat();
        for chunk in chunks(&data, &cuts) {
            s.handle_input(now, &chunk);
            while let Some(e) = s.poll_event() {
                match &e {
                    ServerEvent::Authenticate(_) => {
                        let r = s.decide(now, Decision::Install(KeyRequest::Rsa(2048)));
                        // Later bytes of the same input may already have ended the session.
                        prop_assert!(r.is_ok() || s.is_closed(), "{:?}", r);
                    }
                    ServerEvent::PublicKey { .. } => {
                        let r = s.deliver_certificate(now, b"\x30\x00");
                        prop_assert!(r.is_ok() || s.is_closed(), "{:?}", r);
                    }
                    _ => {}
                }
                events.push(e);
            }
            while let Some(m) = s.poll_transmit() {
                // Every transmit is one whole, decodable message of this session.
                let decoded = Message::decode(&m).unwrap();
                prop_assert_eq!(decoded.session_id, ID);
            }
        }
        check_closed_events(&events, |e| matches!(e, ServerEvent::Closed { .. }));
        let saw_closed = events.iter().any(|e| matches!(e, ServerEvent::Closed { .. }));
        prop_assert_eq!(s.is_closed(), saw_closed);
        // Time and then EOF always end it, with exactly one Closed.
        now += Duration::from_secs(pause_secs);
        s.handle_timeout(now);
        s.handle_eof(now);
        events.extend(std::iter::from_fn(|| s.poll_event()));
        prop_assert!(s.is_closed());
        let last_is_closed = matches!(events.last(), Some(ServerEvent::Closed { .. }));
        prop_assert!(last_is_closed);
        check_closed_events(&events, |e| matches!(e, ServerEvent::Closed { .. }));
        prop_assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn phone_survives_arbitrary_bytes_in_arbitrary_chunks(
        depth in 0u8..2,
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let now = Instant::now();
        let mut p = PhoneSession::new(PhoneConfig::default(), now);
        let mut events = Vec::new();
        let data = [phone_prefix(depth), garbage].concat();
        for chunk in chunks(&data, &cuts) {
            p.handle_input(now, &chunk);
            while let Some(e) = p.poll_event() {
                if let PhoneEvent::AuthRequested { version, .. } = &e {
                    let r = AuthResponse::new("SEP001A2B3C4D5E", *version).unwrap();
                    let r = p.send_auth_response(now, r);
                    prop_assert!(r.is_ok() || p.is_closed(), "{:?}", r);
                }
                events.push(e);
            }
            while let Some(m) = p.poll_transmit() {
                prop_assert!(Message::decode(&m).is_ok());
            }
        }
        check_closed_events(&events, |e| matches!(e, PhoneEvent::Closed { .. }));
        p.handle_eof(now);
        events.extend(std::iter::from_fn(|| p.poll_event()));
        prop_assert!(p.is_closed());
        let last_is_closed = matches!(events.last(), Some(PhoneEvent::Closed { .. }));
        prop_assert!(last_is_closed);
        check_closed_events(&events, |e| matches!(e, PhoneEvent::Closed { .. }));
    }
}
