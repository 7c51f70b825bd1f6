//! End to end, the release policy: the real controller and `fife` CLI against the API test
//! server with authenticated users and the install's admission policies.
//!
//! A critical-tier revision waits for two approvals before any canary pod; the author's
//! own approval is refused by admission; two others' let it start and, promoted, it leaves
//! a deploy record naming them. A freeze then holds a running canary at its step and says
//! when it opens; an abort still works. A new revision waits at the freeze until a
//! break-glass, approved by a second person, lets exactly its digest through; the next
//! digest is held again. `fife audit deploys --at` prints the authorization of what ran
//! then, and `fife audit report` counts the gates as the scenario passed them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{Cluster, Controller, ControllerOptions, fife_binary, workspace};
use fife_test_apiserver::authn::UserInfo;
use fife_test_apiserver::{Authentication, Config};
use serde_json::{Value, json};

const ADMIN: &str = "kubernetes-admin";

fn digest(n: u8) -> String {
    format!("sha256:{}", format!("{n:x}").repeat(64))
}

fn image(n: u8) -> String {
    format!("registry.example/web@{}", digest(n))
}

/// A user's kubeconfig: token `<name>-token`.
fn user(cluster: &Cluster, name: &str) -> PathBuf {
    let path = cluster.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        cluster.api.kubeconfig_with_token(&format!("{name}-token")),
    )
    .unwrap();
    path
}

/// Runs the `fife` CLI as the user of `kubeconfig`; (success, stdout, stderr).
async fn fife(kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(fife_binary())
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The template change an applier writes: the image and, as admission requires, the
/// applier's own name.
fn change_to(n: u8) -> Value {
    json!({
        "metadata": { "annotations": { "fife.dev/applied-by": ADMIN } },
        "spec": { "template": { "spec": { "containers": [
            { "name": "app", "image": image(n), "ports": [{ "containerPort": 8080, "name": "http" }] }
        ] } } }
    })
}

fn rollout() -> String {
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata:
  name: web
  namespace: default
  labels: {{tier: critical}}
  annotations:
    fife.dev/applied-by: {ADMIN}
    source.fife.dev/author: alice
    source.fife.dev/commit: 0123abc
    source.fife.dev/commit-time: "2026-01-01T00:00:00Z"
    source.fife.dev/ticket: OPS-7
spec:
  replicas: 2
  progressDeadlineSeconds: 60
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: app
          image: "{}"
          ports: [{{containerPort: 8080, name: http}}]
  strategy:
    canary:
      steps:
        - setWeight: 50
        - pause: {{}}
"#,
        image(1)
    )
}

const TIERS: &str = r#"apiVersion: fife.dev/v1alpha1
kind: ReleasePolicy
metadata: {name: production}
spec:
  namespaces: [default]
  requireDigest: true
  tiers:
    - name: critical
      match: {rolloutLabels: {tier: critical}}
      gates:
        approvals: [{groups: [sre], count: 2}]
    - name: standard
"#;

/// A freeze in force now: it opened a minute ago (UTC) and lasts an hour.
fn freeze(opened: jiff::Timestamp) -> String {
    let at = opened.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: ReleasePolicy
metadata: {{name: freeze}}
spec:
  namespaces: [default]
  schedules:
    - name: incident-freeze
      kind: Deny
      cron: "{} {} {} {} *"
      timeZone: UTC
      duration: 1h
      effect: HoldAtStep
  breakGlass: {{requireSecondApproval: true, maxDuration: 2h}}
"#,
        at.minute(),
        at.hour(),
        at.day(),
        at.month()
    )
}

async fn release(cluster: &Cluster) -> Value {
    cluster.rollout_status("web").await["release"].clone()
}

async fn held_by(cluster: &Cluster, gate: &str) -> Value {
    cluster
        .wait_for(
            &format!("the {gate} gate to hold"),
            Duration::from_secs(30),
            || async {
                let release = release(cluster).await;
                (release["holding"]["gate"] == gate).then_some(release)
            },
        )
        .await
}

/// Waits until `gate` holds with a message containing `text`: a status written before
/// the last change may still show the gate with its older message.
async fn held_saying(cluster: &Cluster, gate: &str, text: &str) -> Value {
    cluster
        .wait_for(
            &format!("the {gate} gate to say {text:?}"),
            Duration::from_secs(30),
            || async {
                let release = release(cluster).await;
                (release["holding"]["gate"] == gate
                    && release["holding"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(text)))
                .then_some(release)
            },
        )
        .await
}

async fn canary_weight(cluster: &Cluster, weight: i64) {
    cluster
        .wait_for(
            &format!("canary weight {weight}"),
            Duration::from_secs(30),
            || async {
                let status = cluster.rollout_status("web").await;
                (status["weights"]["canary"] == weight
                    && status["release"]["holding"].is_null()
                    && status["phase"] == "Paused")
                    .then_some(())
            },
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_freezes_and_break_glass_end_to_end() {
    let users = [
        ("alice", vec!["dev"]),
        ("bob", vec!["sre"]),
        ("carol", vec!["sre"]),
        ("erin", vec!["oncall"]),
        ("frank", vec!["sre"]),
    ];
    // Over HTTPS, as kubectl sends credentials only over TLS.
    let cluster = Cluster::with_config(Config {
        tls: true,
        authentication: Authentication {
            anonymous: false,
            static_tokens: users
                .iter()
                .map(|(name, groups)| {
                    (
                        format!("{name}-token"),
                        UserInfo::authenticated(name, &format!("uid-{name}"), groups),
                    )
                })
                .collect(),
        },
        ..Config::default()
    })
    .await;
    cluster
        .kubectl(&["apply", "-f", workspace().join("crds").to_str().unwrap()])
        .await;
    cluster
        .kubectl(&[
            "apply",
            "-f",
            workspace()
                .join("examples/install/release-policy.yaml")
                .to_str()
                .unwrap(),
        ])
        .await;
    let audit_log = cluster.dir.path().join("audit.log");
    let controller = Controller::start(
        &cluster,
        ControllerOptions {
            identity: "fife-release",
            lease: None,
            audit_log: audit_log.clone(),
        },
    );
    let [alice, bob, carol, erin, frank] =
        ["alice", "bob", "carol", "erin", "frank"].map(|name| user(&cluster, name));
    let admin = cluster.kubeconfig.clone();

    // The first revision, before any policy.
    cluster.apply(&rollout()).await;
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(30))
        .await;

    // A template change must name its authenticated applier.
    let mut forged = change_to(2);
    forged["metadata"]["annotations"]["fife.dev/applied-by"] = json!("mallory");
    let path = cluster.dir.path().join("forged.json");
    std::fs::write(&path, forged.to_string()).unwrap();
    let out = tokio::process::Command::new("/usr/bin/kubectl")
        .args(["patch", "rollout/web", "--type", "merge", "--patch-file"])
        .arg(&path)
        .env("KUBECONFIG", &admin)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fife.dev/applied-by: kubernetes-admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 1. Two approvals, neither by the author.
    cluster.apply(TIERS).await;
    cluster.merge_patch("rollout/web", &change_to(2)).await;
    let held = held_by(&cluster, "Approval").await;
    assert_eq!(held["tier"], "critical");
    assert!(
        cluster.deployment_replicas("web-canary").await.unwrap_or(0) == 0,
        "no canary pod before the approvals"
    );
    let (ok, _, err) = fife(&alice, &["approve", "web", "-n", "default"]).await;
    assert!(!ok, "the author's approval must be refused");
    assert!(
        err.contains("admission refused") && err.contains("alice wrote this change"),
        "{err}"
    );
    let (ok, out, err) = fife(
        &bob,
        &["approve", "web", "-n", "default", "--reason", "reviewed"],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("bob approves revision"), "{out}");
    held_saying(&cluster, "Approval", "2 approval(s) from sre (bob)").await;
    let (ok, out, err) = fife(&carol, &["approve", "web", "-n", "default"]).await;
    assert!(ok, "{out}{err}");
    canary_weight(&cluster, 50).await;
    let (ok, _, err) = fife(&admin, &["promote", "web", "-n", "default"]).await;
    assert!(ok, "{err}");
    let first = cluster
        .wait_for("revision 2 stable", Duration::from_secs(30), || async {
            let s = cluster.rollout_status("web").await;
            (s["phase"] == "Healthy" && s["canaryRevision"].is_null()).then_some(s)
        })
        .await;
    let between = jiff::Timestamp::now();

    // 2. A freeze holds a running canary at its step, says when it opens, and an abort
    // still works.
    cluster.merge_patch("rollout/web", &change_to(3)).await;
    held_by(&cluster, "Approval").await;
    for who in [&bob, &carol] {
        let (ok, _, err) = fife(who, &["approve", "web", "-n", "default"]).await;
        assert!(ok, "{err}");
    }
    canary_weight(&cluster, 50).await;
    let opened = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    cluster.apply(&freeze(opened)).await;
    let held = held_by(&cluster, "Freeze").await;
    let opens: jiff::Timestamp = held["holding"]["opensAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected =
        opened.round(jiff::Unit::Minute).unwrap() + jiff::SignedDuration::from_secs(3600);
    assert!(
        (opens.as_second() - expected.as_second()).abs() <= 60,
        "opens at {opens}, expected about {expected}"
    );
    let table = cluster.kubectl(&["get", "rollout", "web"]).await;
    assert!(
        table.contains("GATE") && table.contains("Freeze"),
        "{table}"
    );
    let (ok, _, err) = fife(&admin, &["promote", "web", "-n", "default"]).await;
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster.rollout_status("web").await["weights"]["canary"],
        50,
        "a promote does not pass a freeze"
    );
    let (ok, _, err) = fife(&admin, &["abort", "web", "-n", "default"]).await;
    assert!(ok, "{err}");
    cluster
        .wait_for("the abort", Duration::from_secs(30), || async {
            let s = cluster.rollout_status("web").await;
            (s["abort"] == true && s["weights"]["canary"] == 0).then_some(())
        })
        .await;

    // 3. A break-glass lets exactly its digest through, once a second person approves it.
    cluster.merge_patch("rollout/web", &change_to(4)).await;
    held_by(&cluster, "Freeze").await;
    let (ok, out, err) = fife(
        &erin,
        &[
            "break-glass",
            "request",
            "web",
            "-n",
            "default",
            "--reason",
            "payments failing",
            "--incident",
            "INC-4211",
            "--for",
            "30m",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    let name = out
        .split('"')
        .nth(1)
        .expect("the BreakGlass's name")
        .to_owned();
    held_saying(&cluster, "Freeze", "waits for a second person").await;
    let (ok, _, err) = fife(&erin, &["break-glass", "approve", &name, "-n", "default"]).await;
    assert!(!ok && err.contains("admission refused"), "{err}");
    let (ok, _, err) = fife(&frank, &["break-glass", "approve", &name, "-n", "default"]).await;
    assert!(ok, "{err}");
    canary_weight(&cluster, 50).await;
    assert_eq!(release(&cluster).await["breakGlass"], name.as_str());
    let (ok, _, err) = fife(&admin, &["promote", "web", "-n", "default"]).await;
    assert!(ok, "{err}");
    let last = cluster
        .wait_for("revision 4 stable", Duration::from_secs(30), || async {
            let s = cluster.rollout_status("web").await;
            (s["phase"] == "Healthy" && s["stableRevision"] != first["stableRevision"]).then_some(s)
        })
        .await;
    cluster.merge_patch("rollout/web", &change_to(5)).await;
    held_by(&cluster, "Freeze").await;
    assert_eq!(
        cluster.rollout_status("web").await["stableRevision"],
        last["stableRevision"],
        "another digest stays out"
    );
    let (ok, _, err) = fife(&erin, &["break-glass", "review", &name, "-n", "default"]).await;
    assert!(!ok, "the requester cannot close the review: {err}");
    let (ok, _, err) = fife(&bob, &["break-glass", "review", &name, "-n", "default"]).await;
    assert!(ok, "{err}");

    // 4. The evidence.
    let log = audit_log.to_str().unwrap();
    let (ok, out, err) = fife(
        &admin,
        &["audit", "deploys", log, "--at", &between.to_string()],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("approval              bob [sre,system:authenticated]"),
        "{out}"
    );
    assert!(
        out.contains("approval              carol [sre,system:authenticated]"),
        "{out}"
    );
    assert!(
        out.contains("ok (author alice, approvers bob, carol, deployer kubernetes-admin)"),
        "{out}"
    );
    assert!(out.contains("break-glass           not used"), "{out}");
    assert!(out.contains("ticket                OPS-7"), "{out}");
    let (ok, out, err) = fife(&admin, &["audit", "deploys", log]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "break-glass           {name} by erin (second approver frank, incident INC-4211)"
        )),
        "{out}"
    );
    let (ok, out, err) = fife(&admin, &["audit", "report", log, "--output", "json"]).await;
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["breakGlassUses"], 1, "{report:#}");
    assert_eq!(report["dora"]["deployments"], 2, "{report:#}");
    assert_eq!(report["gates"]["Freeze"]["bypassed"], 1, "{report:#}");
    assert_eq!(report["gates"]["Approval"]["bypassed"], 1, "{report:#}");
    // Revisions 2 and 3 passed their approvals at start; 3 was aborted afterwards.
    assert_eq!(
        report["gates"]["Approval"]["passedThenRolledBack"], 1,
        "{report:#}"
    );
    assert!(
        report["gates"]["Approval"]["blocked"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    assert!(
        report["gates"]["Freeze"]["blocked"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    let rate = report["dora"]["changeFailRate"].as_f64().unwrap();
    assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{report:#}");

    // 5. The gate metrics count what the log holds.
    let scrape = controller
        .scrape()
        .await
        .expect("the controller's /metrics");
    let sum = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        sum("fife_break_glass_uses_total", &[("rollout", "web")]),
        1.0
    );
    for gate in ["Approval", "Freeze"] {
        for (outcome, key) in [
            ("Passed", "passed"),
            ("Blocked", "blocked"),
            ("Bypassed", "bypassed"),
        ] {
            let counted = sum(
                "fife_gate_outcomes_total",
                &[("gate", gate), ("outcome", outcome)],
            );
            let logged = report["gates"][gate][key].as_f64().unwrap_or(0.0);
            assert_eq!(
                counted, logged,
                "{gate} {outcome}: metrics {counted}, log {logged}"
            );
        }
    }
}
