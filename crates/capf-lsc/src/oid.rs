//! Object identifiers used by the LSC and CAPF profiles (RFC 5280, RFC 5480, RFC 4055, RFC 5758).

use const_oid::ObjectIdentifier as Oid;

pub(crate) const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
pub(crate) const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub(crate) const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub(crate) const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");

pub(crate) const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub(crate) const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub(crate) const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub(crate) const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub(crate) const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub(crate) const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub(crate) const SECP521R1: Oid = Oid::new_unwrap("1.3.132.0.35");

pub(crate) const AT_COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");
pub(crate) const AT_COUNTRY: Oid = Oid::new_unwrap("2.5.4.6");
pub(crate) const AT_LOCALITY: Oid = Oid::new_unwrap("2.5.4.7");
pub(crate) const AT_STATE: Oid = Oid::new_unwrap("2.5.4.8");
pub(crate) const AT_ORGANIZATION: Oid = Oid::new_unwrap("2.5.4.10");
pub(crate) const AT_ORGANIZATIONAL_UNIT: Oid = Oid::new_unwrap("2.5.4.11");

pub(crate) const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
pub(crate) const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-kp-ipsecEndSystem: capfd and UCM put it in every LSC (spec section 10).
pub(crate) const KP_IPSEC_END_SYSTEM: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.5");
