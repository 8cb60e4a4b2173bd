//! Devices in bulk, like the guide's Bulk Administration Tool, and device templates (the
//! guide's Universal Device Template).
//!
//! # The CSV file of a bulk insert
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
//! transaction: a bad row is reported as `FILE:LINE: what is wrong` ([`Error::Row`]), and
//! nothing from the file is applied.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use capf_lsc::KeyPolicy;
use capf_store::{
    AuthMode, BulkChange, DeviceChange, DeviceStore, DeviceTemplate, DeviceUpdate, NewDevice,
    Operation, Schedule,
};

use crate::names::{OperationKind, parse_curve, parse_key_order, parse_rsa_bits};
use crate::{DeviceFilter, Error, KeyChoice, Progress, check_auth_string, check_device_name};

/// The documented columns.
pub const COLUMNS: [&str; 9] = [
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

/// `ORDER[/BITS][/CURVE]` over `base` (the template's policy or UCM's defaults).
///
/// # Errors
/// [`Error::KeySpec`], [`Error::KeySpecPart`].
pub fn parse_key_spec(text: &str, base: KeyPolicy) -> Result<KeyPolicy, Error> {
    let mut parts = text.split('/').map(str::trim);
    let order = parts
        .next()
        .and_then(parse_key_order)
        .ok_or_else(|| Error::KeySpec {
            text: text.to_owned(),
        })?;
    let mut policy = KeyPolicy { order, ..base };
    for part in parts {
        if part.starts_with(['P', 'p']) {
            policy.curve = parse_curve(part).map_err(|e| Error::KeySpecPart {
                part: "curve",
                error: Box::new(e),
            })?;
        } else {
            policy.rsa = parse_rsa_bits(part).map_err(|e| Error::KeySpecPart {
                part: "RSA size",
                error: Box::new(e),
            })?;
        }
    }
    Ok(policy)
}

fn row_device(
    row: &Row<'_>,
    template: Option<&DeviceTemplate>,
    now: SystemTime,
) -> Result<NewDevice, Error> {
    let name = check_device_name(row.get("device_name").ok_or(Error::NoDeviceName)?)?;
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
    if let Some(op) = row.get("operation") {
        new.operation = match op.parse::<OperationKind>()? {
            OperationKind::Install => Operation::InstallUpgrade(match new.operation {
                Operation::InstallUpgrade(p) => p,
                _ => KeyPolicy::default(),
            }),
            kind => KeyChoice::default().operation(kind)?,
        };
    }
    if let Some(spec) = row.get("key_spec") {
        let Operation::InstallUpgrade(policy) = new.operation else {
            return Err(Error::KeySpecWithoutInstall {
                text: spec.to_owned(),
            });
        };
        new.operation = Operation::InstallUpgrade(parse_key_spec(spec, policy)?);
    }
    let string = row.get("auth_string");
    if let Some(s) = string {
        check_auth_string(&new.name, s)?;
        new.auth_string = Some(s.to_owned());
    }
    match row.get("auth_mode") {
        Some(mode) => {
            new.auth_mode = mode.parse().map_err(|_| Error::AuthModeName {
                text: mode.to_owned(),
            })?;
            if string.is_some() && new.auth_mode != AuthMode::AuthenticationString {
                return Err(Error::RowAuthStringNeedsAuthMode {
                    mode: mode.to_owned(),
                });
            }
        }
        None if string.is_some() => new.auth_mode = AuthMode::AuthenticationString,
        None => {}
    }
    if let Some(date) = row.get("complete_by") {
        new.complete_by = Some(crate::complete_by(date, "complete_by", now)?);
    }
    Ok(new)
}

/// The devices of a checked CSV file, and the line each came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvDevices {
    /// The devices, in file order.
    pub devices: Vec<NewDevice>,
    /// The line of each device (the header is line 1).
    pub lines: Vec<u64>,
}

fn csv_error(file: &str, line: u64, error: csv::Error) -> Error {
    Error::Row {
        file: file.to_owned(),
        line,
        source: Box::new(Error::Csv { error }),
    }
}

/// Reads and checks the devices of a CSV file (see the [module documentation](self)) from
/// `input`; `file` names it in errors. A `template` fills the fields a row leaves empty.
///
/// # Errors
/// [`Error::Row`] (`FILE:LINE` and what is wrong) for the first bad line, [`Error::NoRows`].
pub fn read_devices_csv(
    input: impl Read,
    file: &str,
    template: Option<&DeviceTemplate>,
    progress: &mut dyn Progress,
    now: SystemTime,
) -> Result<CsvDevices, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = reader.headers().map_err(|e| csv_error(file, 1, e))?.clone();
    let at_header = |source: Error| Error::Row {
        file: file.to_owned(),
        line: 1,
        source: Box::new(source),
    };
    let mut columns: Vec<&'static str> = Vec::with_capacity(headers.len());
    for header in &headers {
        let name = column_name(header);
        let Some(known) = COLUMNS.iter().copied().find(|c| *c == name) else {
            return Err(at_header(Error::UnknownColumn {
                header: header.to_owned(),
            }));
        };
        if columns.contains(&known) {
            return Err(at_header(Error::DuplicateColumn { column: known }));
        }
        columns.push(known);
    }
    if !columns.contains(&"device_name") {
        return Err(at_header(Error::NoDeviceNameColumn));
    }
    let records = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            csv_error(file, line, e)
        })?;
    progress.start("checking rows", Some(records.len() as u64));
    let checked = check_records(&records, &columns, file, template, progress, now);
    progress.finish();
    let checked = checked?;
    if checked.devices.is_empty() {
        return Err(Error::NoRows {
            file: file.to_owned(),
        });
    }
    Ok(checked)
}

fn check_records(
    records: &[csv::StringRecord],
    columns: &[&'static str],
    file: &str,
    template: Option<&DeviceTemplate>,
    progress: &mut dyn Progress,
    now: SystemTime,
) -> Result<CsvDevices, Error> {
    let mut devices = Vec::with_capacity(records.len());
    let mut lines = Vec::with_capacity(records.len());
    let mut seen: HashMap<String, u64> = HashMap::with_capacity(records.len());
    for record in records {
        let line = record.position().map_or(0, csv::Position::line);
        let at_line = |source: Error| Error::Row {
            file: file.to_owned(),
            line,
            source: Box::new(source),
        };
        let row = Row {
            cells: columns.iter().copied().zip(record.iter()).collect(),
        };
        let new = row_device(&row, template, now).map_err(at_line)?;
        if let Some(first) = seen.insert(new.name.to_ascii_lowercase(), line) {
            return Err(at_line(Error::DuplicateDevice {
                name: new.name.into_string(),
                first,
            }));
        }
        devices.push(new);
        lines.push(line);
        progress.advance(1);
    }
    Ok(CsvDevices { devices, lines })
}

/// The devices added by [`insert_devices_csv`], and the template applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkInsert {
    /// How many devices were added.
    pub added: usize,
    /// The device template applied.
    pub template: Option<DeviceTemplate>,
}

/// Adds the devices of the CSV file `path`, all or none: every row is checked first, then the
/// devices are added in one transaction. `template` names a device template whose settings
/// fill the fields a row leaves empty. In the Online CA mode a row whose key order (its own or
/// the template's) asks for EC is a bad row ([`Error::OnlineCaRefusesEc`] under
/// [`Error::Row`]).
///
/// # Errors
/// [`Error::UnknownTemplate`], [`Error::CsvFile`] (cannot open), [`Error::Row`] (a bad row),
/// [`Error::RowRefused`] (the store refused a row's device), or the store's.
pub fn insert_devices_csv(
    store: &dyn DeviceStore,
    path: &Path,
    template: Option<&str>,
    progress: &mut dyn Progress,
    now: SystemTime,
) -> Result<BulkInsert, Error> {
    let template = template
        .map(|name| {
            store.template(name)?.ok_or_else(|| Error::UnknownTemplate {
                name: name.to_owned(),
            })
        })
        .transpose()?;
    let shown = path.display().to_string();
    let input = std::fs::File::open(path).map_err(|e| Error::CsvFile {
        file: shown.clone(),
        error: Box::new(Error::Csv { error: e.into() }),
    })?;
    insert_devices_csv_from(store, input, &shown, template, progress, now)
}

/// [`insert_devices_csv`] over CSV text from anywhere (an upload), named `shown` in errors,
/// with the template already looked up.
///
/// # Errors
/// As [`insert_devices_csv`].
pub fn insert_devices_csv_from(
    store: &dyn DeviceStore,
    input: impl std::io::Read,
    shown: &str,
    template: Option<DeviceTemplate>,
    progress: &mut dyn Progress,
    now: SystemTime,
) -> Result<BulkInsert, Error> {
    let shown = shown.to_owned();
    let CsvDevices { devices, lines } =
        check_devices_csv(store, input, &shown, template.as_ref(), progress, now)?;
    progress.start(&format!("adding {} devices", devices.len()), None);
    let added = store.add_devices(&devices, now);
    progress.finish();
    let added = added.map_err(|e| refused_row(&shown, &lines, e))?;
    Ok(BulkInsert { added, template })
}

/// Reads and checks every row of a CSV file ([`read_devices_csv`]), and refuses a row that
/// asks for EC in the Online CA mode: what a bulk insert does before it adds anything.
pub(crate) fn check_devices_csv(
    store: &dyn DeviceStore,
    input: impl std::io::Read,
    shown: &str,
    template: Option<&DeviceTemplate>,
    progress: &mut dyn Progress,
    now: SystemTime,
) -> Result<CsvDevices, Error> {
    let checked = read_devices_csv(input, shown, template, progress, now)?;
    // The guide: Online CA does not support ECDSA keys; a row (or its template) asking for EC
    // in that mode is refused by its line, before anything is added.
    let settings = store.settings()?;
    for (device, &line) in checked.devices.iter().zip(&checked.lines) {
        crate::online_ca::refuse_ec(&settings, &device.operation, || {
            format!("device {}", device.name)
        })
        .map_err(|source| Error::Row {
            file: shown.to_owned(),
            line,
            source: Box::new(source),
        })?;
    }
    Ok(checked)
}

/// The store's refusal of one device of a bulk insert, named by its CSV line.
pub(crate) fn refused_row(shown: &str, lines: &[u64], error: capf_store::Error) -> Error {
    match error {
        capf_store::Error::BulkItem { index, source } => Error::RowRefused {
            file: shown.to_owned(),
            line: lines.get(index).copied().unwrap_or(0),
            error: source,
        },
        e => e.into(),
    }
}

/// What a bulk update changes, as given (checked by [`ChangeParams::to_change`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeParams {
    /// A new description.
    pub description: Option<String>,
    /// A new device pool.
    pub device_pool: Option<String>,
    /// A new model.
    pub model: Option<String>,
    /// A new authentication mode.
    pub auth_mode: Option<AuthMode>,
    /// Schedule this operation (attempts start again at 0).
    pub operation: Option<OperationKind>,
    /// The keys of an Install/Upgrade operation.
    pub keys: KeyChoice,
    /// The operation's complete-by date, `YYYY-MM-DD` (with an operation).
    pub complete_by: Option<String>,
}

impl ChangeParams {
    /// The store's change.
    ///
    /// # Errors
    /// [`Error::KeysWithoutInstall`], [`Error::Date`], [`Error::ScheduleWithoutOperation`],
    /// [`Error::NothingToChange`].
    pub fn to_change(&self, now: SystemTime) -> Result<BulkChange, Error> {
        let schedule = match self.operation {
            Some(kind) => Some(Schedule {
                operation: self.keys.operation(kind)?,
                complete_by: self
                    .complete_by
                    .as_deref()
                    .map(|d| crate::complete_by(d, "--complete-by", now))
                    .transpose()?,
            }),
            None => {
                if self.complete_by.is_some() || !self.keys.is_empty() {
                    return Err(Error::ScheduleWithoutOperation);
                }
                None
            }
        };
        let change = BulkChange {
            update: DeviceUpdate {
                description: self.description.clone(),
                device_pool: self.device_pool.clone(),
                model: self.model.clone(),
                auth_mode: self.auth_mode,
            },
            schedule,
        };
        if change.is_empty() {
            return Err(Error::NothingToChange);
        }
        Ok(change)
    }
}

/// Changes every device matching `filter` in one transaction; a dry run changes nothing and
/// returns what would change.
///
/// # Errors
/// [`Error::OnlineCaRefusesEc`] (the mode is Online CA and the change schedules an EC key
/// order: nothing is changed, dry run or not), or the store's.
pub fn update_devices(
    store: &dyn DeviceStore,
    filter: &DeviceFilter,
    change: &BulkChange,
    dry_run: bool,
    progress: &mut dyn Progress,
    now: SystemTime,
) -> Result<Vec<DeviceChange>, Error> {
    refuse_ec_change(store, change)?;
    progress.start(
        if dry_run {
            "working out the changes"
        } else {
            "changing the devices"
        },
        None,
    );
    let changes = store.update_devices(&filter.to_query(now), change, dry_run, now);
    progress.finish();
    Ok(changes?)
}

/// Refuses a bulk change that schedules an EC key order in the Online CA mode.
pub(crate) fn refuse_ec_change(store: &dyn DeviceStore, change: &BulkChange) -> Result<(), Error> {
    if let Some(schedule) = &change.schedule {
        crate::online_ca::refuse_ec(&store.settings()?, &schedule.operation, || {
            "the devices matching the query".to_owned()
        })?;
    }
    Ok(())
}

/// A device template as given; [`TemplateParams::to_template`] checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateParams {
    /// The template's name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The device pool.
    pub device_pool: String,
    /// The model.
    pub model: String,
    /// The authentication mode.
    pub auth_mode: AuthMode,
    /// The operation.
    pub operation: Option<OperationKind>,
    /// The keys of an Install/Upgrade operation.
    pub keys: KeyChoice,
    /// The operation's complete-by date, `YYYY-MM-DD`.
    pub complete_by: Option<String>,
}

impl TemplateParams {
    /// The template.
    ///
    /// # Errors
    /// [`capf_store::Error::EmptyTemplateName`], [`Error::KeysWithoutInstall`],
    /// [`Error::Date`].
    pub fn to_template(&self, now: SystemTime) -> Result<DeviceTemplate, Error> {
        if self.name.trim().is_empty() {
            return Err(capf_store::Error::EmptyTemplateName.into());
        }
        Ok(DeviceTemplate {
            name: self.name.clone(),
            description: self.description.clone(),
            device_pool: self.device_pool.clone(),
            model: self.model.clone(),
            operation: self
                .keys
                .operation(self.operation.unwrap_or(OperationKind::None))?,
            auth_mode: self.auth_mode,
            complete_by: self
                .complete_by
                .as_deref()
                .map(|d| crate::complete_by(d, "--complete-by", now))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use capf_lsc::{Curve, KeyOrder};

    use super::*;
    use crate::NoProgress;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn read(text: &str) -> Result<CsvDevices, Error> {
        read_devices_csv(text.as_bytes(), "d.csv", None, &mut NoProgress, now())
    }

    fn chain(e: &Error) -> String {
        crate::error_chain(e)
    }

    #[test]
    fn reads_rows_with_their_lines() {
        let got = read(
            "Device Name,operation,key_spec,auth_string\n\
             SEP001122334455,install,ec-preferred/3072/P-384,\n\
             CSFjsmith,,,123456\n",
        )
        .unwrap();
        assert_eq!(got.lines, [2, 3]);
        let Operation::InstallUpgrade(policy) = got.devices[0].operation else {
            panic!("not install");
        };
        assert_eq!(policy.order, KeyOrder::EcPreferredRsaBackup);
        assert_eq!(policy.rsa.bits(), 3072);
        assert_eq!(policy.curve, Curve::P384);
        assert_eq!(got.devices[1].auth_mode, AuthMode::AuthenticationString);
    }

    #[test]
    fn a_bad_row_names_file_and_line() {
        let cases = [
            ("SEP 1,,", "invalid device name"),
            ("SEP001122334455,bogus,", "operation \"bogus\""),
            (
                "SEP001122334455,delete,rsa-only",
                "only for operation install",
            ),
            ("SEP001122334455,install,rsa/999", "RSA size \"999\""),
            ("SEP001122334455,install,ec/P-999", "curve \"P-999\""),
        ];
        for (row, message) in cases {
            let text = format!("device_name,operation,key_spec\nSEP00AA00000001,,\n{row}\n");
            let err = chain(&read(&text).unwrap_err());
            assert!(err.starts_with("d.csv:3: "), "{row}: {err}");
            assert!(err.contains(message), "{row}: {err}");
        }
    }

    #[test]
    fn refuses_unknown_columns_duplicates_and_empty_files() {
        let err = chain(&read("device,model\nA,B\n").unwrap_err());
        assert!(
            err.starts_with("d.csv:1: unknown column \"device\""),
            "{err}"
        );
        let err = chain(&read("device_name\nSEP001122334455\nsep001122334455\n").unwrap_err());
        assert!(
            err.contains("d.csv:3: ") && err.contains("already on line 2"),
            "{err}"
        );
        let err = chain(&read("device_name\n").unwrap_err());
        assert_eq!(err, "d.csv: no devices (only a header line)");
        let err = chain(&read("device_name,model\nA\n").unwrap_err());
        assert!(
            err.contains("d.csv:2: 1 fields, but the header line has 2"),
            "{err}"
        );
    }

    #[test]
    fn a_template_fills_empty_cells() {
        let template = DeviceTemplate {
            name: "lobby".to_owned(),
            model: "Cisco 8865".to_owned(),
            auth_mode: AuthMode::ExistingCertificateMicFirst,
            ..DeviceTemplate::default()
        };
        let got = read_devices_csv(
            "device_name,model\nSEP001122334455,\nSEP001122334456,Cisco 7841\n".as_bytes(),
            "d.csv",
            Some(&template),
            &mut NoProgress,
            now(),
        )
        .unwrap();
        assert_eq!(got.devices[0].model, "Cisco 8865");
        assert_eq!(got.devices[1].model, "Cisco 7841");
        assert_eq!(
            got.devices[0].auth_mode,
            AuthMode::ExistingCertificateMicFirst
        );
    }

    #[test]
    fn a_change_needs_something_to_change() {
        let err = ChangeParams::default().to_change(now()).unwrap_err();
        assert!(matches!(err, Error::NothingToChange));
        let err = ChangeParams {
            complete_by: Some("2031-01-01".to_owned()),
            ..ChangeParams::default()
        }
        .to_change(now())
        .unwrap_err();
        assert!(matches!(err, Error::ScheduleWithoutOperation));
    }
}
