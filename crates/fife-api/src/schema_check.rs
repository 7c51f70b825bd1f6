//! Checks a manifest (as JSON) against the generated CRD schema the way the API server
//! would, but reporting every problem with its field path: unknown fields, wrong types,
//! missing required fields, enum values, bounds, "exactly one of" and duration syntax.
//!
//! This runs before the typed deserialization, which stops at the first problem.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

use crate::duration::{DURATION_PATTERN, Duration};
use crate::validation::{Problem, Severity};

/// The `openAPIV3Schema` of a Fife kind, or `None` for a kind Fife does not define.
pub fn schema_for_kind(kind: &str) -> Option<JSONSchemaProps> {
    use kube::CustomResourceExt;
    let crd = match kind {
        "Rollout" => crate::Rollout::crd(),
        "AnalysisTemplate" => crate::AnalysisTemplate::crd(),
        "ClusterAnalysisTemplate" => crate::ClusterAnalysisTemplate::crd(),
        "AnalysisRun" => crate::AnalysisRun::crd(),
        "ReleasePolicy" => crate::ReleasePolicy::crd(),
        "Approval" => crate::Approval::crd(),
        "BreakGlass" => crate::BreakGlass::crd(),
        _ => return None,
    };
    crd.spec
        .versions
        .into_iter()
        .next()
        .and_then(|version| version.schema)
        .and_then(|schema| schema.open_api_v3_schema)
}

/// Every place where `document` breaks `schema`. Paths are relative to the document root,
/// e.g. `spec.strategy.canary.steps[0].setWeight`.
pub fn check(document: &Value, schema: &JSONSchemaProps) -> Vec<Problem> {
    // The API server implies apiVersion, kind and metadata on every object; CRD schemas
    // leave them out, so they are added here.
    let mut root = schema.clone();
    let properties = root.properties.get_or_insert_with(BTreeMap::new);
    let string = JSONSchemaProps {
        type_: Some("string".to_owned()),
        ..Default::default()
    };
    properties
        .entry("apiVersion".to_owned())
        .or_insert_with(|| string.clone());
    properties.entry("kind".to_owned()).or_insert(string);
    properties
        .entry("metadata".to_owned())
        .or_insert_with(|| JSONSchemaProps {
            type_: Some("object".to_owned()),
            x_kubernetes_preserve_unknown_fields: Some(true),
            ..Default::default()
        });
    let mut problems = Vec::new();
    check_value(document, &root, "", &mut problems);
    problems
}

fn problem(path: &str, message: String) -> Problem {
    let path = if path.is_empty() {
        "(document)".to_owned()
    } else {
        path.to_owned()
    };
    Problem {
        severity: Severity::Error,
        path,
        message,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn check_value(value: &Value, schema: &JSONSchemaProps, path: &str, problems: &mut Vec<Problem>) {
    if value.is_null() {
        if schema.nullable != Some(true)
            && schema.x_kubernetes_preserve_unknown_fields != Some(true)
        {
            problems.push(problem(
                path,
                "is null: give it a value or remove the field".to_owned(),
            ));
        }
        return;
    }
    if schema.x_kubernetes_int_or_string == Some(true) {
        if value.is_string() {
            check_string(value, schema, path, problems);
        } else if value.is_i64() || value.is_u64() {
            check_bounds(value, schema, path, problems);
        } else {
            problems.push(problem(
                path,
                format!("expected an integer or a string, found {}", describe(value)),
            ));
        }
        return;
    }
    match schema.type_.as_deref() {
        Some("object") => check_object(value, schema, path, problems),
        Some("array") => check_array(value, schema, path, problems),
        Some("string") => check_string(value, schema, path, problems),
        Some("integer") => {
            if value.is_i64() || value.is_u64() {
                check_bounds(value, schema, path, problems);
            } else {
                problems.push(problem(
                    path,
                    format!("expected an integer, found {}", describe(value)),
                ));
            }
        }
        Some("number") => {
            if value.is_number() {
                check_bounds(value, schema, path, problems);
            } else {
                problems.push(problem(
                    path,
                    format!("expected a number, found {}", describe(value)),
                ));
            }
        }
        Some("boolean") if !value.is_boolean() => {
            problems.push(problem(
                path,
                format!("expected true or false, found {}", describe(value)),
            ));
        }
        _ => {}
    }
    if let Some(enum_values) = &schema.enum_ {
        let allowed: Vec<&Value> = enum_values
            .iter()
            .map(|j| &j.0)
            .filter(|v| !v.is_null())
            .collect();
        if !allowed.contains(&value) {
            let names: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
            problems.push(problem(
                path,
                format!("{value} is not allowed: use one of {}", names.join(", ")),
            ));
        }
    }
}

fn check_object(value: &Value, schema: &JSONSchemaProps, path: &str, problems: &mut Vec<Problem>) {
    let Some(object) = value.as_object() else {
        problems.push(problem(
            path,
            format!("expected a mapping, found {}", describe(value)),
        ));
        return;
    };
    let empty = BTreeMap::new();
    let properties = schema.properties.as_ref().unwrap_or(&empty);
    let additional = match &schema.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(s)) => Some(s.as_ref()),
        _ => None,
    };
    let open = schema.x_kubernetes_preserve_unknown_fields == Some(true)
        || matches!(
            schema.additional_properties,
            Some(JSONSchemaPropsOrBool::Bool(true))
        )
        || (properties.is_empty() && additional.is_none());
    for (key, child) in object {
        let child_path = join(path, key);
        if let Some(child_schema) = properties.get(key) {
            check_value(child, child_schema, &child_path, problems);
        } else if let Some(values) = additional {
            check_value(child, values, &child_path, problems);
        } else if !open {
            let hint = match closest(key, properties.keys()) {
                Some(near) => format!("did you mean {near:?}?"),
                None => format!(
                    "known fields here: {}",
                    properties.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            problems.push(problem(
                &child_path,
                format!("unknown field {key:?}: {hint}"),
            ));
        }
    }
    for required in schema.required.iter().flatten() {
        if !object.contains_key(required) {
            problems.push(problem(
                &join(path, required),
                format!("required field {required:?} is missing: add it"),
            ));
        }
    }
    if let Some(branches) = &schema.one_of {
        let alternatives: Vec<&Vec<String>> = branches
            .iter()
            .filter_map(|b| b.required.as_ref())
            .collect();
        let satisfied = alternatives
            .iter()
            .filter(|fields| fields.iter().all(|f| object.contains_key(f)))
            .count();
        if !alternatives.is_empty() && satisfied != 1 {
            let names: Vec<&str> = alternatives
                .iter()
                .flat_map(|f| f.iter().map(String::as_str))
                .collect();
            let found = if satisfied == 0 {
                "none is set"
            } else {
                "more than one is set"
            };
            problems.push(problem(
                path,
                format!("set exactly one of {}; {found}", names.join(", ")),
            ));
        }
    }
}

fn check_array(value: &Value, schema: &JSONSchemaProps, path: &str, problems: &mut Vec<Problem>) {
    let Some(items) = value.as_array() else {
        problems.push(problem(
            path,
            format!("expected a list, found {}", describe(value)),
        ));
        return;
    };
    if let Some(min) = schema.min_items
        && (items.len() as i64) < min
    {
        problems.push(problem(
            path,
            format!("has {} items; at least {min} needed", items.len()),
        ));
    }
    if let Some(max) = schema.max_items
        && (items.len() as i64) > max
    {
        problems.push(problem(
            path,
            format!("has {} items; at most {max} allowed", items.len()),
        ));
    }
    if let Some(JSONSchemaPropsOrArray::Schema(item_schema)) = &schema.items {
        for (i, item) in items.iter().enumerate() {
            check_value(item, item_schema, &format!("{path}[{i}]"), problems);
        }
    }
}

fn check_string(value: &Value, schema: &JSONSchemaProps, path: &str, problems: &mut Vec<Problem>) {
    let Some(text) = value.as_str() else {
        problems.push(problem(
            path,
            format!("expected a string, found {}", describe(value)),
        ));
        return;
    };
    let chars = text.chars().count() as i64;
    if let Some(min) = schema.min_length
        && chars < min
    {
        let what = if min == 1 {
            "is empty".to_owned()
        } else {
            format!("is shorter than {min} characters")
        };
        problems.push(problem(path, format!("{what}: give it a value")));
    }
    if let Some(max) = schema.max_length
        && chars > max
    {
        problems.push(problem(
            path,
            format!("is longer than {max} characters: shorten it"),
        ));
    }
    // The only pattern Fife's own types declare is the duration's; patterns inside the
    // embedded Kubernetes types are left to the API server.
    if schema.pattern.as_deref() == Some(DURATION_PATTERN)
        && let Err(err) = text.parse::<Duration>()
    {
        problems.push(problem(path, err.to_string()));
    }
}

fn check_bounds(value: &Value, schema: &JSONSchemaProps, path: &str, problems: &mut Vec<Problem>) {
    let Some(number) = value.as_f64() else { return };
    let min = schema.minimum;
    let max = schema.maximum;
    let out_of_range = min.is_some_and(|m| number < m) || max.is_some_and(|m| number > m);
    if out_of_range {
        let range = match (min, max) {
            (Some(lo), Some(hi)) => format!("use a value from {lo} to {hi}"),
            (Some(lo), None) => format!("use {lo} or more"),
            (None, Some(hi)) => format!("use {hi} or less"),
            (None, None) => return,
        };
        problems.push(problem(path, format!("{value} is out of range: {range}")));
    }
}

/// The known name closest to `key` (edit distance at most 2, or differing only in case).
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    known
        .map(|k| {
            (
                edit_distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rollout_problems(document: Value) -> Vec<Problem> {
        check(&document, &schema_for_kind("Rollout").unwrap())
    }

    fn base(canary: Value) -> Value {
        json!({"apiVersion": "fife.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
               "spec": {"strategy": {"canary": canary}}})
    }

    #[test]
    fn a_clean_rollout_has_no_problems() {
        let problems = rollout_problems(base(
            json!({"steps": [{"setWeight": 5}, {"pause": {"duration": "1m"}}]}),
        ));
        assert_eq!(problems, vec![]);
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let problems = rollout_problems(base(json!({
            "steps": [{"setWeight": 150}, {"pause": {"duration": "10 minutes"}}, {"setWeight": 5, "pause": {}}],
            "baselin": true
        })));
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"spec.strategy.canary.steps[0].setWeight"),
            "{problems:?}"
        );
        assert!(
            paths.contains(&"spec.strategy.canary.steps[1].pause.duration"),
            "{problems:?}"
        );
        assert!(
            paths.contains(&"spec.strategy.canary.steps[2]"),
            "{problems:?}"
        );
        let unknown = problems
            .iter()
            .find(|p| p.path == "spec.strategy.canary.baselin")
            .unwrap();
        assert!(
            unknown.message.contains("did you mean \"baseline\""),
            "{}",
            unknown.message
        );
    }

    #[test]
    fn wrong_types_and_missing_required_fields() {
        let problems =
            rollout_problems(json!({"apiVersion": "fife.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r"}, "spec": {"replicas": "ten"}}));
        assert!(
            problems
                .iter()
                .any(|p| p.path == "spec.replicas" && p.message.contains("expected an integer"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.path == "spec.strategy" && p.message.contains("missing"))
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("baselin", "baseline"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
