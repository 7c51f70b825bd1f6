//! `fife validate` as CI runs it: one bad fixture per rule, each reported at its file, line
//! and field path with the documented exit code; every shipped example validates clean.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> String {
    format!("tests/fixtures/validate/{name}")
}

/// Runs `fife validate ARGS` in the crate directory; returns (exit code, stdout, stderr).
fn validate(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_fife"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("validate")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Asserts the fixture fails with exit 1 and reports `FILE:LINE: SUBJECT: PATH: ...TEXT...`.
fn assert_reports(name: &str, line: u32, subject: &str, path: &str, text: &str) {
    let file = fixture(name);
    let (code, stdout, stderr) = validate(&[&file]);
    assert_eq!(
        code, 1,
        "{name}: exit code; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let prefix = format!("{file}:{line}: {subject}: {path}: ");
    let found = stdout
        .lines()
        .any(|l| l.starts_with(&prefix) && l.contains(text));
    assert!(
        found,
        "{name}: expected a line starting {prefix:?} containing {text:?}, got:\n{stdout}"
    );
}

#[test]
fn weight_outside_0_to_100() {
    assert_reports(
        "weight-out-of-range.yaml",
        9,
        "Rollout/web",
        "spec.strategy.canary.steps[1].setWeight",
        "use a value from 0 to 100",
    );
}

#[test]
fn duration_that_does_not_parse() {
    assert_reports(
        "bad-duration.yaml",
        9,
        "Rollout/web",
        "spec.strategy.canary.steps[1].pause.duration",
        "unknown unit",
    );
}

/// Argo Rollouts' `pause: {duration: 10}` is ten seconds; a negative number is refused.
#[test]
fn duration_as_integer_seconds() {
    assert_reports(
        "argo-integer-seconds.yaml",
        10,
        "Rollout/web",
        "spec.strategy.canary.steps[2].pause.duration",
        "-1 is out of range: use 0 or more",
    );
    let (_, stdout, _) = validate(&[&fixture("argo-integer-seconds.yaml")]);
    assert!(!stdout.contains("steps[1]"), "{stdout}");
}

#[test]
fn step_with_two_kinds() {
    assert_reports(
        "two-step-kinds.yaml",
        8,
        "Rollout/web",
        "spec.strategy.canary.steps[0]",
        "set exactly one of setWeight, pause, analysis",
    );
}

#[test]
fn unknown_field_with_a_suggestion() {
    assert_reports(
        "unknown-field.yaml",
        7,
        "Rollout/web",
        "spec.strategy.canary.baselin",
        "did you mean \"baseline\"",
    );
}

#[test]
fn selector_that_does_not_match_the_template() {
    assert_reports(
        "selector-mismatch.yaml",
        6,
        "Rollout/web",
        "spec.selector.matchLabels.app",
        "pod template has app: website",
    );
}

#[test]
fn image_not_pinned_when_the_policy_requires_it() {
    assert_reports(
        "require-digest.yaml",
        14,
        "Rollout/web",
        "spec.template.spec.containers[0].image",
        "not pinned by digest",
    );
}

#[test]
fn template_referenced_but_not_given() {
    assert_reports(
        "missing-template.yaml",
        10,
        "Rollout/web",
        "spec.strategy.canary.steps[1].analysis.templates[0].templateName",
        "\"not-there\" is not among the given files",
    );
}

#[test]
fn templates_directory_resolves_references() {
    let file = fixture("uses-shared-template.yaml");
    let (code, stdout, _) = validate(&[&file]);
    assert_eq!(
        code, 1,
        "without --templates the reference is missing:\n{stdout}"
    );
    let dir = fixture("templates");
    let (code, stdout, stderr) = validate(&[&file, "--templates", &dir]);
    assert_eq!(code, 0, "with --templates it resolves:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("not among"), "{stdout}");
}

#[test]
fn arguments_missing_or_unknown() {
    let name = "missing-argument.yaml";
    let path = "spec.strategy.canary.steps[0].analysis.args";
    assert_reports(name, 23, "Rollout/web", path, "needs argument \"service\"");
    assert_reports(
        name,
        23,
        "Rollout/web",
        &format!("{path}[0].name"),
        "\"servce\"",
    );
}

#[test]
fn placeholder_naming_no_argument() {
    assert_reports(
        "unknown-arg-placeholder.yaml",
        12,
        "AnalysisTemplate/gate",
        "spec.metrics[0].provider.prometheus.query",
        "{{args.service-name}} names no declared argument",
    );
}

#[test]
fn cel_that_does_not_compile() {
    assert_reports(
        "bad-cel.yaml",
        7,
        "AnalysisTemplate/gate",
        "spec.metrics[0].successCondition",
        "CEL does not compile",
    );
}

#[test]
fn count_without_interval_and_limit_not_below_count() {
    let name = "count-limits.yaml";
    assert_reports(
        name,
        6,
        "AnalysisTemplate/gate",
        "spec.metrics[0].interval",
        "no interval",
    );
    assert_reports(
        name,
        9,
        "AnalysisTemplate/gate",
        "spec.metrics[0].failureLimit",
        "can never fail",
    );
}

#[test]
fn comparison_settings_out_of_range() {
    let name = "comparison-out-of-range.yaml";
    let at = |field: &str| format!("spec.metrics[0].compare.{field}");
    assert_reports(
        name,
        15,
        "AnalysisTemplate/gate",
        &at("confidence"),
        "strictly between 0 and 1",
    );
    assert_reports(
        name,
        16,
        "AnalysisTemplate/gate",
        &at("allowedIncrease"),
        "of at least 1 ",
    );
    assert_reports(
        name,
        17,
        "AnalysisTemplate/gate",
        &at("minSamples"),
        "use 1 or more",
    );
}

#[test]
fn comparison_metric_needs_a_baseline() {
    assert_reports(
        "comparison-without-baseline.yaml",
        21,
        "Rollout/web",
        "spec.strategy.canary.steps[1].analysis.templates",
        "set baseline: true",
    );
}

#[test]
fn argo_and_flagger_objects_are_errors_named_by_kind() {
    assert_reports(
        "other-groups.yaml",
        1,
        "Rollout/web",
        "apiVersion",
        "an Argo Rollouts Rollout (argoproj.io/v1alpha1), which Fife does not read: `fife convert FILE` writes it as fife.dev/v1alpha1 objects",
    );
    assert_reports(
        "other-groups.yaml",
        11,
        "Canary/podinfo",
        "apiVersion",
        "a Flagger Canary (flagger.app/v1beta1), which Fife does not read: `fife convert FILE` writes a Canary",
    );
    assert_reports(
        "other-groups.yaml",
        17,
        "Service/web",
        "apiVersion",
        "note: Fife ignores v1 Service objects",
    );
}

/// A Service or RBAC object beside a Rollout is ordinary in a GitOps directory: CI passes it.
#[test]
fn objects_of_other_groups_are_noted_and_pass() {
    let file = fixture("only-ignored.yaml");
    let (code, stdout, stderr) = validate(&[&file]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        stdout,
        format!(
            "{file}:1: Service/web: apiVersion: note: Fife ignores v1 Service objects: this one is not checked\n"
        )
    );
}

#[test]
fn unparseable_yaml_exits_2_with_its_line() {
    let file = fixture("unparseable.yaml");
    let (code, _, stderr) = validate(&[&file]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with(&format!("{file}:5: cannot parse YAML")),
        "{stderr}"
    );
}

#[test]
fn unreadable_file_exits_2() {
    let (code, _, stderr) = validate(&["tests/fixtures/validate/no-such-file.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn every_example_validates_clean() {
    let examples = root().join("examples");
    let mut files = Vec::new();
    let mut dirs = vec![examples];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path.display().to_string());
            }
        }
    }
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let (code, stdout, stderr) = validate(&[file]);
        assert_eq!(code, 0, "{file}:\n{stdout}\n{stderr}");
        let errors: Vec<&str> = stdout
            .lines()
            .filter(|l| !l.contains(": warning: ") && !l.contains(": note: "))
            .collect();
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
}

#[test]
fn the_background_rollout_is_valid_but_warned_inert() {
    let file = root()
        .join("examples/rollouts/canary-slo-gate.yaml")
        .display()
        .to_string();
    let (code, stdout, _) = validate(&[&file]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("Rollout/checkout-api: spec.template: warning:"),
        "{stdout}"
    );
    assert!(stdout.contains("inert"), "{stdout}");
}

#[test]
fn references_to_unmarked_or_disallowed_secrets_are_warned() {
    let file = fixture("credential-marks.yaml");
    let (code, stdout, stderr) = validate(&[&file]);
    assert_eq!(code, 0, "warnings only:\n{stdout}\n{stderr}");
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{stdout}");
    let unmarked = format!(
        "{file}:35: AnalysisTemplate/gate: spec.metrics[1].provider.prometheus.auth.bearerTokenSecretRef: warning: Secret shop/db-password will not be used: it is not marked"
    );
    assert!(warnings[0].starts_with(&unmarked), "{stdout}");
    assert!(
        warnings[1].contains("spec.metrics[2]")
            && warnings[1].contains("not to http://collector.example.com"),
        "{stdout}"
    );
}
