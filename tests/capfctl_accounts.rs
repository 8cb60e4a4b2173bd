//! `capfctl admin` as a process: the first administrator account made with the password on
//! standard input (never on the command line), listed, given an API token printed once, and
//! removed; bad names, roles and passwords refused with one line and nothing stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use capf_store::{AccountName, AdminStore, SqliteStore};

fn capfctl(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(common::example("capfctl"))
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A verb that fails before reading its standard input closes it: not this test's concern.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capfctl-accounts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn admin_accounts_are_made_listed_given_tokens_and_removed() {
    let data = scratch();
    let added = capfctl(
        &data,
        &["admin", "add", "alice", "--role", "admin"],
        "correct horse battery\n",
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&added.stdout),
        "added account alice (admin)\n"
    );

    for (args, input, error) in [
        (
            &["admin", "add", "bob", "--role", "admin"][..],
            "short\n",
            "capfctl: a password must be 12 to 1024 characters; the one given has 5\n",
        ),
        (
            &["admin", "add", "bob", "--role", "root"][..],
            "correct horse battery\n",
            "capfctl: unknown role \"root\"\n",
        ),
        (
            &["admin", "add", "b b", "--role", "admin"][..],
            "correct horse battery\n",
            "capfctl: account name \"b b\" must be 1 to 64 ASCII letters, digits, '.', '_', '-' or '@'\n",
        ),
        (
            &["admin", "add", "ALICE", "--role", "read-only"][..],
            "correct horse battery\n",
            "capfctl: account ALICE already exists\n",
        ),
    ] {
        let out = capfctl(&data, args, input);
        assert!(!out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), error, "{args:?}");
    }

    let token = capfctl(
        &data,
        &["admin", "token", "create", "alice", "--label", "backup"],
        "",
    );
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap();
    let token = token.trim();
    assert!(token.starts_with("capf_"), "{token}");

    let list = capfctl(&data, &["admin", "list", "--json"], "");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "alice");
    assert_eq!(list[0]["role"], "admin");
    assert!(!list.to_string().contains("argon2"));

    {
        let store = SqliteStore::open(&data).unwrap();
        let account = store
            .account(&AccountName::new("alice").unwrap())
            .unwrap()
            .unwrap();
        assert!(account.password_hash.starts_with("$argon2id$"));
        assert!(capf_admin::accounts::verify_password(
            &account.password_hash,
            "correct horse battery"
        ));
        let (owner, _) = store
            .api_token_account(&capf_admin::accounts::token_hash(token))
            .unwrap()
            .unwrap();
        assert_eq!(owner.name.as_str(), "alice");
        // Neither the password nor the token is anywhere in the database file.
        drop(store);
        let db = std::fs::read(data.join(SqliteStore::DATABASE_FILE)).unwrap();
        for secret in ["correct horse battery", token] {
            assert!(
                !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret}"
            );
        }
    }

    let removed = capfctl(&data, &["admin", "remove", "alice"], "");
    assert!(removed.status.success());
    let list = capfctl(&data, &["admin", "list", "--json"], "");
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
    let _ = std::fs::remove_dir_all(&data);
}
