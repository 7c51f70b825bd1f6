//! Metric providers for Fife's analysis: one trait, [`MetricProvider`], answered by the
//! Prometheus HTTP API ([`prometheus`]), the one source Fife requires. A provider turns a
//! rendered query into samples or a classified [`MetricError`]; it never turns a failure
//! into a number.
//!
//! ```text
//!  template ──render──▶ Query ──MetricProvider::measure──▶ Samples | MetricError
//!  ({{args.x}}, {{role}})         (Prometheus)               (NoData vs SourceFailure)
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

pub mod error;
pub mod prometheus;
pub mod roles;
pub mod template;

pub use error::{ErrorClass, FailureCause, MetricError, NoData};
pub use prometheus::{
    Auth, ClientPool, PrometheusProvider, PrometheusSource, RetryPolicy, TlsOptions,
};
pub use roles::{RoleQueries, RoleSamples, measure_roles};
pub use template::{Role, TemplateError, TemplateValues, render};

/// One rendered query and the time window it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The query text with every placeholder already rendered.
    pub text: String,
    pub window: Window,
    /// The end of the window (the evaluation time of an instant query). Injected so a
    /// measurement is reproducible and tests need no clock.
    pub at: SystemTime,
}

impl Query {
    pub fn instant(text: impl Into<String>, at: SystemTime) -> Self {
        Self {
            text: text.into(),
            window: Window::Instant,
            at,
        }
    }

    pub fn range(
        text: impl Into<String>,
        lookback: Duration,
        step: Duration,
        at: SystemTime,
    ) -> Self {
        Self {
            text: text.into(),
            window: Window::Range { lookback, step },
            at,
        }
    }
}

/// Which values of the matched series become samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// One value per series at `at` (threshold metrics: `result[0]`, `result[1]`, …).
    Instant,
    /// Every point of every series in `[at − lookback, at]` at `step` (comparison metrics).
    Range { lookback: Duration, step: Duration },
}

/// The numbers a query produced, all finite.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Samples {
    /// Instant queries: one value per series, in the order the source returned them.
    /// Range queries: the points of each series in time order, series after series.
    pub values: Vec<f64>,
    /// How many series contributed.
    pub series: usize,
    /// The same points with their identity: which series (pod) and which time each came
    /// from, in the order of `values`. A series whose points were all non-finite is here
    /// with no points.
    pub by_series: Vec<Series>,
    /// Range points that were NaN or ±Inf and were left out (a quantile over a step
    /// without traffic is NaN); reported so the analysis record shows them.
    pub dropped_non_finite: usize,
}

/// One series a query returned: its label set and its finite points in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    /// (milliseconds since the Unix epoch, value); a scraped point carries its scrape time.
    pub points: Vec<(i64, f64)>,
}

/// Milliseconds since the Unix epoch (negative before it), the unit of [`Series`] times.
pub fn unix_millis(at: SystemTime) -> i64 {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A source of samples. Dyn-compatible so the controller can hold any provider behind
/// `Arc<dyn MetricProvider>`.
pub trait MetricProvider: Send + Sync + std::fmt::Debug {
    /// Runs one query. Implementations bound the time it takes and classify every failure.
    fn measure<'a>(&'a self, query: &'a Query) -> BoxFuture<'a, Result<Samples, MetricError>>;

    /// Where the samples come from, for messages and audit evidence.
    fn endpoint(&self) -> &str;
}

/// Collects finite values; an all-non-finite or empty input becomes the right [`NoData`].
#[derive(Debug, Default)]
pub(crate) struct SampleCollector {
    samples: Samples,
    first_non_finite: Option<(f64, String)>,
}

impl SampleCollector {
    pub(crate) fn start_series(&mut self, labels: BTreeMap<String, String>) {
        self.samples.series += 1;
        self.samples.by_series.push(Series {
            labels,
            points: Vec::new(),
        });
    }

    /// Adds a point at `t` (Unix milliseconds) to the series started last.
    pub(crate) fn push(&mut self, t: i64, value: f64, series: impl FnOnce() -> String) {
        if value.is_finite() {
            self.samples.values.push(value);
            if let Some(current) = self.samples.by_series.last_mut() {
                current.points.push((t, value));
            }
        } else {
            self.samples.dropped_non_finite += 1;
            if self.first_non_finite.is_none() {
                self.first_non_finite = Some((value, series()));
            }
        }
    }

    /// Instant queries keep every value in place (`result[i]` must mean series i), so any
    /// non-finite value makes the whole measurement "no data".
    pub(crate) fn finish_instant(self) -> Result<Samples, NoData> {
        if let Some((value, series)) = self.first_non_finite {
            return Err(NoData::NonFinite { value, series });
        }
        self.finish_range()
    }

    pub(crate) fn finish_range(self) -> Result<Samples, NoData> {
        if !self.samples.values.is_empty() {
            return Ok(self.samples);
        }
        match self.first_non_finite {
            Some((value, series)) => Err(NoData::NonFinite { value, series }),
            None => Err(NoData::EmptyResult),
        }
    }
}
