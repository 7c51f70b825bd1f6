//! A YAML tree whose fields carry comments, and its writer: how `fife convert` puts a note
//! next to each field it translated loosely or could not translate. Scalars are written
//! plain only when YAML reads them back as the same string; anything else is quoted.

use serde_json::Value;

/// Width at which comment lines are wrapped.
const COMMENT_WIDTH: usize = 96;

/// A node of the output: a JSON leaf or subtree copied as it is, or a map or list built by
/// the converter with comments on its entries.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Value(Value),
    Map(Map),
    List(Vec<Item>),
}

/// A map in the order its entries were added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    entries: Vec<Entry>,
}

/// A field with the comments written above it, or a comment alone where a field of the
/// input was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    comments: Vec<String>,
    field: Option<(String, Node)>,
}

/// A list item with the comments written above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub comments: Vec<String>,
    pub node: Node,
}

impl Map {
    pub fn new() -> Self {
        Map::default()
    }

    /// Adds `key: node`.
    pub fn insert(&mut self, key: &str, node: impl Into<Node>) {
        self.entries.push(Entry {
            comments: Vec::new(),
            field: Some((key.to_owned(), node.into())),
        });
    }

    /// Adds `key: node` with a comment above it.
    pub fn insert_noted(&mut self, key: &str, node: impl Into<Node>, comment: impl Into<String>) {
        self.entries.push(Entry {
            comments: vec![comment.into()],
            field: Some((key.to_owned(), node.into())),
        });
    }

    /// Adds a comment where a field was left out.
    pub fn note(&mut self, comment: impl Into<String>) {
        self.entries.push(Entry {
            comments: vec![comment.into()],
            field: None,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The comments of the map's entries, in order, for a converter that drops the map.
    pub fn into_comments(self) -> Vec<String> {
        self.entries.into_iter().flat_map(|e| e.comments).collect()
    }

    /// True when the map holds at least one field (not only comments).
    pub fn has_fields(&self) -> bool {
        self.entries.iter().any(|e| e.field.is_some())
    }
}

impl From<Map> for Node {
    fn from(map: Map) -> Node {
        Node::Map(map)
    }
}

impl From<Value> for Node {
    fn from(value: Value) -> Node {
        Node::Value(value)
    }
}

impl From<&str> for Node {
    fn from(text: &str) -> Node {
        Node::Value(Value::String(text.to_owned()))
    }
}

impl From<String> for Node {
    fn from(text: String) -> Node {
        Node::Value(Value::String(text))
    }
}

impl From<i64> for Node {
    fn from(n: i64) -> Node {
        Node::Value(Value::from(n))
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Node {
        Node::Value(Value::Bool(b))
    }
}

impl From<Vec<Item>> for Node {
    fn from(items: Vec<Item>) -> Node {
        Node::List(items)
    }
}

impl Item {
    pub fn new(node: impl Into<Node>) -> Self {
        Item {
            comments: Vec::new(),
            node: node.into(),
        }
    }

    pub fn noted(node: impl Into<Node>, comment: impl Into<String>) -> Self {
        Item {
            comments: vec![comment.into()],
            node: node.into(),
        }
    }
}

impl Node {
    /// The node as JSON, comments dropped.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Value(value) => value.clone(),
            Node::Map(map) => Value::Object(
                map.entries
                    .iter()
                    .filter_map(|e| e.field.as_ref())
                    .map(|(k, n)| (k.clone(), n.to_value()))
                    .collect(),
            ),
            Node::List(items) => Value::Array(items.iter().map(|i| i.node.to_value()).collect()),
        }
    }

    /// A node whose children are nodes too, so comments can be attached inside copied JSON.
    fn expanded(&self) -> Node {
        match self {
            Node::Value(Value::Object(object)) if !object.is_empty() => {
                let mut map = Map::new();
                for (k, v) in object {
                    map.insert(k, v.clone());
                }
                Node::Map(map)
            }
            Node::Value(Value::Array(items)) if !items.is_empty() => {
                Node::List(items.iter().map(|v| Item::new(v.clone())).collect())
            }
            other => other.clone(),
        }
    }
}

/// Writes one document, without the `---` separator.
pub fn write_document(map: &Map, header: &[String]) -> String {
    let mut out = String::new();
    for comment in header {
        write_comment(&mut out, 0, comment);
    }
    write_map(&mut out, 0, map);
    out
}

fn write_comment(out: &mut String, indent: usize, comment: &str) {
    let pad = " ".repeat(indent);
    let width = COMMENT_WIDTH.saturating_sub(indent + 2).max(40);
    for paragraph in comment.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                out.push_str(&format!("{pad}# {line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!("{pad}# {line}\n").replace(" \n", "\n"));
    }
}

fn write_map(out: &mut String, indent: usize, map: &Map) {
    for entry in &map.entries {
        for comment in &entry.comments {
            write_comment(out, indent, comment);
        }
        if let Some((key, node)) = &entry.field {
            out.push_str(&" ".repeat(indent));
            out.push_str(&scalar_text(&Value::String(key.clone())));
            out.push(':');
            write_value_after_key(out, indent, node);
        }
    }
}

/// Writes what follows `key:` (or `- `): an inline scalar, or a nested block.
fn write_value_after_key(out: &mut String, indent: usize, node: &Node) {
    match node.expanded() {
        Node::Value(value) => {
            out.push(' ');
            write_inline(out, indent, &value);
        }
        Node::Map(map) if !map.has_fields() => {
            // Comments cannot sit inside `{}`: they follow it, indented like its fields.
            out.push_str(" {}\n");
            write_map(out, indent + 2, &map);
        }
        Node::Map(map) => {
            out.push('\n');
            write_map(out, indent + 2, &map);
        }
        Node::List(items) if items.is_empty() => out.push_str(" []\n"),
        Node::List(items) => {
            out.push('\n');
            write_list(out, indent, &items);
        }
    }
}

fn write_list(out: &mut String, indent: usize, items: &[Item]) {
    let pad = " ".repeat(indent);
    for item in items {
        for comment in &item.comments {
            write_comment(out, indent, comment);
        }
        match item.node.expanded() {
            Node::Value(value) => {
                out.push_str(&pad);
                out.push_str("- ");
                write_inline(out, indent + 2, &value);
            }
            Node::Map(map) if map.is_empty() => out.push_str(&format!("{pad}- {{}}\n")),
            Node::Map(map) => {
                // The first entry shares the dash's line; its comments go above the dash.
                let mut block = String::new();
                write_map(&mut block, indent + 2, &map);
                let mut lines = block.lines();
                let mut first = true;
                for line in lines.by_ref() {
                    let body = &line[(indent + 2).min(line.len())..];
                    if first && !body.starts_with('#') {
                        out.push_str(&format!("{pad}- {body}\n"));
                        first = false;
                    } else if first {
                        out.push_str(&format!("{pad}{body}\n"));
                    } else {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
                if first {
                    // A map holding comments only.
                    out.push_str(&format!("{pad}- {{}}\n"));
                }
            }
            Node::List(inner) if inner.is_empty() => out.push_str(&format!("{pad}- []\n")),
            Node::List(inner) => {
                out.push_str(&format!("{pad}-\n"));
                write_list(out, indent + 2, &inner);
            }
        }
    }
}

/// Writes a scalar (or an empty map or list) and its line end; a text of several lines
/// becomes a literal block indented under `indent`.
fn write_inline(out: &mut String, indent: usize, value: &Value) {
    if let Value::String(text) = value
        && literal_block_fits(text)
    {
        let body = text.strip_suffix('\n').unwrap_or(text);
        out.push_str(if text.ends_with('\n') { "|\n" } else { "|-\n" });
        let pad = " ".repeat(indent + 2);
        for line in body.split('\n') {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&pad);
                out.push_str(line);
                out.push('\n');
            }
        }
        return;
    }
    out.push_str(&scalar_text(value));
    out.push('\n');
}

/// A literal block keeps a text exactly when it has a line break, its first line of text starts with no space,
/// ends with at most one line break and holds no characters YAML would change.
fn literal_block_fits(text: &str) -> bool {
    let body = text.strip_suffix('\n').unwrap_or(text);
    text.contains('\n')
        && !body.is_empty()
        // The first line with text sets the block's indentation, so it must not start with
        // a space of its own.
        && body
            .lines()
            .find(|l| !l.is_empty())
            .is_some_and(|l| !l.starts_with([' ', '\t']))
        && !body.ends_with('\n')
        && !body.lines().any(|l| l.ends_with([' ', '\t']))
        && !text
            .chars()
            .any(|c| c == '\r' || (c.is_control() && c != '\n'))
}

/// The one-line YAML text of a scalar, an empty map or an empty list.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) if plain_is_safe(text) => text.clone(),
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        // A JSON string is a valid YAML double-quoted scalar; numbers, booleans and null
        // are written the same in both.
        other => other.to_string(),
    }
}

/// True when `text` written plain reads back as the same string.
fn plain_is_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let special_word = matches!(
        text.to_ascii_lowercase().as_str(),
        "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
    );
    let number_like = text.parse::<f64>().is_ok()
        || text.starts_with(['.', '+', '-'])
        || text
            .chars()
            .all(|c| c.is_ascii_digit() || c == '_' || c == ':');
    // After the first character, block context reads indicators literally, except `: `
    // (a key) and ` #` (a comment).
    (first.is_ascii_alphanumeric() || first == '/')
        && !special_word
        && !number_like
        && !text.ends_with([' ', ':'])
        && !text.contains(": ")
        && !text.contains(" #")
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._/-=+()<>:#[]{},\"'*&!|%@`~$^;?".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn read_back(text: &str) -> Value {
        serde_saphyr::from_str(text).unwrap()
    }

    #[test]
    fn written_documents_read_back_as_the_same_value() {
        let value = json!({
            "name": "web",
            "quoted": ["true", "10", "a: b", "#x", "", " lead", "-1", "1.5", "x #y", "é", "a:", "1:2"],
            "plain": ["http://p:9090", "result[0] >= 0.9", "x{a=\"b\"}[1m]", "a#b", "a, b"],
            "one-line": "x\n",
            "numbers": [1, -2, 0.5, true, null],
            "query": "sum(rate(x[1m]))\n/ sum(rate(y[1m]))\n",
            "no-final-newline": "a\n  b",
            "nested": {"list": [{"a": 1, "b": [{}, []]}, [1, 2]], "empty": {}},
            "weird key: x": 1,
        });
        let mut map = Map::new();
        for (k, v) in value.as_object().unwrap() {
            map.insert_noted(k, v.clone(), format!("about {k}"));
        }
        let text = write_document(&map, &["a header".to_owned()]);
        assert_eq!(read_back(&text), value, "{text}");
        assert!(
            text.starts_with("# a header\n# about name\nname: web\n"),
            "{text}"
        );
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            // Characters YAML gives a meaning to, in every position.
            "[a-z0-9 :#\\-\\[\\]{},'\"|>!&*%@`?~.\n]{0,12}".prop_map(Value::String),
        ]
    }

    fn tree() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z:# -]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_tree_reads_back_as_written(value in prop::collection::btree_map("[a-z]{1,6}", tree(), 0..4)) {
            let value = Value::Object(value.into_iter().collect());
            let mut map = Map::new();
            for (k, v) in value.as_object().unwrap() {
                map.insert_noted(k, v.clone(), "a comment: with # marks");
            }
            let text = write_document(&map, &[]);
            let read: Value = if value.as_object().unwrap().is_empty() {
                json!({})
            } else {
                read_back(&text)
            };
            prop_assert_eq!(read, value, "{}", text);
        }
    }

    #[test]
    fn comments_sit_above_their_field_and_items_and_long_ones_wrap() {
        let mut step = Map::new();
        step.insert_noted("setWeight", 5i64, "first field of an item");
        let mut only_notes = Map::new();
        only_notes.note("nothing kept");
        let mut map = Map::new();
        map.insert("routing", only_notes);
        map.note("a field left out");
        map.insert(
            "steps",
            vec![Item::noted(step, "the item"), Item::new(Value::from("x"))],
        );
        map.note("word ".repeat(40).trim().to_owned());
        let text = write_document(&map, &[]);
        assert!(
            text.starts_with(
                "routing: {}\n  # nothing kept\n# a field left out\nsteps:\n# the item\n# first field of an item\n- setWeight: 5\n- x\n# word"
            ),
            "{text}"
        );
        assert!(text.lines().all(|l| l.len() <= COMMENT_WIDTH), "{text}");
        assert_eq!(
            read_back(&text),
            json!({"routing": {}, "steps": [{"setWeight": 5}, "x"]})
        );
    }
}
