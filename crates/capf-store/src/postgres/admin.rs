//! Administration on PostgreSQL: [`AdminStore`] for [`PgStore`], as SQLite's
//! (`sqlite/admin.rs`). Bulk inserts and updates by query are each one transaction.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_lsc::{DeviceName, OnlineCaConfig};

use super::{
    BULK_CHUNK, PgStore, Tx, accounts, append_audit, bulk, ca, col, insert_device, insert_devices,
    jobs, load_locked, load_lsc, parse_device, pg_device, query_lscs, set_lsc_state,
};
use crate::auth;
use crate::sqlite::{DEVICE_COLUMNS, added_detail, describe_time, from_unix, name_from_db};
use crate::types::hex;
use crate::{
    Account, AccountName, AdminStore, ApiToken, AuditEntry, BulkChange, CaRequest, CaRequestState,
    Device, DeviceChange, DevicePage, DeviceQuery, DeviceStore, DeviceTemplate, DeviceUpdate,
    DirectoryConfigRecord, DirectoryEntry, DirectorySyncOutcome, DirectorySyncState, Error,
    FetchedCertificate, Job, JobResult, JobState, JobWork, KeepaliveMinutes, LscRecord, LscState,
    NewAccount, NewDevice, NewJob, Operation, OperationStatus, Settings, StatusReport,
    TroubleshootResult, action,
};

impl AdminStore for PgStore {
    fn add_device(&self, new: &NewDevice, now: SystemTime) -> Result<Device, Error> {
        let auth_hash = self.tag(&new.name, new.auth_string.as_deref())?;
        self.write(Some(&new.name), |tx| {
            let inserted = insert_device(tx, new, auth_hash.as_deref(), now)
                .map_err(pg_device("adding the device", &new.name))?;
            if inserted == 0 {
                return Err(Error::DuplicateDevice {
                    name: new.name.to_string(),
                });
            }
            let detail = added_detail(new, auth_hash.is_some());
            append_audit(tx, now, Some(&new.name), action::DEVICE_ADDED, &detail)?;
            super::load_required(tx, &new.name).map(|r| r.device)
        })
    }

    fn remove_device(&self, name: &DeviceName, now: SystemTime) -> Result<(), Error> {
        self.write(Some(name), |tx| {
            let row = load_locked(tx, name)?;
            tx.exec(
                "DELETE FROM devices WHERE name = $1",
                &[&name.as_str()],
                "removing the device",
            )?;
            let kept = tx.opt(
                "SELECT count(*) FROM lscs WHERE device = $1",
                &[&name.as_str()],
                "counting the device's LSCs",
            )?;
            let kept: i64 = match &kept {
                Some(r) => col(r, 0)?,
                None => 0,
            };
            let detail = format!(
                "operation was {}, status {}; {kept} LSC record(s) kept",
                row.device.operation, row.device.status
            );
            append_audit(
                tx,
                now,
                Some(&row.device.name),
                action::DEVICE_REMOVED,
                &detail,
            )
        })
    }

    fn list_devices(&self) -> Result<Vec<Device>, Error> {
        let rows = self.read(|tx| {
            tx.rows(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY name"),
                &[],
                "listing the devices",
            )
        })?;
        rows.iter()
            .map(|r| parse_device(r).map(|d| d.device))
            .collect()
    }

    fn update_device(
        &self,
        name: &DeviceName,
        update: &DeviceUpdate,
        now: SystemTime,
    ) -> Result<Device, Error> {
        self.change(name, now, action::DEVICE_UPDATED, |_, row| {
            let d = &mut row.device;
            let mut changes = Vec::new();
            if let Some(description) = &update.description {
                changes.push(format!("description {description:?}"));
                d.description.clone_from(description);
            }
            if let Some(pool) = &update.device_pool {
                changes.push(format!("device pool {pool:?}"));
                d.device_pool.clone_from(pool);
            }
            if let Some(model) = &update.model {
                changes.push(format!("model {model:?}"));
                d.model.clone_from(model);
            }
            if let Some(mode) = update.auth_mode {
                changes.push(format!("auth mode {mode}"));
                d.auth_mode = mode;
            }
            Ok((!changes.is_empty()).then(|| changes.join(", ")))
        })
    }

    fn schedule(
        &self,
        name: &DeviceName,
        operation: Operation,
        complete_by: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<Device, Error> {
        self.change(name, now, action::OPERATION_SCHEDULED, |_, row| {
            let d = &mut row.device;
            let detail = format!(
                "{operation} (was {}, {}), complete by {}",
                d.operation,
                d.status,
                describe_time(complete_by)
            );
            d.operation = operation;
            d.status = if operation.is_none() {
                OperationStatus::None
            } else {
                OperationStatus::Pending
            };
            d.complete_by = complete_by;
            d.attempts = 0;
            d.ec_key_generation_failed = false;
            d.last_error = None;
            Ok(Some(detail))
        })
    }

    fn set_auth_string(
        &self,
        name: &DeviceName,
        auth_string: Option<&str>,
        now: SystemTime,
    ) -> Result<Device, Error> {
        if let Some(s) = auth_string {
            auth::validate(name, s)?;
        }
        let action = if auth_string.is_some() {
            action::AUTH_STRING_SET
        } else {
            action::AUTH_STRING_CLEARED
        };
        self.change(name, now, action, |_, row| {
            row.auth_hash = self.tag(&row.device.name, auth_string)?;
            Ok(Some(
                if auth_string.is_some() {
                    "authentication string set"
                } else {
                    "authentication string cleared"
                }
                .to_owned(),
            ))
        })
    }

    fn troubleshoot_results(&self, name: &DeviceName) -> Result<Vec<TroubleshootResult>, Error> {
        let rows = self.read(|tx| {
            tx.rows(
                "SELECT device, cert_type, der, fetched_at FROM troubleshoot_results \
                 WHERE device = $1 ORDER BY id",
                &[&name.as_str()],
                "listing troubleshoot results",
            )
        })?;
        rows.iter()
            .map(|r| {
                let device: String = col(r, 0)?;
                let cert_type: Option<i32> = col(r, 1)?;
                let der: Option<Vec<u8>> = col(r, 2)?;
                let fetched_at: i64 = col(r, 3)?;
                Ok(TroubleshootResult {
                    device: name_from_db(device, "troubleshoot_results", "device")?,
                    certificate: match (cert_type.and_then(|t| u8::try_from(t).ok()), der) {
                        (Some(cert_type), Some(der)) => Some(FetchedCertificate { cert_type, der }),
                        _ => None,
                    },
                    fetched_at: from_unix(fetched_at, "troubleshoot_results", "fetched_at")?,
                })
            })
            .collect()
    }

    fn lscs(&self, name: &DeviceName) -> Result<Vec<LscRecord>, Error> {
        self.read(|tx| {
            query_lscs(
                tx,
                "device = $1",
                &name.as_str(),
                "listing the device's LSCs",
            )
        })
    }

    fn lsc(&self, serial: &[u8]) -> Result<Option<LscRecord>, Error> {
        self.read(|tx| load_lsc(tx, serial))
    }

    fn stale_lscs(&self) -> Result<Vec<LscRecord>, Error> {
        self.read(|tx| {
            query_lscs(
                tx,
                "state = $1",
                &LscState::Stale.as_str(),
                "listing stale LSCs",
            )
        })
    }

    fn revoke_lsc(&self, serial: &[u8], now: SystemTime) -> Result<LscRecord, Error> {
        self.write(None, |tx| {
            tx.exec(
                "SELECT 1 FROM lscs WHERE serial = $1 FOR UPDATE",
                &[&serial],
                "locking the LSC",
            )?;
            let lsc = load_lsc(tx, serial)?.ok_or_else(|| Error::UnknownLsc {
                serial: hex(serial),
            })?;
            if lsc.state == LscState::Revoked {
                return Err(Error::LscWrongState {
                    serial: hex(serial),
                    state: lsc.state,
                    wanted: "revoked",
                });
            }
            set_lsc_state(tx, serial, LscState::Revoked, now)?;
            let detail = format!("serial {} revoked (was {})", hex(serial), lsc.state);
            append_audit(tx, now, Some(&lsc.device), action::LSC_REVOKED, &detail)?;
            load_lsc(tx, serial)?.ok_or_else(|| Error::UnknownLsc {
                serial: hex(serial),
            })
        })
    }

    fn update_settings(&self, settings: &Settings, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| {
            for (key, value) in settings.to_rows() {
                bulk::put_setting(tx, key, &value)?;
            }
            append_audit(
                tx,
                now,
                None,
                action::SETTINGS_UPDATED,
                &settings.to_string(),
            )
        })
    }

    fn set_online_ca_config(&self, config: &OnlineCaConfig, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| bulk::store_online_ca(tx, &self.key, config, now))
    }

    fn audit(&self, device: Option<&DeviceName>, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read(|tx| match device {
            Some(device) => tx.rows(
                "SELECT at, device, action, detail, actor FROM audit \
                 WHERE device = $1 ORDER BY id DESC LIMIT $2",
                &[&device.as_str(), &limit],
                "reading the audit log",
            ),
            None => tx.rows(
                "SELECT at, device, action, detail, actor FROM audit ORDER BY id DESC LIMIT $1",
                &[&limit],
                "reading the audit log",
            ),
        })?;
        rows.iter()
            .map(|r| {
                let device: Option<String> = col(r, 1)?;
                Ok(AuditEntry {
                    at: from_unix(col(r, 0)?, "audit", "at")?,
                    device: device
                        .map(|d| name_from_db(d, "audit", "device"))
                        .transpose()?,
                    action: col(r, 2)?,
                    detail: col(r, 3)?,
                    actor: col(r, 4)?,
                })
            })
            .collect()
    }

    fn add_devices(&self, devices: &[NewDevice], now: SystemTime) -> Result<usize, Error> {
        let hashes = self.tags(devices)?;
        self.write(None, |tx| add_devices_in(tx, devices, &hashes, now))
    }

    fn query_devices(&self, query: &DeviceQuery) -> Result<Vec<Device>, Error> {
        Ok(self
            .read(|tx| bulk::query_rows(tx, query, false))?
            .into_iter()
            .map(|r| r.device)
            .collect())
    }

    fn device_page(
        &self,
        query: &DeviceQuery,
        offset: usize,
        limit: usize,
    ) -> Result<DevicePage, Error> {
        let (rows, total) = self.read(|tx| bulk::query_page(tx, query, offset, limit))?;
        Ok(DevicePage {
            devices: rows.into_iter().map(|r| r.device).collect(),
            total,
        })
    }

    fn update_devices(
        &self,
        query: &DeviceQuery,
        change: &BulkChange,
        dry_run: bool,
        now: SystemTime,
    ) -> Result<Vec<DeviceChange>, Error> {
        self.write_once(None, dry_run, &mut |tx| {
            bulk::update_devices(tx, query, change, now)
        })
    }

    fn set_auth_strings(
        &self,
        strings: &[(DeviceName, String)],
        now: SystemTime,
    ) -> Result<(), Error> {
        self.write(None, |tx| {
            bulk::set_auth_strings(tx, &self.key, strings, now)
        })
    }

    fn status_report(&self, now: SystemTime) -> Result<StatusReport, Error> {
        self.read(|tx| bulk::status_report(tx, now))
    }

    fn lscs_expiring_before(&self, before: SystemTime) -> Result<Vec<LscRecord>, Error> {
        self.read(|tx| bulk::lscs_expiring_before(tx, before))
    }

    fn installed_lscs(&self, query: &DeviceQuery) -> Result<Vec<LscRecord>, Error> {
        self.read(|tx| bulk::installed_lscs(tx, query))
    }

    fn revoke_expired_lscs(&self, now: SystemTime) -> Result<Vec<LscRecord>, Error> {
        self.write(None, |tx| bulk::revoke_expired_lscs(tx, now))
    }

    fn revoked_lscs(&self) -> Result<Vec<LscRecord>, Error> {
        self.read(bulk::revoked_lscs)
    }

    fn delete_stale_lscs(&self, now: SystemTime) -> Result<usize, Error> {
        self.write(None, |tx| bulk::delete_stale_lscs(tx, now))
    }

    fn set_keepalive(&self, keepalive: KeepaliveMinutes, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| bulk::set_keepalive(tx, keepalive, now))
    }

    fn ca_requests(&self, state: Option<CaRequestState>) -> Result<Vec<CaRequest>, Error> {
        self.read(|tx| ca::list(tx, state))
    }

    fn ca_request(&self, id: i64) -> Result<Option<CaRequest>, Error> {
        self.read(|tx| ca::load(tx, id))
    }

    fn delete_ca_request(&self, id: i64, now: SystemTime) -> Result<CaRequest, Error> {
        self.write(None, |tx| ca::delete(tx, id, now))
    }

    fn delete_ca_requests(&self, now: SystemTime) -> Result<usize, Error> {
        self.write(None, |tx| ca::delete_all(tx, now))
    }

    fn save_template(&self, template: &DeviceTemplate, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| bulk::save_template(tx, template, now))
    }

    fn template(&self, name: &str) -> Result<Option<DeviceTemplate>, Error> {
        self.read(|tx| bulk::template(tx, name))
    }

    fn templates(&self) -> Result<Vec<DeviceTemplate>, Error> {
        self.read(bulk::templates)
    }

    fn remove_template(&self, name: &str, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| bulk::remove_template(tx, name, now))
    }

    fn import_lscs(
        &self,
        records: &mut dyn Iterator<Item = LscRecord>,
        now: SystemTime,
    ) -> Result<usize, Error> {
        // Not tried again: the records are read once.
        self.write_once(None, false, &mut |tx| bulk::import_lscs(tx, records, now))
    }

    fn add_account(&self, account: &NewAccount, now: SystemTime) -> Result<Account, Error> {
        self.write(None, |tx| accounts::add(tx, account, now))
    }

    fn account(&self, name: &AccountName) -> Result<Option<Account>, Error> {
        self.read(|tx| accounts::load(tx, name))
    }

    fn accounts(&self) -> Result<Vec<Account>, Error> {
        self.read(accounts::list)
    }

    fn remove_account(&self, name: &AccountName, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| accounts::remove(tx, name, now))
    }

    fn record_login_failure(&self, name: &AccountName, now: SystemTime) -> Result<Account, Error> {
        self.write(None, |tx| accounts::login_failure(tx, name, now))
    }

    fn record_login(&self, name: &AccountName, now: SystemTime) -> Result<Account, Error> {
        self.write(None, |tx| accounts::login(tx, name, now))
    }

    fn add_api_token(
        &self,
        name: &AccountName,
        token_hash: &[u8],
        label: &str,
        now: SystemTime,
    ) -> Result<ApiToken, Error> {
        self.write(None, |tx| {
            accounts::add_token(tx, name, token_hash, label, now)
        })
    }

    fn api_token_account(&self, token_hash: &[u8]) -> Result<Option<(Account, ApiToken)>, Error> {
        self.read(|tx| accounts::token_account(tx, token_hash))
    }

    fn api_tokens(&self, name: &AccountName) -> Result<Vec<ApiToken>, Error> {
        self.read(|tx| accounts::tokens(tx, name))
    }

    fn remove_api_token(&self, id: i64, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| accounts::remove_token(tx, id, now))
    }

    fn add_job(&self, job: &NewJob, now: SystemTime) -> Result<Job, Error> {
        self.write(None, |tx| jobs::add(tx, job, now))
    }

    fn jobs(&self, state: Option<JobState>) -> Result<Vec<Job>, Error> {
        self.read(|tx| jobs::list(tx, state))
    }

    fn job(&self, id: i64) -> Result<Option<Job>, Error> {
        self.read(|tx| jobs::load(tx, id))
    }

    fn cancel_job(&self, id: i64, now: SystemTime) -> Result<Job, Error> {
        self.write(None, |tx| jobs::cancel(tx, id, now))
    }

    fn claim_due_job(
        &self,
        node: &str,
        lease: Duration,
        now: SystemTime,
    ) -> Result<Option<Job>, Error> {
        self.write(None, |tx| jobs::claim(tx, node, lease, now))
    }

    fn renew_job_leases(
        &self,
        node: &str,
        lease: Duration,
        now: SystemTime,
    ) -> Result<usize, Error> {
        self.write(None, |tx| jobs::renew(tx, node, lease, now))
    }

    fn finish_job(&self, claimed: &Job, result: &JobResult, now: SystemTime) -> Result<Job, Error> {
        self.write(None, |tx| jobs::finish(tx, claimed, result, now))
    }

    fn finish_job_with_work(
        &self,
        claimed: &Job,
        work: &JobWork<'_>,
        now: SystemTime,
    ) -> Result<Job, Error> {
        match *work {
            JobWork::AddDevices(devices) => {
                let hashes = self.tags(devices)?;
                self.write(None, |tx| {
                    jobs::finish_with(
                        tx,
                        claimed,
                        &mut |tx| Ok(add_devices_in(tx, devices, &hashes, now)? as u64),
                        now,
                    )
                })
            }
            JobWork::UpdateDevices { query, change } => self.write(None, |tx| {
                jobs::finish_with(
                    tx,
                    claimed,
                    &mut |tx| Ok(bulk::update_devices(tx, query, change, now)?.len() as u64),
                    now,
                )
            }),
        }
    }

    fn release_running_jobs(&self, node: &str, now: SystemTime) -> Result<Vec<Job>, Error> {
        self.write(None, |tx| jobs::release_running(tx, node, now))
    }

    fn set_directory_config(
        &self,
        config: &DirectoryConfigRecord,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.write(None, |tx| {
            jobs::set_directory_config(tx, &self.key, config, now)
        })
    }

    fn directory_config(&self) -> Result<Option<DirectoryConfigRecord>, Error> {
        self.read(|tx| jobs::directory_config(tx, &self.key))
    }

    fn sync_directory(
        &self,
        entries: &[DirectoryEntry],
        dry_run: bool,
        now: SystemTime,
    ) -> Result<DirectorySyncOutcome, Error> {
        let mut hashes = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let new = &entry.device;
            hashes.push(
                self.tag(&new.name, new.auth_string.as_deref())
                    .map_err(|e| Error::BulkItem {
                        index,
                        source: Box::new(e),
                    })?,
            );
        }
        self.write_once(None, dry_run, &mut |tx| {
            jobs::sync_directory(tx, entries, &hashes, now)
        })
    }

    fn directory_sync_state(&self) -> Result<DirectorySyncState, Error> {
        self.read(jobs::sync_state)
    }

    fn record_admin_action(
        &self,
        action: &str,
        detail: &str,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.write(None, |tx| append_audit(tx, now, None, action, detail))
    }

    fn cluster_capf_certificate(&self) -> Result<Option<crate::CapfCertificate>, Error> {
        self.capf_certificate()
    }

    fn cluster_capf_certificate_or_insert(
        &self,
        certificate_pem: &str,
        key_pem: &crate::Secret,
        now: SystemTime,
    ) -> Result<Option<crate::CapfCertificate>, Error> {
        self.capf_certificate_or_insert(certificate_pem, key_pem, now)
            .map(Some)
    }

    fn replace_cluster_capf_certificate(
        &self,
        certificate_pem: &str,
        key_pem: &crate::Secret,
        now: SystemTime,
    ) -> Result<Option<crate::CapfCertificate>, Error> {
        self.replace_capf_certificate(certificate_pem, key_pem, now)
            .map(Some)
    }

    fn acting_as(&self, account: &AccountName) -> Arc<dyn DeviceStore> {
        Arc::new(self.with_actor(account.as_str()))
    }
}

impl PgStore {
    /// The authentication-string tags of `devices`, in order; [`Error::BulkItem`] names a bad
    /// string.
    fn tags(&self, devices: &[NewDevice]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        devices
            .iter()
            .enumerate()
            .map(|(index, new)| {
                self.tag(&new.name, new.auth_string.as_deref())
                    .map_err(|e| Error::BulkItem {
                        index,
                        source: Box::new(e),
                    })
            })
            .collect()
    }
}

/// Registers `devices` (with their tags) in the transaction `tx`, [`BULK_CHUNK`] per statement;
/// what [`AdminStore::add_devices`] and a bulk-insert job's work do.
fn add_devices_in(
    tx: &mut Tx<'_>,
    devices: &[NewDevice],
    hashes: &[Option<Vec<u8>>],
    now: SystemTime,
) -> Result<usize, Error> {
    for (chunk, start) in devices.chunks(BULK_CHUNK).zip((0..).step_by(BULK_CHUNK)) {
        let tags = &hashes[start..start + chunk.len()];
        if let Some(at) = insert_devices(tx, chunk, tags, now)? {
            return Err(Error::BulkItem {
                index: start + at,
                source: Box::new(Error::DuplicateDevice {
                    name: chunk[at].name.to_string(),
                }),
            });
        }
    }
    Ok(devices.len())
}
