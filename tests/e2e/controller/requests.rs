//! End to end, what the controller asks of the API server, from the API test server's
//! request journal: the controller authenticates as its own ServiceAccount, so its requests
//! are told apart from the test's `kubectl`. A settled Rollout costs no request at all, and
//! a release through three steps costs a bounded number of requests and reconciles: the
//! reconcile reads its children from the watch caches and does not wake itself with its
//! own status writes.

use std::time::Duration;

use crate::harness::{Cluster, Controller, ControllerOptions, image_patch, rollout};
use fife_test_apiserver::journal::JournalEntry;
use serde_json::Value;

const CONTROLLER_USER: &str = "system:serviceaccount:fife-system:fife-controller";

/// The controller's requests since journal index `since`, as `METHOD path`, watches left
/// out (a watch is one long request that stays open, whatever happens).
fn controller_requests(cluster: &Cluster, since: u64) -> Vec<String> {
    cluster
        .api
        .journal(since)
        .into_iter()
        .filter(|e| e.user.as_deref() == Some(CONTROLLER_USER))
        .filter(|e| !e.path.contains("watch=true"))
        .map(|e: JournalEntry| format!("{} {}", e.method, e.path))
        .collect()
}

fn next_index(cluster: &Cluster) -> u64 {
    cluster.api.journal(0).last().map_or(0, |e| e.index + 1)
}

async fn reconciles(controller: &Controller) -> f64 {
    controller
        .metric("fife_reconcile_duration_seconds_count")
        .await
        .unwrap_or(0.0)
}

/// Waits until the Rollout is Healthy at its current generation with `image` as stable.
async fn wait_promoted(cluster: &Cluster, image: &str) -> Value {
    cluster
        .wait_for(
            &format!("web Healthy on {image}"),
            Duration::from_secs(30),
            || async {
                let web = cluster.get("rollout/web").await?;
                let stable = cluster.get("deployment/web-stable").await?;
                let healthy = web["status"]["phase"] == "Healthy"
                    && web["status"]["observedGeneration"] == web["metadata"]["generation"]
                    && stable["spec"]["template"]["spec"]["containers"][0]["image"] == image;
                healthy.then_some(web)
            },
        )
        .await
}

/// Waits until `count` has not changed for `quiet`, and returns it.
async fn settle(controller: &Controller, quiet: Duration) -> f64 {
    let mut last = reconciles(controller).await;
    loop {
        tokio::time::sleep(quiet).await;
        let now = reconciles(controller).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_rollout_costs_nothing_and_a_step_a_bounded_number_of_requests() {
    let cluster = Cluster::start().await;
    let token = cluster
        .api
        .service_account_token("fife-system", "fife-controller");
    let kubeconfig = cluster.dir.path().join("fife-controller.kubeconfig");
    std::fs::write(&kubeconfig, cluster.api.kubeconfig_with_token(&token)).unwrap();
    let controller = Controller::start_with_kubeconfig(
        &cluster,
        ControllerOptions {
            identity: "fife-requests",
            lease: None,
            audit_log: cluster.dir.path().join("audit.log"),
        },
        &kubeconfig,
        &[],
    );
    let steps =
        "        - setWeight: 50\n        - pause: {duration: 1s}\n        - setWeight: 100\n";
    cluster.apply(&rollout("web", "web:1", 2, "", steps)).await;
    wait_promoted(&cluster, "web:1").await;

    // Settled: nothing to read, nothing to write, nothing to reconcile.
    let settled = settle(&controller, Duration::from_secs(1)).await;
    let idle_from = next_index(&cluster);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        controller_requests(&cluster, idle_from),
        Vec::<String>::new(),
        "a settled Rollout costs no request"
    );
    assert_eq!(reconciles(&controller).await, settled, "and no reconcile");

    // A new image through three steps.
    let change_from = next_index(&cluster);
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    wait_promoted(&cluster, "web:2").await;
    let done = settle(&controller, Duration::from_secs(1)).await;
    let requests = controller_requests(&cluster, change_from);
    let reconciled = done - settled;
    let steps = 3.0;
    // Every request but one is a write that changes something. Per step: the canary's
    // and the stable's applies, two status writes (the step starts, its children are
    // ready), an Event per audit record (about three); and the Rollout read once after
    // its spec changed.
    assert!(
        requests.len() as f64 <= 8.0 * steps,
        "{} requests for 3 steps: {requests:#?}",
        requests.len()
    );
    assert!(
        reconciled <= 4.0 * steps,
        "{reconciled} reconciles for 3 steps"
    );
    let gets = requests.iter().filter(|r| r.starts_with("GET ")).count();
    assert!(
        gets <= 1,
        "only the changed Rollout is read from the API: {requests:#?}"
    );
}
