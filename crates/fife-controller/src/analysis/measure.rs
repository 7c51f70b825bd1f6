//! Takes one measurement of one metric: runs its query through `fife-metrics` and hands the
//! numbers to the engine's verdicts. Returns the measurement for the AnalysisRun and the
//! evidence for the audit record.
//!
//! ```text
//!  threshold:  instant query ─▶ Samples ─▶ fife_engine::threshold_verdict ─▶ phase
//!  comparison: range query × {canary, baseline, stable} ─▶ series per pod
//!              (counts: errors and requests queries, errors absent = none)
//!              ─▶ fife_engine::comparison_verdict (look k of the run) ─▶ phase
//!  any query failure ─▶ Error; "no data" ─▶ Error (threshold) or Inconclusive (comparison)
//! ```
//!
//! Only [`measure_metric`] does I/O; the verdicts live in `fife-engine`. The provider's
//! credentials come already read from their Secrets ([`crate::analysis::credentials`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use fife_api::analysis::{Comparison, ComparisonTest, PrometheusProvider};
use fife_api::{
    AnalysisRunStatus, Measurement, MeasurementPhase, Metric, MetricProvider as ProviderSpec,
};
use fife_audit::{
    ComparisonEvidence, MeasurementEvidence, Phase, RenderedQuery, ThresholdEvidence,
};
use fife_engine::{ComparisonSides, ComparisonStatistics};
use fife_metrics::{
    ClientPool, ErrorClass, FailureCause, MetricError, MetricProvider, PrometheusSource, Query,
    Role, RoleQueries, RoleSamples, Samples, Series, TemplateValues, Window, measure_roles, render,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::analysis::credentials::ProviderCredentials;

/// The window of a comparison whose provider gives no `range`.
pub const DEFAULT_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(300);
pub const DEFAULT_STEP: std::time::Duration = std::time::Duration::from_secs(15);

/// The most points Prometheus returns per series of one range query; it refuses a longer
/// range at the same step.
pub const PROMETHEUS_MAX_POINTS: u64 = 11_000;

/// The range a comparison metric queries at its last look of a run lasting at most `run`
/// (sooner when `count` ends it): the pod and counts tests accumulate evidence from the
/// run's start, the pooled test keeps its lookback. None for a threshold metric.
pub fn longest_range(
    metric: &Metric,
    run: std::time::Duration,
) -> Option<(std::time::Duration, std::time::Duration)> {
    let comparison = metric.compare.as_ref()?;
    let ProviderSpec::Prometheus(spec) = &metric.provider;
    let (lookback, step) = spec
        .range
        .as_ref()
        .map_or((DEFAULT_LOOKBACK, DEFAULT_STEP), |r| {
            (r.lookback.as_std(), r.step.as_std())
        });
    let planned = metric.count.filter(|c| *c >= 1).map(|count| {
        let interval = metric
            .interval
            .map_or(std::time::Duration::ZERO, |i| i.as_std());
        let delay = metric
            .initial_delay
            .map_or(std::time::Duration::ZERO, |d| d.as_std());
        delay + interval * (count.unsigned_abs() - 1)
    });
    let run = planned.map_or(run, |planned| planned.min(run));
    Some(match comparison.test {
        ComparisonTest::Pods | ComparisonTest::Counts => (run + lookback, step),
        ComparisonTest::MannWhitney => (lookback, step),
    })
}

/// A sentence naming the step to use when a range of `lookback` at `step` returns more
/// than [`PROMETHEUS_MAX_POINTS`] points per series; None when it fits.
pub fn too_many_points(
    metric: &str,
    lookback: std::time::Duration,
    step: std::time::Duration,
) -> Option<String> {
    let step_ms = step.as_millis().max(1);
    let points = lookback.as_millis() / step_ms + 1;
    if points <= u128::from(PROMETHEUS_MAX_POINTS) {
        return None;
    }
    let fitting = lookback
        .as_millis()
        .div_ceil(u128::from(PROMETHEUS_MAX_POINTS - 1))
        .div_ceil(1000);
    Some(format!(
        "metric {metric}: its range query spans {}s at step {}s, {points} points per series, more than the {PROMETHEUS_MAX_POINTS} Prometheus returns, so Prometheus will refuse it: set range.step to {fitting}s or more",
        lookback.as_secs(),
        step.as_secs_f64(),
    ))
}

/// One measurement and its audit evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenMeasurement {
    pub measurement: Measurement,
    pub evidence: MeasurementEvidence,
}

/// Measures `metric` at `now`, with the run's resolved `args`, the provider's
/// `credentials` and the run's `status` (a comparison's look and window start from it).
pub async fn measure_metric(
    pool: &ClientPool,
    metric: &Metric,
    credentials: ProviderCredentials,
    args: &BTreeMap<String, String>,
    status: &AnalysisRunStatus,
    now: jiff::Timestamp,
) -> TakenMeasurement {
    let ProviderSpec::Prometheus(spec) = &metric.provider;
    let at = SystemTime::from(now);
    let provider = match fife_metrics::PrometheusProvider::new(pool, source(spec, credentials)) {
        Ok(provider) => provider,
        Err(e) => {
            return error_measurement(metric, now, Vec::new(), e.to_string());
        }
    };
    match &metric.compare {
        None => {
            let values = TemplateValues {
                args: args.clone(),
                role: None,
            };
            let text = match render(&spec.query, &values) {
                Ok(text) => text,
                Err(e) => return error_measurement(metric, now, Vec::new(), e.to_string()),
            };
            let queries = vec![rendered(spec, None, &text)];
            let result = provider.measure(&Query::instant(text, at)).await;
            threshold_measurement(metric, result, queries, now)
        }
        Some(comparison) => {
            let (lookback, step) = spec
                .range
                .as_ref()
                .map_or((DEFAULT_LOOKBACK, DEFAULT_STEP), |r| {
                    (r.lookback.as_std(), r.step.as_std())
                });
            let look = fife_engine::comparison_look(metric, status, lookback, now);
            // The pod and counts tests accumulate evidence from the run's start; the
            // pooled test keeps its fixed window.
            let lookback = match comparison.test {
                ComparisonTest::Pods | ComparisonTest::Counts => {
                    now.duration_since(look.since).unsigned_abs().max(lookback)
                }
                ComparisonTest::MannWhitney => lookback,
            };
            if let Some(warning) = too_many_points(&metric.name, lookback, step) {
                tracing::warn!("{warning}");
            }
            let window = Window::Range { lookback, step };
            let templates = std::iter::once(&spec.query).chain(comparison.requests.as_ref());
            let queries = templates
                .flat_map(|template| {
                    [Role::Canary, Role::Baseline, Role::Stable]
                        .into_iter()
                        .filter_map(move |role| {
                            let values = TemplateValues {
                                args: args.clone(),
                                role: Some(role),
                            };
                            render(template, &values)
                                .ok()
                                .map(|text| rendered(spec, Some(role), &text))
                        })
                })
                .collect();
            let (result, requests) = match (comparison.test, &comparison.requests) {
                (ComparisonTest::Counts, Some(requests)) => {
                    let requests = RoleQueries::PerRole(requests.clone());
                    match measure_roles(&provider, &requests, args, window, at).await {
                        Ok(requests) => (
                            measure_errors(&provider, &spec.query, args, window, at).await,
                            Some(requests),
                        ),
                        Err(e) => (Err(e), None),
                    }
                }
                _ => {
                    let errors_or_values = RoleQueries::PerRole(spec.query.clone());
                    let result = measure_roles(&provider, &errors_or_values, args, window, at);
                    (result.await, None)
                }
            };
            comparison_measurement(
                metric, comparison, result, requests, queries, look.look, now,
            )
        }
    }
}

/// `counts`: each role's errors series. A role whose errors query finds no series had no
/// errors (an error counter often appears only with the first error); the requests query
/// decides whether a side has data.
async fn measure_errors(
    provider: &dyn MetricProvider,
    template: &str,
    args: &BTreeMap<String, String>,
    window: Window,
    at: SystemTime,
) -> Result<RoleSamples, MetricError> {
    let mut sides = Vec::with_capacity(3);
    for role in [Role::Canary, Role::Baseline, Role::Stable] {
        let values = TemplateValues {
            args: args.clone(),
            role: Some(role),
        };
        let text = render(template, &values).map_err(|e| {
            MetricError::new(provider.endpoint(), template, FailureCause::Template(e))
        })?;
        match provider.measure(&Query { text, window, at }).await {
            Ok(samples) => sides.push(samples),
            Err(e) if e.class() == ErrorClass::NoData => sides.push(Samples::default()),
            Err(e) => return Err(e),
        }
    }
    let stable = sides.pop();
    let baseline = sides.pop().unwrap_or_default();
    let canary = sides.pop().unwrap_or_default();
    Ok(RoleSamples {
        canary,
        baseline,
        stable,
    })
}

fn source(spec: &PrometheusProvider, credentials: ProviderCredentials) -> PrometheusSource {
    let mut source = PrometheusSource::new(spec.address.clone());
    if let Some(timeout) = spec.timeout {
        source.timeout = timeout.as_std();
    }
    source.auth = credentials.auth;
    source.tls.ca_bundle_pem = credentials.ca_bundle_pem;
    source.tls.insecure_skip_verify = spec.insecure_skip_verify;
    source
}

/// A measurement that could not be taken at all (e.g. its credentials are unreadable): an
/// Error, with `message` saying why. Missing data never passes.
pub fn unmeasurable(metric: &Metric, now: jiff::Timestamp, message: String) -> TakenMeasurement {
    error_measurement(metric, now, Vec::new(), message)
}

fn rendered(spec: &PrometheusProvider, role: Option<Role>, text: &str) -> RenderedQuery {
    RenderedQuery {
        role: role.map(|r| r.as_str().to_owned()),
        provider: "prometheus".to_owned(),
        address: Some(spec.address.clone()),
        query: text.to_owned(),
    }
}

/// A threshold measurement from an instant query's outcome. "No data" is an Error: a
/// condition over an empty result cannot be evaluated (docs/analysis.md).
pub fn threshold_measurement(
    metric: &Metric,
    result: Result<Samples, MetricError>,
    queries: Vec<RenderedQuery>,
    now: jiff::Timestamp,
) -> TakenMeasurement {
    let samples = match result {
        Ok(samples) => samples,
        Err(e) => return error_measurement(metric, now, queries, e.to_string()),
    };
    let verdict = fife_engine::threshold_verdict(metric, &samples.values);
    let value = serde_json::to_string(&samples.values).unwrap_or_default();
    let measurement = Measurement {
        phase: verdict.phase,
        started_at: Some(Time(now)),
        finished_at: Some(Time(now)),
        value: Some(value),
        judgement: None,
        message: Some(verdict.message.clone()).filter(|m| !m.is_empty()),
    };
    let evidence = MeasurementEvidence {
        metric: metric.name.clone(),
        phase: audit_phase(verdict.phase),
        queries,
        threshold: Some(ThresholdEvidence {
            success_condition: metric.success_condition.clone(),
            failure_condition: metric.failure_condition.clone(),
            result: serde_json::json!(samples.values),
        }),
        comparison: None,
        message: measurement.message.clone(),
    };
    TakenMeasurement {
        measurement,
        evidence,
    }
}

/// The series of one side as the judge's pods, each named by its labels.
fn pods(samples: &Samples) -> Vec<fife_judge::PodSeries> {
    samples.by_series.iter().map(pod).collect()
}

fn pod(series: &Series) -> fife_judge::PodSeries {
    let labels = series
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",");
    fife_judge::PodSeries::new(format!("{{{labels}}}"), series.points.iter().copied())
}

/// A comparison measurement from the sides' samples at `look`: the engine's verdict, a
/// failed query an Error, a query that found no canary or baseline series Inconclusive.
/// `counts` passes the errors as `result` and the requests per side as `requests`.
pub fn comparison_measurement(
    metric: &Metric,
    comparison: &Comparison,
    result: Result<RoleSamples, MetricError>,
    requests: Option<RoleSamples>,
    queries: Vec<RenderedQuery>,
    look: fife_judge::Look,
    now: jiff::Timestamp,
) -> TakenMeasurement {
    let samples = match result {
        Ok(samples) => samples,
        Err(e) if e.class() == ErrorClass::NoData => {
            let mut taken = error_measurement(metric, now, queries, e.to_string());
            taken.measurement.phase = MeasurementPhase::Inconclusive;
            taken.evidence.phase = Phase::Inconclusive;
            return taken;
        }
        Err(e) => return error_measurement(metric, now, queries, e.to_string()),
    };
    let sides_of = |samples: &RoleSamples| ComparisonSides {
        canary: pods(&samples.canary),
        baseline: pods(&samples.baseline),
        stable: samples.stable.as_ref().map(pods).unwrap_or_default(),
        requests: None,
    };
    let sides = ComparisonSides {
        requests: requests.as_ref().map(|r| Box::new(sides_of(r))),
        ..sides_of(&samples)
    };
    let verdict = fife_engine::comparison_verdict(comparison, &sides, look);
    let judgement = &verdict.judgement;
    let (u, p_method, pods_evidence) = match &verdict.statistics {
        ComparisonStatistics::Pods(j) => {
            (None, judgement.method.clone(), serde_json::to_value(j).ok())
        }
        ComparisonStatistics::Counts(j) => {
            (None, judgement.method.clone(), serde_json::to_value(j).ok())
        }
        ComparisonStatistics::MannWhitney(_) => (judgement.u, judgement.method.clone(), None),
    };
    let evidence = MeasurementEvidence {
        metric: metric.name.clone(),
        phase: audit_phase(verdict.phase),
        queries,
        threshold: None,
        comparison: Some(ComparisonEvidence {
            test: fife_api::wire::wire_name(&comparison.test),
            direction: fife_api::wire::wire_name(&comparison.direction),
            confidence: comparison.confidence,
            allowed_increase: comparison.allowed_increase,
            allowed_decrease: comparison.allowed_decrease,
            min_samples: u64::try_from(comparison.min_samples.max(1)).unwrap_or(1),
            canary_samples: u64::try_from(judgement.n_canary).unwrap_or(0),
            baseline_samples: u64::try_from(judgement.n_baseline).unwrap_or(0),
            u,
            p_value: judgement.p_value,
            p_method,
            shift: judgement.shift,
            ci_low: judgement.ci.map(|c| c.lower),
            ci_high: judgement.ci.map(|c| c.upper),
            classification: fife_api::wire::wire_name(&judgement.classification),
            summary: Some(judgement.reason.clone()),
            pods: pods_evidence,
        }),
        message: Some(verdict.message.clone()),
    };
    TakenMeasurement {
        measurement: Measurement {
            phase: verdict.phase,
            started_at: Some(Time(now)),
            finished_at: Some(Time(now)),
            value: None,
            judgement: Some(verdict.judgement),
            message: Some(verdict.message),
        },
        evidence,
    }
}

fn error_measurement(
    metric: &Metric,
    now: jiff::Timestamp,
    queries: Vec<RenderedQuery>,
    message: String,
) -> TakenMeasurement {
    TakenMeasurement {
        measurement: Measurement {
            phase: MeasurementPhase::Error,
            started_at: Some(Time(now)),
            finished_at: Some(Time(now)),
            value: None,
            judgement: None,
            message: Some(message.clone()),
        },
        evidence: MeasurementEvidence {
            metric: metric.name.clone(),
            phase: Phase::Error,
            queries,
            threshold: None,
            comparison: None,
            message: Some(message),
        },
    }
}

/// The audit schema's phase for a finished measurement (a still-running one is reported
/// as Inconclusive: it decided nothing yet).
pub fn audit_phase(phase: MeasurementPhase) -> Phase {
    match phase {
        MeasurementPhase::Successful => Phase::Successful,
        MeasurementPhase::Failed => Phase::Failed,
        MeasurementPhase::Error => Phase::Error,
        MeasurementPhase::Inconclusive | MeasurementPhase::Running => Phase::Inconclusive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_metrics::NoData;

    fn comparison_metric(min_samples: i32, test: ComparisonTest) -> (Metric, Comparison) {
        let comparison = Comparison {
            test,
            direction: fife_api::analysis::Direction::Increase,
            allowed_increase: Some(1.1),
            min_samples,
            ..Comparison::default()
        };
        let mut metric = Metric::new(
            "latency",
            ProviderSpec::Prometheus(PrometheusProvider {
                address: "http://prom:9090".into(),
                query: "q{fife_role=\"{{role}}\"}".into(),
                ..PrometheusProvider::default()
            }),
        );
        metric.compare = Some(comparison.clone());
        (metric, comparison)
    }

    /// `pods` pods of `n` points each around `base`, scaled, with small pod offsets.
    fn side(prefix: &str, pods: usize, base: f64, scale: f64, n: usize) -> Samples {
        let by_series: Vec<Series> = (0..pods)
            .map(|p| Series {
                labels: BTreeMap::from([("pod".to_owned(), format!("{prefix}-{p}"))]),
                points: (0..n)
                    .map(|i| {
                        let offset = 1.0 + (p as f64 - 1.0) * 0.01;
                        let value = (base + (i % 17) as f64 * 0.003) * scale * offset;
                        (1_700_000_000_000 + i as i64 * 15_000, value)
                    })
                    .collect(),
            })
            .collect();
        Samples {
            values: by_series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .collect(),
            series: pods,
            dropped_non_finite: 0,
            by_series,
        }
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn compare(
        metric: &Metric,
        c: &Comparison,
        canary: Samples,
        baseline: Samples,
    ) -> TakenMeasurement {
        let result = Ok(RoleSamples {
            canary,
            baseline,
            stable: None,
        });
        comparison_measurement(
            metric,
            c,
            result,
            None,
            Vec::new(),
            fife_judge::Look::SINGLE,
            now(),
        )
    }

    #[test]
    fn a_range_over_eleven_thousand_points_names_the_step_that_fits() {
        let secs = std::time::Duration::from_secs;
        assert_eq!(too_many_points("m", secs(10_999 * 15), secs(15)), None);
        let warning = too_many_points("m", secs(11_000 * 15), secs(15)).unwrap();
        assert!(warning.contains("11001 points"), "{warning}");
        assert!(
            warning.contains("set range.step to 16s or more"),
            "{warning}"
        );
        let (mut metric, _) = comparison_metric(20, ComparisonTest::Pods);
        metric.interval = Some("2m".parse().unwrap());
        let (lookback, step) = longest_range(&metric, secs(48 * 3600)).unwrap();
        assert_eq!(lookback, secs(48 * 3600) + DEFAULT_LOOKBACK);
        assert!(too_many_points(&metric.name, lookback, step).is_some());
        metric.count = Some(5);
        let (lookback, _) = longest_range(&metric, secs(48 * 3600)).unwrap();
        assert_eq!(
            lookback,
            secs(4 * 120) + DEFAULT_LOOKBACK,
            "count ends the run"
        );
        let (metric, _) = comparison_metric(20, ComparisonTest::MannWhitney);
        assert_eq!(
            longest_range(&metric, secs(48 * 3600)),
            Some((DEFAULT_LOOKBACK, DEFAULT_STEP))
        );
    }

    #[test]
    fn a_canary_twenty_percent_slower_fails_with_pod_evidence() {
        let (metric, c) = comparison_metric(20, ComparisonTest::Pods);
        let taken = compare(
            &metric,
            &c,
            side("c", 3, 0.1, 1.2, 20),
            side("b", 3, 0.1, 1.0, 20),
        );
        assert_eq!(taken.measurement.phase, MeasurementPhase::Failed);
        let j = taken.measurement.judgement.unwrap();
        assert_eq!(
            j.classification,
            fife_api::analysis_run::Classification::High
        );
        assert_eq!(j.canary_pods, Some(3));
        let evidence = taken.evidence.comparison.unwrap();
        assert_eq!(evidence.test, "pods");
        assert_eq!(evidence.direction, "increase");
        assert_eq!(evidence.classification, "High");
        let pods = evidence.pods.unwrap();
        assert_eq!(pods["scale"], "log");
        assert_eq!(pods["canary"][0]["pod"], "{pod=\"c-0\"}");
        assert_eq!(taken.evidence.phase, Phase::Failed);
    }

    #[test]
    fn an_identical_canary_passes_under_both_tests() {
        for test in [ComparisonTest::Pods, ComparisonTest::MannWhitney] {
            let (metric, c) = comparison_metric(20, test);
            let taken = compare(
                &metric,
                &c,
                side("c", 3, 0.1, 1.0, 20),
                side("b", 3, 0.1, 1.0, 20),
            );
            assert_eq!(
                taken.measurement.phase,
                MeasurementPhase::Successful,
                "{test:?}"
            );
        }
    }

    #[test]
    fn mann_whitney_evidence_names_its_test_and_method() {
        let (metric, c) = comparison_metric(20, ComparisonTest::MannWhitney);
        let taken = compare(
            &metric,
            &c,
            side("c", 1, 0.1, 1.2, 60),
            side("b", 1, 0.1, 1.0, 60),
        );
        assert_eq!(taken.measurement.phase, MeasurementPhase::Failed);
        let evidence = taken.evidence.comparison.unwrap();
        assert_eq!(evidence.test, "mannWhitney");
        assert_eq!(evidence.canary_samples, 60);
        assert_eq!(evidence.p_method.as_deref(), Some("asymptotic"));
        assert!(evidence.pods.is_none());
    }

    #[test]
    fn fewer_samples_than_min_samples_is_inconclusive_even_if_clearly_worse() {
        let (metric, c) = comparison_metric(500, ComparisonTest::Pods);
        let taken = compare(
            &metric,
            &c,
            side("c", 3, 0.1, 2.0, 20),
            side("b", 3, 0.1, 1.0, 20),
        );
        assert_eq!(taken.measurement.phase, MeasurementPhase::Inconclusive);
        assert!(
            taken
                .measurement
                .message
                .unwrap()
                .contains("minSamples is 500")
        );
    }

    #[test]
    fn no_series_is_inconclusive_and_a_failed_query_is_an_error() {
        let (metric, c) = comparison_metric(20, ComparisonTest::Pods);
        let look = fife_judge::Look::SINGLE;
        let no_data = MetricError::new(
            "http://prom",
            "q",
            FailureCause::NoData(NoData::EmptyResult),
        );
        let taken =
            comparison_measurement(&metric, &c, Err(no_data), None, Vec::new(), look, now());
        assert_eq!(taken.measurement.phase, MeasurementPhase::Inconclusive);
        let refused = MetricError::new("http://prom", "q", FailureCause::ConnectionRefused);
        let taken =
            comparison_measurement(&metric, &c, Err(refused), None, Vec::new(), look, now());
        assert_eq!(taken.measurement.phase, MeasurementPhase::Error);
        assert!(
            taken
                .measurement
                .message
                .unwrap()
                .contains("connection refused")
        );
    }

    #[test]
    fn a_threshold_without_data_is_an_error() {
        let (mut metric, _) = comparison_metric(1, ComparisonTest::Pods);
        metric.compare = None;
        metric.success_condition = Some("result[0] >= 0.99".into());
        let no_data = MetricError::new(
            "http://prom",
            "q",
            FailureCause::NoData(NoData::EmptyResult),
        );
        let taken = threshold_measurement(&metric, Err(no_data), Vec::new(), now());
        assert_eq!(taken.measurement.phase, MeasurementPhase::Error);
    }
}
