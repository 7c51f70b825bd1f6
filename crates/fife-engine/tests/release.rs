//! The release gates inside `decide`: a held revision never starts, a freeze holds a
//! running canary at its step, promotion waits for its gates, and aborts and rollbacks
//! pass through every gate.

mod support;

use fife_api::release::{
    Approval, ApprovalRule, ApprovalSpec, FreezeEffect, GateOutcome, ReleaseGate, ReleasePolicy,
    ReleasePolicySpec, Schedule, ScheduleKind, Tier, TierGates,
};
use fife_api::{Duration, ManualAction, RolloutPhase};
use fife_engine::rollout::{EventAction, Observed, ObservedRelease, RELEASE_GATES_CONDITION};
use support::*;

const OLD: &str = "reg/web@sha256:0000000000000000000000000000000000000000000000000000000000000000";
const NEW: &str = "reg/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW_DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn policy(approvals: u32, bake_secs: Option<u64>, freeze: Option<FreezeEffect>) -> ReleasePolicy {
    ReleasePolicy::new(
        "prod",
        ReleasePolicySpec {
            require_digest: true,
            tiers: vec![Tier {
                name: "standard".into(),
                gates: TierGates {
                    approvals: (approvals > 0)
                        .then(|| ApprovalRule {
                            groups: vec![],
                            count: approvals,
                        })
                        .into_iter()
                        .collect(),
                    minimum_bake: bake_secs.map(Duration::from_secs),
                    required_analyses: vec![],
                },
                ..Tier::default()
            }],
            // Every day from 00:00 UTC for an hour: t(0) (22:13:20 UTC) is outside it,
            // t(6400) is midnight.
            schedules: freeze
                .map(|effect| Schedule {
                    name: "daily".into(),
                    kind: ScheduleKind::Deny,
                    cron: "0 0 * * *".into(),
                    time_zone: "UTC".into(),
                    duration: Duration::from_secs(3600),
                    effect,
                    ..Schedule::default()
                })
                .into_iter()
                .collect(),
            ..ReleasePolicySpec::default()
        },
    )
}

fn approval(who: &str, revision: &str) -> Approval {
    Approval::new(
        &format!("{who}-{revision}"),
        ApprovalSpec {
            rollout: "web".into(),
            rollout_uid: "uid-web".into(),
            revision: revision.into(),
            digests: vec![NEW_DIGEST.into()],
            approver: who.into(),
            groups: vec![],
            reason: None,
            author: None,
            applied_by: None,
        },
    )
}

/// A Rollout stable at OLD, then changed to NEW by `ci`, written by `alice`.
fn changed_rollout(steps: Vec<fife_api::CanaryStep>) -> (fife_api::Rollout, Observed) {
    let mut r = mk_rollout(OLD, 4, steps);
    r.metadata.uid = Some("uid-web".into());
    let d = step(&mut r, &Observed::default(), t(0));
    let observed = observe_applied(&d, None, None);
    r.spec.template = Some(mk_template(NEW));
    r.metadata.annotations = Some(
        [
            (
                fife_api::labels::SOURCE_AUTHOR.to_owned(),
                "alice".to_owned(),
            ),
            (fife_api::labels::APPLIED_BY.to_owned(), "ci".to_owned()),
        ]
        .into(),
    );
    (r, observed)
}

fn with_release(observed: &Observed, release: ObservedRelease) -> Observed {
    Observed {
        release: Some(release),
        ..observed.clone()
    }
}

#[test]
fn a_revision_waits_for_two_approvals_before_any_canary_pod_and_then_starts() {
    let (mut r, observed) = changed_rollout(vec![set_weight(20), pause(None)]);
    let mut release = ObservedRelease {
        policies: vec![policy(2, None, None)],
        approvals: vec![approval("alice", "x")],
        ..ObservedRelease::default()
    };
    let d = step(&mut r, &with_release(&observed, release.clone()), t(10));
    assert_eq!(d.children.canary, None, "no canary pod before approval");
    assert_eq!(d.status.canary_revision, None);
    assert_eq!(d.status.phase, Some(RolloutPhase::Paused));
    let held = d.status.release.as_ref().unwrap().holding.as_ref().unwrap();
    assert_eq!(held.gate, ReleaseGate::Approval);
    assert!(
        d.status
            .message
            .as_deref()
            .unwrap()
            .contains("Approval gate")
    );
    let condition = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == RELEASE_GATES_CONDITION)
        .unwrap();
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "ApprovalGateHolds")
    );
    assert!(
        d.requeue_after.is_some(),
        "a person's gate is looked at again"
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.action == EventAction::GateBlocked)
    );

    // The revision the CLI approves is the engine's own hash of the template.
    let revision = fife_engine::pod_template_hash(r.spec.template.as_ref().unwrap());
    release.approvals = vec![
        approval("alice", &revision),
        approval("bob", &revision),
        approval("ci", &revision),
    ];
    let d = step(&mut r, &with_release(&observed, release.clone()), t(20));
    assert_eq!(
        d.status.canary_revision, None,
        "author and applier do not count"
    );

    release.approvals.push(approval("carol", &revision));
    let d = step(&mut r, &with_release(&observed, release), t(30));
    assert_eq!(d.status.canary_revision.as_deref(), Some(revision.as_str()));
    assert!(d.children.canary.is_some());
    let passed = d
        .events
        .iter()
        .filter_map(|e| e.gate.as_ref())
        .find(|g| g.gate == ReleaseGate::Approval && g.outcome == GateOutcome::Passed)
        .unwrap();
    assert_eq!(
        passed.waited_millis,
        Some(20_000),
        "held from t(10) to t(30)"
    );
    assert!(d.status.release.as_ref().unwrap().holding.is_none());
    assert_eq!(
        d.status
            .release
            .as_ref()
            .unwrap()
            .canary_started_at
            .as_ref()
            .map(|t| t.0),
        Some(t(30))
    );
}

#[test]
fn a_freeze_holds_a_running_canary_at_its_step_and_an_abort_still_works() {
    // Start outside the freeze (t(0) is 22:13 UTC), enter it at 00:00.
    let (mut r, observed) = changed_rollout(vec![set_weight(20), pause(Some(60)), set_weight(50)]);
    let release = ObservedRelease {
        policies: vec![policy(0, None, Some(FreezeEffect::HoldAtStep))],
        ..ObservedRelease::default()
    };
    let d = step(&mut r, &with_release(&observed, release.clone()), t(10));
    assert!(d.status.canary_revision.is_some());
    let observed = with_release(&observe_applied(&d, None, None), release.clone());
    let midnight = t(6400);
    let d = step(&mut r, &observed, midnight);
    let index = d.status.current_step_index;
    let held = d.status.release.as_ref().unwrap().holding.clone().unwrap();
    assert_eq!(held.gate, ReleaseGate::Freeze);
    assert!(held.opens_at.is_some());
    assert_eq!(d.weights.canary, 20, "holds where it is");
    let d = step(
        &mut r,
        &observed,
        midnight + jiff::SignedDuration::from_secs(600),
    );
    assert_eq!(
        d.status.current_step_index, index,
        "the bake window ended, but the freeze holds"
    );

    r.spec.manual_action = Some(request(ManualAction::Abort, "abort-1"));
    let d = step(
        &mut r,
        &observed,
        midnight + jiff::SignedDuration::from_secs(700),
    );
    assert!(d.status.abort, "aborts are never blocked");
    assert_eq!(d.weights.canary, 0);
}

#[test]
fn a_do_not_start_freeze_keeps_new_revisions_out_and_a_rollback_passes() {
    let (mut r, observed) = changed_rollout(vec![set_weight(20), pause(None)]);
    let release = ObservedRelease {
        policies: vec![policy(0, None, Some(FreezeEffect::DoNotStart))],
        ..ObservedRelease::default()
    };
    let at_midnight = t(6460);
    let d = step(
        &mut r,
        &with_release(&observed, release.clone()),
        at_midnight,
    );
    assert_eq!(d.status.canary_revision, None);
    let opens = d
        .status
        .release
        .as_ref()
        .unwrap()
        .holding
        .as_ref()
        .unwrap()
        .opens_at
        .clone();
    assert_eq!(opens.map(|t| t.0), Some(t(10_000)), "01:00 UTC");
    assert_eq!(d.requeue_after.map(|d| d.as_secs()), Some(10_000 - 6460));

    r.spec.template = Some(mk_template(OLD));
    let d = step(&mut r, &with_release(&observed, release), at_midnight);
    assert!(d.status.release.as_ref().unwrap().holding.is_none());
    assert_eq!(d.status.phase, Some(RolloutPhase::Healthy));
}

#[test]
fn promotion_waits_for_the_minimum_bake() {
    let (mut r, observed) = changed_rollout(vec![set_weight(50)]);
    let release = ObservedRelease {
        policies: vec![policy(0, Some(600), None)],
        ..ObservedRelease::default()
    };
    let d = step(&mut r, &with_release(&observed, release.clone()), t(10));
    let observed = with_release(&observe_applied(&d, None, None), release);
    let d = step(&mut r, &observed, t(20));
    assert!(
        d.status.canary_revision.is_some(),
        "all steps done, but still baking"
    );
    assert_eq!(
        d.status
            .release
            .as_ref()
            .unwrap()
            .holding
            .as_ref()
            .unwrap()
            .gate,
        ReleaseGate::Bake
    );
    assert_eq!(d.requeue_after.map(|d| d.as_secs()), Some(590));
    let d = step(&mut r, &observed, t(610));
    assert_eq!(d.status.canary_revision, None);
    assert!(d.events.iter().any(|e| e.action == EventAction::Promoted));
}

#[test]
fn without_any_policy_nothing_changes() {
    let (mut r, observed) = changed_rollout(vec![set_weight(20)]);
    let d = step(
        &mut r,
        &with_release(&observed, ObservedRelease::default()),
        t(10),
    );
    assert!(d.status.canary_revision.is_some());
    assert_eq!(d.status.release, None);
    assert_eq!(d.release, None);
}
