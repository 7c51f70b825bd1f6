//! The JSONPath subset that printer columns and scale paths use: `.a.b`, `.a[0]`,
//! `.a["key.with.dots"]`, and `{...}` wrappers as kubectl writes them.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut steps = Vec::new();
    let chars: Vec<char> = path.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = chars[i..].iter().position(|&c| c == ']')? + i;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if let Some(key) = inner
                    .strip_prefix(['\'', '"'])
                    .and_then(|s| s.strip_suffix(['\'', '"']))
                {
                    steps.push(Step::Field(key.to_string()));
                } else {
                    steps.push(Step::Index(inner.parse().ok()?));
                }
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Some(steps)
}

/// The value at `path`, if the path is valid and present.
pub fn get<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = object;
    for step in parse(path)? {
        v = match step {
            Step::Field(name) => v.get(name.as_str())?,
            Step::Index(i) => v.get(i)?,
        };
    }
    Some(v)
}

/// Writes `value` at a dotted path, creating objects on the way.
pub fn set(object: &mut Value, path: &str, value: Value) {
    let Some(steps) = parse(path) else { return };
    let mut v = object;
    for step in steps {
        v = match step {
            Step::Field(name) => {
                if !v.is_object() {
                    *v = Value::Object(Default::default());
                }
                v.as_object_mut()
                    .map(|m| m.entry(name).or_insert(Value::Null))
                    .expect("object ensured above")
            }
            Step::Index(i) => match v.get_mut(i) {
                Some(inner) => inner,
                None => return,
            },
        };
    }
    *v = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fields_indices_and_quoted_keys() {
        let o = json!({ "status": { "conditions": [{ "type": "Ready" }], "weights": { "canary.x": 5 } } });
        assert_eq!(get(&o, ".status.conditions[0].type"), Some(&json!("Ready")));
        assert_eq!(
            get(&o, "{.status.conditions[0].type}"),
            Some(&json!("Ready"))
        );
        assert_eq!(get(&o, ".status.weights['canary.x']"), Some(&json!(5)));
        assert_eq!(get(&o, ".status.missing"), None);
        assert_eq!(get(&o, ".status.conditions[3]"), None);
    }

    #[test]
    fn set_creates_intermediate_objects() {
        let mut o = json!({});
        set(&mut o, ".spec.replicas", json!(3));
        assert_eq!(o, json!({ "spec": { "replicas": 3 } }));
    }
}
