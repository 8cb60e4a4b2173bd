//! `capfctl bulk insert|update` and `capfctl template ...`: devices in bulk, like the guide's
//! Bulk Administration Tool, and device templates (the guide's Universal Device Template).
//! The CSV format and its checks are capf-admin's (`capf_admin::bulk`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Result, bail};
use capf_admin::{
    BulkInsertView, BulkUpdateView, ChangeParams, ChangeView, OperationKind, RemovedView,
    TemplateParams, TemplateView, TerminalProgress,
};
use capf_store::AuthMode;

use crate::device::{DataArgs, KeyArgs};
use crate::print_json;
use crate::query::QueryArgs;

/// The bulk verbs.
#[derive(clap::Subcommand)]
pub(crate) enum BulkCommand {
    /// Insert the devices of a CSV file (columns: device_name, description, device_pool,
    /// model, operation, auth_mode, auth_string, key_spec, complete_by), all or none.
    Insert {
        #[command(flatten)]
        data: DataArgs,
        /// The CSV file.
        file: PathBuf,
        /// A device template whose settings fill the fields a row leaves empty.
        #[arg(long, value_name = "NAME")]
        template: Option<String>,
        /// Run Later: check the file now, keep it in a job, and let the running capfd insert
        /// it at this time (RFC 3339 UTC, such as 2030-01-31T22:00:00Z).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change every device that matches the filters, in one transaction.
    Update {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        query: QueryArgs,
        /// Change every device (required when no filter is given).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        change: ChangeArgs,
        /// Show what would change, and change nothing.
        #[arg(long, conflicts_with = "at")]
        dry_run: bool,
        /// Run Later: check the change now, store it as a job, and let the running capfd
        /// apply it at this time (RFC 3339 UTC, such as 2030-01-31T22:00:00Z).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// What `bulk update` changes.
#[derive(clap::Args)]
pub(crate) struct ChangeArgs {
    #[command(flatten)]
    fields: crate::device::FieldChanges,
    /// Schedule this operation (attempts start again at 0).
    #[arg(long, value_parser = crate::names::operation())]
    operation: Option<OperationKind>,
    #[command(flatten)]
    keys: KeyArgs,
    /// The operation's complete-by date (with --operation).
    #[arg(long, value_name = "YYYY-MM-DD", allow_hyphen_values = true)]
    complete_by: Option<String>,
}

impl ChangeArgs {
    fn params(&self) -> ChangeParams {
        let fields = self.fields.update();
        ChangeParams {
            description: fields.description,
            device_pool: fields.device_pool,
            model: fields.model,
            auth_mode: fields.auth_mode,
            operation: self.operation,
            keys: self.keys.choice(),
            complete_by: self.complete_by.clone(),
        }
    }
}

/// The template verbs.
#[derive(clap::Subcommand)]
pub(crate) enum TemplateCommand {
    /// Store a device template (replacing one of the same name).
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// The template's name.
        name: String,
        /// The description.
        #[arg(long, default_value = "")]
        description: String,
        /// The device pool.
        #[arg(long, default_value = "")]
        pool: String,
        /// The model.
        #[arg(long, default_value = "")]
        model: String,
        /// The authentication mode.
        #[arg(long, value_parser = crate::names::auth_mode(), default_value = "null-string")]
        auth: AuthMode,
        /// The certificate operation.
        #[arg(long, value_parser = crate::names::operation(), default_value = "none")]
        operation: OperationKind,
        #[command(flatten)]
        keys: KeyArgs,
        /// The operation's complete-by date.
        #[arg(long, value_name = "YYYY-MM-DD", allow_hyphen_values = true)]
        complete_by: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the device templates.
    List {
        #[command(flatten)]
        data: DataArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a device template.
    Remove {
        #[command(flatten)]
        data: DataArgs,
        /// The template's name.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: BulkCommand) -> Result<()> {
    match cmd {
        BulkCommand::Insert {
            data,
            file,
            template,
            at: Some(at),
            json,
        } => {
            let now = SystemTime::now();
            let due = capf_admin::parse_rfc3339(&at, "--at")?;
            let csv = capf_admin::read_text(&file)?;
            let store = data.open()?;
            let job = capf_admin::jobs::schedule_bulk_insert(
                &*store,
                csv,
                &file.display().to_string(),
                template.as_deref(),
                due,
                now,
            )?;
            crate::job::print_scheduled(&job, json)
        }
        BulkCommand::Insert {
            data,
            file,
            template,
            at: None,
            json,
        } => insert(&data, &file, template.as_deref(), json),
        BulkCommand::Update {
            data,
            query,
            all,
            change,
            dry_run,
            at,
            json,
        } => {
            if query.is_empty() && !all {
                bail!("no filter given: add filters (--name, --in-pool, ...) or --all");
            }
            let now = SystemTime::now();
            if let Some(at) = at {
                let due = capf_admin::parse_rfc3339(&at, "--at")?;
                let filter = query.filter()?;
                let store = data.open_existing()?;
                let job = capf_admin::jobs::schedule_bulk_update(
                    &*store,
                    &filter,
                    &change.params(),
                    due,
                    now,
                )?;
                return crate::job::print_scheduled(&job, json);
            }
            let change = change.params().to_change(now)?;
            let filter = query.filter()?;
            let store = data.open_existing()?;
            let changes = capf_admin::update_devices(
                &*store,
                &filter,
                &change,
                dry_run,
                &mut TerminalProgress::default(),
                now,
            )?;
            if json {
                return print_json(&BulkUpdateView {
                    dry_run,
                    changed: changes.len(),
                    devices: changes
                        .iter()
                        .map(|c| ChangeView {
                            name: c.name.to_string(),
                            change: c.detail.clone(),
                        })
                        .collect(),
                });
            }
            for c in &changes {
                outln!("{}: {}", c.name, c.detail);
            }
            if dry_run {
                outln!(
                    "dry run: {} devices would change (nothing was written)",
                    changes.len()
                );
            } else {
                outln!("{} devices changed", changes.len());
            }
            Ok(())
        }
    }
}

fn insert(data: &DataArgs, file: &Path, template: Option<&str>, json: bool) -> Result<()> {
    let store = data.open()?;
    let inserted = capf_admin::insert_devices_csv(
        &*store,
        file,
        template,
        &mut TerminalProgress::default(),
        SystemTime::now(),
    )?;
    if json {
        return print_json(&BulkInsertView {
            file: file.display().to_string(),
            added: inserted.added,
            template: inserted.template.map(|t| t.name),
        });
    }
    outln!("added {} devices from {}", inserted.added, file.display());
    Ok(())
}

pub(crate) fn run_template(cmd: TemplateCommand) -> Result<()> {
    match cmd {
        TemplateCommand::Add {
            data,
            name,
            description,
            pool,
            model,
            auth,
            operation,
            keys,
            complete_by,
            json,
        } => {
            let template = TemplateParams {
                name,
                description,
                device_pool: pool,
                model,
                auth_mode: auth,
                operation: Some(operation),
                keys: keys.choice(),
                complete_by,
            }
            .to_template(SystemTime::now())?;
            let store = data.open()?;
            capf_admin::save_template(&*store, &template, SystemTime::now())?;
            if json {
                return print_json(&TemplateView::from(&template));
            }
            outln!(
                "saved device template {}: {}, {}",
                template.name,
                template.operation,
                template.auth_mode
            );
            Ok(())
        }
        TemplateCommand::List { data, json } => {
            let store = data.open_existing()?;
            let templates = store.templates()?;
            if json {
                let items: Vec<TemplateView> = templates.iter().map(TemplateView::from).collect();
                return print_json(&items);
            }
            if templates.is_empty() {
                outln!("no device templates");
            }
            for t in &templates {
                outln!(
                    "{}  {}  {}  pool {:?}  model {:?}",
                    t.name,
                    t.operation,
                    t.auth_mode,
                    t.device_pool,
                    t.model
                );
            }
            Ok(())
        }
        TemplateCommand::Remove { data, name, json } => {
            let store = data.open_existing()?;
            store.remove_template(&name, SystemTime::now())?;
            if json {
                return print_json(&RemovedView { removed: name });
            }
            outln!("removed device template {name}");
            Ok(())
        }
    }
}
