//! The published head: the latest record's `seq` and `hash`, kept outside the log (the
//! controller's `fife-audit-head` ConfigMap, each webhook delivery) so a log whose end was
//! cut off no longer verifies against it. Pure: building, signing and checking heads.
//!
//! ```text
//!   append ─▶ PublishedHead { seq, hash, time, log, kid?, sig? } ─▶ ConfigMap / webhook header
//!   fife audit verify LOG --expect-head SEQ:HASH ─▶ check_head(log, head) ─▶ ok | Truncated | Rewritten
//! ```
//!
//! The chain proves every record up to the last line; only something outside the file can
//! say where the last line should be. A signed head (same key as the records) cannot be
//! rewritten to match a shortened log without the key.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::to_canonical_string;
use crate::chain::{SealedRecord, SigningKey};
use crate::keys::KeyRing;

/// The head of one log as published by its writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedHead {
    /// Seq of the latest record.
    pub seq: u64,
    /// That record's `hash` field.
    pub hash: String,
    /// When it was published (RFC 3339).
    pub time: String,
    /// The writer's log file, so a reader knows which log this head belongs to.
    pub log: String,
    /// Id of the key that signed the head, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// HMAC-SHA256 (hex) over the canonical head without `sig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl PublishedHead {
    /// The head after `record` of the log at `log`, signed with `key` when there is one.
    pub fn after(
        record: &SealedRecord,
        log: &str,
        now: DateTime<Utc>,
        key: Option<&SigningKey>,
    ) -> Self {
        PublishedHead::at(record.record.seq, &record.record.hash, log, now, key)
    }

    /// The head at the record `seq` whose `hash` is given.
    pub fn at(
        seq: u64,
        hash: &str,
        log: &str,
        now: DateTime<Utc>,
        key: Option<&SigningKey>,
    ) -> Self {
        let mut head = PublishedHead {
            seq,
            hash: hash.to_owned(),
            time: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            log: log.to_owned(),
            kid: key.and_then(|k| k.id().map(str::to_owned)),
            sig: None,
        };
        head.sig = key.map(|k| k.sign(head.signed_body().as_bytes()));
        head
    }

    fn signed_body(&self) -> String {
        // The head types serialize to plain JSON objects; this cannot fail.
        let mut value = serde_json::to_value(self).expect("heads serialize to JSON");
        if let Value::Object(map) = &mut value {
            map.remove("sig");
        }
        to_canonical_string(&value)
    }

    /// The head as one canonical JSON line (how it is stored in the ConfigMap).
    pub fn to_json(&self) -> String {
        to_canonical_string(&serde_json::to_value(self).expect("heads serialize to JSON"))
    }

    /// Checks the head's signature with the key its `kid` names (or the ring's unnamed key).
    pub fn check_signature(&self, keys: &KeyRing) -> Result<(), HeadProblem> {
        let Some(sig) = &self.sig else {
            return Err(HeadProblem::Unsigned);
        };
        let key = keys
            .for_id(self.kid.as_deref())
            .ok_or_else(|| HeadProblem::UnknownKey {
                kid: self.kid.clone(),
            })?;
        if key.verify(self.signed_body().as_bytes(), sig) {
            Ok(())
        } else {
            Err(HeadProblem::BadSignature)
        }
    }
}

/// `SEQ:HASH` as given to `--expect-head`.
pub fn parse_expected_head(text: &str) -> Result<(u64, String), String> {
    let (seq, hash) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not SEQ:HASH (e.g. 57:3f2a…)"))?;
    let seq = seq
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("{seq:?} in {text:?} is not a record seq"))?;
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{hash:?} in {text:?} is not a record hash (64 hex digits)"
        ));
    }
    Ok((seq, hash))
}

/// How a log stands against a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadMatch {
    /// The log's last record is the head.
    AtHead,
    /// The log goes on after the head to `last` (records written after it was published).
    Beyond { last: u64 },
}

/// Why a log does not reach, or does not contain, its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadProblem {
    /// The log ends before the head's seq: records `last+1..=head` were cut off.
    Truncated { last: Option<u64>, head: u64 },
    /// The record at the head's seq has another hash: the log was rewritten from there on.
    Rewritten {
        seq: u64,
        expected: String,
        found: String,
    },
    /// A key was given but the head carries no signature.
    Unsigned,
    /// The head names a key id none of the given keys has.
    UnknownKey { kid: Option<String> },
    /// The head's signature does not match: it was written without the key.
    BadSignature,
}

impl fmt::Display for HeadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadProblem::Truncated { last, head } => {
                let first = last.map_or(1, |l| l + 1);
                let range = if first == *head {
                    format!("record {head} is missing")
                } else {
                    format!("records {first}–{head} are missing")
                };
                match last {
                    Some(last) => write!(
                        f,
                        "the log ends at seq {last} but the head says {head}: {range} (the end \
                         of the log was cut off)"
                    ),
                    None => write!(f, "the log is empty but the head says {head}: {range}"),
                }
            }
            HeadProblem::Rewritten {
                seq,
                expected,
                found,
            } => write!(
                f,
                "record {seq} has hash {found} but the head says {expected}: the log was \
                 rewritten from seq {seq} or earlier"
            ),
            HeadProblem::Unsigned => f.write_str(
                "the head is unsigned but a key was given: it was written without the key, or \
                 its signature was stripped",
            ),
            HeadProblem::UnknownKey { kid: Some(kid) } => write!(
                f,
                "the head is signed with key id {kid:?}, which none of the given keys has; \
                 pass it with --key {kid}=FILE"
            ),
            HeadProblem::UnknownKey { kid: None } => f.write_str(
                "the head is signed without a key id; pass the key with --key-file FILE",
            ),
            HeadProblem::BadSignature => f.write_str(
                "the head's signature does not match: it was written or edited without the key",
            ),
        }
    }
}

/// Checks a verified log's bytes against the head `seq`/`hash`. Call after
/// [`crate::verify_log`] found the chain whole, so each seq appears once, in order.
pub fn check_head(bytes: &[u8], seq: u64, hash: &str) -> Result<HeadMatch, HeadProblem> {
    let mut last = None;
    let mut at_head = None;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(value) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let Some(s) = value.get("seq").and_then(Value::as_u64) else {
            continue;
        };
        if s == seq {
            at_head = value.get("hash").and_then(Value::as_str).map(str::to_owned);
        }
        last = Some(s);
    }
    match (at_head, last) {
        (Some(found), _) if found != hash => Err(HeadProblem::Rewritten {
            seq,
            expected: hash.to_owned(),
            found,
        }),
        (Some(_), Some(last)) if last > seq => Ok(HeadMatch::Beyond { last }),
        (Some(_), _) => Ok(HeadMatch::AtHead),
        (None, last) => Err(HeadProblem::Truncated { last, head: seq }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{ChainHead, seal};
    use crate::record::{Actor, AuditAction, AuditEntry};
    use chrono::TimeZone;

    fn log(n: u64) -> (Vec<u8>, Vec<SealedRecord>) {
        let t = Utc.with_ymd_and_hms(2026, 3, 3, 14, 32, 0).unwrap();
        let mut head = ChainHead::genesis();
        let mut bytes = Vec::new();
        let mut records = Vec::new();
        for _ in 0..n {
            let entry = AuditEntry::new(t, AuditAction::Promoted, Actor::controller("fife"), "ok");
            let sealed = seal(entry, &head, None);
            head = ChainHead::after(sealed.record.seq, &sealed.line);
            bytes.extend_from_slice(sealed.line.as_bytes());
            bytes.push(b'\n');
            records.push(sealed);
        }
        (bytes, records)
    }

    #[test]
    fn a_cut_log_names_the_missing_range() {
        let (bytes, records) = log(5);
        let head = &records[4].record;
        assert_eq!(check_head(&bytes, 5, &head.hash), Ok(HeadMatch::AtHead));
        assert_eq!(
            check_head(&bytes, 3, &records[2].record.hash),
            Ok(HeadMatch::Beyond { last: 5 })
        );
        let (cut, _) = log(2);
        let problem = check_head(&cut, 5, &head.hash).unwrap_err();
        assert_eq!(
            problem.to_string(),
            "the log ends at seq 2 but the head says 5: records 3–5 are missing (the end of \
             the log was cut off)"
        );
        assert!(
            check_head(b"", 1, &head.hash)
                .unwrap_err()
                .to_string()
                .starts_with("the log is empty but the head says 1: record 1 is missing")
        );
        assert!(matches!(
            check_head(&bytes, 5, &records[0].record.hash),
            Err(HeadProblem::Rewritten { seq: 5, .. })
        ));
    }

    #[test]
    fn expected_heads_parse_and_bad_ones_say_why() {
        let hash = "ab".repeat(32);
        assert_eq!(
            parse_expected_head(&format!("57:{hash}")),
            Ok((57, hash.clone()))
        );
        assert!(parse_expected_head("57").unwrap_err().contains("SEQ:HASH"));
        assert!(parse_expected_head("x:ab").unwrap_err().contains("seq"));
        assert!(parse_expected_head("5:abc").unwrap_err().contains("64 hex"));
    }

    #[test]
    fn a_signed_head_verifies_and_an_edited_one_does_not() {
        let (_, records) = log(3);
        let key = SigningKey::new(b"k1".to_vec()).unwrap().with_id("2026-03");
        let now = Utc.with_ymd_and_hms(2026, 3, 3, 14, 33, 0).unwrap();
        let head =
            PublishedHead::after(&records[2], "/var/lib/fife/audit/a.jsonl", now, Some(&key));
        assert_eq!(head.kid.as_deref(), Some("2026-03"));
        let ring = KeyRing::from_keys(vec![key]).unwrap();
        assert_eq!(head.check_signature(&ring), Ok(()));
        let back: PublishedHead = serde_json::from_str(&head.to_json()).unwrap();
        assert_eq!(back, head);
        let mut edited = head.clone();
        edited.seq = 2;
        edited.hash = records[1].record.hash.clone();
        assert_eq!(
            edited.check_signature(&ring),
            Err(HeadProblem::BadSignature)
        );
        let unsigned = PublishedHead::after(&records[2], "a", now, None);
        assert_eq!(unsigned.check_signature(&ring), Err(HeadProblem::Unsigned));
    }
}
