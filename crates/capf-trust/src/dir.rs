//! The store directory: `<dir>/<purpose>/<sha256>.pem`, one certificate per file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Cert, Error, Fingerprint, Purpose, Release, TrustStore};

/// A trust store directory: one subdirectory per purpose, one PEM file per certificate named
/// by its SHA-256 fingerprint. Writes are atomic (temporary file, fsync, rename, fsync of the
/// directory), so a crash leaves either the old or the new file, never half of one.
#[derive(Clone, Debug)]
pub struct StoreDir {
    root: PathBuf,
}

/// A file of the store directory that could not be loaded, and why.
#[derive(Debug)]
pub struct BadFile {
    /// The file (or directory).
    pub path: PathBuf,
    /// What is wrong with it.
    pub error: Error,
}

/// What [`StoreDir::load`] found.
#[derive(Debug)]
pub struct LoadedStore {
    /// The certificates that loaded.
    pub store: TrustStore,
    /// Every file that did not, with the reason; none is skipped silently.
    pub bad_files: Vec<BadFile>,
}

const TMP_SUFFIX: &str = ".tmp";

impl StoreDir {
    /// A store directory at `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a certificate of `purpose` lives.
    pub fn path_of(&self, purpose: &Purpose, fingerprint: Fingerprint) -> PathBuf {
        self.root
            .join(purpose.as_str())
            .join(format!("{fingerprint}.pem"))
    }

    /// Writes one certificate atomically; returns its path.
    pub fn save(&self, purpose: &Purpose, cert: &Cert) -> Result<PathBuf, Error> {
        let dir = self.root.join(purpose.as_str());
        fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let path = self.path_of(purpose, cert.fingerprint());
        let tmp = dir.join(format!(".{}.pem{TMP_SUFFIX}", cert.fingerprint()));
        let pem = cert.to_pem()?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        {
            let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
            file.write_all(pem.as_bytes()).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename itself is durable once the directory is synced.
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        Ok(path)
    }

    /// Deletes one certificate's file; returns false if it was not there.
    pub fn delete(&self, purpose: &Purpose, fingerprint: Fingerprint) -> Result<bool, Error> {
        let path = self.path_of(purpose, fingerprint);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Loads every certificate, reporting each bad file (unparsable, several certificates in
    /// one file, a name that is not the certificate's fingerprint, a left-over temporary file,
    /// a stray file or directory). A missing directory is an empty store. Fails only when the
    /// directory itself cannot be read.
    pub fn load(&self, release: Release) -> Result<LoadedStore, Error> {
        let mut store = TrustStore::new(release);
        let mut bad_files = Vec::new();
        let top = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LoadedStore { store, bad_files });
            }
            Err(source) => {
                return Err(Error::Io {
                    path: self.root.clone(),
                    source,
                });
            }
        };
        for entry in sorted(top, &self.root)? {
            let path = entry;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !path.is_dir() {
                bad_files.push(BadFile {
                    path,
                    error: Error::StrayFile,
                });
                continue;
            }
            let purpose = match Purpose::new(&name) {
                Ok(p) if p.as_str() == name => p,
                Ok(_) | Err(_) => {
                    bad_files.push(BadFile {
                        error: Error::InvalidPurpose { name },
                        path,
                    });
                    continue;
                }
            };
            let files = fs::read_dir(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            for file in sorted(files, &path)? {
                if let Err(error) = load_file(&mut store, &purpose, &file) {
                    bad_files.push(BadFile { path: file, error });
                }
            }
        }
        Ok(LoadedStore { store, bad_files })
    }
}

fn sorted(rd: fs::ReadDir, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

fn load_file(store: &mut TrustStore, purpose: &Purpose, path: &Path) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(TMP_SUFFIX) {
        return Err(Error::LeftoverTemporaryFile);
    }
    let Some(stem) = name.strip_suffix(".pem") else {
        return Err(Error::StrayFile);
    };
    if path.is_dir() {
        return Err(Error::StrayFile);
    }
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certs = crate::cert::parse_bundle(&bytes)?;
    if certs.len() != 1 {
        return Err(Error::NotOneCertificate { found: certs.len() });
    }
    // invariant: exactly one element, checked above.
    let cert = certs.remove(0)?;
    let expected = cert.fingerprint();
    if stem != expected.to_string() {
        return Err(Error::FileNameMismatch {
            fingerprint: expected,
        });
    }
    if !store.insert_unchecked(purpose, cert) {
        return Err(Error::DuplicateFile);
    }
    Ok(())
}
