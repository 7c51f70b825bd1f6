//! Istio's `VirtualService` and `DestinationRule` (`networking.istio.io/v1`), served from
//! the start as on a cluster with Istio installed, so traffic routing can be tested without
//! installing the CRDs: custom-resource rules (merge and JSON patches, no strategic merge,
//! `resourceVersion` required on update), a status subresource, Istio's short names,
//! categories and printer columns.
//!
//! The schemas are structural like Istio's own and type every field a router reads or
//! writes (hosts, routes, destinations, weights, matches, subsets, labels), so a write
//! with a misspelt or mistyped field is refused or pruned as a real server would. Fields
//! whose inner shape no router touches (fault injection, retries, CORS, traffic policies,
//! redirects...) are objects that keep their content; Istio types them in full, and a real
//! server would refuse more of their malformed values than this one does. Only `v1` is
//! served (Istio also serves `v1beta1` and `v1alpha3`, the same schema).

use serde_json::{Value, json};

use crate::discovery::{PrinterColumn, ResourceType};

const GROUP: &str = "networking.istio.io";

/// The two Istio kinds.
pub fn istio_types() -> Vec<ResourceType> {
    vec![
        istio_type(
            "virtualservices",
            "VirtualService",
            "vs",
            virtual_service_schema(),
            vec![
                column(
                    "Gateways",
                    ".spec.gateways",
                    "The names of gateways and sidecars that should apply these routes",
                ),
                column(
                    "Hosts",
                    ".spec.hosts",
                    "The destination hosts to which traffic is being sent",
                ),
            ],
        ),
        istio_type(
            "destinationrules",
            "DestinationRule",
            "dr",
            destination_rule_schema(),
            vec![column(
                "Host",
                ".spec.host",
                "The name of a service from the service registry",
            )],
        ),
    ]
}

fn istio_type(
    plural: &str,
    kind: &str,
    short: &str,
    spec: Value,
    mut columns: Vec<PrinterColumn>,
) -> ResourceType {
    columns.push(PrinterColumn {
        name: "Age".into(),
        column_type: "date".into(),
        json_path: ".metadata.creationTimestamp".into(),
        description: String::new(),
        priority: 0,
        format: String::new(),
    });
    ResourceType {
        group: GROUP.into(),
        version: "v1".into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced: true,
        short_names: vec![short.into()],
        categories: vec!["istio-io".into(), "networking-istio-io".into()],
        has_status: true,
        scale: None,
        printer_columns: columns,
        custom: true,
        schema: Some(json!({
            "type": "object",
            "properties": {
                "apiVersion": { "type": "string" },
                "kind": { "type": "string" },
                "metadata": { "type": "object" },
                "spec": spec,
                "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
            }
        })),
        review: false,
    }
}

fn column(name: &str, path: &str, description: &str) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        column_type: "string".into(),
        json_path: path.into(),
        description: description.into(),
        priority: 0,
        format: String::new(),
    }
}

/// An object whose content is kept as written.
fn kept() -> Value {
    json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

/// Istio's `StringMatch`: exactly one of exact, prefix, regex.
fn string_match() -> Value {
    json!({
        "type": "object",
        "properties": {
            "exact": { "type": "string" },
            "prefix": { "type": "string" },
            "regex": { "type": "string" }
        },
        "oneOf": [
            { "not": { "anyOf": [{ "required": ["exact"] }, { "required": ["prefix"] }, { "required": ["regex"] }] } },
            { "required": ["exact"] },
            { "required": ["prefix"] },
            { "required": ["regex"] }
        ]
    })
}

fn destination() -> Value {
    json!({
        "type": "object",
        "required": ["host"],
        "properties": {
            "host": { "type": "string" },
            "subset": { "type": "string" },
            "port": { "type": "object", "properties": {
                "number": { "type": "integer", "maximum": 4294967295u64, "minimum": 0 }
            } }
        }
    })
}

fn virtual_service_schema() -> Value {
    let http_match = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string" },
            "uri": string_match(),
            "scheme": string_match(),
            "method": string_match(),
            "authority": string_match(),
            "headers": { "type": "object", "additionalProperties": string_match() },
            "withoutHeaders": { "type": "object", "additionalProperties": string_match() },
            "queryParams": { "type": "object", "additionalProperties": string_match() },
            "port": { "type": "integer", "maximum": 4294967295u64, "minimum": 0 },
            "sourceLabels": { "type": "object", "additionalProperties": { "type": "string" } },
            "gateways": strings(),
            "ignoreUriCase": { "type": "boolean" },
            "sourceNamespace": { "type": "string" },
            "statPrefix": { "type": "string" }
        }
    });
    let route_destination = json!({
        "type": "object",
        "required": ["destination"],
        "properties": {
            "destination": destination(),
            "weight": { "type": "integer", "format": "int32" },
            "headers": kept()
        }
    });
    let http_route = json!({
        "type": "object",
        "properties": {
            "name": { "type": "string" },
            "match": { "type": "array", "items": http_match },
            "route": { "type": "array", "items": route_destination },
            "redirect": kept(),
            "directResponse": kept(),
            "delegate": kept(),
            "rewrite": kept(),
            "timeout": { "type": "string" },
            "retries": kept(),
            "fault": kept(),
            "mirror": kept(),
            "mirrors": { "type": "array", "items": kept() },
            "mirrorPercentage": kept(),
            "corsPolicy": kept(),
            "headers": kept()
        }
    });
    let l4_route = json!({
        "type": "object",
        "properties": {
            "match": { "type": "array", "items": kept() },
            "route": { "type": "array", "items": route_destination }
        }
    });
    json!({
        "type": "object",
        "properties": {
            "hosts": strings(),
            "gateways": strings(),
            "http": { "type": "array", "items": http_route },
            "tls": { "type": "array", "items": l4_route },
            "tcp": { "type": "array", "items": l4_route },
            "exportTo": strings()
        }
    })
}

fn destination_rule_schema() -> Value {
    json!({
        "type": "object",
        "required": ["host"],
        "properties": {
            "host": { "type": "string" },
            "trafficPolicy": kept(),
            "subsets": { "type": "array", "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": { "type": "string" },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                    "trafficPolicy": kept()
                }
            } },
            "exportTo": strings(),
            "workloadSelector": kept()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::prune_and_default;
    use crate::validation::validate;

    fn vs_schema() -> Value {
        istio_types()[0].schema.clone().unwrap()
    }

    #[test]
    fn a_virtual_service_keeps_known_fields_and_loses_misspelt_ones() {
        let mut object = json!({ "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": { "name": "web" },
            "spec": { "hosts": ["web"], "http": [{ "name": "primary", "timeout": "5s",
                "retries": { "attempts": 3 },
                "route": [{ "destination": { "host": "web-stable" }, "weight": 100, "wieght": 1 }] }] } });
        prune_and_default(&mut object, &vs_schema());
        let route = &object["spec"]["http"][0];
        assert_eq!(route["retries"]["attempts"], 3);
        assert_eq!(
            route["route"][0],
            json!({ "destination": { "host": "web-stable" }, "weight": 100 })
        );
        assert!(validate(&object, None, &vs_schema()).is_empty());
    }

    #[test]
    fn a_destination_without_host_or_a_match_with_two_kinds_is_invalid() {
        let object = json!({ "spec": { "http": [{
            "match": [{ "headers": { "x-canary": { "exact": "1", "prefix": "1" } } }],
            "route": [{ "destination": { "subset": "canary" } }] }] } });
        let errors = validate(&object, None, &vs_schema());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.http[0].route[0].destination.host"),
            "{errors:?}"
        );
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("spec.http[0].match[0].headers")),
            "{errors:?}"
        );
    }
}
