//! The comparison verdict: the judge's classification becomes a measurement phase, the
//! look comes from the run's status, and the AnalysisRun's judgement carries the numbers.

use fife_api::analysis::{
    Comparison, ComparisonTest, Direction, MetricProvider, PrometheusProvider,
};
use fife_api::analysis_run::Classification;
use fife_api::{AnalysisRunStatus, MeasurementPhase, Metric, MetricResult};
use fife_engine::{ComparisonSides, ComparisonStatistics, comparison_look, comparison_verdict};
use fife_judge::{Look, PodSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn pods(prefix: &str, levels: &[f64], points: usize) -> Vec<PodSeries> {
    levels
        .iter()
        .enumerate()
        .map(|(p, level)| {
            PodSeries::new(
                format!("{prefix}{p}"),
                (0..points).map(|i| (i as i64 * 15_000, level * (1.0 + (i % 3) as f64 * 0.01))),
            )
        })
        .collect()
}

fn comparison(test: ComparisonTest) -> Comparison {
    Comparison {
        test,
        direction: Direction::Increase,
        min_samples: 10,
        ..Comparison::default()
    }
}

fn sides(canary_scale: f64) -> ComparisonSides {
    ComparisonSides {
        canary: pods(
            "c",
            &[0.97 * canary_scale, 1.0 * canary_scale, 1.03 * canary_scale],
            20,
        ),
        baseline: pods("b", &[0.98, 1.0, 1.02], 20),
        stable: pods("s", &[0.99, 1.01], 20),
        requests: None,
    }
}

#[test]
fn a_slower_canary_fails_and_an_identical_one_succeeds() {
    let c = comparison(ComparisonTest::Pods);
    let failed = comparison_verdict(&c, &sides(1.2), Look::SINGLE);
    assert_eq!(failed.phase, MeasurementPhase::Failed, "{}", failed.message);
    assert_eq!(failed.judgement.classification, Classification::High);
    assert_eq!(failed.judgement.stable_pods, Some(2));
    assert_eq!(failed.judgement.df, Some(5));
    assert!(matches!(failed.statistics, ComparisonStatistics::Pods(_)));
    let ci = failed.judgement.ci.unwrap();
    assert!((ci.level - 0.95).abs() < 1e-12);
    let passed = comparison_verdict(&c, &sides(1.0), Look::SINGLE);
    assert_eq!(
        passed.phase,
        MeasurementPhase::Successful,
        "{}",
        passed.message
    );
}

#[test]
fn no_degree_of_freedom_is_inconclusive_never_failed() {
    let c = comparison(ComparisonTest::Pods);
    let one_a_side = ComparisonSides {
        canary: pods("c", &[3.0], 20),
        baseline: pods("b", &[1.0], 20),
        stable: Vec::new(),
        requests: None,
    };
    let v = comparison_verdict(&c, &one_a_side, Look::SINGLE);
    assert_eq!(v.phase, MeasurementPhase::Inconclusive);
    assert_eq!(v.judgement.classification, Classification::NoData);
    assert_eq!(v.judgement.p_value, None, "no numbers for NoData");
}

#[test]
fn too_few_points_is_inconclusive_under_either_test() {
    for test in [ComparisonTest::Pods, ComparisonTest::MannWhitney] {
        let c = Comparison {
            min_samples: 1000,
            ..comparison(test)
        };
        let v = comparison_verdict(&c, &sides(2.0), Look::SINGLE);
        assert_eq!(v.phase, MeasurementPhase::Inconclusive, "{test:?}");
        assert!(v.message.contains("minSamples is 1000"), "{}", v.message);
    }
}

#[test]
fn mann_whitney_pools_every_point() {
    let v = comparison_verdict(
        &comparison(ComparisonTest::MannWhitney),
        &sides(1.2),
        Look::SINGLE,
    );
    assert_eq!(v.judgement.n_canary, 60);
    assert_eq!(v.judgement.test, Some(ComparisonTest::MannWhitney));
    assert!(v.judgement.u.is_some());
    assert_eq!(v.phase, MeasurementPhase::Failed);
}

#[test]
fn the_look_counts_measurements_and_the_window_starts_before_the_run() {
    let mut metric = Metric::new(
        "latency",
        MetricProvider::Prometheus(PrometheusProvider::default()),
    );
    metric.count = Some(5);
    metric.interval = Some("1m".parse().unwrap());
    let started = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let mut result = MetricResult::new("latency", false);
    result.count = 2;
    let status = AnalysisRunStatus {
        started_at: Some(Time(started)),
        metric_results: vec![result],
        ..AnalysisRunStatus::default()
    };
    let now = started + jiff::SignedDuration::from_secs(130);
    let look = comparison_look(&metric, &status, std::time::Duration::from_secs(300), now);
    assert_eq!(
        look.look,
        Look {
            index: 3,
            planned: Some(5)
        }
    );
    assert_eq!(look.since, started - jiff::SignedDuration::from_secs(300));
    metric.count = None;
    let open = comparison_look(&metric, &status, std::time::Duration::from_secs(300), now);
    assert_eq!(
        open.look,
        Look {
            index: 3,
            planned: None
        }
    );
}

/// Pods counting `errors` of `requests` per 15 s step.
fn counters(prefix: &str, per_pod: &[(f64, f64)]) -> (Vec<PodSeries>, Vec<PodSeries>) {
    let series = |pick: fn(&(f64, f64)) -> f64| -> Vec<PodSeries> {
        per_pod
            .iter()
            .enumerate()
            .map(|(p, counts)| {
                PodSeries::new(
                    format!("{prefix}{p}"),
                    (0..20).map(|i| (i as i64 * 15_000, pick(counts))),
                )
            })
            .collect()
    };
    (series(|c| c.0), series(|c| c.1))
}

fn counted(canary_errors: f64) -> ComparisonSides {
    let (canary, canary_requests) = counters(
        "c",
        &[
            (canary_errors, 1000.0),
            (canary_errors * 1.1, 1000.0),
            (canary_errors * 0.9, 1000.0),
        ],
    );
    let (baseline, baseline_requests) =
        counters("b", &[(4.0, 1000.0), (4.4, 1000.0), (3.6, 1000.0)]);
    ComparisonSides {
        canary,
        baseline,
        stable: Vec::new(),
        requests: Some(Box::new(ComparisonSides {
            canary: canary_requests,
            baseline: baseline_requests,
            stable: Vec::new(),
            requests: None,
        })),
    }
}

#[test]
fn doubled_errors_fail_the_counts_test_with_its_dispersion_on_record() {
    let c = comparison(ComparisonTest::Counts);
    let failed = comparison_verdict(&c, &counted(8.0), Look::SINGLE);
    assert_eq!(failed.phase, MeasurementPhase::Failed, "{}", failed.message);
    assert!(matches!(failed.statistics, ComparisonStatistics::Counts(_)));
    assert_eq!(failed.judgement.method.as_deref(), Some("quasiBinomial"));
    assert!((failed.judgement.effect_size.unwrap() - 2.0).abs() < 1e-12);
    assert!(failed.judgement.dispersion.is_some_and(|d| d > 0.0));
    assert_eq!(failed.judgement.n_canary, 60, "timestamps summed over pods");
    let passed = comparison_verdict(&c, &counted(4.0), Look::SINGLE);
    assert_eq!(
        passed.phase,
        MeasurementPhase::Successful,
        "{}",
        passed.message
    );
}

#[test]
fn counts_without_requests_is_inconclusive() {
    let c = comparison(ComparisonTest::Counts);
    let sides = ComparisonSides {
        requests: None,
        ..counted(8.0)
    };
    let v = comparison_verdict(&c, &sides, Look::SINGLE);
    assert_eq!(v.phase, MeasurementPhase::Inconclusive, "{}", v.message);
}
