//! Flagger's `Canary` and `MetricTemplate` as Fife objects. A Canary becomes a Rollout that
//! adopts the same Deployment (`workloadRef`), its schedule (`stepWeight` every `interval` up
//! to `maxWeight`) written out as steps, and its metrics an AnalysisTemplate that runs in the
//! background; a MetricTemplate becomes an AnalysisTemplate. Every field without an exact
//! counterpart is written as a comment saying what Fife does instead.

use std::collections::{BTreeMap, BTreeSet};

use fife_api::placeholder::Placeholder;
use serde_json::{Value, json};

use super::commented::{Item, Map};
use super::manifest::{
    Converted, Options, argument_names, duration, fields, integer, metadata, note, object,
    placeholders, source_header,
};

/// Flagger's default query window of a metric and its default analysis interval.
const DEFAULT_INTERVAL: &str = "1m";

/// Why a Flagger kind other than Canary and MetricTemplate has no counterpart.
pub fn why_not(kind: &str) -> &'static str {
    match kind {
        "AlertProvider" => {
            "Fife reports through Kubernetes Events and its audit webhook (`fife controller --webhook-url`, docs/alerting.md); remove the AlertProvider"
        }
        _ => "fife convert reads Canary and MetricTemplate from flagger.app",
    }
}

/// The MetricTemplates among the input, by namespace and name, so a Canary's `templateRef`
/// can take the query.
#[derive(Debug, Default)]
pub struct MetricTemplates {
    by_name: BTreeMap<(String, String), Value>,
}

impl MetricTemplates {
    pub fn collect<'a>(values: impl Iterator<Item = &'a Value>) -> Self {
        let by_name = values
            .filter(|v| {
                v.get("kind").and_then(Value::as_str) == Some("MetricTemplate")
                    && v.get("apiVersion")
                        .and_then(Value::as_str)
                        .is_some_and(|a| a.starts_with("flagger.app/"))
            })
            .filter_map(|v| {
                let name = v.pointer("/metadata/name")?.as_str()?.to_owned();
                let namespace = namespace_of(v);
                Some((
                    (namespace, name),
                    v.get("spec").cloned().unwrap_or(Value::Null),
                ))
            })
            .collect();
        MetricTemplates { by_name }
    }

    fn get(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.by_name.get(&(namespace.to_owned(), name.to_owned()))
    }
}

fn namespace_of(value: &Value) -> String {
    value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned()
}

// === Canary ===

/// What a Canary's analysis sets for all its metrics.
struct Checks<'a> {
    /// Flagger's `analysis.interval`: how often every metric is checked.
    interval: &'a str,
    /// Flagger's `analysis.threshold`: failed checks before the rollback.
    threshold: i64,
    /// The mesh or ingress, which decides the built-in queries.
    provider: Option<&'a str>,
    /// The Canary's namespace, where a `templateRef` without one looks.
    namespace: &'a str,
    /// Flagger's `iterations` of a Blue/Green: measurements before the switch. `None`: the
    /// metrics run in the background until the rollout ends.
    count: Option<i64>,
}

/// Converts a Canary into a Rollout and, when it has metrics, the AnalysisTemplate they become.
pub fn canary(value: &Value, options: &Options, templates: &MetricTemplates) -> Vec<Converted> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("canary")
        .to_owned();
    let namespace = namespace_of(value);
    let mut rest = fields(value.get("spec").unwrap_or(&Value::Null));
    let mut spec = Map::new();
    let target = rest.remove("targetRef").unwrap_or(Value::Null);
    let target_name = target
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&name)
        .to_owned();
    let mut workload = Map::new();
    for key in ["apiVersion", "kind", "name"] {
        if let Some(v) = target.get(key) {
            workload.insert(key, v.clone());
        }
    }
    workload.insert_noted(
        "scaleDown",
        "onsuccess",
        "Flagger scaled the target Deployment to zero once its NAME-primary copy ran; Fife takes over the Deployment's pods and scales it down once the Rollout is healthy",
    );
    spec.note(
        "replicas: Flagger copied the Deployment's replicas into NAME-primary; set spec.replicas to the Deployment's (1 when unset), or point the HorizontalPodAutoscaler at the Rollout",
    );
    spec.insert("workloadRef", workload);
    let service_name = rest
        .get("service")
        .and_then(|s| s.get("name"))
        .and_then(Value::as_str)
        .unwrap_or(&target_name)
        .to_owned();
    let provider = rest
        .remove("provider")
        .and_then(|p| p.as_str().map(str::to_owned));
    let ingress = rest.remove("ingressRef");

    let analysis = rest.remove("analysis").unwrap_or(Value::Null);
    let mut analysis_rest = fields(&analysis);
    // Iterations without weights is Flagger's Blue/Green: the canary is tested at full size
    // behind its own Service, then all traffic switches at once, which is Fife's blueGreen.
    let blue_green = analysis_rest.contains_key("iterations")
        && !analysis_rest.contains_key("stepWeight")
        && !analysis_rest.contains_key("stepWeights")
        && !analysis_rest.contains_key("match");
    let iterations = if blue_green {
        analysis_rest
            .remove("iterations")
            .and_then(|i| integer(&i).ok())
            .map(|i| i.max(1))
    } else {
        None
    };

    // The strategy's body: `canary`, or `blueGreen` for Flagger's Blue/Green.
    let mut canary = Map::new();
    if blue_green {
        canary.insert_noted(
            "activeService",
            service_name.as_str(),
            format!(
                "Flagger's Blue/Green ({} iterations without weights): the Service {service_name} serves the active version and {service_name}-canary the preview",
                iterations.unwrap_or(1)
            ),
        );
        canary.insert("previewService", format!("{service_name}-canary"));
        if let Some(p) = provider.as_deref().filter(|p| *p != "kubernetes") {
            canary.note(format!(
                "provider: {p} — the blue-green switch moves the Services' selectors; no router is needed"
            ));
        }
    } else if let Some(routing) = traffic_routing(
        provider.as_deref(),
        &service_name,
        ingress.as_ref(),
        &mut canary,
    ) {
        canary.insert("trafficRouting", routing);
    }
    let interval = analysis_rest
        .remove("interval")
        .map(|v| duration(&v).unwrap_or_else(|_| DEFAULT_INTERVAL.to_owned()))
        .unwrap_or_else(|| DEFAULT_INTERVAL.to_owned());
    let threshold = analysis_rest
        .remove("threshold")
        .and_then(|t| integer(&t).ok())
        .unwrap_or(1)
        .max(1);
    let webhooks = analysis_rest
        .remove("webhooks")
        .and_then(|w| w.as_array().cloned())
        .unwrap_or_default();
    let gate = |kind: &str| {
        webhooks
            .iter()
            .any(|w| w.get("type").and_then(Value::as_str) == Some(kind))
    };
    let steps = if blue_green {
        if gate("confirm-promotion") {
            canary.insert_noted(
                "autoPromotionEnabled",
                false,
                "confirm-promotion webhook: Fife waits for `kubectl fife promote` before the switch",
            );
        }
        Vec::new()
    } else {
        steps(&mut analysis_rest, &interval, &gate)
    };
    // The Canary-wide variables of Flagger's queries, as the arguments the Rollout passes.
    let arguments: BTreeMap<&str, Value> = BTreeMap::from([
        (
            "namespace",
            json!({"name": "namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        ),
        (
            "name",
            json!({"name": "name", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        ),
        (
            "target",
            json!({"name": "target", "value": format!("{name}-canary")}),
        ),
        ("service", json!({"name": "service", "value": service_name})),
        (
            "ingress",
            json!({"name": "ingress", "value": ingress.as_ref().and_then(|i| i.get("name")).cloned().unwrap_or(Value::String(String::new()))}),
        ),
    ]);
    let template_name = format!("{name}-analysis");
    let metrics = analysis_rest
        .remove("metrics")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    let mut analysis_template = None;
    if !metrics.is_empty() {
        let checks = Checks {
            interval: &interval,
            threshold,
            provider: provider.as_deref(),
            namespace: &namespace,
            count: iterations,
        };
        match metrics_template(value, &metrics, &checks, options, templates) {
            Ok((template, used)) => {
                let mut background = Map::new();
                background.insert(
                    "templates",
                    vec![Item::new(json!({"templateName": template_name}))],
                );
                let args: Vec<Item> = used
                    .iter()
                    .filter_map(|u| arguments.get(u.as_str()))
                    .map(|a| Item::new(a.clone()))
                    .collect();
                if !args.is_empty() {
                    background.insert("args", args);
                }
                if blue_green {
                    canary.insert_noted(
                "prePromotionAnalysis",
                background,
                format!(
                    "Flagger checked every metric each interval ({interval}), {} times, before the switch; Fife measures each metric as often before promoting, each failing after {threshold} failure(s)",
                    iterations.unwrap_or(1)
                ),
            );
                } else {
                    canary.insert_noted(
                "analysis",
                background,
                format!(
                    "Flagger checked every metric each interval ({interval}) and rolled back after {threshold} failed check(s); Fife runs them in the background for the whole rollout, each metric failing after {threshold} failure(s)"
                ),
            );
                }
                if used.contains("target") {
                    canary.note(format!(
                "Flagger's {{{{ target }}}} matched the Deployment under test ({target_name}); Fife's canary pods belong to the Deployment {name}-canary, which the target argument names"
            ));
                }
                analysis_template = Some(template);
            }
            Err(notes) => {
                for n in notes {
                    canary.note(n);
                }
            }
        }
    }
    if !blue_green {
        canary.insert("steps", steps);
    }
    for w in &webhooks {
        let kind = w.get("type").and_then(Value::as_str).unwrap_or("rollout");
        let hook = w.get("name").and_then(Value::as_str).unwrap_or("");
        let why = match kind {
            "confirm-promotion" if blue_green => {
                "autoPromotionEnabled: false waits for `kubectl fife promote` (recorded with who promoted)"
            }
            "confirm-rollout" | "confirm-traffic-increase" if blue_green => {
                "left out: a blue-green switch has one gate, autoPromotionEnabled: false"
            }
            "confirm-rollout" | "confirm-traffic-increase" | "confirm-promotion" => {
                "a `pause: {}` step waits for `kubectl fife promote` (recorded with who promoted) at the same point"
            }
            "pre-rollout" | "rollout" => {
                "left out: run load and conformance tests outside Fife and judge their effect with metrics"
            }
            "post-rollout" | "event" => {
                "left out: the audit webhook (`fife controller --webhook-url`) reports every decision"
            }
            "rollback" => "left out: `kubectl fife abort` rolls back by hand",
            _ => "no counterpart in Fife: left out",
        };
        canary.note(note(&format!("webhooks {hook} ({kind})"), w, why));
    }
    for (key, v) in analysis_rest {
        let why = match key.as_str() {
            "alerts" => {
                "left out: Fife reports through Events and its audit webhook (docs/alerting.md)"
            }
            "match" => {
                "left out: A/B routing by header is a setHeaderRoute step ({name, match: [{headerName, headerValue: {exact|prefix|regex}}]})"
            }
            "mirror" | "mirrorWeight" => "left out: Fife does not mirror traffic",
            "primaryReadyThreshold" | "canaryReadyThreshold" => {
                "left out: a step waits for all canary pods to be ready"
            }
            "stepWeightPromotion" => "left out: the promotion moves all traffic at once",
            "sessionAffinity" => "left out: no sticky routing to the canary",
            _ => "no counterpart in Fife: left out",
        };
        canary.note(note(&format!("analysis.{key}"), &v, why));
    }
    let mut strategy = Map::new();
    strategy.insert(if blue_green { "blueGreen" } else { "canary" }, canary);
    spec.insert("strategy", strategy);
    if let Some(v) = rest.remove("progressDeadlineSeconds") {
        spec.insert("progressDeadlineSeconds", v);
    }
    for (key, v) in rest {
        let why = match key.as_str() {
            "autoscalerRef" => {
                "left out: point the HorizontalPodAutoscaler at the Rollout, which has the scale subresource"
            }
            "service" => {
                "left out: Fife creates the Services it routes to, NAME-stable, NAME-canary and NAME-baseline; ports come from the pod template"
            }
            "skipAnalysis" => "left out: remove the analysis from the Rollout to skip it",
            "suspend" => "left out: `spec.paused: true` holds a Rollout where it is",
            "revertOnDeletion" => {
                "left out: deleting a Rollout with workloadRef leaves the Deployment; scale it back up first"
            }
            _ => "no counterpart in Fife: left out",
        };
        spec.note(note(&key, &v, why));
    }
    let mut converted = vec![Converted {
        header: source_header("Flagger", value, ""),
        object: object("Rollout", metadata(value, ""), spec),
    }];
    converted.extend(analysis_template);
    converted
}

fn traffic_routing(
    provider: Option<&str>,
    service: &str,
    ingress: Option<&Value>,
    canary: &mut Map,
) -> Option<Map> {
    let mut routing = Map::new();
    match provider.unwrap_or("istio") {
        "istio" => {
            routing.insert_noted(
                "istio",
                json!({"virtualService": {"name": service}}),
                format!(
                    "Flagger generated the VirtualService {service}; Fife sets the route weights of an existing one, whose route sends traffic to the stable Service ({service}-stable when the Rollout is named {service}){}",
                    if provider.is_none() { ". Flagger's default provider is istio" } else { "" }
                ),
            );
        }
        "nginx" => {
            let Some(name) = ingress.and_then(|i| i.get("name")) else {
                canary.note("provider: nginx — without ingressRef there is no stable Ingress to name: traffic follows replica counts");
                return None;
            };
            routing.insert_noted(
                "nginx",
                json!({"stableIngress": name}),
                "Flagger's ingressRef is the stable Ingress; Fife makes the canary Ingress beside it",
            );
        }
        "gatewayapi" | "gatewayapi:v1" | "gatewayapi:v1beta1" => {
            routing.insert_noted(
                "gatewayAPI",
                json!({"httpRoute": service}),
                format!("Flagger generated the HTTPRoute {service}; Fife sets the backend weights of an existing one"),
            );
        }
        "kubernetes" => {
            canary.note("provider: kubernetes — no router: traffic follows replica counts");
            return None;
        }
        other => {
            canary.note(format!(
                "provider: {other} — no such router in Fife (Gateway API, Istio, NGINX): traffic follows replica counts"
            ));
            return None;
        }
    }
    Some(routing)
}

/// Flagger's schedule written out: `setWeight` and a pause of one interval per weight, with
/// the confirmation webhooks as manual gates.
fn steps(
    analysis: &mut BTreeMap<String, Value>,
    interval: &str,
    gate: &dyn Fn(&str) -> bool,
) -> Vec<Item> {
    let step_weights: Option<Vec<i64>> = analysis
        .remove("stepWeights")
        .and_then(|w| w.as_array().cloned())
        .map(|w| w.iter().filter_map(|v| integer(v).ok()).collect());
    let step_weight = analysis.remove("stepWeight").and_then(|w| integer(&w).ok());
    let max_weight = analysis.remove("maxWeight").and_then(|w| integer(&w).ok());
    let iterations = analysis.remove("iterations").and_then(|w| integer(&w).ok());
    let weights: Vec<i64> = match (step_weights, step_weight) {
        (Some(weights), _) => weights,
        (None, Some(step)) if step > 0 => {
            let max = max_weight.unwrap_or(100).min(100);
            (1..).map(|i| i * step).take_while(|w| *w <= max).collect()
        }
        _ => Vec::new(),
    };
    let mut steps = Vec::new();
    if gate("confirm-rollout") {
        steps.push(Item::noted(
            json!({"pause": {}}),
            "confirm-rollout webhook: Fife waits for `kubectl fife promote` before the first weight",
        ));
    }
    for (i, weight) in weights.iter().enumerate() {
        if i > 0 && gate("confirm-traffic-increase") {
            steps.push(Item::noted(
                json!({"pause": {}}),
                "confirm-traffic-increase webhook: Fife waits for `kubectl fife promote`",
            ));
        }
        let mut step = Map::new();
        step.insert("setWeight", *weight);
        steps.push(if i == 0 {
            Item::noted(
                step,
                match (step_weight, max_weight) {
                    (Some(s), Some(m)) => format!("Flagger's stepWeight {s} up to maxWeight {m}, one interval ({interval}) each"),
                    _ => format!("Flagger's stepWeights, one interval ({interval}) each"),
                },
            )
        } else {
            Item::new(step)
        });
        steps.push(Item::new(json!({"pause": {"duration": interval}})));
    }
    if weights.is_empty() {
        let rounds = iterations.unwrap_or(1).max(1);
        // `interval` is already in Fife's canonical form.
        let total = interval
            .parse::<fife_api::Duration>()
            .map(|d| {
                fife_api::Duration::from_millis(d.as_millis() * rounds.unsigned_abs()).to_string()
            })
            .unwrap_or_else(|_| interval.to_owned());
        steps.push(Item::noted(
            json!({"pause": {"duration": total}}),
            format!(
                "Flagger's iterations ({rounds}) without stepWeight test the canary before switching all traffic; Fife bakes it this long, the analysis running, then promotes"
            ),
        ));
    }
    if gate("confirm-promotion") {
        steps.push(Item::noted(
            json!({"pause": {}}),
            "confirm-promotion webhook: Fife waits for `kubectl fife promote` before the promotion",
        ));
    }
    steps
}

/// The AnalysisTemplate the Canary's metrics become, and the Flagger variables its queries
/// use; `Err` holds why each metric was left out when none could be converted.
fn metrics_template(
    canary: &Value,
    metrics: &[Value],
    checks: &Checks<'_>,
    options: &Options,
    templates: &MetricTemplates,
) -> Result<(Converted, BTreeSet<String>), Vec<String>> {
    let Checks {
        interval,
        threshold,
        provider,
        namespace,
        count,
    } = *checks;
    let mut spec = Map::new();
    let mut items = Vec::new();
    let mut notes = Vec::new();
    let mut used = BTreeSet::new();
    for metric in metrics {
        let flagger_name = metric
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("metric");
        let window = metric
            .get("interval")
            .and_then(|w| duration(w).ok())
            .unwrap_or_else(|| DEFAULT_INTERVAL.to_owned());
        let variables: BTreeMap<String, String> = metric
            .get("templateVariables")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let source = if let Some(reference) = metric.get("templateRef") {
            let ref_name = reference.get("name").and_then(Value::as_str).unwrap_or("");
            let ref_namespace = reference
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(namespace);
            match templates.get(ref_namespace, ref_name) {
                Some(spec) if provider_type(spec) == "prometheus" => Some((
                    spec.get("query")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    spec.pointer("/provider/address")
                        .and_then(Value::as_str)
                        .unwrap_or(&options.prometheus)
                        .to_owned(),
                    spec.pointer("/provider/insecureSkipVerify").cloned(),
                    format!("the query of MetricTemplate {ref_namespace}/{ref_name}"),
                )),
                Some(spec) => {
                    notes.push(note(
                        &format!("metric {flagger_name}"),
                        metric,
                        &format!(
                            "left out: its MetricTemplate reads {}, and Fife reads Prometheus only",
                            provider_type(spec)
                        ),
                    ));
                    None
                }
                None => {
                    notes.push(note(
                        &format!("metric {flagger_name}"),
                        metric,
                        &format!(
                            "left out: MetricTemplate {ref_namespace}/{ref_name} is not among the converted files; convert it in the same command to take its query"
                        ),
                    ));
                    None
                }
            }
        } else if let Some(query) = metric.get("query").and_then(Value::as_str) {
            Some((
                query.to_owned(),
                options.prometheus.clone(),
                None,
                "the metric's query".to_owned(),
            ))
        } else {
            match builtin_query(flagger_name, provider) {
                Some(query) => Some((
                    query.to_owned(),
                    options.prometheus.clone(),
                    None,
                    format!(
                        "Flagger's built-in {flagger_name} for {}, written out",
                        provider.unwrap_or("istio")
                    ),
                )),
                None => {
                    notes.push(note(
                        &format!("metric {flagger_name}"),
                        metric,
                        &format!(
                            "left out: no built-in {flagger_name} query for provider {}; write it as a PromQL query",
                            provider.unwrap_or("istio")
                        ),
                    ));
                    None
                }
            }
        };
        let Some((query, address, insecure, origin)) = source else {
            continue;
        };
        let query = render_query(&query, &window, &variables);
        used.extend(argument_names(&query));
        let mut out = Map::new();
        let name = metric_name(flagger_name);
        if name == flagger_name {
            out.insert("name", name);
        } else {
            out.insert_noted("name", name, format!("Flagger's metric {flagger_name:?}"));
        }
        out.insert_noted(
            "interval",
            interval,
            format!("Flagger's analysis interval; the metric's own interval ({window}) is the query window"),
        );
        if let Some(count) = count {
            out.insert_noted("count", count, "Flagger's iterations");
        }
        match threshold_condition(metric.get("thresholdRange")) {
            Some(condition) => {
                out.insert_noted("successCondition", condition, "Flagger's thresholdRange")
            }
            None => out.insert_noted(
                "successCondition",
                "size(result) > 0",
                "no thresholdRange: any result passes, as in Flagger",
            ),
        }
        out.insert_noted(
            "failureLimit",
            threshold - 1,
            format!("Flagger's threshold {threshold} counted failed checks of all metrics; Fife counts per metric and fails when failures exceed failureLimit"),
        );
        let mut prometheus = Map::new();
        prometheus.insert("address", address);
        prometheus.insert_noted("query", query, origin);
        if let Some(insecure) = insecure {
            prometheus.insert("insecureSkipVerify", insecure);
        }
        let mut provider_map = Map::new();
        provider_map.insert("prometheus", prometheus);
        out.insert("provider", provider_map);
        items.push(Item::new(out));
    }
    if items.is_empty() {
        return Err(notes);
    }
    let args: Vec<Item> = used
        .iter()
        .map(|a| Item::new(json!({ "name": a })))
        .collect();
    if !args.is_empty() {
        spec.insert("args", args);
    }
    for n in notes {
        spec.note(n);
    }
    spec.insert("metrics", items);
    let canary_name = canary
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("canary");
    let mut meta = metadata(canary, "-analysis");
    if meta.is_empty() {
        meta.insert("name", format!("{canary_name}-analysis"));
    }
    Ok((
        Converted {
            header: source_header("Flagger", canary, "'s analysis.metrics"),
            object: object("AnalysisTemplate", meta, spec),
        },
        used,
    ))
}

fn provider_type(spec: &Value) -> &str {
    spec.pointer("/provider/type")
        .and_then(Value::as_str)
        .unwrap_or("prometheus")
}

/// A metric name Fife accepts: lower case letters, digits and dashes.
fn metric_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

fn threshold_condition(range: Option<&Value>) -> Option<String> {
    let range = range?;
    let bound = |key: &str| {
        range
            .get(key)
            .filter(|v| v.is_number())
            .map(Value::to_string)
    };
    match (bound("min"), bound("max")) {
        (Some(min), Some(max)) => Some(format!("result[0] >= {min} && result[0] <= {max}")),
        (Some(min), None) => Some(format!("result[0] >= {min}")),
        (None, Some(max)) => Some(format!("result[0] <= {max}")),
        (None, None) => None,
    }
}

/// Flagger's built-in checks for Istio (its default provider), as PromQL in Flagger's
/// variables: the success rate in percent and the 99th percentile latency in milliseconds.
fn builtin_query(name: &str, provider: Option<&str>) -> Option<&'static str> {
    if !matches!(provider, None | Some("istio")) {
        return None;
    }
    match name {
        "request-success-rate" => Some(
            "sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"{{ namespace }}\",destination_workload=\"{{ target }}\",response_code!~\"5..\"}[{{ interval }}]))\n/\nsum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"{{ namespace }}\",destination_workload=\"{{ target }}\"}[{{ interval }}]))\n* 100\n",
        ),
        "request-duration" => Some(
            "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",destination_workload_namespace=\"{{ namespace }}\",destination_workload=\"{{ target }}\"}[{{ interval }}])))\n",
        ),
        _ => None,
    }
}

/// A Flagger query in Fife's placeholders: the Canary-wide variables become arguments,
/// `{{ interval }}` and `{{ variables.x }}` (one metric's own) are written in.
fn render_query(query: &str, window: &str, variables: &BTreeMap<String, String>) -> String {
    // Literal values first, so only the Canary-wide variables are left as placeholders.
    let (text, _) = placeholders(query, |p| match p {
        Placeholder::Unknown(v) => match v {
            "namespace" | "name" | "target" | "service" | "ingress" => Some(v.to_owned()),
            _ => None,
        },
        _ => None,
    });
    let mut out = text;
    for (raw, value) in literal_placeholders(&out, window, variables) {
        out = out.replace(&raw, &value);
    }
    out
}

fn literal_placeholders(
    text: &str,
    window: &str,
    variables: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    fife_api::placeholder::pieces(text)
        .filter_map(|piece| match piece {
            fife_api::placeholder::Piece::Placeholder {
                placeholder: Placeholder::Unknown(inner),
                raw,
            } => {
                let value = if inner == "interval" {
                    Some(window.to_owned())
                } else {
                    inner
                        .strip_prefix("variables.")
                        .and_then(|v| variables.get(v).cloned())
                };
                value.map(|v| (raw.to_owned(), v))
            }
            _ => None,
        })
        .collect()
}

// === MetricTemplate ===

/// Converts a MetricTemplate into an AnalysisTemplate of one metric, named like it; the
/// threshold range that a Canary gave becomes the arguments `min` and `max`.
pub fn metric_template(value: &Value) -> Result<Converted, String> {
    let spec_in = value.get("spec").cloned().unwrap_or(Value::Null);
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("metric");
    let kind = provider_type(&spec_in);
    if kind != "prometheus" {
        let mut header = source_header("Flagger", value, "");
        header.push(format!(
            "provider.type: {kind} — Fife reads Prometheus (and Prometheus-compatible APIs) only: this MetricTemplate has no Fife counterpart, write its check as a PromQL query"
        ));
        return Ok(Converted {
            header,
            object: Map::new(),
        });
    }
    let query_in = spec_in
        .get("query")
        .and_then(Value::as_str)
        .ok_or_else(|| "it has no spec.query".to_owned())?;
    let (query, _) = placeholders(query_in, |p| match p {
        Placeholder::Unknown(inner) => {
            Some(inner.strip_prefix("variables.").unwrap_or(inner).to_owned())
        }
        _ => None,
    });
    let mut args: Vec<Item> = Vec::new();
    let mut seen = BTreeSet::new();
    for arg in argument_names(&query) {
        if !seen.insert(arg.clone()) {
            continue;
        }
        args.push(match arg.as_str() {
            "interval" => Item::noted(
                json!({"name": "interval", "value": DEFAULT_INTERVAL}),
                "Flagger's {{ interval }}, the query window the Canary's metric gave",
            ),
            "namespace" => Item::new(json!({"name": "namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})),
            "name" => Item::new(json!({"name": "name", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})),
            "target" => Item::noted(
                json!({"name": "target"}),
                "Flagger's {{ target }}, the Deployment under test: pass NAME-canary, the Deployment of Fife's canary pods",
            ),
            other => Item::new(json!({ "name": other })),
        });
    }
    args.push(Item::noted(
        json!({"name": "min", "value": "-1.0e308"}),
        "The Canary's thresholdRange.min and max: pass them from the Rollout's analysis args",
    ));
    args.push(Item::new(json!({"name": "max", "value": "1.0e308"})));
    let min = Placeholder::Arg("min").to_string();
    let max = Placeholder::Arg("max").to_string();
    let mut prometheus = Map::new();
    let mut provider_in = fields(spec_in.get("provider").unwrap_or(&Value::Null));
    provider_in.remove("type");
    prometheus.insert(
        "address",
        provider_in.remove("address").unwrap_or(Value::String(
            super::manifest::DEFAULT_PROMETHEUS.to_owned(),
        )),
    );
    prometheus.insert("query", query);
    if let Some(v) = provider_in.remove("insecureSkipVerify") {
        prometheus.insert("insecureSkipVerify", v);
    }
    for (key, v) in provider_in {
        let why = match key.as_str() {
            "secretRef" => {
                "left out: name the Secret's keys in auth.basicAuthSecretRef {name, usernameKey, passwordKey} or auth.bearerTokenSecretRef {name, key}"
            }
            _ => "no counterpart in Fife: left out",
        };
        prometheus.note(note(&format!("provider.{key}"), &v, why));
    }
    let mut provider = Map::new();
    provider.insert("prometheus", prometheus);
    let mut metric = Map::new();
    metric.insert("name", metric_name(name));
    metric.insert(
        "successCondition",
        format!("result[0] >= {min} && result[0] <= {max}"),
    );
    metric.insert("provider", provider);
    let mut spec = Map::new();
    spec.insert("args", args);
    spec.insert("metrics", vec![Item::new(metric)]);
    Ok(Converted {
        header: source_header("Flagger", value, ""),
        object: object("AnalysisTemplate", metadata(value, ""), spec),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagger_queries_take_arguments_and_literal_windows() {
        let variables = BTreeMap::from([("direction".to_owned(), "inbound".to_owned())]);
        assert_eq!(
            render_query(
                "x{ns=\"{{ namespace }}\",d=~\"{{ target }}\",dir=\"{{ variables.direction }}\"}[{{ interval }}]",
                "30s",
                &variables
            ),
            "x{ns=\"{{args.namespace}}\",d=~\"{{args.target}}\",dir=\"inbound\"}[30s]"
        );
    }

    #[test]
    fn threshold_ranges_become_conditions_and_names_become_fifes() {
        assert_eq!(
            threshold_condition(Some(&json!({"min": 99}))).unwrap(),
            "result[0] >= 99"
        );
        assert_eq!(
            threshold_condition(Some(&json!({"min": 2, "max": 100.5}))).unwrap(),
            "result[0] >= 2 && result[0] <= 100.5"
        );
        assert_eq!(threshold_condition(None), None);
        assert_eq!(metric_name("404s percentage"), "404s-percentage");
    }
}
