//! The counts test through a real Prometheus: the cluster model's request counters
//! (per-pod error multipliers, a container restart that resets a canary pod's counters, a
//! replaced baseline pod) backfilled with promtool, read with `increase` per pod, and
//! judged by the controller's own analysis loop over half an hour of looks.

use std::collections::BTreeMap;

use fife_api::analysis::{Comparison, ComparisonTest, Direction, QueryRange};
use fife_api::{AnalysisPhase, AnalysisRunSpec, Metric, MetricProvider, PrometheusProvider};
use fife_controller::analysis::step::{self as analysis_step, Replay};
use fife_metrics::ClientPool;
use fife_testkit::cluster_model::{
    CanaryEffect, ClusterModel, PodEvent, PodEventKind, PodRole, ScrapeRange,
};
use fife_testkit::prometheus::{PrometheusServer, backfill};

const START: i64 = 1_700_000_000;
/// The first look, once the 5 minute lookback has data.
const WARM_UP_SECONDS: i64 = 420;
const INTERVAL_SECONDS: i64 = 120;
const COUNT: i32 = 15;

const RANGE: ScrapeRange = ScrapeRange {
    start_seconds: START,
    end_seconds: START + WARM_UP_SECONDS + INTERVAL_SECONDS * COUNT as i64,
    interval_seconds: 15,
};

fn model(service: &str, seed: u64, error_scale: f64) -> ClusterModel {
    let mut model = ClusterModel::new(service, seed);
    model.canary = CanaryEffect {
        latency_scale: 1.0,
        error_scale,
    };
    model.events = vec![
        PodEvent {
            role: PodRole::Canary,
            index: 1,
            after_seconds: 900,
            kind: PodEventKind::ContainerRestart,
        },
        PodEvent {
            role: PodRole::Baseline,
            index: 2,
            after_seconds: 1200,
            kind: PodEventKind::Replaced,
        },
    ];
    model
}

fn counter(service: &str, code: &str) -> String {
    format!(
        "sum by (pod) (increase(http_requests_total{{service=\"{service}\",fife_role=\"{{{{role}}}}\"{code}}}[1m]))"
    )
}

fn run_spec(service: &str, prometheus: &str) -> AnalysisRunSpec {
    let mut metric = Metric::new(
        "error-ratio",
        MetricProvider::Prometheus(PrometheusProvider {
            address: prometheus.to_owned(),
            query: counter(service, ",code=\"500\""),
            range: Some(QueryRange {
                lookback: "5m".parse().unwrap(),
                step: "15s".parse().unwrap(),
            }),
            ..PrometheusProvider::default()
        }),
    );
    metric.interval = Some(format!("{INTERVAL_SECONDS}s").parse().unwrap());
    metric.count = Some(COUNT);
    metric.compare = Some(Comparison {
        test: ComparisonTest::Counts,
        direction: Direction::Increase,
        min_samples: 1,
        requests: Some(counter(service, "")),
        ..Comparison::default()
    });
    AnalysisRunSpec {
        metrics: vec![metric],
        args: Vec::new(),
        rollout: None,
        terminate: false,
    }
}

/// The per-pod requests of the last measurement's canary, from its audit evidence.
fn canary_requests(replay: &Replay) -> BTreeMap<String, f64> {
    let last = replay.measurements[0].1.last().expect("a measurement");
    let pods = last
        .evidence
        .comparison
        .as_ref()
        .and_then(|c| c.pods.as_ref())
        .expect("counts evidence");
    pods["canary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pod"].as_str().unwrap().to_owned(),
                p["requests"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn doubled_errors_roll_back_and_an_identical_canary_with_a_restart_completes() {
    let tsdb = backfill(&[model("same", 21, 1.0), model("worse", 22, 2.0)], &RANGE).unwrap();
    let prometheus = PrometheusServer::start_on_tsdb(tsdb).unwrap();
    let pool = ClientPool::default();
    let from = jiff::Timestamp::from_second(START + WARM_UP_SECONDS).unwrap();
    let to = jiff::Timestamp::from_second(RANGE.end_seconds).unwrap();

    let same =
        analysis_step::replay(&pool, &run_spec("same", prometheus.address()), from, to).await;
    assert_eq!(
        same.status.phase,
        Some(AnalysisPhase::Successful),
        "{:#?}",
        same.measurements[0]
            .1
            .last()
            .map(|m| &m.measurement.message)
    );
    let looks = &same.measurements[0].1;
    assert_eq!(looks.len(), COUNT as usize);
    // increase() carries the restarted pod's counter across its reset: its requests stay
    // within a few percent of its siblings' (a reset read as a raw difference would be a
    // large negative count and the judge would refuse it).
    let requests = canary_requests(&same);
    assert_eq!(requests.len(), 3, "{requests:?}");
    let median = {
        let mut v: Vec<f64> = requests.values().copied().collect();
        v.sort_by(f64::total_cmp);
        v[1]
    };
    for (pod, n) in &requests {
        assert!(
            (n / median - 1.0).abs() < 0.05,
            "{pod}: {n} vs median {median}"
        );
    }

    let worse =
        analysis_step::replay(&pool, &run_spec("worse", prometheus.address()), from, to).await;
    assert_eq!(worse.status.phase, Some(AnalysisPhase::Failed));
    let failed = worse.measurements[0].1.last().unwrap();
    let judgement = failed.measurement.judgement.as_ref().unwrap();
    let ratio = judgement.effect_size.unwrap();
    assert!((1.5..2.7).contains(&ratio), "canary/baseline {ratio}");
    assert!(judgement.dispersion.is_some_and(|d| d > 0.0));
}
