//! Break-glass validity: a BreakGlass lets exactly one change of one Rollout past freezes
//! and approvals, while it has not expired, within the policy's longest duration, and, when
//! the policy asks, with a second person's approval.

use fife_api::release::{BreakGlass, BreakGlassRules};
use jiff::{SignedDuration, Timestamp};

use crate::change::Change;

/// A break-glass that applies to the change, or why the ones naming the Rollout do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Usable {
    /// This BreakGlass lets the change through.
    Valid { name: String, requested_by: String },
    /// None applies; each reason names one BreakGlass of this Rollout and what is wrong.
    None { reasons: Vec<String> },
}

/// The first valid BreakGlass for the change at `now`.
pub fn usable(
    rules: &BreakGlassRules,
    change: &Change,
    break_glasses: &[BreakGlass],
    now: Timestamp,
) -> Usable {
    let digests = change.digests();
    let mut reasons = Vec::new();
    for bg in break_glasses
        .iter()
        .filter(|b| b.spec.rollout == change.rollout)
    {
        let name = bg.metadata.name.clone().unwrap_or_default();
        match problem(rules, bg, &digests, now) {
            None => {
                return Usable::Valid {
                    name,
                    requested_by: bg.spec.requested_by.clone(),
                };
            }
            Some(problem) => reasons.push(format!("break-glass {name} {problem}")),
        }
    }
    Usable::None { reasons }
}

fn problem(
    rules: &BreakGlassRules,
    bg: &BreakGlass,
    digests: &[String],
    now: Timestamp,
) -> Option<String> {
    let spec = &bg.spec;
    let mut bound = spec.digests.clone();
    bound.sort();
    bound.dedup();
    if bound.is_empty() || bound != digests {
        return Some("is for other digests than this change".to_owned());
    }
    let expires = spec.expires_at.0;
    if expires <= now {
        return Some(format!("expired at {expires}"));
    }
    let created = bg.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let longest = SignedDuration::from_millis(
        i64::try_from(rules.max_duration.as_millis()).unwrap_or(i64::MAX),
    );
    match created {
        None => return Some("has no creation time".to_owned()),
        Some(created) if expires.duration_since(created) > longest => {
            return Some(format!(
                "is valid for longer than the policy's break-glass limit of {}: create it with an earlier expiry",
                rules.max_duration
            ));
        }
        Some(_) => {}
    }
    if rules.require_second_approval {
        match &spec.second_approval {
            None => {
                return Some(
                    "waits for a second person's approval (kubectl fife break-glass approve)"
                        .to_owned(),
                );
            }
            Some(a) if a.approved_by == spec.requested_by => {
                return Some(
                    "is approved by its own requester, who cannot be the second person".to_owned(),
                );
            }
            Some(_) => {}
        }
    }
    None
}

/// A break-glass whose post-hoc review is still open: no review, or one by the requester.
pub fn review_open(bg: &BreakGlass) -> bool {
    bg.spec
        .review
        .as_ref()
        .is_none_or(|r| r.reviewed_by == bg.spec.requested_by)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::Duration;
    use fife_api::release::{BreakGlassApproval, BreakGlassReview, BreakGlassSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn change() -> Change {
        Change {
            rollout: "checkout".into(),
            images: [("app".to_owned(), format!("reg/app@{D}"))].into(),
            ..Change::default()
        }
    }

    fn bg(expires: &str) -> BreakGlass {
        let mut bg = BreakGlass::new(
            "bg1",
            BreakGlassSpec {
                rollout: "checkout".into(),
                digests: vec![D.into()],
                reason: "payment outage".into(),
                incident: "INC-1".into(),
                expires_at: Time(at(expires)),
                requested_by: "erin".into(),
                second_approval: None,
                review: None,
            },
        );
        bg.metadata.creation_timestamp = Some(Time(at("2026-12-01T10:00:00Z")));
        bg
    }

    fn rules(second: bool) -> BreakGlassRules {
        BreakGlassRules {
            require_second_approval: second,
            max_duration: Duration::from_secs(4 * 3600),
        }
    }

    #[test]
    fn valid_for_exactly_its_digests_until_it_expires() {
        let now = at("2026-12-01T11:00:00Z");
        let b = bg("2026-12-01T12:00:00Z");
        assert!(matches!(
            usable(&rules(false), &change(), std::slice::from_ref(&b), now),
            Usable::Valid { ref requested_by, .. } if requested_by == "erin"
        ));
        let mut other = change();
        other.images.insert(
            "app".into(),
            "reg/app@sha256:2222222222222222222222222222222222222222222222222222222222222222"
                .into(),
        );
        let Usable::None { reasons } = usable(&rules(false), &other, std::slice::from_ref(&b), now)
        else {
            panic!("another digest must not pass")
        };
        assert!(reasons[0].contains("other digests"));
        assert!(matches!(
            usable(&rules(false), &change(), &[b], at("2026-12-01T12:00:00Z")),
            Usable::None { .. }
        ));
    }

    #[test]
    fn longer_than_the_policy_allows_is_refused() {
        let b = bg("2026-12-02T10:00:00Z");
        let Usable::None { reasons } =
            usable(&rules(false), &change(), &[b], at("2026-12-01T11:00:00Z"))
        else {
            panic!()
        };
        assert!(reasons[0].contains("limit of 4h"), "{reasons:?}");
    }

    #[test]
    fn a_second_approval_must_come_from_another_person() {
        let now = at("2026-12-01T11:00:00Z");
        let mut b = bg("2026-12-01T12:00:00Z");
        assert!(matches!(
            usable(&rules(true), &change(), std::slice::from_ref(&b), now),
            Usable::None { .. }
        ));
        b.spec.second_approval = Some(BreakGlassApproval {
            approved_by: "erin".into(),
            approved_at: Time(now),
        });
        assert!(matches!(
            usable(&rules(true), &change(), std::slice::from_ref(&b), now),
            Usable::None { .. }
        ));
        b.spec.second_approval = Some(BreakGlassApproval {
            approved_by: "frank".into(),
            approved_at: Time(now),
        });
        assert!(matches!(
            usable(&rules(true), &change(), &[b], now),
            Usable::Valid { .. }
        ));
    }

    #[test]
    fn the_review_stays_open_until_someone_else_closes_it() {
        let mut b = bg("2026-12-01T12:00:00Z");
        assert!(review_open(&b));
        b.spec.review = Some(BreakGlassReview {
            reviewed_by: "erin".into(),
            reviewed_at: Time(at("2026-12-01T13:00:00Z")),
            notes: None,
        });
        assert!(review_open(&b));
        b.spec.review.as_mut().unwrap().reviewed_by = "frank".into();
        assert!(!review_open(&b));
    }
}
