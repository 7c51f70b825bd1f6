//! End to end, the controller under stress: SIGKILLed and restarted at arbitrary points of a
//! rollout, and run as two replicas of which only the lease holder acts. Across the restarts
//! the published audit head (ConfigMap and Rollout status) ends at the log's last record, and
//! the log cut short of it fails `fife audit verify --head-from`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::harness::{
    Cluster, Controller, ControllerOptions, audit_records, fife_binary, image_patch, rollout,
};
use serde_json::Value;

const STEPS: &str = "        - setWeight: 20\n        - pause: {duration: 4s}\n        - setWeight: 40\n        - pause: {duration: 4s}\n        - setWeight: 60\n        - pause: {duration: 4s}\n        - setWeight: 80\n        - pause: {duration: 4s}\n";

/// Step indices of the StepStarted records of `revision`, in log order.
fn steps_started(records: &[Value], revision: &str) -> Vec<u64> {
    records
        .iter()
        .filter(|r| r["action"] == "StepStarted" && r["revision"] == revision)
        .filter_map(|r| r["evidence"]["step"]["index"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_twenty_times_the_rollout_finishes_once() {
    let cluster = Cluster::start().await;
    let audit = cluster.dir.path().join("audit.log");
    let options = || ControllerOptions {
        identity: "fife-restarts",
        lease: None,
        audit_log: audit.clone(),
    };
    let key = cluster.dir.path().join("audit-key");
    std::fs::write(&key, "restart-test-key-0123456789\n").unwrap();
    let key_arg = key.display().to_string();
    let flags = [
        "--audit-head-namespace",
        "default",
        "--audit-hmac-key-file",
        key_arg.as_str(),
        "--audit-key-id",
        "2026-11",
    ];
    let start = || Controller::start_with_args(&cluster, options(), &flags);
    let mut controller = start();
    cluster.apply(&rollout("web", "web:1", 5, "", STEPS)).await;
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;

    // SIGKILL at pseudo-random points (a fixed LCG, so a failure replays), restart at once.
    // All twenty kills happen whatever the machine's speed: those that land after the
    // rollout finished check that restarting a finished rollout changes nothing.
    let mut state: u64 = 0x5eed;
    let mut kills_while_rolling_out = 0;
    for _ in 0..20 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = 100 + (state >> 33) % 400;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if cluster.rollout_status("web").await["phase"] != "Healthy" {
            kills_while_rolling_out += 1;
        }
        controller.kill();
        controller = start();
    }
    let kills = 20;
    let status = cluster
        .wait_phase("web", "Healthy", Duration::from_secs(40))
        .await;
    assert!(
        kills_while_rolling_out >= 10,
        "only {kills_while_rolling_out} of the 20 kills landed during the rollout"
    );
    let revision = status["stableRevision"].as_str().unwrap().to_owned();
    let stable = cluster.get("deployment/web-stable").await.unwrap();
    assert_eq!(
        stable["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:2"
    );
    assert_eq!(stable["spec"]["replicas"], 5);
    assert_eq!(cluster.deployment_replicas("web-canary").await, Some(0));

    // The head published after the last restart is the log's last record, in the ConfigMap
    // and in the Rollout's status (all records here are about this Rollout).
    let head = cluster
        .wait_for(
            "the published head to reach the log's last record",
            Duration::from_secs(10),
            || async {
                let last = audit_records(&audit).last().cloned()?;
                let map = cluster.get("configmap/fife-audit-head").await?;
                let head: Value =
                    serde_json::from_str(map["data"]["fife-restarts"].as_str()?).ok()?;
                let status = cluster.rollout_status("web").await;
                (head["seq"] == last["seq"]
                    && head["hash"] == last["hash"]
                    && status["lastAuditRecord"]["seq"] == last["seq"]
                    && status["lastAuditRecord"]["hash"] == last["hash"])
                    .then_some(head)
            },
        )
        .await;
    assert_eq!(head["kid"], "2026-11");
    drop(controller);

    let records = audit_records(&audit);
    eprintln!(
        "{kills} SIGKILLs ({kills_while_rolling_out} during the rollout), {} audit records",
        records.len()
    );
    // No double promotion.
    let promotions = records
        .iter()
        .filter(|r| r["action"] == "Promoted" && r["revision"] == revision.as_str())
        .count();
    assert_eq!(promotions, 1, "promoted once");
    // No step skipped, none out of order. A crash between a record and the status write
    // replays that decision, so a step may be recorded twice, but only back to back.
    let steps = steps_started(&records, &revision);
    let distinct: BTreeSet<u64> = steps.iter().copied().collect();
    assert_eq!(distinct, (0..8).collect(), "{steps:?}");
    assert!(
        steps.windows(2).all(|w| w[0] <= w[1]),
        "in order: {steps:?}"
    );
    // The chain is whole across twenty restarts.
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless: {seqs:?}"
    );

    // Cut the last three records off: the chain alone still verifies, the head does not.
    let head_file = cluster.dir.path().join("head.json");
    std::fs::write(&head_file, head.to_string()).unwrap();
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = cluster.dir.path().join("cut.log");
    let kept = lines.len() - 3;
    std::fs::write(&cut, lines[..kept].join("\n") + "\n").unwrap();
    let key_flag = format!("2026-11={key_arg}");
    let verify = |log: &std::path::Path, with_head: bool| {
        let mut command = std::process::Command::new(fife_binary());
        command
            .args(["audit", "verify"])
            .arg(log)
            .args(["--key", &key_flag]);
        if with_head {
            command.arg("--head-from").arg(&head_file);
        }
        command.output().unwrap()
    };
    let whole = verify(&audit, true);
    assert_eq!(whole.status.code(), Some(0), "{whole:?}");
    assert_eq!(verify(&cut, false).status.code(), Some(0));
    let short = verify(&cut, true);
    let said = String::from_utf8_lossy(&short.stdout);
    assert_eq!(short.status.code(), Some(1), "{said}");
    let last = seqs.last().unwrap();
    assert!(
        said.contains(&format!(
            "the log ends at seq {} but the head says {last}: records {}–{last} are missing",
            last - 3,
            last - 2
        )),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_leader_acts_and_the_other_takes_over() {
    let cluster = Cluster::start().await;
    let lease = Some((
        "fife-leader",
        Duration::from_secs(4),
        Duration::from_secs(2),
    ));
    let mut a = Controller::start(
        &cluster,
        ControllerOptions {
            identity: "replica-a",
            lease,
            audit_log: cluster.dir.path().join("a.log"),
        },
    );
    let mut b = Controller::start(
        &cluster,
        ControllerOptions {
            identity: "replica-b",
            lease,
            audit_log: cluster.dir.path().join("b.log"),
        },
    );
    let leaders = cluster
        .wait_for("one leader", Duration::from_secs(20), || async {
            let (la, lb) = (
                a.metric("fife_leader").await?,
                b.metric("fife_leader").await?,
            );
            (la + lb == 1.0).then_some((la, lb))
        })
        .await;
    let steps = "        - setWeight: 50\n        - pause: {duration: 4s}\n";
    cluster.apply(&rollout("web", "web:1", 4, "", steps)).await;
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;
    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    cluster
        .wait_phase("web", "Paused", Duration::from_secs(20))
        .await;

    let (leader, follower) = if leaders.0 == 1.0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(
        !audit_records(&leader.audit_log).is_empty(),
        "the leader records"
    );
    assert!(
        audit_records(&follower.audit_log).is_empty(),
        "the follower never acts"
    );

    leader.kill();
    let killed = Instant::now();
    cluster
        .wait_for("the follower to lead", Duration::from_secs(15), || async {
            (follower.metric("fife_leader").await? == 1.0).then_some(())
        })
        .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after {takeover:?}");
    // Lease duration (4 s) plus the renewal poll; never before the old lease expired.
    assert!(
        takeover <= Duration::from_secs(7),
        "took over after {takeover:?}"
    );
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;
    let records = audit_records(&follower.audit_log);
    assert!(
        records
            .iter()
            .any(|r| r["action"] == "Promoted" && r["actor"]["name"] == follower.identity.as_str()),
        "the new leader finished the rollout: {records:#?}"
    );
}
