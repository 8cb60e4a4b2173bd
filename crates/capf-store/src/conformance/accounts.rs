//! Administrator accounts of the web administration, their API tokens, and the account named
//! on every change made through [`AdminStore::acting_as`](crate::AdminStore::acting_as).
//!
//! Each behaviour takes a factory of fresh, empty stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Must;

use crate::{AccountName, DeviceName, DeviceStore, Error, NewAccount, NewDevice, Role, action};

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn an(name: &str) -> AccountName {
    AccountName::new(name).must()
}

fn new_account(name: &str, role: Role) -> NewAccount {
    NewAccount {
        name: an(name),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{name}"),
    }
}

/// Accounts are added, found ignoring case, listed by name and removed; a name is taken once.
pub fn accounts_are_added_found_listed_and_removed<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    let added = s
        .add_account(&new_account("zoe", Role::ReadOnly), t(0))
        .must();
    assert_eq!(added.role, Role::ReadOnly);
    assert_eq!(added.created_at, t(0));
    assert_eq!(added.login_failures, 0);
    s.add_account(&new_account("Alice", Role::Admin), t(1))
        .must();
    assert!(matches!(
        s.add_account(&new_account("ALICE", Role::ReadOnly), t(2)),
        Err(Error::DuplicateAccount { .. })
    ));
    let found = s.account(&an("alice")).must().must();
    assert_eq!(found.name.as_str(), "Alice");
    assert_eq!(found.role, Role::Admin);
    assert!(found.password_hash.ends_with("hash-of-Alice"));
    let names: Vec<String> = s
        .accounts()
        .must()
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    assert_eq!(names, ["Alice", "zoe"]);
    s.remove_account(&an("ALICE"), t(3)).must();
    assert!(s.account(&an("alice")).must().is_none());
    assert!(matches!(
        s.remove_account(&an("alice"), t(4)),
        Err(Error::UnknownAccount { .. })
    ));
    let mut empty = new_account("bob", Role::Admin);
    empty.password_hash.clear();
    assert!(matches!(
        s.add_account(&empty, t(5)),
        Err(Error::InvalidAccount { .. })
    ));
    let actions: Vec<String> = s
        .audit(None, 10)
        .must()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            action::ACCOUNT_REMOVED,
            action::ACCOUNT_ADDED,
            action::ACCOUNT_ADDED
        ]
    );
}

/// Failed logins are counted with their time and a successful login resets the count.
pub fn login_failures_count_and_a_login_resets_them<S: DeviceStore>(new_store: impl Fn() -> S) {
    let s = new_store();
    s.add_account(&new_account("alice", Role::Admin), t(0))
        .must();
    s.record_login_failure(&an("alice"), t(1)).must();
    let a = s.record_login_failure(&an("ALICE"), t(2)).must();
    assert_eq!(a.login_failures, 2);
    assert_eq!(a.last_login_failure, Some(t(2)));
    let a = s.record_login(&an("alice"), t(3)).must();
    assert_eq!(a.login_failures, 0);
    assert_eq!(a.last_login, Some(t(3)));
    assert_eq!(a.last_login_failure, Some(t(2)));
    assert!(matches!(
        s.record_login_failure(&an("bob"), t(4)),
        Err(Error::UnknownAccount { .. })
    ));
}

/// An API token is stored as its hash, finds its account, is listed, removed, and goes with
/// its account.
pub fn api_tokens_are_found_by_hash_and_go_with_their_account<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    s.add_account(&new_account("alice", Role::Admin), t(0))
        .must();
    let token = s
        .add_api_token(&an("alice"), &[7; 32], "backup job", t(1))
        .must();
    assert_eq!(token.label, "backup job");
    assert!(matches!(
        s.add_api_token(&an("alice"), &[7; 32], "again", t(1)),
        Err(Error::InvalidAccount { .. })
    ));
    assert!(matches!(
        s.add_api_token(&an("alice"), &[7; 31], "short", t(1)),
        Err(Error::InvalidAccount { .. })
    ));
    assert!(matches!(
        s.add_api_token(&an("bob"), &[8; 32], "nobody's", t(1)),
        Err(Error::UnknownAccount { .. })
    ));
    let (account, found) = s.api_token_account(&[7; 32]).must().must();
    assert_eq!(account.name.as_str(), "alice");
    assert_eq!(found, token);
    assert!(s.api_token_account(&[9; 32]).must().is_none());
    let second = s
        .add_api_token(&an("alice"), &[8; 32], "monitor", t(2))
        .must();
    assert_eq!(s.api_tokens(&an("alice")).must(), [token.clone(), second]);
    s.remove_api_token(token.id, t(3)).must();
    assert!(s.api_token_account(&[7; 32]).must().is_none());
    assert!(s.remove_api_token(token.id, t(3)).is_err());
    s.remove_account(&an("alice"), t(4)).must();
    assert!(s.api_token_account(&[8; 32]).must().is_none());
}

/// Every change made through an account's handle names the account in the audit log;
/// changes made without one name nobody.
pub fn changes_through_an_account_handle_are_audited_with_its_name<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    let name = DeviceName::new("SEP001122334455").must();
    s.add_device(&NewDevice::new(name.clone()), t(0)).must();
    let alice = s.acting_as(&an("alice"));
    alice.set_auth_string(&name, Some("1234"), t(1)).must();
    alice
        .add_devices(
            &[NewDevice::new(DeviceName::new("SEP00000000AAAA").must())],
            t(2),
        )
        .must();
    let entries = s.audit(None, 10).must();
    let actors: Vec<Option<&str>> = entries.iter().map(|e| e.actor.as_deref()).collect();
    assert_eq!(actors, [Some("alice"), Some("alice"), None]);
    // The handle sees the same store.
    assert!(alice.device(&name).must().is_some());
}

/// An administrative change that is not a device's is audited with no device, its action and
/// detail as given, and the account of the handle that recorded it (none without one).
pub fn admin_actions_are_audited_without_a_device_and_with_the_account<S: DeviceStore>(
    new_store: impl Fn() -> S,
) {
    let s = new_store();
    s.record_admin_action(
        action::CAPF_CERTIFICATE_REGENERATED,
        "CN=CAPF-0a1b2c3d",
        t(1),
    )
    .must();
    let alice = s.acting_as(&an("alice"));
    alice
        .record_admin_action(
            action::TRUST_UPLOADED,
            "CallManager-trust 3f2a: CN=cucm.example.com",
            t(2),
        )
        .must();
    let entries = s.audit(None, 10).must();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].at, t(2));
    assert_eq!(entries[0].device, None);
    assert_eq!(entries[0].action, action::TRUST_UPLOADED);
    assert_eq!(
        entries[0].detail,
        "CallManager-trust 3f2a: CN=cucm.example.com"
    );
    assert_eq!(entries[0].actor.as_deref(), Some("alice"));
    assert_eq!(entries[1].action, action::CAPF_CERTIFICATE_REGENERATED);
    assert_eq!(entries[1].device, None);
    assert_eq!(entries[1].actor, None);
    // A device's audit does not show them.
    let name = DeviceName::new("SEP001122334455").must();
    s.add_device(&NewDevice::new(name.clone()), t(3)).must();
    assert_eq!(s.audit(Some(&name), 10).must().len(), 1);
}
