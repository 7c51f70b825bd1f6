//! Record: the pipeline step between decide and act. Every event of the engine's decision
//! becomes one audit record, appended and fsynced before anything is applied. If the
//! append fails, the reconcile stops there (fail closed): nothing is applied that has no
//! record.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fife_api::labels::PAUSE_REQUESTED_BY;
use fife_api::{AnalysisPhase, AnalysisRun, Rollout};
use fife_audit::{
    Actor, AuditAction, AuditEntry, AuditLog, Evidence, ImageRef, MetricOutcome, Phase, RolloutRef,
    SealedRecord, StepPosition, Weights,
};
use fife_engine::{Decision, EventAction, RolloutEvent};
use kube::ResourceExt;

use crate::reconcile::observe::Observation;
use crate::reconcile::release;

/// Annotations copied into every record as `source` (commit, pull request, pipeline run).
pub use fife_api::labels::SOURCE_ANNOTATION_PREFIX;

/// The audit action an engine event is recorded as.
pub fn audit_action(action: EventAction) -> AuditAction {
    match action {
        EventAction::RolloutStarted | EventAction::StepStarted => AuditAction::StepStarted,
        EventAction::WeightChanged => AuditAction::WeightChanged,
        EventAction::PauseStarted => AuditAction::PauseStarted,
        EventAction::PauseEnded => AuditAction::PauseEnded,
        EventAction::AnalysisStarted => AuditAction::AnalysisStarted,
        EventAction::AnalysisCompleted => AuditAction::AnalysisCompleted,
        EventAction::Promoted | EventAction::Healthy => AuditAction::Promoted,
        EventAction::Aborted | EventAction::ProgressDeadlineExceeded => AuditAction::Aborted,
        EventAction::RolledBack => AuditAction::RolledBack,
        EventAction::ManualPromote | EventAction::ManualPromoteFull => AuditAction::ManualPromote,
        EventAction::ManualAbort => AuditAction::ManualAbort,
        EventAction::ManualRetry => AuditAction::ManualRetry,
        EventAction::ManualPause => AuditAction::ManualPause,
        EventAction::ManualResume => AuditAction::ManualResume,
        EventAction::GatePassed => AuditAction::GatePassed,
        EventAction::GateBlocked => AuditAction::GateBlocked,
        EventAction::GateBypassed => AuditAction::GateBypassed,
    }
}

/// The audit entries for a decision, one per event, in the engine's order. Pure.
pub fn decision_entries(
    observation: &Observation,
    decision: &Decision,
    identity: &str,
    now: DateTime<Utc>,
) -> Vec<AuditEntry> {
    let rollout = &observation.rollout;
    let steps = u32::try_from(rollout.spec.steps().len()).unwrap_or(u32::MAX);
    let release = observation.engine.release.as_ref();
    let mut entries: Vec<AuditEntry> = Vec::new();
    for event in &decision.events {
        let entry = {
            let action = audit_action(event.action);
            let actor = actor(event, rollout, identity);
            let mut entry = rollout_entry(rollout, now, action, actor, event.message.clone());
            entry.revision = event
                .revision
                .clone()
                .or_else(|| decision.status.canary_revision.clone());
            entry.evidence = Evidence {
                step: event.step_index.and_then(|i| {
                    Some(StepPosition {
                        index: u32::try_from(i).ok()?,
                        count: steps,
                    })
                }),
                weights: Some(Weights {
                    stable: decision.weights.stable.max(0) as u32,
                    canary: decision.weights.canary.max(0) as u32,
                    baseline: decision.weights.baseline.max(0) as u32,
                }),
                ..Evidence::default()
            };
            if matches!(
                event.action,
                EventAction::AnalysisStarted
                    | EventAction::AnalysisCompleted
                    | EventAction::Aborted
            ) && let Some(run) = run_for(observation, decision)
            {
                entry.evidence.analysis_run = Some(run.name_any());
                if event.action != EventAction::AnalysisStarted {
                    fill_analysis_outcome(&mut entry.evidence, run);
                }
            }
            if event.action == EventAction::ProgressDeadlineExceeded {
                entry.evidence.extra = Some(serde_json::json!({
                    "progressDeadlineSeconds": rollout.spec.progress_deadline_seconds
                }));
            }
            if let Some(gate) = &event.gate {
                entry.evidence.extra = Some(serde_json::json!({
                    "gate": release::gate_evidence(gate, release)
                }));
            }
            entry
        };
        let revision = entry.revision.clone().unwrap_or_default();
        entries.push(entry);
        // A promotion under a release policy is followed by its deploy record.
        if matches!(event.action, EventAction::Promoted | EventAction::Healthy)
            && let Some(deploy) =
                release::deploy_entry(rollout, decision, release, &revision, identity, now)
        {
            entries.push(deploy);
        }
    }
    entries
}

/// An entry about `rollout` with its identity, generation, images and source annotations.
pub fn rollout_entry(
    rollout: &Rollout,
    now: DateTime<Utc>,
    action: AuditAction,
    actor: Actor,
    reason: String,
) -> AuditEntry {
    let mut entry = AuditEntry::new(now, action, actor, reason);
    entry.rollout = Some(RolloutRef {
        namespace: rollout.namespace().unwrap_or_default(),
        name: rollout.name_any(),
        uid: rollout.uid().unwrap_or_default(),
    });
    entry.generation = rollout.metadata.generation;
    entry.images = images(rollout);
    entry.source = source_annotations(rollout);
    entry
}

/// Who an event is by: the person named by a manual request or by the pause annotation,
/// else the controller.
fn actor(event: &RolloutEvent, rollout: &Rollout, identity: &str) -> Actor {
    match &event.manual {
        Some(manual) => Actor::user(
            manual
                .requested_by
                .clone()
                .unwrap_or_else(|| format!("unknown user (request {})", manual.request_id)),
        ),
        None if matches!(
            event.action,
            EventAction::ManualPause | EventAction::ManualResume
        ) =>
        {
            // spec.paused set without the annotation (kubectl edit, a GitOps sync): a person
            // did it, but the object does not say who.
            Actor::user(
                rollout
                    .annotations()
                    .get(PAUSE_REQUESTED_BY)
                    .filter(|who| !who.trim().is_empty())
                    .cloned()
                    .unwrap_or_else(|| {
                        format!("unknown user (spec.paused without {PAUSE_REQUESTED_BY})")
                    }),
            )
        }
        None => Actor::controller(identity),
    }
}

/// The run an analysis event is about: the step run, else the background run.
fn run_for<'a>(observation: &'a Observation, decision: &Decision) -> Option<&'a AnalysisRun> {
    let _ = decision;
    observation
        .step_run
        .as_ref()
        .filter(|r| r.status.as_ref().and_then(|s| s.phase).is_some())
        .or(observation.background_run.as_ref())
}

fn fill_analysis_outcome(evidence: &mut Evidence, run: &AnalysisRun) {
    let Some(status) = &run.status else { return };
    evidence.analysis_phase = status.phase.and_then(finished_phase);
    evidence.metrics = status
        .metric_results
        .iter()
        .filter_map(|m| {
            let limits = run.spec.metrics.iter().find(|x| x.name == m.name);
            Some(MetricOutcome {
                metric: m.name.clone(),
                phase: finished_phase(m.phase)?,
                successful: m.successful.max(0) as u32,
                failed: m.failed.max(0) as u32,
                inconclusive: m.inconclusive.max(0) as u32,
                error: m.error.max(0) as u32,
                failure_limit: limits.map(|l| l.failure_limit.max(0) as u32),
                inconclusive_limit: limits.map(|l| l.inconclusive_limit.max(0) as u32),
            })
        })
        .collect();
}

/// The audit phase of a finished analysis phase.
pub fn finished_phase(phase: AnalysisPhase) -> Option<Phase> {
    match phase {
        AnalysisPhase::Successful => Some(Phase::Successful),
        AnalysisPhase::Inconclusive => Some(Phase::Inconclusive),
        AnalysisPhase::Error => Some(Phase::Error),
        AnalysisPhase::Failed => Some(Phase::Failed),
        AnalysisPhase::Pending | AnalysisPhase::Running => None,
    }
}

/// Container images of the Rollout's template, with the digest when pinned (`@sha256:…`).
pub fn images(rollout: &Rollout) -> Vec<ImageRef> {
    let Some(spec) = rollout.spec.template.as_ref().and_then(|t| t.spec.as_ref()) else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| {
            let image = c.image.clone()?;
            let digest = image.split_once('@').map(|(_, d)| d.to_owned());
            Some(ImageRef {
                container: c.name.clone(),
                image,
                digest,
            })
        })
        .collect()
}

fn source_annotations(rollout: &Rollout) -> BTreeMap<String, String> {
    rollout
        .annotations()
        .iter()
        .filter(|(k, _)| {
            k.starts_with(SOURCE_ANNOTATION_PREFIX) || *k == "kubernetes.io/change-cause"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Appends `entries` in order, each fsynced before the next. Stops at the first failure.
pub async fn append_all(
    audit: &Arc<AuditLog>,
    entries: Vec<AuditEntry>,
) -> Result<Vec<SealedRecord>, String> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let audit = Arc::clone(audit);
    // fsync blocks; keep it off the reactor threads.
    tokio::task::spawn_blocking(move || {
        entries
            .into_iter()
            .map(|e| audit.append(e).map_err(|e| e.to_string()))
            .collect()
    })
    .await
    .map_err(|e| format!("the audit writer task failed: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::children::tests::mk_rollout;
    use fife_api::{RolloutStatus, TrafficWeights};
    use fife_engine::{DesiredChildren, ManualActor, Observed};

    fn observation(rollout: Rollout) -> Observation {
        Observation {
            rollout,
            workload: None,
            children: Default::default(),
            step_run: None,
            background_run: None,
            engine: Observed::default(),
        }
    }

    fn decision(events: Vec<RolloutEvent>) -> Decision {
        Decision {
            status: RolloutStatus {
                canary_revision: Some("rev2".into()),
                ..RolloutStatus::default()
            },
            children: DesiredChildren {
                stable: None,
                canary: None,
                baseline: None,
            },
            weights: TrafficWeights {
                canary: 10,
                baseline: 10,
                stable: 80,
            },
            header_routes: Vec::new(),
            analysis: Vec::new(),
            requeue_after: None,
            events,
            release: None,
            workload_replicas: None,
        }
    }

    fn event(action: EventAction, manual: Option<ManualActor>) -> RolloutEvent {
        RolloutEvent {
            action,
            message: "why".into(),
            step_index: Some(1),
            revision: None,
            manual,
            gate: None,
        }
    }

    #[test]
    fn one_entry_per_event_with_rollout_images_step_and_weights() {
        let mut rollout = mk_rollout("web@sha256:abcd");
        rollout.metadata.generation = Some(4);
        rollout.metadata.annotations = Some(BTreeMap::from([
            ("source.fife.dev/commit".into(), "0123abc".into()),
            ("unrelated".into(), "x".into()),
        ]));
        let d = decision(vec![
            event(EventAction::StepStarted, None),
            event(EventAction::WeightChanged, None),
        ]);
        let entries = decision_entries(&observation(rollout), &d, "fife-0", Utc::now());
        assert_eq!(entries.len(), 2);
        let e = &entries[1];
        assert_eq!(e.action, AuditAction::WeightChanged);
        assert_eq!(e.actor, Actor::controller("fife-0"));
        assert_eq!(e.generation, Some(4));
        assert_eq!(e.revision.as_deref(), Some("rev2"));
        assert_eq!(e.rollout.as_ref().unwrap().uid, "uid-1");
        assert_eq!(e.images[0].digest.as_deref(), Some("sha256:abcd"));
        assert_eq!(e.source.len(), 1);
        assert_eq!(e.evidence.step, Some(StepPosition { index: 1, count: 0 }));
        assert_eq!(e.evidence.weights.unwrap().canary, 10);
    }

    #[test]
    fn a_manual_event_names_the_person() {
        let manual = ManualActor {
            requested_by: Some("ann@example.com".into()),
            request_id: "r1".into(),
            reason: None,
        };
        let d = decision(vec![event(EventAction::ManualPromote, Some(manual))]);
        let entries = decision_entries(&observation(mk_rollout("web:1")), &d, "fife-0", Utc::now());
        assert_eq!(entries[0].actor, Actor::user("ann@example.com"));
        assert_eq!(entries[0].action, AuditAction::ManualPromote);
    }

    #[test]
    fn a_pause_or_resume_names_the_person_from_the_annotation() {
        let mut rollout = mk_rollout("web:1");
        rollout.metadata.annotations = Some(BTreeMap::from([(
            PAUSE_REQUESTED_BY.into(),
            "bob@example.com".into(),
        )]));
        let d = decision(vec![
            event(EventAction::ManualPause, None),
            event(EventAction::ManualResume, None),
            event(EventAction::StepStarted, None),
        ]);
        let entries = decision_entries(&observation(rollout), &d, "fife-0", Utc::now());
        assert_eq!(entries[0].actor, Actor::user("bob@example.com"));
        assert_eq!(entries[0].action, AuditAction::ManualPause);
        assert_eq!(entries[1].actor, Actor::user("bob@example.com"));
        assert_eq!(entries[1].action, AuditAction::ManualResume);
        assert_eq!(entries[2].actor, Actor::controller("fife-0"));

        let unnamed = decision(vec![event(EventAction::ManualPause, None)]);
        let entries = decision_entries(
            &observation(mk_rollout("web:1")),
            &unnamed,
            "fife-0",
            Utc::now(),
        );
        assert!(
            entries[0].actor.name.starts_with("unknown user"),
            "{:?}",
            entries[0].actor
        );
    }

    #[test]
    fn the_deadline_and_healthy_events_map_to_abort_and_promotion() {
        assert_eq!(
            audit_action(EventAction::ProgressDeadlineExceeded),
            AuditAction::Aborted
        );
        assert_eq!(audit_action(EventAction::Healthy), AuditAction::Promoted);
        assert_eq!(
            audit_action(EventAction::ManualPromoteFull),
            AuditAction::ManualPromote
        );
    }

    #[tokio::test]
    async fn appended_records_are_durable_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (log, _) =
            AuditLog::open_file(&path, None, Actor::controller("t"), Utc::now()).unwrap();
        let log = Arc::new(log);
        let d = decision(vec![event(EventAction::StepStarted, None)]);
        let entries = decision_entries(&observation(mk_rollout("web:1")), &d, "t", Utc::now());
        let sealed = append_all(&log, entries.clone()).await.unwrap();
        assert_eq!(sealed[0].record.seq, 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }
}
