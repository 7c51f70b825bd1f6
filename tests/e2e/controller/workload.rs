//! End to end: `workloadRef`. The real `fife controller` against the Kubernetes API test
//! server adopts an existing Deployment: a missing one is named on the Rollout, its own
//! stable pods come up before the Deployment loses any, the Deployment is scaled per
//! `scaleDown` (never, onsuccess, progressively), and a new image in the Deployment's
//! template rolls out through the Rollout's steps.

use std::time::Duration;

use crate::harness::{Cluster, Controller};
use fife_api::labels::ROLLOUT_LABEL;
use serde_json::json;

fn deployment(name: &str, image: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: app
          image: "{image}"
          ports: [{{containerPort: 8080, name: http}}]
"#
    )
}

fn referencing(name: &str, deployment: &str, scale_down: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: 60
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: {deployment}, scaleDown: {scale_down}}}
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {{duration: 1s}}
"#
    )
}

async fn ready_replicas(cluster: &Cluster, name: &str) -> i64 {
    cluster
        .get(&format!("deployment/{name}"))
        .await
        .and_then(|d| d["status"]["readyReplicas"].as_i64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referenced_deployment_is_named_when_missing_then_adopted_and_scaled_down_progressively()
{
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster
        .apply(&referencing("web", "legacy", "progressively", 4))
        .await;
    let status = cluster
        .wait_for(
            "the missing Deployment named",
            Duration::from_secs(20),
            || async {
                let s = cluster.rollout_status("web").await;
                s["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Deployment default/legacy"))
                    .then_some(s)
            },
        )
        .await;
    let condition = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "WorkloadReferenced")
        .cloned()
        .unwrap();
    assert_eq!(condition["status"], "False", "{condition}");
    assert_eq!(cluster.get("deployment/web-stable").await, None);

    // The Deployment appears and serves; the Rollout takes over without a gap.
    cluster.apply(&deployment("legacy", "web:1", 4)).await;
    cluster
        .wait_for("the handover", Duration::from_secs(30), || async {
            let legacy = cluster.deployment_replicas("legacy").await.unwrap_or(0);
            let stable = ready_replicas(&cluster, "web-stable").await;
            assert!(
                legacy + stable >= 4,
                "legacy scaled to {legacy} with only {stable} stable pods ready"
            );
            let s = cluster.rollout_status("web").await;
            (s["phase"] == "Healthy" && legacy == 0).then_some(())
        })
        .await;
    let stable = cluster.get("deployment/web-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:1"
    );
    assert_eq!(stable["spec"]["replicas"], 4);
    let legacy = cluster.get("deployment/legacy").await.unwrap();
    assert_eq!(legacy["metadata"]["labels"][ROLLOUT_LABEL], "web");
    assert_eq!(
        legacy["metadata"]["ownerReferences"],
        serde_json::Value::Null,
        "the Deployment stays its author's"
    );

    // A new image in the Deployment's template is a new revision of the Rollout.
    cluster
        .merge_patch(
            "deployment/legacy",
            &json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "web:2", "ports": [{"containerPort": 8080, "name": "http"}]}
            ]}}}}),
        )
        .await;
    cluster
        .wait_for("the canary at 50%", Duration::from_secs(20), || async {
            let s = cluster.rollout_status("web").await;
            (s["weights"]["canary"] == 50).then_some(())
        })
        .await;
    cluster
        .wait_for("web:2 promoted", Duration::from_secs(30), || async {
            let s = cluster.rollout_status("web").await;
            let stable = cluster.get("deployment/web-stable").await?;
            (s["phase"] == "Healthy"
                && stable["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2")
                .then_some(())
        })
        .await;
    assert_eq!(
        cluster.deployment_replicas("legacy").await,
        Some(0),
        "a Deployment scaled down stays down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onsuccess_scales_the_deployment_to_zero_once_healthy_and_never_leaves_it() {
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster.apply(&deployment("kept", "web:1", 3)).await;
    cluster.apply(&deployment("replaced", "web:1", 3)).await;
    cluster
        .apply(&referencing("never", "kept", "never", 3))
        .await;
    cluster
        .apply(&referencing("onsuccess", "replaced", "onsuccess", 3))
        .await;
    for name in ["never", "onsuccess"] {
        cluster
            .wait_phase(name, "Healthy", Duration::from_secs(30))
            .await;
    }
    cluster
        .wait_for("replaced scaled to 0", Duration::from_secs(20), || async {
            (cluster.deployment_replicas("replaced").await == Some(0)).then_some(())
        })
        .await;
    assert_eq!(
        cluster.deployment_replicas("onsuccess-stable").await,
        Some(3)
    );
    assert_eq!(cluster.deployment_replicas("never-stable").await, Some(3));
    assert_eq!(
        cluster.deployment_replicas("kept").await,
        Some(3),
        "scaleDown: never leaves the Deployment as it is"
    );
}
