//! Wire numbers as open newtypes with named constants (spec sections 3, 4 and 5).
//!
//! Unknown values are representable, so they survive a decode/encode round trip; whether a value
//! is acceptable is the decoder's (or the session's) decision, not the type's.

use core::fmt;

macro_rules! wire_u8 {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $konst:ident = $value:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub u8);

        impl $name {
            $( $(#[$vmeta])* pub const $konst: Self = Self($value); )*

            /// The spec's name for this value, or `None` for a value the spec does not name.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($konst)), )*
                    _ => None,
                }
            }

            /// Whether the spec names this value.
            pub const fn is_known(self) -> bool {
                self.name().is_some()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value.0
            }
        }
    };
}

wire_u8! {
    /// The command byte of the header (spec section 3). Codes 1-23 are named; the strict decoder
    /// rejects every other code. RETRY_LATER and SIGN_CERT_* carry the project's endpoint-CSR
    /// extension (spec section 16).
    Command {
        /// Server -> phone, first message of every session.
        AUTH_REQUEST = 1,
        /// Phone -> server: who the phone is and its proof.
        AUTH_RESPONSE = 2,
        /// Server -> phone: generate a key pair (RSA size or EC curve).
        KEY_GEN_REQUEST = 3,
        /// Phone -> server: the new public key, or a failure reason.
        KEY_GEN_RESPONSE = 4,
        /// Named only (direction and body unknown).
        ENCRYPT_RESPONSE = 5,
        /// Named only.
        ENCRYPT_REQUEST = 6,
        /// Named only.
        DECRYPT_REQUEST = 7,
        /// Named only.
        DECRYPT_RESPONSE = 8,
        /// Server -> phone: the issued LSC.
        STORE_CERT_REQUEST = 9,
        /// Phone -> server: whether the LSC was stored.
        STORE_CERT_RESPONSE = 10,
        /// Server -> phone: send your certificate back (Troubleshoot).
        FETCH_CERT_REQUEST = 11,
        /// Phone -> server: the certificate, or a failure reason.
        FETCH_CERT_RESPONSE = 12,
        /// Server -> phone: delete your LSC.
        DELETE_CERT_REQUEST = 13,
        /// Phone -> server: whether the LSC was deleted.
        DELETE_CERT_RESPONSE = 14,
        /// Server -> phone: the session is over, with a REASON.
        END_SESSION = 15,
        /// Server -> phone: come back after RETRY_DELAY seconds; END_SESSION 1 follows (project
        /// extension, spec 16).
        RETRY_LATER = 16,
        /// Phone -> server: key generation has started.
        REQUEST_IN_PROGRESS = 17,
        /// Named only.
        STATUS_REQUEST = 18,
        /// Named only.
        STATUS_RESPONSE = 19,
        /// Named only.
        ABORT_REQUEST = 20,
        /// Named only.
        ABORT_RESPONSE = 21,
        /// Server -> phone: sign this CSR_INFO (project extension, spec 16).
        SIGN_CERT_REQUEST = 22,
        /// Phone -> server: REASON 1 with CSR_SIGNATURE, or another REASON alone (project
        /// extension, spec 16).
        SIGN_CERT_RESPONSE = 23,
    }
}

impl Command {
    /// Whether the command is one of the recorded ones with a typed message (spec section 3):
    /// the others are only named, and decode as raw messages.
    pub const fn is_recorded(self) -> bool {
        matches!(self.0, 1..=4 | 9..=15 | 17)
    }

    /// Whether the command belongs to the project's endpoint-CSR extension (spec section 16):
    /// RETRY_LATER, SIGN_CERT_REQUEST and SIGN_CERT_RESPONSE, which have typed messages too.
    pub const fn is_project_extension(self) -> bool {
        matches!(self.0, 16 | 22 | 23)
    }

    /// Whether the command decodes to a typed message rather than a raw one: the recorded
    /// commands and the project extension's.
    pub const fn has_typed_message(self) -> bool {
        self.is_recorded() || self.is_project_extension()
    }
}

wire_u8! {
    /// An element tag (spec section 4.1). Tags 1-13 and 16-22 are named (21 and 22, and the
    /// layout of 12, are the project's endpoint-CSR extension, spec 16); 0, 14, 15 and 23-255
    /// are not assigned, and the strict decoder rejects them.
    Tag {
        /// u8, [`Reason`].
        REASON = 1,
        /// NUL-terminated text (inferred).
        REASON_INFO = 2,
        /// u8, [`CertificateType`].
        CERTIFICATE_TYPE = 3,
        /// 5-byte inner header + DER certificate (spec 4.3).
        CERTIFICATE = 4,
        /// Named only; kept opaque.
        CERTIFICATE_ID = 5,
        /// Opaque signature over device name + NUL + certificate DER (spec 6.2).
        SIGNED_DATA = 6,
        /// u8 protocol version.
        VERSION = 7,
        /// u8, [`AuthType`].
        AUTH_TYPE = 8,
        /// DER SubjectPublicKeyInfo (spec 4.5).
        PUBLIC_KEY = 9,
        /// u16 RSA modulus bits.
        KEY_SIZE = 10,
        /// NUL-terminated authentication string.
        PASSWORD = 11,
        /// u32 seconds until the phone comes back, 1-604800 (project extension, spec 16).
        RETRY_DELAY = 12,
        /// NUL-terminated device name.
        DEVICE_NAME = 13,
        /// Three length-prefixed blocks (spec 6.4).
        SUDI_DATA = 16,
        /// u8, [`KeyType`].
        KEY_TYPE = 17,
        /// u8, [`Curve`].
        CURVE = 18,
        /// Named only; kept opaque.
        DIGEST_TYPE = 19,
        /// Hash id + u16 length + signature (spec 6.3).
        SHA2_SIGNED_DATA = 20,
        /// DER PKCS#10 CertificationRequestInfo the phone signs (project extension, spec 16).
        CSR_INFO = 21,
        /// The phone's signature over CSR_INFO (project extension, spec 16).
        CSR_SIGNATURE = 22,
    }
}

wire_u8! {
    /// REASON values (spec 5.1). Unknown values are never an error.
    Reason {
        /// No operation pending; also ends every fetch.
        NO_ACTION = 0,
        /// Operation finished; from a phone: success (and the AUTH_RESPONSE marker).
        UPDATE_CERTIFICATE = 1,
        /// Catch-all refusal (malformed, failed authentication, ...); from a phone: failure.
        INVALID_ELEMENT = 7,
        /// The DEVICE_NAME is not known to the server.
        UNKNOWN_DEVICE = 9,
    }
}

wire_u8! {
    /// AUTH_TYPE values (spec 5.2). Unknown values are never an error.
    AuthType {
        /// What capfd always sends.
        NONE = 0,
        /// By Authentication String.
        PASSWORD = 1,
        /// By Null String.
        NO_PASSWORD = 2,
        /// By Existing Certificate (Precedence to LSC).
        LSC = 3,
        /// By Existing Certificate (Precedence to MIC).
        MIC = 4,
    }
}

wire_u8! {
    /// KEY_TYPE values (spec 5.4).
    KeyType {
        /// RSA, with KEY_SIZE.
        RSA = 0,
        /// Elliptic curve, with CURVE.
        EC = 1,
    }
}

wire_u8! {
    /// CURVE values (spec 5.5). Value 0 is P-256, not secp256k1.
    Curve {
        /// NIST P-256.
        SECP256R1 = 0,
        /// NIST P-384.
        SECP384R1 = 1,
        /// NIST P-521.
        SECP521R1 = 2,
    }
}

wire_u8! {
    /// CERTIFICATE_TYPE values and the CERTIFICATE inner type byte (spec 4.4, 5.7).
    CertificateType {
        /// Locally Significant Certificate.
        LSC = 1,
        /// Manufacturer Installed Certificate.
        MIC = 2,
    }
}

wire_u8! {
    /// Hash identifiers inside SHA2_SIGNED_DATA and SUDI_DATA (spec 5.6).
    HashAlgorithm {
        /// SHA-1 (lead byte of the second SUDI block).
        SHA1 = 1,
        /// SHA-256 (defined, never used).
        SHA256 = 2,
        /// SHA-512 (SHA2_SIGNED_DATA and the third SUDI block).
        SHA512 = 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_value_of_the_spec_tables_and_none_other() {
        let commands = (0..=255u8).filter(|c| Command(*c).is_known()).count();
        assert_eq!(commands, 23);
        let tags: alloc::vec::Vec<u8> = (0..=255u8).filter(|t| Tag(*t).is_known()).collect();
        assert_eq!(
            tags,
            [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 21, 22
            ]
        );
        assert_eq!(
            Curve(0).name(),
            Some("SECP256R1"),
            "0 is P-256, not secp256k1 (spec 5.5)"
        );
    }

    #[test]
    fn unknown_values_are_kept_and_shown_with_their_number() {
        assert_eq!(alloc::format!("{}", Reason(42)), "Reason(42)");
        assert_eq!(u8::from(Reason::from(42)), 42);
        assert_eq!(
            alloc::format!("{}", Reason::UNKNOWN_DEVICE),
            "UNKNOWN_DEVICE"
        );
    }

    #[test]
    fn only_recorded_commands_have_typed_messages() {
        let recorded: alloc::vec::Vec<u8> =
            (0..=255u8).filter(|c| Command(*c).is_recorded()).collect();
        assert_eq!(recorded, [1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15, 17]);
        let extension: alloc::vec::Vec<u8> = (0..=255u8)
            .filter(|c| Command(*c).is_project_extension())
            .collect();
        assert_eq!(extension, [16, 22, 23]);
        let typed = (0..=255u8)
            .filter(|c| Command(*c).has_typed_message())
            .count();
        assert_eq!(typed, 15);
    }
}
