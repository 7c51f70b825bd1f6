//! End to end, without metrics: the real `fife controller` against the Kubernetes API test
//! server, with the Istio and NGINX Ingress routers and the Gateway API header routes. At
//! every step the router's objects carry the status weights, header routes come and go with
//! their steps and never outlive the rollout, and fields Fife does not own are kept.

use std::time::Duration;

use crate::harness::{Cluster, Controller, image_patch, manual, rollout};
use fife_api::labels::ROLE_LABEL;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until the Rollout is in `phase` with canary weight `weight`; its status.
async fn at_weight(cluster: &Cluster, name: &str, weight: i64, phase: &str) -> Value {
    cluster
        .wait_for(&format!("{name} {phase} at {weight}%"), WAIT, || async {
            let s = cluster.rollout_status(name).await;
            (s["weights"]["canary"] == weight && s["phase"] == phase).then_some(s)
        })
        .await
}

const VIRTUAL_SERVICE: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  gateways: [public]
  http:
    - name: primary
      match: [{uri: {prefix: /}}]
      timeout: 5s
      retries: {attempts: 3, perTryTimeout: 2s}
      route:
        - destination: {host: web, subset: stable, port: {number: 8080}}
    - name: reviews
      route:
        - destination: {host: reviews}
"#;

const DESTINATION_RULE: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
    - name: stable
      labels: {version: v1}
      trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"#;

/// The weight of each subset in the VirtualService's route named `primary`.
fn subset_weights(vs: &Value) -> Value {
    let route = vs["spec"]["http"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["name"] == "primary"))
        .map(|r| r["route"].clone())
        .unwrap_or_default();
    let weight = |subset: &str| {
        route
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["destination"]["subset"] == subset)
            .map_or(json!(0), |d| d["weight"].clone())
    };
    json!({ "stable": weight("stable"), "canary": weight("canary"), "baseline": weight("baseline") })
}

fn route_names(vs: &Value) -> Vec<String> {
    vs["spec"]["http"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_subsets_carry_the_step_weights_and_header_routes_leave_with_their_step() {
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster.apply(VIRTUAL_SERVICE).await;
    cluster.apply(DESTINATION_RULE).await;
    let routing = "      baseline: true\n      trafficRouting:\n        istio:\n          virtualService: {name: web, routes: [primary]}\n          destinationRule: {name: web, stableSubsetName: stable, canarySubsetName: canary, baselineSubsetName: baseline}\n";
    let steps = "        - setWeight: 20\n        - setHeaderRoute: {name: beta, match: [{headerName: X-Beta, headerValue: {exact: \"on\"}}]}\n        - pause: {duration: 2s}\n        - setWeight: 40\n        - setHeaderRoute: {name: beta}\n        - pause: {duration: 2s}\n";
    cluster
        .apply(&rollout("web", "web:1", 5, routing, steps))
        .await;
    cluster.wait_phase("web", "Healthy", WAIT).await;

    // The subsets select the roles' pods; the other fields of the rule stay the user's.
    let dr = cluster.get("destinationrule/web").await.unwrap();
    let subsets = &dr["spec"]["subsets"];
    for (i, role) in ["stable", "canary", "baseline"].into_iter().enumerate() {
        assert_eq!(subsets[i]["name"], role);
        assert_eq!(subsets[i]["labels"], json!({ ROLE_LABEL: role }));
    }
    assert_eq!(subsets[0]["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL");
    assert_eq!(
        dr["spec"]["trafficPolicy"]["loadBalancer"]["simple"],
        "LEAST_REQUEST"
    );

    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    for (weight, header_routes) in [(20, vec!["beta"]), (40, vec![])] {
        let status = at_weight(&cluster, "web", weight, "Paused").await;
        let vs = cluster.get("virtualservice/web").await.unwrap();
        assert_eq!(subset_weights(&vs), status["weights"], "at {weight}%");
        let mut expected: Vec<&str> = header_routes.clone();
        expected.extend(["primary", "reviews"]);
        assert_eq!(route_names(&vs), expected, "at {weight}%");
        if !header_routes.is_empty() {
            assert_eq!(
                vs["spec"]["http"][0]["match"],
                json!([{ "headers": { "x-beta": { "exact": "on" } } }])
            );
            assert_eq!(
                vs["spec"]["http"][0]["route"],
                json!([{ "destination": { "host": "web", "subset": "canary", "port": { "number": 8080 } } }])
            );
        }
        let primary = &vs["spec"]["http"][expected.len() - 2];
        assert_eq!(primary["timeout"], "5s", "other fields kept");
        assert_eq!(primary["retries"]["attempts"], 3);
        assert_eq!(primary["match"][0]["uri"]["prefix"], "/");
        assert_eq!(
            vs["spec"]["http"][expected.len() - 1]["route"],
            json!([{ "destination": { "host": "reviews" } }]),
            "a route not named is not shifted"
        );
        assert_eq!(vs["spec"]["gateways"], json!(["public"]));
    }

    cluster.wait_phase("web", "Healthy", WAIT).await;
    let vs = cluster.get("virtualservice/web").await.unwrap();
    assert_eq!(
        subset_weights(&vs),
        json!({ "stable": 100, "canary": 0, "baseline": 0 })
    );
    assert_eq!(route_names(&vs), ["primary", "reviews"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_hosts_split_and_an_abort_removes_the_header_route() {
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster
        .apply(
            r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop]
  http:
    - route:
        - destination: {host: shop-stable.default.svc.cluster.local}
          headers: {response: {set: {x-served-by: shop}}}
"#,
        )
        .await;
    let routing = "      trafficRouting: {istio: {virtualService: {name: shop}}}\n";
    let steps = "        - setHeaderRoute: {name: beta, match: [{headerName: x-beta, headerValue: {prefix: \"yes\"}}]}\n        - setWeight: 30\n        - pause: {}\n";
    cluster
        .apply(&rollout("shop", "shop:1", 4, routing, steps))
        .await;
    cluster.wait_phase("shop", "Healthy", WAIT).await;
    cluster
        .merge_patch("rollout/shop", &image_patch("shop:2"))
        .await;
    at_weight(&cluster, "shop", 30, "Paused").await;
    let vs = cluster.get("virtualservice/shop").await.unwrap();
    let http = &vs["spec"]["http"];
    assert_eq!(http[0]["name"], "beta");
    assert_eq!(
        http[0]["match"][0]["headers"]["x-beta"],
        json!({ "prefix": "yes" })
    );
    assert_eq!(
        http[0]["route"][0]["destination"]["host"],
        "shop-canary.default.svc.cluster.local"
    );
    let shifted: Vec<(Value, Value)> = http[1]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["destination"]["host"].clone(), d["weight"].clone()))
        .collect();
    assert_eq!(
        shifted,
        [
            (json!("shop-stable.default.svc.cluster.local"), json!(70)),
            (json!("shop-canary.default.svc.cluster.local"), json!(30)),
        ]
    );
    assert_eq!(
        http[1]["route"][1]["headers"]["response"]["set"]["x-served-by"], "shop",
        "the canary destination takes the stable one's other fields"
    );

    cluster
        .merge_patch("rollout/shop", &manual("Abort", "abort-1"))
        .await;
    cluster.wait_phase("shop", "Degraded", WAIT).await;
    let vs = cluster
        .wait_for("the header route to go", WAIT, || async {
            let vs = cluster.get("virtualservice/shop").await?;
            (vs["spec"]["http"].as_array()?.len() == 1).then_some(vs)
        })
        .await;
    let weights: Vec<Value> = vs["spec"]["http"][0]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["weight"].clone())
        .collect();
    assert_eq!(weights, [json!(100), json!(0)]);
}

const INGRESS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 8m}
spec:
  ingressClassName: nginx
  rules:
    - host: web.example.com
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web-stable, port: {number: 8080}}}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_canary_ingress_carries_the_step_weights_and_goes_at_the_end_and_on_abort() {
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster.apply(INGRESS).await;
    let routing = "      trafficRouting:\n        nginx: {stableIngress: web, additionalIngressAnnotations: {canary-by-header: X-Canary}}\n";
    let steps = "        - setWeight: 20\n        - pause: {duration: 2s}\n        - setWeight: 60\n        - pause: {duration: 2s}\n";
    cluster
        .apply(&rollout("web", "web:1", 5, routing, steps))
        .await;
    cluster.wait_phase("web", "Healthy", WAIT).await;
    assert!(cluster.get("ingress/web-web-canary").await.is_none());
    let stable_before = cluster.get("ingress/web").await.unwrap()["spec"].clone();

    cluster
        .merge_patch("rollout/web", &image_patch("web:2"))
        .await;
    for weight in [20, 60] {
        let status = at_weight(&cluster, "web", weight, "Paused").await;
        assert_eq!(status["weights"]["baseline"], 0);
        let canary = cluster.get("ingress/web-web-canary").await.unwrap();
        let annotations = &canary["metadata"]["annotations"];
        assert_eq!(annotations["nginx.ingress.kubernetes.io/canary"], "true");
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/canary-weight"],
            weight.to_string(),
            "at {weight}%"
        );
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/canary-by-header"],
            "X-Canary"
        );
        assert_eq!(canary["spec"]["ingressClassName"], "nginx");
        assert_eq!(
            canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
            "web-canary"
        );
        assert_eq!(canary["metadata"]["ownerReferences"][0]["kind"], "Rollout");
        let stable = cluster.get("ingress/web").await.unwrap();
        assert_eq!(
            stable["spec"], stable_before,
            "the stable Ingress is the user's"
        );
        assert_eq!(
            stable["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
            "8m"
        );
    }
    cluster.wait_phase("web", "Healthy", WAIT).await;
    cluster
        .wait_for("the canary Ingress to go after promotion", WAIT, || async {
            cluster
                .get("ingress/web-web-canary")
                .await
                .is_none()
                .then_some(())
        })
        .await;

    // An abort takes the canary Ingress away at once.
    cluster
        .merge_patch("rollout/web", &image_patch("web:3"))
        .await;
    at_weight(&cluster, "web", 20, "Paused").await;
    assert!(cluster.get("ingress/web-web-canary").await.is_some());
    cluster
        .merge_patch("rollout/web", &manual("Abort", "abort-1"))
        .await;
    cluster.wait_phase("web", "Degraded", WAIT).await;
    cluster
        .wait_for("the canary Ingress to go after abort", WAIT, || async {
            cluster
                .get("ingress/web-web-canary")
                .await
                .is_none()
                .then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_header_rule_sends_matching_requests_to_the_canary_until_promotion() {
    let cluster = Cluster::start().await;
    let _controller = Controller::simple(&cluster);
    cluster
        .apply(
            r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: gateway}]
  hostnames: [api.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: api-stable, port: 8080}]
"#,
        )
        .await;
    let routing = "      trafficRouting: {gatewayAPI: {httpRoute: api}}\n";
    let steps = "        - setWeight: 10\n        - setHeaderRoute: {name: beta, match: [{headerName: x-beta, headerValue: {exact: \"1\"}}]}\n        - pause: {}\n";
    cluster
        .apply(&rollout("api", "api:1", 3, routing, steps))
        .await;
    cluster.wait_phase("api", "Healthy", WAIT).await;
    cluster
        .merge_patch("rollout/api", &image_patch("api:2"))
        .await;
    at_weight(&cluster, "api", 10, "Paused").await;
    let route = cluster.get("httproute/api").await.unwrap();
    let rules = &route["spec"]["rules"];
    assert_eq!(rules.as_array().unwrap().len(), 2, "{rules}");
    assert_eq!(rules[0]["matches"][0]["path"]["value"], "/");
    assert_eq!(
        rules[1],
        json!({
            "name": "beta",
            "matches": [{ "headers": [{ "type": "Exact", "name": "x-beta", "value": "1" }] }],
            "backendRefs": [{ "name": "api-canary", "port": 8080 }]
        })
    );

    cluster
        .merge_patch("rollout/api", &manual("Promote", "promote-1"))
        .await;
    cluster.wait_phase("api", "Healthy", WAIT).await;
    let route = cluster
        .wait_for("the header rule to go", WAIT, || async {
            let route = cluster.get("httproute/api").await?;
            (route["spec"]["rules"].as_array()?.len() == 1).then_some(route)
        })
        .await;
    assert_eq!(route["spec"]["hostnames"], json!(["api.example.com"]));
}
