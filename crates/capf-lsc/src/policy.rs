//! Which key to ask a phone for, and the constraints of an online CA.

use x509_cert::Certificate;
use x509_cert::ext::pkix::KeyUsage;

use crate::keys::{Curve, KeySpec, RsaBits};
use crate::{Error, cert_info};

/// The CAPF "Key Order" setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyOrder {
    /// Always ask for an RSA key (UCM's default).
    #[default]
    RsaOnly,
    /// Always ask for an EC key; a client that cannot do EC gets no certificate.
    EcOnly,
    /// Ask for EC first; after the phone reported an EC key-generation failure, or for a
    /// client that may not be asked for EC, ask for RSA.
    EcPreferredRsaBackup,
}

/// The key settings of a certificate operation: key order, RSA size and EC curve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyPolicy {
    /// The key order.
    pub order: KeyOrder,
    /// The RSA size to ask for.
    pub rsa: RsaBits,
    /// The curve to ask for.
    pub curve: Curve,
}

/// UCM's defaults: RSA only, 2048 bits (P-256 when EC is chosen).
impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            order: KeyOrder::RsaOnly,
            rsa: RsaBits::B2048,
            curve: Curve::P256,
        }
    }
}

impl KeyPolicy {
    /// The key to ask for in this session's single KEY_GEN_REQUEST.
    ///
    /// `previous_ec_failure`: the phone reported an EC key-generation failure in an earlier
    /// session of this operation. `ec_allowed`: this client may be asked for an EC key, as its
    /// session says (capf-session's `Authentication::can_request_ec` owns that rule).
    /// `None` means no acceptable key can be asked for (EC only, EC not allowed).
    pub fn key_to_request(&self, previous_ec_failure: bool, ec_allowed: bool) -> Option<KeySpec> {
        match self.order {
            KeyOrder::RsaOnly => Some(KeySpec::Rsa(self.rsa)),
            // EC only: a phone that failed once is asked again, there is nothing else to ask.
            KeyOrder::EcOnly => ec_allowed.then_some(KeySpec::Ec(self.curve)),
            KeyOrder::EcPreferredRsaBackup => {
                if ec_allowed && !previous_ec_failure {
                    Some(KeySpec::Ec(self.curve))
                } else {
                    Some(KeySpec::Rsa(self.rsa))
                }
            }
        }
    }
}

/// The guide's constraints when an online CA (EST, Microsoft AD CS) signs LSCs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnlineCaPolicy;

impl OnlineCaPolicy {
    /// The guide: "Online CA does not support CAPF operations with ECDSA key sizes."
    ///
    /// # Errors
    /// [`Error::OnlineCaRejectsEc`] for an EC key spec.
    pub fn check_key(&self, spec: KeySpec) -> Result<(), Error> {
        if spec.is_ec() {
            Err(Error::OnlineCaRejectsEc { spec })
        } else {
            Ok(())
        }
    }

    /// The guide: a key order that may ask a phone for an EC key (EC only, EC preferred) cannot
    /// be served by an Online CA.
    ///
    /// # Errors
    /// [`Error::OnlineCaRejectsEc`] naming the EC key the order would ask for.
    pub fn check_key_policy(&self, policy: &KeyPolicy) -> Result<(), Error> {
        match policy.order {
            KeyOrder::RsaOnly => Ok(()),
            _ => self.check_key(KeySpec::Ec(policy.curve)),
        }
    }

    /// The guide: an online-CA LSC without KeyUsage "Digital signature" and "key
    /// encipherment" makes device secure registration fail.
    ///
    /// # Errors
    /// [`Error::OnlineCaKeyUsage`] when either bit (or the extension) is missing.
    pub fn check_lsc(&self, lsc: &Certificate) -> Result<(), Error> {
        let ku: Option<KeyUsage> = cert_info::extension(lsc)?;
        match ku {
            Some(ku) if ku.digital_signature() && ku.key_encipherment() => Ok(()),
            _ => Err(Error::OnlineCaKeyUsage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_preferred_falls_back_to_rsa_after_failure_or_for_clients_without_ec() {
        let p = KeyPolicy {
            order: KeyOrder::EcPreferredRsaBackup,
            rsa: RsaBits::B3072,
            curve: Curve::P384,
        };
        assert_eq!(
            p.key_to_request(false, true),
            Some(KeySpec::Ec(Curve::P384))
        );
        assert_eq!(
            p.key_to_request(true, true),
            Some(KeySpec::Rsa(RsaBits::B3072))
        );
        assert_eq!(
            p.key_to_request(false, false),
            Some(KeySpec::Rsa(RsaBits::B3072))
        );
    }

    #[test]
    fn rsa_only_and_ec_only_never_switch() {
        let rsa = KeyPolicy::default();
        for (fail, ec) in [(false, false), (false, true), (true, false), (true, true)] {
            assert_eq!(
                rsa.key_to_request(fail, ec),
                Some(KeySpec::Rsa(RsaBits::B2048))
            );
        }
        let ec = KeyPolicy {
            order: KeyOrder::EcOnly,
            ..KeyPolicy::default()
        };
        assert_eq!(
            ec.key_to_request(true, true),
            Some(KeySpec::Ec(Curve::P256))
        );
        assert_eq!(ec.key_to_request(false, false), None);
    }

    #[test]
    fn online_ca_rejects_ec_keys() {
        assert!(
            OnlineCaPolicy
                .check_key(KeySpec::Rsa(RsaBits::B2048))
                .is_ok()
        );
        assert!(matches!(
            OnlineCaPolicy.check_key(KeySpec::Ec(Curve::P256)),
            Err(Error::OnlineCaRejectsEc { .. })
        ));
    }
}

/// What the server does with SUDI data a phone sends with its certificate (spec 6.4), the
/// run-time setting `sudi_policy`. Named once here, the level below both the store (which
/// keeps the setting) and capf-trust (which applies it).
///
/// A phone that sends no SUDI data is judged on its LSC or MIC alone under either policy
/// (SUDI_DATA is optional, spec 6.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SudiPolicy {
    /// `require`: SUDI data, when sent, must verify (its certificate chains to
    /// CAPF-trust-SUDI and both signatures cover this session), or the session is refused.
    /// The default: a claim the server cannot check is never passed over in silence.
    #[default]
    Require,
    /// `when-trusted`: SUDI data is checked only when its certificate's issuer is in
    /// CAPF-trust-SUDI, and ignored (logged) otherwise; one from a trusted root that fails a
    /// check still refuses the session. For phones that send SUDI data built from their own
    /// LSC (the public Python phone capfc does by default).
    WhenTrusted,
}

impl SudiPolicy {
    /// Every policy, in the order of its names.
    pub const ALL: [SudiPolicy; 2] = [SudiPolicy::Require, SudiPolicy::WhenTrusted];

    /// The policy's name: `require`, `when-trusted`.
    pub fn as_str(self) -> &'static str {
        match self {
            SudiPolicy::Require => "require",
            SudiPolicy::WhenTrusted => "when-trusted",
        }
    }
}

impl core::fmt::Display for SudiPolicy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SUDI policy name that is neither `require` nor `when-trusted`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownSudiPolicy(pub String);

impl core::fmt::Display for UnknownSudiPolicy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SUDI policy {:?}: expected `require` or `when-trusted`",
            self.0
        )
    }
}

impl std::error::Error for UnknownSudiPolicy {}

impl core::str::FromStr for SudiPolicy {
    type Err = UnknownSudiPolicy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        SudiPolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| UnknownSudiPolicy(name.to_owned()))
    }
}

#[cfg(test)]
mod sudi_policy_tests {
    use super::*;

    #[test]
    fn sudi_policy_names_round_trip_and_require_is_the_default() {
        for p in SudiPolicy::ALL {
            assert_eq!(p.as_str().parse::<SudiPolicy>(), Ok(p));
        }
        assert_eq!(SudiPolicy::default(), SudiPolicy::Require);
        assert!("Require".parse::<SudiPolicy>().is_err());
    }
}

/// The service parameter "Certificate Issuer to Endpoint": who signs a phone's LSC.
///
/// The guide names three running modes: CAPF signs the LSC itself (the default), an online CA
/// signs it automatically, or an offline CA signs the endpoint CSRs an administrator exports
/// (the LSC is then imported). One name table: [`CertificateIssuer::as_str`] (stored, typed on
/// the command line) and [`CertificateIssuer::label`] (the guide's words), both parsed by
/// `FromStr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateIssuer {
    /// `capf`: Cisco Certificate Authority Proxy Function signs the LSC itself.
    #[default]
    Capf,
    /// `online-ca`: an external CA signs the endpoint CSR automatically.
    OnlineCa,
    /// `offline-ca`: the administrator exports the endpoint CSRs, has an external CA sign them
    /// and imports the certificates.
    OfflineCa,
}

impl CertificateIssuer {
    /// Every mode, in the guide's order.
    pub const ALL: [CertificateIssuer; 3] = [
        CertificateIssuer::Capf,
        CertificateIssuer::OnlineCa,
        CertificateIssuer::OfflineCa,
    ];

    /// The mode's name: `capf`, `online-ca`, `offline-ca`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateIssuer::Capf => "capf",
            CertificateIssuer::OnlineCa => "online-ca",
            CertificateIssuer::OfflineCa => "offline-ca",
        }
    }

    /// The guide's words: "Cisco Certificate Authority Proxy Function", "Online CA",
    /// "Offline CA".
    pub fn label(self) -> &'static str {
        match self {
            CertificateIssuer::Capf => "Cisco Certificate Authority Proxy Function",
            CertificateIssuer::OnlineCa => "Online CA",
            CertificateIssuer::OfflineCa => "Offline CA",
        }
    }

    /// Whether an external CA signs (an endpoint CSR is needed): Online CA or Offline CA.
    pub fn is_external(self) -> bool {
        !matches!(self, CertificateIssuer::Capf)
    }
}

impl core::fmt::Display for CertificateIssuer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Certificate Issuer to Endpoint name that is none of the modes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCertificateIssuer(pub String);

impl core::fmt::Display for UnknownCertificateIssuer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "certificate issuer {:?}: expected `capf`, `online-ca` or `offline-ca`",
            self.0
        )
    }
}

impl std::error::Error for UnknownCertificateIssuer {}

/// Parses [`CertificateIssuer::as_str`] exactly, or [`CertificateIssuer::label`] ignoring case.
impl core::str::FromStr for CertificateIssuer {
    type Err = UnknownCertificateIssuer;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        CertificateIssuer::ALL
            .into_iter()
            .find(|m| m.as_str() == name || m.label().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownCertificateIssuer(name.to_owned()))
    }
}

/// The guide's "Online CA Type": which protocol the Online CA speaks. One name table:
/// [`OnlineCaType::as_str`] (stored, typed on the command line) and [`OnlineCaType::label`]
/// (the guide's words), both parsed by `FromStr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OnlineCaType {
    /// `est`: "EST Supported CA", RFC 7030 (from 14SU2).
    Est,
    /// `microsoft`: "Microsoft CA", AD CS through its Web Enrollment pages.
    Microsoft,
}

impl OnlineCaType {
    /// Every type, in the guide's order.
    pub const ALL: [OnlineCaType; 2] = [OnlineCaType::Est, OnlineCaType::Microsoft];

    /// The type's name: `est`, `microsoft`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnlineCaType::Est => "est",
            OnlineCaType::Microsoft => "microsoft",
        }
    }

    /// The guide's words: "EST Supported CA", "Microsoft CA".
    pub fn label(self) -> &'static str {
        match self {
            OnlineCaType::Est => "EST Supported CA",
            OnlineCaType::Microsoft => "Microsoft CA",
        }
    }
}

impl core::fmt::Display for OnlineCaType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An Online CA Type name that is none of the types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownOnlineCaType(pub String);

impl core::fmt::Display for UnknownOnlineCaType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "online CA type {:?}: expected `est` (EST Supported CA) or `microsoft` (Microsoft CA)",
            self.0
        )
    }
}

impl std::error::Error for UnknownOnlineCaType {}

/// Parses [`OnlineCaType::as_str`] exactly, or [`OnlineCaType::label`] ignoring case.
impl core::str::FromStr for OnlineCaType {
    type Err = UnknownOnlineCaType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        OnlineCaType::ALL
            .into_iter()
            .find(|t| t.as_str() == name || t.label().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownOnlineCaType(name.to_owned()))
    }
}

#[cfg(test)]
mod online_ca_type_tests {
    use super::*;

    #[test]
    fn online_ca_type_names_and_labels_round_trip() {
        for t in OnlineCaType::ALL {
            assert_eq!(t.as_str().parse::<OnlineCaType>(), Ok(t));
            assert_eq!(t.label().parse::<OnlineCaType>(), Ok(t));
            assert_eq!(t.label().to_lowercase().parse::<OnlineCaType>(), Ok(t));
        }
        assert_eq!("EST Supported CA".parse(), Ok(OnlineCaType::Est));
        assert!("ms".parse::<OnlineCaType>().is_err());
    }
}

#[cfg(test)]
mod certificate_issuer_tests {
    use super::*;

    #[test]
    fn certificate_issuer_names_and_labels_round_trip_and_capf_is_the_default() {
        for m in CertificateIssuer::ALL {
            assert_eq!(m.as_str().parse::<CertificateIssuer>(), Ok(m));
            assert_eq!(m.label().parse::<CertificateIssuer>(), Ok(m));
            assert_eq!(m.label().to_uppercase().parse::<CertificateIssuer>(), Ok(m));
        }
        assert_eq!(CertificateIssuer::default(), CertificateIssuer::Capf);
        assert!("offline".parse::<CertificateIssuer>().is_err());
        assert!(!CertificateIssuer::Capf.is_external());
        assert!(CertificateIssuer::OfflineCa.is_external());
    }
}
