//! Files: opening the device store, reading, and creating new files that are never
//! overwritten.

use std::io::Write;
use std::path::Path;

use capf_store::SqliteStore;

use crate::Error;

/// Opens (creating when missing) the device store in the data directory `dir`.
///
/// # Errors
/// [`Error::OpenStore`].
pub fn open_store(dir: &Path) -> Result<SqliteStore, Error> {
    SqliteStore::open(dir).map_err(|source| Error::OpenStore {
        dir: dir.to_owned(),
        source: Box::new(source),
    })
}

/// Opens the device store in `dir`, which must already hold a database (so a mistyped
/// directory creates nothing).
///
/// # Errors
/// [`Error::NoStore`], [`Error::OpenStore`].
pub fn open_existing_store(dir: &Path) -> Result<SqliteStore, Error> {
    if !dir.join(SqliteStore::DATABASE_FILE).is_file() {
        return Err(Error::NoStore {
            dir: dir.to_owned(),
        });
    }
    open_store(dir)
}

/// The text of a file.
///
/// # Errors
/// [`Error::Io`].
pub fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

/// Writes `data` to a new file, never overwriting one; `private` makes it readable by its
/// owner only (mode 0600, for keys and authentication strings), and then also syncs it.
///
/// # Errors
/// [`Error::CreateNew`], [`Error::Io`].
pub fn write_new_file(path: &Path, data: &[u8], private: bool) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| Error::CreateNew {
        path: path.to_owned(),
        source,
    })?;
    file.write_all(data)
        .and_then(|()| if private { file.sync_all() } else { Ok(()) })
        .map_err(|source| Error::Io {
            action: "writing",
            path: path.to_owned(),
            source,
        })
}

/// 16 bytes from the operating system's cryptographic random source (a certificate serial).
///
/// # Errors
/// [`Error::Random`].
pub fn random_serial() -> Result<[u8; 16], Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| Error::Random { error })?;
    Ok(bytes)
}
