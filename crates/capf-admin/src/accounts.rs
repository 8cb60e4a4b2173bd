//! Administrator accounts of the web administration: passwords hashed with Argon2id (a
//! memory-hard function) and API tokens kept only as their SHA-256 hash.

use std::time::SystemTime;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use capf_store::{Account, AccountName, AdminStore, ApiToken, NewAccount, Role, TOKEN_HASH_LEN};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;

/// The shortest password accepted, in characters.
pub const PASSWORD_MIN_LEN: usize = 12;
/// The longest password accepted, in characters (bounds the hashing work one login costs).
pub const PASSWORD_MAX_LEN: usize = 1024;
/// Every API token starts with this, so a leaked one is easy to recognise in a log or a scan.
pub const TOKEN_PREFIX: &str = "capf_";

/// Hashes `password` with Argon2id (the argon2 crate's defaults: 19 MiB, 2 passes, 1 lane,
/// OWASP's minimum) and a fresh 16-byte salt, as a PHC string.
///
/// # Errors
/// [`Error::PasswordLength`], [`Error::Random`], [`Error::PasswordHash`].
pub fn hash_password(password: &str) -> Result<String, Error> {
    let len = password.chars().count();
    if !(PASSWORD_MIN_LEN..=PASSWORD_MAX_LEN).contains(&len) {
        return Err(Error::PasswordLength {
            len,
            min: PASSWORD_MIN_LEN,
            max: PASSWORD_MAX_LEN,
        });
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|error| Error::Random { error })?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::PasswordHash {
        reason: e.to_string(),
    })?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::PasswordHash {
            reason: e.to_string(),
        })
}

/// Whether `password` matches the PHC `hash` (false for a hash that does not parse, and for a
/// password longer than [`PASSWORD_MAX_LEN`]).
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.chars().count() > PASSWORD_MAX_LEN {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Adds an administrator account with the password hashed ([`hash_password`]).
///
/// # Errors
/// As [`hash_password`]; the store's `DuplicateAccount`.
pub fn add_account(
    store: &dyn AdminStore,
    name: &AccountName,
    role: Role,
    password: &str,
    now: SystemTime,
) -> Result<Account, Error> {
    let password_hash = hash_password(password)?;
    Ok(store.add_account(
        &NewAccount {
            name: name.clone(),
            role,
            password_hash,
        },
        now,
    )?)
}

/// The SHA-256 of an API token, as the store keeps it.
pub fn token_hash(token: &str) -> [u8; TOKEN_HASH_LEN] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new API token for the account: [`TOKEN_PREFIX`] and 32 random bytes in hex. The store
/// keeps its hash; the token is returned once, to show to the administrator.
///
/// # Errors
/// [`Error::Random`]; the store's `UnknownAccount`.
pub fn create_api_token(
    store: &dyn AdminStore,
    name: &AccountName,
    label: &str,
    now: SystemTime,
) -> Result<(String, ApiToken), Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| Error::Random { error })?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
    let stored = store.add_api_token(name, &token_hash(&token), label, now)?;
    Ok((token, stored))
}

/// An account as shown (never its password hash).
#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    /// The name.
    pub name: String,
    /// `admin` or `read-only`.
    pub role: &'static str,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// Failed logins since the last successful one.
    pub login_failures: u32,
    /// The last successful login (RFC 3339).
    pub last_login: Option<String>,
}

impl AccountView {
    /// The view of `account`.
    pub fn of(account: &Account) -> AccountView {
        AccountView {
            name: account.name.to_string(),
            role: account.role.as_str(),
            created_at: crate::rfc3339(account.created_at),
            login_failures: account.login_failures,
            last_login: crate::rfc3339_opt(account.last_login),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_is_argon2id_salted_and_verifies_only_the_password() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password(&a, "correct horse battery"));
        assert!(!verify_password(&a, "correct horse battery!"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }

    #[test]
    fn refuses_short_passwords_without_showing_them() {
        let e = hash_password("short").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a password must be 12 to 1024 characters; the one given has 5"
        );
    }

    #[test]
    fn tokens_are_shown_once_and_stored_as_their_hash() {
        let store = capf_store::SqliteStore::open_in_memory([1; 32]).unwrap();
        let name = AccountName::new("alice").unwrap();
        add_account(
            &store,
            &name,
            Role::Admin,
            "correct horse battery",
            SystemTime::now(),
        )
        .unwrap();
        let (token, stored) = create_api_token(&store, &name, "backup", SystemTime::now()).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 64);
        let (account, found) = store
            .api_token_account(&token_hash(&token))
            .unwrap()
            .unwrap();
        assert_eq!(account.name, name);
        assert_eq!(found, stored);
    }
}
