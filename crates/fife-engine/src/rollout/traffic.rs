//! Traffic and pods: the weights a step asks for, the pods each role needs for them, and
//! the children to run with and without a canary. A promotion never drops capacity: the
//! old canary and baseline keep their share until the new stable is ready.

use super::*;

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

impl<'a> Machine<'a> {
    /// Only the stable runs. Right after a promotion the previous canary and baseline keep
    /// their pods and traffic until the stable is ready at the new revision, so promoting
    /// never drops capacity.
    pub(super) fn steady_state(&mut self) {
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
            let (_, canary, baseline) = self.replicas_of(previous);
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

    pub(super) fn keep_observed(
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

    /// Children and weights for the current step.
    pub(super) fn canary_children(&mut self) {
        let weights = weights_for(weight_at(self.steps(), self.index()), self.baseline());
        self.set_children(weights);
    }

    pub(super) fn set_children(&mut self, weights: TrafficWeights) {
        let (stable, canary, baseline) = self.replicas_of(weights);
        let weights = self.switch_when_ready(weights);
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

    pub(super) fn weights_of_index(&self, index: i32) -> TrafficWeights {
        weights_for(weight_at(self.steps(), index), self.baseline())
    }
}
