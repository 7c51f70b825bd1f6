//! Release policy: what a platform team requires before a new revision of a Rollout may
//! start or be promoted (`ReleasePolicy`, cluster-scoped, so application teams cannot edit
//! it), and the two objects people create to satisfy or bypass it (`Approval`,
//! `BreakGlass`, namespaced next to the Rollout).
//!
//! ```text
//!   ReleasePolicy ──selects──▶ Rollouts (namespaces + labels)
//!        │ tiers (rules on the change) ──▶ gates: approvals, minimum bake, analyses
//!        │ schedules (freeze = deny, window = allow)
//!        ▼
//!   Approval   (rollout uid + revision + digests, approver from request.userInfo)
//!   BreakGlass (rollout + digests, reason, incident, expiry, requester, second approver)
//! ```
//!
//! Every identity field (`approver`, `groups`, `requestedBy`, `approvedBy`, `reviewedBy`)
//! is written by `kubectl fife` from the API server's `SelfSubjectReview` answer and checked
//! against `request.userInfo` by the ValidatingAdmissionPolicy in `examples/install/`, so no
//! typed name is trusted. The evaluation lives in the pure crate `fife-policy`.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::rollout::TemplateRef;

/// What a platform team requires of the Rollouts it selects.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fife.dev",
    version = "v1alpha1",
    derive = "PartialEq",
    derive = "Default",
    kind = "ReleasePolicy",
    shortname = "frp",
    category = "fife",
    doc = "Release gates for the Rollouts it selects: digest pinning, image verification, risk tiers with approvals, bake and analyses, freezes and deployment windows, break-glass rules."
)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePolicySpec {
    /// Namespaces whose Rollouts this policy governs; empty means every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Labels a Rollout must carry to be governed; unset selects every Rollout in
    /// `namespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_selector: Option<LabelSelector>,
    /// Every container image must be pinned by digest (`image@sha256:...`), so an approval
    /// names exactly what runs.
    #[serde(default)]
    pub require_digest: bool,
    /// Verify every image's signature before any canary pod runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_images: Option<ImageVerification>,
    /// Risk tiers, matched in order against the change; the first that matches applies.
    /// A tier without `match` rules matches every change (put it last as the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<Tier>,
    /// Freezes (deny) and deployment windows (allow). A deny window in force always wins;
    /// with allow windows listed, a change may only start inside one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<Schedule>,
    /// What a break-glass needs to be accepted.
    #[serde(default)]
    pub break_glass: BreakGlassRules,
}

/// Where the public keys that sign images are kept. The verification itself (signature
/// and provenance against the registry) fills the per-digest verdicts the gate reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerification {
    /// A Secret in the controller's namespace whose data values are PEM public keys; an
    /// image passes when a signature verifies against any of them.
    #[schemars(length(min = 1))]
    pub keys_secret: String,
    /// When set, every image must also carry SLSA provenance (an in-toto attestation signed
    /// by one of the keys) that meets each condition set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<ProvenanceConditions>,
}

/// What an image's SLSA provenance must say; an unset field asks nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceConditions {
    /// The builder id, exactly (e.g. the SLSA GitHub generator's workflow at a tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_id: Option<String>,
    /// The source repository, e.g. `https://github.com/acme/api` (a `git+` prefix and a
    /// `.git` suffix are ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<String>,
    /// The source ref, exactly, e.g. `refs/heads/main` or `refs/tags/v1.2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
}

/// A risk tier: which changes belong to it and which gates they pass through.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    /// Shown in status, metrics and records, e.g. `high`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// All rules set here must hold for the tier to apply; none set matches everything.
    #[serde(default, rename = "match")]
    pub matches: TierMatch,
    #[serde(default)]
    pub gates: TierGates,
}

/// Rules on the change: the Rollout, its new pod template and what differs from stable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierMatch {
    /// Labels the Rollout must carry (equality).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollout_labels: BTreeMap<String, String>,
    /// Annotations the Rollout must carry (equality).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollout_annotations: BTreeMap<String, String>,
    /// Labels the new pod template must carry (equality).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_labels: BTreeMap<String, String>,
    /// Matches when the image of any of these containers differs from the stable revision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_containers: Vec<String>,
    /// Matches when the new template runs any of these init containers (a migration hook).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<String>,
}

/// The gates a tier adds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TierGates {
    /// Approvals required, every rule on its own; none means no person approves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRule>,
    /// The canary must have run at least this long before it is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_bake: Option<Duration>,
    /// Analysis templates that must have ended Successful in this rollout before promotion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_analyses: Vec<TemplateRef>,
}

/// `count` distinct people from any of `groups` approve the change. An approver who wrote
/// the change or applied it never counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRule {
    /// Groups as the API server's authentication reports them; empty means anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[schemars(range(min = 1, max = 10))]
    pub count: u32,
}

/// A recurring window: opens at each time the cron expression names, in `timeZone`, and
/// stays open for `duration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Shown in status and records, e.g. `weekend-freeze`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    pub kind: ScheduleKind,
    /// Five-field cron (`minute hour day-of-month month day-of-week`), read in `timeZone`.
    #[schemars(length(min = 1))]
    pub cron: String,
    /// IANA time zone, e.g. `Europe/Berlin`; wall-clock times follow its DST changes.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// How long each window lasts from its opening.
    pub duration: Duration,
    /// A deny window: hold running rollouts where they are, or only keep new revisions
    /// from starting. Outside an allow window new revisions never start.
    #[serde(default)]
    pub effect: FreezeEffect,
    /// Only Rollouts in these namespaces; empty means all the policy selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Only Rollouts with these labels (equality).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rollout_labels: BTreeMap<String, String>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ScheduleKind {
    /// A freeze: no change starts or proceeds while it is open.
    #[default]
    Deny,
    /// A deployment window: changes start only while one is open.
    Allow,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FreezeEffect {
    /// New revisions do not start; rollouts already running hold at their current step.
    #[default]
    HoldAtStep,
    /// New revisions do not start; rollouts already running continue.
    DoNotStart,
}

/// What a break-glass needs before the controller accepts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassRules {
    /// A second person (not the requester) must approve the break-glass.
    #[serde(default)]
    pub require_second_approval: bool,
    /// The longest a break-glass may be valid for, from its creation.
    #[serde(default = "default_break_glass_max_duration")]
    pub max_duration: Duration,
}

fn default_break_glass_max_duration() -> Duration {
    Duration::from_secs(4 * 3600)
}

impl Default for BreakGlassRules {
    fn default() -> Self {
        BreakGlassRules {
            require_second_approval: false,
            max_duration: default_break_glass_max_duration(),
        }
    }
}

/// One person's approval of one change: a Rollout (by uid), its new revision and the image
/// digests it runs. It never carries over to another revision.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fife.dev",
    version = "v1alpha1",
    derive = "PartialEq",
    derive = "Default",
    kind = "Approval",
    namespaced,
    shortname = "fapr",
    category = "fife",
    doc = "One person's approval of one revision of a Rollout, bound to its image digests.",
    printcolumn(name = "Rollout", type_ = "string", json_path = ".spec.rollout"),
    printcolumn(name = "Revision", type_ = "string", json_path = ".spec.revision"),
    printcolumn(name = "Approver", type_ = "string", json_path = ".spec.approver"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self == oldSelf",
    "message": "an Approval cannot be changed: delete it and approve again"
}]))]
pub struct ApprovalSpec {
    /// The Rollout's name, in the Approval's namespace.
    #[schemars(length(min = 1))]
    pub rollout: String,
    /// The Rollout's `metadata.uid`: a Rollout deleted and recreated under the same name
    /// is another Rollout.
    #[schemars(length(min = 1))]
    pub rollout_uid: String,
    /// The pod-template hash of the revision approved.
    #[schemars(length(min = 1))]
    pub revision: String,
    /// Every image digest the revision runs, sorted.
    #[schemars(length(min = 1))]
    pub digests: Vec<String>,
    /// The approver's user name, as the API server authenticated them.
    #[schemars(length(min = 1))]
    pub approver: String,
    /// The approver's groups, as the API server authenticated them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The change's author and applier, copied from the Rollout's annotations when the
    /// Approval is created, so that admission can refuse a self-approval at once. The
    /// gate itself compares the approver with the Rollout's own annotations, so a wrong
    /// copy here never makes an approval count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_by: Option<String>,
}

/// A scoped, expiring bypass of freezes and approvals for one change of one Rollout.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fife.dev",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "BreakGlass",
    plural = "breakglasses",
    namespaced,
    shortname = "fbg",
    category = "fife",
    doc = "An audited emergency bypass of freezes and approvals for exactly one change of one Rollout.",
    printcolumn(name = "Rollout", type_ = "string", json_path = ".spec.rollout"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requestedBy"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".spec.expiresAt"),
    printcolumn(
        name = "Reviewed-By",
        type_ = "string",
        json_path = ".spec.review.reviewedBy"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassSpec {
    /// The Rollout's name, in the BreakGlass's namespace.
    #[schemars(length(min = 1))]
    pub rollout: String,
    /// Every image digest of the change it lets through, sorted; any other change is held.
    #[schemars(length(min = 1))]
    pub digests: Vec<String>,
    /// Why the freeze or approval cannot wait.
    #[schemars(length(min = 1))]
    pub reason: String,
    /// The incident this answers, e.g. `INC-4211`.
    #[schemars(length(min = 1))]
    pub incident: String,
    /// Not valid after this time; the policy bounds how far ahead it may be.
    pub expires_at: Time,
    /// The requester, as the API server authenticated them.
    #[schemars(length(min = 1))]
    pub requested_by: String,
    /// A second person's approval, when the policy asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_approval: Option<BreakGlassApproval>,
    /// The post-hoc review, written by someone other than the requester; the review item
    /// stays open until it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<BreakGlassReview>,
}

/// Who approved a break-glass, as the API server authenticated them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassApproval {
    #[schemars(length(min = 1))]
    pub approved_by: String,
    pub approved_at: Time,
}

/// The post-hoc review that closes a break-glass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassReview {
    #[schemars(length(min = 1))]
    pub reviewed_by: String,
    pub reviewed_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// A release gate, as named in status, metrics and audit records.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum ReleaseGate {
    /// Every image pinned by digest.
    Digest,
    /// Every image's signature (and provenance) verified.
    Signature,
    /// No freeze in force, and inside a deployment window when the policy lists any.
    Freeze,
    /// The tier's approvals, from people other than the author and the applier.
    Approval,
    /// The tier's minimum bake time.
    Bake,
    /// The tier's required analyses ended Successful.
    Analysis,
}

impl ReleaseGate {
    pub const ALL: [ReleaseGate; 6] = [
        ReleaseGate::Digest,
        ReleaseGate::Signature,
        ReleaseGate::Freeze,
        ReleaseGate::Approval,
        ReleaseGate::Bake,
        ReleaseGate::Analysis,
    ];
}

/// What a gate did with a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum GateOutcome {
    Passed,
    Blocked,
    /// A valid BreakGlass let the change past a freeze or missing approvals.
    Bypassed,
}

/// `status.release`: what the release policy says about the current change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The ReleasePolicies governing the Rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// The risk tier of the current change, per the policies' rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The gate holding the change, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<HeldGate>,
    /// The BreakGlass that let the current change through, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// When the current canary started: minimum bake counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_started_at: Option<Time>,
}

/// The gate that holds a change, why, and when it may open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeldGate {
    pub gate: ReleaseGate,
    /// The ReleasePolicy whose gate it is.
    pub policy: String,
    pub message: String,
    /// When the gate opens by itself (a freeze ends, a window opens, the bake is done);
    /// unset when a person must act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<Time>,
    /// Since when this gate holds the change: the wait time the gate metrics measure.
    pub since: Time,
}
