//! The request journal: the API requests the server answered, in arrival order, with their
//! time, so a test can check *when* a client wrote what — e.g. that Fife's audit record of
//! a decision is older than the API write that carries the decision out — and *who* the
//! server authenticated for it.
//!
//! Served as `GET /testkit/journal` (`?since=N`: entries with `index >= N`), emptied by
//! `DELETE /testkit/journal`, and read in-process with [`super::ApiServer::journal`]. It
//! keeps the newest [`super::Config::journal_capacity`] entries (0 turns it off); admin
//! requests under `/testkit/` are not journaled.

use std::collections::VecDeque;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// One request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Position in arrival order, from 0, never reused (also after entries were dropped).
    pub index: u64,
    /// When the request arrived, before any injected delay.
    pub time: DateTime<Utc>,
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    /// The HTTP status answered (for a watch: of the stream's start).
    pub status: u16,
    /// The authenticated user's name; absent when the request was refused as
    /// unauthenticated (401).
    pub user: Option<String>,
    /// The `fieldManager` query parameter, when given (server-side apply names its manager).
    pub field_manager: Option<String>,
    /// The body of a write (`POST`, `PUT`, `PATCH`, `DELETE`): JSON when it parses, else
    /// text; absent for reads and empty bodies.
    pub body: Option<Value>,
}

/// The bounded journal.
#[derive(Debug)]
pub struct Journal {
    entries: VecDeque<Entry>,
    capacity: usize,
    next_index: u64,
}

/// An entry as stored: the body stays bytes (a cheap reference) until someone reads it.
#[derive(Debug)]
struct Entry {
    index: u64,
    time: DateTime<Utc>,
    method: String,
    path: String,
    status: u16,
    user: Option<String>,
    field_manager: Option<String>,
    body: Option<Bytes>,
}

/// What one request was, for [`Journal::record`].
#[derive(Debug)]
pub struct Request<'a> {
    pub time: DateTime<Utc>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub user: Option<&'a str>,
    pub body: &'a Bytes,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Journal {
            entries: VecDeque::new(),
            capacity,
            next_index: 0,
        }
    }

    pub fn record(&mut self, request: Request<'_>) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        let write = matches!(request.method, "POST" | "PUT" | "PATCH" | "DELETE");
        let field_manager = request
            .path
            .split_once('?')
            .and_then(|(_, query)| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("fieldManager="))
            })
            .map(str::to_owned);
        self.entries.push_back(Entry {
            index: self.next_index,
            time: request.time,
            method: request.method.to_owned(),
            path: request.path.to_owned(),
            status: request.status,
            user: request.user.map(str::to_owned),
            field_manager,
            body: (write && !request.body.is_empty()).then(|| request.body.clone()),
        });
        self.next_index += 1;
    }

    /// The entries with `index >= since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<JournalEntry> {
        self.entries
            .iter()
            .filter(|e| e.index >= since)
            .map(|e| JournalEntry {
                index: e.index,
                time: e.time,
                method: e.method.clone(),
                path: e.path.clone(),
                status: e.status,
                user: e.user.clone(),
                field_manager: e.field_manager.clone(),
                body: e.body.as_ref().map(|b| {
                    serde_json::from_slice(b)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()))
                }),
            })
            .collect()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(method: &'a str, path: &'a str, body: &'a Bytes) -> Request<'a> {
        Request {
            time: Utc::now(),
            method,
            path,
            status: 200,
            user: Some("kubernetes-admin"),
            body,
        }
    }

    #[test]
    fn keeps_the_newest_entries_in_order_with_write_bodies() {
        let mut journal = Journal::new(2);
        let patch = Bytes::from_static(br#"{"spec":{"replicas":3}}"#);
        let empty = Bytes::new();
        journal.record(request("GET", "/api/v1/pods", &empty));
        journal.record(request(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web?fieldManager=fife&force=true",
            &patch,
        ));
        journal.record(request("GET", "/api/v1/pods?watch=true", &patch));
        let entries = journal.since(0);
        assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(entries[0].field_manager.as_deref(), Some("fife"));
        assert_eq!(entries[0].user.as_deref(), Some("kubernetes-admin"));
        assert_eq!(entries[0].body.as_ref().unwrap()["spec"]["replicas"], 3);
        assert_eq!(entries[1].body, None, "reads keep no body");
        assert_eq!(journal.since(2).len(), 1);
        journal.clear();
        assert!(journal.since(0).is_empty());
    }

    #[test]
    fn capacity_zero_journals_nothing() {
        let mut journal = Journal::new(0);
        journal.record(request("DELETE", "/api/v1/pods/x", &Bytes::new()));
        assert!(journal.since(0).is_empty());
    }
}
