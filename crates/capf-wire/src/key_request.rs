//! The key pair a server asks a phone for, as KEY_GEN_REQUEST carries it (spec 5.4 and 5.5).

use crate::codes::{Curve, KeyType};
use crate::message::KeyGenRequest;

/// The key pair a server asks a phone to generate (KEY_GEN_REQUEST, spec 5.4 and 5.5).
///
/// Here, below both capf-session (which sends and reads it) and capf-lsc (whose `KeySpec`
/// converts to and from it), so that the mapping between the two has one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRequest {
    /// RSA with this modulus size: KEY_SIZE and KEY_TYPE=0, as capfd sends it.
    Rsa(u16),
    /// An EC key on this curve: KEY_TYPE=1 and CURVE.
    Ec(Curve),
    /// RSA with KEY_SIZE only and no KEY_TYPE, as UCM asks Jabber-style (version 2) clients
    /// (spec 8.11). A phone reads a missing KEY_TYPE as RSA.
    RsaKeySizeOnly(u16),
}

impl KeyRequest {
    /// The key type (RSA for both RSA forms).
    pub fn key_type(self) -> KeyType {
        match self {
            KeyRequest::Rsa(_) | KeyRequest::RsaKeySizeOnly(_) => KeyType::RSA,
            KeyRequest::Ec(_) => KeyType::EC,
        }
    }

    /// The RSA modulus size, for either RSA form.
    pub fn rsa_bits(self) -> Option<u16> {
        match self {
            KeyRequest::Rsa(bits) | KeyRequest::RsaKeySizeOnly(bits) => Some(bits),
            KeyRequest::Ec(_) => None,
        }
    }

    /// The KEY_GEN_REQUEST message asking for this key.
    pub fn to_message(self) -> KeyGenRequest<'static> {
        match self {
            KeyRequest::Rsa(bits) => KeyGenRequest::rsa(bits),
            KeyRequest::Ec(curve) => KeyGenRequest::ec(curve),
            KeyRequest::RsaKeySizeOnly(bits) => KeyGenRequest::rsa_key_size_only(bits),
        }
    }
}
