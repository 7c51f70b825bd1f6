//! `fife convert` as a person moving from Argo Rollouts or Flagger runs it: each fixture,
//! written from the shapes those projects document, converts with exit 0 into manifests that
//! `fife validate` passes, with a comment on every field that has no exact counterpart; other
//! objects pass through as written; unreadable or unknown input exits 2 and writes nothing.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn fixture(name: &str) -> String {
    format!("tests/fixtures/convert/{name}")
}

/// Runs `fife ARGS` in the crate directory with `stdin`; returns (exit code, stdout, stderr).
fn fife(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fife"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Converts a fixture, asserting exit 0; returns the output.
fn convert(name: &str) -> String {
    let (code, stdout, stderr) = fife(&["convert", &fixture(name)], "");
    assert_eq!(code, 0, "{name}: stderr:\n{stderr}");
    assert!(stderr.is_empty(), "{name}: stderr:\n{stderr}");
    stdout
}

/// Writes `text` to a file and runs `fife validate` on it, asserting exit 0 and no error line.
fn assert_validates(name: &str, text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let (code, stdout, stderr) = fife(&["validate", path.to_str().unwrap()], "");
    assert_eq!(
        code, 0,
        "{name}: the converted manifests do not validate:\n{stdout}{stderr}\n--- converted:\n{text}"
    );
    for line in stdout.lines() {
        assert!(
            line.contains(": note: ") || line.contains(": warning: "),
            "{name}: {line}"
        );
    }
}

/// Asserts a comment line starts with `# FIELD: ` for each field.
fn assert_commented(name: &str, output: &str, fields: &[&str]) {
    let comments: Vec<&str> = output
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('#'))
        .collect();
    for field in fields {
        let prefix = format!("# {field}: ");
        assert!(
            comments.iter().any(|c| c.starts_with(&prefix)),
            "{name}: no comment starting {prefix:?} in:\n{output}"
        );
    }
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {docs:#?}"))
}

#[test]
fn argo_canary_with_prometheus_analysis_converts_and_validates() {
    let name = "argo-canary-prometheus.yaml";
    let output = convert(name);
    assert_validates(name, &output);
    assert_commented(
        name,
        &output,
        &[
            "progressDeadlineAbort",
            "minReadySeconds",
            "canaryService",
            "stableService",
            "maxSurge",
            "maxUnavailable",
            "dynamicStableScale",
            "antiAffinity",
            "canaryMetadata",
            "scaleDownDelaySeconds",
            "setCanaryScale",
            "setMirrorRoute",
            "dryRun",
            "headers",
            "args prom-username",
            "metric web-check",
            "rangeQuery",
            "failureCondition",
            "successCondition",
        ],
    );
    let docs = documents(&output);
    let rollout = find(&docs, "Rollout", "guestbook");
    assert_eq!(rollout["apiVersion"], "fife.dev/v1alpha1");
    let canary = &rollout["spec"]["strategy"]["canary"];
    assert_eq!(
        canary["trafficRouting"],
        json!({"gatewayAPI": {"httpRoute": "guestbook", "namespace": "shop"}})
    );
    assert_eq!(canary["analysis"]["startingStep"], 2);
    assert_eq!(canary["steps"][1], json!({"pause": {"duration": "10s"}}));
    // setCanaryScale and setMirrorRoute keep their places, so startingStep still counts right.
    assert_eq!(canary["steps"].as_array().unwrap().len(), 9);
    let template = find(&docs, "AnalysisTemplate", "success-rate");
    let metrics = &template["spec"]["metrics"];
    assert_eq!(
        metrics[0]["failureCondition"],
        "result[0] < 0.90 && size(result) > 0"
    );
    assert_eq!(metrics[0]["provider"]["prometheus"]["timeout"], "40s");
    assert_eq!(
        metrics[0]["provider"]["prometheus"]["auth"],
        json!({"basicAuthSecretRef": {"name": "prom-auth", "usernameKey": "username", "passwordKey": "password"}})
    );
    assert_eq!(metrics[0]["measurementRetention"], 20);
    assert_eq!(metrics[1]["successCondition"], "result[0] < 0.05");
    assert_eq!(metrics[1]["dryRun"], true);
    assert_eq!(metrics[1]["count"], 3);
    assert_eq!(
        metrics[1]["provider"]["prometheus"]["query"],
        "scalar(sum(rate(http_errors_total{service=\"{{args.service-name}}\"}[1m])))"
    );
    assert_eq!(metrics[2]["successCondition"], "result.all(x, x < 1000)");
    assert_eq!(
        metrics[2]["provider"]["prometheus"]["range"],
        json!({"lookback": "5m", "step": "1m"})
    );
    assert_eq!(
        metrics.as_array().unwrap().len(),
        3,
        "the web metric is left out"
    );
    find(&docs, "ClusterAnalysisTemplate", "latency");
}

#[test]
fn other_objects_pass_through_as_written() {
    let output = convert("argo-canary-prometheus.yaml");
    assert!(
        output.ends_with(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: guestbook\n  namespace: shop\nspec:\n  ports:\n  - port: 80   # kept as written, comment and all\n    targetPort: 8080\n  selector:\n    app: guestbook\n"
        ),
        "{output}"
    );
}

#[test]
fn kayenta_experiment_becomes_a_baseline_and_a_comparison_metric() {
    let name = "argo-kayenta-experiment.yaml";
    let output = convert(name);
    assert_validates(name, &output);
    assert_commented(
        name,
        &output,
        &[
            "experiment",
            "experiment.duration",
            "args canary-pod-hash",
            "thresholds",
            "scopes",
            "canaryConfigName",
        ],
    );
    let docs = documents(&output);
    let canary = &find(&docs, "Rollout", "guestbook")["spec"]["strategy"]["canary"];
    assert_eq!(canary["baseline"], true);
    assert_eq!(
        canary["steps"][1]["analysis"]["templates"],
        json!([{"templateName": "mann-whitney"}])
    );
    let metric = &find(&docs, "AnalysisTemplate", "mann-whitney")["spec"]["metrics"][0];
    assert_eq!(
        metric["compare"],
        json!({"test": "mannWhitney", "rule": "kayenta", "direction": "either"})
    );
    assert_eq!(metric["count"], 1);
    assert!(
        metric["provider"]["prometheus"]["query"]
            .as_str()
            .unwrap()
            .contains("{{role}}")
    );
}

#[test]
fn flagger_metric_templates_convert_and_validate() {
    let name = "flagger-metric-template.yaml";
    let output = convert(name);
    assert_validates(name, &output);
    assert_commented(name, &output, &["provider.secretRef", "provider.type"]);
    let docs = documents(&output);
    assert_eq!(docs.len(), 2, "the New Relic template is a comment only");
    let metric = &find(&docs, "AnalysisTemplate", "my-metric")["spec"]["metrics"][0];
    let query = metric["provider"]["prometheus"]["query"].as_str().unwrap();
    assert!(
        query.contains("deployment=~\"{{args.target}}\"")
            && query.contains("direction=\"{{args.direction}}\"")
            && query.contains("[{{args.interval}}]"),
        "{query}"
    );
    assert_eq!(
        metric["successCondition"],
        "result[0] >= {{args.min}} && result[0] <= {{args.max}}"
    );
}

#[test]
fn routers_fife_lacks_and_fields_the_server_set_become_comments() {
    let input = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: web, uid: 5e1f, resourceVersion: \"7\"}\nspec:\n  selector: {matchLabels: {app: web}}\n  template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: web:1}]}}\n  strategy:\n    canary:\n      trafficRouting:\n        alb: {ingress: web, servicePort: 80}\n      steps: [{setWeight: 10}, {pause: {duration: 1.5m}}, {pause: {duration: 1d}}]\nstatus: {phase: Healthy}\n";
    let (code, output, stderr) = fife(&["convert", "-"], input);
    assert_eq!(code, 0, "{stderr}");
    assert_validates("alb.yaml", &output);
    assert_commented(
        "alb",
        &output,
        &[
            "trafficRouting.alb",
            "uid",
            "resourceVersion",
            "status",
            "pause.duration",
        ],
    );
    let docs = documents(&output);
    let canary = &docs[0]["spec"]["strategy"]["canary"];
    assert!(canary.get("trafficRouting").is_none(), "{output}");
    // Go's 1.5m is Fife's 1m30s; Go has no days, so that pause waits for a person.
    assert_eq!(
        canary["steps"],
        json!([{"setWeight": 10}, {"pause": {"duration": "1m30s"}}, {"pause": {}}])
    );
}

/// docs/migrating.md shows an Argo canary and what `fife convert` writes for it; the page
/// must show what the command writes today.
#[test]
fn the_worked_example_in_the_migration_guide_is_what_convert_writes() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/migrating.md"),
    )
    .unwrap();
    let section = page
        .split("\n## `fife convert`\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/migrating.md has a `fife convert` section");
    let blocks: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    let [input, expected] = blocks.as_slice() else {
        panic!("the section has {} yaml blocks, not 2", blocks.len());
    };
    let (code, output, stderr) = fife(&["convert", "-"], input);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(&output, expected);
    assert_validates("example.yaml", &output);
}

#[test]
fn stdin_converts_like_a_file() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(fixture("argo-kayenta-experiment.yaml")),
    )
    .unwrap();
    let (code, stdout, _) = fife(&["convert", "-"], &text);
    assert_eq!(code, 0);
    assert_eq!(stdout, convert("argo-kayenta-experiment.yaml"));
}

#[test]
fn unreadable_or_unknown_input_exits_2_and_writes_nothing() {
    let (code, stdout, stderr) = fife(&["convert", "tests/fixtures/convert/missing.yaml"], "");
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with("tests/fixtures/convert/missing.yaml: cannot read:"),
        "{stderr}"
    );

    let input = "apiVersion: v1\nkind: ConfigMap\n---\n- just\n- a list\n---\napiVersion: argoproj.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\n---\nname: no-kind\n";
    let (code, stdout, stderr) = fife(&["convert", "-"], input);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("-:4: a document that is not a Kubernetes object (a YAML list)"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("-:7: an Argo Experiment (e), which has no Fife counterpart"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("-:11: a document without apiVersion or kind"),
        "{stderr}"
    );

    let (code, stdout, stderr) = fife(&["convert", "-"], "a: [unclosed\n");
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("-:"), "{stderr}");
}

/// workloadRef, blueGreen, Istio, NGINX and setHeaderRoute: the structure, and the whole
/// output validates.
#[test]
fn converts_to_the_issue_18_shapes() {
    let name = "argo-issue-18-shapes.yaml";
    let output = convert(name);
    assert_commented(
        name,
        &output,
        &[
            "managedRoutes",
            "canaryIngressAnnotations",
            "scaleDownDelayRevisionLimit",
            "activeMetadata",
            "antiAffinity",
            "canaryService",
        ],
    );
    let docs = documents(&output);
    let workload = &find(&docs, "Rollout", "rollout-ref-deployment")["spec"];
    assert_eq!(
        workload["workloadRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "rollout-ref-deployment", "scaleDown": "progressively"})
    );
    assert!(workload.get("template").is_none());
    let canary = &workload["strategy"]["canary"];
    assert_eq!(
        canary["trafficRouting"],
        json!({"istio": {
            "virtualService": {"name": "rollouts-demo-vsvc", "routes": ["primary"]},
            "destinationRule": {"name": "rollout-destrule", "canarySubsetName": "canary",
                "stableSubsetName": "stable", "baselineSubsetName": "baseline"}}})
    );
    assert_eq!(
        canary["steps"][1],
        json!({"setHeaderRoute": {"name": "set-header-1", "match": [
            {"headerName": "Custom-Header1", "headerValue": {"exact": "Mozilla"}},
            {"headerName": "Custom-Header2", "headerValue": {"prefix": "Mozilla"}}]}})
    );
    assert_eq!(
        canary["steps"][3],
        json!({"setHeaderRoute": {"name": "set-header-1"}})
    );
    let blue_green = &find(&docs, "Rollout", "rollout-bluegreen")["spec"]["strategy"];
    assert!(blue_green.get("canary").is_none());
    assert_eq!(
        blue_green["blueGreen"],
        json!({
            "activeService": "rollout-bluegreen-active",
            "previewService": "rollout-bluegreen-preview",
            "previewReplicaCount": 1,
            "autoPromotionEnabled": false,
            "autoPromotionSeconds": 30,
            "scaleDownDelaySeconds": 30,
            "prePromotionAnalysis": {"templates": [{"templateName": "smoke-tests"}],
                "args": [{"name": "service-name", "value": "rollout-bluegreen-preview.default.svc.cluster.local"}]},
            "postPromotionAnalysis": {"templates": [{"templateName": "smoke-tests"}],
                "args": [{"name": "service-name", "value": "rollout-bluegreen-active.default.svc.cluster.local"}]},
        })
    );
    let nginx = &find(&docs, "Rollout", "rollout-nginx")["spec"]["strategy"]["canary"];
    assert_eq!(
        nginx["trafficRouting"],
        json!({"nginx": {
            "stableIngress": "primary-ingress",
            "annotationPrefix": "customingress.nginx.ingress.kubernetes.io",
            "additionalIngressAnnotations": {"canary-by-header": "X-Canary", "canary-by-header-value": "iwantsit"}}})
    );
    assert_validates(name, &output);

    // Flagger's Canary adopts its Deployment through workloadRef and routes through Istio.
    let name = "flagger-canary-istio.yaml";
    let output = convert(name);
    assert_commented(
        name,
        &output,
        &[
            "autoscalerRef",
            "service",
            "skipAnalysis",
            "webhooks acceptance-test (pre-rollout)",
            "webhooks load-test (rollout)",
            "webhooks start gate (confirm-rollout)",
            "analysis.alerts",
            "metric database connections",
        ],
    );
    let docs = documents(&output);
    let spec = &find(&docs, "Rollout", "podinfo")["spec"];
    assert_eq!(
        spec["workloadRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo", "scaleDown": "onsuccess"})
    );
    let canary = &spec["strategy"]["canary"];
    assert_eq!(
        canary["trafficRouting"],
        json!({"istio": {"virtualService": {"name": "podinfo"}}})
    );
    let steps = canary["steps"].as_array().unwrap();
    assert_eq!(
        steps.first(),
        Some(&json!({"pause": {}})),
        "confirm-rollout"
    );
    assert_eq!(
        steps.last(),
        Some(&json!({"pause": {}})),
        "confirm-promotion"
    );
    let weights: Vec<&Value> = steps.iter().filter_map(|s| s.get("setWeight")).collect();
    assert_eq!(weights, [10, 20, 30, 40, 50]);
    assert_eq!(
        canary["analysis"]["templates"],
        json!([{"templateName": "podinfo-analysis"}])
    );
    let metrics = &find(&docs, "AnalysisTemplate", "podinfo-analysis")["spec"]["metrics"];
    let names: Vec<&Value> = metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(
        names,
        [
            "request-success-rate",
            "request-duration",
            "404s-percentage"
        ]
    );
    assert_eq!(metrics[0]["successCondition"], "result[0] >= 99");
    assert_eq!(metrics[0]["failureLimit"], 9);
    assert!(
        metrics[1]["provider"]["prometheus"]["query"]
            .as_str()
            .unwrap()
            .contains("destination_workload=\"{{args.target}}\"}[30s]")
    );
    assert_eq!(
        metrics[2]["provider"]["prometheus"]["address"],
        "http://prometheus.istio-system:9090"
    );
    assert_validates(name, &output);

    // Flagger's Blue/Green (iterations, no weights) is Fife's blueGreen with a pre-promotion
    // analysis that measures each metric as many times.
    let name = "flagger-canary-blue-green.yaml";
    let output = convert(name);
    assert_commented(
        name,
        &output,
        &[
            "metric request-success-rate",
            "webhooks load-test (rollout)",
        ],
    );
    let docs = documents(&output);
    let strategy = &find(&docs, "Rollout", "podinfo")["spec"]["strategy"];
    assert!(strategy.get("canary").is_none());
    assert_eq!(
        strategy["blueGreen"],
        json!({
            "activeService": "podinfo",
            "previewService": "podinfo-canary",
            "prePromotionAnalysis": {"templates": [{"templateName": "podinfo-analysis"}],
                "args": [
                    {"name": "namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "target", "value": "podinfo-canary"}]},
        })
    );
    let metric = &find(&docs, "AnalysisTemplate", "podinfo-analysis")["spec"]["metrics"][0];
    assert_eq!(metric["count"], 10);
    assert_eq!(metric["interval"], "30s");
    assert_eq!(metric["failureLimit"], 1);
    assert!(
        metric["provider"]["prometheus"]["query"]
            .as_str()
            .unwrap()
            .starts_with("histogram_quantile(0.99, ")
    );
    assert_validates(name, &output);
}

/// Flagger's NGINX and Gateway API providers name the router Fife sets; A/B `match` is a
/// comment; every output validates.
#[test]
fn flagger_providers_map_to_the_router_fife_sets() {
    let canary = |provider: &str| {
        format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: web}}\nspec:\n  provider: {provider}\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\n  ingressRef: {{apiVersion: networking.k8s.io/v1, kind: Ingress, name: web}}\n  service: {{name: web-svc, port: 80}}\n  analysis:\n    interval: 1m\n    threshold: 5\n    stepWeights: [5, 25, 50]\n    match: [{{headers: {{x-canary: {{exact: insider}}}}}}]\n"
        )
    };
    let routing = |provider: &str| {
        let (code, output, stderr) = fife(&["convert", "-"], &canary(provider));
        assert_eq!(code, 0, "{stderr}");
        assert_commented(provider, &output, &["analysis.match"]);
        assert_validates(provider, &output);
        let docs = documents(&output);
        assert_eq!(docs.len(), 1, "no metrics, no AnalysisTemplate");
        let canary = docs[0]["spec"]["strategy"]["canary"].clone();
        let weights: Vec<Value> = canary["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s.get("setWeight").cloned())
            .collect();
        assert_eq!(weights, [5, 25, 50]);
        canary.get("trafficRouting").cloned()
    };
    assert_eq!(
        routing("nginx"),
        Some(json!({"nginx": {"stableIngress": "web"}}))
    );
    assert_eq!(
        routing("gatewayapi:v1"),
        Some(json!({"gatewayAPI": {"httpRoute": "web-svc"}}))
    );
    assert_eq!(routing("kubernetes"), None);
    assert_eq!(routing("linkerd"), None);
}
