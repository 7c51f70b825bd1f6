//! Measures the canary, the baseline and the stable pods with one provider: renders the
//! query for each role and runs them at once, so a comparison gets its sample sets or one
//! error. The stable side is optional evidence: a stable query that finds nothing is None.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::error::{ErrorClass, FailureCause, MetricError};
use crate::prometheus::{ClientPool, PrometheusProvider, PrometheusSource};
use crate::template::{Role, TemplateValues, render};
use crate::{MetricProvider, Query, Samples, Window};

/// The queries of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleQueries {
    /// One template; `{{role}}` renders as `canary`, `baseline` and `stable`.
    PerRole(String),
    /// A query for each side (each may still use `{{role}}` and `{{args.*}}`); the stable
    /// pods are measured with the baseline's query.
    Separate { canary: String, baseline: String },
}

impl RoleQueries {
    fn template(&self, role: Role) -> &str {
        match (self, role) {
            (RoleQueries::PerRole(template), _) => template,
            (RoleQueries::Separate { canary, .. }, Role::Canary) => canary,
            (RoleQueries::Separate { baseline, .. }, Role::Baseline | Role::Stable) => baseline,
        }
    }
}

/// The sides of a comparison.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleSamples {
    pub canary: Samples,
    pub baseline: Samples,
    /// The stable pods, when the query found any: more pods of the baseline's version.
    pub stable: Option<Samples>,
}

/// Renders and runs the canary, baseline and stable queries concurrently. The first
/// failure of the canary or baseline is returned, and an empty canary or baseline is an
/// error (`NoData`), never an empty sample set. The stable side is optional: a stable query
/// that finds nothing gives `stable: None`; one that fails otherwise is an error.
pub async fn measure_roles(
    provider: &dyn MetricProvider,
    queries: &RoleQueries,
    args: &BTreeMap<String, String>,
    window: Window,
    at: SystemTime,
) -> Result<RoleSamples, MetricError> {
    let query_for = |role: Role| -> Result<Query, MetricError> {
        let template = queries.template(role);
        let values = TemplateValues {
            args: args.clone(),
            role: Some(role),
        };
        let text = render(template, &values).map_err(|e| {
            MetricError::new(provider.endpoint(), template, FailureCause::Template(e))
        })?;
        Ok(Query { text, window, at })
    };
    let canary = query_for(Role::Canary)?;
    let baseline = query_for(Role::Baseline)?;
    let stable = query_for(Role::Stable)?;
    let optional_stable = async {
        match provider.measure(&stable).await {
            Ok(samples) => Ok(Some(samples)),
            Err(e) if e.class() == ErrorClass::NoData => Ok(None),
            Err(e) => Err(e),
        }
    };
    let (canary, baseline, stable) = futures::try_join!(
        provider.measure(&canary),
        provider.measure(&baseline),
        optional_stable
    )?;
    Ok(RoleSamples {
        canary,
        baseline,
        stable,
    })
}

/// What `fife judge --prometheus` needs: canary and baseline samples from a range query
/// over `[at − lookback, at]` at `step`, with default timeout, retries and size limit.
/// Every failure, a bad address included, is a [`MetricError`] whose `Display` is one line
/// naming the URL, the query and the cause.
pub async fn prometheus_role_samples(
    address: &str,
    queries: &RoleQueries,
    lookback: Duration,
    step: Duration,
    at: SystemTime,
) -> Result<RoleSamples, MetricError> {
    let pool = ClientPool::new(2);
    let provider = PrometheusProvider::new(&pool, PrometheusSource::new(address)).map_err(|e| {
        MetricError::new(
            address,
            queries.template(Role::Canary),
            FailureCause::InvalidSource {
                detail: e.to_string(),
            },
        )
    })?;
    measure_roles(
        &provider,
        queries,
        &BTreeMap::new(),
        Window::Range { lookback, step },
        at,
    )
    .await
}
