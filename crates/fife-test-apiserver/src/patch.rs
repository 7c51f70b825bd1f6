//! The three non-apply patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902)
//! and a strategic merge patch for the built-in kinds.
//!
//! Strategic merge patch here knows merge keys by field name rather than by Go struct
//! tag: `containers`, `initContainers`, `ephemeralContainers`, `volumes`, `env`,
//! `imagePullSecrets` merge by `name`; `volumeMounts` by `mountPath`; `ports` by
//! `containerPort` (or `port` for Service ports); `conditions` by `type`;
//! `ownerReferences` by `uid`; `finalizers` merge as a set. Every other list is
//! replaced. Directives honoured: `$patch: replace|delete|merge`, `$setElementOrder/…`,
//! `$deleteFromPrimitiveList/…` and `$retainKeys`.

use serde_json::{Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    #[error(
        "the JSON patch is not a list of operations: send an array of {{op, path, value}} objects"
    )]
    NotOperationList,
    #[error("JSON patch operation {index} ({op}) failed at path {path:?}: {reason}")]
    Operation {
        index: usize,
        op: String,
        path: String,
        reason: String,
    },
}

/// JSON merge patch: objects merge recursively, `null` deletes, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in patch_map {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// JSON patch (RFC 6902): add, remove, replace, move, copy, test.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops = patch.as_array().ok_or(PatchError::NotOperationList)?;
    for (index, op) in ops.iter().enumerate() {
        let name = op["op"].as_str().unwrap_or_default().to_string();
        let path = op["path"].as_str().unwrap_or_default().to_string();
        let fail = |reason: &str| PatchError::Operation {
            index,
            op: name.clone(),
            path: path.clone(),
            reason: reason.to_string(),
        };
        match name.as_str() {
            "add" => add(target, &path, op["value"].clone()).map_err(|r| fail(&r))?,
            "remove" => {
                remove(target, &path).map_err(|r| fail(&r))?;
            }
            "replace" => {
                remove(target, &path).map_err(|r| fail(&r))?;
                add(target, &path, op["value"].clone()).map_err(|r| fail(&r))?;
            }
            "move" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = remove(target, from).map_err(|r| fail(&r))?;
                add(target, &path, v).map_err(|r| fail(&r))?;
            }
            "copy" => {
                let from = op["from"].as_str().unwrap_or_default();
                let v = target
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| fail("the \"from\" path does not exist"))?;
                add(target, &path, v).map_err(|r| fail(&r))?;
            }
            "test" => {
                if target.pointer(&path) != Some(&op["value"]) {
                    return Err(fail("the value differs from the one the test expects"));
                }
            }
            _ => {
                return Err(fail(
                    "unknown operation; use add, remove, replace, move, copy or test",
                ));
            }
        }
    }
    Ok(())
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let idx = path
        .rfind('/')
        .ok_or_else(|| "the path must start with '/'".to_string())?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..idx].to_string(), last))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|_| "bad array index")?
            };
            if i > a.len() {
                return Err("array index out of bounds".into());
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err("the parent of the path does not exist".into()),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or_else(|| "the path does not exist".into()),
        Some(Value::Array(a)) => {
            let i = last.parse::<usize>().map_err(|_| "bad array index")?;
            if i >= a.len() {
                return Err("array index out of bounds".into());
            }
            Ok(a.remove(i))
        }
        _ => Err("the parent of the path does not exist".into()),
    }
}

/// The merge key of a list field, by field name; `None` means the list is atomic.
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        _ => None,
    }
}

fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch of `patch` into `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if patch_map.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replacement = patch.clone();
        strip_directives(&mut replacement);
        *target = replacement;
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    if let Some(keep) = patch_map.get("$retainKeys").and_then(Value::as_array) {
        map.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    for (k, v) in patch_map {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                map.remove(k);
            }
            Value::Array(items) => {
                let current = map.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                merge_list(k, current, items);
            }
            Value::Object(_) => strategic_merge(map.entry(k.clone()).or_insert(Value::Null), v),
            _ => {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, v) in patch_map {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/")
            && let Some(Value::Array(list)) = map.get_mut(field)
        {
            let drop = v.as_array().cloned().unwrap_or_default();
            list.retain(|x| !drop.contains(x));
        }
        if let Some(field) = k.strip_prefix("$setElementOrder/")
            && let Some(Value::Array(list)) = map.get_mut(field)
        {
            let order = v.as_array().cloned().unwrap_or_default();
            let key = merge_key(field, list);
            let position = |item: &Value| {
                order
                    .iter()
                    .position(|o| match key {
                        Some(key) => o.get(key) == item.get(key),
                        None => o == item,
                    })
                    .unwrap_or(usize::MAX)
            };
            list.sort_by_key(position);
        }
    }
}

fn merge_list(field: &str, current: &mut Value, items: &[Value]) {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        let rest: Vec<Value> = items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .cloned()
            .collect();
        *current = Value::Array(rest);
        return;
    }
    if is_set_list(field) {
        let list = ensure_array(current);
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
        return;
    }
    let Some(key) = merge_key(field, items).filter(|_| items.iter().all(Value::is_object)) else {
        let mut replacement = Value::Array(items.to_vec());
        strip_directives(&mut replacement);
        *current = replacement;
        return;
    };
    let list = ensure_array(current);
    for item in items {
        let position = list
            .iter()
            .position(|x| x.get(key).is_some() && x.get(key) == item.get(key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut list[i], item),
            (None, false) => {
                let mut fresh = item.clone();
                strip_directives(&mut fresh);
                list.push(fresh);
            }
        }
    }
}

fn ensure_array(v: &mut Value) -> &mut Vec<Value> {
    if !v.is_array() {
        *v = Value::Array(Vec::new());
    }
    v.as_array_mut().expect("made an array above")
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null_and_replaces_lists() {
        let mut t = json!({ "a": 1, "b": { "c": 2, "d": 3 }, "l": [1, 2] });
        merge_patch(&mut t, &json!({ "a": null, "b": { "c": 5 }, "l": [3] }));
        assert_eq!(t, json!({ "b": { "c": 5, "d": 3 }, "l": [3] }));
    }

    #[test]
    fn json_patch_applies_in_order_and_test_guards() {
        let mut t = json!({ "spec": { "replicas": 1, "l": ["a"] } });
        json_patch(
            &mut t,
            &json!([
                { "op": "replace", "path": "/spec/replicas", "value": 3 },
                { "op": "add", "path": "/spec/l/-", "value": "b" },
                { "op": "test", "path": "/spec/replicas", "value": 3 },
            ]),
        )
        .unwrap();
        assert_eq!(t, json!({ "spec": { "replicas": 3, "l": ["a", "b"] } }));
        let err = json_patch(
            &mut t,
            &json!([{ "op": "test", "path": "/spec/replicas", "value": 4 }]),
        );
        assert!(matches!(err, Err(PatchError::Operation { index: 0, .. })));
        assert!(json_patch(&mut t, &json!([{ "op": "remove", "path": "/nope" }])).is_err());
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut t = json!({ "spec": { "containers": [
            { "name": "app", "image": "a:1", "env": [{ "name": "X", "value": "1" }] },
            { "name": "sidecar", "image": "s:1" } ] } });
        strategic_merge(
            &mut t,
            &json!({ "spec": {
                "$setElementOrder/containers": [{ "name": "sidecar" }, { "name": "app" }],
                "containers": [
                    { "name": "app", "image": "a:2", "env": [{ "name": "Y", "value": "2" }] },
                    { "name": "sidecar", "$patch": "delete" } ] } }),
        );
        assert_eq!(
            t,
            json!({ "spec": { "containers": [
                { "name": "app", "image": "a:2", "env": [{ "name": "X", "value": "1" }, { "name": "Y", "value": "2" }] } ] } })
        );
    }

    #[test]
    fn strategic_merge_replaces_atomic_lists_and_unions_finalizers() {
        let mut t = json!({ "metadata": { "finalizers": ["a"] }, "spec": { "args": ["x", "y"] } });
        strategic_merge(
            &mut t,
            &json!({ "metadata": { "finalizers": ["b"] }, "spec": { "args": ["z"] } }),
        );
        assert_eq!(
            t,
            json!({ "metadata": { "finalizers": ["a", "b"] }, "spec": { "args": ["z"] } })
        );
        strategic_merge(
            &mut t,
            &json!({ "metadata": { "$deleteFromPrimitiveList/finalizers": ["a"] } }),
        );
        assert_eq!(t["metadata"]["finalizers"], json!(["b"]));
    }
}
