//! A real OCI registry for one test: Debian's `docker-registry` on a free loopback port with
//! its storage in a temporary directory, and the images, cosign signatures and in-toto
//! attestations a test needs, written as OCI layouts and pushed with `skopeo`. The signature
//! and attestation formats are written here from their specifications, independently of
//! the reader in `fife-provenance`, so each checks the other. Killed when dropped.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::prometheus::free_port;

/// Where `scripts/install-deps.sh` (the Debian package `docker-registry`) puts the registry.
pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// The same script's `skopeo`, which pushes the layouts.
pub const SKOPEO_BINARY: &str = "/usr/bin/skopeo";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One layer of an artifact: its media type, content and annotations.
#[derive(Debug, Clone)]
pub struct ArtifactLayer {
    pub media_type: String,
    pub content: Vec<u8>,
    pub annotations: Value,
}

/// A running registry; stops when dropped.
#[derive(Debug)]
pub struct OciRegistry {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
}

impl OciRegistry {
    /// Starts the registry and waits until it answers `/v2/`.
    pub fn start() -> std::io::Result<OciRegistry> {
        let dir = tempfile::tempdir()?;
        let host = format!("127.0.0.1:{}", free_port()?);
        let config = dir.path().join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error, accesslog: {{disabled: true}}}}\n\
                 storage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {host}\n",
                dir.path().join("storage").display()
            ),
        )?;
        // skopeo reads a trust policy before any copy; this one accepts what the test pushes.
        std::fs::write(
            dir.path().join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot run {REGISTRY_BINARY} ({e}); run scripts/install-deps.sh to install it"),
                )
            })?;
        let registry = OciRegistry { child, host, dir };
        registry.wait_ready(Duration::from_secs(20))?;
        Ok(registry)
    }

    fn wait_ready(&self, limit: Duration) -> std::io::Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(mut stream) = std::net::TcpStream::connect(&self.host) {
                let _ = write!(stream, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.host);
                let mut answer = String::new();
                if stream.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.0 200")
                {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        Err(std::io::Error::other(format!(
            "the registry did not start on {}: {log}",
            self.host
        )))
    }

    /// `127.0.0.1:<port>`, the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Pushes a small image (an empty layer, a config labelled `label` so each label gives
    /// another digest) as `repository:tag`; returns `HOST/REPOSITORY@sha256:…`.
    pub fn push_image(&self, repository: &str, tag: &str, label: &str) -> std::io::Result<String> {
        // An empty tar archive: two zero blocks.
        let layer = vec![0u8; 1024];
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"fife.test/label": label}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        }))?;
        let digest = self.push(
            repository,
            tag,
            OCI_CONFIG,
            &config,
            &[ArtifactLayer {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                content: layer,
                annotations: json!({}),
            }],
        )?;
        Ok(format!("{}/{repository}@{digest}", self.host))
    }

    /// Pushes an artifact whose layers are `layers` as `repository:tag`, the way cosign
    /// stores signatures and attestations; returns its manifest digest.
    pub fn push_artifact(
        &self,
        repository: &str,
        tag: &str,
        layers: &[ArtifactLayer],
    ) -> std::io::Result<String> {
        let config = serde_json::to_vec(&json!({
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256(&l.content)).collect::<Vec<_>>()},
        }))?;
        self.push(repository, tag, OCI_CONFIG, &config, layers)
    }

    /// Signs `image` (a digest reference) with `key` the way `cosign sign --key` does: a
    /// simple-signing payload for `payload_digest` (the image's own digest unless a test
    /// wants a payload copied from another image), pushed at `sha256-<digest>.sig`.
    pub fn sign(
        &self,
        image: &str,
        key: &SigningKey,
        payload_digest: Option<&str>,
    ) -> std::io::Result<()> {
        let (repository, digest) = self.split(image)?;
        let payload = serde_json::to_vec(&json!({
            "critical": {
                "identity": {"docker-reference": format!("{}/{repository}", self.host)},
                "image": {"docker-manifest-digest": payload_digest.unwrap_or(digest)},
                "type": "cosign container image signature",
            },
            "optional": null,
        }))?;
        let signature: Signature = key.sign(&payload);
        let layer = ArtifactLayer {
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            annotations: json!({"dev.cosignproject.cosign/signature": STANDARD.encode(signature.to_der().as_bytes())}),
            content: payload,
        };
        self.push_artifact(repository, &tag_for(digest, "sig"), &[layer])
            .map(|_| ())
    }

    /// Attaches SLSA v1 provenance of `image` from `builder` and `source_repo`@`source_ref`,
    /// signed with `key`, the way `cosign attest --type slsaprovenance1` does.
    pub fn attest(
        &self,
        image: &str,
        key: &SigningKey,
        builder: &str,
        source_repo: &str,
        source_ref: &str,
    ) -> std::io::Result<()> {
        let (repository, digest) = self.split(image)?;
        let statement = serde_json::to_vec(&json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": format!("{}/{repository}", self.host), "digest": {"sha256": &digest["sha256:".len()..]}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                    "externalParameters": {"workflow": {"repository": source_repo, "ref": source_ref, "path": ".github/workflows/release.yml"}},
                    "resolvedDependencies": [{"uri": format!("git+{source_repo}@{source_ref}")}],
                },
                "runDetails": {"builder": {"id": builder}},
            },
        }))?;
        let payload_type = "application/vnd.in-toto+json";
        let mut pae = format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            statement.len()
        )
        .into_bytes();
        pae.extend_from_slice(&statement);
        let signature: Signature = key.sign(&pae);
        let envelope = serde_json::to_vec(&json!({
            "payloadType": payload_type,
            "payload": STANDARD.encode(&statement),
            "signatures": [{"keyid": "", "sig": STANDARD.encode(signature.to_der().as_bytes())}],
        }))?;
        let layer = ArtifactLayer {
            media_type: "application/vnd.dsse.envelope.v1+json".into(),
            annotations: json!({"predicateType": "https://slsa.dev/provenance/v1"}),
            content: envelope,
        };
        self.push_artifact(repository, &tag_for(digest, "att"), &[layer])
            .map(|_| ())
    }

    fn split<'a>(&self, image: &'a str) -> std::io::Result<(&'a str, &'a str)> {
        image
            .strip_prefix(&format!("{}/", self.host))
            .and_then(|rest| rest.split_once('@'))
            .ok_or_else(|| {
                std::io::Error::other(format!(
                    "{image} is not HOST/REPOSITORY@DIGEST of this registry"
                ))
            })
    }

    /// Writes an OCI layout with one manifest and copies it to the registry with skopeo,
    /// keeping its digest.
    fn push(
        &self,
        repository: &str,
        tag: &str,
        config_type: &str,
        config: &[u8],
        layers: &[ArtifactLayer],
    ) -> std::io::Result<String> {
        let layout = tempfile::tempdir_in(self.dir.path())?;
        let blobs = layout.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let mut descriptors = Vec::new();
        for layer in layers {
            descriptors.push(json!({
                "mediaType": layer.media_type,
                "digest": write_blob(&blobs, &layer.content)?,
                "size": layer.content.len(),
                "annotations": layer.annotations,
            }));
        }
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": write_blob(&blobs, config)?, "size": config.len()},
            "layers": descriptors,
        }))?;
        let digest = write_blob(&blobs, &manifest)?;
        std::fs::write(
            layout.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        std::fs::write(
            layout.path().join("index.json"),
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len(),
                               "annotations": {"org.opencontainers.image.ref.name": "push"}}],
            }))?,
        )?;
        let output = Command::new(SKOPEO_BINARY)
            .arg("--policy")
            .arg(self.dir.path().join("policy.json"))
            .args(["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:push", layout.path().display()))
            .arg(format!("docker://{}/{repository}:{tag}", self.host))
            .output()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot run {SKOPEO_BINARY} ({e}); run scripts/install-deps.sh to install it"))
            })?;
        if !output.status.success() {
            return Err(std::io::Error::other(format!(
                "skopeo could not push {repository}:{tag}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(digest)
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixed ECDSA P-256 key, so a test's keys are the same on every run.
pub fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32])
        .expect("a constant non-zero scalar below the order is a valid key")
}

/// The PEM public key of `key`, as `cosign.pub` holds it.
pub fn public_key_pem(key: &SigningKey) -> String {
    key.verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("a P-256 key always encodes as PEM")
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn tag_for(digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", digest.replacen(':', "-", 1))
}

fn write_blob(blobs: &Path, content: &[u8]) -> std::io::Result<String> {
    let digest = sha256(content);
    std::fs::write(blobs.join(&digest["sha256:".len()..]), content)?;
    Ok(digest)
}
