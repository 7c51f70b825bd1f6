//! The gate step: every policy that selects the change, each of its gates, one verdict per
//! gate (passed, blocked with a reason and when it may open, or bypassed by a break-glass).
//!
//! ```text
//!   policies ─select─▶ tier ─▶ digest · signature · freeze · approval   (stage Start)
//!                               freeze with HoldAtStep                   (stage Always)
//!                               bake · analysis                          (stage Promotion)
//!   break-glass ─▶ turns a blocked freeze or approval into Bypassed
//! ```
//!
//! Where the image verifier plugs in: the controller fills [`GateInput::images`] with one
//! [`ImageVerdict`] per image reference of the new template (the signature and provenance
//! checks against the registry and the policy's `verifyImages` keys run at the edge, out of
//! this crate); an image without a verdict is [`ImageVerdict::Pending`], so a change never
//! starts before its images are verified.

use std::collections::BTreeMap;

use fife_api::release::{Approval, BreakGlass};
use fife_api::release::{FreezeEffect, ReleaseGate, ReleasePolicy, ScheduleKind, Tier};
use fife_api::rollout::TemplateRef;
use jiff::{SignedDuration, Timestamp};

use crate::approvals::{self, Duties, Judged};
use crate::break_glass::{self, Usable};
use crate::change::{Change, selects, tier_of};
use crate::schedule::{Calendar, Window, calendar};

/// The verifier's answer for one image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageVerdict {
    Verified,
    /// Verification failed; `reason` is a sentence naming the image, the key, what failed
    /// and what to do (`fife_provenance::Refusal`).
    Refused {
        reason: String,
    },
    /// Not verified yet.
    Pending,
}

/// When a verdict matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Before the new revision's first canary pod.
    Start,
    /// Before the canary becomes stable.
    Promotion,
    /// At start, at every step and at promotion: a freeze that holds running rollouts.
    Always,
}

impl Stage {
    fn applies_at(self, at: Stage) -> bool {
        self == Stage::Always || self == at
    }
}

/// A gate's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Blocked {
        reason: String,
        /// When the gate opens by itself; `None` when a person must act.
        opens_at: Option<Timestamp>,
    },
    Bypassed {
        break_glass: String,
        requested_by: String,
    },
}

/// One gate of one policy, judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GateVerdict {
    pub policy: String,
    pub tier: Option<String>,
    pub gate: ReleaseGate,
    pub stage: Stage,
    pub outcome: Outcome,
}

/// How far the canary has come: what bake and analysis gates measure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// When the canary of this change started; `None` before it has.
    pub canary_started_at: Option<Timestamp>,
    /// Analysis templates whose runs ended Successful in this attempt.
    pub passed_analyses: Vec<TemplateRef>,
}

/// Everything the gate step reads.
#[derive(Clone, Copy, Debug)]
pub struct GateInput<'a> {
    pub change: &'a Change,
    /// Every ReleasePolicy in the cluster; those that select the change apply.
    pub policies: &'a [ReleasePolicy],
    /// Approvals in the Rollout's namespace.
    pub approvals: &'a [Approval],
    /// BreakGlasses in the Rollout's namespace.
    pub break_glasses: &'a [BreakGlass],
    /// The verifier's verdicts, by image reference.
    pub images: &'a BTreeMap<String, ImageVerdict>,
    pub progress: &'a Progress,
}

/// The gate step's answer for one change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateReport {
    /// Names of the policies that select the change, sorted.
    pub policies: Vec<String>,
    pub verdicts: Vec<GateVerdict>,
    /// Every Approval of this Rollout, judged.
    pub approvals: Vec<Judged>,
    /// Separation of duties for the approvals that counted.
    pub duties: Duties,
}

impl GateReport {
    /// The first verdict that holds the change at `stage`, in gate order.
    pub fn holding(&self, stage: Stage) -> Option<&GateVerdict> {
        self.verdicts
            .iter()
            .filter(|v| v.stage.applies_at(stage))
            .find(|v| matches!(v.outcome, Outcome::Blocked { .. }))
    }

    /// The verdicts that matter at `stage`.
    pub fn at(&self, stage: Stage) -> impl Iterator<Item = &GateVerdict> {
        self.verdicts
            .iter()
            .filter(move |v| v.stage.applies_at(stage))
    }

    /// The tier names of the change, one per policy with a matching tier, joined.
    pub fn tier(&self) -> Option<String> {
        let mut tiers: Vec<&str> = self
            .verdicts
            .iter()
            .filter_map(|v| v.tier.as_deref())
            .collect();
        tiers.dedup();
        (!tiers.is_empty()).then(|| tiers.join(","))
    }

    /// The break-glass that bypassed a gate, if one did.
    pub fn break_glass(&self) -> Option<(&str, &str)> {
        self.verdicts.iter().find_map(|v| match &v.outcome {
            Outcome::Bypassed {
                break_glass,
                requested_by,
            } => Some((break_glass.as_str(), requested_by.as_str())),
            _ => None,
        })
    }
}

/// Judge the change against every policy that selects it, at `now`.
pub fn evaluate(input: &GateInput<'_>, now: Timestamp) -> GateReport {
    let change = input.change;
    let mut governing: Vec<&ReleasePolicy> = input
        .policies
        .iter()
        .filter(|p| selects(p, change))
        .collect();
    governing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let judged = approvals::judge(change, input.approvals);
    let mut verdicts = Vec::new();
    let policies = governing
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    for policy in governing {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let tier = tier_of(&policy.spec.tiers, change);
        let mut verdict = |gate, stage, outcome| {
            verdicts.push(GateVerdict {
                policy: name.clone(),
                tier: tier.map(|t| t.name.clone()),
                gate,
                stage,
                outcome,
            })
        };
        if policy.spec.require_digest {
            verdict(ReleaseGate::Digest, Stage::Start, digest_gate(change));
        }
        if policy.spec.verify_images.is_some() {
            verdict(
                ReleaseGate::Signature,
                Stage::Start,
                signature_gate(change, input.images),
            );
        }
        let bypass =
            || break_glass::usable(&policy.spec.break_glass, change, input.break_glasses, now);
        if !policy.spec.schedules.is_empty() {
            let (stage, outcome) = freeze_gate(policy, change, now);
            verdict(ReleaseGate::Freeze, stage, with_bypass(outcome, bypass));
        }
        let Some(tier) = tier else { continue };
        if !tier.gates.approvals.is_empty() {
            let outcome = match approvals::check(&tier.gates.approvals, &judged) {
                Ok(()) => Outcome::Passed,
                Err(missing) => Outcome::Blocked {
                    reason: format!(
                        "tier {} {missing}: kubectl fife approve {}",
                        tier.name, change.rollout
                    ),
                    opens_at: None,
                },
            };
            verdict(
                ReleaseGate::Approval,
                Stage::Start,
                with_bypass(outcome, bypass),
            );
        }
        if let Some(bake) = tier.gates.minimum_bake {
            verdict(
                ReleaseGate::Bake,
                Stage::Promotion,
                bake_gate(tier, bake, input.progress, now),
            );
        }
        if !tier.gates.required_analyses.is_empty() {
            verdict(
                ReleaseGate::Analysis,
                Stage::Promotion,
                analysis_gate(tier, input.progress),
            );
        }
    }
    GateReport {
        policies,
        verdicts,
        duties: approvals::duties(change, &judged),
        approvals: judged,
    }
}

fn with_bypass(outcome: Outcome, bypass: impl FnOnce() -> Usable) -> Outcome {
    let Outcome::Blocked { reason, opens_at } = outcome else {
        return outcome;
    };
    match bypass() {
        Usable::Valid { name, requested_by } => Outcome::Bypassed {
            break_glass: name,
            requested_by,
        },
        Usable::None { reasons } if reasons.is_empty() => Outcome::Blocked { reason, opens_at },
        Usable::None { reasons } => Outcome::Blocked {
            reason: format!("{reason} ({})", reasons.join("; ")),
            opens_at,
        },
    }
}

fn digest_gate(change: &Change) -> Outcome {
    let unpinned = change.unpinned();
    if unpinned.is_empty() {
        return Outcome::Passed;
    }
    Outcome::Blocked {
        reason: format!(
            "images must be pinned by digest (image@sha256:...): {} is not; pin it in spec.template",
            unpinned.join(", ")
        ),
        opens_at: None,
    }
}

fn signature_gate(change: &Change, images: &BTreeMap<String, ImageVerdict>) -> Outcome {
    let mut pending = Vec::new();
    let mut refused = Vec::new();
    let mut seen: Vec<&String> = change.images.values().collect();
    seen.sort();
    seen.dedup();
    for image in seen {
        match images.get(image).unwrap_or(&ImageVerdict::Pending) {
            ImageVerdict::Verified => {}
            ImageVerdict::Pending => pending.push(image.clone()),
            ImageVerdict::Refused { reason } => refused.push(reason.clone()),
        }
    }
    if !refused.is_empty() {
        return Outcome::Blocked {
            // Each reason is a sentence naming the image, the key and what to do.
            reason: format!("image verification refused: {}", refused.join("; ")),
            opens_at: None,
        };
    }
    if !pending.is_empty() {
        return Outcome::Blocked {
            reason: format!(
                "waiting for the signatures of {} to be verified",
                pending.join(", ")
            ),
            opens_at: None,
        };
    }
    Outcome::Passed
}

fn freeze_gate(policy: &ReleasePolicy, change: &Change, now: Timestamp) -> (Stage, Outcome) {
    let mut windows = Vec::new();
    for schedule in &policy.spec.schedules {
        let scoped = (schedule.namespaces.is_empty()
            || schedule.namespaces.contains(&change.namespace))
            && schedule
                .rollout_labels
                .iter()
                .all(|(k, v)| change.rollout_labels.get(k) == Some(v));
        if !scoped {
            continue;
        }
        match Window::parse(schedule) {
            Ok(w) => windows.push(w),
            // A schedule that cannot be read holds everything: a broken freeze must not
            // let changes through.
            Err(e) => {
                return (
                    Stage::Always,
                    Outcome::Blocked {
                        reason: format!(
                            "ReleasePolicy {}: {e}",
                            policy.metadata.name.as_deref().unwrap_or_default()
                        ),
                        opens_at: None,
                    },
                );
            }
        }
    }
    match calendar(&windows, now) {
        Calendar::Open => (Stage::Start, Outcome::Passed),
        Calendar::Closed {
            schedule,
            kind,
            effect,
            opens_at,
        } => {
            let stage = match effect {
                FreezeEffect::HoldAtStep => Stage::Always,
                FreezeEffect::DoNotStart => Stage::Start,
            };
            let what = match kind {
                ScheduleKind::Deny => format!("freeze {schedule} is in force"),
                ScheduleKind::Allow => {
                    format!("outside deployment window {schedule}")
                }
            };
            let when = opens_at.map_or_else(
                || " and no opening is scheduled".to_owned(),
                |t| format!(", opens at {t}"),
            );
            (
                stage,
                Outcome::Blocked {
                    reason: format!("{what}{when}"),
                    opens_at,
                },
            )
        }
    }
}

fn bake_gate(
    tier: &Tier,
    bake: fife_api::Duration,
    progress: &Progress,
    now: Timestamp,
) -> Outcome {
    let Some(started) = progress.canary_started_at else {
        return Outcome::Blocked {
            reason: format!(
                "tier {} bakes for at least {bake}; the canary has not started",
                tier.name
            ),
            opens_at: None,
        };
    };
    let millis = i64::try_from(bake.as_millis()).unwrap_or(i64::MAX);
    let Ok(done) = started.checked_add(SignedDuration::from_millis(millis)) else {
        return Outcome::Passed;
    };
    if now >= done {
        Outcome::Passed
    } else {
        Outcome::Blocked {
            reason: format!("tier {} bakes for at least {bake}, until {done}", tier.name),
            opens_at: Some(done),
        }
    }
}

fn analysis_gate(tier: &Tier, progress: &Progress) -> Outcome {
    let missing: Vec<&str> = tier
        .gates
        .required_analyses
        .iter()
        .filter(|t| !progress.passed_analyses.contains(t))
        .map(|t| t.template_name.as_str())
        .collect();
    if missing.is_empty() {
        return Outcome::Passed;
    }
    Outcome::Blocked {
        reason: format!(
            "tier {} requires analyses {} to have ended Successful in this rollout: add an analysis step or background analysis using them",
            tier.name,
            missing.join(", ")
        ),
        opens_at: None,
    }
}
