//! The webhook notifier against a real local HTTP receiver: every record exactly once across
//! an outage, drop-oldest when the queue is full, Slack-compatible bodies.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use fife_audit::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// What the receiver saw: the seq header and the body of every request, duplicates included.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(u64, String)>>>);

impl Received {
    fn seqs(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|(s, _)| *s).collect()
    }
}

async fn receive(State(rx): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
    let seq = headers["x-fife-audit-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    rx.0.lock().unwrap().push((seq, body));
    StatusCode::NO_CONTENT
}

/// A receiver on `listener`; sending on the returned channel shuts it down gracefully and
/// the returned handle finishes when the port is released.
fn serve(
    listener: TcpListener,
    rx: Received,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let app = Router::new().route("/hook", post(receive)).with_state(rx);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (stop, task)
}

async fn wait_for(rx: &Received, n: usize) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while rx.seqs().len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("receiver got the records in time");
}

fn sealed_records(n: u64) -> Vec<SealedRecord> {
    let mut head = ChainHead::genesis();
    (0..n)
        .map(|i| {
            let s = seal(mk_entry(i), &head, Some(&key()));
            head = ChainHead::after(s.record.seq, &s.line);
            s
        })
        .collect()
}

fn config(addr: SocketAddr) -> WebhookConfig {
    WebhookConfig {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        ..WebhookConfig::new(format!("http://{addr}/hook"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_arrives_exactly_once_across_an_outage() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rx = Received::default();
    let (stop, server) = serve(listener, rx.clone());
    let notifier = WebhookNotifier::spawn(config(addr)).unwrap();
    let records = sealed_records(12);

    for r in &records[..4] {
        notifier.deliver(r).unwrap();
    }
    wait_for(&rx, 4).await;

    // Outage: the receiver goes away and its port refuses connections for two seconds.
    stop.send(()).unwrap();
    server.await.unwrap();
    for r in &records[4..10] {
        notifier.deliver(r).unwrap(); // returns at once although nobody is listening
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rx.seqs().len(),
        4,
        "nothing can arrive while the receiver is down"
    );
    assert!(
        notifier.stats().retries > 0,
        "the outage was felt: {:?}",
        notifier.stats()
    );
    assert_eq!(notifier.stats().pending, 6);

    let listener = TcpListener::bind(addr).await.unwrap();
    let (_stop, _server) = serve(listener, rx.clone());
    for r in &records[10..] {
        notifier.deliver(r).unwrap();
    }
    assert!(
        notifier.flush(Duration::from_secs(5)).await,
        "queue drained"
    );

    assert_eq!(
        rx.seqs(),
        (1..=12).collect::<Vec<u64>>(),
        "each once, in order"
    );
    let bodies: Vec<String> =
        rx.0.lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect();
    let sent: Vec<String> = records.iter().map(|r| r.line.clone()).collect();
    assert_eq!(
        bodies, sent,
        "the body is the record's line, so the receiver can check it"
    );
    let stats = notifier.stats();
    assert_eq!((stats.queued, stats.delivered, stats.dropped), (12, 12, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_drops_the_oldest_and_counts_them() {
    // Reserve a port, then free it so nothing listens there yet.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let notifier = WebhookNotifier::spawn(WebhookConfig {
        queue_capacity: 3,
        ..config(addr)
    })
    .unwrap();
    for r in &sealed_records(5) {
        notifier.deliver(r).unwrap();
    }
    let stats = notifier.stats();
    assert_eq!((stats.dropped, stats.pending), (2, 3));

    let rx = Received::default();
    let (_stop, _server) = serve(TcpListener::bind(addr).await.unwrap(), rx.clone());
    assert!(notifier.flush(Duration::from_secs(5)).await);
    assert_eq!(rx.seqs(), vec![3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_format_posts_a_text_message() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rx = Received::default();
    let (_stop, _server) = serve(listener, rx.clone());
    let notifier = WebhookNotifier::spawn(WebhookConfig {
        format: WebhookFormat::Slack,
        ..config(addr)
    })
    .unwrap();
    let record = &sealed_records(6)[5]; // a Promoted record
    notifier.deliver(record).unwrap();
    assert!(notifier.flush(Duration::from_secs(5)).await);
    let body: serde_json::Value = serde_json::from_str(&rx.0.lock().unwrap()[0].1).unwrap();
    let text = body["text"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert!(text.contains("shop/checkout-api: Promoted"), "{text}");
    assert!(text.contains("audit seq 6"), "{text}");
}

#[test]
fn notifier_needs_a_runtime_and_a_valid_url() {
    let err = WebhookNotifier::spawn(WebhookConfig::new("http://127.0.0.1:9/")).unwrap_err();
    assert!(matches!(err, WebhookError::NoRuntime), "{err}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let err = WebhookNotifier::spawn(WebhookConfig::new("ftp://x/")).unwrap_err();
    assert!(err.to_string().contains("http or https"), "{err}");
}

/// A receiver that does what docs/audit.md tells one to: verify each delivery's signature
/// and timestamp, then refuse a seq it already stored.
#[derive(Clone)]
struct Verifier {
    keys: Arc<KeyRing>,
    /// Accepted deliveries: (headers, body).
    stored: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

async fn verify_and_store(
    State(v): State<Verifier>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|h| h.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(why) = verify_delivery(
        header("x-fife-signature"),
        header("x-fife-key-id"),
        body.as_bytes(),
        &v.keys,
        now,
        300,
    ) {
        v.refused.lock().unwrap().push(why.to_string());
        return StatusCode::UNAUTHORIZED;
    }
    let seq = header("x-fife-audit-seq").unwrap_or_default().to_owned();
    let mut stored = v.stored.lock().unwrap();
    if stored
        .iter()
        .any(|(h, _)| h["x-fife-audit-seq"] == seq.as_str())
    {
        v.refused
            .lock()
            .unwrap()
            .push(format!("seq {seq} already stored"));
        return StatusCode::CONFLICT;
    }
    stored.push((headers.clone(), body));
    StatusCode::NO_CONTENT
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_verifies_every_signed_delivery_and_refuses_tampering_and_replays() {
    let key = SigningKey::new(b"webhook-key-0123456789abcdef".to_vec())
        .unwrap()
        .with_id("2026-03");
    let verifier = Verifier {
        keys: Arc::new(KeyRing::from_keys(vec![key.clone()]).unwrap()),
        stored: Arc::default(),
        refused: Arc::default(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(verify_and_store))
        .with_state(verifier.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let notifier = WebhookNotifier::spawn(WebhookConfig {
        signing_key: Some(key.clone()),
        ..config(addr)
    })
    .unwrap();
    let records = sealed_records(4);
    for record in &records {
        notifier.deliver(record).unwrap();
    }
    assert!(notifier.flush(Duration::from_secs(5)).await);
    let stored = verifier.stored.lock().unwrap().clone();
    assert_eq!(
        stored.len(),
        4,
        "refused: {:?}",
        verifier.refused.lock().unwrap()
    );
    assert!(verifier.refused.lock().unwrap().is_empty());
    for (headers, _) in &stored {
        assert_eq!(headers["x-fife-key-id"], "2026-03");
    }
    // Each delivery names the log's head when it was sent: at least its own record.
    let (last_headers, _) = &stored[3];
    assert_eq!(
        last_headers["x-fife-audit-head"].to_str().unwrap(),
        format!("4:{}", records[3].record.hash)
    );

    // Sent again by someone who captured them: a tampered body, and an exact replay.
    let client = reqwest::Client::new();
    let resend = |headers: &HeaderMap, body: String| {
        let mut request = client.post(format!("http://{addr}/hook")).body(body);
        for name in ["x-fife-signature", "x-fife-key-id", "x-fife-audit-seq"] {
            request = request.header(name, headers[name].to_str().unwrap());
        }
        request.send()
    };
    let (headers, body) = &stored[1];
    let tampered = body.replace("\"seq\":2", "\"seq\":20");
    assert_ne!(&tampered, body);
    let answer = resend(headers, tampered).await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::UNAUTHORIZED);
    let answer = resend(headers, body.clone()).await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::CONFLICT);
    let refused = verifier.refused.lock().unwrap().clone();
    assert!(
        refused[0].contains("does not match the body"),
        "{refused:?}"
    );
    assert_eq!(refused[1], "seq 2 already stored");

    // A replay after the tolerance is refused by its timestamp alone.
    let signature = headers["x-fife-signature"].to_str().unwrap();
    let t: i64 = signature[2..signature.find(',').unwrap()].parse().unwrap();
    let ring = KeyRing::from_keys(vec![key.clone()]).unwrap();
    let later = verify_delivery(
        Some(signature),
        Some("2026-03"),
        body.as_bytes(),
        &ring,
        t + 301,
        300,
    );
    assert!(
        matches!(later, Err(DeliveryRejection::OutsideTolerance { .. })),
        "{later:?}"
    );
    assert_eq!(
        verify_delivery(
            Some(signature),
            Some("2026-03"),
            body.as_bytes(),
            &ring,
            t + 299,
            300
        ),
        Ok(())
    );
    // An unsigned delivery and an unknown key are refused.
    assert_eq!(
        verify_delivery(None, None, body.as_bytes(), &ring, t, 300),
        Err(DeliveryRejection::Unsigned)
    );
    assert!(matches!(
        verify_delivery(
            Some(signature),
            Some("2025-01"),
            body.as_bytes(),
            &ring,
            t,
            300
        ),
        Err(DeliveryRejection::UnknownKey(_))
    ));
}
