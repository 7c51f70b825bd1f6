//! Fife's API, group `fife.dev`, version `v1alpha1`: the wire shape of `Rollout`,
//! `AnalysisTemplate`, `ClusterAnalysisTemplate`, `AnalysisRun` and the release policy
//! (`ReleasePolicy`, `Approval`, `BreakGlass`), their defaults, and the
//! generated CustomResourceDefinitions. This crate is the only owner of that shape.
//!
//! ```text
//!   Rollout ──steps/analysis──▶ AnalysisTemplate / ClusterAnalysisTemplate
//!      │                                 │ (metrics, args)
//!      └──────── controller creates ─────▶ AnalysisRun (measurements, phases)
//! ```
//!
//! Manual actions are one-shot requests in `Rollout.spec.manualAction` (see
//! [`rollout::ManualActionRequest`]); everything under `status` is written by the
//! controller only.

#![forbid(unsafe_code)]

pub mod analysis;
pub mod analysis_run;
pub mod crd;
pub mod credentials;
pub mod duration;
pub mod labels;
pub mod manifest;
pub mod placeholder;
pub mod release;
pub mod rollout;
pub mod schema_check;
pub mod validation;
pub mod wire;

pub use analysis::{
    AnalysisTemplate, AnalysisTemplateSpec, Argument, ClusterAnalysisTemplate,
    ClusterAnalysisTemplateSpec, Comparison, Metric, MetricProvider, PrometheusProvider,
};
pub use analysis_run::{
    AnalysisPhase, AnalysisRun, AnalysisRunSpec, AnalysisRunStatus, Judgement, Measurement,
    MeasurementPhase, MetricResult,
};
pub use duration::Duration;
pub use release::{
    Approval, ApprovalSpec, BreakGlass, BreakGlassSpec, ReleasePolicy, ReleasePolicySpec,
};
pub use rollout::{
    CanaryStep, CanaryStrategy, ManualAction, ManualActionRequest, Rollout, RolloutPhase,
    RolloutSpec, RolloutStatus, TrafficWeights,
};

/// The API group of every Fife kind.
pub const GROUP: &str = "fife.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "fife.dev/v1alpha1";
