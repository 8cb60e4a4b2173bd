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

/// The cluster's one CAPF certificate (issue 16; UCM 14: one per cluster), for a node whose
/// store several nodes share: this node's files (`files`, made by [`ensure_capf_files`]) are
/// its candidate; when the store holds a certificate already, or another node's candidate won,
/// the files are made to hold the stored one, so the node serves it. Returns the generation
/// served, or `None` for a store that keeps no CAPF certificate (SQLite: the files are the
/// node's own, as before). Call it before [`CapfServer::bind`](crate::CapfServer::bind) reads
/// the files.
///
/// # Errors
/// [`Error::Read`] / [`Error::Write`] for the files, [`Error::Store`] for the store.
pub fn adopt_cluster_capf_certificate(
    store: &dyn capf_store::AdminStore,
    files: &CapfFiles,
    now: SystemTime,
) -> Result<Option<i64>, Error> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })
    };
    let certificate_pem = read(&files.certificate)?;
    let key_pem = capf_lsc::Secret::new(read(&files.key)?);
    let stored = store
        .cluster_capf_certificate_or_insert(&certificate_pem, &key_pem, now)
        .map_err(|source| Error::Store {
            context: "storing the cluster's CAPF certificate",
            source,
        })?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    files.hold(&stored)?;
    Ok(Some(stored.generation))
}

/// While a node of a cluster runs, every few seconds: when the store's CAPF certificate differs
/// from the node's files (another node or `capfctl capf-cert upload` replaced it), writes it
/// into the files, which the server's reload picks up without a restart. Returns the
/// generation written, or `None` when nothing changed (or the store keeps no CAPF certificate).
///
/// # Errors
/// As [`adopt_cluster_capf_certificate`].
pub fn refresh_cluster_capf_certificate(
    store: &dyn capf_store::AdminStore,
    files: &CapfFiles,
) -> Result<Option<i64>, Error> {
    let stored = store
        .cluster_capf_certificate()
        .map_err(|source| Error::Store {
            context: "reading the cluster's CAPF certificate",
            source,
        })?;
    match stored {
        Some(stored) if files.hold(&stored)? => Ok(Some(stored.generation)),
        _ => Ok(None),
    }
}

impl CapfFiles {
    /// Makes the files hold `stored`: each that differs is written beside and renamed over
    /// its file, the key first (the reload loop, seeing a new certificate with the old key,
    /// refuses that pair and loads the new one once the key is there). Whether any changed.
    fn hold(&self, stored: &capf_store::CapfCertificate) -> Result<bool, Error> {
        let mut changed = false;
        for (path, contents) in [
            (&self.key, stored.key_pem.expose().as_bytes()),
            (&self.certificate, stored.certificate_pem.as_bytes()),
        ] {
            if std::fs::read(path).ok().as_deref() == Some(contents) {
                continue;
            }
            let temp = path.with_extension("cluster");
            let _ = std::fs::remove_file(&temp);
            write_private(&temp, contents)
                .and_then(|()| std::fs::rename(&temp, path))
                .map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
            changed = true;
        }
        Ok(changed)
    }
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
