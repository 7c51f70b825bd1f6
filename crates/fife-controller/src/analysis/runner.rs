//! Runs AnalysisRuns: on each wake-up asks the engine which metrics are due, measures them
//! (concurrently), records each measurement in the audit log, folds the outcomes into the
//! run's status with the engine, writes the status and sleeps until the next one is due.
//! The look, the measuring and the fold are [`crate::analysis_step`], which `fife replay`
//! runs on a simulated clock.
//! The Rollout's reconcile sees the run's phase through its `.owns()` watch.
//!
//! ```text
//!   progress(spec, status, now) ─▶ due metrics ─▶ credentials ─▶ measure ─▶ audit (Measurement) ─▶ record ─▶ status
//! ```

use std::sync::Arc;
use std::time::Duration;

use fife_api::wire::wire_name;
use fife_api::{AnalysisRun, AnalysisRunStatus};
use fife_audit::{Actor, AuditAction, AuditEntry, Evidence, RolloutRef};
use kube::api::{Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::analysis::credentials;
use crate::analysis::error::AnalysisRunError;
use crate::analysis::measure::TakenMeasurement;
use crate::analysis::step as analysis_step;
use crate::reconcile::record::append_all;
use crate::runtime::context::{Context, FIELD_MANAGER};

/// The shortest sleep between two looks at a running analysis.
const MIN_WAKEUP: Duration = Duration::from_millis(200);

/// Reconciles one AnalysisRun.
pub async fn reconcile_run(
    guard: Arc<DeserializeGuard<AnalysisRun>>,
    ctx: Arc<Context>,
) -> Result<Action, AnalysisRunError> {
    let result = run_once(&guard, &ctx).await;
    if result.is_ok()
        && let Ok(run) = &guard.0
    {
        ctx.succeeded(&run_key(run));
    }
    result
}

fn run_key(run: &AnalysisRun) -> String {
    format!(
        "run:{}/{}",
        run.namespace().unwrap_or_default(),
        run.name_any()
    )
}

async fn run_once(
    guard: &DeserializeGuard<AnalysisRun>,
    ctx: &Context,
) -> Result<Action, AnalysisRunError> {
    let Ok(cached) = &guard.0 else {
        return Ok(Action::await_change());
    };
    if !ctx.leadership.is_leading() {
        return Ok(Action::requeue(crate::reconcile::FOLLOWER_RETRY));
    }
    let namespace = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let object = format!("{namespace}/{name}");
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(run) = api
        .get_opt(&name)
        .await
        .map_err(|source| AnalysisRunError::Read {
            run: object.clone(),
            source,
        })?
    else {
        ctx.forget(&run_key(cached));
        return Ok(Action::await_change());
    };
    if !ctx.shard.selects(run.labels()) {
        // Its Rollout moved to another shard, which measures it from now on.
        ctx.forget(&run_key(cached));
        return Ok(Action::await_change());
    }
    let was_completed = run
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p.is_completed());
    if was_completed {
        return Ok(Action::await_change());
    }

    let now = jiff::Timestamp::now();
    let progress = analysis_step::look(&run.spec, run.status.as_ref(), now);
    let mut status = progress.status.clone();
    let mut next_wakeup = progress.next_wakeup;
    let mut completed = progress.completed;

    if !progress.due.is_empty() && !completed {
        let measurements = analysis_step::measure_due(
            &ctx.pool,
            &run.spec,
            &progress.due,
            |provider| {
                let provider = provider.clone();
                let namespace = &namespace;
                async move { credentials::resolve(&ctx.client, namespace, &provider).await }
            },
            &status,
            now,
        )
        .await;

        // Record before the measurements can move anything.
        let entries = measurements
            .iter()
            .map(|(_, taken)| measurement_entry(&ctx.identity, &run, taken))
            .collect();
        if !ctx.leadership.is_leading() {
            return Ok(Action::requeue(crate::reconcile::FOLLOWER_RETRY));
        }
        match append_all(&ctx.audit, entries).await {
            Ok(records) => records.iter().for_each(|_| ctx.metrics.audit_written()),
            Err(message) => {
                ctx.metrics.audit_failed();
                return Err(AnalysisRunError::Record {
                    run: object,
                    message,
                });
            }
        }
        for (_, taken) in &measurements {
            ctx.metrics.measured(&wire_name(&taken.measurement.phase));
        }
        let after = analysis_step::fold(&run.spec, &status, &measurements, now);
        status = after.status;
        next_wakeup = after.next_wakeup;
        completed = after.completed;
    }

    if run.status.as_ref() != Some(&status) {
        write_run_status(&api, &name, &status, &object).await?;
    }
    if completed {
        if let Some(phase) = status.phase {
            ctx.metrics.analysis_completed(&wire_name(&phase));
        }
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(
        next_wakeup
            .unwrap_or(Duration::from_secs(10))
            .max(MIN_WAKEUP),
    ))
}

async fn write_run_status(
    api: &Api<AnalysisRun>,
    name: &str,
    status: &AnalysisRunStatus,
    object: &str,
) -> Result<(), AnalysisRunError> {
    let patch =
        json!({ "apiVersion": fife_api::API_VERSION, "kind": "AnalysisRun", "status": status });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| AnalysisRunError::WriteStatus {
        run: object.to_owned(),
        source,
    })?;
    Ok(())
}

fn measurement_entry(identity: &str, run: &AnalysisRun, taken: &TakenMeasurement) -> AuditEntry {
    let reason = format!(
        "{} measured {}{}",
        taken.evidence.metric,
        wire_name(&taken.measurement.phase),
        taken
            .measurement
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default()
    );
    let mut entry = AuditEntry::new(
        chrono::Utc::now(),
        AuditAction::Measurement,
        Actor::controller(identity),
        reason,
    );
    if let Some(r) = &run.spec.rollout {
        entry.rollout = Some(RolloutRef {
            namespace: run.namespace().unwrap_or_default(),
            name: r.name.clone(),
            uid: r.uid.clone().unwrap_or_default(),
        });
        entry.revision = r.canary_revision.clone();
    }
    entry.evidence = Evidence {
        analysis_run: Some(run.name_any()),
        measurements: vec![taken.evidence.clone()],
        ..Evidence::default()
    };
    entry
}

/// Failed run reconciles back off like Rollouts do.
pub fn run_error_policy(
    guard: Arc<DeserializeGuard<AnalysisRun>>,
    error: &AnalysisRunError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_failed(error.step());
    let Ok(run) = &guard.0 else {
        return Action::await_change();
    };
    let key = run_key(run);
    let delay = ctx.backoff(&key);
    tracing::warn!(run = %key, retry_in = ?delay, error = %error, "analysis reconcile failed");
    Action::requeue(delay)
}
