//! An in-memory pair of a server session and a phone session on simulated time, with scripted
//! applications on both sides.

use std::time::{Duration, Instant};

use capf_session::{
    Certificate, Decision, Outcome, PhoneConfig, PhoneEvent, PhoneSession, ServerConfig,
    ServerEvent, ServerSession,
};
use capf_wire::{AuthResponse, Reason};

/// The session id the harness's server assigns.
pub(crate) const SESSION_ID: u32 = 0x5eed_0001;

/// What the server application does.
#[derive(Debug, Clone)]
pub(crate) struct ServerApp {
    pub(crate) decision: Decision,
    /// The LSC to deliver for the phone's key; `None` makes issuance fail.
    pub(crate) certificate: Option<Vec<u8>>,
}

/// What the server application does with the phone's key in the endpoint-CSR flow (spec 16).
#[derive(Debug, Clone, Default)]
pub(crate) enum ServerCsr {
    /// No CSR: [`ServerApp::certificate`] answers the key at once (CAPF mode).
    #[default]
    Off,
    /// Ask the phone to sign `csr_info`, then answer its signature with `then`.
    Request { csr_info: Vec<u8>, then: AfterCsr },
}

/// The server application's answer to [`ServerEvent::CsrSigned`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum AfterCsr {
    /// The CA signed at once: deliver [`ServerApp::certificate`].
    Deliver,
    /// The CA has not answered: RETRY_LATER with this delay.
    RetryLater(u32),
    /// The signature does not verify, or the CA refused: END_SESSION 7.
    Fail,
}

/// What the phone application does.
#[derive(Debug, Clone)]
pub(crate) struct PhoneApp {
    pub(crate) device_name: String,
    /// The VERSION to answer with; `None` uses the one the session proposes.
    pub(crate) version: Option<u8>,
    /// PASSWORD to send (capfc sends an empty one for none; Jabber sends none).
    pub(crate) password: Option<String>,
    /// Answer AUTH_REQUEST at once (false: stay silent, for timeout tests).
    pub(crate) answer_auth: bool,
    /// The public key to answer KEY_GEN_REQUEST with; `None` reports failure.
    pub(crate) public_key: Option<Vec<u8>>,
    /// Answer KEY_GEN_REQUEST at once (false: key generation takes simulated time).
    pub(crate) answer_key_generation: bool,
    pub(crate) store_ok: bool,
    pub(crate) certificate: Option<Certificate>,
    pub(crate) delete_ok: bool,
    /// The answer to SIGN_CERT_REQUEST: a signature, or the REASON of a failure (spec 16).
    pub(crate) csr_answer: Result<Vec<u8>, Reason>,
}

impl Default for PhoneApp {
    fn default() -> Self {
        PhoneApp {
            device_name: "SEP001A2B3C4D5E".into(),
            version: None,
            password: Some(String::new()),
            answer_auth: true,
            public_key: Some(b"\x30\x59 fake P-256 SPKI".to_vec()),
            answer_key_generation: true,
            store_ok: true,
            certificate: None,
            delete_ok: true,
            csr_answer: Ok(b"fake CSR signature".to_vec()),
        }
    }
}

/// Both sessions, both applications, the simulated clock and everything that happened.
pub(crate) struct Pair {
    pub(crate) now: Instant,
    pub(crate) server: ServerSession,
    pub(crate) phone: PhoneSession,
    pub(crate) server_app: ServerApp,
    pub(crate) phone_app: PhoneApp,
    /// The server application's endpoint-CSR behaviour (off unless a test sets it).
    pub(crate) server_csr: ServerCsr,
    pub(crate) server_events: Vec<ServerEvent>,
    pub(crate) phone_events: Vec<PhoneEvent>,
    /// Every message in wire order, with its direction (true: server to phone).
    pub(crate) wire: Vec<(bool, Vec<u8>)>,
}

impl Pair {
    pub(crate) fn new(server_app: ServerApp, phone_app: PhoneApp) -> Self {
        Self::with_configs(
            ServerConfig::default(),
            PhoneConfig::default(),
            server_app,
            phone_app,
        )
    }

    pub(crate) fn with_configs(
        server_config: ServerConfig,
        phone_config: PhoneConfig,
        server_app: ServerApp,
        phone_app: PhoneApp,
    ) -> Self {
        let now = Instant::now();
        Pair {
            now,
            server: ServerSession::new(server_config, SESSION_ID, now),
            phone: PhoneSession::new(phone_config, now),
            server_app,
            phone_app,
            server_csr: ServerCsr::Off,
            server_events: Vec::new(),
            phone_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// Moves messages and answers events until nothing more happens.
    pub(crate) fn run(&mut self) {
        loop {
            let mut progress = false;
            while let Some(m) = self.server.poll_transmit() {
                self.phone.handle_input(self.now, &m);
                self.wire.push((true, m));
                progress = true;
            }
            while let Some(m) = self.phone.poll_transmit() {
                self.server.handle_input(self.now, &m);
                self.wire.push((false, m));
                progress = true;
            }
            while let Some(e) = self.server.poll_event() {
                self.answer_server(&e);
                self.server_events.push(e);
                progress = true;
            }
            while let Some(e) = self.phone.poll_event() {
                self.answer_phone(&e);
                self.phone_events.push(e);
                progress = true;
            }
            if !progress {
                break;
            }
        }
        // A closed server closes the connection: the phone sees EOF after END_SESSION.
        if self.server.is_closed() && !self.phone.is_closed() {
            self.phone.handle_eof(self.now);
            self.phone_events
                .extend(std::iter::from_fn(|| self.phone.poll_event()));
        }
    }

    /// Lets simulated time pass, firing both sessions' timers, then runs.
    pub(crate) fn advance(&mut self, by: Duration) {
        self.now += by;
        self.server.handle_timeout(self.now);
        self.phone.handle_timeout(self.now);
        self.run();
    }

    fn answer_server(&mut self, e: &ServerEvent) {
        let now = self.now;
        match e {
            ServerEvent::Authenticate(_) => {
                self.server.decide(now, self.server_app.decision).unwrap();
            }
            ServerEvent::PublicKey { .. } => match &self.server_csr {
                ServerCsr::Request { csr_info, .. } => {
                    self.server.request_csr_signature(now, csr_info).unwrap();
                }
                ServerCsr::Off => self.deliver(),
            },
            ServerEvent::CsrSigned { .. } => match &self.server_csr {
                ServerCsr::Request { then, .. } => match *then {
                    AfterCsr::Deliver => self.deliver(),
                    AfterCsr::RetryLater(delay) => self.server.retry_later(now, delay).unwrap(),
                    AfterCsr::Fail => self.server.issuance_failed().unwrap(),
                },
                ServerCsr::Off => panic!("CsrSigned without a CSR request"),
            },
            _ => {}
        }
    }

    /// The server application delivers [`ServerApp::certificate`], or fails without one.
    fn deliver(&mut self) {
        match &self.server_app.certificate {
            Some(der) => self.server.deliver_certificate(self.now, der).unwrap(),
            None => self.server.issuance_failed().unwrap(),
        }
    }

    fn answer_phone(&mut self, e: &PhoneEvent) {
        let now = self.now;
        let app = &self.phone_app;
        match e {
            PhoneEvent::AuthRequested { version, .. } if app.answer_auth => {
                let mut r =
                    AuthResponse::new(app.device_name.clone(), app.version.unwrap_or(*version))
                        .unwrap();
                if let Some(p) = &app.password {
                    r = r.with_password(p.clone()).unwrap();
                }
                self.phone.send_auth_response(now, r).unwrap();
            }
            PhoneEvent::KeyGenerationRequested { .. } if app.answer_key_generation => {
                self.answer_key_generation();
            }
            PhoneEvent::CertificateReceived { .. } => {
                self.phone.store_result(now, app.store_ok).unwrap();
            }
            PhoneEvent::FetchRequested => {
                self.phone
                    .send_certificate(now, app.certificate.as_ref())
                    .unwrap();
            }
            PhoneEvent::DeleteRequested => {
                self.phone.delete_result(now, app.delete_ok).unwrap();
            }
            PhoneEvent::CsrSignatureRequested { .. } => match &app.csr_answer {
                Ok(signature) => self.phone.send_csr_signature(now, signature).unwrap(),
                Err(reason) => self.phone.csr_signing_failed(now, *reason).unwrap(),
            },
            _ => {}
        }
    }

    /// The phone application finishes generating its key (now, in simulated time).
    pub(crate) fn answer_key_generation(&mut self) {
        match &self.phone_app.public_key {
            Some(spki) => self.phone.send_public_key(self.now, spki).unwrap(),
            None => self
                .phone
                .key_generation_failed(self.now, Reason::INVALID_ELEMENT)
                .unwrap(),
        }
    }

    pub(crate) fn server_outcome(&self) -> Option<&Outcome> {
        match self.server_events.last() {
            Some(ServerEvent::Closed { outcome }) => Some(outcome),
            _ => None,
        }
    }

    pub(crate) fn phone_outcome(&self) -> Option<&Outcome> {
        match self.phone_events.last() {
            Some(PhoneEvent::Closed { outcome }) => Some(outcome),
            _ => None,
        }
    }

    /// The commands on the wire, in order, as `S>NAME` / `P>NAME`.
    pub(crate) fn commands(&self) -> Vec<String> {
        self.wire
            .iter()
            .map(|(from_server, m)| {
                let c = capf_wire::Command(m[1]);
                format!("{}>{c}", if *from_server { "S" } else { "P" })
            })
            .collect()
    }

    /// The last message the server sent.
    pub(crate) fn last_from_server(&self) -> Option<&[u8]> {
        self.wire
            .iter()
            .rev()
            .find(|(s, _)| *s)
            .map(|(_, m)| m.as_slice())
    }
}

/// END_SESSION with `reason` for `session_id`, as bytes.
pub(crate) fn end_session(session_id: u32, reason: u8) -> Vec<u8> {
    let mut m = vec![0x55, 0x0f];
    m.extend_from_slice(&session_id.to_be_bytes());
    m.extend_from_slice(&[0x00, 0x04, 0x01, 0x00, 0x01, reason]);
    m
}
