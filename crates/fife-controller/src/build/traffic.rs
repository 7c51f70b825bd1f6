//! Gateway API traffic: the weights of an `HTTPRoute`'s backendRefs and the header rules of
//! `setHeaderRoute` steps. Pure; `act` reads the route and writes the patch built here. Also
//! the one error type of all traffic routers.
//!
//! The route is the user's object: Fife changes only the rules that reference the stable
//! Service (`<name>-stable`), and in those only the stable, canary and baseline backendRefs
//! (adding the canary and baseline next to the stable one), and it owns the rules named
//! after the Rollout's `setHeaderRoute` steps. Everything else in the route, fields Fife
//! does not know included, is kept as it was. Own minimal types, because the `gateway-api`
//! crate does not follow this kube version.

use fife_api::TrafficWeights;
use fife_api::rollout::{HeaderRoutingMatch, SetHeaderRoute};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

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

/// Why a router's object could not be given the weights or header routes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficError {
    #[error(
        "HTTPRoute {route} has no rule with a backendRef to the stable Service {stable}; add \
         `backendRefs: [{{name: {stable}, port: <port>}}]` to the rule Fife should split"
    )]
    NoStableBackend { route: String, stable: String },
    #[error("{object} is malformed ({detail}); fix it")]
    Malformed { object: String, detail: String },
    #[error(
        "Ingress {ingress} has no path with a backend to the stable Service {stable}; send the \
         paths Fife should split to `service: {{name: {stable}}}`"
    )]
    NoStableIngressBackend { ingress: String, stable: String },
    #[error(
        "VirtualService {virtual_service} has no HTTP route named {route}: name the routes Fife \
         may shift in spec.strategy.canary.trafficRouting.istio.virtualService.routes"
    )]
    NoNamedRoute {
        virtual_service: String,
        route: String,
    },
    #[error(
        "VirtualService {virtual_service} has no HTTP route{route} with the stable destination \
         ({stable}); add `route: [{{destination: {{{stable}}}}}]` to the routes Fife should split"
    )]
    NoStableDestination {
        virtual_service: String,
        /// ` named X`, or empty when every route was searched.
        route: String,
        stable: String,
    },
}

/// Reads `spec.rules` of a route object.
pub fn route_rules(route_name: &str, spec: &Value) -> Result<Vec<HttpRouteRule>, TrafficError> {
    match spec.get("rules") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(rules) => serde_json::from_value(rules.clone()).map_err(|e| TrafficError::Malformed {
            object: format!("HTTPRoute {route_name}"),
            detail: format!("spec.rules: {e}"),
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

/// The rules with the header rules of `setHeaderRoute` steps: every rule named in `owned`
/// (the names the steps use) is removed, and one rule per route in `routes` is appended,
/// its header matches sending requests to the canary Service on the stable backend's port.
/// Gateway API orders rules by match precedence, not position, and header matches make a
/// rule more specific than the same rule without them, so appending is enough.
pub fn with_header_rules(
    route_name: &str,
    rollout_name: &str,
    rules: &[HttpRouteRule],
    owned: &[&str],
    routes: &[SetHeaderRoute],
) -> Result<Vec<HttpRouteRule>, TrafficError> {
    let stable = Role::Stable.child_name(rollout_name);
    let mut out: Vec<HttpRouteRule> = rules
        .iter()
        .filter(|r| {
            !r.rest
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| owned.contains(&n))
        })
        .cloned()
        .collect();
    if routes.is_empty() {
        return Ok(out);
    }
    let stable_ref = rules
        .iter()
        .flat_map(|r| r.backend_refs.iter())
        .find(|b| b.name == stable)
        .cloned()
        .ok_or_else(|| TrafficError::NoStableBackend {
            route: route_name.to_owned(),
            stable: stable.clone(),
        })?;
    for route in routes {
        let headers: Vec<Value> = route.r#match.iter().map(gateway_header_match).collect();
        let mut rest = Map::new();
        rest.insert("name".to_owned(), Value::String(route.name.clone()));
        rest.insert("matches".to_owned(), json!([{ "headers": headers }]));
        out.push(HttpRouteRule {
            backend_refs: vec![BackendRef {
                name: Role::Canary.child_name(rollout_name),
                weight: None,
                ..stable_ref.clone()
            }],
            rest,
        });
    }
    Ok(out)
}

/// A Gateway API `HTTPHeaderMatch`. The API has no prefix match, so a prefix becomes the
/// regular expression `^<prefix, escaped>.*`.
fn gateway_header_match(m: &HeaderRoutingMatch) -> Value {
    let value = &m.header_value;
    let (kind, text) = match (&value.exact, &value.prefix, &value.regex) {
        (Some(exact), _, _) => ("Exact", exact.clone()),
        (None, Some(prefix), _) => ("RegularExpression", format!("^{}.*", regex_escape(prefix))),
        (None, None, Some(regex)) => ("RegularExpression", regex.clone()),
        // Refused by validation and by the CRD's rule; an empty exact match is the
        // narrowest reading if one slips through.
        (None, None, None) => ("Exact", String::new()),
    };
    json!({ "type": kind, "name": m.header_name, "value": text })
}

/// `text` with the RE2 metacharacters escaped.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
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
    use fife_api::rollout::StringMatch;

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

    fn header_route(name: &str, value: StringMatch) -> SetHeaderRoute {
        SetHeaderRoute {
            name: name.to_owned(),
            r#match: vec![HeaderRoutingMatch {
                header_name: "x-canary".to_owned(),
                header_value: value,
            }],
        }
    }

    #[test]
    fn header_rules_send_matching_requests_to_the_canary_and_leave_with_their_step() {
        let input = rules(json!([
            { "name": "main", "backendRefs": [{ "name": "web-stable", "port": 80, "weight": 100 }] },
            { "name": "old-route", "backendRefs": [{ "name": "web-canary", "port": 80 }] }
        ]));
        let prefix = StringMatch {
            prefix: Some("beta.1".to_owned()),
            ..StringMatch::default()
        };
        let out = with_header_rules(
            "web",
            "web",
            &input,
            &["old-route", "beta"],
            &[header_route("beta", prefix)],
        )
        .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
        assert_eq!(v[0]["name"], "main");
        assert_eq!(
            v[1],
            json!({
                "name": "beta",
                "matches": [{ "headers": [
                    { "type": "RegularExpression", "name": "x-canary", "value": "^beta\\.1.*" }
                ] }],
                "backendRefs": [{ "name": "web-canary", "port": 80 }]
            })
        );
        let removed = with_header_rules("web", "web", &out, &["beta"], &[]).unwrap();
        assert_eq!(serde_json::to_value(&removed).unwrap()[0], v[0]);
        assert_eq!(removed.len(), 1);
    }

    #[test]
    fn an_exact_header_match_stays_exact() {
        let input = rules(json!([{ "backendRefs": [{ "name": "web-stable", "port": 80 }] }]));
        let exact = StringMatch {
            exact: Some("yes".to_owned()),
            ..StringMatch::default()
        };
        let out =
            with_header_rules("web", "web", &input, &["h"], &[header_route("h", exact)]).unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            v[1]["matches"][0]["headers"][0],
            json!({ "type": "Exact", "name": "x-canary", "value": "yes" })
        );
    }
}
