//! The keys a reader checks signatures with: several, by id, so a log signed before and
//! after a key change verifies with both keys given. A signature names its key by `kid`; a
//! signature without one (logs from before key ids) is checked against every key given.

use std::collections::BTreeMap;
use std::path::Path;

use crate::chain::{KeyError, SigningKey};

/// Keys by id, plus at most one key without an id.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    named: BTreeMap<String, SigningKey>,
    unnamed: Option<SigningKey>,
}

/// Why a set of keys cannot be used together.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("key id {0:?} is given twice; give each key id once")]
    DuplicateId(String),
    #[error(
        "more than one key without an id; give each key an id with --key ID=FILE (the id its \
         records carry as `kid`)"
    )]
    SeveralUnnamed,
    #[error("{0:?} is not ID=FILE (e.g. --key 2026-03=/etc/fife/audit-key)")]
    NotIdEqualsFile(String),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl KeyRing {
    /// A ring of `keys`; their ids must differ, and at most one may have none.
    pub fn from_keys(keys: Vec<SigningKey>) -> Result<Self, KeyRingError> {
        let mut ring = KeyRing::default();
        for key in keys {
            match key.id().map(str::to_owned) {
                Some(id) => {
                    if ring.named.insert(id.clone(), key).is_some() {
                        return Err(KeyRingError::DuplicateId(id));
                    }
                }
                None if ring.unnamed.is_some() => return Err(KeyRingError::SeveralUnnamed),
                None => ring.unnamed = Some(key),
            }
        }
        Ok(ring)
    }

    /// Reads `ID=FILE` (as given to `--key`).
    pub fn read_named(spec: &str) -> Result<SigningKey, KeyRingError> {
        let (id, file) = spec
            .split_once('=')
            .filter(|(id, file)| !id.is_empty() && !file.is_empty())
            .ok_or_else(|| KeyRingError::NotIdEqualsFile(spec.to_owned()))?;
        Ok(SigningKey::from_file(Path::new(file))?.with_id(id))
    }

    pub fn is_empty(&self) -> bool {
        self.named.is_empty() && self.unnamed.is_none()
    }

    /// The key for a signature naming `kid`: the key of that id; for a signature without a
    /// kid, the unnamed key, or the only key when there is one.
    pub fn for_id(&self, kid: Option<&str>) -> Option<&SigningKey> {
        match kid {
            Some(kid) => self.named.get(kid).or_else(|| {
                // A single unnamed key given with --key-file stands for whatever id it was
                // deployed under.
                self.named
                    .is_empty()
                    .then_some(self.unnamed.as_ref())
                    .flatten()
            }),
            None => self.unnamed.as_ref().or_else(|| {
                (self.named.len() == 1)
                    .then(|| self.named.values().next())
                    .flatten()
            }),
        }
    }

    /// Whether `sig` over `message` verifies with the key `kid` names; a signature without a
    /// kid verifies when any key of the ring made it.
    pub fn verify(&self, kid: Option<&str>, message: &[u8], sig: &str) -> KeyCheck {
        match kid {
            Some(_) => match self.for_id(kid) {
                Some(key) if key.verify(message, sig) => KeyCheck::Valid,
                Some(_) => KeyCheck::Invalid,
                None => KeyCheck::UnknownKey,
            },
            None => {
                let any = self
                    .named
                    .values()
                    .chain(self.unnamed.iter())
                    .any(|k| k.verify(message, sig));
                if any {
                    KeyCheck::Valid
                } else {
                    KeyCheck::Invalid
                }
            }
        }
    }
}

/// The outcome of checking one signature against a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    Valid,
    Invalid,
    UnknownKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8], id: Option<&str>) -> SigningKey {
        let key = SigningKey::new(bytes.to_vec()).unwrap();
        match id {
            Some(id) => key.with_id(id),
            None => key,
        }
    }

    #[test]
    fn signatures_are_checked_with_the_key_they_name() {
        let old = key(b"old", Some("2026-01"));
        let new = key(b"new", Some("2026-03"));
        let ring = KeyRing::from_keys(vec![old.clone(), new.clone()]).unwrap();
        let sig_old = old.sign(b"m");
        assert_eq!(
            ring.verify(Some("2026-01"), b"m", &sig_old),
            KeyCheck::Valid
        );
        assert_eq!(
            ring.verify(Some("2026-03"), b"m", &sig_old),
            KeyCheck::Invalid
        );
        assert_eq!(
            ring.verify(Some("2025-12"), b"m", &sig_old),
            KeyCheck::UnknownKey
        );
        // A signature from before key ids verifies with whichever key made it.
        assert_eq!(ring.verify(None, b"m", &new.sign(b"m")), KeyCheck::Valid);
        assert_eq!(
            ring.verify(None, b"m", &key(b"other", None).sign(b"m")),
            KeyCheck::Invalid
        );
    }

    #[test]
    fn ids_are_unique_and_one_key_may_go_without() {
        assert!(matches!(
            KeyRing::from_keys(vec![key(b"a", Some("x")), key(b"b", Some("x"))]),
            Err(KeyRingError::DuplicateId(_))
        ));
        assert!(matches!(
            KeyRing::from_keys(vec![key(b"a", None), key(b"b", None)]),
            Err(KeyRingError::SeveralUnnamed)
        ));
        assert!(matches!(
            KeyRing::read_named("no-equals"),
            Err(KeyRingError::NotIdEqualsFile(_))
        ));
        let single = KeyRing::from_keys(vec![key(b"a", None)]).unwrap();
        assert!(single.for_id(Some("any")).is_some());
    }
}
