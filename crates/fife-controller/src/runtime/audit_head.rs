//! Publishes the audit log's head (latest seq and hash, signed when the log is) in the
//! `fife-audit-head` ConfigMap of the controller's namespace, one key per writer, after each
//! append and at start-up. `fife audit verify --head-from` checks a log against it, so a log
//! whose end was cut off no longer passes.
//!
//! ```text
//!   AuditLog::append ─▶ HeadNotifier::deliver (latest seq, hash; never blocks)
//!                              │ watch channel: only the newest head matters
//!                              ▼
//!                       publish task ─▶ server-side apply data[<identity>] ─▶ retry on failure
//! ```
//!
//! Best effort like every notifier: a failed publish never stops an action (the record is
//! already durable) and is retried with the newest head. The ConfigMap's own
//! `managedFields` and the API server's audit log show who else wrote it.

use std::collections::BTreeMap;
use std::time::Duration;

use fife_audit::{AuditSink, PublishedHead, SealedRecord, SigningKey, SinkError};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;

/// The ConfigMap's name, in the controller's namespace.
pub const AUDIT_HEAD_CONFIGMAP: &str = "fife-audit-head";

/// The wait before publishing again after a failed write, doubling up to
/// [`MAX_RETRY`], so a missing grant (an upgrade without the new Role rule) warns once a
/// minute rather than flooding the log.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Where and as whom heads are published.
#[derive(Debug, Clone)]
pub struct HeadTarget {
    pub namespace: String,
    /// The writer's identity: the ConfigMap key (each replica writes its own log).
    pub identity: String,
    /// The log file the head belongs to, written into the head.
    pub log: String,
}

/// The notifier side: remembers the latest head for the publish task.
#[derive(Debug)]
pub struct HeadNotifier {
    latest: watch::Sender<Option<(u64, String)>>,
}

impl AuditSink for HeadNotifier {
    fn name(&self) -> &str {
        "audit-head"
    }

    fn deliver(&self, record: &SealedRecord) -> Result<(), SinkError> {
        self.latest
            .send_replace(Some((record.record.seq, record.record.hash.clone())));
        Ok(())
    }
}

/// Starts publishing, beginning with `start` (the head of the log as opened).
pub fn spawn(
    client: Client,
    target: HeadTarget,
    key: Option<SigningKey>,
    start: Option<(u64, String)>,
) -> HeadNotifier {
    let (latest, mut changes) = watch::channel(start);
    changes.mark_changed();
    tokio::spawn(async move {
        let api: Api<ConfigMap> = Api::namespaced(client, &target.namespace);
        let mut retry = FIRST_RETRY;
        while changes.changed().await.is_ok() {
            let Some((seq, hash)) = changes.borrow_and_update().clone() else {
                continue;
            };
            let head = PublishedHead::at(seq, &hash, &target.log, chrono::Utc::now(), key.as_ref());
            match apply(&api, &target.identity, &head).await {
                Ok(()) => retry = FIRST_RETRY,
                Err(e) => {
                    tracing::warn!(seq, error = %e, namespace = %target.namespace,
                        "cannot publish the audit head to ConfigMap {AUDIT_HEAD_CONFIGMAP}; \
                         grant `patch` on it and `create` on configmaps (examples/install/rbac.yaml); retrying");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(MAX_RETRY);
                    changes.mark_changed();
                }
            }
        }
    });
    HeadNotifier { latest }
}

/// The ConfigMap patch that sets this writer's key, and only it.
pub fn head_patch(identity: &str, head: &PublishedHead) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": AUDIT_HEAD_CONFIGMAP },
        "data": BTreeMap::from([(identity.to_owned(), head.to_json())]),
    })
}

async fn apply(api: &Api<ConfigMap>, identity: &str, head: &PublishedHead) -> kube::Result<()> {
    // One field manager per writer, so replicas own their keys and never take each other's.
    let manager = format!("fife-audit-head/{identity}");
    let params = PatchParams::apply(&manager).force();
    api.patch(
        AUDIT_HEAD_CONFIGMAP,
        &params,
        &Patch::Apply(head_patch(identity, head)),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_sets_only_this_writers_key_with_the_head_as_json() {
        let head = PublishedHead::at(
            41,
            &"ab".repeat(32),
            "/var/lib/fife/audit/a.jsonl",
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            None,
        );
        let patch = head_patch("fife-7c9d", &head);
        assert_eq!(patch["metadata"]["name"], "fife-audit-head");
        let data = patch["data"].as_object().unwrap();
        assert_eq!(data.len(), 1);
        let back: PublishedHead =
            serde_json::from_str(data["fife-7c9d"].as_str().unwrap()).unwrap();
        assert_eq!(back, head);
    }
}
