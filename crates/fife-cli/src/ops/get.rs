//! `fife get rollout NAME [--watch]` and `fife list rollouts`: read the Rollout, its
//! Deployments and its current AnalysisRun, and print them with [`super::render`].
//! `--watch` follows watch streams (never polling) and redraws when the picture changes.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use fife_api::labels::rollout_selector;
use fife_api::{AnalysisRun, Rollout};
use futures::{StreamExt as _, stream};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};

use super::connect::{Cluster, ClusterArgs};
use super::error::{Attempt, OpsError};
use super::render::{Palette, rollout_table, rollout_tree};
use super::{ROLLOUT_KIND, ROLLOUTS, block_on, palette};

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(subcommand)]
    what: GetWhat,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Subcommand)]
enum GetWhat {
    /// A Rollout as a tree: phase, step, weights, images, Deployments, analysis.
    Rollout {
        name: String,
        /// Keep following the Rollout and redraw when it changes (Ctrl-C to stop).
        #[arg(short, long)]
        watch: bool,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(subcommand)]
    what: ListWhat,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Debug, Subcommand)]
enum ListWhat {
    /// The Rollouts of a namespace as a table.
    Rollouts {
        /// Every namespace instead of one.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
}

pub fn run_get(args: GetArgs) -> ExitCode {
    let GetWhat::Rollout { name, watch } = args.what;
    block_on(async move {
        let cluster = args.cluster.connect().await?;
        if watch {
            watch_rollout(&cluster, &name).await?;
        } else {
            let view = fetch(&cluster, &name).await?;
            print!("{}", view.render(palette()));
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_list(args: ListArgs) -> ExitCode {
    let ListWhat::Rollouts { all_namespaces } = args.what;
    block_on(async move {
        let cluster = args.cluster.connect().await?;
        let api: Api<Rollout> = if all_namespaces {
            Api::all(cluster.client.clone())
        } else {
            Api::namespaced(cluster.client.clone(), &cluster.namespace)
        };
        let attempt = Attempt {
            verb: "list",
            kind: ROLLOUT_KIND,
            resource: ROLLOUTS,
            name: None,
            namespace: &cluster.namespace,
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| attempt.explain(e))?;
        if list.items.is_empty() {
            eprintln!("No Rollouts in namespace \"{}\".", cluster.namespace);
            return Ok(ExitCode::SUCCESS);
        }
        print!("{}", rollout_table(&list.items, now_seconds(), palette()));
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What one picture of a Rollout is made of.
struct View {
    rollout: Rollout,
    deployments: Vec<Deployment>,
    analysis_run: Option<AnalysisRun>,
}

impl View {
    fn render(&self, palette: Palette) -> String {
        rollout_tree(
            &self.rollout,
            &self.deployments,
            self.analysis_run.as_ref(),
            palette,
        )
    }
}

/// The AnalysisRun to show: the current step's, else the background one.
fn shown_run_name(rollout: &Rollout) -> Option<&str> {
    let status = rollout.status.as_ref()?;
    status
        .current_analysis_run
        .as_deref()
        .or(status.background_analysis_run.as_deref())
}

/// Reads the Rollout; missing children are shown as missing, not as errors.
pub(crate) async fn get_rollout(cluster: &Cluster, name: &str) -> Result<Rollout, OpsError> {
    let api: Api<Rollout> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let attempt = Attempt {
        verb: "get",
        kind: ROLLOUT_KIND,
        resource: ROLLOUTS,
        name: Some(name),
        namespace: &cluster.namespace,
    };
    api.get(name).await.map_err(|e| attempt.explain(e))
}

async fn fetch(cluster: &Cluster, name: &str) -> Result<View, OpsError> {
    let rollout = get_rollout(cluster, name).await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let selector = rollout_selector(name);
    let deployments = deployments
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            Attempt {
                verb: "list",
                kind: "Deployment",
                resource: "deployments.apps",
                name: None,
                namespace: &cluster.namespace,
            }
            .explain(e)
        })?
        .items;
    let analysis_run = match shown_run_name(&rollout) {
        Some(run) => {
            let runs: Api<AnalysisRun> =
                Api::namespaced(cluster.client.clone(), &cluster.namespace);
            runs.get_opt(run).await.map_err(|e| {
                Attempt {
                    verb: "get",
                    kind: "AnalysisRun",
                    resource: "analysisruns.fife.dev",
                    name: Some(run),
                    namespace: &cluster.namespace,
                }
                .explain(e)
            })?
        }
        None => None,
    };
    Ok(View {
        rollout,
        deployments,
        analysis_run,
    })
}

/// Follows three watch streams (the Rollout, its Deployments, its AnalysisRuns) into local
/// caches and redraws from them whenever an event changes the picture.
async fn watch_rollout(cluster: &Cluster, name: &str) -> Result<(), OpsError> {
    // A first read turns "not found", "CRD missing" and "forbidden" into their messages
    // before the watchers, which retry forever, would hide them.
    get_rollout(cluster, name).await?;

    let client = &cluster.client;
    let namespace = &cluster.namespace;
    let selector = rollout_selector(name);
    let (rollouts, rollouts_writer) = reflector::store::<Rollout>();
    let (deployments, deployments_writer) = reflector::store::<Deployment>();
    let (runs, runs_writer) = reflector::store::<AnalysisRun>();

    let rollout_events = reflector::reflector(
        rollouts_writer,
        watcher(
            Api::<Rollout>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ),
    )
    .default_backoff()
    .map(|e| e.map(|_| ()));
    let deployment_events = reflector::reflector(
        deployments_writer,
        watcher(
            Api::<Deployment>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(&selector),
        ),
    )
    .default_backoff()
    .map(|e| e.map(|_| ()));
    let run_events = reflector::reflector(
        runs_writer,
        watcher(
            Api::<AnalysisRun>::namespaced(client.clone(), namespace),
            watcher::Config::default().labels(&selector),
        ),
    )
    .default_backoff()
    .map(|e| e.map(|_| ()));
    let mut events = stream::select_all([
        rollout_events.boxed(),
        deployment_events.boxed(),
        run_events.boxed(),
    ]);

    let terminal = std::io::stdout().is_terminal();
    let palette = palette();
    let mut shown = String::new();
    while let Some(event) = events.next().await {
        if let Err(e) = event {
            // The watcher backs off and resumes by itself; say so once per failure.
            eprintln!("watch interrupted, resuming: {e}");
            continue;
        }
        let picture = picture(name, namespace, &rollouts, &deployments, &runs, palette);
        if picture == shown {
            continue;
        }
        let mut stdout = std::io::stdout().lock();
        if terminal {
            // Home and clear, then draw: one frame per change, in place.
            write!(stdout, "\x1b[H\x1b[2J{picture}")?;
        } else if shown.is_empty() {
            write!(stdout, "{picture}")?;
        } else {
            write!(stdout, "\n{picture}")?;
        }
        stdout.flush()?;
        shown = picture;
    }
    Err(OpsError::WatchFailed {
        name: name.to_owned(),
        namespace: namespace.clone(),
        detail: "the API server closed every watch".into(),
    })
}

fn picture(
    name: &str,
    namespace: &str,
    rollouts: &Store<Rollout>,
    deployments: &Store<Deployment>,
    runs: &Store<AnalysisRun>,
    palette: Palette,
) -> String {
    let Some(rollout) = rollouts.get(&ObjectRef::new(name).within(namespace)) else {
        return format!(
            "Rollout \"{name}\" is gone from namespace \"{namespace}\" (deleted?); waiting for it to come back.\n"
        );
    };
    let deployments: Vec<Deployment> = deployments.state().iter().map(|d| (**d).clone()).collect();
    let analysis_run = shown_run_name(&rollout)
        .and_then(|run| runs.get(&ObjectRef::new(run).within(namespace)))
        .map(|run| (*run).clone());
    View {
        rollout: (*rollout).clone(),
        deployments,
        analysis_run,
    }
    .render(palette)
}
