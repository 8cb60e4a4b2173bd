//! The Online CA settings row.

use std::time::SystemTime;

use capf_lsc::{OnlineCaConfig, OnlineCaParams};
use rusqlite::{Connection, OptionalExtension, params};

use super::{append_audit, to_unix};
use crate::auth::AUTH_KEY_LEN;
use crate::{Error, action, online_ca};

pub(super) fn load(
    conn: &Connection,
    key: &[u8; AUTH_KEY_LEN],
) -> Result<Option<OnlineCaConfig>, Error> {
    let row = conn
        .prepare_cached(
            "SELECT host, port, ca_type, username, sealed_password, template, label \
             FROM online_ca WHERE id = 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u32>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .optional()
        })
        .map_err(Error::db("reading the Online CA settings"))?;
    let Some((host, port, ca_type, username, sealed, template, label)) = row else {
        return Ok(None);
    };
    let params = OnlineCaParams {
        host,
        port,
        ca_type,
        username,
        password: online_ca::open(key, &sealed)?,
        template,
        label,
    };
    OnlineCaConfig::new(&params)
        .map(Some)
        .map_err(|source| Error::OnlineCaConfig { source })
}

pub(super) fn store(
    tx: &Connection,
    key: &[u8; AUTH_KEY_LEN],
    config: &OnlineCaConfig,
    now: SystemTime,
) -> Result<(), Error> {
    let sealed = online_ca::seal(key, &config.password)?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO online_ca (id, host, port, ca_type, username, sealed_password, \
         template, label, updated_at) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            config.host.as_str(),
            config.port,
            config.ca_type.as_str(),
            config.username,
            sealed,
            config.template,
            config.label.as_ref().map(|l| l.as_str()),
            to_unix(now),
        ])
    })
    .map_err(Error::db("storing the Online CA settings"))?;
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
