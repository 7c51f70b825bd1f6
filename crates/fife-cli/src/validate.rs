//! `fife validate FILE... [--templates DIR]`: offline checks of Rollout and analysis
//! manifests for GitOps CI. Prints `FILE:LINE: kind/name: field.path: message` per problem;
//! exits 1 when any error is found, 2 when a file cannot be read or parsed, 0 otherwise.
//!
//! Objects of other API groups are named too, so a file that holds nothing Fife reads does
//! not pass in silence: an Argo Rollouts or Flagger object is an error, because CI passing it
//! would claim a progressive delivery that no Fife controller runs; anything else (Services,
//! Deployments, RBAC beside a Rollout in one GitOps directory) is a note and exits 0.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fife_api::API_VERSION;
use fife_api::credentials;
use fife_api::manifest::FifeObject;
use fife_api::schema_check;
use fife_api::validation::{self, Problem, Severity, TemplateCatalog};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::yaml_lines::{LocatedDocument, parse_documents};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Manifests to check (multi-document YAML).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// A directory of further AnalysisTemplates and ClusterAnalysisTemplates that Rollouts
    /// may reference (searched recursively for *.yaml and *.yml; not reported on).
    #[arg(long, value_name = "DIR")]
    templates: Option<PathBuf>,
}

/// One Fife document of one file.
struct Located {
    file: String,
    document: LocatedDocument,
    kind: String,
    name: String,
    object: Option<FifeObject>,
}

struct Finding {
    file: String,
    line: u64,
    subject: String,
    problem: Problem,
    /// Information that is neither an error nor a warning: an object Fife ignores.
    note: bool,
}

/// What `fife validate` says about an object outside `fife.dev`, or `None` for one Fife
/// reads or that says nothing about itself (an empty document).
fn foreign_object(api_version: &str, kind: &str) -> Option<Problem> {
    if api_version.is_empty() && kind.is_empty() {
        return None;
    }
    // The core group's Secrets are read for credential marks (fife_api::credentials).
    if api_version == "v1" && kind == "Secret" {
        return None;
    }
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let (severity, message) = match group {
        "argoproj.io" => (
            Severity::Error,
            format!(
                "an Argo Rollouts {kind} ({api_version}), which Fife does not read: `fife convert FILE` writes it as {API_VERSION} objects, with a comment on each field that has no exact counterpart (docs/migrating.md, \"From Argo Rollouts\")"
            ),
        ),
        "flagger.app" => (
            Severity::Error,
            format!(
                "a Flagger {kind} ({api_version}), which Fife does not read: `fife convert FILE` writes a Canary or MetricTemplate as {API_VERSION} objects (docs/migrating.md, \"From Flagger\")"
            ),
        ),
        _ => (
            Severity::Warning,
            format!("Fife ignores {api_version} {kind} objects: this one is not checked"),
        ),
    };
    Some(Problem {
        severity,
        path: "apiVersion".to_owned(),
        message,
    })
}

pub fn run(args: ValidateArgs) -> ExitCode {
    let mut unreadable = false;
    let mut schemas: BTreeMap<String, Option<JSONSchemaProps>> = BTreeMap::new();
    let mut findings = Vec::new();
    let mut documents = Vec::new();

    for file in &args.files {
        match load(file) {
            Ok(docs) => documents.extend(docs),
            Err(message) => {
                eprintln!("{message}");
                unreadable = true;
            }
        }
    }
    let mut catalog = TemplateCatalog::default();
    if let Some(dir) = &args.templates {
        match yaml_files(dir) {
            Ok(files) => {
                for file in files {
                    match load(&file) {
                        Ok(docs) => docs
                            .iter()
                            .filter_map(|(_, d)| typed(&d.value))
                            .for_each(|o| catalog.add_object(&o)),
                        Err(message) => {
                            eprintln!("{message}");
                            unreadable = true;
                        }
                    }
                }
            }
            Err(err) => {
                eprintln!(
                    "{}: cannot read the templates directory: {err}",
                    dir.display()
                );
                unreadable = true;
            }
        }
    }

    // The Secrets the manifests hold, so references to them can be checked for Fife's
    // credential mark (fife_api::credentials).
    let secrets: Vec<ObjectMeta> = documents
        .iter()
        .filter(|(_, d)| {
            d.value.get("apiVersion").and_then(|v| v.as_str()) == Some("v1")
                && d.value.get("kind").and_then(|v| v.as_str()) == Some("Secret")
        })
        .filter_map(|(_, d)| serde_json::from_value(d.value.get("metadata")?.clone()).ok())
        .collect();

    let mut located = Vec::new();
    for (file, document) in documents {
        let api_version = document
            .value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let kind = document
            .value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        let name = document
            .value
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned();
        if api_version.starts_with("fife.dev/") && api_version != API_VERSION {
            findings.push(Finding {
                line: document.line_of("apiVersion"),
                file,
                subject: format!("{kind}/{name}"),
                note: false,
                problem: error(
                    "apiVersion",
                    format!("{api_version} is not served: use {API_VERSION}"),
                ),
            });
            continue;
        }
        if api_version != API_VERSION {
            if let Some(problem) = foreign_object(api_version, &kind) {
                findings.push(Finding {
                    line: document.line_of("apiVersion"),
                    note: problem.severity == Severity::Warning,
                    file,
                    subject: format!("{kind}/{name}"),
                    problem,
                });
            }
            continue;
        }
        let schema = schemas
            .entry(kind.clone())
            .or_insert_with(|| schema_check::schema_for_kind(&kind));
        let Some(schema) = schema else {
            findings.push(Finding {
                line: document.line_of("kind"),
                file,
                subject: format!("{kind}/{name}"),
                note: false,
                problem: error(
                    "kind",
                    format!("{kind:?} is not a {API_VERSION} kind: use Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun, ReleasePolicy, Approval or BreakGlass"),
                ),
            });
            continue;
        };
        let schema_problems = schema_check::check(&document.value, schema);
        // The semantic rules need the typed object; with the fields the schema check
        // refused left out, most documents still read, so their other problems show too.
        let read = match FifeObject::from_value(&document.value) {
            Some(Err(_)) if !schema_problems.is_empty() => {
                let mut pruned = document.value.clone();
                for problem in &schema_problems {
                    prune(&mut pruned, &problem.path);
                }
                FifeObject::from_value(&pruned)
            }
            read => read,
        };
        let object = match read {
            Some(Ok(object)) => Some(object),
            Some(Err(err)) => {
                let problem = if schema_problems.is_empty() {
                    error("(document)", err.to_string())
                } else {
                    Problem {
                        severity: Severity::Warning,
                        path: "(document)".to_owned(),
                        message: "the other checks of this document run once its problems listed here are fixed"
                            .to_owned(),
                    }
                };
                findings.push(Finding {
                    line: document.line,
                    file: file.clone(),
                    subject: format!("{kind}/{name}"),
                    problem,
                    note: false,
                });
                None
            }
            None => None,
        };
        for problem in schema_problems {
            findings.push(Finding {
                line: document.line_of(&problem.path),
                file: file.clone(),
                subject: format!("{kind}/{name}"),
                problem,
                note: false,
            });
        }
        if let Some(object) = &object {
            catalog.add_object(object);
        }
        located.push(Located {
            file,
            document,
            kind,
            name,
            object,
        });
    }

    for doc in &located {
        let Some(object) = &doc.object else { continue };
        let reported: BTreeSet<&str> = findings
            .iter()
            .filter(|f| f.file == doc.file && f.subject == format!("{}/{}", doc.kind, doc.name))
            .map(|f| f.problem.path.as_str())
            .collect();
        let semantic: Vec<Problem> = validation::validate_object(object, &catalog)
            .into_iter()
            .chain(credential_warnings(object, &secrets))
            .filter(|p| !reported.contains(p.path.as_str()))
            .collect();
        for problem in semantic {
            findings.push(Finding {
                line: doc.document.line_of(&problem.path),
                file: doc.file.clone(),
                subject: format!("{}/{}", doc.kind, doc.name),
                problem,
                note: false,
            });
        }
    }

    findings.sort_by(|a, b| {
        (&a.file, a.line, &a.problem.path).cmp(&(&b.file, b.line, &b.problem.path))
    });
    let errors = findings
        .iter()
        .filter(|f| f.problem.severity == Severity::Error)
        .count();
    for finding in &findings {
        let severity = match finding.problem.severity {
            _ if finding.note => "note: ",
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        println!(
            "{}:{}: {}: {}: {severity}{}",
            finding.file,
            finding.line,
            finding.subject,
            finding.problem.path,
            finding.problem.message
        );
    }
    if unreadable {
        ExitCode::from(2)
    } else if errors > 0 {
        eprintln!("{errors} problem(s) found");
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// References of a template to Secrets among the manifests that the controller would refuse,
/// and a ReleasePolicy's unreadable schedules.
/// A namespaced template is used with Secrets of its own namespace; a cluster template with
/// those of any Rollout's namespace, so every Secret of the name is checked.
fn credential_warnings(object: &FifeObject, secrets: &[ObjectMeta]) -> Vec<Problem> {
    let namespace_of =
        |meta: &ObjectMeta| meta.namespace.clone().unwrap_or_else(|| "default".into());
    match object {
        FifeObject::AnalysisTemplate(t) => {
            let namespace = namespace_of(&t.metadata);
            let own: Vec<&ObjectMeta> = secrets
                .iter()
                .filter(|s| namespace_of(s) == namespace)
                .collect();
            credentials::reference_warnings(&t.spec.metrics, &own)
        }
        FifeObject::ClusterAnalysisTemplate(t) => {
            let all: Vec<&ObjectMeta> = secrets.iter().collect();
            credentials::reference_warnings(&t.spec.metrics, &all)
        }
        FifeObject::ReleasePolicy(policy) => schedule_problems(policy),
        FifeObject::Rollout(_)
        | FifeObject::AnalysisRun(_)
        | FifeObject::Approval(_)
        | FifeObject::BreakGlass(_) => Vec::new(),
    }
}

/// Schedules whose cron or time zone the controller could not read (it would hold every
/// change they govern).
fn schedule_problems(policy: &fife_api::ReleasePolicy) -> Vec<Problem> {
    policy
        .spec
        .schedules
        .iter()
        .enumerate()
        .filter_map(|(i, schedule)| {
            fife_policy::schedule::Window::parse(schedule)
                .err()
                .map(|e| error(&format!("spec.schedules[{i}]"), e.to_string()))
        })
        .collect()
}

fn error(path: &str, message: String) -> Problem {
    Problem {
        severity: Severity::Error,
        path: path.to_owned(),
        message,
    }
}

/// Removes the field at `path` (`a.b[2].c`) from `value`, if it is there.
fn prune(value: &mut serde_json::Value, path: &str) {
    let mut segments: Vec<&str> = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        while let Some(open) = rest.find('[') {
            if open > 0 {
                segments.push(&rest[..open]);
            }
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
            segments.push(&rest[open..=close.min(rest.len() - 1)]);
            rest = &rest[(close + 1).min(rest.len())..];
        }
        if !rest.is_empty() {
            segments.push(rest);
        }
    }
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = value;
    for segment in parents {
        let next = match index_of(segment) {
            Some(i) => current.get_mut(i),
            None => current.get_mut(*segment),
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match (index_of(last), current) {
        (None, serde_json::Value::Object(map)) => {
            map.remove(*last);
        }
        (Some(i), serde_json::Value::Array(items)) if i < items.len() => {
            items.remove(i);
        }
        _ => {}
    }
}

fn index_of(segment: &str) -> Option<usize> {
    segment.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

fn typed(value: &serde_json::Value) -> Option<FifeObject> {
    FifeObject::from_value(value).and_then(Result::ok)
}

/// Reads and parses one file; the error is the line to print.
fn load(path: &Path) -> Result<Vec<(String, LocatedDocument)>, String> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|err| format!("{name}: cannot read: {err}"))?;
    let documents = parse_documents(&text).map_err(|err| match err.line {
        Some(line) => format!("{name}:{line}: cannot parse YAML: {}", err.message),
        None => format!("{name}: cannot parse YAML: {}", err.message),
    })?;
    Ok(documents.into_iter().map(|d| (name.clone(), d)).collect())
}

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
