//! Workload simulation: stands in for the Deployment controller and kubelets, so a
//! Deployment's status follows its spec after a delay — or never becomes ready, when the
//! server is told so or the Deployment carries `testkit.fife.dev/never-ready: "true"`.

use super::State;
use super::store::{Change, ChangeKind};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// The annotation that keeps one Deployment from ever becoming ready.
pub const NEVER_READY_ANNOTATION: &str = "testkit.fife.dev/never-ready";

/// The status the Deployment controller would converge to for this spec.
pub fn desired_status(deployment: &Value, never_ready: bool, now: &str) -> Value {
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
    let never_ready = never_ready
        || deployment["metadata"]["annotations"][NEVER_READY_ANNOTATION].as_str() == Some("true");
    let ready = if never_ready { 0 } else { replicas };
    let condition = |t: &str, ok: bool, reason: &str, message: String| {
        json!({ "type": t, "status": if ok { "True" } else { "False" }, "reason": reason, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now })
    };
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    let mut status = json!({
        "observedGeneration": generation,
        "conditions": [
            if ready >= replicas {
                condition("Available", true, "MinimumReplicasAvailable", "Deployment has minimum availability.".into())
            } else {
                condition("Available", false, "MinimumReplicasUnavailable", "Deployment does not have minimum availability.".into())
            },
            if ready >= replicas {
                condition("Progressing", true, "NewReplicaSetAvailable", format!("ReplicaSet \"{name}\" has successfully progressed."))
            } else {
                condition("Progressing", true, "ReplicaSetUpdated", format!("ReplicaSet \"{name}\" is progressing."))
            },
        ],
    });
    // The real controller omits zero counts.
    for (field, value) in [
        ("replicas", replicas),
        ("updatedReplicas", replicas),
        ("readyReplicas", ready),
        ("availableReplicas", ready),
        ("unavailableReplicas", replicas - ready),
    ] {
        if value != 0 {
            status[field] = json!(value);
        }
    }
    status
}

/// Status without timestamps, for "is it already converged?".
fn timeless(status: &Value) -> Value {
    let mut s = status.clone();
    if let Some(conds) = s.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conds {
            if let Some(m) = c.as_object_mut() {
                m.remove("lastUpdateTime");
                m.remove("lastTransitionTime");
                m.remove("message");
            }
        }
    }
    s
}

fn needs_status(deployment: &Value, never_ready: bool) -> bool {
    timeless(&desired_status(deployment, never_ready, "")) != timeless(&deployment["status"])
}

/// A condition whose status did not change keeps its `lastTransitionTime`, as the real
/// controller does; otherwise every status write would look like a transition.
fn keep_transition_times(old: &Value, new: &mut Value) {
    let Some(conditions) = new.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conditions {
        let previous = old["conditions"].as_array().and_then(|list| {
            list.iter()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
        });
        if let Some(p) = previous {
            c["lastTransitionTime"] = p["lastTransitionTime"].clone();
        }
    }
}

/// Runs until the server stops: watches Deployments and writes their status.
pub async fn run(state: Arc<State>) {
    let mut changes = state.store.lock().expect("store lock poisoned").subscribe();
    loop {
        match changes.recv().await {
            Ok(change) => consider(&state, &change),
            Err(RecvError::Lagged(_)) => {
                let all = {
                    let store = state.store.lock().expect("store lock poisoned");
                    let rt = store
                        .catalogue
                        .get("apps", "v1", "deployments")
                        .cloned()
                        .expect("built in");
                    let any = super::selector::Selector::default();
                    store
                        .list(&rt, None, &any, &any, None, None)
                        .map(|p| p.items)
                        .unwrap_or_default()
                };
                for d in all {
                    schedule(&state, (*d).clone());
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

fn consider(state: &Arc<State>, change: &Change) {
    if change.resource != ("apps".to_string(), "deployments".to_string())
        || change.kind == ChangeKind::Deleted
    {
        return;
    }
    schedule(state, (*change.object).clone());
}

fn schedule(state: &Arc<State>, deployment: Value) {
    let never_ready = state.config.never_ready;
    if deployment["metadata"].get("deletionTimestamp").is_some()
        || !needs_status(&deployment, never_ready)
    {
        return;
    }
    let state = state.clone();
    let delay = state.config.rollout_delay;
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut store = state.store.lock().expect("store lock poisoned");
        let Some(rt) = store.catalogue.get("apps", "v1", "deployments").cloned() else {
            return;
        };
        let ns = deployment["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        let Ok(current) = store.get(&rt, ns, name) else {
            return;
        };
        // A newer generation has its own scheduled update; and the uid check keeps a
        // recreated Deployment from inheriting the old one's status.
        if current["metadata"]["generation"] != deployment["metadata"]["generation"]
            || current["metadata"]["uid"] != deployment["metadata"]["uid"]
            || !needs_status(&current, never_ready)
        {
            return;
        }
        let now = super::store::now_rfc3339();
        let mut next = current.clone();
        next["status"] = desired_status(&current, never_ready, &now);
        keep_transition_times(&current["status"], &mut next["status"]);
        super::apply::record_update(
            &current,
            &mut next,
            "kube-controller-manager",
            "status",
            "apps/v1",
            &now,
        );
        // A concurrent writer may have won; its change schedules another round.
        let _ = store.update(&rt, ns, name, next);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_spec_or_stays_unready() {
        let d = json!({ "metadata": { "name": "d", "generation": 3 }, "spec": { "replicas": 4 } });
        let s = desired_status(&d, false, "t");
        assert_eq!(
            (s["observedGeneration"].clone(), s["readyReplicas"].clone()),
            (json!(3), json!(4))
        );
        assert!(s.get("unavailableReplicas").is_none());
        let stuck = desired_status(&d, true, "t");
        assert!(stuck.get("readyReplicas").is_none());
        assert_eq!(stuck["updatedReplicas"], json!(4));
        assert_eq!(stuck["conditions"][0]["status"], json!("False"));
        let mut annotated = d.clone();
        annotated["metadata"]["annotations"] = json!({ NEVER_READY_ANNOTATION: "true" });
        assert_eq!(
            desired_status(&annotated, false, "t")["unavailableReplicas"],
            json!(4)
        );
    }

    #[test]
    fn converged_status_needs_no_write() {
        let mut d =
            json!({ "metadata": { "name": "d", "generation": 1 }, "spec": { "replicas": 2 } });
        assert!(needs_status(&d, false));
        d["status"] = desired_status(&d, false, "earlier");
        assert!(!needs_status(&d, false));
        d["spec"]["replicas"] = json!(3);
        assert!(needs_status(&d, false));
    }
}
