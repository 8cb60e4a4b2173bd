//! The CAPF certificate (generate, check, request) and LSCs issued by hand, from files. Every
//! certificate-with-key input goes through capf-lsc's one loader,
//! [`CertificateAndKey`](capf_lsc::CertificateAndKey), so a PEM bundle of certificate and key
//! that `lsc issue --issuer` takes is taken by `capf-cert check` and `csr` too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capf_lsc::{
    CaCertificateParams, CapfCertificateReport, CertificateAndKey, DeviceName, Issuer, IssuerKey,
    KeySpec, LscParams, LscSigner, PhonePublicKey, SignatureHash, ValidityDays,
};

use crate::{Error, random_serial, write_new_file};

/// A file as the user named it: with the flag that gave it (`--issuer capf.pem`), or alone.
#[derive(Clone, Copy, Debug)]
pub struct NamedFile<'a> {
    /// The flag, such as `--issuer`; `None` for a positional argument.
    pub flag: Option<&'static str>,
    /// The file.
    pub path: &'a Path,
}

impl<'a> NamedFile<'a> {
    /// A file given as a positional argument.
    pub fn plain(path: &'a Path) -> Self {
        NamedFile { flag: None, path }
    }

    /// A file given with `flag`.
    pub fn flagged(flag: &'static str, path: &'a Path) -> Self {
        NamedFile {
            flag: Some(flag),
            path,
        }
    }

    fn read(&self) -> Result<Vec<u8>, Error> {
        std::fs::read(self.path).map_err(|source| Error::ReadFile {
            file: self.to_string(),
            source,
        })
    }

    fn refused(&self, source: capf_lsc::Error) -> Error {
        Error::CertificateFile {
            file: self.to_string(),
            source: Box::new(source),
        }
    }
}

impl fmt::Display for NamedFile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.flag {
            Some(flag) => write!(f, "{flag} {}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Reads a certificate (PEM or DER) and its PKCS#8 private key: from the certificate file
/// when it is a bundle holding both, else from `key`. With a key in both, the certificate
/// file's is used, as when the two files are read as one bundle.
///
/// # Errors
/// [`Error::ReadFile`], [`Error::CertificateFile`] naming the file at fault.
pub fn read_certificate_and_key(
    certificate: NamedFile<'_>,
    key: Option<NamedFile<'_>>,
) -> Result<CertificateAndKey, Error> {
    let mut loaded = CertificateAndKey::from_pem_or_der(&certificate.read()?)
        .map_err(|e| certificate.refused(e))?;
    if let Some(key) = key {
        let bytes = key.read()?;
        let text = String::from_utf8_lossy(&bytes);
        let parsed = IssuerKey::from_pkcs8_pem(&text).map_err(|e| key.refused(e))?;
        loaded.key.get_or_insert(parsed);
    }
    Ok(loaded)
}

/// Reads a phone's SubjectPublicKeyInfo (PEM `PUBLIC KEY` or DER).
///
/// # Errors
/// [`Error::ReadFile`], [`Error::CertificateFile`].
pub fn read_public_key(file: NamedFile<'_>) -> Result<PhonePublicKey, Error> {
    capf_lsc::public_key_from_pem_or_der(&file.read()?).map_err(|e| file.refused(e))
}

/// The 8 hex digits after `CAPF-` in a CAPF certificate's Common Name.
///
/// # Errors
/// [`Error::CapfId`].
pub fn parse_capf_id(text: &str) -> Result<u32, Error> {
    let bad = || Error::CapfId {
        text: text.to_owned(),
    };
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u32::from_str_radix(text, 16).map_err(|_| bad())
}

/// What to generate: a CAPF key and its self-signed CAPF certificate (CA:TRUE pathlen:0,
/// digitalSignature + keyCertSign + cRLSign).
#[derive(Clone, Debug)]
pub struct CapfCertificateRequest {
    /// The key type.
    pub key: KeySpec,
    /// The validity.
    pub validity: ValidityDays,
    /// The signature digest.
    pub hash: SignatureHash,
    /// The 8 hex digits after `CAPF-` ([`parse_capf_id`]); random when `None`.
    pub capf_id: Option<u32>,
    /// Subject O.
    pub organization: String,
    /// Subject OU.
    pub organizational_unit: String,
    /// Subject L.
    pub locality: String,
    /// Subject ST.
    pub state: String,
    /// Subject C (two letters).
    pub country: String,
    /// Where to write the certificate (PEM); must not exist.
    pub certificate_out: PathBuf,
    /// Where to write the private key (PKCS#8 PEM, mode 0600); must not exist.
    pub key_out: PathBuf,
}

/// Generates the CAPF key and certificate of `request` and writes both files (the key first,
/// private); returns the certificate's Common Name.
///
/// # Errors
/// [`Error::Exists`] (nothing is overwritten), [`Error::Subject`], [`Error::GenerateKey`],
/// [`Error::Random`], [`Error::Lsc`], [`Error::CreateNew`], [`Error::Io`].
pub fn generate_capf_certificate(
    request: &CapfCertificateRequest,
    now: SystemTime,
) -> Result<String, Error> {
    let capf_id = match request.capf_id {
        Some(id) => id,
        None => {
            let b = random_serial()?;
            u32::from_be_bytes([b[0], b[1], b[2], b[3]])
        }
    };
    for path in [&request.certificate_out, &request.key_out] {
        if path.exists() {
            return Err(Error::Exists { path: path.clone() });
        }
    }
    let mut params = CaCertificateParams::capf(capf_id);
    params.validity = request.validity;
    params.organization.clone_from(&request.organization);
    params
        .organizational_unit
        .clone_from(&request.organizational_unit);
    params.locality.clone_from(&request.locality);
    params.state.clone_from(&request.state);
    params.country.clone_from(&request.country);
    params.subject().map_err(|e| Error::Subject {
        source: Box::new(e),
    })?;
    let key = IssuerKey::generate(request.key, &mut getrandom::SysRng)
        .map_err(|e| Error::GenerateKey {
            source: Box::new(e),
        })?
        .with_hash(request.hash);
    let serial = random_serial()?;
    let cert = params.self_signed(&key, now, &mut || serial)?;
    let key_pem = key.to_pkcs8_pem()?;
    write_new_file(&request.key_out, key_pem.as_bytes(), true)?;
    write_new_file(
        &request.certificate_out,
        capf_lsc::certificate_to_pem(&cert)?.as_bytes(),
        false,
    )?;
    Ok(params.common_name)
}

/// Checks a CAPF certificate read from `path` (with its key, when there is one) against the
/// CAPF certificate profile at `now`.
///
/// # Errors
/// [`Error::NotCapfCertificate`] with every problem; [`Error::CertificateFile`] for a
/// malformed extension or an unsupported key.
pub fn check_capf_certificate(
    loaded: &CertificateAndKey,
    path: &Path,
    now: SystemTime,
) -> Result<CapfCertificateReport, Error> {
    let file = NamedFile::plain(path);
    let spki = loaded.key.as_ref().map(LscSigner::public_key);
    let problems = capf_lsc::capf_certificate_problems(&loaded.certificate, spki, now)
        .map_err(|e| file.refused(e))?;
    if !problems.is_empty() {
        return Err(Error::NotCapfCertificate {
            path: path.to_owned(),
            problems,
        });
    }
    capf_lsc::check_capf_certificate(&loaded.certificate, spki, now).map_err(|e| file.refused(e))
}

/// A PKCS#10 request (PEM) for the CAPF key, with the subject of the current CAPF
/// certificate, to have a third-party CA sign it.
///
/// # Errors
/// [`Error::KeyMismatch`], [`Error::Lsc`]; a bundle without a key is
/// [`Error::Lsc`] (`MissingPemBlock`).
pub fn capf_csr_pem(loaded: &CertificateAndKey) -> Result<String, Error> {
    let key = loaded.require_key()?;
    let tbs = loaded.certificate.tbs_certificate();
    if key.public_key() != tbs.subject_public_key_info() {
        return Err(Error::KeyMismatch);
    }
    let req = capf_lsc::capf_csr(tbs.subject(), key)?;
    Ok(capf_lsc::csr_to_pem(&req)?)
}

/// Issues an LSC by hand (PEM) for `public_key`, signed by `issuer`, with a random serial.
///
/// # Errors
/// [`Error::Random`], [`Error::Lsc`].
pub fn issue_lsc_pem(
    issuer: &Issuer,
    public_key: &PhonePublicKey,
    device: &DeviceName,
    validity: ValidityDays,
    now: SystemTime,
) -> Result<String, Error> {
    let serial = random_serial()?;
    let lsc = issuer.issue_lsc(
        public_key,
        &LscParams {
            device_name: device.as_str().to_owned(),
            validity,
        },
        now,
        &mut || serial,
    )?;
    Ok(capf_lsc::certificate_to_pem(&lsc)?)
}

/// The issuer of LSCs issued by hand: its certificate and key from `certificate` (a bundle)
/// or from `certificate` and `key` ([`read_certificate_and_key`]).
///
/// # Errors
/// As [`read_certificate_and_key`]; [`Error::CertificateFile`] naming `certificate` when
/// there is no key or the pair cannot issue (not a CA, a key that does not match).
pub fn read_issuer(
    certificate: NamedFile<'_>,
    key: Option<NamedFile<'_>>,
) -> Result<Issuer, Error> {
    let CertificateAndKey {
        certificate: cert,
        key: issuer_key,
    } = read_certificate_and_key(certificate, key)?;
    let issuer_key = issuer_key.ok_or_else(|| {
        certificate.refused(capf_lsc::Error::MissingPemBlock {
            label: "PRIVATE KEY",
        })
    })?;
    Issuer::new(cert, Box::new(issuer_key)).map_err(|e| certificate.refused(e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use capf_lsc::{Curve, KeySpec};
    use capf_test_support as support;

    use super::*;
    use crate::error_chain;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("capf-admin-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn request(dir: &Path) -> CapfCertificateRequest {
        CapfCertificateRequest {
            key: KeySpec::Ec(Curve::P256),
            validity: ValidityDays::new(30).unwrap(),
            hash: SignatureHash::default(),
            capf_id: Some(parse_capf_id("0123abcd").unwrap()),
            organization: "Example".into(),
            organizational_unit: String::new(),
            locality: String::new(),
            state: String::new(),
            country: "NZ".into(),
            certificate_out: dir.join("capf.pem"),
            key_out: dir.join("capf.key"),
        }
    }

    #[test]
    fn capf_ids_are_eight_hex_digits() {
        assert_eq!(parse_capf_id("0123abcd").unwrap(), 0x0123_abcd);
        for bad in ["123abcd", "0123abcdef", "0123abcg", ""] {
            assert!(
                matches!(parse_capf_id(bad), Err(Error::CapfId { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn generates_checks_and_issues_from_a_bundle_or_two_files() {
        let dir = scratch("capf-cert");
        let req = request(&dir);
        let cn = generate_capf_certificate(&req, SystemTime::now()).unwrap();
        assert_eq!(cn, "CAPF-0123abcd");
        // Never overwritten.
        let err = generate_capf_certificate(&req, SystemTime::now()).unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");

        let cert = std::fs::read_to_string(&req.certificate_out).unwrap();
        let key = std::fs::read_to_string(&req.key_out).unwrap();
        let bundle = dir.join("bundle.pem");
        std::fs::write(&bundle, format!("{key}{cert}")).unwrap();
        for loaded in [
            read_certificate_and_key(NamedFile::plain(&bundle), None).unwrap(),
            read_certificate_and_key(
                NamedFile::plain(&req.certificate_out),
                Some(NamedFile::plain(&req.key_out)),
            )
            .unwrap(),
        ] {
            let report = check_capf_certificate(&loaded, &bundle, SystemTime::now()).unwrap();
            assert!(report.reserved_common_name);
            capf_csr_pem(&loaded).unwrap();
        }
        let issuer = read_issuer(NamedFile::flagged("--issuer", &bundle), None).unwrap();
        let device = DeviceName::new("SEP001122334455").unwrap();
        let pem = issue_lsc_pem(
            &issuer,
            &support::phone_key(KeySpec::Ec(Curve::P256)),
            &device,
            ValidityDays::new(5).unwrap(),
            SystemTime::now(),
        )
        .unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

        // A certificate alone cannot issue, and the error names the flag and the file.
        let err =
            read_issuer(NamedFile::flagged("--issuer", &req.certificate_out), None).unwrap_err();
        assert!(
            error_chain(&err).starts_with(&format!(
                "--issuer {}: no PEM PRIVATE KEY block found",
                req.certificate_out.display()
            )),
            "{err}"
        );
        // A foreign key does not match.
        let other = dir.join("other.key");
        std::fs::write(&other, support::key_pem(KeySpec::Ec(Curve::P256))).unwrap();
        let loaded = read_certificate_and_key(
            NamedFile::plain(&req.certificate_out),
            Some(NamedFile::plain(&other)),
        )
        .unwrap();
        let err =
            check_capf_certificate(&loaded, &req.certificate_out, SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(matches!(capf_csr_pem(&loaded), Err(Error::KeyMismatch)));
        std::fs::remove_dir_all(&dir).ok();
    }
}
