//! Hours of modelled data through a real Prometheus: the cluster model backfilled with
//! promtool, then queried with the PromQL a comparison template uses. Per-pod series keep
//! their identity and the model's effect survives `rate`, `sum by (le, pod)` and
//! `histogram_quantile`.

use fife_testkit::cluster_model::{
    CanaryEffect, ClusterModel, PodEvent, PodEventKind, PodRole, ScrapeRange,
};
use fife_testkit::prometheus::{PrometheusServer, backfill};
use serde_json::Value;

/// Two hours of 15 s scrapes, a day before a fixed instant: older than anything
/// Prometheus' head would hold.
const RANGE: ScrapeRange = ScrapeRange {
    start_seconds: 1_700_000_000,
    end_seconds: 1_700_000_000 + 2 * 3600,
    interval_seconds: 15,
};

async fn query_range(prometheus: &str, query: &str, start: i64, end: i64) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query_range"))
        .query(&[
            ("query", query.to_owned()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", "15".to_owned()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"].as_array().unwrap().clone()
}

fn values(series: &Value) -> Vec<f64> {
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[1].as_str().unwrap().parse::<f64>().unwrap())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn p50(service: &str, role: &str) -> String {
    format!(
        "histogram_quantile(0.5, sum by (le, pod) (rate(\
         http_request_duration_seconds_bucket{{service=\"{service}\",fife_role=\"{role}\"}}[1m])))"
    )
}

#[tokio::test]
async fn backfilled_hours_answer_promql_per_pod_with_the_models_effect() {
    let mut slow = ClusterModel::new("slow", 11);
    slow.canary = CanaryEffect {
        latency_scale: 1.2,
        error_scale: 1.0,
    };
    let mut same = ClusterModel::new("same", 12);
    same.events.push(PodEvent {
        role: PodRole::Baseline,
        index: 2,
        after_seconds: 3600,
        kind: PodEventKind::Replaced,
    });
    let tsdb = backfill(&[slow, same], &RANGE).unwrap();
    let prometheus = PrometheusServer::start_on_tsdb(tsdb).unwrap();
    let address = prometheus.address();
    let (from, to) = (RANGE.start_seconds + 120, RANGE.end_seconds);

    let canary = query_range(address, &p50("slow", "canary"), from, to).await;
    let baseline = query_range(address, &p50("slow", "baseline"), from, to).await;
    assert_eq!(canary.len(), 3, "one series per canary pod");
    assert_eq!(baseline.len(), 3, "one series per baseline pod");
    for series in &canary {
        assert_eq!(
            series["metric"]["pod"].as_str().unwrap().len(),
            "slow-canary-0".len()
        );
        assert!(values(series).len() > 400, "two hours at a 15 s step");
    }
    let pooled = |sides: &[Value]| median(sides.iter().flat_map(values).collect());
    let ratio = pooled(&canary) / pooled(&baseline);
    assert!((ratio - 1.2).abs() < 0.06, "canary/baseline median {ratio}");

    let same_canary = pooled(&query_range(address, &p50("same", "canary"), from, to).await);
    let same_baseline = query_range(address, &p50("same", "baseline"), from, to).await;
    assert_eq!(same_baseline.len(), 4, "a replaced pod is a fourth series");
    let ratio = same_canary / pooled(&same_baseline);
    assert!(
        (ratio - 1.0).abs() < 0.06,
        "identical canary/baseline {ratio}"
    );

    let requests = query_range(
        address,
        "sum by (pod) (rate(http_requests_total{service=\"slow\",fife_role=\"stable\"}[2m]))",
        from,
        to,
    )
    .await;
    assert_eq!(requests.len(), 3);
    let rate = median(requests.iter().flat_map(values).collect());
    assert!(
        (rate - 20.0).abs() < 2.5,
        "20 requests/s per pod, got {rate}"
    );
}
