//! The session lifecycle on PostgreSQL: [`SessionStore`] for [`PgStore`]. The same changes as
//! SQLite's (`sqlite/session.rs`), each under the device's row lock; `begin_attempt` also
//! leases the attempt to this node.

use std::time::SystemTime;

use capf_lsc::{CertificateIssuer, DeviceName, OnlineCaConfig};

use super::{
    PgStore, append_audit, bulk, ca, col, insert_issued_lsc, load, load_locked, load_lsc,
    load_required, move_lscs, set_lsc_state,
};
use crate::auth;
use crate::sqlite::{check_lsc, describe_time, list_of, succeed, to_unix};
use crate::types::hex;
use crate::{
    AttemptEnd, CaRequest, Device, DeviceQuery, Error, FetchedCertificate, IssuedLsc, LscRecord,
    LscState, NewCaRequest, OperationStatus, SessionStore, Settings, StatusKind, action,
};

impl SessionStore for PgStore {
    fn device(&self, name: &DeviceName) -> Result<Option<Device>, Error> {
        Ok(self.read(|tx| load(tx, name))?.map(|r| r.device))
    }

    fn check_auth_string(&self, name: &DeviceName, candidate: &str) -> Result<bool, Error> {
        let row = self.read(|tx| load_required(tx, name))?;
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
        let node = self.node.as_str();
        let until = to_unix(now).saturating_add(i64::try_from(self.lease.as_secs()).unwrap_or(0));
        self.write(Some(name), |tx| {
            let mut row = load_locked(tx, name)?;
            let d = &mut row.device;
            if !d.has_operation_to_run() {
                return Err(Error::NoOperationToRun {
                    device: d.name.to_string(),
                    operation: d.operation,
                    status: d.status.clone(),
                });
            }
            // Another node's attempt whose lease still runs: that node serves the phone.
            if d.status == OperationStatus::InProgress {
                let lease = tx.opt(
                    "SELECT lease_node, lease_until FROM devices WHERE name = $1",
                    &[&name.as_str()],
                    "reading the device's lease",
                )?;
                if let Some(lease) = lease {
                    let holder: Option<String> = col(&lease, 0)?;
                    let until: Option<i64> = col(&lease, 1)?;
                    if let (Some(holder), Some(until)) = (holder, until)
                        && holder != node
                        && until >= to_unix(now)
                    {
                        return Err(Error::AttemptOnAnotherNode {
                            device: d.name.to_string(),
                            node: holder,
                        });
                    }
                }
            }
            let was = d.status.clone();
            d.status = OperationStatus::InProgress;
            d.attempts = d.attempts.saturating_add(1);
            d.auth_failures = 0;
            let detail = format!(
                "attempt {} of {} (was {was}) on node {node}",
                d.attempts, d.operation
            );
            super::store_changed_device(tx, &mut row, now, action::ATTEMPT_BEGUN, &detail)?;
            tx.exec(
                "UPDATE devices SET lease_node = $2, lease_until = $3 WHERE name = $1",
                &[&name.as_str(), &node, &until],
                "leasing the attempt",
            )?;
            Ok(row.device)
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
            let device = load_locked(tx, name)?.device;
            if let Some(existing) = load_lsc(tx, &lsc.serial)? {
                return Err(Error::DuplicateSerial {
                    serial: hex(&lsc.serial),
                    owner: existing.device.into_string(),
                });
            }
            let stale = move_lscs(tx, &device.name, LscState::Issued, LscState::Stale, now)?;
            let stale_requests = ca::stale_issued(tx, &device.name, now)?;
            insert_issued_lsc(tx, &device.name, lsc, now)?;
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
                Some((t, der)) => (Some(i32::from(*t)), Some(der.as_slice())),
                None => (None, None),
            };
            tx.exec(
                "INSERT INTO troubleshoot_results (device, cert_type, der, fetched_at) \
                 VALUES ($1, $2, $3, $4)",
                &[&row.device.name.as_str(), &cert_type, &der, &to_unix(now)],
                "storing the troubleshoot result",
            )?;
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
            match &end {
                AttemptEnd::Interrupted { reason } => {
                    detail = format!("attempt {} interrupted: {reason}", d.attempts);
                    d.status = OperationStatus::Pending;
                    d.last_error = Some(reason.clone());
                }
                AttemptEnd::Failed { reason } => {
                    detail = format!("attempt {} failed: {reason}", d.attempts);
                    d.last_error = Some(reason.clone());
                    d.status = OperationStatus::Failed {
                        reason: reason.clone(),
                    };
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

    fn settings(&self) -> Result<Settings, Error> {
        let rows = self.read(|tx| {
            tx.rows(
                "SELECT key, value FROM settings",
                &[],
                "reading the settings",
            )
        })?;
        let mut settings = Settings::default();
        for row in &rows {
            let key: String = col(row, 0)?;
            let value: String = col(row, 1)?;
            settings.apply_row(&key, &value)?;
        }
        Ok(settings)
    }

    fn open_ca_request(&self, name: &DeviceName) -> Result<Option<CaRequest>, Error> {
        self.read(|tx| ca::open_request(tx, name))
    }

    fn issued_lsc(&self, name: &DeviceName, serial: &[u8]) -> Result<Option<LscRecord>, Error> {
        Ok(self.read(|tx| load_lsc(tx, serial))?.filter(|lsc| {
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
        // One transaction, a savepoint per certificate so a refused one is undone alone.
        self.write(None, |tx| {
            let mut results = Vec::with_capacity(issued.len());
            for (id, lsc) in issued {
                match tx.savepoint(|sp| ca::issued(sp, *id, lsc, now)) {
                    Err(e) if !e.is_ca_request_refusal() => return Err(e),
                    result => results.push(result),
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

    fn online_ca_config(&self) -> Result<Option<OnlineCaConfig>, Error> {
        self.read(|tx| bulk::load_online_ca(tx, &self.key))
    }

    fn ca_request_pending(
        &self,
        id: i64,
        ca_request_id: Option<&str>,
        now: SystemTime,
    ) -> Result<CaRequest, Error> {
        self.write(None, |tx| ca::pending(tx, id, ca_request_id, now))
    }

    fn pending_ca_requests(&self, mode: CertificateIssuer) -> Result<Vec<CaRequest>, Error> {
        self.read(|tx| ca::pending_of_mode(tx, mode))
    }

    fn installed_lsc_mode(&self, name: &DeviceName) -> Result<Option<CertificateIssuer>, Error> {
        self.read(|tx| ca::installed_lsc_mode(tx, name))
    }

    fn lsc_state(&self, name: &DeviceName, serial: &[u8]) -> Result<Option<LscState>, Error> {
        Ok(self
            .read(|tx| load_lsc(tx, serial))?
            .filter(|lsc| lsc.device.as_str().eq_ignore_ascii_case(name.as_str()))
            .map(|lsc| lsc.state))
    }

    fn devices_in_progress(&self) -> Result<Vec<Device>, Error> {
        let query = DeviceQuery {
            status: Some(StatusKind::InProgress),
            ..DeviceQuery::default()
        };
        Ok(self
            .read(|tx| bulk::query_rows(tx, &query, false))?
            .into_iter()
            .map(|r| r.device)
            .collect())
    }

    fn recover_attempts(&self, reason: &str, now: SystemTime) -> Result<Vec<Device>, Error> {
        self.write(None, |tx| {
            interrupt_where(
                tx,
                "lease_node = $1 OR lease_node IS NULL OR lease_until < $2",
                self.node.as_str(),
                reason,
                now,
            )
        })
    }

    fn renew_leases(&self, reason: &str, now: SystemTime) -> Result<Vec<Device>, Error> {
        let until = to_unix(now).saturating_add(i64::try_from(self.lease.as_secs()).unwrap_or(0));
        self.write(None, |tx| {
            tx.exec(
                "UPDATE devices SET lease_until = $2 WHERE status = 'in_progress' \
                 AND lease_node = $1",
                &[&self.node.as_str(), &until],
                "renewing the leases",
            )?;
            interrupt_where(
                tx,
                "lease_node <> $1 AND (lease_node IS NULL OR lease_until < $2)",
                self.node.as_str(),
                reason,
                now,
            )
        })
    }
}

/// Ends as Interrupted every attempt in progress that `condition` (over `$1` = this node and
/// `$2` = now) selects, each locked first, so an attempt another node begins meanwhile is not
/// ended.
fn interrupt_where(
    tx: &mut super::Tx<'_>,
    condition: &str,
    node: &str,
    reason: &str,
    now: SystemTime,
) -> Result<Vec<Device>, Error> {
    let sql = format!(
        "SELECT {} FROM devices WHERE status = 'in_progress' AND ({condition}) \
         ORDER BY name FOR UPDATE SKIP LOCKED",
        crate::sqlite::DEVICE_COLUMNS
    );
    let rows = tx.rows(&sql, &[&node, &to_unix(now)], "finding attempts to recover")?;
    let mut ended = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut device = super::parse_device(row)?;
        let d = &mut device.device;
        let detail = format!("attempt {} interrupted: {reason}", d.attempts);
        d.status = OperationStatus::Pending;
        d.last_error = Some(reason.to_owned());
        super::store_changed_device(tx, &mut device, now, action::ATTEMPT_INTERRUPTED, &detail)?;
        ended.push(device.device);
    }
    Ok(ended)
}
