//! What the two roles share: the queue of whole messages to write, the deadline, the events, the
//! end of a session by EOF or timeout. Each role adds its states and its reading of messages.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use capf_wire::{Deframer, EndSession, Message, Payload, Reason};

use crate::error::{Error, Outcome, State};

/// One role of the protocol, server or phone: what differs in the shared [`Core`].
pub(crate) trait Role {
    /// The role's states, consumed by transitions.
    type Expect;
    /// What the role reports to its application.
    type Event;
    /// The state of a session that is over.
    const CLOSED: Self::Expect;
    /// The END_SESSION sent when the peer is too slow: 7 from a server, nothing from a phone,
    /// which just closes (spec 9.3).
    const TIMEOUT_END_SESSION: Option<Reason>;
    /// The public name of a state.
    fn state(expect: &Self::Expect) -> State;
    /// The role's last event.
    fn closed_event(outcome: Outcome) -> Self::Event;
    /// The session id put in the messages this role sends.
    fn session_id(&self) -> u32;
}

/// The deadline `wait` after `now`; `None` (no deadline) for a wait too long for the clock to
/// represent, so a huge configured timeout never panics a session (`Instant + Duration` does).
pub(crate) fn deadline_after(now: Instant, wait: Duration) -> Option<Instant> {
    now.checked_add(wait)
}

/// A session's state and queues, with the role's own data in `role`.
#[derive(Debug)]
pub(crate) struct Core<R: Role> {
    pub(crate) role: R,
    pub(crate) state: R::Expect,
    pub(crate) deadline: Option<Instant>,
    transmits: VecDeque<Vec<u8>>,
    pub(crate) events: VecDeque<R::Event>,
}

impl<R: Role> Core<R> {
    pub(crate) fn new(role: R, state: R::Expect, deadline: Option<Instant>) -> Self {
        Core {
            role,
            state,
            deadline,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub(crate) fn state(&self) -> State {
        R::state(&self.state)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state() == State::Closed
    }

    /// Queues one whole message (one TLS write, spec rule T9).
    pub(crate) fn send<'a>(&mut self, payload: impl Into<Payload<'a>>) {
        self.transmits
            .push_back(Message::new(self.role.session_id(), payload).to_bytes());
    }

    /// Waits for the peer in `next` until `deadline` (`None`: no deadline).
    pub(crate) fn wait_until(&mut self, next: R::Expect, deadline: Option<Instant>) {
        self.deadline = deadline;
        self.state = next;
    }

    /// The application's turn: no session deadline (the driver owns that wait).
    pub(crate) fn hand_over(&mut self, next: R::Expect, event: R::Event) {
        self.deadline = None;
        self.state = next;
        self.events.push_back(event);
    }

    pub(crate) fn close(&mut self, outcome: Outcome) {
        self.state = R::CLOSED;
        self.deadline = None;
        self.events.push_back(R::closed_event(outcome));
    }

    /// Sends END_SESSION `reason`, then closes.
    pub(crate) fn end(&mut self, reason: Reason, outcome: Outcome) {
        self.send(EndSession::new(reason));
        self.close(outcome);
    }

    /// The peer closed the connection. Before the session's end that is a failure: inside a
    /// message the framing is broken, between messages the peer has gone; either way there is
    /// nobody to send END_SESSION to (spec 9.3).
    pub(crate) fn handle_eof(&mut self, deframer: &mut Deframer) {
        if self.is_closed() {
            return;
        }
        match deframer.finish() {
            Err(e) => self.close(Outcome::ProtocolError {
                error: Error::Decode(e),
                end_session: None,
            }),
            Ok(()) => {
                let state = self.state();
                self.close(Outcome::PeerClosed { state });
            }
        }
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let message = self.transmits.pop_front();
        free_if_empty(&mut self.transmits);
        message
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Past the deadline the session ends: END_SESSION 7 from a server, a silent close from a
    /// phone (spec 9.3).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            let state = self.state();
            let outcome = Outcome::TimedOut {
                state,
                end_session: R::TIMEOUT_END_SESSION,
            };
            match R::TIMEOUT_END_SESSION {
                Some(reason) => self.end(reason, outcome),
                None => self.close(outcome),
            }
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<R::Event> {
        let event = self.events.pop_front();
        free_if_empty(&mut self.events);
        event
    }

    /// A call the session cannot take in its state.
    pub(crate) fn wrong_state(&self, call: &'static str) -> Error {
        Error::WrongState {
            call,
            state: self.state(),
        }
    }
}

/// The public calls both session types make the same way, over their `core` and `deframer`
/// fields: written once here, expanded in each type's `impl` block.
macro_rules! shared_session_calls {
    ($event:ty) => {
        /// The state the session is in.
        pub fn state(&self) -> State {
            self.core.state()
        }

        /// Whether the session has ended (its last transmits may still be queued).
        pub fn is_closed(&self) -> bool {
            self.core.is_closed()
        }

        /// The peer closed the connection: normal after the session's end (capfd closes
        /// without close_notify, spec T10). Before it that is a failure: inside a message the
        /// framing is broken, between messages the peer has gone; either way there is nobody
        /// to send END_SESSION to (spec 9.3).
        pub fn handle_eof(&mut self, _now: Instant) {
            self.core.handle_eof(&mut self.deframer);
        }

        /// The next message to write, whole (one TLS write each: spec rule T9).
        pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
            self.core.poll_transmit()
        }

        /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` while the
        /// session waits on the application or is closed.
        pub fn poll_timeout(&self) -> Option<Instant> {
            self.core.poll_timeout()
        }

        /// Time has passed: past the deadline the session ends, with END_SESSION 7 from a
        /// server, silently from a phone (spec 9.3).
        pub fn handle_timeout(&mut self, now: Instant) {
            self.core.handle_timeout(now);
        }

        /// The next event for the application.
        pub fn poll_event(&mut self) -> Option<$event> {
            self.core.poll_event()
        }
    };
}
pub(crate) use shared_session_calls;

/// A drained queue gives its buffer back: a session waiting minutes on the phone (key
/// generation) then holds none (issue 19's memory per idle session).
fn free_if_empty<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > 0 {
        *queue = VecDeque::new();
    }
}
