//! Controller at scale: the real `fife controller` (release build) against the API test
//! server (release build, its own process), N Rollouts deployed and then all given a new
//! image that walks setWeight 50 → pause 1s → setWeight 100. Measures time to all Healthy,
//! time to all promoted, reconciles and API requests per reconcile, the idle reconcile rate,
//! and CPU and memory of each process from /proc. Prints Markdown rows for
//! docs/BENCHMARKS.md "Controller at scale".
//!
//! With `SOAK_SECONDS` set, each run then keeps changing the image of every Rollout, one
//! round after another (a round ends when all are promoted), for that long, sampling the
//! controller's VmRSS every 10 s: memory must stay flat under continuous change.
//!
//! Run through `benches/controller-scale.sh` (it builds the binaries), or:
//! `SIZES=1000 CONCURRENCIES=4,16 cargo run --release -p fife-testkit --example controller_scale`
//! with `FIFE`, `FIFE_TESTKIT` pointing at release binaries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde_json::{Value, json};

/// Our own requests carry this agent, so the server's counts separate them.
const DRIVER_AGENT: &str = "fife-controller-scale";
/// Writes in flight from the driver when creating and patching Rollouts.
const DRIVER_IN_FLIGHT: usize = 16;
const ROLLOUTS_PATH: &str = "/apis/fife.dev/v1alpha1/namespaces/default/rollouts";

struct Options {
    sizes: Vec<usize>,
    concurrencies: Vec<u16>,
    fife: PathBuf,
    testkit: PathBuf,
    crds: PathBuf,
    work_dir: PathBuf,
    idle: Duration,
    phase_timeout: Duration,
    soak: Duration,
}

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<Vec<T>> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("{name}: `{v}` is not a number"))
        })
        .collect()
}

fn env_path(name: &str, default: &str) -> PathBuf {
    std::env::var_os(name).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// CPU seconds and memory of one process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    cpu_seconds: f64,
    hwm_mib: f64,
    rss_mib: f64,
}

fn sample(pid: u32) -> ProcSample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    ProcSample {
        cpu_seconds: (ticks(11) + ticks(12)) / 100.0,
        hwm_mib: kib("VmHWM:") / 1024.0,
        rss_mib: kib("VmRSS:") / 1024.0,
    }
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the driver's watch last saw of one Rollout.
#[derive(Debug, Clone, Default)]
struct Seen {
    generation: i64,
    observed_generation: i64,
    phase: String,
    stable_revision: String,
}

type Board = Arc<Mutex<HashMap<String, Seen>>>;

fn seen_of(object: &Value) -> Option<(String, Seen)> {
    let name = object["metadata"]["name"].as_str()?.to_owned();
    let status = &object["status"];
    Some((
        name,
        Seen {
            generation: object["metadata"]["generation"].as_i64().unwrap_or(0),
            observed_generation: status["observedGeneration"].as_i64().unwrap_or(0),
            phase: status["phase"].as_str().unwrap_or_default().to_owned(),
            stable_revision: status["stableRevision"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        },
    ))
}

/// Lists the Rollouts into `board`; returns the list's resourceVersion.
async fn relist(http: &reqwest::Client, base: &str, board: &Board) -> anyhow::Result<String> {
    let list: Value = http
        .get(format!("{base}{ROLLOUTS_PATH}"))
        .send()
        .await?
        .json()
        .await?;
    let mut map = board.lock().expect("board lock poisoned");
    map.clear();
    for item in list["items"].as_array().into_iter().flatten() {
        if let Some((name, seen)) = seen_of(item) {
            map.insert(name, seen);
        }
    }
    Ok(list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Keeps `board` current from one watch on the Rollouts (resumed when the stream ends,
/// relisted after 410 Gone): much cheaper for the server than polling 10,000 objects.
async fn follow(http: reqwest::Client, base: String, board: Board) {
    let mut version = String::new();
    loop {
        if version.is_empty() {
            match relist(&http, &base, &board).await {
                Ok(v) => version = v,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        let url = format!(
            "{base}{ROLLOUTS_PATH}?watch=true&resourceVersion={version}&timeoutSeconds=3600"
        );
        let Ok(mut response) = http.get(&url).send().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut buffer: Vec<u8> = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let object = &event["object"];
                match event["type"].as_str() {
                    Some("ERROR") => version.clear(),
                    Some(kind) => {
                        if let Some(v) = object["metadata"]["resourceVersion"].as_str() {
                            v.clone_into(&mut version);
                        }
                        if kind == "BOOKMARK" {
                            continue;
                        }
                        if let Some((name, seen)) = seen_of(object) {
                            let mut map = board.lock().expect("board lock poisoned");
                            if kind == "DELETED" {
                                map.remove(&name);
                            } else {
                                map.insert(name, seen);
                            }
                        }
                    }
                    None => {}
                }
            }
            if version.is_empty() {
                break;
            }
        }
    }
}

fn rollout_name(i: usize) -> String {
    format!("app-{i:05}")
}

fn container(image: &str) -> Value {
    json!([{ "name": "app", "image": image, "ports": [{ "containerPort": 8080, "name": "http" }] }])
}

fn rollout(name: &str) -> Value {
    json!({
        "apiVersion": "fife.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "replicas": 2,
            // Generous, so a slow controller shows up as time, not as aborted rollouts.
            "progressDeadlineSeconds": 3600,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": container("registry.example/app:1") }
            },
            "strategy": { "canary": { "steps": [
                { "setWeight": 50 },
                { "pause": { "duration": "1s" } },
                { "setWeight": 100 }
            ] } }
        }
    })
}

/// Sends one write per Rollout, `DRIVER_IN_FLIGHT` at a time; fails on the first refusal.
async fn write_all(
    http: &reqwest::Client,
    base: &str,
    n: usize,
    request: impl Fn(&reqwest::Client, &str, usize) -> reqwest::RequestBuilder,
) -> anyhow::Result<()> {
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let send = request(http, base, i).send();
            async move {
                let response = send.await?;
                if !response.status().is_success() {
                    bail!(
                        "write {i} refused: {} {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    );
                }
                Ok(())
            }
        })
        .buffer_unordered(DRIVER_IN_FLIGHT)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Waits until `done` holds for all `n` Rollouts; returns how many it held for at the end
/// and how many were Degraded.
async fn wait_all(
    board: &Board,
    n: usize,
    timeout: Duration,
    done: impl Fn(&Seen) -> bool,
) -> (usize, usize) {
    let started = Instant::now();
    loop {
        let (count, degraded) = {
            let map = board.lock().expect("board lock poisoned");
            (
                map.values().filter(|s| done(s)).count(),
                map.values().filter(|s| s.phase == "Degraded").count(),
            )
        };
        if count >= n || started.elapsed() > timeout {
            return (count, degraded);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The controller's reconcile count, reconcile seconds and failed reconciles.
async fn reconciles(http: &reqwest::Client, metrics: &str) -> (f64, f64, f64) {
    let Ok(response) = http.get(metrics).send().await else {
        return (0.0, 0.0, 0.0);
    };
    let body = response.text().await.unwrap_or_default();
    let sum_of = |prefix: &str| {
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>()
    };
    (
        sum_of("fife_reconcile_duration_seconds_count"),
        sum_of("fife_reconcile_duration_seconds_sum"),
        sum_of("fife_reconcile_errors_total"),
    )
}

/// Resource requests the server counted from agents other than the driver and kubectl.
async fn controller_requests(http: &reqwest::Client, base: &str) -> HashMap<String, u64> {
    let counts: Value = match http.get(format!("{base}/testkit/requests")).send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    let mut by_verb = HashMap::new();
    for (agent, verbs) in counts.as_object().into_iter().flatten() {
        if agent == DRIVER_AGENT || agent.starts_with("kubectl") {
            continue;
        }
        for (verb, count) in verbs.as_object().into_iter().flatten() {
            *by_verb.entry(verb.clone()).or_default() += count.as_u64().unwrap_or(0);
        }
    }
    by_verb
}

fn total(counts: &HashMap<String, u64>) -> u64 {
    counts.values().sum()
}

fn delta(after: &HashMap<String, u64>, before: &HashMap<String, u64>) -> String {
    let mut verbs: Vec<(&String, u64)> = after
        .iter()
        .map(|(v, c)| (v, c - before.get(v).copied().unwrap_or(0)))
        .filter(|(_, c)| *c > 0)
        .collect();
    verbs.sort();
    verbs
        .iter()
        .map(|(v, c)| format!("{v} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn start_api_server(options: &Options, dir: &Path) -> anyhow::Result<(Process, String)> {
    let kubeconfig = dir.join("kubeconfig");
    let mut child = Command::new(&options.testkit)
        .args(["apiserver", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", options.testkit.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let process = Process(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let url = line.trim().to_owned();
    if !url.starts_with("http://") {
        bail!("the API test server printed `{url}` instead of its URL");
    }
    let status = Command::new("kubectl")
        .arg("apply")
        .arg("-f")
        .arg(&options.crds)
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("kubectl apply -f {} failed", options.crds.display());
    }
    Ok((process, url))
}

fn start_controller(
    options: &Options,
    dir: &Path,
    concurrency: u16,
    port: u16,
) -> anyhow::Result<Process> {
    let log = std::fs::File::create(dir.join("controller.log"))?;
    let child = Command::new(&options.fife)
        .arg("controller")
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--audit-log")
        .arg(dir.join("audit.log"))
        .arg("--identity")
        .arg("fife-scale")
        .arg("--concurrency")
        .arg(concurrency.to_string())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", options.fife.display()))?;
    Ok(Process(child))
}

/// The figures of one run.
#[derive(Debug, Default)]
struct Run {
    n: usize,
    concurrency: u16,
    create_seconds: f64,
    healthy_seconds: f64,
    healthy_count: usize,
    change_seconds: f64,
    changed_count: usize,
    degraded: usize,
    reconciles_deploy: f64,
    reconciles_change: f64,
    reconcile_mean_ms: f64,
    reconcile_errors: f64,
    requests_deploy: u64,
    requests_change: u64,
    requests_detail: String,
    idle_reconciles_per_second: f64,
    idle_requests_per_second: f64,
    controller_cpu_deploy: f64,
    controller_cpu_change: f64,
    controller_cpu_idle: f64,
    controller_hwm: f64,
    controller_rss: f64,
    server_cpu: f64,
    server_hwm: f64,
    server_rss: f64,
    soak: Option<Soak>,
}

/// Continuous image changes after the measured ones.
#[derive(Debug, Default)]
struct Soak {
    seconds: f64,
    rounds: usize,
    /// (seconds since the soak began, controller VmRSS in MiB), every 10 s.
    rss: Vec<(f64, f64)>,
    hwm_mib: f64,
}

impl Soak {
    /// Mean VmRSS over samples taken in [from, to) seconds.
    fn mean_rss(&self, from: f64, to: f64) -> f64 {
        let window: Vec<f64> = self
            .rss
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, r)| *r)
            .collect();
        window.iter().sum::<f64>() / window.len().max(1) as f64
    }
}

/// Every Rollout gets a new image, round after round, each round waiting until all are
/// promoted at the new generation, for `duration`.
async fn soak(
    http: &reqwest::Client,
    base: &str,
    board: &Board,
    n: usize,
    controller_pid: u32,
    duration: Duration,
    phase_timeout: Duration,
) -> anyhow::Result<Soak> {
    let samples: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    let started = Instant::now();
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            loop {
                let rss = sample(controller_pid).rss_mib;
                samples
                    .lock()
                    .expect("samples lock poisoned")
                    .push((started.elapsed().as_secs_f64(), rss));
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
        })
    };
    let mut rounds = 0;
    // After the deploy (generation 1) and the measured change (2).
    let mut generation = 2;
    while started.elapsed() < duration {
        generation += 1;
        let image = format!("registry.example/app:soak-{generation}");
        write_all(http, base, n, |http, base, i| {
            let patch =
                json!({ "spec": { "template": { "spec": { "containers": container(&image) } } } });
            http.patch(format!("{base}{ROLLOUTS_PATH}/{}", rollout_name(i)))
                .header("Content-Type", "application/merge-patch+json")
                .body(patch.to_string())
        })
        .await?;
        let (promoted, degraded) = wait_all(board, n, phase_timeout, |s| {
            s.generation == generation
                && s.observed_generation == generation
                && s.phase == "Healthy"
        })
        .await;
        if promoted < n {
            bail!("soak round {rounds}: {promoted} of {n} promoted, {degraded} Degraded");
        }
        rounds += 1;
    }
    sampler.abort();
    let rss = samples.lock().expect("samples lock poisoned").clone();
    Ok(Soak {
        seconds: started.elapsed().as_secs_f64(),
        rounds,
        rss,
        hwm_mib: sample(controller_pid).hwm_mib,
    })
}

async fn run_one(options: &Options, n: usize, concurrency: u16) -> anyhow::Result<Run> {
    let dir = options.work_dir.join(format!("n{n}-c{concurrency}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (server, base) = start_api_server(options, &dir)?;
    let server_pid = server.0.id();
    let port = fife_testkit::prometheus::free_port()?;
    let controller = start_controller(options, &dir, concurrency, port)?;
    let controller_pid = controller.0.id();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    // The API test server refuses anonymous requests; the driver is its administrator.
    let mut admin = reqwest::header::HeaderMap::new();
    admin.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", fife_test_apiserver::ADMIN_TOKEN).parse()?,
    );
    let http = reqwest::Client::builder()
        .user_agent(DRIVER_AGENT)
        .default_headers(admin)
        .build()?;
    let ready = Instant::now();
    while !http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if ready.elapsed() > Duration::from_secs(30) {
            bail!(
                "the controller was not ready after 30 s; see {}/controller.log",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let board: Board = Arc::default();
    let watch = tokio::spawn(follow(http.clone(), base.clone(), board.clone()));
    let mut run = Run {
        n,
        concurrency,
        ..Run::default()
    };
    let requests_start = controller_requests(&http, &base).await;
    let (reconciles_start, _, _) = reconciles(&http, &metrics).await;
    let cpu_start = sample(controller_pid);

    // First deploy.
    let started = Instant::now();
    write_all(&http, &base, n, |http, base, i| {
        http.post(format!("{base}{ROLLOUTS_PATH}"))
            .json(&rollout(&rollout_name(i)))
    })
    .await?;
    run.create_seconds = started.elapsed().as_secs_f64();
    let (healthy, _) = wait_all(&board, n, options.phase_timeout, |s| {
        s.generation == 1 && s.observed_generation == 1 && s.phase == "Healthy"
    })
    .await;
    run.healthy_seconds = started.elapsed().as_secs_f64();
    run.healthy_count = healthy;
    let after_deploy = sample(controller_pid);
    let requests_deploy = controller_requests(&http, &base).await;
    let (reconciles_deploy, _, _) = reconciles(&http, &metrics).await;
    run.controller_cpu_deploy = after_deploy.cpu_seconds - cpu_start.cpu_seconds;
    run.reconciles_deploy = reconciles_deploy - reconciles_start;
    run.requests_deploy = total(&requests_deploy) - total(&requests_start);
    let first_revision: HashMap<String, String> = board
        .lock()
        .expect("board lock poisoned")
        .iter()
        .map(|(k, s)| (k.clone(), s.stable_revision.clone()))
        .collect();

    // Every Rollout gets a new image and walks its steps.
    let started = Instant::now();
    write_all(&http, &base, n, |http, base, i| {
        let patch = json!({ "spec": { "template": { "spec": { "containers": container("registry.example/app:2") } } } });
        http.patch(format!("{base}{ROLLOUTS_PATH}/{}", rollout_name(i)))
            .header("Content-Type", "application/merge-patch+json")
            .body(patch.to_string())
    })
    .await?;
    let first = &first_revision;
    let (changed, degraded) = {
        let promoted = |s: &Seen, name: &str| {
            s.generation >= 2
                && s.observed_generation == s.generation
                && s.phase == "Healthy"
                && first.get(name).is_some_and(|r| *r != s.stable_revision)
        };
        let started_wait = Instant::now();
        loop {
            let (count, degraded) = {
                let map = board.lock().expect("board lock poisoned");
                (
                    map.iter().filter(|(k, s)| promoted(s, k)).count(),
                    map.values().filter(|s| s.phase == "Degraded").count(),
                )
            };
            if count >= n || started_wait.elapsed() > options.phase_timeout {
                break (count, degraded);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    run.change_seconds = started.elapsed().as_secs_f64();
    run.changed_count = changed;
    run.degraded = degraded;
    let after_change = sample(controller_pid);
    let requests_change = controller_requests(&http, &base).await;
    let (reconciles_change, seconds, errors) = reconciles(&http, &metrics).await;
    run.controller_cpu_change = after_change.cpu_seconds - after_deploy.cpu_seconds;
    run.reconciles_change = reconciles_change - reconciles_deploy;
    run.requests_change = total(&requests_change) - total(&requests_deploy);
    run.requests_detail = delta(&requests_change, &requests_start);
    run.reconcile_mean_ms = 1000.0 * seconds / reconciles_change.max(1.0);
    run.reconcile_errors = errors.max(0.0);

    // Idle: everything Healthy, nothing changes; a settled controller should not reconcile.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (idle_start, _, _) = reconciles(&http, &metrics).await;
    let idle_requests_start = controller_requests(&http, &base).await;
    let idle_cpu_start = sample(controller_pid);
    tokio::time::sleep(options.idle).await;
    let (idle_end, _, _) = reconciles(&http, &metrics).await;
    let idle_requests_end = controller_requests(&http, &base).await;
    let end = sample(controller_pid);
    let idle = options.idle.as_secs_f64();
    run.idle_reconciles_per_second = (idle_end - idle_start) / idle;
    run.idle_requests_per_second =
        (total(&idle_requests_end) - total(&idle_requests_start)) as f64 / idle;
    run.controller_cpu_idle = end.cpu_seconds - idle_cpu_start.cpu_seconds;
    run.controller_hwm = end.hwm_mib;
    run.controller_rss = end.rss_mib;
    if !options.soak.is_zero() {
        run.soak = Some(
            soak(
                &http,
                &base,
                &board,
                n,
                controller_pid,
                options.soak,
                options.phase_timeout,
            )
            .await?,
        );
    }
    let server_end = sample(server_pid);
    run.server_cpu = server_end.cpu_seconds;
    run.server_hwm = server_end.hwm_mib;
    run.server_rss = server_end.rss_mib;

    watch.abort();
    drop(controller);
    drop(server);
    Ok(run)
}

fn per(requests: u64, reconciles: f64) -> String {
    if reconciles > 0.0 {
        format!("{:.1}", requests as f64 / reconciles)
    } else {
        "–".to_owned()
    }
}

fn print_tables(runs: &[Run]) {
    println!(
        "\n| N | concurrency | first deploy: all Healthy | image change: all promoted | reconciles (deploy / change) | API requests per reconcile (deploy / change) | idle reconciles/s (API requests/s) | controller CPU s (deploy / change / idle) | controller VmHWM / VmRSS at end |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in runs {
        let count = |c: usize| {
            if c < r.n {
                format!(" (only {c} of {})", r.n)
            } else {
                String::new()
            }
        };
        println!(
            "| {} | {} | {:.1} s{} | {:.1} s{} | {:.0} / {:.0} | {} / {} | {:.2} ({:.1}) | {:.1} / {:.1} / {:.2} | {:.0} / {:.0} MiB |",
            r.n,
            r.concurrency,
            r.healthy_seconds,
            count(r.healthy_count),
            r.change_seconds,
            count(r.changed_count),
            r.reconciles_deploy,
            r.reconciles_change,
            per(r.requests_deploy, r.reconciles_deploy),
            per(r.requests_change, r.reconciles_change),
            r.idle_reconciles_per_second,
            r.idle_requests_per_second,
            r.controller_cpu_deploy,
            r.controller_cpu_change,
            r.controller_cpu_idle,
            r.controller_hwm,
            r.controller_rss,
        );
    }
    println!(
        "\n| N | concurrency | creating N Rollouts (driver) | mean reconcile | failed reconciles | Degraded | controller requests by verb (whole run) | API server CPU s (whole run) | API server VmHWM / VmRSS at end |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|---:|---:|");
    for r in runs {
        println!(
            "| {} | {} | {:.1} s | {:.1} ms | {:.0} | {} | {} | {:.1} | {:.0} / {:.0} MiB |",
            r.n,
            r.concurrency,
            r.create_seconds,
            r.reconcile_mean_ms,
            r.reconcile_errors,
            r.degraded,
            r.requests_detail,
            r.server_cpu,
            r.server_hwm,
            r.server_rss,
        );
    }
    let soaks: Vec<(&Run, &Soak)> = runs
        .iter()
        .filter_map(|r| r.soak.as_ref().map(|s| (r, s)))
        .collect();
    if soaks.is_empty() {
        return;
    }
    // For a 30-minute soak: 5 minutes of warm-up, then the first 10 against the last 10.
    println!(
        "\n| N | concurrency | soak | rounds (image changes of every Rollout) | VmRSS mean, first third after warm-up | VmRSS mean, last third | change | VmHWM at end |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (r, soak) in soaks {
        let third = soak.seconds / 3.0;
        let warm_up = soak.seconds / 6.0;
        let first = soak.mean_rss(warm_up, warm_up + third);
        let last = soak.mean_rss(soak.seconds - third, soak.seconds + 1.0);
        println!(
            "| {} | {} | {:.0} min | {} | {first:.0} MiB | {last:.0} MiB | {:+.1}% | {:.0} MiB |",
            r.n,
            r.concurrency,
            soak.seconds / 60.0,
            soak.rounds,
            100.0 * (last - first) / first.max(f64::MIN_POSITIVE),
            soak.hwm_mib,
        );
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options {
        sizes: env_list("SIZES", "1000,10000")?,
        concurrencies: env_list("CONCURRENCIES", "4,16")?,
        fife: env_path("FIFE", "target/release/fife"),
        testkit: env_path("FIFE_TESTKIT", "target/release/fife-testkit"),
        crds: env_path("CRDS", "crds"),
        work_dir: env_path("WORK_DIR", "target/controller-scale"),
        idle: env_secs("IDLE_SECONDS", 30),
        phase_timeout: env_secs("PHASE_TIMEOUT_SECONDS", 1800),
        soak: env_secs("SOAK_SECONDS", 0),
    };
    let mut runs = Vec::new();
    for &n in &options.sizes {
        for &concurrency in &options.concurrencies {
            eprintln!("controller-scale: N = {n}, concurrency = {concurrency} …");
            let run = run_one(&options, n, concurrency).await?;
            eprintln!("{run:?}");
            runs.push(run);
            print_tables(&runs);
        }
    }
    Ok(())
}
