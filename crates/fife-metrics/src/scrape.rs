//! The scrape provider, for clusters without Prometheus: scrapes each canary and baseline
//! pod's `/metrics`, keeps a bounded window of scrapes per pod, and answers a small
//! selector language over that window.
//!
//! ```text
//! http_inflight{fife_role="canary"}                        gauge (or counter) value
//! rate(http_requests_total{fife_role="canary",code="500"}) per-second increase between scrapes
//! histogram_quantile(0.9, http_request_duration_seconds{fife_role="canary"})
//!                                                          quantile of the observations between scrapes
//! ```
//!
//! An instant query uses the newest scrape (or the newest pair); a range query uses every
//! scrape (pair) in `[at − lookback, at]`, so the scrape interval is the step.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use prometheus_parse::{Scrape, Value};

use crate::error::{FailureCause, MetricError};
use crate::prometheus::{ClientPool, TlsOptions, classify_transport, read_limited};
use crate::{MetricProvider, Query, SampleCollector, Samples, Window};

/// Scrapes kept per pod unless configured otherwise.
pub const DEFAULT_WINDOW: usize = 60;

/// One pod to scrape, with the labels attached to every series scraped from it (like a
/// Prometheus target's labels: `fife_role`, `pod`). Target labels win over scraped ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// The pod's name; identifies the target across `set_targets` calls.
    pub name: String,
    /// The full URL of the metrics endpoint, e.g. `http://10.0.0.7:8080/metrics`.
    pub url: String,
    pub labels: BTreeMap<String, String>,
}

/// How scrapes are taken and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrapeSettings {
    /// Scrapes kept per pod; the oldest is dropped first.
    pub window: usize,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

impl Default for ScrapeSettings {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            timeout: Duration::from_secs(5),
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What a selector computes from the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// The sample's value in each scrape (gauges; also raw counters).
    Value,
    /// Per-second increase of a counter between consecutive scrapes (a reset counts
    /// from zero, as in Prometheus).
    Rate,
    /// The quantile of a histogram's observations between consecutive scrapes.
    HistogramQuantile(f64),
}

/// A parsed scrape query.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub statistic: Statistic,
    pub metric: String,
    /// Equality matchers; every one must hold.
    pub labels: BTreeMap<String, String>,
}

impl Selector {
    /// Parses `name{l="v",…}`, `rate(…)` or `histogram_quantile(q, …)`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(inner) = call_argument(text, "rate")? {
            let (metric, labels) = parse_series(inner)?;
            return Ok(Self {
                statistic: Statistic::Rate,
                metric,
                labels,
            });
        }
        if let Some(inner) = call_argument(text, "histogram_quantile")? {
            let (q, series) = inner
                .split_once(',')
                .ok_or("histogram_quantile takes a quantile and a histogram: histogram_quantile(0.9, name{…})")?;
            let q: f64 = q
                .trim()
                .parse()
                .map_err(|_| format!("`{}` is not a quantile between 0 and 1", q.trim()))?;
            if !(0.0..=1.0).contains(&q) {
                return Err(format!("the quantile {q} is not between 0 and 1"));
            }
            let (metric, labels) = parse_series(series)?;
            let metric = metric.strip_suffix("_bucket").unwrap_or(&metric).to_owned();
            return Ok(Self {
                statistic: Statistic::HistogramQuantile(q),
                metric,
                labels,
            });
        }
        let (metric, labels) = parse_series(text)?;
        Ok(Self {
            statistic: Statistic::Value,
            metric,
            labels,
        })
    }

    /// Whether a target can hold matching series: none of its labels contradicts a matcher.
    fn admits(&self, target: &ScrapeTarget) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| target.labels.get(k).is_none_or(|t| t == v))
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `Some(argument)` when `text` is `function(argument)`.
fn call_argument<'t>(text: &'t str, function: &str) -> Result<Option<&'t str>, String> {
    let Some(rest) = text.strip_prefix(function) else {
        return Ok(None);
    };
    let Some(rest) = rest.trim_start().strip_prefix('(') else {
        return Ok(None);
    };
    rest.strip_suffix(')')
        .map(Some)
        .ok_or_else(|| format!("`{function}(` is not closed"))
}

fn parse_series(text: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let text = text.trim();
    let (name, matchers) = match text.split_once('{') {
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').ok_or_else(|| {
                format!("the label matchers of `{text}` are not closed with `}}`")
            })?;
            (name.trim(), body)
        }
        None => (text, ""),
    };
    let valid_name = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid_name {
        return Err(format!(
            "`{name}` is not a metric name; write name{{label=\"value\"}}, rate(…) or histogram_quantile(q, …)"
        ));
    }
    let mut labels = BTreeMap::new();
    for matcher in matchers.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (key, value) = matcher
            .split_once('=')
            .ok_or_else(|| format!("`{matcher}` is not a label matcher"))?;
        let value = value.trim();
        if key.ends_with('!') || value.starts_with('~') {
            return Err(format!(
                "`{matcher}`: the scrape provider supports only equality matchers (label=\"value\")"
            ));
        }
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("`{matcher}`: quote the label value"))?;
        labels.insert(key.trim().to_owned(), value.to_owned());
    }
    Ok((name.to_owned(), labels))
}

/// One scrape of one pod: the series it held, or why it failed.
#[derive(Debug, Clone)]
struct ScrapeRecord {
    at: SystemTime,
    outcome: Result<Arc<Vec<ScrapedSeries>>, FailureCause>,
}

/// A scraped series with the target's labels merged in.
#[derive(Debug, Clone, PartialEq)]
struct ScrapedSeries {
    metric: String,
    labels: BTreeMap<String, String>,
    value: Value,
}

#[derive(Debug)]
struct TargetState {
    target: ScrapeTarget,
    scrapes: VecDeque<ScrapeRecord>,
}

/// Scrapes pods and measures from the kept window. Call [`ScrapeProvider::scrape_all`]
/// at the scrape interval; `measure` reads only the window, so it is cheap and
/// deterministic for given scrapes.
#[derive(Debug, Clone)]
pub struct ScrapeProvider {
    client: reqwest::Client,
    settings: ScrapeSettings,
    targets: Arc<Mutex<Vec<TargetState>>>,
}

impl ScrapeProvider {
    pub fn new(
        pool: &ClientPool,
        settings: ScrapeSettings,
    ) -> Result<Self, crate::prometheus::SourceError> {
        Ok(Self {
            client: pool.client_for(&TlsOptions::default())?,
            settings,
            targets: Arc::default(),
        })
    }

    /// Replaces the target list. A target whose name and URL are unchanged keeps its
    /// window, so pods that stay keep their history.
    pub fn set_targets(&self, targets: Vec<ScrapeTarget>) {
        let mut states = self.lock();
        let mut old: HashMap<(String, String), TargetState> = states
            .drain(..)
            .map(|s| ((s.target.name.clone(), s.target.url.clone()), s))
            .collect();
        *states = targets
            .into_iter()
            .map(|target| {
                let scrapes = old
                    .remove(&(target.name.clone(), target.url.clone()))
                    .map(|s| s.scrapes)
                    .unwrap_or_default();
                TargetState { target, scrapes }
            })
            .collect();
    }

    /// Scrapes every target concurrently and records each outcome, stamped `at`.
    /// Returns the failures, by target name.
    pub async fn scrape_all(&self, at: SystemTime) -> Vec<(String, FailureCause)> {
        let targets: Vec<ScrapeTarget> = self.lock().iter().map(|s| s.target.clone()).collect();
        let outcomes = futures::future::join_all(targets.iter().map(|t| self.scrape(t))).await;
        self.record(&targets, outcomes, at)
    }

    /// Adds one scrape of a target from exposition text; `scrape_all` does this for the
    /// bodies it fetches.
    pub fn record_exposition(&self, target_name: &str, text: &str, at: SystemTime) {
        let mut states = self.lock();
        if let Some(state) = states.iter_mut().find(|s| s.target.name == target_name) {
            let outcome = parse_exposition(text, &state.target, at);
            push_bounded(
                &mut state.scrapes,
                ScrapeRecord { at, outcome },
                self.settings.window,
            );
        }
    }

    fn record(
        &self,
        targets: &[ScrapeTarget],
        outcomes: Vec<Result<String, FailureCause>>,
        at: SystemTime,
    ) -> Vec<(String, FailureCause)> {
        let mut failures = Vec::new();
        let mut states = self.lock();
        for (target, outcome) in targets.iter().zip(outcomes) {
            let Some(state) = states.iter_mut().find(|s| &s.target == target) else {
                continue; // replaced by set_targets while the scrape ran
            };
            let outcome = outcome.and_then(|text| parse_exposition(&text, target, at));
            if let Err(cause) = &outcome {
                failures.push((target.name.clone(), cause.clone()));
            }
            push_bounded(
                &mut state.scrapes,
                ScrapeRecord { at, outcome },
                self.settings.window,
            );
        }
        failures
    }

    async fn scrape(&self, target: &ScrapeTarget) -> Result<String, FailureCause> {
        let host = reqwest::Url::parse(&target.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let exchange = async {
            let response = self
                .client
                .get(&target.url)
                .header("Accept", "text/plain;version=0.0.4")
                .send()
                .await
                .map_err(|e| classify_transport(&e, &host))?;
            let status = response.status();
            let body = read_limited(response, self.settings.max_response_bytes, &host).await?;
            if !status.is_success() {
                return Err(FailureCause::HttpStatus {
                    status: status.as_u16(),
                    message: String::from_utf8_lossy(&body[..body.len().min(200)])
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                });
            }
            String::from_utf8(body).map_err(|_| FailureCause::MalformedResponse {
                detail: "the metrics page is not UTF-8 text".into(),
            })
        };
        tokio::time::timeout(self.settings.timeout, exchange)
            .await
            .unwrap_or(Err(FailureCause::Timeout {
                after: self.settings.timeout,
                attempts: 1,
            }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TargetState>> {
        // The window stays consistent under panics elsewhere: every update is one push.
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn evaluate(&self, query: &Query) -> Result<Samples, MetricError> {
        let fail = |endpoint: &str, cause| MetricError::new(endpoint, &query.text, cause);
        let selector = Selector::parse(&query.text)
            .map_err(|detail| fail("scrape", FailureCause::InvalidQuery { detail }))?;
        let states = self.lock();
        let mut series: BTreeMap<(String, String), Vec<(SystemTime, f64)>> = BTreeMap::new();
        for state in states.iter().filter(|s| selector.admits(&s.target)) {
            if let Some(ScrapeRecord {
                outcome: Err(cause),
                ..
            }) = state.scrapes.back()
            {
                return Err(fail(&state.target.url, cause.clone()));
            }
            let scrapes = window_scrapes(&state.scrapes, query, selector.statistic);
            evaluate_target(&selector, &state.target.name, &scrapes, &mut series);
        }
        let mut collector = SampleCollector::default();
        for ((pod, labels), values) in &series {
            collector.start_series(BTreeMap::from([
                ("pod".to_owned(), pod.clone()),
                ("labels".to_owned(), labels.clone()),
            ]));
            for (at, value) in values {
                collector.push(crate::unix_millis(*at), *value, || {
                    format!("{}{{{labels}}} of {pod}", selector.metric)
                });
            }
        }
        let finished = match query.window {
            Window::Instant => collector.finish_instant(),
            Window::Range { .. } => collector.finish_range(),
        };
        finished.map_err(|no_data| fail("scrape", FailureCause::NoData(no_data)))
    }
}

impl MetricProvider for ScrapeProvider {
    fn measure<'a>(&'a self, query: &'a Query) -> BoxFuture<'a, Result<Samples, MetricError>> {
        Box::pin(std::future::ready(self.evaluate(query)))
    }

    fn endpoint(&self) -> &str {
        "scrape"
    }
}

fn push_bounded(scrapes: &mut VecDeque<ScrapeRecord>, record: ScrapeRecord, window: usize) {
    scrapes.push_back(record);
    while scrapes.len() > window.max(2) {
        scrapes.pop_front();
    }
}

/// The successful scrapes a query looks at, oldest first.
fn window_scrapes<'s>(
    scrapes: &'s VecDeque<ScrapeRecord>,
    query: &Query,
    statistic: Statistic,
) -> Vec<(SystemTime, &'s [ScrapedSeries])> {
    let ok = scrapes
        .iter()
        .filter(|r| r.at <= query.at)
        .filter_map(|r| r.outcome.as_ref().ok().map(|s| (r.at, s.as_slice())));
    match query.window {
        Window::Range { lookback, .. } => {
            let start = query
                .at
                .checked_sub(lookback)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            ok.filter(|(at, _)| *at >= start).collect()
        }
        Window::Instant => {
            let needed = if statistic == Statistic::Value { 1 } else { 2 };
            let all: Vec<_> = ok.collect();
            all[all.len().saturating_sub(needed)..].to_vec()
        }
    }
}

/// Adds one target's values to `series`, keyed by (pod, labels).
fn evaluate_target(
    selector: &Selector,
    pod: &str,
    scrapes: &[(SystemTime, &[ScrapedSeries])],
    series: &mut BTreeMap<(String, String), Vec<(SystemTime, f64)>>,
) {
    let matching = |scrape: &[ScrapedSeries]| -> BTreeMap<String, Value> {
        scrape
            .iter()
            .filter(|s| s.metric == selector.metric && selector.matches(&s.labels))
            .map(|s| (label_text(&s.labels), s.value.clone()))
            .collect()
    };
    match selector.statistic {
        Statistic::Value => {
            for (at, scrape) in scrapes {
                for (labels, value) in matching(scrape) {
                    if let Some(v) = scalar(&value) {
                        series
                            .entry((pod.to_owned(), labels))
                            .or_default()
                            .push((*at, v));
                    }
                }
            }
        }
        Statistic::Rate | Statistic::HistogramQuantile(_) => {
            for pair in scrapes.windows(2) {
                let (t0, before) = (pair[0].0, matching(pair[0].1));
                let (t1, after) = (pair[1].0, matching(pair[1].1));
                let Some(seconds) = t1
                    .duration_since(t0)
                    .ok()
                    .map(|d| d.as_secs_f64())
                    .filter(|s| *s > 0.0)
                else {
                    continue;
                };
                for (labels, now) in &after {
                    let Some(then) = before.get(labels) else {
                        continue;
                    };
                    let value = match selector.statistic {
                        Statistic::Rate => match (scalar(then), scalar(now)) {
                            (Some(a), Some(b)) => Some(counter_increase(a, b) / seconds),
                            _ => None,
                        },
                        Statistic::HistogramQuantile(q) => match (then, now) {
                            (Value::Histogram(a), Value::Histogram(b)) => {
                                Some(histogram_quantile(q, a, b))
                            }
                            _ => None,
                        },
                        Statistic::Value => None,
                    };
                    if let Some(value) = value {
                        series
                            .entry((pod.to_owned(), labels.clone()))
                            .or_default()
                            .push((t1, value));
                    }
                }
            }
        }
    }
}

fn scalar(value: &Value) -> Option<f64> {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        Value::Histogram(_) | Value::Summary(_) => None,
    }
}

/// A counter that went down was reset (the pod restarted): its new value is the increase.
fn counter_increase(before: f64, after: f64) -> f64 {
    if after < before {
        after
    } else {
        after - before
    }
}

/// The `q` quantile of the observations made between two cumulative histograms, with
/// linear interpolation inside the bucket, as Prometheus's `histogram_quantile` does.
/// NaN when nothing was observed in between.
pub fn histogram_quantile(
    q: f64,
    before: &[prometheus_parse::HistogramCount],
    after: &[prometheus_parse::HistogramCount],
) -> f64 {
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .map(|b| {
            let earlier = before
                .iter()
                .find(|a| a.less_than == b.less_than)
                .map_or(0.0, |a| a.count);
            // A reset histogram counts from zero, like a counter.
            (b.less_than, counter_increase(earlier, b.count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(last_le, total)) = buckets.last() else {
        return f64::NAN;
    };
    if last_le != f64::INFINITY || total <= 0.0 || buckets.len() < 2 {
        return f64::NAN;
    }
    let rank = q * total;
    let index = buckets
        .iter()
        .position(|(_, count)| *count >= rank)
        .unwrap_or(buckets.len() - 1);
    if index == buckets.len() - 1 {
        // Observations above the largest finite bound: report that bound, like Prometheus.
        return buckets[buckets.len() - 2].0;
    }
    let (upper, count) = buckets[index];
    let (lower, below) = if index == 0 {
        (0.0_f64.min(upper), 0.0)
    } else {
        buckets[index - 1]
    };
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return upper;
    }
    lower + (upper - lower) * ((rank - below) / in_bucket)
}

fn label_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_exposition(
    text: &str,
    target: &ScrapeTarget,
    at: SystemTime,
) -> Result<Arc<Vec<ScrapedSeries>>, FailureCause> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape =
        Scrape::parse_at(lines, chrono::DateTime::<chrono::Utc>::from(at)).map_err(|e| {
            FailureCause::MalformedResponse {
                detail: format!("the metrics page is not in the text exposition format: {e}"),
            }
        })?;
    if scrape.samples.is_empty() && !text.trim().is_empty() && !text.trim_start().starts_with('#') {
        return Err(FailureCause::MalformedResponse {
            detail:
                "no sample could be read from the metrics page; is it the text exposition format?"
                    .into(),
        });
    }
    Ok(Arc::new(
        scrape
            .samples
            .into_iter()
            .map(|sample| {
                let mut labels: BTreeMap<String, String> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.extend(target.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                ScrapedSeries {
                    metric: sample.metric,
                    labels,
                    value: sample.value,
                }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoData;
    use prometheus_parse::HistogramCount;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn provider(window: usize) -> ScrapeProvider {
        let settings = ScrapeSettings {
            window,
            ..ScrapeSettings::default()
        };
        let provider = ScrapeProvider::new(&ClientPool::new(1), settings).unwrap();
        let target = |name: &str, role: &str| ScrapeTarget {
            name: name.into(),
            url: format!("http://127.0.0.1:1/{name}"),
            labels: BTreeMap::from([("fife_role".to_owned(), role.to_owned())]),
        };
        provider.set_targets(vec![
            target("canary-0", "canary"),
            target("baseline-0", "baseline"),
        ]);
        provider
    }

    fn exposition(requests: u64, errors: u64, fast: u64, slow: u64, inflight: f64) -> String {
        format!(
            "# TYPE http_requests counter\n\
             http_requests_total{{code=\"200\"}} {requests}\n\
             http_requests_total{{code=\"500\"}} {errors}\n\
             # TYPE inflight gauge\n\
             inflight {inflight}\n\
             # TYPE latency_seconds histogram\n\
             latency_seconds_bucket{{le=\"0.1\"}} {fast}\n\
             latency_seconds_bucket{{le=\"0.2\"}} {all}\n\
             latency_seconds_bucket{{le=\"+Inf\"}} {all}\n\
             latency_seconds_sum 1\n\
             latency_seconds_count {all}\n\
             # EOF\n",
            all = fast + slow
        )
    }

    fn range(text: &str, lookback: u64, at: u64) -> Query {
        Query::range(
            text,
            Duration::from_secs(lookback),
            Duration::from_secs(1),
            t(at),
        )
    }

    #[test]
    fn parses_the_three_selector_forms() {
        let s = Selector::parse(r#"inflight{fife_role="canary", pod="a"}"#).unwrap();
        assert_eq!(s.statistic, Statistic::Value);
        assert_eq!(s.metric, "inflight");
        assert_eq!(s.labels.len(), 2);
        let s = Selector::parse("rate( http_requests_total{code=\"500\"} )").unwrap();
        assert_eq!(s.statistic, Statistic::Rate);
        assert_eq!(s.metric, "http_requests_total");
        let s = Selector::parse("histogram_quantile(0.9, latency_seconds_bucket)").unwrap();
        assert_eq!(s.statistic, Statistic::HistogramQuantile(0.9));
        assert_eq!(s.metric, "latency_seconds");
    }

    #[test]
    fn rejects_what_it_cannot_evaluate() {
        for bad in [
            r#"x{a!="b"}"#,
            r#"x{a=~"b.*"}"#,
            "x{a=b}",
            "histogram_quantile(1.5, x)",
            "histogram_quantile(x)",
            "rate(x",
            "sum(rate(x[1m]))",
            "",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket_between_scrapes() {
        let h = |counts: [f64; 3]| -> Vec<HistogramCount> {
            [0.1, 0.2, f64::INFINITY]
                .into_iter()
                .zip(counts)
                .map(|(less_than, count)| HistogramCount { less_than, count })
                .collect()
        };
        // Between the scrapes: 10 observations ≤ 0.1 and 10 in (0.1, 0.2].
        let before = h([5.0, 5.0, 5.0]);
        let after = h([15.0, 25.0, 25.0]);
        assert!((histogram_quantile(0.5, &before, &after) - 0.1).abs() < 1e-12);
        assert!((histogram_quantile(0.75, &before, &after) - 0.15).abs() < 1e-12);
        assert!((histogram_quantile(0.25, &before, &after) - 0.05).abs() < 1e-12);
        // Nothing observed in between: no number.
        assert!(histogram_quantile(0.5, &after, &after).is_nan());
        // Observations beyond the last finite bound report that bound.
        let overflow = h([15.0, 25.0, 125.0]);
        assert_eq!(histogram_quantile(0.99, &after, &overflow), 0.2);
    }

    #[test]
    fn gauge_values_per_scrape_in_the_window() {
        let p = provider(10);
        for (i, v) in [1.0, 2.0, 3.0].into_iter().enumerate() {
            p.record_exposition("canary-0", &exposition(0, 0, 0, 0, v), t(i as u64));
            p.record_exposition("baseline-0", &exposition(0, 0, 0, 0, 10.0 * v), t(i as u64));
        }
        let canary = p
            .evaluate(&range(r#"inflight{fife_role="canary"}"#, 1, 2))
            .unwrap();
        assert_eq!(canary.values, vec![2.0, 3.0]);
        let latest = p
            .evaluate(&Query::instant(r#"inflight{fife_role="baseline"}"#, t(2)))
            .unwrap();
        assert_eq!(latest.values, vec![30.0]);
        let both = p.evaluate(&range("inflight", 10, 2)).unwrap();
        assert_eq!(both.series, 2);
    }

    #[test]
    fn counter_rate_between_scrapes_handles_resets() {
        let p = provider(10);
        for (i, requests) in [100, 120, 160, 10].into_iter().enumerate() {
            p.record_exposition(
                "canary-0",
                &exposition(requests, 0, 0, 0, 0.0),
                t(2 * i as u64),
            );
        }
        let rates = p
            .evaluate(&range(
                r#"rate(http_requests_total{code="200",fife_role="canary"})"#,
                60,
                6,
            ))
            .unwrap();
        // +20 in 2 s, +40 in 2 s, reset to 10 in 2 s.
        assert_eq!(rates.values, vec![10.0, 20.0, 5.0]);
    }

    #[test]
    fn histogram_quantile_between_scrapes() {
        let p = provider(10);
        p.record_exposition("canary-0", &exposition(0, 0, 0, 0, 0.0), t(0));
        p.record_exposition("canary-0", &exposition(0, 0, 10, 10, 0.0), t(1));
        p.record_exposition("canary-0", &exposition(0, 0, 10, 10, 0.0), t(2));
        let q = p
            .evaluate(&range(
                r#"histogram_quantile(0.75, latency_seconds{fife_role="canary"})"#,
                60,
                2,
            ))
            .unwrap();
        // The second pair saw no traffic: its NaN is left out and counted.
        assert_eq!(q.values.len(), 1);
        assert!((q.values[0] - 0.15).abs() < 1e-12, "{:?}", q.values);
        assert_eq!(q.dropped_non_finite, 1);
    }

    #[test]
    fn the_window_is_bounded() {
        let p = provider(3);
        for i in 0..10 {
            p.record_exposition("canary-0", &exposition(0, 0, 0, 0, i as f64), t(i));
        }
        let all = p
            .evaluate(&range(r#"inflight{fife_role="canary"}"#, 3600, 9))
            .unwrap();
        assert_eq!(all.values, vec![7.0, 8.0, 9.0]);
    }

    #[test]
    fn missing_metrics_and_no_scrapes_are_no_data() {
        let p = provider(10);
        let err = p.evaluate(&Query::instant("inflight", t(0))).unwrap_err();
        assert_eq!(err.cause, FailureCause::NoData(NoData::EmptyResult));
        p.record_exposition("canary-0", &exposition(0, 0, 0, 0, 1.0), t(0));
        let err = p
            .evaluate(&Query::instant("no_such_metric", t(0)))
            .unwrap_err();
        assert_eq!(err.cause, FailureCause::NoData(NoData::EmptyResult));
        let err = p
            .evaluate(&Query::instant("x{a=~\"b\"}", t(0)))
            .unwrap_err();
        assert!(
            matches!(err.cause, FailureCause::InvalidQuery { .. }),
            "{err}"
        );
    }

    #[test]
    fn set_targets_keeps_the_history_of_pods_that_stay() {
        let p = provider(10);
        p.record_exposition("canary-0", &exposition(0, 0, 0, 0, 1.0), t(0));
        let kept = p.lock()[0].target.clone();
        p.set_targets(vec![kept]);
        assert_eq!(
            p.evaluate(&Query::instant("inflight", t(0)))
                .unwrap()
                .values,
            vec![1.0]
        );
    }

    #[tokio::test]
    async fn a_failed_scrape_is_the_measurement_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        drop(listener);
        let p = provider(10);
        p.record_exposition("canary-0", &exposition(0, 0, 0, 0, 1.0), t(0));
        p.set_targets(vec![ScrapeTarget {
            name: "canary-0".into(),
            url: url.clone(),
            labels: BTreeMap::from([("fife_role".to_owned(), "canary".to_owned())]),
        }]);
        let failures = p.scrape_all(t(1)).await;
        assert_eq!(
            failures,
            vec![("canary-0".to_owned(), FailureCause::ConnectionRefused)]
        );
        let err = p
            .evaluate(&range(r#"inflight{fife_role="canary"}"#, 60, 1))
            .unwrap_err();
        assert_eq!(err.cause, FailureCause::ConnectionRefused);
        assert_eq!(err.endpoint, url);
    }
}
