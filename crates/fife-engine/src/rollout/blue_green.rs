//! Blue-green as the step machine runs it: the strategy becomes a fixed list of steps, the
//! active Service's revision is the "canary weight" (0: the old revision, 100: the new),
//! and the pods per role follow the blue-green rules instead of the weights.
//!
//! ```text
//!   prePromotionAnalysis?  pause (a person, or autoPromotionSeconds)?  switch  postPromotionAnalysis?  scaleDownDelay?  → promoted
//!   analysis               pause {} | pause {duration}                 setWeight: 100  analysis        pause {duration}
//! ```
//!
//! So every gate, abort, retry, manual action, audit record and restart rule of the canary
//! steps holds for blue-green unchanged. Before the switch the new revision runs
//! `previewReplicaCount` pods (all `replicas` when unset) behind the preview Service, beside
//! a fresh baseline of the active revision of the same size while a pre-promotion analysis
//! is set (the comparison metrics' other side); at the switch step it is scaled to all
//! `replicas`, and the active Service moves only once they are all ready.

use fife_api::Duration;
use fife_api::rollout::{
    BlueGreenStrategy, CanaryStrategy, DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS, PauseStep,
};

use super::*;

/// The canary steps a blue-green strategy runs as, in order.
pub fn blue_green_steps(strategy: &BlueGreenStrategy) -> Vec<CanaryStep> {
    let mut steps = Vec::new();
    if let Some(analysis) = &strategy.pre_promotion_analysis {
        steps.push(CanaryStep::Analysis(analysis.clone()));
    }
    if !strategy.auto_promotion_enabled {
        steps.push(CanaryStep::Pause(PauseStep::default()));
    } else if let Some(seconds) = strategy.auto_promotion_seconds.filter(|s| *s > 0) {
        steps.push(pause_of(seconds));
    }
    steps.push(CanaryStep::SetWeight(100));
    if let Some(analysis) = &strategy.post_promotion_analysis {
        steps.push(CanaryStep::Analysis(analysis.clone()));
    }
    if strategy.scale_down_delay_seconds > 0 {
        steps.push(pause_of(strategy.scale_down_delay_seconds));
    }
    steps
}

fn pause_of(seconds: i32) -> CanaryStep {
    CanaryStep::Pause(PauseStep {
        duration: Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0))),
    })
}

/// The canary strategy a blue-green Rollout runs as (see the module comment).
pub fn as_canary(strategy: &BlueGreenStrategy) -> CanaryStrategy {
    CanaryStrategy {
        steps: blue_green_steps(strategy),
        baseline: strategy.pre_promotion_analysis.is_some(),
        traffic_routing: None,
        analysis: None,
        abort_scale_down_delay_seconds: DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    }
}

/// The revision the active Service selects: the new one once the switch happened (its
/// weight is 100), the stable one otherwise.
pub fn active_revision<'s>(status: &'s RolloutStatus, weights: &TrafficWeights) -> Option<&'s str> {
    let switched = weights.canary == 100;
    match &status.canary_revision {
        Some(canary) if switched => Some(canary),
        _ => status.stable_revision.as_deref(),
    }
}

/// The revision the preview Service selects: the new one while there is one, else the
/// stable one (so the preview always reaches pods).
pub fn preview_revision(status: &RolloutStatus) -> Option<&str> {
    status
        .canary_revision
        .as_deref()
        .or(status.stable_revision.as_deref())
}

/// Which revision each Service of a blue-green Rollout selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSelection {
    pub service: String,
    pub revision: String,
}

/// The active and preview Services and the revisions they select after `decision`; empty
/// for a canary Rollout.
pub fn blue_green_services(spec: &RolloutSpec, decision: &Decision) -> Vec<ServiceSelection> {
    let Some(strategy) = &spec.strategy.blue_green else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(revision) = active_revision(&decision.status, &decision.weights) {
        out.push(ServiceSelection {
            service: strategy.active_service.clone(),
            revision: revision.to_owned(),
        });
    }
    if let (Some(service), Some(revision)) = (
        &strategy.preview_service,
        preview_revision(&decision.status),
    ) {
        out.push(ServiceSelection {
            service: service.clone(),
            revision: revision.to_owned(),
        });
    }
    out
}

impl<'a> Machine<'a> {
    /// Pods per role (stable, canary, baseline) for `weights`, by the strategy's rules.
    pub(super) fn replicas_of(&self, weights: TrafficWeights) -> (i32, i32, i32) {
        let Some(strategy) = &self.spec.strategy.blue_green else {
            return replicas_for(weights, self.spec.replicas, self.routed());
        };
        let replicas = self.spec.replicas.max(0);
        if weights.canary == 100 {
            return (replicas, replicas, 0);
        }
        let preview = strategy
            .preview_replica_count
            .map_or(replicas, |n| n.clamp(0, replicas));
        let baseline = if strategy.pre_promotion_analysis.is_some() {
            preview
        } else {
            0
        };
        (replicas, preview, baseline)
    }

    /// The switch waits for every pod of the new revision: until then the active Service
    /// stays on the old one, whatever the step asks.
    pub(super) fn switch_when_ready(&self, weights: TrafficWeights) -> TrafficWeights {
        if self.spec.strategy.blue_green.is_none() || weights.canary != 100 {
            return weights;
        }
        let full = self.spec.replicas.max(0);
        let ready = self.observed.canary.as_ref().is_some_and(|o| {
            Some(&o.revision) == self.status.canary_revision.as_ref()
                && o.up_to_date
                && o.ready_replicas >= full
                && o.updated_replicas >= full
        });
        if ready {
            weights
        } else {
            weights_for(0, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::rollout::RolloutAnalysis;

    fn analysis(name: &str) -> RolloutAnalysis {
        RolloutAnalysis {
            templates: vec![TemplateRef {
                template_name: name.into(),
                cluster_scope: false,
            }],
            args: vec![],
        }
    }

    #[test]
    fn the_strategy_becomes_its_gates_in_order() {
        let full = BlueGreenStrategy {
            active_service: "web".into(),
            auto_promotion_enabled: false,
            auto_promotion_seconds: Some(60),
            scale_down_delay_seconds: 30,
            pre_promotion_analysis: Some(analysis("pre")),
            post_promotion_analysis: Some(analysis("post")),
            ..BlueGreenStrategy::default()
        };
        let kinds: Vec<_> = blue_green_steps(&full)
            .iter()
            .map(CanaryStep::kind)
            .collect();
        assert_eq!(
            kinds,
            ["analysis", "pause", "setWeight", "analysis", "pause"]
        );
        assert_eq!(
            blue_green_steps(&full)[1],
            CanaryStep::Pause(PauseStep::default()),
            "without auto-promotion a person promotes; autoPromotionSeconds is ignored"
        );
        let bare = BlueGreenStrategy {
            active_service: "web".into(),
            auto_promotion_enabled: true,
            auto_promotion_seconds: Some(60),
            scale_down_delay_seconds: 0,
            ..BlueGreenStrategy::default()
        };
        assert_eq!(
            blue_green_steps(&bare),
            [pause_of(60), CanaryStep::SetWeight(100)]
        );
    }
}
