//! Cosign signatures: the simple-signing payload in each layer of the `sha256-<digest>.sig`
//! image, its signature annotation, and which trusted key (if any) signed this digest.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::keys::{TrustedKey, describe};
use crate::reference::PinnedImage;
use crate::verdict::Refusal;

/// The media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `critical.type` of a container image signature (cosign and containers/image write it).
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// One signature layer as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayload {
    /// The payload blob, byte for byte: the signature is over these bytes.
    pub payload: Vec<u8>,
    /// The base64 DER signature from the layer's annotation.
    pub signature: String,
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: SignedImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// The trusted key that signed this image's digest, or why none did. A signature by a trusted
/// key over another digest is reported before "signed by another key": it is the more
/// specific problem.
pub fn signed_by<'k>(
    image: &PinnedImage,
    keys: &'k [TrustedKey],
    signatures: &[SignedPayload],
) -> Result<&'k TrustedKey, Refusal> {
    if signatures.is_empty() {
        return Err(Refusal::Unsigned {
            image: image.to_string(),
            tag: image.signature_tag(),
        });
    }
    let mut nearest = None;
    for signed in signatures {
        let Ok(signature) = STANDARD.decode(signed.signature.trim()) else {
            continue;
        };
        for key in keys
            .iter()
            .filter(|key| key.verifies(&signed.payload, &signature))
        {
            match serde_json::from_slice::<SimpleSigning>(&signed.payload) {
                Ok(payload) if payload.critical.kind != SIGNATURE_TYPE => {
                    nearest = Some(Refusal::BadPayload {
                        image: image.to_string(),
                        key: key.to_string(),
                        problem: format!(
                            "its type is '{}', not '{SIGNATURE_TYPE}'",
                            payload.critical.kind
                        ),
                    });
                }
                Ok(payload) if payload.critical.image.digest == image.digest => return Ok(key),
                Ok(payload) => {
                    nearest = Some(Refusal::OtherDigest {
                        image: image.to_string(),
                        key: key.to_string(),
                        signed: payload.critical.image.digest,
                    });
                }
                Err(e) => {
                    nearest = Some(Refusal::BadPayload {
                        image: image.to_string(),
                        key: key.to_string(),
                        problem: e.to_string(),
                    });
                }
            }
        }
    }
    Err(nearest.unwrap_or_else(|| Refusal::NotByTrustedKey {
        image: image.to_string(),
        keys: describe(keys),
        signatures: signatures.len(),
    }))
}

/// The payload cosign signs for `image`.
#[cfg(test)]
pub(crate) fn simple_signing_payload(image: &PinnedImage) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": format!("{}/{}", image.registry, image.repository)},
            "image": {"docker-manifest-digest": image.digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    }))
    .expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{sign, signing_key};

    fn image(fill: char) -> PinnedImage {
        PinnedImage::parse(&format!(
            "registry.test/app@sha256:{}",
            fill.to_string().repeat(64)
        ))
        .unwrap()
    }

    fn signed(payload: Vec<u8>, seed: u8) -> SignedPayload {
        let signature = STANDARD.encode(sign(&signing_key(seed), &payload));
        SignedPayload { payload, signature }
    }

    fn trusted() -> Vec<TrustedKey> {
        vec![TrustedKey::new("release", *signing_key(1).verifying_key())]
    }

    #[test]
    fn a_signature_by_a_trusted_key_over_this_digest_passes() {
        let keys = trusted();
        let img = image('a');
        let found = signed_by(
            &img,
            &keys,
            &[
                signed(b"junk".to_vec(), 9),
                signed(simple_signing_payload(&img), 1),
            ],
        )
        .unwrap();
        assert_eq!(found.name(), "release");
    }

    #[test]
    fn no_signature_is_unsigned() {
        let err = signed_by(&image('a'), &trusted(), &[]).unwrap_err();
        assert!(matches!(err, Refusal::Unsigned { .. }));
        assert!(
            err.to_string()
                .contains(&format!("sha256-{}.sig", "a".repeat(64))),
            "{err}"
        );
    }

    #[test]
    fn another_key_names_the_trusted_keys() {
        let img = image('a');
        let err =
            signed_by(&img, &trusted(), &[signed(simple_signing_payload(&img), 2)]).unwrap_err();
        assert!(
            matches!(err, Refusal::NotByTrustedKey { signatures: 1, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("key \"release\" (sha256:"),
            "{err}"
        );
    }

    #[test]
    fn a_payload_for_another_digest_is_refused_as_such() {
        let img = image('a');
        let err = signed_by(
            &img,
            &trusted(),
            &[signed(simple_signing_payload(&image('b')), 1)],
        )
        .unwrap_err();
        match &err {
            Refusal::OtherDigest { signed, .. } => assert_eq!(signed, &image('b').digest),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_tampered_payload_does_not_verify() {
        let img = image('a');
        let mut layer = signed(simple_signing_payload(&image('b')), 1);
        layer.payload = simple_signing_payload(&img);
        let err = signed_by(&img, &trusted(), &[layer]).unwrap_err();
        assert!(matches!(err, Refusal::NotByTrustedKey { .. }), "{err}");
    }

    #[test]
    fn a_signed_payload_that_is_not_simple_signing_is_refused() {
        let img = image('a');
        let err = signed_by(&img, &trusted(), &[signed(b"{\"hello\":1}".to_vec(), 1)]).unwrap_err();
        assert!(matches!(err, Refusal::BadPayload { .. }), "{err}");
    }
}
