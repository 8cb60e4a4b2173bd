//! Requests to an external CA on PostgreSQL (table `ca_requests`): the same changes as SQLite's
//! (`sqlite/ca.rs`); a request is locked (`FOR UPDATE`) before it changes, so a certificate is
//! applied once however many nodes poll the CA.

use std::time::SystemTime;

use capf_lsc::{CertificateIssuer, DeviceName};
use postgres::Row;

use super::{
    Tx, append_audit, col, insert_issued_lsc, load_locked, load_lsc, move_lscs, set_lsc_state,
};
use crate::sqlite::{RawCaRequest, check_lsc, list_of, to_unix};
use crate::types::hex;
use crate::{CaRequest, CaRequestState, Error, IssuedLsc, LscState, NewCaRequest, action};

const COLUMNS: &str = "id, device, mode, csr, public_key, ca_request_id, state, lsc_serial, \
     failure, received_at, state_changed_at";

fn parse(row: &Row) -> Result<CaRequest, Error> {
    RawCaRequest {
        id: col(row, 0)?,
        device: col(row, 1)?,
        mode: col(row, 2)?,
        csr: col(row, 3)?,
        public_key: col(row, 4)?,
        ca_request_id: col(row, 5)?,
        state: col(row, 6)?,
        lsc_serial: col(row, 7)?,
        failure: col(row, 8)?,
        received_at: col(row, 9)?,
        state_changed_at: col(row, 10)?,
    }
    .parse()
}

fn parse_all(rows: &[Row]) -> Result<Vec<CaRequest>, Error> {
    rows.iter().map(parse).collect()
}

pub(super) fn load(tx: &mut Tx<'_>, id: i64) -> Result<Option<CaRequest>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM ca_requests WHERE id = $1");
    tx.opt(&sql, &[&id], "loading a certificate request")?
        .as_ref()
        .map(parse)
        .transpose()
}

/// The request, locked until the transaction ends.
fn load_request(tx: &mut Tx<'_>, id: i64) -> Result<CaRequest, Error> {
    let sql = format!("SELECT {COLUMNS} FROM ca_requests WHERE id = $1 FOR UPDATE");
    tx.opt(&sql, &[&id], "loading a certificate request")?
        .as_ref()
        .map(parse)
        .transpose()?
        .ok_or(Error::UnknownCsr { id })
}

pub(super) fn list(
    tx: &mut Tx<'_>,
    state: Option<CaRequestState>,
) -> Result<Vec<CaRequest>, Error> {
    let rows = match state {
        Some(state) => tx.rows(
            &format!("SELECT {COLUMNS} FROM ca_requests WHERE state = $1 ORDER BY id"),
            &[&state.as_str()],
            "listing the certificate requests",
        )?,
        None => tx.rows(
            &format!("SELECT {COLUMNS} FROM ca_requests ORDER BY id"),
            &[],
            "listing the certificate requests",
        )?,
    };
    parse_all(&rows)
}

pub(super) fn open_request(
    tx: &mut Tx<'_>,
    device: &DeviceName,
) -> Result<Option<CaRequest>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ca_requests WHERE device = $1 AND state IN ('pending', 'issued') \
         ORDER BY id DESC LIMIT 1"
    );
    tx.opt(
        &sql,
        &[&device.as_str()],
        "finding the open certificate request",
    )?
    .as_ref()
    .map(parse)
    .transpose()
}

fn set_state(
    tx: &mut Tx<'_>,
    id: i64,
    state: CaRequestState,
    lsc_serial: Option<&[u8]>,
    failure: Option<&str>,
    now: SystemTime,
) -> Result<(), Error> {
    tx.exec(
        "UPDATE ca_requests SET state = $2, lsc_serial = coalesce($3, lsc_serial), failure = $4, \
         state_changed_at = $5 WHERE id = $1",
        &[&id, &state.as_str(), &lsc_serial, &failure, &to_unix(now)],
        "changing a certificate request's state",
    )?;
    Ok(())
}

fn ids_where(tx: &mut Tx<'_>, device: &str, state: &str) -> Result<Vec<i64>, Error> {
    tx.rows(
        "SELECT id FROM ca_requests WHERE device = $1 AND state = $2 ORDER BY id FOR UPDATE",
        &[&device, &state],
        "finding certificate requests",
    )?
    .iter()
    .map(|r| col(r, 0))
    .collect()
}

/// The device's Issued requests become Stale; returns their ids.
pub(super) fn stale_issued(
    tx: &mut Tx<'_>,
    device: &str,
    now: SystemTime,
) -> Result<Vec<i64>, Error> {
    let ids = ids_where(tx, device, "issued")?;
    for &id in &ids {
        set_state(tx, id, CaRequestState::Stale, None, None, now)?;
    }
    Ok(ids)
}

/// The Issued request whose LSC is `serial` becomes Delivered; returns its id.
pub(super) fn deliver(
    tx: &mut Tx<'_>,
    serial: &[u8],
    now: SystemTime,
) -> Result<Option<i64>, Error> {
    let id: Option<i64> = tx
        .opt(
            "SELECT id FROM ca_requests WHERE lsc_serial = $1 AND state = 'issued' FOR UPDATE",
            &[&serial],
            "finding the certificate request of an LSC",
        )?
        .as_ref()
        .map(|r| col(r, 0))
        .transpose()?;
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
    tx: &mut Tx<'_>,
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
    let device = load_locked(tx, name)?.device.name;
    let replaced = ids_where(tx, &device, "pending")?;
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
    let row = tx.opt(
        "INSERT INTO ca_requests (device, mode, csr, public_key, ca_request_id, state, \
         received_at, state_changed_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $6) \
         RETURNING id",
        &[
            &device.as_str(),
            &request.mode.as_str(),
            &request.csr,
            &request.public_key,
            &request.ca_request_id,
            &to_unix(now),
        ],
        "recording the certificate request",
    )?;
    let id: i64 = match &row {
        Some(r) => col(r, 0)?,
        None => return Err(Error::UnknownCsr { id: 0 }),
    };
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
    tx: &mut Tx<'_>,
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
    insert_issued_lsc(tx, &device, lsc, now)?;
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
    tx: &mut Tx<'_>,
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

fn delete_one(tx: &mut Tx<'_>, request: &CaRequest, now: SystemTime) -> Result<(), Error> {
    tx.exec(
        "DELETE FROM ca_requests WHERE id = $1",
        &[&request.id],
        "deleting a certificate request",
    )?;
    let mut detail = format!("request {} ({}) deleted", request.id, request.state);
    if request.state == CaRequestState::Issued
        && let Some(serial) = &request.lsc_serial
        && load_lsc(tx, serial)?.is_some_and(|l| l.state == LscState::Issued)
    {
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

pub(super) fn delete(tx: &mut Tx<'_>, id: i64, now: SystemTime) -> Result<CaRequest, Error> {
    let request = load_request(tx, id)?;
    delete_one(tx, &request, now)?;
    Ok(request)
}

pub(super) fn delete_all(tx: &mut Tx<'_>, now: SystemTime) -> Result<usize, Error> {
    let all = parse_all(&tx.rows(
        &format!("SELECT {COLUMNS} FROM ca_requests ORDER BY id FOR UPDATE"),
        &[],
        "listing the certificate requests",
    )?)?;
    for request in &all {
        delete_one(tx, request, now)?;
    }
    Ok(all.len())
}

pub(super) fn pending(
    tx: &mut Tx<'_>,
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
    tx.exec(
        "UPDATE ca_requests SET ca_request_id = coalesce($2, ca_request_id) WHERE id = $1",
        &[&id, &ca_request_id],
        "recording the CA's request id",
    )?;
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
    tx: &mut Tx<'_>,
    mode: CertificateIssuer,
) -> Result<Vec<CaRequest>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM ca_requests WHERE state = 'pending' AND mode = $1 ORDER BY id"
    );
    parse_all(&tx.rows(
        &sql,
        &[&mode.as_str()],
        "listing the pending certificate requests",
    )?)
}

pub(super) fn installed_lsc_mode(
    tx: &mut Tx<'_>,
    device: &DeviceName,
) -> Result<Option<CertificateIssuer>, Error> {
    let mode: Option<String> = tx
        .opt(
            "SELECT r.mode FROM ca_requests r JOIN lscs l ON l.serial = r.lsc_serial \
             WHERE l.device = $1 AND l.state = 'installed' ORDER BY r.id DESC LIMIT 1",
            &[&device.as_str()],
            "finding the installed LSC's issuer",
        )?
        .as_ref()
        .map(|r| col(r, 0))
        .transpose()?;
    mode.map(|m| {
        m.parse::<CertificateIssuer>().map_err(|_| Error::Corrupt {
            table: "ca_requests",
            column: "mode",
            value: m,
        })
    })
    .transpose()
}
