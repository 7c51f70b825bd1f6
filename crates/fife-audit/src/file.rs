//! The append-only JSON Lines file: the audit's source of truth. A record is durable (written
//! and `fsync`ed) before `deliver` returns; a torn last line left by a crash is moved aside at
//! start-up so the chain continues from the last good record.
//!
//! ```text
//!   open: lock ─▶ read tail ─▶ torn? ─yes─▶ copy torn bytes to PATH.torn-<seq>-<unix>, fsync
//!                                │           truncate to last good line, fsync
//!                                ▼
//!                             head = after(last good record)
//!   deliver: write line+\n (O_APPEND) ─▶ sync_data ─▶ Ok   (any failure ─▶ Err, fail closed)
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::chain::{ChainHead, SealedRecord, sha256_hex};
use crate::record::TornTailEvidence;
use crate::sink::{AuditSink, SinkError};

/// What the end of a log looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TailScan {
    /// The chain continues at `head`; bytes from `torn_from` to the end are torn.
    Found {
        head: ChainHead,
        torn_from: Option<u64>,
    },
    /// The window does not reach back to the start of the last good line.
    NeedMore,
    /// More than the last line is bad: not a crash, and not ours to repair.
    Damaged { offset: u64, detail: String },
}

/// A line's seq if it is a record (an object with an integer `seq` and a string `hash`).
fn record_seq(line: &[u8]) -> Option<u64> {
    let value: Value = serde_json::from_slice(line).ok()?;
    value.get("hash").and_then(Value::as_str)?;
    value.get("seq").and_then(Value::as_u64)
}

/// Finds the last good record in `window`, the last bytes of a file starting at offset
/// `window_start`. A torn tail is an unterminated last segment, or a newline-terminated last
/// line that is not a record (a crash can leave a filesystem's zero-filled block).
pub(crate) fn scan_tail(window: &[u8], window_start: u64) -> TailScan {
    // (offset, bytes, terminated) of each line whose start lies inside the window.
    let mut lines = Vec::new();
    let mut pos = 0usize;
    if window_start > 0 {
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => pos = i + 1,
            None => return TailScan::NeedMore,
        }
    }
    while pos < window.len() {
        let end = window[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i);
        let (bytes, terminated, next) = match end {
            Some(e) => (&window[pos..e], true, e + 1),
            None => (&window[pos..], false, window.len()),
        };
        lines.push((window_start + pos as u64, bytes, terminated));
        pos = next;
    }

    let mut torn_from = None;
    let mut candidates = lines.iter().rev();
    let Some(&(offset, bytes, terminated)) = candidates.next() else {
        return if window_start == 0 {
            TailScan::Found {
                head: ChainHead::genesis(),
                torn_from: None,
            }
        } else {
            TailScan::NeedMore
        };
    };
    let last_good = match (terminated, record_seq(bytes)) {
        (true, Some(seq)) => Some((seq, bytes)),
        _ => {
            torn_from = Some(offset);
            None
        }
    };
    let last_good = match last_good {
        Some(found) => found,
        None => match candidates.next() {
            Some(&(offset, bytes, _)) => match record_seq(bytes) {
                Some(seq) => (seq, bytes),
                None => {
                    return TailScan::Damaged {
                        offset,
                        detail: "the line before the torn last line is not a record either".into(),
                    };
                }
            },
            None if window_start == 0 => {
                return TailScan::Found {
                    head: ChainHead::genesis(),
                    torn_from,
                };
            }
            None => return TailScan::NeedMore,
        },
    };
    let (seq, bytes) = last_good;
    match std::str::from_utf8(bytes) {
        Ok(line) => TailScan::Found {
            head: ChainHead::after(seq, line),
            torn_from,
        },
        Err(_) => TailScan::Damaged {
            offset,
            detail: "the last record is not UTF-8".into(),
        },
    }
}

/// What opening a log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedLog {
    /// Where the next record goes.
    pub head: ChainHead,
    /// Set when a torn tail was moved aside; the caller records it.
    pub recovered: Option<TornTailEvidence>,
}

/// Failures opening a log. Each leaves the log as it was found or with the torn bytes safely
/// copied aside.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open audit log {path}: {source}; check the volume is mounted and writable")]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "audit log {path} is in use by another process; only one writer (the leader) may \
         append to it"
    )]
    Locked { path: PathBuf },
    #[error("cannot read the end of audit log {path}: {source}")]
    ReadTail { path: PathBuf, source: io::Error },
    #[error(
        "audit log {path} is damaged at byte {offset} ({detail}), not just a torn last line; \
         run `fife audit verify {path}`, keep a copy, and move the damaged part aside by hand"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    #[error("cannot move the torn end of audit log {path} aside to {to}: {source}")]
    MoveAside {
        path: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
}

struct FileState {
    file: File,
    /// Length of the file as this writer last left it whole.
    len: u64,
    /// Set after a failed fsync: what reached the disk is unknown, so nothing more is written
    /// until a restart re-reads the end of the log.
    poisoned: bool,
}

/// The append-only JSON Lines file sink.
pub struct FileSink {
    path: PathBuf,
    state: Mutex<FileState>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileSink {
    /// Opens (creating) the log at `path`, takes its lock, and moves a torn tail aside to
    /// `PATH.torn-<seq>-<unix_seconds>`, `seq` being the one the torn record would have had.
    pub fn open(path: &Path, unix_seconds: i64) -> Result<(FileSink, OpenedLog), OpenError> {
        let open_err = |source| OpenError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(open_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(open_err(e)),
        }
        let read_err = |source| OpenError::ReadTail {
            path: path.to_path_buf(),
            source,
        };
        let len = file.metadata().map_err(read_err)?.len();

        let mut window_len = 64 * 1024u64;
        let (head, torn_from) = loop {
            let start = len.saturating_sub(window_len);
            let mut window = Vec::with_capacity((len - start) as usize);
            file.seek(SeekFrom::Start(start)).map_err(read_err)?;
            (&mut file)
                .take(len - start)
                .read_to_end(&mut window)
                .map_err(read_err)?;
            match scan_tail(&window, start) {
                TailScan::Found { head, torn_from } => break (head, torn_from),
                TailScan::NeedMore => window_len *= 2,
                TailScan::Damaged { offset, detail } => {
                    return Err(OpenError::Damaged {
                        path: path.to_path_buf(),
                        offset,
                        detail,
                    });
                }
            }
        };

        let mut recovered = None;
        let mut whole_len = len;
        if let Some(offset) = torn_from {
            let torn_path = torn_path(path, head.next_seq, unix_seconds);
            let evidence = move_aside(&mut file, path, &torn_path, offset, len)?;
            recovered = Some(evidence);
            whole_len = offset;
        }
        let sink = FileSink {
            path: path.to_path_buf(),
            state: Mutex::new(FileState {
                file,
                len: whole_len,
                poisoned: false,
            }),
        };
        Ok((sink, OpenedLog { head, recovered }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn torn_path(path: &Path, seq: u64, unix_seconds: i64) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".torn-{seq}-{unix_seconds}"));
    PathBuf::from(name)
}

/// Copies `[offset, len)` to `to` durably, then truncates the log to `offset` durably. In
/// this order a crash in between leaves the torn bytes in both places, never in neither.
fn move_aside(
    file: &mut File,
    path: &Path,
    to: &Path,
    offset: u64,
    len: u64,
) -> Result<TornTailEvidence, OpenError> {
    let err = |source| OpenError::MoveAside {
        path: path.to_path_buf(),
        to: to.to_path_buf(),
        source,
    };
    let mut torn = Vec::with_capacity((len - offset) as usize);
    file.seek(SeekFrom::Start(offset)).map_err(err)?;
    file.take(len - offset)
        .read_to_end(&mut torn)
        .map_err(err)?;
    let mut aside = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(err)?;
    aside.write_all(&torn).map_err(err)?;
    aside.sync_all().map_err(err)?;
    sync_parent_dir(to).map_err(err)?;
    file.set_len(offset).map_err(err)?;
    file.sync_all().map_err(err)?;
    Ok(TornTailEvidence {
        moved_to: to.display().to_string(),
        offset,
        bytes: torn.len() as u64,
        sha256: sha256_hex(&torn),
    })
}

/// Makes a new directory entry durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl AuditSink for FileSink {
    fn name(&self) -> &str {
        "file"
    }

    fn deliver(&self, sealed: &SealedRecord) -> Result<(), SinkError> {
        // A poisoned mutex means a writer panicked mid-append; the state is still a file and
        // a length, and the length is only advanced after a durable write, so it is usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let seq = sealed.record.seq;
        if state.poisoned {
            return Err(SinkError::Closed {
                path: self.path.clone(),
            });
        }
        let mut bytes = Vec::with_capacity(sealed.line.len() + 1);
        bytes.extend_from_slice(sealed.line.as_bytes());
        bytes.push(b'\n');
        if let Err(source) = state.file.write_all(&bytes) {
            // Cut off whatever part reached the file, so the next record does not follow a
            // torn line; if even that fails, stop writing until a restart repairs the tail.
            let len = state.len;
            if state
                .file
                .set_len(len)
                .and_then(|()| state.file.sync_data())
                .is_err()
            {
                state.poisoned = true;
            }
            return Err(SinkError::Write {
                path: self.path.clone(),
                seq,
                source,
            });
        }
        if let Err(source) = state.file.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages; what is on disk
            // is unknown, so the only safe answer is to stop and re-read the tail on restart.
            state.poisoned = true;
            return Err(SinkError::Sync {
                path: self.path.clone(),
                seq,
                source,
            });
        }
        state.len += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> String {
        format!(r#"{{"hash":"h{seq}","seq":{seq}}}"#)
    }

    #[test]
    fn whole_tail_continues_after_last_record() {
        let log = format!("{}\n{}\n", rec(1), rec(2));
        let scan = scan_tail(log.as_bytes(), 0);
        assert_eq!(
            scan,
            TailScan::Found {
                head: ChainHead::after(2, &rec(2)),
                torn_from: None
            }
        );
    }

    #[test]
    fn unterminated_or_unparseable_last_line_is_torn() {
        let good = format!("{}\n{}\n", rec(1), rec(2));
        for tail in [
            r#"{"hash":"h3","se"#,
            "{\"hash\":\"h3\",\"seq\":3}",
            "\0\0\0\0\n",
        ] {
            let log = format!("{good}{tail}");
            assert_eq!(
                scan_tail(log.as_bytes(), 0),
                TailScan::Found {
                    head: ChainHead::after(2, &rec(2)),
                    torn_from: Some(good.len() as u64)
                },
                "{tail:?}"
            );
        }
    }

    #[test]
    fn torn_first_line_leaves_an_empty_chain() {
        assert_eq!(
            scan_tail(b"{\"seq\":1,", 0),
            TailScan::Found {
                head: ChainHead::genesis(),
                torn_from: Some(0)
            }
        );
        assert_eq!(
            scan_tail(b"", 0),
            TailScan::Found {
                head: ChainHead::genesis(),
                torn_from: None
            }
        );
    }

    #[test]
    fn two_bad_lines_are_damage_not_a_crash() {
        let log = format!("{}\nnot json\n{{\"se", rec(1));
        assert!(matches!(
            scan_tail(log.as_bytes(), 0),
            TailScan::Damaged { .. }
        ));
    }

    #[test]
    fn window_must_reach_the_start_of_the_last_line() {
        let log = format!("{}\n{}\n", rec(1), rec(2));
        let start = rec(1).len() as u64 + 3; // inside record 2
        assert_eq!(
            scan_tail(&log.as_bytes()[start as usize..], start),
            TailScan::NeedMore
        );
        let start = rec(1).len() as u64; // at the newline before record 2
        assert!(matches!(
            scan_tail(&log.as_bytes()[start as usize..], start),
            TailScan::Found {
                torn_from: None,
                ..
            }
        ));
    }
}
