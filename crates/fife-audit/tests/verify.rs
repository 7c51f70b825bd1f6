//! Verify catches each kind of tampering and names it.

mod common;

use common::*;
use fife_audit::*;
use proptest::prelude::*;
use serde_json::Value;

#[test]
fn whole_chain_verifies_with_and_without_key() {
    let log = mk_log(10, Some(&key()));
    let report = verify_log(log.as_bytes(), Some(&key())).unwrap();
    assert_eq!(report.records, 10);
    assert_eq!(report.signatures, SignatureCheck::Verified);
    let report = verify_log(log.as_bytes(), None).unwrap();
    assert_eq!(report.signatures, SignatureCheck::NotChecked { signed: 10 });
    assert_eq!(verify_log(b"", None).unwrap().records, 0);
}

#[test]
fn edited_byte_is_named_as_an_edit_of_that_record() {
    let log = mk_log(6, None);
    let at = log.find("decision 3").unwrap() + "decision ".len();
    let mut bytes = log.into_bytes();
    bytes[at] = b'4';
    let err = verify_log(&bytes, None).unwrap_err();
    assert_eq!(
        (err.seq, err.line, &err.problem),
        (4, 4, &Problem::HashMismatch)
    );
    assert!(
        err.to_string().starts_with("seq 4 (line 4): edited"),
        "{err}"
    );
}

#[test]
fn removed_line_is_named_with_the_missing_seq() {
    let mut lines = lines(&mk_log(6, None));
    lines.remove(2);
    let err = verify_log(join(&lines).as_bytes(), None).unwrap_err();
    assert_eq!(err.seq, 3);
    assert_eq!(err.problem, Problem::Removed { from: 3, to: 3 });
    assert!(
        err.to_string().contains("removed: record 3 is missing"),
        "{err}"
    );

    let mut lines = super_lines(6);
    lines.remove(0);
    let err = verify_log(join(&lines).as_bytes(), None).unwrap_err();
    assert_eq!(
        (err.seq, err.problem),
        (1, Problem::Removed { from: 1, to: 1 })
    );
}

fn super_lines(n: u64) -> Vec<String> {
    lines(&mk_log(n, None))
}

#[test]
fn swapped_pair_is_named_as_reordered() {
    let mut lines = super_lines(6);
    lines.swap(2, 3);
    let err = verify_log(join(&lines).as_bytes(), None).unwrap_err();
    assert_eq!((err.seq, err.line), (3, 3));
    assert_eq!(err.problem, Problem::Reordered { found: 4 });
}

#[test]
fn duplicated_record_is_named() {
    let mut lines = super_lines(4);
    lines.insert(3, lines[1].clone());
    let err = verify_log(join(&lines).as_bytes(), None).unwrap_err();
    assert_eq!(
        (err.seq, err.problem),
        (4, Problem::Duplicated { found: 2 })
    );
}

/// Rewrites record `i` (0-based) with a new reason and recomputes every hash and link after
/// it, as someone who can edit the file but lacks the key would.
fn forge(log: &str, i: usize, key: Option<&SigningKey>) -> String {
    let mut lines = lines(log);
    let mut record: AuditRecord = serde_json::from_str(&lines[i]).unwrap();
    record.reason = "approved by change board".into();
    let mut head = if i == 0 {
        ChainHead::genesis()
    } else {
        let before: AuditRecord = serde_json::from_str(&lines[i - 1]).unwrap();
        ChainHead::after(before.seq, &lines[i - 1])
    };
    for (j, line) in lines.iter_mut().enumerate().skip(i) {
        let r: AuditRecord = if j == i {
            record.clone()
        } else {
            serde_json::from_str(line).unwrap()
        };
        let entry = AuditEntry {
            time: r.time,
            rollout: r.rollout,
            generation: r.generation,
            revision: r.revision,
            images: r.images,
            source: r.source,
            action: r.action,
            actor: r.actor,
            reason: r.reason,
            evidence: r.evidence,
        };
        let sealed = seal(entry, &head, key);
        head = ChainHead::after(sealed.record.seq, &sealed.line);
        *line = sealed.line;
    }
    join(&lines)
}

#[test]
fn forged_record_without_the_key_fails_the_signature() {
    let log = mk_log(6, Some(&key()));
    let attacker_key = SigningKey::new(b"guessed".to_vec()).unwrap();
    for forger in [None, Some(&attacker_key)] {
        let forged = forge(&log, 2, forger);
        // Without the key the chain looks whole: that is what the signature is for.
        assert_eq!(verify_log(forged.as_bytes(), None).unwrap().records, 6);
        let err = verify_log(forged.as_bytes(), Some(&key())).unwrap_err();
        let expected = if forger.is_some() {
            Problem::BadSignature
        } else {
            Problem::MissingSignature
        };
        assert_eq!((err.seq, err.problem), (3, expected));
    }
}

#[test]
fn record_replaced_without_fixing_the_next_link_is_a_broken_link() {
    let log = mk_log(6, None);
    let forged = forge(&log, 2, None);
    // Keep the forged record 3 but the original records after it.
    let mut mixed = lines(&log);
    mixed[2] = lines(&forged)[2].clone();
    let err = verify_log(join(&mixed).as_bytes(), None).unwrap_err();
    assert_eq!((err.seq, err.problem), (4, Problem::BrokenLink));
}

#[test]
fn torn_last_line_and_reformatted_line_are_named() {
    let log = mk_log(3, None);
    let torn = &log[..log.len() - 20];
    let err = verify_log(torn.as_bytes(), None).unwrap_err();
    assert_eq!((err.seq, err.line, err.problem), (3, 3, Problem::TornLine));

    let mut lines = lines(&log);
    let v: Value = serde_json::from_str(&lines[1]).unwrap();
    lines[1] = serde_json::to_string_pretty(&v).unwrap().replace('\n', " ");
    let err = verify_log(join(&lines).as_bytes(), None).unwrap_err();
    assert_eq!((err.seq, err.problem), (2, Problem::NotCanonical));
}

fn signed_log() -> &'static [u8] {
    static LOG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LOG.get_or_init(|| mk_log(8, Some(&key()))).as_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_single_byte_edit_of_a_signed_chain_is_detected(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let original = signed_log();
        let i = pos.index(original.len());
        prop_assume!(original[i] != byte);
        let mut edited = original.to_vec();
        edited[i] = byte;
        prop_assert!(verify_log(&edited, Some(&key())).is_err(),
            "edit at byte {} ({:?} -> {:?}) went unnoticed", i, original[i] as char, byte as char);
    }
}
