//! Requests to an external CA on SQLite (table `ca_requests`): recording an endpoint CSR, the
//! certificate's arrival, failure, delivery, staleness, listing and deletion.

use std::time::SystemTime;

use capf_lsc::{CertificateIssuer, DeviceName};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    all_rows, append_audit, check_lsc, from_unix, list_of, load_lsc, load_required, move_lscs,
    name_from_db, set_lsc_state, to_unix,
};
use crate::types::hex;
use crate::{CaRequest, CaRequestState, Error, IssuedLsc, LscState, NewCaRequest, action};

const COLUMNS: &str = "id, device, mode, csr, public_key, ca_request_id, state, lsc_serial, \
     failure, received_at, state_changed_at";

/// A row as SQLite holds it, before its names and times are parsed.
pub(crate) struct Raw {
    pub(crate) id: i64,
    pub(crate) device: String,
    pub(crate) mode: String,
    pub(crate) csr: Vec<u8>,
    pub(crate) public_key: Vec<u8>,
    pub(crate) ca_request_id: Option<String>,
    pub(crate) state: String,
    pub(crate) lsc_serial: Option<Vec<u8>>,
    pub(crate) failure: Option<String>,
    pub(crate) received_at: i64,
    pub(crate) state_changed_at: i64,
}

impl Raw {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
        Ok(Raw {
            id: row.get(0)?,
            device: row.get(1)?,
            mode: row.get(2)?,
            csr: row.get(3)?,
            public_key: row.get(4)?,
            ca_request_id: row.get(5)?,
            state: row.get(6)?,
            lsc_serial: row.get(7)?,
            failure: row.get(8)?,
            received_at: row.get(9)?,
            state_changed_at: row.get(10)?,
        })
    }

    pub(crate) fn parse(self) -> Result<CaRequest, Error> {
        let corrupt = |column, value: &str| Error::Corrupt {
            table: "ca_requests",
            column,
            value: value.to_owned(),
        };
        Ok(CaRequest {
            id: self.id,
            mode: self.mode.parse().map_err(|_| corrupt("mode", &self.mode))?,
            state: self
                .state
                .parse()
                .map_err(|_| corrupt("state", &self.state))?,
            device: name_from_db(self.device, "ca_requests", "device")?,
            csr: self.csr,
            public_key: self.public_key,
            ca_request_id: self.ca_request_id,
            lsc_serial: self.lsc_serial,
            failure: self.failure,
            received_at: from_unix(self.received_at, "ca_requests", "received_at")?,
            state_changed_at: from_unix(self.state_changed_at, "ca_requests", "state_changed_at")?,
        })
    }
}

fn query(
    conn: &Connection,
    filter: &str,
    param: &dyn rusqlite::ToSql,
    action: &'static str,
) -> Result<Vec<CaRequest>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM ca_requests WHERE {filter} ORDER BY id");
    all_rows(conn, &sql, [param], Raw::read)
        .map_err(Error::db(action))?
        .into_iter()
        .map(Raw::parse)
        .collect()
}

pub(super) fn load(conn: &Connection, id: i64) -> Result<Option<CaRequest>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM ca_requests WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], Raw::read).optional())
        .map_err(Error::db("loading a certificate request"))?
        .map(Raw::parse)
        .transpose()
}

fn load_request(conn: &Connection, id: i64) -> Result<CaRequest, Error> {
    load(conn, id)?.ok_or(Error::UnknownCsr { id })
}

pub(super) fn list(
    conn: &Connection,
    state: Option<CaRequestState>,
) -> Result<Vec<CaRequest>, Error> {
    match state {
        Some(state) => query(
            conn,
            "state = ?1",
            &state.as_str(),
            "listing the certificate requests",
        ),
        None => query(conn, "1 = ?1", &1, "listing the certificate requests"),
    }
}

pub(super) fn open_request(
    conn: &Connection,
    device: &DeviceName,
) -> Result<Option<CaRequest>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ca_requests WHERE device = ?1 AND state IN ('pending', 'issued') \
         ORDER BY id DESC LIMIT 1"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([device.as_str()], Raw::read).optional())
        .map_err(Error::db_device(
            "finding the open certificate request",
            device,
        ))?
        .map(Raw::parse)
        .transpose()
}

fn set_state(
    tx: &Connection,
    id: i64,
    state: CaRequestState,
    lsc_serial: Option<&[u8]>,
    failure: Option<&str>,
    now: SystemTime,
) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE ca_requests SET state = ?2, lsc_serial = coalesce(?3, lsc_serial), failure = ?4, \
         state_changed_at = ?5 WHERE id = ?1",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            id,
            state.as_str(),
            lsc_serial,
            failure,
            to_unix(now)
        ])
    })
    .map_err(Error::db("changing a certificate request's state"))?;
    Ok(())
}

/// The device's Issued requests become Stale (their LSCs were just made stale); returns their
/// ids.
pub(super) fn stale_issued(
    tx: &Connection,
    device: &str,
    now: SystemTime,
) -> Result<Vec<i64>, Error> {
    let ids = all_rows(
        tx,
        "SELECT id FROM ca_requests WHERE device = ?1 AND state = 'issued' ORDER BY id",
        [device],
        |r| r.get::<_, i64>(0),
    )
    .map_err(Error::db_device(
        "finding issued certificate requests",
        device,
    ))?;
    for &id in &ids {
        set_state(tx, id, CaRequestState::Stale, None, None, now)?;
    }
    Ok(ids)
}

/// The Issued request whose LSC is `serial` becomes Delivered; returns its id.
pub(super) fn deliver(
    tx: &Connection,
    serial: &[u8],
    now: SystemTime,
) -> Result<Option<i64>, Error> {
    let id = tx
        .prepare_cached("SELECT id FROM ca_requests WHERE lsc_serial = ?1 AND state = 'issued'")
        .and_then(|mut stmt| stmt.query_row([serial], |r| r.get::<_, i64>(0)).optional())
        .map_err(Error::db("finding the certificate request of an LSC"))?;
    if let Some(id) = id {
        set_state(tx, id, CaRequestState::Delivered, None, None, now)?;
    }
    Ok(id)
}

fn ids(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn record(
    tx: &Connection,
    name: &DeviceName,
    request: &NewCaRequest<'_>,
    now: SystemTime,
) -> Result<CaRequest, Error> {
    let invalid = |reason| Error::InvalidCaRequest {
        device: name.to_string(),
        reason,
    };
    if !request.mode.is_external() {
        return Err(invalid(
            "CAPF signs LSCs itself; only an external CA takes a request",
        ));
    }
    if request.csr.is_empty() {
        return Err(invalid("the CSR is empty"));
    }
    if request.public_key.is_empty() {
        return Err(invalid("the public key is empty"));
    }
    let device = load_required(tx, name)?.device.name;
    let replaced = all_rows(
        tx,
        "SELECT id FROM ca_requests WHERE device = ?1 AND state = 'pending' ORDER BY id",
        [device.as_str()],
        |r| r.get::<_, i64>(0),
    )
    .map_err(Error::db_device(
        "finding pending certificate requests",
        name,
    ))?;
    for &id in &replaced {
        set_state(
            tx,
            id,
            CaRequestState::Failed,
            None,
            Some("replaced by a new request"),
            now,
        )?;
    }
    let staled = stale_issued(tx, &device, now)?;
    let stale_lscs = move_lscs(tx, &device, LscState::Issued, LscState::Stale, now)?;
    let id = tx
        .prepare_cached(
            "INSERT INTO ca_requests (device, mode, csr, public_key, ca_request_id, state, \
             received_at, state_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6) \
             RETURNING id",
        )
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    device.as_str(),
                    request.mode.as_str(),
                    request.csr,
                    request.public_key,
                    request.ca_request_id,
                    to_unix(now)
                ],
                |r| r.get::<_, i64>(0),
            )
        })
        .map_err(Error::db_device("recording the certificate request", name))?;
    let mut detail = format!(
        "request {id} to the {} ({} bytes of CSR)",
        request.mode.label(),
        request.csr.len()
    );
    if let Some(ca_id) = request.ca_request_id {
        detail.push_str(&format!(", CA request id {ca_id}"));
    }
    if !replaced.is_empty() {
        detail.push_str("; replaced (failed): ");
        detail.push_str(&ids(&replaced));
    }
    if !staled.is_empty() {
        detail.push_str("; now stale: request ");
        detail.push_str(&ids(&staled));
    }
    if !stale_lscs.is_empty() {
        detail.push_str("; stale LSC: ");
        detail.push_str(&list_of(&stale_lscs));
    }
    append_audit(tx, now, Some(&device), action::CA_REQUEST_RECORDED, &detail)?;
    load_request(tx, id)
}

pub(super) fn issued(
    tx: &Connection,
    id: i64,
    lsc: &IssuedLsc,
    now: SystemTime,
) -> Result<CaRequest, Error> {
    let request = load_request(tx, id)?;
    if request.state != CaRequestState::Pending {
        return Err(Error::CaRequestWrongState {
            id,
            state: request.state,
            wanted: "given a certificate",
        });
    }
    let device = request.device;
    check_lsc(
        &device,
        &lsc.serial,
        &lsc.der,
        lsc.not_before,
        lsc.not_after,
    )?;
    if let Some(existing) = load_lsc(tx, &lsc.serial)? {
        return Err(Error::DuplicateSerial {
            serial: hex(&lsc.serial),
            owner: existing.device.into_string(),
        });
    }
    tx.prepare_cached(
        "INSERT INTO lscs (serial, device, der, not_before, not_after, issued_at, state, \
         state_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            lsc.serial,
            device.as_str(),
            lsc.der,
            to_unix(lsc.not_before),
            to_unix(lsc.not_after),
            to_unix(now),
            LscState::Issued.as_str(),
        ])
    })
    .map_err(Error::db_device("recording the LSC", &device))?;
    set_state(tx, id, CaRequestState::Issued, Some(&lsc.serial), None, now)?;
    append_audit(
        tx,
        now,
        Some(&device),
        action::CA_REQUEST_ISSUED,
        &format!(
            "request {id}: LSC serial {}, valid unix {} to {}, awaiting delivery",
            hex(&lsc.serial),
            to_unix(lsc.not_before),
            to_unix(lsc.not_after)
        ),
    )?;
    load_request(tx, id)
}

pub(super) fn failed(
    tx: &Connection,
    id: i64,
    reason: &str,
    now: SystemTime,
) -> Result<CaRequest, Error> {
    let request = load_request(tx, id)?;
    if request.state != CaRequestState::Pending {
        return Err(Error::CaRequestWrongState {
            id,
            state: request.state,
            wanted: "marked failed",
        });
    }
    set_state(tx, id, CaRequestState::Failed, None, Some(reason), now)?;
    append_audit(
        tx,
        now,
        Some(&request.device),
        action::CA_REQUEST_FAILED,
        &format!("request {id} failed: {reason}"),
    )?;
    load_request(tx, id)
}

fn delete_one(tx: &Connection, request: &CaRequest, now: SystemTime) -> Result<(), Error> {
    tx.prepare_cached("DELETE FROM ca_requests WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([request.id]))
        .map_err(Error::db("deleting a certificate request"))?;
    let mut detail = format!("request {} ({}) deleted", request.id, request.state);
    if request.state == CaRequestState::Issued
        && let Some(serial) = &request.lsc_serial
        && load_lsc(tx, serial)?.is_some_and(|l| l.state == LscState::Issued)
    {
        // Its certificate will never be delivered now.
        set_lsc_state(tx, serial, LscState::Stale, now)?;
        detail.push_str(&format!("; stale LSC: {}", hex(serial)));
    }
    append_audit(
        tx,
        now,
        Some(&request.device),
        action::CA_REQUEST_DELETED,
        &detail,
    )
}

pub(super) fn delete(tx: &Connection, id: i64, now: SystemTime) -> Result<CaRequest, Error> {
    let request = load_request(tx, id)?;
    delete_one(tx, &request, now)?;
    Ok(request)
}

pub(super) fn delete_all(tx: &Connection, now: SystemTime) -> Result<usize, Error> {
    let all = list(tx, None)?;
    for request in &all {
        delete_one(tx, request, now)?;
    }
    Ok(all.len())
}

pub(super) fn pending(
    tx: &Connection,
    id: i64,
    ca_request_id: Option<&str>,
    now: SystemTime,
) -> Result<CaRequest, Error> {
    let request = load_request(tx, id)?;
    if request.state != CaRequestState::Pending {
        return Err(Error::CaRequestWrongState {
            id,
            state: request.state,
            wanted: "held as pending",
        });
    }
    tx.prepare_cached(
        "UPDATE ca_requests SET ca_request_id = coalesce(?2, ca_request_id) WHERE id = ?1",
    )
    .and_then(|mut stmt| stmt.execute(params![id, ca_request_id]))
    .map_err(Error::db("recording the CA's request id"))?;
    append_audit(
        tx,
        now,
        Some(&request.device),
        action::CA_REQUEST_PENDING,
        &format!(
            "request {id} pending with the CA{}",
            ca_request_id
                .map(|r| format!(" (its request id {r})"))
                .unwrap_or_default()
        ),
    )?;
    load_request(tx, id)
}

pub(super) fn pending_of_mode(
    conn: &Connection,
    mode: CertificateIssuer,
) -> Result<Vec<CaRequest>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ca_requests WHERE state = 'pending' AND mode = ?1 ORDER BY id"
    );
    all_rows(conn, &sql, [mode.as_str()], Raw::read)
        .map_err(Error::db("listing the pending certificate requests"))?
        .into_iter()
        .map(Raw::parse)
        .collect()
}

pub(super) fn installed_lsc_mode(
    conn: &Connection,
    device: &DeviceName,
) -> Result<Option<CertificateIssuer>, Error> {
    let mode: Option<String> = conn
        .prepare_cached(
            "SELECT r.mode FROM ca_requests r JOIN lscs l ON l.serial = r.lsc_serial \
             WHERE l.device = ?1 AND l.state = 'installed' ORDER BY r.id DESC LIMIT 1",
        )
        .and_then(|mut stmt| stmt.query_row([device.as_str()], |r| r.get(0)).optional())
        .map_err(Error::db_device(
            "finding the installed LSC's issuer",
            device,
        ))?;
    mode.map(|m| {
        m.parse::<CertificateIssuer>().map_err(|_| Error::Corrupt {
            table: "ca_requests",
            column: "mode",
            value: m,
        })
    })
    .transpose()
}
