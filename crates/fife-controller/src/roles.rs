//! The three roles a Rollout's pods play, and the names and labels that identify them in
//! the cluster (Deployments, Services, Prometheus series).

use std::fmt;

/// The pod label that says which role a pod plays; Prometheus relabels it to `fife_role`.
pub const ROLE_LABEL: &str = "fife.dev/role";
/// The pod label carrying the pod-template hash of the revision a pod runs.
pub const REVISION_LABEL: &str = "fife.dev/revision";
/// The label naming the Rollout an object belongs to (children and AnalysisRuns).
pub const ROLLOUT_LABEL: &str = "fife.dev/rollout";
/// The field manager of every server-side apply the controller makes.
pub const FIELD_MANAGER: &str = "fife";

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
    pub const ALL: [Role; 3] = [Role::Stable, Role::Canary, Role::Baseline];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Baseline => "baseline",
        }
    }

    /// `<rollout>-stable`, `<rollout>-canary`, `<rollout>-baseline`: the Deployment and
    /// (with Gateway API routing) the Service of this role.
    pub fn child_name(self, rollout: &str) -> String {
        format!("{rollout}-{}", self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
