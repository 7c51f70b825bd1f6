//! The rollout step machine: from a Rollout (spec and last written status), what runs
//! (observed children and analyses) and `now`, decide the next status, the children and
//! traffic to apply, the analyses to start or stop, and the audit events the decision implies.

use fife_api::rollout::{
    CanaryStep, HandledManualAction, ManualActionOutcome, PauseCondition, PauseReason, TemplateRef,
    step_label,
};
use fife_api::{
    AnalysisPhase, Argument, ManualAction, ManualActionRequest, Rollout, RolloutPhase, RolloutSpec,
    RolloutStatus, TrafficWeights,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::revision::pod_template_hash;

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

/// The condition whose `lastTransitionTime` is the progress-deadline clock: `True` when every
/// child runs its desired revision with all desired pods ready, `False` since the moment
/// that stopped being so (a new step's weight, a crashing pod).
pub const AVAILABLE_CONDITION: &str = "Available";

/// Traffic for a canary weight `w` (the last `setWeight` reached).
///
/// Without a baseline: canary `w`, stable `100 − w`. With a baseline: canary `w`, baseline
/// `min(w, 100 − w)`, stable the rest. Up to 50 the canary and baseline get equal shares
/// and the stable `100 − 2w`; above 50 the canary keeps what the step asks, the baseline
/// takes what is left and the stable gets 0 — the baseline runs the stable revision, so the
/// stable version still serves that share.
pub fn weights_for(canary_weight: i32, baseline: bool) -> TrafficWeights {
    let canary = canary_weight.clamp(0, 100);
    let baseline = if baseline {
        canary.min(100 - canary)
    } else {
        0
    };
    TrafficWeights {
        canary,
        baseline,
        stable: 100 - canary - baseline,
    }
}

/// Pods per role for `weights` out of `replicas`.
///
/// Canary and baseline get `ceil(replicas · weight / 100)` each (never 0 for a weight above
/// 0, so every role that takes traffic has a pod). With a traffic router the stable keeps
/// all `replicas`, so an abort can send every request back at once; without one, traffic
/// follows pod counts, so the stable shrinks to `replicas − canary − baseline` (at least one
/// pod while it has a share, none at stable weight 0).
pub fn replicas_for(weights: TrafficWeights, replicas: i32, routed: bool) -> (i32, i32, i32) {
    let replicas = replicas.max(0);
    let share = |weight: i32| -> i32 {
        let pods = (i64::from(replicas) * i64::from(weight) + 99) / 100;
        i32::try_from(pods).unwrap_or(replicas)
    };
    let canary = share(weights.canary);
    let baseline = share(weights.baseline);
    let stable = if routed {
        replicas
    } else if weights.stable > 0 {
        (replicas - canary - baseline).max(replicas.min(1))
    } else {
        0
    };
    (stable, canary, baseline)
}

/// The canary weight in force at step `index`: the last `setWeight` at or before it.
pub fn weight_at(steps: &[CanaryStep], index: i32) -> i32 {
    let upto = usize::try_from(index.max(-1) + 1)
        .unwrap_or(0)
        .min(steps.len());
    steps[..upto]
        .iter()
        .rev()
        .find_map(|step| match step {
            CanaryStep::SetWeight(w) => Some(*w),
            _ => None,
        })
        .unwrap_or(0)
}

/// Decide the next status, children, traffic, analyses and events.
///
/// Pure: the same rollout, observations and `now` always give the same decision, and
/// everything the next call needs is in the returned status. A Rollout without a pod
/// template is inert: no children, a message saying why.
pub fn decide(rollout: &Rollout, observed: &Observed, now: jiff::Timestamp) -> Decision {
    let mut machine = Machine::new(rollout, observed, now);
    machine.run();
    machine.finish()
}

// === impl Machine ===

/// One `decide` call in progress: the status being built and what it implies.
struct Machine<'a> {
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
}

/// How `run` ended for the canary: still stepping, or ready to become stable.
enum StepOutcome {
    Waiting,
    Promote { by_person: bool },
}

impl<'a> Machine<'a> {
    fn new(rollout: &'a Rollout, observed: &'a Observed, now: jiff::Timestamp) -> Self {
        Machine {
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
        }
        .with_generation(rollout.metadata.generation)
    }

    fn with_generation(mut self, generation: Option<i64>) -> Self {
        self.status.observed_generation = generation;
        self
    }

    fn steps(&self) -> &'a [CanaryStep] {
        self.spec.steps()
    }

    fn step_count(&self) -> i32 {
        i32::try_from(self.steps().len()).unwrap_or(i32::MAX)
    }

    fn index(&self) -> i32 {
        self.status
            .current_step_index
            .unwrap_or(0)
            .clamp(0, self.step_count())
    }

    fn routed(&self) -> bool {
        self.spec
            .strategy
            .canary
            .traffic_routing
            .as_ref()
            .is_some_and(|r| r.gateway_api.is_some())
    }

    fn event(&mut self, action: EventAction, message: impl Into<String>) {
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
        });
    }

    fn manual_event(
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

    fn say(&mut self, message: impl Into<String>) {
        self.status.message = Some(message.into());
    }

    fn wake_after_millis(&mut self, millis: i64) {
        let millis = u64::try_from(millis.max(1)).unwrap_or(1);
        self.wakeups.push(std::time::Duration::from_millis(millis));
    }

    fn elapsed_millis(&self, since: &Time) -> i64 {
        self.now.as_millisecond() - since.0.as_millisecond()
    }

    fn run(&mut self) {
        let Some(template) = self.spec.template.as_ref() else {
            self.say("the Rollout has no pod template, so it runs nothing: add spec.template and spec.selector");
            return;
        };
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
            // First deployment: there is no other version to compare against.
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
            if let Some(canary) = self.status.canary_revision.clone() {
                self.handle_stray_manual_action();
                self.stop_analyses();
                self.clear_canary_state();
                self.status.canary_revision = None;
                self.status.current_step_index = Some(self.step_count());
                self.status.weights = Some(weights_for(0, false));
                self.event(
                    EventAction::RolledBack,
                    format!("the template is back at stable revision {stable}: canary revision {canary} is removed"),
                );
            } else {
                self.handle_stray_manual_action();
            }
            self.steady_state();
            return;
        }

        if self.status.canary_revision.as_deref() != Some(desired.as_str()) {
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
        match self.step_through() {
            StepOutcome::Waiting => {
                self.canary_children();
                self.update_available();
                self.check_progress_deadline_wakeup();
            }
            StepOutcome::Promote { by_person } => {
                self.promote(by_person);
                self.steady_state();
            }
        }
    }

    fn finish(mut self) -> Decision {
        let total = self.steps().len();
        let index = self.status.current_step_index.unwrap_or(0);
        self.status.step_label = self
            .status
            .stable_revision
            .as_ref()
            .map(|_| step_label(index, total));
        self.status.weights = self.spec.template.as_ref().map(|_| self.weights);
        let roles = [
            &self.observed.stable,
            &self.observed.canary,
            &self.observed.baseline,
        ];
        self.status.replicas = roles
            .iter()
            .filter_map(|c| c.as_ref())
            .map(|c| c.replicas)
            .sum();
        self.status.ready_replicas = roles
            .iter()
            .filter_map(|c| c.as_ref())
            .map(|c| c.ready_replicas)
            .sum();
        self.status.ready_label = Some(fife_api::rollout::ready_label(
            self.status.ready_replicas,
            self.spec.replicas,
        ));
        self.status.selector = self.spec.selector.as_ref().map(selector_string);
        self.status.phase = self.phase();
        Decision {
            status: self.status,
            children: self.children,
            weights: self.weights,
            analysis: self.analysis,
            requeue_after: self.wakeups.into_iter().min(),
            events: self.events,
        }
    }

    /// None for an inert Rollout: it has no revision to be in any phase with.
    fn phase(&self) -> Option<RolloutPhase> {
        self.spec.template.as_ref()?;
        let phase = if self.status.abort {
            RolloutPhase::Degraded
        } else if !self.status.pause_conditions.is_empty() {
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

    // --- steady state: no canary ---

    /// Only the stable runs. Right after a promotion the previous canary and baseline keep
    /// their pods and traffic until the stable is ready at the new revision, so promoting
    /// never drops capacity.
    fn steady_state(&mut self) {
        let Some(stable) = self.status.stable_revision.clone() else {
            return;
        };
        self.children.stable = Some(DesiredChild {
            revision: stable.clone(),
            replicas: self.spec.replicas,
        });
        let stable_ready = self.ready(&self.children.stable, &self.observed.stable);
        let previous = self.status.weights.unwrap_or_default();
        if !stable_ready && (previous.canary > 0 || previous.baseline > 0) {
            self.weights = previous;
            let (_, canary, baseline) = replicas_for(previous, self.spec.replicas, self.routed());
            self.children.canary = self.keep_observed(&self.observed.canary, canary);
            self.children.baseline = self.keep_observed(&self.observed.baseline, baseline);
            if self.children.canary.is_none() && self.children.baseline.is_none() {
                self.weights = weights_for(0, false);
            }
        } else {
            self.weights = weights_for(0, false);
        }
        let was_degraded = self.status.phase == Some(RolloutPhase::Degraded);
        self.update_available();
        if stable_ready {
            self.say(format!(
                "revision {stable} is stable and all pods are ready"
            ));
        } else if let Some(condition) = self.available_condition().cloned() {
            if self.deadline_passed(&condition) {
                if !was_degraded {
                    self.event(
                        EventAction::ProgressDeadlineExceeded,
                        format!("stable revision {stable} is not ready after progressDeadlineSeconds ({}s)", self.spec.progress_deadline_seconds),
                    );
                }
                self.say(format!("stable revision {stable} is not ready after progressDeadlineSeconds ({}s): check its pods", self.spec.progress_deadline_seconds));
            } else {
                self.say(format!("waiting for stable revision {stable} to be ready"));
                self.check_progress_deadline_wakeup();
            }
        }
    }

    fn keep_observed(
        &self,
        observed: &Option<ObservedChild>,
        replicas: i32,
    ) -> Option<DesiredChild> {
        observed
            .as_ref()
            .filter(|o| o.replicas > 0 && replicas > 0)
            .map(|o| DesiredChild {
                revision: o.revision.clone(),
                replicas,
            })
    }

    // --- canary ---

    /// Children and weights for the current step.
    fn canary_children(&mut self) {
        let weights = weights_for(
            weight_at(self.steps(), self.index()),
            self.spec.strategy.canary.baseline,
        );
        self.set_children(weights);
    }

    fn set_children(&mut self, weights: TrafficWeights) {
        let (stable, canary, baseline) = replicas_for(weights, self.spec.replicas, self.routed());
        let child = |revision: &Option<String>, replicas: i32| {
            revision
                .clone()
                .filter(|_| replicas > 0)
                .map(|revision| DesiredChild { revision, replicas })
        };
        self.weights = weights;
        self.children = DesiredChildren {
            stable: child(&self.status.stable_revision, stable),
            canary: child(&self.status.canary_revision, canary),
            baseline: child(&self.status.stable_revision, baseline),
        };
    }

    fn ready(&self, desired: &Option<DesiredChild>, observed: &Option<ObservedChild>) -> bool {
        match desired {
            None => true,
            Some(d) if d.replicas == 0 => true,
            Some(d) => observed.as_ref().is_some_and(|o| {
                o.revision == d.revision
                    && o.up_to_date
                    && o.ready_replicas >= d.replicas
                    && o.updated_replicas >= d.replicas
            }),
        }
    }

    fn children_ready(&self) -> bool {
        self.ready(&self.children.stable, &self.observed.stable)
            && self.ready(&self.children.canary, &self.observed.canary)
            && self.ready(&self.children.baseline, &self.observed.baseline)
    }

    fn available_condition(&self) -> Option<&Condition> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == AVAILABLE_CONDITION)
    }

    /// Record whether the desired children are ready; the transition time only moves when
    /// readiness changes, so status stays still while nothing happens.
    fn update_available(&mut self) {
        let ready = self.children_ready();
        let (status, reason, message) = if ready {
            (
                "True",
                "ChildrenReady",
                "every child runs its desired revision with all pods ready",
            )
        } else {
            (
                "False",
                "WaitingForChildren",
                "waiting for children to run their desired revision with all pods ready",
            )
        };
        let generation = self.status.observed_generation;
        let now = Time(self.now);
        match self
            .status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == AVAILABLE_CONDITION)
        {
            Some(c) if c.status == status => {}
            Some(c) => {
                c.status = status.to_owned();
                c.reason = reason.to_owned();
                c.message = message.to_owned();
                c.last_transition_time = now;
                c.observed_generation = generation;
            }
            None => self.status.conditions.push(Condition {
                type_: AVAILABLE_CONDITION.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: now,
                observed_generation: generation,
            }),
        }
    }

    fn reset_available_clock(&mut self) {
        let now = Time(self.now);
        for c in &mut self.status.conditions {
            if c.type_ == AVAILABLE_CONDITION && c.status == "False" {
                c.last_transition_time = now.clone();
            }
        }
    }

    fn deadline_millis(&self) -> i64 {
        i64::from(self.spec.progress_deadline_seconds.max(1)) * 1000
    }

    fn deadline_passed(&self, condition: &Condition) -> bool {
        condition.status == "False"
            && self.elapsed_millis(&condition.last_transition_time) > self.deadline_millis()
    }

    /// A canary whose children are not ready within `progressDeadlineSeconds` aborts.
    fn check_progress_deadline(&mut self) -> bool {
        self.update_available();
        let Some(condition) = self.available_condition().cloned() else {
            return false;
        };
        if !self.deadline_passed(&condition) {
            return false;
        }
        let message = format!(
            "the canary's pods were not all ready within progressDeadlineSeconds ({}s) of step {}",
            self.spec.progress_deadline_seconds,
            self.index() + 1
        );
        self.event(EventAction::ProgressDeadlineExceeded, message.clone());
        self.abort(message);
        true
    }

    fn check_progress_deadline_wakeup(&mut self) {
        if let Some(condition) = self.available_condition().cloned()
            && condition.status == "False"
        {
            let left =
                self.deadline_millis() - self.elapsed_millis(&condition.last_transition_time) + 1;
            self.wake_after_millis(left);
        }
    }

    /// `spec.paused`: hold everything where it is.
    fn user_pause(&mut self) -> bool {
        let has = self
            .status
            .pause_conditions
            .iter()
            .any(|p| p.reason == PauseReason::UserPause);
        if self.spec.paused {
            if !has {
                self.status.pause_conditions.push(PauseCondition {
                    reason: PauseReason::UserPause,
                    start_time: Time(self.now),
                });
                self.event(
                    EventAction::ManualPause,
                    "spec.paused is true: the rollout holds at its current step",
                );
            }
            self.say("paused by spec.paused: set it to false to continue");
            return true;
        }
        if has {
            self.status
                .pause_conditions
                .retain(|p| p.reason != PauseReason::UserPause);
            self.event(
                EventAction::ManualResume,
                "spec.paused is false: the rollout continues",
            );
            // Time spent paused does not count against the progress deadline.
            self.reset_available_clock();
        }
        false
    }

    /// A Failed or Error analysis aborts: missing data never promotes.
    fn check_failed_analyses(&mut self) -> bool {
        let runs = [
            (
                self.status.current_analysis_run.clone(),
                &self.observed.step_analysis,
                "step",
            ),
            (
                self.status.background_analysis_run.clone(),
                &self.observed.background_analysis,
                "background",
            ),
        ];
        for (name, observed, kind) in runs {
            let Some(name) = name else { continue };
            let Some(run) = observed.as_ref().filter(|o| o.name == name) else {
                continue;
            };
            if run.phase.aborts_rollout() {
                let detail = run
                    .message
                    .clone()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let message = format!("{kind} analysis {name} ended {:?}{detail}", run.phase);
                self.event(EventAction::AnalysisCompleted, message.clone());
                self.abort(message);
                return true;
            }
        }
        false
    }

    fn observed_run(&self, kind: &AnalysisKind, name: &str) -> Option<&'a ObservedAnalysis> {
        let observed = match kind {
            AnalysisKind::Step { .. } => &self.observed.step_analysis,
            AnalysisKind::Background => &self.observed.background_analysis,
        };
        observed.as_ref().filter(|o| o.name == name)
    }

    fn run_name(&self, kind: &AnalysisKind) -> String {
        analysis_run_name_for_attempt(
            &self.name,
            self.status.canary_revision.as_deref().unwrap_or_default(),
            self.status.retries,
            kind,
        )
    }

    /// Start (or, after a restart, re-request) the background analysis once its step is reached.
    fn background_analysis(&mut self) {
        let Some(background) = self.spec.strategy.canary.analysis.as_ref() else {
            return;
        };
        if self.index() < background.starting_step.unwrap_or(0).max(0) {
            return;
        }
        let name = self.run_name(&AnalysisKind::Background);
        let start = AnalysisIntent::Start {
            name: name.clone(),
            kind: AnalysisKind::Background,
            templates: background.templates.clone(),
            args: background.args.clone(),
        };
        if self.status.background_analysis_run.as_deref() != Some(name.as_str()) {
            self.status.background_analysis_run = Some(name.clone());
            self.event(
                EventAction::AnalysisStarted,
                format!("background analysis {name} started"),
            );
            self.analysis.push(start);
        } else if self
            .observed_run(&AnalysisKind::Background, &name)
            .is_none()
        {
            self.analysis.push(start);
        }
    }

    fn has_pause(&self, reason: PauseReason) -> bool {
        self.status
            .pause_conditions
            .iter()
            .any(|p| p.reason == reason)
    }

    fn pause(&mut self, reason: PauseReason, message: String) {
        if !self.has_pause(reason) {
            self.status.pause_conditions.push(PauseCondition {
                reason,
                // Status times are written to the second; the start is rounded up so that
                // the time read back after a restart is exact and a bake window never ends
                // before its full duration (it may last up to a second longer).
                start_time: Time(ceil_to_second(self.now)),
            });
            self.event(EventAction::PauseStarted, message);
        }
    }

    /// Move through as many steps as the observations allow.
    fn step_through(&mut self) -> StepOutcome {
        // Each iteration either returns or advances by one step, so this is bounded.
        for _ in 0..=self.steps().len() + 1 {
            self.background_analysis();
            if self.status.promote_full {
                return StepOutcome::Promote { by_person: true };
            }
            if self.background_inconclusive() {
                return StepOutcome::Waiting;
            }
            let index = self.index();
            self.canary_children();
            if !self.children_ready() {
                self.say(format!(
                    "step {}/{}: waiting for canary pods to be ready at weight {}",
                    (index + 1).min(self.step_count()),
                    self.step_count(),
                    self.weights.canary
                ));
                return StepOutcome::Waiting;
            }
            let Some(step) = usize::try_from(index)
                .ok()
                .and_then(|i| self.steps().get(i))
            else {
                return match self.background_gate() {
                    Some(by_person) => StepOutcome::Promote { by_person },
                    None => StepOutcome::Waiting,
                };
            };
            match step {
                CanaryStep::SetWeight(_) => self.advance(),
                CanaryStep::Pause(pause) => {
                    let started = self
                        .status
                        .pause_conditions
                        .iter()
                        .find(|p| p.reason == PauseReason::PauseStep)
                        .map(|p| p.start_time.clone());
                    let Some(started) = started else {
                        let message = match pause.duration {
                            Some(d) => format!("step {}: bake window of {d}", index + 1),
                            None => format!("step {}: waiting for a person to promote", index + 1),
                        };
                        self.pause(PauseReason::PauseStep, message);
                        self.status.controller_pause = pause.duration.is_none();
                        continue;
                    };
                    match pause.duration {
                        None => {
                            self.say(format!("step {}/{}: paused until a person promotes (kubectl fife promote {})", index + 1, self.step_count(), self.name));
                            return StepOutcome::Waiting;
                        }
                        Some(duration) => {
                            let left = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
                                - self.elapsed_millis(&started);
                            if left > 0 {
                                self.say(format!(
                                    "step {}/{}: bake window of {duration}",
                                    index + 1,
                                    self.step_count()
                                ));
                                self.wake_after_millis(left);
                                return StepOutcome::Waiting;
                            }
                            self.event(
                                EventAction::PauseEnded,
                                format!("step {}: bake window of {duration} ended", index + 1),
                            );
                            self.advance();
                        }
                    }
                }
                CanaryStep::Analysis(analysis) => {
                    let kind = AnalysisKind::Step { index };
                    let name = self.run_name(&kind);
                    if self.status.current_analysis_run.as_deref() != Some(name.as_str()) {
                        self.status.current_analysis_run = Some(name.clone());
                        self.event(
                            EventAction::AnalysisStarted,
                            format!("step {}: analysis {name} started", index + 1),
                        );
                    }
                    let Some(run) = self.observed_run(&kind, &name) else {
                        self.analysis.push(AnalysisIntent::Start {
                            name: name.clone(),
                            kind,
                            templates: analysis.templates.clone(),
                            args: analysis.args.clone(),
                        });
                        self.say(format!(
                            "step {}/{}: analysis {name} starting",
                            index + 1,
                            self.step_count()
                        ));
                        return StepOutcome::Waiting;
                    };
                    match run.phase {
                        AnalysisPhase::Successful => {
                            self.event(
                                EventAction::AnalysisCompleted,
                                format!("step {}: analysis {name} Successful", index + 1),
                            );
                            self.advance();
                        }
                        AnalysisPhase::Inconclusive
                            if self.status.accepted_analysis_runs.contains(&name) =>
                        {
                            self.advance();
                        }
                        AnalysisPhase::Inconclusive => {
                            if !self.has_pause(PauseReason::InconclusiveAnalysis) {
                                self.event(
                                    EventAction::AnalysisCompleted,
                                    format!("step {}: analysis {name} Inconclusive", index + 1),
                                );
                            }
                            self.pause(PauseReason::InconclusiveAnalysis, format!("step {}: analysis {name} is Inconclusive: a person decides (promote or abort)", index + 1));
                            self.status.controller_pause = true;
                            self.say(format!(
                                "step {}/{}: analysis {name} is Inconclusive: promote or abort",
                                index + 1,
                                self.step_count()
                            ));
                            return StepOutcome::Waiting;
                        }
                        _ => {
                            self.say(format!(
                                "step {}/{}: analysis {name} running",
                                index + 1,
                                self.step_count()
                            ));
                            return StepOutcome::Waiting;
                        }
                    }
                }
            }
        }
        StepOutcome::Waiting
    }

    /// After the last step, a background analysis must end Successful (or be accepted by a
    /// person) before the canary becomes stable. `Some(by_person)` when the gate is open.
    fn background_gate(&mut self) -> Option<bool> {
        let Some(name) = self.status.background_analysis_run.clone() else {
            return Some(self.person_promoted);
        };
        if self.status.accepted_analysis_runs.contains(&name) {
            return Some(true);
        }
        match self
            .observed_run(&AnalysisKind::Background, &name)
            .map(|r| r.phase)
        {
            Some(AnalysisPhase::Successful) => {
                self.event(
                    EventAction::AnalysisCompleted,
                    format!("background analysis {name} Successful"),
                );
                Some(self.person_promoted)
            }
            Some(AnalysisPhase::Inconclusive) => {
                if !self.has_pause(PauseReason::InconclusiveAnalysis) {
                    self.event(
                        EventAction::AnalysisCompleted,
                        format!("background analysis {name} Inconclusive"),
                    );
                }
                self.pause(PauseReason::InconclusiveAnalysis, format!("background analysis {name} is Inconclusive: a person decides (promote or abort)"));
                self.status.controller_pause = true;
                self.say(format!(
                    "all steps done; background analysis {name} is Inconclusive: promote or abort"
                ));
                None
            }
            _ => {
                // Ask it to finish with what it has measured; its final phase opens the gate.
                self.analysis
                    .push(AnalysisIntent::Terminate { name: name.clone() });
                self.say(format!(
                    "all steps done; waiting for background analysis {name} to complete"
                ));
                None
            }
        }
    }

    /// An Inconclusive background analysis pauses the rollout at once, wherever it is.
    fn background_inconclusive(&mut self) -> bool {
        let Some(name) = self.status.background_analysis_run.clone() else {
            return false;
        };
        let inconclusive = self
            .observed_run(&AnalysisKind::Background, &name)
            .is_some_and(|r| r.phase == AnalysisPhase::Inconclusive);
        if !inconclusive || self.status.accepted_analysis_runs.contains(&name) {
            return false;
        }
        if !self.has_pause(PauseReason::InconclusiveAnalysis) {
            self.event(
                EventAction::AnalysisCompleted,
                format!("background analysis {name} Inconclusive"),
            );
        }
        self.pause(
            PauseReason::InconclusiveAnalysis,
            format!(
                "background analysis {name} is Inconclusive: a person decides (promote or abort)"
            ),
        );
        self.status.controller_pause = true;
        self.say(format!(
            "background analysis {name} is Inconclusive: promote or abort"
        ));
        true
    }

    fn enter_step(&mut self, index: i32) {
        let before = self.weights_of_index(self.status.current_step_index.unwrap_or(0));
        let from_scratch = index == 0;
        self.status.current_step_index = Some(index);
        self.status.current_step_started_at = Some(Time(self.now));
        let total = self.step_count();
        if index < total {
            let kind = self.steps()[usize::try_from(index).unwrap_or(0)].kind();
            self.event(
                EventAction::StepStarted,
                format!("step {}/{total} ({kind}) started", index + 1),
            );
        }
        let after = self.weights_of_index(index);
        if after != before || (from_scratch && after.canary > 0) {
            self.event(
                EventAction::WeightChanged,
                format!(
                    "traffic: canary {}%, baseline {}%, stable {}%",
                    after.canary, after.baseline, after.stable
                ),
            );
        }
    }

    fn weights_of_index(&self, index: i32) -> TrafficWeights {
        weights_for(
            weight_at(self.steps(), index),
            self.spec.strategy.canary.baseline,
        )
    }

    fn advance(&mut self) {
        self.status
            .pause_conditions
            .retain(|p| p.reason == PauseReason::UserPause);
        self.status.controller_pause = false;
        self.status.current_analysis_run = None;
        let next = self.index() + 1;
        self.enter_step(next.min(self.step_count()));
    }

    fn promote(&mut self, by_person: bool) {
        let canary = self.status.canary_revision.clone().unwrap_or_default();
        let previous = self.status.stable_revision.clone().unwrap_or_default();
        if let Some(name) = self.status.background_analysis_run.clone() {
            self.analysis.push(AnalysisIntent::Terminate { name });
        }
        // The weights in force stay in status so the old canary keeps serving until the
        // stable is ready at the new revision (see `steady_state`).
        self.status.weights = Some(self.weights);
        self.clear_canary_state();
        self.status.stable_revision = Some(canary.clone());
        self.status.canary_revision = None;
        self.status.current_step_index = Some(self.step_count());
        self.status.current_step_started_at = Some(Time(self.now));
        let how = if by_person {
            "promoted by a person"
        } else {
            "every step passed"
        };
        self.event(
            EventAction::Promoted,
            format!("revision {canary} replaces {previous} as stable: {how}"),
        );
    }

    fn abort(&mut self, reason: String) {
        self.status.abort = true;
        self.status.aborted_at = Some(Time(self.now));
        self.status.promote_full = false;
        self.status.controller_pause = false;
        self.status
            .pause_conditions
            .retain(|p| p.reason == PauseReason::UserPause);
        self.stop_analyses();
        self.event(
            EventAction::Aborted,
            format!("aborted: {reason}; all traffic back to stable"),
        );
        self.say(format!("aborted: {reason}. Fix the cause and retry (kubectl fife retry {}) or change the template", self.name));
    }

    /// Aborted: all traffic on stable at full size; canary and baseline keep their pods for
    /// `abortScaleDownDelaySeconds`, then go.
    fn aborted(&mut self) {
        let step = self.weights_of_index(self.index());
        let (_, canary, baseline) = replicas_for(step, self.spec.replicas, self.routed());
        let stable = self.status.stable_revision.clone();
        let canary_revision = self.status.canary_revision.clone();
        self.weights = weights_for(0, false);
        self.children.stable = stable.clone().map(|revision| DesiredChild {
            revision,
            replicas: self.spec.replicas,
        });
        let delay = i64::from(
            self.spec
                .strategy
                .canary
                .abort_scale_down_delay_seconds
                .max(0),
        ) * 1000;
        let since = self
            .status
            .aborted_at
            .as_ref()
            .map_or(0, |t| self.elapsed_millis(t));
        if since < delay {
            self.wake_after_millis(delay - since);
            let keep = |revision: Option<String>, replicas: i32| {
                revision
                    .filter(|_| replicas > 0)
                    .map(|revision| DesiredChild { revision, replicas })
            };
            self.children.canary = keep(canary_revision, canary);
            self.children.baseline = keep(stable, baseline);
        }
    }

    /// Terminate the analyses of the current canary attempt.
    fn stop_analyses(&mut self) {
        for name in [
            self.status.current_analysis_run.take(),
            self.status.background_analysis_run.take(),
        ]
        .into_iter()
        .flatten()
        {
            self.analysis.push(AnalysisIntent::Terminate { name });
        }
    }

    fn clear_canary_state(&mut self) {
        self.status.abort = false;
        self.status.aborted_at = None;
        self.status.promote_full = false;
        self.status.controller_pause = false;
        self.status
            .pause_conditions
            .retain(|p| p.reason == PauseReason::UserPause);
        self.status.current_analysis_run = None;
        self.status.background_analysis_run = None;
        self.status.accepted_analysis_runs.clear();
    }

    // --- manual actions ---

    fn pending_request(&self) -> Option<&'a ManualActionRequest> {
        let request = self.spec.manual_action.as_ref()?;
        let handled = self
            .status
            .last_manual_action
            .as_ref()
            .map(|h| h.id.as_str());
        (handled != Some(request.id.as_str())).then_some(request)
    }

    fn handled(
        &mut self,
        request: &ManualActionRequest,
        outcome: ManualActionOutcome,
        message: String,
    ) {
        self.status.last_manual_action = Some(HandledManualAction {
            id: request.id.clone(),
            action: request.action,
            handled_at: Time(self.now),
            outcome,
        });
        let action = match request.action {
            ManualAction::Promote => EventAction::ManualPromote,
            ManualAction::PromoteFull => EventAction::ManualPromoteFull,
            ManualAction::Abort => EventAction::ManualAbort,
            ManualAction::Retry => EventAction::ManualRetry,
        };
        self.manual_event(action, message, request);
    }

    /// A request while no canary is in progress does nothing, but is still answered.
    fn handle_stray_manual_action(&mut self) {
        if let Some(request) = self.pending_request() {
            self.handled(
                request,
                ManualActionOutcome::Ignored,
                format!("{:?} ignored: no rollout is in progress", request.action),
            );
        }
    }

    fn handle_manual_action(&mut self) {
        let Some(request) = self.pending_request() else {
            return;
        };
        let index = self.index();
        let aborted = self.status.abort;
        match request.action {
            ManualAction::Abort if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    "abort ignored: the rollout is already aborted".to_owned(),
                );
            }
            ManualAction::Abort => {
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    "abort requested by a person".to_owned(),
                );
                let who = request
                    .requested_by
                    .clone()
                    .unwrap_or_else(|| "a person".to_owned());
                self.abort(format!("{who} aborted the rollout"));
            }
            ManualAction::Retry if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    "retry: the steps start again from the first".to_owned(),
                );
                self.clear_canary_state();
                self.status.retries = self.status.retries.saturating_add(1);
                self.status.current_step_index = Some(0);
                self.enter_step(0);
            }
            ManualAction::Retry => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    "retry ignored: the rollout is not aborted".to_owned(),
                );
            }
            ManualAction::PromoteFull if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    "promote-full ignored: the rollout is aborted; retry first".to_owned(),
                );
            }
            ManualAction::PromoteFull => {
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    "promote-full: the remaining steps are skipped".to_owned(),
                );
                self.status.promote_full = true;
            }
            ManualAction::Promote if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    "promote ignored: the rollout is aborted; retry first".to_owned(),
                );
            }
            ManualAction::Promote => {
                let at_pause = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.steps().get(i))
                    .is_some_and(|s| matches!(s, CanaryStep::Pause(_)));
                let inconclusive = self.has_pause(PauseReason::InconclusiveAnalysis);
                if !at_pause && !inconclusive {
                    self.handled(request, ManualActionOutcome::Ignored, format!("promote ignored: step {} is neither a pause nor an Inconclusive analysis", index + 1));
                    return;
                }
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    format!("promote: step {} ends by a person's decision", index + 1),
                );
                self.person_promoted = true;
                if inconclusive {
                    // The Inconclusive run (step or background) stops gating this attempt.
                    let runs = [
                        self.status.current_analysis_run.clone(),
                        self.status.background_analysis_run.clone(),
                    ];
                    for name in runs.into_iter().flatten() {
                        let inconclusive_run = [
                            &self.observed.step_analysis,
                            &self.observed.background_analysis,
                        ]
                        .into_iter()
                        .flatten()
                        .any(|o| o.name == name && o.phase == AnalysisPhase::Inconclusive);
                        if inconclusive_run && !self.status.accepted_analysis_runs.contains(&name) {
                            self.status.accepted_analysis_runs.push(name);
                        }
                    }
                    self.status
                        .pause_conditions
                        .retain(|p| p.reason != PauseReason::InconclusiveAnalysis);
                    self.status.controller_pause = false;
                    if index < self.step_count() && !at_pause {
                        // The accepted step analysis lets `step_through` advance.
                        return;
                    }
                    if index >= self.step_count() {
                        return;
                    }
                }
                self.advance();
            }
        }
    }
}

/// `matchLabels` as a label-selector string, for the scale subresource.
fn selector_string(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `t` rounded up to a whole second: the precision a Kubernetes `Time` keeps on the wire.
fn ceil_to_second(t: jiff::Timestamp) -> jiff::Timestamp {
    if t.subsec_nanosecond() == 0 {
        t
    } else {
        jiff::Timestamp::from_second(t.as_second() + 1).unwrap_or(t)
    }
}
