//! The gate step end to end on plain values: a policy with tiers, a freeze and break-glass
//! rules against one change, and the invariants that must hold for any schedule.

use std::collections::BTreeMap;

use fife_api::Duration;
use fife_api::release::{
    Approval, ApprovalRule, ApprovalSpec, BreakGlass, BreakGlassApproval, BreakGlassRules,
    BreakGlassSpec, FreezeEffect, ImageVerification, ReleaseGate, ReleasePolicy, ReleasePolicySpec,
    Schedule, ScheduleKind, Tier, TierGates, TierMatch,
};
use fife_api::rollout::TemplateRef;
use fife_policy::schedule::{Calendar, Window, calendar};
use fife_policy::{Change, GateInput, ImageVerdict, Outcome, Progress, Stage, evaluate};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;

const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn change() -> Change {
    Change {
        namespace: "shop".into(),
        rollout: "checkout".into(),
        rollout_uid: "uid-1".into(),
        revision: "rev2".into(),
        rollout_labels: [("tier".to_owned(), "critical".to_owned())].into(),
        images: [("app".to_owned(), format!("reg/app@{D}"))].into(),
        author: Some("alice".into()),
        applied_by: Some("ci-bot".into()),
        ..Change::default()
    }
}

fn policy() -> ReleasePolicy {
    ReleasePolicy::new(
        "prod",
        ReleasePolicySpec {
            namespaces: vec!["shop".into()],
            require_digest: true,
            tiers: vec![
                Tier {
                    name: "critical".into(),
                    matches: TierMatch {
                        rollout_labels: [("tier".to_owned(), "critical".to_owned())].into(),
                        ..TierMatch::default()
                    },
                    gates: TierGates {
                        approvals: vec![ApprovalRule {
                            groups: vec!["sre".into()],
                            count: 2,
                        }],
                        minimum_bake: Some(Duration::from_secs(3600)),
                        required_analyses: vec![TemplateRef {
                            template_name: "slo".into(),
                            cluster_scope: false,
                        }],
                    },
                },
                Tier {
                    name: "standard".into(),
                    ..Tier::default()
                },
            ],
            schedules: vec![Schedule {
                name: "weekend".into(),
                kind: ScheduleKind::Deny,
                cron: "0 18 * * 5".into(),
                time_zone: "Europe/Berlin".into(),
                duration: Duration::from_secs(63 * 3600),
                effect: FreezeEffect::HoldAtStep,
                ..Schedule::default()
            }],
            break_glass: BreakGlassRules {
                require_second_approval: true,
                max_duration: Duration::from_secs(4 * 3600),
            },
            ..ReleasePolicySpec::default()
        },
    )
}

fn approval(name: &str, approver: &str) -> Approval {
    Approval::new(
        name,
        ApprovalSpec {
            rollout: "checkout".into(),
            rollout_uid: "uid-1".into(),
            revision: "rev2".into(),
            digests: vec![D.into()],
            approver: approver.into(),
            groups: vec!["sre".into()],
            reason: None,
            author: None,
            applied_by: None,
        },
    )
}

struct World {
    policies: Vec<ReleasePolicy>,
    approvals: Vec<Approval>,
    break_glasses: Vec<BreakGlass>,
    images: BTreeMap<String, ImageVerdict>,
    progress: Progress,
}

impl World {
    fn new() -> World {
        World {
            policies: vec![policy()],
            approvals: vec![],
            break_glasses: vec![],
            images: BTreeMap::new(),
            progress: Progress::default(),
        }
    }

    fn report(&self, change: &Change, now: Timestamp) -> fife_policy::GateReport {
        evaluate(
            &GateInput {
                change,
                policies: &self.policies,
                approvals: &self.approvals,
                break_glasses: &self.break_glasses,
                images: &self.images,
                progress: &self.progress,
            },
            now,
        )
    }
}

/// A Wednesday, outside the weekend freeze.
const WEDNESDAY: &str = "2026-12-02T10:00:00Z";
/// A Saturday, inside it.
const SATURDAY: &str = "2026-12-05T10:00:00Z";

#[test]
fn a_critical_change_waits_for_two_approvals_from_people_other_than_its_author() {
    let mut world = World::new();
    let c = change();
    let report = world.report(&c, at(WEDNESDAY));
    assert_eq!(report.policies, vec!["prod".to_owned()]);
    assert_eq!(report.tier().as_deref(), Some("critical"));
    let held = report.holding(Stage::Start).unwrap();
    assert_eq!(held.gate, ReleaseGate::Approval);

    world.approvals = vec![approval("a1", "alice"), approval("a2", "bob")];
    let report = world.report(&c, at(WEDNESDAY));
    let Outcome::Blocked { reason, .. } = &report.holding(Stage::Start).unwrap().outcome else {
        panic!()
    };
    assert!(reason.contains("(bob)"), "{reason}");
    assert!(
        reason.contains("a1 by alice is by the change's author"),
        "{reason}"
    );

    world.approvals.push(approval("a3", "carol"));
    let report = world.report(&c, at(WEDNESDAY));
    assert_eq!(report.holding(Stage::Start), None);
    assert!(report.duties.ok);
    assert_eq!(
        report.duties.approvers,
        vec!["bob".to_owned(), "carol".to_owned()]
    );
}

#[test]
fn promotion_waits_for_the_bake_and_the_required_analysis() {
    let mut world = World::new();
    world.approvals = vec![approval("a2", "bob"), approval("a3", "carol")];
    world.progress.canary_started_at = Some(at(WEDNESDAY));
    let c = change();
    let later = at("2026-12-02T10:30:00Z");
    let held = world.report(&c, later);
    let held = held.holding(Stage::Promotion).unwrap();
    assert_eq!(held.gate, ReleaseGate::Bake);
    assert!(
        matches!(held.outcome, Outcome::Blocked { opens_at: Some(t), .. } if t == at("2026-12-02T11:00:00Z"))
    );

    let done = at("2026-12-02T11:00:00Z");
    assert_eq!(
        world
            .report(&c, done)
            .holding(Stage::Promotion)
            .unwrap()
            .gate,
        ReleaseGate::Analysis
    );
    world.progress.passed_analyses = vec![TemplateRef {
        template_name: "slo".into(),
        cluster_scope: false,
    }];
    assert_eq!(world.report(&c, done).holding(Stage::Promotion), None);
}

#[test]
fn a_freeze_holds_at_every_stage_and_says_when_it_opens() {
    let mut world = World::new();
    world.approvals = vec![approval("a2", "bob"), approval("a3", "carol")];
    let report = world.report(&change(), at(SATURDAY));
    let held = report.holding(Stage::Always).unwrap();
    assert_eq!(held.gate, ReleaseGate::Freeze);
    let Outcome::Blocked { reason, opens_at } = &held.outcome else {
        panic!()
    };
    // Monday 09:00 in Berlin.
    assert_eq!(*opens_at, Some(at("2026-12-07T08:00:00Z")));
    assert!(reason.contains("freeze weekend is in force"), "{reason}");
    assert!(report.holding(Stage::Start).is_some());
    assert!(report.holding(Stage::Promotion).is_some());
}

#[test]
fn a_break_glass_lets_exactly_its_digest_through_once_a_second_person_approves() {
    let mut world = World::new();
    let mut bg = BreakGlass::new(
        "hotfix",
        BreakGlassSpec {
            rollout: "checkout".into(),
            digests: vec![D.into()],
            reason: "checkout down".into(),
            incident: "INC-7".into(),
            expires_at: Time(at("2026-12-05T12:00:00Z")),
            requested_by: "erin".into(),
            second_approval: None,
            review: None,
        },
    );
    bg.metadata.creation_timestamp = Some(Time(at("2026-12-05T09:00:00Z")));
    world.break_glasses = vec![bg.clone()];
    let c = change();
    let report = world.report(&c, at(SATURDAY));
    let Outcome::Blocked { reason, .. } = &report.holding(Stage::Start).unwrap().outcome else {
        panic!()
    };
    assert!(reason.contains("waits for a second person"), "{reason}");

    bg.spec.second_approval = Some(BreakGlassApproval {
        approved_by: "frank".into(),
        approved_at: Time(at(SATURDAY)),
    });
    world.break_glasses = vec![bg];
    let report = world.report(&c, at(SATURDAY));
    assert_eq!(report.holding(Stage::Start), None, "{report:?}");
    assert_eq!(report.break_glass(), Some(("hotfix", "erin")));
    let bypassed: Vec<ReleaseGate> = report
        .verdicts
        .iter()
        .filter(|v| matches!(v.outcome, Outcome::Bypassed { .. }))
        .map(|v| v.gate)
        .collect();
    assert_eq!(bypassed, vec![ReleaseGate::Freeze, ReleaseGate::Approval]);

    let mut other = change();
    other.images.insert(
        "app".into(),
        "reg/app@sha256:2222222222222222222222222222222222222222222222222222222222222222".into(),
    );
    let report = world.report(&other, at(SATURDAY));
    assert_eq!(
        report.holding(Stage::Start).map(|v| v.gate),
        Some(ReleaseGate::Freeze),
        "another digest is held"
    );
}

#[test]
fn tags_and_unverified_images_never_start() {
    let mut world = World::new();
    world.policies[0].spec.verify_images = Some(ImageVerification {
        keys_secret: "release-keys".into(),
        ..Default::default()
    });
    world.approvals = vec![approval("a2", "bob"), approval("a3", "carol")];
    let mut c = change();
    let image = format!("reg/app@{D}");
    let report = world.report(&c, at(WEDNESDAY));
    let held = report.holding(Stage::Start).unwrap();
    assert_eq!(held.gate, ReleaseGate::Signature);
    assert!(
        matches!(&held.outcome, Outcome::Blocked { reason, .. } if reason.contains("waiting for the signatures"))
    );

    world.images.insert(
        image.clone(),
        ImageVerdict::Refused {
            reason: "no signature verifies against key release-keys/cosign.pub".into(),
        },
    );
    let report = world.report(&c, at(WEDNESDAY));
    assert!(
        matches!(&report.holding(Stage::Start).unwrap().outcome, Outcome::Blocked { reason, .. } if reason.contains("release-keys/cosign.pub"))
    );

    world.images.insert(image, ImageVerdict::Verified);
    assert_eq!(world.report(&c, at(WEDNESDAY)).holding(Stage::Start), None);

    c.images.insert("debug".into(), "busybox:1.36".into());
    let report = world.report(&c, at(WEDNESDAY));
    assert_eq!(
        report.holding(Stage::Start).unwrap().gate,
        ReleaseGate::Digest
    );
}

#[test]
fn an_unreadable_schedule_holds_everything() {
    let mut world = World::new();
    world.policies[0].spec.schedules[0].time_zone = "Europe/Atlantis".into();
    let report = world.report(&change(), at(WEDNESDAY));
    let held = report.holding(Stage::Promotion).unwrap();
    assert_eq!(held.gate, ReleaseGate::Freeze);
    assert!(
        matches!(&held.outcome, Outcome::Blocked { reason, .. } if reason.contains("Europe/Atlantis"))
    );
}

#[test]
fn a_rollout_no_policy_selects_has_no_gates() {
    let world = World::new();
    let mut c = change();
    c.namespace = "sandbox".into();
    let report = world.report(&c, at(SATURDAY));
    assert!(report.policies.is_empty());
    assert!(report.verdicts.is_empty());
}

fn schedule(
    kind: ScheduleKind,
    minute: u32,
    hour: u32,
    days: &str,
    zone: &str,
    minutes: u64,
) -> Window {
    Window::parse(&Schedule {
        name: format!("{kind:?}-{minute}-{hour}"),
        kind,
        cron: format!("{minute} {hour} * * {days}"),
        time_zone: zone.to_owned(),
        duration: Duration::from_secs(minutes * 60),
        ..Schedule::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// For any freezes and windows in two zones with DST: deny wins (inside a deny window
    /// the calendar is closed), and the announced opening is open, with no earlier minute
    /// of the same hour open.
    #[test]
    fn opens_at_is_open_and_deny_wins(
        deny in (0u32..60, 0u32..24, prop::sample::select(vec!["*", "1-5", "0,6", "5"]), 1u64..3000),
        allow in prop::option::of((0u32..60, 0u32..24, prop::sample::select(vec!["*", "1-5"]), 30u64..1000)),
        zone in prop::sample::select(vec!["Europe/Berlin", "America/New_York"]),
        minutes in 0i64..(400 * 24 * 60),
    ) {
        let now = at("2026-01-01T00:00:00Z") + jiff::SignedDuration::from_mins(minutes);
        let mut windows = vec![schedule(ScheduleKind::Deny, deny.0, deny.1, deny.2, zone, deny.3)];
        if let Some((m, h, d, len)) = allow {
            windows.push(schedule(ScheduleKind::Allow, m, h, d, zone, len));
        }
        if windows[0].open_until(now).is_some() {
            let closed = matches!(calendar(&windows, now), Calendar::Closed { kind: ScheduleKind::Deny, .. });
            prop_assert!(closed);
        }
        if let Calendar::Closed { opens_at: Some(t), .. } = calendar(&windows, now) {
            prop_assert!(t > now);
            prop_assert_eq!(calendar(&windows, t), Calendar::Open);
            let just_before = t - jiff::SignedDuration::from_secs(1);
            let was_closed = matches!(calendar(&windows, just_before), Calendar::Closed { .. });
            prop_assert!(was_closed);
        }
    }
}
