//! The writer of the audit trail: [`AuditLog`] seals each entry into the chain, hands it to the
//! durable sinks (which must all succeed before the caller may act), then to the notifiers
//! (which never fail the caller). Also the [`AuditSink`] trait and the structured-log sink.
//!
//! ```text
//!   entry ─▶ seal(head, key) ─▶ durable sinks (file: write + fsync) ─Err─▶ caller must not act
//!                                    │ Ok
//!                                    ▼
//!                               advance head ─▶ notifiers (tracing, webhook): best effort
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::chain::{ChainHead, SealedRecord, SigningKey, seal};
use crate::file::{FileSink, OpenError};
use crate::record::{Actor, AuditAction, AuditEntry, Evidence};

/// Where sealed records go.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// A short name for logs and metrics labels (`file`, `tracing`, `webhook`).
    fn name(&self) -> &str;

    /// Takes one record. A durable sink returns only once the record is durable; a notifier
    /// returns at once and delivers in the background.
    fn deliver(&self, record: &SealedRecord) -> Result<(), SinkError>;
}

/// Why a sink did not take a record.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(
        "cannot write audit record {seq} to {path}: {source}; the action it records must not be \
         applied; check free space, permissions and that the volume is not read-only"
    )]
    Write {
        path: PathBuf,
        seq: u64,
        source: io::Error,
    },
    #[error(
        "cannot fsync audit record {seq} in {path}: {source}; the log is closed for writing \
         until the controller restarts and re-reads the end of the log"
    )]
    Sync {
        path: PathBuf,
        seq: u64,
        source: io::Error,
    },
    #[error(
        "audit log {path} is closed after an earlier fsync failure; restart the controller so it \
         re-reads the end of the log"
    )]
    Closed { path: PathBuf },
}

/// Counters the controller exports as metrics.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Records every durable sink took.
    pub records_written: AtomicU64,
    /// Appends refused because a durable sink failed.
    pub write_failures: AtomicU64,
    /// Records a notifier refused (the record itself is safe in the durable sinks).
    pub notify_failures: AtomicU64,
}

/// A point-in-time copy of [`AuditStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditStatsSnapshot {
    pub records_written: u64,
    pub write_failures: u64,
    pub notify_failures: u64,
}

impl AuditStats {
    pub fn snapshot(&self) -> AuditStatsSnapshot {
        AuditStatsSnapshot {
            records_written: self.records_written.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
            notify_failures: self.notify_failures.load(Ordering::Relaxed),
        }
    }
}

/// The audit trail's writer. One per process; appends are serialized so seqs are gapless.
#[derive(Debug)]
pub struct AuditLog {
    head: Mutex<ChainHead>,
    key: Option<SigningKey>,
    durable: Vec<Box<dyn AuditSink>>,
    notifiers: Vec<Box<dyn AuditSink>>,
    stats: Arc<AuditStats>,
}

impl AuditLog {
    /// A writer continuing after `head`, with no sinks yet.
    pub fn new(head: ChainHead, key: Option<SigningKey>) -> Self {
        AuditLog {
            head: Mutex::new(head),
            key,
            durable: Vec::new(),
            notifiers: Vec::new(),
            stats: Arc::default(),
        }
    }

    /// Opens the file log at `path` as the durable sink and continues its chain. A torn tail
    /// is moved aside and recorded in a `RecoveredTornRecord` record by `actor` at `now`,
    /// which is returned.
    pub fn open_file(
        path: &Path,
        key: Option<SigningKey>,
        actor: Actor,
        now: DateTime<Utc>,
    ) -> Result<(AuditLog, Option<SealedRecord>), AuditError> {
        let (sink, opened) = FileSink::open(path, now.timestamp())?;
        let log = AuditLog::new(opened.head, key).with_durable(sink);
        let recovery = match opened.recovered {
            Some(torn) => {
                let reason = format!(
                    "the last {} bytes of the audit log were a torn write (crash mid-append); \
                     moved to {}",
                    torn.bytes, torn.moved_to
                );
                let mut entry =
                    AuditEntry::new(now, AuditAction::RecoveredTornRecord, actor, reason);
                entry.evidence = Evidence {
                    torn_tail: Some(torn),
                    ..Evidence::default()
                };
                Some(log.append(entry)?)
            }
            None => None,
        };
        Ok((log, recovery))
    }

    /// Adds a sink whose failure fails the append.
    pub fn with_durable(mut self, sink: impl AuditSink + 'static) -> Self {
        self.durable.push(Box::new(sink));
        self
    }

    /// Adds a sink that is told after the record is durable and cannot fail the append.
    pub fn with_notifier(mut self, sink: impl AuditSink + 'static) -> Self {
        self.notifiers.push(Box::new(sink));
        self
    }

    /// Counters shared with whoever exports metrics.
    pub fn stats(&self) -> Arc<AuditStats> {
        Arc::clone(&self.stats)
    }

    /// Where the next record goes.
    pub fn head(&self) -> ChainHead {
        self.head.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Seals `entry` and delivers it. `Ok` means every durable sink has it durably and the
    /// caller may now act; `Err` means it must not.
    pub fn append(&self, entry: AuditEntry) -> Result<SealedRecord, AuditError> {
        // Held across the durable writes: the chain is a sequence, so appends take turns.
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        let sealed = seal(entry, &head, self.key.as_ref());
        for sink in &self.durable {
            if let Err(e) = sink.deliver(&sealed) {
                self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
                return Err(AuditError::Sink(e));
            }
        }
        *head = ChainHead::after(sealed.record.seq, &sealed.line);
        self.stats.records_written.fetch_add(1, Ordering::Relaxed);
        // Still under the lock, so notifiers hear of records in seq order; they only queue
        // or log, so this holds the lock for microseconds.
        for sink in &self.notifiers {
            if let Err(e) = sink.deliver(&sealed) {
                self.stats.notify_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(sink = sink.name(), seq = sealed.record.seq, error = %e,
                    "audit notifier did not take the record; it is safe in the durable log");
            }
        }
        drop(head);
        Ok(sealed)
    }
}

/// Why an append or an open failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Writes each record as a structured log event (target `fife::audit`) with the full line,
/// for log pipelines that collect stdout.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn name(&self) -> &str {
        "tracing"
    }

    fn deliver(&self, sealed: &SealedRecord) -> Result<(), SinkError> {
        let r = &sealed.record;
        let rollout = r
            .rollout
            .as_ref()
            .map(|r| format!("{}/{}", r.namespace, r.name));
        tracing::info!(
            target: "fife::audit",
            seq = r.seq,
            action = r.action.as_str(),
            rollout = rollout.as_deref().unwrap_or("-"),
            actor = %r.actor.name,
            record = %sealed.line,
            "{}", r.reason
        );
        Ok(())
    }
}
