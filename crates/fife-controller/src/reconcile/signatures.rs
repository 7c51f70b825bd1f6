//! The signature gate's input: for every ReleasePolicy that governs the change and asks for
//! `verifyImages`, each image of the new pod template checked against the public keys in
//! the policy's Secret (in the controller's namespace) and its provenance conditions. One
//! verdict per image reference, the strictest over the policies; the registry is asked once
//! per digest and key set ([`crate::runtime::image_verdicts`]).
//!
//! ```text
//!  policies that select the change ─▶ keys Secret (get) ─▶ Requirements ─┐
//!  images of the new template ─────────────────────────────────────────┴▶ ImageVerifier ─▶ ImageVerdict per image
//! ```

use std::collections::BTreeMap;

use fife_api::ReleasePolicy;
use fife_api::release::ImageVerification;
use fife_policy::{Change, ImageVerdict};
use fife_provenance::{ProvenanceRequirements, Requirements};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::runtime::context::Context;
use crate::runtime::image_verdicts::{ImageCheck, trusted_keys};

/// The verdict of every image of `change` under the policies that select it and verify
/// images; empty when none does.
pub async fn image_verdicts(
    ctx: &Context,
    change: &Change,
    policies: &[ReleasePolicy],
) -> Result<BTreeMap<String, ImageVerdict>, kube::Error> {
    let images: Vec<String> = change.images.values().cloned().collect();
    let mut verdicts: BTreeMap<String, ImageVerdict> = BTreeMap::new();
    for policy in policies
        .iter()
        .filter(|p| fife_policy::change::selects(p, change))
    {
        let Some(verification) = &policy.spec.verify_images else {
            continue;
        };
        let checks = match requirements(ctx, &policy.name_any(), verification).await? {
            Ok(requirements) => ctx.images.verdicts(&images, &requirements).await,
            // Without usable keys nothing can be verified: every image is refused with the
            // reason, so the status says what to fix.
            Err(reason) => images
                .iter()
                .map(|i| (i.clone(), ImageCheck::Refused(reason.clone())))
                .collect(),
        };
        for (image, check) in checks {
            let verdict = match check {
                ImageCheck::Verified(_) => ImageVerdict::Verified,
                ImageCheck::Refused(reason) => ImageVerdict::Refused { reason },
                ImageCheck::Unchecked(error) => {
                    tracing::warn!(image = %image, error = %error, "image not verified yet");
                    ImageVerdict::Pending
                }
            };
            // The strictest verdict across the policies wins: Refused over Pending over
            // Verified.
            let stricter = matches!(
                (verdicts.get(&image), &verdict),
                (None | Some(ImageVerdict::Verified), _)
                    | (Some(ImageVerdict::Pending), ImageVerdict::Refused { .. })
            );
            if stricter {
                verdicts.insert(image, verdict);
            }
        }
    }
    Ok(verdicts)
}

/// The policy's keys and provenance conditions, or the sentence saying why its keys cannot
/// be used. API errors other than a missing or forbidden Secret fail the reconcile.
async fn requirements(
    ctx: &Context,
    policy: &str,
    verification: &ImageVerification,
) -> Result<Result<Requirements, String>, kube::Error> {
    let namespace = ctx.images.keys_namespace();
    let name = &verification.keys_secret;
    let secret = match Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
    {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Ok(Err(format!(
                "ReleasePolicy {policy}: its keys Secret {namespace}/{name} does not exist; create it with the \
                 trusted public keys (kubectl create secret generic {name} -n {namespace} --from-file=cosign.pub)"
            )));
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Ok(Err(format!(
                "ReleasePolicy {policy}: the controller may not read Secret {namespace}/{name}; grant it `get` on \
                 Secrets in {namespace} (examples/install/rbac.yaml)"
            )));
        }
        Err(e) => return Err(e),
    };
    let data = secret.data.unwrap_or_default();
    let keys = match trusted_keys(&format!("{namespace}/{name}"), &data) {
        Ok(keys) => keys,
        Err(problem) => return Ok(Err(format!("ReleasePolicy {policy}: {problem}"))),
    };
    let provenance = verification
        .provenance
        .as_ref()
        .map(|p| ProvenanceRequirements {
            builder_id: p.builder_id.clone(),
            source_repo: p.source_repo.clone(),
            source_ref: p.source_ref.clone(),
        });
    Ok(Ok(Requirements { keys, provenance }))
}
