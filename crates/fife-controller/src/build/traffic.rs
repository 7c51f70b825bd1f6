//! Gateway API traffic: the weights of an `HTTPRoute`'s backendRefs. Pure; `act` reads the
//! route and writes the patch built here.
//!
//! The route is the user's object: Fife changes only the rules that reference the stable
//! Service (`<name>-stable`), and in those only the stable, canary and baseline backendRefs
//! (adding the canary and baseline next to the stable one). Everything else in the route,
//! fields Fife does not know included, is kept as it was. Own minimal types, because the
//! `gateway-api` crate does not follow this kube version.

use fife_api::TrafficWeights;
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use fife_api::labels::Role;

/// `gateway.networking.k8s.io/v1` `HTTPRoute`, for the dynamic API.
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// One rule of an HTTPRoute: its backendRefs, and every other field as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One backend of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Why the route's weights could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficError {
    #[error(
        "HTTPRoute {route} has no rule with a backendRef to the stable Service {stable}; add \
         `backendRefs: [{{name: {stable}, port: <port>}}]` to the rule Fife should split"
    )]
    NoStableBackend { route: String, stable: String },
    #[error("HTTPRoute {route} has a malformed spec.rules ({detail}); fix the route")]
    Malformed { route: String, detail: String },
}

/// Reads `spec.rules` of a route object.
pub fn route_rules(route_name: &str, spec: &Value) -> Result<Vec<HttpRouteRule>, TrafficError> {
    match spec.get("rules") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(rules) => serde_json::from_value(rules.clone()).map_err(|e| TrafficError::Malformed {
            route: route_name.to_owned(),
            detail: e.to_string(),
        }),
    }
}

/// The rules with the stable, canary and baseline backendRefs weighted as `weights`.
/// A baseline backendRef is added only when the baseline gets traffic or already has one.
pub fn weighted_rules(
    route_name: &str,
    rollout_name: &str,
    rules: &[HttpRouteRule],
    weights: TrafficWeights,
) -> Result<Vec<HttpRouteRule>, TrafficError> {
    let stable = Role::Stable.child_name(rollout_name);
    let mut found = false;
    let mut out = rules.to_vec();
    for rule in &mut out {
        let Some(stable_ref) = rule.backend_refs.iter().find(|b| b.name == stable).cloned() else {
            continue;
        };
        found = true;
        for (role, weight) in [
            (Role::Stable, weights.stable),
            (Role::Canary, weights.canary),
            (Role::Baseline, weights.baseline),
        ] {
            let name = role.child_name(rollout_name);
            match rule.backend_refs.iter_mut().find(|b| b.name == name) {
                Some(existing) => existing.weight = Some(weight),
                None if role == Role::Baseline && weight == 0 => {}
                None => rule.backend_refs.push(BackendRef {
                    name,
                    weight: Some(weight),
                    ..stable_ref.clone()
                }),
            }
        }
    }
    if !found {
        return Err(TrafficError::NoStableBackend {
            route: route_name.to_owned(),
            stable,
        });
    }
    Ok(out)
}

/// The weights a route currently gives the three roles (first rule that names stable).
pub fn current_weights(rollout_name: &str, rules: &[HttpRouteRule]) -> Option<TrafficWeights> {
    let stable = Role::Stable.child_name(rollout_name);
    let rule = rules
        .iter()
        .find(|r| r.backend_refs.iter().any(|b| b.name == stable))?;
    let weight = |role: Role| {
        let name = role.child_name(rollout_name);
        rule.backend_refs
            .iter()
            .find(|b| b.name == name)
            // The Gateway API default weight is 1.
            .map_or(0, |b| b.weight.unwrap_or(1))
    };
    Some(TrafficWeights {
        stable: weight(Role::Stable),
        canary: weight(Role::Canary),
        baseline: weight(Role::Baseline),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> Vec<HttpRouteRule> {
        route_rules("web", &json!({ "rules": v })).unwrap()
    }

    fn w(stable: i32, canary: i32, baseline: i32) -> TrafficWeights {
        TrafficWeights {
            stable,
            canary,
            baseline,
        }
    }

    #[test]
    fn adds_canary_and_baseline_next_to_stable_and_keeps_other_fields() {
        let input = rules(json!([
            { "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
              "backendRefs": [{ "name": "web-stable", "port": 80, "kind": "Service" }] },
            { "backendRefs": [{ "name": "other", "port": 80 }] }
        ]));
        let out = weighted_rules("web", "web", &input, w(80, 10, 10)).unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            v[0]["backendRefs"],
            json!([
                { "name": "web-stable", "port": 80, "kind": "Service", "weight": 80 },
                { "name": "web-canary", "port": 80, "kind": "Service", "weight": 10 },
                { "name": "web-baseline", "port": 80, "kind": "Service", "weight": 10 }
            ])
        );
        assert_eq!(v[0]["matches"][0]["path"]["value"], "/");
        assert_eq!(
            v[1],
            json!({ "backendRefs": [{ "name": "other", "port": 80 }] })
        );
        assert_eq!(current_weights("web", &out), Some(w(80, 10, 10)));
    }

    #[test]
    fn weights_are_updated_in_place_and_baseline_is_not_added_at_zero() {
        let input = rules(json!([{ "backendRefs": [
            { "name": "web-stable", "port": 80, "weight": 90 },
            { "name": "web-canary", "port": 80, "weight": 10 }
        ]}]));
        let out = weighted_rules("web", "web", &input, w(100, 0, 0)).unwrap();
        assert_eq!(out[0].backend_refs.len(), 2);
        assert_eq!(current_weights("web", &out), Some(w(100, 0, 0)));
    }

    #[test]
    fn a_route_without_the_stable_backend_is_an_error_that_says_what_to_add() {
        let input = rules(json!([{ "backendRefs": [{ "name": "web", "port": 80 }] }]));
        let err = weighted_rules("web", "web", &input, w(100, 0, 0)).unwrap_err();
        assert!(err.to_string().contains("web-stable"), "{err}");
    }

    #[test]
    fn unweighted_backend_counts_as_the_api_default_of_one() {
        let input = rules(json!([{ "backendRefs": [{ "name": "web-stable" }] }]));
        assert_eq!(current_weights("web", &input), Some(w(1, 0, 0)));
    }
}
