//! The crate's one error type.

use std::path::PathBuf;
use std::sync::Arc;

/// What went wrong in the CAPF service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A log format that does not exist (`--log-format`).
    #[error("log format {given:?}: expected one of text, json")]
    LogFormat {
        /// The name given.
        given: String,
    },
    /// A configuration value outside its allowed range ([`crate::Config::validate`]).
    #[error("configuration: {key} = {value} is out of range: allowed {allowed}")]
    Config {
        /// The configuration key, as capfd's configuration file names it.
        key: &'static str,
        /// The value given.
        value: String,
        /// The allowed range, such as "1 to 300 s".
        allowed: String,
    },
    /// A file (the CAPF certificate or key) could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file (the CAPF certificate or key) could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CAPF certificate or key is unusable.
    #[error("CAPF certificate {}: {source}", path.display())]
    Identity {
        /// The certificate file.
        path: PathBuf,
        /// What capf-lsc found.
        #[source]
        source: capf_lsc::Error,
    },
    /// The CAPF certificate breaks the profile phones require (CA:TRUE pathlen:0, KeyUsage
    /// digitalSignature + keyCertSign, valid now): from 14SU2 TLS fails without it.
    #[error(
        "CAPF certificate {} fails the CAPF certificate profile: {}",
        path.display(),
        Problems(problems)
    )]
    CapfProfile {
        /// The certificate file.
        path: PathBuf,
        /// What capf-lsc's profile check found.
        problems: Vec<capf_lsc::CapfCertificateProblem>,
    },
    /// The CAPF identity handed to the server holds no issuer key: it was taken out already
    /// ([`crate::CapfIdentity::take_issuer`]).
    #[error("CAPF key {}: the identity holds no issuer key", path.display())]
    NoIssuer {
        /// The key file.
        path: PathBuf,
    },
    /// `legacy_tls_listen` is set in a build without the `legacy-tls` feature.
    #[error(
        "legacy_tls_listen is set, but this build has no legacy TLS listener: build with the \
         `legacy-tls` feature"
    )]
    LegacyTlsNotBuilt,
    /// The legacy listener is on and the CAPF key is not RSA: 7900- and 9900-series phones
    /// know only RSA certificates.
    #[cfg(feature = "legacy-tls")]
    #[error(
        "CAPF certificate {}: the legacy TLS listener (legacy_tls_listen) needs an RSA CAPF \
         certificate and key, for 7900- and 9900-series phones",
        path.display()
    )]
    LegacyTlsNeedsRsa {
        /// The certificate file.
        path: PathBuf,
    },
    /// OpenSSL refused the CAPF certificate or key for the legacy listener.
    #[cfg(feature = "legacy-tls")]
    #[error("legacy TLS configuration from {}: {source}", path.display())]
    LegacyTls {
        /// The certificate file.
        path: PathBuf,
        /// OpenSSL's errors.
        #[source]
        source: openssl::error::ErrorStack,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration from {}: {source}", path.display())]
    Tls {
        /// The certificate file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The trust-store directory could not be read.
    #[error("trust store {}: {source}", path.display())]
    Trust {
        /// The directory.
        path: PathBuf,
        /// What capf-trust reported.
        #[source]
        source: capf_trust::Error,
    },
    /// A listening socket could not be opened.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The device store failed.
    #[error("device store, {context}: {source}")]
    Store {
        /// What the server was doing.
        context: &'static str,
        /// The store's error.
        #[source]
        source: capf_store::Error,
    },
    /// The issuer failed.
    #[error(transparent)]
    Issue(#[from] capf_ca::Error),
    /// The device store could not commit the batch a store call was part of (see
    /// [`capf_store::SessionStore::begin_batch`]): what it wrote may not be kept.
    #[error("device store, {context}: {source}")]
    StoreCommit {
        /// What the server was doing.
        context: &'static str,
        /// The store's error, shared by every call of the batch.
        #[source]
        source: Arc<capf_store::Error>,
    },
    /// A store call on the store thread did not answer (it panicked).
    #[error("{context}: the store call did not answer")]
    StoreCallLost {
        /// What the server was doing.
        context: &'static str,
        /// Tokio's error.
        #[source]
        source: tokio::sync::oneshot::error::RecvError,
    },
    /// A blocking task (a store call, a certificate check) did not finish.
    #[error("{context}: background task failed: {source}")]
    Task {
        /// What the task was doing.
        context: &'static str,
        /// Why it ended (it panicked or was cancelled).
        #[source]
        source: tokio::task::JoinError,
    },
    /// The queue of store calls was closed (the service is going away).
    #[error("{context}: the store's call queue is closed")]
    Closed {
        /// What the server was about to do.
        context: &'static str,
        /// Tokio's error.
        #[source]
        source: tokio::sync::AcquireError,
    },
    /// The operating system's random number generator failed (session ids come from it).
    #[error("random session id: {0}")]
    Random(#[source] getrandom::Error),
    /// The configuration file could not be read.
    #[error("reading {}", path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML of the expected keys.
    #[error("{}:{line}: {message}", path.display())]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The line at fault, from 1.
        line: usize,
        /// What is wrong, in toml's words.
        message: String,
    },
    /// A configuration value out of range.
    #[error("{key}")]
    ConfigValue {
        /// The key.
        key: &'static str,
        /// What capf-lsc reported.
        #[source]
        source: capf_lsc::Error,
    },
}

/// The profile problems, joined for the message.
struct Problems<'a>(&'a [capf_lsc::CapfCertificateProblem]);

impl std::fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
