//! Which slice of the Rollouts this controller runs: the shard named by `--shard KEY`
//! selects the Rollouts labelled [`SHARD_LABEL`]`=KEY`, the default shard (no `--shard`)
//! those without the label. The label selectors of every watch, the name of the shard's
//! Lease and the test "is this object mine" all come from here. Pure.
//!
//! ```text
//!   Rollout  sharding.fife.dev/key=b ──▶ shard b      (watch: sharding.fife.dev/key=b)
//!   Rollout  (no label)              ──▶ default      (watch: !sharding.fife.dev/key)
//!   children, AnalysisRuns carry their Rollout's label ──▶ the same shard's watches
//! ```

use std::collections::BTreeMap;
use std::fmt;

use fife_api::labels::{ROLLOUT_LABEL, SHARD_LABEL};

/// The slice of the Rollouts one controller (and its standby replicas) runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Shard {
    /// The Rollouts without [`SHARD_LABEL`]; also every AnalysisRun no Rollout owns.
    #[default]
    Default,
    /// The Rollouts whose [`SHARD_LABEL`] is this key.
    Keyed(String),
}

/// Why a `--shard` key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--shard {key:?} cannot name a shard: a key is 1 to {MAX_KEY_LEN} lower-case letters, \
     digits and '-', starting and ending with a letter or digit, because it is the value of \
     the {SHARD_LABEL} label and part of the shard's Lease name"
)]
pub struct ShardKeyError {
    pub key: String,
}

/// A label value is at most 63 characters; the key also ends the Lease name
/// `<lease>-shard-<key>`, a DNS subdomain, so it keeps to lower case.
pub const MAX_KEY_LEN: usize = 63;

impl Shard {
    /// The shard `--shard` names; the default shard without it.
    pub fn from_key(key: Option<&str>) -> Result<Shard, ShardKeyError> {
        let Some(key) = key else {
            return Ok(Shard::Default);
        };
        let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let valid = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key.chars().all(|c| edge(c) || c == '-')
            && key.starts_with(edge)
            && key.ends_with(edge);
        if valid {
            Ok(Shard::Keyed(key.to_owned()))
        } else {
            Err(ShardKeyError {
                key: key.to_owned(),
            })
        }
    }

    /// The value of [`SHARD_LABEL`] on this shard's objects; `None` for the default shard.
    pub fn key(&self) -> Option<&str> {
        match self {
            Shard::Default => None,
            Shard::Keyed(key) => Some(key),
        }
    }

    /// The label selector of the Rollout and AnalysisRun watches.
    pub fn selector(&self) -> String {
        match self {
            Shard::Default => format!("!{SHARD_LABEL}"),
            Shard::Keyed(key) => format!("{SHARD_LABEL}={key}"),
        }
    }

    /// The label selector of the Deployment and Service watches: children of a Rollout
    /// (the other Deployments and Services in the cluster never enter the caches) in this
    /// shard.
    pub fn children_selector(&self) -> String {
        format!("{ROLLOUT_LABEL},{}", self.selector())
    }

    /// True when an object with these labels belongs to this shard: what [`Shard::selector`]
    /// selects, tested on an object read from the API.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(SHARD_LABEL).map(String::as_str) == self.key()
    }

    /// The Lease this shard's replicas compete for: `base` for the default shard (so an
    /// install without shards keeps its Lease), `<base>-shard-<key>` otherwise, so each
    /// shard elects its own leader and a shard's replicas fail over among themselves.
    pub fn lease_name(&self, base: &str) -> String {
        match self {
            Shard::Default => base.to_owned(),
            Shard::Keyed(key) => format!("{base}-shard-{key}"),
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shard::Default => f.write_str("default"),
            Shard::Keyed(key) => f.write_str(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_default_shard_selects_what_has_no_shard_label() {
        let shard = Shard::from_key(None).unwrap();
        assert_eq!(shard, Shard::Default);
        assert_eq!(shard.selector(), "!sharding.fife.dev/key");
        assert_eq!(
            shard.children_selector(),
            "fife.dev/rollout,!sharding.fife.dev/key"
        );
        assert!(shard.selects(&labels(&[("app", "web")])));
        assert!(!shard.selects(&labels(&[(SHARD_LABEL, "b")])));
        assert_eq!(shard.lease_name("fife-controller"), "fife-controller");
    }

    #[test]
    fn a_keyed_shard_selects_its_key_only() {
        let shard = Shard::from_key(Some("b")).unwrap();
        assert_eq!(shard.selector(), "sharding.fife.dev/key=b");
        assert_eq!(
            shard.children_selector(),
            "fife.dev/rollout,sharding.fife.dev/key=b"
        );
        assert!(shard.selects(&labels(&[(SHARD_LABEL, "b")])));
        assert!(!shard.selects(&labels(&[(SHARD_LABEL, "c")])));
        assert!(!shard.selects(&labels(&[])));
        assert_eq!(
            shard.lease_name("fife-controller"),
            "fife-controller-shard-b"
        );
        assert_eq!(shard.to_string(), "b");
    }

    #[test]
    fn a_key_must_be_a_label_value_and_a_lease_name_part() {
        for good in ["b", "eu-1", "0", &"a".repeat(MAX_KEY_LEN)] {
            assert!(Shard::from_key(Some(good)).is_ok(), "{good}");
        }
        for bad in ["", "B", "-b", "b-", "a_b", "a.b", "a b", &"a".repeat(64)] {
            let error = Shard::from_key(Some(bad)).unwrap_err();
            assert!(error.to_string().contains(SHARD_LABEL), "{error}");
        }
    }
}
