//! Argo Rollouts' `Rollout`, `AnalysisTemplate` and `ClusterAnalysisTemplate` as Fife
//! objects. Fields with the same meaning keep their names; every other field is written as
//! a comment saying what Fife does instead.

use std::collections::{BTreeMap, BTreeSet};

use fife_api::analysis::{ComparisonRule, ComparisonTest, Direction, PodTemplateHashValue};
use fife_api::placeholder::{Placeholder, ROLE};
use serde_json::{Value, json};

use super::commented::{Item, Map, Node};
use super::condition;
use super::manifest::{
    Converted, Options, argument_names, duration, fields, integer, metadata, note, object,
    placeholders, source_header,
};

/// Why an Argo kind other than the three converted ones has no counterpart.
pub fn why_not(kind: &str) -> &'static str {
    match kind {
        "AnalysisRun" => {
            "AnalysisRuns are created by the controller; convert the AnalysisTemplate it came from"
        }
        "Experiment" => {
            "a Rollout's comparison with a baseline is `baseline: true` on the Rollout and a comparison metric; remove the Experiment"
        }
        _ => {
            "fife convert reads Rollout, AnalysisTemplate and ClusterAnalysisTemplate from argoproj.io"
        }
    }
}

// === Rollout ===

/// Argo's `workloadRef`. Argo leaves the Deployment alone when `scaleDown` is absent;
/// Fife's default is `progressively`, so the converted Rollout says `never` to keep what
/// Argo did.
fn workload_ref(value: Value) -> Node {
    let mut rest = fields(&value);
    if !value.is_object() || rest.contains_key("scaleDown") {
        return Node::Value(value);
    }
    let mut out = Map::new();
    for key in ["apiVersion", "kind", "name"] {
        if let Some(v) = rest.remove(key) {
            out.insert(key, v);
        }
    }
    out.insert_noted(
        "scaleDown",
        "never",
        "Argo leaves the Deployment's replicas alone when scaleDown is absent; Fife's default is progressively. Change it to onsuccess or progressively to let Fife scale the Deployment down.",
    );
    for (key, v) in rest {
        out.insert(&key, v);
    }
    Node::Map(out)
}

/// Converts an Argo Rollout.
pub fn rollout(value: &Value) -> Converted {
    let mut spec_in = fields(value.get("spec").unwrap_or(&Value::Null));
    let mut spec = Map::new();
    for key in ["replicas", "selector", "workloadRef", "template"] {
        if let Some(v) = spec_in.remove(key) {
            if key == "workloadRef" {
                spec.insert(key, workload_ref(v));
            } else {
                spec.insert(key, v);
            }
        }
    }
    if let Some(strategy) = spec_in.remove("strategy") {
        spec.insert("strategy", convert_strategy(&strategy));
    }
    for key in ["paused", "progressDeadlineSeconds", "revisionHistoryLimit"] {
        if let Some(v) = spec_in.remove(key) {
            spec.insert(key, v);
        }
    }
    for (key, v) in spec_in {
        let why = match key.as_str() {
            "progressDeadlineAbort" => {
                "Fife always aborts when progressDeadlineSeconds passes (traffic back to stable, canary and baseline scaled down)"
            }
            "minReadySeconds" => {
                "left out: a canary counts once its pods are ready; give the containers a readiness probe that waits as long"
            }
            "restartAt" => {
                "left out: restart the pods with `kubectl rollout restart` on the stable Deployment"
            }
            "rollbackWindow" => {
                "left out: a change back to a recent revision runs the steps like any other; `kubectl fife abort` returns traffic at once"
            }
            "analysis" => {
                "left out: Fife keeps AnalysisRuns by revisionHistoryLimit and the audit log keeps every result"
            }
            _ => "no counterpart in Fife: left out",
        };
        spec.note(note(&key, &v, why));
    }
    let mut metadata = metadata(value, "");
    if metadata.is_empty() {
        metadata.insert("name", "rollout");
    }
    Converted {
        header: source_header("Argo Rollouts", value, ""),
        object: object("Rollout", metadata, spec),
    }
}

fn convert_strategy(strategy: &Value) -> Map {
    let mut out = Map::new();
    for (key, v) in fields(strategy) {
        match key.as_str() {
            "canary" => out.insert("canary", canary(&v)),
            "blueGreen" => out.insert("blueGreen", blue_green(&v)),
            _ => out.note(note(&key, &v, "not a strategy Fife runs: left out")),
        }
    }
    out
}

fn canary(canary: &Value) -> Map {
    let mut rest = fields(canary);
    let mut out = Map::new();
    let steps_in = rest
        .remove("steps")
        .and_then(|s| s.as_array().cloned())
        .unwrap_or_default();
    let baseline = steps_in.iter().any(experiment_has_baseline);
    if baseline {
        out.insert_noted(
            "baseline",
            true,
            "The experiment step ran a baseline of the stable version beside the canary: Fife runs that baseline for the whole rollout, with the canary's replicas and traffic.",
        );
    }
    if let Some(routing) = rest.remove("trafficRouting") {
        let routing = traffic_routing(&routing);
        if routing.has_fields() {
            out.insert("trafficRouting", routing);
        } else {
            // Only routers Fife lacks: their comments stand where trafficRouting stood.
            for comment in routing.into_comments() {
                out.note(format!("trafficRouting.{comment}"));
            }
        }
    }
    if let Some(analysis) = rest.remove("analysis") {
        out.insert("analysis", analysis_ref(&analysis, true));
    }
    if let Some(delay) = rest.remove("abortScaleDownDelaySeconds") {
        out.insert("abortScaleDownDelaySeconds", delay);
    }
    let steps: Vec<Item> = steps_in.iter().map(step).collect();
    out.insert("steps", steps);
    for (key, v) in rest {
        let why = match key.as_str() {
            "canaryService" | "stableService" => {
                "left out: Fife creates and owns the Services it routes to, NAME-stable, NAME-canary and NAME-baseline"
            }
            "maxSurge" | "maxUnavailable" => {
                "left out: each role is a Deployment of its own, which rolls its pods with the Deployment defaults"
            }
            "antiAffinity" => {
                "left out: put a podAntiAffinity in the template; pods carry fife.dev/role and fife.dev/revision to select on"
            }
            "canaryMetadata" | "stableMetadata" => {
                "left out: pods carry fife.dev/role (stable, canary, baseline) and fife.dev/revision; relabel from those"
            }
            "scaleDownDelaySeconds" | "scaleDownDelayRevisionLimit" => {
                "left out: after a promotion the stable Deployment takes the new template and the canary scales to zero once traffic is off it"
            }
            "dynamicStableScale" => {
                "left out: the stable Deployment keeps its replicas until the promotion, canary and baseline are carved out of spec.replicas"
            }
            "minPodsPerReplicaSet" => {
                "left out: canary and baseline replicas follow the weight, at least one pod each while the weight is above 0"
            }
            "pingPong" => {
                "left out: Fife's stable and canary are fixed Deployments, not two alternating Services"
            }
            "replicaProgressThreshold" => "left out: a step waits for all canary pods to be ready",
            _ => "no counterpart in Fife: left out",
        };
        out.note(note(&key, &v, why));
    }
    out
}

fn experiment_has_baseline(step: &Value) -> bool {
    step.pointer("/experiment/templates")
        .and_then(Value::as_array)
        .is_some_and(|templates| {
            templates
                .iter()
                .any(|t| t.get("specRef").and_then(Value::as_str) == Some("stable"))
        })
}

fn step(step: &Value) -> Item {
    let Some((kind, body)) = step.as_object().and_then(|m| m.iter().next()) else {
        return Item::noted(
            json!({"pause": {}}),
            note("step", step, "unreadable step: written as a pause"),
        );
    };
    let mut out = Map::new();
    match kind.as_str() {
        "setWeight" | "setHeaderRoute" => {
            out.insert(kind, body.clone());
            Item::new(out)
        }
        "pause" => {
            let mut pause = Map::new();
            let mut comment = None;
            if let Some(d) = body.get("duration") {
                match duration(d) {
                    Ok(d) => pause.insert("duration", d),
                    Err(why) => {
                        comment = Some(note(
                            "pause.duration",
                            d,
                            &format!("{why}: this pause waits for `kubectl fife promote` instead"),
                        ))
                    }
                }
            }
            out.insert("pause", pause);
            match comment {
                Some(c) => Item::noted(out, c),
                None => Item::new(out),
            }
        }
        "analysis" => {
            out.insert("analysis", analysis_ref(body, false));
            Item::new(out)
        }
        "experiment" => experiment(body),
        "setCanaryScale" => Item::noted(
            json!({"pause": {"duration": "0s"}}),
            note(
                "setCanaryScale",
                body,
                "Fife sizes canary and baseline by the weight (replicas × weight / 100, at least one pod): this step is a pause of 0s, which keeps the step numbers startingStep counts",
            ),
        ),
        "setMirrorRoute" => Item::noted(
            json!({"pause": {"duration": "0s"}}),
            note(
                "setMirrorRoute",
                body,
                "Fife does not mirror traffic: this step is a pause of 0s, which keeps the step numbers",
            ),
        ),
        other => Item::noted(
            json!({"pause": {"duration": "0s"}}),
            note(
                other,
                body,
                "no counterpart in Fife: this step is a pause of 0s, which keeps the step numbers",
            ),
        ),
    }
}

fn experiment(body: &Value) -> Item {
    let analyses = body
        .get("analyses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut comments = vec![note(
        "experiment",
        body,
        "Fife's `baseline: true` runs the baseline beside the canary for the whole rollout; the experiment's analyses run as this analysis step, and comparison metrics read canary and baseline through {{role}}",
    )];
    if let Some(d) = body.get("duration") {
        comments.push(note(
            "experiment.duration",
            d,
            "the step ends when its analysis completes (count × interval of its metrics)",
        ));
    }
    if analyses.is_empty() {
        let mut pause = Map::new();
        if let Some(d) = body.get("duration").and_then(|d| duration(d).ok()) {
            pause.insert("duration", d);
        }
        let mut out = Map::new();
        out.insert("pause", pause);
        return Item {
            comments,
            node: Node::Map(out),
        };
    }
    let mut templates = Vec::new();
    let mut args = Vec::new();
    let mut seen = BTreeSet::new();
    for analysis in &analyses {
        templates.push(Item::new(template_ref(analysis)));
        for arg in analysis
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = arg.get("name").and_then(Value::as_str).unwrap_or("");
            if seen.insert(name.to_owned()) {
                args.push(arg.clone());
            }
        }
        if let Some(v) = analysis.get("requiredForCompletion") {
            comments.push(note(
                "requiredForCompletion",
                v,
                "the analysis step always ends when its analysis completes",
            ));
        }
    }
    let mut analysis = Map::new();
    analysis.insert("templates", templates);
    let (args, notes) = arguments(&Value::Array(args));
    if !args.is_empty() {
        analysis.insert("args", args);
    }
    for n in notes {
        analysis.note(n);
    }
    let mut out = Map::new();
    out.insert("analysis", analysis);
    Item {
        comments,
        node: Node::Map(out),
    }
}

fn template_ref(reference: &Value) -> Map {
    let mut out = Map::new();
    out.insert(
        "templateName",
        reference
            .get("templateName")
            .cloned()
            .unwrap_or(Value::String(String::new())),
    );
    if reference.get("clusterScope").and_then(Value::as_bool) == Some(true) {
        out.insert("clusterScope", true);
    }
    out
}

/// A step's, the background's or a blue-green promotion's analysis: `templates`, `args`
/// (and `startingStep` for the background one).
fn analysis_ref(analysis: &Value, background: bool) -> Map {
    let mut out = Map::new();
    let templates: Vec<Item> = analysis
        .get("templates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| Item::new(template_ref(t)))
        .collect();
    out.insert("templates", templates);
    if let Some(args) = analysis.get("args") {
        let (args, notes) = arguments(args);
        if !args.is_empty() {
            out.insert("args", args);
        }
        for n in notes {
            out.note(n);
        }
    }
    for (key, v) in fields(analysis) {
        match key.as_str() {
            "templates" | "args" => {}
            "startingStep" if background => out.insert("startingStep", v),
            "dryRun" => out.note(note(
                "dryRun",
                &v,
                "set `dryRun: true` on the template's metric instead",
            )),
            "measurementRetention" => out.note(note(
                "measurementRetention",
                &v,
                "set `measurementRetention` on the template's metric instead",
            )),
            _ => out.note(note(&key, &v, "no counterpart in Fife: left out")),
        }
    }
    out
}

/// Arguments as Fife reads them; the notes say which were left out and why.
fn arguments(args: &Value) -> (Vec<Item>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for arg in args.as_array().into_iter().flatten() {
        let name = arg.get("name").and_then(Value::as_str).unwrap_or("");
        let mut converted = Map::new();
        converted.insert("name", name);
        if let Some(value) = arg.get("value") {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let (text, unknown) = placeholders(&text, |_| None);
            if !unknown.is_empty() {
                notes.push(note(
                    &format!("args {name}"),
                    value,
                    &format!(
                        "left out: Fife has no {} placeholder; the baseline and canary series are told apart with {ROLE} in the query",
                        unknown.join(", ")
                    ),
                ));
                continue;
            }
            converted.insert("value", text);
        }
        if let Some(from) = arg.get("valueFrom") {
            if let Some(which) = from.get("podTemplateHashValue").and_then(Value::as_str) {
                let which = match which {
                    "Stable" => PodTemplateHashValue::Stable,
                    _ => PodTemplateHashValue::Latest,
                };
                let wire = serde_json::to_value(which).unwrap_or(Value::Null);
                converted.insert("valueFrom", json!({"podTemplateHashValue": wire}));
            } else if let Some(path) = from.pointer("/fieldRef/fieldPath") {
                converted.insert("valueFrom", json!({"fieldRef": {"fieldPath": path}}));
            } else {
                notes.push(note(
                    &format!("args {name}.valueFrom"),
                    from,
                    "left out: arguments cannot come from Secrets; the Prometheus provider reads its credentials from Secrets itself (auth, caBundleSecretRef)",
                ));
                continue;
            }
        }
        out.push(Item::new(converted));
    }
    (out, notes)
}

fn traffic_routing(routing: &Value) -> Map {
    let mut out = Map::new();
    for (key, v) in fields(routing) {
        match key.as_str() {
            "istio" => out.insert("istio", istio(&v)),
            "nginx" => out.insert("nginx", nginx(&v)),
            "plugins" => {
                for (plugin, config) in fields(&v) {
                    if plugin == "argoproj-labs/gatewayAPI" {
                        let mut gateway = Map::new();
                        if let Some(route) = config.get("httpRoute") {
                            gateway.insert("httpRoute", route.clone());
                        }
                        if let Some(ns) = config.get("namespace") {
                            gateway.insert("namespace", ns.clone());
                        }
                        for (k, other) in fields(&config) {
                            if k != "httpRoute" && k != "namespace" {
                                gateway.note(note(&k, &other, "left out: Fife sets the weights of one HTTPRoute"));
                            }
                        }
                        out.insert_noted(
                            "gatewayAPI",
                            gateway,
                            "Argo's Gateway API plugin is built into Fife",
                        );
                    } else {
                        out.note(note(
                            &format!("plugins.{plugin}"),
                            &config,
                            "no such router in Fife (Gateway API, Istio, NGINX, or replica counts): left out",
                        ));
                    }
                }
            }
            "managedRoutes" => out.note(note(
                "managedRoutes",
                &v,
                "left out: Fife adds and removes the header routes of setHeaderRoute steps without a list",
            )),
            _ => out.note(note(
                &key,
                &v,
                "no such router in Fife (Gateway API, Istio, NGINX, or replica counts): left out, so traffic follows replica counts",
            )),
        }
    }
    out
}

fn istio(istio: &Value) -> Map {
    let mut out = Map::new();
    let mut rest = fields(istio);
    let mut virtual_service = rest.remove("virtualService");
    if let Some(Value::Array(list)) = rest.remove("virtualServices") {
        if virtual_service.is_none() && list.len() == 1 {
            virtual_service = list.first().cloned();
        } else {
            out.note(note(
                "virtualServices",
                &Value::Array(list),
                "left out: Fife sets the weights of one VirtualService",
            ));
        }
    }
    if let Some(vs) = virtual_service {
        let mut converted = Map::new();
        for (key, v) in fields(&vs) {
            match key.as_str() {
                "name" | "routes" => converted.insert(&key, v),
                _ => converted.note(note(
                    &key,
                    &v,
                    "left out: Fife sets the weights of HTTP routes only",
                )),
            }
        }
        out.insert("virtualService", converted);
    }
    if let Some(rule) = rest.remove("destinationRule") {
        let mut converted = Map::new();
        for (key, v) in fields(&rule) {
            match key.as_str() {
                "name" | "canarySubsetName" | "stableSubsetName" => converted.insert(&key, v),
                _ => converted.note(note(&key, &v, "no counterpart in Fife: left out")),
            }
        }
        converted.insert_noted(
            "baselineSubsetName",
            "baseline",
            "Fife routes to a third role, the baseline: add a subset of this name to the DestinationRule, selecting the label fife.dev/role: baseline (and select the other subsets by fife.dev/role too)",
        );
        out.insert("destinationRule", converted);
    }
    for (key, v) in rest {
        out.note(note(&key, &v, "no counterpart in Fife: left out"));
    }
    out
}

fn nginx(nginx: &Value) -> Map {
    let mut out = Map::new();
    let mut rest = fields(nginx);
    let mut stable = rest.remove("stableIngress");
    if let Some(Value::Array(list)) = rest.remove("stableIngresses") {
        if stable.is_none() && list.len() == 1 {
            stable = list.first().cloned();
        } else {
            out.note(note(
                "stableIngresses",
                &Value::Array(list),
                "left out: Fife makes a canary Ingress for one stable Ingress",
            ));
        }
    }
    if let Some(stable) = stable {
        out.insert("stableIngress", stable);
    }
    for key in ["annotationPrefix", "additionalIngressAnnotations"] {
        if let Some(v) = rest.remove(key) {
            out.insert(key, v);
        }
    }
    for (key, v) in rest {
        let why = match key.as_str() {
            "canaryIngressAnnotations" => {
                "left out: put annotations for the canary Ingress in additionalIngressAnnotations"
            }
            _ => "no counterpart in Fife: left out",
        };
        out.note(note(&key, &v, why));
    }
    out
}

fn blue_green(blue_green: &Value) -> Map {
    let mut out = Map::new();
    let mut rest = fields(blue_green);
    for key in [
        "activeService",
        "previewService",
        "previewReplicaCount",
        "autoPromotionEnabled",
        "autoPromotionSeconds",
        "scaleDownDelaySeconds",
    ] {
        if let Some(v) = rest.remove(key) {
            out.insert(key, v);
        }
    }
    for key in ["prePromotionAnalysis", "postPromotionAnalysis"] {
        if let Some(v) = rest.remove(key) {
            out.insert(key, analysis_ref(&v, false));
        }
    }
    for (key, v) in rest {
        let why = match key.as_str() {
            "antiAffinity" => {
                "left out: put a podAntiAffinity in the template; pods carry fife.dev/role and fife.dev/revision to select on"
            }
            "activeMetadata" | "previewMetadata" => {
                "left out: pods carry fife.dev/role and fife.dev/revision; relabel from those"
            }
            "scaleDownDelayRevisionLimit" => {
                "left out: Fife keeps one old revision running during scaleDownDelaySeconds"
            }
            "abortScaleDownDelaySeconds" => {
                "left out: after an abort the preview pods scale down after scaleDownDelaySeconds"
            }
            "maxUnavailable" => "left out: each role is a Deployment with the Deployment defaults",
            _ => "no counterpart in Fife: left out",
        };
        out.note(note(&key, &v, why));
    }
    out
}

// === AnalysisTemplate, ClusterAnalysisTemplate ===

/// Converts an Argo AnalysisTemplate or ClusterAnalysisTemplate.
pub fn analysis_template(value: &Value, options: &Options) -> Converted {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("AnalysisTemplate");
    let spec_in = value.get("spec").cloned().unwrap_or(Value::Null);
    let mut rest = fields(&spec_in);
    let args_in = rest.remove("args").unwrap_or(Value::Null);
    let secrets = secret_arguments(&args_in);
    let dry_run = metric_patterns(rest.remove("dryRun"), |_| Some(Value::Bool(true)));
    let retention = metric_patterns(rest.remove("measurementRetention"), |entry| {
        entry.get("limit").cloned()
    });
    let mut spec = Map::new();
    let mut metrics = Vec::new();
    let mut dropped = Vec::new();
    for metric in rest
        .remove("metrics")
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default()
    {
        match convert_metric(&metric, &secrets, &dry_run, &retention, options) {
            Ok(item) => metrics.push(item),
            Err(comment) => dropped.push(comment),
        }
    }
    let used: BTreeSet<String> = metrics
        .iter()
        .flat_map(|item| argument_names(&item.node.to_value().to_string()))
        .collect();
    let (args, mut arg_notes) = template_arguments(&args_in, &used, &secrets);
    if !args.is_empty() {
        spec.insert("args", args);
    }
    for n in arg_notes.drain(..) {
        spec.note(n);
    }
    for (key, v) in [("dryRun", &dry_run), ("measurementRetention", &retention)] {
        if !v.unmatched.is_empty() {
            spec.note(note(
                key,
                &Value::Array(v.unmatched.clone()),
                "left out: these metricName patterns match no metric by name or `.*`; set the field on each metric",
            ));
        }
    }
    for comment in dropped {
        spec.note(comment);
    }
    spec.insert("metrics", metrics);
    for (key, v) in rest {
        spec.note(note(&key, &v, "no counterpart in Fife: left out"));
    }
    Converted {
        header: source_header("Argo Rollouts", value, ""),
        object: object(kind, metadata(value, ""), spec),
    }
}

/// Arguments whose value comes from a Secret key: name → (secret, key).
fn secret_arguments(args: &Value) -> BTreeMap<String, (String, String)> {
    args.as_array()
        .into_iter()
        .flatten()
        .filter_map(|arg| {
            let name = arg.get("name")?.as_str()?;
            let secret = arg.pointer("/valueFrom/secretKeyRef")?;
            Some((
                name.to_owned(),
                (
                    secret.get("name")?.as_str()?.to_owned(),
                    secret.get("key")?.as_str()?.to_owned(),
                ),
            ))
        })
        .collect()
}

/// The template's own arguments. One no converted field uses and that has no value gets an
/// empty default, so a Rollout that still passes it validates.
fn template_arguments(
    args: &Value,
    used: &BTreeSet<String>,
    secrets: &BTreeMap<String, (String, String)>,
) -> (Vec<Item>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for arg in args.as_array().into_iter().flatten() {
        let name = arg.get("name").and_then(Value::as_str).unwrap_or("");
        if secrets.contains_key(name) {
            notes.push(note(
                &format!("args {name}"),
                arg.get("valueFrom").unwrap_or(&Value::Null),
                "left out: arguments cannot come from Secrets; where a provider read it as credentials, the provider names the Secret itself",
            ));
            continue;
        }
        let (mut converted, arg_notes) = arguments(&Value::Array(vec![arg.clone()]));
        notes.extend(arg_notes);
        let Some(mut item) = converted.pop() else {
            continue;
        };
        let has_value = arg.get("value").is_some() || arg.get("valueFrom").is_some();
        if !used.contains(name) && !has_value {
            let mut map = Map::new();
            map.insert("name", name);
            map.insert("value", "");
            item = Item::noted(
                map,
                format!(
                    "{name}: no converted field uses this argument; it has an empty default so Rollouts that pass it still validate"
                ),
            );
        }
        out.push(item);
    }
    (out, notes)
}

/// `spec.dryRun` / `spec.measurementRetention`: per metric name, the value to set.
struct MetricPatterns {
    all: Option<Value>,
    by_name: BTreeMap<String, Value>,
    unmatched: Vec<Value>,
}

fn metric_patterns(list: Option<Value>, value: impl Fn(&Value) -> Option<Value>) -> MetricPatterns {
    let mut patterns = MetricPatterns {
        all: None,
        by_name: BTreeMap::new(),
        unmatched: Vec::new(),
    };
    for entry in list.and_then(|l| l.as_array().cloned()).unwrap_or_default() {
        let name = entry
            .get("metricName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(v) = value(&entry) else { continue };
        if name == ".*" {
            patterns.all = Some(v);
        } else if name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            patterns.by_name.insert(name.to_owned(), v);
        } else {
            patterns.unmatched.push(entry.clone());
        }
    }
    patterns
}

impl MetricPatterns {
    fn for_metric(&self, name: &str) -> Option<&Value> {
        self.by_name.get(name).or(self.all.as_ref())
    }
}

fn convert_metric(
    metric: &Value,
    secrets: &BTreeMap<String, (String, String)>,
    dry_run: &MetricPatterns,
    retention: &MetricPatterns,
    options: &Options,
) -> Result<Item, String> {
    let mut rest = fields(metric);
    let name = rest
        .remove("name")
        .and_then(|n| n.as_str().map(str::to_owned))
        .unwrap_or_default();
    let provider_in = rest.remove("provider").unwrap_or(Value::Null);
    let provider_kind = provider_in
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .unwrap_or_default();
    let mut out = Map::new();
    out.insert("name", name.as_str());
    let mut kayenta = false;
    let provider = match provider_kind.as_str() {
        "prometheus" => prometheus(&provider_in["prometheus"], secrets),
        "kayenta" => {
            kayenta = true;
            kayenta_provider(&name, &provider_in["kayenta"], options)
        }
        other => {
            return Err(note(
                &format!("metric {name}"),
                &json!({ other: "..." }),
                "left out: Fife reads Prometheus (and Prometheus-compatible APIs) only; write this check as a PromQL query",
            ));
        }
    };
    for key in ["interval", "initialDelay"] {
        if let Some(v) = rest.remove(key) {
            match duration(&v) {
                Ok(d) => out.insert(key, d),
                Err(why) => out.note(note(key, &v, &format!("{why}: left out"))),
            }
        }
    }
    match rest.remove("count").map(|v| (integer(&v), v)) {
        Some((Ok(n), _)) => out.insert("count", n),
        Some((Err(why), v)) => out.note(note("count", &v, &format!("{why}: left out"))),
        None if kayenta => out.insert_noted(
            "count",
            1i64,
            "Kayenta judged once over the experiment; one measurement keeps the Mann-Whitney test at its confidence",
        ),
        None => {}
    }
    for key in ["successCondition", "failureCondition"] {
        if let Some(v) = rest.remove(key) {
            let text = v.as_str().unwrap_or_default();
            let (text, _) = placeholders(text, |_| None);
            match condition::translate(&text) {
                Ok(t) if t.cel == text && t.notes.is_empty() => out.insert(key, t.cel),
                Ok(t) => {
                    let mut comment = format!("{key}: {text} — rewritten in CEL, the language of Fife's conditions");
                    for n in &t.notes {
                        comment.push_str("; ");
                        comment.push_str(n);
                    }
                    out.insert_noted(key, t.cel, comment);
                }
                Err(why) => out.insert_noted(
                    key,
                    text.clone(),
                    format!("{key}: could not be rewritten in CEL ({why}); rewrite it by hand, `fife validate` reports it until then"),
                ),
            }
        }
    }
    for key in ["failureLimit", "inconclusiveLimit", "consecutiveErrorLimit"] {
        if let Some(v) = rest.remove(key) {
            match integer(&v) {
                Ok(n) if n >= 0 => out.insert(key, n),
                Ok(n) => out.note(note(
                    key,
                    &json!(n),
                    "Fife has no unlimited setting: left out (default); set dryRun: true to measure without effect",
                )),
                Err(why) => out.note(note(key, &v, &format!("{why}: left out (default)"))),
            }
        }
    }
    if let Some(v) = dry_run.for_metric(&name) {
        out.insert_noted(
            "dryRun",
            v.clone(),
            "from spec.dryRun, which Fife sets per metric",
        );
    }
    if let Some(v) = retention.for_metric(&name) {
        out.insert_noted(
            "measurementRetention",
            v.clone(),
            "from spec.measurementRetention, which Fife sets per metric",
        );
    }
    let (provider, compare) = provider;
    out.insert("provider", provider);
    if let Some(compare) = compare {
        out.insert("compare", compare);
    }
    for (key, v) in rest {
        let why = match key.as_str() {
            "consecutiveSuccessLimit" => {
                "left out: a metric is Successful once count measurements completed within the limits"
            }
            _ => "no counterpart in Fife: left out",
        };
        out.note(note(&key, &v, why));
    }
    Ok(Item::new(out))
}

/// The Prometheus provider; `secrets` are the template's Secret arguments, which become
/// the provider's own Secret references.
fn prometheus(
    prometheus: &Value,
    secrets: &BTreeMap<String, (String, String)>,
) -> (Map, Option<Map>) {
    let mut rest = fields(prometheus);
    let mut out = Map::new();
    if let Some(address) = rest.remove("address") {
        out.insert("address", address);
    }
    if let Some(query) = rest.remove("query") {
        let (query, _) = placeholders(query.as_str().unwrap_or_default(), |_| None);
        out.insert("query", query);
    }
    if let Some(range_in) = rest.remove("rangeQuery") {
        match range_query(&range_in) {
            Ok(range) => out.insert_noted(
                "range",
                range,
                note(
                    "rangeQuery",
                    &range_in,
                    "Fife's range ends at the measurement time and reaches back `lookback`",
                ),
            ),
            Err(why) => out.note(note(
                "rangeQuery",
                &range_in,
                &format!("{why}: left out, so the query is an instant query"),
            )),
        }
    }
    if let Some(timeout) = rest.remove("timeout") {
        match duration(&timeout) {
            Ok(d) => out.insert("timeout", d),
            Err(why) => out.note(note("timeout", &timeout, &format!("{why}: left out"))),
        }
    }
    if let Some(insecure) = rest.remove("insecure") {
        out.insert_noted("insecureSkipVerify", insecure, "Argo's `insecure`");
    }
    let secret_of = |value: Option<&Value>| -> Option<(String, String)> {
        let text = value?.as_str()?;
        let names = argument_names(text);
        let [name] = names.as_slice() else {
            return None;
        };
        let (canonical, _) = placeholders(text.trim(), |_| None);
        (canonical == Placeholder::Arg(name).to_string())
            .then(|| secrets.get(name).cloned())
            .flatten()
    };
    if let Some(ca) = rest.remove("caCert") {
        match secret_of(Some(&ca)) {
            Some((name, key)) => out.insert_noted(
                "caBundleSecretRef",
                json!({"name": name, "key": key}),
                "Argo's caCert, read from the Secret its argument named",
            ),
            None => out.note(note(
                "caCert",
                &ca,
                "left out: put the certificates in a Secret and name it in caBundleSecretRef {name, key}",
            )),
        }
    }
    if let Some(auth) = rest.remove("authentication") {
        let basic = auth.get("basicAuth");
        let converted = match (
            secret_of(basic.and_then(|b| b.get("username"))),
            secret_of(basic.and_then(|b| b.get("password"))),
        ) {
            (Some((user_secret, user_key)), Some((pass_secret, pass_key)))
                if user_secret == pass_secret =>
            {
                Some(json!({"basicAuthSecretRef": {
                    "name": user_secret, "usernameKey": user_key, "passwordKey": pass_key}}))
            }
            _ => None,
        };
        match converted {
            Some(a) => out.insert_noted(
                "auth",
                a,
                "Argo's authentication.basicAuth, read from the Secret its arguments named",
            ),
            None => out.note(note(
                "authentication",
                &auth,
                "left out: Fife authenticates with a bearer token or basic auth from a Secret (auth.bearerTokenSecretRef, auth.basicAuthSecretRef); sigv4 and oauth2 have no counterpart",
            )),
        }
    }
    for (key, v) in rest {
        let why = match key.as_str() {
            "headers" => {
                "left out: Fife sends no custom headers; put a proxy in front of the API if it needs them"
            }
            _ => "no counterpart in Fife: left out",
        };
        out.note(note(&key, &v, why));
    }
    let mut provider = Map::new();
    provider.insert("prometheus", out);
    (provider, None)
}

/// Argo's `rangeQuery {start: now() - duration("5m"), end: now(), step}` as Fife's
/// `range {lookback, step}`.
fn range_query(range: &Value) -> Result<Map, String> {
    let text = |key: &str| {
        range
            .get(key)
            .and_then(Value::as_str)
            .map(|s| s.replace(' ', ""))
            .unwrap_or_default()
    };
    if text("end") != "now()" {
        return Err("its end is not now()".to_owned());
    }
    let start = text("start");
    let lookback = start
        .strip_prefix("now()-duration(")
        .and_then(|s| s.strip_suffix(')'))
        .map(|s| s.trim_matches(['"', '\'']).to_owned())
        .ok_or_else(|| "its start is not now() - duration(\"...\")".to_owned())?;
    let lookback = if argument_names(&lookback).is_empty() {
        duration(&Value::String(lookback))?
    } else {
        return Err("its lookback is an argument, and Fife's range is not templated".to_owned());
    };
    let step = duration(range.get("step").unwrap_or(&Value::Null))?;
    let mut out = Map::new();
    out.insert("lookback", lookback);
    out.insert("step", step);
    Ok(out)
}

/// Kayenta's canary analysis as a comparison metric over Prometheus.
fn kayenta_provider(name: &str, kayenta: &Value, options: &Options) -> (Map, Option<Map>) {
    let config = kayenta
        .get("canaryConfigName")
        .and_then(Value::as_str)
        .unwrap_or(name);
    let series: String = config
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut prometheus = Map::new();
    prometheus.insert_noted(
        "address",
        options.prometheus.as_str(),
        "Kayenta read its metrics store itself; this is the Prometheus Fife queries (fife convert --prometheus)",
    );
    prometheus.insert_noted(
        "query",
        format!("kayenta_canary_config_{series}{{fife_role=\"{ROLE}\"}}"),
        format!(
            "Kayenta's canary config {config:?} holds the queries, which are not in this manifest: write one comparison metric per metric of that config, its query selecting the pods with fife_role=\"{ROLE}\". This query names no series, so the metric errors (and the rollout aborts) until you do."
        ),
    );
    for (key, v) in fields(kayenta) {
        let why = match key.as_str() {
            "address"
            | "application"
            | "canaryConfigName"
            | "metricsAccountName"
            | "configurationAccountName"
            | "storageAccountName" => {
                "left out: Fife judges in the controller, without a Kayenta service"
            }
            "thresholds" => {
                "left out: Kayenta scores all metrics of the config together; Fife judges each comparison metric, a Failed one fails the run and an Inconclusive one pauses for a person"
            }
            "scopes" => {
                "left out: the baseline and canary series are the query's fife_role=\"{{role}}\" selection"
            }
            "interval" | "count" | "lookback" => "left out: set the metric's interval and count",
            _ => "no counterpart in Fife: left out",
        };
        prometheus.note(note(&key, &v, why));
    }
    let mut provider = Map::new();
    provider.insert("prometheus", prometheus);
    let wire = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
    let mut compare = Map::new();
    compare.insert_noted(
        "test",
        wire(serde_json::to_value(ComparisonTest::MannWhitney)),
        "Kayenta's Mann-Whitney U over every point of both series",
    );
    compare.insert("rule", wire(serde_json::to_value(ComparisonRule::Kayenta)));
    compare.insert("direction", wire(serde_json::to_value(Direction::Either)));
    (provider, Some(compare))
}

#[cfg(test)]
mod tests {
    use super::super::manifest::short;
    use super::*;

    #[test]
    fn range_queries_ending_now_become_a_lookback() {
        let range = range_query(
            &json!({"start": "now() - duration(\"5m\")", "end": "now()", "step": "1m"}),
        )
        .unwrap();
        assert_eq!(
            Node::Map(range).to_value(),
            json!({"lookback": "5m", "step": "1m"})
        );
        assert!(
            range_query(
                &json!({"start": "now() - duration(\"{{args.d}}\")", "end": "now()", "step": "1m"})
            )
            .is_err()
        );
        assert!(range_query(&json!({"start": "now() - duration(\"5m\")", "end": "now() - duration(\"1m\")", "step": "1m"})).is_err());
    }

    #[test]
    fn a_workload_ref_without_scale_down_keeps_argos_never() {
        let argo = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"});
        assert_eq!(
            workload_ref(argo).to_value(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "scaleDown": "never"})
        );
        let chosen = json!({"kind": "Deployment", "name": "api", "scaleDown": "onsuccess"});
        assert_eq!(workload_ref(chosen.clone()).to_value(), chosen);
    }

    #[test]
    fn a_shown_value_is_short() {
        assert_eq!(short(&json!({"a": 1})), "{\"a\":1}");
        assert_eq!(short(&Value::Array(vec![json!(0); 40])), "[40 items]");
        assert_eq!(short(&json!("a\nb")), "a...");
    }
}
