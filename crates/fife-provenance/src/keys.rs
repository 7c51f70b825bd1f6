//! Trusted public keys: the PEM keys a policy (a Secret's entries, or files given to `fife
//! verify-image`) trusts, each with the name and fingerprint every message uses for it.

use std::fmt;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use sha2::{Digest, Sha256};

/// One public key a signature may come from.
#[derive(Clone)]
pub struct TrustedKey {
    name: String,
    fingerprint: String,
    key: VerifyingKey,
}

/// A key that cannot be used, named so whoever keeps it can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "key {name}: {problem}; give the PEM public key cosign wrote (cosign.pub, \
     '-----BEGIN PUBLIC KEY-----', ECDSA P-256)"
)]
pub struct KeyError {
    pub name: String,
    pub problem: String,
}

impl TrustedKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo); `name` is the Secret's key or the file
    /// it came from, and is how messages name the key.
    pub fn from_pem(name: impl Into<String>, pem: &str) -> Result<TrustedKey, KeyError> {
        let name = name.into();
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError {
            name: name.clone(),
            problem: if pem.contains("PRIVATE KEY") {
                "this is a private key; only the public key belongs in the policy".to_string()
            } else {
                format!("not an ECDSA P-256 public key in PEM ({e})")
            },
        })?;
        Ok(TrustedKey::new(name, key))
    }

    /// A key already decoded (tests sign with its private half).
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> TrustedKey {
        let der = key
            .to_public_key_der()
            .expect("a P-256 verifying key always encodes as SubjectPublicKeyInfo");
        let fingerprint = format!(
            "sha256:{}",
            &hex::encode(Sha256::digest(der.as_bytes()))[..16]
        );
        TrustedKey {
            name: name.into(),
            fingerprint,
            key,
        }
    }

    /// The Secret key name or file the key came from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The first 16 hex digits of the SHA-256 of the key's DER encoding.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `signature` (ASN.1 DER, as cosign writes it) signs `message` with this key, over
    /// the message's SHA-256.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::from_der(signature) else {
            return false;
        };
        self.key.verify(message, &signature).is_ok()
    }
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedKey({self})")
    }
}

impl fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" ({})", self.name, self.fingerprint)
    }
}

/// The keys of a message, "key A" or "keys A, B".
pub(crate) fn describe(keys: &[TrustedKey]) -> String {
    let names: Vec<String> = keys.iter().map(ToString::to_string).collect();
    match names.len() {
        0 => "no trusted key".to_string(),
        1 => format!("key {}", names[0]),
        _ => format!("keys {}", names.join(", ")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::LineEnding;

    /// A fixed key, so tests are repeatable.
    pub(crate) fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    pub(crate) fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
        let signature: Signature = key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    #[test]
    fn reads_a_pem_public_key_and_checks_its_signatures() {
        let signer = signing_key(7);
        let pem = signer
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let key = TrustedKey::from_pem("cosign.pub", &pem).unwrap();
        assert_eq!(key.name(), "cosign.pub");
        assert!(key.fingerprint().starts_with("sha256:") && key.fingerprint().len() == 23);
        let signature = sign(&signer, b"payload");
        assert!(key.verifies(b"payload", &signature));
        assert!(!key.verifies(b"other payload", &signature));
        assert!(!key.verifies(b"payload", b"not der"));
        let other = TrustedKey::new("other", *signing_key(8).verifying_key());
        assert!(!other.verifies(b"payload", &signature));
        assert_ne!(other.fingerprint(), key.fingerprint());
    }

    #[test]
    fn a_private_key_or_garbage_is_refused_by_name() {
        let err = TrustedKey::from_pem(
            "release",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        )
        .unwrap_err();
        assert_eq!(err.name, "release");
        assert!(err.to_string().contains("only the public key"), "{err}");
        let err = TrustedKey::from_pem("release", "hello").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("key release: not an ECDSA P-256 public key"),
            "{err}"
        );
    }
}
