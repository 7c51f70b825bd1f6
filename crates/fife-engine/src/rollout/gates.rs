//! What holds a canary back: a person's pause, an analysis that failed, and an analysis
//! that ended Inconclusive, which pauses the rollout until a person promotes or aborts.
//! The Inconclusive pause is made in one place, [`Machine::pause_for_inconclusive`].

use super::*;

impl<'a> Machine<'a> {
    /// `spec.paused`: hold everything where it is.
    pub(super) fn user_pause(&mut self) -> bool {
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
    pub(super) fn check_failed_analyses(&mut self) -> bool {
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
                let message = format!(
                    "{kind} analysis {name} ended {}{detail}",
                    wire_name(&run.phase)
                );
                self.event(EventAction::AnalysisCompleted, message.clone());
                self.abort(message);
                return true;
            }
        }
        false
    }

    pub(super) fn observed_run(
        &self,
        kind: &AnalysisKind,
        name: &str,
    ) -> Option<&'a ObservedAnalysis> {
        let observed = match kind {
            AnalysisKind::Step { .. } => &self.observed.step_analysis,
            AnalysisKind::Background => &self.observed.background_analysis,
        };
        observed.as_ref().filter(|o| o.name == name)
    }

    pub(super) fn run_name(&self, kind: &AnalysisKind) -> String {
        analysis_run_name_for_attempt(
            &self.name,
            self.status.canary_revision.as_deref().unwrap_or_default(),
            self.status.retries,
            kind,
        )
    }

    /// Start (or, after a restart, re-request) the background analysis once its step is reached.
    pub(super) fn background_analysis(&mut self) {
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

    pub(super) fn has_pause(&self, reason: PauseReason) -> bool {
        self.status
            .pause_conditions
            .iter()
            .any(|p| p.reason == reason)
    }

    pub(super) fn pause(&mut self, reason: PauseReason, message: String) {
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

    /// After the last step, a background analysis must end Successful (or be accepted by a
    /// person) before the canary becomes stable. `Some(by_person)` when the gate is open.
    pub(super) fn background_gate(&mut self) -> Option<bool> {
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
                self.pause_for_inconclusive(
                    &format!("background analysis {name}"),
                    &format!("all steps done; background analysis {name}"),
                );
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
    pub(super) fn background_inconclusive(&mut self) -> bool {
        let Some(name) = self.status.background_analysis_run.clone() else {
            return false;
        };
        let inconclusive = self
            .observed_run(&AnalysisKind::Background, &name)
            .is_some_and(|r| r.phase == AnalysisPhase::Inconclusive);
        if !inconclusive || self.status.accepted_analysis_runs.contains(&name) {
            return false;
        }
        let run = format!("background analysis {name}");
        self.pause_for_inconclusive(&run, &run);
        true
    }

    /// An Inconclusive analysis no person has accepted yet: recorded once, the rollout
    /// paused until a person promotes or aborts. `run` names it in the record and the pause
    /// ("step 3: analysis X"), `progress` in the status message ("step 3/5: analysis X").
    pub(super) fn pause_for_inconclusive(&mut self, run: &str, progress: &str) {
        if !self.has_pause(PauseReason::InconclusiveAnalysis) {
            self.event(
                EventAction::AnalysisCompleted,
                format!("{run} Inconclusive"),
            );
        }
        self.pause(
            PauseReason::InconclusiveAnalysis,
            format!("{run} is Inconclusive: a person decides (promote or abort)"),
        );
        self.status.controller_pause = true;
        self.say(format!("{progress} is Inconclusive: promote or abort"));
    }

    /// A person promoted past an Inconclusive analysis: the Inconclusive run (step or
    /// background) stops gating this attempt, and the pause it made ends.
    pub(super) fn accept_inconclusive_runs(&mut self) {
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
    }
}

/// `t` rounded up to a whole second: the precision a Kubernetes `Time` keeps on the wire.
pub(super) fn ceil_to_second(t: jiff::Timestamp) -> jiff::Timestamp {
    if t.subsec_nanosecond() == 0 {
        t
    } else {
        jiff::Timestamp::from_second(t.as_second() + 1).unwrap_or(t)
    }
}
