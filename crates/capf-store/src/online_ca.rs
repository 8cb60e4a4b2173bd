//! The Online CA password, sealed for the store.
//!
//! ChaCha20-Poly1305 (RFC 8439) under a key derived from the data directory's key file
//! (`auth-string.key`) by HMAC-SHA-256 with its own label, so one key file serves both uses
//! without either revealing the other. A copy of the database alone does not reveal the
//! password; the nonce is random per sealing and stored in front of the ciphertext.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Error;
use crate::auth::AUTH_KEY_LEN;
use capf_lsc::Secret;

/// The label the sealing key is derived under.
const LABEL: &[u8] = b"capf online CA password v1";
/// Bound to the ciphertext as associated data: a sealed password is only ever opened as one.
const AAD: &[u8] = b"online_ca.sealed_password";
/// ChaCha20-Poly1305's nonce length.
const NONCE_LEN: usize = 12;

fn cipher(key: &[u8; AUTH_KEY_LEN]) -> ChaCha20Poly1305 {
    let mut block = [0u8; 64];
    block[..AUTH_KEY_LEN].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new(&block.into());
    mac.update(LABEL);
    let derived = mac.finalize().into_bytes();
    let key: [u8; 32] = derived.into();
    ChaCha20Poly1305::new(&Key::from(key))
}

/// Seals `password`: a random 12-byte nonce, then the ciphertext and its tag.
pub(crate) fn seal(key: &[u8; AUTH_KEY_LEN], password: &Secret) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|source| Error::Random { source })?;
    let sealed = cipher(key)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: password.expose().as_bytes(),
                aad: AAD,
            },
        )
        .map_err(|_| Error::SealedPassword)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] made under the same key.
pub(crate) fn open(key: &[u8; AUTH_KEY_LEN], sealed: &[u8]) -> Result<Secret, Error> {
    let (nonce, ciphertext) = sealed
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(Error::SealedPassword)?;
    let clear = cipher(key)
        .decrypt(
            &Nonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad: AAD,
            },
        )
        .map_err(|_| Error::SealedPassword)?;
    String::from_utf8(clear)
        .map(Secret::new)
        .map_err(|_| Error::SealedPassword)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_sealed_password_opens_only_under_its_key_and_does_not_show() {
        let key = [7u8; AUTH_KEY_LEN];
        let sealed = seal(&key, &Secret::new("estpwd")).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"estpwd"));
        assert_eq!(open(&key, &sealed).unwrap().expose(), "estpwd");
        assert!(matches!(
            open(&[8u8; AUTH_KEY_LEN], &sealed),
            Err(Error::SealedPassword)
        ));
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert!(open(&key, &altered).is_err());
        // A random nonce per sealing.
        assert_ne!(seal(&key, &Secret::new("estpwd")).unwrap(), sealed);
    }
}
