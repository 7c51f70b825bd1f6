//! Canonical JSON: one byte sequence per value, so hashes of records are reproducible by
//! anyone with any JSON library that follows the same three rules.
//!
//! - object keys sorted by their UTF-8 bytes, at every depth;
//! - no whitespace outside strings;
//! - strings escaped minimally (`"`, `\`, control characters), numbers as `serde_json`
//!   writes them (shortest round-tripping form for floats).

use serde::Serialize;
use serde_json::Value;

/// Writes `value` in canonical form.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(1024);
    write_value(value, &mut out);
    // Built only from `str`s and serde_json's ASCII output, so it is UTF-8.
    String::from_utf8(out).expect("canonical JSON is UTF-8")
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_json(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted here rather than trusting the map's order: with serde_json's
            // `preserve_order` feature enabled anywhere in the build, maps keep insertion order.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    write_json(s, out);
}

/// serde_json's compact output of a string or number: minimal, fixed escaping and the
/// shortest round-tripping float. Writing into a `Vec` cannot fail.
fn write_json<T: Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    let mut ser = serde_json::Serializer::new(out);
    v.serialize(&mut ser)
        .expect("writing JSON into memory cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_whitespace_is_gone() {
        let v = json!({"b": 1, "a": {"z": [1, 2.5, "x"], "m": null}, "A": true});
        assert_eq!(
            to_canonical_string(&v),
            r#"{"A":true,"a":{"m":null,"z":[1,2.5,"x"]},"b":1}"#
        );
    }

    #[test]
    fn strings_are_escaped_minimally() {
        let v = json!({"s": "é \"q\" \\ \n\u{1}"});
        assert_eq!(
            to_canonical_string(&v),
            "{\"s\":\"é \\\"q\\\" \\\\ \\n\\u0001\"}"
        );
    }

    #[test]
    fn parsing_and_rewriting_gives_the_same_bytes() {
        let text = to_canonical_string(&json!({"p": 0.1 + 0.2, "u": 1e300, "n": -7, "x": 12.0}));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(to_canonical_string(&back), text);
    }
}
