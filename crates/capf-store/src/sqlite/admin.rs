//! Administration on SQLite: [`AdminStore`] for [`SqliteStore`]. The work in bulk (queries,
//! bulk inserts and updates, reports, templates) is in `bulk`, requests to an external CA in `ca`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use capf_lsc::DeviceName;
use rusqlite::{Connection, params};

use super::accounts;
use super::ca;
use super::jobs;
use super::{
    DEVICE_COLUMNS, RawDevice, added_detail, append_audit, bulk, describe_time, from_unix,
    insert_device, load, load_lsc, load_required, name_from_db, query_lscs, set_lsc_state,
};
use crate::auth;
use crate::types::hex;
use crate::{
    Account, AccountName, AdminStore, ApiToken, AuditEntry, BulkChange, CaRequest, CaRequestState,
    Device, DeviceChange, DevicePage, DeviceQuery, DeviceStore, DeviceTemplate, DeviceUpdate,
    DirectoryConfigRecord, DirectoryEntry, DirectorySyncOutcome, DirectorySyncState, Error,
    FetchedCertificate, Job, JobResult, JobState, JobWork, KeepaliveMinutes, LscRecord, LscState,
    NewAccount, NewDevice, NewJob, Operation, OperationStatus, Settings, SqliteStore, StatusReport,
    TroubleshootResult, action,
};

impl AdminStore for SqliteStore {
    fn add_device(&self, new: &NewDevice, now: SystemTime) -> Result<Device, Error> {
        let auth_hash = self.tag(&new.name, new.auth_string.as_deref())?;
        self.write(Some(&new.name), |tx| {
            if load(tx, &new.name)?.is_some() {
                return Err(Error::DuplicateDevice {
                    name: new.name.to_string(),
                });
            }
            insert_device(tx, new, auth_hash.as_deref(), now)
                .map_err(Error::db_device("adding the device", &new.name))?;
            let detail = added_detail(new, auth_hash.is_some());
            append_audit(tx, now, Some(&new.name), action::DEVICE_ADDED, &detail)?;
            load_required(tx, &new.name).map(|r| r.device)
        })
    }

    fn remove_device(&self, name: &DeviceName, now: SystemTime) -> Result<(), Error> {
        self.write(Some(name), |tx| {
            let row = load_required(tx, name)?;
            tx.prepare_cached("DELETE FROM devices WHERE name = ?1")
                .and_then(|mut stmt| stmt.execute([name.as_str()]))
                .map_err(Error::db_device("removing the device", name))?;
            let kept: i64 = tx
                .prepare_cached("SELECT count(*) FROM lscs WHERE device = ?1")
                .and_then(|mut stmt| stmt.query_row([name.as_str()], |r| r.get(0)))
                .map_err(Error::db_device("counting the device's LSCs", name))?;
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
        let conn = self.lock();
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY name");
        let raws = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([], RawDevice::read)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(Error::db("listing the devices"))?;
        raws.into_iter()
            .map(|raw| raw.parse().map(|r| r.device))
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
            // The tag covers the name as registered, whatever case the caller used.
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
        let conn = self.lock();
        let rows = conn
            .prepare_cached(
                "SELECT device, cert_type, der, fetched_at FROM troubleshoot_results \
                 WHERE device = ?1 ORDER BY id",
            )
            .and_then(|mut stmt| {
                stmt.query_map([name.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<u8>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(Error::db_device("listing troubleshoot results", name))?;
        rows.into_iter()
            .map(|(device, cert_type, der, fetched_at)| {
                Ok(TroubleshootResult {
                    device: name_from_db(device, "troubleshoot_results", "device")?,
                    certificate: match (cert_type, der) {
                        (Some(cert_type), Some(der)) => Some(FetchedCertificate { cert_type, der }),
                        _ => None,
                    },
                    fetched_at: from_unix(fetched_at, "troubleshoot_results", "fetched_at")?,
                })
            })
            .collect()
    }

    fn lscs(&self, name: &DeviceName) -> Result<Vec<LscRecord>, Error> {
        query_lscs(
            &self.lock(),
            "device = ?1",
            &name.as_str(),
            "listing the device's LSCs",
        )
    }

    fn lsc(&self, serial: &[u8]) -> Result<Option<LscRecord>, Error> {
        load_lsc(&self.lock(), serial)
    }

    fn stale_lscs(&self) -> Result<Vec<LscRecord>, Error> {
        query_lscs(
            &self.lock(),
            "state = ?1",
            &LscState::Stale.as_str(),
            "listing stale LSCs",
        )
    }

    fn revoke_lsc(&self, serial: &[u8], now: SystemTime) -> Result<LscRecord, Error> {
        self.write(None, |tx| {
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
                tx.prepare_cached("INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)")
                    .and_then(|mut stmt| stmt.execute(params![key, value]))
                    .map_err(Error::db("storing the settings"))?;
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

    fn set_online_ca_config(
        &self,
        config: &capf_lsc::OnlineCaConfig,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.write(None, |tx| {
            super::online_ca::store(tx, &self.key, config, now)
        })
    }

    fn audit(&self, device: Option<&DeviceName>, limit: usize) -> Result<Vec<AuditEntry>, Error> {
        let conn = self.lock();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .prepare_cached(
                "SELECT at, device, action, detail, actor FROM audit \
                 WHERE ?1 IS NULL OR device = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_map(params![device.map(DeviceName::as_str), limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(Error::db("reading the audit log"))?;
        rows.into_iter()
            .map(|(at, device, action, detail, actor)| {
                Ok(AuditEntry {
                    at: from_unix(at, "audit", "at")?,
                    device: device
                        .map(|d| name_from_db(d, "audit", "device"))
                        .transpose()?,
                    action,
                    detail,
                    actor,
                })
            })
            .collect()
    }

    fn add_devices(&self, devices: &[NewDevice], now: SystemTime) -> Result<usize, Error> {
        // Everything that needs no database is checked (and hashed) before the write lock.
        let hashes = self.tags(devices)?;
        self.write(None, |tx| insert_devices(tx, devices, &hashes, now))
    }

    fn query_devices(&self, query: &DeviceQuery) -> Result<Vec<Device>, Error> {
        Ok(bulk::query_rows(&self.lock(), query)?
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
        let (rows, total) = bulk::query_page(&self.lock(), query, offset, limit)?;
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
        self.write_or_roll_back(dry_run, |tx| bulk::update_devices(tx, query, change, now))
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
        bulk::status_report(&self.lock(), now)
    }

    fn lscs_expiring_before(&self, before: SystemTime) -> Result<Vec<LscRecord>, Error> {
        bulk::lscs_expiring_before(&self.lock(), before)
    }

    fn installed_lscs(&self, query: &DeviceQuery) -> Result<Vec<LscRecord>, Error> {
        bulk::installed_lscs(&self.lock(), query)
    }

    fn revoke_expired_lscs(&self, now: SystemTime) -> Result<Vec<LscRecord>, Error> {
        self.write(None, |tx| bulk::revoke_expired_lscs(tx, now))
    }

    fn revoked_lscs(&self) -> Result<Vec<LscRecord>, Error> {
        bulk::revoked_lscs(&self.lock())
    }

    fn delete_stale_lscs(&self, now: SystemTime) -> Result<usize, Error> {
        self.write(None, |tx| bulk::delete_stale_lscs(tx, now))
    }

    fn set_keepalive(&self, keepalive: KeepaliveMinutes, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| bulk::set_keepalive(tx, keepalive, now))
    }

    fn ca_requests(&self, state: Option<CaRequestState>) -> Result<Vec<CaRequest>, Error> {
        ca::list(&self.lock(), state)
    }

    fn ca_request(&self, id: i64) -> Result<Option<CaRequest>, Error> {
        ca::load(&self.lock(), id)
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
        bulk::template(&self.lock(), name)
    }

    fn templates(&self) -> Result<Vec<DeviceTemplate>, Error> {
        bulk::templates(&self.lock())
    }

    fn remove_template(&self, name: &str, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| bulk::remove_template(tx, name, now))
    }

    fn import_lscs(
        &self,
        records: &mut dyn Iterator<Item = LscRecord>,
        now: SystemTime,
    ) -> Result<usize, Error> {
        self.write(None, |tx| bulk::import_lscs(tx, records, now))
    }

    fn add_account(&self, account: &NewAccount, now: SystemTime) -> Result<Account, Error> {
        self.write(None, |tx| accounts::add(tx, account, now))
    }

    fn account(&self, name: &AccountName) -> Result<Option<Account>, Error> {
        accounts::load(&self.lock(), name)
    }

    fn accounts(&self) -> Result<Vec<Account>, Error> {
        accounts::list(&self.lock())
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
        accounts::token_account(&self.lock(), token_hash)
    }

    fn api_tokens(&self, name: &AccountName) -> Result<Vec<ApiToken>, Error> {
        accounts::tokens(&self.lock(), name)
    }

    fn remove_api_token(&self, id: i64, now: SystemTime) -> Result<(), Error> {
        self.write(None, |tx| accounts::remove_token(tx, id, now))
    }

    fn record_admin_action(
        &self,
        action: &str,
        detail: &str,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.write(None, |tx| append_audit(tx, now, None, action, detail))
    }

    fn add_job(&self, job: &NewJob, now: SystemTime) -> Result<Job, Error> {
        self.write(None, |tx| jobs::add(tx, job, now))
    }

    fn jobs(&self, state: Option<JobState>) -> Result<Vec<Job>, Error> {
        jobs::list(&self.lock(), state)
    }

    fn job(&self, id: i64) -> Result<Option<Job>, Error> {
        jobs::load(&self.lock(), id)
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
                        |tx| Ok(insert_devices(tx, devices, &hashes, now)? as u64),
                        now,
                    )
                })
            }
            JobWork::UpdateDevices { query, change } => self.write(None, |tx| {
                jobs::finish_with(
                    tx,
                    claimed,
                    |tx| Ok(bulk::update_devices(tx, query, change, now)?.len() as u64),
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
        jobs::directory_config(&self.lock(), &self.key)
    }

    fn sync_directory(
        &self,
        entries: &[DirectoryEntry],
        dry_run: bool,
        now: SystemTime,
    ) -> Result<DirectorySyncOutcome, Error> {
        // Authentication strings are checked and hashed before the write lock, as in bulk.
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
        self.write_or_roll_back(dry_run, |tx| {
            jobs::sync_directory(tx, entries, &hashes, now)
        })
    }

    fn directory_sync_state(&self) -> Result<DirectorySyncState, Error> {
        jobs::sync_state(&self.lock())
    }

    fn acting_as(&self, account: &AccountName) -> Arc<dyn DeviceStore> {
        Arc::new(self.with_actor(account.as_str()))
    }
}

impl SqliteStore {
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

/// Registers `devices` (with their authentication-string tags) on the write transaction `tx`;
/// what [`AdminStore::add_devices`] and a bulk-insert job's work do.
fn insert_devices(
    tx: &Connection,
    devices: &[NewDevice],
    hashes: &[Option<Vec<u8>>],
    now: SystemTime,
) -> Result<usize, Error> {
    let item = |index: usize| {
        move |e: Error| Error::BulkItem {
            index,
            source: Box::new(e),
        }
    };
    for (index, (new, hash)) in devices.iter().zip(hashes).enumerate() {
        insert_device(tx, new, hash.as_deref(), now)
            .map_err(|source| match source {
                rusqlite::Error::SqliteFailure(e, _)
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    Error::DuplicateDevice {
                        name: new.name.to_string(),
                    }
                }
                source => Error::Database {
                    action: "adding the device",
                    device: Some(new.name.to_string()),
                    source,
                },
            })
            .map_err(item(index))?;
        append_audit(
            tx,
            now,
            Some(&new.name),
            action::DEVICE_BULK_ADDED,
            &added_detail(new, hash.is_some()),
        )
        .map_err(item(index))?;
    }
    Ok(devices.len())
}
