//! `capfctl device ...`: the devices of a capf server's store (capf-store's `SqliteStore` in the
//! server's data directory, or a cluster's PostgreSQL store with `--store`): register, update, list (with filters), show, schedule an
//! operation, remove.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;
use capf_admin::{
    AUDIT_ENTRIES, DeviceEdit, DeviceView, KeyChoice, OperationKind, RemovedView,
    open_existing_store, open_store, rfc3339,
};
use capf_lsc::{Curve, KeyOrder, RsaBits};
use capf_store::{
    AuthMode, Device, DeviceStore, DeviceUpdate, NewDevice, StoreUrl, store_password,
};

use crate::print_json;
use crate::query::QueryArgs;

/// Where the server's data lives.
#[derive(clap::Args)]
pub(crate) struct DataArgs {
    /// The server's data directory (capf.sqlite and the authentication-string key file).
    #[arg(long, value_name = "DIR", default_value = "capf-data")]
    pub(crate) data: PathBuf,
    /// The store: `sqlite:DIR` (default: the data directory's) or `postgres://user@host/db`
    /// (a cluster's; the data directory then holds the cluster's authentication-string key
    /// file). Never with a password in it.
    #[arg(long, value_name = "URL")]
    pub(crate) store: Option<String>,
    /// A file whose first line is the PostgreSQL password (else `PGPASSWORD`).
    #[arg(long, value_name = "FILE")]
    pub(crate) store_password_file: Option<PathBuf>,
}

impl DataArgs {
    /// The store these arguments name.
    pub(crate) fn url(&self) -> Result<StoreUrl> {
        Ok(match &self.store {
            Some(url) => url.parse::<StoreUrl>()?,
            None => StoreUrl::sqlite(&self.data),
        })
    }

    /// Opens the store, creating it when missing (SQLite: the database file; PostgreSQL: the
    /// schema, and the key file in the data directory).
    pub(crate) fn open(&self) -> Result<Arc<dyn DeviceStore>> {
        self.open_store(false)
    }

    /// Opens the store, which must exist already (so a mistyped directory creates nothing;
    /// on PostgreSQL the data directory must hold the cluster's key file).
    pub(crate) fn open_existing(&self) -> Result<Arc<dyn DeviceStore>> {
        self.open_store(true)
    }

    fn open_store(&self, existing: bool) -> Result<Arc<dyn DeviceStore>> {
        match self.url()? {
            StoreUrl::Sqlite(dir) => Ok(Arc::new(if existing {
                open_existing_store(&dir)?
            } else {
                open_store(&dir)?
            })),
            url => {
                let key = self.data.join(capf_store::SqliteStore::KEY_FILE);
                if existing && !key.exists() {
                    anyhow::bail!(
                        "{} holds no authentication-string key file ({}): copy the cluster's \
                         key file there, or name the node's data directory with --data",
                        self.data.display(),
                        key.display()
                    );
                }
                let password = store_password(self.store_password_file.as_deref())?;
                Ok(capf_store::open_store(&url, &self.data, password.as_ref())?)
            }
        }
    }

    /// The store, for messages: the data directory or the URL.
    pub(crate) fn describe(&self) -> String {
        match &self.store {
            Some(url) => url.clone(),
            None => self.data.display().to_string(),
        }
    }
}

/// The key settings of an Install/Upgrade operation (UCM defaults: RSA only, 2048, P-256).
#[derive(clap::Args)]
pub(crate) struct KeyArgs {
    /// Key order, for --operation install (default rsa-only).
    #[arg(long, value_parser = crate::names::key_order())]
    pub(crate) key_order: Option<KeyOrder>,
    /// RSA key size in bits, for --operation install (default 2048).
    #[arg(long, value_name = "BITS", value_parser = crate::names::rsa)]
    pub(crate) rsa: Option<RsaBits>,
    /// EC curve, for --operation install (default P-256).
    #[arg(long, value_name = "CURVE", value_parser = crate::names::curve)]
    pub(crate) curve: Option<Curve>,
}

impl KeyArgs {
    pub(crate) fn choice(&self) -> KeyChoice {
        KeyChoice {
            order: self.key_order,
            rsa: self.rsa,
            curve: self.curve,
        }
    }
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
        #[arg(long, value_parser = crate::names::auth_mode())]
        auth: Option<AuthMode>,
        /// The one-time authentication string: 4 to 10 digits.
        #[arg(long, value_name = "DIGITS", allow_hyphen_values = true)]
        auth_string: Option<String>,
        /// The certificate operation to schedule.
        #[arg(long, value_parser = crate::names::operation(), default_value = "none")]
        operation: OperationKind,
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
        #[command(flatten)]
        fields: FieldChanges,
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
        #[arg(long, value_parser = crate::names::operation())]
        operation: OperationKind,
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

/// The complete-by date of `--complete-by`.
pub(crate) fn complete_by_arg(text: Option<&str>) -> Result<Option<SystemTime>> {
    Ok(text
        .map(|d| capf_admin::complete_by(d, "--complete-by", SystemTime::now()))
        .transpose()?)
}

/// New values for a device's administrative fields (`device update`, `bulk update`).
#[derive(clap::Args)]
pub(crate) struct FieldChanges {
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
    #[arg(long, value_parser = crate::names::auth_mode())]
    auth: Option<AuthMode>,
}

impl FieldChanges {
    /// The store's update for these values.
    pub(crate) fn update(&self) -> DeviceUpdate {
        DeviceUpdate {
            description: self.description.clone(),
            device_pool: self.pool.clone(),
            model: self.model.clone(),
            auth_mode: self.auth,
        }
    }
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
            let auth_mode = capf_admin::new_device_auth_mode(auth, auth_string.is_some())?;
            let new = NewDevice {
                description,
                device_pool: pool,
                model,
                operation: keys.choice().operation(operation)?,
                auth_mode,
                auth_string,
                complete_by: complete_by_arg(complete_by.as_deref())?,
                ..NewDevice::new(capf_admin::check_device_name(&name)?)
            };
            add(&data, &new, json)
        }
        DeviceCommand::Update {
            data,
            name,
            fields,
            auth_string,
            clear_auth_string,
            json,
        } => {
            let edit = DeviceEdit {
                update: fields.update(),
                auth_string: match (auth_string, clear_auth_string) {
                    (Some(s), _) => Some(Some(s)),
                    (None, true) => Some(None),
                    (None, false) => None,
                },
            };
            update_device(&data, &name, &edit, json)
        }
        DeviceCommand::List { data, query, json } => list(&data, &query, json),
        DeviceCommand::Show { data, name, json } => show(&data, &name, json),
        DeviceCommand::Schedule {
            data,
            name,
            operation,
            keys,
            complete_by,
            auth_string,
            json,
        } => {
            let operation = keys.choice().operation(operation)?;
            let complete_by = complete_by_arg(complete_by.as_deref())?;
            if let Some(s) = &auth_string {
                capf_admin::check_auth_string(&name, s)?;
            }
            let store = data.open_existing()?;
            let device = capf_admin::schedule_device(
                &*store,
                &name,
                operation,
                complete_by,
                auth_string.as_deref(),
                SystemTime::now(),
            )?;
            if json {
                return print_json(&DeviceView::from(&device));
            }
            outln!(
                "scheduled for {}: {}, status {}{}",
                device.name,
                device.operation,
                device.status,
                device
                    .complete_by
                    .map_or_else(String::new, |t| format!(", complete by {}", rfc3339(t)))
            );
            Ok(())
        }
        DeviceCommand::Remove { data, name, json } => {
            let store = data.open_existing()?;
            store.remove_device(&capf_admin::lookup_name(&name)?, SystemTime::now())?;
            if json {
                return print_json(&RemovedView { removed: name });
            }
            outln!("removed device {name}");
            Ok(())
        }
    }
}

fn add(data: &DataArgs, new: &NewDevice, json: bool) -> Result<()> {
    capf_admin::check_new_device(new)?;
    let store = data.open()?;
    let device = capf_admin::add_device(&*store, new, SystemTime::now())?;
    if json {
        return print_json(&DeviceView::from(&device));
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

fn update_device(data: &DataArgs, name: &str, edit: &DeviceEdit, json: bool) -> Result<()> {
    edit.check(name)?;
    let store = data.open_existing()?;
    let device = edit.apply(&*store, name, SystemTime::now())?;
    if json {
        return print_json(&DeviceView::from(&device));
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

fn list(data: &DataArgs, query: &QueryArgs, json: bool) -> Result<()> {
    let store = data.open_existing()?;
    let devices = capf_admin::list_devices(&*store, &query.filter()?, SystemTime::now())?;
    if json {
        let items: Vec<DeviceView> = devices.iter().map(DeviceView::from).collect();
        return print_json(&items);
    }
    if devices.is_empty() {
        if query.is_empty() {
            outln!("no devices in {}", data.describe());
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

fn show(data: &DataArgs, name: &str, json: bool) -> Result<()> {
    let store = data.open_existing()?;
    let detail = capf_admin::device_detail(&*store, name, AUDIT_ENTRIES)?;
    if json {
        return print_json(&detail.view());
    }
    let d: &Device = &detail.device;
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
        d.complete_by.map_or_else(|| "-".to_owned(), rfc3339)
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
        d.last_auth_failure.map_or_else(|| "-".to_owned(), rfc3339)
    );
    outln!("updated:                  {}", rfc3339(d.updated_at));
    if detail.lscs.is_empty() {
        outln!("LSCs:                     none");
    } else {
        outln!("LSCs:");
        for l in &detail.lscs {
            outln!(
                "  {}  {}  notAfter {}",
                l.serial_hex(),
                l.state,
                rfc3339(l.not_after)
            );
        }
    }
    outln!("audit (newest first):");
    for a in &detail.audit {
        if a.detail.is_empty() {
            outln!("  {}  {}", rfc3339(a.at), a.action);
        } else {
            outln!("  {}  {}: {}", rfc3339(a.at), a.action, a.detail);
        }
    }
    Ok(())
}
