//! Administrator accounts of the web administration and their API tokens (issue 18).
//!
//! The store keeps what it is given: a password hash (PHC string, made by the caller with a
//! memory-hard function) and the hash of each API token, never a password or a token.

use core::fmt;
use std::time::SystemTime;

use crate::Error;

/// The longest account name, in characters.
pub const ACCOUNT_NAME_MAX_LEN: usize = 64;

/// An administrator account's name: 1 to 64 characters of ASCII letters, digits and `.`, `_`,
/// `-`, `@`; compared ignoring case. Validated once, where it is given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountName(String);

impl AccountName {
    /// Checks `name` against the rule.
    ///
    /// # Errors
    /// [`Error::InvalidAccountName`].
    pub fn new(name: &str) -> Result<AccountName, Error> {
        let ok = !name.is_empty()
            && name.chars().count() <= ACCOUNT_NAME_MAX_LEN
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
        if ok {
            Ok(AccountName(name.to_owned()))
        } else {
            Err(Error::InvalidAccountName {
                name: name.chars().take(ACCOUNT_NAME_MAX_LEN).collect(),
            })
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for AccountName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountName::new(s)
    }
}

/// What an account may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Reads and changes everything.
    Admin,
    /// Reads everything and changes nothing.
    ReadOnly,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 2] = [Role::Admin, Role::ReadOnly];

    /// The name as stored and typed: `admin`, `read-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }

    /// Whether the role may change anything.
    pub fn can_write(self) -> bool {
        matches!(self, Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::str::FromStr for Role {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| Error::UnknownName {
                what: "role",
                name: name.to_owned(),
            })
    }
}

/// A new administrator account.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The name.
    pub name: AccountName,
    /// The role.
    pub role: Role,
    /// The password's hash as a PHC string (`$argon2id$...`); never the password.
    pub password_hash: String,
}

/// Shows the name and role, never the hash.
impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// An administrator account as stored.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// The name.
    pub name: AccountName,
    /// The role.
    pub role: Role,
    /// The password's hash (PHC string).
    pub password_hash: String,
    /// When it was added.
    pub created_at: SystemTime,
    /// Failed logins since the last successful one.
    pub login_failures: u32,
    /// When the last login failed.
    pub last_login_failure: Option<SystemTime>,
    /// When the last login succeeded.
    pub last_login: Option<SystemTime>,
}

/// Shows everything but the hash.
impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("login_failures", &self.login_failures)
            .field("last_login_failure", &self.last_login_failure)
            .field("last_login", &self.last_login)
            .finish_non_exhaustive()
    }
}

/// The length of an API token's hash (SHA-256).
pub const TOKEN_HASH_LEN: usize = 32;

/// An API token of an account, as stored (its hash is not returned).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiToken {
    /// The token's number.
    pub id: i64,
    /// Whose token it is.
    pub account: AccountName,
    /// What it is for, for people.
    pub label: String,
    /// When it was made.
    pub created_at: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_the_rule() {
        for good in ["admin", "a.b_c-d@example", &"x".repeat(64)] {
            assert!(AccountName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "é", &"x".repeat(65), "a/b"] {
            assert!(AccountName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("root".parse::<Role>().is_err());
        assert!(!Role::ReadOnly.can_write() && Role::Admin.can_write());
    }
}
