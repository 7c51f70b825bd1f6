//! Verification of an audit log's bytes: is the chain whole, and if not, where does it first
//! break and how. Pure: bytes and an optional key in, a report out.
//!
//! Checks per line, in this order, so the first failing check names the likeliest cause:
//! torn (no newline at end of file) → parses as a record → canonical bytes → `hash` matches
//! the contents → `seq` follows the previous one → `prev` matches the previous line →
//! `sig` (only with a key).

use std::fmt;

use serde_json::Value;

use crate::canonical::to_canonical_string;
use crate::chain::{SigningKey, line_hash, sha256_hex};
use crate::keys::{KeyCheck, KeyRing};
use crate::record::{AuditAction, GENESIS_PREV};

/// A chain found whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub records: u64,
    pub last_seq: Option<u64>,
    pub signatures: SignatureCheck,
    /// Seqs of `RecoveredTornRecord` records: places where a crash tore a write.
    pub recovered_torn: Vec<u64>,
}

/// Whether signatures were part of the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Every record carried a valid signature for the given key.
    Verified,
    /// No key was given; `signed` records carry a signature that was not checked.
    NotChecked { signed: u64 },
}

/// The first place the chain is not whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The seq of the bad record, or the seq that belongs at this place when the record's own
    /// seq cannot be read or is not the expected one.
    pub seq: u64,
    /// 1-based line number in the file.
    pub line: usize,
    pub problem: Problem,
}

/// What is wrong at a [`ChainBreak`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file ends without a newline: a write was cut short (crash), or the end was edited.
    TornLine,
    /// The line is not a JSON record with `seq`, `prev` and `hash`: it was edited.
    NotARecord { detail: String },
    /// The line parses but is not in canonical form: its bytes were edited (whitespace,
    /// escapes, number spelling) without changing its meaning.
    NotCanonical,
    /// The contents do not match the record's `hash`: the record was edited.
    HashMismatch,
    /// Records `from..=to` are missing before the record with seq `to + 1`.
    Removed { from: u64, to: u64 },
    /// Seq `found` stands where the expected seq belongs, which appears later in the file.
    Reordered { found: u64 },
    /// Seq `found` was already passed: a record was duplicated or moved back.
    Duplicated { found: u64 },
    /// `prev` does not match the line before: that line was replaced after this one was
    /// written, or records were removed and the rest renumbered and re-hashed.
    BrokenLink,
    /// The signature does not match: the record was rebuilt by someone without the key, or
    /// the key is not the one the log was signed with.
    BadSignature,
    /// A key was given but the record has no signature.
    MissingSignature,
    /// The record names a key id (`kid`) none of the given keys has.
    UnknownKey { kid: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TornLine => f.write_str(
                "torn: the last line has no newline (a write cut short by a crash, or the end \
                 of the file was edited); the writer moves it aside at its next start",
            ),
            Problem::NotARecord { detail } => {
                write!(f, "edited: the line is not a valid audit record ({detail})")
            }
            Problem::NotCanonical => f.write_str(
                "edited: the line's bytes differ from the record's canonical form \
                 (whitespace, escaping or number spelling was changed)",
            ),
            Problem::HashMismatch => {
                f.write_str("edited: the record's contents do not match its hash")
            }
            Problem::Removed { from, to } if from == to => {
                write!(
                    f,
                    "removed: record {from} is missing (the next record is seq {})",
                    to + 1
                )
            }
            Problem::Removed { from, to } => write!(
                f,
                "removed: records {from} to {to} are missing (the next record is seq {})",
                to + 1
            ),
            Problem::Reordered { found } => write!(
                f,
                "reordered: seq {found} stands here and the expected record appears later"
            ),
            Problem::Duplicated { found } => write!(
                f,
                "reordered or duplicated: seq {found} appears again after later records"
            ),
            Problem::BrokenLink => f.write_str(
                "broken link: `prev` does not match the line before it; that line was \
                 replaced after this record was written, or records were removed and the rest \
                 renumbered",
            ),
            Problem::BadSignature => f.write_str(
                "bad signature: the record was written or rebuilt without the signing key (or \
                 the key given is not the log's key)",
            ),
            Problem::UnknownKey { kid } => write!(
                f,
                "unknown key: the record is signed with key id {kid:?}, which none of the given \
                 keys has; pass it with --key {kid}=FILE"
            ),
            Problem::MissingSignature => f.write_str(
                "missing signature: a key was given but this record is unsigned (written \
                 without a key, or its signature was stripped)",
            ),
        }
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {} (line {}): {}", self.seq, self.line, self.problem)
    }
}

/// One line as found in the file, before checks.
struct Line<'a> {
    bytes: &'a [u8],
    terminated: bool,
}

fn split_lines(bytes: &[u8]) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                lines.push(Line {
                    bytes: &rest[..i],
                    terminated: true,
                });
                rest = &rest[i + 1..];
            }
            None => {
                lines.push(Line {
                    bytes: rest,
                    terminated: false,
                });
                rest = &[];
            }
        }
    }
    lines
}

/// The chain fields of one parsed line, taken out of it.
struct Links {
    seq: u64,
    prev: String,
    hash: String,
    sig: Option<String>,
    kid: Option<String>,
    is_torn_recovery: bool,
}

fn take_links(value: &mut Value) -> Result<Links, String> {
    let map = value.as_object_mut().ok_or("not a JSON object")?;
    let seq = map
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("no unsigned integer `seq`")?;
    let prev = map
        .get("prev")
        .and_then(Value::as_str)
        .ok_or("no string `prev`")?
        .to_string();
    let is_torn_recovery = map.get("action").and_then(Value::as_str)
        == Some(AuditAction::RecoveredTornRecord.as_str());
    let hash = match map.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err("no string `hash`".into()),
    };
    let kid = match map.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err("`kid` is not a string".into()),
    };
    let sig = match map.remove("sig") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("`sig` is not a string".into()),
    };
    Ok(Links {
        seq,
        prev,
        hash,
        sig,
        kid,
        is_torn_recovery,
    })
}

fn parse(line: &[u8]) -> Result<Value, String> {
    if line.is_empty() {
        return Err("empty line".into());
    }
    serde_json::from_slice(line).map_err(|e| e.to_string())
}

/// Verifies a whole log. With `key`, every record must carry a valid signature.
pub fn verify_log(bytes: &[u8], key: Option<&SigningKey>) -> Result<ChainReport, ChainBreak> {
    let ring = key.map(|k| KeyRing::from_keys(vec![k.clone()]).expect("one key is a ring"));
    verify_log_with_keys(bytes, ring.as_ref())
}

/// Verifies a whole log. With `keys`, every record must carry a valid signature by the key
/// its `kid` names (any of them, for records without a kid).
pub fn verify_log_with_keys(
    bytes: &[u8],
    keys: Option<&KeyRing>,
) -> Result<ChainReport, ChainBreak> {
    let key = keys;
    let lines = split_lines(bytes);
    let mut expected_seq = 1u64;
    let mut expected_prev = GENESIS_PREV.to_string();
    let mut signed = 0u64;
    let mut recovered_torn = Vec::new();

    for (i, line) in lines.iter().enumerate() {
        let at = |problem| ChainBreak {
            seq: expected_seq,
            line: i + 1,
            problem,
        };
        if !line.terminated {
            return Err(at(Problem::TornLine));
        }
        let text = std::str::from_utf8(line.bytes).map_err(|e| {
            at(Problem::NotARecord {
                detail: format!("not UTF-8: {e}"),
            })
        })?;
        let mut value = parse(line.bytes).map_err(|detail| at(Problem::NotARecord { detail }))?;
        // Checked before the fields are taken out: the whole line must be canonical.
        let canonical = to_canonical_string(&value) == text;
        let links = take_links(&mut value).map_err(|detail| at(Problem::NotARecord { detail }))?;
        let own = |problem| ChainBreak {
            seq: links.seq,
            line: i + 1,
            problem,
        };
        if !canonical {
            return Err(own(Problem::NotCanonical));
        }
        // `value` is now the record without `hash` and `sig`: the signed body.
        let body = to_canonical_string(&value);
        if sha256_hex(body.as_bytes()) != links.hash {
            return Err(own(Problem::HashMismatch));
        }
        if links.seq != expected_seq {
            let found = links.seq;
            let problem = if found > expected_seq {
                // Only read at a break, so a whole log is parsed once.
                let mut later = lines[i + 1..]
                    .iter()
                    .filter_map(|l| parse(l.bytes).ok()?.get("seq").and_then(Value::as_u64));
                if later.any(|s| (expected_seq..found).contains(&s)) {
                    Problem::Reordered { found }
                } else {
                    Problem::Removed {
                        from: expected_seq,
                        to: found - 1,
                    }
                }
            } else {
                Problem::Duplicated { found }
            };
            return Err(at(problem));
        }
        if links.prev != expected_prev {
            return Err(own(Problem::BrokenLink));
        }
        match (&links.sig, key) {
            (Some(sig), Some(keys)) => {
                match keys.verify(links.kid.as_deref(), body.as_bytes(), sig) {
                    KeyCheck::Valid => {}
                    KeyCheck::Invalid => return Err(own(Problem::BadSignature)),
                    KeyCheck::UnknownKey => {
                        return Err(own(Problem::UnknownKey {
                            kid: links.kid.clone().unwrap_or_default(),
                        }));
                    }
                }
            }
            (None, Some(_)) => return Err(own(Problem::MissingSignature)),
            _ => {}
        }
        signed += u64::from(links.sig.is_some());
        if links.is_torn_recovery {
            recovered_torn.push(links.seq);
        }
        expected_seq = links.seq + 1;
        expected_prev = line_hash(text);
    }

    let records = expected_seq - 1;
    Ok(ChainReport {
        records,
        last_seq: (records > 0).then_some(records),
        signatures: match key {
            Some(_) => SignatureCheck::Verified,
            None => SignatureCheck::NotChecked { signed },
        },
        recovered_torn,
    })
}
