//! Measurement, metric and run phases, and measurement scheduling.

use fife_api::analysis::{MetricProvider, PrometheusProvider};
use fife_api::{AnalysisPhase, AnalysisRunSpec, Duration, Measurement, MeasurementPhase, Metric};
use fife_engine::analysis::{
    ERROR_RETRY_INTERVAL, MeasurementOutcome, classify_threshold, progress, record, start,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn t(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn mk_metric(name: &str) -> Metric {
    let mut m = Metric::new(
        name,
        MetricProvider::Prometheus(PrometheusProvider {
            address: "http://prometheus:9090".to_owned(),
            query: "up".to_owned(),
            ..PrometheusProvider::default()
        }),
    );
    m.success_condition = Some("result[0] >= 0.99".to_owned());
    m
}

fn mk_run(metrics: Vec<Metric>) -> AnalysisRunSpec {
    AnalysisRunSpec {
        metrics,
        ..AnalysisRunSpec::default()
    }
}

fn mk_outcome(metric: &str, phase: MeasurementPhase, at: i64) -> MeasurementOutcome {
    MeasurementOutcome {
        metric: metric.to_owned(),
        measurement: Measurement {
            phase,
            started_at: Some(Time(t(at))),
            finished_at: Some(Time(t(at))),
            value: None,
            judgement: None,
            message: None,
        },
    }
}

/// Feed `phases` one measurement at a time, `gap` seconds apart; the run's phase after each.
fn drive(run: &AnalysisRunSpec, metric: &str, phases: &[MeasurementPhase]) -> Vec<AnalysisPhase> {
    let mut status = start(run, t(0));
    let mut seen = Vec::new();
    for (i, phase) in phases.iter().enumerate() {
        let at = i64::try_from(i).unwrap() * 60;
        status = record(run, &status, &[mk_outcome(metric, *phase, at)], t(at));
        seen.push(status.phase.unwrap());
    }
    seen
}

use MeasurementPhase::{Error as E, Failed as F, Inconclusive as I, Successful as S};

#[test]
fn threshold_conditions_failure_wins_and_neither_is_inconclusive() {
    let mut m = mk_metric("rate");
    m.success_condition = Some("result[0] >= 0.99".to_owned());
    m.failure_condition = Some("result[0] < 0.9".to_owned());
    assert_eq!(classify_threshold(&m, &[0.995]), S);
    assert_eq!(classify_threshold(&m, &[0.5]), F);
    assert_eq!(classify_threshold(&m, &[0.95]), I);
    // Both true: failure wins.
    m.success_condition = Some("result[0] > 0.0".to_owned());
    assert_eq!(classify_threshold(&m, &[0.5]), F);
}

#[test]
fn a_single_condition_decides_both_ways() {
    let mut m = mk_metric("rate");
    m.failure_condition = None;
    assert_eq!(classify_threshold(&m, &[0.5]), F);
    m.success_condition = None;
    m.failure_condition = Some("result[0] > 0.5".to_owned());
    assert_eq!(classify_threshold(&m, &[0.1]), S);
    assert_eq!(classify_threshold(&m, &[0.9]), F);
}

#[test]
fn unevaluable_results_are_errors() {
    let m = mk_metric("rate");
    assert_eq!(classify_threshold(&m, &[]), E);
    assert_eq!(classify_threshold(&m, &[f64::NAN]), E);
    assert_eq!(classify_threshold(&m, &[f64::INFINITY]), E);
    let mut bad = mk_metric("rate");
    bad.success_condition = Some("result[0] +".to_owned());
    assert_eq!(classify_threshold(&bad, &[1.0]), E);
    bad.success_condition = Some("result[0]".to_owned());
    assert_eq!(
        classify_threshold(&bad, &[1.0]),
        E,
        "a number is not a boolean"
    );
    bad.success_condition = Some("result[3] > 0.0".to_owned());
    assert_eq!(classify_threshold(&bad, &[1.0]), E, "index out of range");
}

#[test]
fn conditions_can_use_every_element_of_result() {
    let mut m = mk_metric("pods");
    m.success_condition = Some("result.all(x, x < 0.5)".to_owned());
    m.failure_condition = Some("result.exists(x, x > 0.9)".to_owned());
    assert_eq!(classify_threshold(&m, &[0.1, 0.2]), S);
    assert_eq!(classify_threshold(&m, &[0.1, 0.95]), F);
    assert_eq!(classify_threshold(&m, &[0.1, 0.7]), I);
}

#[test]
fn failure_limit_fails_only_when_exceeded() {
    let mut m = mk_metric("m");
    m.count = Some(5);
    m.interval = Some(Duration::from_secs(60));
    m.failure_limit = 1;
    let run = mk_run(vec![m]);
    use AnalysisPhase::{Failed, Running, Successful};
    assert_eq!(
        drive(&run, "m", &[F, S, S, S, S]),
        vec![Running, Running, Running, Running, Successful]
    );
    assert_eq!(drive(&run, "m", &[F, F]), vec![Running, Failed]);
}

#[test]
fn failure_limit_three_fails_on_the_fourth_failure() {
    let mut m = mk_metric("m");
    m.count = Some(10);
    m.interval = Some(Duration::from_secs(60));
    m.failure_limit = 3;
    let run = mk_run(vec![m]);
    let phases = drive(&run, "m", &[F, F, F, F]);
    assert_eq!(phases[2], AnalysisPhase::Running);
    assert_eq!(phases[3], AnalysisPhase::Failed);
}

#[test]
fn inconclusive_limit_and_consecutive_errors() {
    let mut m = mk_metric("m");
    m.count = Some(5);
    m.interval = Some(Duration::from_secs(60));
    let run = mk_run(vec![m.clone()]);
    assert_eq!(drive(&run, "m", &[S, I])[1], AnalysisPhase::Inconclusive);

    // Default consecutiveErrorLimit 4: the fifth error in a row is an Error.
    let phases = drive(&run, "m", &[E, E, E, E, E]);
    assert_eq!(phases[3], AnalysisPhase::Running);
    assert_eq!(phases[4], AnalysisPhase::Error);
    // A result in between resets the streak.
    assert_eq!(
        drive(&run, "m", &[E, E, E, E, S, E, E, E, E])[8],
        AnalysisPhase::Running
    );
}

#[test]
fn a_failed_or_errored_metric_says_why_with_its_last_measurement() {
    let mut m = mk_metric("m");
    m.consecutive_error_limit = 0;
    let run = mk_run(vec![m]);
    let mut outcome = mk_outcome("m", E, 0);
    outcome.measurement.message = Some("Secret shop/prom-token does not exist".to_owned());
    let status = record(&run, &start(&run, t(0)), &[outcome], t(0));
    assert_eq!(status.phase, Some(AnalysisPhase::Error));
    let message = status.message.unwrap();
    assert!(
        message.contains("consecutiveErrorLimit 0; the last: Secret shop/prom-token"),
        "{message}"
    );

    let mut outcome = mk_outcome("m", F, 0);
    outcome.measurement.message = Some("successCondition is false for [0.95]".to_owned());
    let status = record(&run, &start(&run, t(0)), &[outcome], t(0));
    assert_eq!(status.phase, Some(AnalysisPhase::Failed));
    assert!(
        status
            .message
            .unwrap()
            .ends_with("the last: successCondition is false for [0.95]")
    );
}

#[test]
fn errors_do_not_use_up_count() {
    let mut m = mk_metric("m");
    m.count = Some(2);
    m.interval = Some(Duration::from_secs(60));
    let run = mk_run(vec![m]);
    let phases = drive(&run, "m", &[E, S, E, S]);
    assert_eq!(
        phases,
        vec![
            AnalysisPhase::Running,
            AnalysisPhase::Running,
            AnalysisPhase::Running,
            AnalysisPhase::Successful
        ]
    );
}

#[test]
fn run_phase_is_the_worst_metric_and_dry_run_never_gates() {
    let mut a = mk_metric("a");
    a.count = Some(2);
    a.interval = Some(Duration::from_secs(60));
    a.inconclusive_limit = 1;
    let mut b = mk_metric("b");
    b.dry_run = true;
    let run = mk_run(vec![a, b]);
    let s0 = start(&run, t(0));
    let s1 = record(
        &run,
        &s0,
        &[mk_outcome("a", I, 0), mk_outcome("b", F, 0)],
        t(0),
    );
    assert_eq!(
        s1.phase,
        Some(AnalysisPhase::Running),
        "dry-run failure does not stop the run"
    );
    let s2 = record(&run, &s1, &[mk_outcome("a", S, 60)], t(60));
    assert_eq!(s2.phase, Some(AnalysisPhase::Successful));
    assert_eq!(s2.metric_results[1].phase, AnalysisPhase::Failed);
}

#[test]
fn first_failed_metric_stops_the_run() {
    let mut a = mk_metric("a");
    a.count = Some(5);
    a.interval = Some(Duration::from_secs(60));
    let b = mk_metric("b");
    let mut bg = mk_metric("bg");
    bg.interval = Some(Duration::from_secs(60));
    let run = mk_run(vec![a, b, bg]);
    let s0 = start(&run, t(0));
    let s1 = record(&run, &s0, &[mk_outcome("b", F, 0)], t(0));
    assert_eq!(s1.phase, Some(AnalysisPhase::Failed));
    assert!(s1.completed_at.is_some());
    assert!(s1.message.as_deref().unwrap().contains("metric b"));
    let p = progress(&run, &s1, t(60));
    assert!(p.completed && p.due.is_empty());
    // Nothing is recorded after completion.
    assert_eq!(record(&run, &s1, &[mk_outcome("a", S, 60)], t(60)), s1);
}

#[test]
fn retention_keeps_the_newest_measurements_and_counters_keep_counting() {
    let mut m = mk_metric("m");
    m.interval = Some(Duration::from_secs(60));
    m.measurement_retention = 3;
    let run = mk_run(vec![m]);
    let mut status = start(&run, t(0));
    for i in 0..20 {
        status = record(&run, &status, &[mk_outcome("m", S, i * 60)], t(i * 60));
    }
    let r = &status.metric_results[0];
    assert_eq!(r.count, 20);
    assert_eq!(r.successful, 20);
    assert_eq!(r.measurements.len(), 3);
    assert_eq!(r.measurements[2].finished_at, Some(Time(t(19 * 60))));
    assert_eq!(
        status.phase,
        Some(AnalysisPhase::Running),
        "no count: runs until terminated"
    );
}

#[test]
fn scheduling_honours_initial_delay_interval_and_error_retry() {
    let mut m = mk_metric("m");
    m.count = Some(3);
    m.interval = Some(Duration::from_secs(60));
    m.initial_delay = Some(Duration::from_secs(30));
    let once = mk_metric("once");
    let run = mk_run(vec![m, once]);
    let s0 = start(&run, t(0));
    let p = progress(&run, &s0, t(0));
    assert_eq!(p.due, vec!["once".to_owned()]);
    assert_eq!(p.next_wakeup, Some(std::time::Duration::from_secs(30)));
    let p = progress(&run, &s0, t(30));
    assert_eq!(p.due, vec!["m".to_owned(), "once".to_owned()]);

    let s1 = record(
        &run,
        &s0,
        &[mk_outcome("m", S, 30), mk_outcome("once", E, 30)],
        t(30),
    );
    let p = progress(&run, &s1, t(35));
    assert!(p.due.is_empty());
    assert_eq!(
        p.next_wakeup,
        Some(ERROR_RETRY_INTERVAL - std::time::Duration::from_secs(5))
    );
    let p = progress(&run, &s1, t(90));
    assert_eq!(p.due, vec!["m".to_owned(), "once".to_owned()]);
}

#[test]
fn terminating_completes_with_what_was_measured() {
    let mut bg = mk_metric("bg");
    bg.interval = Some(Duration::from_secs(60));
    let mut run = mk_run(vec![bg]);
    let s0 = start(&run, t(0));
    let s1 = record(&run, &s0, &[mk_outcome("bg", S, 0)], t(0));
    run.terminate = true;
    let p = progress(&run, &s1, t(10));
    assert!(p.completed);
    assert_eq!(p.status.phase, Some(AnalysisPhase::Successful));
    // No data at all: missing data never promotes.
    let p = progress(&run, &s0, t(10));
    assert_eq!(p.status.phase, Some(AnalysisPhase::Inconclusive));
}

#[test]
fn a_run_without_metrics_is_an_error() {
    let status = start(&mk_run(vec![]), t(0));
    assert_eq!(status.phase, Some(AnalysisPhase::Error));
}
