//! `fife dashboard`: a local web server that shows Rollouts and their analyses live, with the
//! user's kubeconfig (their RBAC, nothing more). Read-only unless started with
//! `--allow-actions`; then its buttons go through `ops::action::send`, the same code as
//! `fife promote/abort/retry/pause/resume`.
//!
//! ```text
//!  browser ──GET /, /rollouts/NS/NAME, /analysisruns/NS/NAME──▶ one HTML shell + assets
//!          ◀──server-sent events (snapshot | problem)──────── live::* (kube watches)
//!          ──POST /api/rollouts/NS/NAME/ACTION─────────────▶ ops::action::send
//! ```
//!
//! Every page's data arrives as server-sent events driven by kube watches: the browser never
//! polls. The pages render the objects' JSON as the API server returns it, so fields added
//! to the API later show up without a change here.

mod live;
mod samples;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use fife_api::ManualAction;
use serde::Deserialize;
use serde_json::json;

use crate::ops::action::{self, Request};
use crate::ops::block_on;
use crate::ops::connect::{Cluster, ClusterArgs};
use crate::ops::error::OpsError;

/// The header every action request must carry. A cross-site form cannot set it, and a
/// cross-site script that tries needs a CORS preflight this server never grants.
pub const ACTION_HEADER: &str = "x-fife-dashboard";

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Address to serve on; keep it on loopback unless you mean to share your credentials.
    #[arg(long, default_value = "127.0.0.1:3100", value_name = "ADDR")]
    listen: SocketAddr,
    /// Show Rollouts in every namespace (needs cluster-wide list and watch).
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
    /// Show promote / abort / retry / pause / resume buttons that patch the Rollout as you.
    #[arg(long)]
    allow_actions: bool,
    /// An audit log (JSON Lines) whose records for each Rollout are shown on its page.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// What every handler shares.
#[derive(Debug)]
struct Dashboard {
    cluster: Cluster,
    all_namespaces: bool,
    allow_actions: bool,
    audit_log: Option<PathBuf>,
}

pub fn run(args: DashboardArgs) -> ExitCode {
    block_on(async move {
        let cluster = args.cluster.connect().await?;
        let dashboard = Arc::new(Dashboard {
            cluster,
            all_namespaces: args.all_namespaces,
            allow_actions: args.allow_actions,
            audit_log: args.audit_log,
        });
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| OpsError::Api {
                verb: "listen",
                resource: "dashboard",
                namespace: dashboard.cluster.namespace.clone(),
                message: format!("cannot listen on {}: {e}; pass --listen ADDR", args.listen),
            })?;
        let address = listener.local_addr()?;
        let scope = if dashboard.all_namespaces {
            "all namespaces".to_owned()
        } else {
            format!("namespace \"{}\"", dashboard.cluster.namespace)
        };
        let mode = if dashboard.allow_actions {
            "actions allowed"
        } else {
            "read-only"
        };
        println!("Fife dashboard for {scope} ({mode}): http://{address}/");
        axum::serve(listener, router(dashboard))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(shell))
        .route("/rollouts/{namespace}/{name}", get(shell))
        .route("/analysisruns/{namespace}/{name}", get(shell))
        .route("/assets/{file}", get(asset))
        .route("/api/config", get(config))
        .route("/api/stream/rollouts", get(live::rollouts))
        .route(
            "/api/stream/rollouts/{namespace}/{name}",
            get(live::rollout),
        )
        .route(
            "/api/stream/analysisruns/{namespace}/{name}",
            get(live::analysis_run),
        )
        .route(
            "/api/analysisruns/{namespace}/{name}/samples/{metric}",
            get(samples::samples),
        )
        .route(
            "/api/rollouts/{namespace}/{name}/{action}",
            post(rollout_action),
        )
        .with_state(dashboard)
}

const SHELL: &str = include_str!("assets/index.html");

async fn shell() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], SHELL).into_response()
}

/// The files the pages load, all compiled into the binary: the dashboard works offline.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/uPlot.min.css"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type)], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

async fn config(State(dashboard): State<Arc<Dashboard>>) -> Response {
    Json(json!({
        "allowActions": dashboard.allow_actions,
        "allNamespaces": dashboard.all_namespaces,
        "namespace": dashboard.cluster.namespace,
        "auditLog": dashboard.audit_log.as_ref().map(|p| p.display().to_string()),
    }))
    .into_response()
}

/// The action names in the URL; the same words as the CLI's subcommands.
pub fn parse_action(text: &str) -> Option<Request> {
    Some(match text {
        "promote" => Request::Manual(ManualAction::Promote),
        "promote-full" => Request::Manual(ManualAction::PromoteFull),
        "abort" => Request::Manual(ManualAction::Abort),
        "retry" => Request::Manual(ManualAction::Retry),
        "pause" => Request::Pause,
        "resume" => Request::Resume,
        _ => return None,
    })
}

#[derive(Debug, Default, Deserialize)]
struct ActionBody {
    reason: Option<String>,
}

async fn rollout_action(
    State(dashboard): State<Arc<Dashboard>>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Option<Json<ActionBody>>,
) -> Response {
    let refuse = |status: StatusCode, message: String| {
        (status, Json(json!({ "error": message }))).into_response()
    };
    if !dashboard.allow_actions {
        return refuse(
            StatusCode::FORBIDDEN,
            "this dashboard is read-only; start it with `fife dashboard --allow-actions` to promote, abort, retry, pause or resume".into(),
        );
    }
    if !headers.contains_key(ACTION_HEADER) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "action requests must carry the {ACTION_HEADER} header (the dashboard's own buttons send it)"
            ),
        );
    }
    let Some(request) = parse_action(&action) else {
        return refuse(
            StatusCode::NOT_FOUND,
            format!(
                "unknown action \"{action}\"; use promote, promote-full, abort, retry, pause or resume"
            ),
        );
    };
    let mut cluster = dashboard.cluster.clone();
    cluster.namespace = namespace;
    let reason = body.and_then(|Json(b)| b.reason).filter(|r| !r.is_empty());
    match action::send(&cluster, &name, request, reason.as_deref()).await {
        Ok(sent) => Json(json!({
            "message": sent.sentence(),
            "id": sent.id,
            "requestedBy": sent.requested_by,
        }))
        .into_response(),
        Err(e) => refuse(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_the_cli_subcommands() {
        assert_eq!(
            parse_action("promote"),
            Some(Request::Manual(ManualAction::Promote))
        );
        assert_eq!(
            parse_action("promote-full"),
            Some(Request::Manual(ManualAction::PromoteFull))
        );
        assert_eq!(parse_action("resume"), Some(Request::Resume));
        assert_eq!(parse_action("delete"), None);
    }

    #[test]
    fn every_asset_the_shell_names_is_served() {
        for (name, _, body) in ASSETS {
            assert!(SHELL.contains(&format!("/assets/{name}")), "{name} unused");
            assert!(!body.is_empty());
        }
        assert!(
            !SHELL.contains("http://") && !SHELL.contains("https://"),
            "the page must load nothing from the network"
        );
    }
}
