//! What a cluster of nodes on one store (PostgreSQL) names: a node ([`NodeId`]), and the CAPF
//! certificate the store holds so every node serves the same one ([`CapfCertificate`]; UCM 14:
//! one CAPF certificate per cluster).

use core::fmt;
use std::time::SystemTime;

use crate::{Error, Secret};

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

/// A node's name in the cluster: 1 to 64 ASCII letters, digits, `.`, `_` or `-`. Attempts in
/// progress are leased to it; the audit names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// The name, checked.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] (key `node`) for a name that breaks the rule.
    pub fn new(name: &str) -> Result<NodeId, Error> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(NodeId(name.to_owned()))
        } else {
            Err(Error::InvalidSetting {
                key: "node",
                value: name.chars().take(64).collect(),
            })
        }
    }

    /// The host name and the process id, such as `capf1-4242`: unique while both run, and a
    /// restarted node is a new node (its old attempts go back to pending when their lease runs
    /// out, or at once when it is given its old name with [`NodeId::new`]).
    pub fn default_for_process() -> NodeId {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            .take(48)
            .collect();
        let host = if host.is_empty() {
            "node".to_owned()
        } else {
            host
        };
        NodeId(format!("{host}-{}", std::process::id()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
