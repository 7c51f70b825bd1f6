//! End to end under least privilege: the real `fife controller` authenticates with a
//! ServiceAccount token of `fife-system/fife-controller`, bound to the ClusterRole of
//! `examples/install/rbac.yaml` exactly as installed, on an API server that evaluates
//! RBAC. With the whole role a release goes through its steps and the HTTPRoute; with
//! the Deployments rule removed, the controller reports the 403 (the refused verb and
//! resource, in kube-apiserver's words) as a Warning Event on the Rollout instead of
//! retrying silently. Releases with every router, both kinds of analysis, Prometheus
//! credentials from a Secret and a `workloadRef` use every verb the role grants: removing
//! any one rule fails
//! `the_cluster_role_grants_exactly_what_releases_with_every_router_and_analysis_use`
//! with the refused request (its doc says which release needs which rule).

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{
    Cluster, Controller, ControllerOptions, Prometheus, image_patch, rollout, workspace,
};
use fife_api::labels::ROLLOUT_LABEL;
use fife_test_apiserver::{Authentication, AuthorizationMode, Config};
use serde_json::Value;

const ROUTE: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gateway}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: web-stable, port: 8080}]
"#;

/// A cluster over HTTPS that refuses anonymous requests and authorizes with RBAC, Fife's
/// CRDs installed.
async fn rbac_cluster() -> Cluster {
    let cluster = Cluster::with_config(Config {
        tls: true,
        authorization_mode: AuthorizationMode::Rbac,
        authentication: Authentication {
            anonymous: false,
            ..Authentication::default()
        },
        ..Config::default()
    })
    .await;
    cluster
        .kubectl(&["apply", "-f", workspace().join("crds").to_str().unwrap()])
        .await;
    cluster
}

/// Installs the namespace, ServiceAccount and RBAC of `examples/install` (without the
/// ClusterRole rule for `resource` in `group`, if given) and returns a kubeconfig with a
/// token of the controller's ServiceAccount.
async fn install(cluster: &Cluster, without: Option<(&str, &str)>) -> PathBuf {
    let install = workspace().join("examples/install");
    for file in ["namespace.yaml", "serviceaccount.yaml"] {
        cluster
            .kubectl(&["apply", "-f", install.join(file).to_str().unwrap()])
            .await;
    }
    let text = std::fs::read_to_string(install.join("rbac.yaml")).unwrap();
    let mut documents = Vec::new();
    for document in text.split("\n---\n") {
        let mut object: Value = serde_saphyr::from_str(document).unwrap();
        if let (Some((group, resource)), "ClusterRole") =
            (without, object["kind"].as_str().unwrap_or_default())
        {
            let rules = object["rules"].as_array_mut().unwrap();
            let before = rules.len();
            rules.retain(|rule| {
                let has = |key: &str, wanted: &str| {
                    rule[key]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|v| v == wanted))
                };
                !(has("apiGroups", group) && has("resources", resource))
            });
            assert_eq!(
                rules.len() + 1,
                before,
                "one rule grants {group}/{resource}"
            );
        }
        documents.push(object.to_string());
    }
    let rbac = cluster.dir.path().join("rbac.yaml");
    std::fs::write(&rbac, documents.join("\n---\n")).unwrap();
    cluster
        .kubectl(&["apply", "-n", "fife-system", "-f", rbac.to_str().unwrap()])
        .await;
    let token = cluster
        .api
        .service_account_token("fife-system", "fife-controller");
    let kubeconfig = cluster.dir.path().join("fife-controller.kubeconfig");
    std::fs::write(&kubeconfig, cluster.api.kubeconfig_with_token(&token)).unwrap();
    kubeconfig
}

fn start(cluster: &Cluster, kubeconfig: &std::path::Path) -> Controller {
    Controller::start_with_kubeconfig(
        cluster,
        ControllerOptions {
            identity: "fife-rbac",
            lease: None,
            audit_log: cluster.dir.path().join("audit.log"),
        },
        kubeconfig,
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_goes_through_under_the_installed_cluster_role() {
    let cluster = rbac_cluster().await;
    let kubeconfig = install(&cluster, None).await;
    let _controller = start(&cluster, &kubeconfig);
    cluster.apply(ROUTE).await;
    let gateway = "      trafficRouting: {gatewayAPI: {httpRoute: web}}\n";
    let steps = "        - setWeight: 50\n        - pause: {duration: 1s}\n";
    cluster
        .apply(&rollout("web", "web:1", 2, gateway, steps))
        .await;
    let first = cluster
        .wait_phase("web", "Healthy", Duration::from_secs(30))
        .await;
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    cluster
        .wait_for("the canary at 50%", Duration::from_secs(30), || async {
            let s = cluster.rollout_status("web").await;
            (s["weights"]["canary"] == 50).then_some(())
        })
        .await;
    let route = cluster.get("httproute/web").await.unwrap();
    assert!(
        route.to_string().contains("web-canary"),
        "the HTTPRoute carries the canary: {route}"
    );
    cluster
        .wait_for(
            "the new image promoted",
            Duration::from_secs(30),
            || async {
                let s = cluster.rollout_status("web").await;
                (s["phase"] == "Healthy" && s["stableRevision"] != first["stableRevision"])
                    .then_some(())
            },
        )
        .await;
    let forbidden = refused(&cluster);
    assert!(forbidden.is_empty(), "refused requests: {forbidden:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_deployments_rule_the_403_is_reported_on_the_rollout() {
    let cluster = rbac_cluster().await;
    let kubeconfig = install(&cluster, Some(("apps", "deployments"))).await;
    let _controller = start(&cluster, &kubeconfig);
    cluster
        .apply(&rollout("web", "web:1", 2, "", "        - setWeight: 50\n"))
        .await;
    let note = cluster
        .wait_for(
            "a Warning Event naming the 403",
            Duration::from_secs(30),
            || async {
                let events = cluster.get("events.events.k8s.io").await?;
                events["items"].as_array()?.iter().find_map(|e| {
                    (e["type"] == "Warning" && e["note"].as_str()?.contains("forbidden")).then(
                        || {
                            let reason = e["reason"].as_str().unwrap_or_default();
                            format!("{reason}: {}", e["note"].as_str().unwrap_or_default())
                        },
                    )
                })
            },
        )
        .await;
    // The Deployments watch is refused first (the reconcile reads children from it), at
    // the cluster scope it lists.
    assert!(
        note.contains("User \"system:serviceaccount:fife-system:fife-controller\" cannot")
            && note.contains("resource \"deployments\" in API group \"apps\""),
        "{note}"
    );
}

/// The rule and verb of the installed ClusterRole each request of the controller's
/// ServiceAccount needed: `(apiGroup, resource[/subresource], verb)`, from the journal.
fn rules_used(cluster: &Cluster) -> std::collections::BTreeSet<(String, String, String)> {
    let mut used = std::collections::BTreeSet::new();
    for entry in cluster.api.journal(0) {
        if entry.user.as_deref() != Some("system:serviceaccount:fife-system:fife-controller")
            || entry.status >= 400
        {
            continue;
        }
        let (path, query) = entry.path.split_once('?').unwrap_or((&entry.path, ""));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => continue,
        };
        let rest = match rest {
            ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
            rest => rest,
        };
        let (resource, named) = match rest {
            [resource] => (resource.to_string(), false),
            [resource, _name] => (resource.to_string(), true),
            [resource, _name, sub] => (format!("{resource}/{sub}"), true),
            _ => continue,
        };
        let verb = match (entry.method.as_str(), named) {
            ("GET", _)
                if query
                    .split('&')
                    .any(|p| p == "watch=true" || p == "watch=1") =>
            {
                "watch"
            }
            ("GET", false) => "list",
            ("GET", true) => "get",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("PUT", _) => "update",
            ("DELETE", _) => "delete",
            _ => continue,
        };
        // An apply that creates its object (201) is authorized as create too.
        if verb == "patch" && entry.status == 201 {
            used.insert((group.to_owned(), resource.clone(), "create".to_owned()));
        }
        used.insert((group.to_owned(), resource, verb.to_owned()));
    }
    used
}

/// Every verb the installed ClusterRole grants, as `(apiGroup, resource, verb)`.
fn rules_granted() -> std::collections::BTreeSet<(String, String, String)> {
    let text = std::fs::read_to_string(workspace().join("examples/install/rbac.yaml")).unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for document in text.split("\n---\n") {
        let object: Value = serde_saphyr::from_str(document).unwrap();
        if object["kind"] != "ClusterRole" {
            continue;
        }
        for rule in object["rules"].as_array().unwrap() {
            let list = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        granted.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    granted
}

/// The requests the API server refused with 403, as `METHOD path by user`.
fn refused(cluster: &Cluster) -> Vec<String> {
    cluster
        .api
        .journal(0)
        .into_iter()
        .filter(|e| e.status == 403)
        .map(|e| format!("{} {} by {:?}", e.method, e.path, e.user))
        .collect()
}

/// Waits until `name` is Healthy on a stable revision other than `before` (none: any),
/// its canary weight gone; fails at once, naming them, when requests were refused.
async fn wait_promoted(cluster: &Cluster, name: &str, before: &Value) -> Value {
    cluster
        .wait_for(
            &format!("{name} Healthy on a new revision"),
            Duration::from_secs(40),
            || async {
                let forbidden = refused(cluster);
                assert!(forbidden.is_empty(), "refused requests: {forbidden:#?}");
                let s = cluster.rollout_status(name).await;
                (s["phase"] == "Healthy"
                    && s["stableRevision"] != *before
                    && s["weights"]["canary"] == 0)
                    .then_some(s)
            },
        )
        .await
}

/// Istio routing for `mesh`: the VirtualService whose `primary` route Fife weighs and the
/// DestinationRule whose role subsets it labels.
const MESH_ROUTING: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh, namespace: default}
spec:
  hosts: [mesh]
  http:
    - name: primary
      route:
        - destination: {host: mesh, subset: stable}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh, namespace: default}
spec:
  host: mesh
  subsets:
    - name: stable
      labels: {version: v1}
"#;

const MESH_CANARY: &str = "      trafficRouting:
        istio:
          virtualService: {name: mesh, routes: [primary]}
          destinationRule: {name: mesh, stableSubsetName: stable, canarySubsetName: canary}
      analysis:
        templates: [{templateName: up-with-token}]
";

/// The Prometheus provider's credential (a marked Secret allowed `prometheus`), the
/// background template that authenticates with it, and a cluster-wide step template.
fn analysis_objects(prometheus: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata:
  name: prometheus-token
  namespace: default
  labels: {{fife.dev/metrics-credential: "true"}}
  annotations: {{fife.dev/allowed-addresses: "{prometheus}"}}
type: Opaque
stringData: {{token: rbac-token}}
---
apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: up-with-token, namespace: default}}
spec:
  metrics:
    - name: up
      interval: 1s
      successCondition: "result[0] >= 1"
      provider:
        prometheus:
          address: "{prometheus}"
          query: vector(1)
          auth:
            bearerTokenSecretRef: {{name: prometheus-token, key: token}}
---
apiVersion: fife.dev/v1alpha1
kind: ClusterAnalysisTemplate
metadata: {{name: fife-rbac-up}}
spec:
  metrics:
    - name: up
      interval: 1s
      count: 2
      successCondition: "result[0] >= 1"
      provider:
        prometheus:
          address: "{prometheus}"
          query: vector(1)
"#
    )
}

/// `edge` adopts the Deployment `legacy` (workloadRef), routes with a canary Ingress
/// beside `edge` (NGINX) and analyses its step with a ClusterAnalysisTemplate.
const EDGE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers:
        - name: app
          image: "edge:1"
          ports: [{containerPort: 8080, name: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: edge, namespace: default}
spec:
  ingressClassName: nginx
  rules:
    - host: edge.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: edge-stable, port: {number: 8080}}}}
---
apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata: {name: edge, namespace: default}
spec:
  replicas: 2
  progressDeadlineSeconds: 60
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: legacy}
  strategy:
    canary:
      trafficRouting: {nginx: {stableIngress: edge}}
      steps:
        - setWeight: 50
        - analysis: {templates: [{templateName: fife-rbac-up, clusterScope: true}]}
"#;

/// Least privilege, both ways, rule by rule. Three releases run at once under the
/// installed ClusterRole, and none of their requests is refused:
///
/// - `web`: a canary step and a pause on an HTTPRoute (Gateway API);
/// - `mesh`: Istio routing with a background analysis from an AnalysisTemplate whose
///   Prometheus provider authenticates with a token from a Secret; the run is terminated
///   when the steps end;
/// - `edge`: a `workloadRef` Deployment, NGINX routing (a canary Ingress beside the stable
///   one, deleted once promoted) and a step analysis from a ClusterAnalysisTemplate.
///
/// Together they use every verb the role grants, and nothing it does not grant. So
/// removing any rule or verb fails this test with a 403 (it allows none, and names the
/// refused request as soon as it appears), and a verb the controller stops using fails it
/// until the verb leaves the role. Which release needs which rule:
///
/// | rule | verbs | needed by |
/// |---|---|---|
/// | `rollouts` | list, watch; get | all: the watch; a Rollout whose spec changed since Fife's last status write is read fresh |
/// | `rollouts/status` | patch | all |
/// | `analysisruns` | list, watch; create; get; patch | `mesh`, `edge`: the watch; a run per analysis; the runner reads each run before measuring; `mesh`'s background run is terminated (`spec.terminate`) |
/// | `analysisruns/status` | patch | `mesh`, `edge`: measurements and phases |
/// | `analysistemplates` | list, watch; get | all: the watch; `mesh`: its template |
/// | `clusteranalysistemplates` | list, watch; get | all: the watch; `edge`: its template |
/// | `releasepolicies`, `approvals`, `breakglasses` | list, watch | all: the CRD probe at start and the watches |
/// | `deployments` | list, watch; create, patch; get | all: the children; `edge`: `legacy` is read before Fife labels it, then labelled and scaled down (patch) |
/// | `services` | list, watch; create, patch | all: the children's Services, applied |
/// | `httproutes` | get, patch | `web` |
/// | `virtualservices`, `destinationrules` | get, patch | `mesh` |
/// | `ingresses` | get, create, patch, delete | `edge`: the stable Ingress read; the canary Ingress applied (created), then deleted |
/// | `secrets` | get | `mesh`: the bearer token, at each measurement |
/// | `events` | create | all |
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_role_grants_exactly_what_releases_with_every_router_and_analysis_use() {
    let prometheus = Prometheus::start(&[]);
    let cluster = rbac_cluster().await;
    let kubeconfig = install(&cluster, None).await;
    let _controller = start(&cluster, &kubeconfig);
    let analysis = analysis_objects(&prometheus.address);
    cluster
        .apply(&[ROUTE, MESH_ROUTING, &analysis, EDGE].join("---\n"))
        .await;
    let gateway = "      trafficRouting: {gatewayAPI: {httpRoute: web}}\n";
    let steps = "        - setWeight: 50\n        - pause: {duration: 1s}\n";
    cluster
        .apply(
            &[
                rollout("web", "web:1", 2, gateway, steps),
                rollout("mesh", "mesh:1", 2, MESH_CANARY, steps),
            ]
            .join("---\n"),
        )
        .await;
    let mut first = Vec::new();
    for name in ["web", "mesh", "edge"] {
        let status = wait_promoted(&cluster, name, &Value::Null).await;
        first.push(status["stableRevision"].clone());
    }
    prometheus.wait_for_series("vector(1)", 1).await;
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    cluster
        .merge_patch("rollout/mesh", &image_patch("mesh:2"))
        .await;
    cluster
        .merge_patch(
            "deployment/legacy",
            &serde_json::json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "edge:2", "ports": [{"containerPort": 8080, "name": "http"}]}
            ]}}}}),
        )
        .await;
    for (name, before) in ["web", "mesh", "edge"].into_iter().zip(&first) {
        wait_promoted(&cluster, name, before).await;
    }
    cluster
        .wait_for(
            "the canary Ingress to go",
            Duration::from_secs(30),
            || async {
                let ingresses = cluster.get("ingresses").await?;
                (ingresses["items"].as_array()?.len() == 1).then_some(())
            },
        )
        .await;
    let runs = cluster.get("analysisruns").await.unwrap();
    let mut phases: Vec<(&str, &str)> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["spec"]["rollout"]["name"].as_str().unwrap_or_default(),
                r["status"]["phase"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    phases.sort();
    assert_eq!(
        phases,
        [("edge", "Successful"), ("mesh", "Successful")],
        "{runs:#}"
    );
    let rule = cluster.get("destinationrule/mesh").await.unwrap();
    assert_eq!(rule["spec"]["subsets"][1]["name"], "canary", "{rule:#}");
    let legacy = cluster.get("deployment/legacy").await.unwrap();
    assert_eq!(legacy["metadata"]["labels"][ROLLOUT_LABEL], "edge");
    let forbidden = refused(&cluster);
    assert!(forbidden.is_empty(), "refused requests: {forbidden:#?}");

    let used = rules_used(&cluster);
    let granted = rules_granted();
    let not_granted: Vec<_> = used.difference(&granted).collect();
    assert!(
        not_granted.is_empty(),
        "used but not granted: {not_granted:#?}"
    );
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "granted, not used by these releases: {unused:#?}"
    );
}
