//! Structural-schema handling for custom resources, as the real server applies a CRD's
//! `openAPIV3Schema` on every write: unknown fields are pruned (unless the schema
//! preserves them), nulls of fields that are not `nullable` are dropped, and `default`
//! values fill in missing fields. Value validation (types, enums, patterns, CEL rules)
//! follows in [`super::validation`].

use serde_json::{Map, Value};

/// Prunes and defaults `object` in place against `schema` (the root of a CRD version's
/// `openAPIV3Schema`). `apiVersion`, `kind` and `metadata` are left alone at the root.
pub fn prune_and_default(object: &mut Value, schema: &Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let preserve = preserves_unknown(schema);
    if !preserve && let Some(props) = properties {
        map.retain(|k, _| {
            matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || props.contains_key(k)
        });
    }
    if let Some(props) = properties {
        drop_nulls(map, props);
        apply_defaults(map, props);
        for (k, v) in map.iter_mut() {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            if let Some(child) = props.get(k) {
                walk(v, child);
            }
        }
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

/// The real server drops a null whose schema is not `nullable` before defaulting, so a
/// default then fills it in.
fn drop_nulls(map: &mut Map<String, Value>, props: &Map<String, Value>) {
    map.retain(|k, v| !v.is_null() || props.get(k).is_none_or(|child| child["nullable"] == true));
}

fn apply_defaults(map: &mut Map<String, Value>, props: &Map<String, Value>) {
    for (k, child) in props {
        if !map.contains_key(k)
            && let Some(default) = child.get("default")
        {
            map.insert(k.clone(), default.clone());
        }
    }
}

fn walk(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                if !preserves_unknown(schema) {
                    map.retain(|k, _| props.contains_key(k));
                }
                drop_nulls(map, props);
                apply_defaults(map, props);
                for (k, v) in map.iter_mut() {
                    if let Some(child) = props.get(k) {
                        walk(v, child);
                    }
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for v in map.values_mut() {
                    walk(v, additional);
                }
            } else if !preserves_unknown(schema)
                && schema.get("type").and_then(Value::as_str) == Some("object")
            {
                // An object with neither properties nor additionalProperties keeps nothing.
                map.clear();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    walk(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({ "type": "object", "properties": {
            "spec": { "type": "object", "properties": {
                "replicas": { "type": "integer", "default": 1 },
                "steps": { "type": "array", "items": { "type": "object", "properties": { "setWeight": { "type": "integer" } } } },
                "template": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } } } },
            "status": { "type": "object", "properties": { "phase": { "type": "string" } } } } })
    }

    #[test]
    fn unknown_fields_are_pruned_and_defaults_applied() {
        let mut o = json!({ "apiVersion": "x/v1", "kind": "R", "metadata": { "name": "r", "extra": 1 },
            "spec": { "typo": true, "replicas": null, "steps": [{ "setWeight": 5, "bogus": 1 }],
                "template": { "anything": { "goes": 1 } }, "labels": { "a": "b" } },
            "status": { "phase": "Healthy", "notInSchema": 3 }, "stray": 1 });
        prune_and_default(&mut o, &schema());
        assert_eq!(
            o,
            json!({ "apiVersion": "x/v1", "kind": "R", "metadata": { "name": "r", "extra": 1 },
            "spec": { "replicas": 1, "steps": [{ "setWeight": 5 }],
                "template": { "anything": { "goes": 1 } }, "labels": { "a": "b" } },
            "status": { "phase": "Healthy" } })
        );
    }
}
