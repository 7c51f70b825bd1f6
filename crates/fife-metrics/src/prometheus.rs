//! The Prometheus HTTP API provider: instant (`/api/v1/query`) and range
//! (`/api/v1/query_range`) queries over one pooled client per TLS setup, each under a
//! deadline, with bounded retries, a response size limit and a global concurrency cap.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::error::{FailureCause, MetricError};
use crate::{MetricProvider, Query, SampleCollector, Samples, Window};

/// How long one query may take, retries included, unless the metric says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body read. A query matching 10⁵ series would need tens of MiB;
/// such a query is a mistake and must not take the controller's memory with it.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Queries in flight at once across every rollout, unless the pool is built otherwise.
pub const DEFAULT_MAX_CONCURRENT_QUERIES: usize = 16;

/// Credentials, already read from the Secret the template refers to.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer { token: String },
    Basic { username: String, password: String },
}

// Credentials must never reach logs or status messages.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// TLS settings; queries with equal settings share one client and its connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// PEM bundle of CA certificates trusted in addition to the built-in roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Accept any server certificate. Only when the template asks for it.
    pub insecure_skip_verify: bool,
}

/// Retries of transport failures and 5xx/429 answers, all inside the query's timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// One Prometheus server and how to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusSource {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (a path prefix is kept).
    pub address: String,
    pub timeout: Duration,
    pub auth: Option<Auth>,
    pub tls: TlsOptions,
    pub max_response_bytes: usize,
    pub retry: RetryPolicy,
}

impl PrometheusSource {
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            timeout: DEFAULT_TIMEOUT,
            auth: None,
            tls: TlsOptions::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            retry: RetryPolicy::default(),
        }
    }
}

/// A Prometheus source that cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error(
        "the Prometheus address `{address}` is not an http(s) URL ({detail}); write it like http://prometheus.monitoring:9090"
    )]
    InvalidAddress { address: String, detail: String },
    #[error("the CA bundle is not valid PEM ({detail}); give the CA certificates in PEM form")]
    InvalidCaBundle { detail: String },
    #[error("the HTTP client could not be built: {detail}")]
    Client { detail: String },
}

/// The HTTP clients and the global concurrency cap shared by every Prometheus query the
/// process makes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientPool {
    clients: Arc<Mutex<HashMap<TlsOptions, reqwest::Client>>>,
    slots: Arc<Semaphore>,
}

impl Default for ClientPool {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONCURRENT_QUERIES)
    }
}

impl ClientPool {
    /// A pool that lets at most `max_concurrent_queries` queries run at once (at least 1).
    pub fn new(max_concurrent_queries: usize) -> Self {
        Self {
            clients: Arc::default(),
            slots: Arc::new(Semaphore::new(max_concurrent_queries.max(1))),
        }
    }

    /// Query slots free right now.
    pub fn available_slots(&self) -> usize {
        self.slots.available_permits()
    }

    pub(crate) fn client_for(&self, tls: &TlsOptions) -> Result<reqwest::Client, SourceError> {
        // A poisoned lock only means another thread panicked while inserting a client;
        // the map itself is still a valid cache.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(tls) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("fife/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(90));
        if let Some(pem) = &tls.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                SourceError::InvalidCaBundle {
                    detail: e.to_string(),
                }
            })?;
            if certs.is_empty() {
                return Err(SourceError::InvalidCaBundle {
                    detail: "no certificate found".into(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if tls.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| SourceError::Client {
            detail: error_chain(&e),
        })?;
        clients.insert(tls.clone(), client.clone());
        Ok(client)
    }
}

/// Queries one Prometheus server.
#[derive(Debug, Clone)]
pub struct PrometheusProvider {
    source: PrometheusSource,
    endpoint: String,
    host: String,
    client: reqwest::Client,
    slots: Arc<Semaphore>,
}

impl PrometheusProvider {
    pub fn new(pool: &ClientPool, source: PrometheusSource) -> Result<Self, SourceError> {
        let url =
            reqwest::Url::parse(&source.address).map_err(|e| SourceError::InvalidAddress {
                address: source.address.clone(),
                detail: e.to_string(),
            })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SourceError::InvalidAddress {
                address: source.address.clone(),
                detail: format!("scheme `{}`", url.scheme()),
            });
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let client = pool.client_for(&source.tls)?;
        Ok(Self {
            endpoint: source.address.trim_end_matches('/').to_owned(),
            host,
            source,
            client,
            slots: Arc::clone(&pool.slots),
        })
    }

    pub fn source(&self) -> &PrometheusSource {
        &self.source
    }

    async fn run(&self, query: &Query) -> Result<Samples, MetricError> {
        let fail = |cause| MetricError::new(&self.endpoint, &query.text, cause);
        // The slot is taken before the deadline starts: the timeout bounds the time
        // spent on Prometheus, and every holder is itself bounded, so waiting ends.
        let _slot = self.slots.acquire().await.map_err(|_| {
            fail(FailureCause::InvalidSource {
                detail: "the query pool was shut down".into(),
            })
        })?;
        let retry = self.source.retry;
        let deadline = Instant::now() + self.source.timeout;
        let mut backoff = retry.initial_backoff;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let cause = match tokio::time::timeout_at(deadline, self.attempt(query)).await {
                Err(_elapsed) => {
                    return Err(fail(FailureCause::Timeout {
                        after: self.source.timeout,
                        attempts,
                    }));
                }
                Ok(Ok(body)) => return parse_response(&body, query.window).map_err(fail),
                Ok(Err(cause)) => cause,
            };
            let out_of_time = Instant::now() + backoff >= deadline;
            if !cause.is_retryable() || attempts >= retry.max_attempts.max(1) || out_of_time {
                return Err(fail(cause));
            }
            tracing::debug!(endpoint = %self.endpoint, attempts, %cause, "retrying Prometheus query");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(retry.max_backoff);
        }
    }

    /// One HTTP exchange; returns the body of a 2xx answer.
    async fn attempt(&self, query: &Query) -> Result<Vec<u8>, FailureCause> {
        let at = unix_seconds(query.at);
        // Prometheus stops evaluating when its own timeout passes, so a query nobody
        // waits for any more does not keep loading the server.
        let server_timeout = format!("{}s", self.source.timeout.as_secs_f64());
        let (path, form): (&str, Vec<(&str, String)>) = match query.window {
            Window::Instant => (
                "/api/v1/query",
                vec![
                    ("query", query.text.clone()),
                    ("time", at.clone()),
                    ("timeout", server_timeout),
                ],
            ),
            Window::Range { lookback, step } => (
                "/api/v1/query_range",
                vec![
                    ("query", query.text.clone()),
                    (
                        "start",
                        unix_seconds(query.at.checked_sub(lookback).unwrap_or(UNIX_EPOCH)),
                    ),
                    ("end", at),
                    ("step", format!("{}", step.as_secs_f64())),
                    ("timeout", server_timeout),
                ],
            ),
        };
        let mut request = self
            .client
            .post(format!("{}{path}", self.endpoint))
            .form(&form);
        request = match &self.source.auth {
            Some(Auth::Bearer { token }) => request.bearer_auth(token),
            Some(Auth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| classify_transport(&e, &self.host))?;
        let status = response.status();
        let body = read_limited(response, self.source.max_response_bytes, &self.host).await?;
        if !status.is_success() {
            return Err(classify_status(status.as_u16(), &body));
        }
        Ok(body)
    }
}

impl MetricProvider for PrometheusProvider {
    fn measure<'a>(&'a self, query: &'a Query) -> BoxFuture<'a, Result<Samples, MetricError>> {
        Box::pin(self.run(query))
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Reads a body, giving up as soon as it passes `limit` bytes: the size is checked while
/// streaming, so a huge answer never sits in memory whole.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    host: &str,
) -> Result<Vec<u8>, FailureCause> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(FailureCause::ResponseTooLarge { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| classify_transport(&e, host))?
    {
        if body.len() + chunk.len() > limit {
            return Err(FailureCause::ResponseTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn unix_seconds(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", since.as_secs(), since.subsec_millis())
}

/// The shape every Prometheus API answer shares.
#[derive(Debug, Deserialize)]
struct Envelope {
    status: String,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
    data: Option<Data>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct InstantSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Debug, Deserialize)]
struct RangeSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// An error answer: Prometheus's own, or any JSON body with an `error` field.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    status: Option<String>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

fn classify_status(status: u16, body: &[u8]) -> FailureCause {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(answer) if answer.status.as_deref() == Some("error") => FailureCause::Prometheus {
            status,
            error_type: answer.error_type.unwrap_or_else(|| "unknown".into()),
            message: answer.error.unwrap_or_default(),
        },
        Ok(ErrorBody {
            error: Some(message),
            ..
        }) => FailureCause::HttpStatus { status, message },
        _ => FailureCause::HttpStatus {
            status,
            message: body_excerpt(body),
        },
    }
}

/// The start of a non-API body (a proxy's HTML page, say), on one line.
fn body_excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        "empty body".into()
    } else if body.len() > MAX {
        format!("{line}…")
    } else {
        line
    }
}

fn malformed(detail: impl fmt::Display) -> FailureCause {
    FailureCause::MalformedResponse {
        detail: detail.to_string(),
    }
}

fn parse_response(body: &[u8], window: Window) -> Result<Samples, FailureCause> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(malformed)?;
    if envelope.status != "success" {
        return Err(FailureCause::Prometheus {
            status: 200,
            error_type: envelope.error_type.unwrap_or_else(|| "unknown".into()),
            message: envelope.error.unwrap_or_default(),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| malformed("`data` is missing"))?;
    let mut collector = SampleCollector::default();
    match (window, data.result_type.as_str()) {
        (Window::Instant, "vector") => {
            let series: Vec<InstantSeries> =
                serde_json::from_value(data.result).map_err(malformed)?;
            for s in &series {
                collector.start_series(s.metric.clone());
                collector.push(
                    seconds_to_millis(s.value.0),
                    parse_value(&s.value.1)?,
                    || describe(&s.metric),
                );
            }
            Ok(collector.finish_instant()?)
        }
        (Window::Instant, "scalar") => {
            let (t, value): (f64, String) =
                serde_json::from_value(data.result).map_err(malformed)?;
            collector.start_series(BTreeMap::new());
            collector.push(seconds_to_millis(t), parse_value(&value)?, || {
                "scalar".into()
            });
            Ok(collector.finish_instant()?)
        }
        (Window::Range { .. }, "matrix") => {
            let series: Vec<RangeSeries> =
                serde_json::from_value(data.result).map_err(malformed)?;
            for s in &series {
                collector.start_series(s.metric.clone());
                for (t, value) in &s.values {
                    collector.push(seconds_to_millis(*t), parse_value(value)?, || {
                        describe(&s.metric)
                    });
                }
            }
            Ok(collector.finish_range()?)
        }
        (window, found) => Err(FailureCause::UnexpectedResultType {
            expected: match window {
                Window::Instant => "vector",
                Window::Range { .. } => "matrix",
            },
            found: found.to_owned(),
        }),
    }
}

/// Prometheus sends times as float seconds with millisecond resolution.
fn seconds_to_millis(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

/// Prometheus sends values as strings: decimal numbers, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Result<f64, FailureCause> {
    text.parse::<f64>()
        .map_err(|_| malformed(format!("sample value `{text}` is not a number")))
}

fn describe(metric: &BTreeMap<String, String>) -> String {
    let name = metric.get("__name__").map(String::as_str).unwrap_or("");
    let labels = metric
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",");
    format!("{name}{{{labels}}}")
}

/// Names the cause of a failed exchange from the error's source chain.
pub(crate) fn classify_transport(error: &reqwest::Error, host: &str) -> FailureCause {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return FailureCause::ConnectionRefused;
        }
        if current.to_string().starts_with("dns error") {
            let detail = std::iter::successors(current.source(), |e| e.source())
                .last()
                .map(|e| e.to_string())
                .unwrap_or_else(|| current.to_string());
            return FailureCause::Dns {
                host: host.to_owned(),
                detail,
            };
        }
        source = current.source();
    }
    FailureCause::Transport {
        detail: error_chain(error),
    }
}

/// `outer: inner: innermost`, without repeating a message a wrapper already includes.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        let message = current.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoData;

    fn range() -> Window {
        Window::Range {
            lookback: Duration::from_secs(60),
            step: Duration::from_secs(15),
        }
    }

    #[test]
    fn parses_vector_in_series_order() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1.5,"0.25"]},
            {"metric":{"pod":"b"},"value":[1.5,"1e3"]}]}}"#;
        let samples = parse_response(body, Window::Instant).unwrap();
        assert_eq!(samples.values, vec![0.25, 1000.0]);
        assert_eq!(samples.series, 2);
    }

    #[test]
    fn parses_scalar_for_instant_queries() {
        let body = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.99"]}}"#;
        assert_eq!(
            parse_response(body, Window::Instant).unwrap().values,
            vec![0.99]
        );
    }

    #[test]
    fn parses_every_point_of_every_matrix_series() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"pod":"a"},"values":[[1,"1"],[2,"2"]]},
            {"metric":{"pod":"b"},"values":[[1,"3"],[2,"NaN"],[3,"4"]]}]}}"#;
        let samples = parse_response(body, range()).unwrap();
        assert_eq!(samples.values, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(samples.series, 2);
        assert_eq!(samples.dropped_non_finite, 1);
    }

    #[test]
    fn non_finite_instant_value_is_no_data() {
        for text in ["NaN", "+Inf", "-Inf"] {
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[
                {{"metric":{{"__name__":"x","pod":"a"}},"value":[1,"2"]}},
                {{"metric":{{"__name__":"x","pod":"b"}},"value":[1,"{text}"]}}]}}}}"#
            );
            match parse_response(body.as_bytes(), Window::Instant) {
                Err(FailureCause::NoData(NoData::NonFinite { series, .. })) => {
                    assert_eq!(series, r#"x{pod="b"}"#)
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn all_non_finite_range_is_no_data() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1,"NaN"],[2,"+Inf"]]}]}}"#;
        let err = parse_response(body, range()).unwrap_err();
        assert!(
            matches!(err, FailureCause::NoData(NoData::NonFinite { .. })),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("no data"), "{err}");
    }

    #[test]
    fn empty_results_are_no_data() {
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        for (body, window) in [(&vector[..], Window::Instant), (&matrix[..], range())] {
            assert_eq!(
                parse_response(body, window).unwrap_err(),
                FailureCause::NoData(NoData::EmptyResult)
            );
        }
    }

    #[test]
    fn wrong_result_type_is_named() {
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            parse_response(matrix, Window::Instant).unwrap_err(),
            FailureCause::UnexpectedResultType {
                expected: "vector",
                found: "matrix".into()
            }
        );
        let string = br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(matches!(
            parse_response(string, Window::Instant).unwrap_err(),
            FailureCause::UnexpectedResultType {
                expected: "vector",
                ..
            }
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        for body in [&b"<html>proxy</html>"[..], br#"{"status":"success"}"#, br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"abc"]}]}}"#] {
            assert!(
                matches!(parse_response(body, Window::Instant).unwrap_err(), FailureCause::MalformedResponse { .. }),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn status_error_body_is_a_prometheus_error() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        assert_eq!(
            classify_status(400, body),
            FailureCause::Prometheus {
                status: 400,
                error_type: "bad_data".into(),
                message: "parse error at char 4".into()
            }
        );
    }

    #[test]
    fn non_api_error_bodies_keep_their_error_or_an_excerpt() {
        assert_eq!(
            classify_status(403, br#"{"error":"token expired"}"#),
            FailureCause::HttpStatus {
                status: 403,
                message: "token expired".into()
            }
        );
        assert_eq!(
            classify_status(502, b"<html>\n bad   gateway\n</html>"),
            FailureCause::HttpStatus {
                status: 502,
                message: "<html> bad gateway </html>".into()
            }
        );
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let basic = Auth::Basic {
            username: "fife".into(),
            password: "hunter2".into(),
        };
        let bearer = Auth::Bearer {
            token: "s3cr3t".into(),
        };
        assert!(!format!("{basic:?}{bearer:?}").contains("hunter2"));
        assert!(!format!("{bearer:?}").contains("s3cr3t"));
    }

    #[test]
    fn invalid_sources_are_rejected_before_any_query() {
        let pool = ClientPool::new(1);
        let err =
            PrometheusProvider::new(&pool, PrometheusSource::new("prometheus:9090")).unwrap_err();
        assert!(matches!(err, SourceError::InvalidAddress { .. }), "{err}");
        let mut source = PrometheusSource::new("https://p:9090");
        source.tls.ca_bundle_pem = Some(b"not pem".to_vec());
        let err = PrometheusProvider::new(&pool, source).unwrap_err();
        assert!(matches!(err, SourceError::InvalidCaBundle { .. }), "{err}");
    }

    #[test]
    fn equal_tls_options_share_one_client() {
        let pool = ClientPool::new(1);
        PrometheusProvider::new(&pool, PrometheusSource::new("http://a:1")).unwrap();
        PrometheusProvider::new(&pool, PrometheusSource::new("http://b:2")).unwrap();
        let mut insecure = PrometheusSource::new("https://c:3");
        insecure.tls.insecure_skip_verify = true;
        PrometheusProvider::new(&pool, insecure).unwrap();
        assert_eq!(pool.clients.lock().unwrap().len(), 2);
    }

    #[test]
    fn times_are_unix_seconds_with_millis() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        assert_eq!(unix_seconds(at), "1700000000.250");
    }
}
