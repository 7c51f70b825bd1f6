//! Properties of the rollout engine, over random step lists and random event sequences,
//! driven through a simulated controller loop: decide → write status → apply children →
//! observe → decide.

mod support;

use fife_api::rollout::{BlueGreenStrategy, ManualActionOutcome, RolloutAnalysis, TemplateRef};
use fife_api::{AnalysisPhase, CanaryStep, ManualAction};
use fife_engine::rollout::{
    Decision, EventAction, Observed, ObservedChild, active_revision, blue_green_steps, decide,
    header_routes_at, weight_at,
};
use proptest::prelude::*;
use support::*;

#[derive(Clone, Debug)]
struct Tick {
    dt: i64,
    pods_ready: bool,
    step_phase: AnalysisPhase,
    background_phase: AnalysisPhase,
    manual: Option<ManualAction>,
}

fn phase() -> impl Strategy<Value = AnalysisPhase> {
    prop_oneof![
        3 => Just(AnalysisPhase::Running),
        4 => Just(AnalysisPhase::Successful),
        1 => Just(AnalysisPhase::Inconclusive),
        1 => Just(AnalysisPhase::Failed),
        1 => Just(AnalysisPhase::Error),
    ]
}

fn manual() -> impl Strategy<Value = Option<ManualAction>> {
    prop_oneof![
        12 => Just(None),
        2 => Just(Some(ManualAction::Promote)),
        1 => Just(Some(ManualAction::PromoteFull)),
        1 => Just(Some(ManualAction::Abort)),
        2 => Just(Some(ManualAction::Retry)),
    ]
}

fn tick() -> impl Strategy<Value = Tick> {
    (
        0i64..400,
        prop::bool::weighted(0.8),
        phase(),
        phase(),
        manual(),
    )
        .prop_map(
            |(dt, pods_ready, step_phase, background_phase, manual)| Tick {
                dt,
                pods_ready,
                step_phase,
                background_phase,
                manual,
            },
        )
}

fn canary_step() -> impl Strategy<Value = CanaryStep> {
    prop_oneof![
        (0i32..=100).prop_map(set_weight),
        prop::option::of(0u64..300).prop_map(pause),
        Just(analysis()),
        (0u8..3, prop::option::of(0u8..3)).prop_map(|(name, value)| header_route(name, value)),
    ]
}

fn gate(name: &str) -> RolloutAnalysis {
    RolloutAnalysis {
        templates: vec![TemplateRef {
            template_name: name.to_owned(),
            cluster_scope: false,
        }],
        args: vec![],
    }
}

fn blue_green() -> impl Strategy<Value = BlueGreenStrategy> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0i32..300),
        prop::option::of(1i32..6),
        0i32..120,
        any::<bool>(),
    )
        .prop_map(
            |(pre, post, auto_seconds, preview, delay, auto)| BlueGreenStrategy {
                active_service: "web".to_owned(),
                preview_service: Some("web-preview".to_owned()),
                preview_replica_count: preview,
                auto_promotion_enabled: auto,
                auto_promotion_seconds: auto_seconds,
                scale_down_delay_seconds: delay,
                pre_promotion_analysis: pre.then(|| gate("pre")),
                post_promotion_analysis: post.then(|| gate("post")),
            },
        )
}

#[derive(Clone, Debug)]
struct Scenario {
    steps: Vec<CanaryStep>,
    /// Set: the Rollout is blue-green and `steps` are the ones it runs as.
    blue_green: Option<BlueGreenStrategy>,
    replicas: i32,
    baseline: bool,
    background: bool,
    ticks: Vec<Tick>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(canary_step(), 0..7),
        0i32..12,
        any::<bool>(),
        prop::bool::weighted(0.3),
        prop::collection::vec(tick(), 1..40),
    )
        .prop_map(|(steps, replicas, baseline, background, ticks)| Scenario {
            steps,
            blue_green: None,
            replicas,
            baseline,
            background,
            ticks,
        })
}

fn blue_green_scenario() -> impl Strategy<Value = Scenario> {
    (blue_green(), 1i32..8, prop::collection::vec(tick(), 1..40)).prop_map(
        |(strategy, replicas, ticks)| Scenario {
            steps: blue_green_steps(&strategy),
            blue_green: Some(strategy),
            replicas,
            baseline: false,
            background: false,
            ticks,
        },
    )
}

fn has(d: &Decision, action: EventAction) -> bool {
    d.events.iter().any(|e| e.action == action)
}

fn applied_person_promote(d: &Decision) -> bool {
    d.events.iter().any(|e| {
        matches!(
            e.action,
            EventAction::ManualPromote | EventAction::ManualPromoteFull
        )
    }) && d
        .status
        .last_manual_action
        .as_ref()
        .is_some_and(|h| h.outcome == ManualActionOutcome::Applied)
}

fn run_scenario(sc: &Scenario) -> Result<(), TestCaseError> {
    let (mut r, obs) = healthy("app:1", sc.replicas, sc.steps.clone());
    r.spec.strategy.canary.baseline = sc.baseline;
    r.spec.strategy.blue_green = sc.blue_green.clone();
    let switch_step = sc
        .steps
        .iter()
        .position(|s| matches!(s, CanaryStep::SetWeight(100)))
        .and_then(|i| i32::try_from(i).ok());
    if sc.background {
        r.spec.strategy.canary.analysis = Some(fife_api::rollout::BackgroundAnalysis {
            templates: vec![fife_api::rollout::TemplateRef {
                template_name: "bg".to_owned(),
                cluster_scope: false,
            }],
            args: vec![],
            starting_step: Some(0),
        });
    }
    r.spec.template = Some(mk_template("app:2"));
    let n = i32::try_from(sc.steps.len()).unwrap();
    let mut now = 100;
    let mut observed = obs;
    let mut last: Option<Decision> = None;
    let mut request_id = 0;
    // Within one attempt (revision + retry), the steps started so far, in order.
    let mut started: Vec<i32> = Vec::new();
    let mut person_approved = false;
    let mut promoted = false;

    for tick in &sc.ticks {
        now += tick.dt;
        if let Some(action) = tick.manual {
            request_id += 1;
            r.spec.manual_action = Some(request(action, &format!("req-{request_id}")));
        }
        if let Some(d) = &last {
            let fresh = observe_applied(d, Some(tick.step_phase), Some(tick.background_phase));
            observed = if tick.pods_ready {
                fresh
            } else {
                Observed {
                    canary: fresh.canary.map(|c| ObservedChild {
                        ready_replicas: 0,
                        ..c
                    }),
                    ..fresh
                }
            };
        }
        let before = r.status.clone().unwrap_or_default();
        let d = decide(&r, &observed, support::t(now));

        // Same inputs, same outputs.
        prop_assert_eq!(&d, &decide(&r, &observed, support::t(now)));

        // An aborted rollout always has canary weight 0.
        if d.status.abort {
            prop_assert_eq!(d.weights.canary, 0);
            prop_assert_eq!(d.weights.baseline, 0);
        }
        if let Some(strategy) = &sc.blue_green {
            let active = active_revision(&d.status, &d.weights);
            // Abort: the active Service is on (or back on) the old revision.
            if d.status.abort {
                prop_assert_eq!(active, d.status.stable_revision.as_deref());
            }
            // The new revision becomes active only at or after the switch step, through
            // every gate before it, with all of its pods ready.
            if d.status.canary_revision.is_some() && active == d.status.canary_revision.as_deref() {
                let index = d.status.current_step_index.unwrap_or(0);
                prop_assert!(
                    switch_step.is_some_and(|s| index >= s)
                        || person_approved
                        || applied_person_promote(&d),
                    "active at step {} before the switch",
                    index
                );
                if !strategy.auto_promotion_enabled {
                    prop_assert!(
                        person_approved || applied_person_promote(&d) || before.promote_full,
                        "active without the person autoPromotionEnabled: false waits for"
                    );
                }
                let canary = observed.canary.as_ref();
                prop_assert!(
                    canary.is_some_and(|c| c.ready_replicas >= sc.replicas),
                    "active before all of its pods are ready"
                );
            }
        }
        // Weights never exceed the current step's setWeight.
        if d.status.canary_revision.is_some() {
            let index = d.status.current_step_index.unwrap_or(0);
            prop_assert!(d.weights.canary <= weight_at(&sc.steps, index));
        }
        prop_assert_eq!(
            d.weights.canary + d.weights.baseline + d.weights.stable,
            100
        );
        // Header routes never outlive the rollout: none after an abort, a promotion or a
        // return to stable; while the canary runs, exactly those of the steps reached.
        if d.status.abort || d.status.canary_revision.is_none() || d.children.canary.is_none() {
            prop_assert!(d.header_routes.is_empty(), "{:?}", d.header_routes);
        } else {
            let index = d.status.current_step_index.unwrap_or(0);
            prop_assert_eq!(&d.header_routes, &header_routes_at(&sc.steps, index));
        }
        prop_assert!(d.header_routes.iter().all(|r| !r.r#match.is_empty()));

        if applied_person_promote(&d) {
            person_approved = true;
        }
        if has(&d, EventAction::RolloutStarted)
            || (has(&d, EventAction::ManualRetry) && !d.status.abort && before.abort)
        {
            started.clear();
            person_approved = applied_person_promote(&d);
        }
        // An analysis step is left only when its run was Successful or a person promoted.
        let (from, to) = (
            before.current_step_index.unwrap_or(0),
            d.status.current_step_index.unwrap_or(0),
        );
        if before.canary_revision.is_some()
            && before.canary_revision == d.status.canary_revision
            && d.status.retries == before.retries
            && to > from
        {
            for k in from..to.min(n) {
                if matches!(
                    sc.steps[usize::try_from(k).unwrap()],
                    CanaryStep::Analysis(_)
                ) {
                    let ok_run = observed.step_analysis.as_ref().is_some_and(|a| {
                        Some(&a.name) == before.current_analysis_run.as_ref()
                            && (a.phase == AnalysisPhase::Successful
                                || before.accepted_analysis_runs.contains(&a.name))
                    });
                    prop_assert!(
                        ok_run || applied_person_promote(&d),
                        "left analysis step {} without a Successful run or a person",
                        k
                    );
                }
            }
        }
        // A new revision becomes stable only through the gates or a person.
        if has(&d, EventAction::Promoted) {
            prop_assert!(!promoted, "promoted twice");
            promoted = true;
            let started_now = d
                .events
                .iter()
                .find(|e| e.action == EventAction::RolloutStarted)
                .and_then(|e| e.revision.clone());
            prop_assert_eq!(
                d.status.stable_revision.clone(),
                started_now.or(before.canary_revision.clone())
            );
            let every_step_done = before.current_step_index == Some(n) || to == n;
            prop_assert!(every_step_done || person_approved || before.promote_full);
            if let Some(bg) = &before.background_analysis_run {
                let ok = observed
                    .background_analysis
                    .as_ref()
                    .is_some_and(|a| &a.name == bg && a.phase == AnalysisPhase::Successful)
                    || before.accepted_analysis_runs.contains(bg);
                prop_assert!(ok || person_approved || before.promote_full);
            }
        }
        if d.status.stable_revision != before.stable_revision {
            prop_assert!(has(&d, EventAction::Promoted));
        }
        // Steps start in order within an attempt: no step repeated, none skipped.
        for e in d
            .events
            .iter()
            .filter(|e| e.action == EventAction::StepStarted)
        {
            let k = e.step_index.unwrap();
            let expected = started.last().map_or(0, |s| s + 1);
            prop_assert!(
                k == expected || (k == 0 && has(&d, EventAction::ManualRetry)),
                "step {} started after {:?}",
                k,
                started
            );
            if k == 0 {
                started.clear();
            }
            started.push(k);
        }

        // Restart right after the write: the written status and the same observations give
        // the same status back and nothing new to record.
        r.status = Some(d.status.clone());
        let again = decide(&r, &observed, support::t(now));
        prop_assert_eq!(&again.status, &d.status);
        prop_assert!(
            again.events.is_empty(),
            "restart repeated {:?}",
            again.events
        );
        last = Some(d);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rollout_invariants_hold_through_a_simulated_loop(sc in scenario()) {
        run_scenario(&sc)?;
    }

    #[test]
    fn blue_green_invariants_hold_through_a_simulated_loop(sc in blue_green_scenario()) {
        run_scenario(&sc)?;
    }
}
