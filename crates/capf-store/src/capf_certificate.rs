//! [`CapfCertificate`]: the CAPF certificate a store holds for a cluster of nodes (PostgreSQL),
//! so every node serves the same one (UCM 14: one CAPF certificate per cluster).

use core::fmt;
use std::time::SystemTime;

use crate::Secret;

/// The cluster's CAPF certificate as stored: the certificate (PEM), its private key (PKCS#8
/// PEM, unsealed), and the generation, raised by every replacement.
#[derive(Clone, PartialEq, Eq)]
pub struct CapfCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: Secret,
    /// Raised by one at every replacement: a node reloads when it sees a new one.
    pub generation: i64,
    /// When it was stored.
    pub updated_at: SystemTime,
    /// The node (or tool) that stored it.
    pub updated_by: String,
}

/// Shows the certificate's generation and origin, never the key.
impl fmt::Debug for CapfCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapfCertificate")
            .field("generation", &self.generation)
            .field("updated_by", &self.updated_by)
            .finish_non_exhaustive()
    }
}
