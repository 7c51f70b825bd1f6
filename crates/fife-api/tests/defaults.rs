//! Defaults a minimal manifest gets, and shapes the schema refuses.

use fife_api::analysis::{Direction, NanStrategy, OutlierStrategy};
use fife_api::manifest::{FifeObject, parse_yaml_documents};
use fife_api::rollout::{ManualAction, step_label};
use fife_api::{AnalysisPhase, CanaryStep, Rollout};

fn one(text: &str) -> Result<FifeObject, String> {
    let docs = parse_yaml_documents(text).map_err(|e| e.to_string())?;
    FifeObject::from_value(&docs[0])
        .expect("a fife.dev document")
        .map_err(|e| e.to_string())
}

#[test]
fn minimal_rollout_gets_documented_defaults() {
    let FifeObject::Rollout(rollout) = one(
        "apiVersion: fife.dev/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  strategy:\n    canary: {}\n",
    )
    .unwrap() else {
        panic!("not a Rollout")
    };
    let spec = &rollout.spec;
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.progress_deadline_seconds, 600);
    assert_eq!(spec.revision_history_limit, 10);
    assert_eq!(spec.strategy.canary.abort_scale_down_delay_seconds, 30);
    assert!(!spec.strategy.canary.baseline);
    assert!(!spec.paused);
    assert!(!spec.policy.require_digest);
    assert!(spec.steps().is_empty());
}

#[test]
fn minimal_comparison_metric_gets_documented_defaults() {
    let FifeObject::AnalysisTemplate(template) = one(r#"
apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: t}
spec:
  metrics:
    - name: latency
      provider: {prometheus: {address: "http://p:9090", query: 'x{role="{{role}}"}'}}
      compare: {}
"#)
    .unwrap() else {
        panic!("not an AnalysisTemplate")
    };
    let metric = &template.spec.metrics[0];
    assert_eq!(metric.consecutive_error_limit, 4);
    assert_eq!(metric.measurement_retention, 10);
    assert_eq!(metric.failure_limit, 0);
    let compare = metric.compare.as_ref().unwrap();
    assert_eq!(compare.confidence, 0.95);
    assert_eq!(compare.min_samples, 20);
    assert_eq!(compare.direction, Direction::Either);
    assert_eq!(compare.nan_strategy, NanStrategy::Remove);
    assert_eq!(compare.outliers.strategy, OutlierStrategy::Keep);
    assert_eq!(compare.outliers.factor, 1.5);
}

#[test]
fn a_step_with_two_kinds_is_refused() {
    let err = one(
        "apiVersion: fife.dev/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  strategy:\n    canary:\n      steps:\n        - {setWeight: 5, pause: {}}\n",
    )
    .unwrap_err();
    assert!(err.contains("Rollout \"r\""), "{err}");
}

#[test]
fn manual_action_is_one_merge_patch() {
    let FifeObject::Rollout(rollout) = one(
        "apiVersion: fife.dev/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  strategy: {canary: {}}\n  manualAction: {action: PromoteFull, id: req-1, requestedBy: alice@example.com}\n",
    )
    .unwrap() else {
        panic!("not a Rollout")
    };
    let request = rollout.spec.manual_action.as_ref().unwrap();
    assert_eq!(request.action, ManualAction::PromoteFull);
    assert_eq!(request.requested_by.as_deref(), Some("alice@example.com"));
    let _: &Rollout = &rollout;
}

#[test]
fn step_label_counts_from_one_and_stops_at_total() {
    assert_eq!(step_label(2, 7), "3/7");
    assert_eq!(step_label(0, 7), "1/7");
    assert_eq!(step_label(7, 7), "7/7");
    assert_eq!(step_label(0, 0), "0/0");
}

#[test]
fn worst_phase_follows_severity() {
    use AnalysisPhase::*;
    assert_eq!(Successful.worst(Inconclusive), Inconclusive);
    assert_eq!(Inconclusive.worst(Error), Error);
    assert_eq!(Failed.worst(Error), Failed);
    assert_eq!(Running.worst(Successful), Successful);
    assert!(Error.aborts_rollout() && Failed.aborts_rollout() && !Inconclusive.aborts_rollout());
    let _ = CanaryStep::SetWeight(1).kind();
}

#[test]
fn measurements_are_bounded_by_retention() {
    use fife_api::{Measurement, MeasurementPhase, MetricResult};
    let mut result = MetricResult::new("m", false);
    for i in 0..25 {
        result.retain_measurement(
            Measurement {
                phase: MeasurementPhase::Successful,
                started_at: None,
                finished_at: None,
                value: Some(format!("[{i}]")),
                judgement: None,
                message: None,
            },
            10,
        );
    }
    assert_eq!(result.measurements.len(), 10);
    assert_eq!(result.measurements[0].value.as_deref(), Some("[15]"));
    assert_eq!(result.measurements[9].value.as_deref(), Some("[24]"));
}
