//! `Rollout`: what a team declares (the pod template and the canary steps) and what the
//! controller reports back (phase, step, weights, revisions, pauses, abort).
//!
//! Manual actions (promote, promote-full, abort, retry) are one-shot requests written to
//! `spec.manualAction` with a fresh `id`; the controller handles each id once and echoes it
//! in `status.lastManualAction`. See [`ManualActionRequest`] for why.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::Argument;
use crate::duration::Duration;

/// The desired state of a progressive rollout.
// Several `printcolumn(type_ = "string", ..)` entries look like duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fife.dev",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "frol",
    category = "fife",
    doc = "A Deployment-like workload that moves to each new revision through canary steps gated by analysis.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "string", json_path = ".status.stepLabel"),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.weights.canary",
        description = "canary traffic weight (percent)"
    ),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.readyLabel"),
    printcolumn(
        name = "Gate",
        type_ = "string",
        json_path = ".status.release.holding.gate",
        description = "the release gate holding the change"
    ),
    printcolumn(
        name = "Opens",
        type_ = "string",
        json_path = ".status.release.holding.opensAt",
        description = "when the holding gate opens by itself"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message")
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.selector) == has(self.template) || has(self.workloadRef)",
        "message": "set selector and template together; a Rollout with neither is inert"
    },
    {
        "rule": "!(has(self.template) && has(self.workloadRef))",
        "message": "set either template or workloadRef, not both: workloadRef takes the pod template from the Deployment it names"
    }
]))]
pub struct RolloutSpec {
    /// Desired pods of the workload. Canary and baseline replicas are carved out of it.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Selects the Rollout's pods; must match `template.metadata.labels`. With
    /// `workloadRef` it may be left out: the referenced Deployment's selector is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pods to run. A Rollout with neither a template nor a `workloadRef` is valid but
    /// inert: the controller reports it and does nothing else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
    /// Take the pod template from an existing Deployment instead of `template`, and scale
    /// that Deployment down as the Rollout's own pods take over (`scaleDown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<WorkloadRef>,
    pub strategy: RolloutStrategy,
    /// Pause the rollout where it is, like `Deployment.spec.paused`, until set back to false.
    #[serde(default)]
    pub paused: bool,
    /// A one-shot request from a person: promote, promote-full, abort or retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_action: Option<ManualActionRequest>,
    /// A canary whose pods are not all ready this long after a step began aborts.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: i32,
    /// Old revisions to keep (as scaled-down Deployments / recorded hashes) for rollback.
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: i32,
    #[serde(default)]
    pub policy: Policy,
}

pub const DEFAULT_REPLICAS: i32 = 1;
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn default_replicas() -> i32 {
    DEFAULT_REPLICAS
}

fn default_progress_deadline_seconds() -> i32 {
    DEFAULT_PROGRESS_DEADLINE_SECONDS
}

fn default_revision_history_limit() -> i32 {
    DEFAULT_REVISION_HISTORY_LIMIT
}

fn default_abort_scale_down_delay_seconds() -> i32 {
    DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS
}

/// The Deployment a Rollout takes its pod template from. The template's hash is the
/// revision, read again at every reconcile: changing the Deployment's template starts a
/// rollout, as changing `spec.template` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.apiVersion == 'apps/v1' && self.kind == 'Deployment'",
    "message": "workloadRef must name a Deployment: apiVersion apps/v1, kind Deployment"
}]))]
pub struct WorkloadRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// The Deployment's name, in the Rollout's namespace.
    #[schemars(length(min = 1))]
    pub name: String,
    /// What happens to the Deployment's own pods once the Rollout runs its revision.
    #[serde(default)]
    pub scale_down: WorkloadScaleDown,
}

/// How the referenced Deployment is scaled once the Rollout's pods take over. The
/// Rollout's stable pods always come up first, so no mode leaves a moment without pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadScaleDown {
    /// Leave the Deployment's replicas alone.
    Never,
    /// Scale the Deployment to zero once the Rollout is Healthy.
    OnSuccess,
    /// Scale the Deployment down pod by pod as the Rollout's stable pods become ready.
    #[default]
    Progressively,
}

/// How the Rollout moves between revisions: exactly one of `canary` and `blueGreen`.
///
/// A blue-green Rollout reads as a canary one whose `canary` is unset; in Rust, `canary`
/// is then its default and unused, and it is not written back (see the `Serialize` impl).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["canary"]}, {"required": ["blueGreen"]}]))]
pub struct RolloutStrategy {
    #[serde(default)]
    #[schemars(transform = without_default)]
    pub canary: CanaryStrategy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// A schema default on `canary` would have the API server set it beside `blueGreen`, and
/// then no blue-green Rollout would pass the exactly-one rule.
fn without_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

// The strategy the Rollout declares, and only it, goes on the wire: a blue-green Rollout
// written back with a default `canary` would break the exactly-one rule.
impl Serialize for RolloutStrategy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            canary: Option<&'a CanaryStrategy>,
            #[serde(skip_serializing_if = "Option::is_none")]
            blue_green: Option<&'a BlueGreenStrategy>,
        }
        Wire {
            canary: self.blue_green.is_none().then_some(&self.canary),
            blue_green: self.blue_green.as_ref(),
        }
        .serialize(serializer)
    }
}

/// Blue-green: the new revision comes up beside the active one behind `previewService`,
/// passes its pre-promotion gates, and then `activeService` switches to it at once. Fife owns
/// both Services' selectors (the `fife.dev/revision` label).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// The Service that carries production traffic: it selects the active revision.
    #[schemars(length(min = 1))]
    pub active_service: String,
    /// The Service that selects the new revision before promotion, for tests and the
    /// pre-promotion analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Pods of the new revision before promotion; all `replicas` when unset. It is scaled to
    /// `replicas` before the active Service switches to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub preview_replica_count: Option<i32>,
    /// Promote once the pre-promotion analysis passes; `false` waits for
    /// `kubectl fife promote`.
    #[serde(default = "default_true")]
    pub auto_promotion_enabled: bool,
    /// With auto-promotion, wait this long with the new revision ready behind the preview
    /// Service before promoting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub auto_promotion_seconds: Option<i32>,
    /// After the switch (and the post-promotion analysis), keep the old revision's pods
    /// this long before scaling them down: until then an abort switches back at once.
    #[serde(default = "default_scale_down_delay_seconds")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: i32,
    /// Gates the switch: runs against the new revision behind the preview Service, beside a
    /// fresh baseline of the active revision of the same size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Runs once the active Service has switched; a failure switches it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
}

pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;

fn default_true() -> bool {
    true
}

fn default_scale_down_delay_seconds() -> i32 {
    DEFAULT_SCALE_DOWN_DELAY_SECONDS
}

/// Canary steps, the optional same-version baseline, traffic routing and background analysis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Executed in order. An empty list promotes a new revision at once.
    #[serde(default)]
    pub steps: Vec<CanaryStep>,
    /// Run a fresh baseline of the stable revision, sized and weighted like the canary, so
    /// comparison metrics compare like with like.
    #[serde(default)]
    pub baseline: bool,
    /// Omitted: traffic follows replica counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,
    /// Analysis that runs in the background from `startingStep` until the rollout ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<BackgroundAnalysis>,
    /// After an abort, keep the canary and baseline pods this long before scaling them down
    /// (time to collect logs and let traffic drain).
    #[serde(default = "default_abort_scale_down_delay_seconds")]
    #[schemars(range(min = 0))]
    pub abort_scale_down_delay_seconds: i32,
}

/// One canary step. Exactly one kind per step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CanaryStep {
    /// Send this percentage of traffic to the canary (and as much to the baseline).
    SetWeight(#[schemars(range(min = 0, max = 100))] i32),
    /// Wait: for `duration`, or without one until a person promotes.
    Pause(PauseStep),
    /// Run an analysis; the step ends when it completes.
    Analysis(RolloutAnalysis),
    /// Send requests whose headers match to the canary, whatever the weights (Gateway API
    /// and Istio routers). A step with no `match` removes the route of that name. Header
    /// routes last until the rollout ends: promotion and abort remove them all.
    SetHeaderRoute(SetHeaderRoute),
}

/// A named route that sends matching requests to the canary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// The route's name in the HTTPRoute rule or VirtualService route Fife writes; a later
    /// step with the same name replaces or removes it.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Requests carrying all these headers go to the canary. Absent or empty: remove the route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub r#match: Vec<HeaderRoutingMatch>,
}

/// One header a request must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    #[schemars(length(min = 1))]
    pub header_name: String,
    pub header_value: StringMatch,
}

/// How a header value matches: exactly one of `exact`, `prefix`, `regex`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.exact) || has(self.prefix) || has(self.regex)) && !(has(self.exact) && has(self.prefix)) && !(has(self.exact) && has(self.regex)) && !(has(self.prefix) && has(self.regex))",
    "message": "set exactly one of exact, prefix and regex"
}]))]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// An RE2 regular expression, as both Istio and the Gateway API read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A bake window (`duration`) or, without one, a wait for `kubectl fife promote`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

/// Templates to instantiate as one AnalysisRun, and the arguments to give them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    #[schemars(length(min = 1))]
    pub templates: Vec<TemplateRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
}

/// Background analysis: like a step analysis, but it runs alongside the steps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundAnalysis {
    #[schemars(length(min = 1))]
    pub templates: Vec<TemplateRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Index of the step at which the analysis starts; 0 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_step: Option<i32>,
}

/// A reference to an AnalysisTemplate (same namespace) or a ClusterAnalysisTemplate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    pub template_name: String,
    /// Refer to a ClusterAnalysisTemplate instead of a namespaced AnalysisTemplate.
    #[serde(default)]
    pub cluster_scope: bool,
}

/// How traffic is split. Without a router, weights are approximated by replica counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.gatewayAPI) && has(self.istio)) && !(has(self.gatewayAPI) && has(self.nginx)) && !(has(self.istio) && has(self.nginx))",
    "message": "name one traffic router: gatewayAPI, istio or nginx"
}]))]
pub struct TrafficRouting {
    /// Set the backend weights of a Gateway API `HTTPRoute`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "gatewayAPI"
    )]
    pub gateway_api: Option<GatewayApiRouting>,
    /// Set the destination weights of an Istio `VirtualService`'s HTTP routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
    /// Run a canary Ingress next to a stable ingress-nginx `Ingress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxRouting>,
}

impl TrafficRouting {
    /// True when a router (not replica counts) splits the traffic.
    pub fn routes(&self) -> bool {
        self.gateway_api.is_some() || self.istio.is_some() || self.nginx.is_some()
    }

    /// True when the router can send a share to a baseline of its own (NGINX cannot).
    pub fn weighs_baseline(&self) -> bool {
        self.nginx.is_none()
    }

    /// True when the router writes `setHeaderRoute` steps (Gateway API and Istio).
    pub fn routes_headers(&self) -> bool {
        self.gateway_api.is_some() || self.istio.is_some()
    }
}

/// The Istio objects Fife writes: route weights in a VirtualService and, when traffic is
/// split by subset of one host, the subsets' labels in a DestinationRule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioRouting {
    pub virtual_service: IstioVirtualService,
    /// Split by subset of one host. Unset: split by host, the Services `<name>-stable`,
    /// `<name>-canary` and `<name>-baseline` being the destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
}

/// The VirtualService (in the Rollout's namespace) whose HTTP route weights Fife owns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    #[schemars(length(min = 1))]
    pub name: String,
    /// The names of the HTTP routes Fife may shift. Unset: every HTTP route that has the
    /// stable destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
}

/// The DestinationRule (in the Rollout's namespace) whose subsets Fife keeps selecting the
/// roles' pods. Fife owns the `labels` of these three subsets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioDestinationRule {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub canary_subset_name: String,
    #[schemars(length(min = 1))]
    pub stable_subset_name: String,
    /// Required with `baseline: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_subset_name: Option<String>,
}

impl IstioDestinationRule {
    /// The subset of a role, if one is named.
    pub fn subset(&self, role: crate::labels::Role) -> Option<&str> {
        match role {
            crate::labels::Role::Stable => Some(&self.stable_subset_name),
            crate::labels::Role::Canary => Some(&self.canary_subset_name),
            crate::labels::Role::Baseline => self.baseline_subset_name.as_deref(),
        }
    }
}

/// ingress-nginx: Fife runs a canary Ingress beside the stable one and sets its weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxRouting {
    /// The user's Ingress (in the Rollout's namespace) whose rules send traffic to
    /// `<name>-stable`; the canary Ingress copies them.
    #[schemars(length(min = 1))]
    pub stable_ingress: String,
    /// The annotation prefix the ingress-nginx controller reads.
    #[serde(default = "default_annotation_prefix")]
    #[schemars(length(min = 1))]
    pub annotation_prefix: String,
    /// Annotations for the canary Ingress beyond `canary` and `canary-weight`, keys without
    /// the prefix (e.g. `canary-by-header: X-Canary`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_ingress_annotations: BTreeMap<String, String>,
}

/// The ingress-nginx annotation (after the prefix) that makes an Ingress a canary of the
/// Ingress with the same host and path; Fife sets it to `"true"`.
pub const NGINX_CANARY_ANNOTATION: &str = "canary";
/// The ingress-nginx annotation (after the prefix) with the canary's percent of requests.
pub const NGINX_CANARY_WEIGHT_ANNOTATION: &str = "canary-weight";

/// ingress-nginx's own annotation prefix.
pub const DEFAULT_NGINX_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io";

fn default_annotation_prefix() -> String {
    DEFAULT_NGINX_ANNOTATION_PREFIX.to_owned()
}

/// The HTTPRoute whose `backendRefs` weights Fife owns. Its rules must reference the stable
/// Service; Fife adds the canary and baseline Services next to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    #[schemars(length(min = 1))]
    pub http_route: String,
    /// Namespace of the HTTPRoute; the Rollout's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Admission rules the Rollout asks to be held to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Every container image must be pinned by digest (`image@sha256:...`), so the record of
    /// what was approved names exactly what ran.
    #[serde(default)]
    pub require_digest: bool,
}

/// A person's one-shot request to the controller.
///
/// Why a spec field with an id, and not Argo's status patches or an annotation:
/// - status belongs to the controller: a user's status patch races the controller's own
///   status writes and can be lost, and needs RBAC on the status subresource;
/// - the `id` makes the request idempotent across controller restarts: the controller acts
///   on an id once and records it in `status.lastManualAction`, so replaying the same
///   object never promotes twice, and the CLI knows its request was handled when the id
///   appears there;
/// - it is a single merge patch (`kubectl fife promote` writes exactly this object), and
///   its fields are schema-validated, unlike annotation strings.
///
/// `requestedBy` is what the client says about the person; the audit record stores it as
/// the actor, and the API server's audit log (or `managedFields`) is the authenticated
/// cross-check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManualActionRequest {
    pub action: ManualAction,
    /// Unique per request, e.g. a timestamp plus random suffix. A new id is a new request.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// The person asking, e.g. `alice@example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Why, in the person's words; copied into the audit record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a person can ask of a rollout in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ManualAction {
    /// Leave the current indefinite pause (or Inconclusive analysis) and go to the next step.
    Promote,
    /// Skip the remaining steps and make the canary stable.
    PromoteFull,
    /// Send all traffic back to stable and scale the canary and baseline down.
    Abort,
    /// After an abort, start the steps again from the first.
    Retry,
}

/// What the controller observed and decided. Written only by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// The last thing worth telling a person, e.g. why the rollout is paused or aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Index of the step being executed; equal to the number of steps when all are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// `current/total` for `kubectl get`, e.g. `3/7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_label: Option<String>,
    /// When the current step began; bake windows and progress deadlines count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_started_at: Option<Time>,
    /// Traffic percentages currently applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<TrafficWeights>,
    /// Pod-template hash of the revision that receives the stable traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// Pod-template hash of the revision being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_revision: Option<String>,
    /// Why the rollout is paused; empty when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_conditions: Vec<PauseCondition>,
    /// The controller paused the rollout (indefinite pause step, Inconclusive analysis).
    #[serde(default)]
    pub controller_pause: bool,
    /// The rollout was aborted: canary weight 0, canary and baseline scaled down.
    #[serde(default)]
    pub abort: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// A promote-full is in progress: the remaining steps are skipped.
    #[serde(default)]
    pub promote_full: bool,
    /// The last `spec.manualAction` the controller handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_manual_action: Option<HandledManualAction>,
    /// Name of the AnalysisRun of the current analysis step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_analysis_run: Option<String>,
    /// Name of the background AnalysisRun, while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_analysis_run: Option<String>,
    /// Retries of the current canary revision after an abort. Part of AnalysisRun names, so a
    /// retry starts fresh runs instead of reading the aborted attempt's results.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(min = 0))]
    pub retries: i32,
    /// AnalysisRuns a person promoted past while they were Inconclusive; they no longer
    /// pause the rollout. Cleared when a new revision or a retry starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_analysis_runs: Vec<String>,
    /// Pods of all revisions.
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// `ready/desired` for `kubectl get`, e.g. `9/10`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_label: Option<String>,
    /// Label selector in string form, for the scale subresource (HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last audit record written about this Rollout: an anchor outside the log, so a
    /// log cut short of it fails `fife audit verify --expect-head SEQ:HASH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_audit_record: Option<AuditRecordRef>,
    /// What the ReleasePolicies governing the Rollout say about the current change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<crate::release::ReleaseStatus>,
}

/// One audit record, by its place in the log and its hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecordRef {
    /// The record's place in the log.
    pub seq: u64,
    /// The record's `hash` field (SHA-256, hex).
    pub hash: String,
}

/// Where the rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum RolloutPhase {
    /// Moving through the steps.
    Progressing,
    /// Waiting: a pause step, an Inconclusive analysis, `spec.paused`.
    Paused,
    /// The stable revision is the desired one and all is ready.
    Healthy,
    /// Aborted, or the progress deadline passed.
    Degraded,
}

/// Percent of traffic each role receives; the three add up to 100.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    #[schemars(range(min = 0, max = 100))]
    pub canary: i32,
    #[schemars(range(min = 0, max = 100))]
    pub baseline: i32,
    #[schemars(range(min = 0, max = 100))]
    pub stable: i32,
}

/// One reason the rollout is paused, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    pub reason: PauseReason,
    pub start_time: Time,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PauseReason {
    /// A `pause` step (timed or waiting for a person).
    PauseStep,
    /// An analysis ended Inconclusive; a person decides.
    InconclusiveAnalysis,
    /// `spec.paused` is true.
    UserPause,
}

/// A manual action the controller has acted on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledManualAction {
    pub id: String,
    pub action: ManualAction,
    pub handled_at: Time,
    /// Whether the request did anything, e.g. a promote while not paused is `Ignored`.
    pub outcome: ManualActionOutcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ManualActionOutcome {
    Applied,
    Ignored,
}

impl RolloutSpec {
    /// The canary steps, in order.
    pub fn steps(&self) -> &[CanaryStep] {
        &self.strategy.canary.steps
    }

    /// A Rollout with neither a pod template nor a `workloadRef` runs nothing; the
    /// validator warns about it.
    pub fn is_inert(&self) -> bool {
        self.template.is_none() && self.workload_ref.is_none()
    }
}

impl CanaryStep {
    /// The step's kind as written in YAML, for messages and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            CanaryStep::SetWeight(_) => "setWeight",
            CanaryStep::Pause(_) => "pause",
            CanaryStep::Analysis(_) => "analysis",
            CanaryStep::SetHeaderRoute(_) => "setHeaderRoute",
        }
    }
}

/// `current/total` as shown in the Step column: the step being executed, counted from 1,
/// or `total/total` when all are done.
pub fn step_label(current_step_index: i32, total_steps: usize) -> String {
    let total = i32::try_from(total_steps).unwrap_or(i32::MAX);
    let shown = (current_step_index.saturating_add(1)).min(total).max(0);
    format!("{shown}/{total}")
}

/// `ready/desired` as shown in the Ready column.
pub fn ready_label(ready: i32, desired: i32) -> String {
    format!("{ready}/{desired}")
}
