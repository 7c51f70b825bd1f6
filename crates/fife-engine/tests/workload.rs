//! `workloadRef`: the template comes from the referenced Deployment, a missing one is
//! reported by name, and `scaleDown` hands its pods over without a moment short of pods.

mod support;

use fife_api::RolloutPhase;
use fife_api::rollout::{WorkloadRef, WorkloadScaleDown};
use fife_engine::pod_template_hash;
use fife_engine::rollout::{EventAction, Observed, ObservedWorkload, WORKLOAD_CONDITION, decide};
use support::*;

fn referencing(scale_down: WorkloadScaleDown, replicas: i32) -> fife_api::Rollout {
    let mut r = mk_rollout("unused", replicas, vec![set_weight(50), pause(Some(10))]);
    r.metadata.namespace = Some("shop".into());
    r.spec.template = None;
    r.spec.workload_ref = Some(WorkloadRef {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: "web".into(),
        scale_down,
    });
    r
}

fn workload(image: &str, replicas: i32) -> ObservedWorkload {
    ObservedWorkload {
        template: mk_template(image),
        selector: None,
        replicas,
    }
}

fn with_workload(observed: &Observed, workload: ObservedWorkload) -> Observed {
    Observed {
        workload: Some(workload),
        ..observed.clone()
    }
}

/// Observed with the stable child at `ready` of its desired pods.
fn stable_ready(d: &fife_engine::Decision, ready: i32, w: &ObservedWorkload) -> Observed {
    let mut observed = with_workload(&observe_applied(d, None, None), w.clone());
    if let Some(stable) = observed.stable.as_mut() {
        stable.ready_replicas = ready;
    }
    observed
}

#[test]
fn a_missing_deployment_is_reported_by_name_and_looked_for_again() {
    let mut r = referencing(WorkloadScaleDown::Progressively, 3);
    let d = step(&mut r, &Observed::default(), t(0));
    let message = d.status.message.clone().unwrap();
    assert!(message.contains("Deployment shop/web"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    let condition = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == WORKLOAD_CONDITION)
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "DeploymentNotFound")
    );
    assert_eq!(d.children.stable, None, "nothing runs without a template");
    assert_eq!(d.workload_replicas, None);
    assert!(d.requeue_after.is_some(), "a new Deployment wakes nothing");

    // The Deployment appears: its template is the Rollout's first revision.
    let w = workload("web:1", 3);
    let d = step(
        &mut r,
        &with_workload(&Observed::default(), w.clone()),
        t(5),
    );
    let revision = pod_template_hash(&w.template);
    assert_eq!(d.children.stable.as_ref().unwrap().revision, revision);
    assert_eq!(d.children.stable.as_ref().unwrap().replicas, 3);
    assert_eq!(
        d.events.iter().map(|e| e.action).collect::<Vec<_>>(),
        [EventAction::Healthy]
    );
    let condition = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == WORKLOAD_CONDITION)
        .unwrap();
    assert_eq!(condition.status, "True");
}

#[test]
fn progressively_gives_up_one_deployment_pod_per_ready_stable_pod_and_never_takes_one_back() {
    let mut r = referencing(WorkloadScaleDown::Progressively, 4);
    let w = workload("web:1", 4);
    let d = step(
        &mut r,
        &with_workload(&Observed::default(), w.clone()),
        t(0),
    );
    assert_eq!(
        d.workload_replicas,
        Some(4),
        "no stable pod is ready: the Deployment keeps all of its pods"
    );
    let d = step(&mut r, &stable_ready(&d, 1, &w), t(1));
    assert_eq!(d.workload_replicas, Some(3));
    let w = workload("web:1", 3);
    let d = step(&mut r, &stable_ready(&d, 3, &w), t(2));
    assert_eq!(d.workload_replicas, Some(1));
    let w = workload("web:1", 1);
    let d = step(&mut r, &stable_ready(&d, 4, &w), t(3));
    assert_eq!(d.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(d.workload_replicas, Some(0));
    // A stable pod that stops being ready does not scale the Deployment up again.
    let w = workload("web:1", 0);
    let d = step(&mut r, &stable_ready(&d, 2, &w), t(4));
    assert_eq!(d.workload_replicas, Some(0));
}

#[test]
fn onsuccess_waits_for_healthy_and_never_leaves_the_deployment_alone() {
    let mut r = referencing(WorkloadScaleDown::OnSuccess, 2);
    let w = workload("web:1", 2);
    let d = step(
        &mut r,
        &with_workload(&Observed::default(), w.clone()),
        t(0),
    );
    assert_eq!(d.workload_replicas, None, "not Healthy yet");
    let d = step(&mut r, &stable_ready(&d, 1, &w), t(1));
    assert_eq!(d.workload_replicas, None, "one of two stable pods ready");
    let d = step(&mut r, &stable_ready(&d, 2, &w), t(2));
    assert_eq!(d.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(d.workload_replicas, Some(0));

    let mut r = referencing(WorkloadScaleDown::Never, 2);
    let d = step(
        &mut r,
        &with_workload(&Observed::default(), w.clone()),
        t(0),
    );
    let d = step(&mut r, &stable_ready(&d, 2, &w), t(1));
    assert_eq!(d.status.phase, Some(RolloutPhase::Healthy));
    assert_eq!(d.workload_replicas, None);
}

#[test]
fn a_new_template_in_the_deployment_starts_a_rollout() {
    let mut r = referencing(WorkloadScaleDown::Progressively, 4);
    let w1 = workload("web:1", 4);
    let d = step(
        &mut r,
        &with_workload(&Observed::default(), w1.clone()),
        t(0),
    );
    let d = step(&mut r, &stable_ready(&d, 4, &w1), t(1));
    assert_eq!(d.status.phase, Some(RolloutPhase::Healthy));

    let w2 = workload("web:2", 0);
    let observed = stable_ready(&d, 4, &w2);
    let d = step(&mut r, &observed, t(2));
    assert_eq!(
        d.status.canary_revision.as_deref(),
        Some(pod_template_hash(&w2.template).as_str())
    );
    assert_eq!(d.weights.canary, 50);
    assert_eq!(
        d.workload_replicas,
        Some(0),
        "a Deployment already scaled down stays down"
    );
    // The same inputs decide the same again: restart safety.
    let again = decide(&r, &observed, t(2));
    assert_eq!(again.workload_replicas, d.workload_replicas);
    assert_eq!(again.children, d.children);
}
