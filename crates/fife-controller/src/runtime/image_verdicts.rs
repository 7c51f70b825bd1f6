//! Image verdicts for the release policy's signature gate: the trusted keys read from the
//! policy's keys Secret, and one verification per image digest and key set, remembered so a
//! reconcile does not ask the registry again.
//!
//! ```text
//!  keys Secret ─▶ trusted_keys (pure) ─┐
//!  images of the new template ─────────┴▶ ImageVerifier::verdicts ─▶ cache hit? ─▶ verdict
//!                                                         └ miss ─▶ registry (fife-provenance)
//! ```
//!
//! The cache is keyed by the image reference and the fingerprints of the keys (and the
//! provenance conditions), so a changed keys Secret verifies every image again. A verified
//! digest stays verified for that key set; a refusal is checked again after
//! [`REFUSED_RECHECK`], because a signature may be pushed after the rollout was refused; a
//! registry that could not be asked is not remembered at all.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fife_provenance::{Registry, Requirements, TrustedKey};
use k8s_openapi::ByteString;

/// How long a refusal is believed before the registry is asked again.
pub const REFUSED_RECHECK: Duration = Duration::from_secs(60);
/// Verdicts kept at most; past it the oldest are forgotten (and verified again if asked).
const MAX_VERDICTS: usize = 4096;

/// The answer for one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageCheck {
    /// The sentence naming the key that signed it (and the provenance).
    Verified(String),
    /// The sentence naming the image, the key and what failed.
    Refused(String),
    /// The registry could not be asked; the image stays unverified and is asked again.
    Unchecked(String),
}

/// The keys of the policy's Secret: every data entry is one PEM public key, named in
/// messages as `SECRET/KEY`. A Secret without a usable key is an error: it would refuse
/// every image with a message about signatures when the fault is the Secret.
pub fn trusted_keys(
    secret: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<Vec<TrustedKey>, String> {
    if data.is_empty() {
        return Err(format!(
            "Secret {secret} has no keys; add each trusted public key (cosign.pub) as one data entry"
        ));
    }
    data.iter()
        .map(|(name, value)| {
            let name = format!("{secret}/{name}");
            let pem = std::str::from_utf8(&value.0).map_err(|_| {
                format!("key {name} is not UTF-8 text; store the PEM public key as it is")
            })?;
            TrustedKey::from_pem(name, pem).map_err(|e| e.to_string())
        })
        .collect()
}

/// What identifies a set of requirements in the cache: the keys' fingerprints and the
/// provenance conditions.
fn requirements_id(requirements: &Requirements) -> String {
    let mut fingerprints: Vec<&str> = requirements
        .keys
        .iter()
        .map(TrustedKey::fingerprint)
        .collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    let provenance = requirements
        .provenance
        .as_ref()
        .map(|p| serde_json::to_string(p).expect("provenance conditions always serialize"))
        .unwrap_or_default();
    format!("{}|{provenance}", fingerprints.join(","))
}

/// Remembered verdicts. Pure: time comes in as `now`.
#[derive(Debug, Default)]
pub struct VerdictCache {
    entries: HashMap<(String, String), (ImageCheck, Instant)>,
}

impl VerdictCache {
    /// The remembered verdict, if it is still believed at `now`.
    pub fn get(&self, image: &str, requirements: &str, now: Instant) -> Option<ImageCheck> {
        let (check, at) = self
            .entries
            .get(&(image.to_string(), requirements.to_string()))?;
        match check {
            ImageCheck::Verified(_) => Some(check.clone()),
            ImageCheck::Refused(_) if now.saturating_duration_since(*at) < REFUSED_RECHECK => {
                Some(check.clone())
            }
            _ => None,
        }
    }

    /// Remembers a verdict; an unchecked image is not remembered.
    pub fn put(&mut self, image: &str, requirements: &str, check: ImageCheck, now: Instant) {
        if matches!(check, ImageCheck::Unchecked(_)) {
            return;
        }
        if self.entries.len() >= MAX_VERDICTS {
            let mut ages: Vec<Instant> = self.entries.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            self.entries.retain(|_, (_, at)| *at > cut);
        }
        self.entries
            .insert((image.to_string(), requirements.to_string()), (check, now));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Verifies images against a registry, each digest once per key set.
#[derive(Debug)]
pub struct ImageVerifier {
    registry: Registry,
    cache: Mutex<VerdictCache>,
    keys_namespace: String,
}

impl ImageVerifier {
    /// `plain_http`: registry hosts reached over HTTP (a local registry); `keys_namespace`:
    /// where the policies' keys Secrets live (the controller's own namespace).
    pub fn new(plain_http: Vec<String>, keys_namespace: String) -> ImageVerifier {
        ImageVerifier {
            registry: Registry::new(plain_http),
            cache: Mutex::new(VerdictCache::default()),
            keys_namespace,
        }
    }

    /// The namespace of the policies' keys Secrets.
    pub fn keys_namespace(&self) -> &str {
        &self.keys_namespace
    }

    /// The verdict of each image, from the cache or the registry.
    pub async fn verdicts(
        &self,
        images: &[String],
        requirements: &Requirements,
    ) -> BTreeMap<String, ImageCheck> {
        let id = requirements_id(requirements);
        let mut out = BTreeMap::new();
        for image in images {
            if out.contains_key(image) {
                continue;
            }
            let cached = self
                .cache
                .lock()
                .expect("the verdict cache is never poisoned")
                .get(image, &id, Instant::now());
            let check = match cached {
                Some(check) => check,
                None => {
                    let check = match self.registry.verify(image, requirements).await {
                        Ok(Ok(verified)) => ImageCheck::Verified(verified.to_string()),
                        Ok(Err(refusal)) => ImageCheck::Refused(refusal.to_string()),
                        Err(e) => ImageCheck::Unchecked(e.to_string()),
                    };
                    self.cache
                        .lock()
                        .expect("the verdict cache is never poisoned")
                        .put(image, &id, check.clone(), Instant::now());
                    check
                }
            };
            out.insert(image.clone(), check);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(entries: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn every_secret_entry_is_a_key_named_by_secret_and_entry() {
        let err = trusted_keys("fife-system/image-keys", &data(&[])).unwrap_err();
        assert!(
            err.starts_with("Secret fife-system/image-keys has no keys"),
            "{err}"
        );
        let err = trusted_keys(
            "fife-system/image-keys",
            &data(&[("cosign.pub", "nonsense")]),
        )
        .unwrap_err();
        assert!(
            err.starts_with("key fife-system/image-keys/cosign.pub: not an ECDSA P-256 public key"),
            "{err}"
        );
    }

    #[test]
    fn verified_is_kept_refused_is_rechecked_unchecked_is_forgotten() {
        let t0 = Instant::now();
        let mut cache = VerdictCache::default();
        cache.put("a", "k1", ImageCheck::Verified("ok".into()), t0);
        cache.put("b", "k1", ImageCheck::Refused("no".into()), t0);
        cache.put("c", "k1", ImageCheck::Unchecked("down".into()), t0);
        let later = t0 + REFUSED_RECHECK * 10;
        assert_eq!(
            cache.get("a", "k1", later),
            Some(ImageCheck::Verified("ok".into()))
        );
        assert_eq!(
            cache.get("a", "k2", t0),
            None,
            "another key set verifies again"
        );
        assert_eq!(
            cache.get("b", "k1", t0 + REFUSED_RECHECK / 2),
            Some(ImageCheck::Refused("no".into()))
        );
        assert_eq!(cache.get("b", "k1", t0 + REFUSED_RECHECK), None);
        assert_eq!(cache.get("c", "k1", t0), None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest() {
        let t0 = Instant::now();
        let mut cache = VerdictCache::default();
        for i in 0..=MAX_VERDICTS {
            cache.put(
                &format!("image-{i}"),
                "k",
                ImageCheck::Verified(String::new()),
                t0 + Duration::from_millis(i as u64),
            );
        }
        assert!(cache.len() <= MAX_VERDICTS / 2 + 1, "{}", cache.len());
        assert!(
            cache
                .get(&format!("image-{MAX_VERDICTS}"), "k", t0)
                .is_some()
        );
        assert!(cache.get("image-0", "k", t0).is_none());
    }
}
