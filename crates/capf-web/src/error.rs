//! The crate's one error, and the JSON error answer of the API.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What can go wrong starting or running the web administration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A socket operation failed.
    #[error("{action}")]
    Net {
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTPS certificate or key could not be used.
    #[error("the HTTPS certificate: {reason}")]
    Certificate {
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    /// Making the self-signed certificate failed.
    #[error(transparent)]
    SelfSigned(#[from] rcgen::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] capf_store::Error),
}

/// An API failure: a status and one line for the `{ "error": ... }` body. The line never holds
/// a secret (a password, a token, an authentication string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the server's log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

fn store_status(e: &capf_store::Error) -> Option<StatusCode> {
    use capf_store::Error as S;
    Some(match e {
        S::UnknownDevice { .. }
        | S::UnknownTemplate { .. }
        | S::UnknownCsr { .. }
        | S::UnknownAccount { .. }
        | S::UnknownLsc { .. }
        | S::UnknownJob { .. } => StatusCode::NOT_FOUND,
        S::DuplicateDevice { .. }
        | S::DuplicateAccount { .. }
        | S::DuplicateSerial { .. }
        | S::JobWrongState { .. }
        | S::LscWrongState { .. } => StatusCode::CONFLICT,
        S::BulkItem { source, .. } => return store_status(source),
        S::Database { .. } | S::Io { .. } | S::Corrupt { .. } | S::Damaged { .. } => return None,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    })
}

/// capf-admin's errors: an unknown thing (device, template, fingerprint, job) is 404, a duplicate or a job in the
/// wrong state 409, a broken rule 422, and a
/// failure of the store or the disk 500 with nothing of it shown (it is logged).
impl From<capf_admin::Error> for ApiError {
    fn from(e: capf_admin::Error) -> ApiError {
        use capf_admin::Error as A;
        let status = match &e {
            A::UnknownDevice { .. }
            | A::UnknownTemplate { .. }
            | A::UnknownLsc { .. }
            | A::NoSuchFingerprint { .. } => Some(StatusCode::NOT_FOUND),
            A::Store(s) => store_status(s),
            A::Io { .. }
            | A::CreateNew { .. }
            | A::OpenStore { .. }
            | A::NoStore { .. }
            | A::Random { .. }
            | A::PasswordHash { .. } => None,
            _ => Some(StatusCode::UNPROCESSABLE_ENTITY),
        };
        match status {
            Some(status) => ApiError::new(status, capf_admin::error_chain(&e)),
            None => {
                tracing::error!("web administration: {}", capf_admin::error_chain(&e));
                ApiError::internal()
            }
        }
    }
}

impl From<capf_store::Error> for ApiError {
    fn from(e: capf_store::Error) -> ApiError {
        ApiError::from(capf_admin::Error::from(e))
    }
}
