//! Administrator accounts and API tokens on PostgreSQL: SQLite's (`sqlite/accounts.rs`) on the
//! same tables.

use std::time::SystemTime;

use postgres::Row;

use super::{Tx, append_audit, col, stored_time};
use crate::sqlite::{RawAccount, account_from_raw, from_unix, to_unix};
use crate::{Account, AccountName, ApiToken, Error, NewAccount, TOKEN_HASH_LEN, action};

const ACCOUNT_COLUMNS: &str =
    "name, role, password_hash, created_at, login_failures, last_login_failure, last_login";

fn raw_account(r: &Row) -> Result<RawAccount, Error> {
    Ok((
        col(r, 0)?,
        col(r, 1)?,
        col(r, 2)?,
        col(r, 3)?,
        col(r, 4)?,
        col(r, 5)?,
        col(r, 6)?,
    ))
}

fn load_with(tx: &mut Tx<'_>, name: &AccountName, lock: &str) -> Result<Option<Account>, Error> {
    tx.opt(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM admin_accounts WHERE name = $1{lock}"),
        &[&name.as_str()],
        "reading an account",
    )?
    .as_ref()
    .map(|r| raw_account(r).and_then(account_from_raw))
    .transpose()
}

pub(super) fn load(tx: &mut Tx<'_>, name: &AccountName) -> Result<Option<Account>, Error> {
    load_with(tx, name, "")
}

/// The account, locked until the transaction ends.
fn load_required(tx: &mut Tx<'_>, name: &AccountName) -> Result<Account, Error> {
    load_with(tx, name, " FOR UPDATE")?.ok_or_else(|| Error::UnknownAccount {
        name: name.to_string(),
    })
}

pub(super) fn list(tx: &mut Tx<'_>) -> Result<Vec<Account>, Error> {
    tx.rows(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM admin_accounts ORDER BY name"),
        &[],
        "listing accounts",
    )?
    .iter()
    .map(|r| raw_account(r).and_then(account_from_raw))
    .collect()
}

pub(super) fn add(
    tx: &mut Tx<'_>,
    account: &NewAccount,
    now: SystemTime,
) -> Result<Account, Error> {
    if account.password_hash.is_empty() {
        return Err(Error::InvalidAccount {
            reason: "an account needs a password hash",
        });
    }
    let inserted = tx.exec(
        "INSERT INTO admin_accounts (name, role, password_hash, created_at, login_failures) \
         VALUES ($1, $2, $3, $4, 0) ON CONFLICT (name) DO NOTHING",
        &[
            &account.name.as_str(),
            &account.role.as_str(),
            &account.password_hash,
            &to_unix(now),
        ],
        "adding an account",
    )?;
    if inserted == 0 {
        return Err(Error::DuplicateAccount {
            name: account.name.to_string(),
        });
    }
    append_audit(
        tx,
        now,
        None,
        action::ACCOUNT_ADDED,
        &format!("account {} role {}", account.name, account.role),
    )?;
    load_required(tx, &account.name)
}

pub(super) fn remove(tx: &mut Tx<'_>, name: &AccountName, now: SystemTime) -> Result<(), Error> {
    let account = load_required(tx, name)?;
    tx.exec(
        "DELETE FROM admin_accounts WHERE name = $1",
        &[&account.name.as_str()],
        "removing an account",
    )?;
    append_audit(
        tx,
        now,
        None,
        action::ACCOUNT_REMOVED,
        &format!("account {}", account.name),
    )
}

pub(super) fn login_failure(
    tx: &mut Tx<'_>,
    name: &AccountName,
    now: SystemTime,
) -> Result<Account, Error> {
    let account = load_required(tx, name)?;
    tx.exec(
        "UPDATE admin_accounts SET login_failures = least(login_failures + 1, 4294967295), \
         last_login_failure = $2 WHERE name = $1",
        &[&account.name.as_str(), &to_unix(now)],
        "recording a login failure",
    )?;
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
    tx: &mut Tx<'_>,
    name: &AccountName,
    now: SystemTime,
) -> Result<Account, Error> {
    let account = load_required(tx, name)?;
    tx.exec(
        "UPDATE admin_accounts SET login_failures = 0, last_login = $2 WHERE name = $1",
        &[&account.name.as_str(), &to_unix(now)],
        "recording a login",
    )?;
    append_audit(
        tx,
        now,
        None,
        action::LOGIN,
        &format!("account {}", account.name),
    )?;
    load_required(tx, name)
}

fn token_from_row(r: &Row) -> Result<ApiToken, Error> {
    let id: i64 = col(r, 0)?;
    let account: String = col(r, 1)?;
    let label: String = col(r, 2)?;
    let created_at: i64 = col(r, 3)?;
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
    tx: &mut Tx<'_>,
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
    let row = tx.opt(
        "INSERT INTO api_tokens (account, token_hash, label, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (token_hash) DO NOTHING RETURNING id",
        &[&account.name.as_str(), &token_hash, &label, &to_unix(now)],
        "adding a token",
    )?;
    let Some(row) = row else {
        return Err(Error::InvalidAccount {
            reason: "this token is already stored",
        });
    };
    let id: i64 = col(&row, 0)?;
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
        created_at: stored_time(now, "api_tokens", "created_at")?,
    })
}

pub(super) fn token_account(
    tx: &mut Tx<'_>,
    token_hash: &[u8],
) -> Result<Option<(Account, ApiToken)>, Error> {
    let Some(row) = tx.opt(
        "SELECT id, account, label, created_at FROM api_tokens WHERE token_hash = $1",
        &[&token_hash],
        "reading a token",
    )?
    else {
        return Ok(None);
    };
    let token = token_from_row(&row)?;
    Ok(load(tx, &token.account)?.map(|account| (account, token)))
}

pub(super) fn tokens(tx: &mut Tx<'_>, name: &AccountName) -> Result<Vec<ApiToken>, Error> {
    tx.rows(
        "SELECT id, account, label, created_at FROM api_tokens WHERE account = $1 ORDER BY id",
        &[&name.as_str()],
        "listing tokens",
    )?
    .iter()
    .map(token_from_row)
    .collect()
}

pub(super) fn remove_token(tx: &mut Tx<'_>, id: i64, now: SystemTime) -> Result<(), Error> {
    let removed = tx.exec(
        "DELETE FROM api_tokens WHERE id = $1",
        &[&id],
        "removing a token",
    )?;
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
