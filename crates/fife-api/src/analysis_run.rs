//! `AnalysisRun`: the record of one analysis — the metrics it measures (templates merged,
//! arguments resolved), every retained measurement with its value or judge result, and the
//! phases they add up to.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::{Argument, ComparisonScale, ComparisonTest, Metric};

/// One analysis of one revision: created by the controller from the templates a Rollout
/// step (or its background analysis) names.
// Several `printcolumn(type_ = "string", ..)` entries look like duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fife.dev",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "AnalysisRun",
    namespaced,
    status = "AnalysisRunStatus",
    shortname = "far",
    category = "fife",
    doc = "The record of one analysis: its metrics, each retained measurement and the resulting phases.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message")
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// The metrics of all referenced templates, with `{{args.*}}` already substituted
    /// (`{{role}}` stays: it is rendered per query).
    #[schemars(length(max = 256))]
    pub metrics: Vec<Metric>,
    /// The arguments as resolved when the run was created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// The Rollout and revision this run judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRef>,
    /// Stop measuring; the run completes with the phase its measurements so far give.
    #[serde(default)]
    pub terminate: bool,
}

/// The Rollout an AnalysisRun belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Pod-template hash of the canary revision under analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Pod-template hash of the stable revision (which the baseline runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Index of the step that started the run; unset for background analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<i32>,
}

/// Observed progress of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AnalysisPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_results: Vec<MetricResult>,
}

/// Phase of a metric or a whole run.
///
/// Completed phases are ordered by how bad they are for the rollout (`Successful` <
/// `Inconclusive` < `Error` < `Failed`); a run's phase is its worst metric's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AnalysisPhase {
    Pending,
    Running,
    Successful,
    Inconclusive,
    Error,
    Failed,
}

impl AnalysisPhase {
    /// True once no more measurements will change the phase.
    pub fn is_completed(self) -> bool {
        !matches!(self, AnalysisPhase::Pending | AnalysisPhase::Running)
    }

    /// Rank used to pick the worst phase; unfinished phases rank below every finished one.
    pub fn severity(self) -> u8 {
        match self {
            AnalysisPhase::Pending => 0,
            AnalysisPhase::Running => 1,
            AnalysisPhase::Successful => 2,
            AnalysisPhase::Inconclusive => 3,
            AnalysisPhase::Error => 4,
            AnalysisPhase::Failed => 5,
        }
    }

    /// The worse of two phases.
    pub fn worst(self, other: AnalysisPhase) -> AnalysisPhase {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// Failed and Error both abort the rollout: missing data never promotes.
    pub fn aborts_rollout(self) -> bool {
        matches!(self, AnalysisPhase::Failed | AnalysisPhase::Error)
    }
}

/// Outcome of one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MeasurementPhase {
    /// Taken but not finished (a long range query).
    Running,
    Successful,
    Failed,
    Inconclusive,
    Error,
}

/// Counters and retained measurements of one metric.
///
/// Counters count every measurement ever taken; `measurements` keeps only the newest
/// `measurementRetention`, so a long background analysis never outgrows etcd's object limit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    pub name: String,
    pub phase: AnalysisPhase,
    #[serde(default)]
    pub dry_run: bool,
    /// Measurements completed (all outcomes).
    #[serde(default)]
    pub count: i32,
    #[serde(default)]
    pub successful: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub inconclusive: i32,
    #[serde(default)]
    pub error: i32,
    /// Errors since the last measurement that was not an Error.
    #[serde(default)]
    pub consecutive_error: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MetricResult {
    pub fn new(name: impl Into<String>, dry_run: bool) -> Self {
        MetricResult {
            name: name.into(),
            phase: AnalysisPhase::Pending,
            dry_run,
            count: 0,
            successful: 0,
            failed: 0,
            inconclusive: 0,
            error: 0,
            consecutive_error: 0,
            measurements: Vec::new(),
            message: None,
        }
    }

    /// Append a measurement and drop the oldest beyond `retention`.
    pub fn retain_measurement(&mut self, measurement: Measurement, retention: i32) {
        self.measurements.push(measurement);
        let keep = usize::try_from(retention.max(1)).unwrap_or(1);
        if self.measurements.len() > keep {
            let excess = self.measurements.len() - keep;
            self.measurements.drain(..excess);
        }
    }
}

/// One measurement: a threshold metric's value, or a comparison metric's judgement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub phase: MeasurementPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The query result as written to the condition's `result`, e.g. `[0.995]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The judge's verdict for a comparison metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<Judgement>,
    /// Why the phase is what it is, e.g. the query error or the condition that held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the judge found when comparing canary samples against baseline samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Judgement {
    /// Samples of the canary after NaN and outlier handling.
    pub n_canary: i64,
    pub n_baseline: i64,
    /// Mann-Whitney U of the canary (mid-ranks for ties).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<f64>,
    /// Two-sided p-value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// How the p-value was computed, e.g. `exact` or `asymptotic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Hodges-Lehmann estimate of canary minus baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<ConfidenceInterval>,
    /// Ratio of canary to baseline mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect_size: Option<f64>,
    /// Common-language effect size: P(canary > baseline) + ½·P(tie).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cles: Option<f64>,
    pub classification: Classification,
    /// One sentence a person can read.
    pub reason: String,
    /// The test that judged: `pods`, `counts` or `mannWhitney`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<ComparisonTest>,
    /// `pods`: the scale the locations were compared on (`log` or `linear`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ComparisonScale>,
    /// `pods`, `counts`: which measurement of the run this is (1-based); the α it spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub look: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha_look: Option<f64>,
    /// `pods`, `counts`: pods per side that entered the test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_pods: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_pods: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_pods: Option<i64>,
    /// `pods`, `counts`: degrees of freedom and standard error of the estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub df: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_error: Option<f64>,
    /// `pods`, `counts`: p · α / α_look, capped at 1, comparable with 1 − confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjusted_p_value: Option<f64>,
    /// `counts`: φ, the variance of a pod's errors relative to the binomial's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispersion: Option<f64>,
}

/// Confidence interval of the shift.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfidenceInterval {
    pub lower: f64,
    pub upper: f64,
    /// Nominal coverage, e.g. 0.95.
    pub level: f64,
}

/// The judge's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Classification {
    Pass,
    High,
    Low,
    NoData,
}
