//! `approve` and `break-glass`: the objects people create to meet or bypass a release
//! policy. Every identity field is filled from the API server's SelfSubjectReview answer
//! (and checked against `request.userInfo` by the install's ValidatingAdmissionPolicy);
//! what is approved (revision, digests, Rollout uid) is read from the Rollout itself.
//!
//! ```text
//!   approve NAME ──────────▶ GET rollout ─▶ approval_for (pure) ─▶ CREATE Approval
//!   break-glass request ───▶ GET rollout ─▶ break_glass_for (pure) ─▶ CREATE BreakGlass
//!   break-glass approve|review BG ─▶ merge patch (pure body) on the BreakGlass
//! ```

use std::process::ExitCode;

use clap::{Args, Subcommand};
use fife_api::labels::{APPLIED_BY, SOURCE_AUTHOR};
use fife_api::release::{ApprovalSpec, BreakGlassSpec};
use fife_api::{Approval, BreakGlass, Rollout};
use fife_policy::Change;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::connect::{ClusterArgs, Identity};
use super::error::{Attempt, OpsError};
use super::{ROLLOUT_KIND, ROLLOUTS, block_on};

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The Rollout whose current revision you approve.
    name: String,
    /// Why, in your words; kept in the Approval and the deploy record.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct BreakGlassArgs {
    #[command(subcommand)]
    command: BreakGlassCommand,
}

#[derive(Debug, Subcommand)]
enum BreakGlassCommand {
    /// Ask to let the Rollout's current change past freezes and approvals.
    Request(RequestArgs),
    /// Approve someone else's break-glass, when the policy asks for a second person.
    Approve(NamedArgs),
    /// Close the post-hoc review of someone else's break-glass.
    Review(ReviewArgs),
}

#[derive(Debug, Args)]
struct RequestArgs {
    /// The Rollout.
    name: String,
    /// Why the change cannot wait.
    #[arg(long)]
    reason: String,
    /// The incident it answers, e.g. INC-4211.
    #[arg(long)]
    incident: String,
    /// How long it stays valid (the policy bounds it), e.g. 30m or 2h.
    #[arg(long = "for", default_value = "1h", value_name = "DURATION")]
    valid_for: fife_api::Duration,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
struct NamedArgs {
    /// The BreakGlass's name.
    name: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Args)]
struct ReviewArgs {
    /// The BreakGlass's name.
    name: String,
    /// What the review found.
    #[arg(long)]
    notes: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

const APPROVAL_KIND: &str = "Approval";
const APPROVALS: &str = "approvals.fife.dev";
const BREAK_GLASS_KIND: &str = "BreakGlass";
const BREAK_GLASSES: &str = "breakglasses.fife.dev";

pub fn run_approve(args: ApproveArgs) -> ExitCode {
    block_on(async move {
        let cluster = args.cluster.connect().await?;
        let me = cluster.identity().await?;
        let rollout = get_rollout(&cluster.client, &cluster.namespace, &args.name).await?;
        let approval = approval_for(&rollout, &me, args.reason)?;
        let revision = approval.spec.revision.clone();
        let api: Api<Approval> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
        let created = api
            .create(&PostParams::default(), &approval)
            .await
            .map_err(|e| {
                attempt("create", APPROVAL_KIND, APPROVALS, None, &cluster.namespace).explain(e)
            })?;
        println!(
            "Approval \"{}\" in namespace \"{}\": {} approves revision {revision} of Rollout \"{}\" ({}).",
            created.name_any(),
            cluster.namespace,
            me.username,
            args.name,
            approval.spec.digests.join(", ")
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_break_glass(args: BreakGlassArgs) -> ExitCode {
    match args.command {
        BreakGlassCommand::Request(args) => block_on(async move {
            let cluster = args.cluster.connect().await?;
            let me = cluster.identity().await?;
            let rollout = get_rollout(&cluster.client, &cluster.namespace, &args.name).await?;
            let now = jiff::Timestamp::now();
            let bg = break_glass_for(
                &rollout,
                &me,
                &args.reason,
                &args.incident,
                args.valid_for,
                now,
            )?;
            let api: Api<BreakGlass> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
            let created = api.create(&PostParams::default(), &bg).await.map_err(|e| {
                attempt(
                    "create",
                    BREAK_GLASS_KIND,
                    BREAK_GLASSES,
                    None,
                    &cluster.namespace,
                )
                .explain(e)
            })?;
            println!(
                "BreakGlass \"{}\" in namespace \"{}\": {} lets {} of Rollout \"{}\" past freezes and approvals until {}. Its review stays open until someone else runs `kubectl fife break-glass review {}`.",
                created.name_any(),
                cluster.namespace,
                me.username,
                bg.spec.digests.join(", "),
                args.name,
                bg.spec.expires_at.0,
                created.name_any()
            );
            Ok(ExitCode::SUCCESS)
        }),
        BreakGlassCommand::Approve(args) => block_on(async move {
            let cluster = args.cluster.connect().await?;
            let me = cluster.identity().await?;
            let body = second_approval_patch(&me, jiff::Timestamp::now());
            patch_break_glass(&cluster, &args.name, &body).await?;
            println!("BreakGlass \"{}\": approved by {}.", args.name, me.username);
            Ok(ExitCode::SUCCESS)
        }),
        BreakGlassCommand::Review(args) => block_on(async move {
            let cluster = args.cluster.connect().await?;
            let me = cluster.identity().await?;
            let body = review_patch(&me, args.notes.as_deref(), jiff::Timestamp::now());
            patch_break_glass(&cluster, &args.name, &body).await?;
            println!(
                "BreakGlass \"{}\": review closed by {}.",
                args.name, me.username
            );
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn attempt<'a>(
    verb: &'static str,
    kind: &'static str,
    resource: &'static str,
    name: Option<&'a str>,
    namespace: &'a str,
) -> Attempt<'a> {
    Attempt {
        verb,
        kind,
        resource,
        name,
        namespace,
    }
}

async fn get_rollout(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Rollout, OpsError> {
    let api: Api<Rollout> = Api::namespaced(client.clone(), namespace);
    api.get(name)
        .await
        .map_err(|e| attempt("get", ROLLOUT_KIND, ROLLOUTS, Some(name), namespace).explain(e))
}

async fn patch_break_glass(
    cluster: &super::connect::Cluster,
    name: &str,
    body: &Value,
) -> Result<(), OpsError> {
    let api: Api<BreakGlass> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    api.patch(name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(|e| {
            attempt(
                "patch",
                BREAK_GLASS_KIND,
                BREAK_GLASSES,
                Some(name),
                &cluster.namespace,
            )
            .explain(e)
        })?;
    Ok(())
}

/// The change a Rollout's template makes now: its revision and digests.
fn current_change(rollout: &Rollout) -> Result<Change, OpsError> {
    let name = rollout.name_any();
    let template = rollout.spec.template.as_ref().ok_or_else(|| {
        OpsError::Release(format!(
            "Rollout \"{name}\" has no pod template, so there is no change to approve"
        ))
    })?;
    let revision = fife_engine::pod_template_hash(template);
    let change = Change::of(rollout, &revision, None);
    if change.digests().is_empty() {
        return Err(OpsError::Release(format!(
            "Rollout \"{name}\" names no image by digest; pin its images (image@sha256:...) so that what you approve is exactly what runs"
        )));
    }
    Ok(change)
}

/// The Approval of the Rollout's current revision by `me`. Pure.
pub fn approval_for(
    rollout: &Rollout,
    me: &Identity,
    reason: Option<String>,
) -> Result<Approval, OpsError> {
    let change = current_change(rollout)?;
    let annotations = rollout.annotations();
    let mut approval = Approval::new(
        "",
        ApprovalSpec {
            rollout: change.rollout.clone(),
            rollout_uid: change.rollout_uid.clone(),
            revision: change.revision.clone(),
            digests: change.digests(),
            approver: me.username.clone(),
            groups: me.groups.clone(),
            reason,
            author: annotations.get(SOURCE_AUTHOR).cloned(),
            applied_by: annotations.get(APPLIED_BY).cloned(),
        },
    );
    approval.metadata.name = None;
    approval.metadata.generate_name = Some(format!("{}-{}-", change.rollout, change.revision));
    approval.metadata.namespace = rollout.namespace();
    Ok(approval)
}

/// The BreakGlass for the Rollout's current change, requested by `me`. Pure.
pub fn break_glass_for(
    rollout: &Rollout,
    me: &Identity,
    reason: &str,
    incident: &str,
    valid_for: fife_api::Duration,
    now: jiff::Timestamp,
) -> Result<BreakGlass, OpsError> {
    let change = current_change(rollout)?;
    let millis = i64::try_from(valid_for.as_millis()).unwrap_or(i64::MAX);
    let expires = now
        .checked_add(jiff::SignedDuration::from_millis(millis))
        .map_err(|e| OpsError::Release(format!("--for {valid_for} is too long: {e}")))?;
    let mut bg = BreakGlass::new(
        "",
        BreakGlassSpec {
            rollout: change.rollout.clone(),
            digests: change.digests(),
            reason: reason.to_owned(),
            incident: incident.to_owned(),
            expires_at: Time(expires),
            requested_by: me.username.clone(),
            second_approval: None,
            review: None,
        },
    );
    bg.meta_mut().name = None;
    bg.metadata.generate_name = Some(format!("{}-", change.rollout));
    bg.metadata.namespace = rollout.namespace();
    Ok(bg)
}

/// The merge patch of a second person's approval. Pure.
pub fn second_approval_patch(me: &Identity, now: jiff::Timestamp) -> Value {
    json!({ "spec": { "secondApproval": { "approvedBy": me.username, "approvedAt": Time(now) } } })
}

/// The merge patch that closes a break-glass's review. Pure.
pub fn review_patch(me: &Identity, notes: Option<&str>, now: jiff::Timestamp) -> Value {
    json!({ "spec": { "review": { "reviewedBy": me.username, "reviewedAt": Time(now), "notes": notes } } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};

    const IMAGE: &str =
        "reg/web@sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn rollout(image: &str) -> Rollout {
        let mut r: Rollout = serde_json::from_value(json!({
            "apiVersion": "fife.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                "annotations": {"source.fife.dev/author": "alice", "fife.dev/applied-by": "ci"}},
            "spec": {"strategy": {"canary": {}}}
        }))
        .unwrap();
        r.spec.template = Some(PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        });
        r
    }

    fn me() -> Identity {
        Identity {
            username: "bob".into(),
            groups: vec!["sre".into(), "system:authenticated".into()],
        }
    }

    #[test]
    fn an_approval_binds_the_current_revision_digests_and_uid_to_the_authenticated_user() {
        let r = rollout(IMAGE);
        let a = approval_for(&r, &me(), Some("looks good".into())).unwrap();
        let revision = fife_engine::pod_template_hash(r.spec.template.as_ref().unwrap());
        assert_eq!(a.spec.revision, revision);
        assert_eq!(a.spec.rollout_uid, "u-1");
        assert_eq!(
            a.spec.digests,
            vec![IMAGE.split('@').nth(1).unwrap().to_owned()]
        );
        assert_eq!(a.spec.approver, "bob");
        assert_eq!(a.spec.groups, me().groups);
        assert_eq!(a.spec.author.as_deref(), Some("alice"));
        assert_eq!(a.spec.applied_by.as_deref(), Some("ci"));
        assert_eq!(
            a.metadata.generate_name.as_deref(),
            Some(format!("web-{revision}-").as_str())
        );
        assert_eq!(a.metadata.name, None);
    }

    #[test]
    fn a_tag_cannot_be_approved() {
        let err = approval_for(&rollout("reg/web:1.2"), &me(), None).unwrap_err();
        assert!(err.to_string().contains("pin its images"), "{err}");
    }

    #[test]
    fn a_break_glass_names_the_digests_requester_and_expiry() {
        let now: jiff::Timestamp = "2026-12-05T10:00:00Z".parse().unwrap();
        let bg = break_glass_for(
            &rollout(IMAGE),
            &me(),
            "checkout down",
            "INC-7",
            fife_api::Duration::from_secs(1800),
            now,
        )
        .unwrap();
        assert_eq!(bg.spec.requested_by, "bob");
        assert_eq!(bg.spec.expires_at.0.to_string(), "2026-12-05T10:30:00Z");
        assert_eq!(bg.spec.digests.len(), 1);
        let patch = review_patch(&me(), Some("fine"), now);
        assert_eq!(patch["spec"]["review"]["reviewedBy"], "bob");
        let patch = second_approval_patch(&me(), now);
        assert_eq!(patch["spec"]["secondApproval"]["approvedBy"], "bob");
    }
}
