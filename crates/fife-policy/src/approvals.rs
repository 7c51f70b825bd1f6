//! Approvals and separation of duties: which Approvals bind to this change (Rollout uid,
//! revision, digests), which of their approvers may count (never the author, never the
//! applier), and whether a tier's approval rules are met.

use std::collections::BTreeSet;

use fife_api::release::{Approval, ApprovalRule};

use crate::change::Change;

/// Why an Approval does not count for a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It names another Rollout, another uid, another revision or other digests.
    OtherChange,
    /// The approver wrote the change.
    Author,
    /// The approver applied the change.
    Applier,
}

impl Refusal {
    fn sentence(&self) -> &'static str {
        match self {
            Refusal::OtherChange => "approves another revision or other digests",
            Refusal::Author => "is by the change's author",
            Refusal::Applier => "is by the person who applied the change",
        }
    }
}

/// One Approval of the change, with whether it counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judged {
    pub name: String,
    pub approver: String,
    pub groups: Vec<String>,
    pub refused: Option<Refusal>,
}

/// The separation-of-duties result for one change: author, approvers, deployer and
/// whether they are all different people.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Duties {
    pub author: Option<String>,
    pub applied_by: Option<String>,
    /// Approvers that counted.
    pub approvers: Vec<String>,
    pub ok: bool,
}

/// Every Approval, judged against the change. Approvals for other Rollouts are left out.
pub fn judge(change: &Change, approvals: &[Approval]) -> Vec<Judged> {
    let digests = change.digests();
    approvals
        .iter()
        .filter(|a| a.spec.rollout == change.rollout)
        .map(|a| {
            let spec = &a.spec;
            let mut bound = spec.digests.clone();
            bound.sort();
            bound.dedup();
            let refused = if spec.rollout_uid != change.rollout_uid
                || spec.revision != change.revision
                || bound != digests
            {
                Some(Refusal::OtherChange)
            } else if change.author.as_deref() == Some(spec.approver.as_str()) {
                Some(Refusal::Author)
            } else if change.applied_by.as_deref() == Some(spec.approver.as_str()) {
                Some(Refusal::Applier)
            } else {
                None
            };
            Judged {
                name: a.metadata.name.clone().unwrap_or_default(),
                approver: spec.approver.clone(),
                groups: spec.groups.clone(),
                refused,
            }
        })
        .collect()
}

/// Whether the counted approvals meet every rule; `Err` says what is missing.
pub fn check(rules: &[ApprovalRule], judged: &[Judged]) -> Result<(), String> {
    let mut missing = Vec::new();
    for rule in rules {
        let people: BTreeSet<&str> = judged
            .iter()
            .filter(|j| j.refused.is_none())
            .filter(|j| rule.groups.is_empty() || j.groups.iter().any(|g| rule.groups.contains(g)))
            .map(|j| j.approver.as_str())
            .collect();
        if people.len() < rule.count as usize {
            let from = if rule.groups.is_empty() {
                String::new()
            } else {
                format!(" from {}", rule.groups.join(" or "))
            };
            let so_far = if people.is_empty() {
                "none yet".to_owned()
            } else {
                people.into_iter().collect::<Vec<_>>().join(", ")
            };
            missing.push(format!("{} approval(s){from} ({so_far})", rule.count));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let refused: Vec<String> = judged
        .iter()
        .filter_map(|j| {
            j.refused
                .as_ref()
                .map(|r| format!("{} by {} {}", j.name, j.approver, r.sentence()))
        })
        .collect();
    let refused = if refused.is_empty() {
        String::new()
    } else {
        format!("; not counted: {}", refused.join("; "))
    };
    Err(format!("needs {}{refused}", missing.join(" and ")))
}

/// Author ≠ approver ≠ applier for the approvals that counted.
pub fn duties(change: &Change, judged: &[Judged]) -> Duties {
    let approvers: Vec<String> = judged
        .iter()
        .filter(|j| j.refused.is_none())
        .map(|j| j.approver.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let clash = |who: &Option<String>| {
        who.as_ref()
            .is_some_and(|w| approvers.iter().any(|a| a == w))
    };
    let author_is_applier = change.author.is_some() && change.author == change.applied_by;
    Duties {
        author: change.author.clone(),
        applied_by: change.applied_by.clone(),
        ok: !clash(&change.author) && !clash(&change.applied_by) && !author_is_applier,
        approvers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::release::ApprovalSpec;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn change() -> Change {
        Change {
            rollout: "checkout".into(),
            rollout_uid: "uid-1".into(),
            revision: "rev2".into(),
            images: [("app".to_owned(), format!("reg/app@{D}"))].into(),
            author: Some("alice".into()),
            applied_by: Some("ci-bot".into()),
            ..Change::default()
        }
    }

    fn approval(name: &str, approver: &str, groups: &[&str], revision: &str) -> Approval {
        Approval::new(
            name,
            ApprovalSpec {
                rollout: "checkout".into(),
                rollout_uid: "uid-1".into(),
                revision: revision.into(),
                digests: vec![D.into()],
                approver: approver.into(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                reason: None,
                author: None,
                applied_by: None,
            },
        )
    }

    fn sre(count: u32) -> Vec<ApprovalRule> {
        vec![ApprovalRule {
            groups: vec!["sre".into()],
            count,
        }]
    }

    #[test]
    fn the_authors_own_approval_never_counts() {
        let judged = judge(&change(), &[approval("a1", "alice", &["sre"], "rev2")]);
        assert_eq!(judged[0].refused, Some(Refusal::Author));
        let err = check(&sre(1), &judged).unwrap_err();
        assert!(
            err.contains("a1 by alice is by the change's author"),
            "{err}"
        );
        assert!(!duties(&change(), &judged).ok || duties(&change(), &judged).approvers.is_empty());
    }

    #[test]
    fn the_applier_and_other_revisions_do_not_count() {
        let judged = judge(
            &change(),
            &[
                approval("a1", "ci-bot", &["sre"], "rev2"),
                approval("a2", "bob", &["sre"], "rev1"),
            ],
        );
        assert_eq!(judged[0].refused, Some(Refusal::Applier));
        assert_eq!(judged[1].refused, Some(Refusal::OtherChange));
        assert!(check(&sre(1), &judged).is_err());
    }

    #[test]
    fn two_people_from_the_group_meet_a_two_approval_rule() {
        let judged = judge(
            &change(),
            &[
                approval("a1", "bob", &["sre"], "rev2"),
                approval("a2", "bob", &["sre"], "rev2"),
                approval("a3", "dave", &["dev"], "rev2"),
            ],
        );
        let err = check(&sre(2), &judged).unwrap_err();
        assert!(err.contains("2 approval(s) from sre (bob)"), "{err}");
        let judged = judge(
            &change(),
            &[
                approval("a1", "bob", &["sre"], "rev2"),
                approval("a2", "carol", &["sre", "dev"], "rev2"),
            ],
        );
        assert_eq!(check(&sre(2), &judged), Ok(()));
        let d = duties(&change(), &judged);
        assert!(d.ok);
        assert_eq!(d.approvers, vec!["bob".to_owned(), "carol".to_owned()]);
    }

    #[test]
    fn an_approval_with_other_digests_does_not_count() {
        let mut a = approval("a1", "bob", &["sre"], "rev2");
        a.spec.digests =
            vec!["sha256:2222222222222222222222222222222222222222222222222222222222222222".into()];
        let judged = judge(&change(), &[a]);
        assert_eq!(judged[0].refused, Some(Refusal::OtherChange));
    }
}
