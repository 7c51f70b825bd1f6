//! The rollout step machine: from a Rollout (spec and last written status), what runs
//! (observed children and analyses) and `now`, decide the next status, the children and
//! traffic to apply, the analyses to start or stop, and the audit events the decision implies.

use fife_api::rollout::{
    CanaryStep, HandledManualAction, ManualActionOutcome, PauseCondition, PauseReason,
    SetHeaderRoute, TemplateRef, TrafficRouting, step_label,
};
use fife_api::wire::wire_name;
use fife_api::{
    AnalysisPhase, Argument, ManualAction, ManualActionRequest, Rollout, RolloutPhase, RolloutSpec,
    RolloutStatus, TrafficWeights,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::revision::pod_template_hash;

mod availability;
mod blue_green;
mod gates;
mod headers;
mod manual;
mod release;
mod steps;
mod summary;
mod traffic;
mod workload;

pub use availability::AVAILABLE_CONDITION;
pub use blue_green::{
    ServiceSelection, active_revision, as_canary, blue_green_services, blue_green_steps,
    preview_revision,
};
pub use headers::{header_route_names, header_routes_at};
pub use release::{GateEvent, ObservedRelease, RELEASE_GATES_CONDITION};
pub use summary::summarize;
pub use traffic::{replicas_for, weight_at, weights_for};
pub use workload::{
    MISSING_WORKLOAD_RETRY, ObservedWorkload, WORKLOAD_CONDITION, workload_replicas,
};

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
    /// The release policy's inputs; `None` when the controller observes no policy kinds.
    pub release: Option<ObservedRelease>,
    /// The Deployment `spec.workloadRef` names; `None` without a workloadRef or when that
    /// Deployment does not exist.
    pub workload: Option<ObservedWorkload>,
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

/// An audit event the decision implies (docs/audit.md); the controller records it before acting.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutEvent {
    pub action: EventAction,
    pub message: String,
    pub step_index: Option<i32>,
    pub revision: Option<String>,
    pub manual: Option<ManualActor>,
    /// The gate outcome, for the release-gate actions.
    pub gate: Option<GateEvent>,
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
    /// A release gate let the change pass (or stopped holding it).
    GatePassed,
    /// A release gate holds the change.
    GateBlocked,
    /// A break-glass let the change past a freeze or missing approvals.
    GateBypassed,
}

/// The outcome of one `decide`: write `status`, apply `children` and `weights`, act on
/// `analysis`, record `events`, and reconcile again after `requeue_after` at the latest.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: RolloutStatus,
    pub children: DesiredChildren,
    pub weights: TrafficWeights,
    /// The `setHeaderRoute` routes to the canary in force; every other route the steps
    /// name is removed from the router's objects.
    pub header_routes: Vec<SetHeaderRoute>,
    pub analysis: Vec<AnalysisIntent>,
    pub requeue_after: Option<std::time::Duration>,
    pub events: Vec<RolloutEvent>,
    /// The release policy's judgement of the current change, when a policy governs it:
    /// the deploy record of a promotion is built from it.
    pub release: Option<fife_policy::GateReport>,
    /// The replicas to give the Deployment `spec.workloadRef` names, per its `scaleDown`;
    /// `None` leaves them as they are.
    pub workload_replicas: Option<i32>,
}

/// The Rollout as `decide` runs it: with `workloadRef`, the pod template (and, unless the
/// Rollout sets one, the selector) of the observed Deployment, or none when it is missing;
/// with `blueGreen`, the canary steps it runs as ([`as_canary`]). Any other Rollout is
/// returned as it is. Idempotent, so a Rollout resolved by the controller resolves to itself.
pub fn resolve<'r>(rollout: &'r Rollout, observed: &Observed) -> std::borrow::Cow<'r, Rollout> {
    if rollout.spec.workload_ref.is_none() && rollout.spec.strategy.blue_green.is_none() {
        return std::borrow::Cow::Borrowed(rollout);
    }
    let mut resolved = rollout.clone();
    workload::resolve_template(&mut resolved, observed);
    if let Some(strategy) = &rollout.spec.strategy.blue_green {
        resolved.spec.strategy.canary = as_canary(strategy);
    }
    std::borrow::Cow::Owned(resolved)
}

/// Which AnalysisRun an analysis of a revision gets. Deterministic, so a controller restart
/// finds the run it already created instead of creating a second one; a retry after an abort
/// gets new names (`-retry<n>`), so it never reads the aborted attempt's results.
pub fn analysis_run_name(rollout: &str, canary_revision: &str, kind: &AnalysisKind) -> String {
    analysis_run_name_for_attempt(rollout, canary_revision, 0, kind)
}

/// [`analysis_run_name`] for the attempt after `retries` retries (`status.retries`).
pub fn analysis_run_name_for_attempt(
    rollout: &str,
    canary_revision: &str,
    retries: i32,
    kind: &AnalysisKind,
) -> String {
    let attempt = if retries > 0 {
        format!("-retry{retries}")
    } else {
        String::new()
    };
    match kind {
        AnalysisKind::Step { index } => format!("{rollout}-{canary_revision}{attempt}-step{index}"),
        AnalysisKind::Background => format!("{rollout}-{canary_revision}{attempt}-background"),
    }
}

/// Decide the next status, children, traffic, analyses and events.
///
/// Pure: the same rollout, observations and `now` always give the same decision, and
/// everything the next call needs is in the returned status. A Rollout without a pod
/// template is inert: no children, a message saying why. With `workloadRef`, the template
/// is the observed Deployment's; a blue-green strategy runs as canary steps ([`resolve`]).
pub fn decide(rollout: &Rollout, observed: &Observed, now: jiff::Timestamp) -> Decision {
    let rollout = resolve(rollout, observed);
    let mut machine = Machine::new(&rollout, observed, now);
    machine.run();
    let mut decision = machine.finish();
    decision.workload_replicas = workload_replicas(&rollout.spec, observed, &decision.status);
    decision
}

// === impl Machine ===

/// One `decide` call in progress: the status being built and what it implies.
struct Machine<'a> {
    rollout: &'a Rollout,
    name: String,
    spec: &'a RolloutSpec,
    observed: &'a Observed,
    now: jiff::Timestamp,
    status: RolloutStatus,
    children: DesiredChildren,
    weights: TrafficWeights,
    analysis: Vec<AnalysisIntent>,
    events: Vec<RolloutEvent>,
    wakeups: Vec<std::time::Duration>,
    /// Set when a manual promote was applied in this call: it also carries the rollout past
    /// an Inconclusive background analysis at the end of the steps.
    person_promoted: bool,
    /// The release policy's judgement of the current change, once evaluated.
    release: Option<fife_policy::GateReport>,
}

/// How `run` ended for the canary: still stepping, or ready to become stable.
enum StepOutcome {
    Waiting,
    Promote { by_person: bool },
}

impl<'a> Machine<'a> {
    pub(super) fn new(rollout: &'a Rollout, observed: &'a Observed, now: jiff::Timestamp) -> Self {
        Machine {
            rollout,
            name: rollout.metadata.name.clone().unwrap_or_default(),
            spec: &rollout.spec,
            observed,
            now,
            status: rollout.status.clone().unwrap_or_default(),
            children: DesiredChildren {
                stable: None,
                canary: None,
                baseline: None,
            },
            weights: TrafficWeights {
                canary: 0,
                baseline: 0,
                stable: 100,
            },
            analysis: Vec::new(),
            events: Vec::new(),
            wakeups: Vec::new(),
            person_promoted: false,
            release: None,
        }
        .with_generation(rollout.metadata.generation)
    }

    pub(super) fn with_generation(mut self, generation: Option<i64>) -> Self {
        self.status.observed_generation = generation;
        self
    }

    pub(super) fn steps(&self) -> &'a [CanaryStep] {
        self.spec.steps()
    }

    pub(super) fn step_count(&self) -> i32 {
        i32::try_from(self.steps().len()).unwrap_or(i32::MAX)
    }

    pub(super) fn index(&self) -> i32 {
        self.status
            .current_step_index
            .unwrap_or(0)
            .clamp(0, self.step_count())
    }

    pub(super) fn routed(&self) -> bool {
        self.spec
            .strategy
            .canary
            .traffic_routing
            .as_ref()
            .is_some_and(TrafficRouting::routes)
    }

    /// The baseline runs only where the router can give it a share of its own.
    pub(super) fn baseline(&self) -> bool {
        let canary = &self.spec.strategy.canary;
        canary.baseline
            && canary
                .traffic_routing
                .as_ref()
                .is_none_or(TrafficRouting::weighs_baseline)
    }

    pub(super) fn event(&mut self, action: EventAction, message: impl Into<String>) {
        let step_index = self.status.current_step_index;
        let revision = self
            .status
            .canary_revision
            .clone()
            .or_else(|| self.status.stable_revision.clone());
        self.events.push(RolloutEvent {
            action,
            message: message.into(),
            step_index,
            revision,
            manual: None,
            gate: None,
        });
    }

    pub(super) fn manual_event(
        &mut self,
        action: EventAction,
        message: String,
        request: &ManualActionRequest,
    ) {
        self.event(action, message);
        if let Some(event) = self.events.last_mut() {
            event.manual = Some(ManualActor {
                requested_by: request.requested_by.clone(),
                request_id: request.id.clone(),
                reason: request.reason.clone(),
            });
        }
    }

    pub(super) fn say(&mut self, message: impl Into<String>) {
        self.status.message = Some(message.into());
    }

    pub(super) fn wake_after_millis(&mut self, millis: i64) {
        let millis = u64::try_from(millis.max(1)).unwrap_or(1);
        self.wakeups.push(std::time::Duration::from_millis(millis));
    }

    pub(super) fn elapsed_millis(&self, since: &Time) -> i64 {
        self.now.as_millisecond() - since.0.as_millisecond()
    }

    pub(super) fn run(&mut self) {
        let Some(template) = self.spec.template.as_ref() else {
            match &self.spec.workload_ref {
                Some(reference) => self.workload_missing(&reference.name),
                None => self.say("the Rollout has no pod template, so it runs nothing: add spec.template and spec.selector"),
            }
            return;
        };
        self.workload_found();
        let desired = pod_template_hash(template);

        if self.status.stable_revision.is_none() {
            // A status that was lost (object recreated, status wiped) must not turn a running
            // stable into a skipped canary: adopt what the stable Deployment runs.
            self.status.stable_revision = self
                .observed
                .stable
                .as_ref()
                .filter(|o| o.replicas > 0 && !o.revision.is_empty())
                .map(|o| o.revision.clone());
        }
        let Some(stable) = self.status.stable_revision.clone() else {
            // First deployment: there is no other version to compare against, but the
            // release gates that come before any pod runs still apply.
            if self.start_held(&desired) {
                return;
            }
            self.clear_release();
            self.status.stable_revision = Some(desired.clone());
            self.status.canary_revision = None;
            self.status.current_step_index = Some(self.step_count());
            self.event(
                EventAction::Healthy,
                format!("first revision {desired} becomes stable without steps: there is nothing to compare it with"),
            );
            self.steady_state();
            return;
        };

        if desired == stable {
            // Going back to stable is never held by a gate.
            self.clear_release();
            if let Some(canary) = self.status.canary_revision.clone() {
                self.handle_stray_manual_action();
                // Recorded before the canary is cleared, so the record names the revision
                // that failed, not the stable one.
                self.event(
                    EventAction::RolledBack,
                    format!("the template is back at stable revision {stable}: canary revision {canary} is removed"),
                );
                self.stop_analyses();
                self.clear_canary_state();
                self.status.canary_revision = None;
                self.status.current_step_index = Some(self.step_count());
                self.status.weights = Some(weights_for(0, false));
            } else {
                self.handle_stray_manual_action();
            }
            self.steady_state();
            return;
        }

        if self.status.canary_revision.as_deref() != Some(desired.as_str()) {
            if self.start_held(&desired) {
                self.held_before_start(&stable, &desired);
                return;
            }
            if let Some(previous) = self.status.canary_revision.clone() {
                self.stop_analyses();
                self.say(format!("revision {desired} replaces canary revision {previous} and starts again from step 1"));
            }
            self.clear_canary_state();
            self.status.retries = 0;
            self.status.canary_revision = Some(desired.clone());
            let steps = self.step_count();
            self.status.current_step_index = Some(0);
            self.event(
                EventAction::RolloutStarted,
                format!(
                    "rolling out revision {desired} over stable revision {stable} in {steps} steps"
                ),
            );
            self.enter_step(0);
        } else {
            self.release = self.evaluate_release(&desired);
        }

        self.handle_manual_action();
        if self.status.abort {
            self.aborted();
            return;
        }
        if self.user_pause() {
            self.canary_children();
            return;
        }
        if self.check_failed_analyses() {
            self.aborted();
            return;
        }
        self.canary_children();
        if self.check_progress_deadline() {
            self.aborted();
            return;
        }
        if self.step_held() {
            self.canary_children();
            self.update_available();
            return;
        }
        match self.step_through() {
            StepOutcome::Waiting => {
                self.canary_children();
                self.update_available();
                self.check_progress_deadline_wakeup();
            }
            StepOutcome::Promote { .. } if self.promotion_held() => {
                self.canary_children();
                self.update_available();
                self.check_progress_deadline_wakeup();
            }
            StepOutcome::Promote { by_person } => {
                self.promote(by_person);
                self.clear_release();
                self.steady_state();
            }
        }
    }

    /// A new revision a gate holds before it starts: the stable keeps all traffic, and a
    /// canary of an earlier revision it replaces is removed.
    fn held_before_start(&mut self, stable: &str, desired: &str) {
        if let Some(previous) = self.status.canary_revision.clone() {
            // Recorded before the canary is cleared, so the record names the removed one.
            self.event(
                EventAction::RolledBack,
                format!("canary revision {previous} is removed: revision {desired} replaces it and waits for a release gate; stable revision {stable} serves all traffic"),
            );
            self.stop_analyses();
            self.clear_canary_state();
            self.status.canary_revision = None;
            self.status.current_step_index = Some(self.step_count());
        }
        self.handle_stray_manual_action();
        let message = self.status.message.clone();
        self.steady_state();
        self.status.message = message;
    }

    pub(super) fn finish(mut self) -> Decision {
        self.status.weights = self.spec.template.as_ref().map(|_| self.weights);
        summarize(&mut self.status, self.spec, self.observed);
        self.status.phase = self.phase();
        let header_routes = self.header_routes();
        Decision {
            status: self.status,
            children: self.children,
            weights: self.weights,
            header_routes,
            analysis: self.analysis,
            requeue_after: self.wakeups.into_iter().min(),
            events: self.events,
            release: self.release,
            workload_replicas: None,
        }
    }

    /// None for an inert Rollout: it has no revision to be in any phase with.
    pub(super) fn phase(&self) -> Option<RolloutPhase> {
        self.spec.template.as_ref()?;
        let phase = if self.status.abort {
            RolloutPhase::Degraded
        } else if !self.status.pause_conditions.is_empty() || self.gate_holds() {
            RolloutPhase::Paused
        } else if self.status.canary_revision.is_some() {
            RolloutPhase::Progressing
        } else {
            match self.available_condition() {
                Some(c) if c.status == "True" => RolloutPhase::Healthy,
                Some(c) if self.deadline_passed(c) => RolloutPhase::Degraded,
                _ => RolloutPhase::Progressing,
            }
        };
        Some(phase)
    }
}
