//! The rollout step machine: from a Rollout (spec and last written status), what runs
//! (observed children and analyses) and `now`, decide the next status, the children and
//! traffic to apply, the analyses to start or stop, and the audit events the decision implies.

use fife_api::rollout::TemplateRef;
use fife_api::{AnalysisPhase, Argument, Rollout, RolloutStatus, TrafficWeights};

/// One child Deployment (stable, canary or baseline) as the controller observed it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedChild {
    /// Pod-template hash the Deployment runs.
    pub revision: String,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub updated_replicas: i32,
    /// The Deployment controller has seen its latest spec (`observedGeneration >= generation`).
    pub up_to_date: bool,
}

/// An AnalysisRun the Rollout owns, as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedAnalysis {
    pub name: String,
    pub phase: AnalysisPhase,
    pub message: Option<String>,
}

impl Default for ObservedAnalysis {
    fn default() -> Self {
        ObservedAnalysis {
            name: String::new(),
            phase: AnalysisPhase::Pending,
            message: None,
        }
    }
}

/// Everything the controller saw of the Rollout's children before deciding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub stable: Option<ObservedChild>,
    pub canary: Option<ObservedChild>,
    pub baseline: Option<ObservedChild>,
    /// The AnalysisRun named by `status.currentAnalysisRun`, if it exists.
    pub step_analysis: Option<ObservedAnalysis>,
    /// The AnalysisRun named by `status.backgroundAnalysisRun`, if it exists.
    pub background_analysis: Option<ObservedAnalysis>,
}

/// A child Deployment to run: which revision, how many pods.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredChild {
    pub revision: String,
    pub replicas: i32,
}

/// The children to apply. `None` means scale that role to zero (or remove it).
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredChildren {
    pub stable: Option<DesiredChild>,
    pub canary: Option<DesiredChild>,
    pub baseline: Option<DesiredChild>,
}

/// What to do about AnalysisRuns. Both are idempotent: `Start` creates the run only if no run
/// of that name exists, `Terminate` sets `spec.terminate` on a run that exists.
#[derive(Clone, Debug, PartialEq)]
pub enum AnalysisIntent {
    Start {
        name: String,
        kind: AnalysisKind,
        templates: Vec<TemplateRef>,
        args: Vec<Argument>,
    },
    Terminate {
        name: String,
    },
}

/// Why an AnalysisRun exists: an `analysis` step, or the background analysis.
#[derive(Clone, Debug, PartialEq)]
pub enum AnalysisKind {
    Step { index: i32 },
    Background,
}

/// Who asked for a manual action, as the request says.
#[derive(Clone, Debug, PartialEq)]
pub struct ManualActor {
    pub requested_by: Option<String>,
    pub request_id: String,
    /// The person's reason, copied from the request.
    pub reason: Option<String>,
}

/// An audit event the decision implies (DESIGN §5); the controller records it before acting.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutEvent {
    pub action: EventAction,
    pub message: String,
    pub step_index: Option<i32>,
    pub revision: Option<String>,
    pub manual: Option<ManualActor>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    RolloutStarted,
    StepStarted,
    WeightChanged,
    PauseStarted,
    PauseEnded,
    AnalysisStarted,
    AnalysisCompleted,
    Promoted,
    Aborted,
    RolledBack,
    ManualPromote,
    ManualPromoteFull,
    ManualAbort,
    ManualRetry,
    ManualPause,
    ManualResume,
    ProgressDeadlineExceeded,
    /// The first revision of a Rollout became stable without steps: nothing to compare.
    Healthy,
}

/// The outcome of one `decide`: write `status`, apply `children` and `weights`, act on
/// `analysis`, record `events`, and reconcile again after `requeue_after` at the latest.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: RolloutStatus,
    pub children: DesiredChildren,
    pub weights: TrafficWeights,
    pub analysis: Vec<AnalysisIntent>,
    pub requeue_after: Option<std::time::Duration>,
    pub events: Vec<RolloutEvent>,
}

/// Which AnalysisRun an analysis of a revision gets.
pub fn analysis_run_name(rollout: &str, canary_revision: &str, kind: &AnalysisKind) -> String {
    match kind {
        AnalysisKind::Step { index } => format!("{rollout}-{canary_revision}-step{index}"),
        AnalysisKind::Background => format!("{rollout}-{canary_revision}-background"),
    }
}

/// Decide the next status, children, traffic, analyses and events.
pub fn decide(rollout: &Rollout, _observed: &Observed, _now: jiff::Timestamp) -> Decision {
    let spec = &rollout.spec;
    let mut status = rollout.status.clone().unwrap_or_default();
    status.observed_generation = rollout.metadata.generation;
    let revision = spec
        .template
        .as_ref()
        .map(crate::revision::pod_template_hash);
    let weights = TrafficWeights {
        canary: 0,
        baseline: 0,
        stable: 100,
    };
    let stable = revision.clone().map(|revision| DesiredChild {
        revision,
        replicas: spec.replicas,
    });
    status.stable_revision = revision;
    status.weights = Some(weights);
    Decision {
        status,
        children: DesiredChildren {
            stable,
            canary: None,
            baseline: None,
        },
        weights,
        analysis: Vec::new(),
        requeue_after: None,
        events: Vec::new(),
    }
}
