//! The release-policy gates as one step of `decide`: [`fife_policy::evaluate`] judges the
//! change, and this module applies its verdicts at three points — before a new revision
//! starts, at every step (a freeze that holds), and before promotion — keeping
//! `status.release` (which gate holds, since when, when it opens) and emitting one event per
//! gate outcome. Aborts, rollbacks and a return to the stable template are decided before
//! any of these points, so no gate ever blocks them.

use fife_api::release::{GateOutcome, HeldGate, ReleaseGate, ReleaseStatus};
use fife_policy::{Change, GateInput, GateReport, GateVerdict, Outcome, Progress, Stage};

use super::gates::ceil_to_second;
use super::*;

/// What the controller observed of the release policy: the kinds it watches and the image
/// verifier's verdicts. `None` in [`Observed::release`] means no policy applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedRelease {
    /// Every ReleasePolicy in the cluster.
    pub policies: Vec<fife_api::ReleasePolicy>,
    /// Approvals in the Rollout's namespace.
    pub approvals: Vec<fife_api::Approval>,
    /// BreakGlasses in the Rollout's namespace.
    pub break_glasses: Vec<fife_api::BreakGlass>,
    /// The image verifier's verdict per image reference (see `fife_policy::gates`).
    pub images: std::collections::BTreeMap<String, fife_policy::ImageVerdict>,
    /// Container name → image of the stable revision, from the stable Deployment.
    pub stable_images: Option<std::collections::BTreeMap<String, String>>,
}

/// One gate outcome the decision implies, for the audit record, the Event and the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateEvent {
    pub gate: ReleaseGate,
    pub policy: String,
    pub tier: Option<String>,
    pub outcome: GateOutcome,
    /// How long the change waited at this gate, when it stops holding.
    pub waited_millis: Option<i64>,
    /// The BreakGlass and its requester, for a bypass.
    pub break_glass: Option<(String, String)>,
}

/// The condition that says whether a release gate holds the change.
pub const RELEASE_GATES_CONDITION: &str = "ReleaseGates";

/// How often a change held by a person's gate (approvals, a pending verification) is looked
/// at again when nothing else wakes the controller.
const PERSON_GATE_RECHECK_MILLIS: i64 = 15_000;

impl<'a> Machine<'a> {
    /// Judge the change to `revision` under the policies observed; `None` without any.
    pub(super) fn evaluate_release(&self, revision: &str) -> Option<GateReport> {
        let release = self.observed.release.as_ref()?;
        let change = Change::of(self.rollout, revision, release.stable_images.clone());
        let progress = Progress {
            canary_started_at: self
                .status
                .release
                .as_ref()
                .and_then(|r| r.canary_started_at.as_ref())
                .map(|t| t.0),
            passed_analyses: self.passed_analyses(),
        };
        let report = fife_policy::evaluate(
            &GateInput {
                change: &change,
                policies: &release.policies,
                approvals: &release.approvals,
                break_glasses: &release.break_glasses,
                images: &release.images,
                progress: &progress,
            },
            self.now,
        );
        (!report.policies.is_empty()).then_some(report)
    }

    /// Templates of the analyses that ended Successful in this attempt: analysis steps
    /// already passed (not those a person promoted past while Inconclusive) and a
    /// Successful background analysis.
    fn passed_analyses(&self) -> Vec<TemplateRef> {
        let mut passed = Vec::new();
        for (i, step) in self.steps().iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            if index >= self.index() {
                break;
            }
            if let CanaryStep::Analysis(analysis) = step {
                let name = self.run_name(&AnalysisKind::Step { index });
                if !self.status.accepted_analysis_runs.contains(&name) {
                    passed.extend(analysis.templates.iter().cloned());
                }
            }
        }
        if let (Some(background), Some(name)) = (
            self.spec.strategy.canary.analysis.as_ref(),
            self.status.background_analysis_run.as_ref(),
        ) && self
            .observed_run(&AnalysisKind::Background, name)
            .is_some_and(|r| r.phase == AnalysisPhase::Successful)
        {
            passed.extend(background.templates.iter().cloned());
        }
        passed
    }

    /// Before a new revision starts: `true` when a gate holds it. When none does, every
    /// start verdict is recorded (passed or bypassed) and the canary's start time kept.
    pub(super) fn start_held(&mut self, revision: &str) -> bool {
        let first = self.events.len();
        let held = self.start_gates(revision);
        // The start gates judge the new revision before it is the canary: their records
        // name it (not the stable one), so the audit ties each outcome to its change.
        for event in &mut self.events[first..] {
            if event.gate.is_some() {
                event.revision = Some(revision.to_owned());
            }
        }
        held
    }

    fn start_gates(&mut self, revision: &str) -> bool {
        self.release = self.evaluate_release(revision);
        let Some(report) = self.release.clone() else {
            self.status.release = None;
            return false;
        };
        let release = self
            .status
            .release
            .get_or_insert_with(ReleaseStatus::default);
        release.policies = report.policies.clone();
        release.tier = report.tier();
        if let Some(held) = report.holding(Stage::Start) {
            self.hold(held);
            return true;
        }
        self.stop_holding();
        for verdict in report.at(Stage::Start) {
            self.gate_event(verdict, None);
        }
        let release = self
            .status
            .release
            .get_or_insert_with(ReleaseStatus::default);
        release.break_glass = report.break_glass().map(|(name, _)| name.to_owned());
        release.canary_started_at = Some(Time(self.now));
        false
    }

    /// While the canary steps: `true` when a freeze holds it at its current step.
    pub(super) fn step_held(&mut self) -> bool {
        let Some(report) = self.release.as_ref() else {
            return false;
        };
        match report.holding(Stage::Always).cloned() {
            Some(held) => {
                self.hold(&held);
                true
            }
            None => {
                self.stop_holding();
                false
            }
        }
    }

    /// Before promotion: `true` when a gate holds the canary; otherwise the promotion
    /// verdicts are recorded.
    pub(super) fn promotion_held(&mut self) -> bool {
        let Some(report) = self.release.clone() else {
            return false;
        };
        if let Some(held) = report.holding(Stage::Promotion) {
            self.hold(held);
            return true;
        }
        self.stop_holding();
        for verdict in report
            .verdicts
            .iter()
            .filter(|v| v.stage == Stage::Promotion)
        {
            self.gate_event(verdict, None);
        }
        false
    }

    /// The gate holds: status says which, why and until when; the change is looked at
    /// again when the gate opens by itself, or soon when a person must act.
    fn hold(&mut self, verdict: &GateVerdict) {
        let Outcome::Blocked { reason, opens_at } = &verdict.outcome else {
            return;
        };
        let release = self
            .status
            .release
            .get_or_insert_with(ReleaseStatus::default);
        let same = release
            .holding
            .as_ref()
            .is_some_and(|h| h.gate == verdict.gate && h.policy == verdict.policy);
        if !same {
            self.stop_holding();
            self.gate_event(verdict, None);
        }
        let now = self.now;
        let release = self
            .status
            .release
            .get_or_insert_with(ReleaseStatus::default);
        let since = release
            .holding
            .as_ref()
            .filter(|_| same)
            .map_or(Time(ceil_to_second(now)), |h| h.since.clone());
        release.holding = Some(HeldGate {
            gate: verdict.gate,
            policy: verdict.policy.clone(),
            message: reason.clone(),
            opens_at: opens_at.map(Time),
            since,
        });
        match opens_at {
            Some(t) => self.wake_after_millis(t.as_millisecond() - self.now.as_millisecond()),
            None => self.wake_after_millis(PERSON_GATE_RECHECK_MILLIS),
        }
        let message = format!(
            "held by the {} gate of ReleasePolicy {}: {reason}",
            wire_name(&verdict.gate),
            verdict.policy
        );
        self.set_gates_condition(
            "False",
            &format!("{}GateHolds", wire_name(&verdict.gate)),
            &message,
        );
        self.say(message);
    }

    /// `ReleaseGates`: `False` with the holding gate as reason, `True` once none holds. The
    /// transition time moves only when the status or the reason changes.
    fn set_gates_condition(&mut self, status: &str, reason: &str, message: &str) {
        let generation = self.status.observed_generation;
        let now = Time(self.now);
        match self
            .status
            .conditions
            .iter_mut()
            .find(|c| c.type_ == RELEASE_GATES_CONDITION)
        {
            Some(c) if c.status == status && c.reason == reason => {
                c.message = message.to_owned();
            }
            Some(c) => {
                c.status = status.to_owned();
                c.reason = reason.to_owned();
                c.message = message.to_owned();
                c.last_transition_time = now;
                c.observed_generation = generation;
            }
            None => self.status.conditions.push(Condition {
                type_: RELEASE_GATES_CONDITION.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: now,
                observed_generation: generation,
            }),
        }
    }

    /// The gate that held the change opened: record how long it held.
    fn stop_holding(&mut self) {
        if self.status.release.is_some() {
            self.set_gates_condition("True", "GatesPassed", "no release gate holds the change");
        }
        let Some(held) = self.status.release.as_mut().and_then(|r| r.holding.take()) else {
            return;
        };
        let waited = self.elapsed_millis(&held.since).max(0);
        let tier = self.status.release.as_ref().and_then(|r| r.tier.clone());
        let message = format!(
            "{} gate of ReleasePolicy {} opened after {}s",
            wire_name(&held.gate),
            held.policy,
            waited / 1000
        );
        self.event(EventAction::GatePassed, message);
        if let Some(event) = self.events.last_mut() {
            event.gate = Some(GateEvent {
                gate: held.gate,
                policy: held.policy,
                tier,
                outcome: GateOutcome::Passed,
                waited_millis: Some(waited),
                break_glass: None,
            });
        }
    }

    fn gate_event(&mut self, verdict: &GateVerdict, waited_millis: Option<i64>) {
        let gate = wire_name(&verdict.gate);
        let (action, outcome, message, break_glass) = match &verdict.outcome {
            Outcome::Passed => (
                EventAction::GatePassed,
                GateOutcome::Passed,
                format!("{gate} gate of ReleasePolicy {} passed", verdict.policy),
                None,
            ),
            Outcome::Blocked { reason, .. } => (
                EventAction::GateBlocked,
                GateOutcome::Blocked,
                format!(
                    "{gate} gate of ReleasePolicy {} holds: {reason}",
                    verdict.policy
                ),
                None,
            ),
            Outcome::Bypassed {
                break_glass,
                requested_by,
            } => (
                EventAction::GateBypassed,
                GateOutcome::Bypassed,
                format!(
                    "{gate} gate of ReleasePolicy {} bypassed by break-glass {break_glass} of {requested_by}",
                    verdict.policy
                ),
                Some((break_glass.clone(), requested_by.clone())),
            ),
        };
        self.event(action, message);
        if let Some(event) = self.events.last_mut() {
            event.gate = Some(GateEvent {
                gate: verdict.gate,
                policy: verdict.policy.clone(),
                tier: verdict.tier.clone(),
                outcome,
                waited_millis,
                break_glass,
            });
        }
    }

    /// The change is gone (back to stable, promoted): nothing is held any more.
    pub(super) fn clear_release(&mut self) {
        if self.gate_holds() {
            self.set_gates_condition("True", "GatesPassed", "no release gate holds the change");
        }
        if let Some(release) = self.status.release.as_mut() {
            release.holding = None;
            release.canary_started_at = None;
            release.break_glass = None;
        }
    }

    /// Whether a gate holds the change now.
    pub(super) fn gate_holds(&self) -> bool {
        self.status
            .release
            .as_ref()
            .is_some_and(|r| r.holding.is_some())
    }
}
