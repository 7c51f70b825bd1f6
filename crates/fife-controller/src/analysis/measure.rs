//! Takes one measurement of one metric: runs its query through `fife-metrics`, then
//! classifies the numbers: a threshold metric with the engine's CEL conditions, a
//! comparison metric with `fife-judge` on the canary and baseline series. Returns the
//! measurement for the AnalysisRun and the evidence for the audit record.
//!
//! ```text
//!  threshold:  instant query ─▶ Samples ─▶ fife_engine::threshold_verdict ─▶ phase
//!  comparison: range query × {canary, baseline} ─▶ fife_judge::judge ─▶ Pass/High/Low/NoData
//!              ─▶ Successful / Failed / Inconclusive (NoData, < minSamples)
//!  any query failure ─▶ Error; "no data" ─▶ Error (threshold) or Inconclusive (comparison)
//! ```
//!
//! Only [`measure_metric`] does I/O; the classifications are pure and tested as such. The
//! provider's credentials come already read from their Secrets ([`crate::analysis::credentials`]).

use std::collections::BTreeMap;
use std::time::SystemTime;

use fife_api::analysis::{
    Comparison, ComparisonRule, Direction, NanStrategy, OutlierStrategy, PrometheusProvider,
};
use fife_api::analysis_run::{Classification, ConfidenceInterval, Judgement};
use fife_api::{Measurement, MeasurementPhase, Metric, MetricProvider as ProviderSpec};
use fife_audit::{
    ComparisonEvidence, MeasurementEvidence, Phase, RenderedQuery, ThresholdEvidence,
};
use fife_metrics::{
    ClientPool, ErrorClass, MetricError, MetricProvider, PrometheusSource, Query, Role,
    RoleQueries, RoleSamples, Samples, TemplateValues, Window, measure_roles, render,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::analysis::credentials::ProviderCredentials;

/// The window of a comparison whose provider gives no `range`.
pub const DEFAULT_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(300);
pub const DEFAULT_STEP: std::time::Duration = std::time::Duration::from_secs(15);

/// One measurement and its audit evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenMeasurement {
    pub measurement: Measurement,
    pub evidence: MeasurementEvidence,
}

/// Measures `metric` at `now`, with the run's resolved `args` and the provider's
/// `credentials`.
pub async fn measure_metric(
    pool: &ClientPool,
    metric: &Metric,
    credentials: ProviderCredentials,
    args: &BTreeMap<String, String>,
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
            let queries = [Role::Canary, Role::Baseline]
                .into_iter()
                .filter_map(|role| {
                    let values = TemplateValues {
                        args: args.clone(),
                        role: Some(role),
                    };
                    render(&spec.query, &values)
                        .ok()
                        .map(|text| rendered(spec, Some(role), &text))
                })
                .collect();
            let result = measure_roles(
                &provider,
                &RoleQueries::PerRole(spec.query.clone()),
                args,
                Window::Range { lookback, step },
                at,
            )
            .await;
            comparison_measurement(metric, comparison, result, queries, now)
        }
    }
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
/// condition over an empty result cannot be evaluated (DESIGN §3).
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

/// A comparison measurement from the two sides' samples. Pass → Successful, High/Low →
/// Failed, NoData or fewer than `minSamples` on either side → Inconclusive; a failed query
/// is an Error, a query that found no series Inconclusive.
pub fn comparison_measurement(
    metric: &Metric,
    comparison: &Comparison,
    result: Result<RoleSamples, MetricError>,
    queries: Vec<RenderedQuery>,
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
    let config = judge_config(comparison);
    let verdict = fife_judge::judge(&samples.canary.values, &samples.baseline.values, &config);
    let min = usize::try_from(comparison.min_samples.max(1)).unwrap_or(1);
    let (phase, message) = if verdict.n_canary < min || verdict.n_baseline < min {
        (
            MeasurementPhase::Inconclusive,
            format!(
                "too few samples to judge: {} canary and {} baseline, minSamples is {min}",
                verdict.n_canary, verdict.n_baseline
            ),
        )
    } else {
        let phase = match verdict.classification {
            fife_judge::Classification::Pass => MeasurementPhase::Successful,
            fife_judge::Classification::High | fife_judge::Classification::Low => {
                MeasurementPhase::Failed
            }
            fife_judge::Classification::NoData => MeasurementPhase::Inconclusive,
        };
        (phase, verdict.reason.clone())
    };
    let no_data = verdict.classification == fife_judge::Classification::NoData;
    let method = match verdict.method {
        fife_judge::Method::Exact => "exact",
        fife_judge::Method::Asymptotic => "asymptotic",
    };
    let judgement = Judgement {
        n_canary: verdict.n_canary as i64,
        n_baseline: verdict.n_baseline as i64,
        u: (!no_data).then_some(verdict.u),
        p_value: (!no_data).then_some(verdict.p_value),
        method: (!no_data).then(|| method.to_owned()),
        shift: (!no_data).then_some(verdict.shift),
        ci: (!no_data).then_some(ConfidenceInterval {
            lower: verdict.ci[0],
            upper: verdict.ci[1],
            level: comparison.confidence,
        }),
        effect_size: verdict.effect_size,
        cles: (!no_data).then_some(verdict.cles),
        classification: match verdict.classification {
            fife_judge::Classification::Pass => Classification::Pass,
            fife_judge::Classification::High => Classification::High,
            fife_judge::Classification::Low => Classification::Low,
            fife_judge::Classification::NoData => Classification::NoData,
        },
        reason: verdict.reason.clone(),
    };
    let evidence = MeasurementEvidence {
        metric: metric.name.clone(),
        phase: audit_phase(phase),
        queries,
        threshold: None,
        comparison: Some(ComparisonEvidence {
            test: "mannWhitney".to_owned(),
            direction: format!("{:?}", comparison.direction).to_lowercase(),
            confidence: comparison.confidence,
            allowed_increase: comparison.allowed_increase,
            allowed_decrease: comparison.allowed_decrease,
            min_samples: min as u64,
            canary_samples: verdict.n_canary as u64,
            baseline_samples: verdict.n_baseline as u64,
            u: judgement.u,
            p_value: judgement.p_value,
            p_method: judgement.method.clone(),
            shift: judgement.shift,
            ci_low: judgement.ci.map(|c| c.lower),
            ci_high: judgement.ci.map(|c| c.upper),
            classification: format!("{:?}", judgement.classification),
            summary: Some(verdict.reason.clone()),
        }),
        message: Some(message.clone()),
    };
    TakenMeasurement {
        measurement: Measurement {
            phase,
            started_at: Some(Time(now)),
            finished_at: Some(Time(now)),
            value: None,
            judgement: Some(judgement),
            message: Some(message),
        },
        evidence,
    }
}

/// The judge's settings for a comparison metric.
pub fn judge_config(comparison: &Comparison) -> fife_judge::JudgeConfig {
    fife_judge::JudgeConfig {
        confidence: comparison.confidence,
        direction: match comparison.direction {
            Direction::Increase => fife_judge::Direction::Increase,
            Direction::Decrease => fife_judge::Direction::Decrease,
            Direction::Either => fife_judge::Direction::Either,
        },
        allowed_increase: comparison.allowed_increase.unwrap_or(1.0),
        allowed_decrease: comparison.allowed_decrease.unwrap_or(1.0),
        rule: match comparison.rule {
            ComparisonRule::Significance => fife_judge::DecisionRule::Significance,
            ComparisonRule::Kayenta => fife_judge::DecisionRule::Kayenta,
        },
        nan_policy: match comparison.nan_strategy {
            NanStrategy::Remove => fife_judge::NanPolicy::Remove,
            NanStrategy::ReplaceWithZero => fife_judge::NanPolicy::ReplaceWithZero,
        },
        outlier_policy: match comparison.outliers.strategy {
            OutlierStrategy::Keep => fife_judge::OutlierPolicy::Keep,
            OutlierStrategy::RemoveIqr => fife_judge::OutlierPolicy::RemoveIqr {
                factor: comparison.outliers.factor,
            },
        },
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
    use fife_metrics::{FailureCause, NoData};

    fn comparison_metric(min_samples: i32) -> (Metric, Comparison) {
        let comparison = Comparison {
            direction: Direction::Increase,
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

    fn samples(values: Vec<f64>) -> Samples {
        Samples {
            values,
            series: 1,
            dropped_non_finite: 0,
        }
    }

    fn series(base: f64, scale: f64, n: usize) -> Vec<f64> {
        // A deterministic spread of values around `base`, scaled.
        (0..n)
            .map(|i| (base + (i % 17) as f64 * 0.003) * scale)
            .collect()
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn compare(
        metric: &Metric,
        c: &Comparison,
        canary: Vec<f64>,
        baseline: Vec<f64>,
    ) -> TakenMeasurement {
        let result = Ok(RoleSamples {
            canary: samples(canary),
            baseline: samples(baseline),
        });
        comparison_measurement(metric, c, result, Vec::new(), now())
    }

    #[test]
    fn a_canary_twenty_percent_slower_fails() {
        let (metric, c) = comparison_metric(20);
        let taken = compare(&metric, &c, series(0.1, 1.2, 60), series(0.1, 1.0, 60));
        assert_eq!(taken.measurement.phase, MeasurementPhase::Failed);
        let j = taken.measurement.judgement.unwrap();
        assert_eq!(j.classification, Classification::High);
        assert!(j.shift.unwrap() > 0.0);
        assert_eq!(taken.evidence.phase, Phase::Failed);
        assert_eq!(taken.evidence.comparison.unwrap().canary_samples, 60);
    }

    #[test]
    fn an_identical_canary_passes() {
        let (metric, c) = comparison_metric(20);
        let taken = compare(&metric, &c, series(0.1, 1.0, 60), series(0.1, 1.0, 60));
        assert_eq!(taken.measurement.phase, MeasurementPhase::Successful);
    }

    #[test]
    fn fewer_samples_than_min_samples_is_inconclusive_even_if_clearly_worse() {
        let (metric, c) = comparison_metric(50);
        let taken = compare(&metric, &c, series(0.1, 2.0, 30), series(0.1, 1.0, 60));
        assert_eq!(taken.measurement.phase, MeasurementPhase::Inconclusive);
        assert!(
            taken
                .measurement
                .message
                .unwrap()
                .contains("minSamples is 50")
        );
    }

    #[test]
    fn no_series_is_inconclusive_and_a_failed_query_is_an_error() {
        let (metric, c) = comparison_metric(20);
        let no_data = MetricError::new(
            "http://prom",
            "q",
            FailureCause::NoData(NoData::EmptyResult),
        );
        let taken = comparison_measurement(&metric, &c, Err(no_data), Vec::new(), now());
        assert_eq!(taken.measurement.phase, MeasurementPhase::Inconclusive);
        let refused = MetricError::new("http://prom", "q", FailureCause::ConnectionRefused);
        let taken = comparison_measurement(&metric, &c, Err(refused), Vec::new(), now());
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
        let (mut metric, _) = comparison_metric(1);
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

    #[test]
    fn judge_config_follows_the_comparison() {
        let (_, c) = comparison_metric(20);
        let config = judge_config(&c);
        assert_eq!(config.direction, fife_judge::Direction::Increase);
        assert_eq!(config.allowed_increase, 1.1);
        assert_eq!(config.allowed_decrease, 1.0);
    }
}
