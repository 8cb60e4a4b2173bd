//! The PostgreSQL side of administration in bulk: the same work as SQLite's (`sqlite/bulk.rs`):
//! queries, bulk updates, reports, LSC import, device templates, and the Online CA row.

use std::time::SystemTime;

use capf_lsc::{DeviceName, OnlineCaConfig, OnlineCaParams};
use postgres::types::ToSql;

use super::{
    BULK_CHUNK, DeviceRow, Tx, append_audit, col, load_locked, load_lsc, parse_device, parse_lsc,
    store_changed_device, store_changed_devices,
};
use crate::admin::{FilterValue, TO_RUN, device_filter};
use crate::auth::{self, AUTH_KEY_LEN};
use crate::settings::KEEPALIVE;
use crate::sqlite::{
    DEVICE_COLUMNS, LSC_COLUMNS, RawTemplate, apply_bulk_change, check_lsc, describe_time,
    from_unix, operation_columns, template_parse, to_unix,
};
use crate::types::hex;
use crate::{
    AuthMode, BulkChange, DeviceChange, DeviceQuery, DeviceTemplate, Error, KeepaliveMinutes,
    LscRecord, LscState, StatusReport, action, online_ca,
};

type Param = Box<dyn ToSql + Sync>;

/// A WHERE clause over `devices` and its parameters (numbered from `$1`).
pub(super) struct Filter {
    sql: String,
    params: Vec<Param>,
}

impl Filter {
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| &**p as &(dyn ToSql + Sync))
            .collect()
    }
}

pub(super) fn filter(query: &DeviceQuery) -> Filter {
    let (sql, values) = device_filter(query, '$');
    let params = values
        .into_iter()
        .map(|v| -> Param {
            match v {
                FilterValue::Text(text) => Box::new(text),
                FilterValue::Unix(secs) => Box::new(secs),
            }
        })
        .collect();
    Filter { sql, params }
}

/// The devices `query` selects, ordered by name; with `lock`, locked (in name order, so two
/// bulk updates cannot deadlock).
pub(super) fn query_rows(
    tx: &mut Tx<'_>,
    query: &DeviceQuery,
    lock: bool,
) -> Result<Vec<DeviceRow>, Error> {
    select_rows(tx, query, if lock { " FOR UPDATE" } else { "" })
}

/// One page of the devices `query` matches, and how many match in all.
pub(super) fn query_page(
    tx: &mut Tx<'_>,
    query: &DeviceQuery,
    offset: usize,
    limit: usize,
) -> Result<(Vec<DeviceRow>, usize), Error> {
    let f = filter(query);
    let total: i64 = tx
        .rows(
            &format!("SELECT COUNT(*) FROM devices WHERE {}", f.sql),
            &f.refs(),
            "counting the devices",
        )?
        .first()
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(super::pg("counting the devices"))?
        .unwrap_or(0);
    let rows = select_rows(tx, query, &format!(" LIMIT {limit} OFFSET {offset}"))?;
    Ok((rows, usize::try_from(total).unwrap_or(0)))
}

fn select_rows(tx: &mut Tx<'_>, query: &DeviceQuery, tail: &str) -> Result<Vec<DeviceRow>, Error> {
    let f = filter(query);
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE {} ORDER BY name{tail}",
        f.sql
    );
    tx.rows(&sql, &f.refs(), "querying the devices")?
        .iter()
        .map(parse_device)
        .collect()
}

pub(super) fn update_devices(
    tx: &mut Tx<'_>,
    query: &DeviceQuery,
    change: &BulkChange,
    now: SystemTime,
) -> Result<Vec<DeviceChange>, Error> {
    let mut changed = Vec::new();
    let mut details = Vec::new();
    for mut row in query_rows(tx, query, true)? {
        if let Some(detail) = apply_bulk_change(&mut row, change) {
            changed.push(row);
            details.push(detail);
        }
    }
    for (rows, texts) in changed
        .chunks_mut(BULK_CHUNK)
        .zip(details.chunks(BULK_CHUNK))
    {
        store_changed_devices(tx, rows, now, action::DEVICE_BULK_UPDATED, texts)?;
    }
    Ok(changed
        .into_iter()
        .zip(details)
        .map(|(row, detail)| DeviceChange {
            name: row.device.name,
            detail,
        })
        .collect())
}

pub(super) fn set_auth_strings(
    tx: &mut Tx<'_>,
    key: &[u8; AUTH_KEY_LEN],
    strings: &[(DeviceName, String)],
    now: SystemTime,
) -> Result<(), Error> {
    for (index, (name, string)) in strings.iter().enumerate() {
        let mut one = || -> Result<(), Error> {
            auth::validate(name, string)?;
            let mut row = load_locked(tx, name)?;
            row.auth_hash = Some(auth::tag(key, &row.device.name, string));
            row.device.auth_mode = AuthMode::AuthenticationString;
            store_changed_device(
                tx,
                &mut row,
                now,
                action::AUTH_STRING_SET,
                "authentication string generated; auth mode By Authentication String",
            )
        };
        one().map_err(|e| Error::BulkItem {
            index,
            source: Box::new(e),
        })?;
    }
    Ok(())
}

pub(super) fn status_report(tx: &mut Tx<'_>, now: SystemTime) -> Result<StatusReport, Error> {
    let counts = tx.rows(
        "SELECT status, count(*) FROM devices GROUP BY status",
        &[],
        "counting the devices by status",
    )?;
    let mut report = StatusReport::default();
    for row in &counts {
        let status: String = col(row, 0)?;
        let n: i64 = col(row, 1)?;
        let slot = match status.as_str() {
            "none" => &mut report.none,
            "pending" => &mut report.pending,
            "in_progress" => &mut report.in_progress,
            "success" => &mut report.succeeded,
            "failed" => &mut report.failed,
            "expired" => &mut report.expired,
            _ => {
                return Err(Error::Corrupt {
                    table: "devices",
                    column: "status",
                    value: status,
                });
            }
        };
        *slot = u64::try_from(n).unwrap_or(0);
    }
    let past = tx.opt(
        &format!("SELECT count(*) FROM devices WHERE status IN {TO_RUN} AND complete_by < $1"),
        &[&to_unix(now)],
        "counting the devices past their complete-by date",
    )?;
    let past: i64 = match &past {
        Some(r) => col(r, 0)?,
        None => 0,
    };
    report.past_complete_by = u64::try_from(past).unwrap_or(0);
    Ok(report)
}

fn lscs_where(
    tx: &mut Tx<'_>,
    sql_where: &str,
    order: &str,
    params: &[&(dyn ToSql + Sync)],
    action: &'static str,
) -> Result<Vec<LscRecord>, Error> {
    let sql = format!("SELECT {LSC_COLUMNS} FROM lscs WHERE {sql_where} ORDER BY {order}");
    tx.rows(&sql, params, action)?
        .iter()
        .map(parse_lsc)
        .collect()
}

pub(super) fn lscs_expiring_before(
    tx: &mut Tx<'_>,
    before: SystemTime,
) -> Result<Vec<LscRecord>, Error> {
    lscs_where(
        tx,
        "state IN ('issued', 'installed') AND not_after < $1",
        "not_after, seq",
        &[&to_unix(before)],
        "listing the LSCs about to expire",
    )
}

pub(super) fn installed_lscs(
    tx: &mut Tx<'_>,
    query: &DeviceQuery,
) -> Result<Vec<LscRecord>, Error> {
    let f = filter(query);
    let mut params = f.refs();
    let installed = LscState::Installed.as_str();
    params.push(&installed);
    let n = params.len();
    lscs_where(
        tx,
        &format!(
            "state = ${n} AND device IN (SELECT name FROM devices WHERE {})",
            f.sql
        ),
        "device, issued_at, seq",
        &params,
        "listing the installed LSCs",
    )
}

pub(super) fn revoked_lscs(tx: &mut Tx<'_>) -> Result<Vec<LscRecord>, Error> {
    lscs_where(
        tx,
        "state = 'revoked'",
        "state_changed_at, seq",
        &[],
        "listing the revoked LSCs",
    )
}

pub(super) fn revoke_expired_lscs(
    tx: &mut Tx<'_>,
    now: SystemTime,
) -> Result<Vec<LscRecord>, Error> {
    let expired = lscs_where(
        tx,
        "state IN ('issued', 'installed') AND not_after < $1",
        "not_after, seq FOR UPDATE",
        &[&to_unix(now)],
        "finding the expired LSCs",
    )?;
    let mut out = Vec::with_capacity(expired.len());
    for mut lsc in expired {
        super::set_lsc_state(tx, &lsc.serial, LscState::Revoked, now)?;
        let detail = format!(
            "serial {} revoked (was {}): notAfter {} passed",
            hex(&lsc.serial),
            lsc.state,
            describe_time(Some(lsc.not_after))
        );
        append_audit(
            tx,
            now,
            Some(&lsc.device),
            action::EXPIRED_LSC_REVOKED,
            &detail,
        )?;
        lsc.state = LscState::Revoked;
        lsc.state_changed_at = from_unix(to_unix(now), "lscs", "state_changed_at")?;
        out.push(lsc);
    }
    Ok(out)
}

pub(super) fn delete_stale_lscs(tx: &mut Tx<'_>, now: SystemTime) -> Result<usize, Error> {
    let actor = tx.actor.clone();
    tx.exec(
        "INSERT INTO audit (at, device, action, detail, actor) SELECT $1, device, $2, \
         'serial ' || encode(serial, 'hex') || ' deleted (stale since unix ' || \
         state_changed_at || ')', $3 FROM lscs WHERE state = 'stale' ORDER BY issued_at, seq",
        &[&to_unix(now), &action::STALE_LSC_DELETED, &actor.as_deref()],
        "logging the stale LSCs to delete",
    )?;
    let n = tx.exec(
        "DELETE FROM lscs WHERE state = 'stale'",
        &[],
        "deleting the stale LSCs",
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Stores one settings row (insert or replace).
pub(super) fn put_setting(tx: &mut Tx<'_>, key: &str, value: &str) -> Result<(), Error> {
    tx.exec(
        "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
        "storing the settings",
    )?;
    Ok(())
}

pub(super) fn set_keepalive(
    tx: &mut Tx<'_>,
    keepalive: KeepaliveMinutes,
    now: SystemTime,
) -> Result<(), Error> {
    put_setting(tx, KEEPALIVE, &keepalive.minutes().to_string())?;
    append_audit(
        tx,
        now,
        None,
        action::SETTINGS_UPDATED,
        &format!("keepalive {keepalive}"),
    )
}

/// Imports LSC records as they are, one audit entry each.
pub(super) fn import_lscs(
    tx: &mut Tx<'_>,
    records: &mut dyn Iterator<Item = LscRecord>,
    now: SystemTime,
) -> Result<usize, Error> {
    let mut count = 0;
    for (index, lsc) in records.enumerate() {
        import_lsc(tx, &lsc, now).map_err(|e| Error::BulkItem {
            index,
            source: Box::new(e),
        })?;
        count += 1;
    }
    Ok(count)
}

fn import_lsc(tx: &mut Tx<'_>, lsc: &LscRecord, now: SystemTime) -> Result<(), Error> {
    check_lsc(
        &lsc.device,
        &lsc.serial,
        &lsc.der,
        lsc.not_before,
        lsc.not_after,
    )?;
    let inserted = tx.exec(
        "INSERT INTO lscs (serial, device, der, not_before, not_after, issued_at, state, \
         state_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (serial) DO NOTHING",
        &[
            &lsc.serial,
            &lsc.device.as_str(),
            &lsc.der,
            &to_unix(lsc.not_before),
            &to_unix(lsc.not_after),
            &to_unix(lsc.issued_at),
            &lsc.state.as_str(),
            &to_unix(lsc.state_changed_at),
        ],
        "importing the LSC",
    )?;
    if inserted == 0 {
        let owner = load_lsc(tx, &lsc.serial)?.map_or_else(String::new, |l| l.device.into_string());
        return Err(Error::DuplicateSerial {
            serial: hex(&lsc.serial),
            owner,
        });
    }
    let detail = format!(
        "serial {}, valid unix {} to {}, issued unix {}, {} since unix {}",
        hex(&lsc.serial),
        to_unix(lsc.not_before),
        to_unix(lsc.not_after),
        to_unix(lsc.issued_at),
        lsc.state,
        to_unix(lsc.state_changed_at)
    );
    append_audit(tx, now, Some(&lsc.device), action::LSC_IMPORTED, &detail)
}

// ---------------------------------------------------------------------------------------------
// Device templates

const TEMPLATE_COLUMNS: &str = "name, description, device_pool, model, operation, key_order, \
     key_size, key_curve, auth_mode, complete_by";

fn raw_template(r: &postgres::Row) -> Result<RawTemplate, Error> {
    Ok((
        col(r, 0)?,
        col(r, 1)?,
        col(r, 2)?,
        col(r, 3)?,
        col(r, 4)?,
        col(r, 5)?,
        col::<Option<i32>>(r, 6)?.map(i64::from),
        col(r, 7)?,
        col(r, 8)?,
        col(r, 9)?,
    ))
}

pub(super) fn save_template(
    tx: &mut Tx<'_>,
    t: &DeviceTemplate,
    now: SystemTime,
) -> Result<(), Error> {
    if t.name.trim().is_empty() {
        return Err(Error::EmptyTemplateName);
    }
    let (operation, key_order, key_size, key_curve) = operation_columns(&t.operation);
    let key_size = key_size.map(i32::from);
    // A template saved under another case of a stored name replaces it, under the new name.
    tx.exec(
        "DELETE FROM device_templates WHERE name = $1",
        &[&t.name],
        "storing the device template",
    )?;
    tx.exec(
        "INSERT INTO device_templates (name, description, device_pool, model, \
         operation, key_order, key_size, key_curve, auth_mode, complete_by, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &t.name,
            &t.description,
            &t.device_pool,
            &t.model,
            &operation,
            &key_order,
            &key_size,
            &key_curve,
            &t.auth_mode.as_db(),
            &t.complete_by.map(to_unix),
            &to_unix(now),
        ],
        "storing the device template",
    )?;
    append_audit(
        tx,
        now,
        None,
        action::TEMPLATE_SAVED,
        &format!(
            "template {}: {}, auth mode {}, device pool {:?}, model {:?}, complete by {}",
            t.name,
            t.operation,
            t.auth_mode,
            t.device_pool,
            t.model,
            describe_time(t.complete_by)
        ),
    )
}

pub(super) fn template(tx: &mut Tx<'_>, name: &str) -> Result<Option<DeviceTemplate>, Error> {
    tx.opt(
        &format!("SELECT {TEMPLATE_COLUMNS} FROM device_templates WHERE name = $1"),
        &[&name],
        "loading the device template",
    )?
    .as_ref()
    .map(|r| raw_template(r).and_then(template_parse))
    .transpose()
}

pub(super) fn templates(tx: &mut Tx<'_>) -> Result<Vec<DeviceTemplate>, Error> {
    tx.rows(
        &format!("SELECT {TEMPLATE_COLUMNS} FROM device_templates ORDER BY name"),
        &[],
        "listing the device templates",
    )?
    .iter()
    .map(|r| raw_template(r).and_then(template_parse))
    .collect()
}

pub(super) fn remove_template(tx: &mut Tx<'_>, name: &str, now: SystemTime) -> Result<(), Error> {
    let removed = tx.exec(
        "DELETE FROM device_templates WHERE name = $1",
        &[&name],
        "removing the device template",
    )?;
    if removed == 0 {
        return Err(Error::UnknownTemplate {
            name: name.to_owned(),
        });
    }
    append_audit(
        tx,
        now,
        None,
        action::TEMPLATE_REMOVED,
        &format!("template {name}"),
    )
}

// ---------------------------------------------------------------------------------------------
// The Online CA row

pub(super) fn load_online_ca(
    tx: &mut Tx<'_>,
    key: &[u8; AUTH_KEY_LEN],
) -> Result<Option<OnlineCaConfig>, Error> {
    let Some(r) = tx.opt(
        "SELECT host, port, ca_type, username, sealed_password, template, label \
         FROM online_ca WHERE id = 1",
        &[],
        "reading the Online CA settings",
    )?
    else {
        return Ok(None);
    };
    let port: i32 = col(&r, 1)?;
    let sealed: Vec<u8> = col(&r, 4)?;
    let params = OnlineCaParams {
        host: col(&r, 0)?,
        port: u32::try_from(port).unwrap_or(0),
        ca_type: col(&r, 2)?,
        username: col(&r, 3)?,
        password: online_ca::open(key, &sealed)?,
        template: col(&r, 5)?,
        label: col(&r, 6)?,
    };
    OnlineCaConfig::new(&params)
        .map(Some)
        .map_err(|source| Error::OnlineCaConfig { source })
}

pub(super) fn store_online_ca(
    tx: &mut Tx<'_>,
    key: &[u8; AUTH_KEY_LEN],
    config: &OnlineCaConfig,
    now: SystemTime,
) -> Result<(), Error> {
    let sealed = online_ca::seal(key, &config.password)?;
    let port = i32::from(config.port);
    tx.exec(
        "INSERT INTO online_ca (id, host, port, ca_type, username, sealed_password, \
         template, label, updated_at) VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, port = excluded.port, \
         ca_type = excluded.ca_type, username = excluded.username, \
         sealed_password = excluded.sealed_password, template = excluded.template, \
         label = excluded.label, updated_at = excluded.updated_at",
        &[
            &config.host.as_str(),
            &port,
            &config.ca_type.as_str(),
            &config.username,
            &sealed,
            &config.template,
            &config.label.as_ref().map(|l| l.as_str()),
            &to_unix(now),
        ],
        "storing the Online CA settings",
    )?;
    append_audit(
        tx,
        now,
        None,
        action::ONLINE_CA_SET,
        &format!(
            "{} ({}) at {}:{}, username {}{}{}, password set",
            config.ca_type.label(),
            config.ca_type,
            config.host,
            config.port,
            config.username,
            config
                .template
                .as_deref()
                .map(|t| format!(", template {t}"))
                .unwrap_or_default(),
            config
                .label
                .as_ref()
                .map(|l| format!(", label {l}"))
                .unwrap_or_default(),
        ),
    )
}
