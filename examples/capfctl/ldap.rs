//! `capfctl ldap sync [--dry-run]`: the LDAP directory sync with a device template
//! (capf-admin's `ldap`): the first sync applies the template, later ones add only new devices,
//! departed devices are reported, bad entries are reported with their DN.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Result;
use capf_admin::TerminalProgress;
use capf_admin::ldap::{DeviceNameRule, DirectoryConfig, SyncReport};
use capf_trust::{Purpose, Release};

use crate::device::DataArgs;
use crate::print_json;

/// The LDAP verbs.
#[derive(clap::Subcommand)]
pub(crate) enum LdapCommand {
    /// Add the devices of the directory's entries with a device template's CAPF settings, in
    /// one transaction (the first sync applies the template; later ones add new devices only).
    Sync(SyncArgs),
}

/// Arguments of `ldap sync`.
#[derive(clap::Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The directory: ldap://HOST[:PORT] or ldaps://HOST[:PORT].
    #[arg(long, value_name = "URL")]
    url: String,
    /// The DN to bind as.
    #[arg(long, value_name = "DN")]
    bind_dn: String,
    /// The file whose first line is the bind password.
    #[arg(long, value_name = "FILE")]
    password_file: PathBuf,
    /// The search base.
    #[arg(long, value_name = "DN")]
    base: String,
    /// The search filter.
    #[arg(long, default_value = "(objectClass=inetOrgPerson)")]
    filter: String,
    /// The attribute holding the device name, or PREFIX+ATTRIBUTE to derive it from the user
    /// as UCM's self-provisioning does (CSF+uid).
    #[arg(long, value_name = "RULE", default_value = "CSF+uid")]
    device_name: String,
    /// The device template whose CAPF settings the devices get.
    #[arg(long, value_name = "NAME")]
    template: String,
    /// The trust stores: CAPF-trust there (beside the system's store) verifies ldaps
    /// (default: the data directory's `trust`).
    #[arg(long, value_name = "DIR")]
    trust: Option<PathBuf>,
    /// Show what the sync would do, and apply nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: LdapCommand) -> Result<()> {
    let LdapCommand::Sync(args) = cmd;
    let config = DirectoryConfig {
        url: args.url,
        bind_dn: args.bind_dn,
        password_file: args.password_file,
        base: args.base,
        filter: args.filter,
        device_name: DeviceNameRule::parse(&args.device_name)?,
        template: args.template,
    };
    let trust_dir = args.trust.unwrap_or_else(|| args.data.data.join("trust"));
    let capf_trust: Vec<Vec<u8>> = if trust_dir.exists() {
        capf_admin::OpenTrustStore::load(&trust_dir, Release::LATEST)?
            .store
            .certificates(&Purpose::CAPF_TRUST)
            .iter()
            .map(|c| c.der().to_vec())
            .collect()
    } else {
        Vec::new()
    };
    let store = args.data.open_existing()?;
    let report = capf_admin::ldap::sync_directory(
        &*store,
        &config,
        &capf_trust,
        args.dry_run,
        &mut TerminalProgress::default(),
        SystemTime::now(),
    )?;
    if args.json {
        return print_json(&report);
    }
    print_text(&report)
}

fn print_text(r: &SyncReport) -> Result<()> {
    for name in &r.added {
        outln!("added {name}");
    }
    for d in &r.departed {
        outln!(
            "departed {} ({}; last seen {}): still registered",
            d.name,
            d.dn,
            d.last_seen
        );
    }
    for bad in &r.bad_entries {
        outln!("bad entry {bad}");
    }
    outln!(
        "{}{}{} entries: {} devices {}added with template {}, {} already registered, {} departed, {} bad entries",
        if r.dry_run { "dry run: " } else { "" },
        if r.first_sync { "first sync, " } else { "" },
        r.entries,
        r.added.len(),
        if r.dry_run { "would be " } else { "" },
        r.template,
        r.already_registered.len(),
        r.departed.len(),
        r.bad_entries.len()
    );
    Ok(())
}
