//! End to end: children edited by hand are put back. Fife owns the fields it applies to
//! its Deployments; an edited image or replica count is re-asserted (server-side apply with
//! force) on the reconcile the edit itself triggers.

use std::time::{Duration, Instant};

use crate::harness::{Cluster, Controller, image_patch, rollout};
use serde_json::{Value, json};

fn container(image: &str) -> Value {
    json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "app", "image": image, "ports": [{ "containerPort": 8080, "name": "http" }] }
    ] } } } })
}

async fn deployment_image(cluster: &Cluster, name: &str) -> Option<String> {
    let d = cluster.get(&format!("deployment/{name}")).await?;
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .map(str::to_owned)
}

/// A hand edit, as `kubectl patch` makes it; returns the object as the edit left it.
async fn edit(cluster: &Cluster, deployment: &str, patch: &Value) -> Value {
    let out = cluster
        .kubectl(&[
            "patch",
            &format!("deployment/{deployment}"),
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
            "-o",
            "json",
        ])
        .await;
    serde_json::from_str(&out).unwrap()
}

/// Waits until `deployment` runs `image` with `replicas` again; returns how long it took.
async fn wait_restored(
    cluster: &Cluster,
    deployment: &str,
    image: &str,
    replicas: i64,
) -> Duration {
    let started = Instant::now();
    cluster
        .wait_for(
            &format!("{deployment} back on {image} × {replicas}"),
            Duration::from_secs(10),
            || async {
                let current = deployment_image(cluster, deployment).await?;
                let count = cluster.deployment_replicas(deployment).await?;
                (current == image && count == replicas).then_some(())
            },
        )
        .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edited_children_are_put_back() {
    let started = Instant::now();
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    let steps = "        - setWeight: 50\n        - pause: {}\n        - setWeight: 100\n";
    cluster
        .apply(&rollout("drift", "api:1", 4, "", steps))
        .await;
    cluster
        .wait_phase("drift", "Healthy", Duration::from_secs(20))
        .await;
    eprintln!("healthy after {:?}", started.elapsed());

    // A healthy rollout's stable Deployment: its image edited by hand, then its replicas.
    let edited = edit(&cluster, "drift-stable", &container("api:hotfix")).await;
    assert_eq!(
        edited["spec"]["template"]["spec"]["containers"][0]["image"],
        "api:hotfix"
    );
    let took = wait_restored(&cluster, "drift-stable", "api:1", 4).await;
    eprintln!("stable image put back after {took:?}");
    let edited = edit(&cluster, "drift-stable", &json!({"spec": {"replicas": 9}})).await;
    assert_eq!(edited["spec"]["replicas"], 9);
    let took = wait_restored(&cluster, "drift-stable", "api:1", 4).await;
    eprintln!("stable replicas put back after {took:?}");

    // Mid-rollout, paused: the canary's replicas and image edited by hand.
    cluster
        .merge_patch("rollout/drift", &image_patch("api:2"))
        .await;
    cluster
        .wait_phase("drift", "Paused", Duration::from_secs(20))
        .await;
    assert_eq!(cluster.deployment_replicas("drift-canary").await, Some(2));
    let mut patch = container("api:other");
    patch["spec"]["replicas"] = json!(0);
    let edited = edit(&cluster, "drift-canary", &patch).await;
    assert_eq!(edited["spec"]["replicas"], 0);
    let took = wait_restored(&cluster, "drift-canary", "api:2", 2).await;
    eprintln!("canary put back after {took:?}");
    let status = cluster.rollout_status("drift").await;
    assert_eq!(status["phase"], "Paused", "{status:#}");
    assert_eq!(status["currentStepIndex"], 1, "{status:#}");
}
