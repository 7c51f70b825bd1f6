//! Builds the Deployments a Rollout runs, `<name>-stable`, `<name>-canary` and
//! `<name>-baseline`, from the replica counts and revisions the engine decided. Pure: the
//! existing Deployments come in as arguments, the built objects go out for `act` to apply.
//!
//! ```text
//!  spec.template ──(revision = spec's hash)──▶ canary, or stable on a first deploy
//!  <name>-stable's template ──(stable revision)──▶ stable, baseline
//! ```
//!
//! Once `spec.template` changes, the Rollout no longer holds the stable revision's pod
//! template, so it is read back from the Deployment that runs it.
//!
//! Each Deployment's selector is the Rollout's selector plus `fife.dev/role`. The revision
//! is a label of the Deployment and of its pods but not part of the selector: a selector is
//! immutable, and keeping the revision out of it lets `<name>-stable` move to a new
//! revision with the Deployment controller's own rolling update (no moment without stable
//! pods) instead of being deleted and recreated.

use std::collections::BTreeMap;

use fife_api::Rollout;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use fife_api::labels::{REVISION_LABEL, ROLE_LABEL, ROLLOUT_LABEL, Role, carry_shard_label};

/// Why a child could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(
        "Rollout {rollout} has no pod template (spec.template); add one, or leave the Rollout inert"
    )]
    NoTemplate { rollout: String },
    #[error(
        "Rollout {rollout} has no metadata.uid yet, so its children cannot name it as owner; \
         this resolves once the API server has stored it"
    )]
    NoUid { rollout: String },
    #[error(
        "the pod template of revision {revision} of Rollout {rollout} is gone: spec.template is \
         at revision {spec_revision} and no Deployment of the Rollout runs {revision}; restore \
         the old template in spec.template, or abort and retry the rollout"
    )]
    RevisionTemplateMissing {
        rollout: String,
        revision: String,
        spec_revision: String,
    },
}

/// The Deployments of one Rollout that exist in the cluster, by role.
#[derive(Debug, Clone, Default)]
pub struct ExistingChildren {
    pub stable: Option<Deployment>,
    pub canary: Option<Deployment>,
    pub baseline: Option<Deployment>,
}

impl ExistingChildren {
    pub fn get(&self, role: Role) -> Option<&Deployment> {
        match role {
            Role::Stable => self.stable.as_ref(),
            Role::Canary => self.canary.as_ref(),
            Role::Baseline => self.baseline.as_ref(),
        }
    }

    pub fn set(&mut self, role: Role, deployment: Deployment) {
        match role {
            Role::Stable => self.stable = Some(deployment),
            Role::Canary => self.canary = Some(deployment),
            Role::Baseline => self.baseline = Some(deployment),
        }
    }
}

/// The revision a Deployment runs, from its `fife.dev/revision` label.
pub fn deployment_revision(deployment: &Deployment) -> Option<&str> {
    deployment.labels().get(REVISION_LABEL).map(String::as_str)
}

/// The pod template of `revision`: the Rollout's own when `revision` is the spec's, else
/// the template of a Deployment that already runs it (stable first: it is the one that
/// survives a whole rollout).
pub fn template_for_revision(
    rollout: &Rollout,
    spec_revision: &str,
    revision: &str,
    existing: &ExistingChildren,
) -> Result<PodTemplateSpec, BuildError> {
    if revision == spec_revision {
        return rollout
            .spec
            .template
            .clone()
            .ok_or_else(|| BuildError::NoTemplate {
                rollout: qualified_name(rollout),
            });
    }
    [Role::Stable, Role::Baseline, Role::Canary]
        .into_iter()
        .filter_map(|role| existing.get(role))
        .find(|d| deployment_revision(d) == Some(revision))
        .and_then(|d| d.spec.as_ref()?.template.clone().into())
        .map(without_fife_labels)
        .ok_or_else(|| BuildError::RevisionTemplateMissing {
            rollout: qualified_name(rollout),
            revision: revision.to_owned(),
            spec_revision: spec_revision.to_owned(),
        })
}

/// The Deployment for `role` running `revision` with `replicas` pods.
pub fn build_deployment(
    rollout: &Rollout,
    role: Role,
    revision: &str,
    replicas: i32,
    template: &PodTemplateSpec,
) -> Result<Deployment, BuildError> {
    let name = rollout.name_any();
    let owner = owner_reference(rollout)?;
    let mut labels = child_labels(rollout, role);
    labels.insert(REVISION_LABEL.to_owned(), revision.to_owned());

    let mut template = without_fife_labels(template.clone());
    let pod_meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    let pod_labels = pod_meta.labels.get_or_insert_with(BTreeMap::new);
    pod_labels.insert(ROLE_LABEL.to_owned(), role.as_str().to_owned());
    pod_labels.insert(REVISION_LABEL.to_owned(), revision.to_owned());
    pod_labels.insert(ROLLOUT_LABEL.to_owned(), name.clone());

    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(role.child_name(&name)),
            namespace: rollout.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas.max(0)),
            selector: role_selector(rollout, role),
            template,
            progress_deadline_seconds: Some(rollout.spec.progress_deadline_seconds),
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

/// The same Deployment scaled to zero: its revision and template are kept, so a retry or a
/// rollback can scale it up again without the old template.
pub fn scaled_down(rollout: &Rollout, role: Role, existing: &Deployment) -> Option<Deployment> {
    let revision = deployment_revision(existing)?;
    let template = existing.spec.as_ref()?.template.clone();
    build_deployment(rollout, role, revision, 0, &template).ok()
}

/// The Rollout's selector with the role added.
pub fn role_selector(rollout: &Rollout, role: Role) -> LabelSelector {
    let mut selector = rollout.spec.selector.clone().unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(ROLE_LABEL.to_owned(), role.as_str().to_owned());
    selector
}

/// Labels on every child object: the Rollout's name, the role and the Rollout's shard.
pub fn child_labels(rollout: &Rollout, role: Role) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (ROLLOUT_LABEL.to_owned(), rollout.name_any()),
        (ROLE_LABEL.to_owned(), role.as_str().to_owned()),
    ]);
    carry_shard_label(rollout.labels(), &mut labels);
    labels
}

/// `controller: true` so `kubectl get` and the garbage collector know who owns the child.
pub fn owner_reference(rollout: &Rollout) -> Result<OwnerReference, BuildError> {
    rollout
        .controller_owner_ref(&())
        .ok_or_else(|| BuildError::NoUid {
            rollout: qualified_name(rollout),
        })
}

/// `namespace/name` for messages.
pub fn qualified_name<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// A template read back from a Deployment carries the role and revision of that
/// Deployment; they are set afresh for the role it is reused in.
fn without_fife_labels(mut template: PodTemplateSpec) -> PodTemplateSpec {
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(ROLE_LABEL);
        labels.remove(REVISION_LABEL);
        labels.remove(ROLLOUT_LABEL);
    }
    template
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use fife_api::rollout::{CanaryStrategy, RolloutStrategy};
    use fife_api::{RolloutSpec, rollout::Policy};
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    pub(crate) fn mk_template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ports: Some(vec![ContainerPort {
                        container_port: 8080,
                        name: Some("http".into()),
                        ..ContainerPort::default()
                    }]),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    pub(crate) fn mk_rollout(image: &str) -> Rollout {
        let mut rollout = Rollout::new(
            "web",
            RolloutSpec {
                replicas: 10,
                selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                    ..LabelSelector::default()
                }),
                template: Some(mk_template(image)),
                workload_ref: None,
                strategy: RolloutStrategy {
                    canary: CanaryStrategy::default(),
                    blue_green: None,
                },
                paused: false,
                manual_action: None,
                progress_deadline_seconds: 600,
                revision_history_limit: 10,
                policy: Policy::default(),
            },
        );
        rollout.metadata.namespace = Some("shop".into());
        rollout.metadata.uid = Some("uid-1".into());
        rollout
    }

    fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .clone()
            .unwrap()
    }

    #[test]
    fn canary_deployment_carries_role_revision_owner_and_selector() {
        let rollout = mk_rollout("web:2");
        let template = rollout.spec.template.clone().unwrap();
        let d = build_deployment(&rollout, Role::Canary, "abc", 3, &template).unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("web-canary"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("shop"));
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        let selector = spec.selector.match_labels.clone().unwrap();
        assert_eq!(selector.get("app").map(String::as_str), Some("web"));
        assert_eq!(selector.get(ROLE_LABEL).map(String::as_str), Some("canary"));
        let labels = pod_labels(&d);
        assert_eq!(labels.get(ROLE_LABEL).map(String::as_str), Some("canary"));
        assert_eq!(labels.get(REVISION_LABEL).map(String::as_str), Some("abc"));
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        // The selector must select the pods the template makes.
        assert!(selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
        assert_eq!(deployment_revision(&d), Some("abc"));
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.kind, "Rollout");
        assert_eq!(owner.uid, "uid-1");
    }

    #[test]
    fn a_rollout_without_uid_cannot_own_children() {
        let mut rollout = mk_rollout("web:1");
        rollout.metadata.uid = None;
        let template = rollout.spec.template.clone().unwrap();
        let err = build_deployment(&rollout, Role::Stable, "a", 1, &template).unwrap_err();
        assert!(matches!(err, BuildError::NoUid { .. }), "{err}");
    }

    /// A Rollout whose spec moved on to `web:2` while `<name>-stable` still runs `web:1`
    /// at revision `rev1`.
    fn moved_on_from_stable() -> (Rollout, ExistingChildren) {
        let old = mk_rollout("web:1");
        let stable = build_deployment(
            &old,
            Role::Stable,
            "rev1",
            10,
            &old.spec.template.clone().unwrap(),
        )
        .unwrap();
        let existing = ExistingChildren {
            stable: Some(stable),
            ..ExistingChildren::default()
        };
        (mk_rollout("web:2"), existing)
    }

    #[test]
    fn stable_template_comes_from_the_stable_deployment_once_the_spec_moved_on() {
        let (new, existing) = moved_on_from_stable();
        let template = template_for_revision(&new, "rev2", "rev1", &existing).unwrap();
        let image = template.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("web:1"));
        // The role labels of the Deployment it came from are not carried over.
        let labels = template.metadata.unwrap().labels.unwrap();
        assert!(!labels.contains_key(ROLE_LABEL));

        let canary = template_for_revision(&new, "rev2", "rev2", &existing).unwrap();
        assert_eq!(
            canary.spec.unwrap().containers[0].image.as_deref(),
            Some("web:2")
        );
    }

    #[test]
    fn baseline_built_from_the_stable_template_is_labelled_baseline() {
        let (new, existing) = moved_on_from_stable();
        let template = template_for_revision(&new, "rev2", "rev1", &existing).unwrap();
        let baseline = build_deployment(&new, Role::Baseline, "rev1", 1, &template).unwrap();
        let labels = pod_labels(&baseline);
        assert_eq!(labels.get(ROLE_LABEL).map(String::as_str), Some("baseline"));
        assert_eq!(labels.get(REVISION_LABEL).map(String::as_str), Some("rev1"));
        assert_eq!(baseline.metadata.name.as_deref(), Some("web-baseline"));
    }

    #[test]
    fn a_lost_stable_template_is_an_error_naming_both_revisions() {
        let new = mk_rollout("web:2");
        let err =
            template_for_revision(&new, "rev2", "rev1", &ExistingChildren::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("rev1") && text.contains("rev2"), "{text}");
    }

    #[test]
    fn scaling_down_keeps_revision_and_template() {
        let rollout = mk_rollout("web:1");
        let d = build_deployment(
            &rollout,
            Role::Canary,
            "rev9",
            4,
            &rollout.spec.template.clone().unwrap(),
        )
        .unwrap();
        let down = scaled_down(&mk_rollout("web:3"), Role::Canary, &d).unwrap();
        assert_eq!(down.spec.as_ref().unwrap().replicas, Some(0));
        assert_eq!(deployment_revision(&down), Some("rev9"));
        let spec = down.spec.unwrap();
        assert_eq!(
            spec.template.spec.unwrap().containers[0].image.as_deref(),
            Some("web:1")
        );
    }
}
