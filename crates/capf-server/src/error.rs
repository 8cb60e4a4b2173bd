//! The crate's one error type.

use std::path::PathBuf;

/// What went wrong in the CAPF service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file (the CAPF certificate or key) could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
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
    #[error("CAPF certificate {} fails the CAPF certificate profile: {problems}", path.display())]
    CapfProfile {
        /// The certificate file.
        path: PathBuf,
        /// The problems, in words.
        problems: String,
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
    /// A blocking task (a store call) did not finish.
    #[error("{context}: background task failed: {detail}")]
    Task {
        /// What the task was doing.
        context: &'static str,
        /// Why it ended.
        detail: String,
    },
    /// The operating system's random number generator failed (session ids come from it).
    #[error("random session id: {0}")]
    Random(getrandom::Error),
}
