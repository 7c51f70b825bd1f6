//! End to end, the signature gate: the real `fife controller`, the Kubernetes API test
//! server, a real registry (Debian's `docker-registry`) with images and cosign signatures
//! pushed by skopeo, and a ReleasePolicy whose `verifyImages` names a keys Secret. A signed
//! digest rolls out; an unsigned digest and a tag are refused before any canary pod exists,
//! with the refusal in the Rollout's status and in an Event.

use std::time::Duration;

use crate::harness::{Cluster, Controller, ControllerOptions, image_patch, rollout};
use fife_testkit::registry::{OciRegistry, public_key_pem, signing_key};
use serde_json::Value;

const POLICY: &str = r#"apiVersion: fife.dev/v1alpha1
kind: ReleasePolicy
metadata: {name: signed-images}
spec:
  namespaces: [default]
  verifyImages: {keysSecret: image-keys}
"#;

async fn canary_pods(cluster: &Cluster) -> i64 {
    cluster.deployment_replicas("api-canary").await.unwrap_or(0)
}

async fn event_with(cluster: &Cluster, text: &str) -> Option<Value> {
    let events = cluster.get("events.events.k8s.io").await?;
    events["items"]
        .as_array()?
        .iter()
        .find(|e| e["note"].as_str().is_some_and(|n| n.contains(text)))
        .cloned()
}

/// Waits until the Rollout is held at the Signature gate with a message containing `text`,
/// then checks that no canary pod was asked for and that an Event says the same.
async fn refused(cluster: &Cluster, text: &str, new_event: bool) -> String {
    let message = cluster
        .wait_for(
            &format!("the Signature gate holding: {text}"),
            Duration::from_secs(30),
            || async {
                let status = cluster.rollout_status("api").await;
                let holding = &status["release"]["holding"];
                (holding["gate"] == "Signature")
                    .then(|| {
                        holding["message"]
                            .as_str()
                            .filter(|m| m.contains(text))
                            .map(str::to_string)
                    })
                    .flatten()
            },
        )
        .await;
    assert_eq!(
        canary_pods(cluster).await,
        0,
        "a canary pod before the image was verified"
    );
    if !new_event {
        // The gate already held with another reason: its Event was for the first refusal.
        return message;
    }
    let event = cluster
        .wait_for(
            &format!("an Event: {text}"),
            Duration::from_secs(10),
            || event_with(cluster, text),
        )
        .await;
    assert_eq!(event["reason"], "ReleaseGateHolds", "{event}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_digest_rolls_out_an_unsigned_one_and_a_tag_never_start() {
    let registry = OciRegistry::start().unwrap();
    let release = signing_key(1);
    let v1 = registry.push_image("acme/api", "1", "v1").unwrap();
    registry.sign(&v1, &release, None).unwrap();
    let v2 = registry.push_image("acme/api", "2", "v2").unwrap();
    registry.sign(&v2, &release, None).unwrap();
    let unsigned = registry.push_image("acme/api", "3", "unsigned").unwrap();
    let tag = format!("{}/acme/api:2", registry.host());

    let cluster = Cluster::start().await;
    let key_file = cluster.dir.path().join("release.pub");
    std::fs::write(&key_file, public_key_pem(&release)).unwrap();
    // kubectl's create sends protobuf, which the API test server does not read: apply it.
    let secret = cluster
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "image-keys",
            "--dry-run=client",
            "-o",
            "yaml",
            "-n",
            "default",
            &format!("--from-file=release.pub={}", key_file.display()),
        ])
        .await;
    cluster.apply(&secret).await;
    cluster.apply(POLICY).await;
    let _controller = Controller::start_with_args(
        &cluster,
        ControllerOptions {
            identity: "fife-e2e",
            lease: None,
            audit_log: cluster.dir.path().join("audit.log"),
        },
        &[
            "--registry-plain-http",
            registry.host(),
            "--image-keys-namespace",
            "default",
        ],
    );

    let steps = "        - setWeight: 50\n        - pause: {duration: 1s}\n";
    cluster.apply(&rollout("api", &v1, 2, "", steps)).await;
    cluster
        .wait_phase("api", "Healthy", Duration::from_secs(30))
        .await;

    cluster
        .merge_patch("rollout/api", &image_patch(&unsigned))
        .await;
    let message = refused(&cluster, "is not signed", true).await;
    assert!(message.contains(&unsigned), "{message}");

    cluster.merge_patch("rollout/api", &image_patch(&tag)).await;
    let message = refused(&cluster, "names a tag, not a digest", false).await;
    assert!(message.contains(&tag), "{message}");

    cluster.merge_patch("rollout/api", &image_patch(&v2)).await;
    let stable = cluster
        .wait_for(
            "the signed digest promoted",
            Duration::from_secs(40),
            || async {
                let stable = cluster.get("deployment/api-stable").await?;
                let status = cluster.rollout_status("api").await;
                (stable["spec"]["template"]["spec"]["containers"][0]["image"] == v2.as_str()
                    && status["phase"] == "Healthy")
                    .then_some(stable)
            },
        )
        .await;
    assert_eq!(stable["spec"]["replicas"], 2, "{stable}");
}
