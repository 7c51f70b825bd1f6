//! `fife judge --prometheus` end to end: the real binary against a real Prometheus
//! (`/usr/bin/prometheus`, installed by `scripts/install-deps.sh`) scraping synthetic
//! canary and baseline workloads every second, then against the same Prometheus stopped.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::workload;
use fife_testkit::prometheus::{PrometheusServer, ScrapeJob};
use fife_testkit::workload::WorkloadRole;

/// Per-pod p50 over 3 s windows of one job's pods in `role` (a literal or `{{role}}`).
fn p50(job: &str, role: &str) -> String {
    format!(
        "histogram_quantile(0.5, sum by (le, instance) (rate(\
         http_request_duration_seconds_bucket{{job=\"{job}\",fife_role=\"{role}\"}}[3s])))"
    )
}

fn fife_judge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fife"))
        .arg("judge")
        .args(args)
        .output()
        .expect("fife runs")
}

/// The example template's latency settings over a 12 s window at a 1 s step.
fn live_args<'a>(address: &'a str, queries: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--prometheus", address];
    args.extend(queries);
    args.extend([
        "--lookback",
        "12s",
        "--step",
        "1s",
        "--direction",
        "increase",
        "--allowed-increase",
        "1.10",
    ]);
    args
}

/// Runs the JSON judge until both sides have at least `min` samples (bounded).
fn judge_when_ready(args: &[&str], min: u64) -> serde_json::Value {
    let started = Instant::now();
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    loop {
        let out = fife_judge(&args);
        if out.status.success() {
            let j: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("one JSON object");
            if j["n_canary"].as_u64() >= Some(min) && j["n_baseline"].as_u64() >= Some(min) {
                return j;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no usable data after 40 s: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judges_a_live_prometheus_and_names_the_cause_when_it_is_gone() {
    let slow_canary = workload(WorkloadRole::Canary, 1.2, 21).await;
    let baseline = workload(WorkloadRole::Baseline, 1.0, 22).await;
    let same_canary = workload(WorkloadRole::Canary, 1.0, 23).await;
    let same_baseline = workload(WorkloadRole::Baseline, 1.0, 24).await;
    let mut prometheus = PrometheusServer::start(&[
        ScrapeJob {
            name: "slow",
            targets: &[slow_canary.local_addr(), baseline.local_addr()],
        },
        ScrapeJob {
            name: "same",
            targets: &[same_canary.local_addr(), same_baseline.local_addr()],
        },
    ])
    .unwrap();
    let address = prometheus.address().to_owned();

    // One template for both sides.
    let slow_query = p50("slow", "{{role}}");
    let slow = judge_when_ready(&live_args(&address, &["--query", &slow_query]), 6);
    assert_eq!(slow["classification"], "High", "{slow}");
    let ratio = slow["effect_size"].as_f64().unwrap();
    assert!((1.1..1.3).contains(&ratio), "{slow}");

    // A query for each side.
    let (canary_query, baseline_query) = (p50("same", "canary"), p50("same", "baseline"));
    let same = judge_when_ready(
        &live_args(
            &address,
            &[
                "--canary-query",
                &canary_query,
                "--baseline-query",
                &baseline_query,
            ],
        ),
        6,
    );
    assert_eq!(same["classification"], "Pass", "{same}");

    // The text output is the file mode's.
    let out = fife_judge(&live_args(&address, &["--query", &slow_query]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("High: canary is higher than baseline"),
        "{text}"
    );
    assert!(text.contains("  mean ratio   1."), "{text}");

    prometheus.stop();
    let out = fife_judge(&live_args(&address, &["--query", &slow_query]));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
    assert!(stderr.contains("connection refused"), "{stderr}");
    assert!(
        stderr.contains(r#"job="slow",fife_role="canary""#)
            || stderr.contains(r#"job="slow",fife_role="baseline""#),
        "names the rendered query: {stderr}"
    );
}

#[test]
fn live_flags_without_prometheus_are_refused() {
    let out = fife_judge(&[
        "--canary",
        "a.txt",
        "--baseline",
        "b.txt",
        "--lookback",
        "5m",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("only apply with --prometheus"), "{stderr}");
}

#[test]
fn prometheus_needs_a_query() {
    let out = fife_judge(&["--prometheus", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("needs --query"), "{stderr}");
}
