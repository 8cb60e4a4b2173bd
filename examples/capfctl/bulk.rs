//! `capfctl bulk insert|update` and `capfctl template ...`: devices in bulk, like the guide's
//! Bulk Administration Tool, and device templates (the guide's Universal Device Template).
//!
//! # The CSV file of `bulk insert`
//!
//! The first line names the columns, in any order; only `device_name` is required. Names are
//! matched ignoring case, with spaces or hyphens taken as underscores:
//!
//! | column | value | empty |
//! |---|---|---|
//! | `device_name` | SEP001122334455, CSFjsmith, ... | not allowed |
//! | `description` | text | the template's, else empty |
//! | `device_pool` | text | the template's, else empty |
//! | `model` | text | the template's, else empty |
//! | `operation` | `install` (or `install/upgrade`), `delete`, `troubleshoot`, `none` | the template's, else none |
//! | `auth_mode` | `auth-string` (or `authentication string`), `null-string`, `certificate-lsc-first`, `certificate-mic-first` | auth-string when a string is given, else the template's, else null-string |
//! | `auth_string` | 4 to 10 digits | no string |
//! | `key_spec` | `ORDER[/BITS][/CURVE]` for install: `rsa-only/2048`, `ec-only/P-384`, `ec-preferred/3072/P-256` | the template's, else rsa-only/2048/P-256 |
//! | `complete_by` | `YYYY-MM-DD` (UTC, the operation may run until the day ends) | the template's, else none |
//!
//! Every row is checked before the store is touched, and the devices are then added in one
//! transaction: a bad row is reported as `FILE:LINE: what is wrong`, and nothing from the file
//! is applied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Result, anyhow, bail};
use capf_lsc::{DeviceName, KeyOrder, KeyPolicy};
use capf_store::{
    AdminStore, AuthMode, BulkChange, DeviceTemplate, DeviceUpdate, NewDevice, Operation, Schedule,
};
use serde_json::{Value, json};

use crate::device::{
    AuthArg, DataArgs, KeyArgs, OperationArg, auth_name, check_auth_string, open, open_existing,
    operation_json, operation_of, opt_time, parse_curve, parse_date, parse_rsa,
};
use crate::progress;
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
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// What `bulk update` changes.
#[derive(clap::Args)]
pub(crate) struct ChangeArgs {
    /// A new description.
    #[arg(long)]
    description: Option<String>,
    /// A new device pool.
    #[arg(long)]
    pool: Option<String>,
    /// A new model.
    #[arg(long)]
    model: Option<String>,
    /// A new authentication mode.
    #[arg(long, value_enum)]
    auth: Option<AuthArg>,
    /// Schedule this operation (attempts start again at 0).
    #[arg(long, value_enum)]
    operation: Option<OperationArg>,
    #[command(flatten)]
    keys: KeyArgs,
    /// The operation's complete-by date (with --operation).
    #[arg(long, value_name = "YYYY-MM-DD", allow_hyphen_values = true)]
    complete_by: Option<String>,
}

impl ChangeArgs {
    fn change(&self) -> Result<BulkChange> {
        let schedule = match self.operation {
            Some(op) => Some(Schedule {
                operation: operation_of(op, &self.keys)?,
                complete_by: self.complete_by.as_deref().map(parse_date).transpose()?,
            }),
            None => {
                if self.complete_by.is_some()
                    || self.keys.key_order.is_some()
                    || self.keys.rsa.is_some()
                    || self.keys.curve.is_some()
                {
                    bail!("--complete-by, --key-order, --rsa and --curve need --operation");
                }
                None
            }
        };
        let change = BulkChange {
            update: DeviceUpdate {
                description: self.description.clone(),
                device_pool: self.pool.clone(),
                model: self.model.clone(),
                auth_mode: self.auth.map(AuthArg::mode),
            },
            schedule,
        };
        if change.is_empty() {
            bail!("nothing to change: give --description, --pool, --model, --auth or --operation");
        }
        Ok(change)
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
        #[arg(long, value_enum, default_value = "null-string")]
        auth: AuthArg,
        /// The certificate operation.
        #[arg(long, value_enum, default_value = "none")]
        operation: OperationArg,
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
            json,
        } => insert(&data.data, &file, template.as_deref(), json),
        BulkCommand::Update {
            data,
            query,
            all,
            change,
            dry_run,
            json,
        } => {
            if query.is_empty() && !all {
                bail!("no filter given: add filters (--name, --in-pool, ...) or --all");
            }
            let change = change.change()?;
            update(&data.data, &query, &change, dry_run, json)
        }
    }
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
            if name.trim().is_empty() {
                bail!("a device template needs a name");
            }
            let template = DeviceTemplate {
                name,
                description,
                device_pool: pool,
                model,
                operation: operation_of(operation, &keys)?,
                auth_mode: auth.mode(),
                complete_by: complete_by.as_deref().map(parse_date).transpose()?,
            };
            let store = open(&data.data)?;
            store.save_template(&template, SystemTime::now())?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&template_json(&template))?
                );
                return Ok(());
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
            let store = open_existing(&data.data)?;
            let templates = store.templates()?;
            if json {
                let items: Vec<Value> = templates.iter().map(template_json).collect();
                outln!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(());
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
            let store = open_existing(&data.data)?;
            store.remove_template(&name, SystemTime::now())?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({ "removed": name }))?
                );
                return Ok(());
            }
            outln!("removed device template {name}");
            Ok(())
        }
    }
}

fn template_json(t: &DeviceTemplate) -> Value {
    json!({
        "name": t.name,
        "description": t.description,
        "device_pool": t.device_pool,
        "model": t.model,
        "operation": operation_json(&t.operation),
        "auth_mode": auth_name(t.auth_mode),
        "complete_by": opt_time(t.complete_by),
    })
}

// ---------------------------------------------------------------------------------------------
// bulk insert

/// The documented columns.
const COLUMNS: [&str; 9] = [
    "device_name",
    "description",
    "device_pool",
    "model",
    "operation",
    "auth_mode",
    "auth_string",
    "key_spec",
    "complete_by",
];

/// A header cell as a column name: lower case, spaces and hyphens as underscores, and the
/// guide's longer names.
fn column_name(header: &str) -> String {
    let name = header.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    match name.as_str() {
        "name" => "device_name".to_owned(),
        "authentication_mode" => "auth_mode".to_owned(),
        "authentication_string" | "string" => "auth_string".to_owned(),
        _ => name,
    }
}

/// One CSV row's cells by column.
struct Row<'a> {
    cells: HashMap<&'static str, &'a str>,
}

impl Row<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        self.cells.get(column).copied().filter(|v| !v.is_empty())
    }
}

fn parse_operation(text: &str) -> Result<OperationArg> {
    Ok(
        match text.to_ascii_lowercase().replace(['-', '_'], " ").trim() {
            "install" | "install/upgrade" | "install upgrade" | "upgrade" => OperationArg::Install,
            "delete" => OperationArg::Delete,
            "troubleshoot" => OperationArg::Troubleshoot,
            "none" | "no pending operation" => OperationArg::None,
            _ => bail!("operation {text:?}: expected install, delete, troubleshoot or none"),
        },
    )
}

fn parse_auth_mode(text: &str) -> Result<AuthMode> {
    Ok(
        match text.to_ascii_lowercase().replace(['-', '_'], " ").trim() {
            "auth string" | "authentication string" | "by authentication string" => {
                AuthMode::AuthenticationString
            }
            "null string" | "by null string" => AuthMode::NullString,
            "certificate lsc first" | "by existing certificate (precedence to lsc)" => {
                AuthMode::ExistingCertificateLscFirst
            }
            "certificate mic first" | "by existing certificate (precedence to mic)" => {
                AuthMode::ExistingCertificateMicFirst
            }
            _ => bail!(
                "auth_mode {text:?}: expected auth-string, null-string, certificate-lsc-first or \
                 certificate-mic-first"
            ),
        },
    )
}

/// `ORDER[/BITS][/CURVE]` over `base` (the template's policy or UCM's defaults).
fn parse_key_spec(text: &str, base: KeyPolicy) -> Result<KeyPolicy> {
    let mut parts = text.split('/').map(str::trim);
    let bad = || {
        anyhow!(
            "key_spec {text:?}: expected ORDER[/BITS][/CURVE], such as rsa-only/2048, \
             ec-only/P-384 or ec-preferred/3072/P-256"
        )
    };
    let order = match parts.next().map(str::to_ascii_lowercase).as_deref() {
        Some("rsa-only" | "rsa") => KeyOrder::RsaOnly,
        Some("ec-only" | "ec") => KeyOrder::EcOnly,
        Some("ec-preferred" | "ec-preferred-rsa-backup") => KeyOrder::EcPreferredRsaBackup,
        _ => return Err(bad()),
    };
    let mut policy = KeyPolicy { order, ..base };
    for part in parts {
        if part.starts_with(['P', 'p']) {
            policy.curve = parse_curve(part).map_err(|e| anyhow!("key_spec: curve {e}"))?;
        } else {
            policy.rsa = parse_rsa(part).map_err(|e| anyhow!("key_spec: RSA size {e}"))?;
        }
    }
    Ok(policy)
}

fn row_device(row: &Row<'_>, template: Option<&DeviceTemplate>) -> Result<NewDevice> {
    let name = row
        .get("device_name")
        .ok_or_else(|| anyhow!("device_name is empty"))?;
    DeviceName::new(name).map_err(|e| anyhow!("cannot register the device: {e}"))?;
    let mut new = match template {
        Some(t) => t.new_device(name),
        None => NewDevice::new(name),
    };
    if let Some(v) = row.get("description") {
        v.clone_into(&mut new.description);
    }
    if let Some(v) = row.get("device_pool") {
        v.clone_into(&mut new.device_pool);
    }
    if let Some(v) = row.get("model") {
        v.clone_into(&mut new.model);
    }
    let key_spec = row.get("key_spec");
    if let Some(op) = row.get("operation") {
        new.operation = match parse_operation(op)? {
            OperationArg::Install => Operation::InstallUpgrade(match new.operation {
                Operation::InstallUpgrade(p) => p,
                _ => KeyPolicy::default(),
            }),
            OperationArg::Delete => Operation::Delete,
            OperationArg::Troubleshoot => Operation::Troubleshoot,
            OperationArg::None => Operation::None,
        };
    }
    if let Some(spec) = key_spec {
        let Operation::InstallUpgrade(policy) = new.operation else {
            bail!("key_spec {spec:?} is only for operation install");
        };
        new.operation = Operation::InstallUpgrade(parse_key_spec(spec, policy)?);
    }
    let string = row.get("auth_string");
    if let Some(s) = string {
        check_auth_string(name, s)?;
        new.auth_string = Some(s.to_owned());
    }
    match row.get("auth_mode") {
        Some(mode) => {
            new.auth_mode = parse_auth_mode(mode)?;
            if string.is_some() && new.auth_mode != AuthMode::AuthenticationString {
                bail!("an auth_string needs auth_mode auth-string, not {mode:?}");
            }
        }
        None if string.is_some() => new.auth_mode = AuthMode::AuthenticationString,
        None => {}
    }
    if let Some(date) = row.get("complete_by") {
        new.complete_by = Some(parse_date(date).map_err(|e| {
            anyhow!(
                "{}",
                e.to_string().replacen("--complete-by", "complete_by", 1)
            )
        })?);
    }
    Ok(new)
}

/// The devices of the CSV file and the line each came from.
fn read_csv(file: &Path, template: Option<&DeviceTemplate>) -> Result<(Vec<NewDevice>, Vec<u64>)> {
    let shown = file.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| anyhow!("{shown}: {}", csv_error_text(&e)))?;
    let headers = reader
        .headers()
        .map_err(|e| anyhow!("{shown}:1: {}", csv_error_text(&e)))?
        .clone();
    let mut columns: Vec<&'static str> = Vec::with_capacity(headers.len());
    for header in &headers {
        let name = column_name(header);
        let Some(known) = COLUMNS.iter().copied().find(|c| *c == name) else {
            bail!(
                "{shown}:1: unknown column {header:?} (the columns are {})",
                COLUMNS.join(", ")
            );
        };
        if columns.contains(&known) {
            bail!("{shown}:1: column {known} is given twice");
        }
        columns.push(known);
    }
    if !columns.contains(&"device_name") {
        bail!("{shown}:1: no device_name column");
    }
    let records = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            anyhow!("{shown}:{line}: {}", csv_error_text(&e))
        })?;
    let bar = progress::bar(records.len() as u64, "checking rows");
    let mut devices = Vec::with_capacity(records.len());
    let mut lines = Vec::with_capacity(records.len());
    let mut seen: HashMap<String, u64> = HashMap::with_capacity(records.len());
    for record in &records {
        let line = record.position().map_or(0, csv::Position::line);
        let row = Row {
            cells: columns.iter().copied().zip(record.iter()).collect(),
        };
        let new = row_device(&row, template).map_err(|e| anyhow!("{shown}:{line}: {e:#}"))?;
        if let Some(first) = seen.insert(new.name.to_ascii_lowercase(), line) {
            bail!(
                "{shown}:{line}: device {} is already on line {first}",
                new.name
            );
        }
        devices.push(new);
        lines.push(line);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if devices.is_empty() {
        bail!("{shown}: no devices (only a header line)");
    }
    Ok((devices, lines))
}

/// The csv crate's error without its own position prefix (the caller gives file and line).
fn csv_error_text(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, but the header line has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => e.to_string(),
    }
}

fn insert(dir: &Path, file: &Path, template: Option<&str>, json: bool) -> Result<()> {
    let store = open(dir)?;
    let template = template
        .map(|name| {
            store
                .template(name)?
                .ok_or_else(|| anyhow!("device template {name} does not exist"))
        })
        .transpose()?;
    let (devices, lines) = read_csv(file, template.as_ref())?;
    let spinner = progress::spinner(&format!("adding {} devices", devices.len()));
    let added = store.add_devices(&devices, SystemTime::now());
    spinner.finish_and_clear();
    let added = match added {
        Ok(n) => n,
        Err(capf_store::Error::BulkItem { index, source }) => {
            let line = lines.get(index).copied().unwrap_or(0);
            bail!(
                "{}:{line}: {source} (nothing from the file was added)",
                file.display()
            );
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "file": file.display().to_string(),
                "added": added,
                "template": template.as_ref().map(|t| t.name.clone()),
            }))?
        );
    } else {
        outln!("added {added} devices from {}", file.display());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// bulk update

fn update(
    dir: &Path,
    query: &QueryArgs,
    change: &BulkChange,
    dry_run: bool,
    json: bool,
) -> Result<()> {
    let now = SystemTime::now();
    let query = query.query(now)?;
    let store = open_existing(dir)?;
    let spinner = progress::spinner(if dry_run {
        "working out the changes"
    } else {
        "changing the devices"
    });
    let changes = store.update_devices(&query, change, dry_run, now);
    spinner.finish_and_clear();
    let changes = changes?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "dry_run": dry_run,
                "changed": changes.len(),
                "devices": changes
                    .iter()
                    .map(|c| json!({ "name": c.name, "change": c.detail }))
                    .collect::<Vec<_>>(),
            }))?
        );
        return Ok(());
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
