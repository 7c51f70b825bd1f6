//! `fife judge --prometheus URL [--at TIME]`: takes the canary and baseline samples from a
//! range query against a live Prometheus instead of from files, over the window ending now
//! or at TIME. Every point of every returned
//! series is one sample, exactly as a comparison metric sees them.
//!
//! ```text
//! --query Q ──{{role}}=canary──▶ query_range [at − lookback, at] @ step ─▶ canary
//!           └─{{role}}=baseline─▶ query_range [at − lookback, at] @ step ─▶ baseline
//! ```

use std::time::{Duration, SystemTime};

use clap::Args;
use fife_metrics::RoleQueries;
use fife_metrics::roles::prometheus_role_samples;

/// Canary samples, then baseline samples.
pub type CanaryAndBaseline = (Vec<f64>, Vec<f64>);

/// Where live samples come from. Every flag but --prometheus needs --prometheus.
#[derive(Debug, Args)]
pub struct LiveSource {
    /// Take the samples from this Prometheus (base URL, e.g. http://prometheus:9090)
    /// instead of from --canary and --baseline files.
    #[arg(long, value_name = "URL", conflicts_with_all = ["canary", "baseline"])]
    prometheus: Option<String>,
    /// One query for both sides; `{{role}}` is rendered as `canary` and as `baseline`.
    #[arg(
        long,
        value_name = "PROMQL",
        conflicts_with_all = ["canary_query", "baseline_query"]
    )]
    query: Option<String>,
    /// The canary's query (with --baseline-query, instead of --query).
    #[arg(long, value_name = "PROMQL", requires = "baseline_query")]
    canary_query: Option<String>,
    /// The baseline's query (with --canary-query, instead of --query).
    #[arg(long, value_name = "PROMQL", requires = "canary_query")]
    baseline_query: Option<String>,
    /// How far back the range query reaches from now (e.g. 5m, 90s, 1h) [default: 5m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    lookback: Option<Duration>,
    /// Resolution of the range query: one point per series every STEP [default: 15s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    step: Option<Duration>,
    /// Judge the window ending at TIME (RFC 3339 or unix seconds) instead of now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// The example comparison metric's window: 5 minutes at a 15 s step.
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(300);
const DEFAULT_STEP: Duration = Duration::from_secs(15);

impl LiveSource {
    /// `None` in file mode; otherwise both sides fetched as of `--at` (or now), or one line naming
    /// the URL, the query and the cause, ready to print.
    pub fn fetch_if_requested(&self) -> Option<Result<CanaryAndBaseline, String>> {
        match &self.prometheus {
            Some(address) => Some(self.fetch(address)),
            None if self.any_live_flag() => Some(Err(
                "--query, --canary-query, --baseline-query, --lookback, --step and --at only \
                 apply with --prometheus URL; add it, or drop them to judge files"
                    .to_string(),
            )),
            None => None,
        }
    }

    // Checked here rather than with clap's `requires`, which does not fire for these
    // flags next to --canary/--baseline's `required_unless_present`.
    fn any_live_flag(&self) -> bool {
        self.query.is_some()
            || self.canary_query.is_some()
            || self.baseline_query.is_some()
            || self.lookback.is_some()
            || self.step.is_some()
            || self.at.is_some()
    }

    fn fetch(&self, address: &str) -> Result<CanaryAndBaseline, String> {
        let queries = self.queries()?;
        // Defaults are applied here, not by clap, so that `requires = "prometheus"` still
        // rejects a --lookback or --step given in file mode.
        let lookback = self.lookback.unwrap_or(DEFAULT_LOOKBACK);
        let step = self.step.unwrap_or(DEFAULT_STEP);
        if step.is_zero() || lookback < step {
            return Err(format!(
                "--step must be greater than 0 and no longer than --lookback (got step {}, lookback {})",
                humantime::format_duration(step),
                humantime::format_duration(lookback)
            ));
        }
        let at = match &self.at {
            Some(text) => SystemTime::from(crate::time_arg::parse_time("--at", text)?),
            None => SystemTime::now(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        let samples = runtime
            .block_on(prometheus_role_samples(
                address, &queries, lookback, step, at,
            ))
            .map_err(|e| e.to_string())?;
        Ok((samples.canary.values, samples.baseline.values))
    }

    fn queries(&self) -> Result<RoleQueries, String> {
        match (&self.query, &self.canary_query, &self.baseline_query) {
            (Some(query), None, None) => Ok(RoleQueries::PerRole(query.clone())),
            (None, Some(canary), Some(baseline)) => Ok(RoleQueries::Separate {
                canary: canary.clone(),
                baseline: baseline.clone(),
            }),
            _ => Err(
                "--prometheus needs --query (with {{role}}), or --canary-query and --baseline-query"
                    .to_string(),
            ),
        }
    }
}
