//! Observe: the first pipeline step. Turns the Rollout, its Deployments and its
//! AnalysisRuns into the engine's `Observed`, reading them from the watch caches
//! ([`crate::runtime::caches`]), and the API only where a stale copy could act wrongly.
//!
//! Where a cached copy is safe and where it is not:
//! - **The Rollout** carries the decision's state (step, revisions, pause, abort). Deciding
//!   from a copy older than this replica's own last status write would take a decision a
//!   second time (a second audit record, a step advanced twice). So the cached Rollout is
//!   used only when its resourceVersion is the newest one this replica has seen from the
//!   API, by a read or as the answer to its own status write
//!   ([`crate::runtime::context::ObjectMemory::is_current`]); otherwise it is read from the
//!   API, once. A change by someone else that the cache has not shown yet is the same race
//!   as a change just after a read, and its watch event reconciles again.
//! - **Deployments** come from the cache. A stale child is indistinguishable from a slow
//!   Deployment controller: its generation, revision label and counts are older, and the
//!   engine waits for the revision and the counts it wants (`observedGeneration` at the
//!   generation), so it never promotes or advances on a stale child. What act applies to
//!   a child is a server-side apply of the whole desired object, forced, which sets the
//!   same fields whatever the cache said; a stale "unchanged" only delays the apply until
//!   the watch event of the newer version reconciles again.
//! - **AnalysisRuns** come from the cache. A stale run is an older phase (the rollout
//!   waits); a run missing from the cache is created with a create that answers 409 when
//!   it exists, never twice.
//! - **Services** (in act) come from the cache, compared before a forced apply, as children.
//! - **The routers' objects** (HTTPRoute, VirtualService, DestinationRule, the stable and
//!   canary Ingresses) are read from the API in act: they are shared with other owners, and
//!   their lists are written with a resourceVersion precondition, which must be the server's.
//! - **The Deployment `spec.workloadRef` names** comes from the Deployment cache once the
//!   Rollout has labelled it (`fife.dev/rollout`, in act), and from the API until then: the
//!   cache holds only labelled Deployments. Its template is the Rollout's; a stale one is a
//!   template change seen a moment later, which its watch event reconciles again.

use fife_api::{AnalysisPhase, AnalysisRun, Rollout};
use fife_engine::{Observed, ObservedAnalysis, ObservedChild, ObservedWorkload};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt};

use crate::build::children::{ExistingChildren, deployment_revision, qualified_name};
use crate::reconcile::error::ReconcileError;
use crate::reconcile::release::observe_release;
use crate::runtime::context::Context;
use fife_api::labels::Role;

/// Everything observed for one reconcile.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The Rollout as the engine runs it ([`fife_engine::rollout::resolve`]): the builders
    /// read its `spec.template` and canary steps whether it declares a template or a
    /// `workloadRef`, a canary or a blue-green strategy.
    pub rollout: Rollout,
    /// The Deployment `spec.workloadRef` names, when it exists.
    pub workload: Option<Deployment>,
    pub children: ExistingChildren,
    pub step_run: Option<AnalysisRun>,
    pub background_run: Option<AnalysisRun>,
    pub engine: Observed,
}

/// Reads what the reconcile needs, starting from the cached Rollout. `None` when the
/// Rollout is gone.
pub async fn observe(
    ctx: &Context,
    cached: &Rollout,
) -> Result<Option<Observation>, ReconcileError> {
    let namespace = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let key = format!("{namespace}/{name}");
    let version = cached.resource_version().unwrap_or_default();
    let rollout = if ctx.is_current(&key, &version) {
        cached.clone()
    } else {
        let rollouts: Api<Rollout> = Api::namespaced(ctx.client.clone(), &namespace);
        let read = rollouts
            .get_opt(&name)
            .await
            .map_err(|source| ReconcileError::Observe {
                rollout: key.clone(),
                source,
            })?;
        let Some(fresh) = read else {
            return Ok(None);
        };
        ctx.remember_version(&key, &fresh.resource_version().unwrap_or_default());
        fresh
    };
    observe_children(ctx, rollout).await.map(Some)
}

/// The Rollout's children and runs, from the caches, and the release policy that governs
/// it (read from the API: see [`crate::reconcile::release`]).
async fn observe_children(ctx: &Context, rollout: Rollout) -> Result<Observation, ReconcileError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let name = rollout.name_any();
    let fail = |source| ReconcileError::Observe {
        rollout: format!("{namespace}/{name}"),
        source,
    };
    let mut children = ExistingChildren::default();
    for role in Role::ALL {
        if let Some(d) = ctx.caches.deployment(&namespace, &role.child_name(&name)) {
            // A Deployment of that name that the Rollout does not own is left alone.
            if owned_by(&d, &rollout) {
                children.set(role, d);
            }
        }
    }
    let status = rollout.status.clone().unwrap_or_default();
    let run = |name: &Option<String>| {
        name.as_ref()
            .and_then(|run| ctx.caches.run(&namespace, run))
    };
    let step_run = run(&status.current_analysis_run);
    let background_run = run(&status.background_analysis_run);
    let workload = observe_workload(ctx, &rollout, &namespace)
        .await
        .map_err(fail)?;
    let mut engine = Observed {
        workload: workload.as_ref().map(observed_workload),
        stable: children.stable.as_ref().and_then(observed_child),
        canary: children.canary.as_ref().and_then(observed_child),
        baseline: children.baseline.as_ref().and_then(observed_child),
        step_analysis: step_run.as_ref().map(observed_analysis),
        background_analysis: background_run.as_ref().map(observed_analysis),
        release: None,
    };
    // Resolved before the release policy is read: its gates look at the template's images.
    let rollout = fife_engine::rollout::resolve(&rollout, &engine).into_owned();
    engine.release = observe_release(ctx, &rollout, &namespace, children.stable.as_ref())
        .await
        .map_err(fail)?;
    Ok(Observation {
        rollout,
        workload,
        children,
        step_run,
        background_run,
        engine,
    })
}

/// The Deployment `spec.workloadRef` names: from the cache, or from the API while the
/// Rollout has not labelled it yet.
async fn observe_workload(
    ctx: &Context,
    rollout: &Rollout,
    namespace: &str,
) -> Result<Option<Deployment>, kube::Error> {
    let Some(reference) = &rollout.spec.workload_ref else {
        return Ok(None);
    };
    if let Some(cached) = ctx.caches.deployment(namespace, &reference.name) {
        return Ok(Some(cached));
    }
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    api.get_opt(&reference.name).await
}

/// The referenced Deployment as the engine sees it.
pub fn observed_workload(deployment: &Deployment) -> ObservedWorkload {
    let spec = deployment.spec.clone().unwrap_or_default();
    ObservedWorkload {
        template: spec.template,
        selector: Some(spec.selector),
        replicas: spec.replicas.unwrap_or(1),
    }
}

fn owned_by(deployment: &Deployment, rollout: &Rollout) -> bool {
    let uid = rollout.uid();
    deployment
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

/// A Deployment as the engine sees it.
pub fn observed_child(deployment: &Deployment) -> Option<ObservedChild> {
    let revision = deployment_revision(deployment)?.to_owned();
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    Some(ObservedChild {
        revision,
        replicas: status.replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        up_to_date: status.observed_generation.unwrap_or(0) >= generation,
    })
}

/// An AnalysisRun as the engine sees it; one without status has not started.
pub fn observed_analysis(run: &AnalysisRun) -> ObservedAnalysis {
    let status = run.status.clone().unwrap_or_default();
    ObservedAnalysis {
        name: run.name_any(),
        phase: status.phase.unwrap_or(AnalysisPhase::Pending),
        message: status.message,
    }
}

/// `namespace/name` of a Rollout, for messages and backoff keys.
pub fn rollout_key(rollout: &Rollout) -> String {
    qualified_name(rollout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::children::build_deployment;
    use crate::build::children::tests::mk_rollout;
    use k8s_openapi::api::apps::v1::DeploymentStatus;

    #[test]
    fn a_deployment_becomes_an_observed_child() {
        let rollout = mk_rollout("web:1");
        let mut d = build_deployment(
            &rollout,
            Role::Stable,
            "rev1",
            3,
            &rollout.spec.template.clone().unwrap(),
        )
        .unwrap();
        d.metadata.generation = Some(2);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            replicas: Some(3),
            ready_replicas: Some(2),
            updated_replicas: Some(3),
            ..DeploymentStatus::default()
        });
        let child = observed_child(&d).unwrap();
        assert_eq!(child.revision, "rev1");
        assert_eq!(
            (child.replicas, child.ready_replicas, child.updated_replicas),
            (3, 2, 3)
        );
        assert!(!child.up_to_date, "generation 2 not yet observed");
        assert!(owned_by(&d, &rollout));
    }
}
