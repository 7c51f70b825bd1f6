//! Manifests as users write them: recognise which Fife kind a parsed document is and turn
//! it into the typed object, leaving other kinds (Services, HTTPRoutes, ...) alone.

use serde_json::Value;

use crate::{
    API_VERSION, AnalysisRun, AnalysisTemplate, Approval, BreakGlass, ClusterAnalysisTemplate,
    ReleasePolicy, Rollout,
};

/// A Fife object read from a manifest.
#[derive(Clone, Debug, PartialEq)]
pub enum FifeObject {
    Rollout(Box<Rollout>),
    AnalysisTemplate(Box<AnalysisTemplate>),
    ClusterAnalysisTemplate(Box<ClusterAnalysisTemplate>),
    AnalysisRun(Box<AnalysisRun>),
    ReleasePolicy(Box<ReleasePolicy>),
    Approval(Box<Approval>),
    BreakGlass(Box<BreakGlass>),
}

/// Why a document that claims to be a Fife object could not be read as one.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{kind} {name:?} does not match the {API_VERSION} schema: {source}")]
    Shape {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
    #[error(
        "kind {kind:?} is not part of {API_VERSION}: use Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun, ReleasePolicy, Approval or BreakGlass"
    )]
    UnknownKind { kind: String },
}

impl FifeObject {
    /// `Some` for a document whose `apiVersion` is `fife.dev/v1alpha1`; `None` for any other
    /// document, which Fife does not own.
    pub fn from_value(document: &Value) -> Option<Result<FifeObject, ManifestError>> {
        if document.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
            return None;
        }
        let kind = document
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = document
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let shape = |source| ManifestError::Shape {
            kind: kind.to_owned(),
            name: name.clone(),
            source,
        };
        let value = document.clone();
        Some(match kind {
            "Rollout" => serde_json::from_value(value)
                .map(|o| FifeObject::Rollout(Box::new(o)))
                .map_err(shape),
            "AnalysisTemplate" => serde_json::from_value(value)
                .map(|o| FifeObject::AnalysisTemplate(Box::new(o)))
                .map_err(shape),
            "ClusterAnalysisTemplate" => serde_json::from_value(value)
                .map(|o| FifeObject::ClusterAnalysisTemplate(Box::new(o)))
                .map_err(shape),
            "AnalysisRun" => serde_json::from_value(value)
                .map(|o| FifeObject::AnalysisRun(Box::new(o)))
                .map_err(shape),
            "ReleasePolicy" => serde_json::from_value(value)
                .map(|o| FifeObject::ReleasePolicy(Box::new(o)))
                .map_err(shape),
            "Approval" => serde_json::from_value(value)
                .map(|o| FifeObject::Approval(Box::new(o)))
                .map_err(shape),
            "BreakGlass" => serde_json::from_value(value)
                .map(|o| FifeObject::BreakGlass(Box::new(o)))
                .map_err(shape),
            other => Err(ManifestError::UnknownKind {
                kind: other.to_owned(),
            }),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            FifeObject::Rollout(_) => "Rollout",
            FifeObject::AnalysisTemplate(_) => "AnalysisTemplate",
            FifeObject::ClusterAnalysisTemplate(_) => "ClusterAnalysisTemplate",
            FifeObject::AnalysisRun(_) => "AnalysisRun",
            FifeObject::ReleasePolicy(_) => "ReleasePolicy",
            FifeObject::Approval(_) => "Approval",
            FifeObject::BreakGlass(_) => "BreakGlass",
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            FifeObject::Rollout(o) => &o.metadata,
            FifeObject::AnalysisTemplate(o) => &o.metadata,
            FifeObject::ClusterAnalysisTemplate(o) => &o.metadata,
            FifeObject::AnalysisRun(o) => &o.metadata,
            FifeObject::ReleasePolicy(o) => &o.metadata,
            FifeObject::Approval(o) => &o.metadata,
            FifeObject::BreakGlass(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }

    /// The object as JSON, as the API server would store it (defaults filled in).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        match self {
            FifeObject::Rollout(o) => serde_json::to_value(o),
            FifeObject::AnalysisTemplate(o) => serde_json::to_value(o),
            FifeObject::ClusterAnalysisTemplate(o) => serde_json::to_value(o),
            FifeObject::AnalysisRun(o) => serde_json::to_value(o),
            FifeObject::ReleasePolicy(o) => serde_json::to_value(o),
            FifeObject::Approval(o) => serde_json::to_value(o),
            FifeObject::BreakGlass(o) => serde_json::to_value(o),
        }
    }
}

/// Parse a (multi-document) YAML text into JSON documents, skipping empty documents.
pub fn parse_yaml_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(text)?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}
