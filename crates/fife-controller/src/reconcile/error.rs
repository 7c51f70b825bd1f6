//! The ways one reconcile can fail, one variant per pipeline step. The step names the
//! metric label (`fife_reconcile_errors_total{step}`) and the Event reason.

use crate::build::children::BuildError;
use crate::build::runs::RunError;
use crate::build::traffic::TrafficError;

/// Why a reconcile stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("observing Rollout {rollout} failed: {source}")]
    Observe {
        rollout: String,
        #[source]
        source: kube::Error,
    },
    #[error("observing Rollout {rollout} failed: {detail}")]
    Cache { rollout: String, detail: String },
    #[error(
        "the audit record for Rollout {rollout} could not be written, so nothing was applied: {message}"
    )]
    Record { rollout: String, message: String },
    #[error("building the children of Rollout {rollout} failed: {source}")]
    Build {
        rollout: String,
        #[source]
        source: BuildError,
    },
    #[error("starting an analysis for Rollout {rollout} failed: {source}")]
    Analysis {
        rollout: String,
        #[source]
        source: RunError,
    },
    #[error("setting traffic for Rollout {rollout} failed: {source}")]
    Traffic {
        rollout: String,
        #[source]
        source: TrafficError,
    },
    #[error("applying {what} for Rollout {rollout} failed: {source}")]
    Act {
        rollout: String,
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of {object} failed: {source}")]
    Report {
        object: String,
        #[source]
        source: kube::Error,
    },
}

impl ReconcileError {
    /// The pipeline step that failed, as a metric label.
    pub fn step(&self) -> &'static str {
        match self {
            ReconcileError::Observe { .. } | ReconcileError::Cache { .. } => "observe",
            ReconcileError::Record { .. } => "record",
            ReconcileError::Build { .. } | ReconcileError::Analysis { .. } => "build",
            ReconcileError::Traffic { .. } | ReconcileError::Act { .. } => "act",
            ReconcileError::Report { .. } => "report",
        }
    }

    /// The Event reason when the failure is shown on the Rollout.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Observe { .. } | ReconcileError::Cache { .. } => "ObserveFailed",
            ReconcileError::Record { .. } => "AuditWriteFailed",
            ReconcileError::Build { .. } => "InvalidSpec",
            ReconcileError::Analysis { .. } => "AnalysisNotStarted",
            ReconcileError::Traffic { .. } => "TrafficNotSet",
            ReconcileError::Act { .. } => "ApplyFailed",
            ReconcileError::Report { .. } => "StatusNotWritten",
        }
    }
}
