//! The release policy at the pipeline's edges: observe reads the ReleasePolicies, Approvals
//! and BreakGlasses the engine's gate step judges; record turns gate outcomes and
//! promotions into audit records (`GatePassed`/`GateBlocked`/`GateBypassed`, and the
//! `Deployed` record auditors ask for); report counts them in the gate metrics.
//!
//! Image verification plugs in here: [`image_verdicts`] fills `ObservedRelease::images`
//! with one verdict per image reference before `decide`; an image without one holds the
//! change at its Signature gate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fife_api::labels::{
    APPLIED_BY, SOURCE_AUTHOR, SOURCE_COMMIT, SOURCE_COMMIT_TIME, SOURCE_PULL_REQUEST,
    SOURCE_TICKET,
};
use fife_api::release::GateOutcome;
use fife_api::wire::wire_name;
use fife_api::{Approval, BreakGlass, ReleasePolicy, Rollout};
use fife_audit::{
    ApprovalEvidence, AuditAction, AuditEntry, BreakGlassUse, CheckEvidence, DeployRecord,
    DutiesEvidence, GateEvidence,
};
use fife_engine::{Decision, GateEvent, ObservedRelease};
use fife_policy::Outcome;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::reconcile::signatures::image_verdicts;
use crate::runtime::context::Context;

/// Reads what the gate step needs, with the image verifier's verdicts on the new template.
/// `None` when no ReleasePolicy exists (or its CRD is not installed): the engine then
/// applies no gate.
pub async fn observe_release(
    ctx: &Context,
    rollout: &Rollout,
    namespace: &str,
    stable: Option<&Deployment>,
) -> Result<Option<ObservedRelease>, kube::Error> {
    let policies: Vec<ReleasePolicy> = match ctx.caches.release_policies() {
        Some(cached) => cached,
        None => list(Api::all(ctx.client.clone())).await?,
    };
    if policies.is_empty() {
        return Ok(None);
    }
    let approvals: Vec<Approval> = match ctx.caches.approvals(namespace) {
        Some(cached) => cached,
        None => list(Api::namespaced(ctx.client.clone(), namespace)).await?,
    };
    let break_glasses: Vec<BreakGlass> = match ctx.caches.break_glasses(namespace) {
        Some(cached) => cached,
        None => list(Api::namespaced(ctx.client.clone(), namespace)).await?,
    };
    let stable_images = stable
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .map(fife_policy::change::pod_images);
    let images = match rollout.spec.template.as_ref() {
        Some(template) => {
            let revision = fife_engine::pod_template_hash(template);
            let change = fife_policy::Change::of(rollout, &revision, stable_images.clone());
            image_verdicts(ctx, &change, &policies).await?
        }
        None => BTreeMap::new(),
    };
    Ok(Some(ObservedRelease {
        policies,
        approvals,
        break_glasses,
        images,
        stable_images,
    }))
}

/// Every object of a kind; none when the kind is not served.
async fn list<K>(api: Api<K>) -> Result<Vec<K>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The evidence of a gate event, as the record keeps it.
pub fn gate_evidence(gate: &GateEvent, observed: Option<&ObservedRelease>) -> GateEvidence {
    GateEvidence {
        gate: wire_name(&gate.gate),
        policy: gate.policy.clone(),
        tier: gate.tier.clone(),
        outcome: wire_name(&gate.outcome),
        waited_seconds: gate.waited_millis.map(|ms| ms as f64 / 1000.0),
        break_glass: gate
            .break_glass
            .as_ref()
            .map(|(name, by)| break_glass_use(name, by, observed)),
    }
}

fn break_glass_use(
    name: &str,
    requested_by: &str,
    observed: Option<&ObservedRelease>,
) -> BreakGlassUse {
    let object = observed.and_then(|o| {
        o.break_glasses
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some(name))
    });
    BreakGlassUse {
        name: name.to_owned(),
        requested_by: requested_by.to_owned(),
        second_approver: object
            .and_then(|b| b.spec.second_approval.as_ref())
            .map(|a| a.approved_by.clone()),
        incident: object.map(|b| b.spec.incident.clone()),
        reason: object.map(|b| b.spec.reason.clone()),
    }
}

/// The `Deployed` record of a promotion governed by a policy: which artifacts, from which
/// source, triggered by whom, approved by whom, with which checks and any break-glass.
pub fn deploy_entry(
    rollout: &Rollout,
    decision: &Decision,
    observed: Option<&ObservedRelease>,
    revision: &str,
    identity: &str,
    now: DateTime<Utc>,
) -> Option<AuditEntry> {
    let report = decision.release.as_ref()?;
    let annotations = rollout.annotations();
    let note = |key: &str| annotations.get(key).cloned();
    let approvals = report
        .approvals
        .iter()
        .filter(|j| j.refused.is_none())
        .map(|j| {
            let object = observed.and_then(|o| {
                o.approvals
                    .iter()
                    .find(|a| a.metadata.name.as_deref() == Some(j.name.as_str()))
            });
            ApprovalEvidence {
                approver: j.approver.clone(),
                groups: j.groups.clone(),
                approved_at: object
                    .and_then(|a| a.metadata.creation_timestamp.as_ref())
                    .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond())),
                how: format!(
                    "Approval {}/{} (kubectl fife approve, identity from the API server)",
                    rollout.namespace().unwrap_or_default(),
                    j.name
                ),
                reason: object.and_then(|a| a.spec.reason.clone()),
            }
        })
        .collect();
    let mut checks: Vec<CheckEvidence> = report
        .verdicts
        .iter()
        .filter_map(|v| {
            let verdict = match &v.outcome {
                Outcome::Passed => "Passed",
                Outcome::Bypassed { .. } => "Bypassed",
                Outcome::Blocked { .. } => return None,
            };
            Some(CheckEvidence {
                check: wire_name(&v.gate),
                subject: format!("ReleasePolicy {}", v.policy),
                verdict: verdict.to_owned(),
            })
        })
        .collect();
    let status = rollout.status.clone().unwrap_or_default();
    for run in [
        status.current_analysis_run.as_ref(),
        status.background_analysis_run.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        checks.push(CheckEvidence {
            check: "analysis".to_owned(),
            subject: run.clone(),
            verdict: if status.accepted_analysis_runs.contains(run) {
                "Inconclusive, accepted by a person".to_owned()
            } else {
                "Successful".to_owned()
            },
        });
    }
    let images = rollout
        .spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map(fife_policy::change::pod_images)
        .unwrap_or_default();
    let deploy = DeployRecord {
        deploy_id: format!("{}/{revision}", rollout.uid().unwrap_or_default()),
        environment: rollout.namespace().unwrap_or_default(),
        service: rollout.name_any(),
        artifacts: images
            .iter()
            .map(|(name, image)| format!("{name}={image}"))
            .collect(),
        source_commit: note(SOURCE_COMMIT),
        commit_time: note(SOURCE_COMMIT_TIME)
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        pull_request: note(SOURCE_PULL_REQUEST),
        ticket: note(SOURCE_TICKET),
        triggered_by: note(APPLIED_BY),
        tier: report.tier(),
        approvals,
        separation_of_duties: DutiesEvidence {
            author: note(SOURCE_AUTHOR),
            approvers: report.duties.approvers.clone(),
            deployer: note(APPLIED_BY),
            ok: report.duties.ok,
        },
        checks,
        break_glass: report
            .break_glass()
            .map(|(name, by)| break_glass_use(name, by, observed)),
        started_at: status
            .release
            .as_ref()
            .and_then(|r| r.canary_started_at.as_ref())
            .and_then(|t| DateTime::from_timestamp_millis(t.0.as_millisecond())),
        promoted_at: now,
    };
    let mut entry = crate::reconcile::record::rollout_entry(
        rollout,
        now,
        AuditAction::Deployed,
        fife_audit::Actor::controller(identity),
        format!(
            "deploy record of revision {revision}: separation of duties {}",
            if deploy.separation_of_duties.ok {
                "ok"
            } else {
                "violated"
            }
        ),
    );
    entry.revision = Some(revision.to_owned());
    entry.evidence.extra = Some(serde_json::json!({ "deploy": deploy }));
    Some(entry)
}

/// Gate outcomes and break-glass uses in the metrics, counted when the decision's records
/// are written: a gate that holds brings the same event on every reconcile of the same
/// Rollout, which is recorded once, so counting records keeps the metrics equal to what
/// `fife audit report` counts in the log.
pub fn count_gates(ctx: &Context, rollout: &Rollout, decision: &Decision) {
    for gate in decision.events.iter().filter_map(|e| e.gate.as_ref()) {
        let name = wire_name(&gate.gate);
        match gate.waited_millis {
            // A held gate opening says how long it held; its verdict on the change follows
            // as an event of its own (as the report counts them).
            Some(ms) => {
                let tier = gate.tier.clone().unwrap_or_else(|| "none".to_owned());
                ctx.metrics.gate_waited(&tier, &name, ms as f64 / 1000.0);
            }
            None => ctx.metrics.gate_outcome(&name, &wire_name(&gate.outcome)),
        }
    }
    let bypassed = decision
        .events
        .iter()
        .filter_map(|e| e.gate.as_ref())
        .any(|g| g.outcome == GateOutcome::Bypassed);
    if bypassed {
        ctx.metrics.break_glass_used(
            &rollout.namespace().unwrap_or_default(),
            &rollout.name_any(),
        );
    }
}
