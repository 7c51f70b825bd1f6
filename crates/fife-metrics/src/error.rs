//! Every way a measurement can fail, classified so the analysis layer can tell "no data"
//! (Inconclusive or Error, per the template) from a failed source (Error). A failure is
//! never turned into a number.

use std::fmt;
use std::time::Duration;

use crate::template::TemplateError;

/// A failed measurement: which endpoint, which query, and why.
///
/// Its `Display` is one line (the query's whitespace is collapsed), for example
/// ``query `up` against http://127.0.0.1:9090 failed: connection refused; …``.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("query `{}` against {endpoint} failed: {cause}", OneLine(.query))]
pub struct MetricError {
    /// The Prometheus address or the scraped pod's URL.
    pub endpoint: String,
    /// The query as sent (rendered), or the template when rendering failed.
    pub query: String,
    pub cause: FailureCause,
}

impl MetricError {
    pub fn new(endpoint: impl Into<String>, query: impl Into<String>, cause: FailureCause) -> Self {
        Self {
            endpoint: endpoint.into(),
            query: query.into(),
            cause,
        }
    }

    /// How the analysis layer should treat this failure.
    pub fn class(&self) -> ErrorClass {
        self.cause.class()
    }
}

/// The two ways the analysis layer treats a failed measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The source answered but there was nothing to judge (empty result, NaN, ±Inf):
    /// a comparison metric becomes Inconclusive, a threshold metric Error.
    NoData,
    /// The source could not be asked or gave an unusable answer: the measurement is an Error.
    SourceFailure,
}

/// Why the source gave nothing to judge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NoData {
    #[error(
        "no data: the query matched no series; check its selectors and that the targets are scraped"
    )]
    EmptyResult,
    #[error(
        "no data: every value was NaN or ±Inf (first {value} in series {series}); a ratio or quantile over a window without traffic gives NaN"
    )]
    NonFinite { value: f64, series: String },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FailureCause {
    #[error(
        "connection refused; check that the server is running and that the address and port are right"
    )]
    ConnectionRefused,
    #[error("DNS lookup of `{host}` failed ({detail}); check the host name in the address")]
    Dns { host: String, detail: String },
    #[error(
        "timed out after {:.1} s ({attempts} attempt(s)); raise the metric's `timeout` or make the query cheaper", after.as_secs_f64()
    )]
    Timeout { after: Duration, attempts: u32 },
    #[error("transport error: {detail}")]
    Transport { detail: String },
    #[error("HTTP {status}: {message}")]
    HttpStatus { status: u16, message: String },
    #[error("Prometheus rejected the query with {error_type} (HTTP {status}): {message}")]
    Prometheus {
        status: u16,
        error_type: String,
        message: String,
    },
    #[error(
        "expected a {expected} result but got a {found}; {hint}", hint = result_type_hint(expected)
    )]
    UnexpectedResultType {
        expected: &'static str,
        found: String,
    },
    #[error("the response is not a valid Prometheus API response: {detail}")]
    MalformedResponse { detail: String },
    #[error(
        "the response exceeds the {limit}-byte limit; the query matches too many series: aggregate it (sum by, topk) or narrow its selectors"
    )]
    ResponseTooLarge { limit: usize },
    #[error(transparent)]
    NoData(#[from] NoData),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("invalid query: {detail}")]
    InvalidQuery { detail: String },
    #[error("invalid source configuration: {detail}")]
    InvalidSource { detail: String },
}

fn result_type_hint(expected: &str) -> &'static str {
    if expected == "matrix" {
        "range queries need an expression that returns an instant vector"
    } else {
        "threshold metrics need an instant vector or a scalar; drop the range selector or wrap it in a function"
    }
}

impl FailureCause {
    pub fn class(&self) -> ErrorClass {
        match self {
            FailureCause::NoData(_) => ErrorClass::NoData,
            _ => ErrorClass::SourceFailure,
        }
    }

    /// Transport failures and overloaded servers may answer the next attempt; a query the
    /// server rejected will be rejected again.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            FailureCause::ConnectionRefused | FailureCause::Transport { .. } => true,
            FailureCause::HttpStatus { status, .. } | FailureCause::Prometheus { status, .. } => {
                *status == 429 || *status >= 500
            }
            _ => false,
        }
    }
}

/// Shows a multi-line query (YAML block scalars) on one line.
struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = self.0.split_whitespace();
        if let Some(first) = words.next() {
            f.write_str(first)?;
            for word in words {
                write!(f, " {word}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_endpoint_query_and_cause() {
        let err = MetricError::new(
            "http://127.0.0.1:9",
            "sum(rate(\n  x[1m]))\n",
            FailureCause::ConnectionRefused,
        );
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with(
                "query `sum(rate( x[1m]))` against http://127.0.0.1:9 failed: connection refused"
            ),
            "{text}"
        );
    }

    #[test]
    fn only_no_data_is_classified_as_no_data() {
        assert_eq!(
            FailureCause::NoData(NoData::EmptyResult).class(),
            ErrorClass::NoData
        );
        let nan = NoData::NonFinite {
            value: f64::NAN,
            series: "{}".into(),
        };
        assert_eq!(FailureCause::NoData(nan).class(), ErrorClass::NoData);
        assert_eq!(
            FailureCause::ConnectionRefused.class(),
            ErrorClass::SourceFailure
        );
        assert_eq!(
            FailureCause::ResponseTooLarge { limit: 1 }.class(),
            ErrorClass::SourceFailure
        );
    }

    #[test]
    fn only_transport_errors_and_overload_are_retried() {
        assert!(FailureCause::ConnectionRefused.is_retryable());
        let status = |status| FailureCause::HttpStatus {
            status,
            message: String::new(),
        };
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(404).is_retryable());
        assert!(!FailureCause::NoData(NoData::EmptyResult).is_retryable());
        assert!(
            !FailureCause::Timeout {
                after: Duration::from_secs(1),
                attempts: 1
            }
            .is_retryable()
        );
    }
}
