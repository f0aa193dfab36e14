//! Passcodes (SPEC §5.3): minting `<prefix>-<26 Crockford base32>` codes, normalizing what
//! a person types, and the keyed hash under which the hub stores them.
//!
//! A code carries 130 random bits (26 symbols of 5 bits). The hub keeps only
//! HMAC-SHA256(pepper, normalized code), with the pepper derived from the master key
//! ([`crate::keys::SubKeys::passcode_pepper`]), so a database dump alone cannot be used to
//! test guesses offline. Views show a hint, `<prefix>-…<last 4>`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Prefix used when the owner gives none.
pub const DEFAULT_PREFIX: &str = "kachery";
/// Longest prefix accepted (SPEC §21).
pub const MAX_PREFIX_CHARS: usize = 16;
/// Longest label accepted (SPEC §21).
pub const MAX_LABEL_CHARS: usize = 80;
/// Symbols in the random part: 26 × 5 bits = 130 bits.
const CODE_SYMBOLS: usize = 26;
/// Crockford's base32 alphabet: no I, L, O or U, so codes survive being read aloud.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a passcode could not be minted from the owner's settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasscodeSettingsError {
    #[error("prefix must be 1 to 16 characters of a-z, 0-9 and '-'")]
    Prefix,
    #[error("label must be at most 80 characters")]
    Label,
    #[error("roles must name at least one role")]
    NoRoles,
    #[error("maxUses must be at least 1")]
    MaxUses,
    #[error("expiresAt must be in the future")]
    Expiry,
}

impl PasscodeSettingsError {
    /// The request field the error is about, for forms that show errors beside fields.
    pub fn field(&self) -> &'static str {
        match self {
            PasscodeSettingsError::Prefix => "prefix",
            PasscodeSettingsError::Label => "label",
            PasscodeSettingsError::NoRoles => "roles",
            PasscodeSettingsError::MaxUses => "maxUses",
            PasscodeSettingsError::Expiry => "expiresAt",
        }
    }
}

/// Checks an owner-chosen prefix; `None` picks [`DEFAULT_PREFIX`].
pub fn checked_prefix(prefix: Option<&str>) -> Result<String, PasscodeSettingsError> {
    let prefix = prefix.map(str::trim).filter(|text| !text.is_empty());
    let Some(prefix) = prefix else {
        return Ok(DEFAULT_PREFIX.to_owned());
    };
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if prefix.chars().count() > MAX_PREFIX_CHARS || !prefix.chars().all(allowed) {
        return Err(PasscodeSettingsError::Prefix);
    }
    Ok(prefix.to_owned())
}

/// A fresh code with `prefix` (already checked).
pub fn generate(prefix: &str) -> Result<String, getrandom::Error> {
    let mut random = [0u8; CODE_SYMBOLS];
    getrandom::fill(&mut random)?;
    // 256 is a multiple of 32, so the low 5 bits of a uniform byte are uniform.
    let code: String = random
        .iter()
        .map(|byte| char::from(CROCKFORD[usize::from(byte & 0x1f)]))
        .collect();
    Ok(format!("{prefix}-{code}"))
}

/// The canonical form of a typed code: trimmed, prefix lowercased, random part uppercased
/// with Crockford's look-alikes (I, L → 1; O → 0) folded and hyphens or spaces inside it
/// dropped. `None` when it cannot be a passcode at all.
pub fn normalize(typed: &str) -> Option<String> {
    let typed = typed.trim();
    let (prefix, code) = typed
        .rsplit_once('-')
        .filter(|(_, code)| !code.is_empty())?;
    let prefix = prefix.to_ascii_lowercase();
    let mut normalized = String::with_capacity(CODE_SYMBOLS);
    for c in code.chars().filter(|c| !c.is_whitespace()) {
        let c = match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        };
        if !CROCKFORD.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        normalized.push(c);
    }
    (normalized.len() == CODE_SYMBOLS && !prefix.is_empty())
        .then(|| format!("{prefix}-{normalized}"))
}

/// `<prefix>-…<last 4>` of a normalized code.
pub fn hint(code: &str) -> String {
    let (prefix, random) = code.rsplit_once('-').unwrap_or(("", code));
    let last4 = &random[random.len().saturating_sub(4)..];
    format!("{prefix}-…{last4}")
}

/// Hashes normalized codes under the pepper; the database stores only these hashes.
#[derive(Clone)]
pub struct PasscodeHasher {
    pepper: [u8; 32],
}

impl std::fmt::Debug for PasscodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasscodeHasher(<redacted>)")
    }
}

impl PasscodeHasher {
    pub fn new(pepper: [u8; 32]) -> Self {
        Self { pepper }
    }

    /// HMAC-SHA256 of the normalized code, lowercase hex.
    pub fn hash(&self, normalized_code: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.pepper)
            .expect("HMAC-SHA256 accepts a 32-byte key");
        mac.update(normalized_code.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_documented_shape_and_normalize_to_themselves() {
        let code = generate("lab-2").unwrap();
        let (prefix, random) = code.rsplit_once('-').unwrap();
        assert_eq!(prefix, "lab-2");
        assert_eq!(random.len(), 26);
        assert_eq!(normalize(&code).as_deref(), Some(code.as_str()));
        assert_ne!(code, generate("lab-2").unwrap());
        assert_eq!(hint(&code), format!("lab-2-…{}", &random[22..]));
    }

    #[test]
    fn typing_slips_are_forgiven_and_junk_is_refused() {
        let code = "lab-0123456789ABCDEFGHJKMNPQRS";
        assert_eq!(
            normalize("  LAB-o123456789abcdefghjkmnpqrs ").as_deref(),
            Some(code)
        );
        assert_eq!(
            normalize("lab-I123456789ABCDEFGHJKMNPQRS").as_deref(),
            Some("lab-1123456789ABCDEFGHJKMNPQRS")
        );
        assert_eq!(normalize("lab-0123"), None);
        assert_eq!(normalize("0123456789ABCDEFGHJKMNPQRS"), None);
        assert_eq!(normalize("lab-0123456789ABCDEFGHJKMNPQRU"), None);
    }

    #[test]
    fn prefixes_are_checked_and_hashes_depend_on_the_pepper() {
        assert_eq!(checked_prefix(None).unwrap(), DEFAULT_PREFIX);
        assert_eq!(checked_prefix(Some(" ")).unwrap(), DEFAULT_PREFIX);
        assert_eq!(checked_prefix(Some("ok-1")).unwrap(), "ok-1");
        assert!(checked_prefix(Some("Upper")).is_err());
        assert!(checked_prefix(Some("seventeen-chars-x")).is_err());

        let one = PasscodeHasher::new([1; 32]).hash("a-B");
        assert_eq!(one.len(), 64);
        assert_ne!(one, PasscodeHasher::new([2; 32]).hash("a-B"));
    }
}
