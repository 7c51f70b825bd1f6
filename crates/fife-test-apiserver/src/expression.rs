//! CEL as the API server evaluates it, shared by ValidatingAdmissionPolicies
//! ([`super::admission`]) and CRD validation rules ([`super::validation`]): one
//! environment (the standard library with optional values, the `strings` and `lists`
//! extensions), JSON turned into CEL values, and failures worded as kube-apiserver words
//! them.
//!
//! JSON numbers become `int` when they are integral and `double` otherwise, unless a
//! schema says the field is a `number` ([`from_json_typed`]): a CRD field of type
//! `number` is always a `double` in the real server, so `self.confidence > 0.0` holds
//! for `confidence: 1` too.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

static ENVIRONMENT: LazyLock<Arc<cel::Env>> = LazyLock::new(|| {
    let mut env = cel::Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("the strings extension registers once");
    env.add_extension(cel::extensions::lists)
        .expect("the lists extension registers once");
    Arc::new(env)
});

/// A compiled expression and its source text (for messages).
pub struct Expression {
    program: cel::Program,
    source: String,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

impl Expression {
    /// Compiles `source`; the error is the parser's, as a sentence.
    pub fn compile(source: &str) -> Result<Self, String> {
        ENVIRONMENT
            .compile(source)
            .map(|program| Self {
                program,
                source: source.to_owned(),
            })
            .map_err(|e| format!("compilation failed: {e}"))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Does the expression read the variable `name` (e.g. `oldSelf`, which makes a CRD
    /// rule a transition rule)?
    pub fn uses(&self, name: &str) -> bool {
        self.program.references().has_variable(name)
    }

    /// Evaluates with the named variables bound.
    pub fn evaluate(&self, variables: &[(&str, cel::Value)]) -> Result<cel::Value, String> {
        let mut context = cel::Context::with_env(Arc::clone(&ENVIRONMENT));
        for (name, value) in variables {
            context.add_variable_from_value(*name, value.clone());
        }
        self.program.execute(&context).map_err(|e| e.to_string())
    }

    /// Evaluates a validation: `true` passes, `false` fails, anything else is an error
    /// in the real server's words.
    pub fn check(&self, variables: &[(&str, cel::Value)]) -> Result<bool, String> {
        match self.evaluate(variables)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!(
                "validation failed due to an invalid expression: expression '{}' must evaluate to bool, got {}",
                self.source,
                other.type_of()
            )),
        }
    }

    /// Evaluates a `messageExpression`: a string, else why not.
    pub fn message(&self, variables: &[(&str, cel::Value)]) -> Result<String, String> {
        match self.evaluate(variables)? {
            cel::Value::String(s) => Ok(s.as_str().to_owned()),
            other => Err(format!(
                "messageExpression '{}' must evaluate to string, got {}",
                self.source,
                other.type_of()
            )),
        }
    }
}

/// `optional.of(value)`, or `optional.none()` without one, as CEL's optional library
/// builds them (for `oldSelf` of rules with `optionalOldSelf`).
pub fn optional(value: Option<cel::Value>) -> Result<cel::Value, String> {
    static SOME: LazyLock<Expression> =
        LazyLock::new(|| Expression::compile("optional.of(v)").expect("a valid expression"));
    static NONE: LazyLock<Expression> =
        LazyLock::new(|| Expression::compile("optional.none()").expect("a valid expression"));
    match value {
        Some(v) => SOME.evaluate(&[("v", v)]),
        None => NONE.evaluate(&[]),
    }
}

/// Does `text` match the regular expression `pattern`? CEL's `matches` (RE2 syntax, as
/// the real server's OpenAPI `pattern` in practice); the error is the pattern's fault.
pub fn matches_pattern(text: &str, pattern: &str) -> Result<bool, String> {
    static MATCHES: LazyLock<Expression> =
        LazyLock::new(|| Expression::compile("s.matches(p)").expect("a valid expression"));
    MATCHES.check(&[
        ("s", cel::Value::String(Arc::new(text.to_owned()))),
        ("p", cel::Value::String(Arc::new(pattern.to_owned()))),
    ])
}

/// Is `text` a duration CEL's `duration()` reads (`1h30m`, `250ms`)?
pub fn is_duration(text: &str) -> bool {
    static DURATION: LazyLock<Expression> =
        LazyLock::new(|| Expression::compile("duration(s)").expect("a valid expression"));
    DURATION
        .evaluate(&[("s", cel::Value::String(Arc::new(text.to_owned())))])
        .is_ok()
}

/// A JSON value as CEL sees it without a schema (built-in objects, `request`, params).
pub fn from_json(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            _ => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(from_json).collect())),
        Value::Object(map) => {
            let entries: HashMap<cel::objects::Key, cel::Value> = map
                .iter()
                .map(|(k, v)| (cel::objects::Key::from(k.clone()), from_json(v)))
                .collect();
            cel::Value::Map(cel::objects::Map {
                map: Arc::new(entries),
            })
        }
    }
}

/// A JSON value as CEL sees it under a structural schema: `number` fields are doubles
/// whatever their JSON spelling; everything else as [`from_json`].
pub fn from_json_typed(value: &Value, schema: &Value) -> cel::Value {
    match value {
        Value::Number(n) if schema["type"] == "number" => {
            cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
        }
        Value::Array(items) => {
            let item_schema = &schema["items"];
            cel::Value::List(Arc::new(
                items
                    .iter()
                    .map(|i| from_json_typed(i, item_schema))
                    .collect(),
            ))
        }
        Value::Object(map) => {
            let properties = schema["properties"].as_object();
            let additional = &schema["additionalProperties"];
            let entries: HashMap<cel::objects::Key, cel::Value> = map
                .iter()
                .map(|(k, v)| {
                    let child = properties.and_then(|p| p.get(k)).unwrap_or(additional);
                    (
                        cel::objects::Key::from(k.clone()),
                        from_json_typed(v, child),
                    )
                })
                .collect();
            cel::Value::Map(cel::objects::Map {
                map: Arc::new(entries),
            })
        }
        other => from_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(source: &str, object: Value) -> Result<bool, String> {
        Expression::compile(source)?.check(&[("self", from_json(&object))])
    }

    #[test]
    fn the_rules_fife_writes_evaluate_over_json() {
        let both = json!({ "value": "a", "valueFrom": {} });
        assert_eq!(
            eval("!(has(self.value) && has(self.valueFrom))", both),
            Ok(false)
        );
        let one = json!({ "value": "a" });
        assert_eq!(
            eval("!(has(self.value) && has(self.valueFrom))", one),
            Ok(true)
        );
        let steps = json!({ "steps": [{ "setWeight": 5 }, { "setWeight": 50 }] });
        assert_eq!(
            eval("self.steps.all(s, s.setWeight <= 100)", steps.clone()),
            Ok(true)
        );
        assert_eq!(
            eval(
                "self.?missing.orValue(0) == 0 && size(self.steps) == 2",
                steps
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                "self.name.matches('^[a-z]+$') && self.name.lowerAscii() == self.name",
                json!({ "name": "abc" })
            ),
            Ok(true)
        );
    }

    #[test]
    fn number_fields_are_doubles_under_a_schema() {
        let schema =
            json!({ "type": "object", "properties": { "confidence": { "type": "number" } } });
        let value = from_json_typed(&json!({ "confidence": 1 }), &schema);
        let rule = Expression::compile("type(self.confidence) == double").unwrap();
        assert_eq!(rule.check(&[("self", value)]), Ok(true));
        let untyped = from_json(&json!({ "confidence": 1 }));
        assert_eq!(rule.check(&[("self", untyped)]), Ok(false));
    }

    #[test]
    fn non_boolean_results_and_errors_are_sentences() {
        let e = eval("self.name", json!({ "name": "x" })).unwrap_err();
        assert!(e.contains("must evaluate to bool, got string"), "{e}");
        assert!(eval("self.missing == 1", json!({})).is_err());
        assert!(Expression::compile("self.(").is_err());
    }
}
