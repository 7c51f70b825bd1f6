//! What every reconcile shares: the API client, the Event recorder, the audit log, the
//! metric query pool, metrics, leadership and per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fife_audit::AuditLog;
use fife_metrics::ClientPool;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::runtime::image_verdicts::ImageVerifier;
use crate::runtime::leader::Leadership;
use crate::runtime::telemetry::Metrics;

/// The first retry after a failed reconcile; doubles per failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "fife";

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub audit: Arc<AuditLog>,
    pub pool: ClientPool,
    pub metrics: Arc<Metrics>,
    pub leadership: Leadership,
    /// Who acts, as written in audit records and Events.
    pub identity: String,
    /// The signature gate's verdicts, one registry check per digest and key set.
    pub images: ImageVerifier,
    memory: ObjectMemory,
}

/// What the controller remembers per object between reconciles, forgotten when the
/// object is deleted so the maps do not grow with every Rollout that ever existed.
#[derive(Debug, Default)]
pub struct ObjectMemory {
    /// Consecutive failed reconciles, per Rollout (`ns/name`) or AnalysisRun (`run:ns/name`).
    failures: Mutex<HashMap<String, u32>>,
    /// Per Rollout: the resourceVersion a decision was taken from and a digest of the
    /// events recorded for it. See [`ObjectMemory::already_recorded`].
    recorded: Mutex<HashMap<String, (String, String)>>,
}

// The client and recorder have no Debug; the identity is what tells contexts apart.
impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(
        client: Client,
        audit: Arc<AuditLog>,
        metrics: Arc<Metrics>,
        leadership: Leadership,
        identity: String,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "fife".into(),
                instance: Some(identity.clone()),
            },
        );
        Context {
            client,
            recorder,
            audit,
            pool: ClientPool::default(),
            metrics,
            leadership,
            identity,
            images: ImageVerifier::new(Vec::new(), "default".into()),
            memory: ObjectMemory::default(),
        }
    }

    /// The verifier of the signature gate (the default reaches every registry over HTTPS and
    /// reads keys Secrets in `default`).
    pub fn with_image_verifier(mut self, images: ImageVerifier) -> Self {
        self.images = images;
        self
    }

    /// The delay before retrying `key` after another failure.
    pub fn backoff(&self, key: &str) -> Duration {
        self.memory.backoff(key)
    }

    /// Forgets the failures of `key` after a reconcile that succeeded.
    pub fn succeeded(&self, key: &str) {
        self.memory.succeeded(key)
    }

    /// See [`ObjectMemory::already_recorded`].
    pub fn already_recorded(&self, key: &str, resource_version: &str, events: &str) -> bool {
        self.memory.already_recorded(key, resource_version, events)
    }

    pub fn remember_recorded(&self, key: &str, resource_version: &str, events: String) {
        self.memory.remember_recorded(key, resource_version, events)
    }

    /// Forgets everything remembered about `key`: its object was deleted.
    pub fn forget(&self, key: &str) {
        self.memory.forget(key)
    }
}

// === impl ObjectMemory ===

impl ObjectMemory {
    /// The delay before retrying `key` after another failure.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    /// Forgets the failures of `key` after a reconcile that succeeded.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// True when the same events were already recorded for the same version of the
    /// Rollout: an earlier attempt wrote the records, then failed before its status write
    /// landed, and is now being retried. Appending again would record one transition
    /// twice. (Across a restart this memory is gone, and a replay may record it twice.)
    pub fn already_recorded(&self, key: &str, resource_version: &str, events: &str) -> bool {
        let recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        recorded
            .get(key)
            .is_some_and(|(version, digest)| version == resource_version && digest == events)
    }

    pub fn remember_recorded(&self, key: &str, resource_version: &str, events: String) {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), (resource_version.to_owned(), events));
    }

    /// Forgets `key`'s failures and recorded decision.
    pub fn forget(&self, key: &str) {
        self.succeeded(key);
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// How many objects are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .keys()
            .chain(recorded.keys())
            .collect::<std::collections::HashSet<_>>()
            .len()
    }
}

/// `MIN_BACKOFF · 2^(failures − 1)`, at most `MAX_BACKOFF`.
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    MIN_BACKOFF.saturating_mul(1 << exponent).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_object_is_forgotten() {
        let memory = ObjectMemory::default();
        memory.backoff("shop/checkout");
        memory.backoff("shop/checkout");
        memory.remember_recorded("shop/checkout", "41", "Promoted".into());
        memory.remember_recorded("shop/cart", "7", "StepStarted".into());
        assert!(memory.already_recorded("shop/checkout", "41", "Promoted"));
        assert_eq!(memory.len(), 2);

        memory.forget("shop/checkout");
        assert!(!memory.already_recorded("shop/checkout", "41", "Promoted"));
        assert_eq!(
            memory.backoff("shop/checkout"),
            MIN_BACKOFF,
            "failures start again"
        );
        memory.forget("shop/checkout");
        assert_eq!(memory.len(), 1, "only the other Rollout is remembered");
        assert!(memory.already_recorded("shop/cart", "7", "StepStarted"));
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff_delay(1), Duration::from_millis(500));
        assert_eq!(backoff_delay(2), Duration::from_secs(1));
        assert_eq!(backoff_delay(4), Duration::from_secs(4));
        assert_eq!(backoff_delay(40), MAX_BACKOFF);
        assert_eq!(backoff_delay(u32::MAX), MAX_BACKOFF);
    }
}
