//! What `fife convert` does with one document: an Argo Rollouts or Flagger object becomes
//! Fife objects with their comments, a Fife object or one of another API group passes through
//! as written, and anything else is refused with the reason. Pure: parsed values in, YAML
//! text out.

use std::collections::BTreeMap;

use fife_api::API_VERSION;
use fife_api::duration::Duration;
use fife_api::placeholder::{Piece, Placeholder, pieces};
use serde_json::Value;

use super::commented::{Map, write_document};
use super::{argo, flagger};

/// Flagger's own default for the Prometheus its built-in metrics query (its `-metrics-server`
/// flag), used where a converted metric must name a Prometheus and the input names none.
pub const DEFAULT_PROMETHEUS: &str = "http://prometheus:9090";

/// One document of the input.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from (`FILE` or `FILE:LINE`), for messages.
    pub source: String,
    /// Its text as written, for documents that pass through.
    pub text: String,
    pub value: Value,
}

/// Settings of a conversion.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Prometheus for metrics whose source names none (Flagger's built-ins, Kayenta).
    pub prometheus: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prometheus: DEFAULT_PROMETHEUS.to_owned(),
        }
    }
}

/// A document `fife convert` cannot handle, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {reason}")]
pub struct Refused {
    /// `FILE:LINE` of the document.
    pub location: String,
    pub reason: String,
}

/// One converted object: its Fife manifest and the comments to write above it.
#[derive(Debug, Clone)]
pub struct Converted {
    pub header: Vec<String>,
    pub object: Map,
}

/// Converts every document; the output is multi-document YAML. The documents are
/// converted together so a Flagger Canary can take its MetricTemplates' queries.
pub fn convert(documents: &[Document], options: &Options) -> Result<String, Vec<Refused>> {
    let metric_templates = flagger::MetricTemplates::collect(documents.iter().map(|d| &d.value));
    let mut parts = Vec::new();
    let mut refused = Vec::new();
    for document in documents {
        match convert_one(document, options, &metric_templates) {
            Ok(Output::PassThrough) => parts.push(document.text.trim_end().to_owned() + "\n"),
            Ok(Output::Objects(objects)) => {
                parts.extend(objects.iter().map(|c| write_document(&c.object, &c.header)))
            }
            Err(reason) => refused.push(Refused {
                location: document.source.clone(),
                reason,
            }),
        }
    }
    if refused.is_empty() {
        Ok(parts.join("---\n"))
    } else {
        Err(refused)
    }
}

enum Output {
    PassThrough,
    Objects(Vec<Converted>),
}

fn convert_one(
    document: &Document,
    options: &Options,
    metric_templates: &flagger::MetricTemplates,
) -> Result<Output, String> {
    let value = &document.value;
    let Some(object) = value.as_object() else {
        return Err(format!(
            "a document that is not a Kubernetes object (a YAML {}): fife convert reads manifests with apiVersion and kind",
            json_type(value)
        ));
    };
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err(
            "a document without apiVersion or kind, so not a Kubernetes object: add both, or remove the document".to_owned(),
        );
    }
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match (group, kind) {
        ("argoproj.io", "Rollout") => Ok(Output::Objects(vec![argo::rollout(value)])),
        ("argoproj.io", "AnalysisTemplate" | "ClusterAnalysisTemplate") => Ok(Output::Objects(
            vec![argo::analysis_template(value, options)],
        )),
        ("argoproj.io", _) => Err(format!(
            "an Argo {kind} ({name}), which has no Fife counterpart: {}",
            argo::why_not(kind)
        )),
        ("flagger.app", "Canary") => Ok(Output::Objects(flagger::canary(
            value,
            options,
            metric_templates,
        ))),
        ("flagger.app", "MetricTemplate") => flagger::metric_template(value)
            .map(|c| Output::Objects(vec![c]))
            .map_err(|why| {
                format!("a Flagger MetricTemplate ({name}) that cannot be converted: {why}")
            }),
        ("flagger.app", _) => Err(format!(
            "a Flagger {kind} ({name}), which has no Fife counterpart: {}",
            flagger::why_not(kind)
        )),
        _ => Ok(Output::PassThrough),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

// === Helpers the Argo and Flagger converters share ===

/// The comment above a converted object: where it came from (`tool`, kind, name and
/// `what` of it), and its `status` noted as left out.
pub(super) fn source_header(tool: &str, value: &Value, what: &str) -> Vec<String> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut header = vec![format!(
        "From the {tool} {kind} {name}{what}. A comment marks each field without an exact counterpart (docs/migrating.md)."
    )];
    if let Some(status) = value.get("status") {
        header.push(note(
            "status",
            status,
            "left out: the Fife controller writes its own status",
        ));
    }
    header
}

/// The comment for a field of the input left out or changed: `field: value — what Fife does`.
pub(super) fn note(field: &str, value: &Value, what_fife_does: &str) -> String {
    format!("{field}: {} — {what_fife_does}", short(value))
}

/// A value as one short phrase for a comment.
pub(super) fn short(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Object(_) | Value::Array(_) => {
            let compact = value.to_string();
            match value {
                _ if compact.len() <= 60 => compact,
                Value::Array(items) => format!("[{} items]", items.len()),
                _ => "{...}".to_owned(),
            }
        }
        other => other.to_string(),
    };
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 60 || text.contains('\n') {
        format!("{}...", line.chars().take(60).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// The metadata a converted object keeps: name, namespace, labels and annotations.
pub(super) fn metadata(value: &Value, name_suffix: &str) -> Map {
    let mut map = Map::new();
    let meta = value.get("metadata").cloned().unwrap_or(Value::Null);
    if let Some(name) = meta.get("name").and_then(Value::as_str) {
        map.insert("name", format!("{name}{name_suffix}"));
    }
    for key in ["namespace", "labels", "annotations"] {
        if let Some(v) = meta.get(key) {
            map.insert(key, v.clone());
        }
    }
    // A derived object (a Canary's AnalysisTemplate) takes the names only; the object
    // itself says what else its metadata held.
    if name_suffix.is_empty() {
        for (key, v) in fields(&meta) {
            if !matches!(
                key.as_str(),
                "name" | "namespace" | "labels" | "annotations"
            ) {
                map.note(note(
                    &key,
                    &v,
                    "left out: the API server sets it, or it belongs to the old object",
                ));
            }
        }
    }
    map
}

/// A Fife object: `apiVersion`, `kind`, `metadata`, then `spec`.
pub(super) fn object(kind: &str, metadata: Map, spec: Map) -> Map {
    let mut map = Map::new();
    map.insert("apiVersion", API_VERSION);
    map.insert("kind", kind);
    map.insert("metadata", metadata);
    map.insert("spec", spec);
    map
}

/// A duration of the input (Go's `1m30s`, Argo's integer seconds) in Fife's canonical form,
/// or why it has none.
pub(super) fn duration(value: &Value) -> Result<String, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(|s| Duration::from_secs(s).to_string())
            .ok_or_else(|| format!("{n} is not a whole number of seconds")),
        Value::String(text) => text
            .parse::<Duration>()
            .map(|d| d.to_string())
            .or_else(|_| {
                go_duration(text).ok_or_else(|| {
                    format!("{text:?} is not a duration Fife reads (ms, s, m, h terms)")
                })
            }),
        other => Err(format!("{} is not a duration", short(other))),
    }
}

/// Go's duration terms that Fife's language lacks but can express: `1.5m`, `1d` never
/// (Go has no days), whole seconds written as `"30"`.
fn go_duration(text: &str) -> Option<String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds).to_string());
    }
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    let millis = number * scale;
    (millis >= 0.0 && millis.fract() == 0.0 && millis < 1e15)
        .then(|| Duration::from_millis(millis as u64).to_string())
}

/// An integer field written as a number or a numeric string; `Err` for a placeholder or text.
pub(super) fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number")),
        Value::String(s) => s.trim().parse().map_err(|_| {
            format!("{s:?} is not a number Fife can read (Fife's counts are not templated)")
        }),
        other => Err(format!("{} is not a number", short(other))),
    }
}

/// Rewrites the placeholders of `text` in Fife's syntax (owned by `fife_api::placeholder`):
/// `rename` gives the argument a foreign placeholder stands for, or `None` to keep it as
/// written. Returns the text and the placeholders kept that Fife does not know.
pub(super) fn placeholders(
    text: &str,
    rename: impl Fn(Placeholder<'_>) -> Option<String>,
) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut unknown = Vec::new();
    for piece in pieces(text) {
        match piece {
            Piece::Text(t) | Piece::Unclosed { rest: t, .. } => out.push_str(t),
            Piece::Placeholder { placeholder, raw } => match rename(placeholder) {
                Some(arg) => out.push_str(&Placeholder::Arg(&arg).to_string()),
                None => match placeholder {
                    Placeholder::Unknown(_) => {
                        unknown.push(raw.to_owned());
                        out.push_str(raw);
                    }
                    known => out.push_str(&known.to_string()),
                },
            },
        }
    }
    (out, unknown)
}

/// The `{{args.NAME}}` names `text` uses.
pub(super) fn argument_names(text: &str) -> Vec<String> {
    pieces(text)
        .filter_map(|p| match p {
            Piece::Placeholder {
                placeholder: Placeholder::Arg(name),
                ..
            } => Some(name.to_owned()),
            _ => None,
        })
        .collect()
}

/// A map of the input's fields by name, for converters that take some and note the rest.
pub(super) fn fields(value: &Value) -> BTreeMap<String, Value> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_take_argo_seconds_and_go_fractions() {
        assert_eq!(duration(&json!(10)).unwrap(), "10s");
        assert_eq!(duration(&json!("90s")).unwrap(), "1m30s");
        assert_eq!(duration(&json!("1.5m")).unwrap(), "1m30s");
        assert_eq!(duration(&json!("30")).unwrap(), "30s");
        assert!(duration(&json!("1d")).is_err());
        assert!(duration(&json!(-1)).is_err());
    }

    #[test]
    fn placeholders_are_written_in_fifes_syntax() {
        let (text, unknown) = placeholders("a{{ args.x }}b{{ target }}{{role}}{{pod}}", |p| {
            matches!(p, Placeholder::Unknown("target")).then(|| "target".to_owned())
        });
        assert_eq!(text, "a{{args.x}}b{{args.target}}{{role}}{{pod}}");
        assert_eq!(unknown, ["{{pod}}"]);
        assert_eq!(argument_names(&text), ["x", "target"]);
    }

    #[test]
    fn documents_of_other_groups_pass_through_and_unknown_shapes_are_refused() {
        let service = Document {
            source: "a.yaml".into(),
            text: "apiVersion: v1\nkind: Service # kept\n".into(),
            value: json!({"apiVersion": "v1", "kind": "Service"}),
        };
        assert_eq!(
            convert(std::slice::from_ref(&service), &Options::default()).unwrap(),
            service.text
        );
        let list = Document {
            source: "a.yaml:3".into(),
            text: "- a\n".into(),
            value: json!(["a"]),
        };
        let refused = convert(&[service, list], &Options::default()).unwrap_err();
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0]
                .to_string()
                .starts_with("a.yaml:3: a document that is not a Kubernetes object (a YAML list)")
        );
        let experiment = Document {
            source: "e.yaml".into(),
            text: String::new(),
            value: json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"}}),
        };
        let refused = convert(&[experiment], &Options::default()).unwrap_err();
        assert!(
            refused[0].reason.contains("an Argo Experiment (e)"),
            "{}",
            refused[0]
        );
    }
}
