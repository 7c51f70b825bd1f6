//! `fife dashboard` driven in headless Chromium (Debian's `chromium` and `chromium-driver`,
//! installed by scripts/install-deps.sh) over WebDriver, against the Kubernetes API test
//! server with Rollouts and an AnalysisRun whose status the test writes itself: the list
//! follows a phase change without a reload; a vanished Rollout and a forbidden namespace
//! (against a stub that answers 403, as the test server does not authorize) are reported on
//! the page; the promote button writes the same `spec.manualAction` as `fife promote`,
//! naming the user; the analysis page draws the measurements with the interval as a band,
//! and both sides' distributions from a stand-in Prometheus. Each page's screenshot is
//! saved under target/dashboard-screenshots/.

use fife_test_apiserver::authn::ADMIN_USER;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::harness;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const ROLLOUT: &str = "\
apiVersion: fife.dev/v1alpha1
kind: Rollout
metadata:
  name: checkout
spec:
  replicas: 4
  selector: { matchLabels: { app: checkout } }
  template:
    metadata: { labels: { app: checkout } }
    spec:
      containers:
        - name: app
          image: registry.example/checkout@sha256:2222222222222222222222222222222222222222222222222222222222222222
  strategy:
    canary:
      steps:
        - setWeight: 10
        - analysis: { templates: [ { templateName: latency } ] }
        - setWeight: 50
        - pause: {}
        - setWeight: 100
";

/// An AnalysisRun with one comparison metric read from the Prometheus at `address`.
fn analysis_run(address: &str) -> String {
    format!(
        "\
apiVersion: fife.dev/v1alpha1
kind: AnalysisRun
metadata:
  name: checkout-7f9c-2-latency
  labels: {{ fife.dev/rollout: checkout }}
spec:
  rollout: {{ name: checkout, canaryRevision: 7f9c, stableRevision: 5d1a, stepIndex: 1 }}
  metrics:
    - name: latency-p99
      interval: 1m
      compare: {{}}
      provider:
        prometheus:
          address: {address}
          query: histogram_quantile(0.99, rate(http_request_duration_seconds_bucket{{role=\"{{{{role}}}}\"}}[1m]))
          range: {{ lookback: 5m, step: 15s }}
"
    )
}

/// A Prometheus stand-in for the range queries the samples endpoint makes: 20 points per
/// side, the canary's 0.02 above the baseline's.
async fn fake_prometheus() -> String {
    async fn query_range(uri: axum::http::Uri, body: String) -> axum::Json<Value> {
        let canary = uri.query().unwrap_or_default().contains("canary") || body.contains("canary");
        let offset = if canary { 0.02 } else { 0.0 };
        let values: Vec<Value> = (0..20)
            .map(|i| {
                json!([
                    1_772_546_000 + 15 * i,
                    format!("{}", 0.1 + 0.001 * f64::from(i) + offset)
                ])
            })
            .collect();
        axum::Json(
            json!({ "status": "success", "data": { "resultType": "matrix", "result": [
            { "metric": { "role": if canary { "canary" } else { "baseline" } }, "values": values }
        ] } }),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/api/v1/query_range", axum::routing::any(query_range));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// Measurements a minute apart whose interval tightens around a small shift.
fn analysis_status() -> Value {
    let measurements: Vec<Value> = (0..6)
        .map(|i| {
            let half_width = 0.08 / f64::from(i + 1);
            let shift = 0.01 + 0.002 * f64::from(i);
            json!({
                "phase": "Successful",
                "startedAt": format!("2026-03-03T14:{:02}:00Z", 10 + i),
                "finishedAt": format!("2026-03-03T14:{:02}:05Z", 10 + i),
                "judgement": {
                    "nCanary": 60 * (i + 1), "nBaseline": 60 * (i + 1),
                    "pValue": 0.2 + 0.1 * f64::from(i), "method": "exact",
                    "shift": shift,
                    "ci": { "lower": shift - half_width, "upper": shift + half_width, "level": 0.95 },
                    "cles": 0.52, "classification": "Pass",
                    "reason": "the canary is not slower than allowed"
                }
            })
        })
        .collect();
    json!({
        "phase": "Running",
        "startedAt": "2026-03-03T14:09:00Z",
        "metricResults": [{
            "name": "latency-p99", "phase": "Running", "count": 6, "successful": 6,
            "measurements": measurements
        }]
    })
}

/// The harness's cluster with Fife's CRDs and the Rollout `checkout` applied.
struct Cluster(harness::Cluster);

impl std::ops::Deref for Cluster {
    type Target = harness::Cluster;
    fn deref(&self) -> &harness::Cluster {
        &self.0
    }
}

impl Cluster {
    async fn start() -> Self {
        let cluster = Self(harness::Cluster::start().await);
        cluster.apply(ROLLOUT).await;
        cluster
    }

    async fn set_status(&self, resource: &str, name: &str, status: Value) {
        let patch = json!({ "status": status }).to_string();
        self.kubectl(&[
            "patch",
            resource,
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ])
        .await;
    }

    async fn get(&self, resource: &str, name: &str) -> Value {
        serde_json::from_str(&self.kubectl(&["get", resource, name, "-o", "json"]).await).unwrap()
    }

    /// Starts `fife dashboard ARGS` on a free port; returns the process and its URL.
    async fn dashboard(&self, args: &[&str]) -> (tokio::process::Child, String) {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fife"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["dashboard", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the dashboard prints its URL")
            .unwrap()
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        (child, url)
    }
}

/// An audit log with two records about default/checkout and one about another Rollout.
fn write_audit_log(path: &Path) {
    use fife_audit::{Actor, AuditAction, AuditEntry, ChainHead, RolloutRef, seal};
    let record = |name: &str, action: AuditAction, actor: Actor, minute: u32| {
        let time =
            chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 3, 14, minute, 0).unwrap();
        let mut entry = AuditEntry::new(time, action, actor, format!("{action} of {name}"));
        entry.rollout = Some(RolloutRef {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        });
        entry
    };
    let entries = [
        record(
            "checkout",
            AuditAction::AnalysisStarted,
            Actor::controller("fife"),
            10,
        ),
        record("cart", AuditAction::Aborted, Actor::controller("fife"), 11),
        record(
            "checkout",
            AuditAction::ManualPromote,
            Actor::user("ann@example.com"),
            12,
        ),
    ];
    let mut head = ChainHead::genesis();
    let mut log = String::new();
    for entry in entries {
        let sealed = seal(entry, &head, None);
        head = ChainHead::after(sealed.record.seq, &sealed.line);
        log.push_str(&sealed.line);
        log.push('\n');
    }
    std::fs::write(path, log).unwrap();
}

fn screenshot_dir() -> PathBuf {
    let dir = harness::workspace()
        .join("target")
        .join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small WebDriver client: just the commands these tests use.
struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver runs (scripts/install-deps.sh installs chromium-driver)");
        let http = reqwest::Client::new();
        let server = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1750",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut session = None;
        for _ in 0..100 {
            if let Ok(response) = http
                .post(format!("{server}/session"))
                .json(&capabilities)
                .send()
                .await
            {
                let body: Value = response.json().await.unwrap();
                let id = body["value"]["sessionId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("chromedriver refused the session: {body}"));
                session = Some(id.to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let session = session.expect("chromedriver answers within 10 s");
        Self {
            http,
            base: format!("{server}/session/{session}"),
            _driver: driver,
            _profile: profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        let request = if method == reqwest::Method::GET {
            request
        } else {
            request.json(&body)
        };
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        response["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Evaluates `expression` until it is truthy; panics with `what` after 15 s.
    async fn wait_for(&self, what: &str, expression: &str) -> Value {
        for _ in 0..150 {
            let value = self
                .script(&format!(
                    "try {{ return ({expression}); }} catch (e) {{ return null; }}"
                ))
                .await;
            if !(value.is_null() || value == json!(false) || value == json!("")) {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.script("return document.body.innerText").await;
        panic!("timed out waiting for {what}; the page shows:\n{page}");
    }

    async fn screenshot(&self, name: &str) {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = decode_base64(png.as_str().expect("a screenshot"));
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(screenshot_dir().join(format!("{name}.png")), bytes).unwrap();
    }
}

/// Standard base64 (the encoding WebDriver uses for screenshots).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.trim_end_matches('=').as_bytes().chunks(4) {
        let mut word = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            word |= value(c) << (18 - 6 * i);
        }
        let bytes = word.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[tokio::test]
async fn the_pages_follow_the_cluster_and_the_promote_button_acts_as_the_cli_does() {
    let cluster = Cluster::start().await;
    cluster.apply(&analysis_run(&fake_prometheus().await)).await;
    cluster
        .set_status(
            "rollouts.fife.dev",
            "checkout",
            json!({
                "phase": "Progressing", "message": "analysis latency running",
                "currentStepIndex": 1, "replicas": 4, "readyReplicas": 4,
                "weights": { "canary": 10, "baseline": 10, "stable": 80 },
                "stableRevision": "5d1a", "canaryRevision": "7f9c",
                "currentAnalysisRun": "checkout-7f9c-2-latency"
            }),
        )
        .await;
    cluster
        .set_status(
            "analysisruns.fife.dev",
            "checkout-7f9c-2-latency",
            analysis_status(),
        )
        .await;
    let audit_log = cluster.dir.path().join("audit.jsonl");
    write_audit_log(&audit_log);
    let (_dashboard, url) = cluster
        .dashboard(&[
            "--allow-actions",
            "--audit-log",
            audit_log.to_str().unwrap(),
        ])
        .await;
    let browser = Browser::start().await;

    // The list: a phase change arrives by server-sent event, without a reload.
    browser.goto(&format!("{url}/")).await;
    browser
        .wait_for(
            "the Rollout listed as Progressing",
            "document.querySelector('#rollout-default-checkout').dataset.phase === 'Progressing'",
        )
        .await;
    browser.script("window.notReloaded = true").await;
    cluster
        .set_status(
            "rollouts.fife.dev",
            "checkout",
            json!({ "phase": "Paused", "message": "waiting for promote", "currentStepIndex": 3,
                    "weights": { "canary": 50, "baseline": 50, "stable": 0 } }),
        )
        .await;
    browser
        .wait_for(
            "the list to show the new phase",
            "document.querySelector('#rollout-default-checkout').dataset.phase === 'Paused'",
        )
        .await;
    assert_eq!(
        browser.script("return window.notReloaded === true").await,
        json!(true),
        "the page was reloaded instead of updated"
    );
    let row = browser
        .script("return document.querySelector('#rollout-default-checkout').innerText")
        .await;
    assert!(row.as_str().unwrap().contains("canary 50%"), "row: {row}");
    browser.screenshot("rollouts").await;

    // One Rollout: where it is and what it waits for; the promote button.
    browser
        .goto(&format!("{url}/rollouts/default/checkout"))
        .await;
    let waiting = browser
        .wait_for(
            "the current step",
            "document.querySelector('#steps li.current').innerText",
        )
        .await;
    assert!(
        waiting.as_str().unwrap().contains("waiting for promote"),
        "current step: {waiting}"
    );
    browser
        .wait_for(
            "the analysis run listed",
            "document.querySelector('a[href=\"/analysisruns/default/checkout-7f9c-2-latency\"]')",
        )
        .await;
    let audit = browser
        .wait_for(
            "the audit trail",
            "document.querySelector('#audit tbody') && \
             [...document.querySelectorAll('#audit tbody tr')].map((r) => r.innerText)",
        )
        .await;
    let audit = audit.as_array().unwrap();
    assert_eq!(audit.len(), 2, "only this Rollout's records: {audit:?}");
    assert!(
        audit[0].as_str().unwrap().contains("ManualPromote")
            && audit[0].as_str().unwrap().contains("ann@example.com"),
        "newest first: {audit:?}"
    );
    browser
        .script("document.querySelector('#action-reason').value = 'bake looked fine'")
        .await;
    browser
        .script("document.querySelector('#action-promote').click()")
        .await;
    let result = browser
        .wait_for(
            "the promote request to be answered",
            "document.querySelector('#action-result.ok').innerText",
        )
        .await;
    assert!(
        result
            .as_str()
            .unwrap()
            .contains(&format!("promote requested by {ADMIN_USER}")),
        "result: {result}"
    );
    browser.screenshot("rollout").await;
    let action = cluster.get("rollouts.fife.dev", "checkout").await["spec"]["manualAction"].clone();
    assert_eq!(action["action"], "Promote");
    assert_eq!(action["requestedBy"], ADMIN_USER);
    assert_eq!(action["reason"], "bake looked fine");
    assert!(action["id"].as_str().unwrap().starts_with("promote-"));

    // One AnalysisRun: per metric, the measurements, the shift with its interval as a band.
    browser
        .goto(&format!(
            "{url}/analysisruns/default/checkout-7f9c-2-latency"
        ))
        .await;
    browser
        .wait_for(
            "the shift chart",
            "document.querySelector('#shift-latency-p99 canvas')",
        )
        .await;
    let rows = browser
        .script("return document.querySelectorAll('#metric-latency-p99 table.measurements tbody tr').length")
        .await;
    assert_eq!(rows, json!(6));
    let words = browser
        .script("return document.querySelector('#words-latency-p99').innerText")
        .await;
    let words = words.as_str().unwrap();
    assert!(
        words.contains("360 canary samples") && words.contains("95% interval [0.00667, 0.0333]"),
        "words: {words}"
    );
    // The band fills between the interval's upper and lower series, which hold the
    // measurements' interval; `charts` is the page's list of uPlot instances.
    let band = browser
        .script(
            "const u = charts.find((c) => c.root.parentNode.id === 'shift-latency-p99'); \
             return { bands: u.bands.map((b) => b.series), upper: u.data[2], lower: u.data[3] };",
        )
        .await;
    assert_eq!(band["bands"], json!([[2, 3]]), "{band}");
    let first_width = band["upper"][0].as_f64().unwrap() - band["lower"][0].as_f64().unwrap();
    let last_width = band["upper"][5].as_f64().unwrap() - band["lower"][5].as_f64().unwrap();
    assert!(
        (first_width - 0.16).abs() < 1e-9 && last_width < first_width,
        "{band}"
    );
    // Both distributions, re-read from Prometheus for the last measurement's window.
    let note = browser
        .wait_for(
            "the distributions",
            "document.querySelector('#distributions-latency-p99 canvas') && \
             document.querySelector('#distributions-note-latency-p99').innerText",
        )
        .await;
    assert!(
        note.as_str().unwrap().contains("20 canary, 20 baseline"),
        "note: {note}"
    );
    let ecdf = browser
        .script(
            "const u = charts.find((c) => c.root.parentNode.id === 'distributions-latency-p99'); \
             return u.data.map((d) => [d[0], d[d.length - 1]]);",
        )
        .await;
    // x from the smallest baseline value to the largest canary value; each CDF ends at 1.
    assert_eq!(ecdf.as_array().unwrap().len(), 4, "{ecdf}");
    assert!((ecdf[0][0].as_f64().unwrap() - 0.1).abs() < 1e-9, "{ecdf}");
    assert!(
        (ecdf[0][1].as_f64().unwrap() - 0.139).abs() < 1e-9,
        "{ecdf}"
    );
    assert_eq!(
        ecdf[1][0].as_f64(),
        Some(0.0),
        "no canary sample is as small as the baseline's smallest"
    );
    for side in 1..4 {
        assert_eq!(ecdf[side][1].as_f64(), Some(1.0), "{ecdf}");
    }
    browser.screenshot("analysisrun").await;

    // A Rollout that does not exist is said so on the page.
    browser.goto(&format!("{url}/rollouts/default/gone")).await;
    let problem = browser
        .wait_for(
            "the vanished Rollout reported",
            "!document.querySelector('#problem').hidden && document.querySelector('#problem').innerText",
        )
        .await;
    assert!(
        problem
            .as_str()
            .unwrap()
            .contains("Rollout \"gone\" does not exist"),
        "problem: {problem}"
    );
}

#[tokio::test]
async fn a_read_only_dashboard_refuses_actions() {
    let cluster = Cluster::start().await;
    let (_dashboard, url) = cluster.dashboard(&[]).await;
    let response = reqwest::Client::new()
        .post(format!("{url}/api/rollouts/default/checkout/promote"))
        .header("x-fife-dashboard", "1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("--allow-actions"));
    let rollout = cluster.get("rollouts.fife.dev", "checkout").await;
    assert!(rollout["spec"].get("manualAction").is_none());
}

#[tokio::test]
async fn a_forbidden_namespace_is_said_on_the_page() {
    let api = harness::forbidding_server(
        "rollouts.fife.dev is forbidden: User \"alice\" cannot list resource \"rollouts\" in API group \"fife.dev\" in the namespace \"shop\"",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fife_test_apiserver::kubeconfig_for(&api)).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fife"))
        .env("KUBECONFIG", &kubeconfig)
        .args(["dashboard", "--listen", "127.0.0.1:0", "-n", "shop"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    let url = line.split_whitespace().last().unwrap().to_owned();
    let browser = Browser::start().await;
    browser.goto(&url).await;
    let problem = browser
        .wait_for(
            "the forbidden namespace reported",
            "!document.querySelector('#problem').hidden && document.querySelector('#problem').innerText",
        )
        .await;
    assert!(
        problem
            .as_str()
            .unwrap()
            .contains("User \"alice\" cannot list rollouts.fife.dev in namespace \"shop\""),
        "problem: {problem}"
    );
}

#[tokio::test]
async fn the_audit_report_is_one_offline_page_with_the_verdict_records_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    write_audit_log(&log);
    let report = dir.path().join("report.html");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fife"))
        .args(["audit", "report", "--output", "html", "-o"])
        .arg(&report)
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "the report must load nothing"
    );

    let browser = Browser::start().await;
    browser.goto(&format!("file://{}", report.display())).await;
    let verdict = browser
        .wait_for(
            "the verdict",
            "document.querySelector('.verdict.whole') && document.querySelector('.verdict').innerText",
        )
        .await;
    assert!(
        verdict.as_str().unwrap().contains("3 records, chain whole"),
        "{verdict}"
    );
    let rows = browser
        .wait_for(
            "the records",
            "document.querySelectorAll('#records tbody tr').length",
        )
        .await;
    assert_eq!(rows, json!(3));
    browser
        .wait_for("the chart", "document.querySelector('#chart canvas')")
        .await;
    browser.screenshot("audit-report").await;

    // A record edited after the fact: the page says where the chain breaks.
    let tampered = std::fs::read_to_string(&log)
        .unwrap()
        .replace("ann@example.com", "eve@example.com");
    std::fs::write(&log, tampered).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_fife"))
        .args(["audit", "report", "-o"])
        .arg(&report)
        .arg(&log)
        .status()
        .unwrap();
    assert!(status.success());
    browser.goto(&format!("file://{}", report.display())).await;
    let verdict = browser
        .wait_for(
            "the broken verdict",
            "document.querySelector('.verdict.broken') && document.querySelector('.verdict').innerText",
        )
        .await;
    assert!(
        verdict.as_str().unwrap().contains("chain broken at seq 3"),
        "{verdict}"
    );
}
