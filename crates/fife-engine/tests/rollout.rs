//! The rollout step machine, one transition per test.

mod support;

use fife_api::rollout::{ManualActionOutcome, PauseReason};
use fife_api::{AnalysisPhase, ManualAction, RolloutPhase, TrafficWeights};
use fife_engine::rollout::{
    AnalysisIntent, EventAction, Observed, ObservedChild, decide, replicas_for, weights_for,
};
use support::*;

fn actions(d: &fife_engine::Decision) -> Vec<EventAction> {
    d.events.iter().map(|e| e.action).collect()
}

fn w(canary: i32, baseline: i32, stable: i32) -> TrafficWeights {
    TrafficWeights {
        canary,
        baseline,
        stable,
    }
}

#[test]
fn first_deployment_goes_straight_to_healthy() {
    let mut r = mk_rollout("app:1", 4, vec![set_weight(20), pause(None)]);
    let d = step(&mut r, &Observed::default(), t(0));
    assert_eq!(actions(&d), vec![EventAction::Healthy]);
    assert_eq!(d.status.canary_revision, None);
    assert_eq!(d.children.stable.as_ref().unwrap().replicas, 4);
    assert!(d.children.canary.is_none());
    assert_eq!(
        d.status.phase,
        Some(RolloutPhase::Progressing),
        "pods not ready yet"
    );
    let d = step(&mut r, &observe_applied(&d, None, None), t(5));
    assert_eq!(d.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(d.weights, w(0, 0, 100));
    assert!(d.events.is_empty());
    assert_eq!(d.status.step_label.as_deref(), Some("2/2"));
}

#[test]
fn new_revision_walks_the_steps() {
    let (mut r, obs) = healthy(
        "app:1",
        10,
        vec![set_weight(20), pause(Some(60)), set_weight(50), pause(None)],
    );
    let stable = r.status.as_ref().unwrap().stable_revision.clone().unwrap();
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    assert_eq!(
        actions(&d),
        vec![
            EventAction::RolloutStarted,
            EventAction::StepStarted,
            EventAction::WeightChanged
        ]
    );
    assert_eq!(d.weights, w(20, 0, 80));
    assert_eq!(d.children.canary.as_ref().unwrap().replicas, 2);
    assert_eq!(d.children.stable.as_ref().unwrap().revision, stable);
    assert_eq!(
        d.children.stable.as_ref().unwrap().replicas,
        8,
        "replica ratio shrinks stable"
    );
    assert_eq!(d.status.current_step_index, Some(0));

    // Not ready yet: the step does not advance.
    let d2 = step(&mut r, &obs, t(20));
    assert_eq!(d2.status.current_step_index, Some(0));
    assert!(
        d2.requeue_after.is_some(),
        "wakes up for the progress deadline"
    );

    // Ready: setWeight completes, the bake window starts.
    let d3 = step(&mut r, &observe_applied(&d, None, None), t(30));
    assert_eq!(d3.status.current_step_index, Some(1));
    assert_eq!(d3.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(d3.requeue_after, Some(std::time::Duration::from_secs(60)));
    assert!(actions(&d3).contains(&EventAction::PauseStarted));

    let d4 = step(&mut r, &observe_applied(&d3, None, None), t(89));
    assert_eq!(d4.status.current_step_index, Some(1));
    let d5 = step(&mut r, &observe_applied(&d4, None, None), t(90));
    assert_eq!(d5.status.current_step_index, Some(2));
    assert_eq!(d5.weights, w(50, 0, 50));
    assert!(actions(&d5).contains(&EventAction::PauseEnded));
    let d6 = step(&mut r, &observe_applied(&d5, None, None), t(100));
    assert_eq!(d6.status.current_step_index, Some(3));
    assert!(d6.status.controller_pause);
    assert_eq!(
        d6.requeue_after, None,
        "an indefinite pause waits for a person"
    );

    r.spec.manual_action = Some(request(ManualAction::Promote, "p1"));
    let d7 = step(&mut r, &observe_applied(&d6, None, None), t(200));
    assert!(actions(&d7).contains(&EventAction::ManualPromote));
    assert!(actions(&d7).contains(&EventAction::Promoted));
    let promoted = d7.status.stable_revision.clone().unwrap();
    assert_ne!(promoted, stable);
    assert_eq!(d7.status.canary_revision, None);
    assert_eq!(
        d7.status.last_manual_action.as_ref().unwrap().outcome,
        ManualActionOutcome::Applied
    );
    // Old canary keeps its share until the stable is ready at the new revision.
    assert_eq!(d7.weights, w(50, 0, 50));
    let d8 = step(&mut r, &observe_applied(&d7, None, None), t(210));
    assert_eq!(d8.weights, w(0, 0, 100));
    assert!(d8.children.canary.is_none());
    assert_eq!(d8.status.phase, Some(RolloutPhase::Healthy));
    // The same request is not handled twice.
    let d9 = step(&mut r, &observe_applied(&d8, None, None), t(220));
    assert!(d9.events.is_empty());
}

#[test]
fn baseline_gets_equal_weight_up_to_50_and_the_rest_above() {
    assert_eq!(weights_for(20, true), w(20, 20, 60));
    assert_eq!(weights_for(50, true), w(50, 50, 0));
    assert_eq!(weights_for(75, true), w(75, 25, 0));
    assert_eq!(weights_for(100, true), w(100, 0, 0));
    assert_eq!(weights_for(30, false), w(30, 0, 70));
    assert_eq!(replicas_for(w(5, 5, 90), 10, true), (10, 1, 1));
    assert_eq!(replicas_for(w(5, 5, 90), 10, false), (8, 1, 1));
    assert_eq!(
        replicas_for(w(5, 5, 90), 1, false),
        (1, 1, 1),
        "a stable with a share keeps a pod"
    );
    assert_eq!(replicas_for(w(100, 0, 0), 3, false), (0, 3, 0));
    assert_eq!(replicas_for(w(33, 0, 67), 10, true), (10, 4, 0), "ceil");
}

#[test]
fn baseline_runs_the_stable_revision_at_canary_size() {
    let (mut r, obs) = healthy("app:1", 10, vec![set_weight(30)]);
    r.spec.strategy.canary.baseline = true;
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    let stable = d.status.stable_revision.clone().unwrap();
    assert_eq!(d.weights, w(30, 30, 40));
    assert_eq!(d.children.baseline.as_ref().unwrap().revision, stable);
    assert_eq!(d.children.baseline.as_ref().unwrap().replicas, 3);
    assert_eq!(d.children.canary.as_ref().unwrap().replicas, 3);
}

#[test]
fn spec_change_mid_rollout_restarts_from_step_zero() {
    let (mut r, obs) = healthy(
        "app:1",
        4,
        vec![set_weight(25), pause(None), set_weight(50)],
    );
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    let d = step(&mut r, &observe_applied(&d, None, None), t(20));
    assert_eq!(d.status.current_step_index, Some(1));
    r.spec.template = Some(mk_template("app:3"));
    let d2 = step(&mut r, &observe_applied(&d, None, None), t(30));
    assert_eq!(d2.status.current_step_index, Some(0));
    assert!(d2.status.pause_conditions.is_empty());
    assert_ne!(d2.status.canary_revision, d.status.canary_revision);
    assert!(actions(&d2).contains(&EventAction::RolloutStarted));
}

#[test]
fn reverting_the_template_to_stable_rolls_back() {
    let (mut r, obs) = healthy("app:1", 4, vec![set_weight(25), pause(None)]);
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    r.spec.template = Some(mk_template("app:1"));
    let d2 = step(&mut r, &observe_applied(&d, None, None), t(20));
    assert_eq!(actions(&d2), vec![EventAction::RolledBack]);
    assert_eq!(d2.weights, w(0, 0, 100));
    assert!(d2.children.canary.is_none());
}

fn at_analysis_step() -> (fife_api::Rollout, fife_engine::Decision) {
    let (mut r, obs) = healthy("app:1", 4, vec![set_weight(25), analysis(), set_weight(50)]);
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    let d = step(&mut r, &observe_applied(&d, None, None), t(20));
    (r, d)
}

#[test]
fn analysis_step_starts_a_deterministic_run_and_advances_on_success() {
    let (mut r, d) = at_analysis_step();
    let canary = d.status.canary_revision.clone().unwrap();
    let name = format!("web-{canary}-step1");
    assert_eq!(
        d.status.current_analysis_run.as_deref(),
        Some(name.as_str())
    );
    assert!(matches!(&d.analysis[..], [AnalysisIntent::Start { name: n, .. }] if *n == name));
    // Restart before the run was created: the same run is requested again, no new event.
    let again = decide(&r, &observe_applied(&d, None, None), t(25));
    assert!(matches!(&again.analysis[..], [AnalysisIntent::Start { name: n, .. }] if *n == name));
    assert!(again.events.is_empty());
    let running = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Running), None),
        t(30),
    );
    assert!(running.analysis.is_empty());
    assert_eq!(running.status.current_step_index, Some(1));
    let done = step(
        &mut r,
        &observe_applied(&running, Some(AnalysisPhase::Successful), None),
        t(40),
    );
    assert_eq!(done.status.current_step_index, Some(2));
    assert!(actions(&done).contains(&EventAction::AnalysisCompleted));
}

#[test]
fn failed_or_error_analysis_aborts_and_scales_down_after_the_delay() {
    for phase in [AnalysisPhase::Failed, AnalysisPhase::Error] {
        let (mut r, d) = at_analysis_step();
        let stable = d.status.stable_revision.clone();
        let a = step(&mut r, &observe_applied(&d, Some(phase), None), t(30));
        assert!(a.status.abort);
        assert_eq!(a.status.phase, Some(RolloutPhase::Degraded));
        assert_eq!(a.weights, w(0, 0, 100));
        assert_eq!(a.status.stable_revision, stable, "stable untouched");
        assert_eq!(a.children.stable.as_ref().unwrap().replicas, 4);
        assert_eq!(
            a.children.canary.as_ref().unwrap().replicas,
            1,
            "kept for abortScaleDownDelaySeconds"
        );
        assert_eq!(a.requeue_after, Some(std::time::Duration::from_secs(30)));
        assert!(actions(&a).contains(&EventAction::Aborted));
        let later = step(&mut r, &observe_applied(&a, None, None), t(60));
        assert!(later.children.canary.is_none());
        assert!(later.events.is_empty(), "abort is not repeated");
    }
}

#[test]
fn inconclusive_analysis_pauses_and_promote_moves_on() {
    let (mut r, d) = at_analysis_step();
    let p = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Inconclusive), None),
        t(30),
    );
    assert_eq!(p.status.phase, Some(RolloutPhase::Paused));
    assert!(
        p.status
            .pause_conditions
            .iter()
            .any(|c| c.reason == PauseReason::InconclusiveAnalysis)
    );
    assert_eq!(p.status.current_step_index, Some(1));
    r.spec.manual_action = Some(request(ManualAction::Promote, "p1"));
    let n = step(
        &mut r,
        &observe_applied(&p, Some(AnalysisPhase::Inconclusive), None),
        t(40),
    );
    assert_eq!(n.status.current_step_index, Some(2));
    assert!(n.status.pause_conditions.is_empty());
}

#[test]
fn promote_while_running_analysis_is_ignored() {
    let (mut r, d) = at_analysis_step();
    r.spec.manual_action = Some(request(ManualAction::Promote, "p1"));
    let n = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Running), None),
        t(30),
    );
    assert_eq!(n.status.current_step_index, Some(1));
    assert_eq!(
        n.status.last_manual_action.as_ref().unwrap().outcome,
        ManualActionOutcome::Ignored
    );
    assert_eq!(n.events[0].manual.as_ref().unwrap().request_id, "p1");
}

#[test]
fn manual_abort_then_retry_restarts_the_steps_with_fresh_runs() {
    let (mut r, d) = at_analysis_step();
    let first_run = d.status.current_analysis_run.clone().unwrap();
    r.spec.manual_action = Some(request(ManualAction::Abort, "a1"));
    let a = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Running), None),
        t(30),
    );
    assert!(a.status.abort);
    assert!(a.analysis.contains(&AnalysisIntent::Terminate {
        name: first_run.clone()
    }));
    r.spec.manual_action = Some(request(ManualAction::Retry, "r1"));
    let b = step(&mut r, &observe_applied(&a, None, None), t(40));
    assert!(!b.status.abort);
    assert_eq!(b.status.retries, 1);
    // Step 1 starts again; the canary pods kept through the abort delay are still ready at
    // its weight, so it completes at once and the analysis step starts with a fresh run.
    assert!(
        b.events
            .iter()
            .any(|e| e.action == EventAction::StepStarted && e.step_index == Some(0))
    );
    assert_eq!(b.status.current_step_index, Some(1));
    let second_run = b.status.current_analysis_run.clone().unwrap();
    assert_ne!(first_run, second_run);
    assert!(second_run.contains("-retry1-step1"));
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let (mut r, d) = at_analysis_step();
    r.spec.manual_action = Some(request(ManualAction::PromoteFull, "f1"));
    let p = step(
        &mut r,
        &observe_applied(&d, Some(AnalysisPhase::Running), None),
        t(30),
    );
    assert!(actions(&p).contains(&EventAction::Promoted));
    assert_eq!(p.status.stable_revision, d.status.canary_revision);
}

#[test]
fn progress_deadline_aborts_a_canary_that_never_gets_ready() {
    let (mut r, obs) = healthy("app:1", 4, vec![set_weight(25), pause(None)]);
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    let mut stuck = observe_applied(&d, None, None);
    stuck.canary = Some(ObservedChild {
        ready_replicas: 0,
        ..stuck.canary.unwrap()
    });
    let before = step(&mut r, &stuck, t(10 + 600));
    assert!(!before.status.abort);
    assert_eq!(
        before.requeue_after,
        Some(std::time::Duration::from_millis(1))
    );
    let after = step(&mut r, &stuck, t(10 + 601));
    assert!(after.status.abort);
    assert!(actions(&after).contains(&EventAction::ProgressDeadlineExceeded));
    assert_eq!(after.weights.canary, 0);
}

#[test]
fn spec_paused_holds_and_resume_continues() {
    let (mut r, obs) = healthy("app:1", 4, vec![set_weight(25), set_weight(50)]);
    r.spec.template = Some(mk_template("app:2"));
    r.spec.paused = true;
    let d = step(&mut r, &obs, t(10));
    assert_eq!(d.status.phase, Some(RolloutPhase::Paused));
    let d2 = step(&mut r, &observe_applied(&d, None, None), t(2000));
    assert_eq!(d2.status.current_step_index, Some(0));
    assert!(
        !d2.status.abort,
        "paused time does not count against the deadline"
    );
    r.spec.paused = false;
    let d3 = step(&mut r, &observe_applied(&d2, None, None), t(2010));
    assert!(actions(&d3).contains(&EventAction::ManualResume));
    assert_eq!(d3.status.current_step_index, Some(1));
}

#[test]
fn inconclusive_background_analysis_pauses_until_a_person_promotes() {
    let (mut r, obs) = healthy("app:1", 4, vec![set_weight(25), set_weight(50)]);
    r.spec.strategy.canary.analysis = Some(fife_api::rollout::BackgroundAnalysis {
        templates: vec![fife_api::rollout::TemplateRef {
            template_name: "bg".to_owned(),
            cluster_scope: false,
        }],
        args: vec![],
        starting_step: Some(0),
    });
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    assert!(
        d.status
            .background_analysis_run
            .as_deref()
            .unwrap()
            .ends_with("-background")
    );
    let p = step(
        &mut r,
        &observe_applied(&d, None, Some(AnalysisPhase::Inconclusive)),
        t(20),
    );
    assert_eq!(p.status.phase, Some(RolloutPhase::Paused));
    assert_eq!(p.status.current_step_index, Some(0));
    r.spec.manual_action = Some(request(ManualAction::Promote, "p1"));
    let q = step(
        &mut r,
        &observe_applied(&p, None, Some(AnalysisPhase::Inconclusive)),
        t(30),
    );
    assert_eq!(q.status.current_step_index, Some(1));
    // End of steps: accepted background does not block promotion.
    let z = step(
        &mut r,
        &observe_applied(&q, None, Some(AnalysisPhase::Inconclusive)),
        t(40),
    );
    assert!(actions(&z).contains(&EventAction::Promoted));
}

#[test]
fn running_background_analysis_is_terminated_and_must_succeed_before_promotion() {
    let (mut r, obs) = healthy("app:1", 4, vec![set_weight(25)]);
    r.spec.strategy.canary.analysis = Some(fife_api::rollout::BackgroundAnalysis {
        templates: vec![fife_api::rollout::TemplateRef {
            template_name: "bg".to_owned(),
            cluster_scope: false,
        }],
        args: vec![],
        starting_step: None,
    });
    r.spec.template = Some(mk_template("app:2"));
    let d = step(&mut r, &obs, t(10));
    let e = step(
        &mut r,
        &observe_applied(&d, None, Some(AnalysisPhase::Running)),
        t(20),
    );
    let name = e.status.background_analysis_run.clone().unwrap();
    assert!(e.analysis.contains(&AnalysisIntent::Terminate { name }));
    assert!(!actions(&e).contains(&EventAction::Promoted));
    let f = step(
        &mut r,
        &observe_applied(&e, None, Some(AnalysisPhase::Successful)),
        t(30),
    );
    assert!(actions(&f).contains(&EventAction::Promoted));
}

#[test]
fn lost_status_adopts_the_running_stable_instead_of_skipping_steps() {
    let (r0, obs) = healthy("app:1", 4, vec![set_weight(25)]);
    let mut r = r0.clone();
    r.status = None;
    r.spec.template = Some(mk_template("app:2"));
    let d = decide(&r, &obs, t(100));
    assert_eq!(d.status.stable_revision, r0.status.unwrap().stable_revision);
    assert!(d.status.canary_revision.is_some());
}

#[test]
fn a_rollout_without_template_is_inert() {
    let mut r = mk_rollout("app:1", 3, vec![]);
    r.spec.template = None;
    let d = decide(&r, &Observed::default(), t(0));
    assert!(d.children.stable.is_none() && d.children.canary.is_none());
    assert!(d.status.message.unwrap().contains("no pod template"));
    assert_eq!(d.status.phase, None);
}

#[test]
fn a_bake_window_read_back_from_the_api_server_never_ends_early() {
    let (mut r, _) = healthy(
        "app:1",
        4,
        vec![set_weight(25), pause(Some(1)), set_weight(50)],
    );
    r.spec.template = Some(mk_template("app:2"));
    let ms = |m: i64| jiff::Timestamp::from_millisecond(m).unwrap();
    let d = step(&mut r, &Observed::default(), ms(10_000));
    // Pods ready 300 ms into a second: the bake window starts then.
    let d = step(&mut r, &observe_applied(&d, None, None), ms(10_300));
    assert_eq!(d.status.current_step_index, Some(1));
    // The API server keeps status times to the second; a restart reads them back so.
    let wire = serde_json::to_value(r.status.as_ref().unwrap()).unwrap();
    r.status = Some(serde_json::from_value(wire).unwrap());
    let d = step(&mut r, &observe_applied(&d, None, None), ms(11_200));
    assert_eq!(
        d.status.current_step_index,
        Some(1),
        "0.9 s after it started, a 1 s bake window is still running"
    );
    let d = step(&mut r, &observe_applied(&d, None, None), ms(12_000));
    assert_eq!(d.status.current_step_index, Some(2));
}

#[test]
fn summary_fields_count_every_child_and_name_the_step() {
    let r = mk_rollout("app:1", 4, vec![set_weight(20), pause(None)]);
    let child = |replicas, ready_replicas| ObservedChild {
        revision: "r".into(),
        replicas,
        ready_replicas,
        updated_replicas: replicas,
        up_to_date: true,
    };
    let observed = Observed {
        stable: Some(child(3, 3)),
        canary: Some(child(1, 0)),
        ..Observed::default()
    };
    let mut status = fife_api::RolloutStatus::default();
    fife_engine::summarize(&mut status, &r.spec, &observed);
    assert_eq!((status.replicas, status.ready_replicas), (4, 3));
    assert_eq!(status.ready_label.as_deref(), Some("3/4"));
    assert_eq!(
        status.step_label, None,
        "no stable revision, no current step"
    );

    status.current_step_index = Some(1);
    fife_engine::summarize(&mut status, &r.spec, &observed);
    assert_eq!(status.step_label.as_deref(), Some("2/2"));

    status.current_step_index = None;
    status.stable_revision = Some("r".into());
    fife_engine::summarize(&mut status, &r.spec, &observed);
    assert_eq!(status.step_label.as_deref(), Some("1/2"));
}
