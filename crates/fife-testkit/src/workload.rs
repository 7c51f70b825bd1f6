//! Synthetic workloads: loopback HTTP servers whose `/metrics` shows the request latency
//! histogram and request counter of a canary or baseline pod, fed by traffic the
//! workload generates itself from a seeded latency and error model.
//!
//! ```text
//! traffic task ──LatencyModel::sample(rng)──▶ http_request_duration_seconds{fife_role}
//!   (rate/s, seeded)  error draw ───────────▶ http_requests_total{fife_role,code}
//!                                               └── GET /metrics (OpenMetrics text)
//! ```
//!
//! Wall-clock time decides only how many requests have been drawn by the time of a
//! scrape, never their values: the n-th request of a given seed is always the same.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use tokio::task::JoinHandle;

/// The label that carries a pod's `fife.dev/role` in Prometheus series.
pub const ROLE_LABEL: &str = "fife_role";

/// Log-normal request latency: `median · scale · exp(sigma · Z)` seconds, Z standard normal.
/// A canary that is 20% slower has `scale = 1.2` and everything else equal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyModel {
    /// Median latency of the baseline, in seconds.
    pub median_seconds: f64,
    /// Spread of `ln(latency)`; 0.3 is a typical web service.
    pub sigma: f64,
    /// Multiplier applied to every draw (1.0 for the baseline).
    pub scale: f64,
}

impl LatencyModel {
    /// One latency in seconds. Deterministic for a given generator state.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.median_seconds * self.scale * (self.sigma * standard_normal(rng)).exp()
    }

    /// The median of the distribution, in seconds.
    pub fn median(&self) -> f64 {
        self.median_seconds * self.scale
    }
}

/// A uniform draw in (0, 1]: 53 random bits, never zero so its logarithm is finite.
pub(crate) fn unit_open<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// Box–Muller: exact and needs no tables; the second variate is discarded so every
/// latency consumes the same number of draws.
pub(crate) fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = unit_open(rng);
    let u2 = unit_open(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Which side a workload plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadRole {
    Canary,
    Baseline,
}

impl WorkloadRole {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadRole::Canary => "canary",
            WorkloadRole::Baseline => "baseline",
        }
    }
}

impl std::str::FromStr for WorkloadRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "canary" => Ok(WorkloadRole::Canary),
            "baseline" => Ok(WorkloadRole::Baseline),
            other => Err(format!("`{other}` is not a role; use canary or baseline")),
        }
    }
}

/// Everything that shapes a workload's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkloadConfig {
    pub role: WorkloadRole,
    pub latency: LatencyModel,
    /// Fraction of requests answered with 500.
    pub error_rate: f64,
    pub requests_per_second: f64,
    pub seed: u64,
}

impl WorkloadConfig {
    /// The cluster model's baseline latency (100 ms median, sigma 0.3), no errors, 200
    /// requests/s. [`crate::cluster_model::ClusterModel::workload_config`] gives one pod of
    /// a modelled service instead.
    pub fn new(role: WorkloadRole, seed: u64) -> Self {
        Self {
            role,
            latency: crate::cluster_model::BASELINE_LATENCY,
            error_rate: 0.0,
            requests_per_second: 200.0,
            seed,
        }
    }
}

/// The metrics one workload exposes, and the generator that feeds them.
#[derive(Debug)]
pub struct WorkloadMetrics {
    config: WorkloadConfig,
    rng: Pcg64,
    registry: Registry,
    duration: Histogram,
    requests: Family<Vec<(String, String)>, Counter>,
}

impl WorkloadMetrics {
    pub fn new(config: WorkloadConfig) -> Self {
        let mut registry =
            Registry::with_labels([(ROLE_LABEL.into(), config.role.as_str().into())].into_iter());
        // 10% wide buckets from 5 ms to ~3.6 s: fine enough that a quantile moves
        // visibly with a 5% latency shift.
        let duration = Histogram::new(latency_buckets());
        let requests = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "http_request_duration_seconds",
            "Request latency (synthetic)",
            duration.clone(),
        );
        registry.register(
            "http_requests",
            "Requests by status code (synthetic)",
            requests.clone(),
        );
        Self {
            rng: Pcg64::seed_from_u64(config.seed),
            config,
            registry,
            duration,
            requests,
        }
    }

    /// Draws and records `n` requests.
    pub fn serve_requests(&mut self, n: u64) {
        for _ in 0..n {
            let latency = self.config.latency.sample(&mut self.rng);
            let failed = unit_open(&mut self.rng) <= self.config.error_rate;
            self.duration.observe(latency);
            let code = if failed { "500" } else { "200" };
            self.requests
                .get_or_create(&vec![("code".to_owned(), code.to_owned())])
                .inc();
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn exposition(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Bucket bounds 5 ms · 1.1ⁱ, rounded to 4 significant digits so the `le` labels read well.
pub fn latency_buckets() -> Vec<f64> {
    (0..70)
        .map(|i| {
            let bound = 0.005 * 1.1_f64.powi(i);
            let scale = 10_f64.powi(3 - bound.log10().floor() as i32);
            (bound * scale).round() / scale
        })
        .collect()
}

/// A running workload; stops when dropped.
#[derive(Debug)]
pub struct Workload {
    addr: SocketAddr,
    config: WorkloadConfig,
    tasks: Vec<JoinHandle<()>>,
}

/// How often the traffic task draws the requests that are due.
const TRAFFIC_TICK: Duration = Duration::from_millis(20);

impl Workload {
    /// Binds `listen` (use port 0 for a free port), starts the traffic and serves
    /// `/metrics`.
    pub async fn start(listen: SocketAddr, config: WorkloadConfig) -> std::io::Result<Workload> {
        let metrics = Arc::new(std::sync::Mutex::new(WorkloadMetrics::new(config)));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/metrics", axum::routing::get(serve_metrics))
            .with_state(Arc::clone(&metrics));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "workload server stopped");
            }
        });
        let traffic = tokio::spawn(generate_traffic(metrics, config.requests_per_second));
        Ok(Workload {
            addr,
            config,
            tasks: vec![server, traffic],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn serve_metrics(
    State(metrics): State<Arc<std::sync::Mutex<WorkloadMetrics>>>,
) -> impl IntoResponse {
    let text = metrics
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .exposition();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn generate_traffic(metrics: Arc<std::sync::Mutex<WorkloadMetrics>>, per_second: f64) {
    let mut ticker = tokio::time::interval(TRAFFIC_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = tokio::time::Instant::now();
    let mut served: u64 = 0;
    loop {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * per_second) as u64;
        if due > served {
            metrics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .serve_requests(due - served);
            served = due;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    #[test]
    fn same_seed_same_latencies() {
        let model = LatencyModel {
            median_seconds: 0.1,
            sigma: 0.3,
            scale: 1.0,
        };
        let draw = |seed| {
            let mut rng = Pcg64::seed_from_u64(seed);
            (0..100).map(|_| model.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn sample_median_matches_the_model_and_scale_shifts_it() {
        let base = LatencyModel {
            median_seconds: 0.1,
            sigma: 0.3,
            scale: 1.0,
        };
        let slow = LatencyModel { scale: 1.2, ..base };
        let mut rng = Pcg64::seed_from_u64(1);
        let base_median = median((0..20_000).map(|_| base.sample(&mut rng)).collect());
        let slow_median = median((0..20_000).map(|_| slow.sample(&mut rng)).collect());
        assert!((base_median - 0.1).abs() < 0.002, "{base_median}");
        assert!(
            (slow_median / base_median - 1.2).abs() < 0.03,
            "{slow_median}"
        );
    }

    #[test]
    fn standard_normal_has_unit_variance() {
        let mut rng = Pcg64::seed_from_u64(3);
        let z: Vec<f64> = (0..50_000).map(|_| standard_normal(&mut rng)).collect();
        let mean = z.iter().sum::<f64>() / z.len() as f64;
        let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn exposition_has_role_labelled_histogram_and_counter() {
        let mut config = WorkloadConfig::new(WorkloadRole::Canary, 5);
        config.error_rate = 0.25;
        let mut metrics = WorkloadMetrics::new(config);
        metrics.serve_requests(400);
        let text = metrics.exposition();
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_count{fife_role="canary"} 400"#),
            "{text}"
        );
        let count = |code: &str| -> f64 {
            let prefix = format!(r#"http_requests_total{{fife_role="canary",code="{code}"}} "#);
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {code} counter in {text}"))
                .parse()
                .unwrap()
        };
        assert_eq!(count("200") + count("500"), 400.0);
        assert!(
            (count("500") / 400.0 - 0.25).abs() < 0.06,
            "{}",
            count("500")
        );
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let workload = Workload::start(
            "127.0.0.1:0".parse().unwrap(),
            WorkloadConfig::new(WorkloadRole::Baseline, 1),
        )
        .await
        .unwrap();
        let url = workload.metrics_url();
        let (host, path) = url.trim_start_matches("http://").split_once('/').unwrap();
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains(r#"fife_role="baseline""#), "{response}");
        assert!(response.contains("# EOF"), "{response}");
    }
}
