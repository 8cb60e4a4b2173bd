//! The enrollment handler without sockets or TLS: a `ServerSession` in memory, played by the
//! test as the phone, its events answered by an `EnrollmentHandler` over a temp-file SQLite
//! store and a fixture CAPF. Every decision path the TLS tests above take, and the ones TLS
//! cannot reach on demand (a CA holding a request, a CA failure, a timeout).

use std::time::Instant;

use capf_ca::{CapfSigner, CertificateAuthority, IssueFuture, IssueOutcome, IssueRequest};
use capf_lsc::{AuthDigest, Issuer, ValidityDays};
use capf_server::{EnrollmentHandler, EnrollmentService};
use capf_session::{Outcome, ServerConfig, ServerEvent, ServerSession, State};
use capf_store::{Settings, SudiPolicy};
use capf_trust::{Cert, Purpose, TrustStore};
use capf_wire::{
    AuthResponse, CertificateType, CertificateValue, Command, DeleteCertificateResponse,
    FetchCertificateResponse, HashAlgorithm, KeyGenResponse, Message, Payload, Sha2SignedData,
    StoreCertificateResponse, SudiData,
};

use super::certificate_authentication::{Pki, issue, pki, record_installed};
use super::*;

/// The session id of every simulated session (the SUDI challenge).
const SESSION_ID: u32 = 0x5eed_0001;

/// The phone's (the installer's) address in every simulated session unless told otherwise.
const INSTALLER: &str = "192.0.2.10:49152";

/// A store, a CAPF, and the service over them.
struct Bench {
    dir: PathBuf,
    store: Arc<SqliteStore>,
    service: Arc<EnrollmentService>,
    capf: Arc<CapfSigner>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The trust store the server builds: the CAPF certificate in CAPF-trust, plus `extra`.
fn trust(capf: &Issuer, extra: &[(&Purpose, &Issuer)]) -> TrustStore {
    let mut trust = TrustStore::new(capf_trust::Release::default());
    let cert = |i: &Issuer| Cert::from_certificate(i.certificate().clone()).unwrap();
    trust.insert_unchecked(&Purpose::CAPF_TRUST, cert(capf));
    for (purpose, issuer) in extra {
        trust.insert_unchecked(purpose, cert(issuer));
    }
    trust
}

impl Bench {
    /// CAPF signs with the lab's RSA-2048 CAPF certificate.
    fn new(name: &str) -> Bench {
        let capf = Arc::new(CapfSigner::new(capf_test_support::capf_issuer(
            KeySpec::Rsa(RsaBits::B2048),
        )));
        Bench::with_ca(name, capf.clone(), capf)
    }

    /// With another issuer in front of the CAPF signer.
    fn with_ca(name: &str, ca: Arc<dyn CertificateAuthority>, capf: Arc<CapfSigner>) -> Bench {
        let dir = temp_dir(&format!("handler-{name}"));
        let store = Arc::new(SqliteStore::open(&dir.join("data")).unwrap());
        let service = Arc::new(EnrollmentService::new(
            store.clone(),
            ca,
            trust(&capf.issuer(), &[]),
            store.settings().unwrap(),
        ));
        Bench {
            dir,
            store,
            service,
            capf,
        }
    }

    fn add(&self, operation: Operation, auth: AuthMode, string: Option<&str>) {
        self.add_named(PHONE, operation, auth, string);
    }

    fn add_named(&self, name: &str, operation: Operation, auth: AuthMode, string: Option<&str>) {
        let mut d = NewDevice::new(dn(name));
        d.operation = operation;
        d.auth_mode = auth;
        d.auth_string = string.map(str::to_owned);
        self.store.add_device(&d, SystemTime::now()).unwrap();
    }

    fn schedule(&self, operation: Operation) {
        self.store
            .schedule(&dn(PHONE), operation, None, SystemTime::now())
            .unwrap();
    }

    fn device(&self) -> capf_store::Device {
        self.store.device(&dn(PHONE)).unwrap().unwrap()
    }

    fn status(&self) -> OperationStatus {
        self.device().status
    }

    fn failed_reason(&self) -> String {
        match self.status() {
            OperationStatus::Failed { reason } => reason,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    /// The reason the last session was refused with, before it authenticated: audited, the
    /// device's status unchanged (issue 12 item 4).
    fn refused_reason(&self) -> String {
        refused_reason(&self.store)
    }

    fn lsc_states(&self) -> Vec<LscState> {
        self.store
            .lscs(&dn(PHONE))
            .unwrap()
            .iter()
            .map(|l| l.state)
            .collect()
    }

    fn with_settings(&self, tune: impl FnOnce(&mut Settings)) {
        let mut settings = self.service.settings();
        tune(&mut settings);
        self.service.set_settings(settings);
    }

    /// A new session with its AUTH_REQUEST already read, from the installer's address.
    async fn session(&self) -> Sim {
        self.session_from(INSTALLER).await
    }

    /// A new session from `peer`.
    async fn session_from(&self, peer: &str) -> Sim {
        let mut sim = Sim {
            now: Instant::now(),
            session: ServerSession::new(ServerConfig::default(), SESSION_ID, Instant::now()),
            handler: self.service.handler(peer.parse().unwrap()),
            outcome: None,
        };
        let sent = sim.pump().await;
        assert_eq!(commands(&sent), [Command::AUTH_REQUEST]);
        sim
    }
}

/// One server session and its handler, the test playing the phone.
struct Sim {
    now: Instant,
    session: ServerSession,
    handler: EnrollmentHandler,
    outcome: Option<Outcome>,
}

impl Sim {
    /// Hands every event to the handler and applies its answers, as the driver does; returns
    /// what the server sent.
    async fn pump(&mut self) -> Vec<Message<'static>> {
        while let Some(event) = self.session.poll_event() {
            if let ServerEvent::Closed { outcome } = &event {
                assert!(self.outcome.is_none(), "one Closed per session");
                self.outcome = Some(outcome.clone());
            }
            let answer = self.handler.handle(event).await;
            answer.apply(&mut self.session, self.now).unwrap();
        }
        let mut sent = Vec::new();
        while let Some(bytes) = self.session.poll_transmit() {
            sent.push(Message::decode(&bytes).unwrap().into_owned());
        }
        sent
    }

    async fn send<'a>(&mut self, payload: impl Into<Payload<'a>>) -> Vec<Message<'static>> {
        let bytes = Message::new(SESSION_ID, payload).to_bytes();
        self.session.handle_input(self.now, &bytes);
        self.pump().await
    }

    /// AUTH_RESPONSE for PHONE with `version` and this PASSWORD.
    async fn authenticate(&mut self, version: u8, password: &str) -> Vec<Message<'static>> {
        let response = AuthResponse::new(PHONE, version)
            .unwrap()
            .with_password(password.to_owned())
            .unwrap();
        self.send(response).await
    }

    async fn public_key(&mut self, spki: Vec<u8>) -> Vec<Message<'static>> {
        self.send(KeyGenResponse::with_public_key(spki).unwrap())
            .await
    }

    async fn hang_up(&mut self) {
        self.session.handle_eof(self.now);
        assert!(self.pump().await.is_empty());
    }

    fn outcome(&self) -> &Outcome {
        self.outcome.as_ref().expect("the session closed")
    }
}

fn commands(sent: &[Message<'_>]) -> Vec<Command> {
    sent.iter().map(Message::command).collect()
}

/// The END_SESSION REASON of the last message sent.
fn ended(sent: &[Message<'_>]) -> Reason {
    end_session_reason(sent.last().expect("a message"))
}

fn key_request(sent: &[Message<'_>]) -> capf_wire::KeyGenRequest<'static> {
    match &sent.last().expect("a message").payload {
        Payload::KeyGenRequest(k) => k.clone().into_owned(),
        other => panic!("expected KEY_GEN_REQUEST, got {other:?}"),
    }
}

fn delivered_lsc(sent: &[Message<'_>]) -> Vec<u8> {
    match &sent.last().expect("a message").payload {
        Payload::StoreCertificateRequest(s) => s.certificate().der().to_vec(),
        other => panic!("expected STORE_CERT_REQUEST, got {other:?}"),
    }
}

fn spki(spec: KeySpec) -> Vec<u8> {
    key(spec).spki_der().to_vec()
}

/// A whole install of `spec` through an authenticated session: key, LSC, stored.
async fn install_through(sim: &mut Sim, spec: KeySpec) -> Vec<u8> {
    let lsc = delivered_lsc(&sim.public_key(spki(spec)).await);
    let sent = sim
        .send(StoreCertificateResponse::new(Reason::UPDATE_CERTIFICATE))
        .await;
    assert_eq!(ended(&sent), Reason::UPDATE_CERTIFICATE);
    lsc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_string_install_issues_and_installs_only_on_store_cert_response() {
    let bench = Bench::new("install-rsa");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    let k = key_request(&sim.authenticate(3, "").await);
    assert_eq!(
        (k.key_size(), k.key_type()),
        (Some(2048), Some(capf_wire::KeyType::RSA))
    );
    assert!(sim.handler.attempt_in_progress());
    assert_eq!(sim.handler.device().map(|d| d.as_str()), Some(PHONE));
    assert_eq!(bench.status(), OperationStatus::InProgress);

    let lsc = delivered_lsc(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    // Issued and recorded, not installed until the phone says it stored it.
    assert_eq!(bench.lsc_states(), [LscState::Issued]);
    assert_eq!(bench.store.lscs(&dn(PHONE)).unwrap()[0].der, lsc);
    let sent = sim
        .send(StoreCertificateResponse::new(Reason::UPDATE_CERTIFICATE))
        .await;
    assert_eq!(ended(&sent), Reason::UPDATE_CERTIFICATE);
    assert_eq!(
        sim.outcome(),
        &Outcome::Ended {
            reason: Reason::UPDATE_CERTIFICATE
        }
    );
    assert!(!sim.handler.attempt_in_progress());
    assert_eq!(bench.status(), OperationStatus::Success);
    assert_eq!(bench.lsc_states(), [LscState::Installed]);
    openssl_verify(
        &bench.dir,
        &certificate_to_pem(bench.capf.issuer().certificate()).unwrap(),
        &lsc,
    );
    // The operation is done: the next session is told there is nothing to do.
    let mut again = bench.session().await;
    assert_eq!(ended(&again.authenticate(3, "").await), Reason::NO_ACTION);
}

/// Issue 19: an enrollment's hand-offs to the blocking pool, each a wake-up there and back,
/// counted by the store-call metric: the device with its open CA request, the attempt begun,
/// the LSC signed and recorded, the install (before: five store calls, the CA request on its
/// own, and the signature a sixth hand-off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_enrollment_costs_four_store_calls_with_the_signature_in_one() {
    let bench = Bench::new("store-calls");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    assert_eq!(bench.status(), OperationStatus::Success);
    let text = bench.service.metrics().render(SystemTime::now());
    let sample = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(sample("capf_store_call_seconds_count"), 4);
    assert_eq!(
        sample("capf_ca_calls_total{mode=\"capf\",outcome=\"issued\"}"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lsc_names_the_device_as_registered_not_as_the_phone_spelled_it() {
    let bench = Bench::new("install-spelling");
    bench.add_named("SEP00000000CA5E", rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    let response = AuthResponse::new("sep00000000ca5e", 3)
        .unwrap()
        .with_password("")
        .unwrap();
    assert_eq!(
        commands(&sim.send(response).await),
        [Command::KEY_GEN_REQUEST]
    );
    let lsc = install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    let cn = Cert::from_der(&lsc).unwrap().common_name();
    assert_eq!(cn.as_deref(), Some("SEP00000000CA5E"));
    let records = bench.store.lscs(&dn("SEP00000000CA5E")).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].device.as_str(), "SEP00000000CA5E");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_ec_lscs_on_every_curve() {
    let bench = Bench::new("install-ec");
    for curve in [Curve::P256, Curve::P384, Curve::P521] {
        let op = install(KeyOrder::EcOnly, RsaBits::B2048, curve);
        if bench.store.device(&dn(PHONE)).unwrap().is_none() {
            bench.add(op, AuthMode::NullString, None);
        } else {
            bench.schedule(op);
        }
        let mut sim = bench.session().await;
        let k = key_request(&sim.authenticate(3, "").await);
        assert_eq!(
            (k.key_type(), k.curve()),
            (Some(capf_wire::KeyType::EC), Some(wire_curve(curve))),
            "{curve}"
        );
        install_through(&mut sim, KeySpec::Ec(curve)).await;
    }
    assert_eq!(
        bench.lsc_states(),
        [
            LscState::Superseded,
            LscState::Superseded,
            LscState::Installed
        ]
    );
}

fn wire_curve(curve: Curve) -> capf_wire::Curve {
    match curve {
        Curve::P256 => capf_wire::Curve::SECP256R1,
        Curve::P384 => capf_wire::Curve::SECP384R1,
        Curve::P521 => capf_wire::Curve::SECP521R1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_client_is_asked_for_rsa_as_key_size_only() {
    let bench = Bench::new("version-2");
    bench.add(
        install(KeyOrder::EcPreferredRsaBackup, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    let mut sim = bench.session().await;
    let k = key_request(&sim.authenticate(2, "").await);
    // Spec 8.11: KEY_SIZE only, no KEY_TYPE, so RSA even though EC is preferred.
    assert_eq!((k.key_size(), k.key_type()), (Some(2048), None));
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    assert_eq!(bench.status(), OperationStatus::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec_only_for_a_version_2_client_fails_the_operation() {
    let bench = Bench::new("version-2-ec-only");
    bench.add(
        install(KeyOrder::EcOnly, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(2, "").await),
        Reason::INVALID_ELEMENT
    );
    assert!(
        bench.failed_reason().contains("cannot be asked for EC"),
        "{}",
        bench.failed_reason()
    );
    assert!(!sim.handler.attempt_in_progress());
}

/// The guide: a phone is never asked for an EC key that no one can sign. In the Online CA mode
/// a device whose order asks for EC (set before the mode, or straight in the store) is refused
/// after AUTH_RESPONSE, before any KEY_GEN_REQUEST, and its operation fails with the reason;
/// an RSA-only order is asked for its key as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ec_key_order_in_online_ca_mode_is_refused_before_key_gen_request() {
    let bench = Bench::new("online-ca-ec");
    bench.with_settings(|s| s.certificate_issuer = capf_lsc::CertificateIssuer::OnlineCa);
    bench.add(
        install(KeyOrder::EcOnly, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    for order in [KeyOrder::EcOnly, KeyOrder::EcPreferredRsaBackup] {
        bench.schedule(install(order, RsaBits::B2048, Curve::P384));
        let mut sim = bench.session().await;
        let sent = sim.authenticate(3, "").await;
        assert!(
            !commands(&sent).contains(&Command::KEY_GEN_REQUEST),
            "{order:?}: {:?}",
            commands(&sent)
        );
        assert_eq!(ended(&sent), Reason::INVALID_ELEMENT, "{order:?}");
        let reason = bench.failed_reason();
        assert!(
            reason.contains("Online CA does not support ECDSA") && reason.contains("P-384"),
            "{order:?}: {reason}"
        );
        assert!(!sim.handler.attempt_in_progress());
        assert!(bench.lsc_states().is_empty());
    }
    // RSA only: the phone is asked for its RSA key.
    bench.schedule(rsa_install());
    let mut sim = bench.session().await;
    let sent = sim.authenticate(3, "").await;
    let k = key_request(&sent);
    assert_eq!(
        (k.key_size(), k.key_type()),
        (Some(2048), Some(capf_wire::KeyType::RSA))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_invalid_device_names_get_9_and_no_operation_gets_0() {
    let bench = Bench::new("unknown");
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "").await),
        Reason::UNKNOWN_DEVICE
    );
    assert!(sim.handler.device().is_none());
    // A name the store could never hold (capf-lsc's rules) is unknown too.
    let mut sim = bench.session().await;
    let response = AuthResponse::new("SEP 0011", 3)
        .unwrap()
        .with_password("")
        .unwrap();
    assert_eq!(ended(&sim.send(response).await), Reason::UNKNOWN_DEVICE);

    bench.add(Operation::None, AuthMode::NullString, None);
    let mut sim = bench.session().await;
    assert_eq!(ended(&sim.authenticate(3, "").await), Reason::NO_ACTION);
    assert_eq!(sim.handler.device().map(|d| d.as_str()), Some(PHONE));
    assert_eq!(bench.device().attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_by_date_passed_expires_the_operation() {
    let bench = Bench::new("expired");
    let mut d = NewDevice::new(dn(PHONE));
    d.operation = rsa_install();
    d.complete_by = Some(SystemTime::now() - Duration::from_secs(60));
    bench.store.add_device(&d, SystemTime::now()).unwrap();
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "").await),
        Reason::INVALID_ELEMENT
    );
    assert_eq!(bench.status(), OperationStatus::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_authenticated_does_not_expire_the_operation() {
    let bench = Bench::new("expired-unauthenticated");
    let mut d = NewDevice::new(dn(PHONE));
    d.operation = rsa_install();
    d.auth_mode = AuthMode::AuthenticationString;
    d.auth_string = Some("123456".to_owned());
    d.complete_by = Some(SystemTime::now() - Duration::from_secs(60));
    bench.store.add_device(&d, SystemTime::now()).unwrap();
    // A wrong string: refused, and the operation stays as it was (issue 12 item 4).
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "999999").await),
        Reason::INVALID_ELEMENT
    );
    assert_eq!(bench.status(), OperationStatus::Pending);
    // The installer, authenticated, finds the operation past its complete-by date.
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "123456").await),
        Reason::INVALID_ELEMENT
    );
    assert_eq!(bench.status(), OperationStatus::Expired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_authentication_string_installs_and_is_cleared() {
    let bench = Bench::new("auth-ok");
    bench.add(
        rsa_install(),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "123456").await);
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    let d = bench.device();
    assert_eq!(d.status, OperationStatus::Success);
    assert!(!d.has_auth_string);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_authentication_string_fails_is_counted_and_locks_out() {
    let bench = Bench::new("auth-wrong");
    bench.add(
        rsa_install(),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    bench.with_settings(|s| s.auth_failure_limit = 2);
    // A wrong string, then none at all (an empty PASSWORD is what a phone without one sends).
    for password in ["999999", ""] {
        let mut sim = bench.session().await;
        assert_eq!(
            ended(&sim.authenticate(3, password).await),
            Reason::INVALID_ELEMENT,
            "{password:?}"
        );
    }
    assert_eq!(bench.device().auth_failures, 2);
    // Locked out: even the right string is refused now, and nothing was issued.
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "123456").await),
        Reason::INVALID_ELEMENT
    );
    assert!(bench.store.lscs(&dn(PHONE)).unwrap().is_empty());
    assert_eq!(bench.status(), OperationStatus::Pending);
    assert_eq!(bench.device().attempts, 0);
}

/// A store that counts the authentication-string checks it runs (the HMAC), over SQLite.
struct CountingStore {
    inner: Arc<SqliteStore>,
    checks: std::sync::atomic::AtomicUsize,
}

impl CountingStore {
    fn checks(&self) -> usize {
        self.checks.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SessionStore for CountingStore {
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
    fn device(&self, name: &DeviceName) -> Result<Option<capf_store::Device>, capf_store::Error> {
        self.inner.device(name)
    }
    fn check_auth_string(
        &self,
        name: &DeviceName,
        candidate: &str,
    ) -> Result<bool, capf_store::Error> {
        self.checks
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.check_auth_string(name, candidate)
    }
    fn record_auth_failure(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.record_auth_failure(name, now)
    }
    fn begin_attempt(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.begin_attempt(name, now)
    }
    fn record_ec_key_generation_failure(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.record_ec_key_generation_failure(name, now)
    }
    fn record_lsc_issued(
        &self,
        name: &DeviceName,
        lsc: &capf_store::IssuedLsc,
        now: SystemTime,
    ) -> Result<capf_store::LscRecord, capf_store::Error> {
        self.inner.record_lsc_issued(name, lsc, now)
    }
    fn confirm_lsc_installed(
        &self,
        name: &DeviceName,
        serial: &[u8],
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.confirm_lsc_installed(name, serial, now)
    }
    fn record_delete_done(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.record_delete_done(name, now)
    }
    fn record_fetch_done(
        &self,
        name: &DeviceName,
        certificate: Option<(u8, Vec<u8>)>,
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.record_fetch_done(name, certificate, now)
    }
    fn end_attempt(
        &self,
        name: &DeviceName,
        end: capf_store::AttemptEnd,
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.end_attempt(name, end, now)
    }
    fn mark_expired(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<capf_store::Device, capf_store::Error> {
        self.inner.mark_expired(name, now)
    }
    fn lsc_state(
        &self,
        name: &DeviceName,
        serial: &[u8],
    ) -> Result<Option<LscState>, capf_store::Error> {
        self.inner.lsc_state(name, serial)
    }
    fn settings(&self) -> Result<Settings, capf_store::Error> {
        SessionStore::settings(self.inner.as_ref())
    }
    fn devices_in_progress(&self) -> Result<Vec<capf_store::Device>, capf_store::Error> {
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
    fn record_refused_session(
        &self,
        name: &DeviceName,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), capf_store::Error> {
        self.inner.record_refused_session(name, reason, now)
    }
}

/// A bench whose service goes through a [`CountingStore`].
fn counting_bench(name: &str) -> (Bench, Arc<CountingStore>) {
    let mut bench = Bench::new(name);
    let counting = Arc::new(CountingStore {
        inner: bench.store.clone(),
        checks: std::sync::atomic::AtomicUsize::new(0),
    });
    bench.service = Arc::new(EnrollmentService::new(
        counting.clone(),
        bench.capf.clone(),
        trust(&bench.capf.issuer(), &[]),
        bench.store.settings().unwrap(),
    ));
    (bench, counting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_lock_the_installer_out() {
    let bench = Bench::new("auth-stranger");
    bench.add(
        rsa_install(),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    bench.with_settings(|s| s.auth_failure_limit = 2);
    // Someone who knows the device name keeps guessing from elsewhere, past the limit.
    for _ in 0..5 {
        let mut sim = bench.session_from("198.51.100.7:40000").await;
        assert_eq!(
            ended(&sim.authenticate(3, "999999").await),
            Reason::INVALID_ELEMENT
        );
    }
    // Their guesses are refused even when right...
    let mut sim = bench.session_from("198.51.100.7:40001").await;
    assert_eq!(
        ended(&sim.authenticate(3, "123456").await),
        Reason::INVALID_ELEMENT
    );
    // ... but the installer, from its own address, is not locked out.
    let mut sim = bench.session().await;
    assert_eq!(
        commands(&sim.authenticate(3, "123456").await),
        [Command::KEY_GEN_REQUEST]
    );
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    assert_eq!(bench.status(), OperationStatus::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_wrong_replies_are_the_same_run_the_hmac_check_and_are_audited() {
    let (bench, counting) = counting_bench("auth-same-reply");
    bench.add(
        rsa_install(),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    bench.with_settings(|s| s.auth_failure_limit = 1);
    let audited = || {
        bench
            .store
            .audit(Some(&dn(PHONE)), 100)
            .unwrap()
            .iter()
            .filter(|e| e.action == capf_store::action::AUTH_FAILURE)
            .count()
    };
    // Wrong, not yet throttled.
    let mut sim = bench.session().await;
    let wrong = sim.authenticate(3, "999999").await;
    assert_eq!(ended(&wrong), Reason::INVALID_ELEMENT);
    assert_eq!((counting.checks(), audited()), (1, 1));
    // Throttled now: a wrong guess and the right string get the very same reply, after the
    // same HMAC check, and each is audited.
    for (n, password) in [(2, "999999"), (3, "123456"), (4, "")] {
        let mut sim = bench.session().await;
        let throttled = sim.authenticate(3, password).await;
        assert_eq!(throttled, wrong, "{password:?}");
        assert_eq!((counting.checks(), audited()), (n, n), "{password:?}");
    }
    assert!(bench.store.lscs(&dn(PHONE)).unwrap().is_empty());
    assert_eq!(bench.device().attempts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troubleshoot_records_the_phones_certificate() {
    let bench = Bench::new("fetch");
    bench.add(Operation::Troubleshoot, AuthMode::NullString, None);
    let mut sim = bench.session().await;
    let sent = sim.authenticate(3, "").await;
    assert_eq!(commands(&sent), [Command::FETCH_CERT_REQUEST]);
    let der = issue(
        &bench.capf.issuer(),
        PHONE,
        &key(KeySpec::Rsa(RsaBits::B2048)),
    );
    let found =
        FetchCertificateResponse::found(CertificateValue::lsc(der.clone()).unwrap()).unwrap();
    assert_eq!(ended(&sim.send(found).await), Reason::NO_ACTION);
    let results = bench.store.troubleshoot_results(&dn(PHONE)).unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].certificate.as_ref().unwrap().der, der);
    assert_eq!(bench.status(), OperationStatus::Success);

    // A phone with nothing to send: the result says so.
    bench.schedule(Operation::Troubleshoot);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    let none = FetchCertificateResponse::not_found(Reason::INVALID_ELEMENT);
    assert_eq!(ended(&sim.send(none).await), Reason::NO_ACTION);
    let results = bench.store.troubleshoot_results(&dn(PHONE)).unwrap();
    assert_eq!(results.len(), 2);
    assert!(results[1].certificate.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_the_deletion_and_a_phone_that_deleted_nothing_fails() {
    let bench = Bench::new("delete");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;

    bench.schedule(Operation::Delete);
    let mut sim = bench.session().await;
    let sent = sim.authenticate(3, "").await;
    assert_eq!(commands(&sent), [Command::DELETE_CERT_REQUEST]);
    let sent = sim
        .send(DeleteCertificateResponse::new(Reason::INVALID_ELEMENT))
        .await;
    assert_eq!(ended(&sent), Reason::UPDATE_CERTIFICATE);
    assert!(
        bench.failed_reason().contains("deleted nothing"),
        "{}",
        bench.failed_reason()
    );
    assert_eq!(bench.lsc_states(), [LscState::Installed]);

    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    let sent = sim
        .send(DeleteCertificateResponse::new(Reason::UPDATE_CERTIFICATE))
        .await;
    assert_eq!(ended(&sent), Reason::UPDATE_CERTIFICATE);
    assert_eq!(bench.status(), OperationStatus::Success);
    assert_eq!(bench.lsc_states(), [LscState::Deleted]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_cannot_make_the_key_fails_the_attempt_and_is_asked_for_rsa_next() {
    let bench = Bench::new("keygen-fail");
    bench.add(
        install(KeyOrder::EcPreferredRsaBackup, RsaBits::B2048, Curve::P256),
        AuthMode::NullString,
        None,
    );
    let mut sim = bench.session().await;
    let k = key_request(&sim.authenticate(3, "").await);
    assert_eq!(k.key_type(), Some(capf_wire::KeyType::EC));
    let sent = sim
        .send(KeyGenResponse::failure(Reason::INVALID_ELEMENT))
        .await;
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    let d = bench.device();
    assert!(d.ec_key_generation_failed);
    assert!(matches!(d.status, OperationStatus::Failed { .. }));
    let mut sim = bench.session().await;
    let k = key_request(&sim.authenticate(3, "").await);
    assert_eq!(k.key_type(), Some(capf_wire::KeyType::RSA));
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    assert_eq!(bench.status(), OperationStatus::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_cannot_store_the_lsc_fails_the_operation() {
    let bench = Bench::new("store-fail");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    delivered_lsc(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    let sent = sim
        .send(StoreCertificateResponse::new(Reason::INVALID_ELEMENT))
        .await;
    assert_eq!(ended(&sent), Reason::UPDATE_CERTIFICATE);
    assert!(
        bench.failed_reason().contains("could not store"),
        "{}",
        bench.failed_reason()
    );
    assert_eq!(bench.lsc_states(), [LscState::Issued]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_not_acceptable_or_not_the_one_asked_for_fails_issuance() {
    let bench = Bench::new("bad-key");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let cases = [
        (b"\x30\x03 not a key".to_vec(), "not acceptable"),
        (spki(KeySpec::Ec(Curve::P256)), "another key than asked for"),
    ];
    for (spki, expect) in cases {
        let mut sim = bench.session().await;
        sim.authenticate(3, "").await;
        let sent = sim.public_key(spki).await;
        assert_eq!(ended(&sent), Reason::INVALID_ELEMENT, "{expect}");
        assert!(
            bench.failed_reason().contains(expect),
            "{}",
            bench.failed_reason()
        );
        assert!(!sim.handler.attempt_in_progress());
    }
    assert!(
        bench.store.lscs(&dn(PHONE)).unwrap().is_empty(),
        "nothing issued"
    );
}

/// An issuer that answers "pending", or fails.
#[derive(Debug)]
struct FakeCa {
    pending: bool,
}

impl CertificateAuthority for FakeCa {
    fn mode(&self) -> &'static str {
        "fake CA"
    }

    fn issue(&self, request: IssueRequest, _now: SystemTime) -> IssueFuture<'_> {
        let pending = self.pending;
        Box::pin(async move {
            if pending {
                Ok(IssueOutcome::Pending {
                    request_id: Some("request 42".to_owned()),
                    retry_after: None,
                })
            } else {
                Err(capf_ca::Error::Lsc {
                    device: request.device.to_string(),
                    source: capf_lsc::Error::MissingPemBlock { label: "KEY" },
                })
            }
        })
    }
}

fn fake_ca_bench(name: &str, pending: bool) -> Bench {
    let capf = Arc::new(CapfSigner::new(capf_test_support::capf_issuer(
        KeySpec::Rsa(RsaBits::B2048),
    )));
    Bench::with_ca(name, Arc::new(FakeCa { pending }), capf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_ca_holds_as_pending_interrupts_the_attempt() {
    let bench = fake_ca_bench("ca-pending", true);
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    let sent = sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await;
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    let d = bench.device();
    assert_eq!(d.status, OperationStatus::Pending);
    assert!(d.last_error.unwrap().contains("request 42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_failure_aborts_and_interrupts_the_attempt() {
    let bench = fake_ca_bench("ca-fails", false);
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    let sent = sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await;
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    assert!(matches!(sim.outcome(), Outcome::Aborted { .. }));
    assert_eq!(bench.status(), OperationStatus::Pending);
    assert!(bench.store.lscs(&dn(PHONE)).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_while_the_phone_makes_its_key_interrupts_the_attempt() {
    let bench = Bench::new("hang-up-key");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    sim.hang_up().await;
    assert_eq!(
        sim.outcome(),
        &Outcome::PeerClosed {
            state: State::WaitKey
        }
    );
    assert!(!sim.handler.attempt_in_progress());
    let d = bench.device();
    assert_eq!(d.status, OperationStatus::Pending);
    assert!(d.last_error.unwrap().contains("closed the connection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_mid_install_leaves_an_unconfirmed_lsc_that_goes_stale() {
    let bench = Bench::new("hang-up-store");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    delivered_lsc(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    sim.hang_up().await;
    assert_eq!(bench.status(), OperationStatus::Pending);
    assert_eq!(bench.lsc_states(), [LscState::Issued]);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    assert_eq!(bench.lsc_states(), [LscState::Stale, LscState::Installed]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_or_an_abort_interrupts_the_attempt() {
    let bench = Bench::new("timeout");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    sim.now = sim
        .session
        .poll_timeout()
        .expect("a key-generation deadline");
    sim.session.handle_timeout(sim.now);
    assert_eq!(ended(&sim.pump().await), Reason::INVALID_ELEMENT);
    assert!(matches!(
        sim.outcome(),
        Outcome::TimedOut {
            state: State::WaitKey,
            ..
        }
    ));
    let d = bench.device();
    assert_eq!(d.status, OperationStatus::Pending);
    assert!(d.last_error.unwrap().contains("timed out"));

    // The server stopping past its grace period (the driver aborts the session).
    let mut sim = bench.session().await;
    sim.authenticate(3, "").await;
    sim.session.abort(Reason::INVALID_ELEMENT).unwrap();
    assert_eq!(ended(&sim.pump().await), Reason::INVALID_ELEMENT);
    assert_eq!(bench.status(), OperationStatus::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_order_message_gets_7_and_changes_nothing() {
    let bench = Bench::new("out-of-order");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let mut sim = bench.session().await;
    // KEY_GEN_RESPONSE where AUTH_RESPONSE belongs.
    let sent = sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await;
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    assert!(matches!(sim.outcome(), Outcome::ProtocolError { .. }));
    // What spec 9.3 has the driver log: the failing message's first bytes.
    assert_eq!(&sim.session.message_head()[..2], &[0x55, 4]);
    let d = bench.device();
    assert_eq!((d.status, d.attempts), (OperationStatus::Pending, 0));
    assert!(bench.store.lscs(&dn(PHONE)).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_key_generation_queue_refuses_with_7_and_keeps_the_operation_pending() {
    let bench = Bench::new("queue");
    bench.with_settings(|s| {
        s.max_key_generation_sessions = 1;
        s.key_generation_queue = 0;
    });
    let other = "SEP00000000BEEF";
    bench.add(rsa_install(), AuthMode::NullString, None);
    bench.add_named(other, rsa_install(), AuthMode::NullString, None);
    // The other phone holds the only key-generation slot.
    let mut holder = bench.session().await;
    let response = AuthResponse::new(other, 3)
        .unwrap()
        .with_password("")
        .unwrap();
    key_request(&holder.send(response).await);
    let mut sim = bench.session().await;
    assert_eq!(
        ended(&sim.authenticate(3, "").await),
        Reason::INVALID_ELEMENT
    );
    assert_eq!(bench.status(), OperationStatus::Pending);
    assert_eq!(bench.device().attempts, 0);
    // With the slot free again, the phone's next attempt installs.
    holder.hang_up().await;
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
    assert_eq!(bench.status(), OperationStatus::Success);
}

/// Authentication by existing certificate: the PKI of the TLS tests, the proofs built here.
mod certificates {
    use super::*;

    /// A bench whose trust store holds the MIC root and the SUDI root, as the server builds it
    /// from its trust directory.
    fn cert_bench(name: &str, pki: &Pki, mode: AuthMode) -> Bench {
        let bench = Bench::new(name);
        bench.service.set_trust(trust(
            &pki.capf,
            &[
                (&Purpose::CAPF_TRUST_MIC, &pki.manufacturing),
                (&Purpose::CAPF_TRUST_SUDI, &pki.sudi_root),
            ],
        ));
        bench.add(rsa_install(), mode, None);
        bench
    }

    fn sign(key: &PhoneKey, digest: AuthDigest, data: &[u8]) -> Vec<u8> {
        capf_lsc::sign_auth_signature(key.pkcs8_der(), digest, data).unwrap()
    }

    /// AUTH_RESPONSE with a certificate signed over name + NUL + DER (spec 6.1-6.3) and, when
    /// given, SUDI data signed over this session's id (spec 6.4).
    fn proof(
        der: &[u8],
        kind: CertificateType,
        key: &PhoneKey,
        sudi: Option<(&[u8], &PhoneKey)>,
    ) -> AuthResponse<'static> {
        let mut blob = PHONE.as_bytes().to_vec();
        blob.push(0);
        blob.extend_from_slice(der);
        let mut response = AuthResponse::new(PHONE, 3)
            .unwrap()
            .with_password("")
            .unwrap()
            .with_certificate(CertificateValue::new(kind, der.to_vec()).unwrap())
            .unwrap()
            .with_signed_data(sign(key, AuthDigest::Sha1, &blob))
            .unwrap()
            .with_sha2_signed_data(
                Sha2SignedData::new(HashAlgorithm::SHA512, sign(key, AuthDigest::Sha512, &blob))
                    .unwrap(),
            )
            .unwrap();
        if let Some((sudi_der, sudi_key)) = sudi {
            let mut challenge = SESSION_ID.to_le_bytes().to_vec();
            challenge.extend_from_slice(sudi_der);
            let a = sign(sudi_key, AuthDigest::Sha1, &challenge);
            let b = sign(sudi_key, AuthDigest::Sha512, &challenge);
            response = response
                .with_sudi_data(SudiData::new(sudi_der, &a, &b).unwrap().into_owned())
                .unwrap();
        }
        response
    }

    /// Authenticates with `response`; on success installs, and answers whether it did.
    async fn enroll(bench: &Bench, response: AuthResponse<'static>) -> bool {
        let mut sim = bench.session().await;
        let sent = sim.send(response).await;
        if commands(&sent) != [Command::KEY_GEN_REQUEST] {
            assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
            return false;
        }
        install_through(&mut sim, KeySpec::Rsa(RsaBits::B2048)).await;
        true
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_lsc_of_this_capf_authenticates_and_installs() {
        let pki = pki();
        let bench = cert_bench("cert-lsc", &pki, AuthMode::ExistingCertificateLscFirst);
        let lsc = issue(&pki.capf, PHONE, &pki.phone_key);
        record_installed(&bench.store, PHONE, &lsc);
        assert!(
            enroll(
                &bench,
                proof(&lsc, CertificateType::LSC, &pki.phone_key, None)
            )
            .await
        );
        assert_eq!(bench.status(), OperationStatus::Success);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_installed_current_lsc_authenticates() {
        let pki = pki();
        let lsc = issue(&pki.capf, PHONE, &pki.phone_key);
        let response = || proof(&lsc, CertificateType::LSC, &pki.phone_key, None);
        // Unknown to the store: chains to CAPF-trust, but was never installed here.
        let bench = cert_bench(
            "cert-lsc-unknown",
            &pki,
            AuthMode::ExistingCertificateLscFirst,
        );
        assert!(!enroll(&bench, response()).await);
        assert!(
            bench.refused_reason().contains("LSC not issued"),
            "{}",
            bench.refused_reason()
        );
        // Superseded: the enrollment it authenticated installed a newer LSC.
        let bench = cert_bench(
            "cert-lsc-superseded",
            &pki,
            AuthMode::ExistingCertificateLscFirst,
        );
        record_installed(&bench.store, PHONE, &lsc);
        assert!(enroll(&bench, response()).await);
        bench.schedule(rsa_install());
        assert!(!enroll(&bench, response()).await);
        assert!(
            bench.refused_reason().contains("LSC superseded"),
            "{}",
            bench.refused_reason()
        );
        assert_eq!(
            bench.lsc_states(),
            [LscState::Superseded, LscState::Installed]
        );
        // Revoked by the administrator.
        let bench = cert_bench(
            "cert-lsc-revoked",
            &pki,
            AuthMode::ExistingCertificateLscFirst,
        );
        record_installed(&bench.store, PHONE, &lsc);
        let serial = bench.store.lscs(&dn(PHONE)).unwrap()[0].serial.clone();
        bench.store.revoke_lsc(&serial, SystemTime::now()).unwrap();
        assert!(!enroll(&bench, response()).await);
        assert!(
            bench.refused_reason().contains("LSC revoked"),
            "{}",
            bench.refused_reason()
        );
        assert_eq!(bench.lsc_states(), [LscState::Revoked], "nothing issued");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mic_authenticates_in_either_precedence() {
        let pki = pki();
        let mic = issue(&pki.manufacturing, PHONE, &pki.phone_key);
        for mode in [
            AuthMode::ExistingCertificateMicFirst,
            AuthMode::ExistingCertificateLscFirst,
        ] {
            let bench = cert_bench(&format!("cert-mic-{mode:?}"), &pki, mode);
            // The type byte says LSC: the class comes from the anchor, not the byte.
            let response = proof(&mic, CertificateType::LSC, &pki.phone_key, None);
            assert!(enroll(&bench, response).await, "{mode:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sudi_data_bound_to_the_session_authenticates_and_an_untrusted_sudi_fails() {
        let pki = pki();
        let bench = cert_bench("cert-sudi", &pki, AuthMode::ExistingCertificateLscFirst);
        let lsc = issue(&pki.capf, PHONE, &pki.phone_key);
        record_installed(&bench.store, PHONE, &lsc);
        let sudi_key = key(KeySpec::Rsa(RsaBits::B2048));
        let sudi = issue(&pki.sudi_root, PHONE, &sudi_key);
        let response = proof(
            &lsc,
            CertificateType::LSC,
            &pki.phone_key,
            Some((&sudi, &sudi_key)),
        );
        assert!(enroll(&bench, response).await);
        bench.schedule(rsa_install());
        let rogue = issue(&pki.foreign_capf, PHONE, &sudi_key);
        let response = proof(
            &lsc,
            CertificateType::LSC,
            &pki.phone_key,
            Some((&rogue, &sudi_key)),
        );
        assert!(!enroll(&bench, response).await);
        assert!(
            bench.refused_reason().contains("SUDI"),
            "{}",
            bench.refused_reason()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sudi_policy_requires_a_verifiable_sudi_or_checks_it_only_under_a_trusted_root() {
        let pki = pki();
        let bench = cert_bench(
            "cert-sudi-policy",
            &pki,
            AuthMode::ExistingCertificateMicFirst,
        );
        let mic = issue(&pki.manufacturing, PHONE, &pki.phone_key);
        let sudi_key = key(KeySpec::Rsa(RsaBits::B2048));
        // capfc's way: SUDI data built from a certificate no SUDI root issued.
        let rogue = issue(&pki.foreign_capf, PHONE, &sudi_key);
        let with_rogue = || {
            proof(
                &mic,
                CertificateType::MIC,
                &pki.phone_key,
                Some((&rogue, &sudi_key)),
            )
        };
        // Default `require`: refused, and the reason names SUDI, not an untrusted CAPF.
        assert_eq!(bench.service.settings().sudi_policy, SudiPolicy::Require);
        assert!(!enroll(&bench, with_rogue()).await);
        let reason = bench.refused_reason();
        assert!(reason.contains("SUDI"), "{reason}");
        assert!(reason.contains("CAPF-trust-SUDI"), "{reason}");
        assert!(!reason.contains("moved from another cluster"), "{reason}");
        // `when-trusted`: ignored, the MIC authenticates.
        bench.with_settings(|s| s.sudi_policy = SudiPolicy::WhenTrusted);
        bench.schedule(rsa_install());
        assert!(enroll(&bench, with_rogue()).await);
        assert_eq!(bench.status(), OperationStatus::Success);
        // ... but a SUDI under a trusted root that does not verify still refuses.
        let sudi = issue(&pki.sudi_root, PHONE, &sudi_key);
        let wrong_key = key(KeySpec::Ec(Curve::P384));
        bench.schedule(rsa_install());
        let response = proof(
            &mic,
            CertificateType::MIC,
            &pki.phone_key,
            Some((&sudi, &wrong_key)),
        );
        assert!(!enroll(&bench, response).await);
        let reason = bench.refused_reason();
        assert!(reason.contains("SUDI_DATA"), "{reason}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_invalid_proof_fails_the_operation_with_its_reason() {
        let pki = pki();
        let bench = cert_bench("cert-reject", &pki, AuthMode::ExistingCertificateLscFirst);
        let other_key = key(KeySpec::Ec(Curve::P384));
        let own = issue(&pki.capf, PHONE, &pki.phone_key);
        let null_string = AuthResponse::new(PHONE, 3)
            .unwrap()
            .with_password("")
            .unwrap();
        let cases = [
            (
                "foreign CAPF",
                proof(
                    &issue(&pki.foreign_capf, PHONE, &pki.phone_key),
                    CertificateType::LSC,
                    &pki.phone_key,
                    None,
                ),
                "untrusted CAPF",
            ),
            (
                "another device",
                proof(
                    &issue(&pki.capf, "SEP00AABBCCDDEE", &pki.phone_key),
                    CertificateType::LSC,
                    &pki.phone_key,
                    None,
                ),
                "SEP00AABBCCDDEE",
            ),
            (
                "wrong key",
                proof(&own, CertificateType::LSC, &other_key, None),
                "does not verify",
            ),
            ("no certificate", null_string, "no certificate"),
        ];
        for (what, response, expect) in cases {
            bench.schedule(rsa_install());
            assert!(!enroll(&bench, response).await, "{what}");
            let reason = bench.refused_reason();
            assert!(reason.contains(expect), "{what}: {reason}");
        }
        assert!(
            bench.store.lscs(&dn(PHONE)).unwrap().is_empty(),
            "nothing issued"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_replaced_trust_store_is_used_by_the_next_session() {
        let pki = pki();
        let bench = cert_bench("cert-reload", &pki, AuthMode::ExistingCertificateMicFirst);
        let other_root = super::super::certificate_authentication::ca(
            "Other Manufacturing CA",
            KeySpec::Rsa(RsaBits::B2048),
            true,
        );
        let mic = issue(&other_root, PHONE, &pki.phone_key);
        let response = || proof(&mic, CertificateType::MIC, &pki.phone_key, None);
        assert!(!enroll(&bench, response()).await);
        bench
            .service
            .set_trust(trust(&pki.capf, &[(&Purpose::CAPF_TRUST_MIC, &other_root)]));
        bench.schedule(rsa_install());
        assert!(enroll(&bench, response()).await);
    }
}

#[path = "attempts.rs"]
mod attempts;

#[path = "hostile_peers.rs"]
mod hostile_peers;

// ---------- the Offline CA mode (spec section 16) ----------

/// A bench in the Offline CA mode with a RETRY_DELAY of 60 s.
fn offline_bench(name: &str) -> Bench {
    let bench = Bench::new(name);
    bench.with_settings(|s| {
        s.certificate_issuer = capf_lsc::CertificateIssuer::OfflineCa;
        s.ca_retry_delay = std::time::Duration::from_secs(60);
    });
    bench.add(rsa_install(), AuthMode::NullString, None);
    bench
}

/// The CSR_INFO of the SIGN_CERT_REQUEST last sent.
fn csr_info(sent: &[Message<'_>]) -> Vec<u8> {
    match &sent.last().expect("a message").payload {
        Payload::SignCertRequest(r) => r.csr_info().as_bytes().to_vec(),
        other => panic!("expected SIGN_CERT_REQUEST, got {other:?}"),
    }
}

/// The RETRY_DELAY of a RETRY_LATER + END_SESSION 1 pair.
fn retry_delay(sent: &[Message<'_>]) -> u32 {
    assert_eq!(
        commands(sent),
        [Command::RETRY_LATER, Command::END_SESSION],
        "{sent:?}"
    );
    assert_eq!(ended(sent), Reason::UPDATE_CERTIFICATE);
    match &sent[0].payload {
        Payload::RetryLater(r) => r.retry_delay().seconds(),
        other => panic!("expected RETRY_LATER, got {other:?}"),
    }
}

/// Signs `info` with the fixture key of `spec` as the phone does, and sends it.
async fn sign_csr(sim: &mut Sim, spec: KeySpec, info: &[u8]) -> Vec<Message<'static>> {
    let signature = capf_phone::sign_csr_info(info, &key(spec)).unwrap();
    let response =
        capf_wire::SignCertResponse::signed(capf_wire::CsrSignature::new(&signature).unwrap())
            .unwrap();
    sim.send(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_ca_records_the_csr_retries_then_delivers_the_imported_certificate() {
    let bench = offline_bench("offline-flow");
    let spec = KeySpec::Rsa(RsaBits::B2048);
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    let info = csr_info(&sim.public_key(spki(spec)).await);
    assert_eq!(retry_delay(&sign_csr(&mut sim, spec, &info).await), 60);
    assert!(!sim.handler.attempt_in_progress());
    let requests = bench.store.ca_requests(None).unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.state, capf_store::CaRequestState::Pending);
    assert_eq!(request.public_key, spki(spec));
    capf_lsc::VerifiedCsr::from_der(&request.csr)
        .unwrap()
        .require_common_name(PHONE)
        .unwrap();
    // The operation stays scheduled, its status saying why.
    let device = bench.device();
    assert_eq!(device.status, OperationStatus::Pending);
    assert!(
        device
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("pending with the Offline CA")),
        "{device:?}"
    );

    // 16.y: before the CA answered, the phone is told to come back; nothing begins.
    let mut again = bench.session().await;
    assert_eq!(retry_delay(&again.authenticate(3, "").await), 60);
    assert_eq!(bench.device().status, OperationStatus::Pending);

    // The certificate arrives (signed here by the lab CAPF, standing in for the CA).
    let request_id = request.id;
    let lsc = bench
        .capf
        .sign_now(
            &IssueRequest {
                device: dn(PHONE),
                public_key: capf_lsc::PhonePublicKey::from_der(&spki(spec)).unwrap(),
                validity: ValidityDays::new(30).unwrap(),
                endpoint_csr: None,
                reenroll: false,
            },
            SystemTime::now(),
        )
        .unwrap();
    bench
        .store
        .ca_request_issued(request_id, &lsc, SystemTime::now())
        .unwrap();

    // 16.z: the same key is answered with the certificate, no signing.
    let mut delivery = bench.session().await;
    key_request(&delivery.authenticate(3, "").await);
    assert_eq!(
        delivered_lsc(&delivery.public_key(spki(spec)).await),
        lsc.der
    );
    let sent = delivery
        .send(StoreCertificateResponse::new(Reason::UPDATE_CERTIFICATE))
        .await;
    assert_eq!(ended(&sent), Reason::UPDATE_CERTIFICATE);
    assert_eq!(bench.status(), OperationStatus::Success);
    assert_eq!(
        bench.store.ca_request(request_id).unwrap().unwrap().state,
        capf_store::CaRequestState::Delivered
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_answering_sign_cert_request_with_end_session_fails_with_a_reason() {
    let bench = offline_bench("offline-end-session");
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    csr_info(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    let sent = sim
        .send(capf_wire::EndSession::new(Reason::UPDATE_CERTIFICATE))
        .await;
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    let reason = bench.failed_reason();
    assert!(
        reason.contains("does not support the endpoint CSR")
            && reason.contains("answered SIGN_CERT_REQUEST with END_SESSION"),
        "{reason}"
    );
    assert!(bench.store.ca_requests(None).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_cannot_sign_or_signs_with_another_key_fails_with_a_reason() {
    let bench = offline_bench("offline-cannot-sign");
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    csr_info(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    let sent = sim
        .send(capf_wire::SignCertResponse::failure(
            Reason::INVALID_ELEMENT,
        ))
        .await;
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    let reason = bench.failed_reason();
    assert!(
        reason.contains("could not sign the endpoint CSR") && reason.contains("REASON 7"),
        "{reason}"
    );

    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    let info = csr_info(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    let sent = sign_csr(&mut sim, KeySpec::Rsa(RsaBits::B3072), &info).await;
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    let reason = bench.failed_reason();
    assert!(
        reason.contains("signature over the endpoint CSR does not verify"),
        "{reason}"
    );
    assert!(bench.store.ca_requests(None).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_hanging_up_at_sign_cert_request_fails_with_a_reason() {
    let bench = offline_bench("offline-hang-up");
    let mut sim = bench.session().await;
    key_request(&sim.authenticate(3, "").await);
    csr_info(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    sim.hang_up().await;
    let reason = bench.failed_reason();
    assert!(reason.contains("closed the connection"), "{reason}");
}

/// An EST Online CA on 127.0.0.1:8085 (never reached: the tests answer for it).
fn est_config() -> capf_lsc::OnlineCaConfig {
    capf_lsc::OnlineCaConfig::new(&capf_lsc::OnlineCaParams {
        host: "127.0.0.1".into(),
        port: 8085,
        ca_type: "est".into(),
        username: "estuser".into(),
        password: capf_lsc::Secret::new("estpwd"),
        template: None,
        label: None,
    })
    .unwrap()
}

/// `capfctl online-ca set` is in force within one settings refresh, as every other setting:
/// the Online CA task re-reads it on the refresh's own schedule, not rounded up to its 1 s poll
/// tick (a phone that came 2.5 s after the set, with a 2 s refresh, once found "no Online CA
/// is set"). On the paused clock: the set lands at 0.1 s, the refresh is every 0.5 s. Over a
/// store that does not batch: tokio counts its blocking pool as work in progress, but not the
/// store thread a batching store gets, so the paused clock would jump past a store call.
#[tokio::test(start_paused = true)]
async fn the_online_ca_settings_are_in_force_within_one_refresh() {
    let bench = Bench::new("online-refresh");
    let online = Arc::new(capf_ca::OnlineCa::new());
    let store = Arc::new(CountingStore {
        inner: bench.store.clone(),
        checks: std::sync::atomic::AtomicUsize::new(0),
    });
    let service = Arc::new(
        EnrollmentService::new(
            store,
            bench.capf.clone(),
            trust(&bench.capf.issuer(), &[]),
            bench.store.settings().unwrap(),
        )
        .with_online(online.clone()),
    );
    let task = tokio::spawn(capf_server::online::run(
        service,
        Duration::from_millis(500),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(online.config(), None);
    let config = est_config();
    bench
        .store
        .set_online_ca_config(&config, SystemTime::now())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(online.config(), Some(config));
    task.abort();
}

/// An Online CA whose enrollment waits until released and then refuses the credentials, and
/// which counts the poller's questions.
#[derive(Debug, Default)]
struct HeldOnlineCa {
    release: tokio::sync::Notify,
    enrolls: std::sync::atomic::AtomicUsize,
    polls: std::sync::atomic::AtomicUsize,
}

impl capf_ca::OnlineCaClient for HeldOnlineCa {
    fn enroll(
        &self,
        _csr_der: &[u8],
        _reenroll: bool,
    ) -> capf_ca::BoxFuture<'_, Result<capf_ca::OnlineAnswer, capf_ca::Error>> {
        self.enrolls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            self.release.notified().await;
            Err(capf_ca::Error::Unauthorized {
                username: "estuser".into(),
            })
        })
    }

    fn poll(
        &self,
        _csr_der: &[u8],
        _ca_request_id: Option<&str>,
    ) -> capf_ca::BoxFuture<'_, Result<capf_ca::OnlineAnswer, capf_ca::Error>> {
        self.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async {
            Err(capf_ca::Error::Unauthorized {
                username: "estuser".into(),
            })
        })
    }

    fn ca_certificates(&self) -> capf_ca::BoxFuture<'_, Result<Vec<Vec<u8>>, capf_ca::Error>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// While a session asks the Online CA about the request it just recorded, the poller leaves
/// that request alone (it used to ask too, record the CA's refusal first, and so make the
/// session end its attempt with a wrong reason: seen under load in tests/online_ca_est.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_leaves_a_request_alone_while_its_session_asks_the_online_ca() {
    use std::sync::atomic::Ordering;
    let bench = Bench::new("online-hold");
    bench.add(rsa_install(), AuthMode::NullString, None);
    let config = est_config();
    bench
        .store
        .set_online_ca_config(&config, SystemTime::now())
        .unwrap();
    // The same anchors the server's refresh computes (its CAPF-trust), so the refresh before
    // the session's CA call keeps this client.
    let capf_der = capf_lsc::der::Encode::to_der(bench.capf.issuer().certificate()).unwrap();
    let online = Arc::new(capf_ca::OnlineCa::new());
    let ca = Arc::new(HeldOnlineCa::default());
    online.configure_with(
        config,
        capf_ca::http::TrustAnchors::from_der([capf_der]),
        ca.clone(),
    );
    let mut settings = bench.service.settings();
    settings.certificate_issuer = capf_lsc::CertificateIssuer::OnlineCa;
    settings.ca_retry_delay = Duration::from_secs(60);
    let service = Arc::new(
        EnrollmentService::new(
            bench.store.clone(),
            bench.capf.clone(),
            trust(&bench.capf.issuer(), &[]),
            settings,
        )
        .with_online(online),
    );
    let mut sim = Sim {
        now: Instant::now(),
        session: ServerSession::new(ServerConfig::default(), SESSION_ID, Instant::now()),
        handler: service.handler(INSTALLER.parse().unwrap()),
        outcome: None,
    };
    assert_eq!(commands(&sim.pump().await), [Command::AUTH_REQUEST]);
    let spec = KeySpec::Rsa(RsaBits::B2048);
    key_request(&sim.authenticate(3, "").await);
    let info = csr_info(&sim.public_key(spki(spec)).await);
    let session = tokio::spawn(async move {
        let sent = sign_csr(&mut sim, spec, &info).await;
        (sim, sent)
    });
    // The session is asking the CA; the poller runs meanwhile.
    for _ in 0..500 {
        if ca.enrolls.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ca.enrolls.load(Ordering::SeqCst), 1);
    service.poll_online_ca().await;
    assert_eq!(ca.polls.load(Ordering::SeqCst), 0, "the poller asked too");
    ca.release.notify_one();
    let (_sim, sent) = session.await.unwrap();
    assert_eq!(ended(&sent), Reason::INVALID_ELEMENT);
    let reason = bench.failed_reason();
    assert!(reason.contains("HTTP 401"), "{reason}");
    let requests = bench.store.ca_requests(None).unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].state, capf_store::CaRequestState::Failed);
}

/// The value of the sample `series` in the service's metrics.
fn metric(bench: &Bench, series: &str) -> f64 {
    let text = bench.service.metrics().render(SystemTime::now());
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_sessions_states_outcomes_lockouts_and_latency() {
    let bench = Bench::new("metrics");
    bench.add(
        rsa_install(),
        AuthMode::AuthenticationString,
        Some("123456"),
    );
    bench.with_settings(|s| s.auth_failure_limit = 1);
    let sessions = |state: &str| metric(&bench, &format!("capf_sessions{{state=\"{state}\"}}"));
    // A wrong string, then the right one while locked out: two failures, one lockout.
    let mut sim = bench.session().await;
    assert_eq!(sessions("authenticating"), 1.0);
    sim.authenticate(3, "999999").await;
    let mut locked = bench.session().await;
    locked.authenticate(3, "123456").await;
    drop((sim, locked));
    assert_eq!(
        metric(
            &bench,
            "capf_authentication_failures_total{mode=\"authentication_string\"}"
        ),
        2.0
    );
    assert_eq!(metric(&bench, "capf_authentication_lockouts_total"), 1.0);
    assert_eq!(sessions("authenticating"), 0.0);
    assert_eq!(sessions("authenticated"), 0.0);

    // An install: counted in its states while it runs, then as a success with its latencies.
    bench.add_named("SEP0000000000B2", rsa_install(), AuthMode::NullString, None);
    let mut sim = Sim {
        now: Instant::now(),
        session: ServerSession::new(ServerConfig::default(), SESSION_ID, Instant::now()),
        handler: bench.service.handler(INSTALLER.parse().unwrap()),
        outcome: None,
    };
    sim.pump().await;
    let response = AuthResponse::new("SEP0000000000B2", 3).unwrap();
    key_request(&sim.send(response).await);
    assert_eq!(sessions("key_generation"), 1.0);
    assert_eq!(metric(&bench, "capf_key_generation_active"), 1.0);
    delivered_lsc(&sim.public_key(spki(KeySpec::Rsa(RsaBits::B2048))).await);
    assert_eq!(sessions("storing_certificate"), 1.0);
    assert_eq!(sessions("key_generation"), 0.0);
    let sent = sim
        .send(StoreCertificateResponse::new(Reason::UPDATE_CERTIFICATE))
        .await;
    assert_eq!(ended(&sent), Reason::UPDATE_CERTIFICATE);
    assert_eq!(sessions("storing_certificate"), 0.0);
    assert_eq!(sessions("ending"), 0.0);
    assert_eq!(metric(&bench, "capf_key_generation_active"), 0.0);
    assert_eq!(
        metric(
            &bench,
            "capf_enrollments_total{operation=\"install_upgrade\",outcome=\"succeeded\"}"
        ),
        1.0
    );
    assert_eq!(metric(&bench, "capf_enrollment_seconds_count"), 1.0);
    assert_eq!(metric(&bench, "capf_key_to_certificate_seconds_count"), 1.0);
    assert_eq!(
        metric(
            &bench,
            "capf_ca_calls_total{mode=\"capf\",outcome=\"issued\"}"
        ),
        1.0
    );
    assert!(metric(&bench, "capf_store_call_seconds_count") > 0.0);
    drop(sim);
    let total: f64 = [
        "authenticating",
        "authenticated",
        "key_generation",
        "csr_signature",
        "storing_certificate",
        "troubleshoot",
        "delete",
        "ending",
    ]
    .iter()
    .map(|s| sessions(s))
    .sum();
    assert_eq!(total, 0.0);
}
