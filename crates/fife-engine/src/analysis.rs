//! Analysis phases: a measurement's phase from its conditions or its comparison, a metric's
//! phase from its counters and limits, a run's phase from its metrics, and which metrics
//! are due when.

use fife_api::analysis::{Comparison, ComparisonScale, ComparisonTest};
use fife_api::analysis_run::{Classification, ConfidenceInterval};
use fife_api::{
    AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, Judgement, Measurement, MeasurementPhase,
    Metric, MetricResult,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One measurement the controller took of one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasurementOutcome {
    pub metric: String,
    pub measurement: Measurement,
}

/// Where a run stands and what to do next.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisProgress {
    pub status: AnalysisRunStatus,
    /// Names of the metrics to measure now.
    pub due: Vec<String>,
    /// Reconcile again after this long at the latest.
    pub next_wakeup: Option<std::time::Duration>,
    /// The run has its final phase; nothing more will be measured.
    pub completed: bool,
}

/// A threshold measurement's phase and the reason for it.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdVerdict {
    pub phase: MeasurementPhase,
    pub message: String,
}

/// A metric without an interval whose measurement errored is measured again after this long
/// (a metric with an interval simply waits for its next interval).
pub const ERROR_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The status of a run that starts now: Running, every metric Pending. A run without
/// metrics is an Error: no data never passes.
pub fn start(run: &AnalysisRunSpec, now: jiff::Timestamp) -> AnalysisRunStatus {
    let mut status = AnalysisRunStatus {
        phase: Some(AnalysisPhase::Running),
        message: None,
        started_at: Some(Time(now)),
        completed_at: None,
        metric_results: run
            .metrics
            .iter()
            .map(|m| MetricResult::new(m.name.clone(), m.dry_run))
            .collect(),
    };
    if run.metrics.is_empty() {
        status.phase = Some(AnalysisPhase::Error);
        status.message = Some(
            "the analysis has no metrics: add at least one metric to its templates".to_owned(),
        );
        status.completed_at = Some(Time(now));
    }
    status
}

/// Apply measurement outcomes: counters, retention (`measurementRetention`), limits and
/// phases. Outcomes for unknown or completed metrics, outcomes still `Running`, and any
/// outcome after the run completed are ignored. A measurement without `finishedAt` is
/// stamped with `now`, because the next interval counts from it.
pub fn record(
    run: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    outcomes: &[MeasurementOutcome],
    now: jiff::Timestamp,
) -> AnalysisRunStatus {
    let mut status = ensure_started(run, status, now);
    if is_completed(&status) {
        return status;
    }
    for outcome in outcomes {
        let Some(metric) = run.metrics.iter().find(|m| m.name == outcome.metric) else {
            continue;
        };
        let Some(result) = status
            .metric_results
            .iter_mut()
            .find(|r| r.name == outcome.metric)
        else {
            continue;
        };
        if result.phase.is_completed() || outcome.measurement.phase == MeasurementPhase::Running {
            continue;
        }
        let mut measurement = outcome.measurement.clone();
        if measurement.finished_at.is_none() {
            measurement.finished_at = Some(Time(now));
        }
        count_measurement(result, measurement.phase);
        result.retain_measurement(measurement, metric.measurement_retention);
        assess_metric(metric, result, false);
    }
    assess_run(run, &mut status, now);
    status
}

/// Which metrics are due now, when to wake up, and the run's phase. Applies
/// `spec.terminate`: a terminated run completes with the phase its measurements give.
pub fn progress(
    run: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    now: jiff::Timestamp,
) -> AnalysisProgress {
    let mut status = ensure_started(run, status, now);
    if !is_completed(&status) {
        if run.terminate {
            for result in &mut status.metric_results {
                if let Some(metric) = run.metrics.iter().find(|m| m.name == result.name) {
                    assess_metric(metric, result, true);
                }
            }
        }
        assess_run(run, &mut status, now);
    }
    if is_completed(&status) {
        return AnalysisProgress {
            status,
            due: Vec::new(),
            next_wakeup: None,
            completed: true,
        };
    }
    let started = status.started_at.as_ref().map_or(now, |t| t.0);
    let mut due = Vec::new();
    let mut next_wakeup: Option<i64> = None;
    for result in &status.metric_results {
        if result.phase.is_completed() {
            continue;
        }
        let Some(metric) = run.metrics.iter().find(|m| m.name == result.name) else {
            continue;
        };
        let at = next_measurement_at(metric, result, started);
        let wait = at - now.as_millisecond();
        if wait <= 0 {
            due.push(result.name.clone());
        } else {
            next_wakeup = Some(next_wakeup.map_or(wait, |w| w.min(wait)));
        }
    }
    AnalysisProgress {
        status,
        due,
        next_wakeup: next_wakeup
            .map(|ms| std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        completed: false,
    }
}

fn ensure_started(
    run: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    now: jiff::Timestamp,
) -> AnalysisRunStatus {
    if status.phase.is_none() {
        return start(run, now);
    }
    let mut status = status.clone();
    // Metrics added to the spec after the run started still get a result to count into.
    for metric in &run.metrics {
        if !status.metric_results.iter().any(|r| r.name == metric.name) {
            status
                .metric_results
                .push(MetricResult::new(metric.name.clone(), metric.dry_run));
        }
    }
    status
}

fn is_completed(status: &AnalysisRunStatus) -> bool {
    status.phase.is_some_and(AnalysisPhase::is_completed)
}

/// Milliseconds since the epoch at which `metric` should be measured next.
fn next_measurement_at(metric: &Metric, result: &MetricResult, started: jiff::Timestamp) -> i64 {
    let Some(last) = result.measurements.last() else {
        let delay = metric.initial_delay.map_or(0, |d| millis(d.as_std()));
        return started.as_millisecond().saturating_add(delay);
    };
    let Some(at) = last.finished_at.as_ref().or(last.started_at.as_ref()) else {
        return started.as_millisecond();
    };
    let gap = match metric.interval {
        Some(interval) => millis(interval.as_std()),
        None => millis(ERROR_RETRY_INTERVAL),
    };
    at.0.as_millisecond().saturating_add(gap)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn count_measurement(result: &mut MetricResult, phase: MeasurementPhase) {
    result.count += 1;
    match phase {
        MeasurementPhase::Successful => result.successful += 1,
        MeasurementPhase::Failed => result.failed += 1,
        MeasurementPhase::Inconclusive => result.inconclusive += 1,
        MeasurementPhase::Error => result.error += 1,
        MeasurementPhase::Running => {}
    }
    if phase == MeasurementPhase::Error {
        result.consecutive_error += 1;
    } else {
        result.consecutive_error = 0;
    }
}

/// Measurements that produced a result. Errors are retried and do not use up `count`, so
/// a metric never completes Successful on missing data.
fn results(result: &MetricResult) -> i32 {
    result.successful + result.failed + result.inconclusive
}

/// How many results complete the metric; `None` runs until the run is terminated.
fn effective_count(metric: &Metric) -> Option<i32> {
    match (metric.count, metric.interval) {
        (Some(count), _) => Some(count.max(1)),
        (None, Some(_)) => None,
        (None, None) => Some(1),
    }
}

/// The latest measurement's reason, so the run's message (and the rollout's abort message)
/// says what went wrong, e.g. which Secret is missing, not only that something did.
fn last_reason(result: &MetricResult) -> String {
    result
        .measurements
        .last()
        .and_then(|m| m.message.as_deref())
        .map(|m| format!("; the last: {m}"))
        .unwrap_or_default()
}

/// A metric's phase from its counters (docs/analysis.md); `terminating` completes it with what it has.
fn assess_metric(metric: &Metric, result: &mut MetricResult, terminating: bool) {
    if result.phase.is_completed() {
        return;
    }
    let name = &metric.name;
    let (phase, message) = if result.failed > metric.failure_limit {
        (
            AnalysisPhase::Failed,
            Some(format!(
                "metric {name}: {} measurements failed, more than failureLimit {}{}",
                result.failed,
                metric.failure_limit,
                last_reason(result)
            )),
        )
    } else if result.inconclusive > metric.inconclusive_limit {
        (
            AnalysisPhase::Inconclusive,
            Some(format!(
                "metric {name}: {} measurements were inconclusive, more than inconclusiveLimit {}",
                result.inconclusive, metric.inconclusive_limit
            )),
        )
    } else if result.consecutive_error > metric.consecutive_error_limit {
        (
            AnalysisPhase::Error,
            Some(format!(
                "metric {name}: {} measurements in a row errored, more than consecutiveErrorLimit {}{}",
                result.consecutive_error,
                metric.consecutive_error_limit,
                last_reason(result)
            )),
        )
    } else if effective_count(metric).is_some_and(|count| results(result) >= count) {
        (
            AnalysisPhase::Successful,
            Some(format!(
                "metric {name}: {} of {} measurements successful, within the limits",
                result.successful,
                results(result)
            )),
        )
    } else if terminating && results(result) == 0 {
        (
            AnalysisPhase::Inconclusive,
            Some(format!(
                "metric {name}: the analysis stopped before any measurement produced a result"
            )),
        )
    } else if terminating {
        (
            AnalysisPhase::Successful,
            Some(format!(
                "metric {name}: stopped after {} measurements ({} successful) within the limits",
                results(result),
                result.successful
            )),
        )
    } else if result.count == 0 {
        (AnalysisPhase::Pending, None)
    } else {
        (AnalysisPhase::Running, None)
    };
    result.phase = phase;
    if message.is_some() {
        result.message = message;
    }
}

/// The run's phase: the worst phase of its metrics that are not `dryRun`. The first Failed
/// or Error metric completes the run; otherwise it completes when every metric has.
fn assess_run(run: &AnalysisRunSpec, status: &mut AnalysisRunStatus, now: jiff::Timestamp) {
    if is_completed(status) {
        return;
    }
    let gating = |r: &&MetricResult| !r.dry_run;
    let stopped = status
        .metric_results
        .iter()
        .filter(gating)
        .any(|r| r.phase.aborts_rollout());
    let all_done = status.metric_results.iter().all(|r| r.phase.is_completed());
    let gating_done = status
        .metric_results
        .iter()
        .filter(gating)
        .all(|r| r.phase.is_completed());
    if !(stopped || all_done || (gating_done && run.terminate)) {
        status.phase = Some(AnalysisPhase::Running);
        return;
    }
    // Whatever is still measuring ends with what it has, so the record is complete.
    for result in &mut status.metric_results {
        if let Some(metric) = run.metrics.iter().find(|m| m.name == result.name) {
            assess_metric(metric, result, true);
        }
    }
    let worst = status
        .metric_results
        .iter()
        .filter(gating)
        .max_by_key(|r| r.phase.severity());
    let (phase, message) = match worst {
        Some(r) => (r.phase, r.message.clone()),
        None => (
            AnalysisPhase::Successful,
            Some("every metric is dryRun: nothing gates the rollout".to_owned()),
        ),
    };
    status.phase = Some(phase);
    status.message = message;
    status.completed_at = Some(Time(now));
}

/// The phase of a threshold measurement (docs/analysis.md). With both conditions: failure true →
/// Failed (failure wins), success true → Successful, neither → Inconclusive. With only a
/// `successCondition`, false → Failed; with only a `failureCondition`, false → Successful.
/// Error when it cannot be evaluated: empty result, NaN or infinity, a condition that does
/// not compile, fails at run time or is not a boolean.
pub fn classify_threshold(metric: &Metric, result: &[f64]) -> MeasurementPhase {
    threshold_verdict(metric, result).phase
}

/// [`classify_threshold`] with the reason, for `Measurement.message`.
pub fn threshold_verdict(metric: &Metric, result: &[f64]) -> ThresholdVerdict {
    let verdict = |phase, message: String| ThresholdVerdict { phase, message };
    if result.is_empty() {
        return verdict(
            MeasurementPhase::Error,
            "the query returned no data: check that the series exist for this revision".to_owned(),
        );
    }
    if result.iter().any(|v| !v.is_finite()) {
        return verdict(
            MeasurementPhase::Error,
            format!(
                "the query returned a non-finite value ({result:?}): a condition cannot judge NaN or infinity"
            ),
        );
    }
    let failure = match metric.failure_condition.as_deref() {
        Some(condition) => match evaluate(condition, result) {
            Ok(value) => Some((condition, value)),
            Err(e) => return verdict(MeasurementPhase::Error, e),
        },
        None => None,
    };
    let success = match metric.success_condition.as_deref() {
        Some(condition) => match evaluate(condition, result) {
            Ok(value) => Some((condition, value)),
            Err(e) => return verdict(MeasurementPhase::Error, e),
        },
        None => None,
    };
    match (failure, success) {
        (Some((c, true)), _) => verdict(
            MeasurementPhase::Failed,
            format!("failureCondition `{c}` is true for result {result:?}"),
        ),
        (_, Some((c, true))) => verdict(
            MeasurementPhase::Successful,
            format!("successCondition `{c}` is true for result {result:?}"),
        ),
        (None, Some((c, false))) => verdict(
            MeasurementPhase::Failed,
            format!("successCondition `{c}` is false for result {result:?}"),
        ),
        (Some((c, false)), None) => verdict(
            MeasurementPhase::Successful,
            format!("failureCondition `{c}` is false for result {result:?}"),
        ),
        (Some(_), Some(_)) => verdict(
            MeasurementPhase::Inconclusive,
            format!("neither failureCondition nor successCondition holds for result {result:?}"),
        ),
        (None, None) => verdict(
            MeasurementPhase::Inconclusive,
            "the metric has no successCondition or failureCondition to judge the result".to_owned(),
        ),
    }
}

/// Evaluate a condition with `result` bound to the list of numbers.
fn evaluate(condition: &str, result: &[f64]) -> Result<bool, String> {
    let program = cel::Program::compile(condition)
        .map_err(|e| format!("condition `{condition}` does not compile: {e}"))?;
    let mut context = cel::Context::default();
    context.add_variable_from_value("result", result.to_vec());
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "condition `{condition}` gave {other:?}, not a boolean: write a comparison such as `result[0] >= 0.99`"
        )),
        Err(e) => Err(format!(
            "condition `{condition}` could not be evaluated on result {result:?}: {e}"
        )),
    }
}

// === comparison verdict ===

/// Which measurement of its run a comparison takes, and from when its data starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ComparisonLook {
    /// Look k of the metric's planned `count` (None: background analysis).
    pub look: fife_judge::Look,
    /// Evidence accumulates: each measurement judges the data from the run's start
    /// (minus the provider's lookback) up to now.
    pub since: jiff::Timestamp,
}

/// The look the next measurement of `metric` is, given the run's `status`: k = the
/// measurements it completed so far + 1, from the run's start minus `lookback`.
pub fn comparison_look(
    metric: &Metric,
    status: &AnalysisRunStatus,
    lookback: std::time::Duration,
    now: jiff::Timestamp,
) -> ComparisonLook {
    let taken = status
        .metric_results
        .iter()
        .find(|r| r.name == metric.name)
        .map_or(0, |r| r.count.max(0));
    let planned = metric
        .count
        .filter(|c| *c >= 1)
        .map(|c| c.unsigned_abs())
        .or_else(|| metric.interval.is_none().then_some(1));
    let index = u32::try_from(taken).unwrap_or(u32::MAX).saturating_add(1);
    let index = planned.map_or(index, |n| index.min(n));
    let started = status.started_at.as_ref().map_or(now, |t| t.0);
    let since = started
        .checked_sub(jiff::SignedDuration::from_millis(millis(lookback)))
        .unwrap_or(started);
    ComparisonLook {
        look: fife_judge::Look { index, planned },
        since,
    }
}

/// The pods of each side of a comparison, each a series with its points.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComparisonSides {
    pub canary: Vec<fife_judge::PodSeries>,
    pub baseline: Vec<fife_judge::PodSeries>,
    /// Stable pods: more pods of the baseline's version (may be empty).
    pub stable: Vec<fife_judge::PodSeries>,
    /// `counts`: the requests per pod of each side, from `compare.requests` (the series
    /// above count the errors).
    pub requests: Option<Box<ComparisonSides>>,
}

/// What the judge found, by test.
#[derive(Clone, Debug, PartialEq)]
pub enum ComparisonStatistics {
    Pods(fife_judge::PodJudgement),
    Counts(fife_judge::CountJudgement),
    MannWhitney(fife_judge::Judgement),
}

/// A comparison measurement's phase, its reason and the judgement for the AnalysisRun.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonVerdict {
    pub phase: MeasurementPhase,
    pub message: String,
    pub judgement: Judgement,
    pub statistics: ComparisonStatistics,
}

/// Judges a comparison metric's sides at `look` with the comparison's test. Pass →
/// Successful, High/Low → Failed, NoData or fewer than `minSamples` points on the canary or
/// the baseline → Inconclusive.
pub fn comparison_verdict(
    comparison: &Comparison,
    sides: &ComparisonSides,
    look: fife_judge::Look,
) -> ComparisonVerdict {
    let config = comparison.judge_config();
    let (statistics, n_canary, n_baseline, classification, reason) = match comparison.test {
        ComparisonTest::Pods => {
            let j = fife_judge::judge_pods(
                &sides.canary,
                &sides.baseline,
                &sides.stable,
                look,
                &config,
            );
            let (n_c, n_b) = (
                j.canary.iter().map(|p| p.points).sum::<usize>(),
                j.baseline.iter().map(|p| p.points).sum::<usize>(),
            );
            let (c, r) = (j.classification, j.reason.clone());
            (ComparisonStatistics::Pods(j), n_c, n_b, c, r)
        }
        ComparisonTest::Counts => {
            let requests = sides.requests.as_deref();
            let counters =
                |errors: &[fife_judge::PodSeries],
                 requests: Option<&Vec<fife_judge::PodSeries>>| {
                    fife_judge::CounterSeries {
                        errors: errors.to_vec(),
                        requests: requests.cloned().unwrap_or_default(),
                    }
                };
            let j = fife_judge::judge_counts(
                &counters(&sides.canary, requests.map(|r| &r.canary)),
                &counters(&sides.baseline, requests.map(|r| &r.baseline)),
                &counters(&sides.stable, requests.map(|r| &r.stable)),
                look,
                &config,
            );
            let (n_c, n_b) = (
                j.canary.iter().map(|p| p.points).sum::<usize>(),
                j.baseline.iter().map(|p| p.points).sum::<usize>(),
            );
            let (c, r) = (j.classification, j.reason.clone());
            (ComparisonStatistics::Counts(j), n_c, n_b, c, r)
        }
        ComparisonTest::MannWhitney => {
            let pooled = |pods: &[fife_judge::PodSeries]| -> Vec<f64> {
                pods.iter()
                    .flat_map(|p| p.points.iter().map(|x| x.value))
                    .collect()
            };
            let j = fife_judge::judge(&pooled(&sides.canary), &pooled(&sides.baseline), &config);
            let (n_c, n_b, c, r) = (j.n_canary, j.n_baseline, j.classification, j.reason.clone());
            (ComparisonStatistics::MannWhitney(j), n_c, n_b, c, r)
        }
    };
    let min = usize::try_from(comparison.min_samples.max(1)).unwrap_or(1);
    let (phase, message) = if n_canary < min || n_baseline < min {
        (
            MeasurementPhase::Inconclusive,
            format!(
                "too few samples to judge: {n_canary} canary and {n_baseline} baseline, minSamples is {min}"
            ),
        )
    } else {
        let phase = match classification {
            fife_judge::Classification::Pass => MeasurementPhase::Successful,
            fife_judge::Classification::High | fife_judge::Classification::Low => {
                MeasurementPhase::Failed
            }
            fife_judge::Classification::NoData => MeasurementPhase::Inconclusive,
        };
        (phase, reason.clone())
    };
    let judgement = api_judgement(comparison, &statistics, n_canary, n_baseline);
    ComparisonVerdict {
        phase,
        message,
        judgement,
        statistics,
    }
}

/// The AnalysisRun's record of a judgement: every number a person needs to re-check it,
/// none for NoData (the judge's placeholders are not findings).
fn api_judgement(
    comparison: &Comparison,
    statistics: &ComparisonStatistics,
    n_canary: usize,
    n_baseline: usize,
) -> Judgement {
    let classification = |c: fife_judge::Classification| match c {
        fife_judge::Classification::Pass => Classification::Pass,
        fife_judge::Classification::High => Classification::High,
        fife_judge::Classification::Low => Classification::Low,
        fife_judge::Classification::NoData => Classification::NoData,
    };
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let mut judgement = Judgement {
        n_canary: count(n_canary),
        n_baseline: count(n_baseline),
        u: None,
        p_value: None,
        method: None,
        shift: None,
        ci: None,
        effect_size: None,
        cles: None,
        classification: Classification::NoData,
        reason: String::new(),
        test: Some(comparison.test),
        scale: None,
        look: None,
        alpha_look: None,
        canary_pods: None,
        baseline_pods: None,
        stable_pods: None,
        df: None,
        standard_error: None,
        adjusted_p_value: None,
        dispersion: None,
    };
    match statistics {
        ComparisonStatistics::Pods(j) => {
            let found = j.classification != fife_judge::Classification::NoData;
            judgement.classification = classification(j.classification);
            judgement.reason = j.reason.clone();
            judgement.scale = Some(match j.scale {
                fife_judge::Scale::Log => ComparisonScale::Log,
                fife_judge::Scale::Linear => ComparisonScale::Linear,
                fife_judge::Scale::Auto => ComparisonScale::Auto,
            });
            judgement.look = Some(i64::from(j.look.index));
            judgement.alpha_look = Some(j.alpha_look);
            judgement.canary_pods = Some(count(j.canary.len()));
            judgement.baseline_pods = Some(count(j.baseline.len()));
            judgement.stable_pods = Some(count(j.reference.len()));
            if found {
                judgement.p_value = Some(j.p_value);
                judgement.adjusted_p_value = Some(j.adjusted_p_value);
                judgement.method = Some("studentT".to_owned());
                judgement.shift = Some(j.estimate);
                judgement.ci = Some(ConfidenceInterval {
                    lower: j.interval[0],
                    upper: j.interval[1],
                    level: 1.0 - j.alpha_look,
                });
                judgement.effect_size = j.ratio;
                judgement.df = Some(i64::from(j.df));
                judgement.standard_error = Some(j.standard_error);
            }
        }
        ComparisonStatistics::Counts(j) => {
            let found = j.classification != fife_judge::Classification::NoData;
            judgement.classification = classification(j.classification);
            judgement.reason = j.reason.clone();
            judgement.look = Some(i64::from(j.look.index));
            judgement.alpha_look = Some(j.alpha_look);
            judgement.canary_pods = Some(count(j.canary.len()));
            judgement.baseline_pods = Some(count(j.baseline.len()));
            judgement.stable_pods = Some(count(j.reference.len()));
            if found {
                judgement.p_value = Some(j.p_value);
                judgement.adjusted_p_value = Some(j.adjusted_p_value);
                judgement.method = Some(j.method.name().to_owned());
                judgement.shift = Some(j.estimate);
                judgement.ci = Some(ConfidenceInterval {
                    lower: j.interval[0],
                    upper: j.interval[1],
                    level: 1.0 - j.alpha_look,
                });
                judgement.effect_size = j.ratio;
                judgement.df = Some(i64::from(j.df));
                judgement.standard_error = Some(j.standard_error);
                judgement.dispersion = Some(j.dispersion);
            }
        }
        ComparisonStatistics::MannWhitney(j) => {
            let found = j.classification != fife_judge::Classification::NoData;
            judgement.classification = classification(j.classification);
            judgement.reason = j.reason.clone();
            judgement.effect_size = j.effect_size;
            if found {
                judgement.u = Some(j.u);
                judgement.p_value = Some(j.p_value);
                judgement.method = serde_json::to_value(j.method)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                judgement.shift = Some(j.shift);
                judgement.ci = Some(ConfidenceInterval {
                    lower: j.ci[0],
                    upper: j.ci[1],
                    level: comparison.confidence,
                });
                judgement.cles = Some(j.cles);
            }
        }
    }
    judgement
}
