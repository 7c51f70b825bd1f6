//! What every reconcile shares: the API client, the watch caches, the Event publisher, the
//! audit log, the metric query pool, metrics, leadership, the shard and per-object memory (backoff,
//! recorded decisions, the newest Rollout version seen).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fife_audit::AuditLog;
use fife_metrics::ClientPool;
use kube::Client;

use crate::runtime::caches::Caches;
use crate::runtime::events::EventPublisher;
use crate::runtime::image_verdicts::ImageVerifier;
use crate::runtime::leader::Leadership;
use crate::runtime::shard::Shard;
use crate::runtime::telemetry::Metrics;

/// The first retry after a failed reconcile; doubles per failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "fife";

pub struct Context {
    pub client: Client,
    pub caches: Caches,
    pub recorder: EventPublisher,
    pub audit: Arc<AuditLog>,
    pub pool: ClientPool,
    pub metrics: Arc<Metrics>,
    pub leadership: Leadership,
    /// Who acts, as written in audit records and Events.
    pub identity: String,
    /// The signature gate's verdicts, one registry check per digest and key set.
    pub images: ImageVerifier,
    /// The Rollouts this controller runs; an object read from the API outside it is
    /// another shard's and is left alone.
    pub shard: Shard,
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
    /// Per Rollout: the newest resourceVersion this replica has seen of it, from the API
    /// (a read or its own status write). See [`ObjectMemory::is_current`].
    versions: Mutex<HashMap<String, (u64, String)>>,
    /// Rollouts that arrived in the cache with a history (a status naming children or
    /// runs) and whose children have not been found in the caches since: moved from
    /// another shard, or sighted at start-up. See [`crate::reconcile::handover`].
    arrivals: Mutex<HashSet<String>>,
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
        caches: Caches,
        audit: Arc<AuditLog>,
        metrics: Arc<Metrics>,
        leadership: Leadership,
        identity: String,
    ) -> Self {
        let recorder = EventPublisher::new(client.clone(), identity.clone());
        Context {
            client,
            caches,
            recorder,
            audit,
            pool: ClientPool::default(),
            metrics,
            leadership,
            identity,
            images: ImageVerifier::new(Vec::new(), "default".into()),
            shard: Shard::Default,
            memory: ObjectMemory::default(),
        }
    }

    /// The verifier of the signature gate (the default reaches every registry over HTTPS and
    /// reads keys Secrets in `default`).
    pub fn with_image_verifier(mut self, images: ImageVerifier) -> Self {
        self.images = images;
        self
    }

    /// Runs the Rollouts of `shard` (the default shard otherwise).
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
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

    /// See [`ObjectMemory::is_current`], in this leadership term.
    pub fn is_current(&self, key: &str, resource_version: &str) -> bool {
        self.memory
            .is_current(key, self.leadership.term(), resource_version)
    }

    pub fn remember_version(&self, key: &str, resource_version: &str) {
        self.memory
            .remember_version(key, self.leadership.term(), resource_version)
    }

    /// The watch delivered `resource_version` of the Rollout `key`. Without leader
    /// election this replica is the only one that writes status, and a version seen before
    /// any read or write of its own is as fresh as a read; so it is remembered when nothing
    /// is, sparing a read of every new Rollout. With leader election it is not: a lagging
    /// watch may deliver a version older than another leader's last write.
    pub fn sighted(&self, key: &str, resource_version: &str) {
        if !self.leadership.is_elected() {
            self.memory
                .remember_first(key, self.leadership.term(), resource_version)
        }
    }

    /// Forgets everything remembered about `key`: its object was deleted.
    pub fn forget(&self, key: &str) {
        self.memory.forget(key)
    }

    /// The Rollout `key` entered this replica's cache with a history: before its next
    /// decision, its children must be found in the caches (a handover).
    pub fn arrived(&self, key: &str) {
        self.memory.arrived(key)
    }

    /// True while the Rollout `key` waits for its handover.
    pub fn handover_due(&self, key: &str) -> bool {
        self.memory.handover_due(key)
    }

    /// The Rollout `key`'s children are in the caches: it is decided on as any other.
    pub fn handed_over(&self, key: &str) {
        self.memory.handed_over(key)
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

    /// True when `resource_version` is the newest version of the Rollout `key` that this
    /// replica has seen from the API in leadership `term`, so a cached copy at that
    /// version is not older than anything it has read or written. Resource versions are
    /// opaque (no order), so any other version, or none remembered in this term (a new
    /// replica, a leader again after another one acted), is not known to be current and
    /// the Rollout is read from the API once.
    pub fn is_current(&self, key: &str, term: u64, resource_version: &str) -> bool {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .is_some_and(|(t, v)| *t == term && v == resource_version)
    }

    /// `resource_version` was just read from the API, or written by this replica.
    pub fn remember_version(&self, key: &str, term: u64, resource_version: &str) {
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        match versions.get_mut(key) {
            Some((t, v)) if *t == term && v == resource_version => {}
            Some((t, v)) => {
                *t = term;
                resource_version.clone_into(v);
            }
            None => {
                versions.insert(key.to_owned(), (term, resource_version.to_owned()));
            }
        }
    }

    /// Remembers `resource_version` for `key` only when nothing is remembered for it.
    pub fn remember_first(&self, key: &str, term: u64, resource_version: &str) {
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_insert_with(|| (term, resource_version.to_owned()));
    }

    pub fn arrived(&self, key: &str) {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned());
    }

    pub fn handover_due(&self, key: &str) -> bool {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    pub fn handed_over(&self, key: &str) {
        self.arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Forgets `key`'s failures, recorded decision, version and pending handover.
    pub fn forget(&self, key: &str) {
        self.handed_over(key);
        self.succeeded(key);
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        self.versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// How many objects are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let arrivals = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        failures
            .keys()
            .chain(recorded.keys())
            .chain(versions.keys())
            .chain(arrivals.iter())
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
        memory.remember_version("shop/checkout", 0, "42");
        memory.arrived("shop/checkout");
        assert!(memory.already_recorded("shop/checkout", "41", "Promoted"));
        assert!(memory.is_current("shop/checkout", 0, "42"));
        assert_eq!(memory.len(), 2);

        memory.forget("shop/checkout");
        assert!(!memory.already_recorded("shop/checkout", "41", "Promoted"));
        assert!(!memory.is_current("shop/checkout", 0, "42"));
        assert!(!memory.handover_due("shop/checkout"));
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
    fn only_the_newest_version_seen_is_current() {
        let memory = ObjectMemory::default();
        assert!(
            !memory.is_current("shop/web", 1, "10"),
            "nothing seen yet: read it"
        );
        memory.remember_version("shop/web", 1, "10");
        assert!(memory.is_current("shop/web", 1, "10"));
        // Our own status write made version 11; a cache still at 10 is stale.
        memory.remember_version("shop/web", 1, "11");
        assert!(!memory.is_current("shop/web", 1, "10"));
        assert!(memory.is_current("shop/web", 1, "11"));
        assert!(!memory.is_current("shop/other", 1, "11"));
        // Leader again after another replica may have written: nothing is current.
        assert!(!memory.is_current("shop/web", 2, "11"));
        // A watch sighting counts only for a Rollout nothing is remembered of.
        memory.remember_first("shop/web", 1, "9");
        assert!(memory.is_current("shop/web", 1, "11"), "not overwritten");
        memory.remember_first("shop/new", 1, "3");
        assert!(memory.is_current("shop/new", 1, "3"));
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
