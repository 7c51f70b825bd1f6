//! Multi-document YAML read together with the line of every field, so a problem found on
//! the JSON form of a document can be reported at `FILE:LINE`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// One YAML document: its JSON value and the line of each field path in it.
#[derive(Debug)]
pub struct LocatedDocument {
    pub value: Value,
    /// Line of the document's first node.
    pub line: u64,
    /// `spec.strategy.canary.steps[2].setWeight` → line of that key or item.
    lines: BTreeMap<String, u64>,
}

impl LocatedDocument {
    /// The line of `path`, or of its nearest ancestor that is written in the file (a
    /// missing field is reported where its parent is).
    pub fn line_of(&self, path: &str) -> u64 {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return *line;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.line,
            }
        }
    }
}

/// A YAML text that is not well-formed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub line: Option<u64>,
    pub message: String,
}

/// Parses every document of `text`, skipping empty ones.
pub fn parse_documents(text: &str) -> Result<Vec<LocatedDocument>, YamlError> {
    let documents: Vec<Spanned<Node>> =
        serde_saphyr::from_multiple(text).map_err(|err| YamlError {
            line: err.location().map(|l| l.line()).filter(|l| *l > 0),
            message: err
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        })?;
    Ok(documents
        .into_iter()
        .filter(|d| !matches!(d.value, Node::Null))
        .map(|document| {
            let line = document.referenced.line();
            let mut lines = BTreeMap::new();
            let value = into_value(document.value, String::new(), &mut lines);
            LocatedDocument { value, line, lines }
        })
        .collect())
}

fn into_value(node: Node, path: String, lines: &mut BTreeMap<String, u64>) -> Value {
    match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::from(i),
        Node::UInt(u) => Value::from(u),
        Node::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_path = format!("{path}[{i}]");
                    lines.insert(item_path.clone(), item.referenced.line());
                    into_value(item.value, item_path, lines)
                })
                .collect(),
        ),
        Node::Map(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                let key_path = if path.is_empty() {
                    key.value.0.clone()
                } else {
                    format!("{path}.{}", key.value.0)
                };
                lines.insert(key_path.clone(), key.referenced.line());
                let value = into_value(value.value, key_path, lines);
                object.insert(key.value.0, value);
            }
            Value::Object(object)
        }
    }
}

/// A YAML node whose children carry their source location.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Key>, Spanned<Node>)>),
}

/// A mapping key, whatever scalar it was written as.
#[derive(Debug)]
struct Key(String);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::UInt(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Key>>()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_the_line_of_every_field_in_every_document() {
        let text = "a: 1\nb:\n  c: [x, z]\n  d:\n    - e: true\n---\n# comment\nf: 2.5\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].value,
            serde_json::json!({"a": 1, "b": {"c": ["x", "z"], "d": [{"e": true}]}})
        );
        assert_eq!(docs[0].line_of("a"), 1);
        assert_eq!(docs[0].line_of("b.c"), 3);
        assert_eq!(docs[0].line_of("b.d[0].e"), 5);
        assert_eq!(docs[0].line_of("b.d[0].missing"), 5);
        assert_eq!(docs[1].line, 8);
        assert_eq!(docs[1].line_of("f"), 8);
    }

    #[test]
    fn reports_the_line_of_a_syntax_error() {
        let err = parse_documents("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line.is_some_and(|l| l >= 2), "{err:?}");
    }
}
