//! Authentication strings: UCM's rule, the HMAC the store keeps instead of the string, and the
//! key file.
//!
//! # Why an HMAC under a key outside the database, and not a password hash
//!
//! An authentication string is 4 to 10 digits: about 1.1 × 10^10 candidates at most, and usually
//! 4 to 6 digits (10^4 to 10^6) in practice. A plain (even salted) SHA-256 of it is brute-forced in well under a
//! second by anyone holding a copy of the database, so it protects nothing. A slow password hash
//! (Argon2, scrypt) makes each guess expensive, but then provisioning 100,000 phones in bulk
//! costs 100,000 slow hashes, and a few digits are still within reach of a patient attacker.
//! Instead the store keeps HMAC-SHA-256 under a 256-bit random key that lives in a separate file
//! (`auth-string.key`, owner-only permissions), over the device name, a NUL byte and the string:
//! computing it costs a microsecond, a copy of the database alone reveals nothing (every guess
//! needs the key), and the device name in the input makes equal strings on two devices differ in
//! the database. Checking compares tags in constant time ([`hmac::Mac::verify_slice`]).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::Error;

/// The length of the HMAC key, in bytes.
pub const AUTH_KEY_LEN: usize = 32;

/// The shortest authentication string UCM accepts, in digits.
pub const AUTH_STRING_MIN_LEN: usize = 4;
/// The longest authentication string UCM accepts, in digits.
pub const AUTH_STRING_MAX_LEN: usize = 10;

/// Whether `candidate` follows UCM's rule: 4 to 10 ASCII digits.
pub fn is_valid_auth_string(candidate: &str) -> bool {
    (AUTH_STRING_MIN_LEN..=AUTH_STRING_MAX_LEN).contains(&candidate.len())
        && candidate.bytes().all(|b| b.is_ascii_digit())
}

/// Checks `candidate` against UCM's rule for `device` (exported as `validate_auth_string`);
/// the error never shows the string.
///
/// # Errors
/// [`Error::InvalidAuthString`].
pub fn validate(device: &str, candidate: &str) -> Result<(), Error> {
    if is_valid_auth_string(candidate) {
        Ok(())
    } else {
        Err(Error::InvalidAuthString {
            device: device.to_owned(),
            len: candidate.chars().count(),
            all_digits: candidate.chars().all(|c| c.is_ascii_digit()),
        })
    }
}

fn mac(key: &[u8; AUTH_KEY_LEN], device: &str, string: &str) -> Hmac<Sha256> {
    // HMAC pads a key shorter than the hash's 64-byte block with zeros (RFC 2104), so padding
    // it here gives the same MAC as the 32-byte key, through the infallible constructor.
    let mut block = [0u8; 64];
    block[..AUTH_KEY_LEN].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(device.as_bytes());
    mac.update(&[0]);
    mac.update(string.as_bytes());
    mac
}

/// HMAC-SHA-256 under `key` over `device` + NUL + `string`: what the store keeps.
pub(crate) fn tag(key: &[u8; AUTH_KEY_LEN], device: &str, string: &str) -> Vec<u8> {
    mac(key, device, string).finalize().into_bytes().to_vec()
}

/// Whether `candidate` is the string whose tag is `expected`, compared in constant time.
pub(crate) fn verify(
    key: &[u8; AUTH_KEY_LEN],
    device: &str,
    candidate: &str,
    expected: &[u8],
) -> bool {
    mac(key, device, candidate).verify_slice(expected).is_ok()
}

/// Reads the key file at `path`, or creates it with 32 random bytes when it does not exist.
///
/// Creation is atomic: the key is written and synced to a temporary file (created with
/// `create_new` and mode 0600) which is then hard-linked to `path`, which fails if `path` exists;
/// so `path` is either absent or complete, even after a crash, and two processes opening the
/// same directory at once agree on one key.
pub(crate) fn load_or_create_key(path: &Path) -> Result<[u8; AUTH_KEY_LEN], Error> {
    match read_key(path) {
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
        other => return other,
    }
    let mut key = [0u8; AUTH_KEY_LEN];
    getrandom::fill(&mut key).map_err(|source| Error::Random { source })?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|source| Error::Random { source })?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        crate::types::hex(&suffix)
    ));
    let io = Error::io;
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("creating the key file", &tmp))?;
        file.write_all(&key)
            .and_then(|()| file.sync_all())
            .map_err(io("writing the key file", &tmp))?;
    }
    let linked = fs::hard_link(&tmp, path);
    // The temporary name is only a step: remove it whatever happened.
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io("syncing the data directory", dir))?;
            }
            Ok(key)
        }
        // Another process created it first: use its key.
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read_key(path),
        Err(source) => Err(Error::Io {
            action: "creating the key file",
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_key(path: &Path) -> Result<[u8; AUTH_KEY_LEN], Error> {
    let io = |action| {
        move |source| Error::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let file = File::open(path).map_err(io("opening the key file"))?;
    let meta = file
        .metadata()
        .map_err(io("reading the key file's metadata"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyFilePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if !meta.is_file() || meta.len() != AUTH_KEY_LEN as u64 {
        return Err(Error::KeyFileLength {
            path: path.to_owned(),
            len: meta.len(),
        });
    }
    let mut bytes = Vec::with_capacity(AUTH_KEY_LEN + 1);
    file.take(AUTH_KEY_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io("reading the key file"))?;
    <[u8; AUTH_KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| Error::KeyFileLength {
        path: path.to_owned(),
        len: bytes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_4_to_10_digits_only() {
        for good in ["0000", "1234", "123456789", "0123456789"] {
            assert!(is_valid_auth_string(good), "{good}");
            assert!(validate("SEP001122334455", good).is_ok());
        }
        for bad in [
            "",
            "123",
            "12345678901",
            "12a4",
            "１２３４",
            "1234 ",
            "-1234",
            "12.4",
        ] {
            assert!(!is_valid_auth_string(bad), "{bad}");
            assert!(matches!(
                validate("SEP001122334455", bad),
                Err(Error::InvalidAuthString { .. })
            ));
        }
    }

    #[test]
    fn error_names_the_rule_but_not_the_string() {
        let message = validate("SEP001122334455", "98a7")
            .err()
            .map(|e| e.to_string());
        let message = message.unwrap_or_default();
        assert!(message.contains("4 to 10 ASCII digits"), "{message}");
        assert!(message.contains("not all of them digits"), "{message}");
        assert!(!message.contains("98a7"), "{message}");
    }

    #[test]
    fn padded_key_gives_the_rfc_2104_mac_of_the_32_byte_key() {
        let key = [7u8; AUTH_KEY_LEN];
        let mut reference = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
        reference.update(b"SEP001122334455\x001234");
        assert_eq!(
            tag(&key, "SEP001122334455", "1234"),
            reference.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn tag_depends_on_device_string_and_key() {
        let key = [1u8; AUTH_KEY_LEN];
        let t = tag(&key, "SEP001122334455", "1234");
        assert_eq!(t.len(), 32);
        assert_ne!(t, tag(&key, "SEP001122334456", "1234"));
        assert_ne!(t, tag(&key, "SEP001122334455", "1235"));
        assert_ne!(t, tag(&[2u8; AUTH_KEY_LEN], "SEP001122334455", "1234"));
        // The NUL separator keeps (name, string) pairs apart.
        assert_ne!(tag(&key, "A1", "2345"), tag(&key, "A", "12345"));
        assert!(verify(&key, "SEP001122334455", "1234", &t));
        assert!(!verify(&key, "SEP001122334455", "4321", &t));
        assert!(!verify(&key, "SEP001122334455", "1234", &t[..31]));
    }
}
