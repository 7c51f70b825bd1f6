//! `fife audit verify` and `fife audit query` as a user runs them: exit codes and output.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Duration, TimeZone, Utc};
use fife_audit::{
    Actor, AuditAction, AuditEntry, AuditRecord, ChainHead, Phase, PublishedHead, RolloutRef,
    SealedRecord, SigningKey, seal,
};

const KEY: &[u8] = b"cli-test-key-0123456789abcdef";

fn fife(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fife"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, h, m, 0).unwrap()
}

fn entry(ns: &str, name: &str, action: AuditAction, time: DateTime<Utc>) -> AuditEntry {
    let actor = if action.is_manual() {
        Actor::user("ann@example.com")
    } else {
        Actor::controller("fife")
    };
    let mut e = AuditEntry::new(time, action, actor, format!("{action} of {name}"));
    e.rollout = Some(RolloutRef {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    });
    e.revision = Some("7c9d".into());
    if action == AuditAction::AnalysisCompleted {
        e.evidence.analysis_phase = Some(Phase::Successful);
    }
    e
}

/// A signed log of two rollouts on the 3rd of March, one promoted at 14:32.
fn write_log(path: &Path, key: Option<&SigningKey>) -> Vec<String> {
    let entries = vec![
        entry(
            "shop",
            "checkout-api",
            AuditAction::StepStarted,
            at(3, 14, 0),
        ),
        entry(
            "shop",
            "checkout-api",
            AuditAction::AnalysisStarted,
            at(3, 14, 10),
        ),
        entry(
            "shop",
            "checkout-api",
            AuditAction::AnalysisCompleted,
            at(3, 14, 31),
        ),
        entry("shop", "checkout-api", AuditAction::Promoted, at(3, 14, 32)),
        entry("shop", "cart", AuditAction::ManualPromote, at(3, 14, 40)),
        entry(
            "shop",
            "cart",
            AuditAction::Aborted,
            at(4, 9, 0) + Duration::seconds(5),
        ),
    ];
    let mut head = ChainHead::genesis();
    let mut lines = Vec::new();
    for e in entries {
        let s = seal(e, &head, key);
        head = ChainHead::after(s.record.seq, &s.line);
        lines.push(s.line);
    }
    write_lines(path, &lines);
    lines
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(f.key(), [KEY, b"\n"].concat()).unwrap();
        f
    }
    fn log(&self) -> String {
        self.dir.path().join("audit.jsonl").display().to_string()
    }
    fn key(&self) -> String {
        self.dir.path().join("key").display().to_string()
    }
}

fn key() -> SigningKey {
    SigningKey::new(KEY.to_vec()).unwrap()
}

#[test]
fn verify_whole_chain_exits_zero_with_the_count() {
    let f = Fixture::new();
    write_log(f.log().as_ref(), Some(&key()));
    let out = fife(&["audit", "verify", &f.log()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).starts_with("6 records, chain whole\n"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("not checked"), "{}", stdout(&out));

    let out = fife(&["audit", "verify", &f.log(), "--key-file", &f.key()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).contains("every record signed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_names_the_first_bad_seq_and_exits_one() {
    let f = Fixture::new();
    let lines = write_log(f.log().as_ref(), Some(&key()));

    let mut removed = lines.clone();
    removed.remove(3);
    write_lines(f.log().as_ref(), &removed);
    let out = fife(&["audit", "verify", &f.log()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("seq 4 (line 4): removed"),
        "{}",
        stdout(&out)
    );

    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    write_lines(f.log().as_ref(), &swapped);
    let out = fife(&["audit", "verify", &f.log()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("seq 2 (line 2): reordered"),
        "{}",
        stdout(&out)
    );

    let mut edited = lines.clone();
    edited[4] = edited[4].replace("ann@example.com", "bob@example.com");
    write_lines(f.log().as_ref(), &edited);
    let out = fife(&["audit", "verify", &f.log()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("seq 5 (line 5): edited"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_with_key_catches_a_rebuilt_chain() {
    let f = Fixture::new();
    let lines = write_log(f.log().as_ref(), Some(&key()));
    // Whoever edits the file re-seals record 4 onwards with a key of their own.
    let forger = SigningKey::new(b"not-the-key".to_vec()).unwrap();
    let third: AuditRecord = serde_json::from_str(&lines[2]).unwrap();
    let mut head = ChainHead::after(third.seq, &lines[2]);
    let mut forged = lines[..3].to_vec();
    for line in &lines[3..] {
        let r: AuditRecord = serde_json::from_str(line).unwrap();
        let mut e = AuditEntry::new(r.time, r.action, Actor::user("mallory"), r.reason);
        e.rollout = r.rollout;
        let s = seal(e, &head, Some(&forger));
        head = ChainHead::after(s.record.seq, &s.line);
        forged.push(s.line);
    }
    write_lines(f.log().as_ref(), &forged);
    assert_eq!(fife(&["audit", "verify", &f.log()]).status.code(), Some(0));
    let out = fife(&["audit", "verify", &f.log(), "--key-file", &f.key()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("seq 4 (line 4): bad signature"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_reports_a_torn_last_line() {
    let f = Fixture::new();
    let lines = write_log(f.log().as_ref(), None);
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.truncate(text.len() - 30);
    std::fs::write(f.log(), text).unwrap();
    let out = fife(&["audit", "verify", &f.log()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("seq 6 (line 6): torn"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn unreadable_file_or_key_exits_two() {
    let f = Fixture::new();
    let out = fife(&["audit", "verify", &f.log()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read audit log"));
    write_log(f.log().as_ref(), None);
    let out = fife(&[
        "audit",
        "verify",
        &f.log(),
        "--key-file",
        "/nonexistent/key",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = fife(&["audit", "query", "/nonexistent/log"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn query_answers_what_was_deployed_at_14_32_on_the_3rd() {
    let f = Fixture::new();
    let lines = write_log(f.log().as_ref(), Some(&key()));
    let out = fife(&[
        "audit",
        "query",
        &f.log(),
        "--action",
        "promoted",
        "--since",
        "2025-03-03T14:30:00Z",
        "--until",
        "2025-03-03T15:35:00+01:00",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), format!("{}\n", lines[3]));

    let out = fife(&["audit", "query", &f.log(), "--rollout", "shop/checkout-api"]);
    let table = stdout(&out);
    assert_eq!(table.lines().count(), 5, "{table}");
    assert!(table.lines().next().unwrap().starts_with("SEQ"));
    assert!(
        table.contains("AnalysisCompleted") && table.contains("phase=Successful"),
        "{table}"
    );
    assert!(!table.contains("shop/cart"), "{table}");

    let out = fife(&[
        "audit",
        "query",
        &f.log(),
        "--rollout",
        "shop/cart",
        "--output",
        "json",
    ]);
    let seqs: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<AuditRecord>(l).unwrap().seq)
        .collect();
    assert_eq!(seqs, vec![5, 6]);
}

#[test]
fn query_rejects_bad_arguments_with_a_hint() {
    let f = Fixture::new();
    write_log(f.log().as_ref(), None);
    for (flag, value, hint) in [
        ("--rollout", "checkout-api", "NAMESPACE/NAME"),
        ("--since", "yesterday", "RFC 3339"),
        ("--action", "Deploy", "ManualPromote"),
    ] {
        let out = fife(&["audit", "query", &f.log(), flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(hint), "{flag}: {err}");
    }
}

#[test]
fn a_log_cut_short_fails_against_its_published_head_naming_the_missing_records() {
    let f = Fixture::new();
    let lines = write_log(f.log().as_ref(), Some(&key()));
    let last: AuditRecord = serde_json::from_str(&lines[5]).unwrap();
    let head = format!("6:{}", last.hash);
    let out = fife(&["audit", "verify", &f.log(), "--expect-head", &head]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("ends at the published head (seq 6)"));

    // The last three records cut off: the chain alone is whole, the head is not reached.
    write_lines(f.log().as_ref(), &lines[..3]);
    assert_eq!(fife(&["audit", "verify", &f.log()]).status.code(), Some(0));
    let out = fife(&["audit", "verify", &f.log(), "--expect-head", &head]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains(
            "log cut short: the log ends at seq 3 but the head says 6: records 4–6 are missing"
        ),
        "{}",
        stdout(&out)
    );

    // The same from the head object the controller publishes, signed with the log's key.
    let sealed = SealedRecord {
        record: last,
        line: lines[5].clone(),
    };
    let published = PublishedHead::after(&sealed, "audit.jsonl", at(4, 9, 1), Some(&key()));
    let head_file = f.dir.path().join("head.json");
    std::fs::write(&head_file, published.to_json()).unwrap();
    let head_arg = head_file.display().to_string();
    let out = fife(&[
        "audit",
        "verify",
        &f.log(),
        "--head-from",
        &head_arg,
        "--key-file",
        &f.key(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).contains("records 4–6 are missing"),
        "{}",
        stdout(&out)
    );
    // A head rewritten to match the cut log is refused for its signature.
    let mut rewritten = published.clone();
    rewritten.seq = 3;
    rewritten.hash = serde_json::from_str::<AuditRecord>(&lines[2]).unwrap().hash;
    std::fs::write(&head_file, rewritten.to_json()).unwrap();
    let out = fife(&[
        "audit",
        "verify",
        &f.log(),
        "--head-from",
        &head_arg,
        "--key-file",
        &f.key(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(&out).contains("head refused"), "{}", stdout(&out));
}

#[test]
fn records_signed_before_and_after_a_key_change_verify_with_both_keys() {
    let f = Fixture::new();
    // Written before key ids: no kid, signed with the old key.
    let lines = write_log(f.log().as_ref(), Some(&key()));
    let new_key = SigningKey::new(b"the-2026-03-key-0123456789".to_vec())
        .unwrap()
        .with_id("2026-03");
    let last: AuditRecord = serde_json::from_str(&lines[5]).unwrap();
    let mut head = ChainHead::after(last.seq, &lines[5]);
    let mut all = lines.clone();
    for i in 0..2 {
        let s = seal(
            entry("shop", "cart", AuditAction::Promoted, at(5, 10, i)),
            &head,
            Some(&new_key),
        );
        assert_eq!(s.record.kid.as_deref(), Some("2026-03"));
        head = ChainHead::after(s.record.seq, &s.line);
        all.push(s.line);
    }
    write_lines(f.log().as_ref(), &all);
    let new_file = f.dir.path().join("new-key");
    std::fs::write(&new_file, "the-2026-03-key-0123456789\n").unwrap();
    let named_new = format!("2026-03={}", new_file.display());
    let named_old = format!("2025-01={}", f.key());

    let out = fife(&[
        "audit",
        "verify",
        &f.log(),
        "--key",
        &named_old,
        "--key",
        &named_new,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("8 records, chain whole"));
    assert!(stdout(&out).contains("every record signed"));
    // The old key alone: the new records name a key it does not have.
    let out = fife(&["audit", "verify", &f.log(), "--key", &named_old]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("seq 7 (line 7): unknown key"),
        "{}",
        stdout(&out)
    );
    // The new key alone: the old records are not its signatures.
    let out = fife(&["audit", "verify", &f.log(), "--key", &named_new]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("seq 1 (line 1): bad signature"),
        "{}",
        stdout(&out)
    );
}
