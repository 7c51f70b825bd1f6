//! The HTTP webhook notifier: tells a receiver (a SIEM, a chat channel) about each record.
//! The file is the source of truth; this is a notification, so it never blocks or fails the
//! caller. Records wait in a bounded queue and are sent one at a time, in order; a record
//! leaves the queue only when the receiver acknowledges it (2xx), so an outage delays
//! delivery but loses nothing unless the queue overflows (then the oldest go, counted).
//!
//! Each request carries the record's seq and hash (`X-Fife-Audit-Seq`, `Idempotency-Key`):
//! a response lost after the receiver stored the record makes the notifier send it again, and
//! the receiver drops the repeat by seq. It also carries the log's head at sending time
//! (`X-Fife-Audit-Head: SEQ:HASH`), so a receiver holds an anchor a cut log cannot reach.
//!
//! With a key, each request is signed the way GitHub and Stripe sign webhooks:
//! `X-Fife-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">` and
//! `X-Fife-Key-Id`. A receiver checks it with [`verify_delivery`]: the signature proves the
//! body came from a holder of the key; the timestamp, within a tolerance, bounds replays,
//! and the seq already seen catches a replay inside the tolerance.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::chain::{SealedRecord, SigningKey};
use crate::keys::{KeyCheck, KeyRing};
use crate::sink::{AuditSink, SinkError};

/// The body a receiver gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// The record's line itself (`application/json`), so a receiver can check its hash.
    #[default]
    Record,
    /// `{"text": "..."}`, which Slack and compatible chat webhooks post as a message.
    Slack,
}

/// How to reach the receiver and how hard to try.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub format: WebhookFormat,
    /// Records held while the receiver is away; past this the oldest are dropped.
    pub queue_capacity: usize,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
    /// Signs each delivery (`X-Fife-Signature`) when set.
    pub signing_key: Option<SigningKey>,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            format: WebhookFormat::Record,
            queue_capacity: 10_000,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            signing_key: None,
        }
    }
}

/// Why a notifier could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the audit webhook needs a Tokio runtime to send from; start it inside one")]
    NoRuntime,
    #[error("audit webhook URL {url:?} is not a valid http(s) URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot build the audit webhook's HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("the audit webhook queue capacity must be at least 1")]
    ZeroCapacity,
}

/// Counters the controller exports as metrics.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub queued: AtomicU64,
    pub delivered: AtomicU64,
    /// Dropped from a full queue, oldest first.
    pub dropped: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Records the receiver refused outright (a 4xx other than 408 and 429).
    pub rejected: AtomicU64,
}

/// A point-in-time copy of [`WebhookStats`] plus the queue length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookStatsSnapshot {
    pub queued: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub retries: u64,
    pub rejected: u64,
    pub pending: usize,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<SealedRecord>>,
    capacity: usize,
    wake: Notify,
    /// Woken when the queue becomes empty, for `flush`.
    drained: Notify,
    stopped: AtomicBool,
    stats: WebhookStats,
    /// The latest record handed to the notifier: the log's head, as `SEQ:HASH`.
    head: Mutex<String>,
}

impl Shared {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<SealedRecord>> {
        // The queue holds plain records; a panic elsewhere cannot leave it half-changed.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The webhook notifier. Dropping it stops the sender; call [`WebhookNotifier::flush`] first
/// to give queued records a chance.
#[derive(Debug)]
pub struct WebhookNotifier {
    shared: Arc<Shared>,
}

impl WebhookNotifier {
    /// Starts the sender on the current Tokio runtime.
    pub fn spawn(config: WebhookConfig) -> Result<Self, WebhookError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebhookError::NoRuntime)?;
        if config.queue_capacity == 0 {
            return Err(WebhookError::ZeroCapacity);
        }
        let url = reqwest::Url::parse(&config.url).map_err(|e| WebhookError::BadUrl {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookError::BadUrl {
                url: config.url.clone(),
                reason: "the scheme must be http or https".into(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            capacity: config.queue_capacity,
            wake: Notify::new(),
            drained: Notify::new(),
            stopped: AtomicBool::new(false),
            stats: WebhookStats::default(),
            head: Mutex::new(String::new()),
        });
        runtime.spawn(send_loop(Arc::clone(&shared), client, url, config));
        Ok(WebhookNotifier { shared })
    }

    pub fn stats(&self) -> WebhookStatsSnapshot {
        let s = &self.shared.stats;
        WebhookStatsSnapshot {
            queued: s.queued.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            pending: self.shared.queue().len(),
        }
    }

    /// Waits until the queue is empty or `timeout` passes; true when it emptied.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let drained = self.shared.drained.notified();
                if self.shared.queue().is_empty() {
                    return;
                }
                drained.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

impl Drop for WebhookNotifier {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.wake.notify_one();
    }
}

impl AuditSink for WebhookNotifier {
    fn name(&self) -> &str {
        "webhook"
    }

    /// Queues the record and returns at once.
    fn deliver(&self, record: &SealedRecord) -> Result<(), SinkError> {
        let mut queue = self.shared.queue();
        if queue.len() >= self.shared.capacity {
            queue.pop_front();
            self.shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(record.clone());
        drop(queue);
        *self.shared.head.lock().unwrap_or_else(|e| e.into_inner()) =
            format!("{}:{}", record.record.seq, record.record.hash);
        self.shared.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        Ok(())
    }
}

/// The body for `record` in `format`.
pub fn webhook_body(record: &SealedRecord, format: WebhookFormat) -> String {
    match format {
        WebhookFormat::Record => record.line.clone(),
        WebhookFormat::Slack => {
            let r = &record.record;
            let rollout = r.rollout.as_ref().map_or_else(
                || "audit log".to_string(),
                |r| format!("{}/{}", r.namespace, r.name),
            );
            let text = format!(
                "Fife {rollout}: {} by {} (audit seq {}): {}",
                r.action, r.actor.name, r.seq, r.reason
            );
            serde_json::json!({ "text": text }).to_string()
        }
    }
}

enum Outcome {
    Acknowledged,
    Rejected(String),
    Retry(String),
}

/// The header carrying a delivery's signature.
pub const SIGNATURE_HEADER: &str = "X-Fife-Signature";
/// The header naming the key that signed a delivery.
pub const KEY_ID_HEADER: &str = "X-Fife-Key-Id";
/// The header carrying the log's head when the delivery was sent.
pub const HEAD_HEADER: &str = "X-Fife-Audit-Head";

/// `X-Fife-Signature`'s value for `body` sent at `unix_seconds`: `t=<t>,v1=<hmac hex>`,
/// where the HMAC covers `"<t>.<body>"`, so the time cannot be changed without the key.
pub fn delivery_signature(key: &SigningKey, unix_seconds: i64, body: &[u8]) -> String {
    let mut message = format!("{unix_seconds}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={unix_seconds},v1={}", key.sign(&message))
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryRejection {
    #[error("no {SIGNATURE_HEADER} header: the delivery is unsigned")]
    Unsigned,
    #[error("{SIGNATURE_HEADER} is not t=<unix seconds>,v1=<hex>: {0:?}")]
    Malformed(String),
    #[error("signed with key id {0:?}, which the receiver does not have")]
    UnknownKey(String),
    #[error("the signature does not match the body: altered, or not signed with the key")]
    BadSignature,
    #[error(
        "signed {age}s away from the receiver's clock, more than the {tolerance}s tolerated: \
         a replay, or clocks apart"
    )]
    OutsideTolerance { age: i64, tolerance: i64 },
}

/// Checks a delivery as a receiver should: the signature over `"<t>.<body>"` with the key
/// `key_id` names, and `t` within `tolerance_seconds` of `now_unix`. A receiver also drops a
/// delivery whose `X-Fife-Audit-Seq` it already stored, which catches a replay inside the
/// tolerance.
pub fn verify_delivery(
    signature_header: Option<&str>,
    key_id: Option<&str>,
    body: &[u8],
    keys: &KeyRing,
    now_unix: i64,
    tolerance_seconds: i64,
) -> Result<(), DeliveryRejection> {
    let header = signature_header.ok_or(DeliveryRejection::Unsigned)?;
    let malformed = || DeliveryRejection::Malformed(header.to_owned());
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = Some(value.parse::<i64>().map_err(|_| malformed())?),
            Some(("v1", value)) => v1.push(value),
            // Unknown schemes are skipped, so a newer sender can add one.
            Some(_) => {}
            None => return Err(malformed()),
        }
    }
    let t = t.ok_or_else(malformed)?;
    if v1.is_empty() {
        return Err(malformed());
    }
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let mut unknown = false;
    let valid = v1
        .iter()
        .any(|sig| match keys.verify(key_id, &message, sig) {
            KeyCheck::Valid => true,
            KeyCheck::Invalid => false,
            KeyCheck::UnknownKey => {
                unknown = true;
                false
            }
        });
    if !valid {
        return Err(if unknown {
            DeliveryRejection::UnknownKey(key_id.unwrap_or_default().to_owned())
        } else {
            DeliveryRejection::BadSignature
        });
    }
    // Checked after the signature, so the time compared is the one the sender signed.
    let age = now_unix - t;
    if age.abs() > tolerance_seconds {
        return Err(DeliveryRejection::OutsideTolerance {
            age,
            tolerance: tolerance_seconds,
        });
    }
    Ok(())
}

async fn send_one(
    client: &reqwest::Client,
    url: &reqwest::Url,
    config: &WebhookConfig,
    head: &str,
    record: &SealedRecord,
) -> Outcome {
    let body = webhook_body(record, config.format);
    let mut request = client
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Fife-Audit-Seq", record.record.seq.to_string())
        .header("Idempotency-Key", record.record.hash.as_str())
        .header(HEAD_HEADER, head);
    if let Some(key) = &config.signing_key {
        // Signed at each attempt, so a retry after a long outage is not refused as stale.
        let now = chrono::Utc::now().timestamp();
        request = request.header(
            SIGNATURE_HEADER,
            delivery_signature(key, now, body.as_bytes()),
        );
        if let Some(id) = key.id() {
            request = request.header(KEY_ID_HEADER, id);
        }
    }
    let request = request.body(body);
    match request.send().await {
        Ok(resp) if resp.status().is_success() => Outcome::Acknowledged,
        Ok(resp) => {
            let status = resp.status();
            let transient = status.is_server_error()
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            if transient {
                Outcome::Retry(format!("receiver answered {status}"))
            } else {
                Outcome::Rejected(format!("receiver answered {status}"))
            }
        }
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

async fn send_loop(
    shared: Arc<Shared>,
    client: reqwest::Client,
    url: reqwest::Url,
    config: WebhookConfig,
) {
    let mut backoff = config.initial_backoff;
    loop {
        if shared.stopped.load(Ordering::Relaxed) {
            return;
        }
        let woken = shared.wake.notified();
        let next = shared.queue().front().cloned();
        let Some(record) = next else {
            shared.drained.notify_waiters();
            woken.await;
            continue;
        };
        let seq = record.record.seq;
        let head = shared
            .head
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match send_one(&client, &url, &config, &head, &record).await {
            outcome @ (Outcome::Acknowledged | Outcome::Rejected(_)) => {
                if let Outcome::Rejected(why) = outcome {
                    shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(seq, %why, "audit webhook refused a record; not retrying it");
                } else {
                    shared.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
                let mut queue = shared.queue();
                // While the request was out, a full queue may have dropped this record.
                if queue.front().is_some_and(|r| r.record.seq == seq) {
                    queue.pop_front();
                }
                if queue.is_empty() {
                    shared.drained.notify_waiters();
                }
                backoff = config.initial_backoff;
            }
            Outcome::Retry(why) => {
                shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(seq, %why, ?backoff, "audit webhook delivery failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}
