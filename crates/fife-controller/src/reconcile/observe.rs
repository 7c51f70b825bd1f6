//! Observe: the first pipeline step. Reads the Rollout afresh (never a possibly stale
//! cached copy, so a decision is never taken twice from an old status), its Deployments
//! and its AnalysisRuns, and turns them into the engine's `Observed`.

use fife_api::{AnalysisPhase, AnalysisRun, Rollout};
use fife_engine::{Observed, ObservedAnalysis, ObservedChild};
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
    pub rollout: Rollout,
    pub children: ExistingChildren,
    pub step_run: Option<AnalysisRun>,
    pub background_run: Option<AnalysisRun>,
    pub engine: Observed,
}

/// Reads what the reconcile needs. `None` when the Rollout is gone.
pub async fn observe(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Observation>, ReconcileError> {
    let fail = |source| ReconcileError::Observe {
        rollout: format!("{namespace}/{name}"),
        source,
    };
    let rollouts: Api<Rollout> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(rollout) = rollouts.get_opt(name).await.map_err(fail)? else {
        return Ok(None);
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let mut children = ExistingChildren::default();
    for role in Role::ALL {
        if let Some(d) = deployments
            .get_opt(&role.child_name(name))
            .await
            .map_err(fail)?
        {
            // A Deployment of that name that the Rollout does not own is left alone.
            if owned_by(&d, &rollout) {
                children.set(role, d);
            }
        }
    }
    let runs: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), namespace);
    let status = rollout.status.clone().unwrap_or_default();
    let step_run = match &status.current_analysis_run {
        Some(run) => runs.get_opt(run).await.map_err(fail)?,
        None => None,
    };
    let background_run = match &status.background_analysis_run {
        Some(run) => runs.get_opt(run).await.map_err(fail)?,
        None => None,
    };
    let engine = Observed {
        stable: children.stable.as_ref().and_then(observed_child),
        canary: children.canary.as_ref().and_then(observed_child),
        baseline: children.baseline.as_ref().and_then(observed_child),
        step_analysis: step_run.as_ref().map(observed_analysis),
        background_analysis: background_run.as_ref().map(observed_analysis),
        release: observe_release(ctx, &rollout, namespace, children.stable.as_ref())
            .await
            .map_err(fail)?,
    };
    Ok(Some(Observation {
        rollout,
        children,
        step_run,
        background_run,
        engine,
    }))
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
