//! `AnalysisTemplate` and `ClusterAnalysisTemplate`: the reusable definition of what to
//! measure (metrics, providers, conditions, comparisons) and the arguments it takes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// A namespaced, reusable analysis: the metrics to measure and the arguments they take.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fife.dev",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "AnalysisTemplate",
    namespaced,
    status = "TemplateStatus",
    shortname = "fat",
    category = "fife",
    doc = "A reusable analysis: metrics with their provider, conditions or comparison, and arguments.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// Arguments the metrics use as `{{args.<name>}}`; a value here is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// What to measure. Names must be unique within the template.
    #[schemars(length(min = 1, max = 64))]
    pub metrics: Vec<Metric>,
}

/// A cluster-wide analysis template, referenced with `clusterScope: true`. Same shape as
/// [`AnalysisTemplateSpec`]; the two are separate types only because each kind needs its own.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fife.dev",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "ClusterAnalysisTemplate",
    status = "TemplateStatus",
    shortname = "fcat",
    category = "fife",
    doc = "A cluster-scoped reusable analysis, referenced from a Rollout with `clusterScope: true`.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAnalysisTemplateSpec {
    /// Arguments the metrics use as `{{args.<name>}}`; a value here is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// What to measure. Names must be unique within the template.
    #[schemars(length(min = 1, max = 64))]
    pub metrics: Vec<Metric>,
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(spec: ClusterAnalysisTemplateSpec) -> Self {
        AnalysisTemplateSpec {
            args: spec.args,
            metrics: spec.metrics,
        }
    }
}

impl From<AnalysisTemplateSpec> for ClusterAnalysisTemplateSpec {
    fn from(spec: AnalysisTemplateSpec) -> Self {
        ClusterAnalysisTemplateSpec {
            args: spec.args,
            metrics: spec.metrics,
        }
    }
}

/// What the controller last concluded about a template (for example that it does not validate).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A named argument: declared by a template (optionally with a default `value`) and supplied
/// by a Rollout step as a literal `value` or taken `valueFrom` the Rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.value) && has(self.valueFrom))",
    "message": "set either value or valueFrom, not both"
}]))]
pub struct Argument {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgumentValueFrom>,
}

/// Where an argument's value comes from when it is not a literal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.fieldRef) != has(self.podTemplateHashValue)",
    "message": "set exactly one of fieldRef or podTemplateHashValue"
}]))]
pub struct ArgumentValueFrom {
    /// The pod-template hash of the stable or of the latest (canary) revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<PodTemplateHashValue>,
    /// A field of the Rollout, e.g. `metadata.labels['team']` or `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// Which revision's pod-template hash an argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum PodTemplateHashValue {
    Stable,
    Latest,
}

/// A path into the Rollout object, in the Kubernetes downward-API syntax.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

/// One thing to measure, how often, and what result passes.
///
/// A metric is either a *threshold* metric (`successCondition` and/or `failureCondition`,
/// CEL over `result`) or a *comparison* metric (`compare`: canary series against baseline
/// series, judged by Mann-Whitney U).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.compare) || has(self.successCondition) || has(self.failureCondition)",
        "message": "a metric needs successCondition, failureCondition or compare; without one every measurement would be Inconclusive"
    },
    {
        "rule": "!has(self.compare) || !(has(self.successCondition) || has(self.failureCondition))",
        "message": "a comparison metric (compare) cannot also have successCondition or failureCondition"
    },
    {
        "rule": "!has(self.count) || self.count <= 1 || has(self.interval)",
        "message": "count greater than 1 needs an interval between measurements"
    },
    {
        "rule": "!has(self.count) || self.failureLimit < self.count",
        "message": "failureLimit must be smaller than count, or the metric can never fail"
    },
    {
        "rule": "!has(self.count) || self.inconclusiveLimit < self.count",
        "message": "inconclusiveLimit must be smaller than count, or the metric can never be Inconclusive"
    },
    {
        "rule": "!has(self.compare) || !has(self.provider.prometheus) || self.provider.prometheus.query.contains('{{role}}')",
        "message": "a comparison metric's query must contain {{role}} so it can select the canary and the baseline series"
    }
]))]
pub struct Metric {
    /// Unique within its template; names the metric in the AnalysisRun and the audit record.
    pub name: String,
    /// Time between measurements. Required when `count` is greater than 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Wait this long after the analysis starts before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Duration>,
    /// Number of measurements. Unset with `interval` set: measure until the analysis is
    /// stopped (background analysis). Unset without `interval`: measure once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<i32>,
    /// CEL over `result` (a list of numbers); true makes the measurement Successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// CEL over `result`; true makes the measurement Failed. Failure wins over success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// The metric fails when more than this many measurements failed.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub failure_limit: i32,
    /// The metric is Inconclusive when more than this many measurements were inconclusive.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub inconclusive_limit: i32,
    /// The metric errors when more than this many measurements in a row errored.
    #[serde(default = "default_consecutive_error_limit")]
    #[schemars(range(min = 0))]
    pub consecutive_error_limit: i32,
    /// Measure and record, but never let this metric change the run's phase.
    #[serde(default)]
    pub dry_run: bool,
    /// How many of the newest measurements the AnalysisRun keeps; counters keep counting.
    #[serde(default = "default_measurement_retention")]
    #[schemars(range(min = 1, max = 1000))]
    pub measurement_retention: i32,
    /// Where the numbers come from.
    pub provider: MetricProvider,
    /// Judge the canary against the baseline instead of testing a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<Comparison>,
}

pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;
pub const DEFAULT_MEASUREMENT_RETENTION: i32 = 10;

fn default_consecutive_error_limit() -> i32 {
    DEFAULT_CONSECUTIVE_ERROR_LIMIT
}

fn default_measurement_retention() -> i32 {
    DEFAULT_MEASUREMENT_RETENTION
}

impl Metric {
    /// A metric with defaults for everything but its name and provider; for builders and tests.
    pub fn new(name: impl Into<String>, provider: MetricProvider) -> Self {
        Metric {
            name: name.into(),
            interval: None,
            initial_delay: None,
            count: None,
            success_condition: None,
            failure_condition: None,
            failure_limit: 0,
            inconclusive_limit: 0,
            consecutive_error_limit: DEFAULT_CONSECUTIVE_ERROR_LIMIT,
            dry_run: false,
            measurement_retention: DEFAULT_MEASUREMENT_RETENTION,
            provider,
            compare: None,
        }
    }

    /// True for a comparison (canary vs baseline) metric.
    pub fn is_comparison(&self) -> bool {
        self.compare.is_some()
    }
}

/// The source of a metric's numbers. Exactly one provider is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MetricProvider {
    /// A Prometheus-compatible HTTP API (`/api/v1/query`, `/api/v1/query_range`).
    Prometheus(PrometheusProvider),
}

/// Query a Prometheus HTTP API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    #[schemars(length(min = 1))]
    pub address: String,
    /// PromQL. May use `{{args.<name>}}`; comparison metrics use `{{role}}`.
    #[schemars(length(min = 1, max = 16384))]
    pub query: String,
    /// Evaluate as a range query: every point of every returned series is one sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<QueryRange>,
    /// Give up on a query after this long; the measurement is then an Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<PrometheusAuth>,
    /// A Secret key holding PEM CA certificates to trust for `https` addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeyRef>,
    /// Skip TLS certificate verification. For test environments only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The window of a range query, ending at the measurement time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryRange {
    /// How far back from the measurement time the range starts.
    pub lookback: Duration,
    /// Resolution of the range query.
    pub step: Duration,
}

/// Credentials for the Prometheus API, read from Secrets in the Rollout's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.bearerTokenSecretRef) != has(self.basicAuthSecretRef)",
    "message": "set exactly one of bearerTokenSecretRef or basicAuthSecretRef"
}]))]
pub struct PrometheusAuth {
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret_ref: Option<SecretKeyRef>,
    /// Sent as HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_secret_ref: Option<BasicAuthSecretRef>,
}

/// One key of one Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// A Secret holding a user name and a password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthSecretRef {
    pub name: String,
    #[serde(default = "default_username_key")]
    pub username_key: String,
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".to_owned()
}

fn default_password_key() -> String {
    "password".to_owned()
}

/// How a comparison metric judges the canary series against the baseline series. The
/// judge owns the meaning and the bounds of these settings: [`Comparison::judge_config`]
/// is the one translation, and validation goes through the judge's `validate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.confidence > 0.0 && self.confidence < 1.0",
        "message": "confidence must be strictly between 0 and 1, e.g. 0.95"
    },
    {
        "rule": "!has(self.allowedIncrease) || self.allowedIncrease >= 1.0",
        "message": "allowedIncrease is a ratio of at least 1.0, e.g. 1.10 for +10%"
    },
    {
        "rule": "!has(self.allowedDecrease) || (self.allowedDecrease > 0.0 && self.allowedDecrease <= 1.0)",
        "message": "allowedDecrease is a ratio in (0, 1], e.g. 0.90 for -10%"
    },
    {
        "rule": "!has(self.test) || self.test != 'counts' || (has(self.requests) && self.requests.contains('{{role}}'))",
        "message": "test: counts needs requests, the PromQL for each pod's requests with {{role}}, e.g. sum by (pod) (increase(http_requests_total{fife_role=\"{{role}}\"}[1m]))"
    }
]))]
pub struct Comparison {
    /// `pods` (default): pod-level locations against the spread between pods of one
    /// version, valid over every measurement of the run. `counts`: error ratios, the
    /// metric's query counting each pod's errors and `requests` its requests, compared as
    /// proportions with the spread between pods. `mannWhitney`: every point pooled
    /// into one rank test, for teams migrating from Kayenta; valid only for independent
    /// points and a single look.
    #[serde(default)]
    pub test: ComparisonTest,
    /// Which change counts as a regression.
    #[serde(default)]
    pub direction: Direction,
    /// 1 − significance level of the test.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Ratio of canary to baseline mean tolerated before an increase fails (1.10 = +10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_increase: Option<f64>,
    /// Ratio of canary to baseline mean tolerated before a decrease fails (0.90 = −10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_decrease: Option<f64>,
    /// How significance and effect size combine into a classification.
    #[serde(default)]
    pub rule: ComparisonRule,
    /// Fewer samples than this on either side makes the measurement Inconclusive.
    #[serde(default = "default_min_samples")]
    #[schemars(range(min = 1))]
    pub min_samples: i32,
    #[serde(default)]
    pub nan_strategy: NanStrategy,
    #[serde(default)]
    pub outliers: OutlierPolicy,
    /// The scale of the `pods` test: `log` compares ratios, `linear` differences (values
    /// that can be 0, such as error ratios); `auto` is log unless a value is 0 or below.
    #[serde(default)]
    pub scale: ComparisonScale,
    /// `counts` only: PromQL for each pod's requests, with `{{role}}` and aggregated by
    /// the same labels as the metric's query (which counts the errors), e.g.
    /// `sum by (pod) (increase(http_requests_total{fife_role="{{role}}"}[1m]))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16384))]
    pub requests: Option<String>,
}

pub const DEFAULT_CONFIDENCE: f64 = 0.95;
pub const DEFAULT_MIN_SAMPLES: i32 = 20;

fn default_confidence() -> f64 {
    DEFAULT_CONFIDENCE
}

fn default_min_samples() -> i32 {
    DEFAULT_MIN_SAMPLES
}

impl Default for Comparison {
    fn default() -> Self {
        Comparison {
            test: ComparisonTest::default(),
            direction: Direction::default(),
            confidence: DEFAULT_CONFIDENCE,
            allowed_increase: None,
            allowed_decrease: None,
            rule: ComparisonRule::default(),
            min_samples: DEFAULT_MIN_SAMPLES,
            nan_strategy: NanStrategy::default(),
            outliers: OutlierPolicy::default(),
            scale: ComparisonScale::default(),
            requests: None,
        }
    }
}

impl Comparison {
    /// The judge's settings for this comparison: the one place where the API's names
    /// become the judge's.
    pub fn judge_config(&self) -> fife_judge::JudgeConfig {
        fife_judge::JudgeConfig {
            test: match self.test {
                ComparisonTest::Pods => fife_judge::Test::Pods,
                ComparisonTest::Counts => fife_judge::Test::Counts,
                ComparisonTest::MannWhitney => fife_judge::Test::MannWhitney,
            },
            confidence: self.confidence,
            direction: match self.direction {
                Direction::Increase => fife_judge::Direction::Increase,
                Direction::Decrease => fife_judge::Direction::Decrease,
                Direction::Either => fife_judge::Direction::Either,
            },
            allowed_increase: self.allowed_increase.unwrap_or(1.0),
            allowed_decrease: self.allowed_decrease.unwrap_or(1.0),
            rule: match self.rule {
                ComparisonRule::Significance => fife_judge::DecisionRule::Significance,
                ComparisonRule::Kayenta => fife_judge::DecisionRule::Kayenta,
            },
            nan_policy: match self.nan_strategy {
                NanStrategy::Remove => fife_judge::NanPolicy::Remove,
                NanStrategy::ReplaceWithZero => fife_judge::NanPolicy::ReplaceWithZero,
            },
            outlier_policy: match self.outliers.strategy {
                OutlierStrategy::Keep => fife_judge::OutlierPolicy::Keep,
                OutlierStrategy::RemoveIqr => fife_judge::OutlierPolicy::RemoveIqr {
                    factor: self.outliers.factor,
                },
            },
            scale: match self.scale {
                ComparisonScale::Auto => fife_judge::Scale::Auto,
                ComparisonScale::Log => fife_judge::Scale::Log,
                ComparisonScale::Linear => fife_judge::Scale::Linear,
            },
        }
    }
}

/// The statistical test of a comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ComparisonTest {
    /// One location per pod, judged against the spread between pods of one version
    /// (baseline and stable pods), with α spent over the measurements of the run.
    #[default]
    Pods,
    /// Error ratios: each pod's errors (the query) over its requests (`requests`),
    /// compared as proportions with a dispersion estimated from the pods, with α spent
    /// over the measurements of the run.
    Counts,
    /// Every point of every series pooled into one Mann-Whitney U test.
    MannWhitney,
}

/// The scale on which the `pods` test compares pod locations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ComparisonScale {
    /// `log` when every value is greater than 0, else `linear`.
    #[default]
    Auto,
    /// Ratios: latencies, sizes.
    Log,
    /// Differences: values that can be 0, such as error ratios.
    Linear,
}

/// Which direction of change is a regression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Higher is worse (latency, error rate).
    Increase,
    /// Lower is worse (throughput, success rate).
    Decrease,
    /// Any significant change fails.
    #[default]
    Either,
}

/// How a classification is reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ComparisonRule {
    /// Fail when the test is significant in the regressing direction and the effect exceeds
    /// the allowed ratio.
    #[default]
    Significance,
    /// Kayenta's rule: fail when the confidence interval of the shift excludes zero in the
    /// regressing direction and the effect exceeds the allowed ratio.
    Kayenta,
}

/// What to do with NaN samples (e.g. 0/0 ratios on an idle pod).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NanStrategy {
    #[default]
    Remove,
    ReplaceWithZero,
}

/// Outlier handling before the test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierPolicy {
    #[serde(default)]
    pub strategy: OutlierStrategy,
    /// Tukey fence factor for `removeIqr`: drop points outside [Q1 − k·IQR, Q3 + k·IQR].
    #[serde(default = "default_iqr_factor")]
    #[schemars(range(min = 0))]
    pub factor: f64,
}

pub const DEFAULT_IQR_FACTOR: f64 = 1.5;

fn default_iqr_factor() -> f64 {
    DEFAULT_IQR_FACTOR
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        OutlierPolicy {
            strategy: OutlierStrategy::default(),
            factor: DEFAULT_IQR_FACTOR,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OutlierStrategy {
    #[default]
    Keep,
    RemoveIqr,
}
