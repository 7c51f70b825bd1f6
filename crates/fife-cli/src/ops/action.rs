//! A person's requests to a rollout in progress: `promote [--full]`, `abort`, `retry`
//! (one-shot `spec.manualAction` requests with a fresh id and who asked), and `pause` /
//! `resume` (`spec.paused`). Each is exactly one merge patch on the Rollout; the bodies are
//! built by pure functions.

use std::process::ExitCode;

use clap::Args;
use fife_api::labels::PAUSE_REQUESTED_BY;
use fife_api::{ManualAction, Rollout};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::connect::{Cluster, ClusterArgs};
use super::error::{Attempt, OpsError};
use super::{ROLLOUT_KIND, ROLLOUTS, block_on};

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// The Rollout's name.
    name: String,
    /// Why, in your words; copied into the audit record.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    action: ActionArgs,
    /// Skip the remaining steps and make the canary stable now.
    #[arg(long)]
    full: bool,
}

/// What a command asks of the Rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Manual(ManualAction),
    Pause,
    Resume,
}

impl Request {
    fn verb(self) -> &'static str {
        match self {
            Request::Manual(ManualAction::Promote) => "promote",
            Request::Manual(ManualAction::PromoteFull) => "full promotion",
            Request::Manual(ManualAction::Abort) => "abort",
            Request::Manual(ManualAction::Retry) => "retry",
            Request::Pause => "pause",
            Request::Resume => "resume",
        }
    }
}

pub fn run_promote(args: PromoteArgs) -> ExitCode {
    let action = if args.full {
        ManualAction::PromoteFull
    } else {
        ManualAction::Promote
    };
    run(args.action, Request::Manual(action))
}

pub fn run_abort(args: ActionArgs) -> ExitCode {
    run(args, Request::Manual(ManualAction::Abort))
}

pub fn run_retry(args: ActionArgs) -> ExitCode {
    run(args, Request::Manual(ManualAction::Retry))
}

pub fn run_pause(args: ActionArgs) -> ExitCode {
    run(args, Request::Pause)
}

pub fn run_resume(args: ActionArgs) -> ExitCode {
    run(args, Request::Resume)
}

fn run(args: ActionArgs, request: Request) -> ExitCode {
    block_on(async move {
        let cluster = args.cluster.connect().await?;
        let done = send(&cluster, &args.name, request, args.reason.as_deref()).await?;
        println!("{}", done.sentence());
        Ok(ExitCode::SUCCESS)
    })
}

/// A request the API server accepted: who asked, under which id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub name: String,
    pub namespace: String,
    pub request: Request,
    pub id: String,
    pub requested_by: Option<String>,
}

impl Sent {
    /// What the CLI prints and the dashboard shows after a request.
    pub fn sentence(&self) -> String {
        let who = self.requested_by.as_deref().unwrap_or("an unnamed user");
        match self.request {
            Request::Manual(_) => format!(
                "Rollout \"{}\" in namespace \"{}\": {} requested by {who} (request {}).",
                self.name,
                self.namespace,
                self.request.verb(),
                self.id
            ),
            Request::Pause | Request::Resume => format!(
                "Rollout \"{}\" in namespace \"{}\": {} requested by {who}.",
                self.name,
                self.namespace,
                self.request.verb()
            ),
        }
    }
}

/// Sends one request to the Rollout `name` in the cluster's namespace, naming the
/// requester as `Cluster::requester` finds them. The CLI commands and the dashboard's
/// buttons both come through here, so both leave the same patch and the same audit record.
pub async fn send(
    cluster: &Cluster,
    name: &str,
    request: Request,
    reason: Option<&str>,
) -> Result<Sent, OpsError> {
    let requested_by = cluster.requester().await;
    let id = fresh_id(request, std::time::SystemTime::now(), std::process::id());
    let body = patch_body(request, &id, requested_by.as_deref(), reason);
    let api: Api<Rollout> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let attempt = Attempt {
        verb: "patch",
        kind: ROLLOUT_KIND,
        resource: ROLLOUTS,
        name: Some(name),
        namespace: &cluster.namespace,
    };
    api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| attempt.explain(e))?;
    Ok(Sent {
        name: name.to_owned(),
        namespace: cluster.namespace.clone(),
        request,
        id,
        requested_by,
    })
}

/// The JSON merge patch for a request. Absent `requestedBy`/`reason` are written as `null`
/// so that a merge patch does not keep the previous request's values.
pub fn patch_body(
    request: Request,
    id: &str,
    requested_by: Option<&str>,
    reason: Option<&str>,
) -> Value {
    match request {
        Request::Manual(action) => json!({
            "spec": {
                "manualAction": {
                    "action": action,
                    "id": id,
                    "requestedBy": requested_by,
                    "reason": reason,
                }
            }
        }),
        Request::Pause | Request::Resume => json!({
            "metadata": { "annotations": { PAUSE_REQUESTED_BY: requested_by } },
            "spec": { "paused": request == Request::Pause },
        }),
    }
}

/// A request id no earlier request has used: the action, the time in milliseconds and a
/// suffix mixed from the nanoseconds and the process id (two people promoting in the same
/// millisecond still get different ids). At most 128 characters, as the schema requires.
pub fn fresh_id(request: Request, now: std::time::SystemTime, pid: u32) -> String {
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut z = u64::from(since_epoch.subsec_nanos()) ^ (u64::from(pid) << 32);
    // splitmix64 finaliser: spreads nearby inputs over the whole suffix.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let kind = match request {
        Request::Manual(ManualAction::Promote) => "promote",
        Request::Manual(ManualAction::PromoteFull) => "promote-full",
        Request::Manual(ManualAction::Abort) => "abort",
        Request::Manual(ManualAction::Retry) => "retry",
        Request::Pause => "pause",
        Request::Resume => "resume",
    };
    format!("{kind}-{}-{:08x}", since_epoch.as_millis(), z as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_manual_action_patch_carries_action_id_and_requester() {
        let body = patch_body(
            Request::Manual(ManualAction::PromoteFull),
            "promote-full-1-abc",
            Some("alice@example.com"),
            Some("hotfix"),
        );
        assert_eq!(
            body,
            json!({"spec": {"manualAction": {"action": "PromoteFull", "id": "promote-full-1-abc",
                "requestedBy": "alice@example.com", "reason": "hotfix"}}})
        );
    }

    #[test]
    fn absent_fields_are_nulled_so_an_earlier_reason_does_not_survive_the_merge() {
        let body = patch_body(Request::Manual(ManualAction::Abort), "abort-1", None, None);
        let action = &body["spec"]["manualAction"];
        assert!(action["reason"].is_null() && action.get("reason").is_some());
        assert!(action["requestedBy"].is_null() && action.get("requestedBy").is_some());
    }

    #[test]
    fn pause_and_resume_set_spec_paused_and_name_the_person() {
        let pause = patch_body(Request::Pause, "x", Some("bob"), None);
        assert_eq!(pause["spec"]["paused"], json!(true));
        assert_eq!(
            pause["metadata"]["annotations"][PAUSE_REQUESTED_BY],
            json!("bob")
        );
        let resume = patch_body(Request::Resume, "x", Some("bob"), None);
        assert_eq!(resume["spec"]["paused"], json!(false));
    }

    #[test]
    fn ids_differ_between_processes_and_instants_and_fit_the_schema() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        let promote = Request::Manual(ManualAction::Promote);
        let a = fresh_id(promote, t, 100);
        let b = fresh_id(promote, t, 101);
        let c = fresh_id(promote, t + Duration::from_nanos(1), 100);
        assert!(a.starts_with("promote-1700000000123-"), "{a}");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.len() <= 128);
    }
}
