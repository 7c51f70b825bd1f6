//! `kubectl fife` against the Kubernetes API test server, over real HTTP, with the CRDs
//! applied by the real `kubectl`: manual actions land as one patch naming who asked,
//! `status` exits by phase and times out with 2, `get --watch` redraws from watch events,
//! and missing rollouts or CRDs are reported as sentences. The 403 path runs against a
//! small local stub, because the test server does not authorize.

use fife_test_apiserver::authn::ADMIN_USER;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness;
use tokio::io::{AsyncBufReadExt as _, BufReader};

const ROLLOUT: &str = "\
apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata:
  name: checkout
spec:
  replicas: 4
  selector: { matchLabels: { app: checkout } }
  template:
    metadata: { labels: { app: checkout } }
    spec:
      containers:
        - name: app
          image: registry.example/checkout@sha256:2222222222222222222222222222222222222222222222222222222222222222
  strategy:
    canary:
      steps:
        - setWeight: 25
        - pause: {}
        - setWeight: 100
";

/// The harness's cluster, with the Rollout `checkout` these tests act on.
struct Cluster(harness::Cluster);

impl std::ops::Deref for Cluster {
    type Target = harness::Cluster;
    fn deref(&self) -> &harness::Cluster {
        &self.0
    }
}

impl Cluster {
    async fn start() -> Self {
        Self(harness::Cluster::without_crds().await)
    }

    async fn with_rollout(self) -> Self {
        let crds = harness::workspace().join("crds");
        self.kubectl(&["apply", "-f", crds.to_str().unwrap()]).await;
        self.apply(ROLLOUT).await;
        self
    }

    async fn rollout_json(&self) -> serde_json::Value {
        serde_json::from_str(
            &self
                .kubectl(&["get", "rollouts.fife.dev", "checkout", "-o", "json"])
                .await,
        )
        .unwrap()
    }

    async fn set_status(&self, status: serde_json::Value) {
        let patch = serde_json::json!({ "status": status }).to_string();
        self.kubectl(&[
            "patch",
            "rollouts.fife.dev",
            "checkout",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ])
        .await;
    }

    fn fife(&self, args: &[&str]) -> tokio::process::Command {
        fife_with(&self.kubeconfig, args)
    }

    /// Runs `fife ARGS`; returns (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.fife(args).output().await.unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }
}

fn fife_with(kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_fife"));
    cmd.env("KUBECONFIG", kubeconfig)
        .env_remove("NO_COLOR")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn promote_writes_one_manual_action_naming_the_authenticated_user() {
    let cluster = Cluster::start().await.with_rollout().await;
    let (code, stdout, stderr) = cluster
        .run(&["promote", "checkout", "--reason", "bake looked fine"])
        .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains(&format!("promote requested by {ADMIN_USER}")),
        "{stdout}"
    );

    let rollout = cluster.rollout_json().await;
    let action = &rollout["spec"]["manualAction"];
    assert_eq!(action["action"], "Promote");
    // The name comes from the API server's SelfSubjectReview, not from the kubeconfig.
    assert_eq!(action["requestedBy"], ADMIN_USER);
    assert_eq!(action["reason"], "bake looked fine");
    let first_id = action["id"].as_str().unwrap().to_owned();
    assert!(first_id.starts_with("promote-"), "{first_id}");

    // A second request replaces the first: new id, no stale reason. A name typed with --as
    // is never copied: the request names whoever the API server authenticates (the test
    // server does not impersonate, so that is still the admin).
    let (code, _, stderr) = cluster
        .run(&["promote", "checkout", "--full", "--as", "alice@example.com"])
        .await;
    assert_eq!(code, 0, "{stderr}");
    let action = cluster.rollout_json().await["spec"]["manualAction"].clone();
    assert_eq!(action["action"], "PromoteFull");
    assert_eq!(action["requestedBy"], ADMIN_USER);
    assert!(action.get("reason").is_none(), "{action}");
    assert_ne!(action["id"].as_str().unwrap(), first_id);
}

#[tokio::test]
async fn abort_retry_pause_and_resume_each_land_on_the_rollout() {
    let cluster = Cluster::start().await.with_rollout().await;
    for (verb, expected) in [("abort", "Abort"), ("retry", "Retry")] {
        let (code, _, stderr) = cluster.run(&[verb, "checkout"]).await;
        assert_eq!(code, 0, "{verb}: {stderr}");
        assert_eq!(
            cluster.rollout_json().await["spec"]["manualAction"]["action"],
            expected
        );
    }
    let (code, _, stderr) = cluster.run(&["pause", "checkout"]).await;
    assert_eq!(code, 0, "{stderr}");
    let rollout = cluster.rollout_json().await;
    assert_eq!(rollout["spec"]["paused"], true);
    assert_eq!(
        rollout["metadata"]["annotations"]["fife.dev/pause-requested-by"],
        ADMIN_USER
    );
    let (code, _, stderr) = cluster.run(&["resume", "checkout"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(cluster.rollout_json().await["spec"]["paused"], false);
}

#[tokio::test]
async fn status_exits_by_phase_and_two_on_timeout() {
    let cluster = Cluster::start().await.with_rollout().await;
    let (code, stdout, _) = cluster
        .run(&["status", "checkout", "--timeout", "1s"])
        .await;
    assert_eq!(code, 2, "no status yet: {stdout}");

    cluster
        .set_status(serde_json::json!({"observedGeneration": 1, "phase": "Degraded", "message": "analysis failed"}))
        .await;
    let (code, stdout, _) = cluster
        .run(&["status", "checkout", "--timeout", "5s"])
        .await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("Degraded: analysis failed"), "{stdout}");

    // A waiting `status` sees the change through its watch.
    cluster
        .set_status(
            serde_json::json!({"observedGeneration": 1, "phase": "Progressing", "message": null}),
        )
        .await;
    let mut waiting = cluster
        .fife(&["status", "checkout", "--timeout", "20s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(waiting.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap_or_default();
    assert_eq!(first, "◌ Progressing");
    // Only now, with `status` past its first read, does the controller report Healthy.
    cluster
        .set_status(serde_json::json!({"phase": "Healthy"}))
        .await;
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        rest.push(line);
    }
    let code = waiting.wait().await.unwrap().code();
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(rest.iter().any(|l| l == "✔ Healthy"), "{rest:?}");
    assert!(
        rest.iter().any(|l| l == "Rollout \"checkout\" is Healthy."),
        "{rest:?}"
    );
}

#[tokio::test]
async fn get_and_list_show_the_rollout() {
    let cluster = Cluster::start().await.with_rollout().await;
    cluster
        .set_status(serde_json::json!({"observedGeneration": 1, "phase": "Paused", "currentStepIndex": 1,
            "stepLabel": "2/3", "weights": {"canary": 25, "baseline": 0, "stable": 75}, "readyLabel": "4/4"}))
        .await;
    let (code, stdout, stderr) = cluster.run(&["get", "rollout", "checkout"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Status:        ॥ Paused\n"), "{stdout}");
    assert!(stdout.contains("Step:          2/3\n"), "{stdout}");
    assert!(stdout.contains("Set weight:    25\n"), "{stdout}");
    assert!(
        !stdout.contains('\x1b'),
        "no colour off a terminal: {stdout}"
    );

    let (code, stdout, stderr) = cluster.run(&["list", "rollouts"]).await;
    assert_eq!(code, 0, "{stderr}");
    let row = stdout.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("checkout") && row.contains("॥ Paused") && row.contains("25"),
        "{stdout}"
    );
}

#[tokio::test]
async fn get_watch_redraws_when_the_rollout_changes() {
    let cluster = Cluster::start().await.with_rollout().await;
    let mut child = cluster
        .fife(&["get", "rollout", "checkout", "--watch"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_status = async || loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("watch output continues");
        if let Some(status) = line.strip_prefix("Status:") {
            return status.trim().to_owned();
        }
    };
    let first = tokio::time::timeout(Duration::from_secs(20), next_status())
        .await
        .unwrap();
    assert_eq!(first, "? Unknown");
    cluster
        .set_status(serde_json::json!({"phase": "Healthy"}))
        .await;
    let second = tokio::time::timeout(Duration::from_secs(20), next_status())
        .await
        .unwrap();
    assert_eq!(second, "✔ Healthy");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn missing_rollout_and_missing_crd_are_explained() {
    let cluster = Cluster::start().await;
    let (code, _, stderr) = cluster.run(&["get", "rollout", "checkout"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the Rollout CRD is not installed: kubectl apply -f crds/"),
        "{stderr}"
    );
    let (code, _, stderr) = cluster.run(&["list", "rollouts"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the Rollout CRD is not installed"),
        "{stderr}"
    );

    let cluster = cluster.with_rollout().await;
    let (code, _, stderr) = cluster.run(&["promote", "nope", "-n", "default"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Rollout \"nope\" not found in namespace \"default\""),
        "{stderr}"
    );
    let (code, _, stderr) = cluster.run(&["status", "nope", "--timeout", "5s"]).await;
    assert_eq!(code, 3, "cannot check is not a timeout: {stderr}");
    assert!(stderr.contains("Rollout \"nope\" not found"), "{stderr}");
}

#[tokio::test]
async fn forbidden_names_the_verb_and_the_resource() {
    let url = harness::forbidding_server(
        "rollouts.fife.dev \"checkout\" is forbidden: User \"alice\" cannot patch resource \"rollouts\" in API group \"fife.dev\" in the namespace \"shop\"",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fife_test_apiserver::kubeconfig_for(&url)).unwrap();
    let out = fife_with(&kubeconfig, &["promote", "checkout", "-n", "shop"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("forbidden: User \"alice\" cannot patch rollouts.fife.dev \"checkout\" in namespace \"shop\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("kubectl auth can-i patch rollouts.fife.dev -n shop"),
        "{stderr}"
    );
}
