//! The SQLite side of administration in bulk: queries, bulk inserts and updates, reports, LSC
//! import, pending certificate requests and device templates.

use std::time::SystemTime;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use capf_lsc::DeviceName;

use super::{
    DEVICE_COLUMNS, DeviceRow, LSC_COLUMNS, RawDevice, RawLsc, all_rows, append_audit, check_lsc,
    describe_time, from_unix, from_unix_opt, load_lsc, load_required, operation_columns,
    operation_from_columns, store_changed_device, to_unix,
};
use crate::admin::{FilterValue, TO_RUN, device_filter};
use crate::auth;
use crate::settings::KEEPALIVE;
use crate::types::hex;
use crate::{
    AuthMode, BulkChange, DeviceChange, DeviceQuery, DeviceTemplate, Error, KeepaliveMinutes,
    LscRecord, LscState, OperationStatus, StatusReport, action,
};

/// A WHERE clause over `devices` and its parameters.
pub(super) struct Filter {
    pub(super) sql: String,
    pub(super) params: Vec<Value>,
}

pub(super) fn filter(query: &DeviceQuery) -> Filter {
    let (sql, values) = device_filter(query, '?');
    let params = values
        .into_iter()
        .map(|v| match v {
            FilterValue::Text(text) => Value::Text(text),
            FilterValue::Unix(secs) => Value::Integer(secs),
        })
        .collect();
    Filter { sql, params }
}

pub(super) fn query_rows(conn: &Connection, query: &DeviceQuery) -> Result<Vec<DeviceRow>, Error> {
    select_rows(conn, query, "")
}

/// One page of the devices `query` matches, and how many match in all.
pub(super) fn query_page(
    conn: &Connection,
    query: &DeviceQuery,
    offset: usize,
    limit: usize,
) -> Result<(Vec<DeviceRow>, usize), Error> {
    let f = filter(query);
    let total: i64 = conn
        .query_row(
            &format!("SELECT COUNT(*) FROM devices WHERE {}", f.sql),
            params_from_iter(f.params.iter()),
            |row| row.get(0),
        )
        .map_err(Error::db("counting the devices"))?;
    let rows = select_rows(conn, query, &format!(" LIMIT {limit} OFFSET {offset}"))?;
    Ok((rows, usize::try_from(total).unwrap_or(0)))
}

fn select_rows(
    conn: &Connection,
    query: &DeviceQuery,
    tail: &str,
) -> Result<Vec<DeviceRow>, Error> {
    let f = filter(query);
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE {} ORDER BY name{tail}",
        f.sql
    );
    let raws = conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(f.params.iter()), RawDevice::read)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(Error::db("querying the devices"))?;
    raws.into_iter().map(RawDevice::parse).collect()
}

/// Applies `change` to `row` (not stored); returns what changed, or `None` when nothing did.
pub(crate) fn apply(row: &mut DeviceRow, change: &BulkChange) -> Option<String> {
    let before = row.device.clone();
    let d = &mut row.device;
    let mut changes = Vec::new();
    let u = &change.update;
    if let Some(description) = u.description.as_ref().filter(|v| **v != d.description) {
        changes.push(format!("description {description:?}"));
        d.description.clone_from(description);
    }
    if let Some(pool) = u.device_pool.as_ref().filter(|v| **v != d.device_pool) {
        changes.push(format!("device pool {pool:?}"));
        d.device_pool.clone_from(pool);
    }
    if let Some(model) = u.model.as_ref().filter(|v| **v != d.model) {
        changes.push(format!("model {model:?}"));
        d.model.clone_from(model);
    }
    if let Some(mode) = u.auth_mode.filter(|m| *m != d.auth_mode) {
        changes.push(format!("auth mode {mode}"));
        d.auth_mode = mode;
    }
    if let Some(schedule) = change.schedule {
        let detail = format!(
            "{} (was {}, {}), complete by {}",
            schedule.operation,
            d.operation,
            d.status,
            describe_time(schedule.complete_by)
        );
        d.operation = schedule.operation;
        d.status = if schedule.operation.is_none() {
            OperationStatus::None
        } else {
            OperationStatus::Pending
        };
        d.complete_by = schedule.complete_by;
        d.attempts = 0;
        d.ec_key_generation_failed = false;
        d.last_error = None;
        if *d != before {
            changes.push(detail);
        }
    }
    (*d != before).then(|| changes.join(", "))
}

pub(super) fn update_devices(
    tx: &Connection,
    query: &DeviceQuery,
    change: &BulkChange,
    now: SystemTime,
) -> Result<Vec<DeviceChange>, Error> {
    let mut out = Vec::new();
    for mut row in query_rows(tx, query)? {
        let Some(detail) = apply(&mut row, change) else {
            continue;
        };
        store_changed_device(
            tx,
            None,
            &mut row,
            now,
            action::DEVICE_BULK_UPDATED,
            &detail,
        )?;
        out.push(DeviceChange {
            name: row.device.name,
            detail,
        });
    }
    Ok(out)
}

pub(super) fn set_auth_strings(
    tx: &Connection,
    key: &[u8; auth::AUTH_KEY_LEN],
    strings: &[(DeviceName, String)],
    now: SystemTime,
) -> Result<(), Error> {
    for (index, (name, string)) in strings.iter().enumerate() {
        let one = || -> Result<(), Error> {
            auth::validate(name, string)?;
            let mut row = load_required(tx, name)?;
            row.auth_hash = Some(auth::tag(key, &row.device.name, string));
            row.device.auth_mode = AuthMode::AuthenticationString;
            store_changed_device(
                tx,
                None,
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

pub(super) fn status_report(conn: &Connection, now: SystemTime) -> Result<StatusReport, Error> {
    let fail = Error::db("counting the devices by status");
    let counts = all_rows(
        conn,
        "SELECT status, count(*) FROM devices GROUP BY status",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )
    .map_err(fail)?;
    let mut report = StatusReport::default();
    for (status, n) in counts {
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
    let past: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM devices WHERE status IN {TO_RUN} AND complete_by < ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([to_unix(now)], |r| r.get(0)))
        .map_err(Error::db(
            "counting the devices past their complete-by date",
        ))?;
    report.past_complete_by = u64::try_from(past).unwrap_or(0);
    Ok(report)
}

fn lscs_where(
    conn: &Connection,
    sql_where: &str,
    order: &str,
    params: &[Value],
    action: &'static str,
) -> Result<Vec<LscRecord>, Error> {
    let sql = format!("SELECT {LSC_COLUMNS} FROM lscs WHERE {sql_where} ORDER BY {order}");
    let raws = conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(params.iter()), RawLsc::read)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(Error::db(action))?;
    raws.into_iter().map(RawLsc::parse).collect()
}

pub(super) fn lscs_expiring_before(
    conn: &Connection,
    before: SystemTime,
) -> Result<Vec<LscRecord>, Error> {
    lscs_where(
        conn,
        "state IN ('issued', 'installed') AND not_after < ?1",
        "not_after, rowid",
        &[Value::Integer(to_unix(before))],
        "listing the LSCs about to expire",
    )
}

pub(super) fn installed_lscs(
    conn: &Connection,
    query: &DeviceQuery,
) -> Result<Vec<LscRecord>, Error> {
    let f = filter(query);
    let mut params = f.params;
    params.push(Value::Text(LscState::Installed.as_str().to_owned()));
    let n = params.len();
    lscs_where(
        conn,
        &format!(
            "state = ?{n} AND device IN (SELECT name FROM devices WHERE {})",
            f.sql
        ),
        "device, issued_at, rowid",
        &params,
        "listing the installed LSCs",
    )
}

pub(super) fn revoked_lscs(conn: &Connection) -> Result<Vec<LscRecord>, Error> {
    lscs_where(
        conn,
        "state = 'revoked'",
        "state_changed_at, rowid",
        &[],
        "listing the revoked LSCs",
    )
}

pub(super) fn revoke_expired_lscs(
    tx: &Connection,
    now: SystemTime,
) -> Result<Vec<LscRecord>, Error> {
    let expired = lscs_where(
        tx,
        "state IN ('issued', 'installed') AND not_after < ?1",
        "not_after, rowid",
        &[Value::Integer(to_unix(now))],
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

pub(super) fn delete_stale_lscs(tx: &Connection, now: SystemTime) -> Result<usize, Error> {
    tx.execute(
        "INSERT INTO audit (at, device, action, detail) SELECT ?1, device, ?2, \
         'serial ' || lower(hex(serial)) || ' deleted (stale since unix ' || state_changed_at || ')' \
         FROM lscs WHERE state = 'stale' ORDER BY issued_at, rowid",
        params![to_unix(now), action::STALE_LSC_DELETED],
    )
    .map_err(Error::db("logging the stale LSCs to delete"))?;
    tx.execute("DELETE FROM lscs WHERE state = 'stale'", [])
        .map_err(Error::db("deleting the stale LSCs"))
}

pub(super) fn set_keepalive(
    tx: &Connection,
    keepalive: KeepaliveMinutes,
    now: SystemTime,
) -> Result<(), Error> {
    tx.prepare_cached("INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)")
        .and_then(|mut stmt| stmt.execute(params![KEEPALIVE, keepalive.minutes().to_string()]))
        .map_err(Error::db("storing the keepalive"))?;
    append_audit(
        tx,
        now,
        None,
        action::SETTINGS_UPDATED,
        &format!("keepalive {keepalive}"),
    )
}

/// Imports LSC records as they are, one audit entry each (see
/// [`AdminStore::import_lscs`](crate::AdminStore::import_lscs)).
pub(super) fn import_lscs(
    tx: &Connection,
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

fn import_lsc(tx: &Connection, lsc: &LscRecord, now: SystemTime) -> Result<(), Error> {
    // The same checks as an LSC issued (`record_lsc_issued`).
    check_lsc(
        &lsc.device,
        &lsc.serial,
        &lsc.der,
        lsc.not_before,
        lsc.not_after,
    )?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO lscs (serial, device, der, not_before, not_after, issued_at, state, \
             state_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (serial) DO NOTHING",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                lsc.serial,
                lsc.device.as_str(),
                lsc.der,
                to_unix(lsc.not_before),
                to_unix(lsc.not_after),
                to_unix(lsc.issued_at),
                lsc.state.as_str(),
                to_unix(lsc.state_changed_at),
            ])
        })
        .map_err(Error::db_device("importing the LSC", &lsc.device))?;
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

pub(crate) type RawTemplate = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    String,
    Option<i64>,
);

fn template_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawTemplate> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

pub(crate) fn template_parse(raw: RawTemplate) -> Result<DeviceTemplate, Error> {
    let (name, description, device_pool, model, op, order, size, curve, auth_mode, complete_by) =
        raw;
    Ok(DeviceTemplate {
        operation: operation_from_columns(&op, order.as_deref(), size, curve.as_deref())?,
        auth_mode: AuthMode::from_db(&auth_mode).ok_or_else(|| Error::Corrupt {
            table: "device_templates",
            column: "auth_mode",
            value: auth_mode.clone(),
        })?,
        complete_by: from_unix_opt(complete_by, "device_templates", "complete_by")?,
        name,
        description,
        device_pool,
        model,
    })
}

pub(super) fn save_template(
    tx: &Connection,
    t: &DeviceTemplate,
    now: SystemTime,
) -> Result<(), Error> {
    if t.name.trim().is_empty() {
        return Err(Error::EmptyTemplateName);
    }
    let (operation, key_order, key_size, key_curve) = operation_columns(&t.operation);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO device_templates (name, description, device_pool, model, \
         operation, key_order, key_size, key_curve, auth_mode, complete_by, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            t.name,
            t.description,
            t.device_pool,
            t.model,
            operation,
            key_order,
            key_size,
            key_curve,
            t.auth_mode.as_db(),
            t.complete_by.map(to_unix),
            to_unix(now),
        ])
    })
    .map_err(Error::db("storing the device template"))?;
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

pub(super) fn template(conn: &Connection, name: &str) -> Result<Option<DeviceTemplate>, Error> {
    conn.prepare_cached(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM device_templates WHERE name = ?1"
    ))
    .and_then(|mut stmt| stmt.query_row([name], template_from_row).optional())
    .map_err(Error::db("loading the device template"))?
    .map(template_parse)
    .transpose()
}

pub(super) fn templates(conn: &Connection) -> Result<Vec<DeviceTemplate>, Error> {
    let sql = format!("SELECT {TEMPLATE_COLUMNS} FROM device_templates ORDER BY name");
    let rows = all_rows(conn, &sql, [], template_from_row)
        .map_err(Error::db("listing the device templates"))?;
    rows.into_iter().map(template_parse).collect()
}

pub(super) fn remove_template(tx: &Connection, name: &str, now: SystemTime) -> Result<(), Error> {
    let removed = tx
        .execute("DELETE FROM device_templates WHERE name = ?1", [name])
        .map_err(Error::db("removing the device template"))?;
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
