//! Revisions: the stable, short hash of a pod template that names a revision in labels,
//! Deployment selectors, AnalysisRun names and audit records.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Hex characters kept from the SHA-256 digest: 40 bits, short enough for names and labels,
/// and a collision between two revisions of one Rollout is not a practical concern.
pub const REVISION_HASH_LEN: usize = 10;

/// The revision of a pod template: the first 10 hex characters of the SHA-256 of its
/// canonical JSON (object keys sorted at every level, no insignificant whitespace).
///
/// Canonical JSON, not the serializer's output as is, so the hash depends only on what the
/// template says, never on field order or on how a map happened to be built.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    // Serializing plain data structs and string-keyed maps cannot fail.
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut hash = hex::encode(digest);
    hash.truncate(REVISION_HASH_LEN);
    hash
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn mk_template(image: &str, labels: &[(&str, &str)]) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".to_owned(),
                    image: Some(image.to_owned()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    #[test]
    fn hash_is_ten_hex_chars_and_deterministic() {
        let t = mk_template("nginx:1.27", &[("app", "web")]);
        let h = pod_template_hash(&t);
        assert_eq!(h.len(), REVISION_HASH_LEN);
        assert!(
            h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(h, pod_template_hash(&t.clone()));
    }

    #[test]
    fn hash_changes_with_the_template_and_ignores_label_insertion_order() {
        let a = mk_template("nginx:1.27", &[("app", "web"), ("tier", "front")]);
        let b = mk_template("nginx:1.27", &[("tier", "front"), ("app", "web")]);
        let c = mk_template("nginx:1.28", &[("app", "web"), ("tier", "front")]);
        assert_eq!(pod_template_hash(&a), pod_template_hash(&b));
        assert_ne!(pod_template_hash(&a), pod_template_hash(&c));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v: Value =
            serde_json::from_str(r#"{"b":{"z":1,"a":[{"y":2,"x":3}]},"a":"s"}"#).unwrap();
        let mut out = String::new();
        write_canonical(&v, &mut out);
        assert_eq!(out, r#"{"a":"s","b":{"a":[{"x":3,"y":2}],"z":1}}"#);
    }
}
