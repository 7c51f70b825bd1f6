//! End to end with metrics: a real Prometheus scrapes synthetic canary and baseline
//! workloads, three "pods" a side whose latency scales differ persistently (0.97, 1.00,
//! 1.03); the real `fife controller` runs a comparison analysis (the default `pods` test on
//! per-pod p50 latency) as a rollout step. A canary 20% slower is rolled back; an identical
//! one is promoted despite the pod offsets.

use std::time::Duration;

use crate::harness::{
    Cluster, Controller, LATENCY_TEMPLATE, audit_records, image_patch, rollout, slow_and_same,
};

fn steps(job: &str, prometheus: &str) -> String {
    format!(
        "        - setWeight: 50\n        - analysis:\n            templates: [{{templateName: latency}}]\n            args: [{{name: job, value: {job}}}, {{name: prometheus, value: \"{prometheus}\"}}]\n        - setWeight: 100\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slower_canary_is_rolled_back_and_an_identical_one_promoted() {
    let (_pods, prometheus) = slow_and_same().await;
    let cluster = Cluster::start().await;
    let controller = Controller::simple(&cluster);
    cluster.apply(LATENCY_TEMPLATE).await;
    let baseline = "      baseline: true\n";
    cluster
        .apply(&rollout(
            "slow",
            "api:1",
            4,
            baseline,
            &steps("slow", &prometheus.address),
        ))
        .await;
    cluster
        .apply(&rollout(
            "same",
            "api:1",
            4,
            baseline,
            &steps("same", &prometheus.address),
        ))
        .await;
    cluster
        .wait_phase("slow", "Healthy", Duration::from_secs(20))
        .await;
    cluster
        .wait_phase("same", "Healthy", Duration::from_secs(20))
        .await;
    // Enough history for the analysis window on both sides.
    prometheus
        .wait_for_series("http_request_duration_seconds_count", 12)
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;

    cluster
        .merge_patch("rollout/slow", &image_patch("api:2"))
        .await;
    cluster
        .merge_patch("rollout/same", &image_patch("api:2"))
        .await;

    let rolled_back = cluster
        .wait_phase("slow", "Degraded", Duration::from_secs(40))
        .await;
    assert_eq!(rolled_back["abort"], true);
    assert_eq!(rolled_back["weights"]["canary"], 0);
    assert_eq!(rolled_back["weights"]["stable"], 100);
    let stable = cluster.get("deployment/slow-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "api:1"
    );

    let promoted = cluster
        .wait_phase("same", "Healthy", Duration::from_secs(40))
        .await;
    assert_eq!(promoted["weights"]["stable"], 100);
    let stable = cluster.get("deployment/same-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "api:2"
    );

    // The runs carry the judge's verdicts.
    let runs = cluster.get("analysisruns").await.unwrap();
    let run_of = |name: &str| {
        runs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["spec"]["rollout"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no AnalysisRun for {name}: {runs:#}"))
    };
    let slow_run = run_of("slow");
    assert_eq!(slow_run["status"]["phase"], "Failed", "{slow_run:#}");
    let judgement = &slow_run["status"]["metricResults"][0]["measurements"][0]["judgement"];
    assert_eq!(judgement["classification"], "High", "{slow_run:#}");
    assert!(judgement["shift"].as_f64().unwrap() > 0.0);
    assert!(judgement["nCanary"].as_i64().unwrap() >= 6);
    assert_eq!(judgement["test"], "pods", "{slow_run:#}");
    assert_eq!(judgement["canaryPods"], 3, "{slow_run:#}");
    assert_eq!(judgement["baselinePods"], 3, "{slow_run:#}");
    assert_eq!(run_of("same")["status"]["phase"], "Successful");

    // Evidence in the audit log: measurements with the rendered queries and the judge's
    // numbers, and the abort.
    let records = audit_records(&controller.audit_log);
    let failed_measurement = records
        .iter()
        .find(|r| r["action"] == "Measurement" && r["rollout"]["name"] == "slow")
        .expect("a measurement record for slow");
    let evidence = &failed_measurement["evidence"]["measurements"][0];
    assert_eq!(evidence["phase"], "Failed");
    assert!(
        evidence["queries"][0]["query"]
            .as_str()
            .unwrap()
            .contains("fife_role=\"canary\"")
    );
    assert!(evidence["comparison"]["pValue"].as_f64().unwrap() < 0.005);
    assert_eq!(evidence["comparison"]["test"], "pods");
    assert_eq!(
        evidence["comparison"]["pods"]["canary"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "Aborted" && r["rollout"]["name"] == "slow"),
        "the abort is recorded"
    );
    assert!(controller.metric("fife_measurements_total").await.unwrap() >= 3.0);
}
