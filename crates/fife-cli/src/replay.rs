//! `fife replay`: backtests an analysis template on the past. Runs the template's metrics
//! exactly as a step analysis started at `--from` would run (initialDelay, interval, count,
//! limits, every phase rule) on a simulated clock, each query evaluated at the simulated
//! time, through the controller's own look–measure–fold ([`fife_controller::analysis::step`]).
//! Stops when the run completes or at `--to`. Exit 0 whatever the phase; 2 when the input
//! is unusable or Prometheus cannot be reached.
//!
//! ```text
//! template + --arg ─▶ run spec (args substituted, address = --prometheus)
//!   now = --from ─▶ look ─▶ measure_due(now) ─▶ fold ─▶ now += next wake-up … ─▶ phase
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use fife_api::manifest::FifeObject;
use fife_api::{AnalysisRunSpec, Argument, Metric, MetricProvider};
use fife_controller::analysis::measure::{TakenMeasurement, longest_range, too_many_points};
use fife_controller::analysis::step::{self as analysis_step, Replay};
use fife_controller::build::runs::substitute_metric_args;
use fife_metrics::{ClientPool, ErrorClass, MetricProvider as _, PrometheusSource, Query};
use serde_json::{Value, json};

use crate::time_arg::parse_time;

const EXIT_BAD_INPUT: u8 = 2;

/// Run an analysis template over past data, as the controller would have run it.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Prometheus to query (base URL); replaces the address every metric of the template names.
    #[arg(long, value_name = "URL")]
    prometheus: String,
    /// The AnalysisTemplate or ClusterAnalysisTemplate (YAML; the first such document counts).
    #[arg(long, value_name = "FILE")]
    template: PathBuf,
    /// A template argument's value (repeatable); overrides the template's default.
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    args: Vec<String>,
    /// When the analysis starts: RFC 3339 or unix seconds.
    #[arg(long, value_name = "TIME")]
    from: String,
    /// When to stop if the analysis has not completed by then: RFC 3339 or unix seconds.
    #[arg(long, value_name = "TIME")]
    to: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayOutput::Text)]
    output: ReplayOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReplayOutput {
    Json,
    Text,
}

pub fn run(args: ReplayArgs) -> ExitCode {
    match replay(&args) {
        Ok(report) => {
            match args.output {
                ReplayOutput::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report_json(&report)).unwrap_or_default()
                ),
                ReplayOutput::Text => print!("{}", report_text(&report)),
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("fife replay: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn replay(args: &ReplayArgs) -> Result<Replay, String> {
    let from = parse_time("--from", &args.from)?;
    let to = parse_time("--to", &args.to)?;
    if to <= from {
        return Err(format!(
            "--to ({to}) must be later than --from ({from}); the analysis runs between them"
        ));
    }
    let given = parse_arg_flags(&args.args)?;
    let (template_args, metrics) = read_template(&args.template)?;
    let spec = run_spec(&template_args, &metrics, &given, &args.prometheus)?;
    let run = to.duration_since(from).unsigned_abs();
    for metric in &spec.metrics {
        if let Some(warning) = longest_range(metric, run)
            .and_then(|(lookback, step)| too_many_points(&metric.name, lookback, step))
        {
            eprintln!("fife replay: warning: by --to, {warning}");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
    runtime.block_on(async {
        let pool = ClientPool::default();
        check_reachable(&pool, &args.prometheus, from).await?;
        Ok(analysis_step::replay(&pool, &spec, from, to).await)
    })
}

/// `NAME=VALUE` flags as a map; a flag without `=` or given twice is an error.
fn parse_arg_flags(flags: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut args = BTreeMap::new();
    for flag in flags {
        let Some((name, value)) = flag.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            return Err(format!(
                "--arg `{flag}` is not NAME=VALUE; e.g. --arg service-name=checkout"
            ));
        };
        if args.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(format!("--arg {name} is given twice; give it once"));
        }
    }
    Ok(args)
}

/// The arguments and metrics of the first template in `path`.
fn read_template(path: &Path) -> Result<(Vec<Argument>, Vec<Metric>), String> {
    let file = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read --template {file}: {e}"))?;
    let documents = crate::yaml_lines::parse_documents(&text)
        .map_err(|e| format!("--template {file} is not YAML: {e}"))?;
    for document in documents {
        match FifeObject::from_value(&document.value) {
            Some(Ok(FifeObject::AnalysisTemplate(t))) => {
                return checked(path, t.spec.args, t.spec.metrics);
            }
            Some(Ok(FifeObject::ClusterAnalysisTemplate(t))) => {
                return checked(path, t.spec.args, t.spec.metrics);
            }
            Some(Err(e)) => return Err(format!("--template {file}: {e}")),
            _ => {}
        }
    }
    Err(format!(
        "--template {file} has no AnalysisTemplate or ClusterAnalysisTemplate; \
         give the file that defines the template"
    ))
}

fn checked(
    path: &Path,
    args: Vec<Argument>,
    metrics: Vec<Metric>,
) -> Result<(Vec<Argument>, Vec<Metric>), String> {
    let problems = fife_api::validation::validate_template(&args, &metrics);
    match problems
        .iter()
        .find(|p| p.severity == fife_api::validation::Severity::Error)
    {
        Some(problem) => Err(format!(
            "--template {}: {}: {}; `fife validate` lists every problem",
            path.display(),
            problem.path,
            problem.message
        )),
        None => Ok((args, metrics)),
    }
}

/// The run a step with these arguments would start: template defaults overridden by
/// `--arg`, every `{{args.x}}` substituted, every provider pointed at `prometheus`.
fn run_spec(
    declared: &[Argument],
    metrics: &[Metric],
    given: &BTreeMap<String, String>,
    prometheus: &str,
) -> Result<AnalysisRunSpec, String> {
    if let Some(name) = given
        .keys()
        .find(|n| !declared.iter().any(|a| &a.name == *n))
    {
        let known: Vec<&str> = declared.iter().map(|a| a.name.as_str()).collect();
        return Err(format!(
            "--arg {name}: the template declares no argument `{name}` (it declares: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    }
    let mut values = BTreeMap::new();
    for arg in declared {
        let value = given
            .get(&arg.name)
            .cloned()
            .or_else(|| arg.value.clone())
            .ok_or_else(|| {
                format!(
                    "template argument `{0}` has no value: pass --arg {0}=VALUE",
                    arg.name
                )
            })?;
        values.insert(arg.name.clone(), value);
    }
    let metrics = metrics
        .iter()
        .map(|metric| {
            let mut metric = substitute_metric_args(metric, &values).map_err(|name| {
                format!(
                    "metric `{}` uses `{{{{args.{name}}}}}`, which has no value: pass --arg {name}=VALUE",
                    metric.name
                )
            })?;
            let MetricProvider::Prometheus(provider) = &mut metric.provider;
            provider.address = prometheus.to_owned();
            Ok(metric)
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(AnalysisRunSpec {
        metrics,
        args: values
            .into_iter()
            .map(|(name, value)| Argument {
                name,
                value: Some(value),
                value_from: None,
            })
            .collect(),
        rollout: None,
        terminate: false,
    })
}

/// One query at `from`, so an unreachable or wrong address is exit 2, not a run of Errors.
async fn check_reachable(
    pool: &ClientPool,
    prometheus: &str,
    from: jiff::Timestamp,
) -> Result<(), String> {
    let provider = fife_metrics::PrometheusProvider::new(pool, PrometheusSource::new(prometheus))
        .map_err(|e| format!("--prometheus {prometheus}: {e}"))?;
    match provider
        .measure(&Query::instant(
            "vector(1)",
            std::time::SystemTime::from(from),
        ))
        .await
    {
        Err(e) if e.class() == ErrorClass::SourceFailure => {
            Err(format!("cannot query Prometheus at {prometheus}: {e}"))
        }
        _ => Ok(()),
    }
}

/// `{"phase", "completedAt", "metrics": [{"name", "phase", "measurements": [...]}]}`.
fn report_json(replay: &Replay) -> Value {
    let metrics: Vec<Value> = replay
        .measurements
        .iter()
        .map(|(name, taken)| {
            let phase = replay
                .status
                .metric_results
                .iter()
                .find(|r| &r.name == name)
                .map(|r| json!(r.phase));
            json!({
                "name": name,
                "phase": phase,
                "measurements": taken.iter().map(measurement_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "phase": replay.status.phase,
        "completedAt": replay.completed_at.map(|t| t.to_string()),
        "metrics": metrics,
    })
}

/// One line per measurement, then the run's phase and why.
fn report_text(replay: &Replay) -> String {
    let mut out = String::new();
    for (name, taken) in &replay.measurements {
        for t in taken {
            out.push_str(&format!(
                "{}  {name}  {}  {}\n",
                measured_at(t).map(|t| t.to_string()).unwrap_or_default(),
                wire(&t.measurement.phase),
                t.measurement.message.as_deref().unwrap_or_default()
            ));
        }
    }
    out.push_str(&format!(
        "phase: {}{}\n",
        replay.status.phase.map(|p| wire(&p)).unwrap_or_default(),
        match replay.completed_at {
            Some(at) => format!(" (completed at {at})"),
            None => " (stopped at --to before the analysis completed)".to_owned(),
        }
    ));
    if let Some(message) = &replay.status.message {
        out.push_str(&format!("{message}\n"));
    }
    out
}

fn measured_at(taken: &TakenMeasurement) -> Option<jiff::Timestamp> {
    let m = &taken.measurement;
    m.finished_at
        .as_ref()
        .or(m.started_at.as_ref())
        .map(|t| t.0)
}

/// A value's serde name (`Failed`, not its `Debug`).
fn wire<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `{"time", "phase", "reason", ...evidence}`: the audit record's evidence (queries,
/// comparison or threshold) next to the measurement's time, phase and reason.
fn measurement_json(taken: &TakenMeasurement) -> Value {
    let mut fields = match serde_json::to_value(&taken.evidence) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    for duplicate in ["metric", "phase", "message"] {
        fields.remove(duplicate);
    }
    fields.insert(
        "time".into(),
        json!(measured_at(taken).map(|t| t.to_string())),
    );
    fields.insert("phase".into(), json!(taken.measurement.phase));
    fields.insert("reason".into(), json!(taken.measurement.message));
    if let Some(value) = &taken.measurement.value {
        fields.insert("value".into(), json!(value));
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::PrometheusProvider;

    fn metric(query: &str) -> Metric {
        Metric::new(
            "latency",
            MetricProvider::Prometheus(PrometheusProvider {
                address: "http://{{args.host}}:9090".into(),
                query: query.into(),
                ..PrometheusProvider::default()
            }),
        )
    }

    fn arg(name: &str, value: Option<&str>) -> Argument {
        Argument {
            name: name.into(),
            value: value.map(Into::into),
            value_from: None,
        }
    }

    #[test]
    fn args_come_from_flags_then_defaults_and_the_address_from_prometheus() {
        let declared = [arg("service", None), arg("host", Some("prom"))];
        let given = parse_arg_flags(&["service=checkout".into()]).unwrap();
        let spec = run_spec(
            &declared,
            &[metric("up{service=\"{{args.service}}\",role=\"{{role}}\"}")],
            &given,
            "http://127.0.0.1:9",
        )
        .unwrap();
        let MetricProvider::Prometheus(p) = &spec.metrics[0].provider;
        assert_eq!(p.query, "up{service=\"checkout\",role=\"{{role}}\"}");
        assert_eq!(p.address, "http://127.0.0.1:9");
    }

    #[test]
    fn a_missing_or_unknown_or_malformed_arg_is_named() {
        let declared = [arg("service", None)];
        let m = [metric("up")];
        let err = run_spec(&declared, &m, &BTreeMap::new(), "http://p").unwrap_err();
        assert!(err.contains("--arg service=VALUE"), "{err}");
        let given = parse_arg_flags(&["colour=red".into()]).unwrap();
        let err = run_spec(&declared, &m, &given, "http://p").unwrap_err();
        assert!(err.contains("no argument `colour`"), "{err}");
        let err = parse_arg_flags(&["service".into()]).unwrap_err();
        assert!(err.contains("is not NAME=VALUE"), "{err}");
    }
}
