//! The status fields that only summarise the rest, derived in one place.

use super::*;

/// Derives the status fields that only summarise the rest, for `kubectl get` columns and
/// the scale subresource: `replicas`, `readyReplicas`, `readyLabel`, `stepLabel` and
/// `selector`. Their one derivation: [`decide`] calls it, so every decision's status
/// carries them and nothing downstream computes them again.
pub fn summarize(status: &mut RolloutStatus, spec: &RolloutSpec, observed: &Observed) {
    let children = [&observed.stable, &observed.canary, &observed.baseline];
    let children = children.iter().filter_map(|c| c.as_ref());
    status.replicas = children.clone().map(|c| c.replicas).sum();
    status.ready_replicas = children.map(|c| c.ready_replicas).sum();
    status.ready_label = Some(fife_api::rollout::ready_label(
        status.ready_replicas,
        spec.replicas,
    ));
    // Once a revision is stable the label always shows a step (the first when none is
    // current); before that, only the step the status names.
    let index = match &status.stable_revision {
        Some(_) => Some(status.current_step_index.unwrap_or(0)),
        None => status.current_step_index,
    };
    status.step_label = index.map(|i| step_label(i, spec.steps().len()));
    status.selector = spec.selector.as_ref().map(selector_string);
}

/// `matchLabels` as a label-selector string, for the scale subresource.
fn selector_string(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
