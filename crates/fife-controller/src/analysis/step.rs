//! One look at an analysis run, shared by the controller's runner and `fife replay` so both
//! run a template by the same rules: the engine says which metrics are due at `now`, each is
//! measured (the only call of [`measure_metric`]) with its queries evaluated at `now`, and
//! the engine folds the measurements into the run's status.
//!
//! ```text
//!   look(spec, status, now) ─▶ due ─▶ measure_due(.., now) ─▶ fold(spec, status, taken, now)
//!   (engine: start + progress)       (queries at `now`)       (engine: record + progress)
//! ```
//!
//! `now` is the wall clock in the controller and the simulated time in a replay ([`replay`]).
//! The runner writes the audit records between measuring and folding; a replay returns the
//! measurements instead.

use std::collections::BTreeMap;
use std::future::Future;

use fife_api::analysis::PrometheusProvider;
use fife_api::{AnalysisRunSpec, AnalysisRunStatus, MetricProvider};
use fife_engine::{AnalysisProgress, MeasurementOutcome};
use fife_metrics::ClientPool;

use crate::analysis::credentials::ProviderCredentials;
use crate::analysis::measure::{TakenMeasurement, measure_metric, unmeasurable};

/// The run's progress at `now`: started (every metric Pending) when it has no status yet.
pub fn look(
    spec: &AnalysisRunSpec,
    status: Option<&AnalysisRunStatus>,
    now: jiff::Timestamp,
) -> AnalysisProgress {
    let status = match status {
        Some(status) if status.phase.is_some() => status.clone(),
        _ => fife_engine::start(spec, now),
    };
    fife_engine::progress(spec, &status, now)
}

/// The run's arguments that have a value, as the query templates see them.
pub fn run_args(spec: &AnalysisRunSpec) -> BTreeMap<String, String> {
    spec.args
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.value.clone()?)))
        .collect()
}

/// Measures the metrics named in `due`, concurrently, at `now`, as looks of the run whose
/// status (before this look) is `status`. `credentials` reads what a
/// provider needs (from Secrets in the controller); its error becomes the measurement's
/// Error. Returns `(metric name, measurement)` in the spec's order.
pub async fn measure_due<C, F, E>(
    pool: &ClientPool,
    spec: &AnalysisRunSpec,
    due: &[String],
    credentials: C,
    status: &AnalysisRunStatus,
    now: jiff::Timestamp,
) -> Vec<(String, TakenMeasurement)>
where
    C: Fn(&PrometheusProvider) -> F,
    F: Future<Output = Result<ProviderCredentials, E>>,
    E: std::fmt::Display,
{
    let args = run_args(spec);
    let args = &args;
    let credentials = &credentials;
    futures::future::join_all(spec.metrics.iter().filter(|m| due.contains(&m.name)).map(
        |metric| async move {
            let MetricProvider::Prometheus(provider) = &metric.provider;
            let taken = match credentials(provider).await {
                Ok(credentials) => {
                    measure_metric(pool, metric, credentials, args, status, now).await
                }
                Err(e) => unmeasurable(metric, now, e.to_string()),
            };
            (metric.name.clone(), taken)
        },
    ))
    .await
}

/// The run after recording `measurements` at `now`, and what is due next.
pub fn fold(
    spec: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    measurements: &[(String, TakenMeasurement)],
    now: jiff::Timestamp,
) -> AnalysisProgress {
    let outcomes: Vec<MeasurementOutcome> = measurements
        .iter()
        .map(|(metric, taken)| MeasurementOutcome {
            metric: metric.clone(),
            measurement: taken.measurement.clone(),
        })
        .collect();
    let status = fife_engine::record(spec, status, &outcomes, now);
    fife_engine::progress(spec, &status, now)
}

/// What a replay found: the run's final status and every measurement it took.
#[derive(Debug, Clone)]
pub struct Replay {
    pub status: AnalysisRunStatus,
    /// `completedAt` when the run completed by itself; `None` when `to` stopped it.
    pub completed_at: Option<jiff::Timestamp>,
    /// Per metric in the spec's order, every measurement (not only the retained ones).
    pub measurements: Vec<(String, Vec<TakenMeasurement>)>,
}

/// The run from `from` until it completes or `to`, on a simulated clock: what `fife replay`
/// and the calibration benchmark run. Each look happens at the simulated time the engine's
/// next wake-up gives, so measurements fall at `from + initialDelay + k·interval`.
pub async fn replay(
    pool: &ClientPool,
    spec: &AnalysisRunSpec,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> Replay {
    let mut history: Vec<(String, Vec<TakenMeasurement>)> = spec
        .metrics
        .iter()
        .map(|m| (m.name.clone(), Vec::new()))
        .collect();
    let mut now = from;
    let mut progress = look(spec, None, now);
    while !progress.completed {
        if !progress.due.is_empty() {
            // A replay reads no Secrets: --prometheus must answer without credentials.
            let taken = measure_due(
                pool,
                spec,
                &progress.due,
                |_| async { Ok::<_, std::convert::Infallible>(ProviderCredentials::default()) },
                &progress.status,
                now,
            )
            .await;
            for (metric, measurement) in &taken {
                if let Some((_, list)) = history.iter_mut().find(|(name, _)| name == metric) {
                    list.push(measurement.clone());
                }
            }
            progress = fold(spec, &progress.status, &taken, now);
            continue;
        }
        let next = progress.next_wakeup.and_then(|wait| {
            let wait = jiff::SignedDuration::try_from(wait).ok()?;
            now.checked_add(wait).ok().filter(|t| *t <= to)
        });
        match next {
            Some(next) => {
                now = next;
                progress = look(spec, Some(&progress.status), now);
            }
            None => break,
        }
    }
    if progress.completed {
        let completed_at = progress.status.completed_at.as_ref().map(|t| t.0);
        return Replay {
            status: progress.status,
            completed_at,
            measurements: history,
        };
    }
    // `--to` ends the run as the end of its step would: each metric with what it has.
    let stopped = AnalysisRunSpec {
        terminate: true,
        ..spec.clone()
    };
    let status = look(&stopped, Some(&progress.status), to).status;
    Replay {
        status,
        completed_at: None,
        measurements: history,
    }
}
