//! What every reconcile shares: the API client, the Event recorder, the audit log, the
//! metric query pool, metrics, leadership and per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fife_audit::AuditLog;
use fife_metrics::ClientPool;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use crate::leader::Leadership;
use crate::telemetry::Metrics;

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
    failures: Mutex<HashMap<String, u32>>,
    /// Per Rollout: the resourceVersion a decision was taken from and a digest of the
    /// events recorded for it. See [`Context::already_recorded`].
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
            failures: Mutex::default(),
            recorded: Mutex::default(),
        }
    }

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
}

impl Context {
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
    fn backoff_doubles_and_is_bounded() {
        assert_eq!(backoff_delay(1), Duration::from_millis(500));
        assert_eq!(backoff_delay(2), Duration::from_secs(1));
        assert_eq!(backoff_delay(4), Duration::from_secs(4));
        assert_eq!(backoff_delay(40), MAX_BACKOFF);
        assert_eq!(backoff_delay(u32::MAX), MAX_BACKOFF);
    }
}
