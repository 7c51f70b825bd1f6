//! End to end: blue-green with a real Prometheus. Synthetic preview ("canary") and
//! baseline workloads are scraped as in `controller::analysis`; the real `fife controller` runs the
//! pre-promotion comparison of the preview against a fresh baseline of the active revision.
//! An identical preview is promoted: the active Service switches to it, the old revision is
//! scaled down after `scaleDownDelaySeconds`. A preview 20% slower is aborted: the active
//! Service never leaves the old revision and the preview is scaled down.

use std::time::Duration;

use crate::harness::{
    Cluster, Controller, LATENCY_TEMPLATE, audit_records, image_patch, slow_and_same,
};
use fife_api::labels::REVISION_LABEL;
use serde_json::Value;

fn services(name: &str) -> String {
    let service = |service: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {service}, namespace: default}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80, targetPort: http, name: http}}]\n"
        )
    };
    format!(
        "{}---\n{}",
        service(name),
        service(&format!("{name}-preview"))
    )
}

fn blue_green(name: &str, image: &str, prometheus: &str) -> String {
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: 4
  progressDeadlineSeconds: 60
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: "{image}"
          ports: [{{containerPort: 8080, name: http}}]
  strategy:
    blueGreen:
      activeService: {name}
      previewService: {name}-preview
      previewReplicaCount: 2
      scaleDownDelaySeconds: 1
      prePromotionAnalysis:
        templates: [{{templateName: latency}}]
        args: [{{name: job, value: {name}}}, {{name: prometheus, value: "{prometheus}"}}]
"#
    )
}

async fn selected_revision(cluster: &Cluster, service: &str) -> Value {
    cluster
        .get(&format!("service/{service}"))
        .await
        .map(|s| s["spec"]["selector"][REVISION_LABEL].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_preview_is_promoted_and_a_slower_one_aborted_with_the_active_service_kept() {
    let (_pods, prometheus) = slow_and_same().await;
    let cluster = Cluster::start().await;
    let controller = Controller::simple(&cluster);
    cluster.apply(LATENCY_TEMPLATE).await;
    for name in ["slow", "same"] {
        cluster.apply(&services(name)).await;
        cluster
            .apply(&blue_green(name, "api:1", &prometheus.address))
            .await;
    }
    let mut old = Vec::new();
    for name in ["slow", "same"] {
        let status = cluster
            .wait_phase(name, "Healthy", Duration::from_secs(20))
            .await;
        let stable = status["stableRevision"].clone();
        cluster
            .wait_for(
                "the active Service on the first revision",
                Duration::from_secs(20),
                || async { (selected_revision(&cluster, name).await == stable).then_some(()) },
            )
            .await;
        old.push(stable);
    }
    prometheus
        .wait_for_series("http_request_duration_seconds_count", 12)
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;

    for name in ["slow", "same"] {
        cluster
            .merge_patch(&format!("rollout/{name}"), &image_patch("api:2"))
            .await;
    }

    // The slower preview: the active Service stays on the old revision throughout.
    let aborted = cluster
        .wait_for("slow aborted", Duration::from_secs(40), || async {
            let active = selected_revision(&cluster, "slow").await;
            assert_eq!(active, old[0], "the active Service left the old revision");
            let s = cluster.rollout_status("slow").await;
            (s["phase"] == "Degraded").then_some(s)
        })
        .await;
    assert_eq!(aborted["abort"], true);
    assert_eq!(aborted["weights"]["canary"], 0);
    let new_revision = aborted["canaryRevision"].clone();
    assert_eq!(
        selected_revision(&cluster, "slow-preview").await,
        new_revision,
        "the preview still names the aborted revision"
    );
    cluster
        .wait_for(
            "the preview scaled down",
            Duration::from_secs(45),
            || async {
                (cluster.deployment_replicas("slow-canary").await == Some(0)).then_some(())
            },
        )
        .await;
    assert_eq!(cluster.deployment_replicas("slow-stable").await, Some(4));

    // The identical preview: promoted, the active Service on the new revision, the old
    // revision's pods replaced after the delay.
    let promoted = cluster
        .wait_for("same promoted", Duration::from_secs(40), || async {
            let s = cluster.rollout_status("same").await;
            (s["phase"] == "Healthy" && s["stableRevision"] != old[1]).then_some(s)
        })
        .await;
    let new_revision = promoted["stableRevision"].clone();
    assert_eq!(selected_revision(&cluster, "same").await, new_revision);
    assert_eq!(
        selected_revision(&cluster, "same-preview").await,
        new_revision
    );
    let stable = cluster.get("deployment/same-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "api:2"
    );
    assert_eq!(
        cluster.get("service/same").await.unwrap()["spec"]["ports"][0]["port"],
        80,
        "the rest of the Service is its author's"
    );

    let runs = cluster.get("analysisruns").await.unwrap();
    let phase_of = |name: &str| {
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["spec"]["rollout"]["name"] == name)
            .map(|r| r["status"]["phase"].clone())
            .unwrap_or_else(|| panic!("no AnalysisRun for {name}: {runs:#}"))
    };
    assert_eq!(phase_of("slow"), "Failed");
    assert_eq!(phase_of("same"), "Successful");

    // The records: the comparison completed before the switch and the promotion (the last
    // Promoted; the first is the first revision's); the abort recorded.
    let records = audit_records(&controller.audit_log);
    let last = |name: &str, action: &str| {
        records
            .iter()
            .rposition(|r| r["rollout"]["name"] == name && r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} record for {name}"))
    };
    let completed = last("same", "AnalysisCompleted");
    assert!(
        completed < last("same", "WeightChanged"),
        "switched before the gate"
    );
    assert!(completed < last("same", "Promoted"));
    last("slow", "Aborted");
}
