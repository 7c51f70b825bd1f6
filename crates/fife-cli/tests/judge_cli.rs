//! `fife judge` as a user runs it: the real binary on the shipped example files and on
//! broken input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/judge");
    root.join(name).to_str().expect("utf-8 path").to_owned()
}

fn fife_judge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fife"))
        .arg("judge")
        .args(args)
        .output()
        .expect("fife runs")
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let out = fife_judge(&all);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[test]
fn regressed_latency_is_high_with_the_documented_keys() {
    let j = json(&[
        "--canary",
        &example("canary-latency-regressed.txt"),
        "--baseline",
        &example("baseline-latency.txt"),
    ]);
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "n_canary",
        "n_baseline",
        "u",
        "p_value",
        "method",
        "shift",
        "ci",
        "effect_size",
        "cles",
        "classification",
        "reason",
    ];
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(j["classification"], "High");
    assert_eq!(j["method"], "asymptotic");
    assert!(j["p_value"].as_f64().unwrap() < 1e-6);
    assert!(j["shift"].as_f64().unwrap() > 10.0);
    assert!(
        j["reason"]
            .as_str()
            .unwrap()
            .starts_with("canary is higher than baseline: +")
    );
}

#[test]
fn healthy_canary_passes_and_nan_line_is_dropped() {
    let j = json(&[
        "--canary",
        &example("canary-latency.txt"),
        "--baseline",
        &example("baseline-latency.txt"),
    ]);
    assert_eq!(j["classification"], "Pass");
    assert_eq!(j["n_canary"], 119, "the NaN line is removed by default");
    assert_eq!(j["n_baseline"], 120);
}

#[test]
fn identical_samples_have_zero_shift_and_p_one() {
    let j = json(&[
        "--canary",
        &example("canary-latency-identical.txt"),
        "--baseline",
        &example("baseline-latency.txt"),
    ]);
    assert_eq!(j["classification"], "Pass");
    assert_eq!(j["shift"], 0.0);
    assert_eq!(j["p_value"], 1.0);
    assert_eq!(j["cles"], 0.5);
}

#[test]
fn zero_inflated_errors_fail_significance_but_pass_kayenta() {
    let files = [
        "--canary",
        &example("canary-errors.txt"),
        "--baseline",
        &example("baseline-errors.txt"),
    ];
    let significance = json(&files);
    assert_eq!(significance["classification"], "High");
    assert_eq!(significance["shift"], 0.0);
    let mut kayenta_args = files.to_vec();
    kayenta_args.extend(["--rule", "kayenta"]);
    assert_eq!(json(&kayenta_args)["classification"], "Pass");
}

#[test]
fn allowed_increase_and_direction_flags_reach_the_judge() {
    let files = [
        "--canary",
        &example("canary-latency-regressed.txt"),
        "--baseline",
        &example("baseline-latency.txt"),
    ];
    let mut tolerant = files.to_vec();
    tolerant.extend(["--allowed-increase", "1.2"]);
    assert_eq!(json(&tolerant)["classification"], "Pass");
    let mut decrease_only = files.to_vec();
    decrease_only.extend(["--direction", "decrease"]);
    assert_eq!(json(&decrease_only)["classification"], "Pass");
}

#[test]
fn text_output_states_verdict_and_interval() {
    let out = fife_judge(&[
        "--canary",
        &example("canary-latency-regressed.txt"),
        "--baseline",
        &example("baseline-latency.txt"),
        "--confidence",
        "0.9",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("High: canary is higher than baseline"),
        "{text}"
    );
    assert!(text.contains("90% CI"), "{text}");
    assert!(
        text.contains("samples      canary 120, baseline 120"),
        "{text}"
    );
}

#[test]
fn same_files_same_bytes() {
    let args = [
        "--canary",
        &example("canary-latency.txt"),
        "--baseline",
        &example("baseline-latency.txt"),
        "--output",
        "json",
    ];
    assert_eq!(fife_judge(&args).stdout, fife_judge(&args).stdout);
}

#[test]
fn blank_lines_and_nan_policy_replace() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary.txt");
    let baseline = dir.path().join("baseline.txt");
    std::fs::write(&canary, "1\n\n  2.5 \nNaN\n3\n").unwrap();
    std::fs::write(&baseline, "1\n2\n\n").unwrap();
    let (c, b) = (canary.to_str().unwrap(), baseline.to_str().unwrap());
    assert_eq!(json(&["--canary", c, "--baseline", b])["n_canary"], 3);
    assert_eq!(
        json(&["--canary", c, "--baseline", b, "--nan", "replace"])["n_canary"],
        4
    );
}

#[test]
fn unparseable_line_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary.txt");
    std::fs::write(&canary, "1.0\n\n12,5\n").unwrap();
    let out = fife_judge(&[
        "--canary",
        canary.to_str().unwrap(),
        "--baseline",
        &example("baseline-latency.txt"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:", canary.display())),
        "{stderr}"
    );
    assert!(stderr.contains("\"12,5\""), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_exits_2_naming_it() {
    let out = fife_judge(&[
        "--canary",
        &example("canary-latency.txt"),
        "--baseline",
        "/nonexistent/baseline.txt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/baseline.txt"), "{stderr}");
}

#[test]
fn confidence_outside_zero_one_exits_2() {
    for confidence in ["1.5", "0", "1"] {
        let out = fife_judge(&[
            "--canary",
            &example("canary-latency.txt"),
            "--baseline",
            &example("baseline-latency.txt"),
            "--confidence",
            confidence,
        ]);
        assert_eq!(out.status.code(), Some(2), "confidence {confidence}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("confidence"));
    }
}
