//! The analysis runner: the second controller loop, over AnalysisRuns. It measures what is
//! due, records each measurement in the audit log and writes the run's status; the
//! Rollout's reconcile reads the run's phase.
//!
//! ```text
//!   AnalysisRun ─▶ runner: engine says what is due ─▶ measure (credentials, fife-metrics,
//!                  engine thresholds, fife-judge) ─▶ audit record ─▶ run status
//! ```

pub mod credentials;
pub mod error;
pub mod measure;
pub mod runner;
pub mod step;
