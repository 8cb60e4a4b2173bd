//! Administrator accounts and API tokens on SQLite (schema step 5).

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{append_audit, from_unix, from_unix_opt, to_unix};
use crate::{Account, AccountName, ApiToken, Error, NewAccount, Role, TOKEN_HASH_LEN, action};

const ACCOUNT_COLUMNS: &str =
    "name, role, password_hash, created_at, login_failures, last_login_failure, last_login";

fn corrupt(column: &'static str, value: String) -> Error {
    Error::Corrupt {
        table: "admin_accounts",
        column,
        value,
    }
}

pub(crate) type RawAccount = (String, String, String, i64, i64, Option<i64>, Option<i64>);

fn raw_account(r: &Row<'_>) -> rusqlite::Result<RawAccount> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

pub(crate) fn account_from_raw(raw: RawAccount) -> Result<Account, Error> {
    let (name, role, password_hash, created_at, failures, last_failure, last_login) = raw;
    Ok(Account {
        name: AccountName::new(&name).map_err(|_| corrupt("name", name.clone()))?,
        role: role
            .parse::<Role>()
            .map_err(|_| corrupt("role", role.clone()))?,
        password_hash,
        created_at: from_unix(created_at, "admin_accounts", "created_at")?,
        login_failures: u32::try_from(failures)
            .map_err(|_| corrupt("login_failures", failures.to_string()))?,
        last_login_failure: from_unix_opt(last_failure, "admin_accounts", "last_login_failure")?,
        last_login: from_unix_opt(last_login, "admin_accounts", "last_login")?,
    })
}

pub(super) fn load(conn: &Connection, name: &AccountName) -> Result<Option<Account>, Error> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM admin_accounts WHERE name = ?1"
    ))
    .and_then(|mut stmt| stmt.query_row([name.as_str()], raw_account).optional())
    .map_err(Error::db("reading an account"))?
    .map(account_from_raw)
    .transpose()
}

fn load_required(conn: &Connection, name: &AccountName) -> Result<Account, Error> {
    load(conn, name)?.ok_or_else(|| Error::UnknownAccount {
        name: name.to_string(),
    })
}

pub(super) fn list(conn: &Connection) -> Result<Vec<Account>, Error> {
    conn.prepare_cached(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM admin_accounts ORDER BY name"
    ))
    .and_then(|mut stmt| {
        stmt.query_map([], raw_account)?
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(Error::db("listing accounts"))?
    .into_iter()
    .map(account_from_raw)
    .collect()
}

pub(super) fn add(
    tx: &Connection,
    account: &NewAccount,
    now: SystemTime,
) -> Result<Account, Error> {
    if account.password_hash.is_empty() {
        return Err(Error::InvalidAccount {
            reason: "an account needs a password hash",
        });
    }
    if load(tx, &account.name)?.is_some() {
        return Err(Error::DuplicateAccount {
            name: account.name.to_string(),
        });
    }
    tx.execute(
        "INSERT INTO admin_accounts (name, role, password_hash, created_at, login_failures) \
         VALUES (?1, ?2, ?3, ?4, 0)",
        params![
            account.name.as_str(),
            account.role.as_str(),
            account.password_hash,
            to_unix(now)
        ],
    )
    .map_err(Error::db("adding an account"))?;
    append_audit(
        tx,
        now,
        None,
        action::ACCOUNT_ADDED,
        &format!("account {} role {}", account.name, account.role),
    )?;
    load_required(tx, &account.name)
}

pub(super) fn remove(tx: &Connection, name: &AccountName, now: SystemTime) -> Result<(), Error> {
    let account = load_required(tx, name)?;
    tx.execute(
        "DELETE FROM admin_accounts WHERE name = ?1",
        [account.name.as_str()],
    )
    .map_err(Error::db("removing an account"))?;
    append_audit(
        tx,
        now,
        None,
        action::ACCOUNT_REMOVED,
        &format!("account {}", account.name),
    )
}

pub(super) fn login_failure(
    tx: &Connection,
    name: &AccountName,
    now: SystemTime,
) -> Result<Account, Error> {
    let account = load_required(tx, name)?;
    tx.execute(
        "UPDATE admin_accounts SET login_failures = min(login_failures + 1, 4294967295), \
         last_login_failure = ?2 WHERE name = ?1",
        params![account.name.as_str(), to_unix(now)],
    )
    .map_err(Error::db("recording a login failure"))?;
    append_audit(
        tx,
        now,
        None,
        action::LOGIN_FAILED,
        &format!("account {}", account.name),
    )?;
    load_required(tx, name)
}

pub(super) fn login(
    tx: &Connection,
    name: &AccountName,
    now: SystemTime,
) -> Result<Account, Error> {
    let account = load_required(tx, name)?;
    tx.execute(
        "UPDATE admin_accounts SET login_failures = 0, last_login = ?2 WHERE name = ?1",
        params![account.name.as_str(), to_unix(now)],
    )
    .map_err(Error::db("recording a login"))?;
    append_audit(
        tx,
        now,
        None,
        action::LOGIN,
        &format!("account {}", account.name),
    )?;
    load_required(tx, name)
}

type RawToken = (i64, String, String, i64);

fn token_from_raw((id, account, label, created_at): RawToken) -> Result<ApiToken, Error> {
    Ok(ApiToken {
        id,
        account: AccountName::new(&account).map_err(|_| Error::Corrupt {
            table: "api_tokens",
            column: "account",
            value: account.clone(),
        })?,
        label,
        created_at: from_unix(created_at, "api_tokens", "created_at")?,
    })
}

pub(super) fn add_token(
    tx: &Connection,
    name: &AccountName,
    token_hash: &[u8],
    label: &str,
    now: SystemTime,
) -> Result<ApiToken, Error> {
    if token_hash.len() != TOKEN_HASH_LEN {
        return Err(Error::InvalidAccount {
            reason: "a token hash is 32 bytes",
        });
    }
    let account = load_required(tx, name)?;
    let taken: bool = tx
        .query_row(
            "SELECT count(*) > 0 FROM api_tokens WHERE token_hash = ?1",
            [token_hash],
            |r| r.get(0),
        )
        .map_err(Error::db("checking a token"))?;
    if taken {
        return Err(Error::InvalidAccount {
            reason: "this token is already stored",
        });
    }
    tx.execute(
        "INSERT INTO api_tokens (account, token_hash, label, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![account.name.as_str(), token_hash, label, to_unix(now)],
    )
    .map_err(Error::db("adding a token"))?;
    let id = tx.last_insert_rowid();
    append_audit(
        tx,
        now,
        None,
        action::API_TOKEN_CREATED,
        &format!("token {id} of account {} ({label})", account.name),
    )?;
    Ok(ApiToken {
        id,
        account: account.name,
        label: label.to_owned(),
        created_at: from_unix(to_unix(now), "api_tokens", "created_at")?,
    })
}

pub(super) fn token_account(
    conn: &Connection,
    token_hash: &[u8],
) -> Result<Option<(Account, ApiToken)>, Error> {
    let raw = conn
        .prepare_cached(
            "SELECT id, account, label, created_at FROM api_tokens WHERE token_hash = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([token_hash], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()
        })
        .map_err(Error::db("reading a token"))?;
    let Some(raw) = raw else {
        return Ok(None);
    };
    let token = token_from_raw(raw)?;
    Ok(load(conn, &token.account)?.map(|account| (account, token)))
}

pub(super) fn tokens(conn: &Connection, name: &AccountName) -> Result<Vec<ApiToken>, Error> {
    conn.prepare_cached(
        "SELECT id, account, label, created_at FROM api_tokens WHERE account = ?1 ORDER BY id",
    )
    .and_then(|mut stmt| {
        stmt.query_map([name.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<Vec<_>, _>>()
    })
    .map_err(Error::db("listing tokens"))?
    .into_iter()
    .map(token_from_raw)
    .collect()
}

pub(super) fn remove_token(tx: &Connection, id: i64, now: SystemTime) -> Result<(), Error> {
    let removed = tx
        .execute("DELETE FROM api_tokens WHERE id = ?1", [id])
        .map_err(Error::db("removing a token"))?;
    if removed == 0 {
        return Err(Error::InvalidAccount {
            reason: "no such token",
        });
    }
    append_audit(
        tx,
        now,
        None,
        action::API_TOKEN_REMOVED,
        &format!("token {id}"),
    )
}
