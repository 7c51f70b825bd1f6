//! Analysis phases: a measurement's phase from its conditions, a metric's phase from its
//! counters and limits, a run's phase from its metrics, and which metrics are due when.

use fife_api::{AnalysisRunSpec, AnalysisRunStatus, Measurement, MeasurementPhase, Metric};

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

/// The status of a run that starts now.
pub fn start(_run: &AnalysisRunSpec, _now: jiff::Timestamp) -> AnalysisRunStatus {
    AnalysisRunStatus::default()
}

/// Apply measurement outcomes: counters, retention, limits and phases.
pub fn record(
    _run: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    _outcomes: &[MeasurementOutcome],
    _now: jiff::Timestamp,
) -> AnalysisRunStatus {
    status.clone()
}

/// Which metrics are due now, when to wake up, and the run's phase.
pub fn progress(
    _run: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    _now: jiff::Timestamp,
) -> AnalysisProgress {
    AnalysisProgress {
        status: status.clone(),
        due: Vec::new(),
        next_wakeup: None,
        completed: false,
    }
}

/// The phase of a threshold measurement: `failureCondition` true → Failed, else
/// `successCondition` true → Successful, else Inconclusive; Error when not evaluable.
pub fn classify_threshold(metric: &Metric, result: &[f64]) -> MeasurementPhase {
    threshold_verdict(metric, result).phase
}

/// [`classify_threshold`] with the reason, for `Measurement.message`.
pub fn threshold_verdict(_metric: &Metric, _result: &[f64]) -> ThresholdVerdict {
    ThresholdVerdict {
        phase: MeasurementPhase::Inconclusive,
        message: String::new(),
    }
}
