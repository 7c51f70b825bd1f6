//! End to end, what the controller tells the outside world about a rollout: the audit
//! records (each older than the API write it leads to, checked against the test API
//! server's request journal), the webhook (every record exactly once, across a receiver
//! outage), `/metrics` (the contract of docs/alerting.md) and Kubernetes Events.
//!
//! One rollout goes through a promotion (threshold analysis passes, the webhook receiver
//! is down for 3 s meanwhile), then a revision that a person pauses and resumes, and whose
//! analysis fails, so it is aborted and rolled back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{
    Cluster, Controller, ControllerOptions, Prometheus, audit_records, free_port,
};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const PAUSE_REQUESTED_BY: &str = "fife.dev/pause-requested-by";

const TEMPLATE: &str = r#"apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: gate, namespace: default}
spec:
  args: [{name: value}, {name: prometheus}]
  metrics:
    - name: gate
      interval: 1s
      count: 1
      failureLimit: 0
      successCondition: "result[0] >= 1"
      failureCondition: "result[0] < 1"
      provider:
        prometheus:
          address: "{{args.prometheus}}"
          query: "vector({{args.value}})"
"#;

/// The steps, with the value the analysis measures (1 passes, 0 fails).
fn steps(value: &str, prometheus: &str) -> Value {
    json!([
        {"setWeight": 50},
        {"pause": {"duration": "1s"}},
        {"analysis": {
            "templates": [{"templateName": "gate"}],
            "args": [{"name": "value", "value": value}, {"name": "prometheus", "value": prometheus}]
        }},
        {"setWeight": 100}
    ])
}

fn template(image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": image,
            "ports": [{"containerPort": 8080, "name": "http"}]}]}
    })
}

/// What the webhook receiver got: (seq header, body), in arrival order.
type Received = Arc<Mutex<Vec<(u64, String)>>>;

/// The key the controller signs deliveries with, and the receiver checks them with.
const WEBHOOK_KEY: &str = "signals-webhook-key-0123456789";

/// A webhook receiver on `addr` until the returned sender fires. It refuses (401, which the
/// controller does not retry) any delivery whose signature does not verify, so a refused
/// one shows as a record missing at the receiver.
async fn receiver(addr: SocketAddr, received: Received) -> tokio::sync::oneshot::Sender<()> {
    let keys = Arc::new(
        fife_audit::KeyRing::from_keys(vec![
            fife_audit::SigningKey::new(WEBHOOK_KEY.as_bytes().to_vec())
                .unwrap()
                .with_id("signals-1"),
        ])
        .unwrap(),
    );
    let app = axum::Router::new().route(
        "/audit",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let received = Arc::clone(&received);
            let keys = Arc::clone(&keys);
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                if header("x-fife-key-id") != Some("signals-1")
                    || fife_audit::verify_delivery(
                        header("x-fife-signature"),
                        header("x-fife-key-id"),
                        body.as_bytes(),
                        &keys,
                        Utc::now().timestamp(),
                        300,
                    )
                    .is_err()
                {
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                let seq = headers["x-fife-audit-seq"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                received.lock().unwrap().push((seq, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    stop
}

fn time_of(record: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(record["time"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_is_recorded_before_its_write_and_reaches_webhook_metrics_and_events() {
    let started = Instant::now();
    // Prometheus only answers `vector(..)` here; the scrape target need not exist.
    let prometheus = Prometheus::start(&[(
        "none",
        vec![
            format!("127.0.0.1:{}", free_port().unwrap())
                .parse()
                .unwrap(),
        ],
    )]);
    let received: Received = Arc::default();
    let hook: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
        .parse()
        .unwrap();
    let stop_receiver = receiver(hook, Arc::clone(&received)).await;
    let cluster = Cluster::start().await;
    let key_file = cluster.dir.path().join("webhook-key");
    std::fs::write(&key_file, WEBHOOK_KEY).unwrap();
    let controller = Controller::start_with_args(
        &cluster,
        ControllerOptions {
            identity: "fife-signals",
            lease: None,
            audit_log: cluster.dir.path().join("audit.log"),
        },
        &[
            "--webhook-url",
            &format!("http://{hook}/audit"),
            "--webhook-hmac-key-file",
            &key_file.display().to_string(),
            "--webhook-key-id",
            "signals-1",
        ],
    );
    cluster.apply(TEMPLATE).await;
    let mut manifest: Value = serde_saphyr::from_str(&crate::harness::rollout(
        "web",
        "web:1",
        2,
        "",
        "        - setWeight: 50\n",
    ))
    .unwrap();
    manifest["spec"]["strategy"]["canary"]["steps"] = steps("1", &prometheus.address);
    cluster.apply(&manifest.to_string()).await;
    cluster
        .wait_phase("web", "Healthy", Duration::from_secs(20))
        .await;

    // A promotion, while the webhook receiver is away for 3 s.
    cluster
        .merge_patch(
            "rollout/web",
            &json!({"spec": {"template": template("web:2")}}),
        )
        .await;
    stop_receiver.send(()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during_outage = received.lock().unwrap().len();
    let written_by_then = audit_records(&controller.audit_log).len();
    assert!(
        during_outage < written_by_then,
        "the outage should hold back records: {during_outage} of {written_by_then} delivered"
    );
    let _receiver = receiver(hook, Arc::clone(&received)).await;
    cluster
        .wait_for(
            "web:2 to become stable",
            Duration::from_secs(30),
            || async {
                let d = cluster.get("deployment/web-stable").await?;
                let status = cluster.rollout_status("web").await;
                (d["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
                    && status["phase"] == "Healthy")
                    .then_some(())
            },
        )
        .await;

    // A person pauses the next revision as it starts, then resumes it; its analysis fails.
    cluster
        .merge_patch(
            "rollout/web",
            &json!({
                "metadata": {"annotations": {PAUSE_REQUESTED_BY: "ann@example.com"}},
                "spec": {"paused": true, "template": template("web:3"),
                    "strategy": {"canary": {"steps": steps("0", &prometheus.address)}}}
            }),
        )
        .await;
    cluster
        .wait_phase("web", "Paused", Duration::from_secs(20))
        .await;
    cluster
        .merge_patch(
            "rollout/web",
            &json!({
                "metadata": {"annotations": {PAUSE_REQUESTED_BY: "bob@example.com"}},
                "spec": {"paused": false}
            }),
        )
        .await;
    let degraded = cluster
        .wait_phase("web", "Degraded", Duration::from_secs(30))
        .await;
    assert_eq!(degraded["abort"], true);
    let scenario = started.elapsed();

    // (a) Every transition has its record, in order, each older than the write it led to.
    let records = audit_records(&controller.audit_log);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=records.len() as u64).collect::<Vec<_>>());
    assert!(records.windows(2).all(|w| time_of(&w[0]) <= time_of(&w[1])));
    let actions: Vec<String> = records
        .iter()
        .filter(|r| r["action"] != "Measurement")
        .map(|r| {
            format!(
                "{}{}",
                r["action"].as_str().unwrap(),
                r["evidence"]["step"]["index"]
                    .as_u64()
                    .map(|i| format!("@{i}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    eprintln!("records: {actions:?}");
    let by = |action: &str| {
        records
            .iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} record in {actions:?}"))
    };
    assert_eq!(by("ManualPause")["actor"]["name"], "ann@example.com");
    assert_eq!(by("ManualResume")["actor"]["name"], "bob@example.com");
    assert_eq!(
        by("ManualPause")["actor"]["kind"],
        by("ManualResume")["actor"]["kind"]
    );
    assert_ne!(
        by("ManualPause")["actor"]["kind"],
        by("Aborted")["actor"]["kind"]
    );
    let expected_order = [
        "Promoted", // web:1, the first revision
        "StepStarted",
        "WeightChanged",
        "PauseStarted",
        "PauseEnded",
        "AnalysisStarted",
        "AnalysisCompleted",
        "Promoted", // web:2
        "StepStarted",
        "ManualPause",
        "ManualResume",
        "PauseStarted",
        "AnalysisStarted",
        "AnalysisCompleted",
        "Aborted", // web:3
    ];
    let mut rest = actions.iter().map(|a| a.split('@').next().unwrap());
    for action in expected_order {
        assert!(
            rest.any(|a| a == action),
            "{action} missing or out of order in {actions:?}"
        );
    }

    let journal = cluster.api.journal(0);
    let status_writes: Vec<(DateTime<Utc>, &Value)> = journal
        .iter()
        .filter(|e| {
            e.method == "PATCH" && e.path.contains("/rollouts/web/status") && e.status < 300
        })
        .map(|e| (e.time, &e.body.as_ref().unwrap()["status"]))
        .collect();
    let first_write = |what: &str, shows: &dyn Fn(&Value) -> bool| {
        status_writes
            .iter()
            .find(|(_, s)| shows(s))
            .unwrap_or_else(|| panic!("no status write shows {what}"))
            .0
    };
    let mut checked = 0;
    for record in &records {
        let revision = record["revision"].as_str().unwrap_or_default().to_owned();
        let write = match record["action"].as_str().unwrap() {
            "StepStarted" => {
                let index = record["evidence"]["step"]["index"].as_i64().unwrap();
                first_write(&format!("step {index} of {revision}"), &|s: &Value| {
                    (s["canaryRevision"] == revision.as_str()
                        && s["currentStepIndex"].as_i64().unwrap_or(-1) >= index)
                        || s["stableRevision"] == revision.as_str()
                })
            }
            "Promoted" => first_write(&format!("{revision} stable"), &|s: &Value| {
                s["stableRevision"] == revision.as_str()
            }),
            "Aborted" => first_write("the abort", &|s: &Value| s["abort"] == true),
            "ManualPause" => first_write("the user pause", &|s: &Value| {
                s["pauseConditions"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|c| c["reason"] == "UserPause"))
            }),
            _ => continue,
        };
        assert!(
            time_of(record) <= write,
            "record {} ({}) at {} is newer than the status write at {write}",
            record["seq"],
            record["action"],
            record["time"]
        );
        checked += 1;
    }
    // The canary Deployment of each new image is written only after that image's first record.
    for image in ["web:2", "web:3"] {
        let first_record = records
            .iter()
            .find(|r| r["images"][0]["image"] == image)
            .unwrap();
        let first_apply = journal
            .iter()
            .find(|e| {
                e.method == "PATCH"
                    && e.path.contains("/deployments/web-canary")
                    && e.body.as_ref().is_some_and(|b| {
                        b["spec"]["template"]["spec"]["containers"][0]["image"] == image
                    })
            })
            .unwrap_or_else(|| panic!("no canary Deployment write with {image}"));
        assert!(time_of(first_record) <= first_apply.time, "{image}");
        checked += 1;
    }

    // (b) The webhook got every record exactly once, the outage notwithstanding, each with a
    // signature the receiver verified.
    let lines: Vec<String> = std::fs::read_to_string(&controller.audit_log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    cluster
        .wait_for(
            "the webhook to catch up",
            Duration::from_secs(20),
            || async { (received.lock().unwrap().len() >= lines.len()).then_some(()) },
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received.lock().unwrap().clone();
    let mut per_seq: BTreeMap<u64, usize> = BTreeMap::new();
    for (seq, _) in &got {
        *per_seq.entry(*seq).or_default() += 1;
    }
    assert_eq!(per_seq.len(), lines.len(), "{per_seq:?}");
    assert!(per_seq.values().all(|&n| n == 1), "repeats: {per_seq:?}");
    let bodies: Vec<&str> = got.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(bodies, lines, "in order, byte for byte");

    // (c) /metrics keeps the contract.
    let scrape = controller.scrape().await.unwrap();
    let value = |metric: &str, labels: &[(&str, &str)]| -> f64 {
        let sample = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {metric}{labels:?}"));
        // prometheus-parse reads OpenMetrics counters (`# TYPE fife_aborts counter` over
        // `fife_aborts_total` samples) as untyped; the value is what matters here.
        match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{metric} is {other:?}"),
        }
    };
    let web = [("namespace", "default"), ("rollout", "web")];
    let with = |reason: &'static str| [web[0], web[1], ("reason", reason)];
    assert_eq!(value("fife_aborts_total", &with("analysis")), 1.0);
    assert_eq!(value("fife_aborts_total", &with("manual")), 0.0);
    assert_eq!(value("fife_aborts_total", &with("progressDeadline")), 0.0);
    assert_eq!(value("fife_rollbacks_total", &with("abort")), 1.0);
    assert_eq!(value("fife_rollbacks_total", &with("spec")), 0.0);
    assert_eq!(value("fife_promotions_total", &with("steps")), 1.0);
    assert_eq!(
        value(
            "fife_rollout_info",
            &[web[0], web[1], ("phase", "Degraded")]
        ),
        1.0
    );
    assert_eq!(value("fife_rollout_canary_weight", &web), 0.0);
    assert_eq!(
        value("fife_analysis_runs_total", &[("phase", "Failed")]),
        1.0
    );
    assert_eq!(
        value("fife_analysis_runs_total", &[("phase", "Successful")]),
        1.0
    );
    assert_eq!(
        value("fife_measurements_total", &[("phase", "Failed")]),
        1.0
    );
    assert_eq!(
        value("fife_reconcile_errors_total", &[("step", "record")]),
        0.0
    );
    assert_eq!(value("fife_audit_write_failures_total", &[]), 0.0);
    assert_eq!(value("fife_leader", &[]), 1.0);
    let written = value("fife_audit_records_written_total", &[]);
    assert_eq!(written, lines.len() as f64);
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "fife_reconcile_duration_seconds_count")
    );

    // (d) Events on the Rollout.
    let events = cluster.get("events.v1.events.k8s.io").await.unwrap();
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["regarding"]["name"] == "web" && e["regarding"]["kind"] == "Rollout")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    for reason in [
        "RolloutPromoted",
        "AnalysisSucceeded",
        "PausedByUser",
        "ResumedByUser",
        "AnalysisFailed",
        "RolloutAborted",
    ] {
        assert!(
            reasons.contains(&reason),
            "no {reason} Event in {reasons:?}"
        );
    }
    eprintln!(
        "scenario {scenario:?}; {} records ({checked} checked against {} status writes and the \
         canary applies), {} webhook deliveries, {} Events",
        records.len(),
        status_writes.len(),
        got.len(),
        reasons.len()
    );
}
