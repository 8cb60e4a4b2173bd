//! The LDAP directory sync of issue 17's figure: 100,000 directory entries synced into an empty
//! store with a device template (target: 30 s or less), through capf-admin's `ldap` exactly as
//! `capfctl ldap sync` runs it: simple bind, paged subtree search over TCP, one store
//! transaction with an audit entry per device. The directory is a throwaway slapd (Debian's
//! `slapd`, capf-test-support's `slapd`), loaded by `slapadd` before the clock starts. A second
//! sync of the same directory (nothing new: every entry already registered) is timed too.
//!
//! `cargo bench --bench ldap_sync` (100,000 entries; `CAPF_LDAP_ENTRIES=N` for another count).
//! Run by `cargo test --benches` (no `--bench` argument) it syncs 200 entries, to check the
//! program in a debug build.

// A bench: a failing setup should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Instant, SystemTime};

use capf_admin::ldap::{DeviceNameRule, DirectoryConfig};
use capf_admin::{NoProgress, TemplateParams};
use capf_store::{AdminStore, AuthMode, SqliteStore};
use capf_test_support::slapd::{Slapd, person_ldif};

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let entries: usize = std::env::var("CAPF_LDAP_ENTRIES")
        .ok()
        .map(|n| n.parse().expect("CAPF_LDAP_ENTRIES: a number"))
        .unwrap_or(if bench { 100_000 } else { 200 });

    let ldif: String = (0..entries)
        .map(|i| person_ldif(&format!("user{i:06}")))
        .collect();
    let load = Instant::now();
    let directory = Slapd::start("bench", &ldif, None);
    println!(
        "slapd loaded with {entries} entries in {:.1} s",
        load.elapsed().as_secs_f64()
    );

    let data = std::env::temp_dir().join(format!("capf-bench-ldap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let store = SqliteStore::open(&data).unwrap();
    let now = SystemTime::now();
    let template = TemplateParams {
        name: "phones".into(),
        auth_mode: AuthMode::NullString,
        operation: Some(capf_admin::OperationKind::Install),
        ..TemplateParams::default()
    }
    .to_template(now)
    .unwrap();
    store.save_template(&template, now).unwrap();
    let config = DirectoryConfig {
        url: directory.url(),
        bind_dn: Slapd::ADMIN_DN.into(),
        password: capf_admin::ldap::read_password(&directory.password_file()).unwrap(),
        base: Slapd::PEOPLE.into(),
        filter: "(objectClass=inetOrgPerson)".into(),
        device_name: DeviceNameRule::parse("CSF+uid").unwrap(),
        template: "phones".into(),
    };

    for (round, expect_added) in [("first sync", entries), ("second sync", 0)] {
        let started = Instant::now();
        let report = capf_admin::ldap::sync_directory(
            &store,
            &config,
            &[],
            false,
            &mut NoProgress,
            SystemTime::now(),
        )
        .unwrap();
        let took = started.elapsed().as_secs_f64();
        assert_eq!(report.entries, entries);
        assert_eq!(report.added.len(), expect_added);
        assert!(report.bad_entries.is_empty());
        println!(
            "{round}: {entries} entries, {} devices added, {} already registered in {took:.2} s \
             ({:.0} entries/s)",
            report.added.len(),
            report.already_registered.len(),
            entries as f64 / took
        );
    }
    assert_eq!(store.list_devices().unwrap().len(), entries);
    drop(store);
    drop(directory);
    let _ = std::fs::remove_dir_all(&data);
}
