//! The file log: durable appends that continue the chain across restarts, torn-tail recovery,
//! single writer, fail closed.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use fife_audit::*;

fn controller() -> Actor {
    Actor::controller("fife")
}

fn append_n(log: &AuditLog, from: u64, n: u64) {
    for i in from..from + n {
        log.append(mk_entry(i)).unwrap();
    }
}

#[test]
fn chain_continues_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    {
        let (log, recovery) = AuditLog::open_file(&path, Some(key()), controller(), t0()).unwrap();
        assert!(recovery.is_none());
        append_n(&log, 0, 3);
        assert_eq!(log.stats().snapshot().records_written, 3);
    }
    let (log, _) = AuditLog::open_file(&path, Some(key()), controller(), t0()).unwrap();
    assert_eq!(log.head().next_seq, 4);
    append_n(&log, 3, 2);
    let bytes = std::fs::read(&path).unwrap();
    let report = verify_log(&bytes, Some(&key())).unwrap();
    assert_eq!(report.records, 5);
    // Byte for byte what a writer that never restarted would have written.
    assert_eq!(String::from_utf8(bytes).unwrap(), mk_log(5, Some(&key())));
}

#[test]
fn torn_half_line_is_moved_aside_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let whole = mk_log(3, Some(&key()));
    let fourth = mk_log(4, Some(&key()))[whole.len()..].to_string();
    let half = &fourth[..fourth.len() / 2];
    std::fs::write(&path, format!("{whole}{half}")).unwrap();
    assert!(verify_log(&std::fs::read(&path).unwrap(), Some(&key())).is_err());

    let now = t0() + chrono::Duration::hours(1);
    let (log, recovery) = AuditLog::open_file(&path, Some(key()), controller(), now).unwrap();
    let recovery = recovery.expect("a recovery record");
    assert_eq!(recovery.record.seq, 4);
    assert_eq!(recovery.record.action, AuditAction::RecoveredTornRecord);
    let torn = recovery.record.evidence.torn_tail.clone().unwrap();
    let torn_path = format!("{}.torn-4-{}", path.display(), now.timestamp());
    assert_eq!(torn.moved_to, torn_path);
    assert_eq!(torn.offset, whole.len() as u64);
    assert_eq!(std::fs::read_to_string(&torn_path).unwrap(), half);

    log.append(mk_entry(9)).unwrap();
    let bytes = std::fs::read_to_string(&path).unwrap();
    assert!(
        bytes.starts_with(&whole),
        "nothing before the torn line is lost"
    );
    let report = verify_log(bytes.as_bytes(), Some(&key())).unwrap();
    assert_eq!((report.records, report.recovered_torn), (5, vec![4]));
}

#[test]
fn unparseable_terminated_last_line_is_torn_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let whole = mk_log(2, None);
    std::fs::write(&path, format!("{whole}\0\0\0\0\0\0\n")).unwrap();
    let (_log, recovery) = AuditLog::open_file(&path, None, controller(), t0()).unwrap();
    assert_eq!(
        recovery.unwrap().record.evidence.torn_tail.unwrap().bytes,
        7
    );
    assert_eq!(
        verify_log(&std::fs::read(&path).unwrap(), None)
            .unwrap()
            .records,
        3
    );
}

#[test]
fn tail_longer_than_the_first_read_window_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut head = ChainHead::genesis();
    let mut text = String::new();
    for i in 0..3 {
        let mut e = mk_entry(i);
        e.reason = "x".repeat(100_000);
        let s = seal(e, &head, None);
        head = ChainHead::after(s.record.seq, &s.line);
        text.push_str(&s.line);
        text.push('\n');
    }
    text.push_str(&"y".repeat(70_000));
    std::fs::write(&path, &text).unwrap();
    let (log, recovery) = AuditLog::open_file(&path, None, controller(), t0()).unwrap();
    assert_eq!(recovery.unwrap().record.seq, 4);
    assert_eq!(log.head().next_seq, 5);
}

#[test]
fn damage_beyond_the_last_line_refuses_to_start_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let text = format!("{}garbage\n{{\"seq\":", mk_log(2, None));
    std::fs::write(&path, &text).unwrap();
    let err = AuditLog::open_file(&path, None, controller(), t0()).unwrap_err();
    assert!(err.to_string().contains("fife audit verify"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn only_one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (_first, _) = AuditLog::open_file(&path, None, controller(), t0()).unwrap();
    let err = AuditLog::open_file(&path, None, controller(), t0()).unwrap_err();
    assert!(
        matches!(err, AuditError::Open(OpenError::Locked { .. })),
        "{err}"
    );
}

#[test]
fn write_failure_fails_the_append_and_is_counted() {
    // /dev/full accepts opens and refuses every write with ENOSPC: a real full disk.
    let (log, _) = AuditLog::open_file("/dev/full".as_ref(), None, controller(), t0()).unwrap();
    let err = log.append(mk_entry(0)).unwrap_err();
    assert!(err.to_string().contains("must not be applied"), "{err}");
    assert!(log.append(mk_entry(1)).is_err());
    let stats = log.stats().snapshot();
    assert_eq!((stats.records_written, stats.write_failures), (0, 2));
    assert_eq!(
        log.head().next_seq,
        1,
        "a failed append does not use up its seq"
    );
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn notifiers_hear_of_records_after_they_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let (log, _) = AuditLog::open_file(&path, None, controller(), t0()).unwrap();
        let log = log.with_notifier(TracingSink);
        let sealed = log.append(mk_entry(5)).unwrap();
        let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("fife::audit"), "{out}");
        assert!(out.contains("seq=1"), "{out}");
        assert!(out.contains(&sealed.record.hash), "{out}");
    });
}
