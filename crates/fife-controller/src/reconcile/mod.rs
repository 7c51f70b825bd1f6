//! The Rollout reconcile: a pipeline of named steps, only the ends doing I/O.
//!
//! ```text
//!   observe ─▶ decide (fife-engine, pure) ─▶ record (audit, fsync) ─▶ act (apply) ─▶ report
//!   caches (API       Decision                  fail closed:            SSA children,   status,
//!   when stale)                                 no record, no act       traffic, runs   Events, metrics
//! ```
//!
//! The Rollout watch does not wake the reconcile for the controller's own status writes
//! (see [`crate::rollout_triggers`]); when a written status leads to a further decision
//! with no other change to wait for, the reconcile asks for itself again at once
//! ([`settled`]).

pub mod act;
pub mod error;
pub mod handover;
pub mod observe;
pub mod record;
pub mod release;
pub mod report;
pub mod signatures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fife_api::Rollout;
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::reconcile::act::act;
use crate::reconcile::error::ReconcileError;
use crate::reconcile::observe::observe;
use crate::reconcile::record::{append_all, decision_entries};
use crate::reconcile::report::{
    last_audit_record, publish_events, publish_warning, report_audit_failure, status_to_write,
    update_metrics, write_status,
};
use crate::runtime::compact::CompactGuard;
use crate::runtime::context::Context;

/// How often a settled Rollout is looked at again without any change.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How long a reconcile waits for the watch caches' first lists before it fails, saying
/// which watch has not listed and why.
pub const CACHE_WAIT: Duration = Duration::from_secs(5);
/// How soon a follower (or a replica that lost the lease) looks again.
pub const FOLLOWER_RETRY: Duration = Duration::from_secs(2);
/// How soon a Rollout whose children were just relabelled for this shard is looked at
/// again, should their watch events not wake it first.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(1);

/// Reconciles one Rollout.
pub async fn reconcile(
    cached: Arc<CompactGuard<Rollout>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let guard = cached.guard();
    let rollout = match &guard.0 {
        Ok(rollout) => rollout,
        Err(invalid) => {
            // One malformed object must not stop the watch; it is reported and skipped.
            tracing::warn!(error = %invalid, "skipping a Rollout that does not deserialize");
            return Ok(Action::await_change());
        }
    };
    if !ctx.leadership.is_leading() {
        return Ok(Action::requeue(FOLLOWER_RETRY));
    }
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    if let Err(detail) = ctx.caches.ready(CACHE_WAIT).await {
        return Err(ReconcileError::Cache {
            rollout: format!("{namespace}/{name}"),
            detail,
        });
    }
    let started = Instant::now();
    let result = pipeline(&ctx, rollout).await;
    ctx.metrics.reconciled(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.succeeded(&format!("{namespace}/{name}"));
    }
    result
}

async fn pipeline(ctx: &Context, cached: &Rollout) -> Result<Action, ReconcileError> {
    let namespace = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    // observe
    let Some(observation) = observe(ctx, cached).await? else {
        // Deleted: nothing about it is worth remembering.
        ctx.metrics.forget_rollout(&namespace, &name);
        ctx.forget(&format!("{namespace}/{name}"));
        return Ok(Action::await_change());
    };
    let rollout = &observation.rollout;
    if rollout.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector remove the children.
        return Ok(Action::await_change());
    }
    if !ctx.shard.selects(rollout.labels()) {
        // Moved to another shard since the cache showed it: that shard runs it from now.
        ctx.metrics.forget_rollout(&namespace, &name);
        ctx.forget(&format!("{namespace}/{name}"));
        return Ok(Action::await_change());
    }
    let key = format!("{namespace}/{name}");
    if ctx.handover_due(&key) {
        if handover::pending(&observation)
            && handover::adopt(ctx, rollout).await? == handover::Handover::Waiting
        {
            return Ok(Action::requeue(HANDOVER_WAIT));
        }
        ctx.handed_over(&key);
    }

    // decide
    let decision = fife_engine::decide(rollout, &observation.engine, jiff::Timestamp::now());

    // record: nothing is applied without its record, nothing after losing the lease, and
    // nothing once the Rollout has left this shard's cache (moved to another shard while
    // this reconcile ran).
    if !ctx.leadership.is_leading() {
        return Ok(Action::requeue(FOLLOWER_RETRY));
    }
    if !in_shard_cache(ctx, rollout) {
        return Ok(Action::await_change());
    }
    let version = rollout.resource_version().unwrap_or_default();
    let digest = events_digest(&decision);
    let records = if decision.events.is_empty() || ctx.already_recorded(&key, &version, &digest) {
        Vec::new()
    } else {
        let entries = decision_entries(&observation, &decision, &ctx.identity, chrono::Utc::now());
        let count = entries.len();
        match append_all(&ctx.audit, entries).await {
            Ok(records) => {
                for _ in 0..count {
                    ctx.metrics.audit_written();
                }
                ctx.remember_recorded(&key, &version, digest);
                crate::reconcile::release::count_gates(ctx, rollout, &decision);
                records
            }
            Err(message) => {
                ctx.metrics.audit_failed();
                let error = ReconcileError::Record {
                    rollout: key,
                    message: message.clone(),
                };
                report_audit_failure(ctx, rollout, &message).await?;
                return Err(error);
            }
        }
    };

    // act
    act(ctx, &observation, &decision).await?;

    // report
    let mut status = status_to_write(rollout, &decision);
    status.last_audit_record = last_audit_record(&records, rollout);
    let now = jiff::Timestamp::now();
    let written = write_status(ctx, rollout, &status).await;
    // The records are written and acted on whatever happens to the status write, and a
    // retry does not record them again: their Events go out now or never.
    publish_events(ctx, rollout, &records).await;
    let written = written?;
    update_metrics(ctx, rollout, &decision);

    if written && !settled(rollout, &observation, &decision, &status, now) {
        return Ok(Action::requeue(Duration::ZERO));
    }
    Ok(match decision.requeue_after {
        Some(after) => Action::requeue(after.min(RESYNC)),
        None => Action::requeue(RESYNC),
    })
}

/// True when this shard's Rollout cache still holds the Rollout with this shard's label.
fn in_shard_cache(ctx: &Context, rollout: &Rollout) -> bool {
    let reference = kube::runtime::reflector::ObjectRef::new(&rollout.name_any())
        .within(&rollout.namespace().unwrap_or_default());
    ctx.caches.rollouts.get(&reference).is_some_and(|cached| {
        ctx.shard.selects(
            kube::Resource::meta(&*cached)
                .labels
                .as_ref()
                .unwrap_or(&Default::default()),
        )
    })
}

/// True when deciding again from the status just written, with the same children and
/// runs, would change nothing: no event, no other status, children, weights or analyses.
/// Then only a change elsewhere (a child, a run, the spec, a timer) can move the Rollout,
/// and each of those wakes the reconcile; otherwise it has to run again now, because its
/// own status write does not wake it. Pure.
pub fn settled(
    rollout: &Rollout,
    observation: &observe::Observation,
    decision: &fife_engine::Decision,
    written: &fife_api::RolloutStatus,
    now: jiff::Timestamp,
) -> bool {
    let mut next = rollout.clone();
    next.status = Some(written.clone());
    let again = fife_engine::decide(&next, &observation.engine, now);
    again.events.is_empty()
        && again.children == decision.children
        && again.weights == decision.weights
        && again.analysis == decision.analysis
        && {
            let mut status = status_to_write(&next, &again);
            status.last_audit_record = last_audit_record(&[], &next);
            crate::build::status_diff::status_patch(Some(written), &status).is_none()
        }
}

/// What identifies a decision's events: their actions, steps and messages.
fn events_digest(decision: &fife_engine::Decision) -> String {
    decision
        .events
        .iter()
        .map(|e| format!("{:?}|{:?}|{}", e.action, e.step_index, e.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Per-object exponential backoff (bounded), with the failing step counted and shown.
pub fn error_policy(
    cached: Arc<CompactGuard<Rollout>>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_failed(error.step());
    let guard = cached.guard();
    let Ok(rollout) = &guard.0 else {
        return Action::await_change();
    };
    let key = crate::reconcile::observe::rollout_key(rollout);
    let delay = ctx.backoff(&key);
    tracing::warn!(rollout = %key, step = error.step(), retry_in = ?delay, error = %error, "reconcile failed");
    // Events are published off the error path: error_policy itself cannot wait.
    let rollout = rollout.clone();
    let (reason, note) = (error.reason(), error.to_string());
    tokio::spawn(async move { publish_warning(&ctx, &rollout, reason, &note).await });
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_engine::{EventAction, RolloutEvent};

    fn decision(events: &[(EventAction, Option<i32>, &str)]) -> fife_engine::Decision {
        let none = fife_engine::decide(
            &crate::build::children::tests::mk_rollout("web:1"),
            &fife_engine::Observed::default(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let events = events
            .iter()
            .map(|&(action, step_index, message)| RolloutEvent {
                action,
                message: message.into(),
                step_index,
                revision: Some("r1".into()),
                manual: None,
                gate: None,
            })
            .collect();
        fife_engine::Decision { events, ..none }
    }

    #[test]
    fn the_events_digest_tells_decisions_apart_by_action_step_and_message() {
        use EventAction::*;
        let base = events_digest(&decision(&[(StepStarted, Some(1), "step 2")]));
        assert_eq!(
            base,
            events_digest(&decision(&[(StepStarted, Some(1), "step 2")]))
        );
        for other in [
            decision(&[(PauseStarted, Some(1), "step 2")]),
            decision(&[(StepStarted, Some(2), "step 2")]),
            decision(&[(StepStarted, None, "step 2")]),
            decision(&[(StepStarted, Some(1), "step 3")]),
            decision(&[(StepStarted, Some(1), "step 2"), (Promoted, None, "")]),
            decision(&[]),
        ] {
            assert_ne!(base, events_digest(&other), "{:?}", other.events);
        }
    }

    #[test]
    fn every_failing_step_is_a_documented_metric_label() {
        use crate::analysis::error::AnalysisRunError;
        use crate::runtime::telemetry::RECONCILE_STEPS;
        let kube_error = || kube::Error::LinesCodecMaxLineLengthExceeded;
        let rollout_errors = [
            ReconcileError::Observe {
                rollout: "r".into(),
                source: kube_error(),
            },
            ReconcileError::Record {
                rollout: "r".into(),
                message: "m".into(),
            },
            ReconcileError::Cache {
                rollout: "r".into(),
                detail: "d".into(),
            },
            ReconcileError::Act {
                rollout: "r".into(),
                what: "w".into(),
                source: kube_error(),
            },
            ReconcileError::Report {
                object: "r".into(),
                source: kube_error(),
            },
        ];
        let run_errors = [
            AnalysisRunError::Read {
                run: "r".into(),
                source: kube_error(),
            },
            AnalysisRunError::Record {
                run: "r".into(),
                message: "m".into(),
            },
            AnalysisRunError::WriteStatus {
                run: "r".into(),
                source: kube_error(),
            },
        ];
        let steps = rollout_errors
            .iter()
            .map(ReconcileError::step)
            .chain(run_errors.iter().map(AnalysisRunError::step));
        for step in steps {
            assert!(RECONCILE_STEPS.contains(&step), "{step} is not documented");
        }
        assert!(
            run_errors[0]
                .to_string()
                .starts_with("reading AnalysisRun r failed")
        );
    }
}
