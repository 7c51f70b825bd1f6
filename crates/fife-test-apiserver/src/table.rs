//! `Table` responses (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), which is
//! what `kubectl get` prints: a CRD's `additionalPrinterColumns`, or NAME/AGE (plus a
//! few well-known columns) for built-ins.

use super::discovery::{PrinterColumn, ResourceType};
use super::jsonpath;
use serde_json::{Value, json};

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

fn columns(rt: &ResourceType) -> Vec<PrinterColumn> {
    let name = PrinterColumn {
        name: "Name".into(),
        column_type: "string".into(),
        json_path: ".metadata.name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        format: "name".into(),
    };
    let age = PrinterColumn {
        name: "Age".into(),
        column_type: "date".into(),
        json_path: ".metadata.creationTimestamp".into(),
        description: "CreationTimestamp of the object.".into(),
        priority: 0,
        format: String::new(),
    };
    let mut out = vec![name];
    if rt.custom {
        if rt.printer_columns.is_empty() {
            out.push(age);
        } else {
            out.extend(rt.printer_columns.iter().cloned());
        }
    } else {
        out.extend(rt.printer_columns.iter().cloned());
        if !rt.printer_columns.iter().any(|c| c.column_type == "date") {
            out.push(age);
        }
    }
    out
}

fn cell(
    rt: &ResourceType,
    column: &PrinterColumn,
    object: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    if !rt.custom && rt.kind == "Deployment" && column.name == "Ready" {
        let ready = object["status"]["readyReplicas"].as_i64().unwrap_or(0);
        let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
        return json!(format!("{ready}/{desired}"));
    }
    let value = jsonpath::get(object, &column.json_path);
    match (column.column_type.as_str(), value) {
        ("date", Some(Value::String(s))) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => json!(human_age(
                now.signed_duration_since(t.with_timezone(&chrono::Utc))
            )),
            Err(_) => json!(s),
        },
        ("integer" | "number", Some(v)) if v.is_number() => v.clone(),
        ("integer" | "number", _) if !rt.custom => json!(0),
        (_, Some(Value::String(s))) => json!(s),
        (_, Some(Value::Null)) | (_, None) => Value::Null,
        (_, Some(v)) => json!(v.to_string()),
    }
}

/// Ages as kubectl prints them: `42s`, `5m10s`, `3h`, `2d4h`, `12d`.
pub fn human_age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn row(rt: &ResourceType, cols: &[PrinterColumn], object: &Value, include: IncludeObject) -> Value {
    let now = chrono::Utc::now();
    let cells: Vec<Value> = cols.iter().map(|c| cell(rt, c, object, now)).collect();
    let mut r = json!({ "cells": cells });
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"] });
        }
        IncludeObject::Object => r["object"] = object.clone(),
    }
    r
}

/// A table of `objects`; `with_columns` is false for watch events after the first, as
/// the real server sends the column definitions only once per watch.
pub fn table(
    rt: &ResourceType,
    objects: &[&Value],
    include: IncludeObject,
    list_meta: Value,
    with_columns: bool,
) -> Value {
    let cols = columns(rt);
    let definitions: Vec<Value> = if with_columns {
        cols.iter()
            .map(|c| {
                json!({ "name": c.name, "type": c.column_type, "format": c.format,
                    "description": c.description, "priority": c.priority })
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows: Vec<Value> = objects.iter().map(|o| row(rt, &cols, o, include)).collect();
    json!({ "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": definitions, "rows": rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Catalogue;

    #[test]
    fn crd_columns_read_json_paths_and_dates_become_ages() {
        let crd = json!({ "metadata": { "name": "rollouts.example.dev" },
            "spec": { "group": "example.dev", "scope": "Namespaced", "names": { "plural": "rollouts", "kind": "Rollout" },
                "versions": [{ "name": "v1", "served": true, "storage": true, "additionalPrinterColumns": [
                    { "name": "Phase", "type": "string", "jsonPath": ".status.phase" },
                    { "name": "Weight", "type": "integer", "jsonPath": ".status.weights[0]" },
                    { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" } ] }] } });
        let mut c = Catalogue::with_builtins();
        c.register_crd(&crd);
        let rt = c.get("example.dev", "v1", "rollouts").unwrap();
        let created = (chrono::Utc::now() - chrono::TimeDelta::seconds(90)).to_rfc3339();
        let o = json!({ "metadata": { "name": "r", "creationTimestamp": created }, "status": { "phase": "Paused", "weights": [25] } });
        let t = table(rt, &[&o], IncludeObject::Metadata, json!({}), true);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["Name", "Phase", "Weight", "Age"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], json!("r"));
        assert_eq!(cells[1], json!("Paused"));
        assert_eq!(cells[2], json!(25));
        assert!(cells[3].as_str().unwrap().ends_with('s'));
        assert_eq!(
            t["rows"][0]["object"]["kind"],
            json!("PartialObjectMetadata")
        );
    }

    #[test]
    fn ages_follow_kubectl_buckets() {
        assert_eq!(human_age(chrono::TimeDelta::seconds(42)), "42s");
        assert_eq!(human_age(chrono::TimeDelta::seconds(310)), "5m10s");
        assert_eq!(
            human_age(chrono::TimeDelta::seconds(3 * 86400 + 4 * 3600)),
            "3d4h"
        );
    }
}
