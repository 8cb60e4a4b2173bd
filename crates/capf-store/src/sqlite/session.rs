//! The session lifecycle on SQLite: [`SessionStore`] for [`SqliteStore`].

use std::time::SystemTime;

use capf_lsc::DeviceName;
use rusqlite::params;

use super::{
    DeviceRow, append_audit, bulk, ca, check_lsc, describe_time, list_of, load, load_lsc,
    load_required, move_lscs, set_lsc_state, to_unix,
};
use crate::auth;
use crate::types::hex;
use crate::{
    AttemptEnd, CaRequest, Device, DeviceQuery, Error, FetchedCertificate, IssuedLsc, LscRecord,
    LscState, NewCaRequest, Operation, OperationStatus, SessionStore, Settings, SqliteStore,
    StatusKind, action,
};

impl SessionStore for SqliteStore {
    fn device(&self, name: &DeviceName) -> Result<Option<Device>, Error> {
        Ok(load(&self.lock(), name)?.map(|r| r.device))
    }

    fn check_auth_string(&self, name: &DeviceName, candidate: &str) -> Result<bool, Error> {
        let row = load_required(&self.lock(), name)?;
        Ok(match &row.auth_hash {
            Some(expected) => auth::verify(&self.key, &row.device.name, candidate, expected),
            None => false,
        })
    }

    fn record_auth_failure(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error> {
        self.change(name, now, action::AUTH_FAILURE, |_, row| {
            let d = &mut row.device;
            d.auth_failures = d.auth_failures.saturating_add(1);
            d.last_auth_failure = Some(now);
            Ok(Some(format!(
                "failed authentication-string attempt {} in a row",
                d.auth_failures
            )))
        })
    }

    fn begin_attempt(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error> {
        // Not synced on its own (issue 19): nothing outside depends on it before the attempt's
        // next write (an LSC issued, the attempt's end), whose sync makes it durable first; a
        // crash before then loses only the attempt's beginning, which was not yet a result.
        self.change_in(false, name, now, action::ATTEMPT_BEGUN, |_, row| {
            let d = &mut row.device;
            if !d.has_operation_to_run() {
                return Err(Error::NoOperationToRun {
                    device: d.name.to_string(),
                    operation: d.operation,
                    status: d.status.clone(),
                });
            }
            let was = d.status.clone();
            d.status = OperationStatus::InProgress;
            d.attempts = d.attempts.saturating_add(1);
            d.auth_failures = 0;
            Ok(Some(format!(
                "attempt {} of {} (was {was})",
                d.attempts, d.operation
            )))
        })
    }

    fn record_ec_key_generation_failure(
        &self,
        name: &DeviceName,
        now: SystemTime,
    ) -> Result<Device, Error> {
        self.change(name, now, action::EC_KEY_GENERATION_FAILED, |_, row| {
            row.device.ec_key_generation_failed = true;
            Ok(Some(format!(
                "the phone could not generate an EC key in attempt {}",
                row.device.attempts
            )))
        })
    }

    fn record_lsc_issued(
        &self,
        name: &DeviceName,
        lsc: &IssuedLsc,
        now: SystemTime,
    ) -> Result<LscRecord, Error> {
        check_lsc(
            name.as_str(),
            &lsc.serial,
            &lsc.der,
            lsc.not_before,
            lsc.not_after,
        )?;
        self.write(Some(name), |tx| {
            let device = load_required(tx, name)?.device;
            if let Some(existing) = load_lsc(tx, &lsc.serial)? {
                return Err(Error::DuplicateSerial {
                    serial: hex(&lsc.serial),
                    owner: existing.device.into_string(),
                });
            }
            let stale = move_lscs(tx, &device.name, LscState::Issued, LscState::Stale, now)?;
            let stale_requests = ca::stale_issued(tx, &device.name, now)?;
            tx.prepare_cached(
                "INSERT INTO lscs (serial, device, der, not_before, not_after, issued_at, state, \
                 state_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    lsc.serial,
                    device.name.as_str(),
                    lsc.der,
                    to_unix(lsc.not_before),
                    to_unix(lsc.not_after),
                    to_unix(now),
                    LscState::Issued.as_str(),
                ])
            })
            .map_err(Error::db_device("recording the LSC", &device.name))?;
            let mut detail = format!(
                "serial {}, valid unix {} to {}, attempt {}",
                hex(&lsc.serial),
                to_unix(lsc.not_before),
                to_unix(lsc.not_after),
                device.attempts
            );
            if !stale.is_empty() {
                detail.push_str("; now stale: ");
                detail.push_str(&list_of(&stale));
            }
            for id in stale_requests {
                detail.push_str(&format!("; certificate request {id} stale"));
            }
            append_audit(tx, now, Some(&device.name), action::LSC_ISSUED, &detail)?;
            load_lsc(tx, &lsc.serial)?.ok_or_else(|| Error::UnknownLsc {
                serial: hex(&lsc.serial),
            })
        })
    }

    fn confirm_lsc_installed(
        &self,
        name: &DeviceName,
        serial: &[u8],
        now: SystemTime,
    ) -> Result<Device, Error> {
        self.change(name, now, action::LSC_INSTALLED, |tx, row| {
            let d = &mut row.device;
            let lsc = load_lsc(tx, serial)?.ok_or_else(|| Error::UnknownLsc {
                serial: hex(serial),
            })?;
            if !lsc.device.eq_ignore_ascii_case(&d.name) {
                return Err(Error::LscOfAnotherDevice {
                    serial: hex(serial),
                    device: d.name.to_string(),
                    owner: lsc.device.into_string(),
                });
            }
            if lsc.state != LscState::Issued {
                return Err(Error::LscWrongState {
                    serial: hex(serial),
                    state: lsc.state,
                    wanted: "confirmed as installed",
                });
            }
            let superseded =
                move_lscs(tx, &d.name, LscState::Installed, LscState::Superseded, now)?;
            set_lsc_state(tx, serial, LscState::Installed, now)?;
            let delivered = ca::deliver(tx, serial, now)?;
            let mut detail = format!(
                "serial {} installed; {} succeeded after {} attempt(s)",
                hex(serial),
                d.operation,
                d.attempts
            );
            if let Some(id) = delivered {
                detail.push_str(&format!("; certificate request {id} delivered"));
            }
            if !superseded.is_empty() {
                detail.push_str("; superseded: ");
                detail.push_str(&list_of(&superseded));
            }
            succeed(row, &mut detail);
            Ok(Some(detail))
        })
    }

    fn record_delete_done(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error> {
        self.change(name, now, action::DELETE_DONE, |tx, row| {
            let deleted = move_lscs(
                tx,
                &row.device.name,
                LscState::Installed,
                LscState::Deleted,
                now,
            )?;
            let mut detail = format!(
                "the phone deleted its LSC; deleted: {}",
                if deleted.is_empty() {
                    "none recorded".to_owned()
                } else {
                    list_of(&deleted)
                }
            );
            succeed(row, &mut detail);
            Ok(Some(detail))
        })
    }

    fn record_fetch_done(
        &self,
        name: &DeviceName,
        certificate: Option<(u8, Vec<u8>)>,
        now: SystemTime,
    ) -> Result<Device, Error> {
        self.change(name, now, action::FETCH_DONE, |tx, row| {
            let (cert_type, der) = match &certificate {
                Some((t, der)) => (Some(*t), Some(der.as_slice())),
                None => (None, None),
            };
            tx.prepare_cached(
                "INSERT INTO troubleshoot_results (device, cert_type, der, fetched_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    row.device.name.as_str(),
                    cert_type,
                    der,
                    to_unix(now)
                ])
            })
            .map_err(Error::db_device("storing the troubleshoot result", name))?;
            let mut detail = match &certificate {
                Some((FetchedCertificate::LSC, der)) => {
                    format!("the phone sent its LSC ({} bytes)", der.len())
                }
                Some((FetchedCertificate::MIC, der)) => {
                    format!("the phone sent its MIC ({} bytes)", der.len())
                }
                Some((t, der)) => {
                    format!(
                        "the phone sent a certificate of type {t} ({} bytes)",
                        der.len()
                    )
                }
                None => "the phone sent no certificate".to_owned(),
            };
            succeed(row, &mut detail);
            Ok(Some(detail))
        })
    }

    fn end_attempt(
        &self,
        name: &DeviceName,
        end: AttemptEnd,
        now: SystemTime,
    ) -> Result<Device, Error> {
        let action = match end {
            AttemptEnd::Interrupted { .. } => action::ATTEMPT_INTERRUPTED,
            AttemptEnd::Failed { .. } => action::ATTEMPT_FAILED,
        };
        self.change(name, now, action, |_, row| {
            let d = &mut row.device;
            if d.status != OperationStatus::InProgress {
                return Ok(None);
            }
            let detail;
            match end {
                AttemptEnd::Interrupted { reason } => {
                    detail = format!("attempt {} interrupted: {reason}", d.attempts);
                    d.status = OperationStatus::Pending;
                    d.last_error = Some(reason);
                }
                AttemptEnd::Failed { reason } => {
                    detail = format!("attempt {} failed: {reason}", d.attempts);
                    d.last_error = Some(reason.clone());
                    d.status = OperationStatus::Failed { reason };
                }
            }
            Ok(Some(detail))
        })
    }

    fn mark_expired(&self, name: &DeviceName, now: SystemTime) -> Result<Device, Error> {
        self.change(name, now, action::OPERATION_EXPIRED, |_, row| {
            let d = &mut row.device;
            if !d.has_operation_to_run() {
                return Ok(None);
            }
            let detail = format!(
                "{} (was {}) not done by {}, after {} attempt(s)",
                d.operation,
                d.status,
                describe_time(d.complete_by),
                d.attempts
            );
            d.status = OperationStatus::Expired;
            Ok(Some(detail))
        })
    }

    fn record_refused_session(
        &self,
        name: &DeviceName,
        reason: &str,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.write(Some(name), |tx| {
            let row = load_required(tx, name)?;
            append_audit(
                tx,
                now,
                Some(row.device.name.as_str()),
                action::SESSION_REFUSED,
                reason,
            )
        })
    }

    fn batches(&self) -> bool {
        true
    }

    fn begin_batch(&self) {
        self.conn.begin_batch();
    }

    fn end_batch(&self) -> Result<(), Error> {
        self.conn.end_batch()
    }

    fn settings(&self) -> Result<Settings, Error> {
        let conn = self.lock();
        let rows = conn
            .prepare_cached("SELECT key, value FROM settings")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(Error::db("reading the settings"))?;
        let mut settings = Settings::default();
        for (key, value) in rows {
            settings.apply_row(&key, &value)?;
        }
        Ok(settings)
    }

    fn open_ca_request(&self, name: &DeviceName) -> Result<Option<CaRequest>, Error> {
        ca::open_request(&self.lock(), name)
    }

    fn issued_lsc(&self, name: &DeviceName, serial: &[u8]) -> Result<Option<LscRecord>, Error> {
        Ok(load_lsc(&self.lock(), serial)?.filter(|lsc| {
            lsc.state == LscState::Issued && lsc.device.as_str().eq_ignore_ascii_case(name.as_str())
        }))
    }

    fn record_ca_request(
        &self,
        name: &DeviceName,
        request: &NewCaRequest<'_>,
        now: SystemTime,
    ) -> Result<CaRequest, Error> {
        self.write(Some(name), |tx| ca::record(tx, name, request, now))
    }

    fn ca_request_issued(
        &self,
        id: i64,
        lsc: &IssuedLsc,
        now: SystemTime,
    ) -> Result<CaRequest, Error> {
        self.write(None, |tx| ca::issued(tx, id, lsc, now))
    }

    fn ca_requests_issued(
        &self,
        issued: &[(i64, IssuedLsc)],
        now: SystemTime,
    ) -> Result<Vec<Result<CaRequest, Error>>, Error> {
        // One transaction (one sync for the whole import), a savepoint per certificate so a
        // refused one is undone alone.
        self.write(None, |tx| {
            let mut results = Vec::with_capacity(issued.len());
            for (id, lsc) in issued {
                tx.execute_batch("SAVEPOINT ca_request_issued")
                    .map_err(Error::db("opening a savepoint"))?;
                match ca::issued(tx, *id, lsc, now) {
                    Ok(request) => {
                        tx.execute_batch("RELEASE ca_request_issued")
                            .map_err(Error::db("releasing a savepoint"))?;
                        results.push(Ok(request));
                    }
                    Err(e) if e.is_ca_request_refusal() => {
                        tx.execute_batch(
                            "ROLLBACK TO ca_request_issued; RELEASE ca_request_issued",
                        )
                        .map_err(Error::db("rolling a savepoint back"))?;
                        results.push(Err(e));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(results)
        })
    }

    fn ca_request_failed(
        &self,
        id: i64,
        reason: &str,
        now: SystemTime,
    ) -> Result<CaRequest, Error> {
        self.write(None, |tx| ca::failed(tx, id, reason, now))
    }

    fn online_ca_config(&self) -> Result<Option<capf_lsc::OnlineCaConfig>, Error> {
        super::online_ca::load(&self.lock(), &self.key)
    }

    fn ca_request_pending(
        &self,
        id: i64,
        ca_request_id: Option<&str>,
        now: SystemTime,
    ) -> Result<CaRequest, Error> {
        self.write(None, |tx| ca::pending(tx, id, ca_request_id, now))
    }

    fn pending_ca_requests(
        &self,
        mode: capf_lsc::CertificateIssuer,
    ) -> Result<Vec<CaRequest>, Error> {
        ca::pending_of_mode(&self.lock(), mode)
    }

    fn installed_lsc_mode(
        &self,
        name: &DeviceName,
    ) -> Result<Option<capf_lsc::CertificateIssuer>, Error> {
        ca::installed_lsc_mode(&self.lock(), name)
    }

    fn lsc_state(&self, name: &DeviceName, serial: &[u8]) -> Result<Option<LscState>, Error> {
        Ok(load_lsc(&self.lock(), serial)?
            .filter(|lsc| lsc.device.as_str().eq_ignore_ascii_case(name.as_str()))
            .map(|lsc| lsc.state))
    }

    fn devices_in_progress(&self) -> Result<Vec<Device>, Error> {
        // By the status index: a start with 100,000 devices reads only those in progress.
        let query = DeviceQuery {
            status: Some(StatusKind::InProgress),
            ..DeviceQuery::default()
        };
        Ok(bulk::query_rows(&self.lock(), &query)?
            .into_iter()
            .map(|r| r.device)
            .collect())
    }
}

/// The operation succeeded: operation None, status Success, last error and the one-time
/// authentication string cleared.
pub(crate) fn succeed(row: &mut DeviceRow, detail: &mut String) {
    let d = &mut row.device;
    d.operation = Operation::None;
    d.status = OperationStatus::Success;
    d.last_error = None;
    if row.auth_hash.take().is_some() {
        detail.push_str("; authentication string cleared");
    }
}
