//! End to end, without metrics: the real `fife controller` against the Kubernetes API test
//! server, driven with the real `kubectl`. First deploy, a new image through its steps with
//! the right replica counts and HTTPRoute weights, pause → promote, abort → retry.

use std::time::Duration;

use crate::harness::{Cluster, Controller, audit_records, image_patch, manual, rollout};
use fife_api::labels::{REVISION_LABEL, ROLE_LABEL};
use serde_json::{Value, json};

const ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gateway}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: web-stable, port: 8080}]
"#;

fn route_weights(route: &Value) -> Value {
    let refs = route["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let weight = |name: &str| {
        refs.iter()
            .find(|r| r["name"] == name)
            .map_or(json!(0), |r| r["weight"].clone())
    };
    json!({ "stable": weight("web-stable"), "canary": weight("web-canary"), "baseline": weight("web-baseline") })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_walks_the_steps_with_replicas_and_route_weights() {
    let cluster = Cluster::start().await;
    let controller = Controller::simple(&cluster);
    cluster.apply(ROUTE).await;
    let gateway = "      baseline: true\n      trafficRouting: {gatewayAPI: {httpRoute: web}}\n";
    let steps = "        - setWeight: 20\n        - pause: {duration: 2s}\n        - setWeight: 50\n        - pause: {duration: 2s}\n";
    cluster
        .apply(&rollout("web", "web:1", 5, gateway, steps))
        .await;

    // First deploy: straight to Healthy, all traffic on stable.
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;
    assert_eq!(cluster.deployment_replicas("web-stable").await, Some(5));
    let services = cluster.kubectl(&["get", "services", "-o", "name"]).await;
    for s in [
        "service/web",
        "service/web-stable",
        "service/web-canary",
        "service/web-baseline",
    ] {
        assert!(services.contains(s), "{s} missing from {services}");
    }
    let stable = cluster.get("deployment/web-stable").await.unwrap();
    let stable_revision = stable["metadata"]["labels"][REVISION_LABEL].clone();
    assert_eq!(
        stable["spec"]["template"]["metadata"]["labels"][ROLE_LABEL],
        "stable"
    );
    assert_eq!(stable["metadata"]["ownerReferences"][0]["controller"], true);

    // A new image: at each bake window, the canary and baseline replicas are
    // ⌈5 · weight / 100⌉ and the HTTPRoute carries the status weights.
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    for (weight, pods) in [(20, 1), (50, 3)] {
        let status = cluster
            .wait_for(
                &format!("bake window at {weight}%"),
                Duration::from_secs(20),
                || async {
                    let s = cluster.rollout_status("web").await;
                    (s["weights"]["canary"] == weight && s["phase"] == "Paused").then_some(s)
                },
            )
            .await;
        assert_eq!(
            cluster.deployment_replicas("web-canary").await,
            Some(pods),
            "canary at {weight}%"
        );
        assert_eq!(
            cluster.deployment_replicas("web-baseline").await,
            Some(pods),
            "baseline at {weight}%"
        );
        let canary = cluster.get("deployment/web-canary").await.unwrap();
        assert_ne!(
            canary["metadata"]["labels"][REVISION_LABEL],
            stable_revision
        );
        let baseline = cluster.get("deployment/web-baseline").await.unwrap();
        assert_eq!(
            baseline["metadata"]["labels"][REVISION_LABEL],
            stable_revision
        );
        assert_eq!(
            baseline["spec"]["template"]["spec"]["containers"][0]["image"], "web:1",
            "the baseline runs the stable revision's template"
        );
        let route = cluster.get("httproute/web").await.unwrap();
        assert_eq!(
            route_weights(&route),
            status["weights"],
            "route at {weight}%"
        );
        assert_eq!(
            route["spec"]["rules"][0]["matches"][0]["path"]["value"], "/",
            "other route fields kept"
        );
    }

    let status = cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;
    assert_ne!(status["stableRevision"], stable_revision);
    let stable = cluster.get("deployment/web-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:2"
    );
    assert_eq!(stable["spec"]["replicas"], 5);
    let route = cluster.get("httproute/web").await.unwrap();
    assert_eq!(route_weights(&route)["stable"], 100);
    assert_eq!(route_weights(&route)["canary"], 0);

    // The audit log tells the same story, in order, each step once.
    let records = audit_records(&controller.audit_log);
    let weights: Vec<Value> = records
        .iter()
        .filter(|r| r["action"] == "WeightChanged")
        .map(|r| r["evidence"]["weights"]["canary"].clone())
        .collect();
    assert_eq!(weights.first(), Some(&json!(20)), "{weights:?}");
    assert!(weights.contains(&json!(50)), "{weights:?}");
    let promotions = records.iter().filter(|r| r["action"] == "Promoted").count();
    assert_eq!(
        promotions, 2,
        "first deploy and the new revision, once each"
    );
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless: {seqs:?}"
    );
    let events = cluster
        .kubectl(&[
            "get",
            "events.events.k8s.io",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await;
    assert!(events.contains("RolloutPromoted"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_then_promote_and_abort_then_retry() {
    let cluster = Cluster::start().await;
    let controller = Controller::simple(&cluster);
    let steps = "        - setWeight: 25\n        - pause: {}\n        - setWeight: 75\n        - pause: {duration: 1s}\n";
    cluster
        .apply(&rollout("shop", "shop:1", 4, "", steps))
        .await;
    cluster
        .wait_phase("shop", "Healthy", Duration::from_secs(20))
        .await;

    // An indefinite pause holds until a person promotes.
    cluster
        .merge_patch("rollout/shop", &image_patch("shop:2"))
        .await;
    let paused = cluster
        .wait_phase("shop", "Paused", Duration::from_secs(20))
        .await;
    assert_eq!(paused["weights"]["canary"], 25);
    assert_eq!(cluster.deployment_replicas("shop-canary").await, Some(1));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster.rollout_status("shop").await["phase"],
        "Paused",
        "still waiting for a person"
    );
    cluster
        .merge_patch("rollout/shop", &manual("Promote", "promote-1"))
        .await;
    cluster
        .wait_phase("shop", "Healthy", Duration::from_secs(20))
        .await;
    assert_eq!(cluster.deployment_replicas("shop-canary").await, Some(0));

    // Abort mid-rollout: traffic back to stable, canary scaled down.
    cluster
        .merge_patch("rollout/shop", &image_patch("shop:3"))
        .await;
    cluster
        .wait_phase("shop", "Paused", Duration::from_secs(20))
        .await;
    cluster
        .merge_patch("rollout/shop", &manual("Abort", "abort-1"))
        .await;
    let aborted = cluster
        .wait_phase("shop", "Degraded", Duration::from_secs(20))
        .await;
    assert_eq!(aborted["abort"], true);
    assert_eq!(aborted["weights"]["canary"], 0);
    assert_eq!(aborted["weights"]["stable"], 100);
    let stable = cluster.get("deployment/shop-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop:2"
    );
    assert_eq!(stable["spec"]["replicas"], 4);

    // Retry starts the steps again from the first.
    cluster
        .merge_patch("rollout/shop", &manual("Retry", "retry-1"))
        .await;
    let retried = cluster
        .wait_phase("shop", "Paused", Duration::from_secs(20))
        .await;
    assert_eq!(retried["weights"]["canary"], 25);
    assert_eq!(retried["abort"], false);
    cluster
        .merge_patch("rollout/shop", &manual("Promote", "promote-2"))
        .await;
    let healthy = cluster
        .wait_phase("shop", "Healthy", Duration::from_secs(20))
        .await;
    let stable = cluster.get("deployment/shop-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop:3"
    );
    assert_eq!(healthy["lastManualAction"]["id"], "promote-2");

    let records = audit_records(&controller.audit_log);
    let actions: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["actor"]["kind"] == "user")
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["actor"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("ManualPromote", "e2e@example.com"),
            ("ManualAbort", "e2e@example.com"),
            ("ManualRetry", "e2e@example.com"),
            ("ManualPromote", "e2e@example.com"),
        ]
    );
    assert!(controller.metric("fife_aborts_total").await.unwrap_or(0.0) >= 1.0);
}
