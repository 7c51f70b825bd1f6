//! The verdict on one image: what a policy requires (trusted keys, optional provenance
//! conditions), what the registry holds for the digest, and the one sentence that says why
//! an image is refused. Pure: the registry's answers come in as data.

use std::fmt;

use crate::attestation::{ProvenanceFacts, ProvenanceRequirements, provenance};
use crate::keys::TrustedKey;
use crate::reference::{PinnedImage, ReferenceError};
use crate::signature::{SignedPayload, signed_by};

/// What an image must carry to run.
#[derive(Debug, Clone)]
pub struct Requirements {
    /// Keys any of which may have signed the digest (and its provenance).
    pub keys: Vec<TrustedKey>,
    /// When set, a provenance attestation of the digest signed by one of `keys` must meet it.
    pub provenance: Option<ProvenanceRequirements>,
}

/// What the registry holds for one digest: the signature layers and the attestation
/// envelopes (empty when the tag does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachments {
    pub signatures: Vec<SignedPayload>,
    pub attestations: Vec<Vec<u8>>,
}

/// A digest that meets the requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub image: String,
    /// The key that signed the digest, as messages show it (`"name" (sha256:…)`).
    pub key: String,
    pub provenance: Option<ProvenanceFacts>,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "image {} is signed by key {}", self.image, self.key)?;
        if let Some(p) = &self.provenance {
            let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
            write!(
                f,
                "; provenance from builder {} of {}@{}",
                or_none(&p.builder_id),
                or_none(&p.source_repo),
                or_none(&p.source_ref)
            )?;
        }
        Ok(())
    }
}

/// Why an image may not run. Each message names the image, the key and what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(
        "image {image} is not signed: the registry has no signature at tag {tag}; sign the \
         digest with `cosign sign --key` (or `skopeo copy --sign-by-sigstore-private-key`)"
    )]
    Unsigned { image: String, tag: String },
    #[error(
        "image {image} is signed by another key: none of its {signatures} signature(s) verifies \
         with {keys}; sign it with a trusted key or add the signer's public key to the policy's keys"
    )]
    NotByTrustedKey {
        image: String,
        keys: String,
        signatures: usize,
    },
    #[error(
        "image {image}: the signature by key {key} is for {signed}, not for this digest (a \
         signature copied from another image); sign this digest"
    )]
    OtherDigest {
        image: String,
        key: String,
        signed: String,
    },
    #[error(
        "image {image}: the payload signed by key {key} is not a container image signature \
         ({problem}); sign images with cosign or skopeo"
    )]
    BadPayload {
        image: String,
        key: String,
        problem: String,
    },
    #[error(
        "image {image} has no provenance attestation: the registry has nothing at tag {tag}; \
         attach the build's SLSA provenance (`cosign attest --type slsaprovenance`)"
    )]
    NoProvenance { image: String, tag: String },
    #[error(
        "image {image}: none of its {attestations} attestation(s) is signed by {keys}; sign the \
         provenance with a trusted key"
    )]
    ProvenanceNotByTrustedKey {
        image: String,
        keys: String,
        attestations: usize,
    },
    #[error(
        "image {image}: the attestation signed by key {key} is '{found}', not SLSA provenance \
         (https://slsa.dev/provenance/v0.2 or v1); attach the build's provenance"
    )]
    NotProvenance {
        image: String,
        key: String,
        found: String,
    },
    #[error(
        "image {image}: the provenance signed by key {key} is about another digest; attach the \
         provenance of this build"
    )]
    ProvenanceOtherDigest { image: String, key: String },
    #[error(
        "image {image}: the provenance signed by key {key} names builder \"{found}\", the policy \
         requires builder \"{required}\"; build the image with the required builder"
    )]
    WrongBuilder {
        image: String,
        key: String,
        found: String,
        required: String,
    },
    #[error(
        "image {image}: the provenance signed by key {key} names source {what} \"{found}\", the \
         policy requires \"{required}\"; release from the required source"
    )]
    WrongSource {
        image: String,
        key: String,
        what: &'static str,
        found: String,
        required: String,
    },
}

/// The decision on one image, given what its registry holds.
pub fn judge(
    image: &PinnedImage,
    requirements: &Requirements,
    attachments: &Attachments,
) -> Result<Verified, Refusal> {
    let key = signed_by(image, &requirements.keys, &attachments.signatures)?;
    let provenance = match &requirements.provenance {
        Some(conditions) => Some(provenance(
            image,
            &requirements.keys,
            conditions,
            &attachments.attestations,
        )?),
        None => None,
    };
    Ok(Verified {
        image: image.to_string(),
        key: key.to_string(),
        provenance,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::attestation::{IN_TOTO_PAYLOAD_TYPE, pae, slsa_v1_statement};
    use crate::keys::tests::{sign, signing_key};
    use crate::signature::simple_signing_payload;

    fn image() -> PinnedImage {
        PinnedImage::parse(&format!("registry.test/app@sha256:{}", "c".repeat(64))).unwrap()
    }

    fn attachments(img: &PinnedImage, builder: &str) -> Attachments {
        let payload = simple_signing_payload(img);
        let statement = slsa_v1_statement(
            img,
            builder,
            "https://github.com/acme/api",
            "refs/heads/main",
        );
        let sig = sign(&signing_key(1), &pae(IN_TOTO_PAYLOAD_TYPE, &statement));
        Attachments {
            signatures: vec![SignedPayload {
                signature: STANDARD.encode(sign(&signing_key(1), &payload)),
                payload,
            }],
            attestations: vec![
                serde_json::to_vec(&serde_json::json!({
                    "payloadType": IN_TOTO_PAYLOAD_TYPE,
                    "payload": STANDARD.encode(&statement),
                    "signatures": [{"sig": STANDARD.encode(sig)}],
                }))
                .unwrap(),
            ],
        }
    }

    fn requirements(builder: Option<&str>) -> Requirements {
        Requirements {
            keys: vec![TrustedKey::new("release", *signing_key(1).verifying_key())],
            provenance: builder.map(|b| ProvenanceRequirements {
                builder_id: Some(b.to_string()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn signature_alone_when_no_provenance_is_asked() {
        let img = image();
        let mut held = attachments(&img, "ci");
        held.attestations.clear();
        let verified = judge(&img, &requirements(None), &held).unwrap();
        assert_eq!(verified.provenance, None);
        assert!(verified.to_string().starts_with(&format!(
            "image {img} is signed by key \"release\" (sha256:"
        )));
    }

    #[test]
    fn provenance_is_checked_after_the_signature() {
        let img = image();
        let verified = judge(&img, &requirements(Some("ci")), &attachments(&img, "ci")).unwrap();
        assert_eq!(
            verified.provenance.unwrap().builder_id.as_deref(),
            Some("ci")
        );
        let err = judge(
            &img,
            &requirements(Some("ci")),
            &attachments(&img, "laptop"),
        )
        .unwrap_err();
        assert!(matches!(err, Refusal::WrongBuilder { .. }), "{err}");
        let err = judge(&img, &requirements(Some("ci")), &Attachments::default()).unwrap_err();
        assert!(matches!(err, Refusal::Unsigned { .. }), "{err}");
    }
}
