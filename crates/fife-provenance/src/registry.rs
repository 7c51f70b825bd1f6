//! The registry edge: fetches the signature (`sha256-<digest>.sig`) and attestation
//! (`sha256-<digest>.att`) images of a digest over the OCI distribution API, anonymously or
//! with the registry's bearer-token challenge, and checks every blob against its digest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::attestation::DSSE_MEDIA_TYPE;
use crate::reference::PinnedImage;
use crate::signature::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignedPayload};
use crate::verdict::{Attachments, Refusal, Requirements, Verified, judge};

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
/// Signature payloads and DSSE envelopes are a few KiB; anything far larger is not one, and is
/// not downloaded.
const MAX_BLOB_BYTES: usize = 4 << 20;
/// More layers than any signing tool attaches to one digest.
const MAX_LAYERS: usize = 64;

/// Why the registry could not be asked: not a verdict on the image, so the caller retries.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "cannot reach registry {registry} for image {image}: {source}; check the registry address and the network"
    )]
    Unreachable {
        registry: String,
        image: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "registry {registry} answered {status} for {what} of image {image}; check that the registry serves the OCI distribution API and allows anonymous pulls"
    )]
    Status {
        registry: String,
        image: String,
        what: String,
        status: StatusCode,
    },
    #[error(
        "image {image}: {what} from registry {registry} is not usable ({problem}); the registry's copy is damaged or not an OCI artifact"
    )]
    Damaged {
        registry: String,
        image: String,
        what: String,
        problem: String,
    },
}

/// A client for the registries images are verified against.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    plain_http: Vec<String>,
    /// Bearer tokens by registry and repository, so a check does not log in once per blob.
    tokens: Mutex<HashMap<(String, String), String>>,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Token {
    token: Option<String>,
    access_token: Option<String>,
}

impl Registry {
    /// A client that speaks HTTPS to every registry; `plain_http` lists registry hosts
    /// (`host:port`) reached over plain HTTP instead, such as a local registry.
    pub fn new(plain_http: Vec<String>) -> Registry {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("the TLS backend is compiled in");
        Registry {
            http,
            plain_http,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `image` against `requirements`: a tag-only reference is refused without asking
    /// the registry. The outer error means the registry could not be asked.
    pub async fn verify(
        &self,
        image: &str,
        requirements: &Requirements,
    ) -> Result<Result<Verified, Refusal>, RegistryError> {
        let pinned = match PinnedImage::parse(image) {
            Ok(pinned) => pinned,
            Err(refusal) => return Ok(Err(refusal.into())),
        };
        let attachments = self
            .attachments(&pinned, requirements.provenance.is_some())
            .await?;
        Ok(judge(&pinned, requirements, &attachments))
    }

    /// The signature layers of the digest and, when asked, its attestation envelopes.
    pub async fn attachments(
        &self,
        image: &PinnedImage,
        with_attestations: bool,
    ) -> Result<Attachments, RegistryError> {
        let mut attachments = Attachments::default();
        for layer in self
            .layers(image, &image.signature_tag(), SIMPLE_SIGNING_MEDIA_TYPE)
            .await?
        {
            let Some(signature) = layer.annotations.get(SIGNATURE_ANNOTATION).cloned() else {
                continue;
            };
            let payload = self.blob(image, &layer.digest).await?;
            attachments
                .signatures
                .push(SignedPayload { payload, signature });
        }
        if with_attestations {
            for layer in self
                .layers(image, &image.attestation_tag(), DSSE_MEDIA_TYPE)
                .await?
            {
                attachments
                    .attestations
                    .push(self.blob(image, &layer.digest).await?);
            }
        }
        Ok(attachments)
    }

    /// The layers of `media_type` in the manifest at `tag`; none when the tag does not exist.
    async fn layers(
        &self,
        image: &PinnedImage,
        tag: &str,
        media_type: &str,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let what = format!("the manifest at tag {tag}");
        let Some(bytes) = self
            .get(image, &format!("manifests/{tag}"), MANIFEST_TYPES, &what)
            .await?
        else {
            return Ok(Vec::new());
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| damaged(image, &what, e.to_string()))?;
        if manifest.layers.len() > MAX_LAYERS {
            return Err(damaged(
                image,
                &what,
                format!("{} layers, more than {MAX_LAYERS}", manifest.layers.len()),
            ));
        }
        Ok(manifest
            .layers
            .into_iter()
            .filter(|l| l.media_type == media_type)
            .collect())
    }

    /// A blob, checked against its digest: the manifest is fetched by tag, but what it points
    /// at must be exactly what it names.
    async fn blob(&self, image: &PinnedImage, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let what = format!("blob {digest}");
        let bytes = self
            .get(image, &format!("blobs/{digest}"), "*/*", &what)
            .await?
            .ok_or_else(|| {
                damaged(
                    image,
                    &what,
                    "the manifest names it, the registry does not have it".into(),
                )
            })?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(damaged(
                image,
                &what,
                format!("its content hashes to {actual}"),
            ));
        }
        Ok(bytes)
    }

    /// GETs a path under the repository; `None` for 404. Answers a bearer challenge once.
    async fn get(
        &self,
        image: &PinnedImage,
        path: &str,
        accept: &str,
        what: &str,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let host = image.api_host();
        let scheme = if self
            .plain_http
            .iter()
            .any(|h| h == host || h == &image.registry)
        {
            "http"
        } else {
            "https"
        };
        let url = format!("{scheme}://{host}/v2/{}/{path}", image.repository);
        let key = (host.to_string(), image.repository.clone());
        let mut retried = false;
        loop {
            let mut request = self.http.get(&url).header(ACCEPT, accept);
            let token = self
                .tokens
                .lock()
                .expect("the token cache is never poisoned")
                .get(&key)
                .cloned();
            if let Some(token) = token {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            let response = request
                .send()
                .await
                .map_err(|source| unreachable(image, source))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !retried {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(bearer_challenge);
                if let Some(Some(challenge)) = challenge {
                    let token = self.token(image, &challenge).await?;
                    self.tokens
                        .lock()
                        .expect("the token cache is never poisoned")
                        .insert(key.clone(), token);
                    retried = true;
                    continue;
                }
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                return Err(RegistryError::Status {
                    registry: image.registry.clone(),
                    image: image.to_string(),
                    what: what.to_string(),
                    status,
                });
            }
            if response
                .content_length()
                .is_some_and(|n| n > MAX_BLOB_BYTES as u64)
            {
                return Err(damaged(
                    image,
                    what,
                    format!("larger than {MAX_BLOB_BYTES} bytes"),
                ));
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|source| unreachable(image, source))?;
            if bytes.len() > MAX_BLOB_BYTES {
                return Err(damaged(
                    image,
                    what,
                    format!("larger than {MAX_BLOB_BYTES} bytes"),
                ));
            }
            return Ok(Some(bytes.to_vec()));
        }
    }

    /// An anonymous pull token from the realm the registry named.
    async fn token(
        &self,
        image: &PinnedImage,
        challenge: &BearerChallenge,
    ) -> Result<String, RegistryError> {
        let scope = challenge
            .scope
            .clone()
            .unwrap_or_else(|| format!("repository:{}:pull", image.repository));
        let mut query = vec![("scope", scope)];
        if let Some(service) = &challenge.service {
            query.push(("service", service.clone()));
        }
        let what = format!("a pull token from {}", challenge.realm);
        let response = self
            .http
            .get(&challenge.realm)
            .query(&query)
            .send()
            .await
            .map_err(|source| unreachable(image, source))?;
        if !response.status().is_success() {
            return Err(RegistryError::Status {
                registry: image.registry.clone(),
                image: image.to_string(),
                what,
                status: response.status(),
            });
        }
        let token: Token = response
            .json()
            .await
            .map_err(|source| unreachable(image, source))?;
        token
            .token
            .or(token.access_token)
            .ok_or_else(|| damaged(image, &what, "the answer has no token".into()))
    }
}

fn unreachable(image: &PinnedImage, source: reqwest::Error) -> RegistryError {
    RegistryError::Unreachable {
        registry: image.registry.clone(),
        image: image.to_string(),
        source,
    }
}

fn damaged(image: &PinnedImage, what: &str, problem: String) -> RegistryError {
    RegistryError::Damaged {
        registry: image.registry.clone(),
        image: image.to_string(),
        what: what.to_string(),
        problem,
    }
}

/// `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`.
#[derive(Debug, PartialEq, Eq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

fn bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut found = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').map_or((after, ""), |(v, a)| (v, a)),
        };
        found.insert(name.trim().to_ascii_lowercase(), value.to_string());
        rest = after.trim_start_matches([',', ' ']);
    }
    Some(BearerChallenge {
        realm: found.remove("realm")?,
        service: found.remove("service"),
        scope: found.remove("scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_bearer_challenge() {
        let challenge = bearer_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        )
        .unwrap();
        assert_eq!(
            challenge,
            BearerChallenge {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            }
        );
        assert_eq!(bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(bearer_challenge(r#"Bearer service="x""#), None);
        assert_eq!(
            bearer_challenge("Bearer realm=https://ghcr.io/token")
                .unwrap()
                .realm,
            "https://ghcr.io/token"
        );
    }
}
