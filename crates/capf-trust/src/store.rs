//! The trust stores, by purpose.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::rules::{self, CertVerdict, UploadContext};
use crate::{Cert, Error, Fingerprint, Purpose, Release};

/// Trust stores by purpose, in the shape of rustls' `RootCertStore`: [`add`](Self::add),
/// [`add_parsable_certificates`](Self::add_parsable_certificates), [`iter`](Self::iter),
/// [`len`](Self::len). Every way in applies the guide's rules for the configured [`Release`].
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    release: Release,
    stores: BTreeMap<Purpose, Vec<Cert>>,
}

/// The result of an upload: one verdict per certificate, in upload order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadReport {
    /// Where the certificates went.
    pub purpose: Purpose,
    /// One verdict per certificate.
    pub verdicts: Vec<CertVerdict>,
}

impl UploadReport {
    /// How many certificates were stored.
    pub fn accepted(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|v| v.verdict.is_accepted())
            .count()
    }

    /// How many certificates were rejected.
    pub fn rejected(&self) -> usize {
        self.verdicts.len() - self.accepted()
    }
}

/// Why [`TrustStore::add_parsable_certificates`] left a certificate out.
#[derive(Debug)]
#[non_exhaustive]
pub enum IgnoredReason {
    /// It did not parse.
    Unparsable(Error),
    /// A rule rejected it.
    Rejected(rules::Rule),
}

/// A certificate [`TrustStore::add_parsable_certificates`] left out.
#[derive(Debug)]
pub struct Ignored {
    /// Its position in the input (0-based).
    pub index: usize,
    /// Why.
    pub reason: IgnoredReason,
}

impl TrustStore {
    /// An empty store applying the rules of `release`.
    pub fn new(release: Release) -> Self {
        Self {
            release,
            stores: BTreeMap::new(),
        }
    }

    /// The release whose rules apply.
    pub fn release(&self) -> Release {
        self.release
    }

    /// Uploads one certificate to `purpose` (see [`upload`](Self::upload)).
    pub fn add(&mut self, purpose: &Purpose, cert: Cert, now: SystemTime) -> CertVerdict {
        let mut report = self.upload(purpose, vec![cert], now);
        // invariant: upload returns exactly one verdict per certificate given.
        report.verdicts.remove(0)
    }

    /// Uploads a certificate or a chain to `purpose`. Each certificate gets a verdict; the
    /// accepted ones are stored, the rejected ones are not (and nothing else changes).
    pub fn upload(
        &mut self,
        purpose: &Purpose,
        bundle: Vec<Cert>,
        now: SystemTime,
    ) -> UploadReport {
        let ctx = UploadContext {
            purpose,
            release: self.release,
            now,
        };
        let verdicts = {
            let existing = self.stores.get(purpose);
            let already =
                |fp: Fingerprint| existing.is_some_and(|s| s.iter().any(|c| c.fingerprint() == fp));
            rules::check_upload(&bundle, ctx, &already)
        };
        let store = self.stores.entry(purpose.clone()).or_default();
        for (cert, verdict) in bundle.into_iter().zip(&verdicts) {
            if verdict.verdict.is_accepted() {
                store.push(cert);
            }
        }
        if store.is_empty() {
            self.stores.remove(purpose);
        }
        UploadReport {
            purpose: purpose.clone(),
            verdicts,
        }
    }

    /// Parses a PEM bundle (or one DER certificate) and uploads it. Fails only when the input
    /// holds no certificate at all or a block does not parse (nothing is stored then).
    pub fn upload_pem(
        &mut self,
        purpose: &Purpose,
        input: &[u8],
        now: SystemTime,
    ) -> Result<UploadReport, Error> {
        let mut bundle = Vec::new();
        for (index, parsed) in crate::cert::parse_bundle(input)?.into_iter().enumerate() {
            bundle.push(parsed.map_err(|source| Error::InBundle {
                index,
                source: Box::new(source),
            })?);
        }
        Ok(self.upload(purpose, bundle, now))
    }

    /// rustls-style bulk add: parses each DER certificate and uploads the parsable ones as one
    /// bundle. Returns how many were stored and, for every other one, why not.
    pub fn add_parsable_certificates<I, D>(
        &mut self,
        purpose: &Purpose,
        ders: I,
        now: SystemTime,
    ) -> (usize, Vec<Ignored>)
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        let mut ignored = Vec::new();
        let mut bundle = Vec::new();
        let mut positions = Vec::new();
        for (index, der) in ders.into_iter().enumerate() {
            match Cert::from_der(der.as_ref()) {
                Ok(cert) => {
                    bundle.push(cert);
                    positions.push(index);
                }
                Err(e) => ignored.push(Ignored {
                    index,
                    reason: IgnoredReason::Unparsable(e),
                }),
            }
        }
        let report = self.upload(purpose, bundle, now);
        let added = report.accepted();
        for v in report.verdicts {
            if let rules::Verdict::Rejected { rule, .. } = v.verdict {
                ignored.push(Ignored {
                    index: positions[v.index],
                    reason: IgnoredReason::Rejected(rule),
                });
            }
        }
        ignored.sort_by_key(|i| i.index);
        (added, ignored)
    }

    /// Adds a CAPF certificate (this cluster's, or another cluster's for a migration) to
    /// `purpose`, normally CAPF-trust. It is checked against the CAPF certificate profile
    /// (capf-lsc) instead of the reserved-name rule that keeps third-party CAs out.
    pub fn add_capf(
        &mut self,
        purpose: &Purpose,
        cert: Cert,
        now: SystemTime,
    ) -> Result<CertVerdict, Error> {
        let ctx = UploadContext {
            purpose,
            release: self.release,
            now,
        };
        let duplicate = self.contains(purpose, cert.fingerprint());
        let verdict = rules::check_capf(&cert, ctx, duplicate)?;
        if verdict.verdict.is_accepted() {
            self.stores.entry(purpose.clone()).or_default().push(cert);
        }
        Ok(verdict)
    }

    /// Inserts a certificate without applying the rules: for loading a store that was checked
    /// when it was written. Returns false (and changes nothing) for a duplicate.
    pub fn insert_unchecked(&mut self, purpose: &Purpose, cert: Cert) -> bool {
        if self.contains(purpose, cert.fingerprint()) {
            return false;
        }
        self.stores.entry(purpose.clone()).or_default().push(cert);
        true
    }

    /// Removes a certificate; returns it if it was there.
    pub fn remove(&mut self, purpose: &Purpose, fingerprint: Fingerprint) -> Option<Cert> {
        let store = self.stores.get_mut(purpose)?;
        let pos = store.iter().position(|c| c.fingerprint() == fingerprint)?;
        let cert = store.remove(pos);
        if store.is_empty() {
            self.stores.remove(purpose);
        }
        Some(cert)
    }

    /// Whether `purpose` holds the certificate.
    pub fn contains(&self, purpose: &Purpose, fingerprint: Fingerprint) -> bool {
        self.certificates(purpose)
            .iter()
            .any(|c| c.fingerprint() == fingerprint)
    }

    /// The certificates of one purpose, in insertion order.
    pub fn certificates(&self, purpose: &Purpose) -> &[Cert] {
        self.stores.get(purpose).map_or(&[], Vec::as_slice)
    }

    /// The purposes holding at least one certificate.
    pub fn purposes(&self) -> impl Iterator<Item = &Purpose> {
        self.stores.keys()
    }

    /// Every (purpose, certificate), purposes in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Purpose, &Cert)> {
        self.stores
            .iter()
            .flat_map(|(p, certs)| certs.iter().map(move |c| (p, c)))
    }

    /// How many certificates all purposes hold together.
    pub fn len(&self) -> usize {
        self.stores.values().map(Vec::len).sum()
    }

    /// Whether no purpose holds a certificate.
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }
}
