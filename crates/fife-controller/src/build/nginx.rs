//! NGINX Ingress traffic: the canary Ingress beside the user's stable Ingress. Pure; `act`
//! reads the stable Ingress, applies what is built here, and deletes it when no canary runs.
//!
//! The stable Ingress stays the user's, untouched. The canary Ingress is Fife's alone
//! (owned by the Rollout, applied whole): the stable Ingress's class and rules with every
//! backend to `<name>-stable` sent to `<name>-canary`, and the ingress-nginx annotations
//! `<prefix>/canary: "true"` and `<prefix>/canary-weight: "<canary weight>"`. ingress-nginx
//! weighs one canary Ingress per host and path, so a baseline cannot get a share of its own;
//! validation refuses `baseline: true` with this router, and the engine runs none.

use std::collections::BTreeMap;

use fife_api::Rollout;
use fife_api::labels::{ROLLOUT_LABEL, Role, canary_ingress_name};
use fife_api::rollout::{NGINX_CANARY_ANNOTATION, NGINX_CANARY_WEIGHT_ANNOTATION, NginxRouting};
use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;

use crate::build::traffic::TrafficError;

/// The legacy class annotation, honoured by ingress-nginx before `spec.ingressClassName`:
/// the canary must be served by the same controller as the stable Ingress.
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The canary Ingress for `canary_weight`, copied from `stable`, owned by `owner` (the
/// Rollout's controller reference, so it goes with the Rollout).
pub fn canary_ingress(
    rollout: &Rollout,
    nginx: &NginxRouting,
    stable: &Ingress,
    canary_weight: i32,
    owner: OwnerReference,
) -> Result<Ingress, TrafficError> {
    let rollout_name = rollout.name_any();
    let stable_service = Role::Stable.child_name(&rollout_name);
    let canary_service = Role::Canary.child_name(&rollout_name);
    let ingress_name = format!(
        "{}/{}",
        stable.namespace().unwrap_or_default(),
        stable.name_any()
    );
    let mut rules = stable
        .spec
        .as_ref()
        .and_then(|s| s.rules.clone())
        .unwrap_or_default();
    let mut found = false;
    for path in rules
        .iter_mut()
        .filter_map(|r| r.http.as_mut())
        .flat_map(|h| h.paths.iter_mut())
    {
        if let Some(service) = path.backend.service.as_mut()
            && service.name == stable_service
        {
            service.name = canary_service.clone();
            found = true;
        }
    }
    if !found {
        return Err(TrafficError::NoStableIngressBackend {
            ingress: ingress_name,
            stable: stable_service,
        });
    }
    // Only the rules that reach the stable Service: a canary of another host or path would
    // split traffic that is not the Rollout's.
    rules.retain_mut(|rule| {
        if let Some(http) = rule.http.as_mut() {
            http.paths.retain(|p| {
                p.backend
                    .service
                    .as_ref()
                    .is_some_and(|s| s.name == canary_service)
            });
            !http.paths.is_empty()
        } else {
            false
        }
    });
    let prefix = &nginx.annotation_prefix;
    let mut annotations: BTreeMap<String, String> = nginx
        .additional_ingress_annotations
        .iter()
        .map(|(k, v)| (format!("{prefix}/{k}"), v.clone()))
        .collect();
    if let Some(class) = stable.annotations().get(LEGACY_CLASS_ANNOTATION) {
        annotations.insert(LEGACY_CLASS_ANNOTATION.to_owned(), class.clone());
    }
    annotations.insert(
        format!("{prefix}/{NGINX_CANARY_ANNOTATION}"),
        "true".to_owned(),
    );
    annotations.insert(
        format!("{prefix}/{NGINX_CANARY_WEIGHT_ANNOTATION}"),
        canary_weight.clamp(0, 100).to_string(),
    );
    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(canary_ingress_name(&rollout_name, &nginx.stable_ingress)),
            namespace: rollout.namespace(),
            labels: Some(BTreeMap::from([(
                ROLLOUT_LABEL.to_owned(),
                rollout_name.clone(),
            )])),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: stable
                .spec
                .as_ref()
                .and_then(|s| s.ingress_class_name.clone()),
            rules: Some(rules),
            ..IngressSpec::default()
        }),
        status: None,
    })
}

/// True when `current` already routes and weighs as `desired` (the apply can be skipped).
pub fn same_canary_ingress(current: &Ingress, desired: &Ingress) -> bool {
    let annotations_kept = desired
        .annotations()
        .iter()
        .all(|(k, v)| current.annotations().get(k) == Some(v));
    let spec = |i: &Ingress| {
        i.spec
            .as_ref()
            .map(|s| (s.ingress_class_name.clone(), s.rules.clone()))
    };
    annotations_kept && spec(current) == spec(desired)
}

/// The canary weight the canary Ingress carries, if it carries one.
pub fn canary_ingress_weight(nginx: &NginxRouting, ingress: &Ingress) -> Option<i32> {
    ingress
        .annotations()
        .get(&format!(
            "{}/{NGINX_CANARY_WEIGHT_ANNOTATION}",
            nginx.annotation_prefix
        ))?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::children::owner_reference;
    use crate::build::children::tests::mk_rollout;
    use serde_json::json;

    fn owner(rollout: &Rollout) -> OwnerReference {
        owner_reference(rollout).unwrap()
    }

    fn nginx() -> NginxRouting {
        serde_json::from_value(json!({
            "stableIngress": "web",
            "additionalIngressAnnotations": { "canary-by-header": "X-Canary" }
        }))
        .unwrap()
    }

    fn stable() -> Ingress {
        serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "default",
                "annotations": { "kubernetes.io/ingress.class": "nginx", "team": "shop" } },
            "spec": {
                "ingressClassName": "nginx",
                "tls": [{ "hosts": ["web.example.com"], "secretName": "web-tls" }],
                "rules": [
                    { "host": "web.example.com", "http": { "paths": [
                        { "path": "/", "pathType": "Prefix",
                          "backend": { "service": { "name": "web-stable", "port": { "number": 80 } } } },
                        { "path": "/static", "pathType": "Prefix",
                          "backend": { "service": { "name": "assets", "port": { "number": 80 } } } }
                    ] } },
                    { "host": "other.example.com", "http": { "paths": [
                        { "path": "/", "pathType": "Prefix",
                          "backend": { "service": { "name": "other", "port": { "number": 80 } } } }
                    ] } }
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_canary_copies_the_stable_rules_to_the_canary_service_with_the_weight() {
        let rollout = mk_rollout("web:1");
        let canary = canary_ingress(&rollout, &nginx(), &stable(), 30, owner(&rollout)).unwrap();
        let v = serde_json::to_value(&canary).unwrap();
        assert_eq!(v["metadata"]["name"], "web-web-canary");
        assert_eq!(
            v["metadata"]["annotations"],
            json!({
                "kubernetes.io/ingress.class": "nginx",
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "30",
                "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary"
            })
        );
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Rollout");
        assert_eq!(v["spec"]["ingressClassName"], "nginx");
        assert_eq!(
            v["spec"]["rules"],
            json!([{ "host": "web.example.com", "http": { "paths": [
                { "path": "/", "pathType": "Prefix",
                  "backend": { "service": { "name": "web-canary", "port": { "number": 80 } } } }
            ] } }])
        );
        assert_eq!(canary_ingress_weight(&nginx(), &canary), Some(30));
        assert!(same_canary_ingress(&canary, &canary));
        let heavier = canary_ingress(&rollout, &nginx(), &stable(), 60, owner(&rollout)).unwrap();
        assert!(!same_canary_ingress(&canary, &heavier));
    }

    #[test]
    fn a_custom_prefix_names_the_annotations() {
        let mut routing = nginx();
        routing.annotation_prefix = "custom.nginx.org".to_owned();
        let rollout = mk_rollout("web:1");
        let canary = canary_ingress(&rollout, &routing, &stable(), 5, owner(&rollout)).unwrap();
        assert_eq!(
            canary.annotations().get("custom.nginx.org/canary-weight"),
            Some(&"5".to_owned())
        );
        assert!(
            !canary
                .annotations()
                .contains_key("nginx.ingress.kubernetes.io/canary")
        );
    }

    #[test]
    fn an_ingress_without_the_stable_backend_is_an_error_that_names_it() {
        let mut ingress = stable();
        ingress
            .spec
            .as_mut()
            .unwrap()
            .rules
            .as_mut()
            .unwrap()
            .remove(0);
        let rollout = mk_rollout("web:1");
        let err = canary_ingress(&rollout, &nginx(), &ingress, 10, owner(&rollout)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("default/web") && text.contains("web-stable"),
            "{text}"
        );
    }
}
