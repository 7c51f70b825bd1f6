//! The change a policy judges: one new revision of one Rollout, with what the tier rules
//! and approvals look at (labels, annotations, images, what differs from stable, who wrote
//! and applied it); which policies select it and which tier it falls in.

use std::collections::{BTreeMap, BTreeSet};

use fife_api::Rollout;
use fife_api::labels::{APPLIED_BY, SOURCE_AUTHOR};
use fife_api::release::{ReleasePolicy, Tier, TierMatch};
use fife_api::validation::image_digest;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One new revision of a Rollout, as the policy sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub namespace: String,
    pub rollout: String,
    pub rollout_uid: String,
    /// The pod-template hash of the new revision.
    pub revision: String,
    pub rollout_labels: BTreeMap<String, String>,
    pub rollout_annotations: BTreeMap<String, String>,
    pub template_labels: BTreeMap<String, String>,
    /// Container name → image, of the new template (init containers included).
    pub images: BTreeMap<String, String>,
    /// Names of the new template's init containers.
    pub init_containers: BTreeSet<String>,
    /// Container name → image of the stable revision; `None` when it is not known (first
    /// revision), in which case every container counts as changed.
    pub stable_images: Option<BTreeMap<String, String>>,
    /// The author of the change, from [`SOURCE_AUTHOR`].
    pub author: Option<String>,
    /// Who applied it, from [`APPLIED_BY`] (set under admission from `request.userInfo`).
    pub applied_by: Option<String>,
}

impl Change {
    /// The change a Rollout's current template makes over the stable images.
    pub fn of(
        rollout: &Rollout,
        revision: &str,
        stable_images: Option<BTreeMap<String, String>>,
    ) -> Change {
        let meta = &rollout.metadata;
        let annotations = meta.annotations.clone().unwrap_or_default();
        let template = rollout.spec.template.as_ref();
        let spec = template.and_then(|t| t.spec.as_ref());
        Change {
            namespace: meta.namespace.clone().unwrap_or_default(),
            rollout: meta.name.clone().unwrap_or_default(),
            rollout_uid: meta.uid.clone().unwrap_or_default(),
            revision: revision.to_owned(),
            rollout_labels: meta.labels.clone().unwrap_or_default(),
            template_labels: template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            images: spec.map(pod_images).unwrap_or_default(),
            init_containers: spec
                .and_then(|s| s.init_containers.as_ref())
                .map(|c| c.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default(),
            stable_images,
            author: annotations.get(SOURCE_AUTHOR).cloned(),
            applied_by: annotations.get(APPLIED_BY).cloned(),
            rollout_annotations: annotations,
        }
    }

    /// The `sha256:…` digests the change runs, sorted and without repeats: what approvals
    /// and break-glasses bind to.
    pub fn digests(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .images
            .values()
            .filter_map(|image| image_digest(image))
            .map(str::to_owned)
            .collect();
        set.into_iter().collect()
    }

    /// Images not pinned by digest, as `container=image`.
    pub fn unpinned(&self) -> Vec<String> {
        self.images
            .iter()
            .filter(|(_, image)| image_digest(image).is_none())
            .map(|(name, image)| format!("{name}={image}"))
            .collect()
    }

    /// Whether the image of `container` differs from stable.
    pub fn changed(&self, container: &str) -> bool {
        let new = self.images.get(container);
        match &self.stable_images {
            None => new.is_some(),
            Some(stable) => new.is_some() && stable.get(container) != new,
        }
    }
}

/// The images of every container and init container of a pod spec, by container name.
pub fn pod_images(spec: &PodSpec) -> BTreeMap<String, String> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.clone().map(|image| (c.name.clone(), image)))
        .collect()
}

/// Whether a policy governs the change: its namespaces and its Rollout selector.
pub fn selects(policy: &ReleasePolicy, change: &Change) -> bool {
    let spec = &policy.spec;
    (spec.namespaces.is_empty() || spec.namespaces.contains(&change.namespace))
        && spec
            .rollout_selector
            .as_ref()
            .is_none_or(|s| selector_matches(s, &change.rollout_labels))
}

/// A Kubernetes label selector against a set of labels (`matchLabels` and the four
/// `matchExpressions` operators). An unknown operator counts as matching: a typo in a
/// policy makes it govern more Rollouts, never fewer.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expression = selector.match_expressions.iter().flatten().all(|e| {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => true,
        }
    });
    by_label && by_expression
}

/// The first tier whose rules all hold for the change.
pub fn tier_of<'p>(tiers: &'p [Tier], change: &Change) -> Option<&'p Tier> {
    tiers.iter().find(|t| tier_matches(&t.matches, change))
}

fn tier_matches(rules: &TierMatch, change: &Change) -> bool {
    let subset = |want: &BTreeMap<String, String>, have: &BTreeMap<String, String>| {
        want.iter().all(|(k, v)| have.get(k) == Some(v))
    };
    subset(&rules.rollout_labels, &change.rollout_labels)
        && subset(&rules.rollout_annotations, &change.rollout_annotations)
        && subset(&rules.template_labels, &change.template_labels)
        && (rules.changed_containers.is_empty()
            || rules.changed_containers.iter().any(|c| change.changed(c)))
        && (rules.init_containers.is_empty()
            || rules
                .init_containers
                .iter()
                .any(|c| change.init_containers.contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::release::ReleasePolicySpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn change() -> Change {
        Change {
            namespace: "shop".into(),
            rollout: "checkout".into(),
            images: [
                ("app".to_owned(), format!("reg/app@{D1}")),
                ("sidecar".to_owned(), format!("reg/proxy@{D2}")),
            ]
            .into(),
            stable_images: Some(
                [
                    ("app".to_owned(), "reg/app@sha256:0000000000000000000000000000000000000000000000000000000000000000".to_owned()),
                    ("sidecar".to_owned(), format!("reg/proxy@{D2}")),
                ]
                .into(),
            ),
            ..Change::default()
        }
    }

    #[test]
    fn digests_are_sorted_and_tags_are_unpinned() {
        let mut c = change();
        assert_eq!(c.digests(), vec![D1.to_owned(), D2.to_owned()]);
        assert!(c.unpinned().is_empty());
        c.images.insert("debug".into(), "busybox:1.36".into());
        assert_eq!(c.unpinned(), vec!["debug=busybox:1.36".to_owned()]);
        c.images.insert(
            "shouting".into(),
            format!("reg/app@sha256:{}", "AB".repeat(32)),
        );
        assert_eq!(
            c.unpinned(),
            vec![
                "debug=busybox:1.36".to_owned(),
                format!("shouting=reg/app@sha256:{}", "AB".repeat(32))
            ],
            "an upper-case digest is not an OCI digest"
        );
    }

    #[test]
    fn tiers_match_on_what_changed_and_fall_through_to_the_default() {
        let tiers = vec![
            Tier {
                name: "migration".into(),
                matches: TierMatch {
                    init_containers: vec!["migrate".into()],
                    ..TierMatch::default()
                },
                ..Tier::default()
            },
            Tier {
                name: "sidecar".into(),
                matches: TierMatch {
                    changed_containers: vec!["sidecar".into()],
                    ..TierMatch::default()
                },
                ..Tier::default()
            },
            Tier {
                name: "critical-app".into(),
                matches: TierMatch {
                    rollout_labels: [("tier".to_owned(), "critical".to_owned())].into(),
                    changed_containers: vec!["app".into()],
                    ..TierMatch::default()
                },
                ..Tier::default()
            },
            Tier {
                name: "default".into(),
                ..Tier::default()
            },
        ];
        let mut c = change();
        assert_eq!(tier_of(&tiers, &c).unwrap().name, "default");
        c.rollout_labels.insert("tier".into(), "critical".into());
        assert_eq!(tier_of(&tiers, &c).unwrap().name, "critical-app");
        c.init_containers.insert("migrate".into());
        assert_eq!(tier_of(&tiers, &c).unwrap().name, "migration");
        c.init_containers.clear();
        c.stable_images = None;
        assert_eq!(
            tier_of(&tiers, &c).unwrap().name,
            "sidecar",
            "without a stable revision every container counts as changed"
        );
        assert!(tier_of(&tiers[..3], &change()).is_none());
    }

    #[test]
    fn policies_select_by_namespace_and_labels() {
        let mut policy = ReleasePolicy::new(
            "prod",
            ReleasePolicySpec {
                namespaces: vec!["shop".into()],
                rollout_selector: Some(LabelSelector {
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "env".into(),
                        operator: "In".into(),
                        values: Some(vec!["prod".into()]),
                    }]),
                    ..LabelSelector::default()
                }),
                ..ReleasePolicySpec::default()
            },
        );
        let mut c = change();
        assert!(!selects(&policy, &c));
        c.rollout_labels.insert("env".into(), "prod".into());
        assert!(selects(&policy, &c));
        c.namespace = "other".into();
        assert!(!selects(&policy, &c));
        policy.spec.namespaces.clear();
        assert!(selects(&policy, &c));
    }
}
