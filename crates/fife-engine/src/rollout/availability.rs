//! Availability and the progress deadline: whether the children run what was asked with
//! every pod ready, the `Available` condition that times it, and the abort when a step
//! stays unready past `progressDeadlineSeconds`.

use super::*;

/// The condition whose `lastTransitionTime` is the progress-deadline clock: `True` when every
/// child runs its desired revision with all desired pods ready, `False` since the moment
/// that stopped being so (a new step's weight, a crashing pod).
pub const AVAILABLE_CONDITION: &str = "Available";

impl<'a> Machine<'a> {
    pub(super) fn ready(
        &self,
        desired: &Option<DesiredChild>,
        observed: &Option<ObservedChild>,
    ) -> bool {
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

    pub(super) fn children_ready(&self) -> bool {
        self.ready(&self.children.stable, &self.observed.stable)
            && self.ready(&self.children.canary, &self.observed.canary)
            && self.ready(&self.children.baseline, &self.observed.baseline)
    }

    pub(super) fn available_condition(&self) -> Option<&Condition> {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == AVAILABLE_CONDITION)
    }

    /// Record whether the desired children are ready; the transition time only moves when
    /// readiness changes, so status stays still while nothing happens.
    pub(super) fn update_available(&mut self) {
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

    pub(super) fn reset_available_clock(&mut self) {
        let now = Time(self.now);
        for c in &mut self.status.conditions {
            if c.type_ == AVAILABLE_CONDITION && c.status == "False" {
                c.last_transition_time = now.clone();
            }
        }
    }

    pub(super) fn deadline_millis(&self) -> i64 {
        i64::from(self.spec.progress_deadline_seconds.max(1)) * 1000
    }

    pub(super) fn deadline_passed(&self, condition: &Condition) -> bool {
        condition.status == "False"
            && self.elapsed_millis(&condition.last_transition_time) > self.deadline_millis()
    }

    /// A canary whose children are not ready within `progressDeadlineSeconds` aborts.
    pub(super) fn check_progress_deadline(&mut self) -> bool {
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

    pub(super) fn check_progress_deadline_wakeup(&mut self) {
        if let Some(condition) = self.available_condition().cloned()
            && condition.status == "False"
        {
            let left =
                self.deadline_millis() - self.elapsed_millis(&condition.last_transition_time) + 1;
            self.wake_after_millis(left);
        }
    }
}
