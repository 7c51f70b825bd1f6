//! Istio traffic: the destination weights of a VirtualService's HTTP routes, the header
//! routes of `setHeaderRoute` steps, and the labels of a DestinationRule's role subsets.
//! Pure; `act` reads the objects and writes what is built here.
//!
//! The VirtualService is the user's: Fife changes only the routes it may shift (those named
//! in `virtualService.routes`, or every route with the stable destination), and in those
//! only the stable, canary and baseline destinations (adding the canary and baseline next
//! to the stable one, with the stable entry's other fields). It owns the routes named after
//! the Rollout's `setHeaderRoute` steps, kept first so they match before any other route.
//! Everything else, fields Fife does not know included, is kept as it was.
//!
//! The destinations are told apart by host (`<name>-stable`, `<name>-canary`,
//! `<name>-baseline`, short or fully qualified) or, with a DestinationRule, by subset of one
//! host. Fife owns the `labels` of the three subsets and sets them to the role label alone:
//! the revision label cannot tell the baseline from the stable, which run the same revision.

use std::collections::BTreeMap;

use fife_api::TrafficWeights;
use fife_api::labels::{ROLE_LABEL, Role};
use fife_api::rollout::{IstioDestinationRule, IstioRouting, SetHeaderRoute};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::build::traffic::TrafficError;

/// `networking.istio.io/v1` `VirtualService`, for the dynamic API.
pub fn virtual_service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
}

/// `networking.istio.io/v1` `DestinationRule`, for the dynamic API.
pub fn destination_rule_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "DestinationRule"),
        "destinationrules",
    )
}

/// One HTTP route of a VirtualService: its name and destinations, every other field as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One weighted destination of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteDestination {
    pub destination: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Where a destination sends requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// How a role's destination is recognised: by host, or by subset of one host.
#[derive(Debug, Clone, Copy)]
pub enum Split<'a> {
    ByHost { rollout: &'a str },
    BySubset(&'a IstioDestinationRule),
}

impl<'a> Split<'a> {
    /// The split a Rollout's Istio routing asks for.
    pub fn of(routing: &'a IstioRouting, rollout: &'a str) -> Self {
        match &routing.destination_rule {
            Some(rule) => Split::BySubset(rule),
            None => Split::ByHost { rollout },
        }
    }

    fn role_of(&self, destination: &Destination) -> Option<Role> {
        match self {
            Split::ByHost { rollout } => Role::ALL.into_iter().find(|role| {
                let service = role.child_name(rollout);
                destination.host == service
                    || destination
                        .host
                        .strip_prefix(service.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            }),
            Split::BySubset(rule) => {
                let subset = destination.subset.as_deref()?;
                Role::ALL
                    .into_iter()
                    .find(|role| rule.subset(*role) == Some(subset))
            }
        }
    }

    /// The destination of `role` made from the stable one (same port, same host suffix).
    fn destination_for(&self, role: Role, stable: &Destination) -> Option<Destination> {
        match self {
            Split::ByHost { rollout } => {
                let suffix = stable
                    .host
                    .strip_prefix(Role::Stable.child_name(rollout).as_str())
                    .unwrap_or_default();
                Some(Destination {
                    host: format!("{}{suffix}", role.child_name(rollout)),
                    ..stable.clone()
                })
            }
            Split::BySubset(rule) => Some(Destination {
                subset: Some(rule.subset(role)?.to_owned()),
                ..stable.clone()
            }),
        }
    }

    fn describe_stable(&self) -> String {
        match self {
            Split::ByHost { rollout } => format!("host: {}", Role::Stable.child_name(rollout)),
            Split::BySubset(rule) => format!("host: <host>, subset: {}", rule.stable_subset_name),
        }
    }

    fn stable_of<'r>(&self, route: &'r HttpRoute) -> Option<&'r RouteDestination> {
        route
            .route
            .iter()
            .find(|d| self.role_of(&d.destination) == Some(Role::Stable))
    }
}

/// Reads `spec.http` of a VirtualService object.
pub fn http_routes(virtual_service: &str, spec: &Value) -> Result<Vec<HttpRoute>, TrafficError> {
    match spec.get("http") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(http) => serde_json::from_value(http.clone()).map_err(|e| TrafficError::Malformed {
            object: format!("VirtualService {virtual_service}"),
            detail: format!("spec.http: {e}"),
        }),
    }
}

/// The routes with the stable, canary and baseline destinations of the routes Fife may
/// shift weighted as `weights`. A baseline destination is added only when the baseline
/// gets traffic or already has one. `owned` are the header routes' names, never shifted.
pub fn weighted_routes(
    virtual_service: &str,
    routing: &IstioRouting,
    split: Split<'_>,
    routes: &[HttpRoute],
    owned: &[&str],
    weights: TrafficWeights,
) -> Result<Vec<HttpRoute>, TrafficError> {
    let no_stable = |route: String| TrafficError::NoStableDestination {
        virtual_service: virtual_service.to_owned(),
        route,
        stable: split.describe_stable(),
    };
    let named = &routing.virtual_service.routes;
    let targets: Vec<usize> = if named.is_empty() {
        let all: Vec<usize> = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.name.as_deref().is_none_or(|n| !owned.contains(&n)))
            .filter(|(_, r)| split.stable_of(r).is_some())
            .map(|(i, _)| i)
            .collect();
        if all.is_empty() {
            return Err(no_stable(String::new()));
        }
        all
    } else {
        let mut found = Vec::new();
        for name in named {
            let index = routes
                .iter()
                .position(|r| r.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| TrafficError::NoNamedRoute {
                    virtual_service: virtual_service.to_owned(),
                    route: name.clone(),
                })?;
            if split.stable_of(&routes[index]).is_none() {
                return Err(no_stable(format!(" named {name}")));
            }
            found.push(index);
        }
        found
    };
    let mut out = routes.to_vec();
    for index in targets {
        let route = &mut out[index];
        let Some(stable) = split.stable_of(route).cloned() else {
            continue;
        };
        for (role, weight) in [
            (Role::Stable, weights.stable),
            (Role::Canary, weights.canary),
            (Role::Baseline, weights.baseline),
        ] {
            let existing = route
                .route
                .iter_mut()
                .find(|d| split.role_of(&d.destination) == Some(role));
            match existing {
                Some(existing) => existing.weight = Some(weight),
                None if role == Role::Baseline && weight == 0 => {}
                None => {
                    let destination = split
                        .destination_for(role, &stable.destination)
                        .ok_or_else(|| TrafficError::Malformed {
                            object: "the Rollout's istio.destinationRule".to_owned(),
                            detail: format!(
                                "the {role} gets {weight}% but has no subset; set {role}SubsetName"
                            ),
                        })?;
                    route.route.push(RouteDestination {
                        destination,
                        weight: Some(weight),
                        ..stable.clone()
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The routes with the header routes of `setHeaderRoute` steps: every route named in
/// `owned` is removed, and `header_routes` are inserted first, in order (Istio evaluates
/// routes in order, so a header route after a catch-all would never match). Each sends the
/// requests carrying all its headers to the canary destination.
pub fn with_header_routes(
    virtual_service: &str,
    split: Split<'_>,
    routes: &[HttpRoute],
    owned: &[&str],
    header_routes: &[SetHeaderRoute],
) -> Result<Vec<HttpRoute>, TrafficError> {
    let kept: Vec<HttpRoute> = routes
        .iter()
        .filter(|r| r.name.as_deref().is_none_or(|n| !owned.contains(&n)))
        .cloned()
        .collect();
    if header_routes.is_empty() {
        return Ok(kept);
    }
    let stable = kept
        .iter()
        .find_map(|r| split.stable_of(r))
        .ok_or_else(|| TrafficError::NoStableDestination {
            virtual_service: virtual_service.to_owned(),
            route: String::new(),
            stable: split.describe_stable(),
        })?;
    let canary = split
        .destination_for(Role::Canary, &stable.destination)
        .unwrap_or_else(|| stable.destination.clone());
    let mut out: Vec<HttpRoute> = header_routes
        .iter()
        .map(|header_route| {
            // Istio reads header names in lower case only.
            let headers: Map<String, Value> = header_route
                .r#match
                .iter()
                .map(|m| {
                    let v = &m.header_value;
                    let value = match (&v.exact, &v.prefix, &v.regex) {
                        (Some(exact), _, _) => json!({ "exact": exact }),
                        (None, Some(prefix), _) => json!({ "prefix": prefix }),
                        (None, None, Some(regex)) => json!({ "regex": regex }),
                        (None, None, None) => json!({ "exact": "" }),
                    };
                    (m.header_name.to_lowercase(), value)
                })
                .collect();
            HttpRoute {
                name: Some(header_route.name.clone()),
                route: vec![RouteDestination {
                    destination: canary.clone(),
                    weight: None,
                    rest: Map::new(),
                }],
                rest: Map::from_iter([("match".to_owned(), json!([{ "headers": headers }]))]),
            }
        })
        .collect();
    out.extend(kept);
    Ok(out)
}

/// The DestinationRule's `spec.subsets` with each role's subset selecting that role's pods
/// (added when missing). Other subsets and the subsets' other fields are kept.
pub fn role_subsets(
    destination_rule: &str,
    rule: &IstioDestinationRule,
    spec: &Value,
) -> Result<Vec<Value>, TrafficError> {
    let mut subsets: Vec<Value> = match spec.get("subsets") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) if list.iter().all(Value::is_object) => list.clone(),
        Some(_) => {
            return Err(TrafficError::Malformed {
                object: format!("DestinationRule {destination_rule}"),
                detail: "spec.subsets is not a list of subsets".to_owned(),
            });
        }
    };
    for role in Role::ALL {
        let Some(name) = rule.subset(role) else {
            continue;
        };
        let labels = json!(BTreeMap::from([(ROLE_LABEL, role.as_str())]));
        match subsets.iter_mut().find(|s| s["name"] == name) {
            Some(subset) => subset["labels"] = labels,
            None => subsets.push(json!({ "name": name, "labels": labels })),
        }
    }
    Ok(subsets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::rollout::{HeaderRoutingMatch, IstioVirtualService, StringMatch};

    fn routes(v: Value) -> Vec<HttpRoute> {
        http_routes("shop/web", &json!({ "http": v })).unwrap()
    }

    fn w(stable: i32, canary: i32, baseline: i32) -> TrafficWeights {
        TrafficWeights {
            stable,
            canary,
            baseline,
        }
    }

    fn by_host(named: &[&str]) -> IstioRouting {
        IstioRouting {
            virtual_service: IstioVirtualService {
                name: "web".to_owned(),
                routes: named.iter().map(|n| (*n).to_owned()).collect(),
            },
            destination_rule: None,
        }
    }

    fn by_subset() -> IstioRouting {
        IstioRouting {
            destination_rule: Some(IstioDestinationRule {
                name: "web".to_owned(),
                canary_subset_name: "canary".to_owned(),
                stable_subset_name: "stable".to_owned(),
                baseline_subset_name: Some("baseline".to_owned()),
            }),
            ..by_host(&[])
        }
    }

    #[test]
    fn by_host_the_named_route_gets_the_three_services_and_others_are_kept() {
        let routing = by_host(&["primary"]);
        let input = routes(json!([
            { "name": "primary", "timeout": "5s",
              "match": [{ "uri": { "prefix": "/" } }],
              "route": [{ "destination": { "host": "web-stable.shop.svc.cluster.local",
                                           "port": { "number": 80 } } }] },
            { "name": "secondary",
              "route": [{ "destination": { "host": "web-stable" }, "weight": 100 }] }
        ]));
        let out = weighted_routes(
            "shop/web",
            &routing,
            Split::of(&routing, "web"),
            &input,
            &[],
            w(60, 20, 20),
        )
        .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            v[0]["route"],
            json!([
                { "destination": { "host": "web-stable.shop.svc.cluster.local", "port": { "number": 80 } }, "weight": 60 },
                { "destination": { "host": "web-canary.shop.svc.cluster.local", "port": { "number": 80 } }, "weight": 20 },
                { "destination": { "host": "web-baseline.shop.svc.cluster.local", "port": { "number": 80 } }, "weight": 20 }
            ])
        );
        assert_eq!(v[0]["timeout"], "5s");
        assert_eq!(v[0]["match"][0]["uri"]["prefix"], "/");
        assert_eq!(v[1], serde_json::to_value(&input[1]).unwrap(), "not named");
    }

    #[test]
    fn without_named_routes_every_route_with_the_stable_destination_is_shifted() {
        let routing = by_host(&[]);
        let input = routes(json!([
            { "route": [{ "destination": { "host": "web-stable" } }] },
            { "route": [{ "destination": { "host": "reviews" } }] },
            { "route": [{ "destination": { "host": "web-stable" } }] }
        ]));
        let out = weighted_routes(
            "shop/web",
            &routing,
            Split::of(&routing, "web"),
            &input,
            &[],
            w(90, 10, 0),
        )
        .unwrap();
        for i in [0, 2] {
            assert_eq!(out[i].route.len(), 2, "no baseline at 0");
            assert_eq!(out[i].route[1].destination.host, "web-canary");
            assert_eq!(out[i].route[1].weight, Some(10));
        }
        assert_eq!(out[1], input[1]);
    }

    #[test]
    fn by_subset_the_subsets_are_the_roles() {
        let routing = by_subset();
        let input = routes(json!([{ "route": [
            { "destination": { "host": "web", "subset": "stable" }, "weight": 80 },
            { "destination": { "host": "web", "subset": "canary" }, "weight": 20 }
        ] }]));
        let out = weighted_routes(
            "shop/web",
            &routing,
            Split::of(&routing, "web"),
            &input,
            &[],
            w(100, 0, 0),
        )
        .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            v[0]["route"],
            json!([
                { "destination": { "host": "web", "subset": "stable" }, "weight": 100 },
                { "destination": { "host": "web", "subset": "canary" }, "weight": 0 }
            ])
        );
    }

    #[test]
    fn a_missing_named_route_or_stable_destination_says_what_to_fix() {
        let routing = by_host(&["primary"]);
        let input = routes(
            json!([{ "name": "other", "route": [{ "destination": { "host": "web-stable" } }] }]),
        );
        let err = weighted_routes(
            "shop/web",
            &routing,
            Split::of(&routing, "web"),
            &input,
            &[],
            w(100, 0, 0),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "VirtualService shop/web has no HTTP route named primary: name the routes Fife may shift in spec.strategy.canary.trafficRouting.istio.virtualService.routes"
        );
        let routing = by_host(&["other"]);
        let input =
            routes(json!([{ "name": "other", "route": [{ "destination": { "host": "web" } }] }]));
        let err = weighted_routes(
            "shop/web",
            &routing,
            Split::of(&routing, "web"),
            &input,
            &[],
            w(100, 0, 0),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("named other") && err.to_string().contains("web-stable"),
            "{err}"
        );
    }

    #[test]
    fn header_routes_go_first_to_the_canary_and_leave_when_no_longer_wanted() {
        let routing = by_subset();
        let input = routes(json!([
            { "name": "old", "route": [{ "destination": { "host": "web", "subset": "canary" } }] },
            { "name": "primary", "route": [{ "destination": { "host": "web", "subset": "stable" } }] }
        ]));
        let header = SetHeaderRoute {
            name: "beta".to_owned(),
            r#match: vec![HeaderRoutingMatch {
                header_name: "X-Beta".to_owned(),
                header_value: StringMatch {
                    regex: Some("on|yes".to_owned()),
                    ..StringMatch::default()
                },
            }],
        };
        let out = with_header_routes(
            "shop/web",
            Split::of(&routing, "web"),
            &input,
            &["old", "beta"],
            &[header],
        )
        .unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            v,
            json!([
                { "name": "beta", "match": [{ "headers": { "x-beta": { "regex": "on|yes" } } }],
                  "route": [{ "destination": { "host": "web", "subset": "canary" } }] },
                { "name": "primary", "route": [{ "destination": { "host": "web", "subset": "stable" } }] }
            ])
        );
        let cleared = with_header_routes(
            "shop/web",
            Split::of(&routing, "web"),
            &out,
            &["old", "beta"],
            &[],
        )
        .unwrap();
        assert_eq!(cleared, input[1..]);
    }

    #[test]
    fn role_subsets_select_the_role_label_and_keep_other_subsets() {
        let Some(rule) = by_subset().destination_rule else {
            unreachable!()
        };
        let spec = json!({ "subsets": [
            { "name": "stable", "labels": { "version": "v1" }, "trafficPolicy": { "tls": { "mode": "ISTIO_MUTUAL" } } },
            { "name": "legacy", "labels": { "version": "v0" } }
        ] });
        let subsets = role_subsets("shop/web", &rule, &spec).unwrap();
        assert_eq!(
            Value::Array(subsets),
            json!([
                { "name": "stable", "labels": { ROLE_LABEL: "stable" }, "trafficPolicy": { "tls": { "mode": "ISTIO_MUTUAL" } } },
                { "name": "legacy", "labels": { "version": "v0" } },
                { "name": "canary", "labels": { ROLE_LABEL: "canary" } },
                { "name": "baseline", "labels": { ROLE_LABEL: "baseline" } }
            ])
        );
    }
}
