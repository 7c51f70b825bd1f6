//! End to end: children edited by hand are put back. Fife owns the fields it applies to
//! its Deployments; an edited image or replica count is re-asserted (server-side apply with
//! force) on the reconcile the edit itself triggers.

mod harness;

use std::time::{Duration, Instant};

use harness::{Cluster, Controller, image_patch, rollout};
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
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    let steps = "        - setWeight: 50\n        - pause: {}\n        - setWeight: 100\n";
    cluster
        .apply(&rollout("drift", "api:1", 4, "", steps))
        .await;
    cluster
        .wait_phase("drift", "Healthy", Duration::from_secs(20))
        .await;

    // A healthy rollout's stable Deployment: image and replicas edited by hand.
    let mut edit = container("api:hotfix");
    edit["spec"]["replicas"] = json!(9);
    cluster.merge_patch("deployment/drift-stable", &edit).await;
    assert_eq!(
        deployment_image(&cluster, "drift-stable").await.as_deref(),
        Some("api:hotfix"),
        "the edit landed"
    );
    let took = wait_restored(&cluster, "drift-stable", "api:1", 4).await;
    eprintln!("stable put back after {took:?}");

    // Mid-rollout, paused: the canary's replicas and image edited by hand.
    cluster
        .merge_patch("rollout/drift", &image_patch("api:2"))
        .await;
    cluster
        .wait_phase("drift", "Paused", Duration::from_secs(20))
        .await;
    assert_eq!(cluster.deployment_replicas("drift-canary").await, Some(2));
    let mut edit = container("api:other");
    edit["spec"]["replicas"] = json!(0);
    cluster.merge_patch("deployment/drift-canary", &edit).await;
    let took = wait_restored(&cluster, "drift-canary", "api:2", 2).await;
    eprintln!("canary put back after {took:?}");
    let status = cluster.rollout_status("drift").await;
    assert_eq!(status["phase"], "Paused", "{status:#}");
    assert_eq!(status["currentStepIndex"], 1, "{status:#}");
}
