//! The crate's error type.

use std::path::PathBuf;

/// Why a date was refused (see [`Error::Date`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DateProblem {
    /// Not `YYYY-MM-DD`.
    #[error("expected a date like 2030-01-31 (YYYY-MM-DD)")]
    Format,
    /// A date that does not exist, such as 2030-02-30.
    #[error("no such date")]
    NoSuchDate,
    /// A complete-by date whose day has ended.
    #[error("that date has passed")]
    Passed,
}

fn date_message(field: &str, text: &str, problem: DateProblem) -> String {
    match problem {
        DateProblem::Passed => format!("{field} {text}: {problem}"),
        _ => format!("{field} {text:?}: {problem}"),
    }
}

fn csv_text(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields, but the header line has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => error.to_string(),
    }
}

/// Everything that can go wrong in capf-admin.
///
/// `Display` gives this layer's words; where a variant wraps a cause as its `source()`, print
/// the chain ([`error_chain`](crate::error_chain)) for the whole story on one line, as capfctl
/// does. A bad CSV row is [`Error::Row`]: `FILE:LINE` and, as its source, what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device store failed or refused.
    #[error(transparent)]
    Store(Box<capf_store::Error>),
    /// capf-lsc refused a value (a key, a certificate, a validity).
    #[error(transparent)]
    Lsc(Box<capf_lsc::Error>),
    /// Building or signing a CRL failed.
    #[error(transparent)]
    Ca(Box<capf_ca::Error>),
    /// The guide: Online CA does not support ECDSA keys. Setting the issuer mode to Online CA
    /// while a device's key order asks for EC, or an EC key order while the mode is Online CA
    /// (one device, a CSV row, a bulk update, a device template), is refused.
    #[error("{subject}: {source}; use key order RSA only, or another certificate issuer")]
    OnlineCaRefusesEc {
        /// What asks for EC: `device NAME`, `device template NAME`, `the devices matching the
        /// query`.
        subject: String,
        /// capf-lsc's reason.
        #[source]
        source: Box<capf_lsc::Error>,
    },
    /// A file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done: "reading", "writing".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A new file could not be created (an existing file is never overwritten).
    #[error("creating {} (an existing file is never overwritten)", path.display())]
    CreateNew {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The device store could not be opened.
    #[error("opening the device store in {}", dir.display())]
    OpenStore {
        /// The data directory.
        dir: PathBuf,
        /// What the store reported.
        #[source]
        source: Box<capf_store::Error>,
    },
    /// The data directory holds no device store (so a mistyped directory creates nothing).
    #[error(
        "{}: no device store (run the server or `capfctl device add --data {}` first)",
        dir.join(capf_store::SqliteStore::DATABASE_FILE).display(),
        dir.display()
    )]
    NoStore {
        /// The data directory.
        dir: PathBuf,
    },
    /// No device of this name is registered.
    #[error("device {name} is not registered")]
    UnknownDevice {
        /// The name given.
        name: String,
    },
    /// A device name no device can have (capf-wire's rules).
    #[error("cannot register the device: {error}")]
    DeviceName {
        /// What capf-wire reported.
        error: Box<capf_wire::Error>,
    },
    /// An authentication string given with an authentication mode other than By
    /// Authentication String.
    #[error("--auth-string needs --auth auth-string, not {}", mode.as_str())]
    AuthStringNeedsAuthMode {
        /// The mode given.
        mode: capf_store::AuthMode,
    },
    /// Key options given with an operation other than Install/Upgrade.
    #[error("--key-order, --rsa and --curve only apply to --operation install")]
    KeysWithoutInstall,
    /// A bad date.
    #[error("{}", date_message(field, text, *problem))]
    Date {
        /// The field, as the caller names it (`--complete-by`, `complete_by`).
        field: String,
        /// The text given.
        text: String,
        /// What is wrong with it.
        problem: DateProblem,
    },
    /// A bad RSA key size.
    #[error("{text:?}: expected 1024, 2048, 3072 or 4096")]
    RsaBits {
        /// The text given.
        text: String,
    },
    /// A bad EC curve name.
    #[error("{text:?}: expected P-256, P-384 or P-521")]
    Curve {
        /// The text given.
        text: String,
    },
    /// A bad operation name.
    #[error("operation {text:?}: expected install, delete, troubleshoot or none")]
    OperationName {
        /// The text given.
        text: String,
    },
    /// A bad authentication-mode name.
    #[error(
        "auth_mode {text:?}: expected auth-string, null-string, certificate-lsc-first or \
         certificate-mic-first"
    )]
    AuthModeName {
        /// The text given.
        text: String,
    },
    /// A bad `key_spec` cell.
    #[error(
        "key_spec {text:?}: expected ORDER[/BITS][/CURVE], such as rsa-only/2048, ec-only/P-384 \
         or ec-preferred/3072/P-256"
    )]
    KeySpec {
        /// The text given.
        text: String,
    },
    /// A bad part of a `key_spec` cell.
    #[error("key_spec: {part} {error}")]
    KeySpecPart {
        /// "curve" or "RSA size".
        part: &'static str,
        /// What is wrong with it.
        error: Box<Error>,
    },
    /// A `key_spec` cell for an operation other than Install/Upgrade.
    #[error("key_spec {text:?} is only for operation install")]
    KeySpecWithoutInstall {
        /// The cell.
        text: String,
    },
    /// An `auth_string` cell with an `auth_mode` other than By Authentication String.
    #[error("an auth_string needs auth_mode auth-string, not {mode:?}")]
    RowAuthStringNeedsAuthMode {
        /// The `auth_mode` cell.
        mode: String,
    },
    /// A CSV row without a device name.
    #[error("device_name is empty")]
    NoDeviceName,
    /// A CSV header cell that names no column.
    #[error("unknown column {header:?} (the columns are {})", crate::bulk::COLUMNS.join(", "))]
    UnknownColumn {
        /// The header cell.
        header: String,
    },
    /// A CSV column named twice.
    #[error("column {column} is given twice")]
    DuplicateColumn {
        /// The column.
        column: &'static str,
    },
    /// A CSV file without the `device_name` column.
    #[error("no device_name column")]
    NoDeviceNameColumn,
    /// A device listed twice in one CSV file.
    #[error("device {name} is already on line {first}")]
    DuplicateDevice {
        /// The device.
        name: String,
        /// The line it is first on.
        first: u64,
    },
    /// A CSV file that could not be read or parsed (shown without the csv crate's own
    /// position, which [`Error::Row`] gives).
    #[error("{}", csv_text(error))]
    Csv {
        /// What the csv crate reported.
        error: csv::Error,
    },
    /// A CSV file with a header line only.
    #[error("{file}: no devices (only a header line)")]
    NoRows {
        /// The file, as shown.
        file: String,
    },
    /// A CSV file that could not be opened.
    #[error("{file}: {error}")]
    CsvFile {
        /// The file, as shown.
        file: String,
        /// Why.
        error: Box<Error>,
    },
    /// A bad line of a CSV file: nothing from the file was applied.
    #[error("{file}:{line}")]
    Row {
        /// The file, as shown.
        file: String,
        /// The line (1 is the header line).
        line: u64,
        /// What is wrong.
        #[source]
        source: Box<Error>,
    },
    /// The store refused a device of a CSV file: nothing from the file was added.
    #[error("{file}:{line}: {error} (nothing from the file was added)")]
    RowRefused {
        /// The file, as shown.
        file: String,
        /// The line.
        line: u64,
        /// What the store reported.
        error: Box<capf_store::Error>,
    },
    /// A device template that does not exist.
    #[error("device template {name} does not exist")]
    UnknownTemplate {
        /// The name given.
        name: String,
    },
    /// A bulk update with only the schedule's details, no operation.
    #[error("--complete-by, --key-order, --rsa and --curve need --operation")]
    ScheduleWithoutOperation,
    /// A bulk update that changes nothing.
    #[error("nothing to change: give --description, --pool, --model, --auth or --operation")]
    NothingToChange,
    /// A device update that changes nothing.
    #[error(
        "nothing to change: give --description, --pool, --model, --auth, --auth-string or \
         --clear-auth-string"
    )]
    NothingToUpdate,
    /// An authentication-string length outside 4 to 10.
    #[error(
        "--length {length}: an authentication string has {} to {} digits",
        capf_store::AUTH_STRING_MIN_LEN,
        capf_store::AUTH_STRING_MAX_LEN
    )]
    AuthStringLength {
        /// The length given.
        length: i64,
    },
    /// More devices than there are distinct strings of the length asked for.
    #[error(
        "{devices} devices need unique authentication strings, but {length} digits give only \
         {possible}: choose a longer --length"
    )]
    TooFewAuthStrings {
        /// The devices selected.
        devices: usize,
        /// The digits per string.
        length: usize,
        /// The number of distinct strings.
        possible: u64,
    },
    /// A selection that matches no device.
    #[error("no devices match")]
    NoDevicesMatch,
    /// The operating system's random source failed.
    #[error("the OS random source failed: {error}")]
    Random {
        /// What getrandom reported.
        error: getrandom::Error,
    },
    /// A look-ahead too far for the clock.
    #[error("--days {days}: too far ahead")]
    DaysTooFar {
        /// The days given.
        days: u32,
    },
    /// A bad SMTP server port.
    #[error("--smtp-server {server:?}: the port is not a number")]
    SmtpPort {
        /// The server given.
        server: String,
    },
    /// A bad email address.
    #[error("{field} {address:?}: {error}")]
    MailAddress {
        /// `--mail-from` or `--mail-to`.
        field: &'static str,
        /// The address given.
        address: String,
        /// What lettre reported.
        error: lettre::address::AddressError,
    },
    /// The notification email could not be built.
    #[error("building the notification email")]
    MailBuild {
        /// What lettre reported.
        #[source]
        source: lettre::error::Error,
    },
    /// The notification email could not be sent.
    #[error("sending the notification through {server}: {error}")]
    MailSend {
        /// The SMTP server.
        server: String,
        /// What lettre reported.
        error: Box<lettre::transport::smtp::Error>,
    },
    /// The CAPF certificate and key could not be loaded as an issuer.
    #[error("the CAPF certificate {} and key {}", cert.display(), key.display())]
    Issuer {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What capf-lsc reported.
        #[source]
        source: Box<capf_lsc::Error>,
    },
    /// A serial number that is not hex.
    #[error("--serial {text:?}: expected the serial number in hex")]
    SerialHex {
        /// The text given.
        text: String,
    },
    /// No LSC with this serial number is recorded.
    #[error("no LSC with serial {text} is recorded")]
    UnknownLsc {
        /// The serial, as given.
        text: String,
    },
    /// An LSC that could not be encoded as PEM.
    #[error("LSC {serial}: {error}")]
    Pem {
        /// The LSC's serial, hex.
        serial: String,
        /// What the PEM encoder reported.
        error: capf_lsc::der::pem::Error,
    },
    /// A time that is not RFC 3339.
    #[error("{field} {text:?}: expected RFC 3339 like 2030-01-01T00:00:00Z ({error})")]
    Rfc3339 {
        /// The field, as the caller names it (`--at`).
        field: String,
        /// The text given.
        text: String,
        /// What the parser reported.
        error: capf_lsc::der::Error,
    },
    /// The LDAP directory could not be reached, refused the bind, or failed the search:
    /// nothing was applied.
    #[error("{what}: {source}")]
    Directory {
        /// What was being done: `binding to URL as DN`, ...
        what: String,
        /// What ldap3 reported.
        source: Box<ldap3::LdapError>,
    },
    /// The TLS configuration for `ldaps` could not be built.
    #[error("the TLS configuration for ldaps: {source}")]
    DirectoryTls {
        /// What rustls reported.
        source: rustls::Error,
    },
    /// A directory configuration with a field that cannot be right.
    #[error("the directory configuration's {field} {reason}")]
    DirectoryConfig {
        /// The field: `url`, `bind_dn`, ...
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No directory configuration is stored, and none was given.
    #[error("no directory configuration is stored (capfctl ldap config set)")]
    NoDirectoryConfig,
    /// A device-name rule that is neither `ATTRIBUTE` nor `PREFIX+ATTRIBUTE`.
    #[error("--device-name {text:?}: expected an attribute (uid) or PREFIX+ATTRIBUTE (CSF+uid)")]
    DeviceNameRule {
        /// The text given.
        text: String,
    },
    /// A stored job whose parameters cannot be read (written by other code, or damaged).
    #[error("job {id}: its {kind} parameters cannot be read")]
    JobPayload {
        /// The job's number.
        id: i64,
        /// Its kind.
        kind: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// A stored job of a kind this code does not run.
    #[error("job {id}: unknown kind {kind:?}")]
    UnknownJobKind {
        /// The job's number.
        id: i64,
        /// Its kind.
        kind: String,
    },
    /// A CA chain fetched without authenticating the server (EST bootstrap) is to be trusted
    /// without the root's fingerprint confirmed.
    #[error(
        "the CA chain was fetched without authenticating the server: confirm its root with --fingerprint SHA256 (obtained from the CA out of band); nothing was added"
    )]
    BootstrapNeedsFingerprint,
    /// A CA chain fetched without authenticating the server holds no self-signed root.
    #[error(
        "the CA chain fetched without authenticating the server has no self-signed root to confirm; nothing was added"
    )]
    BootstrapNoRoot,
    /// The root of a CA chain fetched without authenticating the server is not the one the
    /// administrator confirmed.
    #[error(
        "the fetched root {subject} has SHA-256 fingerprint {actual}, not the {expected} given: nothing was added (the server may not be the CA)"
    )]
    BootstrapRootMismatch {
        /// The fetched root's subject.
        subject: String,
        /// Its fingerprint.
        actual: String,
        /// The fingerprint the administrator gave.
        expected: String,
    },
    /// capf-trust failed or refused (a store file that cannot be written, say).
    #[error(transparent)]
    Trust(Box<capf_trust::Error>),
    /// A trust store directory that cannot be read.
    #[error("loading {}", dir.display())]
    LoadTrustStore {
        /// The store directory.
        dir: PathBuf,
        /// What capf-trust reported.
        #[source]
        source: Box<capf_trust::Error>,
    },
    /// A certificate file capf-trust cannot read.
    #[error("{}", path.display())]
    TrustFile {
        /// The file.
        path: PathBuf,
        /// What capf-trust reported.
        #[source]
        source: Box<capf_trust::Error>,
    },
    /// One certificate of a file that does not parse.
    #[error("{}: certificate {number}", path.display())]
    TrustFileCertificate {
        /// The file.
        path: PathBuf,
        /// Which certificate, from 1.
        number: usize,
        /// What capf-trust reported.
        #[source]
        source: Box<capf_trust::Error>,
    },
    /// A file that must hold exactly one certificate.
    #[error("{}: expected one certificate, found {found}", path.display())]
    NotOneCertificate {
        /// The file.
        path: PathBuf,
        /// How many it holds.
        found: usize,
    },
    /// An upload of which the trust store's rules rejected some certificates (the accepted
    /// ones are saved).
    #[error(
        "{}: {rejected} of {total} certificate(s) rejected, first: {first}",
        path.display()
    )]
    TrustRejected {
        /// The file uploaded.
        path: PathBuf,
        /// How many were rejected.
        rejected: usize,
        /// How many the file held.
        total: usize,
        /// The first rejected certificate's subject and the rule it broke.
        first: String,
    },
    /// A fingerprint prefix with too few hex digits.
    #[error(
        "fingerprint {text:?}: expected at least {} hex digits",
        capf_trust::MIN_FINGERPRINT_PREFIX
    )]
    FingerprintPrefix {
        /// The text given.
        text: String,
    },
    /// No certificate of the purpose has this fingerprint.
    #[error("{purpose}: no certificate with fingerprint {text}")]
    NoSuchFingerprint {
        /// The purpose.
        purpose: capf_trust::Purpose,
        /// The fingerprint, as given.
        text: String,
    },
    /// A fingerprint prefix that matches several certificates.
    #[error("{purpose}: fingerprint prefix {text} matches {matches} certificates")]
    AmbiguousFingerprint {
        /// The purpose.
        purpose: capf_trust::Purpose,
        /// The prefix, as given.
        text: String,
        /// How many certificates it matches.
        matches: usize,
    },
    /// A certificate that does not chain to the purpose's anchors.
    #[error("{}: not trusted by {purpose}: {failure}", path.display())]
    Untrusted {
        /// The certificate file.
        path: PathBuf,
        /// The purpose.
        purpose: capf_trust::Purpose,
        /// The first rule the chain broke.
        failure: capf_trust::ChainFailure,
    },
    /// A file that could not be read, named as the user gave it (`--issuer capf.pem`).
    #[error("reading {file}")]
    ReadFile {
        /// The file, with the flag that named it.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate, key or public-key file capf-lsc refused, named as the user gave it.
    #[error("{file}")]
    CertificateFile {
        /// The file, with the flag that named it.
        file: String,
        /// What capf-lsc reported.
        #[source]
        source: Box<capf_lsc::Error>,
    },
    /// A file that is not a valid CAPF certificate (every problem, with the rule).
    #[error(
        "{}: not a valid CAPF certificate: {} ({})",
        path.display(),
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        capf_lsc::CAPF_PROFILE_RULE
    )]
    NotCapfCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What the profile check found.
        problems: Vec<capf_lsc::CapfCertificateProblem>,
    },
    /// A CAPF identifier that is not 8 hex digits.
    #[error("--capf-id: {text:?} is not 8 hex digits")]
    CapfId {
        /// The text given.
        text: String,
    },
    /// An output file that exists already.
    #[error("{} already exists; it is never overwritten", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A CAPF certificate subject that cannot be encoded.
    #[error("subject")]
    Subject {
        /// What capf-lsc reported.
        #[source]
        source: Box<capf_lsc::Error>,
    },
    /// The CAPF key could not be generated.
    #[error("generating the CAPF key")]
    GenerateKey {
        /// What capf-lsc reported.
        #[source]
        source: Box<capf_lsc::Error>,
    },
    /// A private key that is not the certificate's.
    #[error("--key does not match the public key of --cert")]
    KeyMismatch,
    /// Hex text with a character that is not a hex digit.
    #[error("hex input: {found:?} is not a hex digit (digit {position})")]
    HexDigit {
        /// The character.
        found: char,
        /// Its position among the digits (separators not counted), from 0.
        position: usize,
    },
    /// Hex text with an odd number of digits.
    #[error("hex input: odd number of hex digits ({digits})")]
    HexOddLength {
        /// How many digits it has.
        digits: usize,
    },
    /// A password shorter or longer than the rule allows (the password is never shown).
    #[error("a password must be {min} to {max} characters; the one given has {len}")]
    PasswordLength {
        /// Its length in characters.
        len: usize,
        /// The fewest allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// Hashing a password failed (Argon2id refused its parameters or the salt).
    #[error("hashing the password: {reason}")]
    PasswordHash {
        /// What the argon2 crate reported.
        reason: String,
    },
}

impl From<capf_trust::Error> for Error {
    fn from(e: capf_trust::Error) -> Self {
        Error::Trust(Box::new(e))
    }
}

// Lower errors are boxed, so a `Result` of this crate stays small.
impl From<capf_store::Error> for Error {
    fn from(e: capf_store::Error) -> Self {
        Error::Store(Box::new(e))
    }
}

impl From<capf_lsc::Error> for Error {
    fn from(e: capf_lsc::Error) -> Self {
        Error::Lsc(Box::new(e))
    }
}

impl From<capf_ca::Error> for Error {
    fn from(e: capf_ca::Error) -> Self {
        Error::Ca(Box::new(e))
    }
}
