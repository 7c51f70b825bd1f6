//! `workloadRef`: the pod template a Rollout takes from the Deployment it references, and
//! how far that Deployment is scaled down as the Rollout's own pods take over.
//!
//! ```text
//!   Deployment (observed) ──template, selector──▶ resolve_template ──▶ the Rollout decide() runs
//!   status + stable pods ready ──scaleDown──────▶ workload_replicas ──▶ Deployment replicas
//! ```
//!
//! The Rollout's stable pods always come up before the Deployment loses one, so the
//! handover never leaves the workload without ready pods.

use fife_api::rollout::WorkloadScaleDown;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::*;

/// The condition that says whether the Deployment `spec.workloadRef` names was found.
pub const WORKLOAD_CONDITION: &str = "WorkloadReferenced";

/// How soon a Rollout whose referenced Deployment is missing looks for it again: a
/// Deployment the Rollout has not adopted yet does not wake it when it is created.
pub const MISSING_WORKLOAD_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// The Deployment `spec.workloadRef` names, as the controller observed it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedWorkload {
    /// Its pod template: the Rollout's template, whose hash is the revision.
    pub template: PodTemplateSpec,
    /// Its selector, the Rollout's when `spec.selector` is unset.
    pub selector: Option<LabelSelector>,
    /// Its `spec.replicas`: the pods it still runs of its own.
    pub replicas: i32,
}

/// With `workloadRef`, the pod template (and, unless the Rollout sets one, the selector)
/// of the referenced Deployment, or no template when the Deployment is missing.
pub(super) fn resolve_template(rollout: &mut Rollout, observed: &Observed) {
    if rollout.spec.workload_ref.is_none() {
        return;
    }
    match &observed.workload {
        Some(workload) => {
            rollout.spec.template = Some(workload.template.clone());
            if rollout.spec.selector.is_none() {
                rollout.spec.selector = workload.selector.clone();
            }
        }
        None => rollout.spec.template = None,
    }
}

/// The replicas the referenced Deployment should have after this decision, per
/// `scaleDown`; `None` leaves it alone. A function of the decided status and the observed
/// pods only, so a restart decides the same.
///
/// - `never`: always `None`.
/// - `onsuccess`: 0 once the Rollout is Healthy.
/// - `progressively`: lowered by every ready stable pod of the Rollout, never raised (a
///   Deployment scaled down stays so), and 0 once the Rollout is Healthy.
pub fn workload_replicas(
    spec: &RolloutSpec,
    observed: &Observed,
    status: &RolloutStatus,
) -> Option<i32> {
    let mode = spec.workload_ref.as_ref()?.scale_down;
    let workload = observed.workload.as_ref()?;
    let healthy = status.phase == Some(RolloutPhase::Healthy);
    match mode {
        WorkloadScaleDown::Never => None,
        WorkloadScaleDown::OnSuccess => healthy.then_some(0),
        WorkloadScaleDown::Progressively if healthy => Some(0),
        WorkloadScaleDown::Progressively => {
            let ready = observed
                .stable
                .as_ref()
                .filter(|s| Some(&s.revision) == status.stable_revision.as_ref())
                .map_or(0, |s| s.ready_replicas);
            let left = spec.replicas.saturating_sub(ready).max(0);
            Some(left.min(workload.replicas.max(0)))
        }
    }
}

impl<'a> Machine<'a> {
    /// The Deployment `spec.workloadRef` names is missing: say which, and look again soon.
    pub(super) fn workload_missing(&mut self, name: &str) {
        let namespace = self
            .rollout
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default();
        let message = format!(
            "spec.workloadRef names Deployment {namespace}/{name}, which does not exist: create it, or fix spec.workloadRef.name"
        );
        self.set_workload_condition("False", "DeploymentNotFound", &message);
        self.say(message);
        self.wakeups.push(MISSING_WORKLOAD_RETRY);
    }

    /// The referenced Deployment was found; its template is the Rollout's.
    pub(super) fn workload_found(&mut self) {
        if let Some(reference) = &self.spec.workload_ref {
            let message = format!("the pod template comes from Deployment {}", reference.name);
            self.set_workload_condition("True", "DeploymentFound", &message);
        }
    }

    fn set_workload_condition(&mut self, status: &str, reason: &str, message: &str) {
        let generation = self.status.observed_generation;
        let now = Time(self.now);
        let conditions = &mut self.status.conditions;
        match conditions
            .iter_mut()
            .find(|c| c.type_ == WORKLOAD_CONDITION)
        {
            // The transition time moves only with the status, so an unchanged status
            // writes nothing.
            Some(c) if c.status == status && c.message == message => {}
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now;
                }
                c.status = status.to_owned();
                c.reason = reason.to_owned();
                c.message = message.to_owned();
                c.observed_generation = generation;
            }
            None => conditions.push(Condition {
                type_: WORKLOAD_CONDITION.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                last_transition_time: now,
                observed_generation: generation,
            }),
        }
    }
}
