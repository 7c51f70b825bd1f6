//! End to end, two shards: the default shard's controller and shard `b`'s, each with its
//! own ServiceAccount, Lease and audit log, against one API test server and a real
//! Prometheus. A Rollout starts on the default shard, is relabelled to `b` while paused at
//! a step with its background analysis running, and completes on `b`. The audit logs hold
//! each step's record once between them, the same AnalysisRun is measured on by `b`, and
//! the request journal shows the default shard wrote nothing of the Rollout's after the
//! move.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::harness::{
    Cluster, Controller, ControllerOptions, Prometheus, audit_records, image_patch, manual, rollout,
};
use fife_testkit::workload::{Workload, WorkloadConfig, WorkloadRole};
use serde_json::{Value, json};

const SHARD_LABEL: &str = fife_api::labels::SHARD_LABEL;

/// Background analysis: the canary's success rate, each second, until the steps end.
const TEMPLATE: &str = r#"apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate, namespace: default}
spec:
  args: [{name: prometheus}]
  metrics:
    - name: success-rate
      interval: 1s
      successCondition: "result[0] >= 0.99"
      failureLimit: 0
      provider:
        prometheus:
          address: "{{args.prometheus}}"
          query: |
            sum(rate(http_requests_total{job="canary",code!~"5.."}[5s]))
            / sum(rate(http_requests_total{job="canary"}[5s]))
"#;

async fn clean_canary() -> Workload {
    let mut config = WorkloadConfig::new(WorkloadRole::Canary, 41);
    config.error_rate = 0.0;
    config.requests_per_second = 400.0;
    Workload::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// The AnalysisRuns in the cluster, as (name, uid, measurements taken).
async fn runs(cluster: &Cluster) -> Vec<(String, String, u64)> {
    let runs = cluster.get("analysisruns").await.unwrap();
    runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metadata"]["name"].as_str().unwrap().to_owned(),
                r["metadata"]["uid"].as_str().unwrap().to_owned(),
                r["status"]["metricResults"][0]["count"]
                    .as_u64()
                    .unwrap_or(0),
            )
        })
        .collect()
}
/// A controller of `shard` (the default one when `None`), authenticated as its own
/// ServiceAccount so the journal tells its requests apart.
fn start_shard(cluster: &Cluster, account: &str, shard: Option<&str>) -> Controller {
    let token = cluster.api.service_account_token("fife-system", account);
    let kubeconfig = cluster.dir.path().join(format!("{account}.kubeconfig"));
    std::fs::write(&kubeconfig, cluster.api.kubeconfig_with_token(&token)).unwrap();
    let shard_args: Vec<&str> = shard.map(|key| vec!["--shard", key]).unwrap_or_default();
    Controller::start_with_kubeconfig(
        cluster,
        ControllerOptions {
            identity: account,
            lease: Some((
                "fife-controller",
                Duration::from_secs(4),
                Duration::from_secs(2),
            )),
            audit_log: cluster.dir.path().join(format!("{account}.jsonl")),
        },
        &kubeconfig,
        &shard_args,
    )
}

/// The writes `user` sent since journal index `since` to a Rollout, a child or a run.
fn rollout_writes(cluster: &Cluster, user: &str, since: u64) -> Vec<String> {
    cluster
        .api
        .journal(since)
        .into_iter()
        .filter(|e| e.user.as_deref() == Some(user) && e.method != "GET")
        .filter(|e| {
            ["/rollouts", "/deployments", "/services", "/analysisruns"]
                .iter()
                .any(|kind| e.path.contains(kind))
        })
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

/// What makes a record one decision: its action, revision, step and reason (a rollout's
/// start and its first step both start at step 0, and say so differently).
fn decision_key(record: &Value) -> String {
    json!([
        record["action"],
        record["revision"],
        record["evidence"]["step"],
        record["reason"],
    ])
    .to_string()
}

fn verify(log: &Path) {
    let out = std::process::Command::new(crate::harness::fife_binary())
        .args(["audit", "verify"])
        .arg(log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{log:?} does not verify: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_moved_between_shards_mid_rollout_completes_with_each_step_recorded_once() {
    let canary = clean_canary().await;
    let prometheus = Prometheus::start(&[("canary", vec![canary.local_addr()])]);
    prometheus
        .wait_for_series(r#"rate(http_requests_total{job="canary"}[5s])"#, 1)
        .await;
    let cluster = Cluster::start().await;
    cluster.apply(TEMPLATE).await;
    let default_shard = start_shard(&cluster, "fife-default", None);
    let shard_b = start_shard(&cluster, "fife-b", Some("b"));
    let steps = "        - setWeight: 50\n        - pause: {}\n        - setWeight: 100\n";
    let background = format!(
        "      analysis:\n        templates: [{{templateName: success-rate}}]\n        args: [{{name: prometheus, value: \"{}\"}}]\n        startingStep: 1\n",
        prometheus.address
    );
    cluster
        .apply(&rollout("web", "web:1", 2, &background, steps))
        .await;
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;

    // Each shard elects its own leader.
    for (lease, holder) in [
        ("fife-controller", "fife-default"),
        ("fife-controller-shard-b", "fife-b"),
    ] {
        cluster
            .wait_for(
                &format!("{holder} to hold {lease}"),
                Duration::from_secs(15),
                || async {
                    let lease = cluster.get(&format!("lease/{lease}")).await?;
                    (lease["spec"]["holderIdentity"] == holder).then_some(())
                },
            )
            .await;
    }

    // A new image, held at the indefinite pause after 50 %, on the default shard, which
    // measures its background analysis.
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    cluster
        .wait_for("the pause at 50 %", Duration::from_secs(20), || async {
            let s = cluster.rollout_status("web").await;
            (s["phase"] == "Paused" && s["weights"]["canary"] == 50).then_some(())
        })
        .await;
    cluster
        .wait_for("two measurements", Duration::from_secs(20), || async {
            let runs = runs(&cluster).await;
            (runs.len() == 1 && runs[0].2 >= 2).then_some(())
        })
        .await;
    assert!(
        audit_records(&shard_b.audit_log).is_empty(),
        "shard b never saw the Rollout before the move"
    );
    let moved_from = cluster.api.journal(0).last().map_or(0, |e| e.index + 1);

    // Moved to shard b: it relabels the children and picks up from status.
    cluster
        .kubectl(&["label", "rollout/web", &format!("{SHARD_LABEL}=b")])
        .await;
    cluster
        .wait_for(
            "the children to follow",
            Duration::from_secs(15),
            || async {
                let mut moved = true;
                for child in [
                    "deployment/web-stable",
                    "deployment/web-canary",
                    "service/web",
                ] {
                    let object = cluster.get(child).await?;
                    moved &= object["metadata"]["labels"][SHARD_LABEL] == "b";
                }
                moved.then_some(())
            },
        )
        .await;
    let status = cluster.rollout_status("web").await;
    assert_eq!(status["phase"], "Paused", "still held: {status:#}");
    assert_eq!(
        status["currentStepIndex"], 1,
        "not a step repeated: {status:#}"
    );
    // The same run goes on being measured, by shard b.
    let before = runs(&cluster).await;
    cluster
        .wait_for(
            "measurements after the move",
            Duration::from_secs(20),
            || async {
                let runs = runs(&cluster).await;
                (runs.len() == 1 && runs[0].1 == before[0].1 && runs[0].2 >= before[0].2 + 2)
                    .then_some(())
            },
        )
        .await;
    let default_records = audit_records(&default_shard.audit_log);

    cluster
        .merge_patch("rollout/web", &manual("Promote", "after-the-move"))
        .await;
    cluster
        .wait_for(
            "web:2 promoted by shard b",
            Duration::from_secs(20),
            || async {
                let web = cluster.get("rollout/web").await?;
                let stable = cluster.get("deployment/web-stable").await?;
                let done = web["status"]["phase"] == "Healthy"
                    && stable["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2";
                done.then_some(())
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The default shard wrote nothing of the Rollout's after the move, nor recorded.
    assert_eq!(
        rollout_writes(
            &cluster,
            "system:serviceaccount:fife-system:fife-default",
            moved_from
        ),
        Vec::<String>::new()
    );
    assert_eq!(audit_records(&default_shard.audit_log), default_records);
    assert!(
        !rollout_writes(
            &cluster,
            "system:serviceaccount:fife-system:fife-b",
            moved_from
        )
        .is_empty(),
        "shard b finished the rollout"
    );

    // Between the two logs, each decision once; shard b's starts at the promotion.
    let b_records = audit_records(&shard_b.audit_log);
    assert!(
        b_records
            .iter()
            .any(|r| r["action"] == "ManualPromote" || r["action"] == "Promoted"),
        "{b_records:#?}"
    );
    assert!(
        b_records
            .iter()
            .all(|r| r["actor"]["name"] != "fife-default"),
        "each shard records as itself"
    );
    let measured = |records: &[Value]| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["action"] == "Measurement")
            .map(|r| r["time"].as_str().unwrap().to_owned())
            .collect()
    };
    let (measured_before, measured_after) = (measured(&default_records), measured(&b_records));
    assert!(measured_before.len() >= 2 && measured_after.len() >= 2);
    assert!(
        measured_before.last() < measured_after.first(),
        "the analysis went on where it was, never measured by both: {measured_before:?} {measured_after:?}"
    );
    assert_eq!(runs(&cluster).await.len(), 1, "no second run was started");
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for record in default_records
        .iter()
        .chain(&b_records)
        .filter(|r| r["action"] != "Measurement")
    {
        *seen.entry(decision_key(record)).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "recorded twice: {twice:#?}\ndefault shard: {:#?}\nshard b: {:#?}",
        default_records
            .iter()
            .map(|r| format!("{} {} {}", r["seq"], r["action"], r["reason"]))
            .collect::<Vec<_>>(),
        b_records
            .iter()
            .map(|r| format!("{} {} {}", r["seq"], r["action"], r["reason"]))
            .collect::<Vec<_>>()
    );
    let weight_50 = default_records
        .iter()
        .chain(&b_records)
        .filter(|r| r["action"] == "WeightChanged" && r["evidence"]["weights"]["canary"] == 50)
        .count();
    assert_eq!(weight_50, 1, "the step before the move, once");

    // Two writers, two chains, each whole.
    verify(&default_shard.audit_log);
    verify(&shard_b.audit_log);
}
