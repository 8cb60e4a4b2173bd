//! The Online CA mode's background work (issue 14): its settings refreshed from the store with
//! CAPF-trust as the anchors of its TLS, and its pending requests polled, honouring the CA's
//! Retry-After (bounded by `ca_retry_delay`, so a certificate is there when the phone comes
//! back). Every certificate, in a session or from a poll, is checked with capf-trust's
//! `check_external_lsc` before it is recorded with `ca_request_issued`; the phone gets it at
//! its next session.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use capf_ca::http::TrustAnchors;
use capf_ca::{Error as CaError, IssuedLsc, OnlineAnswer};
use capf_lsc::{CertificateIssuer, DeviceName};
use capf_store::CaRequest;
use capf_trust::{Purpose, check_external_lsc};
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::Error;
use crate::handler::EnrollmentService;
use crate::metrics::CaOutcome;

/// How long a session waits for an online CA's answer by default.
pub const CA_CALL_DEADLINE: Duration = Duration::from_secs(10);
/// How often the poller looks for requests that are due.
pub const POLL_TICK: Duration = Duration::from_secs(1);
/// The shortest wait between two polls of one request.
const MIN_POLL: Duration = Duration::from_secs(1);
/// How long the Online CA's last seen reachability (from a call, a poll or a probe) answers
/// readiness before a probe asks again: probes never hammer the CA, whatever the probe rate.
pub const CA_READY_TTL: Duration = Duration::from_secs(10);
/// How long a readiness probe (a CA certificates request) may take.
pub const CA_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Online CA's reachability as last seen.
#[derive(Debug, Clone)]
pub(crate) struct CaHealth {
    at: Instant,
    /// Why the CA is not reachable; `None` when it answered.
    problem: Option<String>,
}

/// The CA could not be asked (unreachable, no answer in time, a server or TLS error, not
/// configured): worth asking again later, and it makes the Online CA mode not ready.
pub(crate) fn is_unreachable(e: &CaError) -> bool {
    matches!(
        e,
        CaError::Unreachable { .. }
            | CaError::Timeout { .. }
            | CaError::Http { .. }
            | CaError::ServerError { .. }
            | CaError::Tls { .. }
            | CaError::NotConfigured { .. }
    )
}

/// The `outcome` label of a CA call that failed with `e`.
pub(crate) fn ca_error_outcome(e: &CaError) -> CaOutcome {
    if is_unreachable(e) {
        CaOutcome::Unreachable
    } else {
        CaOutcome::Refused
    }
}

impl EnrollmentService {
    /// Notes what an Online CA call showed of the CA's reachability (for readiness).
    pub(crate) fn online_ca_answered(&self, answer: Result<(), &CaError>) {
        let problem = match answer {
            Err(e) if is_unreachable(e) => Some(e.to_string()),
            // It answered, even with a refusal: it is there.
            _ => None,
        };
        self.set_ca_health(problem);
    }

    /// An Online CA call got no answer in the session's time.
    pub(crate) fn online_ca_timed_out(&self) {
        self.set_ca_health(Some(format!(
            "the online CA did not answer within {} s",
            self.ca_call_deadline.as_secs()
        )));
    }

    fn set_ca_health(&self, problem: Option<String>) {
        *self
            .ca_health
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(CaHealth {
            at: Instant::now(),
            problem,
        });
    }

    /// The reachability last seen, if seen within [`CA_READY_TTL`].
    fn fresh_ca_health(&self) -> Option<Result<(), String>> {
        let health = self
            .ca_health
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let health = health.as_ref()?;
        (health.at.elapsed() < CA_READY_TTL).then(|| health.problem.clone().map_or(Ok(()), Err))
    }

    /// Whether the Online CA is reachable, for readiness: `None` when the certificate issuer
    /// is not the Online CA; else what a CA call, a poll or a probe saw within
    /// [`CA_READY_TTL`], or else a probe now (a CA certificates request, at most
    /// [`CA_PROBE_TIMEOUT`]; concurrent callers share it). `Err` says why it is not ready.
    pub async fn online_ca_readiness(&self) -> Option<Result<(), String>> {
        if self.settings().certificate_issuer != CertificateIssuer::OnlineCa {
            return None;
        }
        let Some(online) = self.online.as_ref() else {
            return Some(Err("this server runs no Online CA".to_owned()));
        };
        if let Some(fresh) = self.fresh_ca_health() {
            return Some(fresh);
        }
        let _probing = self.ca_probe.lock().await;
        // A probe that finished while this one waited answers for it.
        if let Some(fresh) = self.fresh_ca_health() {
            return Some(fresh);
        }
        let problem = match online.client() {
            Err(e) => Some(e.to_string()),
            Ok(client) => {
                match tokio::time::timeout(CA_PROBE_TIMEOUT, client.ca_certificates()).await {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => is_unreachable(&e).then(|| e.to_string()),
                    Err(_) => Some(format!(
                        "the online CA did not answer a CA certificates request within {} s",
                        CA_PROBE_TIMEOUT.as_secs()
                    )),
                }
            }
        };
        self.set_ca_health(problem.clone());
        Some(problem.map_or(Ok(()), Err))
    }

    /// Checks a certificate the online CA sent for request `id` (capf-trust's
    /// `check_external_lsc`, against CAPF-trust now) and records it; `Ok(Err(reason))` when
    /// it is refused (the request is then Failed with that reason).
    pub(crate) async fn accept_external(
        &self,
        id: i64,
        device: &DeviceName,
        der: Vec<u8>,
        chain: Vec<Vec<u8>>,
        public_key: Vec<u8>,
    ) -> Result<Result<IssuedLsc, String>, Error> {
        let trust = self.trust();
        let device = device.clone();
        let checked = tokio::task::spawn_blocking(move || {
            check_external_lsc(
                &der,
                &device,
                &public_key,
                &chain,
                &trust,
                SystemTime::now(),
            )
            .map(|c| c.issued)
        })
        .await
        .map_err(|source| Error::Task {
            context: "checking the online CA's certificate",
            source,
        })?;
        match checked {
            Ok(lsc) => {
                let record = lsc.clone();
                self.store_call("record CA certificate", move |s| {
                    s.ca_request_issued(id, &record, SystemTime::now())
                })
                .await?;
                self.polls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                Ok(Ok(lsc))
            }
            Err(refusal) => {
                let reason = format!("the online CA's certificate is refused: it {refusal}");
                warn!(request = id, %reason, "online CA certificate refused");
                let failed = reason.clone();
                self.store_call("CA request failed", move |s| {
                    s.ca_request_failed(id, &failed, SystemTime::now())
                })
                .await?;
                Ok(Err(reason))
            }
        }
    }

    /// Request `id` is pending with the online CA: records the CA's handle and when to ask
    /// again.
    pub(crate) async fn online_pending(
        &self,
        id: i64,
        ca_request_id: Option<String>,
        retry_after: Option<Duration>,
    ) -> Result<(), Error> {
        if ca_request_id.is_some() {
            self.store_call("CA request pending", move |s| {
                s.ca_request_pending(id, ca_request_id.as_deref(), SystemTime::now())
            })
            .await?;
        }
        self.schedule_poll(id, retry_after.unwrap_or(Duration::ZERO));
        Ok(())
    }

    /// Keeps the poller off request `id` for `hold` (the session that just recorded it asks
    /// the CA itself; a poll meanwhile would ask twice and race it to record the answer).
    pub(crate) fn hold_poll(&self, id: i64, hold: Duration) {
        if let Some(at) = Instant::now().checked_add(hold) {
            self.polls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, at);
        }
    }

    fn schedule_poll(&self, id: i64, retry_after: Duration) {
        let bound = self.settings().ca_retry_delay;
        let wait = retry_after.clamp(MIN_POLL, bound.max(MIN_POLL));
        if let Some(at) = Instant::now().checked_add(wait) {
            self.polls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, at);
        }
    }

    /// Applies the Online CA settings in the store, with CAPF-trust as the anchors of the
    /// CA's HTTPS certificate (what `online-ca cacerts --add-to-trust` and the guide's
    /// uploads put there).
    pub async fn refresh_online_ca(&self) {
        let Some(online) = self.online.as_ref() else {
            return;
        };
        let _applying = self.online_refresh.lock().await;
        match self
            .store_call("Online CA settings", |s| s.online_ca_config())
            .await
        {
            Ok(config) => {
                let anchors = TrustAnchors::from_der(
                    self.trust()
                        .certificates(&Purpose::CAPF_TRUST)
                        .iter()
                        .map(|c| c.der().to_vec()),
                );
                online.configure(config, anchors);
            }
            Err(e) => warn!(error = %e, "reading the Online CA settings"),
        }
    }

    /// One pass of the poller: asks the online CA about every pending Online CA request that
    /// is due. Requests it has not seen yet (after a restart) are due at once.
    pub async fn poll_online_ca(&self) {
        let Some(online) = self.online.as_ref() else {
            return;
        };
        let pending = match self
            .store_call("pending CA requests", |s| {
                s.pending_ca_requests(CertificateIssuer::OnlineCa)
            })
            .await
        {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "listing pending Online CA requests");
                return;
            }
        };
        if pending.is_empty() {
            return;
        }
        let Ok(client) = online.client() else {
            return;
        };
        let now = Instant::now();
        for request in pending {
            let due = self
                .polls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&request.id)
                .is_none_or(|at| *at <= now);
            if !due {
                continue;
            }
            // Until this poll answers, the next is not due.
            self.schedule_poll(request.id, self.settings().ca_retry_delay);
            let label = self.ca_mode_label(CertificateIssuer::OnlineCa);
            let started = Instant::now();
            let answer = client
                .poll(&request.csr, request.ca_request_id.as_deref())
                .await;
            let outcome = match &answer {
                Ok(OnlineAnswer::Issued { .. }) => CaOutcome::Issued,
                Ok(OnlineAnswer::Pending { .. }) => CaOutcome::Pending,
                Err(e) => ca_error_outcome(e),
            };
            self.metrics().ca_call(label, outcome, started.elapsed());
            self.online_ca_answered(answer.as_ref().map(|_| ()));
            if let Err(e) = self.apply_poll(&request, answer).await {
                warn!(error = %e, request = request.id, "recording the online CA's answer");
            }
        }
    }

    async fn apply_poll(
        &self,
        request: &CaRequest,
        answer: Result<OnlineAnswer, CaError>,
    ) -> Result<(), Error> {
        let id = request.id;
        match answer {
            Ok(OnlineAnswer::Issued { certificate, chain }) => {
                if let Ok(lsc) = self
                    .accept_external(
                        id,
                        &request.device,
                        certificate,
                        chain,
                        request.public_key.clone(),
                    )
                    .await?
                {
                    info!(device = %request.device, request = id, serial = %capf_lsc::hex(&lsc.serial), "the online CA issued the pending request; delivered at the phone's next session");
                }
                Ok(())
            }
            Ok(OnlineAnswer::Pending {
                ca_request_id,
                retry_after,
            }) => {
                self.online_pending(id, ca_request_id, Some(retry_after))
                    .await
            }
            Err(e) if is_unreachable(&e) => {
                // Worth asking again: the request stays pending.
                warn!(request = id, error = %e, "the online CA could not answer; asking again later");
                Ok(())
            }
            Err(e) => {
                let reason = format!("the online CA refused the request: {e}");
                info!(device = %request.device, request = id, %reason, "online CA request failed");
                self.polls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                self.store_call("CA request failed", move |s| {
                    s.ca_request_failed(id, &reason, SystemTime::now())
                })
                .await
                .map(|_| ())
            }
        }
    }
}

/// Refreshes the Online CA settings every `refresh` and polls due requests every
/// [`POLL_TICK`], for as long as the server runs. The two run side by side: a poll waiting on
/// a slow CA never delays the settings, and the settings are re-read on `refresh`'s own
/// schedule (not rounded up to a poll tick), so `capfctl online-ca set` is in force within
/// `refresh`, as every other setting is.
pub async fn run(service: Arc<EnrollmentService>, refresh: Duration) {
    let settings = async {
        let mut tick = tokio::time::interval(refresh);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            service.refresh_online_ca().await;
        }
    };
    let polls = async {
        let mut tick = tokio::time::interval(POLL_TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            service.poll_online_ca().await;
        }
    };
    tokio::join!(settings, polls);
}
