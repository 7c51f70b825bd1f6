//! End to end under least privilege: the real `fife controller` authenticates with a
//! ServiceAccount token of `fife-system/fife-controller`, bound to the ClusterRole of
//! `examples/install/rbac.yaml` exactly as installed, on an API server that evaluates
//! RBAC. With the whole role a release goes through its steps and the HTTPRoute; with
//! the Deployments rule removed, the controller reports the 403 (the refused verb and
//! resource, in kube-apiserver's words) as a Warning Event on the Rollout instead of
//! retrying silently.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{Cluster, Controller, ControllerOptions, image_patch, rollout, workspace};
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
    let forbidden: Vec<_> = cluster
        .api
        .journal(0)
        .into_iter()
        .filter(|e| e.status == 403)
        .map(|e| format!("{} {} by {:?}", e.method, e.path, e.user))
        .collect();
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

/// Least privilege, both ways, rule by rule: a release with a canary step and an
/// HTTPRoute, run under the installed ClusterRole, uses every verb it grants except the
/// ones listed here (each with the test that needs it), and needs nothing else. So
/// removing any other rule or verb makes `a_release_goes_through_under_the_installed_cluster_role`
/// fail with a 403 (that test allows none), and a verb the controller stops using fails
/// this test until it leaves the role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_role_grants_exactly_what_a_release_uses() {
    // Verbs a plain release does not reach, and why the role keeps them.
    let elsewhere: &[(&str, &str, &str, &str)] = &[
        // AnalysisRuns are created, terminated and their status written only when a step
        // or the background runs an analysis (controller::analysis, controller::thresholds).
        ("fife.dev", "analysisruns", "create", "a step's analysis"),
        ("fife.dev", "analysisruns", "patch", "terminating a run"),
        ("fife.dev", "analysisruns/status", "patch", "a run's result"),
        (
            "fife.dev",
            "analysisruns",
            "get",
            "a run read back after 409",
        ),
        (
            "fife.dev",
            "analysistemplates",
            "get",
            "a step naming a template",
        ),
        (
            "fife.dev",
            "clusteranalysistemplates",
            "get",
            "a step naming one",
        ),
        ("fife.dev", "releasepolicies", "get", "read by list"),
        ("fife.dev", "approvals", "get", "read by list"),
        ("fife.dev", "breakglasses", "get", "read by list"),
        (
            "fife.dev",
            "rollouts",
            "get",
            "a cached Rollout older than our write",
        ),
        (
            "apps",
            "deployments",
            "get",
            "a workloadRef's Deployment before Fife labels it; children come from the cache",
        ),
        ("", "services", "get", "Services come from the cache"),
        // Credentials of Prometheus providers and image keys (controller::prometheus_auth,
        // controller::signatures).
        ("", "secrets", "get", "provider credentials and image keys"),
        // The Istio and NGINX routers (controller::routers); this release uses the Gateway API.
        (
            "networking.istio.io",
            "virtualservices",
            "get",
            "Istio route weights",
        ),
        (
            "networking.istio.io",
            "virtualservices",
            "patch",
            "Istio route weights",
        ),
        (
            "networking.istio.io",
            "destinationrules",
            "get",
            "Istio role subsets",
        ),
        (
            "networking.istio.io",
            "destinationrules",
            "patch",
            "Istio role subsets",
        ),
        (
            "networking.k8s.io",
            "ingresses",
            "get",
            "the stable Ingress",
        ),
        (
            "networking.k8s.io",
            "ingresses",
            "create",
            "the canary Ingress",
        ),
        (
            "networking.k8s.io",
            "ingresses",
            "patch",
            "the canary weight",
        ),
        (
            "networking.k8s.io",
            "ingresses",
            "delete",
            "the canary Ingress at the end",
        ),
    ];
    let cluster = rbac_cluster().await;
    let kubeconfig = install(&cluster, None).await;
    let _controller = start(&cluster, &kubeconfig);
    cluster.apply(ROUTE).await;
    let gateway = "      trafficRouting: {gatewayAPI: {httpRoute: web}}\n";
    let steps = "        - setWeight: 50\n        - pause: {duration: 1s}\n";
    cluster
        .apply(&rollout("web", "web:1", 2, gateway, steps))
        .await;
    cluster
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
    cluster
        .wait_for("promoted", Duration::from_secs(30), || async {
            let s = cluster.rollout_status("web").await;
            (s["phase"] == "Healthy" && s["weights"]["canary"] == 0).then_some(())
        })
        .await;
    let used = rules_used(&cluster);
    let granted = rules_granted();
    let not_granted: Vec<_> = used.difference(&granted).collect();
    assert!(
        not_granted.is_empty(),
        "used but not granted: {not_granted:#?}"
    );
    let elsewhere: std::collections::BTreeSet<(String, String, String)> = elsewhere
        .iter()
        .map(|(g, r, v, _)| (g.to_string(), r.to_string(), v.to_string()))
        .collect();
    let unused: Vec<_> = granted
        .difference(&used)
        .filter(|rule| !elsewhere.contains(*rule))
        .collect();
    assert!(
        unused.is_empty(),
        "granted, not used by a release and not listed as needed elsewhere: {unused:#?}"
    );
}
