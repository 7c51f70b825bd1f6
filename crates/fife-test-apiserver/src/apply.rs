//! Field ownership: server-side apply (`application/apply-patch+yaml`) and the
//! `metadata.managedFields` bookkeeping that ordinary writes update too.
//!
//! Field sets are tracked at leaf granularity in the real `FieldsV1` format: maps by key
//! (`f:`), associative lists by merge key (`k:{"name":"app"}`, keys as in
//! [`super::patch::merge_key`]), set lists by value (`v:"x"`); every other list is atomic
//! and owned as a whole. An apply conflicts with another manager when both own a leaf
//! and the applied value differs; `force` moves the field to the applier. Fields the
//! applier owned before and no longer sends are removed unless another manager owns them.

use super::patch::merge_key;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One step of a field path, in its `FieldsV1` spelling (`f:spec`, `k:{..}`, `v:..`).
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Metadata fields no manager owns: the server sets them.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
];

/// The fields an object sets. `scope` keeps only `status` (status subresource), drops it
/// (main resource of a kind with a status subresource), or keeps everything.
pub fn field_set(object: &Value, scope: Scope) -> FieldSet {
    let mut set = FieldSet::new();
    let Some(map) = object.as_object() else {
        return set;
    };
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" || !scope.includes(k) {
            continue;
        }
        let mut path = vec![format!("f:{k}")];
        if k == "metadata" {
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if SERVER_METADATA.contains(&mk.as_str()) {
                    continue;
                }
                path.push(format!("f:{mk}"));
                walk(mv, mk, &mut path, &mut set);
                path.pop();
            }
            continue;
        }
        walk(v, k, &mut path, &mut set);
    }
    set
}

/// Which top-level fields a write may touch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    Everything,
    AllButStatus,
    StatusOnly,
}

impl Scope {
    fn includes(self, field: &str) -> bool {
        match self {
            Scope::Everything => true,
            Scope::AllButStatus => field != "status",
            Scope::StatusOnly => field == "status" || field == "metadata",
        }
    }
}

fn walk(value: &Value, field: &str, path: &mut FieldPath, set: &mut FieldSet) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                path.push(format!("f:{k}"));
                walk(v, k, path, set);
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => {
            if field == "finalizers" {
                for item in items {
                    path.push(format!("v:{item}"));
                    set.insert(path.clone());
                    path.pop();
                }
                return;
            }
            match merge_key(field, items).filter(|k| items.iter().all(|i| i.get(*k).is_some())) {
                Some(key) => {
                    for item in items {
                        path.push(format!("k:{}", json!({ key: item[key] })));
                        set.insert(path.clone());
                        walk(item, "", path, set);
                        path.pop();
                    }
                }
                None => {
                    set.insert(path.clone());
                }
            }
        }
        _ => {
            set.insert(path.clone());
        }
    }
}

/// The value a path points at.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = object;
    for (i, step) in path.iter().enumerate() {
        v = if let Some(name) = step.strip_prefix("f:") {
            v.get(name)?
        } else if let Some(key) = step.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            v.as_array()?
                .iter()
                .find(|item| key.iter().all(|(k, kv)| item.get(k) == Some(kv)))?
        } else if let Some(item) = step.strip_prefix("v:") {
            let item: Value = serde_json::from_str(item).ok()?;
            let found = v.as_array()?.iter().find(|x| **x == item)?;
            if i + 1 == path.len() {
                return Some(found);
            }
            found
        } else {
            return None;
        };
    }
    Some(v)
}

/// Removes the field a path points at (a map key, a list item).
fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut v = object;
    for step in parent_path {
        let next = if let Some(name) = step.strip_prefix("f:") {
            v.get_mut(name)
        } else if let Some(key) = step.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) else {
                return;
            };
            v.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|item| key.iter().all(|(k, kv)| item.get(k) == Some(kv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => v = n,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(m) = v.as_object_mut() {
            m.remove(name);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        if let (Ok(key), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(key),
            v.as_array_mut(),
        ) {
            a.retain(|item| !key.iter().all(|(k, kv)| item.get(k) == Some(kv)));
        }
    } else if let Some(item) = last.strip_prefix("v:")
        && let (Ok(item), Some(a)) = (serde_json::from_str::<Value>(item), v.as_array_mut())
    {
        a.retain(|x| *x != item);
    }
}

/// Merges an applied configuration into the live object the way apply does: maps and
/// associative lists merge, set lists union, atomic lists and scalars replace.
fn merge_applied(live: &mut Value, config: &Value, field: &str) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, v) in c {
                match l.get_mut(k) {
                    Some(existing) => merge_applied(existing, v, k),
                    None => {
                        l.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(c)) => {
            if field == "finalizers" {
                for item in c {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
                return;
            }
            match merge_key(field, c)
                .filter(|k| c.iter().chain(l.iter()).all(|i| i.get(*k).is_some()))
            {
                Some(key) => {
                    for item in c {
                        match l.iter_mut().find(|x| x.get(key) == item.get(key)) {
                            Some(existing) => merge_applied(existing, item, ""),
                            None => l.push(item.clone()),
                        }
                    }
                }
                None => *l = c.clone(),
            }
        }
        (live, config) => *live = config.clone(),
    }
}

/// One `managedFields` entry, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

pub fn read_managed(object: &Value) -> Vec<ManagedEntry> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut fields = FieldSet::new();
            tree_to_set(&e["fieldsV1"], &mut Vec::new(), &mut fields);
            ManagedEntry {
                manager: e["manager"].as_str().unwrap_or_default().into(),
                operation: e["operation"].as_str().unwrap_or("Update").into(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                time: e["time"].as_str().unwrap_or_default().into(),
                subresource: e["subresource"].as_str().unwrap_or_default().into(),
                fields,
            }
        })
        .collect()
}

pub fn write_managed(object: &mut Value, entries: &[ManagedEntry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": set_to_tree(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn tree_to_set(tree: &Value, path: &mut FieldPath, set: &mut FieldSet) {
    let Some(m) = tree.as_object() else { return };
    if m.is_empty() && !path.is_empty() {
        set.insert(path.clone());
        return;
    }
    for (k, v) in m {
        if k == "." {
            set.insert(path.clone());
            continue;
        }
        path.push(k.clone());
        tree_to_set(v, path, set);
        path.pop();
    }
}

fn set_to_tree(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node
                .as_object_mut()
                .expect("tree nodes are objects")
                .entry(step.clone())
                .or_insert(json!({}));
        }
        let is_parent = set
            .iter()
            .any(|p| p.len() > path.len() && p.starts_with(path));
        if is_parent {
            node.as_object_mut()
                .expect("tree nodes are objects")
                .insert(".".into(), json!({}));
        }
    }
    root
}

/// A field two managers disagree on.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    /// The API version the other manager wrote with, as real conflict messages name it.
    pub api_version: String,
    pub field: String,
}

/// Renders a path as the real server does in conflict messages (`.spec.replicas`).
pub fn render_path(path: &[String]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            out.push('[');
            out.push_str(
                &k.trim_start_matches('{')
                    .trim_end_matches('}')
                    .replace(':', "="),
            );
            out.push(']');
        } else if let Some(v) = step.strip_prefix("v:") {
            out.push_str(&format!("[{v}]"));
        }
    }
    out
}

/// The parameters of one apply request.
#[derive(Debug, Clone)]
pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub scope: Scope,
    pub now: &'a str,
}

/// Applies `config` to `live` (an empty object when creating). Returns the merged object
/// with updated `managedFields`, or the conflicts when not forced.
pub fn apply(live: &Value, config: &Value, req: &ApplyRequest<'_>) -> Result<Value, Vec<Conflict>> {
    let applied = field_set(config, req.scope);
    let mut entries = read_managed(live);
    let mut conflicts = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| !(e.manager == req.manager && e.operation == "Apply"))
    {
        for path in entry.fields.intersection(&applied) {
            let (Some(mine), Some(theirs)) = (value_at(config, path), value_at(live, path)) else {
                continue;
            };
            let is_item = path.last().is_some_and(|s| s.starts_with("k:"));
            if !is_item && mine != theirs {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    field: render_path(path),
                });
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(conflicts);
    }
    let mut result = live.clone();
    if !conflicts.is_empty() {
        for entry in entries
            .iter_mut()
            .filter(|e| !(e.manager == req.manager && e.operation == "Apply"))
        {
            entry.fields.retain(|p| {
                let conflicted = value_at(config, p).is_some()
                    && applied.contains(p)
                    && value_at(config, p) != value_at(live, p)
                    && !p.last().is_some_and(|s| s.starts_with("k:"));
                !conflicted
            });
        }
    }
    let previous: FieldSet = entries
        .iter()
        .filter(|e| {
            e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource
        })
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| {
            !(e.manager == req.manager
                && e.operation == "Apply"
                && e.subresource == req.subresource)
        })
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // Deeper paths first, so an item's fields go before the item itself.
    let mut dropped: Vec<&FieldPath> = previous
        .difference(&applied)
        .filter(|p| !others.contains(*p))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in dropped {
        let still_needed = others
            .iter()
            .any(|o| o.len() > path.len() && o.starts_with(path));
        if !still_needed {
            remove_at(&mut result, path);
        }
    }
    let mut scoped = config.clone();
    if let Some(m) = scoped.as_object_mut() {
        m.retain(|k, _| k == "apiVersion" || k == "kind" || req.scope.includes(k));
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| {
                !SERVER_METADATA.contains(&k.as_str()) || k == "name" || k == "namespace"
            });
            if req.scope == Scope::StatusOnly {
                meta.retain(|k, _| k == "name" || k == "namespace");
            }
        }
    }
    merge_applied(&mut result, &scoped, "");
    entries.retain(|e| {
        !(e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource)
    });
    entries.push(ManagedEntry {
        manager: req.manager.into(),
        operation: "Apply".into(),
        api_version: req.api_version.into(),
        time: req.now.into(),
        subresource: req.subresource.into(),
        fields: applied,
    });
    write_managed(&mut result, &entries);
    Ok(result)
}

/// Records an ordinary write (create, update, patch): the writer owns every field it
/// changed, other managers lose those fields, and removed fields are owned by nobody.
pub fn record_update(
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
) {
    let scope = Scope::Everything;
    let before = field_set(old, scope);
    let after = field_set(new, scope);
    let changed: FieldSet = after
        .iter()
        .filter(|p| !before.contains(*p) || value_at(old, p) != value_at(new, p))
        .cloned()
        .collect();
    let mut entries = read_managed(old);
    let mut by_key: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_key.insert(
            (
                e.manager.clone(),
                e.operation.clone(),
                e.subresource.clone(),
            ),
            i,
        );
    }
    for e in entries.iter_mut() {
        e.fields.retain(|p| {
            // List items stay shared; a changed leaf moves to the writer.
            let is_item = p.last().is_some_and(|s| s.starts_with("k:"));
            after.contains(p) && (is_item || !changed.contains(p))
        });
    }
    if !changed.is_empty() {
        match by_key.get(&(
            manager.to_string(),
            "Update".to_string(),
            subresource.to_string(),
        )) {
            Some(&i) => {
                entries[i].fields.extend(changed);
                entries[i].time = now.into();
                entries[i].api_version = api_version.into();
            }
            None => entries.push(ManagedEntry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now.into(),
                subresource: subresource.into(),
                fields: changed,
            }),
        }
    }
    write_managed(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(manager: &str, force: bool) -> ApplyRequest<'_> {
        ApplyRequest {
            manager,
            force,
            subresource: "",
            api_version: "apps/v1",
            scope: Scope::AllButStatus,
            now: "2025-01-01T00:00:00Z",
        }
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "d", "labels": { "app": "d" } },
            "spec": { "replicas": replicas, "template": { "spec": { "containers": [{ "name": "app", "image": image }] } } } })
    }

    #[test]
    fn field_set_uses_merge_keys_for_containers() {
        let set = field_set(&deployment(1, "a"), Scope::AllButStatus);
        let item: FieldPath = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"app\"}",
        ]
        .map(String::from)
        .to_vec();
        assert!(set.contains(&item));
        let mut image = item.clone();
        image.push("f:image".into());
        assert!(set.contains(&image));
        assert!(set.contains(&vec![
            "f:metadata".to_string(),
            "f:labels".into(),
            "f:app".into()
        ]));
        assert!(
            !set.iter()
                .any(|p| p.contains(&"f:name".to_string()) && p.len() == 2)
        );
    }

    #[test]
    fn managed_fields_round_trip_through_fields_v1() {
        let set = field_set(&deployment(1, "a"), Scope::AllButStatus);
        let entry = ManagedEntry {
            manager: "m".into(),
            operation: "Apply".into(),
            api_version: "apps/v1".into(),
            time: "t".into(),
            subresource: String::new(),
            fields: set.clone(),
        };
        let mut o = json!({ "metadata": {} });
        write_managed(&mut o, &[entry]);
        assert_eq!(read_managed(&o)[0].fields, set);
    }

    #[test]
    fn second_manager_conflicts_on_differing_value_unless_forced() {
        let live = apply(&json!({}), &deployment(1, "a"), &req("alice", false)).unwrap();
        let bob = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "d" }, "spec": { "replicas": 5 } });
        let conflicts = apply(&live, &bob, &req("bob", false)).unwrap_err();
        assert_eq!(
            conflicts,
            vec![Conflict {
                manager: "alice".into(),
                api_version: "apps/v1".into(),
                field: ".spec.replicas".into()
            }]
        );
        let forced = apply(&live, &bob, &req("bob", true)).unwrap();
        assert_eq!(forced["spec"]["replicas"], json!(5));
        let entries = read_managed(&forced);
        let alice = entries.iter().find(|e| e.manager == "alice").unwrap();
        assert!(
            !alice
                .fields
                .contains(&vec!["f:spec".to_string(), "f:replicas".into()])
        );
        // Same value: shared ownership, no conflict.
        let same = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "d" }, "spec": { "replicas": 1 } });
        assert!(apply(&live, &same, &req("carol", false)).is_ok());
    }

    #[test]
    fn dropping_a_field_from_the_config_removes_it_unless_shared() {
        let with_label = json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "c", "labels": { "a": "1", "b": "2" } }, "data": { "k": "v" } });
        let live = apply(&json!({}), &with_label, &req("alice", false)).unwrap();
        let without_b = json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "c", "labels": { "a": "1" } }, "data": { "k": "v" } });
        let next = apply(&live, &without_b, &req("alice", false)).unwrap();
        assert_eq!(next["metadata"]["labels"], json!({ "a": "1" }));
        // Bob also owns label b: alice dropping it keeps it.
        let bob_b = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c", "labels": { "b": "2" } } });
        let shared = apply(&live, &bob_b, &req("bob", false)).unwrap();
        let next = apply(&shared, &without_b, &req("alice", false)).unwrap();
        assert_eq!(next["metadata"]["labels"], json!({ "a": "1", "b": "2" }));
    }

    #[test]
    fn two_managers_own_different_containers() {
        let live = apply(&json!({}), &deployment(1, "a"), &req("alice", false)).unwrap();
        let sidecar = json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "d" },
            "spec": { "template": { "spec": { "containers": [{ "name": "proxy", "image": "p" }] } } } });
        let merged = apply(&live, &sidecar, &req("mesh", false)).unwrap();
        let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["app", "proxy"]);
    }

    #[test]
    fn update_takes_ownership_of_changed_fields() {
        let live = apply(&json!({}), &deployment(1, "a"), &req("alice", false)).unwrap();
        let mut edited = live.clone();
        edited["spec"]["replicas"] = json!(7);
        record_update(&live, &mut edited, "kubectl-edit", "", "apps/v1", "t");
        let entries = read_managed(&edited);
        let editor = entries
            .iter()
            .find(|e| e.manager == "kubectl-edit")
            .unwrap();
        assert_eq!(
            editor.fields,
            FieldSet::from([vec!["f:spec".to_string(), "f:replicas".into()]])
        );
        let conflicts = apply(&edited, &deployment(1, "a"), &req("alice", false)).unwrap_err();
        assert_eq!(conflicts[0].manager, "kubectl-edit");
    }
}
