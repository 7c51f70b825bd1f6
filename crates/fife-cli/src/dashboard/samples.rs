//! The canary's and the baseline's samples behind a comparison's last measurement. An
//! AnalysisRun keeps each measurement's summary, not its samples, so the dashboard re-runs
//! the metric's range query (its spec names the Prometheus address, the `{{role}}` query and
//! the window) for the same window, ending when the measurement finished. The page asks once
//! per new measurement; nothing polls.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fife_api::{AnalysisRun, Metric, MetricProvider};
use fife_controller::analysis::measure::{DEFAULT_LOOKBACK, DEFAULT_STEP};
use fife_metrics::RoleQueries;
use fife_metrics::roles::prometheus_role_samples;
use kube::api::Api;
use serde_json::json;

use super::Dashboard;
use crate::ops::error::Attempt;

/// Where and how a metric's samples are fetched; `Err` says why they cannot be.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleQuery {
    pub address: String,
    pub query: String,
    pub lookback: std::time::Duration,
    pub step: std::time::Duration,
}

/// The query the controller ran for a comparison metric, or the sentence saying why the
/// dashboard cannot run it again.
pub fn sample_query(metric: &Metric) -> Result<SampleQuery, String> {
    if metric.compare.is_none() {
        return Err(format!(
            "metric \"{}\" is a threshold metric: it has no canary and baseline samples",
            metric.name
        ));
    }
    let MetricProvider::Prometheus(provider) = &metric.provider;
    if provider.auth.is_some() || provider.ca_bundle_secret_ref.is_some() {
        return Err(format!(
            "metric \"{}\" reads Prometheus with credentials or a CA bundle from a Secret, which the dashboard does not read; the summary above is what was recorded",
            metric.name
        ));
    }
    let (lookback, step) = provider
        .range
        .as_ref()
        .map_or((DEFAULT_LOOKBACK, DEFAULT_STEP), |r| {
            (r.lookback.as_std(), r.step.as_std())
        });
    Ok(SampleQuery {
        address: provider.address.clone(),
        query: provider.query.clone(),
        lookback,
        step,
    })
}

pub(super) async fn samples(
    State(dashboard): State<Arc<Dashboard>>,
    Path((namespace, name, metric)): Path<(String, String, String)>,
) -> Response {
    let fail = |status: StatusCode, message: String| {
        (status, Json(json!({ "error": message }))).into_response()
    };
    let api: Api<AnalysisRun> = Api::namespaced(dashboard.cluster.client.clone(), &namespace);
    let run = match api.get_opt(&name).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return fail(
                StatusCode::NOT_FOUND,
                format!("AnalysisRun \"{name}\" does not exist in namespace \"{namespace}\""),
            );
        }
        Err(e) => {
            let attempt = Attempt {
                verb: "get",
                kind: "AnalysisRun",
                resource: "analysisruns.fife.dev",
                name: Some(&name),
                namespace: &namespace,
            };
            return fail(StatusCode::BAD_GATEWAY, attempt.explain(e).to_string());
        }
    };
    let Some(spec) = run.spec.metrics.iter().find(|m| m.name == metric) else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("AnalysisRun \"{name}\" has no metric \"{metric}\""),
        );
    };
    let query = match sample_query(spec) {
        Ok(query) => query,
        Err(reason) => return fail(StatusCode::UNPROCESSABLE_ENTITY, reason),
    };
    let last = run
        .status
        .as_ref()
        .and_then(|s| s.metric_results.iter().find(|r| r.name == metric))
        .and_then(|r| r.measurements.last());
    let Some(at) = last.and_then(|m| m.finished_at.clone().or_else(|| m.started_at.clone())) else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("metric \"{metric}\" has no finished measurement yet"),
        );
    };
    let at_system = SystemTime::from(at.0);
    match prometheus_role_samples(
        &query.address,
        &RoleQueries::PerRole(query.query.clone()),
        query.lookback,
        query.step,
        at_system,
    )
    .await
    {
        Ok(samples) => Json(json!({
            "at": at,
            "query": query.query,
            "lookbackSeconds": query.lookback.as_secs_f64(),
            "stepSeconds": query.step.as_secs_f64(),
            "canary": samples.canary.values,
            "baseline": samples.baseline.values,
        }))
        .into_response(),
        Err(e) => fail(
            StatusCode::BAD_GATEWAY,
            format!("{e}; the summary above is what was recorded"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::analysis::{QueryRange, SecretKeyRef};
    use fife_api::{Comparison, PrometheusProvider};

    fn metric(compare: bool) -> Metric {
        let mut metric = Metric::new(
            "latency",
            MetricProvider::Prometheus(PrometheusProvider {
                address: "http://prometheus:9090".into(),
                query: "q{role=\"{{role}}\"}".into(),
                ..PrometheusProvider::default()
            }),
        );
        metric.compare = compare.then(Comparison::default);
        metric
    }

    #[test]
    fn a_comparison_is_re_read_with_the_controllers_window() {
        let query = sample_query(&metric(true)).unwrap();
        assert_eq!(query.address, "http://prometheus:9090");
        assert_eq!(query.query, "q{role=\"{{role}}\"}");
        assert_eq!(
            (query.lookback, query.step),
            (DEFAULT_LOOKBACK, DEFAULT_STEP)
        );

        let mut ranged = metric(true);
        let MetricProvider::Prometheus(provider) = &mut ranged.provider;
        provider.range = Some(QueryRange {
            lookback: "10m".parse().unwrap(),
            step: "30s".parse().unwrap(),
        });
        let query = sample_query(&ranged).unwrap();
        assert_eq!(query.lookback.as_secs(), 600);
        assert_eq!(query.step.as_secs(), 30);
    }

    #[test]
    fn thresholds_and_secret_credentials_are_refused_with_a_reason() {
        let threshold = sample_query(&metric(false)).unwrap_err();
        assert!(threshold.contains("threshold metric"), "{threshold}");

        let mut secured = metric(true);
        let MetricProvider::Prometheus(provider) = &mut secured.provider;
        provider.ca_bundle_secret_ref = Some(SecretKeyRef {
            name: "prometheus-ca".into(),
            key: "ca.crt".into(),
        });
        let secured = sample_query(&secured).unwrap_err();
        assert!(secured.contains("Secret"), "{secured}");
    }
}
