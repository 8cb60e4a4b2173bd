//! The server's metrics (issue 18, "Metrics and health"): counters, gauges and fixed-bucket
//! histograms on atomics, so the hot path costs a few relaxed atomic adds and no lock or
//! allocation, rendered on demand as the Prometheus text exposition format 0.0.4.
//!
//! Written here rather than with a metrics crate: the set is fixed and small, every label is a
//! closed enum (an array index, never a string looked up), and the format is a page of text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Defines a closed label enum with its one name table.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub(crate) const ALL: &[$name] = &[$($name::$variant),+];
            const COUNT: usize = $name::ALL.len();

            /// The label value.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }
    };
}

label_enum! {
    /// The operation a session ran (`operation` label).
    Operation {
        InstallUpgrade => "install_upgrade",
        Delete => "delete",
        Troubleshoot => "troubleshoot",
        /// No operation: the device is unknown, has none, or the session never named one.
        None => "none",
    }
}

label_enum! {
    /// How a session ended for its device (`outcome` label of `capf_enrollments_total`).
    Outcome {
        /// The operation succeeded (LSC installed, fetched, deleted).
        Succeeded => "succeeded",
        /// The operation failed (its status says why).
        Failed => "failed",
        /// The attempt began and was cut off; the operation stays scheduled.
        Interrupted => "interrupted",
        /// The request waits with an external CA: the phone was told to come back.
        RetryLater => "retry_later",
        /// The device's authentication failed (or was locked out).
        AuthenticationFailed => "authentication_failed",
        /// Refused before the attempt began: another session serves the device, the
        /// complete-by date passed, the key-generation queue is full.
        Refused => "refused",
        /// The device has no operation to run.
        NoOperation => "no_operation",
        /// The phone named a device the store does not know.
        UnknownDevice => "unknown_device",
        /// The session ended before the phone named its device.
        NotAuthenticated => "not_authenticated",
        /// The server could not do its part (a store failure).
        Error => "error",
    }
}

label_enum! {
    /// The state of a running session (`state` label of `capf_sessions`).
    SessionState {
        /// Waiting for, or checking, the phone's AUTH_RESPONSE.
        Authenticating => "authenticating",
        /// Authenticated, the attempt not begun (in the key-generation queue, say).
        Authenticated => "authenticated",
        /// KEY_GEN_REQUEST sent: the phone makes its key.
        KeyGeneration => "key_generation",
        /// SIGN_CERT_REQUEST sent: the phone signs the endpoint CSR.
        CsrSignature => "csr_signature",
        /// STORE_CERT_REQUEST sent: the phone stores its LSC.
        StoringCertificate => "storing_certificate",
        /// FETCH_CERT_REQUEST sent.
        Troubleshoot => "troubleshoot",
        /// DELETE_CERT_REQUEST sent.
        Delete => "delete",
        /// The attempt is over; the session is ending.
        Ending => "ending",
    }
}

label_enum! {
    /// How a device authenticated (`mode` label of `capf_authentication_failures_total`).
    AuthKind {
        AuthenticationString => "authentication_string",
        ExistingCertificate => "existing_certificate",
        /// An authentication mode the server does not support.
        Other => "other",
    }
}

label_enum! {
    /// Who signs (`mode` label of the CA metrics).
    CaMode {
        Capf => "capf",
        OnlineEst => "online_est",
        OnlineMicrosoft => "online_microsoft",
        Offline => "offline",
    }
}

label_enum! {
    /// A TLS handshake's kind (`kind` label of `capf_tls_handshakes_total`).
    HandshakeKind {
        /// A full handshake: the CAPF key signed (a phone's first contact).
        Full => "full",
        /// A resumed session (a ticket or session id the phone kept): no signature.
        Resumed => "resumed",
    }
}

label_enum! {
    /// A CA call's outcome (`outcome` label of `capf_ca_calls_total`).
    CaOutcome {
        /// A certificate.
        Issued => "issued",
        /// The CA holds the request (or, for the Offline CA, it is queued).
        Pending => "pending",
        /// The CA answered with a refusal.
        Refused => "refused",
        /// The CA could not be reached, or answered with a server or TLS error.
        Unreachable => "unreachable",
        /// No answer within the session's deadline (the poller asks again).
        Timeout => "timeout",
    }
}

/// Bucket bounds from session start to the certificate: the phone's key generation is in it,
/// minutes for RSA-4096 on an old phone.
const SESSION_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];
/// Bucket bounds from the phone's key to the certificate, and of CA calls: a signature, a CA's
/// round trip.
const ISSUE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket bounds of store calls.
const STORE_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// A histogram with fixed buckets: one atomic per bucket (not cumulative; summed when
/// rendered), the count and the sum in nanoseconds.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    /// `buckets[i]`: observations in (bounds[i-1], bounds[i]]; `buckets[N]`: above the last.
    buckets: [AtomicU64; N],
    over: AtomicU64,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N]) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            over: AtomicU64::new(0),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = self.bounds.iter().position(|b| secs <= *b);
        match slot.and_then(|i| self.buckets.get(i)) {
            Some(bucket) => bucket.fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        self.count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines, with `labels` (`k="v",` each) first.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.over.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", s.trim_end_matches(','))
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

fn counters<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The CAPF service's metrics, shared by every session (see the crate's README for the list).
/// Recording is a few relaxed atomic operations; [`Metrics::render`] reads them all.
#[derive(Debug)]
pub struct Metrics {
    /// By [`Operation`] x [`Outcome`].
    enrollments: [[AtomicU64; Outcome::COUNT]; Operation::COUNT],
    session_to_certificate: Histogram<13>,
    key_to_certificate: Histogram<13>,
    /// By [`SessionState`]; signed so that a decrement racing an increment never wraps.
    sessions: [AtomicI64; SessionState::COUNT],
    key_generation_active: AtomicI64,
    key_generation_waiting: AtomicI64,
    key_generation_refused: AtomicU64,
    auth_failures: [AtomicU64; AuthKind::COUNT],
    auth_lockouts: AtomicU64,
    /// By [`CaMode`] x [`CaOutcome`].
    ca_calls: [[AtomicU64; CaOutcome::COUNT]; CaMode::COUNT],
    ca_duration: [Histogram<13>; CaMode::COUNT],
    store_calls: Histogram<12>,
    store_errors: AtomicU64,
    /// By [`HandshakeKind`].
    handshakes: [AtomicU64; HandshakeKind::COUNT],
    /// The CAPF certificate's notAfter, in seconds since the Unix epoch; `i64::MIN` unknown.
    capf_not_after: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enrollments: std::array::from_fn(|_| counters()),
            session_to_certificate: Histogram::new(&SESSION_BUCKETS),
            key_to_certificate: Histogram::new(&ISSUE_BUCKETS),
            sessions: std::array::from_fn(|_| AtomicI64::new(0)),
            key_generation_active: AtomicI64::new(0),
            key_generation_waiting: AtomicI64::new(0),
            key_generation_refused: AtomicU64::new(0),
            auth_failures: counters(),
            auth_lockouts: AtomicU64::new(0),
            ca_calls: std::array::from_fn(|_| counters()),
            ca_duration: std::array::from_fn(|_| Histogram::new(&ISSUE_BUCKETS)),
            store_calls: Histogram::new(&STORE_BUCKETS),
            store_errors: AtomicU64::new(0),
            handshakes: counters(),
            capf_not_after: AtomicI64::new(i64::MIN),
        }
    }
}

fn add(counter: Option<&AtomicU64>) {
    if let Some(c) = counter {
        c.fetch_add(1, Relaxed);
    }
}

impl Metrics {
    /// No metric recorded yet.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// A session ended: what it ran and how.
    pub(crate) fn enrollment(&self, operation: Operation, outcome: Outcome) {
        add(self
            .enrollments
            .get(operation as usize)
            .and_then(|row| row.get(outcome as usize)));
    }

    /// A certificate is ready for the phone: since the session began, and since its key came.
    pub(crate) fn certificate_ready(&self, since_start: Duration, since_key: Option<Duration>) {
        self.session_to_certificate.observe(since_start);
        if let Some(d) = since_key {
            self.key_to_certificate.observe(d);
        }
    }

    /// A session moved from `from` to `to` (`None`: not counted, before it began or after it
    /// ended).
    pub(crate) fn session_state(&self, from: Option<SessionState>, to: Option<SessionState>) {
        if from == to {
            return;
        }
        if let Some(g) = from.and_then(|s| self.sessions.get(s as usize)) {
            g.fetch_sub(1, Relaxed);
        }
        if let Some(g) = to.and_then(|s| self.sessions.get(s as usize)) {
            g.fetch_add(1, Relaxed);
        }
    }

    /// The key-generation limit's counts now (set under its lock, so never torn apart).
    pub(crate) fn key_generation(&self, active: u32, waiting: u32) {
        self.key_generation_active.store(i64::from(active), Relaxed);
        self.key_generation_waiting
            .store(i64::from(waiting), Relaxed);
    }

    /// A phone found the key-generation queue full, or its wait ran out.
    pub(crate) fn key_generation_refused(&self) {
        self.key_generation_refused.fetch_add(1, Relaxed);
    }

    /// A device's authentication failed; `locked_out` when refused by throttling.
    pub(crate) fn authentication_failed(&self, kind: AuthKind, locked_out: bool) {
        add(self.auth_failures.get(kind as usize));
        if locked_out {
            self.auth_lockouts.fetch_add(1, Relaxed);
        }
    }

    /// A call to a CA, its outcome and how long it took.
    pub(crate) fn ca_call(&self, mode: CaMode, outcome: CaOutcome, took: Duration) {
        add(self
            .ca_calls
            .get(mode as usize)
            .and_then(|row| row.get(outcome as usize)));
        if let Some(h) = self.ca_duration.get(mode as usize) {
            h.observe(took);
        }
    }

    /// A store call (on the blocking pool), how long it ran and whether it failed.
    pub(crate) fn store_call(&self, took: Duration, ok: bool) {
        self.store_calls.observe(took);
        if !ok {
            self.store_errors.fetch_add(1, Relaxed);
        }
    }

    /// A TLS handshake completed, full or resumed.
    pub(crate) fn handshake(&self, kind: HandshakeKind) {
        add(self.handshakes.get(kind as usize));
    }

    /// The CAPF certificate being served now (at start and on every reload).
    pub(crate) fn capf_certificate(&self, certificate: &capf_lsc::x509_cert::Certificate) {
        let not_after = certificate
            .tbs_certificate()
            .validity()
            .not_after
            .to_unix_duration()
            .as_secs();
        self.capf_not_after
            .store(i64::try_from(not_after).unwrap_or(i64::MAX), Relaxed);
    }

    /// Every metric in the Prometheus text exposition format 0.0.4 ([`CONTENT_TYPE`]), with
    /// `HELP` and `TYPE` lines; the CAPF certificate's expiry is counted from `now`.
    pub fn render(&self, now: SystemTime) -> String {
        let mut out = String::with_capacity(16 * 1024);
        header(
            &mut out,
            "capf_enrollments_total",
            "counter",
            "Sessions ended, by the device's operation and how the session ended for it.",
        );
        for op in Operation::ALL {
            for outcome in Outcome::ALL {
                let n = self
                    .enrollments
                    .get(*op as usize)
                    .and_then(|r| r.get(*outcome as usize))
                    .map_or(0, |c| c.load(Relaxed));
                let _ = writeln!(
                    out,
                    "capf_enrollments_total{{operation=\"{}\",outcome=\"{}\"}} {n}",
                    op.as_str(),
                    outcome.as_str()
                );
            }
        }
        header(
            &mut out,
            "capf_enrollment_seconds",
            "histogram",
            "From the session's start (after the TLS handshake) to the LSC ready for the phone.",
        );
        self.session_to_certificate
            .render(&mut out, "capf_enrollment_seconds", "");
        header(
            &mut out,
            "capf_key_to_certificate_seconds",
            "histogram",
            "From the phone's public key (KEY_GEN_RESPONSE) to the LSC ready for the phone, in the same session.",
        );
        self.key_to_certificate
            .render(&mut out, "capf_key_to_certificate_seconds", "");
        header(
            &mut out,
            "capf_sessions",
            "gauge",
            "Sessions running now (after the TLS handshake), by state.",
        );
        for state in SessionState::ALL {
            let n = self
                .sessions
                .get(*state as usize)
                .map_or(0, |g| g.load(Relaxed));
            let _ = writeln!(out, "capf_sessions{{state=\"{}\"}} {n}", state.as_str());
        }
        header(
            &mut out,
            "capf_key_generation_active",
            "gauge",
            "Sessions holding a key-generation slot (max_key_generation_sessions).",
        );
        let active = self.key_generation_active.load(Relaxed);
        let _ = writeln!(out, "capf_key_generation_active {active}");
        header(
            &mut out,
            "capf_key_generation_queued",
            "gauge",
            "Phones waiting in the key-generation queue (key_generation_queue).",
        );
        let waiting = self.key_generation_waiting.load(Relaxed);
        let _ = writeln!(out, "capf_key_generation_queued {waiting}");
        header(
            &mut out,
            "capf_key_generation_refused_total",
            "counter",
            "Phones refused because the key-generation queue was full or its wait ran out.",
        );
        let refused = self.key_generation_refused.load(Relaxed);
        let _ = writeln!(out, "capf_key_generation_refused_total {refused}");
        header(
            &mut out,
            "capf_authentication_failures_total",
            "counter",
            "Failed device authentications, by authentication mode (lockouts included).",
        );
        for kind in AuthKind::ALL {
            let n = self
                .auth_failures
                .get(*kind as usize)
                .map_or(0, |c| c.load(Relaxed));
            let _ = writeln!(
                out,
                "capf_authentication_failures_total{{mode=\"{}\"}} {n}",
                kind.as_str()
            );
        }
        header(
            &mut out,
            "capf_authentication_lockouts_total",
            "counter",
            "Authentication-string attempts refused because the device or the source address was locked out (auth_failure_limit per auth_lockout).",
        );
        let lockouts = self.auth_lockouts.load(Relaxed);
        let _ = writeln!(out, "capf_authentication_lockouts_total {lockouts}");
        header(
            &mut out,
            "capf_ca_calls_total",
            "counter",
            "Calls to the issuer, by certificate issuer mode and outcome (sessions and the Online CA poller).",
        );
        for mode in CaMode::ALL {
            for outcome in CaOutcome::ALL {
                let n = self
                    .ca_calls
                    .get(*mode as usize)
                    .and_then(|r| r.get(*outcome as usize))
                    .map_or(0, |c| c.load(Relaxed));
                let _ = writeln!(
                    out,
                    "capf_ca_calls_total{{mode=\"{}\",outcome=\"{}\"}} {n}",
                    mode.as_str(),
                    outcome.as_str()
                );
            }
        }
        header(
            &mut out,
            "capf_ca_call_seconds",
            "histogram",
            "How long calls to the issuer took, by certificate issuer mode.",
        );
        for (mode, h) in CaMode::ALL.iter().zip(&self.ca_duration) {
            h.render(
                &mut out,
                "capf_ca_call_seconds",
                &format!("mode=\"{}\",", mode.as_str()),
            );
        }
        header(
            &mut out,
            "capf_store_call_seconds",
            "histogram",
            "How long the sessions' store calls ran on the blocking pool.",
        );
        self.store_calls
            .render(&mut out, "capf_store_call_seconds", "");
        header(
            &mut out,
            "capf_store_call_errors_total",
            "counter",
            "Sessions' store calls that failed.",
        );
        let errors = self.store_errors.load(Relaxed);
        let _ = writeln!(out, "capf_store_call_errors_total {errors}");
        header(
            &mut out,
            "capf_tls_handshakes_total",
            "counter",
            "TLS handshakes completed on the rustls listeners, full (the CAPF key signed) or resumed.",
        );
        for kind in HandshakeKind::ALL {
            let n = self
                .handshakes
                .get(*kind as usize)
                .map_or(0, |c| c.load(Relaxed));
            let _ = writeln!(
                out,
                "capf_tls_handshakes_total{{kind=\"{}\"}} {n}",
                kind.as_str()
            );
        }
        let not_after = self.capf_not_after.load(Relaxed);
        if not_after != i64::MIN {
            let now = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            header(
                &mut out,
                "capf_certificate_not_after_timestamp_seconds",
                "gauge",
                "The CAPF certificate's notAfter, in seconds since the Unix epoch.",
            );
            let _ = writeln!(
                out,
                "capf_certificate_not_after_timestamp_seconds {not_after}"
            );
            header(
                &mut out,
                "capf_certificate_expiry_seconds",
                "gauge",
                "Seconds until the CAPF certificate's notAfter (negative once expired).",
            );
            let _ = writeln!(
                out,
                "capf_certificate_expiry_seconds {}",
                not_after.saturating_sub(now)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The value of the sample `line_start` (the name with its labels).
    fn sample(text: &str, name_and_labels: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {name_and_labels} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn counts_enrollments_by_operation_and_outcome() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.enrollment(Operation::InstallUpgrade, Outcome::Succeeded);
        }
        m.enrollment(Operation::None, Outcome::UnknownDevice);
        let text = m.render(SystemTime::now());
        assert_eq!(
            sample(
                &text,
                "capf_enrollments_total{operation=\"install_upgrade\",outcome=\"succeeded\"}"
            ),
            3.0
        );
        assert_eq!(
            sample(
                &text,
                "capf_enrollments_total{operation=\"none\",outcome=\"unknown_device\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "capf_enrollments_total{operation=\"delete\",outcome=\"failed\"}"
            ),
            0.0
        );
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::new();
        m.certificate_ready(Duration::from_millis(300), Some(Duration::from_millis(4)));
        m.certificate_ready(Duration::from_secs(7200), None);
        let text = m.render(SystemTime::now());
        assert_eq!(
            sample(&text, "capf_enrollment_seconds_bucket{le=\"0.25\"}"),
            0.0
        );
        assert_eq!(
            sample(&text, "capf_enrollment_seconds_bucket{le=\"0.5\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "capf_enrollment_seconds_bucket{le=\"3600\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "capf_enrollment_seconds_bucket{le=\"+Inf\"}"),
            2.0
        );
        assert_eq!(sample(&text, "capf_enrollment_seconds_count"), 2.0);
        assert!((sample(&text, "capf_enrollment_seconds_sum") - 7200.3).abs() < 1e-6);
        assert_eq!(sample(&text, "capf_key_to_certificate_seconds_count"), 1.0);
        assert_eq!(
            sample(
                &text,
                "capf_key_to_certificate_seconds_bucket{le=\"0.005\"}"
            ),
            1.0
        );
    }

    #[test]
    fn labelled_histograms_and_ca_calls() {
        let m = Metrics::new();
        m.ca_call(
            CaMode::OnlineEst,
            CaOutcome::Issued,
            Duration::from_millis(40),
        );
        m.ca_call(
            CaMode::OnlineEst,
            CaOutcome::Unreachable,
            Duration::from_secs(20),
        );
        let text = m.render(SystemTime::now());
        assert_eq!(
            sample(
                &text,
                "capf_ca_calls_total{mode=\"online_est\",outcome=\"issued\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                "capf_ca_call_seconds_bucket{mode=\"online_est\",le=\"0.05\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(&text, "capf_ca_call_seconds_count{mode=\"online_est\"}"),
            2.0
        );
        assert_eq!(
            sample(&text, "capf_ca_call_seconds_count{mode=\"capf\"}"),
            0.0
        );
    }

    #[test]
    fn session_states_move_and_gauges_follow() {
        let m = Metrics::new();
        m.session_state(None, Some(SessionState::Authenticating));
        m.session_state(None, Some(SessionState::Authenticating));
        m.session_state(
            Some(SessionState::Authenticating),
            Some(SessionState::KeyGeneration),
        );
        m.key_generation(1, 2);
        m.authentication_failed(AuthKind::AuthenticationString, true);
        let text = m.render(SystemTime::now());
        assert_eq!(
            sample(&text, "capf_sessions{state=\"authenticating\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "capf_sessions{state=\"key_generation\"}"),
            1.0
        );
        assert_eq!(sample(&text, "capf_key_generation_active"), 1.0);
        assert_eq!(sample(&text, "capf_key_generation_queued"), 2.0);
        assert_eq!(sample(&text, "capf_authentication_lockouts_total"), 1.0);
        assert_eq!(
            sample(
                &text,
                "capf_authentication_failures_total{mode=\"authentication_string\"}"
            ),
            1.0
        );
    }

    #[test]
    fn the_capf_certificate_expiry_counts_from_now() {
        let m = Metrics::new();
        assert!(
            !m.render(UNIX_EPOCH)
                .contains("capf_certificate_expiry_seconds")
        );
        let issuer = capf_test_support::capf_issuer(capf_lsc::KeySpec::Ec(capf_lsc::Curve::P256));
        let certificate = issuer.certificate().clone();
        m.capf_certificate(&certificate);
        let not_after = certificate
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time();
        let now = not_after - Duration::from_secs(86_400);
        let text = m.render(now);
        assert_eq!(sample(&text, "capf_certificate_expiry_seconds"), 86_400.0);
    }

    #[test]
    fn every_sample_has_help_and_type_and_parses() {
        let m = Metrics::new();
        m.store_call(Duration::from_micros(700), false);
        let text = m.render(SystemTime::now());
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                typed.insert(name.to_owned());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
            let name = series.split('{').next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
                .unwrap_or(name);
            assert!(typed.contains(base), "no TYPE before {line}");
        }
        assert_eq!(sample(&text, "capf_store_call_errors_total"), 1.0);
        assert_eq!(
            sample(&text, "capf_store_call_seconds_bucket{le=\"0.001\"}"),
            1.0
        );
    }
}
