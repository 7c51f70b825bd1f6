//! The ways one pass over an AnalysisRun can fail. Each names the run and the step of the
//! runner that failed; the step is the `fife_reconcile_errors_total{step}` label, one of
//! [`crate::runtime::telemetry::RECONCILE_STEPS`]. A measurement that cannot be taken is no
//! error here: it is an `Error` measurement in the run's status.

/// Why a pass over an AnalysisRun stopped.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisRunError {
    #[error(
        "reading AnalysisRun {run} failed: {source}; check the controller's access to analysisruns"
    )]
    Read {
        run: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the audit record of a measurement of AnalysisRun {run} could not be written, so the run's status was not updated: {message}"
    )]
    Record { run: String, message: String },
    #[error("writing the status of AnalysisRun {run} failed: {source}")]
    WriteStatus {
        run: String,
        #[source]
        source: kube::Error,
    },
}

impl AnalysisRunError {
    /// The runner's step that failed, as a metric label.
    pub fn step(&self) -> &'static str {
        match self {
            AnalysisRunError::Read { .. } => "observe",
            AnalysisRunError::Record { .. } => "record",
            AnalysisRunError::WriteStatus { .. } => "report",
        }
    }
}
