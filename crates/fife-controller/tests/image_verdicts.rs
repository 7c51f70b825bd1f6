//! The signature gate's verifier against a real registry: each digest is verified once per
//! key set, a changed key set verifies again, and a registry that cannot be asked leaves
//! the image unverified rather than refused.

use fife_controller::runtime::image_verdicts::{ImageCheck, ImageVerifier};
use fife_provenance::{Requirements, TrustedKey};
use fife_testkit::registry::{OciRegistry, public_key_pem, signing_key};

fn keys(seeds: &[u8]) -> Requirements {
    Requirements {
        keys: seeds
            .iter()
            .map(|seed| {
                TrustedKey::from_pem(
                    format!("fife-system/image-keys/key-{seed}"),
                    &public_key_pem(&signing_key(*seed)),
                )
                .unwrap()
            })
            .collect(),
        provenance: None,
    }
}

#[tokio::test]
async fn verifies_each_digest_once_per_key_set() {
    let registry = OciRegistry::start().unwrap();
    let signed = registry.push_image("acme/api", "1.0", "signed").unwrap();
    registry.sign(&signed, &signing_key(1), None).unwrap();
    let unsigned = registry.push_image("acme/api", "1.1", "unsigned").unwrap();
    let tag = format!("{}/acme/api:1.0", registry.host());
    let verifier = ImageVerifier::new(vec![registry.host().to_string()], "fife-system".into());
    let images = vec![
        signed.clone(),
        unsigned.clone(),
        tag.clone(),
        signed.clone(),
    ];

    let first = verifier.verdicts(&images, &keys(&[1])).await;
    assert_eq!(first.len(), 3);
    assert!(
        matches!(&first[&signed], ImageCheck::Verified(m) if m.contains("key \"fife-system/image-keys/key-1\"")),
        "{first:?}"
    );
    assert!(
        matches!(&first[&unsigned], ImageCheck::Refused(m) if m.contains("is not signed")),
        "{first:?}"
    );
    assert!(
        matches!(&first[&tag], ImageCheck::Refused(m) if m.contains("names a tag")),
        "{first:?}"
    );

    // With the registry gone, the same key set is answered from what was verified.
    drop(registry);
    assert_eq!(verifier.verdicts(&images, &keys(&[1])).await, first);

    // Another key set (the Secret changed) asks the registry again, which cannot answer:
    // unverified, never refused for the registry's fault.
    let again = verifier
        .verdicts(std::slice::from_ref(&signed), &keys(&[1, 2]))
        .await;
    assert!(
        matches!(&again[&signed], ImageCheck::Unchecked(m) if m.starts_with("cannot reach registry")),
        "{again:?}"
    );
}
