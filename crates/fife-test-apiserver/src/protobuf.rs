//! The few protobuf bodies the server reads: `kubectl auth whoami` and `kubectl auth
//! can-i` post their reviews as `application/vnd.kubernetes.protobuf` (kubectl's typed
//! clients do not fall back to JSON), so the review kinds are decoded from the
//! Kubernetes envelope (`k8s\0` + `runtime.Unknown`) into their JSON shape. Every other
//! protobuf body is refused with 415.

use serde_json::{Value, json};

enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of one message, in order; `None` when the bytes are not protobuf.
fn fields(bytes: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let field = match key & 7 {
            0 => {
                varint(bytes, &mut at)?;
                Field::Varint
            }
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|e| *e <= bytes.len())?;
                let field = Field::Bytes(&bytes[at..end]);
                at = end;
                field
            }
            1 => {
                at += 8;
                Field::Varint
            }
            5 => {
                at += 4;
                Field::Varint
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

fn bytes_of(message: &[u8], number: u64) -> Option<&[u8]> {
    fields(message)?.into_iter().find_map(|(n, f)| match f {
        Field::Bytes(b) if n == number => Some(b),
        _ => None,
    })
}

fn strings_of(message: &[u8], number: u64) -> Vec<String> {
    fields(message)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(n, f)| match f {
            Field::Bytes(b) if n == number => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect()
}

fn string_of(message: &[u8], number: u64) -> String {
    strings_of(message, number).pop().unwrap_or_default()
}

/// A review body (`SelfSubjectReview`, `SelfSubjectAccessReview`,
/// `SelfSubjectRulesReview`, `SubjectAccessReview`) as JSON, or `None` when the body is
/// not a Kubernetes protobuf envelope.
pub fn review(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(b"k8s\0")?;
    let type_meta = bytes_of(unknown, 1).unwrap_or_default();
    let raw = bytes_of(unknown, 2).unwrap_or_default();
    let spec = bytes_of(raw, 2).unwrap_or_default();
    let mut out = json!({ "apiVersion": string_of(type_meta, 1), "kind": string_of(type_meta, 2), "spec": {} });
    let kind = string_of(type_meta, 2);
    if kind == "SelfSubjectRulesReview" {
        out["spec"]["namespace"] = json!(string_of(spec, 1));
        return Some(out);
    }
    if let Some(r) = bytes_of(spec, 1) {
        let keys = [
            "namespace",
            "verb",
            "group",
            "version",
            "resource",
            "subresource",
            "name",
        ];
        let mut attributes = json!({});
        for (i, key) in keys.iter().enumerate() {
            attributes[*key] = json!(string_of(r, i as u64 + 1));
        }
        out["spec"]["resourceAttributes"] = attributes;
    }
    if let Some(n) = bytes_of(spec, 2) {
        out["spec"]["nonResourceAttributes"] =
            json!({ "path": string_of(n, 1), "verb": string_of(n, 2) });
    }
    if kind == "SubjectAccessReview" {
        out["spec"]["user"] = json!(string_of(spec, 3));
        out["spec"]["groups"] = json!(strings_of(spec, 4));
        out["spec"]["uid"] = json!(string_of(spec, 6));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (number, bytes) in fields {
            out.push((number << 3) | 2);
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
        out
    }

    #[test]
    fn access_reviews_decode_from_the_kubernetes_envelope() {
        let attributes = message(&[
            (1, b"default"),
            (2, b"get"),
            (3, b"apps"),
            (5, b"deployments"),
        ]);
        let spec = message(&[(1, &attributes)]);
        let raw = message(&[(1, b""), (2, &spec)]);
        let type_meta = message(&[
            (1, b"authorization.k8s.io/v1"),
            (2, b"SelfSubjectAccessReview"),
        ]);
        let mut body = b"k8s\0".to_vec();
        body.extend(message(&[(1, &type_meta), (2, &raw)]));
        let review = review(&body).unwrap();
        assert_eq!(review["kind"], "SelfSubjectAccessReview");
        assert_eq!(review["spec"]["resourceAttributes"]["verb"], "get");
        assert_eq!(
            review["spec"]["resourceAttributes"]["resource"],
            "deployments"
        );
        assert_eq!(review["spec"]["resourceAttributes"]["subresource"], "");
        assert!(super::review(b"{}").is_none());
    }
}
