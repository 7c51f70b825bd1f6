//! The API test server driven by the real `kubectl` (installed by scripts/install-deps.sh).

use fife_test_apiserver::{ApiServer, Config};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

struct Cluster {
    _server: ApiServer,
    dir: tempfile::TempDir,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

impl Cluster {
    async fn start() -> Self {
        let config = Config {
            rollout_delay: Duration::from_millis(50),
            ..Config::default()
        };
        let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Self {
            _server: server,
            dir,
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self
            .command(args)
            .output()
            .await
            .expect("kubectl runs (scripts/install-deps.sh installs it)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed: {stderr}");
        stdout
    }

    async fn with_rollout(self) -> Self {
        self.ok(&["apply", "-f", fixture("rollout-crd.yaml").to_str().unwrap()])
            .await;
        self.ok(&["apply", "-f", fixture("rollout.yaml").to_str().unwrap()])
            .await;
        self
    }

    async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&full).await).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_the_crd_printer_columns() {
    let c = Cluster::start().await.with_rollout().await;
    c.ok(&[
        "patch", "rollout", "checkout", "--subresource", "status", "--type", "merge", "-p",
        r#"{"status":{"phase":"Paused","step":"2/2","weights":{"canary":5},"readyReplicas":2,"conditions":[{"type":"Progressing","message":"waiting for promotion"}]}}"#,
    ])
    .await;
    let out = c.ok(&["get", "rollout", "checkout"]).await;
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        vec!["NAME", "PHASE", "STEP", "WEIGHT", "READY", "AGE"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..5], &["checkout", "Paused", "2/2", "5", "2"]);
    assert!(row[5].ends_with('s'), "age column: {}", row[5]);
    // Priority-1 columns appear with -o wide; short names and categories resolve.
    let wide = c.ok(&["get", "ro", "-o", "wide"]).await;
    assert!(
        wide.contains("MESSAGE") && wide.contains("waiting for promotion"),
        "{wide}"
    );
    let all = c.ok(&["get", "all"]).await;
    assert!(all.contains("rollout.testkit.fife.dev/checkout"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_patches_respect_the_status_subresource() {
    let c = Cluster::start().await.with_rollout().await;
    c.ok(&[
        "patch",
        "rollout",
        "checkout",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3},"status":{"phase":"Ignored"}}"#,
    ])
    .await;
    let r = c.json(&["get", "rollout", "checkout"]).await;
    assert_eq!(r["spec"]["replicas"], 3);
    assert_eq!(r["metadata"]["generation"], 2);
    assert!(
        r["status"]["phase"].is_null(),
        "main-resource patch must not write status"
    );
    c.ok(&[
        "patch",
        "rollout",
        "checkout",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Healthy"},"spec":{"replicas":9}}"#,
    ])
    .await;
    let r = c.json(&["get", "rollout", "checkout"]).await;
    assert_eq!(r["status"]["phase"], "Healthy");
    assert_eq!(r["spec"]["replicas"], 3, "status patch must not write spec");
    assert_eq!(
        r["metadata"]["generation"], 2,
        "status writes do not bump generation"
    );
    // JSON patch with a failing test operation is refused and changes nothing.
    let (ok, _, err) = c
        .run(&["patch", "rollout", "checkout", "--type", "json", "-p", r#"[{"op":"test","path":"/spec/replicas","value":7},{"op":"replace","path":"/spec/replicas","value":1}]"#])
        .await;
    assert!(!ok && err.contains("test"), "{err}");
    // kubectl scale goes through the scale subresource.
    c.ok(&["scale", "rollout", "checkout", "--replicas", "4"])
        .await;
    assert_eq!(
        c.json(&["get", "rollout", "checkout"]).await["spec"]["replicas"],
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    let c = Cluster::start().await.with_rollout().await;
    let mut watch = c.command(&["get", "rollout", "-w", "--output-watch-events"]);
    watch.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = watch.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        first.contains("EVENT") && first.contains("PHASE"),
        "header first: {first}"
    );
    let initial = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        initial.contains("ADDED") && initial.contains("checkout"),
        "{initial}"
    );
    c.ok(&[
        "patch",
        "rollout",
        "checkout",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        r#"{"status":{"phase":"Degraded"}}"#,
    ])
    .await;
    let changed = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        changed.contains("MODIFIED") && changed.contains("Degraded"),
        "{changed}"
    );
    c.ok(&["delete", "rollout", "checkout"]).await;
    let deleted = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(deleted.contains("DELETED"), "{deleted}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cascades_to_owned_objects() {
    let c = Cluster::start().await.with_rollout().await;
    let uid = c.json(&["get", "rollout", "checkout"]).await["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let owned = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"checkout-owned","ownerReferences":[{{"apiVersion":"testkit.fife.dev/v1alpha1","kind":"Rollout","name":"checkout","uid":"{uid}","controller":true}}]}}}}"#
    );
    let unowned = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bystander"}}"#;
    let dir = c.dir.path().to_path_buf();
    std::fs::write(dir.join("owned.json"), owned).unwrap();
    std::fs::write(dir.join("unowned.json"), unowned).unwrap();
    c.ok(&[
        "apply",
        "-f",
        dir.join("owned.json").to_str().unwrap(),
        "-f",
        dir.join("unowned.json").to_str().unwrap(),
    ])
    .await;
    c.ok(&["delete", "rollout", "checkout"]).await;
    let (ok, _, err) = c.run(&["get", "configmap", "checkout-owned"]).await;
    assert!(
        !ok && err.contains("NotFound"),
        "owned object must be collected: {err}"
    );
    c.ok(&["get", "configmap", "bystander"]).await;
    // Orphan propagation keeps dependents and strips the reference.
    let c = c.with_rollout().await;
    let uid = c.json(&["get", "rollout", "checkout"]).await["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(dir.join("owned.json"), format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"kept","ownerReferences":[{{"apiVersion":"testkit.fife.dev/v1alpha1","kind":"Rollout","name":"checkout","uid":"{uid}"}}]}}}}"#
    )).unwrap();
    c.ok(&["apply", "-f", dir.join("owned.json").to_str().unwrap()])
        .await;
    c.ok(&["delete", "rollout", "checkout", "--cascade=orphan"])
        .await;
    let kept = c.json(&["get", "configmap", "kept"]).await;
    assert!(
        kept["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_apply_twice_merges_three_ways() {
    let c = Cluster::start().await;
    let path = c.dir.path().join("deployment.yaml");
    let original = std::fs::read_to_string(fixture("deployment.yaml")).unwrap();
    std::fs::write(&path, &original).unwrap();
    let out = c.ok(&["apply", "-f", path.to_str().unwrap()]).await;
    assert!(out.contains("created"), "{out}");
    // Another writer changes a field the manifest does not set.
    c.ok(&["annotate", "deployment", "web", "team=payments"])
        .await;
    // Second apply: new image for one container, a label dropped from the manifest.
    let changed = original
        .replace("registry.example/web:1", "registry.example/web:2")
        .replace(", tier: front", "");
    std::fs::write(&path, changed).unwrap();
    let out = c.ok(&["apply", "-f", path.to_str().unwrap()]).await;
    assert!(out.contains("configured"), "{out}");
    let d = c.json(&["get", "deployment", "web"]).await;
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "registry.example/web:2");
    assert_eq!(containers[1]["image"], "registry.example/proxy:1");
    assert!(
        d["metadata"]["labels"]["tier"].is_null(),
        "a label dropped from the manifest is removed"
    );
    assert_eq!(
        d["metadata"]["annotations"]["team"], "payments",
        "fields others set survive"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    let out = c.ok(&["apply", "-f", path.to_str().unwrap()]).await;
    assert!(out.contains("unchanged"), "{out}");
    // The simulated controller catches up with the new generation.
    let mut ready = serde_json::Value::Null;
    for _ in 0..100 {
        ready = c.json(&["get", "deployment", "web"]).await;
        if ready["status"]["observedGeneration"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready["status"]["readyReplicas"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_tracks_managers_and_conflicts() {
    let c = Cluster::start().await;
    let path = fixture("deployment.yaml");
    c.ok(&["apply", "--server-side", "-f", path.to_str().unwrap()])
        .await;
    let scaled = c.dir.path().join("scaled.yaml");
    std::fs::write(
        &scaled,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { replicas: 5 }\n",
    )
    .unwrap();
    let (ok, _, err) = c
        .run(&[
            "apply",
            "--server-side",
            "--field-manager",
            "autoscaler",
            "-f",
            scaled.to_str().unwrap(),
        ])
        .await;
    assert!(!ok, "a second manager changing replicas must conflict");
    assert!(
        err.contains("conflict") && err.contains(".spec.replicas") && err.contains("kubectl"),
        "{err}"
    );
    c.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "autoscaler",
        "-f",
        scaled.to_str().unwrap(),
    ])
    .await;
    let d = c
        .json(&["get", "deployment", "web", "--show-managed-fields"])
        .await;
    assert_eq!(d["spec"]["replicas"], 5);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["manager"].as_str().unwrap())
        .collect();
    assert!(
        managers.contains(&"kubectl") && managers.contains(&"autoscaler"),
        "{managers:?}"
    );
    // The first manager re-applies its manifest: replicas now belong to the autoscaler,
    // so re-applying the old value conflicts instead of silently scaling back.
    let (ok, _, err) = c
        .run(&["apply", "--server-side", "-f", path.to_str().unwrap()])
        .await;
    assert!(!ok && err.contains("autoscaler"), "{err}");
}

/// The project's own CRDs and example manifests, applied as a user would.
fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_crds_and_examples_apply_and_print_their_columns() {
    let c = Cluster::start().await;
    // CRDs and objects of their kinds go in two calls, as on a real cluster.
    c.ok(&["apply", "-f", &repo("crds")]).await;
    c.ok(&["apply", "-f", &repo("examples/rollouts")]).await;
    let names = c.ok(&["get", "rollouts.fife.dev", "-o", "name"]).await;
    assert!(names.contains("rollout.fife.dev/checkout-api"), "{names}");
    let templates = c.ok(&["get", "fat", "-o", "name"]).await;
    assert!(
        templates.contains("analysistemplate.fife.dev/canary-slo-gate"),
        "{templates}"
    );

    c.ok(&[
        "patch", "rollouts.fife.dev", "checkout-api", "--subresource", "status", "--type", "merge", "-p",
        r#"{"status":{"phase":"Paused","stepLabel":"3/7","weights":{"canary":25,"baseline":25,"stable":50},"readyLabel":"9/10","message":"waiting for promotion","release":{"holding":{"gate":"Freeze","message":"frozen","policy":"prod","since":"2026-12-01T00:00:00Z","opensAt":"2026-12-01T06:00:00Z"}}}}"#,
    ])
    .await;
    let out = c.ok(&["get", "frol", "checkout-api"]).await;
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        vec![
            "NAME", "PHASE", "STEP", "WEIGHT", "READY", "GATE", "OPENS", "AGE", "MESSAGE"
        ],
        "{out}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &row[..7],
        &[
            "checkout-api",
            "Paused",
            "3/7",
            "25",
            "9/10",
            "Freeze",
            "2026-12-01T06:00:00Z"
        ],
        "{out}"
    );
    assert_eq!(&row[8..], &["waiting", "for", "promotion"], "{out}");
}
