//! Channel secrets at rest (SPEC §8.2): backend credentials that channel owners hand the
//! hub, kept encrypted in the `channel_secrets` table and shown back only as a
//! fingerprint and a hint.
//!
//! [`SecretCipher`] is the pure part: XChaCha20-Poly1305 under the `kachery-v1:secrets`
//! sub-key of the master key, a fresh random 24-byte nonce per write, and the associated
//! data `channel:<id>:<kind>:<key_id>`, so a ciphertext copied to another channel's or
//! another kind's row, or read under another master key, fails to decrypt instead of
//! handing out the wrong credential. `key_id` names the master key a row was written
//! under (8 hex digits of the SHA-256 of the derived secrets key), so
//! [`crate::rotate_master_key`] can tell old rows from new ones.
//!
//! [`Vault`] adds the database: it decrypts one channel's secret when a backend needs it.
//! Plaintext lives only in [`SecretString`], which zeroizes its buffer on drop and has no
//! `Debug` or `Display` that shows the value.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kachery_protocol::user_api::SecretKind;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::db::{DbError, HubDb, SealedSecret};
use crate::keys::MasterKey;

/// Fewest characters a secret may have: shorter ones would be mostly revealed by the
/// 4-character hint, and no supported backend issues keys that short.
pub const MIN_SECRET_CHARS: usize = 16;
/// Most bytes a secret may have; a GCS service-account file is about 2.4 KB.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// A secret in plaintext: zeroized on drop, never printed.
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The value itself. Callers hand it to a backend client and nowhere else: never to a
    /// log, an error message or a response.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 8 hex digits of the SHA-256 of the value: enough to tell two values apart.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..4])
    }

    /// `…` followed by the value's last 4 characters.
    pub fn hint(&self) -> String {
        let n_chars = self.0.chars().count();
        let tail: String = self.0.chars().skip(n_chars.saturating_sub(4)).collect();
        format!("…{tail}")
    }

    /// Checks the value is worth storing; the reason never quotes the value.
    pub fn validate(&self) -> Result<(), InvalidSecret> {
        if self.0.len() > MAX_SECRET_BYTES {
            return Err(InvalidSecret::TooLong);
        }
        if self.0.trim().chars().count() < MIN_SECRET_CHARS {
            return Err(InvalidSecret::TooShort);
        }
        if self
            .0
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(InvalidSecret::ControlCharacters);
        }
        Ok(())
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Why a secret value is refused before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSecret {
    #[error("the secret is shorter than {MIN_SECRET_CHARS} characters (whitespace aside)")]
    TooShort,
    #[error("the secret is longer than {MAX_SECRET_BYTES} bytes")]
    TooLong,
    #[error("the secret holds control characters other than newlines and tabs")]
    ControlCharacters,
}

/// Why a secret could not be encrypted or decrypted. No variant carries plaintext.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    #[error("no {kind} secret is stored for channel {channel_id}")]
    Missing { channel_id: i64, kind: SecretKind },
    #[error(
        "the {kind} secret of channel {channel_id} was written under master key {found}, but \
         this hub runs key {expected}; finish `kachery hub rotate-key` or restore the old key"
    )]
    WrongKey {
        channel_id: i64,
        kind: SecretKind,
        found: String,
        expected: String,
    },
    #[error(
        "the {kind} secret of channel {channel_id} failed authentication: the row was altered \
         or moved; the channel owner must set it again"
    )]
    Inauthentic { channel_id: i64, kind: SecretKind },
    #[error("failed to encrypt a {kind} secret")]
    Encrypt { kind: SecretKind },
    #[error("the OS random source failed")]
    Random(#[source] getrandom::Error),
    #[error("failed to read channel secrets")]
    Db(#[source] DbError),
}

/// An encrypted secret ready for its row, with the public facts about it.
#[derive(Clone)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub xnonce: [u8; 24],
    pub key_id: String,
    pub fingerprint: String,
    pub hint: String,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// XChaCha20-Poly1305 under one master key's secrets sub-key.
pub struct SecretCipher {
    aead: XChaCha20Poly1305,
    key_id: String,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCipher")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SecretCipher {
    /// The cipher of `master_key`'s `kachery-v1:secrets` sub-key.
    pub fn new(master_key: &MasterKey) -> Self {
        Self::from_secrets_key(&master_key.derive().secrets)
    }

    fn from_secrets_key(secrets_key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(secrets_key);
        Self {
            aead: XChaCha20Poly1305::new(secrets_key.into()),
            key_id: hex::encode(&digest[..4]),
        }
    }

    /// Names the master key this cipher belongs to; stored with every row it writes.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `value` for the row (`channel_id`, `kind`) with a fresh random nonce.
    pub fn seal(
        &self,
        channel_id: i64,
        kind: SecretKind,
        value: &SecretString,
    ) -> Result<Sealed, VaultError> {
        let mut xnonce = [0u8; 24];
        getrandom::fill(&mut xnonce).map_err(VaultError::Random)?;
        self.seal_with_nonce(channel_id, kind, value, xnonce)
    }

    fn seal_with_nonce(
        &self,
        channel_id: i64,
        kind: SecretKind,
        value: &SecretString,
        xnonce: [u8; 24],
    ) -> Result<Sealed, VaultError> {
        let aad = associated_data(channel_id, kind, &self.key_id);
        let payload = Payload {
            msg: value.expose().as_bytes(),
            aad: aad.as_bytes(),
        };
        let ciphertext = self
            .aead
            .encrypt(&XNonce::from(xnonce), payload)
            .map_err(|_| VaultError::Encrypt { kind })?;
        Ok(Sealed {
            ciphertext,
            xnonce,
            key_id: self.key_id.clone(),
            fingerprint: value.fingerprint(),
            hint: value.hint(),
        })
    }

    /// Decrypts a stored row; fails unless it was sealed by this key for exactly this
    /// channel and kind.
    pub fn open(&self, stored: &SealedSecret) -> Result<SecretString, VaultError> {
        let (channel_id, kind) = (stored.channel_id, stored.kind);
        if stored.key_id != self.key_id {
            return Err(VaultError::WrongKey {
                channel_id,
                kind,
                found: stored.key_id.clone(),
                expected: self.key_id.clone(),
            });
        }
        let aad = associated_data(channel_id, kind, &self.key_id);
        let payload = Payload {
            msg: &stored.ciphertext,
            aad: aad.as_bytes(),
        };
        let inauthentic = || VaultError::Inauthentic { channel_id, kind };
        let plaintext = self
            .aead
            .decrypt(&XNonce::from(stored.xnonce), payload)
            .map_err(|_| inauthentic())?;
        // Into a zeroizing String without copying; bytes that are not UTF-8 are wiped.
        let text = String::from_utf8(plaintext).map_err(|error| {
            drop(Zeroizing::new(error.into_bytes()));
            inauthentic()
        })?;
        Ok(SecretString::new(text))
    }
}

/// `channel:<id>:<kind>:<key_id>`: ties a ciphertext to its row and its master key.
fn associated_data(channel_id: i64, kind: SecretKind, key_id: &str) -> String {
    format!("channel:{channel_id}:{kind}:{key_id}")
}

/// The hub's access to decrypted channel secrets.
pub struct Vault {
    cipher: SecretCipher,
    db: Arc<dyn HubDb>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub fn new(cipher: SecretCipher, db: Arc<dyn HubDb>) -> Self {
        Self { cipher, db }
    }

    /// A vault for `master_key` over `db`.
    pub fn for_master_key(master_key: &MasterKey, db: Arc<dyn HubDb>) -> Self {
        Self::new(SecretCipher::new(master_key), db)
    }

    pub fn cipher(&self) -> &SecretCipher {
        &self.cipher
    }

    /// The plaintext of one channel secret.
    ///
    /// Called when the hub issues a credential for the channel's own bucket or broker:
    /// presigning S3 or GCS URLs, signing NATS user JWTs, minting Ably tokens (SPEC §6.2,
    /// §7.2). Keep the result for that one issuance only and drop it.
    pub async fn decrypt(
        &self,
        channel_id: i64,
        kind: SecretKind,
    ) -> Result<SecretString, VaultError> {
        let stored = self
            .db
            .sealed_secret(channel_id, kind)
            .await
            .map_err(VaultError::Db)?
            .ok_or(VaultError::Missing { channel_id, kind })?;
        self.cipher.open(&stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];
    const NONCE: [u8; 24] = [9u8; 24];
    const VALUE: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn secret() -> SecretString {
        SecretString::new(VALUE.to_owned())
    }

    fn stored(sealed: &Sealed, channel_id: i64, kind: SecretKind) -> SealedSecret {
        SealedSecret {
            channel_id,
            kind,
            ciphertext: sealed.ciphertext.clone(),
            xnonce: sealed.xnonce,
            key_id: sealed.key_id.clone(),
        }
    }

    #[test]
    fn fingerprint_and_hint_show_only_what_the_spec_allows() {
        let value = SecretString::new("hello world, this is a secret".to_owned());
        let digest = Sha256::digest(b"hello world, this is a secret");
        assert_eq!(value.fingerprint(), hex::encode(&digest[..4]));
        assert_eq!(value.fingerprint().len(), 8);
        assert_eq!(value.hint(), "…cret");
        assert_eq!(SecretString::new("ab€d".to_owned()).hint(), "…ab€d");
        assert_eq!(format!("{value:?}"), "SecretString(<redacted>)");
    }

    #[test]
    fn validation_refuses_short_long_and_binary_values_without_quoting_them() {
        assert_eq!(secret().validate(), Ok(()));
        let short = SecretString::new("   short     ".to_owned());
        assert_eq!(short.validate(), Err(InvalidSecret::TooShort));
        let long = SecretString::new("x".repeat(MAX_SECRET_BYTES + 1));
        assert_eq!(long.validate(), Err(InvalidSecret::TooLong));
        let binary = SecretString::new(format!("{VALUE}\u{0}"));
        assert_eq!(binary.validate(), Err(InvalidSecret::ControlCharacters));
        let json = SecretString::new("{\n\t\"type\": \"service_account\"\n}\n".to_owned());
        assert_eq!(json.validate(), Ok(()));
    }

    #[test]
    fn fixed_inputs_give_fixed_output_and_round_trip() {
        let cipher = SecretCipher::from_secrets_key(&KEY);
        let digest = Sha256::digest(KEY);
        assert_eq!(cipher.key_id(), hex::encode(&digest[..4]));
        assert_eq!(
            associated_data(5, SecretKind::S3SecretAccessKey, cipher.key_id()),
            "channel:5:s3SecretAccessKey:4bb06f8e"
        );

        let kind = SecretKind::S3SecretAccessKey;
        let first = cipher.seal_with_nonce(5, kind, &secret(), NONCE).unwrap();
        let again = cipher.seal_with_nonce(5, kind, &secret(), NONCE).unwrap();
        assert_eq!(first.ciphertext, again.ciphertext);
        // The ciphertext is the plaintext's length plus the 16-byte Poly1305 tag.
        assert_eq!(first.ciphertext.len(), VALUE.len() + 16);
        assert!(!contains(&first.ciphertext, VALUE.as_bytes()));
        // Pinned: stored rows must keep decrypting, so the key id, the associated data
        // format and the cipher must never change silently.
        assert_eq!(cipher.key_id(), "4bb06f8e");
        assert_eq!(
            hex::encode(&first.ciphertext),
            "c93883e60ef22c169a544d71215c4cdc67b7f2d4074effb1dedf7e35907f1603\
             c367109797c0f00ddc89484f9a4b59166cf7fb1bc5538def"
        );

        let opened = cipher.open(&stored(&first, 5, kind)).unwrap();
        assert_eq!(opened.expose(), VALUE);
    }

    #[test]
    fn every_write_gets_a_fresh_nonce() {
        let cipher = SecretCipher::from_secrets_key(&KEY);
        let kind = SecretKind::AblyApiKey;
        let first = cipher.seal(1, kind, &secret()).unwrap();
        let second = cipher.seal(1, kind, &secret()).unwrap();
        assert_ne!(first.xnonce, second.xnonce);
        assert_ne!(first.ciphertext, second.ciphertext);
    }

    #[test]
    fn a_ciphertext_opens_only_for_its_own_channel_kind_and_key() {
        let cipher = SecretCipher::from_secrets_key(&KEY);
        let kind = SecretKind::NatsAccountSeed;
        let sealed = cipher.seal_with_nonce(5, kind, &secret(), NONCE).unwrap();

        let moved = cipher.open(&stored(&sealed, 6, kind)).unwrap_err();
        assert!(matches!(
            moved,
            VaultError::Inauthentic { channel_id: 6, .. }
        ));
        let other_kind = stored(&sealed, 5, SecretKind::AblyApiKey);
        assert!(matches!(
            cipher.open(&other_kind),
            Err(VaultError::Inauthentic { .. })
        ));

        let mut tampered = stored(&sealed, 5, kind);
        tampered.ciphertext[0] ^= 1;
        assert!(matches!(
            cipher.open(&tampered),
            Err(VaultError::Inauthentic { .. })
        ));

        // Another master key: refused by key id, and by the tag if the id is forged.
        let other = SecretCipher::from_secrets_key(&[8u8; 32]);
        assert!(matches!(
            other.open(&stored(&sealed, 5, kind)),
            Err(VaultError::WrongKey { .. })
        ));
        let mut forged = stored(&sealed, 5, kind);
        forged.key_id = other.key_id().to_owned();
        assert!(matches!(
            other.open(&forged),
            Err(VaultError::Inauthentic { .. })
        ));
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }
}
