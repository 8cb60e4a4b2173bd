//! The phone's output directory: its LSC and key, and the pending key between runs.
//!
//! With an external CA (spec section 16) the certificate arrives sessions after the key was
//! made, so the phone must still hold that key when it comes back: it keeps it as
//! `pending.key` (PKCS#8 PEM, 0600), answers a KEY_GEN_REQUEST for the same key spec with it
//! instead of generating, and on STORE_CERT_REQUEST promotes it to `lsc.key` next to `lsc.pem`.

use std::io::Write;
use std::path::{Path, PathBuf};

use capf_lsc::KeySpec;
use capf_lsc::x509_cert::Certificate;

use crate::{Error, PhoneKey};

/// The pending key's file name.
pub const PENDING_KEY_FILE: &str = "pending.key";
/// The installed LSC's file name (PEM).
pub const LSC_FILE: &str = "lsc.pem";
/// The installed LSC key's file name (PKCS#8 PEM).
pub const LSC_KEY_FILE: &str = "lsc.key";

/// A phone's output directory (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The directory `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        KeyDir { dir: dir.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The pending key file's path.
    pub fn pending_key_path(&self) -> PathBuf {
        self.dir.join(PENDING_KEY_FILE)
    }

    /// The pending key, if there is one.
    ///
    /// # Errors
    /// [`Error::KeyFile`] when the file exists but cannot be read, or a key error when it does
    /// not hold a key.
    pub fn pending(&self) -> Result<Option<PhoneKey>, Error> {
        let path = self.pending_key_path();
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::KeyFile { path, source }),
        };
        PhoneKey::from_pkcs8_pem(&pem).map(Some)
    }

    /// The pending key if it is of `spec` (what a KEY_GEN_REQUEST asking for `spec` reuses).
    ///
    /// # Errors
    /// As [`KeyDir::pending`].
    pub fn pending_for(&self, spec: KeySpec) -> Result<Option<PhoneKey>, Error> {
        Ok(self.pending()?.filter(|k| k.spec() == spec))
    }

    /// Keeps `key` as the pending key (0600, written whole to a temporary file and renamed, so
    /// a crash leaves the old key or the new one).
    ///
    /// # Errors
    /// [`Error::KeyFile`], or a key encoding error.
    pub fn save_pending(&self, key: &PhoneKey) -> Result<(), Error> {
        let pem = key.to_pkcs8_pem()?;
        self.write_private(PENDING_KEY_FILE, pem.as_bytes())
    }

    /// The certificate carrying `key` was stored: writes `lsc.pem` and `lsc.key` (0600) and
    /// removes the pending key, which is now the LSC key.
    ///
    /// # Errors
    /// [`Error::KeyFile`], or an encoding error.
    pub fn promote(&self, certificate_der: &[u8], key: &PhoneKey) -> Result<(), Error> {
        let cert = <Certificate as capf_lsc::der::Decode>::from_der(certificate_der).map_err(
            |source| Error::Der {
                what: "the stored LSC",
                source,
            },
        )?;
        let pem = capf_lsc::certificate_to_pem(&cert).map_err(|source| Error::Lsc {
            what: "the stored LSC",
            source,
        })?;
        self.write_private(LSC_KEY_FILE, key.to_pkcs8_pem()?.as_bytes())?;
        self.write_file(LSC_FILE, pem.as_bytes(), 0o644)?;
        let path = self.pending_key_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::KeyFile { path, source }),
        }
    }

    fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.write_file(name, bytes, 0o600)
    }

    fn write_file(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
        let path = self.dir.join(name);
        let failed = |source| Error::KeyFile {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(failed)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options.open(&tmp).map_err(failed)?;
        file.write_all(bytes).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&tmp, &path).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use capf_lsc::{Curve, RsaBits};

    fn scratch(name: &str) -> KeyDir {
        let dir =
            std::env::temp_dir().join(format!("capf-phone-keydir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        KeyDir::new(dir)
    }

    fn key(spec: KeySpec) -> PhoneKey {
        PhoneKey::from_pkcs8_pem(capf_test_support::key_pem(spec)).unwrap()
    }

    #[test]
    fn the_pending_key_is_kept_0600_and_reused_for_the_same_spec_only() {
        let dir = scratch("pending");
        assert!(dir.pending().unwrap().is_none());
        let p256 = key(KeySpec::Ec(Curve::P256));
        dir.save_pending(&p256).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.pending_key_path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = dir.pending_for(KeySpec::Ec(Curve::P256)).unwrap().unwrap();
        assert_eq!(again.spki_der(), p256.spki_der());
        assert!(
            dir.pending_for(KeySpec::Rsa(RsaBits::B2048))
                .unwrap()
                .is_none()
        );
        // A new key for another spec replaces it.
        let rsa = key(KeySpec::Rsa(RsaBits::B2048));
        dir.save_pending(&rsa).unwrap();
        assert!(dir.pending_for(KeySpec::Ec(Curve::P256)).unwrap().is_none());
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[test]
    fn storing_the_lsc_promotes_the_pending_key() {
        let dir = scratch("promote");
        let spec = KeySpec::Ec(Curve::P256);
        let phone = key(spec);
        dir.save_pending(&phone).unwrap();
        let issuer = capf_test_support::capf_issuer(KeySpec::Ec(Curve::P384));
        let public = capf_lsc::PhonePublicKey::from_der(phone.spki_der()).unwrap();
        let lsc = issuer
            .issue_lsc_for(
                &public,
                &capf_lsc::DeviceName::new("SEP001A2B3C4D5E").unwrap(),
                capf_lsc::ValidityDays::new(30).unwrap(),
                capf_test_support::now(),
                &mut capf_test_support::serials(),
            )
            .unwrap();
        let der = capf_lsc::certificate_to_der(&lsc).unwrap();
        dir.promote(&der, &phone).unwrap();
        assert!(dir.pending().unwrap().is_none());
        let stored = std::fs::read_to_string(dir.path().join(LSC_KEY_FILE)).unwrap();
        assert_eq!(
            PhoneKey::from_pkcs8_pem(&stored).unwrap().spki_der(),
            phone.spki_der()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(LSC_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let pem = std::fs::read(dir.path().join(LSC_FILE)).unwrap();
        assert_eq!(
            capf_lsc::certificate_to_der(&capf_lsc::certificate_from_pem_or_der(&pem).unwrap())
                .unwrap(),
            der
        );
        std::fs::remove_dir_all(dir.path()).unwrap();
    }

    #[test]
    fn a_csr_signature_verifies_with_the_phone_key() {
        for spec in [KeySpec::Rsa(RsaBits::B2048), KeySpec::Ec(Curve::P384)] {
            let phone = key(spec);
            let public = capf_lsc::PhonePublicKey::from_der(phone.spki_der()).unwrap();
            let device = capf_lsc::DeviceName::new("SEP001A2B3C4D5E").unwrap();
            let info = capf_lsc::endpoint_csr_info(&device, &public).unwrap();
            let signature = crate::sign_csr_info(&info, &phone).unwrap();
            capf_lsc::EndpointCsr::assemble(&info, &signature, &public).unwrap();
        }
    }
}
