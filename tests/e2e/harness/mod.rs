//! The end-to-end harness: the Kubernetes API test server and synthetic workloads from
//! `fife-testkit`, a real Prometheus, the real `fife controller` binary and the real
//! `kubectl`. Everything started here is stopped when its guard drops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fife_test_apiserver::{ApiServer, Config};
use fife_testkit::prometheus::{PrometheusServer, ScrapeJob};
use fife_testkit::workload::{Workload, WorkloadConfig, WorkloadRole};
use serde_json::Value;

/// The workspace root (the test target belongs to `crates/fife-cli`, two levels below it).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The `fife` binary Cargo built for this test run, so it is never stale.
pub fn fife_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fife"))
}

/// An API server that answers every request with `403 Forbidden` and `message`, as a real
/// server answers a user without the RBAC the request needs.
pub async fn forbidding_server(message: &'static str) -> String {
    let app = axum::Router::new().fallback(move || async move {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Forbidden",
            "details": {"group": "fife.dev", "kind": "rollouts"}, "code": 403,
        });
        (
            axum::http::StatusCode::FORBIDDEN,
            [("content-type", "application/json")],
            body.to_string(),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The one free-port helper of the test kit.
pub use fife_testkit::prometheus::free_port;

/// A test cluster: API server, kubeconfig, CRDs installed.
pub struct Cluster {
    pub api: ApiServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let cluster = Cluster::without_crds().await;
        cluster
            .kubectl(&["apply", "-f", workspace().join("crds").to_str().unwrap()])
            .await;
        cluster
    }

    /// A cluster where Fife is not installed yet.
    pub async fn without_crds() -> Cluster {
        Cluster::with_config(Config::default()).await
    }

    /// A cluster where Fife is not installed yet, with `config` (its `rollout_delay`
    /// is the harness's), e.g. HTTPS and RBAC.
    pub async fn with_config(config: Config) -> Cluster {
        let config = Config {
            rollout_delay: Duration::from_millis(100),
            ..config
        };
        let api = ApiServer::start("127.0.0.1:0".parse().unwrap(), config)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).unwrap();
        Cluster {
            api,
            dir,
            kubeconfig,
        }
    }

    /// Runs the real kubectl against the test server; panics with its output on failure.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("/usr/bin/kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply` of a manifest given as text.
    pub async fn apply(&self, manifest: &str) {
        let path = self
            .dir
            .path()
            .join(format!("m-{}.yaml", free_port().unwrap()));
        std::fs::write(&path, manifest).unwrap();
        self.kubectl(&["apply", "-f", path.to_str().unwrap()]).await;
    }

    /// A JSON merge patch, as `kubectl fife` writes it.
    pub async fn merge_patch(&self, resource: &str, patch: &Value) {
        self.kubectl(&[
            "patch",
            resource,
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ])
        .await;
    }

    pub async fn get(&self, resource: &str) -> Option<Value> {
        let out = tokio::process::Command::new("/usr/bin/kubectl")
            .args(["get", resource, "-o", "json"])
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .await
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let started = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if started.elapsed() > timeout {
                let rollouts = self.get("rollouts").await;
                let statuses: Vec<Value> = rollouts
                    .map(|r| r["items"].as_array().cloned().unwrap_or_default())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| r["status"].clone())
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; rollout statuses: {statuses:#?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn rollout_status(&self, name: &str) -> Value {
        self.get(&format!("rollout/{name}"))
            .await
            .map(|r| r["status"].clone())
            .unwrap_or(Value::Null)
    }

    /// Waits until the rollout's status phase is `phase`.
    pub async fn wait_phase(&self, name: &str, phase: &str, timeout: Duration) -> Value {
        self.wait_for(&format!("{name} to be {phase}"), timeout, || async {
            let status = self.rollout_status(name).await;
            (status["phase"] == phase).then_some(status)
        })
        .await
    }

    pub async fn deployment_replicas(&self, name: &str) -> Option<i64> {
        self.get(&format!("deployment/{name}")).await?["spec"]["replicas"].as_i64()
    }
}

/// One `fife controller` process; SIGKILLed when dropped.
pub struct Controller {
    pub child: Child,
    pub metrics: String,
    pub identity: String,
    pub audit_log: PathBuf,
}

pub struct ControllerOptions<'a> {
    pub identity: &'a str,
    pub lease: Option<(&'a str, Duration, Duration)>,
    pub audit_log: PathBuf,
}

impl Controller {
    pub fn start(cluster: &Cluster, options: ControllerOptions<'_>) -> Controller {
        Controller::start_with_args(cluster, options, &[])
    }

    /// [`Controller::start`] with more `fife controller` flags (e.g. `--webhook-url`).
    pub fn start_with_args(
        cluster: &Cluster,
        options: ControllerOptions<'_>,
        extra: &[&str],
    ) -> Controller {
        Controller::spawn(cluster, options, &cluster.kubeconfig, extra)
    }

    fn spawn(
        cluster: &Cluster,
        options: ControllerOptions<'_>,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> Controller {
        let port = free_port().unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cluster.dir.path().join(format!("{}.log", options.identity)))
            .unwrap();
        let mut command = Command::new(fife_binary());
        command
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--audit-log")
            .arg(&options.audit_log)
            .arg("--identity")
            .arg(options.identity)
            .args(extra)
            .env("RUST_LOG", "info,kube=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((name, duration, grace)) = options.lease {
            command
                .arg("--lease-name")
                .arg(name)
                .arg("--lease-namespace")
                .arg("default")
                .arg("--lease-duration")
                .arg(format!("{}s", duration.as_secs()))
                .arg("--lease-grace")
                .arg(format!("{}s", grace.as_secs()));
        }
        let child = command.spawn().expect("the fife binary starts");
        Controller {
            child,
            metrics: format!("http://127.0.0.1:{port}/metrics"),
            identity: options.identity.to_owned(),
            audit_log: options.audit_log,
        }
    }

    /// [`Controller::start_with_args`] with another kubeconfig than the cluster's
    /// administrator's (e.g. a ServiceAccount token's).
    pub fn start_with_kubeconfig(
        cluster: &Cluster,
        options: ControllerOptions<'_>,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> Controller {
        Controller::spawn(cluster, options, kubeconfig, extra)
    }

    pub fn simple(cluster: &Cluster) -> Controller {
        Controller::start(
            cluster,
            ControllerOptions {
                identity: "fife-e2e",
                lease: None,
                audit_log: cluster.dir.path().join("audit.log"),
            },
        )
    }

    /// One scrape of `/metrics`, parsed.
    pub async fn scrape(&self) -> Option<prometheus_parse::Scrape> {
        let body = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).ok()
    }

    /// The sum over the series of a metric (by its exposed sample name), if scraped.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        let lines = body.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).ok()?;
        let values: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The audit log as parsed records.
pub fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The test kit's real Prometheus, scraping the given jobs every second; stops when
/// dropped.
pub struct Prometheus {
    _server: PrometheusServer,
    pub address: String,
}

impl Prometheus {
    pub fn start(jobs: &[(&str, Vec<SocketAddr>)]) -> Prometheus {
        let jobs: Vec<ScrapeJob<'_>> = jobs
            .iter()
            .map(|(name, targets)| ScrapeJob { name, targets })
            .collect();
        let server = PrometheusServer::start(&jobs).unwrap();
        Prometheus {
            address: server.address().to_owned(),
            _server: server,
        }
    }

    /// Waits until `query` returns at least `series` series.
    pub async fn wait_for_series(&self, query: &str, series: usize) {
        let started = Instant::now();
        loop {
            let url = format!("{}/api/v1/query", self.address);
            if let Ok(resp) = reqwest::Client::new()
                .get(&url)
                .query(&[("query", query)])
                .send()
                .await
                && let Ok(body) = resp.json::<Value>().await
                && body["data"]["result"]
                    .as_array()
                    .is_some_and(|r| r.len() >= series)
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "Prometheus has no `{query}` after 40 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

pub async fn workload(role: WorkloadRole, scale: f64, seed: u64) -> Workload {
    let mut config = WorkloadConfig::new(role, seed);
    config.latency.scale = scale;
    config.requests_per_second = 400.0;
    Workload::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// The comparison template the `slow_and_same` jobs are judged with: per-pod p50 latency
/// of `{{args.job}}`, canary against baseline with the default pod test, two looks a second
/// apart.
pub const LATENCY_TEMPLATE: &str = r#"apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: latency, namespace: default}
spec:
  args: [{name: job}, {name: prometheus}]
  metrics:
    - name: latency-vs-baseline
      interval: 1s
      count: 2
      failureLimit: 0
      provider:
        prometheus:
          address: "{{args.prometheus}}"
          query: |
            histogram_quantile(0.5, sum by (le, instance) (rate(
              http_request_duration_seconds_bucket{job="{{args.job}}",fife_role="{{role}}"}[3s])))
          range: {lookback: 10s, step: 1s}
      compare:
        direction: increase
        confidence: 0.99
        allowedIncrease: 1.10
        minSamples: 6
"#;

/// Two jobs of three canary and three baseline workloads each, scraped by a real
/// Prometheus: in `slow` the canary is 20% slower, in `same` identical. Persistent pod
/// offsets: each side's pods run at 0.97, 1.00 and 1.03 of its scale. Keep the workloads
/// as long as the Prometheus.
pub async fn slow_and_same() -> (Vec<Workload>, Prometheus) {
    let mut pods = Vec::new();
    for (seed, (role, scale)) in [
        (WorkloadRole::Canary, 1.2),
        (WorkloadRole::Baseline, 1.0),
        (WorkloadRole::Canary, 1.0),
        (WorkloadRole::Baseline, 1.0),
    ]
    .into_iter()
    .enumerate()
    {
        for (i, offset) in [0.97, 1.0, 1.03].into_iter().enumerate() {
            pods.push(workload(role, scale * offset, 10 * seed as u64 + i as u64).await);
        }
    }
    let addresses = |side: &[Workload]| side.iter().map(|w| w.local_addr()).collect();
    let prometheus = Prometheus::start(&[
        ("slow", addresses(&pods[..6])),
        ("same", addresses(&pods[6..])),
    ]);
    (pods, prometheus)
}

/// A Rollout manifest with the given image, extra canary settings (lines indented 6) and
/// steps (YAML list items indented 8).
pub fn rollout(name: &str, image: &str, replicas: i32, extra_canary: &str, steps: &str) -> String {
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata:
  name: {name}
  namespace: default
spec:
  replicas: {replicas}
  progressDeadlineSeconds: 60
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: app
          image: "{image}"
          ports: [{{containerPort: 8080, name: http}}]
  strategy:
    canary:
{extra_canary}      steps:
{steps}"#
    )
}

/// A JSON merge patch setting the image of `rollout()`'s container.
pub fn image_patch(image: &str) -> Value {
    serde_json::json!({ "spec": { "template": { "spec": { "containers": [
        { "name": "app", "image": image, "ports": [{ "containerPort": 8080, "name": "http" }] }
    ] } } } })
}

/// A manual action request, as `kubectl fife promote|abort|retry` writes it.
pub fn manual(action: &str, id: &str) -> Value {
    serde_json::json!({ "spec": { "manualAction": {
        "action": action, "id": id, "requestedBy": "e2e@example.com"
    } } })
}
