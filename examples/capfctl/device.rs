//! `capfctl device ...`: the devices of a capf server's store (capf-store's `SqliteStore` in the
//! server's data directory): register, update, list (with filters), show, schedule an
//! operation, remove.
//!
//! Everything that can be checked before the store is touched is checked first (the device
//! name, the authentication string, the date, the key options), so bad input writes nothing.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use capf_lsc::{Curve, DeviceName, KeyOrder, KeyPolicy, RsaBits};
use capf_store::{
    AdminStore, AuthMode, Device, DeviceUpdate, NewDevice, Operation, OperationStatus,
    SessionStore, SqliteStore, is_valid_auth_string,
};

use crate::query::QueryArgs;
use serde_json::{Value, json};

/// How many audit entries `device show` prints.
const AUDIT_ENTRIES: usize = 10;

/// Where the server's data lives.
#[derive(clap::Args)]
pub(crate) struct DataArgs {
    /// The server's data directory (capf.sqlite and the authentication-string key file).
    #[arg(long, value_name = "DIR", default_value = "capf-data")]
    pub(crate) data: PathBuf,
}

/// The certificate operation (UCM's "Certificate Operation").
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OperationArg {
    /// No Pending Operation.
    None,
    /// Install/Upgrade an LSC.
    Install,
    /// Delete the phone's LSC.
    Delete,
    /// Troubleshoot: fetch the phone's LSC or MIC.
    Troubleshoot,
}

/// How the phone authenticates (UCM's "Authentication Mode").
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AuthArg {
    /// By Null String.
    NullString,
    /// By Authentication String.
    AuthString,
    /// By Existing Certificate (Precedence to LSC).
    CertificateLscFirst,
    /// By Existing Certificate (Precedence to MIC).
    CertificateMicFirst,
}

/// UCM's "Key Order".
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum KeyOrderArg {
    /// RSA Only.
    RsaOnly,
    /// EC Only.
    EcOnly,
    /// EC Preferred, RSA Backup.
    EcPreferred,
}

pub(crate) fn parse_rsa(s: &str) -> Result<RsaBits, String> {
    s.parse::<usize>()
        .ok()
        .and_then(|bits| RsaBits::from_bits(bits).ok())
        .ok_or_else(|| format!("{s:?}: expected 1024, 2048, 3072 or 4096"))
}

pub(crate) fn parse_curve(s: &str) -> Result<Curve, String> {
    Curve::ALL
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s:?}: expected P-256, P-384 or P-521"))
}

/// The key settings of an Install/Upgrade operation (UCM defaults: RSA only, 2048, P-256).
#[derive(clap::Args)]
pub(crate) struct KeyArgs {
    /// Key order, for --operation install (default rsa-only).
    #[arg(long, value_enum)]
    pub(crate) key_order: Option<KeyOrderArg>,
    /// RSA key size in bits, for --operation install (default 2048).
    #[arg(long, value_name = "BITS", value_parser = parse_rsa)]
    pub(crate) rsa: Option<RsaBits>,
    /// EC curve, for --operation install (default P-256).
    #[arg(long, value_name = "CURVE", value_parser = parse_curve)]
    pub(crate) curve: Option<Curve>,
}

/// The device verbs.
#[derive(clap::Subcommand)]
pub(crate) enum DeviceCommand {
    /// Register a device (creating the store if needed).
    Add {
        #[command(flatten)]
        data: DataArgs,
        /// The device name (such as SEP001122334455 or CSFjsmith).
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// The description.
        #[arg(long, default_value = "")]
        description: String,
        /// The device pool.
        #[arg(long, default_value = "")]
        pool: String,
        /// The model (such as "Cisco 8865").
        #[arg(long, default_value = "")]
        model: String,
        /// The authentication mode (default: auth-string with --auth-string, else null-string).
        #[arg(long, value_enum)]
        auth: Option<AuthArg>,
        /// The one-time authentication string: 4 to 10 digits.
        #[arg(long, value_name = "DIGITS", allow_hyphen_values = true)]
        auth_string: Option<String>,
        /// The certificate operation to schedule.
        #[arg(long, value_enum, default_value = "none")]
        operation: OperationArg,
        #[command(flatten)]
        keys: KeyArgs,
        /// The operation's complete-by date (UTC; the operation may run until the day ends).
        #[arg(long, value_name = "YYYY-MM-DD", allow_hyphen_values = true)]
        complete_by: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change a device's description, pool, model, authentication mode or string.
    Update {
        #[command(flatten)]
        data: DataArgs,
        /// The device name.
        #[arg(allow_hyphen_values = true)]
        name: String,
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
        /// A new one-time authentication string: 4 to 10 digits.
        #[arg(
            long,
            value_name = "DIGITS",
            allow_hyphen_values = true,
            conflicts_with = "clear_auth_string"
        )]
        auth_string: Option<String>,
        /// Clear the authentication string.
        #[arg(long)]
        clear_auth_string: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the devices (all, or those matching the filters): name, operation, status,
    /// authentication mode, attempts.
    List {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        query: QueryArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show every field of a device, its LSCs and its latest audit entries.
    Show {
        #[command(flatten)]
        data: DataArgs,
        /// The device name.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Schedule a certificate operation (replacing any other; attempts start again at 0).
    Schedule {
        #[command(flatten)]
        data: DataArgs,
        /// The device name.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// The certificate operation.
        #[arg(long, value_enum)]
        operation: OperationArg,
        #[command(flatten)]
        keys: KeyArgs,
        /// The operation's complete-by date (UTC; none: no date).
        #[arg(long, value_name = "YYYY-MM-DD", allow_hyphen_values = true)]
        complete_by: Option<String>,
        /// A new one-time authentication string: 4 to 10 digits.
        #[arg(long, value_name = "DIGITS", allow_hyphen_values = true)]
        auth_string: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a device (its LSC records stay, for the audit).
    Remove {
        #[command(flatten)]
        data: DataArgs,
        /// The device name.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: DeviceCommand) -> Result<()> {
    match cmd {
        DeviceCommand::Add {
            data,
            name,
            description,
            pool,
            model,
            auth,
            auth_string,
            operation,
            keys,
            complete_by,
            json,
        } => {
            let auth_mode = match (auth, &auth_string) {
                (Some(AuthArg::AuthString), _) | (None, Some(_)) => AuthMode::AuthenticationString,
                (Some(other), Some(_)) => {
                    bail!(
                        "--auth-string needs --auth auth-string, not {}",
                        auth_name(other.mode())
                    )
                }
                (Some(other), None) => other.mode(),
                (None, None) => AuthMode::NullString,
            };
            let new = NewDevice {
                description,
                device_pool: pool,
                model,
                operation: operation_of(operation, &keys)?,
                auth_mode,
                auth_string,
                complete_by: complete_by.as_deref().map(parse_date).transpose()?,
                ..NewDevice::new(name)
            };
            add(&data.data, &new, json)
        }
        DeviceCommand::Update {
            data,
            name,
            description,
            pool,
            model,
            auth,
            auth_string,
            clear_auth_string,
            json,
        } => {
            let update = DeviceUpdate {
                description,
                device_pool: pool,
                model,
                auth_mode: auth.map(AuthArg::mode),
            };
            let string = match (auth_string, clear_auth_string) {
                (Some(s), _) => Some(Some(s)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            update_device(&data.data, &name, &update, string, json)
        }
        DeviceCommand::List { data, query, json } => list(&data.data, &query, json),
        DeviceCommand::Show { data, name, json } => show(&data.data, &name, json),
        DeviceCommand::Schedule {
            data,
            name,
            operation,
            keys,
            complete_by,
            auth_string,
            json,
        } => {
            let operation = operation_of(operation, &keys)?;
            let complete_by = complete_by.as_deref().map(parse_date).transpose()?;
            schedule(
                &data.data,
                &name,
                operation,
                complete_by,
                auth_string.as_deref(),
                json,
            )
        }
        DeviceCommand::Remove { data, name, json } => remove(&data.data, &name, json),
    }
}

impl AuthArg {
    /// The store's mode.
    pub(crate) fn mode(self) -> AuthMode {
        match self {
            AuthArg::NullString => AuthMode::NullString,
            AuthArg::AuthString => AuthMode::AuthenticationString,
            AuthArg::CertificateLscFirst => AuthMode::ExistingCertificateLscFirst,
            AuthArg::CertificateMicFirst => AuthMode::ExistingCertificateMicFirst,
        }
    }
}

/// The operation, with the key policy for Install/Upgrade; key options with any other
/// operation are a mistake.
pub(crate) fn operation_of(op: OperationArg, keys: &KeyArgs) -> Result<Operation> {
    if op != OperationArg::Install {
        if keys.key_order.is_some() || keys.rsa.is_some() || keys.curve.is_some() {
            bail!("--key-order, --rsa and --curve only apply to --operation install");
        }
        return Ok(match op {
            OperationArg::Delete => Operation::Delete,
            OperationArg::Troubleshoot => Operation::Troubleshoot,
            OperationArg::None | OperationArg::Install => Operation::None,
        });
    }
    let defaults = KeyPolicy::default();
    Ok(Operation::InstallUpgrade(KeyPolicy {
        order: match keys.key_order {
            None => defaults.order,
            Some(KeyOrderArg::RsaOnly) => KeyOrder::RsaOnly,
            Some(KeyOrderArg::EcOnly) => KeyOrder::EcOnly,
            Some(KeyOrderArg::EcPreferred) => KeyOrder::EcPreferredRsaBackup,
        },
        rsa: keys.rsa.unwrap_or(defaults.rsa),
        curve: keys.curve.unwrap_or(defaults.curve),
    }))
}

/// `YYYY-MM-DD` as the end of that day, UTC; a date that has passed is refused.
pub(crate) fn parse_date(text: &str) -> Result<SystemTime> {
    let bad = || anyhow!("--complete-by {text:?}: expected a date like 2030-01-31 (YYYY-MM-DD)");
    let (year, month, day) = crate::query::parse_ymd(text).ok_or_else(bad)?;
    let end = der::DateTime::new(year, month, day, 23, 59, 59)
        .map_err(|_| anyhow!("--complete-by {text:?}: no such date"))?
        .to_system_time();
    if end < SystemTime::now() {
        bail!("--complete-by {text}: that date has passed");
    }
    Ok(end)
}

/// RFC 3339 UTC, such as `2030-01-31T23:59:59Z`.
pub(crate) fn time_text(t: SystemTime) -> String {
    der::DateTime::from_system_time(t).map_or_else(|_| format!("{t:?}"), |d| d.to_string())
}

pub(crate) fn opt_time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(time_text(t)))
}

/// The one-line message for a bad authentication string (never showing it).
pub(crate) fn check_auth_string(device: &str, s: &str) -> Result<()> {
    if !is_valid_auth_string(s) {
        let digits = if s.chars().all(|c| c.is_ascii_digit()) {
            ""
        } else {
            ", not all of them digits"
        };
        bail!(
            "the authentication string for {device} must be 4 to 10 ASCII digits (0-9); the one \
             given has {} characters{digits}",
            s.chars().count()
        );
    }
    Ok(())
}

/// Opens (creating when missing) the store in `dir`.
pub(crate) fn open(dir: &Path) -> Result<SqliteStore> {
    SqliteStore::open(dir).with_context(|| format!("opening the device store in {}", dir.display()))
}

/// Opens the store in `dir`, which must already hold a database (so a mistyped --data
/// creates nothing).
pub(crate) fn open_existing(dir: &Path) -> Result<SqliteStore> {
    let db = dir.join(SqliteStore::DATABASE_FILE);
    if !db.is_file() {
        bail!(
            "{}: no device store (run the server or `capfctl device add --data {}` first)",
            db.display(),
            dir.display()
        );
    }
    open(dir)
}

/// Prints a device as JSON.
fn print_device(device: &Device) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(&device_json(device))?);
    Ok(())
}

fn add(dir: &Path, new: &NewDevice, json: bool) -> Result<()> {
    DeviceName::new(&new.name).map_err(|e| anyhow!("cannot register the device: {e}"))?;
    if let Some(s) = &new.auth_string {
        check_auth_string(&new.name, s)?;
    }
    let store = open(dir)?;
    let device = store.add_device(new, SystemTime::now())?;
    if json {
        return print_device(&device);
    }
    outln!(
        "added device {}: {}, status {}, {}",
        device.name,
        device.operation,
        device.status,
        device.auth_mode
    );
    Ok(())
}

/// Short, stable names for JSON.
pub(crate) fn operation_json(op: &Operation) -> Value {
    match op {
        Operation::None => json!({ "type": "none" }),
        Operation::InstallUpgrade(policy) => json!({
            "type": "install",
            "key_order": match policy.order {
                KeyOrder::RsaOnly => "rsa-only",
                KeyOrder::EcOnly => "ec-only",
                KeyOrder::EcPreferredRsaBackup => "ec-preferred",
            },
            "rsa_bits": policy.rsa.bits(),
            "curve": policy.curve.name(),
        }),
        Operation::Delete => json!({ "type": "delete" }),
        Operation::Troubleshoot => json!({ "type": "troubleshoot" }),
        other => json!({ "type": other.to_string() }),
    }
}

pub(crate) fn status_name(status: &OperationStatus) -> String {
    match status {
        OperationStatus::None => "none".to_owned(),
        OperationStatus::Pending => "pending".to_owned(),
        OperationStatus::InProgress => "in-progress".to_owned(),
        OperationStatus::Success => "success".to_owned(),
        OperationStatus::Failed { .. } => "failed".to_owned(),
        OperationStatus::Expired => "expired".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn auth_name(mode: AuthMode) -> String {
    match mode {
        AuthMode::NullString => "null-string".to_owned(),
        AuthMode::AuthenticationString => "auth-string".to_owned(),
        AuthMode::ExistingCertificateLscFirst => "certificate-lsc-first".to_owned(),
        AuthMode::ExistingCertificateMicFirst => "certificate-mic-first".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn device_json(d: &Device) -> Value {
    let failure_reason = match &d.status {
        OperationStatus::Failed { reason } => Some(reason.as_str()),
        _ => None,
    };
    json!({
        "name": d.name,
        "description": d.description,
        "device_pool": d.device_pool,
        "model": d.model,
        "operation": operation_json(&d.operation),
        "operation_text": d.operation.to_string(),
        "status": status_name(&d.status),
        "failure_reason": failure_reason,
        "auth_mode": auth_name(d.auth_mode),
        "has_auth_string": d.has_auth_string,
        "complete_by": opt_time(d.complete_by),
        "attempts": d.attempts,
        "last_error": d.last_error,
        "ec_key_generation_failed": d.ec_key_generation_failed,
        "auth_failures": d.auth_failures,
        "last_auth_failure": opt_time(d.last_auth_failure),
        "updated_at": time_text(d.updated_at),
    })
}

fn update_device(
    dir: &Path,
    name: &str,
    update: &DeviceUpdate,
    auth_string: Option<Option<String>>,
    json: bool,
) -> Result<()> {
    if let Some(Some(s)) = &auth_string {
        check_auth_string(name, s)?;
    }
    if *update == DeviceUpdate::default() && auth_string.is_none() {
        bail!(
            "nothing to change: give --description, --pool, --model, --auth, --auth-string or \
             --clear-auth-string"
        );
    }
    let store = open_existing(dir)?;
    let existing = store
        .device(name)?
        .ok_or_else(|| anyhow!("device {name} is not registered"))?;
    let now = SystemTime::now();
    let mut device = store.update_device(&existing.name, update, now)?;
    if let Some(s) = auth_string {
        device = store.set_auth_string(&existing.name, s.as_deref(), now)?;
    }
    if json {
        return print_device(&device);
    }
    outln!(
        "updated device {}: pool {:?}, model {:?}, {}, authentication string {}",
        device.name,
        device.device_pool,
        device.model,
        device.auth_mode,
        if device.has_auth_string {
            "set"
        } else {
            "not set"
        }
    );
    Ok(())
}

fn list(dir: &Path, query: &QueryArgs, json: bool) -> Result<()> {
    let store = open_existing(dir)?;
    let devices = if query.is_empty() {
        store.list_devices()?
    } else {
        store.query_devices(&query.query(SystemTime::now())?)?
    };
    if json {
        let items: Vec<Value> = devices.iter().map(device_json).collect();
        outln!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if devices.is_empty() {
        if query.is_empty() {
            outln!("no devices in {}", dir.display());
        } else {
            outln!("no devices match");
        }
    }
    let width = devices.iter().map(|d| d.name.len()).max().unwrap_or(0);
    for d in &devices {
        outln!(
            "{:width$}  {}  {}  {}  attempts {}",
            d.name,
            d.operation,
            d.status,
            d.auth_mode,
            d.attempts
        );
    }
    Ok(())
}

fn show(dir: &Path, name: &str, json: bool) -> Result<()> {
    let store = open_existing(dir)?;
    let device = store
        .device(name)?
        .ok_or_else(|| anyhow!("device {name} is not registered"))?;
    let lscs = store.lscs(&device.name)?;
    let audit = store.audit(Some(&device.name), AUDIT_ENTRIES)?;
    if json {
        let mut value = device_json(&device);
        value["lscs"] = lscs
            .iter()
            .map(|l| {
                json!({
                    "serial": l.serial_hex(),
                    "state": l.state.as_str(),
                    "not_before": time_text(l.not_before),
                    "not_after": time_text(l.not_after),
                    "issued_at": time_text(l.issued_at),
                    "state_changed_at": time_text(l.state_changed_at),
                })
            })
            .collect();
        value["audit"] = audit
            .iter()
            .map(|a| json!({ "at": time_text(a.at), "action": a.action, "detail": a.detail }))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let d = &device;
    let or_none = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    outln!("name:                     {}", d.name);
    outln!("description:              {}", or_none(&d.description));
    outln!("device pool:              {}", or_none(&d.device_pool));
    outln!("model:                    {}", or_none(&d.model));
    outln!("operation:                {}", d.operation);
    outln!("status:                   {}", d.status);
    outln!(
        "complete by:              {}",
        d.complete_by.map_or_else(|| "-".to_owned(), time_text)
    );
    outln!("authentication mode:      {}", d.auth_mode);
    outln!(
        "authentication string:    {}",
        if d.has_auth_string { "set" } else { "not set" }
    );
    outln!("attempts:                 {}", d.attempts);
    outln!(
        "last error:               {}",
        d.last_error.as_deref().unwrap_or("-")
    );
    outln!(
        "EC key generation failed: {}",
        if d.ec_key_generation_failed {
            "yes"
        } else {
            "no"
        }
    );
    outln!("auth failures:            {}", d.auth_failures);
    outln!(
        "last auth failure:        {}",
        d.last_auth_failure
            .map_or_else(|| "-".to_owned(), time_text)
    );
    outln!("updated:                  {}", time_text(d.updated_at));
    if lscs.is_empty() {
        outln!("LSCs:                     none");
    } else {
        outln!("LSCs:");
        for l in &lscs {
            outln!(
                "  {}  {}  notAfter {}",
                l.serial_hex(),
                l.state,
                time_text(l.not_after)
            );
        }
    }
    outln!("audit (newest first):");
    for a in &audit {
        if a.detail.is_empty() {
            outln!("  {}  {}", time_text(a.at), a.action);
        } else {
            outln!("  {}  {}: {}", time_text(a.at), a.action, a.detail);
        }
    }
    Ok(())
}

fn schedule(
    dir: &Path,
    name: &str,
    operation: Operation,
    complete_by: Option<SystemTime>,
    auth_string: Option<&str>,
    json: bool,
) -> Result<()> {
    if let Some(s) = auth_string {
        check_auth_string(name, s)?;
    }
    let store = open_existing(dir)?;
    // Checked first, so an unknown device changes nothing.
    let existing = store
        .device(name)?
        .ok_or_else(|| anyhow!("device {name} is not registered"))?;
    let now = SystemTime::now();
    let mut device = store.schedule(&existing.name, operation, complete_by, now)?;
    if let Some(s) = auth_string {
        device = store.set_auth_string(&existing.name, Some(s), now)?;
    }
    if json {
        return print_device(&device);
    }
    outln!(
        "scheduled for {}: {}, status {}{}",
        device.name,
        device.operation,
        device.status,
        device
            .complete_by
            .map_or_else(String::new, |t| format!(", complete by {}", time_text(t)))
    );
    Ok(())
}

fn remove(dir: &Path, name: &str, json: bool) -> Result<()> {
    let store = open_existing(dir)?;
    store.remove_device(name, SystemTime::now())?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "removed": name }))?
        );
        return Ok(());
    }
    outln!("removed device {name}");
    Ok(())
}
