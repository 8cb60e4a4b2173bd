//! Trust stores in a store directory (CAPF-trust, CallManager-trust, ...): uploads under the
//! guide's rules with the accepted certificates saved, deletion by fingerprint prefix, chain
//! verification of a certificate file, and the listing as a serde view. The rules are
//! capf-trust's; this is the workflow around them.

use std::path::Path;
use std::time::SystemTime;

use capf_trust::{
    BadFile, Cert, CertVerdict, FingerprintPrefix, PrefixMatch, Purpose, Release, StoreDir,
    TrustStore, Verdict, VerifiedChain, contains_reserved_capf_name, is_mic_root, parse_bundle,
};
use serde::Serialize;

use crate::{Error, rfc3339};

/// A trust store loaded from its directory, with the files that could not be loaded.
#[derive(Debug)]
pub struct OpenTrustStore {
    /// The directory (`<DIR>/<purpose>/<sha256>.pem`).
    pub dir: StoreDir,
    /// What it holds.
    pub store: TrustStore,
    /// Every file that was not loaded, and why (none is skipped silently: show them).
    pub bad_files: Vec<BadFile>,
}

impl OpenTrustStore {
    /// Loads the store in `dir` under `release`'s rules (a missing directory is an empty
    /// store).
    ///
    /// # Errors
    /// [`Error::LoadTrustStore`] when the directory cannot be read.
    pub fn load(dir: &Path, release: Release) -> Result<Self, Error> {
        let store_dir = StoreDir::new(dir);
        let loaded = store_dir
            .load(release)
            .map_err(|source| Error::LoadTrustStore {
                dir: dir.to_owned(),
                source: Box::new(source),
            })?;
        Ok(OpenTrustStore {
            dir: store_dir,
            store: loaded.store,
            bad_files: loaded.bad_files,
        })
    }

    /// Uploads `bundle` to `purpose` under the guide's rules and saves every certificate
    /// accepted; the verdicts are in the bundle's order. Check them with [`check_verdicts`].
    ///
    /// # Errors
    /// [`Error::Trust`] when a file cannot be written.
    pub fn upload(
        &mut self,
        purpose: &Purpose,
        bundle: Vec<Cert>,
        now: SystemTime,
    ) -> Result<Vec<CertVerdict>, Error> {
        let report = self.store.upload(purpose, bundle, now);
        self.dir
            .save_accepted(&self.store, purpose, &report.verdicts)?;
        Ok(report.verdicts)
    }

    /// Adds a CAPF certificate (this cluster's, or another's for a migration) read from
    /// `file`, and saves it when accepted.
    ///
    /// # Errors
    /// [`Error::TrustFile`] when it is not a CAPF certificate capf-trust can judge,
    /// [`Error::Trust`] when the file cannot be written.
    pub fn add_capf(
        &mut self,
        purpose: &Purpose,
        cert: Cert,
        file: &Path,
        now: SystemTime,
    ) -> Result<CertVerdict, Error> {
        let verdict = self
            .store
            .add_capf(purpose, cert, now)
            .map_err(|source| trust_file(file, source))?;
        self.dir
            .save_accepted(&self.store, purpose, std::slice::from_ref(&verdict))?;
        Ok(verdict)
    }

    /// Deletes the one certificate of `purpose` whose fingerprint starts with `text` (at
    /// least 8 hex digits, colons allowed), from the store and its directory.
    ///
    /// # Errors
    /// [`Error::FingerprintPrefix`], [`Error::NoSuchFingerprint`],
    /// [`Error::AmbiguousFingerprint`], [`Error::Trust`] when the file cannot be removed.
    pub fn delete_by_prefix(&mut self, purpose: &Purpose, text: &str) -> Result<Cert, Error> {
        let prefix = FingerprintPrefix::parse(text).ok_or_else(|| Error::FingerprintPrefix {
            text: text.to_owned(),
        })?;
        let none = || Error::NoSuchFingerprint {
            purpose: purpose.clone(),
            text: text.to_owned(),
        };
        let fp = match self.store.find_by_prefix(purpose, &prefix) {
            PrefixMatch::One(fp) => fp,
            PrefixMatch::None => return Err(none()),
            PrefixMatch::Several(matches) => {
                return Err(Error::AmbiguousFingerprint {
                    purpose: purpose.clone(),
                    text: text.to_owned(),
                    matches,
                });
            }
        };
        let cert = self.store.remove(purpose, fp).ok_or_else(none)?;
        self.dir.delete(purpose, fp)?;
        Ok(cert)
    }

    /// Verifies the certificate `chain[0]` (with the intermediates after it) read from `file`
    /// against `purpose` at `now`.
    ///
    /// # Errors
    /// [`Error::Untrusted`] with the first rule the chain broke.
    pub fn verify(
        &self,
        purpose: &Purpose,
        file: &Path,
        chain: &[Cert],
        now: SystemTime,
    ) -> Result<VerifiedChain, Error> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(trust_file(file, capf_trust::Error::NoCertificate));
        };
        match self.store.verify(purpose, leaf, intermediates, now) {
            capf_trust::ChainVerdict::Trusted(chain) => Ok(chain),
            capf_trust::ChainVerdict::Untrusted(failure) => Err(Error::Untrusted {
                path: file.to_owned(),
                purpose: purpose.clone(),
                failure,
            }),
        }
    }

    /// The certificates of every purpose, or of `only`, as views.
    pub fn views(&self, only: Option<&Purpose>) -> Vec<TrustCertView> {
        self.store
            .iter()
            .filter(|(p, _)| only.is_none_or(|o| o == *p))
            .map(|(p, c)| TrustCertView::new(p, c))
            .collect()
    }
}

fn trust_file(path: &Path, source: capf_trust::Error) -> Error {
    Error::TrustFile {
        path: path.to_owned(),
        source: Box::new(source),
    }
}

/// Every certificate of a PEM (one or more) or DER file, in order.
///
/// # Errors
/// [`Error::Io`], [`Error::TrustFile`], [`Error::TrustFileCertificate`] naming the
/// certificate that does not parse.
pub fn read_certificates(path: &Path) -> Result<Vec<Cert>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    parse_bundle(&bytes)
        .map_err(|source| trust_file(path, source))?
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            c.map_err(|source| Error::TrustFileCertificate {
                path: path.to_owned(),
                number: i + 1,
                source: Box::new(source),
            })
        })
        .collect()
}

/// The one certificate of a file.
///
/// # Errors
/// As [`read_certificates`]; [`Error::NotOneCertificate`].
pub fn read_certificate(path: &Path) -> Result<Cert, Error> {
    let mut certs = read_certificates(path)?;
    if certs.len() != 1 {
        return Err(Error::NotOneCertificate {
            path: path.to_owned(),
            found: certs.len(),
        });
    }
    Ok(certs.remove(0))
}

/// Fails when any verdict of an upload of `path` is a rejection, naming the first.
///
/// # Errors
/// [`Error::TrustRejected`].
pub fn check_verdicts(path: &Path, verdicts: &[CertVerdict]) -> Result<(), Error> {
    let rejected = verdicts.iter().filter(|v| !v.verdict.is_accepted()).count();
    if rejected == 0 {
        return Ok(());
    }
    let first = verdicts
        .iter()
        .find_map(|v| match &v.verdict {
            Verdict::Rejected { rule, .. } => Some(format!("{}: {rule}", v.subject)),
            _ => None,
        })
        .unwrap_or_default();
    Err(Error::TrustRejected {
        path: path.to_owned(),
        rejected,
        total: verdicts.len(),
        first,
    })
}

/// A verdict in words: `accepted`, or the verdict's own text (a warning, a rejection).
pub fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Accepted => "accepted".to_owned(),
        other => other.to_string(),
    }
}

/// A certificate as its Common Name (`CN=...`), or its whole subject without one.
pub fn describe_certificate(cert: &Cert) -> String {
    cert.common_name()
        .map_or_else(|| cert.subject(), |cn| format!("CN={cn}"))
}

/// A certificate of a trust store, as `capfctl trust list --json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrustCertView {
    /// The purpose (`CAPF-trust`, ...).
    pub purpose: String,
    /// SHA-256 of the DER, hex.
    pub fingerprint_sha256: String,
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Subject CN, if any.
    pub common_name: Option<String>,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Subject and issuer are the same name.
    pub self_issued: bool,
    /// BasicConstraints CA:TRUE.
    pub ca: bool,
    /// The CN holds the reserved "CAPF-".
    pub capf: bool,
    /// One of the MIC roots the guide recommends removing from CallManager-trust.
    pub mic_root: bool,
}

impl TrustCertView {
    /// The view of `cert` held for `purpose`.
    pub fn new(purpose: &Purpose, cert: &Cert) -> Self {
        let cn = cert.common_name();
        TrustCertView {
            purpose: purpose.as_str().to_owned(),
            fingerprint_sha256: cert.fingerprint().to_string(),
            subject: cert.subject(),
            issuer: cert.issuer(),
            capf: cn.as_deref().is_some_and(contains_reserved_capf_name),
            mic_root: cn.as_deref().is_some_and(is_mic_root),
            common_name: cn,
            not_before: rfc3339(cert.not_before()),
            not_after: rfc3339(cert.not_after()),
            self_issued: cert.is_self_issued(),
            ca: cert.is_ca(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::error_chain;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../capf-trust/tests/fixtures")
            .join(format!("{name}.pem"))
    }

    /// Inside every capf-trust fixture's validity.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn uploads_saves_lists_verifies_and_deletes_by_prefix() {
        let root = std::env::temp_dir().join(format!("capf-admin-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut opened = OpenTrustStore::load(&root, Release::LATEST).unwrap();
        let verdicts = opened
            .upload(
                &Purpose::CAPF_TRUST,
                read_certificates(&fixture("root")).unwrap(),
                now(),
            )
            .unwrap();
        check_verdicts(Path::new("root.pem"), &verdicts).unwrap();
        assert_eq!(verdict_text(&verdicts[0].verdict), "accepted");

        // Saved: a second load sees it.
        let mut opened = OpenTrustStore::load(&root, Release::LATEST).unwrap();
        let views = opened.views(Some(&Purpose::CAPF_TRUST));
        assert_eq!(views.len(), 1);
        assert!(views[0].ca && views[0].self_issued && !views[0].mic_root);
        let inter = fixture("inter");
        let chain = read_certificates(&inter).unwrap();
        let verified = opened
            .verify(&Purpose::CAPF_TRUST, &inter, &chain, now())
            .unwrap();
        assert_eq!(verified.subjects.len(), 2);
        let err = opened
            .verify(&Purpose::CALLMANAGER_TRUST, &inter, &chain, now())
            .unwrap_err();
        assert!(matches!(err, Error::Untrusted { .. }), "{err}");

        let fp = views[0].fingerprint_sha256.clone();
        let err = opened
            .delete_by_prefix(&Purpose::CAPF_TRUST, "abc")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "fingerprint \"abc\": expected at least 8 hex digits"
        );
        let err = opened
            .delete_by_prefix(&Purpose::CALLMANAGER_TRUST, &fp[..8])
            .unwrap_err();
        assert!(matches!(err, Error::NoSuchFingerprint { .. }), "{err}");
        let removed = opened
            .delete_by_prefix(&Purpose::CAPF_TRUST, &fp[..10])
            .unwrap();
        assert_eq!(removed.fingerprint().to_string(), fp);
        let opened = OpenTrustStore::load(&root, Release::LATEST).unwrap();
        assert!(opened.views(None).is_empty());
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn a_rejected_certificate_fails_the_upload_naming_the_rule() {
        let root = std::env::temp_dir().join(format!("capf-admin-reject-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut opened = OpenTrustStore::load(&root, Release::LATEST).unwrap();
        let file = fixture("reserved-ascii");
        let verdicts = opened
            .upload(
                &Purpose::CAPF_TRUST,
                read_certificates(&file).unwrap(),
                now(),
            )
            .unwrap();
        let err = check_verdicts(&file, &verdicts).unwrap_err();
        assert!(
            error_chain(&err).contains("1 of 1 certificate(s) rejected, first: "),
            "{err}"
        );
        assert!(
            OpenTrustStore::load(&root, Release::LATEST)
                .unwrap()
                .views(None)
                .is_empty()
        );
        let err = read_certificate(&root.join("missing.pem")).unwrap_err();
        assert!(error_chain(&err).starts_with("reading "), "{err}");
        std::fs::remove_dir_all(&root).ok();
    }
}
