//! Handover: a Rollout moved into this shard (its [`SHARD_LABEL`] changed) arrives with
//! its Deployments, Services and AnalysisRuns still labelled for the shard it left, so
//! this shard's watches do not show them. Deciding from caches that lack them would
//! rebuild children that exist and start analyses that are running; so before anything
//! is decided they are relabelled for this shard, and their watch events wake the
//! reconcile again with them cached. The Rollout's status, read from the API, is where the
//! new shard picks up: the step, the pause and the running analysis.
//!
//! ```text
//!   Rollout enters the cache with a status (runtime: arrived)
//!     ─▶ status names children or runs the caches lack ─▶ LIST fife.dev/rollout=<name>
//!     ─▶ owned by this Rollout, labelled for another shard ─▶ patch the label:
//!        runs, Services, canary and baseline, the stable Deployment last
//!     ─▶ wait until the caches hold every owned Deployment and run ─▶ decide as usual
//! ```
//!
//! Only a Rollout that entered this replica's cache with a history is checked (marked by
//! the Rollout watch, see [`has_history`]): a cache a moment behind the controller's own
//! writes, which looks the same, costs no request. The mark stays until the caches hold
//! the children, so a handover cut short (a crash, a lost lease) is taken up again. The
//! stable Deployment goes last: one watch delivers the Deployments in the order they were
//! relabelled, so a cached stable means the canary and baseline are cached too, and a
//! replica that starts afresh after a handover cut short finds the stable missing and
//! checks again. Runs named in the status are checked by name; Services are compared
//! before an apply in act and need no wait.

use std::collections::BTreeMap;

use fife_api::labels::{ROLE_LABEL, Role, SHARD_LABEL, rollout_selector};
use fife_api::{AnalysisRun, Rollout};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::reconcile::error::ReconcileError;
use crate::reconcile::observe::{Observation, rollout_key};
use crate::runtime::context::{Context, FIELD_MANAGER};
use crate::runtime::shard::Shard;

/// True when the Rollout's status says it has children or runs: when it enters a cache
/// with this, it was run before, by another shard or an earlier run of this replica. Pure.
pub fn has_history(rollout: &Rollout) -> bool {
    rollout.status.as_ref().is_some_and(|status| {
        status.stable_revision.is_some()
            || status.current_analysis_run.is_some()
            || status.background_analysis_run.is_some()
    })
}

/// True when the Rollout's status names a stable Deployment or an AnalysisRun that the
/// caches do not hold. Pure.
pub fn pending(observation: &Observation) -> bool {
    let Some(status) = observation.rollout.status.as_ref() else {
        return false;
    };
    (status.stable_revision.is_some() && observation.children.stable.is_none())
        || (status.current_analysis_run.is_some() && observation.step_run.is_none())
        || (status.background_analysis_run.is_some() && observation.background_run.is_none())
}

/// One object to relabel: its kind (for the order and messages) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Relabel {
    /// Runs first, then Services, then the canary and baseline, the stable last.
    pub order: u8,
    pub kind: &'static str,
    pub name: String,
}

/// True when `meta` names `rollout_uid` as its controlling owner.
fn owned(rollout_uid: &str, meta: &kube::core::ObjectMeta) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == rollout_uid)
}

/// Of a Rollout's labelled objects, those it owns that another shard watches, in the
/// order they are relabelled. Pure.
pub fn to_relabel<'a>(
    rollout_uid: &str,
    shard: &Shard,
    objects: impl IntoIterator<Item = (&'static str, &'a kube::core::ObjectMeta)>,
) -> Vec<Relabel> {
    let mut relabel: Vec<Relabel> = objects
        .into_iter()
        .filter(|(_, meta)| {
            let labels = meta.labels.clone().unwrap_or_default();
            owned(rollout_uid, meta) && !shard.selects(&labels)
        })
        .map(|(kind, meta)| {
            let stable = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(ROLE_LABEL))
                .is_some_and(|role| role == Role::Stable.as_str());
            let order = match kind {
                "AnalysisRun" => 0,
                "Service" => 1,
                _ if stable => 3,
                _ => 2,
            };
            Relabel {
                order,
                kind,
                name: meta.name.clone().unwrap_or_default(),
            }
        })
        .collect();
    relabel.sort();
    relabel
}

/// Where a handover stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handover {
    /// The caches hold every Deployment and run the Rollout owns: decide as usual.
    Complete,
    /// Objects were relabelled, or the watches have not delivered them yet: look again
    /// when they do.
    Waiting,
}

/// Relabels for this shard what the Rollout owns and another shard watches, and says
/// whether the caches hold all of it yet.
pub async fn adopt(ctx: &Context, rollout: &Rollout) -> Result<Handover, ReconcileError> {
    let namespace = rollout.namespace().unwrap_or_default();
    let key = rollout_key(rollout);
    let uid = rollout.uid().unwrap_or_default();
    let observe_failed = |source| ReconcileError::Observe {
        rollout: key.clone(),
        source,
    };
    let lp = ListParams::default().labels(&rollout_selector(&rollout.name_any()));
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let runs: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed_deployments = deployments
        .list_metadata(&lp)
        .await
        .map_err(observe_failed)?;
    let listed_services = services.list_metadata(&lp).await.map_err(observe_failed)?;
    let listed_runs = runs.list_metadata(&lp).await.map_err(observe_failed)?;
    let objects = listed_deployments
        .items
        .iter()
        .map(|d| ("Deployment", &d.metadata))
        .chain(
            listed_services
                .items
                .iter()
                .map(|s| ("Service", &s.metadata)),
        )
        .chain(
            listed_runs
                .items
                .iter()
                .map(|r| ("AnalysisRun", &r.metadata)),
        );
    let relabel = to_relabel(&uid, &ctx.shard, objects);
    // What observe reads from the caches: until they hold it, deciding would take a child
    // or run that exists for missing.
    let uncached = listed_deployments
        .items
        .iter()
        .filter(|d| owned(&uid, &d.metadata))
        .any(|d| !ctx.caches.has_deployment(&namespace, &d.name_any()))
        || listed_runs
            .items
            .iter()
            .filter(|r| owned(&uid, &r.metadata))
            .any(|r| {
                let reference = ObjectRef::new(&r.name_any()).within(&namespace);
                ctx.caches.runs.get(&reference).is_none()
            });
    if relabel.is_empty() {
        return Ok(if uncached {
            Handover::Waiting
        } else {
            Handover::Complete
        });
    }
    let labels = BTreeMap::from([(
        SHARD_LABEL,
        ctx.shard
            .key()
            .map_or(serde_json::Value::Null, |k| json!(k)),
    )]);
    let patch = json!({ "metadata": { "labels": labels } });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    for object in &relabel {
        let act_failed = |source| ReconcileError::Act {
            rollout: key.clone(),
            what: format!(
                "relabelling {} {namespace}/{} for shard {}",
                object.kind, object.name, ctx.shard
            ),
            source,
        };
        let patch = Patch::Merge(&patch);
        let result = match object.kind {
            "AnalysisRun" => patch_labels(&runs, &object.name, &params, &patch).await,
            "Service" => patch_labels(&services, &object.name, &params, &patch).await,
            _ => patch_labels(&deployments, &object.name, &params, &patch).await,
        };
        result.map_err(act_failed)?;
    }
    tracing::info!(
        rollout = %key,
        shard = %ctx.shard,
        relabelled = relabel.len(),
        "took over a Rollout moved from another shard"
    );
    Ok(Handover::Waiting)
}

async fn patch_labels<K>(
    api: &Api<K>,
    name: &str,
    params: &PatchParams,
    patch: &Patch<&serde_json::Value>,
) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.patch_metadata(name, params, patch).await {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing left to hand over.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(
        name: &str,
        role: Option<&str>,
        shard: Option<&str>,
        owner: &str,
    ) -> kube::core::ObjectMeta {
        let mut labels = BTreeMap::new();
        if let Some(role) = role {
            labels.insert(ROLE_LABEL.to_owned(), role.to_owned());
        }
        if let Some(shard) = shard {
            labels.insert(SHARD_LABEL.to_owned(), shard.to_owned());
        }
        kube::core::ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                controller: Some(true),
                uid: owner.into(),
                ..OwnerReference::default()
            }]),
            ..kube::core::ObjectMeta::default()
        }
    }

    #[test]
    fn what_another_shard_watches_is_relabelled_runs_first_and_the_stable_last() {
        let b = Shard::from_key(Some("b")).unwrap();
        let stable = meta("web-stable", Some("stable"), None, "u1");
        let canary = meta("web-canary", Some("canary"), None, "u1");
        let service = meta("web-canary", Some("canary"), Some("a"), "u1");
        let run = meta("web-run-1", None, None, "u1");
        let mine = meta("web-baseline", Some("baseline"), Some("b"), "u1");
        let foreign = meta("web-other", Some("canary"), None, "u2");
        let objects = [
            ("Deployment", &stable),
            ("Deployment", &canary),
            ("Service", &service),
            ("AnalysisRun", &run),
            ("Deployment", &mine),
            ("Deployment", &foreign),
        ];
        let order: Vec<_> = to_relabel("u1", &b, objects)
            .into_iter()
            .map(|r| format!("{} {}", r.kind, r.name))
            .collect();
        assert_eq!(
            order,
            [
                "AnalysisRun web-run-1",
                "Service web-canary",
                "Deployment web-canary",
                "Deployment web-stable"
            ]
        );
        // Back to the default shard: what carries a key is relabelled.
        let to_default = to_relabel("u1", &Shard::Default, objects);
        assert_eq!(
            to_default
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["web-canary", "web-baseline"]
        );
    }

    #[test]
    fn a_rollout_with_a_history_is_pending_until_the_caches_hold_what_its_status_names() {
        let mut rollout = crate::build::children::tests::mk_rollout("web:1");
        let mut observation = Observation {
            rollout: rollout.clone(),
            workload: None,
            children: crate::build::children::ExistingChildren::default(),
            step_run: None,
            background_run: None,
            engine: fife_engine::Observed::default(),
        };
        assert!(!has_history(&rollout), "new: nothing to hand over");
        assert!(!pending(&observation));

        rollout.status = Some(fife_api::RolloutStatus {
            stable_revision: Some("r1".into()),
            current_analysis_run: Some("web-r2-1".into()),
            ..fife_api::RolloutStatus::default()
        });
        observation.rollout = rollout.clone();
        assert!(has_history(&rollout));
        assert!(
            pending(&observation),
            "neither the stable nor the run cached"
        );
        observation.children.stable = Some(Deployment::default());
        assert!(pending(&observation), "the run is not cached");
        observation.step_run = Some(AnalysisRun::new("web-r2-1", Default::default()));
        assert!(!pending(&observation));
    }
}
