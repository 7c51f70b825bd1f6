//! Provenance attestations: DSSE envelopes in the `sha256-<digest>.att` image, their in-toto
//! statements, and the builder and source an SLSA provenance predicate (v0.2 or v1) names.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::keys::{TrustedKey, describe};
use crate::reference::PinnedImage;
use crate::verdict::Refusal;

/// The media type of an attestation layer.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The SLSA provenance predicate types read here.
pub const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// What a policy asks of an image's provenance; an unset field asks nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceRequirements {
    /// The builder id exactly (`https://github.com/slsa-framework/slsa-github-generator/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_id: Option<String>,
    /// The source repository (`https://github.com/acme/api`; a `git+` prefix and a `.git`
    /// suffix on either side are ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<String>,
    /// The source ref exactly (`refs/heads/main`, `refs/tags/v1.2.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
}

/// What a verified provenance says, for the verdict and the audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceFacts {
    pub predicate_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ref: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload_type: String,
    payload: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(default)]
    predicate_type: String,
    #[serde(default)]
    predicate: Value,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

/// DSSE's pre-authentication encoding: what the envelope's signatures sign.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The provenance of this digest, signed by a trusted key, that meets `requirements`, or the
/// most specific reason there is none (a condition unmet, then another subject, then not
/// provenance, then an untrusted signer, then nothing attached).
pub fn provenance(
    image: &PinnedImage,
    keys: &[TrustedKey],
    requirements: &ProvenanceRequirements,
    envelopes: &[Vec<u8>],
) -> Result<ProvenanceFacts, Refusal> {
    if envelopes.is_empty() {
        return Err(Refusal::NoProvenance {
            image: image.to_string(),
            tag: image.attestation_tag(),
        });
    }
    // Lower rank: more specific; the most specific refusal is the one reported.
    let mut nearest: Option<(u8, Refusal)> = None;
    let mut keep = |rank: u8, refusal: Refusal| {
        if nearest.as_ref().is_none_or(|(r, _)| rank < *r) {
            nearest = Some((rank, refusal));
        }
    };
    for bytes in envelopes {
        let Ok(envelope) = serde_json::from_slice::<Envelope>(bytes) else {
            continue;
        };
        let Ok(payload) = STANDARD.decode(envelope.payload.trim()) else {
            continue;
        };
        let message = pae(&envelope.payload_type, &payload);
        let signer = keys.iter().find(|key| {
            envelope
                .signatures
                .iter()
                .filter_map(|s| STANDARD.decode(s.sig.trim()).ok())
                .any(|sig| key.verifies(&message, &sig))
        });
        let Some(key) = signer else { continue };
        let statement = match serde_json::from_slice::<Statement>(&payload) {
            Ok(statement) if envelope.payload_type == IN_TOTO_PAYLOAD_TYPE => statement,
            _ => {
                keep(
                    3,
                    Refusal::NotProvenance {
                        image: image.to_string(),
                        key: key.to_string(),
                        found: envelope.payload_type.clone(),
                    },
                );
                continue;
            }
        };
        if statement.predicate_type != SLSA_V02 && statement.predicate_type != SLSA_V1 {
            keep(
                3,
                Refusal::NotProvenance {
                    image: image.to_string(),
                    key: key.to_string(),
                    found: statement.predicate_type.clone(),
                },
            );
            continue;
        }
        let about_this = statement.subject.iter().any(|s| {
            s.digest
                .get("sha256")
                .is_some_and(|d| d == image.digest_hex())
        });
        if !about_this {
            keep(
                2,
                Refusal::ProvenanceOtherDigest {
                    image: image.to_string(),
                    key: key.to_string(),
                },
            );
            continue;
        }
        let facts = facts(&statement);
        match unmet(image, key, requirements, &facts) {
            None => return Ok(facts),
            Some(refusal) => keep(1, refusal),
        }
    }
    Err(nearest
        .map(|(_, r)| r)
        .unwrap_or_else(|| Refusal::ProvenanceNotByTrustedKey {
            image: image.to_string(),
            keys: describe(keys),
            attestations: envelopes.len(),
        }))
}

fn unmet(
    image: &PinnedImage,
    key: &TrustedKey,
    requirements: &ProvenanceRequirements,
    facts: &ProvenanceFacts,
) -> Option<Refusal> {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
    if let Some(required) = &requirements.builder_id
        && facts.builder_id.as_deref() != Some(required.as_str())
    {
        return Some(Refusal::WrongBuilder {
            image: image.to_string(),
            key: key.to_string(),
            found: shown(&facts.builder_id),
            required: required.clone(),
        });
    }
    if let Some(required) = &requirements.source_repo
        && facts.source_repo.as_deref().map(same_repo_form) != Some(same_repo_form(required))
    {
        return Some(Refusal::WrongSource {
            image: image.to_string(),
            key: key.to_string(),
            what: "repository",
            found: shown(&facts.source_repo),
            required: required.clone(),
        });
    }
    if let Some(required) = &requirements.source_ref
        && facts.source_ref.as_deref() != Some(required.as_str())
    {
        return Some(Refusal::WrongSource {
            image: image.to_string(),
            key: key.to_string(),
            what: "ref",
            found: shown(&facts.source_ref),
            required: required.clone(),
        });
    }
    None
}

/// A repository URL in the form comparisons use: no `git+` scheme prefix, no `.git` or `/` at the end.
fn same_repo_form(repo: &str) -> &str {
    let repo = repo.strip_prefix("git+").unwrap_or(repo);
    let repo = repo.strip_suffix('/').unwrap_or(repo);
    repo.strip_suffix(".git").unwrap_or(repo)
}

fn text(value: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `git+https://host/org/repo@refs/heads/main` → (`https://host/org/repo`, `refs/heads/main`).
fn split_source(uri: &str) -> (Option<String>, Option<String>) {
    let uri = uri.strip_prefix("git+").unwrap_or(uri);
    // The ref follows the last '@' after the scheme's "//", so user info cannot be taken for it.
    let start = uri.find("://").map_or(0, |i| i + 3);
    match uri[start..].rfind('@') {
        Some(at) => (
            Some(uri[..start + at].to_string()),
            Some(uri[start + at + 1..].to_string()),
        ),
        None => (Some(uri.to_string()), None),
    }
}

fn facts(statement: &Statement) -> ProvenanceFacts {
    let p = &statement.predicate;
    let (builder_id, source) = if statement.predicate_type == SLSA_V02 {
        let source = text(p, &["invocation", "configSource", "uri"])
            .or_else(|| p.get("materials").and_then(|m| text(m.get(0)?, &["uri"])));
        (
            text(p, &["builder", "id"]),
            source.map(|s| split_source(&s)),
        )
    } else {
        let workflow = p
            .get("buildDefinition")
            .and_then(|b| b.get("externalParameters"))
            .and_then(|e| e.get("workflow"));
        let source = match workflow.map(|w| (text(w, &["repository"]), text(w, &["ref"]))) {
            Some((Some(repo), git_ref)) => Some((Some(repo), git_ref)),
            _ => p
                .get("buildDefinition")
                .and_then(|b| b.get("resolvedDependencies"))
                .and_then(|d| text(d.get(0)?, &["uri"]))
                .map(|s| split_source(&s)),
        };
        (text(p, &["runDetails", "builder", "id"]), source)
    };
    let (source_repo, source_ref) = source.unwrap_or((None, None));
    ProvenanceFacts {
        predicate_type: statement.predicate_type.clone(),
        builder_id,
        source_repo,
        source_ref,
    }
}

/// An in-toto statement of SLSA v1 provenance about `image`.
#[cfg(test)]
pub(crate) fn slsa_v1_statement(
    image: &PinnedImage,
    builder_id: &str,
    source_repo: &str,
    source_ref: &str,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("{}/{}", image.registry, image.repository), "digest": {"sha256": image.digest_hex()}}],
        "predicateType": SLSA_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"repository": source_repo, "ref": source_ref, "path": ".github/workflows/release.yml"}},
            },
            "runDetails": {"builder": {"id": builder_id}},
        },
    }))
    .expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{sign, signing_key};

    const BUILDER: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.1.0";
    const REPO: &str = "https://github.com/acme/api";

    fn image(fill: char) -> PinnedImage {
        PinnedImage::parse(&format!(
            "registry.test/app@sha256:{}",
            fill.to_string().repeat(64)
        ))
        .unwrap()
    }

    fn envelope(payload_type: &str, payload: &[u8], seed: u8) -> Vec<u8> {
        let sig = sign(&signing_key(seed), &pae(payload_type, payload));
        serde_json::to_vec(&serde_json::json!({
            "payloadType": payload_type,
            "payload": STANDARD.encode(payload),
            "signatures": [{"keyid": "", "sig": STANDARD.encode(sig)}],
        }))
        .unwrap()
    }

    fn keys() -> Vec<TrustedKey> {
        vec![TrustedKey::new("release", *signing_key(1).verifying_key())]
    }

    fn all() -> ProvenanceRequirements {
        ProvenanceRequirements {
            builder_id: Some(BUILDER.into()),
            source_repo: Some(format!("git+{REPO}.git")),
            source_ref: Some("refs/heads/main".into()),
        }
    }

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(pae("a/b", b"hello"), b"DSSEv1 3 a/b 5 hello".to_vec());
    }

    #[test]
    fn slsa_v1_from_the_right_builder_and_source_passes() {
        let img = image('a');
        let statement = slsa_v1_statement(&img, BUILDER, REPO, "refs/heads/main");
        let facts = provenance(
            &img,
            &keys(),
            &all(),
            &[envelope(IN_TOTO_PAYLOAD_TYPE, &statement, 1)],
        )
        .unwrap();
        assert_eq!(facts.builder_id.as_deref(), Some(BUILDER));
        assert_eq!(facts.source_repo.as_deref(), Some(REPO));
        assert_eq!(facts.source_ref.as_deref(), Some("refs/heads/main"));
    }

    #[test]
    fn slsa_v02_reads_the_config_source() {
        let img = image('a');
        let statement = serde_json::to_vec(&serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "subject": [{"name": "x", "digest": {"sha256": img.digest_hex()}}],
            "predicateType": SLSA_V02,
            "predicate": {
                "builder": {"id": BUILDER},
                "invocation": {"configSource": {"uri": format!("git+{REPO}@refs/heads/main"), "entryPoint": "release.yml"}},
            },
        }))
        .unwrap();
        let facts = provenance(
            &img,
            &keys(),
            &all(),
            &[envelope(IN_TOTO_PAYLOAD_TYPE, &statement, 1)],
        )
        .unwrap();
        assert_eq!(facts.source_repo.as_deref(), Some(REPO));
        assert_eq!(facts.source_ref.as_deref(), Some("refs/heads/main"));
    }

    #[test]
    fn each_unmet_condition_is_named() {
        let img = image('a');
        let cases = [
            (
                slsa_v1_statement(&img, "https://ci.example/evil", REPO, "refs/heads/main"),
                "builder \"https://ci.example/evil\"",
            ),
            (
                slsa_v1_statement(
                    &img,
                    BUILDER,
                    "https://github.com/acme/fork",
                    "refs/heads/main",
                ),
                "source repository \"https://github.com/acme/fork\"",
            ),
            (
                slsa_v1_statement(&img, BUILDER, REPO, "refs/heads/dev"),
                "source ref \"refs/heads/dev\"",
            ),
        ];
        for (statement, expected) in cases {
            let err = provenance(
                &img,
                &keys(),
                &all(),
                &[envelope(IN_TOTO_PAYLOAD_TYPE, &statement, 1)],
            )
            .unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn refusals_in_order_of_specificity() {
        let img = image('a');
        let good = slsa_v1_statement(&img, BUILDER, REPO, "refs/heads/main");
        let err = provenance(&img, &keys(), &all(), &[]).unwrap_err();
        assert!(matches!(err, Refusal::NoProvenance { .. }), "{err}");
        let err = provenance(
            &img,
            &keys(),
            &all(),
            &[envelope(IN_TOTO_PAYLOAD_TYPE, &good, 2)],
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::ProvenanceNotByTrustedKey {
                    attestations: 1,
                    ..
                }
            ),
            "{err}"
        );
        let sbom = br#"{"subject":[],"predicateType":"https://spdx.dev/Document","predicate":{}}"#;
        let other = slsa_v1_statement(&image('b'), BUILDER, REPO, "refs/heads/main");
        let err = provenance(
            &img,
            &keys(),
            &all(),
            &[
                envelope(IN_TOTO_PAYLOAD_TYPE, sbom, 1),
                envelope(IN_TOTO_PAYLOAD_TYPE, &other, 1),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(err, Refusal::ProvenanceOtherDigest { .. }),
            "{err}"
        );
        let err = provenance(
            &img,
            &keys(),
            &all(),
            &[envelope(IN_TOTO_PAYLOAD_TYPE, sbom, 1)],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("https://spdx.dev/Document"),
            "{err}"
        );
    }

    #[test]
    fn source_uris_split_at_the_last_at_after_the_host() {
        assert_eq!(
            split_source("git+https://user@github.com/acme/api@refs/tags/v1"),
            (
                Some("https://user@github.com/acme/api".into()),
                Some("refs/tags/v1".into())
            )
        );
        assert_eq!(
            split_source("https://github.com/acme/api"),
            (Some("https://github.com/acme/api".into()), None)
        );
        assert_eq!(
            same_repo_form("git+https://github.com/acme/api.git"),
            "https://github.com/acme/api"
        );
    }
}
