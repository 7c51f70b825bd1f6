//! Decides whether a Rollout's status needs writing. A status that differs only in
//! timestamps is not a change: writing it would wake the watch, reconcile again, and write
//! again (a reconcile storm). Conditions keep their `lastTransitionTime` while their
//! status stays the same, as the API conventions ask. Pure.

use fife_api::RolloutStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The status to write, or `None` when `desired` says nothing `current` does not.
pub fn status_patch(
    current: Option<&RolloutStatus>,
    desired: &RolloutStatus,
) -> Option<RolloutStatus> {
    let mut desired = desired.clone();
    if let Some(current) = current {
        carry_transition_times(&current.conditions, &mut desired.conditions);
        if timeless(current) == timeless(&desired) {
            return None;
        }
    }
    Some(desired)
}

/// Keeps the transition time of every condition whose status did not change.
fn carry_transition_times(current: &[Condition], desired: &mut [Condition]) {
    for condition in desired {
        if let Some(old) = current
            .iter()
            .find(|c| c.type_ == condition.type_ && c.status == condition.status)
        {
            condition.last_transition_time = old.last_transition_time.clone();
        }
    }
}

/// The status with the fields that only say "when this was computed" cleared.
fn timeless(status: &RolloutStatus) -> RolloutStatus {
    let epoch = Time(jiff::Timestamp::UNIX_EPOCH);
    let mut s = status.clone();
    for c in &mut s.conditions {
        c.last_transition_time = epoch.clone();
    }
    if let Some(handled) = s.last_manual_action.as_mut() {
        handled.handled_at = epoch;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::RolloutPhase;

    fn at(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn condition(status: &str, time: i64) -> Condition {
        Condition {
            type_: "Progressing".into(),
            status: status.into(),
            reason: "StepStarted".into(),
            message: "m".into(),
            observed_generation: Some(1),
            last_transition_time: at(time),
        }
    }

    fn status(phase: RolloutPhase, cond: Condition) -> RolloutStatus {
        RolloutStatus {
            phase: Some(phase),
            conditions: vec![cond],
            ..RolloutStatus::default()
        }
    }

    #[test]
    fn a_new_timestamp_alone_is_not_a_change() {
        let current = status(RolloutPhase::Progressing, condition("True", 100));
        let desired = status(RolloutPhase::Progressing, condition("True", 200));
        assert_eq!(status_patch(Some(&current), &desired), None);
    }

    #[test]
    fn a_real_change_is_written_with_unchanged_conditions_keeping_their_time() {
        let current = status(RolloutPhase::Progressing, condition("True", 100));
        let desired = status(RolloutPhase::Paused, condition("True", 200));
        let patch = status_patch(Some(&current), &desired).unwrap();
        assert_eq!(patch.phase, Some(RolloutPhase::Paused));
        assert_eq!(patch.conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn a_condition_that_flips_gets_its_new_time() {
        let current = status(RolloutPhase::Progressing, condition("True", 100));
        let desired = status(RolloutPhase::Progressing, condition("False", 200));
        let patch = status_patch(Some(&current), &desired).unwrap();
        assert_eq!(patch.conditions[0].last_transition_time, at(200));
    }

    #[test]
    fn a_first_status_is_always_written() {
        let desired = status(RolloutPhase::Progressing, condition("True", 1));
        assert!(status_patch(None, &desired).is_some());
    }
}
