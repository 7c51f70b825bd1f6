//! Validation of custom resources against their CRD's structural schema, as the real
//! server applies it on every create, update, patch and apply after pruning and
//! defaulting ([`super::schema`]): OpenAPI value validation and the schema's
//! `x-kubernetes-validations` CEL rules, all errors of one write in one `Invalid` Status
//! with kube-apiserver's field paths and wording.
//!
//! Checked: `type` (with `nullable` and `x-kubernetes-int-or-string`), `enum`, `format`
//! (`int32`, `int64`, `uint64`, `date-time`, `duration`), `minimum`/`maximum` (and
//! `exclusiveMinimum`/`exclusiveMaximum`), `multipleOf`, `minLength`/`maxLength`,
//! `pattern`, `minItems`/`maxItems`, `minProperties`/`maxProperties`, `required`,
//! `properties`, `additionalProperties`, `items`, `allOf`/`anyOf`/`oneOf`/`not`, and CEL
//! rules with `self`, `oldSelf` (transition rules run only on update when the old value
//! exists; `optionalOldSelf` runs them always with an optional), `message`,
//! `messageExpression`, `fieldPath` and `reason`. Not checked: other string formats,
//! `uniqueItems` and `x-kubernetes-list-type` (set/map uniqueness), CEL cost limits, and
//! validation ratcheting (an update must be valid as a whole, even where it did not
//! change an invalid old value). `metadata` is left to the object-meta checks.

use super::discovery::ResourceType;
use super::expression::{self, Expression, from_json_typed};
use super::status::ApiError;
use serde_json::{Value, json};

/// One invalid field, as `field.Error`: the cause's reason, field path and message body.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.to_owned(),
            message: format!("Invalid value: {}: {detail}", shown(value)),
        }
    }

    fn type_invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self {
            reason: "FieldValueTypeInvalid",
            field: field.to_owned(),
            message: format!("Invalid value: {}: {detail}", shown(value)),
        }
    }

    pub fn required(field: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.to_owned(),
            message: if detail.is_empty() {
                "Required value".to_owned()
            } else {
                format!("Required value: {detail}")
            },
        }
    }
}

/// A bad value as Go's `field.Error` prints it: strings quoted, numbers and booleans
/// bare.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// The OpenAPI type name of a JSON value, as kube-openapi reports it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every error of `object` (and, on update, the transition rules against `old`) under
/// the CRD version's `openAPIV3Schema`.
pub fn validate(object: &Value, old: Option<&Value>, schema: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut walk = Walk {
        errors: &mut errors,
    };
    walk.node(object, old, schema, "", true);
    errors
}

/// The real server's answer to invalid fields: `Kind.group "name" is invalid: ...`
/// with one cause per error.
pub fn invalid(rt: &ResourceType, name: &str, errors: &[FieldError]) -> ApiError {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    let aggregate = match lines.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let qualified = rt.qualified_kind();
    let mut e = ApiError::new(
        422,
        "Invalid",
        format!("{qualified} \"{name}\" is invalid: {aggregate}"),
    );
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({ "reason": e.reason, "message": e.message, "field": e.field }))
        .collect();
    e.details = Some(json!({ "name": name, "group": rt.group, "kind": rt.kind, "causes": causes }));
    e
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

struct Walk<'e> {
    errors: &'e mut Vec<FieldError>,
}

impl Walk<'_> {
    /// Validates one value; `root` skips `apiVersion`, `kind` and `metadata`.
    fn node(&mut self, value: &Value, old: Option<&Value>, schema: &Value, path: &str, root: bool) {
        if !schema.is_object() {
            return;
        }
        if value.is_null() {
            if schema["nullable"] != true && schema.get("type").is_some() {
                self.errors.push(FieldError::type_invalid(
                    path,
                    &json!("null"),
                    &format!(
                        "{path} in body must be of type {}: \"null\"",
                        schema["type"].as_str().unwrap_or_default()
                    ),
                ));
            }
            return;
        }
        if !self.type_matches(value, schema, path) {
            return;
        }
        self.values(value, schema, path);
        self.combinators(value, schema, path);
        match value {
            Value::Object(map) => {
                for required in schema["required"].as_array().into_iter().flatten() {
                    if let Some(key) = required.as_str()
                        && !map.contains_key(key)
                    {
                        self.errors
                            .push(FieldError::required(&child(path, key), ""));
                    }
                }
                let properties = schema["properties"].as_object();
                let additional = schema.get("additionalProperties").filter(|a| a.is_object());
                for (key, v) in map {
                    if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                        continue;
                    }
                    let old_child = old.and_then(|o| o.get(key));
                    if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                        self.node(v, old_child, child_schema, &child(path, key), false);
                    } else if let Some(additional) = additional {
                        self.node(v, old_child, additional, &format!("{path}[{key}]"), false);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        // Items of atomic lists have no old value to correlate with.
                        self.node(item, None, item_schema, &format!("{path}[{i}]"), false);
                    }
                }
            }
            _ => {}
        }
        self.rules(value, old, schema, path);
    }

    fn type_matches(&mut self, value: &Value, schema: &Value, path: &str) -> bool {
        let actual = type_name(value);
        let (fits, wanted) = if schema["x-kubernetes-int-or-string"] == true {
            (matches!(actual, "integer" | "string"), "integer,string")
        } else {
            let Some(wanted) = schema["type"].as_str() else {
                return true;
            };
            let fits = actual == wanted || wanted == "number" && actual == "integer";
            (fits, wanted)
        };
        if !fits {
            self.errors.push(FieldError::type_invalid(
                path,
                &json!(actual),
                &format!("{path} in body must be of type {wanted}: \"{actual}\""),
            ));
        }
        fits
    }

    /// Value constraints of one schema (not its children).
    fn values(&mut self, value: &Value, schema: &Value, path: &str) {
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            let supported: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => format!("{s:?}"),
                    other => format!("\"{other}\""),
                })
                .collect();
            self.errors.push(FieldError {
                reason: "FieldValueNotSupported",
                field: path.to_owned(),
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(value),
                    supported.join(", ")
                ),
            });
        }
        match value {
            Value::Number(n) => self.number(value, n, schema, path),
            Value::String(s) => self.string(value, s, schema, path),
            Value::Array(items) => {
                let count = items.len() as u64;
                if let Some(max) = schema["maxItems"].as_u64()
                    && count > max
                {
                    self.errors.push(FieldError {
                        reason: "FieldValueTooMany",
                        field: path.to_owned(),
                        message: format!("Too many: {count}: must have at most {max} items"),
                    });
                }
                if let Some(min) = schema["minItems"].as_u64()
                    && count < min
                {
                    self.errors.push(FieldError::invalid(
                        path,
                        value,
                        &format!("{path} in body should have at least {min} items"),
                    ));
                }
            }
            Value::Object(map) => {
                let count = map.len() as u64;
                if let Some(max) = schema["maxProperties"].as_u64()
                    && count > max
                {
                    self.errors.push(FieldError {
                        reason: "FieldValueTooMany",
                        field: path.to_owned(),
                        message: format!("Too many: {count}: must have at most {max} items"),
                    });
                }
                if let Some(min) = schema["minProperties"].as_u64()
                    && count < min
                {
                    self.errors.push(FieldError::invalid(
                        path,
                        &json!(type_name(value)),
                        &format!("{path} in body should have at least {min} properties"),
                    ));
                }
            }
            _ => {}
        }
    }

    fn number(&mut self, value: &Value, n: &serde_json::Number, schema: &Value, path: &str) {
        let x = n.as_f64().unwrap_or(f64::NAN);
        let mut bound = |limit: &str, exclusive: &str, below: bool| {
            let Some(limit_value) = schema[limit].as_f64() else {
                return;
            };
            let strict = schema[exclusive] == true;
            let fails = match (below, strict) {
                (true, false) => x < limit_value,
                (true, true) => x <= limit_value,
                (false, false) => x > limit_value,
                (false, true) => x >= limit_value,
            };
            if fails {
                let relation = match (below, strict) {
                    (true, false) => "greater than or equal to",
                    (true, true) => "greater than",
                    (false, false) => "less than or equal to",
                    (false, true) => "less than",
                };
                let shown_limit = if limit_value.fract() == 0.0 {
                    format!("{}", limit_value as i64)
                } else {
                    limit_value.to_string()
                };
                self.errors.push(FieldError::invalid(
                    path,
                    value,
                    &format!("{path} in body should be {relation} {shown_limit}"),
                ));
            }
        };
        bound("minimum", "exclusiveMinimum", true);
        bound("maximum", "exclusiveMaximum", false);
        if let Some(factor) = schema["multipleOf"].as_f64()
            && factor > 0.0
            && (x / factor).fract() != 0.0
        {
            self.errors.push(FieldError::invalid(
                path,
                value,
                &format!("{path} in body should be a multiple of {factor}"),
            ));
        }
        let in_range = match schema["format"].as_str() {
            Some("int32") => n.as_i64().is_none_or(|i| i32::try_from(i).is_ok()),
            Some("int64") => n.as_i64().is_some() || n.is_f64(),
            Some("uint64") => n.as_u64().is_some() || n.is_f64(),
            _ => true,
        };
        if !in_range {
            self.errors.push(FieldError::type_invalid(
                path,
                value,
                &format!(
                    "{path} in body must be of type {}: \"{n}\"",
                    schema["format"].as_str().unwrap_or_default()
                ),
            ));
        }
    }

    fn string(&mut self, value: &Value, s: &str, schema: &Value, path: &str) {
        let length = s.chars().count() as u64;
        if let Some(max) = schema["maxLength"].as_u64()
            && length > max
        {
            self.errors.push(FieldError {
                reason: "FieldValueTooLong",
                field: path.to_owned(),
                message: format!("Too long: may not be more than {max} bytes"),
            });
        }
        if let Some(min) = schema["minLength"].as_u64()
            && length < min
        {
            self.errors.push(FieldError::invalid(
                path,
                value,
                &format!("{path} in body should be at least {min} chars long"),
            ));
        }
        if let Some(pattern) = schema["pattern"].as_str()
            && !expression::matches_pattern(s, pattern).unwrap_or(true)
        {
            self.errors.push(FieldError::invalid(
                path,
                value,
                &format!("{path} in body should match '{pattern}'"),
            ));
        }
        let well_formed = match schema["format"].as_str() {
            Some("date-time") => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            Some("duration") => expression::is_duration(s),
            _ => true,
        };
        if !well_formed {
            self.errors.push(FieldError::type_invalid(
                path,
                value,
                &format!(
                    "{path} in body must be of type {}: {s:?}",
                    schema["format"].as_str().unwrap_or_default()
                ),
            ));
        }
    }

    /// `allOf`, `anyOf`, `oneOf` and `not`: value validations over the same value.
    fn combinators(&mut self, value: &Value, schema: &Value, path: &str) {
        let passes = |sub: &Value| {
            let mut errors = Vec::new();
            Walk {
                errors: &mut errors,
            }
            .node(value, None, sub, path, false);
            errors
        };
        for sub in schema["allOf"].as_array().into_iter().flatten() {
            let errors = passes(sub);
            self.errors.extend(errors);
        }
        let count_valid = |subs: &Vec<Value>| subs.iter().filter(|s| passes(s).is_empty()).count();
        if let Some(subs) = schema["anyOf"].as_array()
            && count_valid(subs) == 0
        {
            self.errors.push(FieldError::invalid(
                path,
                &json!(type_name(value)),
                &format!("{path} in body must validate at least one schema (anyOf)"),
            ));
        }
        if let Some(subs) = schema["oneOf"].as_array()
            && count_valid(subs) != 1
        {
            self.errors.push(FieldError::invalid(
                path,
                &json!(type_name(value)),
                &format!("{path} in body must validate one and only one schema (oneOf)"),
            ));
        }
        if let Some(sub) = schema.get("not")
            && passes(sub).is_empty()
        {
            self.errors.push(FieldError::invalid(
                path,
                &json!(type_name(value)),
                &format!("{path} in body should not validate the schema (not)"),
            ));
        }
    }

    /// The node's `x-kubernetes-validations`.
    fn rules(&mut self, value: &Value, old: Option<&Value>, schema: &Value, path: &str) {
        let Some(rules) = schema["x-kubernetes-validations"].as_array() else {
            return;
        };
        let node_type = schema["type"].as_str().unwrap_or("object");
        let this = from_json_typed(value, schema);
        let previous = old.map(|o| from_json_typed(o, schema));
        for rule in rules {
            let source = rule["rule"].as_str().unwrap_or_default();
            let at = match rule["fieldPath"].as_str() {
                Some(relative) => format!("{path}{relative}")
                    .trim_start_matches('.')
                    .to_owned(),
                None => path.to_owned(),
            };
            let compiled = match Expression::cached(source) {
                Ok(c) => c,
                Err(why) => {
                    self.errors.push(FieldError {
                        reason: "InternalError",
                        field: at,
                        message: format!(
                            "Internal error: rule compiler initialization error: {why}"
                        ),
                    });
                    continue;
                }
            };
            let mut bound = vec![("self", this.clone())];
            if compiled.uses("oldSelf") {
                let old_self = if rule["optionalOldSelf"] == true {
                    expression::optional(previous.clone())
                } else {
                    match &previous {
                        Some(p) => Ok(p.clone()),
                        // A transition rule does not apply to a new value.
                        None => continue,
                    }
                };
                match old_self {
                    Ok(v) => bound.push(("oldSelf", v)),
                    Err(why) => {
                        self.errors
                            .push(FieldError::invalid(&at, &json!(node_type), &why));
                        continue;
                    }
                }
            }
            match compiled.check(&bound) {
                Ok(true) => {}
                Ok(false) => {
                    let message = rule["messageExpression"]
                        .as_str()
                        .and_then(|m| Expression::cached(m).and_then(|e| e.message(&bound)).ok())
                        .filter(|m| !m.trim().is_empty())
                        .or_else(|| rule["message"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("failed rule: {source}"));
                    self.errors.push(match rule["reason"].as_str() {
                        Some("FieldValueForbidden") => FieldError {
                            reason: "FieldValueForbidden",
                            field: at,
                            message: format!("Forbidden: {message}"),
                        },
                        Some("FieldValueRequired") => FieldError::required(&at, &message),
                        Some("FieldValueDuplicate") => FieldError {
                            reason: "FieldValueDuplicate",
                            field: at,
                            message: format!("Duplicate value: {message}"),
                        },
                        _ => FieldError::invalid(&at, &json!(node_type), &message),
                    });
                }
                Err(why) => self.errors.push(FieldError::invalid(
                    &at,
                    &json!(node_type),
                    &format!("{why} evaluating rule: {source}"),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({ "type": "object", "required": ["spec"], "properties": {
            "spec": { "type": "object", "required": ["replicas", "name"], "properties": {
                "replicas": { "type": "integer", "format": "int32", "minimum": 0, "maximum": 100 },
                "ratio": { "type": "number", "minimum": 0, "exclusiveMinimum": true },
                "name": { "type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$" },
                "mode": { "type": "string", "enum": ["a", "b"] },
                "port": { "x-kubernetes-int-or-string": true },
                "at": { "type": "string", "format": "date-time" },
                "note": { "type": "string", "nullable": true },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                "steps": { "type": "array", "maxItems": 2, "items": {
                    "type": "object", "oneOf": [{ "required": ["setWeight"] }, { "required": ["pause"] }],
                    "properties": { "setWeight": { "type": "integer" }, "pause": { "type": "object" } } } },
                "frozen": { "type": "string",
                    "x-kubernetes-validations": [{ "rule": "self == oldSelf", "message": "frozen is immutable" }] } },
                "x-kubernetes-validations": [
                    { "rule": "!has(self.mode) || self.mode != 'b' || has(self.ratio)",
                      "messageExpression": "'mode ' + self.mode + ' needs a ratio'", "fieldPath": ".ratio" },
                    { "rule": "self.replicas != 13", "reason": "FieldValueForbidden" }] } } })
    }

    /// Errors as (field, message), sorted: fields are visited in key order.
    fn errors(spec: Value) -> Vec<(String, String)> {
        validate(
            &json!({ "apiVersion": "x/v1", "kind": "R", "metadata": {}, "spec": spec }),
            None,
            &schema(),
        )
        .into_iter()
        .map(|e| (e.field, e.message))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(f, m)| (f.to_string(), m.to_string()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    #[test]
    fn a_valid_object_has_no_errors() {
        let spec = json!({ "replicas": 3, "ratio": 0.5, "name": "web", "mode": "b", "port": "http",
            "at": "2026-11-30T21:00:00Z", "note": null, "labels": { "a": "b" },
            "steps": [{ "setWeight": 5 }, { "pause": {} }] });
        assert_eq!(errors(spec), Vec::new());
    }

    #[test]
    fn every_check_words_its_error_as_kube_apiserver() {
        let spec = json!({ "replicas": "3", "ratio": 0, "name": "Web-123", "mode": "c", "port": true,
            "at": "yesterday", "labels": { "a": 1 },
            "steps": [{ "setWeight": 5, "pause": {} }, {}, { "pause": {} }] });
        assert_eq!(
            errors(spec),
            pairs(&[
                (
                    "spec.replicas",
                    "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
                ),
                (
                    "spec.ratio",
                    "Invalid value: 0: spec.ratio in body should be greater than 0"
                ),
                ("spec.name", "Too long: may not be more than 5 bytes"),
                (
                    "spec.name",
                    "Invalid value: \"Web-123\": spec.name in body should match '^[a-z]+$'"
                ),
                (
                    "spec.mode",
                    "Unsupported value: \"c\": supported values: \"a\", \"b\""
                ),
                (
                    "spec.port",
                    "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""
                ),
                (
                    "spec.at",
                    "Invalid value: \"yesterday\": spec.at in body must be of type date-time: \"yesterday\""
                ),
                (
                    "spec.labels[a]",
                    "Invalid value: \"integer\": spec.labels[a] in body must be of type string: \"integer\""
                ),
                ("spec.steps", "Too many: 3: must have at most 2 items"),
                (
                    "spec.steps[0]",
                    "Invalid value: \"object\": spec.steps[0] in body must validate one and only one schema (oneOf)"
                ),
                (
                    "spec.steps[1]",
                    "Invalid value: \"object\": spec.steps[1] in body must validate one and only one schema (oneOf)"
                ),
            ])
        );
        assert_eq!(
            errors(json!({ "replicas": 101, "name": "" })),
            pairs(&[
                (
                    "spec.replicas",
                    "Invalid value: 101: spec.replicas in body should be less than or equal to 100"
                ),
                (
                    "spec.name",
                    "Invalid value: \"\": spec.name in body should be at least 1 chars long"
                ),
                (
                    "spec.name",
                    "Invalid value: \"\": spec.name in body should match '^[a-z]+$'"
                ),
            ])
        );
        assert_eq!(
            errors(json!({ "replicas": 3_000_000_000_i64, "note": null })),
            pairs(&[
                ("spec.name", "Required value"),
                (
                    "spec.replicas",
                    "Invalid value: 3000000000: spec.replicas in body should be less than or equal to 100"
                ),
                (
                    "spec.replicas",
                    "Invalid value: 3000000000: spec.replicas in body must be of type int32: \"3000000000\""
                ),
            ])
        );
        let missing = validate(&json!({ "metadata": { "name": "x" } }), None, &schema());
        assert_eq!(missing, vec![FieldError::required("spec", "")]);
    }

    #[test]
    fn rules_report_message_expression_field_path_and_reason() {
        assert_eq!(
            errors(json!({ "replicas": 13, "name": "web", "mode": "b" })),
            pairs(&[
                (
                    "spec.ratio",
                    "Invalid value: \"object\": mode b needs a ratio"
                ),
                ("spec", "Forbidden: failed rule: self.replicas != 13"),
            ])
        );
    }

    #[test]
    fn transition_rules_run_only_on_update_with_an_old_value() {
        let object =
            |frozen: &str| json!({ "spec": { "replicas": 1, "name": "web", "frozen": frozen } });
        assert!(validate(&object("a"), None, &schema()).is_empty());
        assert!(validate(&object("a"), Some(&object("a")), &schema()).is_empty());
        let old_without = json!({ "spec": { "replicas": 1, "name": "web" } });
        assert!(validate(&object("b"), Some(&old_without), &schema()).is_empty());
        assert_eq!(
            validate(&object("b"), Some(&object("a")), &schema()),
            vec![FieldError::invalid(
                "spec.frozen",
                &json!("string"),
                "frozen is immutable"
            )]
        );
    }

    #[test]
    fn optional_old_self_runs_on_create_with_an_empty_optional() {
        let schema = json!({ "type": "object", "properties": { "spec": { "type": "object",
            "properties": { "owner": { "type": "string" } },
            "x-kubernetes-validations": [{ "rule": "oldSelf.hasValue() || self.owner == 'me'",
                "optionalOldSelf": true, "message": "a new object is owned by me" }] } } });
        let object = |owner: &str| json!({ "spec": { "owner": owner } });
        assert_eq!(validate(&object("you"), None, &schema).len(), 1);
        assert!(validate(&object("me"), None, &schema).is_empty());
        assert!(validate(&object("you"), Some(&object("me")), &schema).is_empty());
    }

    #[test]
    fn the_status_lists_every_cause_under_the_qualified_kind() {
        let rt = crate::discovery::builtin_types()
            .into_iter()
            .find(|t| t.plural == "httproutes")
            .unwrap();
        let e = invalid(
            &rt,
            "r",
            &[
                FieldError::required("spec.a", ""),
                FieldError::required("spec.b", ""),
            ],
        );
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "HTTPRoute.gateway.networking.k8s.io \"r\" is invalid: [spec.a: Required value, spec.b: Required value]"
        );
        assert_eq!(
            e.details.unwrap()["causes"][1],
            json!({ "reason": "FieldValueRequired", "message": "Required value", "field": "spec.b" })
        );
    }
}
