//! Fife's pure core: the rollout step machine and the analysis phases.
//!
//! ```text
//!   Rollout (spec + last status) ─┐
//!   Observed children, analyses ──┼─▶ rollout::decide ─▶ Decision { status, children,
//!   now ──────────────────────────┘                        weights, analysis, events }
//!
//!   AnalysisRunSpec + status ─┬─▶ analysis::progress ─▶ which metrics are due, when to wake
//!   measurement outcomes ─────┴─▶ analysis::record   ─▶ counters, limits, phases
//! ```
//!
//! Nothing here reads a clock, talks to the API server or blocks: time comes in as `now`,
//! everything needed to continue is in the status that goes out, so a controller restart
//! that feeds the last written status back in continues exactly where it stopped.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod revision;
pub mod rollout;

pub use analysis::{
    AnalysisProgress, ComparisonLook, ComparisonSides, ComparisonStatistics, ComparisonVerdict,
    MeasurementOutcome, ThresholdVerdict, classify_threshold, comparison_look, comparison_verdict,
    progress, record, start, threshold_verdict,
};
pub use revision::pod_template_hash;
pub use rollout::{
    AnalysisIntent, AnalysisKind, Decision, DesiredChild, DesiredChildren, EventAction, GateEvent,
    ManualActor, Observed, ObservedAnalysis, ObservedChild, ObservedRelease, ObservedWorkload,
    RolloutEvent, analysis_run_name, analysis_run_name_for_attempt, decide, summarize, weight_at,
};
