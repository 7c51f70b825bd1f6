//! Semantic validation of typed Fife objects: the rules a schema cannot express (template
//! references, `{{args.x}}` placeholders, CEL that compiles, count and limit arithmetic,
//! selector against labels, digest pinning). Pure: the caller supplies every template.
//!
//! Every problem is reported, each with the field path it concerns and a message that says
//! what is wrong and what would be right.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::analysis::{
    AnalysisTemplateSpec, Argument, Comparison, ComparisonTest, Metric, MetricProvider,
};
use crate::manifest::FifeObject;
use crate::placeholder::{Piece, Placeholder, pieces, placeholders, uses_role};
use crate::rollout::{CanaryStep, RolloutSpec, SetHeaderRoute, TemplateRef, TrafficRouting};
use crate::{AnalysisTemplate, ClusterAnalysisTemplate, Rollout};

/// How serious a problem is: errors fail `fife validate`, warnings are printed only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    pub severity: Severity,
    /// e.g. `spec.strategy.canary.steps[2].setWeight`.
    pub path: String,
    pub message: String,
}

impl Problem {
    fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
        }
    }

    fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The templates a Rollout may reference, by name.
#[derive(Clone, Debug, Default)]
pub struct TemplateCatalog {
    namespaced: BTreeMap<String, AnalysisTemplateSpec>,
    cluster: BTreeMap<String, AnalysisTemplateSpec>,
}

impl TemplateCatalog {
    pub fn add_template(&mut self, template: &AnalysisTemplate) {
        let name = template.metadata.name.clone().unwrap_or_default();
        self.namespaced.insert(name, template.spec.clone());
    }

    pub fn add_cluster_template(&mut self, template: &ClusterAnalysisTemplate) {
        let name = template.metadata.name.clone().unwrap_or_default();
        self.cluster.insert(name, template.spec.clone().into());
    }

    /// Adds the object if it is a template; other kinds are ignored.
    pub fn add_object(&mut self, object: &FifeObject) {
        match object {
            FifeObject::AnalysisTemplate(t) => self.add_template(t),
            FifeObject::ClusterAnalysisTemplate(t) => self.add_cluster_template(t),
            FifeObject::Rollout(_)
            | FifeObject::AnalysisRun(_)
            | FifeObject::ReleasePolicy(_)
            | FifeObject::Approval(_)
            | FifeObject::BreakGlass(_) => {}
        }
    }

    pub fn get(&self, reference: &TemplateRef) -> Option<&AnalysisTemplateSpec> {
        if reference.cluster_scope {
            self.cluster.get(&reference.template_name)
        } else {
            self.namespaced.get(&reference.template_name)
        }
    }
}

/// Validates any Fife object. AnalysisRuns are written by the controller and only get the
/// metric rules.
pub fn validate_object(object: &FifeObject, catalog: &TemplateCatalog) -> Vec<Problem> {
    match object {
        FifeObject::Rollout(rollout) => validate_rollout(rollout, catalog),
        FifeObject::AnalysisTemplate(t) => validate_template(&t.spec.args, &t.spec.metrics),
        FifeObject::ClusterAnalysisTemplate(t) => validate_template(&t.spec.args, &t.spec.metrics),
        FifeObject::AnalysisRun(run) => validate_metrics(&run.spec.metrics, None),
        FifeObject::ReleasePolicy(policy) => validate_release_policy(policy),
        // Written by `kubectl fife` from the API server's answers; admission checks them.
        FifeObject::Approval(_) | FifeObject::BreakGlass(_) => Vec::new(),
    }
}

// === ReleasePolicy ===

/// Cross-field rules of a ReleasePolicy. Cron expressions and time zones are checked by
/// `fife_policy::schedule`, which owns their language.
pub fn validate_release_policy(policy: &crate::ReleasePolicy) -> Vec<Problem> {
    let spec = &policy.spec;
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, tier) in spec.tiers.iter().enumerate() {
        if !seen.insert(tier.name.as_str()) {
            problems.push(Problem::error(
                format!("spec.tiers[{i}].name"),
                format!(
                    "tier {:?} is named twice: give each tier its own name",
                    tier.name
                ),
            ));
        }
        let catch_all = tier.matches == crate::release::TierMatch::default();
        if catch_all && i + 1 < spec.tiers.len() {
            problems.push(Problem::warning(
                format!("spec.tiers[{i}].match"),
                format!(
                    "tier {:?} has no match rules, so it matches every change and the tiers after it never apply: move it last",
                    tier.name
                ),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, schedule) in spec.schedules.iter().enumerate() {
        if !seen.insert(schedule.name.as_str()) {
            problems.push(Problem::error(
                format!("spec.schedules[{i}].name"),
                format!(
                    "schedule {:?} is named twice: give each its own name",
                    schedule.name
                ),
            ));
        }
    }
    if spec.break_glass.max_duration.is_zero() {
        problems.push(Problem::error(
            "spec.breakGlass.maxDuration",
            "a break-glass limited to 0s can never be used: set a duration such as 2h",
        ));
    }
    problems
}

// === Rollout ===

pub fn validate_rollout(rollout: &Rollout, catalog: &TemplateCatalog) -> Vec<Problem> {
    let spec = &rollout.spec;
    let mut problems = Vec::new();
    validate_workload(spec, &mut problems);
    validate_steps(spec, catalog, &mut problems);
    if let Some(background) = &spec.strategy.canary.analysis {
        let path = "spec.strategy.canary.analysis";
        let steps = spec.steps().len();
        if let Some(start) = background.starting_step
            && (start < 0 || usize::try_from(start).is_ok_and(|s| s >= steps.max(1)))
        {
            problems.push(Problem::error(
                format!("{path}.startingStep"),
                format!(
                    "startingStep {start} is not the index of a step: use a value from 0 to {}",
                    steps.saturating_sub(1)
                ),
            ));
        }
        validate_analysis_refs(
            spec,
            &background.templates,
            &background.args,
            path,
            catalog,
            &mut problems,
        );
    }
    if let Some(strategy) = &spec.strategy.blue_green {
        validate_blue_green(spec, strategy, catalog, &mut problems);
    }
    if let Some(routing) = &spec.strategy.canary.traffic_routing {
        validate_traffic_routing(spec, routing, &mut problems);
    }
    for (field, value, minimum) in [
        ("spec.replicas", spec.replicas, 0),
        (
            "spec.progressDeadlineSeconds",
            spec.progress_deadline_seconds,
            1,
        ),
        ("spec.revisionHistoryLimit", spec.revision_history_limit, 0),
        (
            "spec.strategy.canary.abortScaleDownDelaySeconds",
            spec.strategy.canary.abort_scale_down_delay_seconds,
            0,
        ),
    ] {
        if value < minimum {
            problems.push(Problem::error(
                field,
                format!("{value} is below the minimum {minimum}: use {minimum} or more"),
            ));
        }
    }
    problems
}

fn validate_workload(spec: &RolloutSpec, problems: &mut Vec<Problem>) {
    if let Some(reference) = &spec.workload_ref {
        validate_workload_ref(spec, reference, problems);
        return;
    }
    match (&spec.selector, &spec.template) {
        (None, None) => problems.push(Problem::warning(
            "spec.template",
            "the Rollout has no pod template, so it is inert: Fife will report it and run nothing; add spec.selector and spec.template to deploy it",
        )),
        (Some(_), None) => problems.push(Problem::error(
            "spec.template",
            "spec.selector is set but spec.template is missing: add the pod template the selector should match",
        )),
        (None, Some(_)) => problems.push(Problem::error(
            "spec.selector",
            "spec.template is set but spec.selector is missing: add a selector matching the template's labels, e.g. matchLabels: {app: <name>}",
        )),
        (Some(selector), Some(template)) => {
            validate_selector(selector, template, problems);
            if spec.policy.require_digest {
                validate_digests(template, problems);
            }
        }
    }
}

/// The Services of a blue-green Rollout are two, and its analyses resolve like steps'. A
/// comparison metric is refused after the switch: the baseline runs only beside the preview.
fn validate_blue_green(
    spec: &RolloutSpec,
    strategy: &crate::rollout::BlueGreenStrategy,
    catalog: &TemplateCatalog,
    problems: &mut Vec<Problem>,
) {
    let path = "spec.strategy.blueGreen";
    if strategy.active_service.is_empty() {
        problems.push(Problem::error(
            format!("{path}.activeService"),
            "activeService is empty: name the Service that carries production traffic",
        ));
    }
    if strategy.preview_service.as_deref() == Some(strategy.active_service.as_str()) {
        problems.push(Problem::error(
            format!("{path}.previewService"),
            "previewService is the activeService: name a second Service, or remove previewService",
        ));
    }
    if let Some(count) = strategy.preview_replica_count
        && count > spec.replicas
    {
        problems.push(Problem::warning(
            format!("{path}.previewReplicaCount"),
            format!(
                "previewReplicaCount {count} is above spec.replicas {}: the preview runs {} pods",
                spec.replicas, spec.replicas
            ),
        ));
    }
    // Resolved as the engine runs it, so the pre-promotion analysis sees its baseline.
    let mut resolved = spec.clone();
    resolved.strategy.canary.baseline = strategy.pre_promotion_analysis.is_some();
    if let Some(pre) = &strategy.pre_promotion_analysis {
        validate_analysis_refs(
            &resolved,
            &pre.templates,
            &pre.args,
            &format!("{path}.prePromotionAnalysis"),
            catalog,
            problems,
        );
    }
    resolved.strategy.canary.baseline = false;
    if let Some(post) = &strategy.post_promotion_analysis {
        validate_analysis_refs(
            &resolved,
            &post.templates,
            &post.args,
            &format!("{path}.postPromotionAnalysis"),
            catalog,
            problems,
        );
    }
}

/// A `workloadRef` names a Deployment and replaces `template`; the Deployment itself is
/// checked by the controller, which reports a missing one on the Rollout.
fn validate_workload_ref(
    spec: &RolloutSpec,
    reference: &crate::rollout::WorkloadRef,
    problems: &mut Vec<Problem>,
) {
    if spec.template.is_some() {
        problems.push(Problem::error(
            "spec.template",
            "spec.template and spec.workloadRef are both set: keep workloadRef to take the pod template from the Deployment, or remove it to use spec.template",
        ));
    }
    if reference.api_version != "apps/v1" || reference.kind != "Deployment" {
        problems.push(Problem::error(
            "spec.workloadRef",
            format!(
                "workloadRef names a {} {}, but only a Deployment can be referenced: set apiVersion: apps/v1 and kind: Deployment",
                reference.api_version, reference.kind
            ),
        ));
    }
    if reference.name.is_empty() {
        problems.push(Problem::error(
            "spec.workloadRef.name",
            "the name is empty: name the Deployment whose pod template the Rollout runs",
        ));
    }
}

fn validate_selector(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    problems: &mut Vec<Problem>,
) {
    let empty = BTreeMap::new();
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    let match_labels = selector.match_labels.as_ref().filter(|m| !m.is_empty());
    let match_expressions = selector
        .match_expressions
        .as_ref()
        .filter(|m| !m.is_empty());
    if match_labels.is_none() && match_expressions.is_none() {
        problems.push(Problem::error(
            "spec.selector",
            "the selector is empty and would select every pod in the namespace: add matchLabels matching spec.template.metadata.labels",
        ));
        return;
    }
    for (key, want) in match_labels.into_iter().flatten() {
        if labels.get(key) != Some(want) {
            let found = labels
                .get(key)
                .map_or("no such label".to_owned(), |v| format!("{key}: {v}"));
            problems.push(Problem::error(
                format!("spec.selector.matchLabels.{key}"),
                format!(
                    "selector wants {key}: {want} but the pod template has {found}: add the label {key}: {want} to spec.template.metadata.labels or change the selector"
                ),
            ));
        }
    }
    for (i, requirement) in match_expressions.into_iter().flatten().enumerate() {
        let path = format!("spec.selector.matchExpressions[{i}]");
        let value = labels.get(&requirement.key);
        let values = requirement.values.as_deref().unwrap_or_default();
        let matches = match requirement.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                problems.push(Problem::error(
                    format!("{path}.operator"),
                    format!("unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"),
                ));
                continue;
            }
        };
        if !matches {
            problems.push(Problem::error(
                path,
                format!(
                    "the pod template's labels do not satisfy `{} {}`: change spec.template.metadata.labels or the selector so they match",
                    requirement.key, requirement.operator
                ),
            ));
        }
    }
}

/// The digest an image reference is pinned to: `sha256:<64 lower-case hex>` from
/// `name[:tag]@sha256:…`, the only form that names exactly one image (OCI digests are
/// lower-case); `None` for a tag alone or a malformed digest. The one reading of a pinned
/// reference: validation, the release gates and the signature check all call it.
pub fn image_digest(image: &str) -> Option<&str> {
    let (name, digest) = image.rsplit_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    let lower_hex = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (!name.is_empty() && lower_hex).then_some(digest)
}

/// `image@sha256:<64 hex>`: see [`image_digest`].
pub fn is_pinned_by_digest(image: &str) -> bool {
    image_digest(image).is_some()
}

fn validate_digests(template: &PodTemplateSpec, problems: &mut Vec<Problem>) {
    let Some(pod) = &template.spec else { return };
    let lists = [
        ("containers", Some(&pod.containers)),
        ("initContainers", pod.init_containers.as_ref()),
    ];
    for (field, containers) in lists {
        for (i, container) in containers.into_iter().flatten().enumerate() {
            let image = container.image.as_deref().unwrap_or_default();
            if !is_pinned_by_digest(image) {
                problems.push(Problem::error(
                    format!("spec.template.spec.{field}[{i}].image"),
                    format!(
                        "image {image:?} is not pinned by digest but spec.policy.requireDigest is true: use <image>@sha256:<64 hex digits> (e.g. from `crane digest {image}`)"
                    ),
                ));
            }
        }
    }
}

const ROUTING: &str = "spec.strategy.canary.trafficRouting";

fn validate_traffic_routing(
    spec: &RolloutSpec,
    routing: &TrafficRouting,
    problems: &mut Vec<Problem>,
) {
    let named = [
        routing.gateway_api.is_some(),
        routing.istio.is_some(),
        routing.nginx.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    if named == 0 {
        problems.push(Problem::error(
            ROUTING,
            "trafficRouting names no router: set gatewayAPI, istio or nginx, or remove trafficRouting to split traffic by replica counts",
        ));
    }
    if named > 1 {
        problems.push(Problem::error(
            ROUTING,
            "trafficRouting names more than one router: keep one of gatewayAPI, istio and nginx",
        ));
    }
    if let Some(gateway) = &routing.gateway_api
        && gateway.http_route.is_empty()
    {
        problems.push(Problem::error(
            format!("{ROUTING}.gatewayAPI.httpRoute"),
            "httpRoute is empty: name the HTTPRoute whose backend weights Fife should set",
        ));
    }
    if let Some(istio) = &routing.istio {
        if istio.virtual_service.name.is_empty() {
            problems.push(Problem::error(
                format!("{ROUTING}.istio.virtualService.name"),
                "name is empty: name the VirtualService whose route weights Fife should set",
            ));
        }
        if let Some(rule) = &istio.destination_rule {
            let path = format!("{ROUTING}.istio.destinationRule");
            let subsets = [
                ("stableSubsetName", Some(rule.stable_subset_name.as_str())),
                ("canarySubsetName", Some(rule.canary_subset_name.as_str())),
                ("baselineSubsetName", rule.baseline_subset_name.as_deref()),
            ];
            for (field, name) in subsets {
                if name == Some("") {
                    problems.push(Problem::error(
                        format!("{path}.{field}"),
                        format!("{field} is empty: name the DestinationRule subset of this role"),
                    ));
                }
            }
            let named: Vec<&str> = subsets.iter().filter_map(|(_, n)| *n).collect();
            if named
                .iter()
                .enumerate()
                .any(|(i, n)| named[..i].contains(n))
            {
                problems.push(Problem::error(
                    path.clone(),
                    "two roles share a subset name: give stable, canary and baseline a subset each, since Fife sets each subset's labels to select one role's pods",
                ));
            }
            if spec.strategy.canary.baseline && rule.baseline_subset_name.is_none() {
                problems.push(Problem::error(
                    format!("{path}.baselineSubsetName"),
                    "baseline: true needs a subset for the baseline's pods: set baselineSubsetName (e.g. baseline) and add the subset to the DestinationRule",
                ));
            }
        }
    }
    if let Some(nginx) = &routing.nginx {
        if nginx.stable_ingress.is_empty() {
            problems.push(Problem::error(
                format!("{ROUTING}.nginx.stableIngress"),
                "stableIngress is empty: name the Ingress whose rules send traffic to the stable Service",
            ));
        }
        if spec.strategy.canary.baseline {
            problems.push(Problem::error(
                "spec.strategy.canary.baseline",
                "ingress-nginx gives one canary Ingress per host a weight, so a baseline cannot get a share of its own: set baseline: false (compare the canary against the stable with a threshold metric), or route with istio or gatewayAPI to keep the baseline comparison",
            ));
        }
        for key in nginx.additional_ingress_annotations.keys() {
            if key == crate::rollout::NGINX_CANARY_ANNOTATION
                || key == crate::rollout::NGINX_CANARY_WEIGHT_ANNOTATION
            {
                problems.push(Problem::error(
                    format!("{ROUTING}.nginx.additionalIngressAnnotations.{key}"),
                    format!("{key} is Fife's to set on the canary Ingress: remove it"),
                ));
            }
        }
    }
}

fn validate_header_route(
    spec: &RolloutSpec,
    route: &SetHeaderRoute,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    let routes_headers = spec
        .strategy
        .canary
        .traffic_routing
        .as_ref()
        .is_some_and(TrafficRouting::routes_headers);
    if !routes_headers {
        problems.push(Problem::error(
            path,
            "setHeaderRoute needs a router that matches headers: set trafficRouting.gatewayAPI or trafficRouting.istio, or remove the step",
        ));
    }
    if route.name.is_empty() {
        problems.push(Problem::error(
            format!("{path}.name"),
            "name is empty: name the route, so a later step can replace or remove it",
        ));
    }
    for (i, m) in route.r#match.iter().enumerate() {
        let value = &m.header_value;
        let set = [&value.exact, &value.prefix, &value.regex]
            .into_iter()
            .filter(|v| v.is_some())
            .count();
        if m.header_name.is_empty() {
            problems.push(Problem::error(
                format!("{path}.match[{i}].headerName"),
                "headerName is empty: name the request header to match",
            ));
        }
        if set != 1 {
            problems.push(Problem::error(
                format!("{path}.match[{i}].headerValue"),
                "set exactly one of exact, prefix and regex",
            ));
        }
    }
}

fn validate_steps(spec: &RolloutSpec, catalog: &TemplateCatalog, problems: &mut Vec<Problem>) {
    for (i, step) in spec.steps().iter().enumerate() {
        let path = format!("spec.strategy.canary.steps[{i}]");
        match step {
            CanaryStep::SetWeight(weight) => {
                if !(0..=100).contains(weight) {
                    problems.push(Problem::error(
                        format!("{path}.setWeight"),
                        format!("setWeight {weight} is not a percentage: use 0 to 100"),
                    ));
                }
            }
            CanaryStep::Pause(_) => {}
            CanaryStep::SetHeaderRoute(route) => {
                validate_header_route(spec, route, &format!("{path}.setHeaderRoute"), problems)
            }
            CanaryStep::Analysis(analysis) => validate_analysis_refs(
                spec,
                &analysis.templates,
                &analysis.args,
                &format!("{path}.analysis"),
                catalog,
                problems,
            ),
        }
    }
}

fn validate_analysis_refs(
    spec: &RolloutSpec,
    templates: &[TemplateRef],
    args: &[Argument],
    path: &str,
    catalog: &TemplateCatalog,
    problems: &mut Vec<Problem>,
) {
    if templates.is_empty() {
        problems.push(Problem::error(
            format!("{path}.templates"),
            "no templates: name at least one, e.g. templates: [{templateName: my-template}]",
        ));
    }
    validate_args(args, &format!("{path}.args"), problems);
    let mut declared = BTreeSet::new();
    let mut resolved = Vec::new();
    for (i, reference) in templates.iter().enumerate() {
        match catalog.get(reference) {
            Some(template) => {
                declared.extend(template.args.iter().map(|a| a.name.clone()));
                resolved.push((reference, template));
            }
            None => {
                let kind = if reference.cluster_scope {
                    "ClusterAnalysisTemplate"
                } else {
                    "AnalysisTemplate"
                };
                problems.push(Problem::error(
                    format!("{path}.templates[{i}].templateName"),
                    format!(
                        "{kind} {:?} is not among the given files or --templates directory: add it, or fix the name{}",
                        reference.template_name,
                        if reference.cluster_scope {
                            ""
                        } else {
                            " (set clusterScope: true for a ClusterAnalysisTemplate)"
                        }
                    ),
                ));
            }
        }
    }
    if resolved.len() != templates.len() {
        // Argument checks need every template; the missing one was reported above.
        return;
    }
    let supplied: BTreeSet<&str> = args.iter().map(|a| a.name.as_str()).collect();
    for (i, arg) in args.iter().enumerate() {
        if !declared.contains(&arg.name) {
            problems.push(Problem::error(
                format!("{path}.args[{i}].name"),
                format!(
                    "no referenced template declares an argument {:?}: remove it or declare it in the template's spec.args (declared: {})",
                    arg.name,
                    list_or_none(&declared)
                ),
            ));
        }
    }
    for (reference, template) in resolved {
        for arg in &template.args {
            if arg.value.is_none()
                && arg.value_from.is_none()
                && !supplied.contains(arg.name.as_str())
            {
                problems.push(Problem::error(
                    format!("{path}.args"),
                    format!(
                        "template {:?} needs argument {:?}, which has no default: add {{name: {}, value: ...}}",
                        reference.template_name, arg.name, arg.name
                    ),
                ));
            }
        }
        if !spec.strategy.canary.baseline {
            for metric in template.metrics.iter().filter(|m| m.is_comparison()) {
                let fix = if spec.strategy.blue_green.is_some() {
                    "a blue-green Rollout runs its baseline beside the preview only: move the template to prePromotionAnalysis"
                } else {
                    "spec.strategy.canary.baseline is false: set baseline: true"
                };
                problems.push(Problem::error(
                    format!("{path}.templates"),
                    format!(
                        "template {:?} has comparison metric {:?}, which needs baseline pods, but {fix}",
                        reference.template_name, metric.name
                    ),
                ));
            }
        }
    }
}

fn list_or_none(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn validate_args(args: &[Argument], path: &str, problems: &mut Vec<Problem>) {
    let mut seen = BTreeSet::new();
    for (i, arg) in args.iter().enumerate() {
        let arg_path = format!("{path}[{i}]");
        if arg.name.is_empty() {
            problems.push(Problem::error(
                format!("{arg_path}.name"),
                "argument name is empty: give it a name",
            ));
        } else if !seen.insert(arg.name.as_str()) {
            problems.push(Problem::error(
                format!("{arg_path}.name"),
                format!("argument {:?} appears twice: keep one", arg.name),
            ));
        }
        if arg.value.is_some() && arg.value_from.is_some() {
            problems.push(Problem::error(
                arg_path.clone(),
                "both value and valueFrom are set: keep one",
            ));
        }
        if let Some(from) = &arg.value_from {
            if from.field_ref.is_some() == from.pod_template_hash_value.is_some() {
                problems.push(Problem::error(
                    format!("{arg_path}.valueFrom"),
                    "set exactly one of fieldRef or podTemplateHashValue",
                ));
            }
            if from
                .field_ref
                .as_ref()
                .is_some_and(|f| f.field_path.is_empty())
            {
                problems.push(Problem::error(
                    format!("{arg_path}.valueFrom.fieldRef.fieldPath"),
                    "fieldPath is empty: name a field of the Rollout, e.g. metadata.name",
                ));
            }
        }
    }
}

// === Templates and metrics ===

/// Validates an AnalysisTemplate's or ClusterAnalysisTemplate's spec.
pub fn validate_template(args: &[Argument], metrics: &[Metric]) -> Vec<Problem> {
    let mut problems = Vec::new();
    validate_args(args, "spec.args", &mut problems);
    let declared: BTreeSet<&str> = args.iter().map(|a| a.name.as_str()).collect();
    problems.extend(validate_metrics(metrics, Some(&declared)));
    problems
}

/// Validates metrics; `declared` is the set of argument names for `{{args.x}}`, or `None`
/// when placeholders should already be resolved (an AnalysisRun).
pub fn validate_metrics(metrics: &[Metric], declared: Option<&BTreeSet<&str>>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if metrics.is_empty() {
        problems.push(Problem::error(
            "spec.metrics",
            "no metrics: add at least one metric to measure",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, metric) in metrics.iter().enumerate() {
        let path = format!("spec.metrics[{i}]");
        if metric.name.is_empty() {
            problems.push(Problem::error(
                format!("{path}.name"),
                "metric name is empty: give it a name",
            ));
        } else if !names.insert(metric.name.as_str()) {
            problems.push(Problem::error(
                format!("{path}.name"),
                format!(
                    "metric name {:?} is used twice: names must be unique within a template",
                    metric.name
                ),
            ));
        }
        validate_metric(metric, &path, declared, &mut problems);
    }
    problems
}

fn validate_metric(
    metric: &Metric,
    path: &str,
    declared: Option<&BTreeSet<&str>>,
    problems: &mut Vec<Problem>,
) {
    validate_counts(metric, path, problems);
    let has_condition = metric.success_condition.is_some() || metric.failure_condition.is_some();
    match (&metric.compare, has_condition) {
        (None, false) => problems.push(Problem::error(
            path,
            "the metric has no successCondition, failureCondition or compare, so every measurement would be Inconclusive: add a condition such as successCondition: \"result[0] >= 0.99\"",
        )),
        (Some(_), true) => problems.push(Problem::error(
            format!("{path}.compare"),
            "a comparison metric cannot also have successCondition or failureCondition: keep compare, or remove it to make a threshold metric",
        )),
        _ => {}
    }
    for (field, condition) in [
        ("successCondition", &metric.success_condition),
        ("failureCondition", &metric.failure_condition),
    ] {
        if let Some(condition) = condition {
            validate_condition(condition, &format!("{path}.{field}"), declared, problems);
        }
    }
    if let Some(compare) = &metric.compare {
        validate_comparison(metric, compare, &format!("{path}.compare"), problems);
        if let Some(requests) = &compare.requests {
            let at = format!("{path}.compare.requests");
            validate_placeholders(requests, &at, declared, true, problems);
        }
    }
    match &metric.provider {
        MetricProvider::Prometheus(prometheus) => {
            let provider = format!("{path}.provider.prometheus");
            if prometheus.address.is_empty() {
                problems.push(Problem::error(
                    format!("{provider}.address"),
                    "address is empty: give the Prometheus base URL, e.g. http://prometheus.monitoring:9090",
                ));
            } else if !(prometheus.address.starts_with("http://")
                || prometheus.address.starts_with("https://")
                || placeholders(&prometheus.address).next().is_some())
            {
                problems.push(Problem::error(
                    format!("{provider}.address"),
                    format!("address {:?} is not an http(s) URL: write e.g. http://prometheus.monitoring:9090", prometheus.address),
                ));
            }
            if prometheus.query.trim().is_empty() {
                problems.push(Problem::error(
                    format!("{provider}.query"),
                    "query is empty: write the PromQL to evaluate",
                ));
            }
            for (field, text) in [
                ("address", &prometheus.address),
                ("query", &prometheus.query),
            ] {
                validate_placeholders(
                    text,
                    &format!("{provider}.{field}"),
                    declared,
                    metric.is_comparison(),
                    problems,
                );
            }
            if metric.is_comparison() && !uses_role(&prometheus.query) {
                problems.push(Problem::error(
                    format!("{provider}.query"),
                    "a comparison metric's query must contain {{role}} (e.g. fife_role=\"{{role}}\") so it selects the canary series and the baseline series in turn",
                ));
            }
            if let Some(range) = &prometheus.range {
                if range.lookback.is_zero() {
                    problems.push(Problem::error(
                        format!("{provider}.range.lookback"),
                        "lookback is zero: use the window to query, e.g. 5m",
                    ));
                }
                if range.step.is_zero() {
                    problems.push(Problem::error(
                        format!("{provider}.range.step"),
                        "step is zero: use the resolution of the range query, e.g. 15s",
                    ));
                } else if range.step > range.lookback {
                    problems.push(Problem::error(
                        format!("{provider}.range.step"),
                        format!("step {} is longer than lookback {}: the range would hold at most one point; use a step shorter than the lookback", range.step, range.lookback),
                    ));
                }
            }
            if prometheus.timeout.is_some_and(|t| t.is_zero()) {
                problems.push(Problem::error(
                    format!("{provider}.timeout"),
                    "timeout is zero: every query would fail; use e.g. 30s or leave it unset",
                ));
            }
            if let Some(auth) = &prometheus.auth
                && auth.bearer_token_secret_ref.is_some() == auth.basic_auth_secret_ref.is_some()
            {
                problems.push(Problem::error(
                    format!("{provider}.auth"),
                    "set exactly one of bearerTokenSecretRef or basicAuthSecretRef",
                ));
            }
        }
    }
}

fn validate_counts(metric: &Metric, path: &str, problems: &mut Vec<Problem>) {
    if let Some(count) = metric.count {
        if count < 1 {
            problems.push(Problem::error(
                format!("{path}.count"),
                format!("count {count} takes no measurement: use 1 or more, or leave it unset to measure until the step ends"),
            ));
        }
        if count > 1 && metric.interval.is_none() {
            problems.push(Problem::error(
                format!("{path}.interval"),
                format!("count is {count} but there is no interval between measurements: add an interval, e.g. interval: 1m"),
            ));
        }
        if metric.failure_limit >= count {
            problems.push(Problem::error(
                format!("{path}.failureLimit"),
                format!(
                    "failureLimit {} is not smaller than count {count}, so the metric can never fail: use a failureLimit below {count}",
                    metric.failure_limit
                ),
            ));
        }
        if metric.inconclusive_limit >= count {
            problems.push(Problem::error(
                format!("{path}.inconclusiveLimit"),
                format!(
                    "inconclusiveLimit {} is not smaller than count {count}, so the metric can never be Inconclusive: use an inconclusiveLimit below {count}",
                    metric.inconclusive_limit
                ),
            ));
        }
    }
    if metric.interval.is_some_and(|i| i.is_zero()) {
        problems.push(Problem::error(
            format!("{path}.interval"),
            "interval is zero: use the time between measurements, e.g. 1m",
        ));
    }
    for (field, value, minimum) in [
        ("failureLimit", metric.failure_limit, 0),
        ("inconclusiveLimit", metric.inconclusive_limit, 0),
        ("consecutiveErrorLimit", metric.consecutive_error_limit, 0),
        ("measurementRetention", metric.measurement_retention, 1),
    ] {
        if value < minimum {
            problems.push(Problem::error(
                format!("{path}.{field}"),
                format!("{field} {value} is below the minimum {minimum}: use {minimum} or more"),
            ));
        }
    }
}

fn validate_condition(
    condition: &str,
    path: &str,
    declared: Option<&BTreeSet<&str>>,
    problems: &mut Vec<Problem>,
) {
    validate_placeholders(condition, path, declared, false, problems);
    // Placeholders are substituted before compiling; a neutral stand-in keeps the syntax.
    let expression = render_placeholders_for_check(condition);
    match cel::Program::compile(&expression) {
        Err(err) => problems.push(Problem::error(
            path,
            format!(
                "CEL does not compile: {}; write an expression over `result`, e.g. \"result[0] >= 0.99\"",
                err.to_string().lines().next().unwrap_or_default()
            ),
        )),
        Ok(program) => {
            if !program.references().has_variable("result") {
                problems.push(Problem::error(
                    path,
                    "the condition never reads `result`, so it cannot depend on the measurement: compare result[0] (or another element) with a threshold",
                ));
            }
        }
    }
}

/// Replaces each `{{...}}` with `0` so the surrounding CEL can be compiled.
fn render_placeholders_for_check(text: &str) -> String {
    pieces(text)
        .map(|piece| match piece {
            Piece::Text(text) | Piece::Unclosed { rest: text, .. } => text,
            Piece::Placeholder { .. } => "0",
        })
        .collect()
}

fn validate_placeholders(
    text: &str,
    path: &str,
    declared: Option<&BTreeSet<&str>>,
    comparison: bool,
    problems: &mut Vec<Problem>,
) {
    let unbalanced = pieces(text).any(|piece| match piece {
        Piece::Text(text) => text.contains("}}"),
        Piece::Unclosed { .. } => true,
        Piece::Placeholder { .. } => false,
    });
    if unbalanced {
        problems.push(Problem::error(
            path,
            "unbalanced {{ }}: close every placeholder, e.g. {{args.service-name}}",
        ));
    }
    for placeholder in placeholders(text) {
        match placeholder {
            Placeholder::Role if !comparison => problems.push(Problem::error(
                path,
                "{{role}} only renders in comparison metrics (those with compare): add compare, or remove {{role}}",
            )),
            Placeholder::Role => {}
            Placeholder::Arg(arg) => match declared {
                Some(declared) if !declared.contains(arg) => problems.push(Problem::error(
                    path,
                    format!(
                        "{{{{args.{arg}}}}} names no declared argument: add {{name: {arg}}} to spec.args{}",
                        if declared.is_empty() {
                            String::new()
                        } else {
                            format!(" or use one of: {}", declared.iter().copied().collect::<Vec<_>>().join(", "))
                        }
                    ),
                )),
                None => problems.push(Problem::error(
                    path,
                    format!("{{{{args.{arg}}}}} was not substituted: an AnalysisRun holds resolved arguments"),
                )),
                Some(_) => {}
            },
            Placeholder::Unknown(placeholder) => problems.push(Problem::error(
                path,
                format!("unknown placeholder {{{{{placeholder}}}}}: use {{{{args.<name>}}}} or {{{{role}}}}"),
            )),
        }
    }
}

fn validate_comparison(
    metric: &Metric,
    compare: &Comparison,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    for problem in compare.judge_config().problems() {
        problems.push(Problem::error(
            format!("{path}.{}", problem.field()),
            problem.to_string(),
        ));
    }
    if compare.min_samples < 1 {
        problems.push(Problem::error(
            format!("{path}.minSamples"),
            format!(
                "minSamples {} must be at least 1: use e.g. 20",
                compare.min_samples
            ),
        ));
    }
    match (compare.test, &compare.requests) {
        (ComparisonTest::Counts, None) => problems.push(Problem::error(
            format!("{path}.requests"),
            "test: counts needs requests, the PromQL for each pod's requests (the metric's query counts its errors), e.g. sum by (pod) (increase(http_requests_total{fife_role=\"{{role}}\"}[1m]))",
        )),
        (ComparisonTest::Counts, Some(requests)) if !uses_role(requests) => {
            problems.push(Problem::error(
                format!("{path}.requests"),
                "requests must contain {{role}} so it can select the canary, baseline and stable pods, as the metric's query does",
            ));
        }
        (ComparisonTest::Pods | ComparisonTest::MannWhitney, Some(_)) => {
            problems.push(Problem::warning(
                format!("{path}.requests"),
                "requests is read only by test: counts: set test: counts to compare error ratios, or remove requests",
            ));
        }
        _ => {}
    }
    let looks = metric
        .count
        .unwrap_or(if metric.interval.is_some() { 2 } else { 1 });
    if compare.test == ComparisonTest::MannWhitney && looks > 1 {
        problems.push(Problem::warning(
            format!("{path}.test"),
            format!(
                "mannWhitney is judged afresh at each of {} measurements, each at α = 1 − confidence, so an identical canary is rolled back far more often than α (five looks at 5% is about 23%, more with autocorrelated pod series): use test: pods (the default), which spends α over the looks, or count: 1",
                metric.count.map_or("the".to_owned(), |c| c.to_string())
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_template(metrics: serde_json::Value) -> AnalysisTemplate {
        serde_json::from_value(json!({
            "apiVersion": "fife.dev/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "gate"},
            "spec": {"args": [{"name": "svc"}], "metrics": metrics}
        }))
        .unwrap()
    }

    fn mk_metric(extra: serde_json::Value) -> serde_json::Value {
        let mut metric = json!({
            "name": "m",
            "provider": {"prometheus": {"address": "http://p:9090", "query": "up{svc=\"{{args.svc}}\"}"}}
        });
        for (k, v) in extra.as_object().unwrap() {
            metric[k] = v.clone();
        }
        metric
    }

    fn template_problems(metric: serde_json::Value) -> Vec<Problem> {
        let t = mk_template(json!([metric]));
        validate_template(&t.spec.args, &t.spec.metrics)
    }

    fn has(problems: &[Problem], path: &str, text: &str) -> bool {
        problems
            .iter()
            .any(|p| p.path == path && p.message.contains(text))
    }

    fn mk_rollout(spec: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "fife.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn a_workload_ref_replaces_the_template_and_names_a_deployment() {
        let strategy = json!({"canary": {"steps": []}});
        let sound = mk_rollout(json!({
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "strategy": strategy
        }));
        let catalog = TemplateCatalog::default();
        assert_eq!(validate_rollout(&sound, &catalog), vec![]);
        assert_eq!(
            sound.spec.workload_ref.as_ref().unwrap().scale_down,
            crate::rollout::WorkloadScaleDown::Progressively,
            "Argo's default"
        );
        let both = mk_rollout(json!({
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "scaleDown": "onsuccess"},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}},
            "strategy": strategy
        }));
        let p = validate_rollout(&both, &catalog);
        assert!(has(&p, "spec.template", "both set"), "{p:?}");
        let stateful = mk_rollout(json!({
            "workloadRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web"},
            "strategy": strategy
        }));
        let p = validate_rollout(&stateful, &catalog);
        assert!(
            has(&p, "spec.workloadRef", "a apps/v1 StatefulSet"),
            "{p:?}"
        );
    }

    #[test]
    fn a_blue_green_rollout_names_two_services_and_writes_back_only_its_strategy() {
        let rollout = mk_rollout(json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}},
            "strategy": {"blueGreen": {"activeService": "web", "previewService": "web"}}
        }));
        let strategy = rollout.spec.strategy.blue_green.clone().unwrap();
        assert!(strategy.auto_promotion_enabled, "the default");
        assert_eq!(strategy.scale_down_delay_seconds, 30, "the default");
        assert_eq!(
            serde_json::to_value(&rollout.spec.strategy).unwrap(),
            json!({"blueGreen": {"activeService": "web", "previewService": "web",
                "autoPromotionEnabled": true, "scaleDownDelaySeconds": 30}}),
            "no default canary beside it"
        );
        let p = validate_rollout(&rollout, &TemplateCatalog::default());
        assert!(
            has(
                &p,
                "spec.strategy.blueGreen.previewService",
                "is the activeService"
            ),
            "{p:?}"
        );
        let problems = crate::schema_check::check(
            &json!({"apiVersion": "fife.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
                "spec": {"strategy": {"canary": {}, "blueGreen": {"activeService": "web"}}}}),
            &crate::schema_check::schema_for_kind("Rollout").unwrap(),
        );
        assert!(
            problems
                .iter()
                .any(|p| p.path == "spec.strategy" && p.message.contains("exactly one")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_sound_threshold_metric_has_no_problems() {
        let problems = template_problems(mk_metric(json!({
            "interval": "1m", "count": 5, "failureLimit": 1,
            "successCondition": "result[0] >= 0.99"
        })));
        assert_eq!(problems, vec![]);
    }

    #[test]
    fn conditions_must_parse_and_read_result() {
        let p = template_problems(mk_metric(json!({"successCondition": "result[0] >="})));
        assert!(
            has(
                &p,
                "spec.metrics[0].successCondition",
                "CEL does not compile"
            ),
            "{p:?}"
        );
        let p = template_problems(mk_metric(json!({"failureCondition": "value > 1"})));
        assert!(
            has(
                &p,
                "spec.metrics[0].failureCondition",
                "never reads `result`"
            ),
            "{p:?}"
        );
        let p = template_problems(mk_metric(
            json!({"successCondition": "result.all(x, x > {{args.svc}})"}),
        ));
        assert_eq!(p, vec![], "placeholders and macros are fine");
    }

    #[test]
    fn placeholders_must_name_declared_arguments_or_role() {
        let p = template_problems(mk_metric(json!({
            "successCondition": "result[0] > 0",
            "provider": {"prometheus": {"address": "http://p", "query": "x{a=\"{{args.nope}}\",b=\"{{ role }}\",c=\"{{pod}}\"}"}}
        })));
        let q = "spec.metrics[0].provider.prometheus.query";
        assert!(
            has(&p, q, "{{args.nope}} names no declared argument"),
            "{p:?}"
        );
        assert!(
            has(&p, q, "{{role}} only renders in comparison metrics"),
            "{p:?}"
        );
        assert!(has(&p, q, "unknown placeholder {{pod}}"), "{p:?}");
        assert_eq!(
            placeholders("a {{ x }} b {{y}}").collect::<Vec<_>>(),
            [Placeholder::Unknown("x"), Placeholder::Unknown("y")]
        );
    }

    #[test]
    fn mann_whitney_over_several_looks_is_a_warning_and_pods_is_not() {
        let metric = |test: &str| {
            mk_metric(json!({
                "count": 5, "interval": "1m",
                "compare": {"test": test},
                "provider": {"prometheus": {"address": "http://p", "query": "q{r=\"{{role}}\"}"}}
            }))
        };
        let p = template_problems(metric("mannWhitney"));
        let at = "spec.metrics[0].compare.test";
        assert!(has(&p, at, "each of 5 measurements"), "{p:?}");
        assert!(
            p.iter()
                .all(|p| p.path != at || p.severity == Severity::Warning)
        );
        assert!(
            !template_problems(metric("pods"))
                .iter()
                .any(|p| p.path == at)
        );
    }

    #[test]
    fn counts_needs_a_requests_query_with_role_and_declared_args() {
        let metric = |compare: serde_json::Value| {
            mk_metric(json!({
                "compare": compare,
                "provider": {"prometheus": {"address": "http://p", "query": "e{r=\"{{role}}\"}"}}
            }))
        };
        let at = "spec.metrics[0].compare.requests";
        let p = template_problems(metric(json!({"test": "counts"})));
        assert!(has(&p, at, "test: counts needs requests"), "{p:?}");
        let p = template_problems(metric(json!({"test": "counts", "requests": "n"})));
        assert!(has(&p, at, "must contain {{role}}"), "{p:?}");
        let p = template_problems(metric(
            json!({"test": "counts", "requests": "n{r=\"{{role}}\",s=\"{{args.nope}}\"}"}),
        ));
        assert!(has(&p, at, "names no declared argument"), "{p:?}");
        let p = template_problems(metric(
            json!({"test": "counts", "requests": "n{r=\"{{role}}\",s=\"{{args.svc}}\"}"}),
        ));
        assert!(!p.iter().any(|p| p.path == at), "{p:?}");
        let p = template_problems(metric(json!({"requests": "n{r=\"{{role}}\"}"})));
        assert!(
            p.iter()
                .any(|p| p.path == at && p.severity == Severity::Warning),
            "{p:?}"
        );
        let c: Comparison = serde_json::from_value(json!({"test": "counts"})).unwrap();
        assert_eq!(c.judge_config().test, fife_judge::Test::Counts);
    }

    #[test]
    fn comparison_bounds_are_the_judges() {
        let c: Comparison = serde_json::from_value(json!({
            "allowedIncrease": 0.9, "scale": "linear", "test": "mannWhitney"
        }))
        .unwrap();
        let config = c.judge_config();
        assert_eq!(config.scale, fife_judge::Scale::Linear);
        assert_eq!(config.test, fife_judge::Test::MannWhitney);
        let mut problems = Vec::new();
        let metric: Metric = serde_json::from_value(mk_metric(json!({}))).unwrap();
        validate_comparison(&metric, &c, "compare", &mut problems);
        let expected = config.validate().unwrap_err().to_string();
        assert!(
            has(&problems, "compare.allowedIncrease", &expected),
            "{problems:?}"
        );
        assert_eq!(Comparison::default().test, ComparisonTest::Pods);
    }

    #[test]
    fn comparison_metrics_need_role_and_sane_settings() {
        let p = template_problems(mk_metric(json!({
            "compare": {"confidence": 1.0, "allowedDecrease": 1.5, "outliers": {"strategy": "removeIqr", "factor": -1.0}},
            "provider": {"prometheus": {"address": "http://p", "query": "up",
                         "range": {"lookback": "1m", "step": "5m"}}}
        })));
        let at = |f: &str| format!("spec.metrics[0].{f}");
        assert!(
            has(
                &p,
                &at("provider.prometheus.query"),
                "must contain {{role}}"
            ),
            "{p:?}"
        );
        assert!(
            has(&p, &at("compare.confidence"), "strictly between"),
            "{p:?}"
        );
        assert!(has(&p, &at("compare.allowedDecrease"), "(0, 1]"), "{p:?}");
        assert!(
            has(&p, &at("compare.outliers.factor"), "at least 0"),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                &at("provider.prometheus.range.step"),
                "longer than lookback"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn metric_shape_rules() {
        let p = template_problems(mk_metric(json!({})));
        assert!(has(&p, "spec.metrics[0]", "no successCondition"), "{p:?}");
        let p = template_problems(mk_metric(json!({
            "successCondition": "result[0] > 0", "count": 2, "interval": "1m", "inconclusiveLimit": 2
        })));
        assert!(
            has(
                &p,
                "spec.metrics[0].inconclusiveLimit",
                "never be Inconclusive"
            ),
            "{p:?}"
        );
        let t = mk_template(json!([
            mk_metric(json!({"successCondition": "result[0] > 0"})),
            mk_metric(json!({"successCondition": "result[0] > 0"}))
        ]));
        let p = validate_template(&t.spec.args, &t.spec.metrics);
        assert!(has(&p, "spec.metrics[1].name", "used twice"), "{p:?}");
    }

    #[test]
    fn run_metrics_must_have_arguments_substituted() {
        let metric: Metric =
            serde_json::from_value(mk_metric(json!({"successCondition": "result[0] > 0"})))
                .unwrap();
        let p = validate_metrics(&[metric], None);
        assert!(
            has(
                &p,
                "spec.metrics[0].provider.prometheus.query",
                "not substituted"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn digest_pinning() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(is_pinned_by_digest(&format!(
            "reg.example.com/app@sha256:{hex}"
        )));
        assert!(!is_pinned_by_digest("reg.example.com/app:1.0"));
        assert!(!is_pinned_by_digest(&format!("@sha256:{hex}")));
        assert!(!is_pinned_by_digest("app@sha256:abc"));
        assert!(!is_pinned_by_digest(&format!(
            "app@sha256:{}",
            hex.to_uppercase()
        )));
        assert_eq!(
            image_digest(&format!("reg.example.com:5000/app:1.0@sha256:{hex}")),
            Some(format!("sha256:{hex}").as_str())
        );
    }

    #[test]
    fn selector_expressions_are_evaluated_against_template_labels() {
        let rollout = mk_rollout(json!({
            "selector": {"matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web"]},
                {"key": "tier", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist"}
            ]},
            "template": {"metadata": {"labels": {"app": "web", "canary": "x"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "strategy": {"canary": {}}
        }));
        let p = validate_rollout(&rollout, &TemplateCatalog::default());
        assert!(
            !p.iter()
                .any(|p| p.path == "spec.selector.matchExpressions[0]"),
            "{p:?}"
        );
        assert!(
            has(&p, "spec.selector.matchExpressions[1]", "tier Exists"),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                "spec.selector.matchExpressions[2]",
                "canary DoesNotExist"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn background_analysis_and_template_references() {
        let rollout = mk_rollout(json!({
            "strategy": {"canary": {
                "steps": [{"setWeight": 10}, {"setWeight": 101}],
                "analysis": {"startingStep": 2, "templates": [{"templateName": "gate"}],
                             "args": [{"name": "svc", "value": "web"}]}
            }}
        }));
        let mut catalog = TemplateCatalog::default();
        let p = validate_rollout(&rollout, &catalog);
        assert!(
            has(
                &p,
                "spec.strategy.canary.analysis.startingStep",
                "from 0 to 1"
            ),
            "{p:?}"
        );
        assert!(
            has(&p, "spec.strategy.canary.steps[1].setWeight", "0 to 100"),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                "spec.strategy.canary.analysis.templates[0].templateName",
                "not among"
            ),
            "{p:?}"
        );
        assert!(has(&p, "spec.template", "inert"), "{p:?}");
        assert!(p.iter().any(|p| p.severity == Severity::Warning));

        catalog.add_template(&mk_template(json!([mk_metric(
            json!({"successCondition": "result[0] > 0"})
        )])));
        let p = validate_rollout(&rollout, &catalog);
        assert!(!p.iter().any(|p| p.path.contains("templateName")), "{p:?}");
        let cluster_ref = mk_rollout(json!({"strategy": {"canary": {"steps": [
            {"analysis": {"templates": [{"templateName": "gate", "clusterScope": true}]}}
        ]}}}));
        let p = validate_rollout(&cluster_ref, &catalog);
        assert!(
            has(
                &p,
                "spec.strategy.canary.steps[0].analysis.templates[0].templateName",
                "ClusterAnalysisTemplate"
            ),
            "{p:?}"
        );
    }

    /// The errors (not the warning that the Rollout has no template) about `canary`.
    fn routing_problems(canary: serde_json::Value) -> Vec<Problem> {
        validate_rollout(
            &mk_rollout(json!({ "strategy": { "canary": canary } })),
            &TemplateCatalog::default(),
        )
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .collect()
    }

    #[test]
    fn one_router_is_named_and_nginx_refuses_a_baseline_it_cannot_weigh() {
        let routing = "spec.strategy.canary.trafficRouting";
        let p = routing_problems(json!({ "trafficRouting": {
            "gatewayAPI": { "httpRoute": "web" }, "istio": { "virtualService": { "name": "web" } }
        } }));
        assert!(has(&p, routing, "more than one router"), "{p:?}");
        let p = routing_problems(json!({ "trafficRouting": {} }));
        assert!(has(&p, routing, "names no router"), "{p:?}");
        let p = routing_problems(json!({ "baseline": true,
            "trafficRouting": { "nginx": { "stableIngress": "web",
                "additionalIngressAnnotations": { "canary-weight": "5" } } } }));
        assert!(
            has(&p, "spec.strategy.canary.baseline", "baseline: false"),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                &format!("{routing}.nginx.additionalIngressAnnotations.canary-weight"),
                "Fife's to set"
            ),
            "{p:?}"
        );
        let p =
            routing_problems(json!({ "trafficRouting": { "nginx": { "stableIngress": "web" } } }));
        assert_eq!(p, vec![]);
    }

    #[test]
    fn istio_subsets_are_one_per_role_and_the_baseline_needs_one() {
        let p = routing_problems(json!({ "baseline": true, "trafficRouting": { "istio": {
            "virtualService": { "name": "web", "routes": ["primary"] },
            "destinationRule": { "name": "web", "stableSubsetName": "v", "canarySubsetName": "v" }
        } } }));
        let rule = "spec.strategy.canary.trafficRouting.istio.destinationRule";
        assert!(has(&p, rule, "share a subset name"), "{p:?}");
        assert!(
            has(&p, &format!("{rule}.baselineSubsetName"), "baseline: true"),
            "{p:?}"
        );
        let p = routing_problems(json!({ "baseline": true, "trafficRouting": { "istio": {
            "virtualService": { "name": "web" },
            "destinationRule": { "name": "web", "stableSubsetName": "stable",
                "canarySubsetName": "canary", "baselineSubsetName": "baseline" }
        } } }));
        assert_eq!(p, vec![]);
    }

    #[test]
    fn header_routes_need_a_router_that_matches_headers_and_one_kind_of_match() {
        let step = json!({ "setHeaderRoute": { "name": "beta", "match": [
            { "headerName": "x-beta", "headerValue": { "exact": "1", "regex": "1" } }
        ] } });
        let p = routing_problems(json!({ "steps": [step],
            "trafficRouting": { "nginx": { "stableIngress": "web" } } }));
        let path = "spec.strategy.canary.steps[0].setHeaderRoute";
        assert!(has(&p, path, "gatewayAPI or trafficRouting.istio"), "{p:?}");
        assert!(
            has(&p, &format!("{path}.match[0].headerValue"), "exactly one"),
            "{p:?}"
        );
        let p = routing_problems(json!({ "steps": [{ "setHeaderRoute": { "name": "beta" } }],
            "trafficRouting": { "gatewayAPI": { "httpRoute": "web" } } }));
        assert_eq!(p, vec![], "a step without match removes the route");
    }
}
