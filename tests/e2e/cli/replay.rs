//! `fife replay` end to end: the real binary replays a comparison template over modelled
//! data backfilled into a real Prometheus, on a simulated clock; bad input and an
//! unreachable Prometheus exit 2 with one line naming the problem.

use std::process::{Command, Output};

use fife_testkit::cluster_model::{CanaryEffect, ClusterModel, ScrapeRange};
use fife_testkit::prometheus::{PrometheusServer, backfill, free_port};
use serde_json::Value;

const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/e2e/fixtures/replay/latency-vs-baseline.yaml"
);

const START: i64 = 1_700_000_000;

fn fife_replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fife"))
        .arg("replay")
        .args(args)
        .output()
        .expect("fife runs")
}

fn replay_json(prometheus: &str, service: &str, from: &str, to: &str) -> Value {
    let arg = format!("service={service}");
    let out = fife_replay(&[
        "--prometheus",
        prometheus,
        "--template",
        TEMPLATE,
        "--arg",
        &arg,
        "--from",
        from,
        "--to",
        to,
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn times(report: &Value) -> Vec<String> {
    report["metrics"][0]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["time"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn replays_a_template_over_backfilled_data_as_the_controller_would() {
    // Pods alike (no offsets, no wander): this test is about the replay, not the judge.
    let model = |service: &str, seed, latency_scale| {
        let mut m = ClusterModel::new(service, seed);
        m.pod_offset_sd = 0.0;
        m.wander.sd = 0.0;
        m.canary = CanaryEffect {
            latency_scale,
            error_scale: 1.0,
        };
        m
    };
    let range = ScrapeRange {
        start_seconds: START,
        end_seconds: START + 30 * 60,
        interval_seconds: 15,
    };
    let tsdb = backfill(&[model("slow", 1, 1.5), model("same", 2, 1.0)], &range).unwrap();
    let prometheus = PrometheusServer::start_on_tsdb(tsdb).unwrap();
    let from = (START + 600).to_string();
    let to = "2023-11-14T22:43:20Z"; // START + 30m, in RFC 3339

    let slow = replay_json(prometheus.address(), "slow", &from, to);
    assert_eq!(slow["phase"], "Failed", "{slow:#}");
    assert_eq!(slow["completedAt"], "2023-11-14T22:25:20Z");
    assert_eq!(
        times(&slow),
        ["2023-11-14T22:23:20Z", "2023-11-14T22:25:20Z"],
        "failureLimit 1: the second failure ends the run, one interval later"
    );
    let first = &slow["metrics"][0]["measurements"][0];
    assert_eq!(first["phase"], "Failed");
    assert!(first["reason"].as_str().unwrap().len() > 10, "{first:#}");
    assert_eq!(first["comparison"]["classification"], "High");
    assert_eq!(
        first["comparison"]["canarySamples"], 63,
        "3 pods × 21 points"
    );
    let queries = first["queries"].as_array().unwrap();
    // canary, baseline, and stable (more pods of the baseline's version).
    assert_eq!(queries.len(), 3, "{queries:#?}");
    assert!(
        queries[2]["query"]
            .as_str()
            .unwrap()
            .contains("service=\"slow\",fife_role=\"stable\"")
    );
    assert_eq!(queries[0]["address"], prometheus.address());
    assert!(
        queries[0]["query"]
            .as_str()
            .unwrap()
            .contains("service=\"slow\",fife_role=\"canary\"")
    );

    let same = replay_json(prometheus.address(), "same", &from, to);
    assert_eq!(same["phase"], "Successful", "{same:#}");
    assert_eq!(same["metrics"][0]["phase"], "Successful");
    assert_eq!(
        times(&same),
        [
            "2023-11-14T22:23:20Z",
            "2023-11-14T22:25:20Z",
            "2023-11-14T22:27:20Z",
            "2023-11-14T22:29:20Z",
            "2023-11-14T22:31:20Z"
        ],
        "count 5 at interval 2m from --from"
    );
    assert_eq!(same["completedAt"], "2023-11-14T22:31:20Z");

    // --to before the fifth measurement: the run stops with what it has.
    let short = replay_json(
        prometheus.address(),
        "same",
        &from,
        &(START + 600 + 300).to_string(),
    );
    assert_eq!(times(&short).len(), 3);
    assert_eq!(short["completedAt"], Value::Null);
    assert_eq!(short["phase"], "Successful");

    let text = fife_replay(&[
        "--prometheus",
        prometheus.address(),
        "--template",
        TEMPLATE,
        "--arg",
        "service=slow",
        "--from",
        &from,
        "--to",
        to,
    ]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("phase: Failed (completed at 2023-11-14T22:25:20Z)"),
        "{text}"
    );
}

fn assert_bad_input(args: &[&str], expected: &str) {
    let out = fife_replay(args);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn bad_input_and_an_unreachable_prometheus_exit_2_naming_the_problem() {
    let nobody = format!("http://127.0.0.1:{}", free_port().unwrap());
    let base = |from: &'static str, template: &'static str| {
        vec![
            "--prometheus",
            "http://127.0.0.1:9",
            "--template",
            template,
            "--arg",
            "service=x",
            "--from",
            from,
            "--to",
            "1700003600",
        ]
    };
    assert_bad_input(
        &base("last tuesday", TEMPLATE),
        "--from `last tuesday` is not a time",
    );
    assert_bad_input(
        &base("1700000000", "/nonexistent/template.yaml"),
        "cannot read --template /nonexistent/template.yaml",
    );
    let mut unreachable = base("1700000000", TEMPLATE);
    unreachable[1] = &nobody;
    assert_bad_input(
        &unreachable,
        &format!("cannot query Prometheus at {nobody}"),
    );
    let mut no_arg = base("1700000000", TEMPLATE);
    no_arg.drain(4..6);
    assert_bad_input(&no_arg, "pass --arg service=VALUE");
}

#[test]
fn a_replay_whose_range_outgrows_prometheus_warns_with_the_step_that_fits() {
    // Measured until the step ends (no count), two days at a 15 s step is more than
    // 11,000 points per series.
    let background = tempfile::NamedTempFile::new().unwrap();
    let fixture = std::fs::read_to_string(TEMPLATE).unwrap();
    std::fs::write(background.path(), fixture.replace("      count: 5\n", "")).unwrap();
    let template = background.path().to_str().unwrap();
    let nobody = format!("http://127.0.0.1:{}", free_port().unwrap());
    let out = fife_replay(&[
        "--prometheus",
        &nobody,
        "--template",
        template,
        "--arg",
        "service=x",
        "--from",
        "1700000000",
        "--to",
        "1700172800",
    ]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("fife replay: warning: by --to, metric latency-vs-baseline"),
        "{stderr}"
    );
    assert!(stderr.contains("set range.step to 16s or more"), "{stderr}");
}
