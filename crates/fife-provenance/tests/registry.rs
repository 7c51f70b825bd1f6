//! The registry edge against a real registry (Debian's `docker-registry`), with images,
//! cosign signatures and SLSA attestations pushed by skopeo: what passes, and the sentence
//! each refusal gives.

use fife_provenance::{ProvenanceRequirements, Refusal, Registry, Requirements, TrustedKey};
use fife_testkit::registry::{OciRegistry, public_key_pem, signing_key};

const BUILDER: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v2.1.0";
const REPO: &str = "https://github.com/acme/api";

fn trusted(seed: u8, name: &str) -> TrustedKey {
    TrustedKey::from_pem(name, &public_key_pem(&signing_key(seed))).unwrap()
}

fn requirements(provenance: Option<ProvenanceRequirements>) -> Requirements {
    Requirements {
        keys: vec![trusted(1, "release.pub")],
        provenance,
    }
}

fn from_ci_main() -> Option<ProvenanceRequirements> {
    Some(ProvenanceRequirements {
        builder_id: Some(BUILDER.into()),
        source_repo: Some(REPO.into()),
        source_ref: Some("refs/heads/main".into()),
    })
}

#[tokio::test]
async fn signed_passes_and_every_refusal_names_image_key_and_failure() {
    let registry = OciRegistry::start().unwrap();
    let client = Registry::new(vec![registry.host().to_string()]);
    let release = signing_key(1);
    let stranger = signing_key(2);

    let signed = registry.push_image("acme/api", "1.0", "signed").unwrap();
    registry.sign(&signed, &release, None).unwrap();
    let verified = client
        .verify(&signed, &requirements(None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.image, signed);
    assert!(
        verified.key.starts_with("\"release.pub\" (sha256:"),
        "{}",
        verified.key
    );
    assert_eq!(verified.provenance, None);

    // A second trusted key in the list does not disturb the first.
    let mut two_keys = requirements(None);
    two_keys.keys.insert(0, trusted(3, "old-release.pub"));
    assert!(client.verify(&signed, &two_keys).await.unwrap().is_ok());

    let unsigned = registry.push_image("acme/api", "1.1", "unsigned").unwrap();
    let refusal = client
        .verify(&unsigned, &requirements(None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Unsigned { .. }), "{refusal}");
    let hex = &unsigned[unsigned.len() - 64..];
    assert_eq!(
        refusal.to_string(),
        format!(
            "image {unsigned} is not signed: the registry has no signature at tag sha256-{hex}.sig; sign the digest \
             with `cosign sign --key` (or `skopeo copy --sign-by-sigstore-private-key`)"
        )
    );

    let by_stranger = registry.push_image("acme/api", "1.2", "stranger").unwrap();
    registry.sign(&by_stranger, &stranger, None).unwrap();
    let refusal = client
        .verify(&by_stranger, &requirements(None))
        .await
        .unwrap()
        .unwrap_err();
    let key = trusted(1, "release.pub");
    assert_eq!(
        refusal.to_string(),
        format!(
            "image {by_stranger} is signed by another key: none of its 1 signature(s) verifies with key {key}; \
             sign it with a trusted key or add the signer's public key to the policy's keys"
        )
    );

    // A signature copied from the signed image: signed by the right key, for another digest.
    let copied = registry.push_image("acme/api", "1.3", "copied").unwrap();
    let signed_digest = &signed[signed.find('@').unwrap() + 1..];
    registry
        .sign(&copied, &release, Some(signed_digest))
        .unwrap();
    let refusal = client
        .verify(&copied, &requirements(None))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        refusal,
        Refusal::OtherDigest {
            image: copied.clone(),
            key: key.to_string(),
            signed: signed_digest.to_string()
        }
    );

    let tag = format!("{}/acme/api:1.0", registry.host());
    let refusal = client
        .verify(&tag, &requirements(None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        refusal
            .to_string()
            .starts_with(&format!("image {tag} names a tag, not a digest")),
        "{refusal}"
    );
}

#[tokio::test]
async fn provenance_from_the_right_builder_and_source_passes_and_others_are_refused() {
    let registry = OciRegistry::start().unwrap();
    let client = Registry::new(vec![registry.host().to_string()]);
    let release = signing_key(1);
    let key = trusted(1, "release.pub");

    let good = registry.push_image("acme/api", "2.0", "good").unwrap();
    registry.sign(&good, &release, None).unwrap();
    registry
        .attest(&good, &release, BUILDER, REPO, "refs/heads/main")
        .unwrap();
    let verified = client
        .verify(&good, &requirements(from_ci_main()))
        .await
        .unwrap()
        .unwrap();
    let facts = verified.provenance.clone().unwrap();
    assert_eq!(facts.builder_id.as_deref(), Some(BUILDER));
    assert_eq!(facts.source_repo.as_deref(), Some(REPO));
    assert!(
        verified.to_string().ends_with(&format!(
            "provenance from builder {BUILDER} of {REPO}@refs/heads/main"
        )),
        "{verified}"
    );

    let signed_only = registry
        .push_image("acme/api", "2.1", "no-provenance")
        .unwrap();
    registry.sign(&signed_only, &release, None).unwrap();
    let refusal = client
        .verify(&signed_only, &requirements(from_ci_main()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(refusal, Refusal::NoProvenance { .. }), "{refusal}");

    // Signed by the release key; each attestation is wrong in one way.
    let attested = async |tag: &str, attester: u8, builder: &str, repo: &str, git_ref: &str| {
        let image = registry.push_image("acme/api", tag, tag).unwrap();
        registry.sign(&image, &release, None).unwrap();
        registry
            .attest(&image, &signing_key(attester), builder, repo, git_ref)
            .unwrap();
        let refusal = client
            .verify(&image, &requirements(from_ci_main()))
            .await
            .unwrap()
            .unwrap_err();
        (image, refusal)
    };

    let (laptop, refusal) = attested(
        "laptop",
        1,
        "https://laptop.example/me",
        REPO,
        "refs/heads/main",
    )
    .await;
    assert_eq!(
        refusal.to_string(),
        format!(
            "image {laptop}: the provenance signed by key {key} names builder \"https://laptop.example/me\", the policy \
             requires builder \"{BUILDER}\"; build the image with the required builder"
        )
    );

    let (_, refusal) = attested(
        "fork",
        1,
        BUILDER,
        "https://github.com/mallory/api",
        "refs/heads/main",
    )
    .await;
    let says = refusal.to_string();
    assert!(
        says.contains("names source repository \"https://github.com/mallory/api\""),
        "{says}"
    );

    let (_, refusal) = attested("branch", 1, BUILDER, REPO, "refs/heads/experiment").await;
    let says = refusal.to_string();
    assert!(
        says.contains("names source ref \"refs/heads/experiment\""),
        "{says}"
    );

    // Provenance signed by a key the policy does not trust proves nothing.
    let (_, refusal) = attested("forged", 2, BUILDER, REPO, "refs/heads/main").await;
    assert!(
        matches!(refusal, Refusal::ProvenanceNotByTrustedKey { .. }),
        "{refusal}"
    );
}

#[tokio::test]
async fn an_unreachable_registry_is_an_error_not_a_verdict() {
    let registry = OciRegistry::start().unwrap();
    let image = registry.push_image("acme/api", "1.0", "x").unwrap();
    let gone = image.replace(
        registry.host(),
        &format!(
            "127.0.0.1:{}",
            fife_testkit::prometheus::free_port().unwrap()
        ),
    );
    let client = Registry::new(vec![gone[..gone.find('/').unwrap()].to_string()]);
    let err = client.verify(&gone, &requirements(None)).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot reach registry 127.0.0.1:"),
        "{err}"
    );
}
