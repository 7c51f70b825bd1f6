//! Load check for the API test server: 10,000 Rollouts, each owning a Deployment, held in
//! memory; list and watch latency and resident memory, so later scale tests measure the
//! controller rather than the stand-in. Prints a Markdown table for docs/BENCHMARKS.md.
//!
//! Run: `cargo bench -p fife-test-apiserver --bench apiserver-load` (ROLLOUTS=n to change size).

use fife_test_apiserver::{ApiServer, Config};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// An HTTP client with the administrator's token (anonymous requests are refused).
fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", fife_test_apiserver::ADMIN_TOKEN)
            .parse()
            .unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn timed_get(http: &reqwest::Client, url: &str, runs: usize) -> (Vec<Duration>, usize) {
    let mut samples = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let body = http.get(url).send().await.unwrap().bytes().await.unwrap();
        samples.push(start.elapsed());
        bytes = body.len();
    }
    (samples, bytes)
}

#[tokio::main]
async fn main() {
    let rollouts: usize = std::env::var("ROLLOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rss_start = rss_kib("VmRSS:");
    let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), Config::default())
        .await
        .unwrap();
    let base = server.url();
    let http = admin_client();

    let crd_yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rollout-crd.yaml"
    ))
    .unwrap();
    let crd: Value = serde_saphyr::from_str(&crd_yaml).unwrap();
    let r = http
        .post(format!(
            "{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        ))
        .json(&crd)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let rss_empty = rss_kib("VmRSS:");

    let load_start = Instant::now();
    let creates = futures::stream::iter(0..rollouts)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let name = format!("app-{i:05}");
                let rollout = json!({ "apiVersion": "testkit.fife.dev/v1alpha1", "kind": "Rollout",
                    "metadata": { "name": name, "labels": { "app": name, "team": format!("team-{}", i % 50) } },
                    "spec": { "replicas": 3, "selector": { "matchLabels": { "app": name } },
                        "template": { "metadata": { "labels": { "app": name } },
                            "spec": { "containers": [{ "name": "app", "image": format!("registry.example/{name}@sha256:{:064x}", i) }] } } } });
                let created: Value = http
                    .post(format!("{base}/apis/testkit.fife.dev/v1alpha1/namespaces/default/rollouts"))
                    .json(&rollout)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let deployment = json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": { "name": format!("{name}-stable"),
                        "labels": { "app": name, "fife.dev/role": "stable" },
                        "ownerReferences": [{ "apiVersion": "testkit.fife.dev/v1alpha1", "kind": "Rollout", "name": name,
                            "uid": created["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true }] },
                    "spec": rollout["spec"] });
                let r = http
                    .post(format!("{base}/apis/apps/v1/namespaces/default/deployments"))
                    .json(&deployment)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        })
        .buffer_unordered(16);
    creates.collect::<Vec<()>>().await;
    let load_time = load_start.elapsed();
    // Let the Deployment simulation write every status before measuring.
    tokio::time::sleep(Config::default().rollout_delay + Duration::from_millis(500)).await;
    let rss_loaded = rss_kib("VmRSS:");
    let objects = server.object_count();

    let rollouts_url = format!("{base}/apis/testkit.fife.dev/v1alpha1/namespaces/default/rollouts");
    let deployments_url = format!("{base}/apis/apps/v1/namespaces/default/deployments");
    let (mut list_rollouts, rollout_bytes) = timed_get(&http, &rollouts_url, 10).await;
    let (mut list_deployments, deployment_bytes) = timed_get(&http, &deployments_url, 10).await;
    let (mut selected, _) = timed_get(
        &http,
        &format!("{deployments_url}?labelSelector=app%3Dapp-04242"),
        50,
    )
    .await;
    let (mut get_one, _) =
        timed_get(&http, &format!("{deployments_url}/app-04242-stable"), 200).await;
    let mut paged = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let mut url = format!("{deployments_url}?limit=500");
        loop {
            let page: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
            match page["metadata"]["continue"].as_str() {
                Some(token) => url = format!("{deployments_url}?limit=500&continue={token}"),
                None => break,
            }
        }
        paged.push(start.elapsed());
    }

    // Watch latency: time from a write being acknowledged to its event on an open watch.
    let rv = http
        .get(format!("{deployments_url}?limit=1"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut watch = http
        .get(format!("{deployments_url}?watch=true&resourceVersion={rv}"))
        .send()
        .await
        .unwrap();
    let mut pending = String::new();
    let mut watch_latency = Vec::new();
    for i in 0..200 {
        let name = format!("app-{:05}-stable", (i * 37) % rollouts);
        let start = Instant::now();
        let patched: Value = http
            .patch(format!("{deployments_url}/{name}"))
            .header("content-type", "application/merge-patch+json")
            .body(json!({ "metadata": { "annotations": { "bench": i.to_string() } } }).to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let want = patched["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        'wait: loop {
            while let Some(newline) = pending.find('\n') {
                let line: String = pending.drain(..=newline).collect();
                let event: Value = serde_json::from_str(&line).unwrap();
                if event["object"]["metadata"]["resourceVersion"].as_str() == Some(&want) {
                    break 'wait;
                }
            }
            let chunk = watch.chunk().await.unwrap().expect("watch stream ended");
            pending.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        watch_latency.push(start.elapsed());
    }
    let rss_end = rss_kib("VmRSS:");
    let hwm = rss_kib("VmHWM:");

    // Deleting every Rollout garbage-collects its Deployment.
    let start = Instant::now();
    let r = http.delete(&rollouts_url).send().await.unwrap();
    assert!(r.status().is_success());
    let delete_all = start.elapsed();
    let left = server.object_count();

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| objects held | {objects} ({rollouts} Rollouts + {rollouts} Deployments + namespaces, CRD) |"
    );
    println!(
        "| create {} objects over HTTP, 16 in flight | {:.1} s ({:.0} objects/s) |",
        2 * rollouts,
        load_time.as_secs_f64(),
        (2 * rollouts) as f64 / load_time.as_secs_f64()
    );
    println!(
        "| list {rollouts} Rollouts ({} MiB JSON): median / p95 | {} / {} ms |",
        rollout_bytes / (1 << 20),
        ms(percentile(&mut list_rollouts, 0.5)),
        ms(percentile(&mut list_rollouts, 0.95))
    );
    println!(
        "| list {rollouts} Deployments ({} MiB JSON): median / p95 | {} / {} ms |",
        deployment_bytes / (1 << 20),
        ms(percentile(&mut list_deployments, 0.5)),
        ms(percentile(&mut list_deployments, 0.95))
    );
    println!(
        "| paged list of Deployments, limit=500, pages parsed by the client: median | {} ms |",
        ms(percentile(&mut paged, 0.5))
    );
    println!(
        "| list with labelSelector (1 match of {rollouts}): median / p95 | {} / {} ms |",
        ms(percentile(&mut selected, 0.5)),
        ms(percentile(&mut selected, 0.95))
    );
    println!(
        "| get one Deployment: median / p95 | {} / {} ms |",
        ms(percentile(&mut get_one, 0.5)),
        ms(percentile(&mut get_one, 0.95))
    );
    println!(
        "| patch acknowledged → event on open watch: median / p95 / max | {} / {} / {} ms |",
        ms(percentile(&mut watch_latency, 0.5)),
        ms(percentile(&mut watch_latency, 0.95)),
        ms(percentile(&mut watch_latency, 1.0))
    );
    println!(
        "| delete all {rollouts} Rollouts (deletecollection), cascading to their Deployments | {:.2} s ({left} objects left) |",
        delete_all.as_secs_f64()
    );
    println!(
        "| RSS: process start / empty server / loaded / end (peak) | {} / {} / {} / {} MiB ({} MiB) |",
        rss_start / 1024,
        rss_empty / 1024,
        rss_loaded / 1024,
        rss_end / 1024,
        hwm / 1024
    );
    println!(
        "| RSS growth per Rollout + Deployment pair | {:.1} KiB |",
        (rss_loaded.saturating_sub(rss_empty)) as f64 / rollouts as f64
    );
}
