//! What validation and admission cost the API test server: the example Rollout checked
//! against Fife's Rollout CRD (schema and CEL rules) in process, and ConfigMap creates
//! over HTTP with no ValidatingAdmissionPolicy bound and with ten. Prints a Markdown
//! table for docs/BENCHMARKS.md.
//!
//! Run: `cargo bench -p fife-test-apiserver --bench admission`.

use fife_test_apiserver::{ADMIN_TOKEN, ApiServer, Config};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

fn workspace_file(path: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path),
    )
    .unwrap()
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn validation() -> (Duration, usize) {
    let crd: Value =
        serde_saphyr::from_str(&workspace_file("crds/rollouts.fife.dev.yaml")).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let example = workspace_file("examples/rollouts/comparison-analysis.yaml");
    let rollout: Value = example
        .split("\n---")
        .filter_map(|d| serde_saphyr::from_str::<Value>(d).ok())
        .find(|d| d["kind"] == "Rollout")
        .unwrap();
    let mut samples = Vec::new();
    for _ in 0..2_000 {
        let started = Instant::now();
        let errors = fife_test_apiserver::validation::validate(&rollout, Some(&rollout), schema);
        samples.push(started.elapsed());
        assert!(errors.is_empty(), "{errors:?}");
    }
    (median(&mut samples), samples.len())
}

async fn creates(bindings: usize) -> Duration {
    let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{}{path}", server.url()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let base = "/apis/admissionregistration.k8s.io/v1";
    for i in 0..bindings {
        let name = format!("policy-{i}");
        let policy = json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": { "name": name },
            "spec": { "matchConstraints": { "resourceRules": [{ "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"] }] },
                "variables": [{ "name": "size", "expression": "size(object.data)" }],
                "validations": [
                    { "expression": "variables.size <= 16" },
                    { "expression": "object.metadata.name.startsWith('cm-')" },
                    { "expression": "request.userInfo.username != ''" }] } });
        let binding = json!({ "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": name },
            "spec": { "policyName": name, "validationActions": ["Deny"] } });
        post(format!("{base}/validatingadmissionpolicies"), policy)
            .await
            .unwrap();
        post(format!("{base}/validatingadmissionpolicybindings"), binding)
            .await
            .unwrap();
    }
    let mut samples = Vec::new();
    for i in 0..2_000 {
        let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": format!("cm-{i}") }, "data": { "a": "b" } });
        let started = Instant::now();
        let response = post("/api/v1/namespaces/default/configmaps".into(), cm)
            .await
            .unwrap();
        samples.push(started.elapsed());
        assert_eq!(response.status().as_u16(), 201);
    }
    median(&mut samples)
}

#[tokio::main]
async fn main() {
    let (validate, n) = validation();
    let unbound = creates(0).await;
    let bound = creates(10).await;
    println!("| measurement | median |");
    println!("|---|---|");
    println!(
        "| validate the example Rollout (schema + CEL rules, update), {n} runs | {} µs |",
        us(validate)
    );
    println!(
        "| create a ConfigMap over HTTP, no binding, 2,000 creates | {} µs |",
        us(unbound)
    );
    println!(
        "| create a ConfigMap over HTTP, 10 bindings × 3 validations + 1 variable | {} µs |",
        us(bound)
    );
}
