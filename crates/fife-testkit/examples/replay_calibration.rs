//! Rollout-level calibration on the realistic model, through a real Prometheus: simulates
//! many rollouts (identical canary; +10% and +20% latency; errors doubled from 0.4%), backfills
//! them all into one Prometheus (one `service` label per rollout), replays a comparison
//! template over each through the controller's analysis loop, and prints a Markdown table:
//! false-rollback rate with its 95% Wilson interval, detection rate and median detection
//! time.
//!
//! ```text
//! cargo run --release -p fife-testkit --example replay_calibration -- \
//!     [--rollouts 40] [--pods 1,3,10] [--stable 0] [--phi 0.5] [--test mannWhitney] \
//!     [--rules significance,kayenta] [--canaries identical,latency10,latency20,errors2] \
//!     [--first-rollout 0] [--counts 1,5,20]
//! cargo run --release -p fife-testkit --example replay_calibration -- --merge TABLE...
//! ```
//!
//! `--test` is written into the template's `compare.test` as given, so any test the API
//! knows can be calibrated the same way; `counts` judges only the error rows, with the
//! errors and requests counted per pod by `increase`. `--stable` gives every rollout that
//! many stable pods, `--phi` sets the pod wander's correlation from one scrape to the next.
//! `--canaries` simulates only the scenarios named (all four by default): the false-rollback
//! rate needs about ten times the rollouts the detection rates need. `--first-rollout K`
//! simulates rollouts K..K+N (same seeds as in one run of K+N): a query's cost grows with
//! everything the Prometheus holds (one holding 1000 rollouts answered 20–80 queries/s on a
//! shared 2-core machine, one holding 200 about 240/s idle), so 1000 rollouts run as
//! batches of about 200, each with its own Prometheus, whose tables add up. `--counts` sets the template's counts (1, 5 and 20 by
//! default); the data end where the largest count's last look does, so `--counts 1`
//! simulates 7 minutes a rollout instead of 47.

use std::collections::BTreeMap;
use std::time::Instant;

use fife_api::AnalysisRunSpec;
use fife_api::manifest::FifeObject;
use fife_controller::analysis::step::{self as analysis_step, Replay};
use fife_controller::build::runs::substitute_metric_args;
use fife_metrics::ClientPool;
use fife_testkit::calibration::Proportion;
use fife_testkit::cluster_model::{CanaryEffect, ClusterModel, PodCounts, ScrapeRange};
use fife_testkit::prometheus::{PrometheusServer, backfill};
use futures::StreamExt;

const START: i64 = 1_700_000_000;
/// The first look: the template's 5 minute lookback (and 2 minute rate) have data.
const WARM_UP_SECONDS: i64 = 420;
const INTERVAL_SECONDS: i64 = 120;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Scenario {
    name: &'static str,
    /// What `--canaries` selects it by.
    key: &'static str,
    effect: CanaryEffect,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "identical",
        key: "identical",
        effect: CanaryEffect::NONE,
    },
    Scenario {
        name: "latency +10%",
        key: "latency10",
        effect: CanaryEffect {
            latency_scale: 1.1,
            error_scale: 1.0,
        },
    },
    Scenario {
        name: "latency +20%",
        key: "latency20",
        effect: CanaryEffect {
            latency_scale: 1.2,
            error_scale: 1.0,
        },
    },
    Scenario {
        name: "errors ×2",
        key: "errors2",
        effect: CanaryEffect {
            latency_scale: 1.0,
            error_scale: 2.0,
        },
    },
];

/// Which metric a row judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Latency,
    Errors,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Latency => "p50 latency",
            Signal::Errors => "error ratio",
        }
    }

    /// The metric's query; `counts` counts the errors, and [`REQUESTS`] the requests.
    fn query(self, test: &str) -> &'static str {
        match self {
            Signal::Errors if test == "counts" => {
                "sum by (pod) (increase(http_requests_total{service=\"{{args.service}}\",fife_role=\"{{role}}\",code=\"500\"}[1m]))"
            }
            Signal::Latency => {
                "histogram_quantile(0.5, sum by (le, pod) (rate(http_request_duration_seconds_bucket{service=\"{{args.service}}\",fife_role=\"{{role}}\"}[1m])))"
            }
            Signal::Errors => {
                "sum by (pod) (rate(http_requests_total{service=\"{{args.service}}\",fife_role=\"{{role}}\",code=\"500\"}[2m])) / sum by (pod) (rate(http_requests_total{service=\"{{args.service}}\",fife_role=\"{{role}}\"}[2m]))"
            }
        }
    }
}

/// `counts`: every request of a pod, counted as the errors are.
const REQUESTS: &str = "sum by (pod) (increase(http_requests_total{service=\"{{args.service}}\",fife_role=\"{{role}}\"}[1m]))";

/// One row of the table: scenario, metric, pods per side, rule, count.
type Cell = (usize, &'static str, usize, String, u32);

struct Options {
    rollouts: usize,
    /// The first rollout's number: batches with their own Prometheus add up to one run.
    first_rollout: usize,
    pods: Vec<usize>,
    stable: usize,
    phi: Option<f64>,
    test: String,
    rules: Vec<String>,
    /// Keys of the scenarios to simulate; all of them when empty.
    canaries: Vec<String>,
    /// The template's `count`s; the data reach as far as the largest needs.
    counts: Vec<u32>,
}

fn options() -> Options {
    let mut options = Options {
        rollouts: 40,
        first_rollout: 0,
        pods: vec![1, 3, 10],
        stable: 0,
        phi: None,
        test: "mannWhitney".to_owned(),
        rules: vec!["significance".to_owned(), "kayenta".to_owned()],
        canaries: Vec::new(),
        counts: vec![1, 5, 20],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        let list = |v: &str| v.split(',').map(str::to_owned).collect::<Vec<_>>();
        match pair[0].as_str() {
            "--rollouts" => options.rollouts = value.parse().expect("--rollouts N"),
            "--counts" => {
                options.counts = list(&value)
                    .iter()
                    .map(|c| c.parse().expect("--counts 1,5,20"))
                    .collect();
                assert!(!options.counts.contains(&0), "--counts are 1 or more");
            }
            "--first-rollout" => {
                options.first_rollout = value.parse().expect("--first-rollout N");
            }
            "--pods" => {
                options.pods = list(&value)
                    .iter()
                    .map(|p| p.parse().expect("--pods 1,3,10"))
                    .collect();
            }
            "--stable" => options.stable = value.parse().expect("--stable N"),
            "--phi" => options.phi = Some(value.parse().expect("--phi 0.8")),
            "--test" => options.test = value,
            "--rules" => options.rules = list(&value),
            "--canaries" => {
                options.canaries = list(&value);
                for key in &options.canaries {
                    assert!(
                        SCENARIOS.iter().any(|s| s.key == key),
                        "--canaries takes a list of identical, latency10, latency20, errors2; not {key}"
                    );
                }
            }
            other => panic!("unknown flag {other}; see the doc comment for the flags"),
        }
    }
    options
}

/// Rollout r of a scenario and pod count: the seeds of rollouts 0..1000 are those of the
/// tables already published (scenario·10⁶ + pods·10³ + r); each further thousand moves by 10⁹.
fn seed(scenario: usize, pods: usize, rollout: usize) -> u64 {
    assert!(pods < 1000, "fewer than 1000 pods a side");
    (scenario * 1_000_000 + pods * 1000 + rollout % 1000) as u64
        + (rollout / 1000) as u64 * 1_000_000_000
}

fn service(scenario: usize, pods: usize, rollout: usize) -> String {
    format!("s{scenario}-p{pods}-r{rollout}")
}

fn template(signal: Signal, count: u32, test: &str, rule: &str) -> String {
    format!(
        r#"apiVersion: fife.dev/v1alpha1
kind: AnalysisTemplate
metadata: {{ name: calibration }}
spec:
  args: [{{ name: service }}]
  metrics:
    - name: canary-vs-baseline
      interval: {INTERVAL_SECONDS}s
      count: {count}
      failureLimit: 0
      provider:
        prometheus:
          address: http://unused
          query: '{query}'
          range: {{ lookback: 5m, step: 15s }}
      compare:
        test: {test}
        rule: {rule}
        direction: increase
        confidence: 0.95
        minSamples: 1{requests}
"#,
        query = signal.query(test),
        requests = if test == "counts" {
            format!("\n        requests: '{REQUESTS}'")
        } else {
            String::new()
        }
    )
}

fn run_spec(yaml: &str, service: &str, prometheus: &str) -> AnalysisRunSpec {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).expect("the template is YAML");
    let Some(Ok(FifeObject::AnalysisTemplate(template))) = FifeObject::from_value(&value) else {
        panic!("the calibration template does not parse: {yaml}");
    };
    let args = BTreeMap::from([("service".to_owned(), service.to_owned())]);
    let metrics = template
        .spec
        .metrics
        .iter()
        .map(|m| {
            let mut m = substitute_metric_args(m, &args).expect("service is the only argument");
            let fife_api::MetricProvider::Prometheus(p) = &mut m.provider;
            p.address = prometheus.to_owned();
            m
        })
        .collect();
    AnalysisRunSpec {
        metrics,
        args: Vec::new(),
        rollout: None,
        terminate: false,
    }
}

/// `--merge TABLE...`: adds up the tables of batches (`--first-rollout`), cell by cell, and
/// prints one table of rates with their Wilson intervals. A median time cannot be added up,
/// so the merged table leaves it out; each batch's table has its own.
fn merge(paths: &[String]) {
    let mut cells: Vec<(String, Proportion)> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for line in text.lines() {
            // | canary | metric | pods | test, rule | count | k/n = … | median |
            let columns: Vec<&str> = line.split('|').map(str::trim).collect();
            let Some((hits, trials)) = columns
                .get(6)
                .and_then(|c| c.split(" = ").next())
                .and_then(|c| c.split_once('/'))
                .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            else {
                continue;
            };
            let key = columns[1..6].join(" | ");
            match cells.iter_mut().find(|(k, _)| *k == key) {
                Some((_, p)) => *p = Proportion::new(p.hits + hits, p.trials + trials),
                None => cells.push((key, Proportion::new(hits, trials))),
            }
        }
    }
    println!("| canary | metric | pods/side | test, rule | count | rolled back (95% CI) |");
    println!("|---|---|---|---|---|---|");
    for (key, p) in &cells {
        println!(
            "| {key} | {}/{} = {:.1}% ({:.1}–{:.1}%) |",
            p.hits,
            p.trials,
            100.0 * p.rate,
            100.0 * p.ci95[0],
            100.0 * p.ci95[1],
        );
    }
}

/// Rolled back (Failed or Error), and after how many seconds of analysis.
fn outcome(replay: &Replay, from: jiff::Timestamp) -> Option<i64> {
    let rolled_back = matches!(
        replay.status.phase,
        Some(fife_api::AnalysisPhase::Failed | fife_api::AnalysisPhase::Error)
    );
    if !rolled_back {
        return None;
    }
    let last = replay.measurements.first()?.1.last()?;
    let at = last.measurement.finished_at.as_ref()?.0;
    Some(at.as_second() - from.as_second())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--merge") {
        merge(&args[1..]);
        return;
    }
    let options = options();
    let wall = Instant::now();
    let range = ScrapeRange {
        start_seconds: START,
        end_seconds: START
            + WARM_UP_SECONDS
            + INTERVAL_SECONDS * i64::from(options.counts.iter().copied().max().unwrap_or(1)),
        interval_seconds: 15,
    };
    // `counts` judges error ratios only.
    let rows: Vec<(usize, Signal)> = [
        (0, Signal::Latency),
        (0, Signal::Errors),
        (1, Signal::Latency),
        (2, Signal::Latency),
        (3, Signal::Errors),
    ]
    .into_iter()
    .filter(|(_, signal)| options.test != "counts" || *signal == Signal::Errors)
    .filter(|(s, _)| {
        options.canaries.is_empty() || options.canaries.iter().any(|k| k == SCENARIOS[*s].key)
    })
    .collect();
    let mut models = Vec::new();
    for (s, scenario) in SCENARIOS.iter().enumerate() {
        if !rows.iter().any(|(row, _)| *row == s) {
            continue;
        }
        for &pods in &options.pods {
            for r in options.first_rollout..options.first_rollout + options.rollouts {
                let mut model = ClusterModel::new(service(s, pods, r), seed(s, pods, r));
                model.pods = PodCounts {
                    canary: pods,
                    baseline: pods,
                    stable: options.stable,
                };
                if let Some(phi) = options.phi {
                    model.wander.phi = phi;
                }
                model.canary = scenario.effect;
                models.push(model);
            }
        }
    }
    let tsdb = backfill(&models, &range).expect("promtool backfills the model");
    let backfilled = wall.elapsed();
    let prometheus = PrometheusServer::start_on_tsdb(tsdb).expect("Prometheus starts");
    let address = prometheus.address().to_owned();
    let from = jiff::Timestamp::from_second(START + WARM_UP_SECONDS).unwrap();
    let to = jiff::Timestamp::from_second(range.end_seconds).unwrap();
    let pool = ClientPool::default();

    let mut jobs = Vec::new();
    for &(s, signal) in &rows {
        for &pods in &options.pods {
            for rule in &options.rules {
                for &count in &options.counts {
                    for r in options.first_rollout..options.first_rollout + options.rollouts {
                        jobs.push((s, signal, pods, rule.clone(), count, r));
                    }
                }
            }
        }
    }
    let results: Vec<_> =
        futures::stream::iter(jobs.into_iter().map(|(s, signal, pods, rule, count, r)| {
            let spec = run_spec(
                &template(signal, count, &options.test, &rule),
                &service(s, pods, r),
                &address,
            );
            let pool = &pool;
            async move {
                let replay = analysis_step::replay(pool, &spec, from, to).await;
                ((s, signal, pods, rule, count), outcome(&replay, from))
            }
        }))
        .buffer_unordered(8)
        .collect()
        .await;

    let mut table: BTreeMap<Cell, Vec<Option<i64>>> = BTreeMap::new();
    for ((s, signal, pods, rule, count), outcome) in results {
        table
            .entry((s, signal.name(), pods, rule, count))
            .or_default()
            .push(outcome);
    }
    println!(
        "| canary | metric | pods/side | test, rule | count | rolled back (95% CI) | median time to rollback |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ((s, metric, pods, rule, count), outcomes) in &table {
        let hits: Vec<i64> = outcomes.iter().flatten().copied().collect();
        let p = Proportion::new(hits.len(), outcomes.len());
        let median = if hits.is_empty() {
            "–".to_owned()
        } else {
            let mut sorted = hits.clone();
            sorted.sort_unstable();
            format!("{} min", sorted[sorted.len() / 2] / 60)
        };
        println!(
            "| {} | {metric} | {pods} | {}, {rule} | {count} | {}/{} = {:.1}% ({:.1}–{:.1}%) | {median} |",
            SCENARIOS[*s].name,
            options.test,
            p.hits,
            p.trials,
            100.0 * p.rate,
            100.0 * p.ci95[0],
            100.0 * p.ci95[1],
        );
    }
    eprintln!(
        "{} rollouts backfilled in {:.1} s; {} replays; {:.1} s in all",
        models.len(),
        backfilled.as_secs_f64(),
        table.values().map(Vec::len).sum::<usize>(),
        wall.elapsed().as_secs_f64()
    );
}
