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
/// [`Error::NoStore`] when it holds no database, [`Error::Io`] when looking for it fails
/// otherwise (permission denied), [`Error::OpenStore`].
pub fn open_existing_store(dir: &Path) -> Result<SqliteStore, Error> {
    let database = dir.join(SqliteStore::DATABASE_FILE);
    // Only "not found" means there is no store: any other error (permission denied, say) is
    // reported as itself.
    match std::fs::metadata(&database) {
        Ok(meta) if meta.is_file() => open_store(dir),
        Ok(_) => Err(Error::NoStore {
            dir: dir.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoStore {
            dir: dir.to_owned(),
        }),
        Err(source) => Err(Error::Io {
            action: "looking for the device store",
            path: database,
            source,
        }),
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn temp(label: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("capf-admin-files-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_store_that_cannot_be_looked_for_reports_the_real_cause_once() {
        // A data "directory" that is a file: looking for capf.sqlite in it fails with ENOTDIR,
        // which is no "no device store" (issue 12: permission denied was reported so).
        let dir = temp("notdir");
        let data = dir.join("data");
        std::fs::write(&data, b"").unwrap();
        let err = open_existing_store(&data).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        let line = crate::error_chain(&err);
        assert!(line.starts_with("looking for the device store"), "{line}");
        assert!(line.contains("os error 20"), "{line}");
        assert!(!line.contains("no device store"), "{line}");
        // A missing database is still "no device store".
        let err = open_existing_store(&dir).unwrap_err();
        assert!(matches!(err, Error::NoStore { .. }), "{err:?}");
        // A store error that embeds its cause prints it once.
        let err = open_store(&data).unwrap_err();
        let line = crate::error_chain(&err);
        assert_eq!(line.matches("os error").count(), 1, "{line}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
