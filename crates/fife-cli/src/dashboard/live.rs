//! The dashboard's live data: each page opens one server-sent-event stream, driven by kube
//! watches, that carries `snapshot` events (the page's whole data as JSON) and `problem`
//! events (a sentence saying what is wrong: a vanished object, a lost connection, a
//! forbidden namespace). A watch that fails is retried with backoff and the page is told.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use fife_api::labels::ROLLOUT_LABEL;
use fife_api::{AnalysisRun, Rollout};
use futures::stream::{self, BoxStream, Stream, StreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource, ResourceExt as _};
use serde_json::{Value, json};

use super::Dashboard;
use crate::ops::error::Attempt;
use crate::ops::{ROLLOUT_KIND, ROLLOUTS};

/// What a stream tells the page.
#[derive(Debug)]
enum Update {
    Snapshot(Value),
    Problem(String),
}

impl Update {
    fn into_event(self) -> Result<Event, Infallible> {
        Ok(match self {
            Update::Snapshot(data) => Event::default().event("snapshot").data(data.to_string()),
            Update::Problem(message) => Event::default()
                .event("problem")
                .data(json!({ "message": message }).to_string()),
        })
    }
}

fn sse(
    updates: impl Stream<Item = Update> + Send + 'static,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(updates.map(Update::into_event)).keep_alive(KeepAlive::default())
}

/// A watch error as the sentence the CLI would print for the same failed request.
fn watch_problem(
    kind: &'static str,
    resource: &'static str,
    namespace: &str,
    error: watcher::Error,
) -> String {
    let attempt = Attempt {
        verb: "watch",
        kind,
        resource,
        name: None,
        namespace,
    };
    let sentence = match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) => {
            attempt.explain(e).to_string()
        }
        watcher::Error::WatchError(status) => attempt.explain_status(&status).to_string(),
        other => other.to_string(),
    };
    format!("{sentence} (retrying)")
}

/// "Something changed": the watch events after which a page's snapshot is rebuilt.
fn changed<K>(event: &watcher::Event<K>) -> bool {
    matches!(
        event,
        watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone
    )
}

/// The list page: every Rollout in scope, re-sent whole on every change.
pub(super) async fn rollouts(
    State(dashboard): State<Arc<Dashboard>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let (api, scope): (Api<Rollout>, String) = if dashboard.all_namespaces {
        (
            Api::all(dashboard.cluster.client.clone()),
            "all namespaces".into(),
        )
    } else {
        let ns = dashboard.cluster.namespace.clone();
        (Api::namespaced(dashboard.cluster.client.clone(), &ns), ns)
    };
    let mut known: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut initial: BTreeMap<(String, String), Value> = BTreeMap::new();
    let updates = watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |item| {
            let update = match item {
                Ok(watcher::Event::Init) => {
                    initial.clear();
                    None
                }
                Ok(watcher::Event::InitApply(rollout)) => {
                    initial.insert(key(&rollout), rollout_json(&rollout));
                    None
                }
                Ok(watcher::Event::InitDone) => {
                    known = std::mem::take(&mut initial);
                    Some(list_snapshot(&known))
                }
                Ok(watcher::Event::Apply(rollout)) => {
                    known.insert(key(&rollout), rollout_json(&rollout));
                    Some(list_snapshot(&known))
                }
                Ok(watcher::Event::Delete(rollout)) => {
                    known.remove(&key(&rollout));
                    Some(list_snapshot(&known))
                }
                Err(e) => Some(Update::Problem(watch_problem(
                    ROLLOUT_KIND,
                    ROLLOUTS,
                    &scope,
                    e,
                ))),
            };
            std::future::ready(update)
        });
    sse(updates)
}

fn key<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

fn to_json<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// A Rollout as the pages read it: a blue-green Rollout also shows the steps it runs as
/// (`spec.strategy.canary.steps`, from the engine), so its timeline and step column are
/// the ones the controller walks.
fn rollout_json(rollout: &Rollout) -> Value {
    let mut json = to_json(rollout);
    if let Some(strategy) = &rollout.spec.strategy.blue_green {
        json["spec"]["strategy"]["canary"] =
            json!({ "steps": fife_engine::rollout::blue_green_steps(strategy) });
    }
    json
}

fn list_snapshot(known: &BTreeMap<(String, String), Value>) -> Update {
    Update::Snapshot(json!({ "items": known.values().collect::<Vec<_>>() }))
}

/// One Rollout's page: the Rollout, its Deployments, AnalysisRuns and Events, and its audit
/// records; rebuilt whenever any of them changes in the namespace.
pub(super) async fn rollout(
    State(dashboard): State<Arc<Dashboard>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let client = dashboard.cluster.client.clone();
    let by_name = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let ns = namespace.clone();
    // The controller labels what it makes for a Rollout; only those changes matter here.
    let children = watcher::Config::default().labels(&format!("{ROLLOUT_LABEL}={name}"));
    let triggers: Vec<BoxStream<'static, Result<(), String>>> = vec![
        trigger(
            Api::<Rollout>::namespaced(client.clone(), &ns),
            by_name,
            ROLLOUT_KIND,
            ROLLOUTS,
            &ns,
        ),
        trigger(
            Api::<AnalysisRun>::namespaced(client.clone(), &ns),
            children.clone(),
            "AnalysisRun",
            "analysisruns.fife.dev",
            &ns,
        ),
        trigger(
            Api::<Deployment>::namespaced(client.clone(), &ns),
            children,
            "Deployment",
            "deployments.apps",
            &ns,
        ),
        trigger(
            Api::<KubeEvent>::namespaced(client.clone(), &ns),
            watcher::Config::default(),
            "Event",
            "events",
            &ns,
        ),
    ];
    let updates = stream::select_all(triggers).then(move |trigger| {
        let dashboard = dashboard.clone();
        let namespace = namespace.clone();
        let name = name.clone();
        async move {
            match trigger {
                Ok(()) => rollout_snapshot(&dashboard, &namespace, &name).await,
                Err(problem) => Update::Problem(problem),
            }
        }
    });
    sse(updates)
}

fn trigger<K>(
    api: Api<K>,
    config: watcher::Config,
    kind: &'static str,
    resource: &'static str,
    namespace: &str,
) -> BoxStream<'static, Result<(), String>>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    let namespace = namespace.to_owned();
    watcher(api, config)
        .default_backoff()
        .filter_map(move |item| {
            std::future::ready(match item {
                Ok(event) => changed(&event).then_some(Ok(())),
                Err(e) => Some(Err(watch_problem(kind, resource, &namespace, e))),
            })
        })
        .boxed()
}

async fn rollout_snapshot(dashboard: &Dashboard, namespace: &str, name: &str) -> Update {
    let client = dashboard.cluster.client.clone();
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), namespace);
    let attempt = |verb, kind, resource, name| Attempt {
        verb,
        kind,
        resource,
        name,
        namespace,
    };
    let rollout = match rollouts.get_opt(name).await {
        Ok(Some(rollout)) => rollout,
        Ok(None) => {
            return Update::Problem(format!(
                "Rollout \"{name}\" does not exist in namespace \"{namespace}\" (it was deleted, or never created); the page updates if it appears"
            ));
        }
        Err(e) => {
            return Update::Problem(
                attempt("get", ROLLOUT_KIND, ROLLOUTS, Some(name))
                    .explain(e)
                    .to_string(),
            );
        }
    };
    let mut problems = Vec::new();
    let runs = match Api::<AnalysisRun>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}")))
        .await
    {
        Ok(list) => {
            let mut runs: Vec<AnalysisRun> = list
                .items
                .into_iter()
                .filter(|run| run.spec.rollout.as_ref().is_some_and(|r| r.name == name))
                .collect();
            runs.sort_by(|a, b| {
                b.metadata
                    .creation_timestamp
                    .cmp(&a.metadata.creation_timestamp)
                    .then_with(|| b.name_any().cmp(&a.name_any()))
            });
            runs
        }
        Err(e) => {
            problems.push(
                attempt("list", "AnalysisRun", "analysisruns.fife.dev", None)
                    .explain(e)
                    .to_string(),
            );
            Vec::new()
        }
    };
    let deployments = match Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={name}")))
        .await
    {
        Ok(list) => list
            .items
            .into_iter()
            .filter(|d| {
                d.owner_references()
                    .iter()
                    .any(|o| o.kind == ROLLOUT_KIND && o.name == name)
            })
            .collect(),
        Err(e) => {
            problems.push(
                attempt("list", "Deployment", "deployments.apps", None)
                    .explain(e)
                    .to_string(),
            );
            Vec::new()
        }
    };
    let events = match Api::<KubeEvent>::namespaced(client, namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            let mut events: Vec<KubeEvent> = list
                .items
                .into_iter()
                .filter(|e| {
                    e.involved_object.kind.as_deref() == Some(ROLLOUT_KIND)
                        && e.involved_object.name.as_deref() == Some(name)
                })
                .collect();
            events.sort_by(|a, b| {
                let at = |e: &KubeEvent| {
                    e.last_timestamp
                        .clone()
                        .or_else(|| e.metadata.creation_timestamp.clone())
                };
                at(b).cmp(&at(a))
            });
            events.truncate(30);
            events
        }
        Err(e) => {
            problems.push(
                attempt("list", "Event", "events", None)
                    .explain(e)
                    .to_string(),
            );
            Vec::new()
        }
    };
    let audit = match &dashboard.audit_log {
        Some(path) => match audit_records(path, namespace, name).await {
            Ok(records) => Some(records),
            Err(problem) => {
                problems.push(problem);
                None
            }
        },
        None => None,
    };
    Update::Snapshot(json!({
        "rollout": rollout_json(&rollout),
        "analysisRuns": runs,
        "deployments": deployments,
        "events": events,
        "audit": audit,
        "problems": problems,
    }))
}

/// The audit log's records about one Rollout, oldest first, as they are written.
async fn audit_records(
    path: &std::path::Path,
    namespace: &str,
    name: &str,
) -> Result<Vec<Value>, String> {
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        format!(
            "cannot read the audit log {}: {e}; check --audit-log",
            path.display()
        )
    })?;
    let filter = fife_audit::AuditFilter {
        rollout: Some((namespace.to_owned(), name.to_owned())),
        ..fife_audit::AuditFilter::default()
    };
    let result = fife_audit::query_log(&bytes, &filter);
    Ok(result
        .matches
        .iter()
        .filter_map(|m| serde_json::from_str(m.line).ok())
        .collect())
}

/// One AnalysisRun's page: the run itself, re-sent on every change.
pub(super) async fn analysis_run(
    State(dashboard): State<Arc<Dashboard>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let api: Api<AnalysisRun> = Api::namespaced(dashboard.cluster.client.clone(), &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut seen = false;
    let updates = watcher(api, config)
        .default_backoff()
        .filter_map(move |item| {
            let update = match item {
                Ok(watcher::Event::Apply(run) | watcher::Event::InitApply(run)) => {
                    seen = true;
                    Some(Update::Snapshot(json!({ "analysisRun": run })))
                }
                Ok(watcher::Event::Delete(_)) => {
                    seen = false;
                    Some(vanished_run(&namespace, &name))
                }
                Ok(watcher::Event::InitDone) if !seen => Some(vanished_run(&namespace, &name)),
                Ok(watcher::Event::Init) => {
                    seen = false;
                    None
                }
                Ok(_) => None,
                Err(e) => Some(Update::Problem(watch_problem(
                    "AnalysisRun",
                    "analysisruns.fife.dev",
                    &namespace,
                    e,
                ))),
            };
            std::future::ready(update)
        });
    sse(updates)
}

fn vanished_run(namespace: &str, name: &str) -> Update {
    Update::Problem(format!(
        "AnalysisRun \"{name}\" does not exist in namespace \"{namespace}\" (Rollouts keep only their recent runs); the page updates if it appears"
    ))
}
