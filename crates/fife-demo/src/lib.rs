//! `fife-demo` (`make demo`): Fife's main job on one machine. It starts the Kubernetes API test
//! server, synthetic canary and baseline workloads, a real Prometheus scraping them, and the
//! real `fife controller`; it then ships two releases of one Rollout — a healthy one that is
//! promoted through its steps and a 30% slower one that the default comparison (the pod
//! test, three canary against three baseline pods) rolls back — shows each change of the Rollout as it happens, and ends with the audit log and
//! `fife audit verify` on it.
//!
//! ```text
//!   demo ──kubectl apply──▶ API test server ◀──watch/apply── fife controller ──▶ audit log
//!                                                                 │ range queries
//!   workloads (release-2, release-3) ◀──scrape── Prometheus ◀─────┘
//! ```
//!
//! Everything it starts is a child process killed on drop, or a task of this process, so
//! nothing is left listening when it returns, whether it succeeded or not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use fife_test_apiserver::{ApiServer, Config};
use fife_testkit::prometheus::{PrometheusServer, ScrapeJob};
use fife_testkit::workload::{LatencyModel, Workload, WorkloadConfig, WorkloadRole};

/// Where the demo runs and what it runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The `fife` binary to run as the controller and for `get`/`audit verify`.
    pub fife: PathBuf,
    /// The repository root (for `crds/`).
    pub repo: PathBuf,
    /// Working directory for the kubeconfig, manifests and the audit log.
    pub work_dir: PathBuf,
    /// How long one release may take before the demo gives up.
    pub release_timeout: Duration,
}

/// The Rollout the demo ships.
const ROLLOUT: &str = "checkout-api";

/// Runs the demo; `Ok` only when release 2 was promoted, release 3 rolled back and the
/// audit chain verified.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&options.work_dir)
        .with_context(|| format!("cannot create {}", options.work_dir.display()))?;
    let audit_log = options.work_dir.join("audit.jsonl");
    // A fresh chain per demo: an old log would be continued, not replaced.
    let _ = std::fs::remove_file(&audit_log);

    say(started, "starting the Kubernetes API test server");
    let api = ApiServer::start(
        "127.0.0.1:0".parse()?,
        Config {
            rollout_delay: Duration::from_millis(400),
            ..Config::default()
        },
    )
    .await
    .context("cannot start the API test server")?;
    let kubeconfig = options.work_dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)?;
    let cluster = Kubectl {
        kubeconfig: kubeconfig.clone(),
        cache: options.work_dir.join("kube-cache"),
    };

    say(
        started,
        "starting synthetic workloads for release 2 (same latency) and release 3 (30% slower)",
    );
    let release2 = WorkloadPair::start(1.0, 20).await?;
    let release3 = WorkloadPair::start(1.3, 30).await?;
    let prometheus = PrometheusServer::start(&[
        ScrapeJob {
            name: "release-2",
            targets: &release2.targets(),
        },
        ScrapeJob {
            name: "release-3",
            targets: &release3.targets(),
        },
    ])
    .context("the demo needs a real Prometheus (scripts/install-deps.sh installs it)")?;
    say(started, &format!("Prometheus at {}", prometheus.address()));

    cluster.apply_path(&options.repo.join("crds")).await?;
    let mut controller = tokio::process::Command::new(&options.fife)
        .arg("controller")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--metrics-addr")
        .arg("127.0.0.1:0")
        .arg("--audit-log")
        .arg(&audit_log)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(
            options.work_dir.join("controller.log"),
        )?))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} controller", options.fife.display()))?;
    say(started, "fife controller started");
    // A person can watch the demo in a browser; the demo does not depend on it.
    let _dashboard = match start_dashboard(&options.fife, &kubeconfig, &audit_log).await {
        Ok((child, url)) => {
            say(
                started,
                &format!("dashboard at {url} (live while the demo runs)"),
            );
            Some(child)
        }
        Err(e) => {
            say(started, &format!("no dashboard this time: {e:#}"));
            None
        }
    };

    let manifests = options.work_dir.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let template = manifests.join("analysis-template.yaml");
    std::fs::write(&template, analysis_template())?;
    cluster.apply_path(&template).await?;

    wait_for_samples(&prometheus, started).await?;

    let ship = Shipper {
        view: ProgressView {
            cluster: &cluster,
            fife: &options.fife,
            started,
        },
        manifests: &manifests,
        prometheus: prometheus.address(),
        timeout: options.release_timeout,
    };
    let first = ship
        .release(
            1,
            "first deploy (nothing to compare against, goes straight to Healthy)",
            "4a1c9e0b7d2f5a8c3e6b9d0f2a4c6e8b1d3f5a7c9e0b2d4f6a8c1e3b5d7f9a0c",
            "release-2",
        )
        .await?;
    if first.phase() != "Healthy" {
        bail!("release 1 did not become Healthy: {}", first.message());
    }
    let promoted = ship
        .release(
            2,
            "same latency as stable; expect promotion through every step",
            "8b2f4c6d1e0a9f7b3c5d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e9f1a2b",
            "release-2",
        )
        .await?;
    if promoted.phase() != "Healthy" {
        bail!("release 2 was not promoted: {}", promoted.message());
    }
    let rolled_back = ship
        .release(
            3,
            "30% slower canary; expect the pod comparison to roll it back",
            "c3e5a7b9d1f2e4c6a8b0d2f4e6c8a0b2d4f6e8a1c3b5d7f9e0a2c4b6d8f0e1a3",
            "release-3",
        )
        .await?;
    if rolled_back.phase() != "Degraded" {
        bail!("release 3 was not rolled back: {}", rolled_back.message());
    }

    // Stop the controller before reading the log so the chain is complete.
    let _ = controller.kill().await;
    drop(prometheus);
    drop(api);

    println!();
    println!("audit log: {}", audit_log.display());
    let verify = tokio::process::Command::new(&options.fife)
        .arg("audit")
        .arg("verify")
        .arg(&audit_log)
        .output()
        .await
        .context("cannot run fife audit verify")?;
    print!("{}", String::from_utf8_lossy(&verify.stdout));
    eprint!("{}", String::from_utf8_lossy(&verify.stderr));
    if !verify.status.success() {
        bail!("fife audit verify failed on {}", audit_log.display());
    }
    println!(
        "demo finished in {:.0}s: release 2 promoted, release 3 rolled back, audit chain whole",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn say(started: Instant, what: &str) {
    println!("[{:>5.1}s] == {what}", started.elapsed().as_secs_f64());
}

/// Pods a side: the default comparison judges the canary's pods against the spread between
/// the baseline's, which one pod a side cannot show (that is Inconclusive, a pause).
const PODS_PER_SIDE: u64 = 3;

/// The canary and baseline pods of one release; the baseline runs the stable version.
struct WorkloadPair {
    canary: Vec<Workload>,
    baseline: Vec<Workload>,
}

impl WorkloadPair {
    async fn start(canary_scale: f64, seed: u64) -> anyhow::Result<Self> {
        let config = |role, scale, seed| WorkloadConfig {
            latency: LatencyModel {
                median_seconds: 0.1,
                sigma: 0.3,
                scale,
            },
            requests_per_second: 300.0,
            ..WorkloadConfig::new(role, seed)
        };
        let listen: SocketAddr = "127.0.0.1:0".parse()?;
        let mut pair = Self {
            canary: Vec::new(),
            baseline: Vec::new(),
        };
        for pod in 0..PODS_PER_SIDE {
            let seed = seed + 2 * pod;
            pair.canary.push(
                Workload::start(listen, config(WorkloadRole::Canary, canary_scale, seed)).await?,
            );
            pair.baseline.push(
                Workload::start(listen, config(WorkloadRole::Baseline, 1.0, seed + 1)).await?,
            );
        }
        Ok(pair)
    }

    fn targets(&self) -> Vec<SocketAddr> {
        self.canary
            .iter()
            .chain(&self.baseline)
            .map(Workload::local_addr)
            .collect()
    }
}

/// Waits until Prometheus holds enough points for both roles of both releases.
async fn wait_for_samples(prometheus: &PrometheusServer, started: Instant) -> anyhow::Result<()> {
    say(
        started,
        "waiting for Prometheus to hold a few scrapes of every workload",
    );
    let query = "count(count_over_time(http_requests_total[30s]) >= 12)";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let url = format!("{}/api/v1/query", prometheus.address());
        let ready = reqwest::Client::new()
            .get(&url)
            .query(&[("query", query)])
            .send()
            .await
            .ok()
            .and_then(|r| r.error_for_status().ok());
        if let Some(response) = ready {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let value = body["data"]["result"][0]["value"][1]
                .as_str()
                .unwrap_or("0");
            // Two releases of PODS_PER_SIDE canary and baseline workloads, one `code`
            // series each.
            if value.parse::<f64>().unwrap_or(0.0) >= (4 * PODS_PER_SIDE) as f64 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "Prometheus at {} has no samples after 60s",
                prometheus.address()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The real `kubectl` against the test server.
struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .kill_on_drop(true);
        command
    }

    async fn apply_path(&self, path: &Path) -> anyhow::Result<()> {
        let out = self
            .command()
            .arg("apply")
            .arg("-f")
            .arg(path)
            .output()
            .await
            .context("cannot run kubectl (scripts/install-deps.sh installs it)")?;
        if !out.status.success() {
            bail!(
                "kubectl apply -f {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    async fn rollout(&self) -> Option<Value> {
        let out = self
            .command()
            .args(["get", "rollouts.fife.dev", ROLLOUT, "-o", "json"])
            .output()
            .await
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }
}

/// The Rollout's status as the demo reads it.
struct Observed(Value);

impl Observed {
    fn status(&self) -> &Value {
        &self.0["status"]
    }
    fn phase(&self) -> &str {
        self.status()["phase"].as_str().unwrap_or("")
    }
    fn message(&self) -> &str {
        self.status()["message"].as_str().unwrap_or("")
    }
    /// The stable revision runs and no other revision is being rolled out (a first
    /// deploy has no canary revision at all).
    fn stable_is_canary(&self) -> bool {
        let status = self.status();
        status["stableRevision"].is_string()
            && (status["canaryRevision"].is_null()
                || status["stableRevision"] == status["canaryRevision"])
    }
    fn observed_current(&self) -> bool {
        self.status()["observedGeneration"] == self.0["metadata"]["generation"]
    }
    /// One line per visible change: phase, step, weights, message.
    fn line(&self) -> String {
        let status = self.status();
        let weight = |role: &str| status["weights"][role].as_i64().unwrap_or(0);
        format!(
            "{:<11} step {:<5} canary {:>3}%  baseline {:>3}%  stable {:>3}%  {}",
            self.phase(),
            status["stepLabel"].as_str().unwrap_or("-"),
            weight("canary"),
            weight("baseline"),
            weight("stable"),
            self.message()
        )
    }
}

/// Ships one release of the demo's Rollout and follows it to its end.
struct Shipper<'a> {
    view: ProgressView<'a>,
    manifests: &'a Path,
    prometheus: &'a str,
    timeout: Duration,
}

impl Shipper<'_> {
    /// Applies release `number` (image digest `digest`, analysis on the workloads of `job`)
    /// and returns the Rollout once it is Healthy at that release or Degraded.
    async fn release(
        &self,
        number: u32,
        what: &str,
        digest: &str,
        job: &str,
    ) -> anyhow::Result<Observed> {
        say(self.view.started, &format!("release {number}: {what}"));
        let manifest = self.manifests.join(format!("release-{number}.yaml"));
        let image = format!("registry.example.com/checkout-api@sha256:{digest}");
        std::fs::write(&manifest, rollout(&image, job, self.prometheus))?;
        self.view.cluster.apply_path(&manifest).await?;
        let finished = self
            .view
            .follow_until(self.timeout, |s| {
                (s.phase() == "Healthy" && s.stable_is_canary() && s.observed_current())
                    || s.phase() == "Degraded"
            })
            .await
            .with_context(|| format!("release {number} did not finish"))?;
        if number > 1 {
            self.view.tree().await;
        }
        Ok(finished)
    }
}

/// Prints each change of the Rollout as it happens.
struct ProgressView<'a> {
    cluster: &'a Kubectl,
    fife: &'a Path,
    started: Instant,
}

impl ProgressView<'_> {
    async fn follow_until(
        &self,
        timeout: Duration,
        done: impl Fn(&Observed) -> bool,
    ) -> anyhow::Result<Observed> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Some(object) = self.cluster.rollout().await {
                let observed = Observed(object);
                let line = observed.line();
                if line != last {
                    println!("[{:>5.1}s]    {line}", self.started.elapsed().as_secs_f64());
                    last = line;
                }
                if done(&observed) {
                    return Ok(observed);
                }
            }
            if Instant::now() > deadline {
                bail!("gave up after {}s", timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `fife get rollout`'s tree, as a person would look at it.
    async fn tree(&self) {
        let out = tokio::process::Command::new(self.fife)
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .env("NO_COLOR", "1")
            .args(["get", "rollout", ROLLOUT])
            .output()
            .await;
        if let Ok(out) = out
            && out.status.success()
        {
            println!();
            print!("{}", String::from_utf8_lossy(&out.stdout));
            println!();
        }
    }
}

/// A comparison metric (per-pod median latency, canary pods against baseline pods, with the
/// default test) and a threshold metric (canary success rate), measured every 2 s.
fn analysis_template() -> String {
    r#"apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: checkout-api-gate, namespace: default}
spec:
  args: [{name: job}, {name: prometheus}]
  metrics:
    - name: success-rate
      interval: 2s
      count: 3
      successCondition: "result[0] >= 0.99"
      failureLimit: 0
      provider:
        prometheus:
          address: "{{args.prometheus}}"
          query: |
            sum(rate(http_requests_total{job="{{args.job}}",fife_role="canary",code!~"5.."}[10s]))
            / sum(rate(http_requests_total{job="{{args.job}}",fife_role="canary"}[10s]))
    - name: latency-vs-baseline
      interval: 2s
      count: 3
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
        confidence: 0.95
        allowedIncrease: 1.10
        minSamples: 8
"#
    .to_owned()
}

/// The Rollout at one image; `job` names the workloads its analysis measures, on the
/// Prometheus at `prometheus`.
fn rollout(image: &str, job: &str, prometheus: &str) -> String {
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata: {{name: {ROLLOUT}, namespace: default}}
spec:
  replicas: 4
  progressDeadlineSeconds: 60
  selector:
    matchLabels: {{app: {ROLLOUT}}}
  template:
    metadata:
      labels: {{app: {ROLLOUT}}}
    spec:
      containers:
        - name: app
          image: "{image}"
          ports: [{{containerPort: 8080, name: http}}]
  strategy:
    canary:
      baseline: true
      abortScaleDownDelaySeconds: 2
      steps:
        - setWeight: 25
        - pause: {{duration: 3s}}
        - analysis:
            templates: [{{templateName: checkout-api-gate}}]
            args: [{{name: job, value: {job}}}, {{name: prometheus, value: "{prometheus}"}}]
        - setWeight: 50
        - pause: {{duration: 2s}}
        - setWeight: 100
"#
    )
}

/// `fife dashboard` on a free loopback port with the demo's kubeconfig and audit log;
/// returns the process (killed on drop) and the URL it printed.
async fn start_dashboard(
    fife: &Path,
    kubeconfig: &Path,
    audit_log: &Path,
) -> anyhow::Result<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(fife)
        .args(["dashboard", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--audit-log")
        .arg(audit_log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} dashboard", fife.display()))?;
    let stdout = child
        .stdout
        .take()
        .context("the dashboard's output is not readable")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("the dashboard printed no address within 10 s")??
        .context("the dashboard exited before printing its address")?;
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .with_context(|| format!("the dashboard printed no URL: {line}"))?
        .to_owned();
    Ok((child, url))
}
