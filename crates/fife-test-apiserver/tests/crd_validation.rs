//! Fife's own CRDs (`crds/`) enforced as a real server enforces them: every example in
//! `examples/rollouts` applies, every `x-kubernetes-validations` rule of every CRD refuses
//! a manifest that breaks it (the test fails if a rule is added without a case), and
//! schema errors come back together in one `Invalid` Status with kube-apiserver's field
//! paths and wording.

use fife_test_apiserver::{ApiServer, Config};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|doc| doc.is_object())
        .collect()
}

fn crds() -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().flat_map(|f| documents(f)).collect()
}

/// Every (rule, message) of a CRD's schema.
fn rules_of(crd: &Value) -> Vec<(String, String)> {
    fn walk(schema: &Value, out: &mut Vec<(String, String)>) {
        for rule in schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push((
                rule["rule"].as_str().unwrap().to_owned(),
                rule["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        for child in schema["properties"].as_object().into_iter().flatten() {
            walk(child.1, out);
        }
        walk_if(&schema["items"], out);
        walk_if(&schema["additionalProperties"], out);
    }
    fn walk_if(schema: &Value, out: &mut Vec<(String, String)>) {
        if schema.is_object() {
            walk(schema, out);
        }
    }
    let mut out = Vec::new();
    walk(
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        &mut out,
    );
    out
}

struct Cluster {
    server: ApiServer,
    http: reqwest::Client,
}

impl Cluster {
    async fn start() -> Self {
        let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
            .await
            .unwrap();
        let cluster = Self {
            server,
            http: reqwest::Client::new(),
        };
        for crd in crds() {
            let (code, body) = cluster.create(&crd).await;
            assert_eq!(code, 201, "{body}");
        }
        cluster
    }

    fn collection(manifest: &Value) -> String {
        let api_version = manifest["apiVersion"].as_str().unwrap();
        let (plural, namespaced) = match manifest["kind"].as_str().unwrap() {
            "CustomResourceDefinition" => ("customresourcedefinitions", false),
            "ClusterAnalysisTemplate" => ("clusteranalysistemplates", false),
            "AnalysisTemplate" => ("analysistemplates", true),
            "AnalysisRun" => ("analysisruns", true),
            "Rollout" => ("rollouts", true),
            "Approval" => ("approvals", true),
            "HTTPRoute" => ("httproutes", true),
            "VirtualService" => ("virtualservices", true),
            "DestinationRule" => ("destinationrules", true),
            "Ingress" => ("ingresses", true),
            "Deployment" => ("deployments", true),
            "Service" => ("services", true),
            other => panic!("no path for {other}"),
        };
        let namespace = if namespaced {
            "/namespaces/default"
        } else {
            ""
        };
        // The core group's objects (apiVersion `v1`) are served under /api.
        let root = if api_version.contains('/') {
            "apis"
        } else {
            "api"
        };
        format!("/{root}/{api_version}{namespace}/{plural}")
    }

    async fn create(&self, manifest: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!(
                "{}{}",
                self.server.url(),
                Self::collection(manifest)
            ))
            .json(manifest)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

impl Cluster {
    /// PUT `manifest` over the stored object of the same name (an update, so transition
    /// rules see `oldSelf`).
    async fn replace(&self, manifest: &Value) -> (u16, Value) {
        let name = manifest["metadata"]["name"].as_str().unwrap();
        let response = self
            .http
            .put(format!(
                "{}{}/{name}",
                self.server.url(),
                Self::collection(manifest)
            ))
            .json(manifest)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

/// Transition rules (`oldSelf`) are only judged on an update: each case is an object that
/// creates and a change to it that the rule refuses.
fn transition_cases() -> Vec<(&'static str, &'static str, Value, Value)> {
    let approval = json!({ "apiVersion": "fife.dev/v1alpha1", "kind": "Approval",
        "metadata": { "name": "checkout-api-7f9c" },
        "spec": { "rollout": "checkout-api", "rolloutUid": "0b7c6a52-3d1e-4f7e-9a53-1c2d3e4f5a6b",
            "revision": "7f9c", "approver": "jane",
            "digests": ["registry.example/checkout@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"] } });
    let mut retargeted = approval.clone();
    retargeted["spec"]["revision"] = json!("8a1d");
    vec![("self == oldSelf", "spec", approval, retargeted)]
}

#[tokio::test]
async fn every_example_applies_with_validation_on() {
    let cluster = Cluster::start().await;
    let dir = workspace().join("examples/rollouts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut applied = 0;
    for file in &files {
        for mut manifest in documents(file) {
            // The examples share names; each file is its own release.
            let stem = file.file_stem().unwrap().to_str().unwrap();
            let name = manifest["metadata"]["name"].as_str().unwrap().to_owned();
            manifest["metadata"]["name"] = json!(format!("{stem}-{name}"));
            let (code, body) = cluster.create(&manifest).await;
            assert_eq!(code, 201, "{}: {body}", file.display());
            applied += 1;
        }
    }
    assert!(applied >= 7, "only {applied} manifests found");
}

/// A valid metric for the analysis kinds; cases break one rule each.
fn metric() -> Value {
    json!({ "name": "success-rate", "interval": "1m", "count": 3,
        "successCondition": "result[0] >= 0.99",
        "provider": { "prometheus": { "address": "http://prometheus:9090", "query": "up" } } })
}

fn comparison() -> Value {
    json!({ "name": "latency", "interval": "1m", "count": 3, "compare": { "confidence": 0.95 },
        "provider": { "prometheus": { "address": "http://prometheus:9090",
            "query": "latency{fife_role=\"{{role}}\"}" } } })
}

/// One broken manifest spec per rule of the analysis kinds: (rule, field, spec).
fn analysis_cases() -> Vec<(&'static str, &'static str, Value)> {
    let with_metric = |m: Value| json!({ "metrics": [m] });
    let m = |patch: Value, base: Value| {
        let mut out = base;
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                out.as_object_mut().unwrap().remove(k);
            } else {
                out[k] = v.clone();
            }
        }
        with_metric(out)
    };
    let mut auth = metric();
    auth["provider"]["prometheus"]["auth"] = json!({});
    vec![
        (
            "!(has(self.value) && has(self.valueFrom))",
            "spec.args[0]",
            json!({ "args": [{ "name": "a", "value": "x", "valueFrom": { "podTemplateHashValue": "Stable" } }],
                "metrics": [metric()] }),
        ),
        (
            "has(self.fieldRef) != has(self.podTemplateHashValue)",
            "spec.args[0].valueFrom",
            json!({ "args": [{ "name": "a", "valueFrom": {} }], "metrics": [metric()] }),
        ),
        (
            "has(self.compare) || has(self.successCondition) || has(self.failureCondition)",
            "spec.metrics[0]",
            m(json!({ "successCondition": null }), metric()),
        ),
        (
            "!has(self.compare) || !(has(self.successCondition) || has(self.failureCondition))",
            "spec.metrics[0]",
            m(json!({ "failureCondition": "result[0] > 1" }), comparison()),
        ),
        (
            "!has(self.count) || self.count <= 1 || has(self.interval)",
            "spec.metrics[0]",
            m(json!({ "interval": null }), metric()),
        ),
        (
            "!has(self.count) || self.failureLimit < self.count",
            "spec.metrics[0]",
            m(json!({ "failureLimit": 3 }), metric()),
        ),
        (
            "!has(self.count) || self.inconclusiveLimit < self.count",
            "spec.metrics[0]",
            m(json!({ "inconclusiveLimit": 4 }), metric()),
        ),
        (
            "!has(self.compare) || !has(self.provider.prometheus) || self.provider.prometheus.query.contains('{{role}}')",
            "spec.metrics[0]",
            m(
                json!({ "provider": { "prometheus": { "address": "http://p:9090", "query": "latency" } } }),
                comparison(),
            ),
        ),
        (
            "self.confidence > 0.0 && self.confidence < 1.0",
            "spec.metrics[0].compare",
            // An integer in JSON, a double to CEL: the schema says `number`.
            m(json!({ "compare": { "confidence": 1 } }), comparison()),
        ),
        (
            "!has(self.test) || self.test != 'counts' || (has(self.requests) && self.requests.contains('{{role}}'))",
            "spec.metrics[0].compare",
            m(
                json!({ "compare": { "confidence": 0.95, "test": "counts" } }),
                comparison(),
            ),
        ),
        (
            "!has(self.allowedIncrease) || self.allowedIncrease >= 1.0",
            "spec.metrics[0].compare",
            m(
                json!({ "compare": { "confidence": 0.95, "allowedIncrease": 0.9 } }),
                comparison(),
            ),
        ),
        (
            "!has(self.allowedDecrease) || (self.allowedDecrease > 0.0 && self.allowedDecrease <= 1.0)",
            "spec.metrics[0].compare",
            m(
                json!({ "compare": { "confidence": 0.95, "allowedDecrease": 1.5 } }),
                comparison(),
            ),
        ),
        (
            "has(self.bearerTokenSecretRef) != has(self.basicAuthSecretRef)",
            "spec.metrics[0].provider.prometheus.auth",
            with_metric(auth),
        ),
    ]
}

/// The example Rollout, broken one rule at a time: (rule, field, manifest).
fn rollout_cases() -> Vec<(&'static str, &'static str, Value)> {
    let example = documents(&workspace().join("examples/rollouts/comparison-analysis.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Rollout")
        .unwrap();
    let both =
        json!([{ "name": "a", "value": "x", "valueFrom": { "podTemplateHashValue": "Stable" } }]);
    let neither = json!([{ "name": "a", "valueFrom": {} }]);
    let mut cases = Vec::new();
    let mut no_template = example.clone();
    no_template["spec"]
        .as_object_mut()
        .unwrap()
        .remove("template");
    cases.push((
        "has(self.selector) == has(self.template) || has(self.workloadRef)",
        "spec",
        no_template,
    ));
    let deployment = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" });
    let mut both_sources = example.clone();
    both_sources["spec"]["workloadRef"] = deployment.clone();
    cases.push((
        "!(has(self.template) && has(self.workloadRef))",
        "spec",
        both_sources,
    ));
    let mut stateful_set = example.clone();
    let spec = stateful_set["spec"].as_object_mut().unwrap();
    spec.remove("template");
    spec.remove("selector");
    let mut reference = deployment;
    reference["kind"] = json!("StatefulSet");
    stateful_set["spec"]["workloadRef"] = reference;
    cases.push((
        "self.apiVersion == 'apps/v1' && self.kind == 'Deployment'",
        "spec.workloadRef",
        stateful_set,
    ));
    for (rule, field, args) in [
        (
            "!(has(self.value) && has(self.valueFrom))",
            "spec.strategy.canary.steps[3].analysis.args[0]",
            &both,
        ),
        (
            "has(self.fieldRef) != has(self.podTemplateHashValue)",
            "spec.strategy.canary.steps[3].analysis.args[0].valueFrom",
            &neither,
        ),
    ] {
        let mut step = example.clone();
        step["spec"]["strategy"]["canary"]["steps"][3]["analysis"]["args"] = args.clone();
        cases.push((rule, field, step));
    }
    for (rule, field, args) in [
        (
            "!(has(self.value) && has(self.valueFrom))",
            "spec.strategy.canary.analysis.args[0]",
            &both,
        ),
        (
            "has(self.fieldRef) != has(self.podTemplateHashValue)",
            "spec.strategy.canary.analysis.args[0].valueFrom",
            &neither,
        ),
    ] {
        let mut background = example.clone();
        background["spec"]["strategy"]["canary"]["analysis"] = json!({
            "templates": [{ "templateName": "checkout-api-gate" }], "args": args });
        cases.push((rule, field, background));
    }
    let mut two_routers = example.clone();
    two_routers["spec"]["strategy"]["canary"]["trafficRouting"] = json!({
        "gatewayAPI": { "httpRoute": "web" },
        "istio": { "virtualService": { "name": "web" } }
    });
    cases.push((
        "!(has(self.gatewayAPI) && has(self.istio)) && !(has(self.gatewayAPI) && has(self.nginx)) && !(has(self.istio) && has(self.nginx))",
        "spec.strategy.canary.trafficRouting",
        two_routers,
    ));
    let mut no_match_kind = example.clone();
    no_match_kind["spec"]["strategy"]["canary"]["steps"][0] = json!({ "setHeaderRoute": {
        "name": "beta", "match": [{ "headerName": "x-beta", "headerValue": {} }] } });
    cases.push((
        "(has(self.exact) || has(self.prefix) || has(self.regex)) && !(has(self.exact) && has(self.prefix)) && !(has(self.exact) && has(self.regex)) && !(has(self.prefix) && has(self.regex))",
        "spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue",
        no_match_kind,
    ));
    cases
}

#[tokio::test]
async fn every_cel_rule_of_every_crd_refuses_a_manifest_with_its_message() {
    let cluster = Cluster::start().await;
    let mut cases: Vec<(String, &str, &str, Value)> = Vec::new();
    for (kind, plural) in [
        ("AnalysisTemplate", "analysistemplates"),
        ("ClusterAnalysisTemplate", "clusteranalysistemplates"),
        ("AnalysisRun", "analysisruns"),
    ] {
        for (i, (rule, field, spec)) in analysis_cases().into_iter().enumerate() {
            let manifest = json!({ "apiVersion": "fife.dev/v1alpha1", "kind": kind,
                "metadata": { "name": format!("case-{i}") }, "spec": spec });
            cases.push((format!("{plural}.fife.dev"), rule, field, manifest));
        }
    }
    for (i, (rule, field, mut manifest)) in rollout_cases().into_iter().enumerate() {
        manifest["metadata"]["name"] = json!(format!("case-{i}"));
        cases.push(("rollouts.fife.dev".into(), rule, field, manifest));
    }

    let crds = crds();
    let mut exercised: BTreeSet<(String, String)> = BTreeSet::new();
    for (rule, field, created, changed) in transition_cases() {
        let (code, body) = cluster.create(&created).await;
        assert_eq!(code, 201, "{rule}: {body}");
        let stored = body["metadata"]["resourceVersion"].clone();
        let (mut created, mut changed) = (created, changed);
        created["metadata"]["resourceVersion"] = stored.clone();
        changed["metadata"]["resourceVersion"] = stored;
        let kind = created["kind"].as_str().unwrap();
        let crd_name = format!("{}s.fife.dev", kind.to_lowercase());
        let crd = crds
            .iter()
            .find(|c| c["metadata"]["name"] == crd_name.as_str())
            .unwrap();
        let message = rules_of(crd)
            .into_iter()
            .find(|(r, _)| r == rule)
            .unwrap_or_else(|| panic!("{crd_name} has no rule {rule}"))
            .1;
        let (code, body) = cluster.replace(&changed).await;
        assert_eq!(code, 422, "{crd_name} {rule}: {body}");
        let expected = json!({ "reason": "FieldValueInvalid", "field": field,
            "message": format!("Invalid value: \"object\": {message}") });
        let causes = body["details"]["causes"].as_array().unwrap();
        assert!(
            causes.contains(&expected),
            "{crd_name} {rule}: expected {expected} in {body}"
        );
        // The same object written back unchanged passes the rule.
        let (code, body) = cluster.replace(&created).await;
        assert_eq!(code, 200, "{crd_name} {rule} unchanged: {body}");
        exercised.insert((crd_name, rule.to_string()));
    }
    for (crd_name, rule, field, manifest) in &cases {
        let crd = crds
            .iter()
            .find(|c| c["metadata"]["name"] == crd_name.as_str())
            .unwrap();
        let message = rules_of(crd)
            .into_iter()
            .find(|(r, _)| r == rule)
            .unwrap_or_else(|| panic!("{crd_name} has no rule {rule}"))
            .1;
        let (code, body) = cluster.create(manifest).await;
        assert_eq!(code, 422, "{crd_name} {rule}: {body}");
        assert_eq!(body["reason"], "Invalid", "{body}");
        let expected = json!({ "reason": "FieldValueInvalid", "field": field,
            "message": format!("Invalid value: \"object\": {message}") });
        let causes = body["details"]["causes"].as_array().unwrap();
        assert!(
            causes.contains(&expected),
            "{crd_name} {rule}: expected {expected} in {body}"
        );
        let kind = manifest["kind"].as_str().unwrap();
        let name = manifest["metadata"]["name"].as_str().unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{kind}.fife.dev \"{name}\" is invalid: ")),
            "{body}"
        );
        exercised.insert((crd_name.clone(), rule.to_string()));
    }
    for crd in &crds {
        let crd_name = crd["metadata"]["name"].as_str().unwrap();
        for (rule, _) in rules_of(crd) {
            assert!(
                exercised.contains(&(crd_name.to_owned(), rule.clone())),
                "no rejected manifest exercises {crd_name}'s rule {rule}"
            );
        }
    }
}

#[tokio::test]
async fn schema_errors_come_back_together_with_field_paths() {
    let cluster = Cluster::start().await;
    let mut rollout = rollout_cases().remove(0).2;
    rollout["spec"]["template"] = json!({ "metadata": { "labels": { "app": "checkout-api" } },
        "spec": { "containers": [{ "name": "app", "image": "app:1" }] } });
    rollout["spec"]["replicas"] = json!("ten");
    rollout["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = json!("5");
    rollout["spec"]["strategy"]["canary"]["steps"][1]["pause"]["duration"] = json!("ten minutes");
    let (code, body) = cluster.create(&rollout).await;
    assert_eq!(code, 422, "{body}");
    let causes: BTreeSet<(String, String)> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_owned(),
                c["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("spec.replicas", "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""),
        ("spec.strategy.canary.steps[0].setWeight", "Invalid value: \"string\": spec.strategy.canary.steps[0].setWeight in body must be of type integer: \"string\""),
        ("spec.strategy.canary.steps[1].pause.duration", "Invalid value: \"ten minutes\": spec.strategy.canary.steps[1].pause.duration in body should match '^([0-9]+(ms|s|m|h))+$'"),
    ]
    .iter()
    .map(|(f, m)| (f.to_string(), m.to_string()))
    .collect();
    assert_eq!(causes, expected, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Rollout.fife.dev \"checkout-api\" is invalid: ["),
        "{body}"
    );

    let mut template = json!({ "apiVersion": "fife.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": { "name": "enum" }, "spec": { "metrics": [comparison()] } });
    template["spec"]["metrics"][0]["compare"]["direction"] = json!("up");
    template["spec"]["metrics"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    let (code, body) = cluster.create(&template).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "AnalysisTemplate.fife.dev \"enum\" is invalid: [spec.metrics[0].name: Required value, spec.metrics[0].compare.direction: Unsupported value: \"up\": supported values: \"increase\", \"decrease\", \"either\"]"
    );
}
