//! Measures the canary and the baseline with one provider: renders the query for each
//! role and runs both at once, so a comparison gets two sample sets or one error.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::error::{FailureCause, MetricError};
use crate::prometheus::{ClientPool, PrometheusProvider, PrometheusSource};
use crate::template::{Role, TemplateValues, render};
use crate::{MetricProvider, Query, Samples, Window};

/// The queries of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleQueries {
    /// One template; `{{role}}` renders as `canary` and as `baseline`.
    PerRole(String),
    /// A query for each side (each may still use `{{role}}` and `{{args.*}}`).
    Separate { canary: String, baseline: String },
}

impl RoleQueries {
    fn template(&self, role: Role) -> &str {
        match (self, role) {
            (RoleQueries::PerRole(template), _) => template,
            (RoleQueries::Separate { canary, .. }, Role::Canary) => canary,
            (RoleQueries::Separate { baseline, .. }, Role::Baseline) => baseline,
        }
    }
}

/// The two sides of a comparison.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleSamples {
    pub canary: Samples,
    pub baseline: Samples,
}

/// Renders and runs the canary and baseline queries concurrently. The first failure is
/// returned; an empty side is an error (`NoData`), never an empty sample set.
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
    let (canary, baseline) =
        futures::try_join!(provider.measure(&canary), provider.measure(&baseline))?;
    Ok(RoleSamples { canary, baseline })
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
