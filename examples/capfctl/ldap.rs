//! `capfctl ldap sync [--dry-run]` and `ldap config set|show`: the LDAP directory sync with a
//! device template (capf-admin's `ldap`), from the stored configuration or flags over it: the first sync applies the template, later ones add only new devices,
//! departed devices are reported, bad entries are reported with their DN.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Result;
use capf_admin::TerminalProgress;
use capf_admin::ldap::{
    self, DeviceNameRule, DirectoryConfig, DirectoryConfigView, SyncReport, read_password,
};
use capf_trust::{Purpose, Release};

use crate::device::DataArgs;
use crate::print_json;

/// The LDAP verbs.
#[derive(clap::Subcommand)]
pub(crate) enum LdapCommand {
    /// Add the devices of the directory's entries with a device template's CAPF settings, in
    /// one transaction (the first sync applies the template; later ones add new devices only).
    /// Reads the stored configuration (`ldap config set`); flags override it.
    Sync(SyncArgs),
    /// The stored directory configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `ldap config` verbs.
#[derive(clap::Subcommand)]
pub(crate) enum ConfigCommand {
    /// Store the directory configuration (the password sealed in the store, never shown);
    /// fields not given keep their stored value.
    Set(SetArgs),
    /// Show the stored directory configuration (never the password).
    Show(ShowArgs),
}

/// The directory's fields, each optional: over the stored configuration.
#[derive(clap::Args)]
pub(crate) struct ConfigFlags {
    /// The directory: ldap://HOST[:PORT] or ldaps://HOST[:PORT].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The DN to bind as.
    #[arg(long, value_name = "DN")]
    bind_dn: Option<String>,
    /// The file whose first line is the bind password.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// The search base.
    #[arg(long, value_name = "DN")]
    base: Option<String>,
    /// The search filter [default: (objectClass=inetOrgPerson)].
    #[arg(long)]
    filter: Option<String>,
    /// The attribute holding the device name, or PREFIX+ATTRIBUTE to derive it from the user
    /// as UCM's self-provisioning does [default: CSF+uid].
    #[arg(long, value_name = "RULE")]
    device_name: Option<String>,
    /// The device template whose CAPF settings the devices get.
    #[arg(long, value_name = "NAME")]
    template: Option<String>,
}

impl ConfigFlags {
    /// The stored configuration (if any) with the flags over it.
    fn over(self, stored: Option<DirectoryConfig>) -> Result<DirectoryConfig> {
        let missing = |flag: &str| {
            anyhow::anyhow!(
                "{flag} is needed: no directory configuration is stored (capfctl ldap config set)"
            )
        };
        let password = match (&self.password_file, &stored) {
            (Some(file), _) => read_password(file)?,
            (None, Some(s)) => s.password.clone(),
            (None, None) => return Err(missing("--password-file")),
        };
        let device_name = match (&self.device_name, &stored) {
            (Some(rule), _) => DeviceNameRule::parse(rule)?,
            (None, Some(s)) => s.device_name.clone(),
            (None, None) => DeviceNameRule::parse("CSF+uid")?,
        };
        let pick = |flag: Option<String>, stored: Option<&String>, name: &str| {
            flag.or_else(|| stored.cloned())
                .ok_or_else(|| missing(name))
        };
        Ok(DirectoryConfig {
            url: pick(self.url, stored.as_ref().map(|s| &s.url), "--url")?,
            bind_dn: pick(
                self.bind_dn,
                stored.as_ref().map(|s| &s.bind_dn),
                "--bind-dn",
            )?,
            password,
            base: pick(self.base, stored.as_ref().map(|s| &s.base), "--base")?,
            filter: self
                .filter
                .or_else(|| stored.as_ref().map(|s| s.filter.clone()))
                .unwrap_or_else(|| "(objectClass=inetOrgPerson)".to_owned()),
            device_name,
            template: pick(
                self.template,
                stored.as_ref().map(|s| &s.template),
                "--template",
            )?,
        })
    }
}

/// Arguments of `ldap sync`.
#[derive(clap::Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    config: ConfigFlags,
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

/// Arguments of `ldap config set`.
#[derive(clap::Args)]
pub(crate) struct SetArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    config: ConfigFlags,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `ldap config show`.
#[derive(clap::Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: LdapCommand) -> Result<()> {
    match cmd {
        LdapCommand::Sync(args) => sync(args),
        LdapCommand::Config(ConfigCommand::Set(args)) => {
            let store = args.data.open_existing()?;
            let config = args.config.over(ldap::stored_config(&*store)?)?;
            ldap::save_config(&*store, &config, SystemTime::now())?;
            show(&DirectoryConfigView::from(&config), args.json)
        }
        LdapCommand::Config(ConfigCommand::Show(args)) => {
            let store = args.data.open_existing()?;
            let config =
                ldap::stored_config(&*store)?.ok_or(capf_admin::Error::NoDirectoryConfig)?;
            show(&DirectoryConfigView::from(&config), args.json)
        }
    }
}

fn show(view: &DirectoryConfigView, json: bool) -> Result<()> {
    if json {
        return print_json(view);
    }
    outln!("url          {}", view.url);
    outln!("bind DN      {}", view.bind_dn);
    outln!(
        "password     {}",
        if view.password_set { "set" } else { "not set" }
    );
    outln!("base         {}", view.base);
    outln!("filter       {}", view.filter);
    outln!("device name  {}", view.device_name);
    outln!("template     {}", view.template);
    Ok(())
}

fn sync(args: SyncArgs) -> Result<()> {
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
    let config = args.config.over(ldap::stored_config(&*store)?)?;
    let report = ldap::sync_directory(
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
