//! End to end with threshold metrics: a real Prometheus scrapes synthetic canary workloads
//! whose `http_requests_total{code}` counters carry a chosen error rate; the real
//! `fife controller` judges `result[0] >= 0.99` on their success rate, as an analysis step
//! and as background analysis (`strategy.canary.analysis` with `startingStep`).

use std::time::{Duration, Instant};

use crate::harness::{Cluster, Controller, Prometheus, image_patch, rollout};
use fife_testkit::workload::{Workload, WorkloadConfig, WorkloadRole};
use serde_json::Value;

/// The success rate of one scrape job over the last 5 s.
const SUCCESS_RATE: &str = r#"      successCondition: "result[0] >= 0.99"
      failureLimit: 0
      provider:
        prometheus:
          address: "{{args.prometheus}}"
          query: |
            sum(rate(http_requests_total{job="{{args.job}}",code!~"5.."}[5s]))
            / sum(rate(http_requests_total{job="{{args.job}}"}[5s]))
"#;

/// A step template (three measurements) and a background one (measures until the steps end).
fn templates() -> String {
    format!(
        "apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: success-rate, namespace: default}}
spec:
  args: [{{name: job}}, {{name: prometheus}}]
  metrics:
    - name: success-rate
      interval: 1s
      count: 3
{SUCCESS_RATE}---
apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: success-rate-background, namespace: default}}
spec:
  args: [{{name: job}}, {{name: prometheus}}]
  metrics:
    - name: success-rate
      interval: 1s
{SUCCESS_RATE}"
    )
}

async fn canary_workload(error_rate: f64, seed: u64) -> Workload {
    let mut config = WorkloadConfig::new(WorkloadRole::Canary, seed);
    config.error_rate = error_rate;
    config.requests_per_second = 400.0;
    Workload::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn args(job: &str, prometheus: &str) -> String {
    format!("[{{name: job, value: {job}}}, {{name: prometheus, value: \"{prometheus}\"}}]")
}

/// Starts Prometheus on an erroring (5%) and a clean workload and waits until both have a
/// success rate to judge.
async fn prometheus_on_two_workloads() -> (Prometheus, Workload, Workload) {
    let errors = canary_workload(0.05, 31).await;
    let clean = canary_workload(0.0, 32).await;
    let prometheus = Prometheus::start(&[
        ("errors", vec![errors.local_addr()]),
        ("clean", vec![clean.local_addr()]),
    ]);
    prometheus
        .wait_for_series(
            r#"sum by (job) (rate(http_requests_total{job=~"errors|clean"}[5s]))"#,
            2,
        )
        .await;
    (prometheus, errors, clean)
}

async fn run_of(cluster: &Cluster, rollout: &str, background: bool) -> Value {
    let runs = cluster.get("analysisruns").await.unwrap();
    runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["spec"]["rollout"]["name"] == rollout
                && r["spec"]["rollout"]["stepIndex"].is_null() == background
        })
        .cloned()
        .unwrap_or_else(|| panic!("no AnalysisRun for {rollout}: {runs:#}"))
}

fn stable_image(stable: &Value) -> &Value {
    &stable["spec"]["template"]["spec"]["containers"][0]["image"]
}

/// Waits until `name` is Healthy on `image` (its status may still say Healthy from before
/// the image changed, so the phase alone proves nothing).
async fn wait_promoted(cluster: &Cluster, name: &str, image: &str) -> Value {
    cluster
        .wait_for(
            &format!("{name} to be Healthy on {image}"),
            Duration::from_secs(20),
            || async {
                let status = cluster.rollout_status(name).await;
                let stable = cluster.get(&format!("deployment/{name}-stable")).await?;
                (status["phase"] == "Healthy" && stable_image(&stable) == image).then_some(status)
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_rate_below_the_threshold_aborts_and_a_clean_one_promotes() {
    let (prometheus, _errors, _clean) = prometheus_on_two_workloads().await;
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster.apply(&templates()).await;
    for (name, job) in [("erroring", "errors"), ("clean", "clean")] {
        let steps = format!(
            "        - setWeight: 50\n        - analysis:\n            templates: [{{templateName: success-rate}}]\n            args: {}\n        - setWeight: 100\n",
            args(job, &prometheus.address)
        );
        cluster.apply(&rollout(name, "api:1", 2, "", &steps)).await;
    }
    for name in ["erroring", "clean"] {
        cluster
            .wait_phase(name, "Healthy", Duration::from_secs(20))
            .await;
    }
    let started = Instant::now();
    for name in ["erroring", "clean"] {
        cluster
            .merge_patch(&format!("rollout/{name}"), &image_patch("api:2"))
            .await;
    }

    let aborted = cluster
        .wait_phase("erroring", "Degraded", Duration::from_secs(20))
        .await;
    eprintln!("threshold abort after {:?}", started.elapsed());
    assert_eq!(aborted["abort"], true);
    assert_eq!(aborted["weights"]["canary"], 0);
    let run = run_of(&cluster, "erroring", false).await;
    assert_eq!(run["status"]["phase"], "Failed", "{run:#}");
    let measurement = &run["status"]["metricResults"][0]["measurements"][0];
    assert_eq!(measurement["phase"], "Failed", "{run:#}");
    let rate: Vec<f64> = serde_json::from_str(measurement["value"].as_str().unwrap()).unwrap();
    assert!(
        (0.9..0.99).contains(&rate[0]),
        "a 5% error rate measures as a success rate near 0.95, got {rate:?}"
    );
    let stable = cluster.get("deployment/erroring-stable").await.unwrap();
    assert_eq!(stable_image(&stable), "api:1");

    let promoted = wait_promoted(&cluster, "clean", "api:2").await;
    eprintln!("threshold promote after {:?}", started.elapsed());
    assert_eq!(promoted["weights"]["stable"], 100);
    let run = run_of(&cluster, "clean", false).await;
    assert_eq!(run["status"]["phase"], "Successful", "{run:#}");
    assert_eq!(
        run["status"]["metricResults"][0]["measurements"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_background_analysis_aborts_mid_rollout_and_a_passing_one_lets_it_finish() {
    let (prometheus, _errors, _clean) = prometheus_on_two_workloads().await;
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster.apply(&templates()).await;
    // The failing rollout would sit in a 60 s bake window at step 4; it must abort long
    // before. The passing one has short windows and finishes.
    for (name, job, bake) in [("erroring", "errors", "60s"), ("clean", "clean", "2s")] {
        let background = format!(
            "      analysis:\n        templates: [{{templateName: success-rate-background}}]\n        args: {}\n        startingStep: 1\n",
            args(job, &prometheus.address)
        );
        let steps = format!(
            "        - setWeight: 25\n        - pause: {{duration: 2s}}\n        - setWeight: 50\n        - pause: {{duration: {bake}}}\n        - setWeight: 100\n"
        );
        cluster
            .apply(&rollout(name, "api:1", 4, &background, &steps))
            .await;
    }
    for name in ["erroring", "clean"] {
        cluster
            .wait_phase(name, "Healthy", Duration::from_secs(20))
            .await;
    }
    assert!(
        cluster.get("analysisruns").await.unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a first deploy runs no analysis"
    );
    let started = Instant::now();
    for name in ["erroring", "clean"] {
        cluster
            .merge_patch(&format!("rollout/{name}"), &image_patch("api:2"))
            .await;
    }

    let aborted = cluster
        .wait_phase("erroring", "Degraded", Duration::from_secs(20))
        .await;
    eprintln!("background abort after {:?}", started.elapsed());
    assert_eq!(aborted["abort"], true);
    assert!(
        aborted["currentStepIndex"].as_i64().unwrap() < 5,
        "aborted mid-rollout: {aborted:#}"
    );
    assert_eq!(aborted["weights"]["canary"], 0);
    let run = run_of(&cluster, "erroring", true).await;
    assert_eq!(run["status"]["phase"], "Failed", "{run:#}");
    let stable = cluster.get("deployment/erroring-stable").await.unwrap();
    assert_eq!(stable_image(&stable), "api:1");

    let promoted = wait_promoted(&cluster, "clean", "api:2").await;
    eprintln!("background promote after {:?}", started.elapsed());
    assert_eq!(promoted["weights"]["stable"], 100);
    let run = run_of(&cluster, "clean", true).await;
    assert_eq!(run["status"]["phase"], "Successful", "{run:#}");
    let measured = run["status"]["metricResults"][0]["measurements"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        measured >= 2,
        "the background analysis measured through the steps: {run:#}"
    );
}
