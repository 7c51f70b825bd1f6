//! End to end, things going wrong: CRDs missing at start-up, an audit log that cannot be
//! written (fail closed), an analysis template that does not exist, API requests failing
//! and watches dropping mid-rollout, and a graceful stop on SIGTERM.

use std::time::{Duration, Instant};

use crate::harness::{Cluster, Controller, ControllerOptions, image_patch, rollout};
use fife_test_apiserver::FaultPlan;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_crds_fail_fast_with_the_command_that_fixes_it() {
    let cluster = Cluster::without_crds().await;
    let log = cluster.dir.path().join("fife-e2e.log");
    let mut controller = Controller::simple(&cluster);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = controller.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the controller kept running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(1));
    let stderr = std::fs::read_to_string(log).unwrap();
    assert!(stderr.contains("rollouts.fife.dev"), "{stderr}");
    assert!(stderr.contains("kubectl apply -f crds/"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_that_cannot_be_written_stops_every_action() {
    let cluster = Cluster::start().await;
    // Every write to /dev/full fails with "no space left on device".
    let controller = Controller::start(
        &cluster,
        ControllerOptions {
            identity: "fife-full-disk",
            lease: None,
            audit_log: "/dev/full".into(),
        },
    );
    cluster
        .apply(&rollout("web", "web:1", 2, "", "        - setWeight: 50\n"))
        .await;
    let status = cluster
        .wait_for(
            "the audit failure in status",
            Duration::from_secs(20),
            || async {
                let status = cluster.rollout_status("web").await;
                let condition = status["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "AuditLogWritable")?
                    .clone();
                (condition["status"] == "False").then_some((status, condition))
            },
        )
        .await;
    assert!(
        status.1["message"].as_str().unwrap().contains("/dev/full"),
        "{:#}",
        status.1
    );
    assert!(
        status.0["message"]
            .as_str()
            .unwrap()
            .starts_with("not acting")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        cluster.get("deployment/web-stable").await,
        None,
        "nothing applied without a record"
    );
    assert!(
        controller
            .metric("fife_audit_write_failures_total")
            .await
            .unwrap()
            >= 1.0
    );
    assert!(
        controller
            .metric("fife_reconcile_errors_total")
            .await
            .unwrap()
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analysis_template_that_does_not_exist_aborts_the_rollout() {
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    let steps = "        - setWeight: 50\n        - analysis: {templates: [{templateName: no-such-template}]}\n";
    cluster.apply(&rollout("web", "web:1", 2, "", steps)).await;
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    let status = cluster
        .wait_phase("web", "Degraded", Duration::from_secs(20))
        .await;
    assert_eq!(status["abort"], true);
    let runs = cluster.get("analysisruns").await.unwrap();
    let run = &runs["items"][0];
    assert_eq!(run["status"]["phase"], "Error");
    let message = run["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("AnalysisTemplate default/no-such-template not found"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_finishes_while_api_requests_fail_and_watches_drop() {
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    let steps = "        - setWeight: 25\n        - pause: {duration: 1s}\n        - setWeight: 75\n        - pause: {duration: 1s}\n";
    cluster.apply(&rollout("web", "web:1", 4, "", steps)).await;
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    // One request in ten fails (server errors and throttling), watches are cut every 2 s.
    cluster.api.set_faults(FaultPlan {
        error_rate: 0.1,
        error_codes: vec![500, 503, 429],
        seed: 7,
        ..FaultPlan::default()
    });
    let started = Instant::now();
    let mut drops = 0;
    loop {
        let status = cluster.rollout_status("web").await;
        if status["phase"] == "Healthy" {
            let stable = cluster.get("deployment/web-stable").await;
            if stable
                .is_some_and(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2")
            {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(cluster.dir.path().join("fife-e2e.log"))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "not finished under faults: {status:#}\ncontroller log (newest first):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if started.elapsed().as_secs() / 2 > drops {
            cluster.api.drop_watches();
            drops += 1;
        }
    }
    cluster.api.set_faults(FaultPlan::default());
    eprintln!(
        "finished under faults in {:?} with {drops} watch drops",
        started.elapsed()
    );
    assert_eq!(cluster.deployment_replicas("web-stable").await, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_controller_cleanly() {
    let cluster = Cluster::start().await;
    let mut controller = Controller::simple(&cluster);
    cluster
        .wait_for(
            "the controller to serve metrics",
            Duration::from_secs(10),
            || async { controller.metric("fife_leader").await },
        )
        .await;
    let pid = controller.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = controller.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
