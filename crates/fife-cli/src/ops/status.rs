//! `fife status NAME [--timeout D]`: wait until the Rollout settles, for CI pipelines.
//! Exit 0 Healthy, 1 Degraded or aborted, 2 timed out, 3 could not check (no such
//! Rollout, CRD missing, forbidden, unreachable). Follows a watch stream, not polling.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use fife_api::{Rollout, RolloutPhase};
use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

use super::connect::ClusterArgs;
use super::error::OpsError;
use super::get::get_rollout;
use super::render::phase_label;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The Rollout's name.
    name: String,
    /// Give up after this long (e.g. `30s`, `10m`) and exit 2; without it, wait forever.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Where a waiting pipeline stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// Degraded or aborted, with the controller's message.
    Degraded(String),
}

/// The settled outcome, if any. A status written for an older generation says nothing
/// about the spec just pushed, so it is not believed; Paused and Progressing wait.
pub fn verdict(rollout: &Rollout) -> Option<Verdict> {
    let status = rollout.status.as_ref()?;
    let current = match (rollout.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) => observed >= generation,
        (Some(_), None) => false,
        (None, _) => true,
    };
    if !current {
        return None;
    }
    let message = status.message.clone().unwrap_or_default();
    if status.abort || status.phase == Some(RolloutPhase::Degraded) {
        return Some(Verdict::Degraded(message));
    }
    (status.phase == Some(RolloutPhase::Healthy)).then_some(Verdict::Healthy)
}

/// One line per change while waiting: `◌ Progressing 2/7: message`.
pub fn progress_line(rollout: &Rollout) -> String {
    let status = rollout.status.clone().unwrap_or_default();
    let mut line = phase_label(status.phase).to_owned();
    if let Some(step) = &status.step_label {
        line.push(' ');
        line.push_str(step);
    }
    if let Some(message) = status.message.as_deref().filter(|m| !m.is_empty()) {
        line.push_str(": ");
        line.push_str(message);
    }
    line
}

const EXIT_DEGRADED: u8 = 1;
const EXIT_TIMEOUT: u8 = 2;
const EXIT_UNCHECKED: u8 = 3;

pub fn run(args: StatusArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_UNCHECKED);
        }
    };
    runtime.block_on(async move {
        let wait = wait_for_verdict(&args);
        let outcome = match args.timeout {
            Some(limit) => match tokio::time::timeout(limit, wait).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    eprintln!(
                        "Rollout \"{}\" did not become Healthy or Degraded within {}.",
                        args.name,
                        humantime::format_duration(limit)
                    );
                    return ExitCode::from(EXIT_TIMEOUT);
                }
            },
            None => wait.await,
        };
        match outcome {
            Ok(Verdict::Healthy) => {
                println!("Rollout \"{}\" is Healthy.", args.name);
                ExitCode::SUCCESS
            }
            Ok(Verdict::Degraded(message)) => {
                println!("Rollout \"{}\" is Degraded: {message}", args.name);
                ExitCode::from(EXIT_DEGRADED)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_UNCHECKED)
            }
        }
    })
}

async fn wait_for_verdict(args: &StatusArgs) -> Result<Verdict, OpsError> {
    let cluster = args.cluster.connect().await?;
    let rollout = get_rollout(&cluster, &args.name).await?;
    let mut last_line = progress_line(&rollout);
    println!("{last_line}");
    if let Some(verdict) = verdict(&rollout) {
        return Ok(verdict);
    }
    let api: Api<Rollout> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", args.name));
    let mut updates = watcher(api, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(update) = updates.next().await {
        let rollout = match update {
            Ok(rollout) => rollout,
            Err(e) => {
                eprintln!("watch interrupted, resuming: {e}");
                continue;
            }
        };
        let line = progress_line(&rollout);
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        if let Some(verdict) = verdict(&rollout) {
            return Ok(verdict);
        }
    }
    Err(OpsError::WatchFailed {
        name: args.name.clone(),
        namespace: cluster.namespace.clone(),
        detail: "the API server closed the watch".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk(generation: i64, status: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "fife.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "generation": generation},
            "spec": {"strategy": {"canary": {}}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn healthy_only_for_the_current_generation() {
        assert_eq!(
            verdict(&mk(3, json!({"observedGeneration": 3, "phase": "Healthy"}))),
            Some(Verdict::Healthy)
        );
        assert_eq!(
            verdict(&mk(4, json!({"observedGeneration": 3, "phase": "Healthy"}))),
            None
        );
        assert_eq!(verdict(&mk(4, json!({"phase": "Healthy"}))), None);
    }

    #[test]
    fn degraded_and_aborted_fail_paused_and_progressing_wait() {
        let degraded = mk(
            1,
            json!({"observedGeneration": 1, "phase": "Degraded", "message": "analysis failed"}),
        );
        assert_eq!(
            verdict(&degraded),
            Some(Verdict::Degraded("analysis failed".into()))
        );
        let aborted = mk(
            1,
            json!({"observedGeneration": 1, "phase": "Progressing", "abort": true}),
        );
        assert!(matches!(verdict(&aborted), Some(Verdict::Degraded(_))));
        assert_eq!(
            verdict(&mk(1, json!({"observedGeneration": 1, "phase": "Paused"}))),
            None
        );
        assert_eq!(
            verdict(&mk(
                1,
                json!({"observedGeneration": 1, "phase": "Progressing"})
            )),
            None
        );
        assert_eq!(verdict(&mk(1, serde_json::Value::Null)), None);
    }

    #[test]
    fn progress_lines_show_phase_step_and_message() {
        let r = mk(
            1,
            json!({"phase": "Paused", "stepLabel": "5/7", "message": "waiting for promote"}),
        );
        assert_eq!(progress_line(&r), "॥ Paused 5/7: waiting for promote");
    }
}
