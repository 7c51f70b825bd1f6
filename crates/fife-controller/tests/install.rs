//! The install kustomization renders with the real `kubectl kustomize`, runs two replicas
//! with an audit volume, and grants exactly the access the controller uses.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn rendered() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/install");
    let out = Command::new("/usr/bin/kubectl")
        .args(["kustomize", dir.to_str().unwrap()])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn renders_every_object_in_the_controller_namespace() {
    let docs = rendered();
    let kinds: BTreeSet<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    let expected: BTreeSet<&str> = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    .into();
    assert_eq!(kinds, expected);
    for d in &docs {
        let cluster_scoped = [
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ]
        .contains(&d["kind"].as_str().unwrap());
        if !cluster_scoped {
            assert_eq!(d["metadata"]["namespace"], "fife-system", "{d:#}");
        }
    }
}

#[test]
fn two_replicas_elect_a_leader_and_write_their_own_audit_logs() {
    let docs = rendered();
    let deployment = find(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "controller");
    assert!(
        args.iter().any(|a| a.starts_with("--lease-name=")),
        "{args:?}"
    );
    assert!(
        args.contains(&"--audit-log=/var/lib/fife/audit/$(POD_NAME).jsonl"),
        "{args:?}"
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/var/lib/fife/audit"
    );
    assert_eq!(
        pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
        find(&docs, "PersistentVolumeClaim")["metadata"]["name"]
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    // The metrics Service selects the controller's pods.
    let service = find(&docs, "Service");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (k, v) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector {k}");
    }
}

/// (apiGroup, resource, verbs) for every rule, sorted.
fn rules(role: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                let mut verbs = strings(&rule["verbs"]);
                verbs.sort();
                out.push((group.clone(), resource, verbs));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_cluster_role_grants_exactly_what_the_controller_uses() {
    let docs = rendered();
    let role = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "fife-controller")
        .unwrap();
    let v = |verbs: &[&str]| {
        let mut v: Vec<String> = verbs.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let mut expected = vec![
        (
            "fife.dev".into(),
            "rollouts".into(),
            v(&["get", "list", "watch"]),
        ),
        ("fife.dev".into(), "rollouts/status".into(), v(&["patch"])),
        (
            "fife.dev".into(),
            "analysisruns".into(),
            v(&["get", "list", "watch", "create", "patch"]),
        ),
        (
            "fife.dev".into(),
            "analysisruns/status".into(),
            v(&["patch"]),
        ),
        (
            "fife.dev".into(),
            "analysistemplates".into(),
            v(&["get", "list", "watch"]),
        ),
        (
            "fife.dev".into(),
            "clusteranalysistemplates".into(),
            v(&["get", "list", "watch"]),
        ),
        (
            "fife.dev".into(),
            "releasepolicies".into(),
            v(&["list", "watch"]),
        ),
        ("fife.dev".into(), "approvals".into(), v(&["list", "watch"])),
        (
            "fife.dev".into(),
            "breakglasses".into(),
            v(&["list", "watch"]),
        ),
        (
            "apps".into(),
            "deployments".into(),
            v(&["get", "list", "watch", "create", "patch"]),
        ),
        (
            "".into(),
            "services".into(),
            v(&["list", "watch", "create", "patch"]),
        ),
        (
            "gateway.networking.k8s.io".into(),
            "httproutes".into(),
            v(&["get", "patch"]),
        ),
        (
            "networking.istio.io".into(),
            "virtualservices".into(),
            v(&["get", "patch"]),
        ),
        (
            "networking.istio.io".into(),
            "destinationrules".into(),
            v(&["get", "patch"]),
        ),
        (
            "networking.k8s.io".into(),
            "ingresses".into(),
            v(&["create", "delete", "get", "patch"]),
        ),
        ("events.k8s.io".into(), "events".into(), v(&["create"])),
        ("".into(), "secrets".into(), v(&["get"])),
    ];
    expected.sort();
    assert_eq!(rules(role), expected);
    let leader = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    assert_eq!(
        rules(leader),
        vec![
            ("".into(), "configmaps".into(), v(&["create"])),
            ("".into(), "configmaps".into(), v(&["patch"])),
            (
                "coordination.k8s.io".into(),
                "leases".into(),
                v(&["create", "get", "patch"])
            ),
        ]
    );
    let text = serde_json::to_string(&docs).unwrap();
    assert!(!text.contains("\"*\""), "no wildcards");
}

#[test]
fn only_the_platform_role_may_write_release_policies() {
    let docs = rendered();
    let writers: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole")
        .filter(|d| {
            rules(d).iter().any(|(group, resource, verbs)| {
                group == "fife.dev"
                    && resource == "releasepolicies"
                    && verbs
                        .iter()
                        .any(|v| !["get", "list", "watch"].contains(&v.as_str()))
            })
        })
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(writers, vec!["fife-release-platform"]);
    let kinds: BTreeSet<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "fife-approval-identity",
            "fife-break-glass-identity",
            "fife-rollout-applied-by"
        ]
        .into()
    );
}

fn rendered_dir(dir: &str) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/install")
        .join(dir);
    let out = Command::new("/usr/bin/kubectl")
        .args(["kustomize", dir.to_str().unwrap()])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_multiple(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

#[test]
fn the_shards_overlay_is_the_install_deployment_with_a_shard_and_pods_of_its_own() {
    let install = rendered();
    let base = find(&install, "Deployment");
    let shards = rendered_dir("shards");
    assert_eq!(shards.len(), 1, "only a Deployment: the rest is shared");
    let shard = find(&shards, "Deployment");
    assert_eq!(shard["metadata"]["namespace"], "fife-system");
    assert_ne!(shard["metadata"]["name"], base["metadata"]["name"]);

    // Neither Deployment selects the other's pods.
    let selects = |deployment: &Value, pods: &Value| {
        let labels = &pods["spec"]["template"]["metadata"]["labels"];
        deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k] == v)
    };
    assert!(selects(base, base) && selects(shard, shard));
    assert!(!selects(base, shard) && !selects(shard, base));

    // Everything else is the install's: the same ServiceAccount, audit volume (one file per
    // pod), Lease base name (the shard's Lease is derived from it), image and limits.
    let args = |d: &Value| -> Vec<String> {
        d["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect()
    };
    let mut expected = args(base);
    expected.push("--shard=b".to_owned());
    assert_eq!(args(shard), expected);
    let mut shard_pod = shard["spec"]["template"]["spec"].clone();
    shard_pod["containers"][0]["args"] =
        base["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert_eq!(
        shard_pod, base["spec"]["template"]["spec"],
        "only the arguments differ"
    );
    assert_eq!(shard["spec"]["replicas"], base["spec"]["replicas"]);
}
