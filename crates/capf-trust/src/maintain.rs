//! Keeping a store directory in step with a [`TrustStore`]: saving what an upload accepted,
//! finding a certificate by a fingerprint prefix (as an administrator types it), and which
//! certificates are MIC roots.

use std::fmt;

use crate::rules::CertVerdict;
use crate::scenarios::MIC_ROOTS;
use crate::{Error, Fingerprint, Purpose, StoreDir, TrustStore};

/// The fewest hex digits a fingerprint prefix may have: 8 digits (32 bits) make an
/// accidental match between certificates of one purpose unlikely.
pub const MIN_FINGERPRINT_PREFIX: usize = 8;

/// Whether a Common Name is one of the [`MIC_ROOTS`] (X.520 caseIgnoreMatch, surrounding
/// spaces ignored), the rule [`mic_root_advice`](crate::mic_root_advice) applies.
pub fn is_mic_root(common_name: &str) -> bool {
    MIC_ROOTS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(common_name.trim()))
}

/// The start of a SHA-256 fingerprint: at least [`MIN_FINGERPRINT_PREFIX`] hex digits,
/// colons ignored, any case (`AB:CD:EF:01` or `abcdef01...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintPrefix(String);

impl FingerprintPrefix {
    /// The prefix in `text`, or `None` when it has fewer than [`MIN_FINGERPRINT_PREFIX`] hex
    /// digits or anything other than hex digits and colons.
    pub fn parse(text: &str) -> Option<Self> {
        let digits: String = text
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        (digits.len() >= MIN_FINGERPRINT_PREFIX && digits.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(FingerprintPrefix(digits))
    }

    /// Whether `fingerprint` starts with this prefix.
    pub fn matches(&self, fingerprint: Fingerprint) -> bool {
        fingerprint.to_string().starts_with(&self.0)
    }
}

impl fmt::Display for FingerprintPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a fingerprint prefix matches among a purpose's certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixMatch {
    /// Exactly this certificate.
    One(Fingerprint),
    /// No certificate.
    None,
    /// This many certificates: the prefix is ambiguous.
    Several(usize),
}

impl TrustStore {
    /// The certificate of `purpose` whose fingerprint starts with `prefix`, if exactly one.
    pub fn find_by_prefix(&self, purpose: &Purpose, prefix: &FingerprintPrefix) -> PrefixMatch {
        let mut found = self
            .certificates(purpose)
            .iter()
            .map(crate::Cert::fingerprint)
            .filter(|fp| prefix.matches(*fp));
        match (found.next(), found.count()) {
            (None, _) => PrefixMatch::None,
            (Some(fp), 0) => PrefixMatch::One(fp),
            (Some(_), more) => PrefixMatch::Several(more + 1),
        }
    }
}

impl StoreDir {
    /// Saves every certificate an upload to `store` accepted (its verdicts), so the directory
    /// holds what the store holds; returns how many were written.
    ///
    /// # Errors
    /// As [`StoreDir::save`]; certificates saved before the failure stay saved (each file is
    /// written atomically).
    pub fn save_accepted(
        &self,
        store: &TrustStore,
        purpose: &Purpose,
        verdicts: &[CertVerdict],
    ) -> Result<usize, Error> {
        let mut saved = 0;
        for verdict in verdicts.iter().filter(|v| v.verdict.is_accepted()) {
            let held = store
                .certificates(purpose)
                .iter()
                .find(|c| c.fingerprint() == verdict.fingerprint);
            // An accepted certificate is in the store (a duplicate already was).
            if let Some(cert) = held {
                self.save(purpose, cert)?;
                saved += 1;
            }
        }
        Ok(saved)
    }
}
