//! Walking the steps: `setWeight`, `pause` (bake windows and indefinite pauses) and
//! `analysis`, then promotion at the end or the abort that sends traffic back to stable.

use super::*;

impl<'a> Machine<'a> {
    /// Move through as many steps as the observations allow.
    pub(super) fn step_through(&mut self) -> StepOutcome {
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
                // Both take effect through the decision's weights and header routes.
                CanaryStep::SetWeight(_) | CanaryStep::SetHeaderRoute(_) => self.advance(),
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
                            self.pause_for_inconclusive(
                                &format!("step {}: analysis {name}", index + 1),
                                &format!(
                                    "step {}/{}: analysis {name}",
                                    index + 1,
                                    self.step_count()
                                ),
                            );
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

    pub(super) fn enter_step(&mut self, index: i32) {
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

    pub(super) fn advance(&mut self) {
        self.status
            .pause_conditions
            .retain(|p| p.reason == PauseReason::UserPause);
        self.status.controller_pause = false;
        self.status.current_analysis_run = None;
        let next = self.index() + 1;
        self.enter_step(next.min(self.step_count()));
    }

    pub(super) fn promote(&mut self, by_person: bool) {
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

    pub(super) fn abort(&mut self, reason: String) {
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
    pub(super) fn aborted(&mut self) {
        let step = self.weights_of_index(self.index());
        let (_, canary, baseline) = self.replicas_of(step);
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
    pub(super) fn stop_analyses(&mut self) {
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

    pub(super) fn clear_canary_state(&mut self) {
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
}
