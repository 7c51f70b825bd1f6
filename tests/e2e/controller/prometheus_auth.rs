//! End to end with Prometheus credentials from Secrets: a small HTTP gate in front of a real
//! Prometheus answers only requests carrying `Authorization: Bearer <token>`, and keeps a
//! journal of every request it got. A template whose `auth.bearerTokenSecretRef` names a
//! Secret marked as a metrics credential (and allowed this address) measures and promotes;
//! one naming a missing Secret, an unmarked Secret, or a marked Secret whose allowed
//! addresses leave this one out errors, the rollout aborts with a message naming the Secret,
//! and the journal shows the refused Secrets' values never left the controller.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Cluster, Controller, Prometheus, image_patch, rollout, workload};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fife_testkit::workload::WorkloadRole;
use serde_json::Value;

const TOKEN: &str = "s3cr3t-token";

/// What the gate saw.
#[derive(Default)]
struct Seen {
    authorized: AtomicUsize,
    refused: AtomicUsize,
    /// Every request as text: method, URI, each header, body.
    journal: Mutex<Vec<String>>,
}

impl Seen {
    /// The journaled requests that contain `needle` anywhere.
    fn carrying(&self, needle: &str) -> Vec<String> {
        let journal = self.journal.lock().unwrap();
        journal
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }
}

struct Gate {
    upstream: String,
    client: reqwest::Client,
    seen: Arc<Seen>,
}

/// Forwards a request with the right bearer token to Prometheus; refuses any other with 401.
async fn gate(
    State(gate): State<Arc<Gate>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut entry = format!("{method} {uri}\n");
    for (name, value) in &headers {
        entry.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    entry.push_str(&String::from_utf8_lossy(&body));
    gate.seen.journal.lock().unwrap().push(entry);
    let authorized = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {TOKEN}").as_str());
    if !authorized {
        gate.seen.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::UNAUTHORIZED, "bearer token required").into_response();
    }
    gate.seen.authorized.fetch_add(1, Ordering::SeqCst);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap();
    let mut request = gate
        .client
        .request(method, format!("{}{path}", gate.upstream))
        .body(body);
    if let Some(content_type) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        request = request.header("content-type", content_type);
    }
    match request.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let body = answer.bytes().await.unwrap_or_default();
            (status, body).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn start_gate(upstream: &str) -> (SocketAddr, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = Arc::new(Gate {
        upstream: upstream.to_owned(),
        client: reqwest::Client::new(),
        seen: seen.clone(),
    });
    let app = axum::Router::new().fallback(gate).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A threshold metric through the gate, authenticating with the token in `secret`.
fn template(name: &str, secret: &str, gate: SocketAddr) -> String {
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}, namespace: default}}
spec:
  metrics:
    - name: targets-up
      interval: 1s
      count: 2
      consecutiveErrorLimit: 1
      successCondition: "result[0] >= 1"
      provider:
        prometheus:
          address: "http://{gate}"
          query: sum(up{{job="auth"}})
          auth:
            bearerTokenSecretRef: {{name: {secret}, key: token}}
"#
    )
}

fn steps(template: &str) -> String {
    format!(
        "        - setWeight: 50\n        - analysis:\n            templates: [{{templateName: {template}}}]\n        - setWeight: 100\n"
    )
}

/// The token as `kubectl create secret --from-file` stores it from a file `echo` wrote:
/// base64 of "s3cr3t-token\n"; marked as a metrics credential for the gate's address only.
fn token_secret(gate: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: prom-token
  namespace: default
  labels: {{fife.dev/metrics-credential: \"true\"}}
  annotations: {{fife.dev/allowed-addresses: \"http://{gate}\"}}
type: Opaque
data: {{token: czNjcjN0LXRva2VuCg==}}
"
    )
}

/// A Secret of the namespace that was never meant for Prometheus: no mark.
const DB_PASSWORD: &str = "db-hunter2";
const UNMARKED_SECRET: &str = "apiVersion: v1
kind: Secret
metadata: {name: db-password, namespace: default}
type: Opaque
stringData: {token: db-hunter2}
";

/// A marked Secret that may go only to the real Prometheus, not to the gate.
const ELSEWHERE_TOKEN: &str = "thanos-s3cr3t-value";
const ELSEWHERE_SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: thanos-token
  namespace: default
  labels: {fife.dev/metrics-credential: \"true\"}
  annotations: {fife.dev/allowed-addresses: \"https://thanos.monitoring.svc:10902\"}
type: Opaque
stringData: {token: thanos-s3cr3t-value}
";

async fn run_of(cluster: &Cluster, rollout: &str) -> Value {
    let runs = cluster.get("analysisruns").await.unwrap();
    runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["spec"]["rollout"]["name"] == rollout)
        .cloned()
        .unwrap_or_else(|| panic!("no AnalysisRun for {rollout}: {runs:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_only_from_marked_secrets_and_a_refused_one_aborts_naming_it() {
    let target = workload(WorkloadRole::Canary, 1.0, 41).await;
    let prometheus = Prometheus::start(&[("auth", vec![target.local_addr()])]);
    prometheus.wait_for_series(r#"up{job="auth"}"#, 1).await;
    let (gate, seen) = start_gate(&prometheus.address).await;
    // The gate really refuses a request without the token.
    let refused = reqwest::get(format!("http://{gate}/api/v1/query?query=up"))
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);

    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster.apply(&token_secret(gate)).await;
    cluster.apply(UNMARKED_SECRET).await;
    cluster.apply(ELSEWHERE_SECRET).await;
    let cases = [
        ("authed", "prom-token"),
        ("unauthed", "prom-token-missing"),
        ("unmarked", "db-password"),
        ("elsewhere", "thanos-token"),
    ];
    for (name, secret) in cases {
        cluster.apply(&template(name, secret, gate)).await;
        cluster
            .apply(&rollout(name, "api:1", 2, "", &steps(name)))
            .await;
    }
    for (name, _) in cases {
        cluster
            .wait_phase(name, "Healthy", Duration::from_secs(20))
            .await;
    }
    let refused_before = seen.refused.load(Ordering::SeqCst);
    let started = Instant::now();
    for (name, _) in cases {
        cluster
            .merge_patch(&format!("rollout/{name}"), &image_patch("api:2"))
            .await;
    }

    // Without its Secret: the measurements error, the run is Error, the rollout aborts and
    // says which Secret is missing.
    let aborted = cluster
        .wait_phase("unauthed", "Degraded", Duration::from_secs(20))
        .await;
    eprintln!("missing Secret: aborted after {:?}", started.elapsed());
    assert_eq!(aborted["abort"], true);
    assert_eq!(aborted["weights"]["canary"], 0);
    let message = aborted["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("default/prom-token-missing"),
        "the rollout's message names the Secret: {aborted:#}"
    );
    let run = run_of(&cluster, "unauthed").await;
    assert_eq!(run["status"]["phase"], "Error", "{run:#}");
    let measurement = &run["status"]["metricResults"][0]["measurements"][0];
    assert_eq!(measurement["phase"], "Error");
    let why = measurement["message"].as_str().unwrap();
    for part in [
        "auth.bearerTokenSecretRef",
        "default/prom-token-missing",
        "`token`",
        "create secret",
    ] {
        assert!(why.contains(part), "{part} missing from: {why}");
    }

    // An unmarked Secret, and a marked one whose allowed addresses leave the gate out: each
    // measurement errors naming the Secret and what is missing, the rollout aborts.
    for (name, secret, why_refused) in [
        (
            "unmarked",
            "db-password",
            "fife.dev/metrics-credential=\"true\"",
        ),
        (
            "elsewhere",
            "thanos-token",
            "may be sent only to https://thanos.monitoring.svc:10902",
        ),
    ] {
        let aborted = cluster
            .wait_phase(name, "Degraded", Duration::from_secs(20))
            .await;
        assert_eq!(aborted["weights"]["canary"], 0, "{aborted:#}");
        let message = aborted["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("default/{secret}")),
            "the rollout's message names the Secret: {aborted:#}"
        );
        let run = run_of(&cluster, name).await;
        let measurement = &run["status"]["metricResults"][0]["measurements"][0];
        assert_eq!(measurement["phase"], "Error", "{run:#}");
        let why = measurement["message"].as_str().unwrap();
        for part in [&format!("Secret default/{secret}"), why_refused] {
            assert!(why.contains(part), "{part} missing from: {why}");
        }
    }
    // No request the gate ever got carried a refused Secret's value.
    assert_eq!(seen.carrying(DB_PASSWORD), Vec::<String>::new());
    assert_eq!(seen.carrying(ELSEWHERE_TOKEN), Vec::<String>::new());

    // With its Secret: measured through the gate with the token, promoted.
    let promoted = cluster
        .wait_for(
            "authed to be Healthy on api:2",
            Duration::from_secs(20),
            || async {
                let status = cluster.rollout_status("authed").await;
                let stable = cluster.get("deployment/authed-stable").await?;
                (status["phase"] == "Healthy"
                    && stable["spec"]["template"]["spec"]["containers"][0]["image"] == "api:2")
                    .then_some(status)
            },
        )
        .await;
    eprintln!("with Secret: promoted after {:?}", started.elapsed());
    assert_eq!(promoted["weights"]["stable"], 100);
    let run = run_of(&cluster, "authed").await;
    assert_eq!(run["status"]["phase"], "Successful", "{run:#}");
    assert!(seen.authorized.load(Ordering::SeqCst) >= 2);
    assert_eq!(
        seen.refused.load(Ordering::SeqCst),
        refused_before,
        "the controller never queried without the token (so the trailing newline was dropped)"
    );
    // The token is never written where people read.
    let runs = cluster.get("analysisruns").await.unwrap().to_string();
    for value in [TOKEN, DB_PASSWORD, ELSEWHERE_TOKEN] {
        assert!(!runs.contains(value));
    }
    assert!(
        !seen.carrying(TOKEN).is_empty(),
        "the journal does record tokens"
    );
}
