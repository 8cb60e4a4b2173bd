//! Issue 12 item 9: every attempt that begins ends, whatever the interleaving of a hang-up and
//! the handler's work (a store call in flight, a stalled store).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use capf_store::{AttemptEnd, Device, Error as StoreError, IssuedLsc, LscRecord, LscState};

use super::*;

/// A store whose `stalled` method blocks until [`Stalling::release`], as a store lock held
/// for seconds does.
struct Stalling {
    inner: Arc<SqliteStore>,
    stalled: &'static str,
    /// A call to `stalled` is blocked now.
    blocked: AtomicBool,
    released: Mutex<bool>,
    wake: Condvar,
}

impl Stalling {
    fn new(inner: Arc<SqliteStore>, stalled: &'static str) -> Arc<Stalling> {
        Arc::new(Stalling {
            inner,
            stalled,
            blocked: AtomicBool::new(false),
            released: Mutex::new(false),
            wake: Condvar::new(),
        })
    }

    fn gate(&self, method: &'static str) {
        if method != self.stalled {
            return;
        }
        self.blocked.store(true, Ordering::SeqCst);
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.wake.wait(released).unwrap();
        }
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }

    /// Completes once a call to the stalled method is blocked, then releases it: the phone
    /// hangs up while that call is in flight.
    async fn hang_up_while_blocked(&self) {
        while !self.blocked.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        self.release();
    }
}

impl SessionStore for Stalling {
    fn online_ca_config(&self) -> Result<Option<capf_store::OnlineCaConfig>, capf_store::Error> {
        self.inner.online_ca_config()
    }
    fn ca_request_pending(
        &self,
        id: i64,
        ca_request_id: Option<&str>,
        now: SystemTime,
    ) -> Result<capf_store::CaRequest, capf_store::Error> {
        self.inner.ca_request_pending(id, ca_request_id, now)
    }
    fn pending_ca_requests(
        &self,
        mode: capf_store::CertificateIssuer,
    ) -> Result<Vec<capf_store::CaRequest>, capf_store::Error> {
        self.inner.pending_ca_requests(mode)
    }
    fn installed_lsc_mode(
        &self,
        name: &DeviceName,
    ) -> Result<Option<capf_store::CertificateIssuer>, capf_store::Error> {
        self.inner.installed_lsc_mode(name)
    }
    fn device(&self, name: &DeviceName) -> Result<Option<Device>, StoreError> {
        self.gate("device");
        self.inner.device(name)
    }
    fn check_auth_string(&self, name: &DeviceName, candidate: &str) -> Result<bool, StoreError> {
        self.gate("check_auth_string");
        self.inner.check_auth_string(name, candidate)
    }
    fn record_auth_failure(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<Device, StoreError> {
        self.gate("record_auth_failure");
        self.inner.record_auth_failure(name, now)
    }
    fn begin_attempt(&self, name: &DeviceName, now: SystemTime) -> Result<Device, StoreError> {
        self.gate("begin_attempt");
        self.inner.begin_attempt(name, now)
    }
    fn record_ec_key_generation_failure(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<Device, StoreError> {
        self.gate("record_ec_key_generation_failure");
        self.inner.record_ec_key_generation_failure(name, now)
    }
    fn record_lsc_issued(
        &self,
        name: &DeviceName,
        lsc: &IssuedLsc,
        now: SystemTime,
    ) -> Result<LscRecord, StoreError> {
        self.gate("record_lsc_issued");
        self.inner.record_lsc_issued(name, lsc, now)
    }
    fn confirm_lsc_installed(
        &self,
        name: &DeviceName,
        serial: &[u8],
        now: SystemTime,
    ) -> Result<Device, StoreError> {
        self.gate("confirm_lsc_installed");
        self.inner.confirm_lsc_installed(name, serial, now)
    }
    fn record_delete_done(&self, name: &DeviceName, now: SystemTime) -> Result<Device, StoreError> {
        self.gate("record_delete_done");
        self.inner.record_delete_done(name, now)
    }
    fn record_fetch_done(
        &self,
        name: &DeviceName,
        certificate: Option<(u8, Vec<u8>)>,
        now: SystemTime,
    ) -> Result<Device, StoreError> {
        self.gate("record_fetch_done");
        self.inner.record_fetch_done(name, certificate, now)
    }
    fn end_attempt(
        &self,
        name: &DeviceName,
        end: AttemptEnd,
        now: SystemTime,
    ) -> Result<Device, StoreError> {
        self.gate("end_attempt");
        self.inner.end_attempt(name, end, now)
    }
    fn mark_expired(&self, name: &DeviceName, now: SystemTime) -> Result<Device, StoreError> {
        self.gate("mark_expired");
        self.inner.mark_expired(name, now)
    }
    fn settings(&self) -> Result<Settings, StoreError> {
        self.inner.settings()
    }
    fn lsc_state(&self, name: &DeviceName, serial: &[u8]) -> Result<Option<LscState>, StoreError> {
        self.gate("lsc_state");
        self.inner.lsc_state(name, serial)
    }
    fn record_refused_session(
        &self,
        name: &DeviceName,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        self.gate("record_refused_session");
        self.inner.record_refused_session(name, reason, now)
    }
    fn devices_in_progress(&self) -> Result<Vec<Device>, StoreError> {
        self.inner.devices_in_progress()
    }
    fn open_ca_request(
        &self,
        name: &DeviceName,
    ) -> Result<Option<capf_store::CaRequest>, capf_store::Error> {
        self.inner.open_ca_request(name)
    }
    fn issued_lsc(
        &self,
        name: &DeviceName,
        serial: &[u8],
    ) -> Result<Option<capf_store::LscRecord>, capf_store::Error> {
        self.inner.issued_lsc(name, serial)
    }
    fn record_ca_request(
        &self,
        name: &DeviceName,
        request: &capf_store::NewCaRequest<'_>,
        now: SystemTime,
    ) -> Result<capf_store::CaRequest, capf_store::Error> {
        self.inner.record_ca_request(name, request, now)
    }
    fn ca_request_issued(
        &self,
        id: i64,
        lsc: &capf_store::IssuedLsc,
        now: SystemTime,
    ) -> Result<capf_store::CaRequest, capf_store::Error> {
        self.inner.ca_request_issued(id, lsc, now)
    }
    fn ca_request_failed(
        &self,
        id: i64,
        reason: &str,
        now: SystemTime,
    ) -> Result<capf_store::CaRequest, capf_store::Error> {
        self.inner.ca_request_failed(id, reason, now)
    }
}

impl Sim {
    /// The phone sends `payload`, and hangs up once `hang_up` completes while the handler
    /// works on the message's event; the session then ends, as the driver runs it.
    async fn send_then_hang_up<'a>(
        &mut self,
        payload: impl Into<Payload<'a>>,
        hang_up: impl Future<Output = ()>,
    ) {
        let bytes = Message::new(SESSION_ID, payload).to_bytes();
        self.session.handle_input(self.now, &bytes);
        let event = self.session.poll_event().expect("an event");
        let answer = self.handler.handle_until(event, hang_up).await;
        assert_eq!(answer, None, "the phone hung up before the answer");
        self.session.handle_eof(self.now);
        self.pump().await;
        assert!(self.outcome.is_some());
        assert!(!self.handler.attempt_in_progress());
    }
}

impl Bench {
    /// A session whose handler's store is `store`.
    async fn session_over(&self, store: Arc<dyn SessionStore>) -> Sim {
        let service = Arc::new(EnrollmentService::new(
            store,
            self.capf.clone(),
            trust(&self.capf.issuer(), &[]),
            self.store.settings().unwrap(),
        ));
        let mut sim = Sim {
            now: Instant::now(),
            session: ServerSession::new(ServerConfig::default(), SESSION_ID, Instant::now()),
            handler: service.handler("127.0.0.1:50000".parse().expect("an address")),
            outcome: None,
        };
        assert_eq!(commands(&sim.pump().await), [Command::AUTH_REQUEST]);
        sim
    }
}

fn auth_response() -> AuthResponse<'static> {
    AuthResponse::new(PHONE, 3).unwrap()
}

fn store_cert_response() -> StoreCertificateResponse<'static> {
    StoreCertificateResponse::new(Reason::UPDATE_CERTIFICATE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_at_each_step_of_an_install_ends_the_attempt() {
    let rsa = KeySpec::Rsa(RsaBits::B2048);
    for step in 0..3 {
        let bench = Bench::new(&format!("hang-up-step-{step}"));
        bench.add(rsa_install(), AuthMode::NullString, None);
        let mut sim = bench.session().await;
        if step == 0 {
            sim.send_then_hang_up(auth_response(), async {}).await;
        } else {
            sim.authenticate(3, "").await;
            if step == 1 {
                sim.send_then_hang_up(KeyGenResponse::with_public_key(spki(rsa)).unwrap(), async {
                })
                .await;
            } else {
                delivered_lsc(&sim.public_key(spki(rsa)).await);
                sim.send_then_hang_up(store_cert_response(), async {}).await;
            }
        }
        let status = bench.status();
        assert!(
            status == OperationStatus::Pending || status == OperationStatus::Success,
            "step {step}: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_while_a_stalled_store_begins_or_records_ends_the_attempt() {
    let rsa = KeySpec::Rsa(RsaBits::B2048);
    for (stalled, expected) in [
        ("device", OperationStatus::Pending),
        ("begin_attempt", OperationStatus::Pending),
        ("record_lsc_issued", OperationStatus::Pending),
        ("confirm_lsc_installed", OperationStatus::Success),
    ] {
        let bench = Bench::new(&format!("stalled-{stalled}"));
        bench.add(rsa_install(), AuthMode::NullString, None);
        let store = Stalling::new(bench.store.clone(), stalled);
        let mut sim = bench.session_over(store.clone()).await;
        let hang_up = store.hang_up_while_blocked();
        match stalled {
            "device" | "begin_attempt" => sim.send_then_hang_up(auth_response(), hang_up).await,
            "record_lsc_issued" => {
                key_request(&sim.authenticate(3, "").await);
                sim.send_then_hang_up(KeyGenResponse::with_public_key(spki(rsa)).unwrap(), hang_up)
                    .await;
            }
            _ => {
                key_request(&sim.authenticate(3, "").await);
                delivered_lsc(&sim.public_key(spki(rsa)).await);
                sim.send_then_hang_up(store_cert_response(), hang_up).await;
            }
        }
        assert_eq!(bench.status(), expected, "stalled in {stalled}");
    }
}
