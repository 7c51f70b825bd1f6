//! How an audit record shows up as a Kubernetes Event on its Rollout: reason and type.
//! Pure; the controller does the API call.

use crate::chain::SealedRecord;
use crate::record::{AuditAction, Phase};

/// The two Event types Kubernetes knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An Event to publish for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEvent {
    pub reason: &'static str,
    pub type_: EventType,
    /// Human text, within the API's 1024-byte limit for an Event's note.
    pub note: String,
}

/// The largest note the Events API accepts.
const MAX_NOTE_BYTES: usize = 1024;

/// Reason and type for an action. `AnalysisCompleted` depends on the run's phase, so it is
/// passed along. `None` for records that are not worth an Event: single measurements (the
/// analysis run's status carries them; one Event each would flood the Rollout) and records
/// about the log itself.
pub fn event_reason(
    action: AuditAction,
    phase: Option<Phase>,
) -> Option<(&'static str, EventType)> {
    use EventType::{Normal, Warning};
    Some(match action {
        AuditAction::StepStarted => ("StepStarted", Normal),
        AuditAction::WeightChanged => ("WeightChanged", Normal),
        AuditAction::PauseStarted => ("RolloutPaused", Normal),
        AuditAction::PauseEnded => ("RolloutResumed", Normal),
        AuditAction::AnalysisStarted => ("AnalysisStarted", Normal),
        AuditAction::Measurement | AuditAction::RecoveredTornRecord => return None,
        AuditAction::AnalysisCompleted => match phase {
            Some(Phase::Successful) | None => ("AnalysisSucceeded", Normal),
            Some(Phase::Failed) => ("AnalysisFailed", Warning),
            Some(Phase::Error) => ("AnalysisError", Warning),
            Some(Phase::Inconclusive) => ("AnalysisInconclusive", Warning),
        },
        AuditAction::Promoted => ("RolloutPromoted", Normal),
        AuditAction::Aborted => ("RolloutAborted", Warning),
        AuditAction::RolledBack => ("RolloutRolledBack", Warning),
        AuditAction::ManualPromote => ("PromotedByUser", Normal),
        AuditAction::ManualAbort => ("AbortedByUser", Warning),
        AuditAction::ManualRetry => ("RetriedByUser", Normal),
        AuditAction::ManualPause => ("PausedByUser", Normal),
        AuditAction::ManualResume => ("ResumedByUser", Normal),
        AuditAction::GatePassed => ("ReleaseGatePassed", Normal),
        AuditAction::GateBlocked => ("ReleaseGateHolds", Normal),
        // A break-glass is an emergency someone must review: a Warning people see.
        AuditAction::GateBypassed => ("BreakGlassUsed", Warning),
        AuditAction::Deployed => ("Deployed", Normal),
    })
}

/// The Event for a sealed record, naming its seq so the Event leads to the evidence.
pub fn rollout_event(sealed: &SealedRecord) -> Option<RolloutEvent> {
    let r = &sealed.record;
    let (reason, type_) = event_reason(r.action, r.evidence.analysis_phase)?;
    let mut note = format!("{} (audit seq {}, by {})", r.reason, r.seq, r.actor.name);
    if note.len() > MAX_NOTE_BYTES {
        let mut cut = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    Some(RolloutEvent {
        reason,
        type_,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{ChainHead, seal};
    use crate::record::{Actor, AuditEntry};
    use chrono::Utc;

    #[test]
    fn outcomes_people_page_on_are_warnings() {
        for action in [
            AuditAction::Aborted,
            AuditAction::RolledBack,
            AuditAction::ManualAbort,
        ] {
            assert_eq!(
                event_reason(action, None).unwrap().1,
                EventType::Warning,
                "{action}"
            );
        }
        assert_eq!(
            event_reason(AuditAction::Promoted, None),
            Some(("RolloutPromoted", EventType::Normal))
        );
        assert_eq!(
            event_reason(AuditAction::Aborted, None).unwrap().0,
            "RolloutAborted"
        );
        assert_eq!(
            event_reason(AuditAction::AnalysisCompleted, Some(Phase::Failed)),
            Some(("AnalysisFailed", EventType::Warning))
        );
        assert_eq!(
            event_reason(AuditAction::Measurement, Some(Phase::Failed)),
            None
        );
    }

    #[test]
    fn every_reason_is_a_valid_event_reason() {
        // Event reasons are UpperCamelCase and at most 128 characters.
        for action in AuditAction::ALL {
            for phase in [
                None,
                Some(Phase::Successful),
                Some(Phase::Failed),
                Some(Phase::Error),
                Some(Phase::Inconclusive),
            ] {
                if let Some((reason, _)) = event_reason(action, phase) {
                    assert!(
                        reason.len() <= 128 && reason.chars().all(|c| c.is_ascii_alphanumeric())
                    );
                    assert!(reason.starts_with(|c: char| c.is_ascii_uppercase()));
                }
            }
        }
    }

    #[test]
    fn note_names_the_seq_and_fits_the_limit() {
        let e = AuditEntry::new(
            Utc::now(),
            AuditAction::Aborted,
            Actor::controller("fife"),
            "é".repeat(600),
        );
        let sealed = seal(e, &ChainHead::genesis(), None);
        let event = rollout_event(&sealed).unwrap();
        assert!(event.note.len() <= MAX_NOTE_BYTES);
        assert!(event.note.ends_with("..."));
        let short = seal(
            AuditEntry::new(Utc::now(), AuditAction::Promoted, Actor::user("ann"), "ok"),
            &ChainHead::genesis(),
            None,
        );
        assert_eq!(
            rollout_event(&short).unwrap().note,
            "ok (audit seq 1, by ann)"
        );
    }
}
