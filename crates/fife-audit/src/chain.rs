//! The hash chain: how a record gets its `seq`, `prev`, `hash` and `sig`, and the few
//! hashing rules that sealing and verifying share.
//!
//! ```text
//!   line(n-1) ──sha256──▶ prev(n)
//!   canonical(record n without hash, sig) ──sha256──▶ hash(n)
//!                                         └─hmac(key)─▶ sig(n)
//!   canonical(record n) = line(n)
//! ```

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_string;
use crate::record::{AuditEntry, AuditRecord, GENESIS_PREV};

type HmacSha256 = Hmac<Sha256>;

/// The secret that signs records (and webhook deliveries and heads), with the id written
/// next to each signature so keys can rotate. Its bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct SigningKey {
    bytes: Vec<u8>,
    id: Option<String>,
}

/// A signing key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the audit signing key from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the audit signing key{from} is empty; put at least 16 random bytes in it (for example \
         `head -c 32 /dev/urandom | base64`)"
    )]
    Empty { from: String },
}

impl SigningKey {
    /// A key from its bytes; an empty key is refused because it signs nothing an attacker
    /// could not also sign.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(KeyError::Empty {
                from: String::new(),
            });
        }
        Ok(SigningKey { bytes, id: None })
    }

    /// The same key, known by `id` (written as `kid` next to what it signs).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The key's id, if it has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Reads a key file (or a mounted Secret key): the file's bytes without trailing
    /// whitespace, so a key written by `echo` matches one written without a newline.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let end = bytes
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if end == 0 {
            return Err(KeyError::Empty {
                from: format!(" in {}", path.display()),
            });
        }
        Ok(SigningKey {
            bytes: bytes[..end].to_vec(),
            id: None,
        })
    }

    /// HMAC-SHA256 of `message`, lower-case hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.mac(message).finalize().into_bytes())
    }

    /// Constant-time comparison of `sig_hex` with the signature of `message`.
    pub fn verify(&self, message: &[u8], sig_hex: &str) -> bool {
        match hex::decode(sig_hex) {
            // `hex::decode` accepts upper case, but a signature is written in lower case; a
            // changed case is a changed byte and must not verify.
            Ok(sig) if sig_hex.bytes().all(|b| !b.is_ascii_uppercase()) => {
                self.mac(message).verify_slice(&sig).is_ok()
            }
            _ => false,
        }
    }

    fn mac(&self, message: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.bytes).expect("HMAC takes any key length");
        mac.update(message);
        mac
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "SigningKey({id:?}, {} bytes)", self.bytes.len()),
            None => write!(f, "SigningKey({} bytes)", self.bytes.len()),
        }
    }
}

/// Where the next record goes: its `seq` and the hash of the line before it; and the `hash`
/// field of that line's record, which is what a published head names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub next_seq: u64,
    pub prev: String,
    /// The `hash` of the last record (`None` for an empty log).
    pub last_hash: Option<String>,
}

impl ChainHead {
    /// The head of an empty log.
    pub fn genesis() -> Self {
        ChainHead {
            next_seq: 1,
            prev: GENESIS_PREV.to_string(),
            last_hash: None,
        }
    }

    /// The head after the record written as `line` with sequence number `seq`.
    pub fn after(seq: u64, line: &str) -> Self {
        let last_hash = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("hash")?.as_str().map(str::to_owned));
        ChainHead {
            next_seq: seq + 1,
            prev: line_hash(line),
            last_hash,
        }
    }

    /// The last record's seq and hash, if the log has one.
    pub fn last(&self) -> Option<(u64, &str)> {
        Some((self.next_seq.checked_sub(1)?, self.last_hash.as_deref()?))
    }
}

/// A record with its exact line (without the newline), as it is written and hashed.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedRecord {
    pub record: AuditRecord,
    pub line: String,
}

/// Gives `entry` its place after `head`, hashes and optionally signs it.
pub fn seal(entry: AuditEntry, head: &ChainHead, key: Option<&SigningKey>) -> SealedRecord {
    let mut record = AuditRecord::unsealed(entry, head.next_seq, head.prev.clone());
    // Part of the signed body, so the key id cannot be swapped without the key.
    record.kid = key.and_then(|k| k.id().map(str::to_owned));
    // The record types serialize to plain JSON objects; this cannot fail.
    let mut value = serde_json::to_value(&record).expect("audit records serialize to JSON");
    let body = signed_body(&value);
    record.hash = hex::encode(Sha256::digest(body.as_bytes()));
    record.sig = key.map(|k| k.sign(body.as_bytes()));
    if let Value::Object(map) = &mut value {
        map.insert("hash".into(), Value::String(record.hash.clone()));
        if let Some(sig) = &record.sig {
            map.insert("sig".into(), Value::String(sig.clone()));
        }
    }
    let line = to_canonical_string(&value);
    SealedRecord { record, line }
}

/// The bytes `hash` and `sig` cover: the canonical record without those two fields.
pub(crate) fn signed_body(record: &Value) -> String {
    match record {
        Value::Object(map) => {
            let mut map = map.clone();
            map.remove("hash");
            map.remove("sig");
            to_canonical_string(&Value::Object(map))
        }
        other => to_canonical_string(other),
    }
}

/// SHA-256 (hex) of a record's line, without its newline: the next record's `prev`.
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Actor, AuditAction};
    use chrono::{TimeZone, Utc};

    fn entry() -> AuditEntry {
        let t = Utc.with_ymd_and_hms(2025, 3, 3, 14, 32, 0).unwrap();
        AuditEntry::new(
            t,
            AuditAction::Promoted,
            Actor::controller("fife"),
            "analysis passed",
        )
    }

    #[test]
    fn sealing_is_deterministic_and_links_to_the_head() {
        let head = ChainHead::genesis();
        let a = seal(entry(), &head, None);
        let b = seal(entry(), &head, None);
        assert_eq!(a.line, b.line);
        assert_eq!(a.record.seq, 1);
        assert_eq!(a.record.prev, GENESIS_PREV);
        let next = seal(entry(), &ChainHead::after(1, &a.line), None);
        assert_eq!(next.record.prev, line_hash(&a.line));
        assert_eq!(next.record.seq, 2);
    }

    #[test]
    fn the_line_parses_back_to_the_record() {
        let key = SigningKey::new(b"k".to_vec()).unwrap();
        let sealed = seal(entry(), &ChainHead::genesis(), Some(&key));
        let back: AuditRecord = serde_json::from_str(&sealed.line).unwrap();
        assert_eq!(back, sealed.record);
        assert!(sealed.line.starts_with(r#"{"action":"Promoted","actor":"#));
    }

    #[test]
    fn signature_depends_on_the_key_and_rejects_upper_case() {
        let k1 = SigningKey::new(b"one".to_vec()).unwrap();
        let k2 = SigningKey::new(b"two".to_vec()).unwrap();
        let sig = k1.sign(b"body");
        assert!(k1.verify(b"body", &sig));
        assert!(!k2.verify(b"body", &sig));
        assert!(!k1.verify(b"bodY", &sig));
        assert!(!k1.verify(b"body", &sig.to_uppercase()));
    }

    #[test]
    fn key_file_drops_trailing_newline_and_refuses_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "secret\n").unwrap();
        let key = SigningKey::from_file(&path).unwrap();
        assert!(key.verify(
            b"m",
            &SigningKey::new(b"secret".to_vec()).unwrap().sign(b"m")
        ));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            SigningKey::from_file(&path),
            Err(KeyError::Empty { .. })
        ));
        assert_eq!(format!("{key:?}"), "SigningKey(6 bytes)");
    }
}
