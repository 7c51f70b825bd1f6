//! Report: the last pipeline step. Writes the Rollout's status (only when it changed, apart
//! from timestamps), publishes an Event per audit record (reason from `fife-audit`), and
//! updates the rollout metrics.

use fife_api::rollout::{ready_label, step_label};
use fife_api::{Rollout, RolloutPhase, RolloutStatus};
use fife_audit::{EventType, SealedRecord, rollout_event};
use fife_engine::{Decision, EventAction};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::error::ReconcileError;
use crate::observe::Observation;
use crate::roles::FIELD_MANAGER;
use crate::status_diff::status_patch;

/// The condition type that says whether the audit log takes records.
pub const AUDIT_CONDITION: &str = "AuditLogWritable";

/// The status to write: the engine's, plus what only observation knows (replica counts,
/// the selector for the scale subresource, `kubectl get` labels).
pub fn status_to_write(observation: &Observation, decision: &Decision) -> RolloutStatus {
    let rollout = &observation.rollout;
    let mut status = decision.status.clone();
    let children = [
        observation.engine.stable.as_ref(),
        observation.engine.canary.as_ref(),
        observation.engine.baseline.as_ref(),
    ];
    status.replicas = children.iter().flatten().map(|c| c.replicas).sum();
    status.ready_replicas = children.iter().flatten().map(|c| c.ready_replicas).sum();
    status.ready_label = Some(ready_label(status.ready_replicas, rollout.spec.replicas));
    if status.step_label.is_none() {
        status.step_label = status
            .current_step_index
            .map(|i| step_label(i, rollout.spec.steps().len()));
    }
    if status.selector.is_none() {
        status.selector = selector_string(rollout);
    }
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
/// timestamps. Server-side apply, with apiVersion and kind.
pub async fn write_status(
    ctx: &Context,
    rollout: &Rollout,
    desired: &RolloutStatus,
) -> Result<bool, ReconcileError> {
    let Some(status) = status_patch(rollout.status.as_ref(), desired) else {
        return Ok(false);
    };
    let api: Api<Rollout> =
        Api::namespaced(ctx.client.clone(), &rollout.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": fife_api::API_VERSION,
        "kind": "Rollout",
        "status": status,
    });
    api.patch_status(
        &rollout.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| ReconcileError::Report {
        object: format!("Rollout {}", crate::observe::rollout_key(rollout)),
        source,
    })?;
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
            tracing::warn!(error = %e, rollout = %crate::observe::rollout_key(rollout), "cannot publish an Event");
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

/// Rollout gauges and outcome counters.
pub fn update_metrics(ctx: &Context, rollout: &Rollout, decision: &Decision) {
    let status = &decision.status;
    let phase = status.phase.map_or("Unknown", phase_name);
    ctx.metrics.set_rollout(
        &rollout.namespace().unwrap_or_default(),
        &rollout.name_any(),
        phase,
        decision.weights.canary,
        status.current_step_index.unwrap_or(0),
    );
    for event in &decision.events {
        match event.action {
            EventAction::Promoted | EventAction::Healthy => ctx.metrics.promoted("steps"),
            EventAction::ManualPromoteFull | EventAction::ManualPromote => {}
            EventAction::Aborted => ctx.metrics.aborted("analysis"),
            EventAction::ManualAbort => ctx.metrics.aborted("manual"),
            EventAction::ProgressDeadlineExceeded => ctx.metrics.aborted("progressDeadline"),
            EventAction::RolledBack => {
                ctx.metrics
                    .rolled_back(if status.abort { "abort" } else { "spec" })
            }
            _ => {}
        }
    }
}

pub fn phase_name(phase: RolloutPhase) -> &'static str {
    match phase {
        RolloutPhase::Progressing => "Progressing",
        RolloutPhase::Paused => "Paused",
        RolloutPhase::Healthy => "Healthy",
        RolloutPhase::Degraded => "Degraded",
    }
}

fn selector_string(rollout: &Rollout) -> Option<String> {
    let labels = rollout.spec.selector.as_ref()?.match_labels.as_ref()?;
    Some(
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
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
