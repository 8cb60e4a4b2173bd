//! The data directory a first run creates: the CAPF certificate and key next to the store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use capf_lsc::{CaCertificateParams, IssuerKey, KeySpec, RsaBits, certificate_to_pem};

use crate::Error;

/// Where the CAPF certificate and key of a data directory live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapfFiles {
    /// `capf.pem`: the CAPF certificate.
    pub certificate: PathBuf,
    /// `capf.key`: its PKCS#8 key, owner-only.
    pub key: PathBuf,
    /// Whether this call created them.
    pub created: bool,
}

/// Makes sure `data_dir` holds a CAPF certificate and key, generating a self-signed CAPF
/// certificate (CN `CAPF-` + 8 random hex digits, RSA-2048, the CAPF certificate profile) on a
/// first run. Existing files are kept, their permissions tightened: the directory is created
/// or tightened to 0700 and its files to 0600 ([`capf_store::secure_data_dir`]).
///
/// # Errors
/// [`Error::Store`] when the directory cannot be created or tightened, [`Error::Read`] for a
/// file that cannot be written, [`Error::Identity`] if generation fails,
/// [`Error::Random`] without a random source.
pub fn ensure_capf_files(data_dir: &Path, now: SystemTime) -> Result<CapfFiles, Error> {
    // The directory owner-only (0700) and its files 0600, tightened if looser (issue 12).
    capf_store::secure_data_dir(data_dir).map_err(|source| Error::Store {
        context: "securing the data directory",
        source,
    })?;
    let certificate = data_dir.join("capf.pem");
    let key = data_dir.join("capf.key");
    if certificate.exists() && key.exists() {
        return Ok(CapfFiles {
            certificate,
            key,
            created: false,
        });
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Read { path, source }
    };
    let identity = |source| Error::Identity {
        path: certificate.clone(),
        source,
    };
    let issuer_key = IssuerKey::generate(KeySpec::Rsa(RsaBits::B2048), &mut getrandom::SysRng)
        .map_err(identity)?;
    let mut id = [0u8; 4];
    getrandom::fill(&mut id).map_err(Error::Random)?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(Error::Random)?;
    let cert = CaCertificateParams::capf(u32::from_be_bytes(id))
        .self_signed(&issuer_key, now, &mut || serial)
        .map_err(identity)?;
    let key_pem = issuer_key.to_pkcs8_pem().map_err(identity)?;
    write_private(&key, key_pem.as_bytes()).map_err(io(&key))?;
    let pem = certificate_to_pem(&cert).map_err(identity)?;
    write_private(&certificate, pem.as_bytes()).map_err(io(&certificate))?;
    Ok(CapfFiles {
        certificate,
        key,
        created: true,
    })
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}
