//! Report: the last pipeline step. Writes the Rollout's status (only when it changed, apart
//! from timestamps), publishes an Event per audit record (reason from `fife-audit`), and
//! updates the rollout metrics.

use fife_api::wire::wire_name;
use fife_api::{Rollout, RolloutStatus};
use fife_audit::{EventType, SealedRecord, rollout_event};
use fife_engine::{Decision, EventAction};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::build::status_diff::status_patch;
use crate::reconcile::error::ReconcileError;
use crate::runtime::context::{Context, FIELD_MANAGER};

/// The condition type that says whether the audit log takes records.
pub const AUDIT_CONDITION: &str = "AuditLogWritable";

/// `status.lastAuditRecord`: the newest of `records` (this reconcile's), else the one the
/// status already names. Pure.
pub fn last_audit_record(
    records: &[SealedRecord],
    rollout: &Rollout,
) -> Option<fife_api::rollout::AuditRecordRef> {
    match records.last() {
        Some(sealed) => Some(fife_api::rollout::AuditRecordRef {
            seq: sealed.record.seq,
            hash: sealed.record.hash.clone(),
        }),
        None => rollout
            .status
            .as_ref()
            .and_then(|s| s.last_audit_record.clone()),
    }
}

/// The status to write: the engine's (which carries the summary fields, see
/// [`fife_engine::summarize`]), plus the condition that says the audit log takes records,
/// which only a reconcile that got past the record step knows.
pub fn status_to_write(rollout: &Rollout, decision: &Decision) -> RolloutStatus {
    let mut status = decision.status.clone();
    set_condition(
        &mut status.conditions,
        AUDIT_CONDITION,
        true,
        "Written",
        "every decision so far is in the audit log",
        rollout.metadata.generation,
    );
    status
}

/// Writes `desired` as the Rollout's status if it differs from `current` in more than
/// timestamps. Server-side apply, with apiVersion and kind. The written version is
/// remembered as the newest one seen (see [`crate::reconcile::observe`]); `true` when a
/// write was sent.
pub async fn write_status(
    ctx: &Context,
    rollout: &Rollout,
    desired: &RolloutStatus,
) -> Result<bool, ReconcileError> {
    let Some(status) = status_patch(rollout.status.as_ref(), desired) else {
        return Ok(false);
    };
    let key = crate::reconcile::observe::rollout_key(rollout);
    let api: Api<Rollout> =
        Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
    let failed = |source| ReconcileError::Report {
        object: format!(
            "Rollout {}",
            crate::reconcile::observe::rollout_key(rollout)
        ),
        source,
    };
    // A gate that stops holding removes a whole object with required fields; removed
    // explicitly, so no server leaves an empty `holding: {}` behind after the apply.
    let was_held = rollout
        .status
        .as_ref()
        .and_then(|s| s.release.as_ref())
        .is_some_and(|r| r.holding.is_some());
    if was_held && status.release.as_ref().is_none_or(|r| r.holding.is_none()) {
        let clear = json!({ "status": { "release": { "holding": null } } });
        api.patch_status(
            &rollout.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&clear),
        )
        .await
        .map_err(failed)?;
    }
    let patch = json!({
        "apiVersion": fife_api::API_VERSION,
        "kind": "Rollout",
        "status": status,
    });
    let written = api
        .patch_status(
            &rollout.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(failed)?;
    ctx.remember_version(&key, &written.resource_version().unwrap_or_default());
    Ok(true)
}

/// After a failed audit append: say so in status (the only write allowed, because it
/// applies nothing) so `kubectl get` shows why the rollout does not move.
pub async fn report_audit_failure(
    ctx: &Context,
    rollout: &Rollout,
    message: &str,
) -> Result<(), ReconcileError> {
    let mut status = rollout.status.clone().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        AUDIT_CONDITION,
        false,
        "WriteFailed",
        message,
        rollout.metadata.generation,
    );
    status.message = Some(format!("not acting: {message}"));
    write_status(ctx, rollout, &status).await.map(|_| ())
}

/// Publishes one Event per record that is worth one. Best effort: the record is the
/// evidence, the Event is a convenience.
pub async fn publish_events(ctx: &Context, rollout: &Rollout, records: &[SealedRecord]) {
    let reference = rollout.object_ref(&());
    for record in records {
        let Some(event) = rollout_event(record) else {
            continue;
        };
        let published = ctx
            .recorder
            .publish(
                &Event {
                    type_: match event.type_ {
                        EventType::Normal => KubeEventType::Normal,
                        EventType::Warning => KubeEventType::Warning,
                    },
                    reason: event.reason.to_owned(),
                    note: Some(event.note),
                    action: record.record.action.as_str().to_owned(),
                    secondary: None,
                },
                &reference,
            )
            .await;
        if let Err(e) = published {
            tracing::warn!(error = %e, rollout = %crate::reconcile::observe::rollout_key(rollout), "cannot publish an Event");
        }
    }
}

/// Publishes a Warning Event, e.g. for a failed reconcile (`reason` from the failing step).
pub async fn publish_warning(ctx: &Context, rollout: &Rollout, reason: &str, note: &str) {
    let mut note = note.to_owned();
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    let _ = ctx
        .recorder
        .publish(
            &Event {
                type_: KubeEventType::Warning,
                reason: reason.to_owned(),
                note: Some(note),
                action: "Reconcile".to_owned(),
                secondary: None,
            },
            &rollout.object_ref(&()),
        )
        .await;
}

/// Rollout gauges and outcome counters. (Gate outcomes are counted with their records, in
/// [`crate::reconcile::release::count_gates`].)
pub fn update_metrics(ctx: &Context, rollout: &Rollout, decision: &Decision) {
    let status = &decision.status;
    let phase = status
        .phase
        .map_or_else(|| "Unknown".to_owned(), |p| wire_name(&p));
    let (namespace, name) = (rollout.namespace().unwrap_or_default(), rollout.name_any());
    if decision.release.is_some() {
        // Its break-glass counter exists at 0 from the first reconcile under a policy.
        ctx.metrics.governed(&namespace, &name);
    }
    ctx.metrics.set_rollout(
        &namespace,
        &name,
        &phase,
        decision.weights.canary,
        status.current_step_index.unwrap_or(0),
    );
    let was_promote_full = rollout.status.as_ref().is_some_and(|s| s.promote_full);
    for outcome in outcomes(&decision.events, was_promote_full) {
        match outcome {
            Outcome::Promoted(reason) => ctx.metrics.promoted(&namespace, &name, reason),
            Outcome::Aborted(reason) => {
                ctx.metrics.aborted(&namespace, &name, reason);
                // An abort sends all traffic back to the stable revision: a rollback.
                ctx.metrics.rolled_back(&namespace, &name, "abort");
            }
            Outcome::RolledBack => ctx.metrics.rolled_back(&namespace, &name, "spec"),
        }
    }
}

/// What a decision's events count as in the outcome counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Promoted(&'static str),
    Aborted(&'static str),
    RolledBack,
}

/// The outcomes of one decision. Pure. An abort is one `Aborted` event, preceded in the
/// same decision by what caused it (a person's request, the progress deadline, or else an
/// analysis), so the cause names the reason and the abort is counted once. The first
/// revision becoming stable (`Healthy`) is no canary promotion; the progress deadline of a
/// stable revision aborts nothing.
pub fn outcomes(events: &[fife_engine::RolloutEvent], was_promote_full: bool) -> Vec<Outcome> {
    let has = |action: EventAction| events.iter().any(|e| e.action == action);
    let by_person =
        was_promote_full || has(EventAction::ManualPromote) || has(EventAction::ManualPromoteFull);
    events
        .iter()
        .filter_map(|event| match event.action {
            EventAction::Promoted => Some(Outcome::Promoted(if by_person {
                "manual"
            } else {
                "steps"
            })),
            EventAction::Aborted => Some(Outcome::Aborted(if has(EventAction::ManualAbort) {
                "manual"
            } else if has(EventAction::ProgressDeadlineExceeded) {
                "progressDeadline"
            } else {
                "analysis"
            })),
            EventAction::RolledBack => Some(Outcome::RolledBack),
            _ => None,
        })
        .collect()
}

/// Sets a condition; its transition time changes only when its status does.
fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" };
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = Time(jiff::Timestamp::now());
        }
        c.status = status.to_owned();
        c.reason = reason.to_owned();
        c.message = message.to_owned();
        c.observed_generation = generation;
        return;
    }
    conditions.push(Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::now()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_engine::{Observed, ObservedChild, RolloutEvent};

    #[test]
    fn the_status_written_is_the_decisions_with_the_audit_condition() {
        let mut rollout = crate::build::children::tests::mk_rollout("web:1");
        rollout.metadata.generation = Some(3);
        let child = |replicas, ready_replicas| ObservedChild {
            revision: "r1".into(),
            replicas,
            ready_replicas,
            updated_replicas: replicas,
            up_to_date: true,
        };
        let observed = Observed {
            stable: Some(child(3, 2)),
            baseline: Some(child(1, 1)),
            ..Observed::default()
        };
        let decision = fife_engine::decide(&rollout, &observed, jiff::Timestamp::UNIX_EPOCH);
        let status = status_to_write(&rollout, &decision);

        let audit: Vec<_> = status
            .conditions
            .iter()
            .filter(|c| c.type_ == AUDIT_CONDITION)
            .collect();
        assert_eq!(audit.len(), 1, "{:?}", status.conditions);
        assert_eq!(
            (audit[0].status.as_str(), audit[0].observed_generation),
            ("True", Some(3))
        );
        // The summary fields are the engine's, not derived a second time here.
        assert_eq!((status.replicas, status.ready_replicas), (4, 3));
        let mut without_audit = status.clone();
        without_audit
            .conditions
            .retain(|c| c.type_ != AUDIT_CONDITION);
        assert_eq!(without_audit, decision.status);
    }

    fn events(actions: &[EventAction]) -> Vec<RolloutEvent> {
        actions
            .iter()
            .map(|&action| RolloutEvent {
                action,
                message: String::new(),
                step_index: Some(1),
                revision: None,
                manual: None,
                gate: None,
            })
            .collect()
    }

    #[test]
    fn an_abort_counts_once_under_the_reason_that_caused_it() {
        use EventAction::*;
        assert_eq!(
            outcomes(&events(&[AnalysisCompleted, Aborted]), false),
            [Outcome::Aborted("analysis")]
        );
        assert_eq!(
            outcomes(&events(&[ProgressDeadlineExceeded, Aborted]), false),
            [Outcome::Aborted("progressDeadline")]
        );
        assert_eq!(
            outcomes(&events(&[ManualAbort, Aborted]), false),
            [Outcome::Aborted("manual")]
        );
        // A stable revision past its deadline: Degraded, but nothing was aborted.
        assert!(outcomes(&events(&[ProgressDeadlineExceeded]), false).is_empty());
    }

    #[test]
    fn promotions_say_whether_a_person_promoted() {
        use EventAction::*;
        assert_eq!(
            outcomes(&events(&[StepStarted, Promoted]), false),
            [Outcome::Promoted("steps")]
        );
        assert_eq!(
            outcomes(&events(&[ManualPromote, StepStarted, Promoted]), false),
            [Outcome::Promoted("manual")]
        );
        // promote-full asked in an earlier reconcile, promoted once the canary was ready.
        assert_eq!(
            outcomes(&events(&[Promoted]), true),
            [Outcome::Promoted("manual")]
        );
        assert!(outcomes(&events(&[Healthy]), false).is_empty());
        assert_eq!(
            outcomes(&events(&[RolledBack]), false),
            [Outcome::RolledBack]
        );
    }
}
