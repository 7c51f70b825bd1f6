//! A person's one-shot requests (`spec.manualAction`): promote, promote-full, abort and
//! retry. Each request is answered once, applied or ignored with the reason, and recorded.

use super::*;

impl<'a> Machine<'a> {
    pub(super) fn pending_request(&self) -> Option<&'a ManualActionRequest> {
        let request = self.spec.manual_action.as_ref()?;
        let handled = self
            .status
            .last_manual_action
            .as_ref()
            .map(|h| h.id.as_str());
        (handled != Some(request.id.as_str())).then_some(request)
    }

    pub(super) fn handled(
        &mut self,
        request: &ManualActionRequest,
        outcome: ManualActionOutcome,
        detail: &str,
    ) {
        // The action as the request wrote it, e.g. "PromoteFull ignored: …".
        let message = format!("{}{detail}", wire_name(&request.action));
        self.status.last_manual_action = Some(HandledManualAction {
            id: request.id.clone(),
            action: request.action,
            handled_at: Time(self.now),
            outcome,
        });
        let action = match request.action {
            ManualAction::Promote => EventAction::ManualPromote,
            ManualAction::PromoteFull => EventAction::ManualPromoteFull,
            ManualAction::Abort => EventAction::ManualAbort,
            ManualAction::Retry => EventAction::ManualRetry,
        };
        self.manual_event(action, message, request);
    }

    /// A request while no canary is in progress does nothing, but is still answered.
    pub(super) fn handle_stray_manual_action(&mut self) {
        if let Some(request) = self.pending_request() {
            self.handled(
                request,
                ManualActionOutcome::Ignored,
                " ignored: no rollout is in progress",
            );
        }
    }

    pub(super) fn handle_manual_action(&mut self) {
        let Some(request) = self.pending_request() else {
            return;
        };
        let index = self.index();
        let aborted = self.status.abort;
        match request.action {
            ManualAction::Abort if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    " ignored: the rollout is already aborted",
                );
            }
            ManualAction::Abort => {
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    " requested by a person",
                );
                let who = request
                    .requested_by
                    .clone()
                    .unwrap_or_else(|| "a person".to_owned());
                self.abort(format!("{who} aborted the rollout"));
            }
            ManualAction::Retry if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    ": the steps start again from the first",
                );
                self.clear_canary_state();
                self.status.retries = self.status.retries.saturating_add(1);
                self.status.current_step_index = Some(0);
                self.enter_step(0);
            }
            ManualAction::Retry => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    " ignored: the rollout is not aborted",
                );
            }
            ManualAction::PromoteFull if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    " ignored: the rollout is aborted; retry first",
                );
            }
            ManualAction::PromoteFull => {
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    ": the remaining steps are skipped",
                );
                self.status.promote_full = true;
            }
            ManualAction::Promote if aborted => {
                self.handled(
                    request,
                    ManualActionOutcome::Ignored,
                    " ignored: the rollout is aborted; retry first",
                );
            }
            ManualAction::Promote => {
                let at_pause = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.steps().get(i))
                    .is_some_and(|s| matches!(s, CanaryStep::Pause(_)));
                let inconclusive = self.has_pause(PauseReason::InconclusiveAnalysis);
                if !at_pause && !inconclusive {
                    let detail = format!(
                        " ignored: step {} is neither a pause nor an Inconclusive analysis",
                        index + 1
                    );
                    self.handled(request, ManualActionOutcome::Ignored, &detail);
                    return;
                }
                self.handled(
                    request,
                    ManualActionOutcome::Applied,
                    &format!(": step {} ends by a person's decision", index + 1),
                );
                self.person_promoted = true;
                if inconclusive {
                    self.accept_inconclusive_runs();
                    if index < self.step_count() && !at_pause {
                        // The accepted step analysis lets `step_through` advance.
                        return;
                    }
                    if index >= self.step_count() {
                        return;
                    }
                }
                self.advance();
            }
        }
    }
}
