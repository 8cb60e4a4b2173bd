//! What only a cluster has: node names, the check that every node holds the same
//! authentication-string key, and the cluster's one CAPF certificate.

use std::time::SystemTime;

use super::{Tx, col, stored_time};
use crate::auth::AUTH_KEY_LEN;
pub use crate::cluster::{CapfCertificate, NodeId};
use crate::sqlite::to_unix;
use crate::{Error, Secret, online_ca};

/// What the cluster table holds of the key: an HMAC of this text under it.
const KEY_CHECK_TEXT: &str = "capf cluster authentication-string key check";

fn key_check(key: &[u8; AUTH_KEY_LEN]) -> Vec<u8> {
    crate::auth::tag(key, "", KEY_CHECK_TEXT)
}

/// Records the key's check in a new database, or compares it with the one recorded.
pub(super) fn check_key(tx: &mut Tx<'_>, key: &[u8; AUTH_KEY_LEN]) -> Result<(), Error> {
    let mine = key_check(key);
    tx.exec(
        "INSERT INTO cluster (id, key_check, created_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
        &[&mine, &to_unix(SystemTime::now())],
        "recording the cluster's key check",
    )?;
    let row = tx.opt(
        "SELECT key_check FROM cluster WHERE id = 1",
        &[],
        "reading the cluster's key check",
    )?;
    let stored: Vec<u8> = match &row {
        Some(r) => col(r, 0)?,
        None => return Err(Error::ClusterKeyMismatch),
    };
    if stored == mine {
        Ok(())
    } else {
        Err(Error::ClusterKeyMismatch)
    }
}

/// The advisory lock under which the first node creates the CAPF certificate.
pub(super) const CAPF_CERTIFICATE_LOCK: i64 = 0x4341_5043;

pub(super) fn load_capf_certificate(
    tx: &mut Tx<'_>,
    key: &[u8; AUTH_KEY_LEN],
) -> Result<Option<CapfCertificate>, Error> {
    let Some(row) = tx.opt(
        "SELECT certificate_pem, sealed_key, generation, updated_at, updated_by \
         FROM capf_certificate WHERE id = 1",
        &[],
        "reading the CAPF certificate",
    )?
    else {
        return Ok(None);
    };
    let sealed: Vec<u8> = col(&row, 1)?;
    Ok(Some(CapfCertificate {
        certificate_pem: col(&row, 0)?,
        key_pem: online_ca::open(key, &sealed)?,
        generation: col(&row, 2)?,
        updated_at: crate::sqlite::from_unix(col(&row, 3)?, "capf_certificate", "updated_at")?,
        updated_by: col(&row, 4)?,
    }))
}

pub(super) fn store_capf_certificate(
    tx: &mut Tx<'_>,
    key: &[u8; AUTH_KEY_LEN],
    certificate_pem: &str,
    key_pem: &Secret,
    by: &str,
    now: SystemTime,
) -> Result<CapfCertificate, Error> {
    let sealed = online_ca::seal(key, key_pem)?;
    let row = tx.opt(
        "INSERT INTO capf_certificate (id, certificate_pem, sealed_key, generation, updated_at, \
         updated_by) VALUES (1, $1, $2, 1, $3, $4) ON CONFLICT (id) DO UPDATE SET \
         certificate_pem = excluded.certificate_pem, sealed_key = excluded.sealed_key, \
         generation = capf_certificate.generation + 1, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by RETURNING generation",
        &[&certificate_pem, &sealed, &to_unix(now), &by],
        "storing the CAPF certificate",
    )?;
    let generation: i64 = match &row {
        Some(r) => col(r, 0)?,
        None => 1,
    };
    super::append_audit(
        tx,
        now,
        None,
        crate::action::CAPF_CERTIFICATE_STORED,
        &format!("CAPF certificate generation {generation} stored by {by}"),
    )?;
    Ok(CapfCertificate {
        certificate_pem: certificate_pem.to_owned(),
        key_pem: key_pem.clone(),
        generation,
        updated_at: stored_time(now, "capf_certificate", "updated_at")?,
        updated_by: by.to_owned(),
    })
}
