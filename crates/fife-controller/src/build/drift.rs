//! Whether a child object still carries every field Fife applies to it. A child edited by
//! hand (an image, a replica count, a label) no longer does, and is applied again, with
//! force, on the next reconcile. Pure.
//!
//! The check is "desired ⊆ current": fields the API server adds (defaults, status,
//! metadata it manages) or other managers own are ignored, so a child that is as Fife left
//! it is not written again on every reconcile.

use serde::Serialize;
use serde_json::Value;

/// True when every field set in `desired` has the same value in `current`.
pub fn carries<T: Serialize>(current: &T, desired: &T) -> bool {
    match (serde_json::to_value(current), serde_json::to_value(desired)) {
        (Ok(current), Ok(desired)) => covers(&current, &desired),
        // Plain data types always serialize; if one did not, applying again is the safe side.
        _ => false,
    }
}

/// `desired ⊆ current` on JSON: objects key by key, lists element by element (same
/// length, since Fife's lists are whole: containers, ports, env), scalars by equality.
pub fn covers(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (_, Value::Null) => true,
        (Value::Object(current), Value::Object(desired)) => desired
            .iter()
            .all(|(key, want)| covers(current.get(key).unwrap_or(&Value::Null), want)),
        (Value::Array(current), Value::Array(desired)) => {
            current.len() == desired.len() && current.iter().zip(desired).all(|(c, d)| covers(c, d))
        }
        (current, desired) => current == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::labels::ROLE_LABEL;
    use serde_json::json;

    fn mk_desired() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api-stable", "labels": {ROLE_LABEL: "stable"}},
            "spec": {
                "replicas": 4,
                "template": {"spec": {"containers": [
                    {"name": "app", "image": "api:1", "ports": [{"containerPort": 8080}]}
                ]}}
            }
        })
    }

    /// As the API server returns it: defaults and managed metadata added.
    fn mk_current() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "api-stable", "uid": "u-1", "resourceVersion": "42",
                "labels": {ROLE_LABEL: "stable", "team": "shop"},
                "managedFields": [{"manager": "fife"}]
            },
            "spec": {
                "replicas": 4,
                "progressDeadlineSeconds": 600,
                "template": {"spec": {"containers": [{
                    "name": "app", "image": "api:1", "imagePullPolicy": "IfNotPresent",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}]
                }]}}
            },
            "status": {"readyReplicas": 4}
        })
    }

    #[test]
    fn a_child_as_fife_left_it_is_not_drifted_despite_server_defaults() {
        assert!(covers(&mk_current(), &mk_desired()));
    }

    #[test]
    fn a_hand_edited_image_is_drift() {
        let mut current = mk_current();
        current["spec"]["template"]["spec"]["containers"][0]["image"] = json!("api:evil");
        assert!(!covers(&current, &mk_desired()));
    }

    #[test]
    fn a_hand_edited_replica_count_is_drift() {
        let mut current = mk_current();
        current["spec"]["replicas"] = json!(9);
        assert!(!covers(&current, &mk_desired()));
    }

    #[test]
    fn a_removed_label_or_an_added_container_is_drift() {
        let mut current = mk_current();
        current["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove(ROLE_LABEL);
        assert!(!covers(&current, &mk_desired()));

        let mut current = mk_current();
        current["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar", "image": "x"}));
        assert!(!covers(&current, &mk_desired()));
    }

    #[test]
    fn typed_objects_compare_through_their_json() {
        use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
        let desired = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        };
        let mut current = desired.clone();
        assert!(carries(&current, &desired));
        current.spec.as_mut().unwrap().replicas = Some(3);
        assert!(!carries(&current, &desired));
    }
}
