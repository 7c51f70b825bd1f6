//! End to end: a real Prometheus (`/usr/bin/prometheus`, installed by
//! `scripts/install-deps.sh`) scrapes synthetic canary and baseline workloads every
//! second; the provider must see a 20% slower canary as slower (the judge: `High`), an
//! identical canary as the same (`Pass`), and a stopped Prometheus as "connection refused".

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use fife_judge::{Classification, JudgeConfig};
use fife_metrics::{
    ClientPool, FailureCause, PrometheusProvider, PrometheusSource, RoleQueries, RoleSamples,
    Window, measure_roles,
};
use fife_testkit::prometheus::{PrometheusServer, ScrapeJob};
use fife_testkit::workload::{Workload, WorkloadConfig, WorkloadRole};

async fn workload(role: WorkloadRole, scale: f64, seed: u64) -> Workload {
    let mut config = WorkloadConfig::new(role, seed);
    config.latency.scale = scale;
    config.requests_per_second = 400.0;
    Workload::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Per-pod p50 over 3 s windows, one point a second.
fn p50_query(job: &str) -> RoleQueries {
    RoleQueries::PerRole(format!(
        "histogram_quantile(0.5, sum by (le, instance) (rate(\n  \
         http_request_duration_seconds_bucket{{job=\"{job}\",fife_role=\"{{{{role}}}}\"}}[3s])))"
    ))
}

const WINDOW: Window = Window::Range {
    lookback: Duration::from_secs(12),
    step: Duration::from_secs(1),
};

/// Polls until both sides have at least `min` points (bounded).
async fn wait_for_samples(
    provider: &PrometheusProvider,
    queries: &RoleQueries,
    min: usize,
) -> RoleSamples {
    let started = Instant::now();
    loop {
        let last = measure_roles(
            provider,
            queries,
            &BTreeMap::new(),
            WINDOW,
            SystemTime::now(),
        )
        .await;
        match last {
            Ok(samples)
                if samples.canary.values.len() >= min && samples.baseline.values.len() >= min =>
            {
                return samples;
            }
            other if started.elapsed() > Duration::from_secs(40) => {
                panic!("no data from Prometheus after 40 s: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The judge as the example template asks it about latency: confidence 0.95, only an
/// increase fails, and only when the mean rises by at least 10%. The effect gate is what
/// keeps the identical pair's verdict stable run after run: at α = 0.05 an A/A comparison
/// is significant one time in twenty by design (docs/analysis-power.md), but its mean
/// ratio stays within a few percent of 1.
fn judge(samples: &RoleSamples) -> fife_judge::Judgement {
    let config = JudgeConfig {
        confidence: 0.95,
        direction: fife_judge::Direction::Increase,
        allowed_increase: 1.10,
        ..JudgeConfig::default()
    };
    fife_judge::judge(&samples.canary.values, &samples.baseline.values, &config)
}

fn ratio(samples: &RoleSamples) -> (f64, f64) {
    (
        median(&samples.canary.values) / median(&samples.baseline.values),
        mean(&samples.canary.values) / mean(&samples.baseline.values),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_see_a_slower_canary_through_a_real_prometheus() {
    let slow_canary = workload(WorkloadRole::Canary, 1.2, 11).await;
    let baseline = workload(WorkloadRole::Baseline, 1.0, 12).await;
    let same_canary = workload(WorkloadRole::Canary, 1.0, 13).await;
    let same_baseline = workload(WorkloadRole::Baseline, 1.0, 14).await;
    let mut prometheus = PrometheusServer::start(&[
        ScrapeJob {
            name: "slow",
            targets: &[slow_canary.local_addr(), baseline.local_addr()],
        },
        ScrapeJob {
            name: "same",
            targets: &[same_canary.local_addr(), same_baseline.local_addr()],
        },
    ])
    .unwrap();

    let pool = ClientPool::new(4);
    let provider =
        PrometheusProvider::new(&pool, PrometheusSource::new(prometheus.address())).unwrap();
    let slow = wait_for_samples(&provider, &p50_query("slow"), 6).await;
    let same = wait_for_samples(&provider, &p50_query("same"), 6).await;
    let (slow_median, slow_mean) = ratio(&slow);
    let (same_median, same_mean) = ratio(&same);
    eprintln!(
        "prometheus: slow canary/baseline median {slow_median:.3} mean {slow_mean:.3} ({} vs {} points); \
         identical {same_median:.3} / {same_mean:.3}",
        slow.canary.values.len(),
        slow.baseline.values.len()
    );
    assert!(
        (1.1..1.3).contains(&slow_median),
        "median ratio {slow_median}: {slow:?}"
    );
    assert!((1.1..1.3).contains(&slow_mean), "mean ratio {slow_mean}");
    assert!(
        (0.95..1.05).contains(&same_median),
        "median ratio {same_median}: {same:?}"
    );
    assert!((0.95..1.05).contains(&same_mean), "mean ratio {same_mean}");
    let baseline_median = median(&slow.baseline.values);
    let above = slow
        .canary
        .values
        .iter()
        .filter(|v| **v > baseline_median)
        .count();
    assert_eq!(
        above,
        slow.canary.values.len(),
        "every slow-canary point is above the baseline median"
    );
    let slow_judgement = judge(&slow);
    let same_judgement = judge(&same);
    eprintln!(
        "judge: slow {:?} ({}); identical {:?} ({})",
        slow_judgement.classification,
        slow_judgement.reason,
        same_judgement.classification,
        same_judgement.reason
    );
    assert_eq!(
        slow_judgement.classification,
        Classification::High,
        "{slow_judgement:?}"
    );
    assert_eq!(
        same_judgement.classification,
        Classification::Pass,
        "{same_judgement:?}"
    );

    prometheus.stop();
    let err = measure_roles(
        &provider,
        &p50_query("slow"),
        &BTreeMap::new(),
        WINDOW,
        SystemTime::now(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.cause, FailureCause::ConnectionRefused, "{err}");
    let line = err.to_string();
    assert!(
        line.contains(prometheus.address()) && line.contains("connection refused"),
        "{line}"
    );
}
