//! The labels, annotations and names by which Fife finds its objects in the cluster: the
//! three roles a Rollout's pods play, the child names built from them, and the label and
//! annotation keys. The controller writes them, the CLI reads them, Prometheus relabels
//! them; this module is their only spelling.

use std::collections::BTreeMap;
use std::fmt;

/// The pod label that says which role a pod plays; Prometheus relabels it to `fife_role`.
pub const ROLE_LABEL: &str = "fife.dev/role";
/// The pod label carrying the pod-template hash of the revision a pod runs.
pub const REVISION_LABEL: &str = "fife.dev/revision";
/// The label naming the Rollout an object belongs to (children and AnalysisRuns).
pub const ROLLOUT_LABEL: &str = "fife.dev/rollout";
/// The Rollout label that selects the controller shard running it (Flux's convention for
/// its controllers): a controller started with `--shard KEY` runs the Rollouts whose label
/// is `KEY`, one without `--shard` those without the label. Children and AnalysisRuns carry
/// their Rollout's value, so each shard's watches select its own objects only.
pub const SHARD_LABEL: &str = "sharding.fife.dev/key";
/// Who last set `spec.paused`, written by `kubectl fife pause|resume` in the same patch.
/// The API has no pause manual action, so this annotation is where a pause names its
/// person, and the audit record's actor comes from it.
pub const PAUSE_REQUESTED_BY: &str = "fife.dev/pause-requested-by";
/// Rollout annotations with this prefix describe the change's source (commit, pull request,
/// pipeline run); the pipeline that writes the Rollout sets them, and every audit record
/// copies them.
pub const SOURCE_ANNOTATION_PREFIX: &str = "source.fife.dev/";
/// The author of the change (e.g. the commit author); an approver may never be this person.
pub const SOURCE_AUTHOR: &str = "source.fife.dev/author";
/// The source commit, its time (RFC 3339, where lead time starts), the pull request and
/// the ticket: what the deploy record names.
pub const SOURCE_COMMIT: &str = "source.fife.dev/commit";
pub const SOURCE_COMMIT_TIME: &str = "source.fife.dev/commit-time";
pub const SOURCE_PULL_REQUEST: &str = "source.fife.dev/pull-request";
pub const SOURCE_TICKET: &str = "source.fife.dev/ticket";
/// Who applied the current `spec.template`. The install's ValidatingAdmissionPolicy
/// requires it to equal `request.userInfo.username` on every change of the template, so
/// it comes from authentication, never from a typed name.
pub const APPLIED_BY: &str = "fife.dev/applied-by";

/// Which role a Deployment or Service serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The revision that receives the traffic the canary and baseline do not.
    Stable,
    /// The revision being rolled out.
    Canary,
    /// A fresh copy of the stable revision, sized like the canary, to compare against.
    Baseline,
}

impl Role {
    /// In the order a person reads them: stable, canary, baseline.
    pub const ALL: [Role; 3] = [Role::Stable, Role::Canary, Role::Baseline];

    /// The value of [`ROLE_LABEL`] (and of the `fife_role` series label).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Baseline => "baseline",
        }
    }

    /// The role a [`ROLE_LABEL`] value names; `None` for any other text.
    pub fn from_label(value: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == value)
    }

    /// The role an object's labels give it, if they carry [`ROLE_LABEL`].
    pub fn of_labels(labels: &BTreeMap<String, String>) -> Option<Role> {
        labels
            .get(ROLE_LABEL)
            .and_then(|value| Role::from_label(value))
    }

    /// `<rollout>-stable`, `<rollout>-canary`, `<rollout>-baseline`: the Deployment and
    /// (with Gateway API routing) the Service of this role.
    pub fn child_name(self, rollout: &str) -> String {
        format!("{rollout}-{}", self.as_str())
    }

    /// The role whose child of `rollout` is called `name`.
    pub fn of_child_name(rollout: &str, name: &str) -> Option<Role> {
        let suffix = name.strip_prefix(rollout)?.strip_prefix('-')?;
        Role::from_label(suffix)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `<rollout>-<stable ingress>-canary`: the Ingress Fife runs beside a Rollout's stable
/// Ingress with NGINX routing. Named after both, so two Rollouts behind one Ingress (or one
/// Rollout's Ingress renamed) never share a canary Ingress.
pub fn canary_ingress_name(rollout: &str, stable_ingress: &str) -> String {
    format!("{rollout}-{stable_ingress}-canary")
}

/// `fife.dev/rollout=<name>`: the label selector of a Rollout's children and AnalysisRuns.
pub fn rollout_selector(rollout: &str) -> String {
    format!("{ROLLOUT_LABEL}={rollout}")
}

/// Sets, on the labels of a child or AnalysisRun, the [`SHARD_LABEL`] of the Rollout that
/// owns it, or removes it when the Rollout has none: a child is watched by the shard that
/// runs its Rollout.
pub fn carry_shard_label(
    rollout_labels: &BTreeMap<String, String>,
    labels: &mut BTreeMap<String, String>,
) {
    match rollout_labels.get(SHARD_LABEL) {
        Some(key) => labels.insert(SHARD_LABEL.to_owned(), key.clone()),
        None => labels.remove(SHARD_LABEL),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip_through_labels_and_child_names() {
        for role in Role::ALL {
            assert_eq!(Role::from_label(role.as_str()), Some(role));
            assert_eq!(
                Role::of_child_name("checkout", &role.child_name("checkout")),
                Some(role)
            );
        }
        assert_eq!(Role::from_label("preview"), None);
        assert_eq!(Role::of_child_name("checkout", "checkout-api-stable"), None);
        assert_eq!(Role::of_child_name("checkout", "checkoutcanary"), None);
        let labels = BTreeMap::from([(ROLE_LABEL.to_owned(), "baseline".to_owned())]);
        assert_eq!(Role::of_labels(&labels), Some(Role::Baseline));
        assert_eq!(rollout_selector("checkout"), "fife.dev/rollout=checkout");
    }

    #[test]
    fn children_carry_their_rollouts_shard_label_and_lose_a_stale_one() {
        let pairs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let mut child = pairs(&[(ROLLOUT_LABEL, "web"), (SHARD_LABEL, "a")]);
        carry_shard_label(&pairs(&[(SHARD_LABEL, "b")]), &mut child);
        assert_eq!(child.get(SHARD_LABEL).map(String::as_str), Some("b"));
        carry_shard_label(&pairs(&[("team", "shop")]), &mut child);
        assert_eq!(child, pairs(&[(ROLLOUT_LABEL, "web")]));
    }
}
