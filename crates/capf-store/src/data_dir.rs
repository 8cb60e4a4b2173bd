//! The data directory's permissions: it holds the device registry and the HMACs of
//! authentication strings, so it is the owner's only (0700, its files 0600), whoever made it.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::sqlite::SqliteStore;

/// The data directory's mode.
pub const DATA_DIR_MODE: u32 = 0o700;
/// The mode of the files in it.
pub const DATA_FILE_MODE: u32 = 0o600;

/// A permission [`secure_data_dir`] tightened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tightened {
    /// The directory or file.
    pub path: PathBuf,
    /// Its permission bits before.
    pub from: u32,
    /// Its permission bits now.
    pub to: u32,
}

impl std::fmt::Display for Tightened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: permissions {:04o} tightened to {:04o} (the data directory is the owner's only)",
            self.path.display(),
            self.from,
            self.to
        )
    }
}

/// Creates `data_dir` (mode 0700) when missing; otherwise tightens it to 0700 and every file
/// and folder directly in it to 0600 and 0700, taking the group's and others' bits away
/// (symbolic links are left alone). The authentication-string key file is not touched: a key
/// that others could read is refused, not repaired ([`Error::KeyFilePermissions`]).
///
/// Each change is logged (a `tracing` warning) and returned, so a caller can print it.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be created, listed or changed.
pub fn secure_data_dir(data_dir: &Path) -> Result<Vec<Tightened>, Error> {
    let io = Error::io;
    DirBuilder::new()
        .recursive(true)
        .mode(DATA_DIR_MODE)
        .create(data_dir)
        .map_err(io("creating the data directory", data_dir))?;
    let mut tightened = Vec::new();
    tighten(data_dir, &mut tightened)?;
    let entries = fs::read_dir(data_dir).map_err(io("listing the data directory", data_dir))?;
    for entry in entries {
        let entry = entry.map_err(io("listing the data directory", data_dir))?;
        if entry.file_name() == SqliteStore::KEY_FILE {
            continue;
        }
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            // Removed meanwhile.
            Err(_) => continue,
        };
        if kind.is_dir() || kind.is_file() {
            tighten(&path, &mut tightened)?;
        }
    }
    for change in &tightened {
        tracing::warn!("{change}");
    }
    Ok(tightened)
}

/// What [`DATA_DIR_MODE`] and [`DATA_FILE_MODE`] leave out.
const GROUP_AND_OTHERS: u32 = 0o077;

/// Takes the group's and others' bits off `path` (a directory or a regular file, not a link).
fn tighten(path: &Path, tightened: &mut Vec<Tightened>) -> Result<(), Error> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                action: "reading the permissions of",
                path: path.to_owned(),
                source,
            });
        }
    };
    let from = meta.permissions().mode() & 0o7777;
    if from & GROUP_AND_OTHERS == 0 {
        return Ok(());
    }
    let to = from & !GROUP_AND_OTHERS;
    fs::set_permissions(path, fs::Permissions::from_mode(to)).map_err(|source| Error::Io {
        action: "tightening the permissions of",
        path: path.to_owned(),
        source,
    })?;
    tightened.push(Tightened {
        path: path.to_owned(),
        from,
        to,
    });
    Ok(())
}

/// Creates the database file empty with mode 0600 when missing, so SQLite (which gives its
/// -wal and -shm files the database's mode) never creates it with the umask's 0644.
pub(crate) fn create_private_file(path: &Path) -> Result<(), Error> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DATA_FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Io {
            action: "creating the database",
            path: path.to_owned(),
            source,
        }),
    }
}
