//! Image references: which registry, repository and digest an image string names, and the
//! refusal of references that name only a tag (a tag can move; a signature binds a digest).

use std::fmt;

use fife_api::validation::image_digest;

/// The registry an image without a registry host is pulled from, as container runtimes read it.
const DEFAULT_REGISTRY: &str = "docker.io";
/// Docker Hub's API host: `docker.io` is only its name in references.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// An image pinned by digest: `[registry/]repository[:tag]@sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PinnedImage {
    /// The reference as written, for messages.
    pub reference: String,
    /// The registry host (and port), as written or `docker.io`.
    pub registry: String,
    /// The repository path inside the registry (`library/nginx` for `nginx`).
    pub repository: String,
    /// `sha256:<64 lower-case hex>`.
    pub digest: String,
}

/// Why an image string cannot be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "image {0} names a tag, not a digest: a tag can be moved to other content after it was \
         signed; pin the image as REPOSITORY@sha256:<digest> (skopeo inspect or crane digest print it)"
    )]
    TagOnly(String),
    #[error(
        "image {image}: the digest '{digest}' is not sha256:<64 lower-case hex>; copy the digest \
         the registry printed when the image was pushed"
    )]
    BadDigest { image: String, digest: String },
    #[error(
        "image '{0}' has no repository name; write it as [REGISTRY/]REPOSITORY@sha256:<digest>"
    )]
    Empty(String),
}

impl PinnedImage {
    /// Reads an image reference; only digest-pinned references are accepted.
    pub fn parse(image: &str) -> Result<PinnedImage, ReferenceError> {
        let image = image.trim();
        let Some((name, digest)) = image.rsplit_once('@') else {
            return Err(ReferenceError::TagOnly(image.to_string()));
        };
        if image_digest(image).is_none() && !name.is_empty() {
            return Err(ReferenceError::BadDigest {
                image: image.to_string(),
                digest: digest.to_string(),
            });
        }
        // A tag before the digest is allowed and ignored, as container runtimes do: the tag is
        // after the last '/', so a registry port (`host:5000/app`) is not mistaken for one.
        let name = match name.rfind(':') {
            Some(colon) if !name[colon..].contains('/') => &name[..colon],
            _ => name,
        };
        if name.is_empty() {
            return Err(ReferenceError::Empty(image.to_string()));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            Some(_) => (DEFAULT_REGISTRY.to_string(), name.to_string()),
            None => (DEFAULT_REGISTRY.to_string(), format!("library/{name}")),
        };
        Ok(PinnedImage {
            reference: image.to_string(),
            registry,
            repository,
            digest: digest.to_string(),
        })
    }

    /// The 64 hex digits of the digest.
    pub fn digest_hex(&self) -> &str {
        &self.digest["sha256:".len()..]
    }

    /// The tag cosign (and skopeo's sigstore attachments) store the signature under.
    pub fn signature_tag(&self) -> String {
        format!("sha256-{}.sig", self.digest_hex())
    }

    /// The tag cosign stores attestations under.
    pub fn attestation_tag(&self) -> String {
        format!("sha256-{}.att", self.digest_hex())
    }

    /// The host the registry's HTTP API answers on.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn reads_registry_repository_and_digest() {
        let image =
            PinnedImage::parse(&format!("127.0.0.1:5000/team/app:1.2@sha256:{HEX}")).unwrap();
        assert_eq!(image.registry, "127.0.0.1:5000");
        assert_eq!(image.repository, "team/app");
        assert_eq!(image.digest_hex(), HEX);
        assert_eq!(image.signature_tag(), format!("sha256-{HEX}.sig"));
        assert_eq!(image.attestation_tag(), format!("sha256-{HEX}.att"));
    }

    #[test]
    fn short_names_are_docker_hub_library_images() {
        let image = PinnedImage::parse(&format!("nginx@sha256:{HEX}")).unwrap();
        assert_eq!(image.registry, "docker.io");
        assert_eq!(image.repository, "library/nginx");
        assert_eq!(image.api_host(), "registry-1.docker.io");
        let image = PinnedImage::parse(&format!("acme/api@sha256:{HEX}")).unwrap();
        assert_eq!(image.repository, "acme/api");
        let image = PinnedImage::parse(&format!("localhost/api@sha256:{HEX}")).unwrap();
        assert_eq!(image.registry, "localhost");
    }

    #[test]
    fn a_tag_is_refused_with_how_to_pin() {
        let err = PinnedImage::parse("ghcr.io/acme/api:1.2").unwrap_err();
        assert_eq!(err, ReferenceError::TagOnly("ghcr.io/acme/api:1.2".into()));
        assert!(
            err.to_string()
                .contains("pin the image as REPOSITORY@sha256:"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_digest_is_refused() {
        for digest in [
            "sha256:abc",
            "sha512:00",
            &format!("sha256:{}", HEX.to_uppercase()),
        ] {
            let err = PinnedImage::parse(&format!("ghcr.io/acme/api@{digest}")).unwrap_err();
            assert!(
                matches!(err, ReferenceError::BadDigest { .. }),
                "{digest}: {err}"
            );
        }
    }
}
