//! Freezes and deployment windows: whether a change may proceed at an instant, which
//! schedule closes it, and when it opens again. Deny wins over allow; with allow windows
//! listed, a change proceeds only inside one of them.
//!
//! Cron fields are read as wall-clock time in the schedule's time zone (jiff's bundled
//! tz database, so the answer does not depend on the machine): a window that opens at 09:00
//! opens at 09:00 local time on both sides of a DST change, and a window is a span of real
//! time (`duration`) from its opening.

use fife_api::release::{FreezeEffect, Schedule, ScheduleKind};
use jiff::civil::{Date, DateTime};
use jiff::tz::{Disambiguation, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// How many openings are walked to merge overlapping windows, and how many closings and
/// openings to find when a calendar opens: bounded so that no schedule can make evaluation
/// loop. Windows that keep overlapping beyond it are reported as closing at the last one
/// walked, and are walked again from there on the next evaluation.
const MAX_STEPS: usize = 48;

/// Why a schedule cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule {schedule}: cron {cron:?} is not a five-field cron expression (minute hour day-of-month month day-of-week): {detail}"
    )]
    Cron {
        schedule: String,
        cron: String,
        detail: String,
    },
    #[error(
        "schedule {schedule}: time zone {zone:?} is unknown: use an IANA name such as Europe/Berlin or UTC"
    )]
    TimeZone { schedule: String, zone: String },
    #[error("schedule {schedule}: duration must be longer than zero")]
    ZeroDuration { schedule: String },
}

/// One schedule, parsed.
#[derive(Clone, Debug)]
pub struct Window {
    pub name: String,
    pub kind: ScheduleKind,
    pub effect: FreezeEffect,
    cron: Cron,
    zone: TimeZone,
    duration: SignedDuration,
}

impl Window {
    /// Parses a schedule of a ReleasePolicy.
    pub fn parse(schedule: &Schedule) -> Result<Window, ScheduleError> {
        let name = schedule.name.clone();
        let cron = Cron::parse(&schedule.cron).map_err(|detail| ScheduleError::Cron {
            schedule: name.clone(),
            cron: schedule.cron.clone(),
            detail,
        })?;
        let zone =
            jiff::tz::db()
                .get(&schedule.time_zone)
                .map_err(|_| ScheduleError::TimeZone {
                    schedule: name.clone(),
                    zone: schedule.time_zone.clone(),
                })?;
        let millis = i64::try_from(schedule.duration.as_millis()).unwrap_or(i64::MAX);
        if millis == 0 {
            return Err(ScheduleError::ZeroDuration { schedule: name });
        }
        Ok(Window {
            name,
            kind: schedule.kind,
            effect: schedule.effect,
            cron,
            zone,
            duration: SignedDuration::from_millis(millis),
        })
    }

    /// The openings strictly after `t`, in order.
    fn openings_after(&self, t: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
        let mut from = t;
        std::iter::from_fn(move || {
            let next = self.cron.next_after(from, &self.zone)?;
            from = next;
            Some(next)
        })
        .take(MAX_STEPS)
    }

    /// When the window in force at `now` closes (overlapping windows merged); `None` when
    /// no window of this schedule is open at `now`.
    pub fn open_until(&self, now: Timestamp) -> Option<Timestamp> {
        let earliest = now.checked_sub(self.duration).ok()?;
        // Every opening in (now - duration, now] covers now; an opening exactly `duration`
        // before now has just closed (windows are [open, close)). Later openings before
        // the close extend the same window.
        let mut closes: Option<Timestamp> = None;
        for opening in self.openings_after(earliest) {
            match closes {
                None if opening > now => return None,
                Some(close) if opening > close => break,
                _ => {}
            }
            let close = opening.checked_add(self.duration).ok()?;
            closes = Some(closes.map_or(close, |c| c.max(close)));
        }
        closes
    }

    /// The first opening strictly after `t`.
    pub fn next_opening(&self, t: Timestamp) -> Option<Timestamp> {
        self.openings_after(t).next()
    }
}

/// Whether changes may proceed at an instant, under a set of schedules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Calendar {
    Open,
    /// A freeze is in force (`kind: Deny`) or no deployment window is open
    /// (`kind: Allow`); `schedule` names the one that decides.
    Closed {
        schedule: String,
        kind: ScheduleKind,
        effect: FreezeEffect,
        /// When every freeze has ended and (with allow windows) one is open; `None` when
        /// no such time is found within the schedules' next openings.
        opens_at: Option<Timestamp>,
    },
}

/// The calendar at `now`: deny wins, then allow windows if any are listed.
pub fn calendar(windows: &[Window], now: Timestamp) -> Calendar {
    let Some((schedule, kind, effect)) = closed_by(windows, now) else {
        return Calendar::Open;
    };
    Calendar::Closed {
        schedule,
        kind,
        effect,
        opens_at: opens_at(windows, now),
    }
}

/// The schedule that closes `t`, if any: the freeze in force, else the absence of an
/// allow window.
fn closed_by(windows: &[Window], t: Timestamp) -> Option<(String, ScheduleKind, FreezeEffect)> {
    // Of several freezes in force, HoldAtStep is the stricter effect and is reported.
    let mut denies: Vec<&Window> = windows
        .iter()
        .filter(|w| w.kind == ScheduleKind::Deny && w.open_until(t).is_some())
        .collect();
    denies.sort_by_key(|w| w.effect != FreezeEffect::HoldAtStep);
    if let Some(deny) = denies.first() {
        return Some((deny.name.clone(), deny.kind, deny.effect));
    }
    let allows: Vec<&Window> = windows
        .iter()
        .filter(|w| w.kind == ScheduleKind::Allow)
        .collect();
    if allows.is_empty() || allows.iter().any(|w| w.open_until(t).is_some()) {
        return None;
    }
    // Outside every deployment window, running rollouts continue: an allow window only
    // says when a change may start.
    Some((
        allows[0].name.clone(),
        ScheduleKind::Allow,
        FreezeEffect::DoNotStart,
    ))
}

/// The first instant after `now` at which `closed_by` is `None`.
fn opens_at(windows: &[Window], now: Timestamp) -> Option<Timestamp> {
    let mut t = now;
    for _ in 0..MAX_STEPS {
        let deny_close = windows
            .iter()
            .filter(|w| w.kind == ScheduleKind::Deny)
            .filter_map(|w| w.open_until(t))
            .max();
        if let Some(close) = deny_close {
            t = close;
            continue;
        }
        let allows: Vec<&Window> = windows
            .iter()
            .filter(|w| w.kind == ScheduleKind::Allow)
            .collect();
        if allows.is_empty() || allows.iter().any(|w| w.open_until(t).is_some()) {
            return Some(t);
        }
        // The earliest allow opening after t; openings are strictly after, so step back a
        // nanosecond to include one exactly at t.
        let from = t.checked_sub(SignedDuration::from_nanos(1)).ok()?;
        t = allows.iter().filter_map(|w| w.next_opening(from)).min()?;
    }
    None
}

/// A five-field POSIX cron expression: minute, hour, day of month, month, day of week
/// (0 or 7 = Sunday, or names), with `*`, lists, ranges and steps. When both day fields
/// are restricted a day matches either, as in Vixie cron.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    any_day: bool,
    any_weekday: bool,
}

/// How far ahead an opening is searched: a cron such as `0 0 29 2 1` (Feb 29th or a
/// Monday) still opens within this span; one that never does (`0 0 31 2 *`) has none.
const SEARCH_DAYS: i32 = 8 * 366;

impl Cron {
    fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!("found {} fields", fields.len()));
        };
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let mut weekdays = field(weekday, 0, 7, &DAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes: field(minute, 0, 59, &[], 0)?,
            hours: field(hour, 0, 23, &[], 0)?,
            days: field(day, 1, 31, &[], 0)?,
            months: field(month, 1, 12, &MONTHS, 1)?,
            weekdays: weekdays & 0x7f,
            any_day: day == "*",
            any_weekday: weekday == "*",
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let by_day = self.days & (1 << date.day()) != 0;
        let weekday = date.weekday().to_sunday_zero_offset();
        let by_weekday = self.weekdays & (1 << weekday) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => by_day || by_weekday,
            _ => by_day && by_weekday,
        }
    }

    /// The first opening strictly after `t`. A wall-clock time that a spring change skips
    /// opens at the instant after the gap; one that an autumn change repeats opens once,
    /// at its first occurrence.
    fn next_after(&self, t: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let start = zone.to_datetime(t).date();
        for offset in 0..SEARCH_DAYS {
            let date = start.checked_add(jiff::Span::new().days(offset)).ok()?;
            if !self.day_matches(date) {
                continue;
            }
            for hour in bits(self.hours) {
                for minute in bits(self.minutes) {
                    let wall = DateTime::from_parts(
                        date,
                        jiff::civil::Time::new(hour as i8, minute as i8, 0, 0).ok()?,
                    );
                    let at = zone
                        .to_ambiguous_timestamp(wall)
                        .disambiguate(Disambiguation::Compatible)
                        .ok()?;
                    if at > t {
                        return Some(at);
                    }
                }
            }
        }
        None
    }
}

fn bits(set: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |i| set & (1 << i) != 0)
}

/// One cron field as a bit set over `min..=max`. `names` (lower case) stand for numbers
/// counted from `first`.
fn field(text: &str, min: u32, max: u32, names: &[&str], first: u32) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let lower = v.to_ascii_lowercase();
        let n = match names.iter().position(|n| *n == lower) {
            Some(i) => i as u32 + first,
            None => v
                .parse::<u32>()
                .map_err(|_| format!("{v:?} is not a number or a name"))?,
        };
        if n < min || n > max {
            return Err(format!("{n} is outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step {step:?} is not a positive number"))?,
            ),
            None => (item, 1),
        };
        let (low, high) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(range)?, max),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        if low > high {
            return Err(format!("range {range:?} runs backwards"));
        }
        for n in (low..=high).step_by(step as usize) {
            set |= 1 << n;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_api::Duration;

    fn window(kind: ScheduleKind, cron: &str, zone: &str, minutes: u64) -> Window {
        Window::parse(&Schedule {
            name: format!("{cron} {zone}"),
            kind,
            cron: cron.to_owned(),
            time_zone: zone.to_owned(),
            duration: Duration::from_secs(minutes * 60),
            ..Schedule::default()
        })
        .unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn cron_fields_read_as_posix_cron_reads_them() {
        let weekdays = Cron::parse("0 9 * * 1-5").unwrap();
        assert_eq!(weekdays.weekdays, 0b011_1110);
        assert_eq!(Cron::parse("0 9 * * 7").unwrap().weekdays, 1, "7 is Sunday");
        assert_eq!(Cron::parse("0 9 * * sat,SUN").unwrap().weekdays, 0b100_0001);
        assert_eq!(
            Cron::parse("*/15 * * * *").unwrap().minutes,
            1 | 1 << 15 | 1 << 30 | 1 << 45
        );
        assert_eq!(
            Cron::parse("5/20 * * * *").unwrap().minutes,
            1 << 5 | 1 << 25 | 1 << 45
        );
        assert_eq!(Cron::parse("0 0 1 jan-mar *").unwrap().months, 0b1110);
        for bad in [
            "0 9 * *",
            "0 9 * * 8",
            "60 * * * *",
            "0 9 * * mon-",
            "*/0 * * * *",
            "5-1 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn restricted_day_fields_match_either_as_in_vixie_cron() {
        // The 1st of the month or any Monday.
        let w = window(ScheduleKind::Deny, "0 0 1 * 1", "UTC", 60);
        assert_eq!(
            w.next_opening(at("2026-12-01T01:00:00Z")),
            Some(at("2026-12-07T00:00:00Z")),
            "Monday 7th"
        );
        assert_eq!(
            w.next_opening(at("2026-12-28T01:00:00Z")),
            Some(at("2027-01-01T00:00:00Z")),
            "Friday 1st"
        );
        let never = window(ScheduleKind::Deny, "0 0 31 2 *", "UTC", 60);
        assert_eq!(never.next_opening(at("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn errors_name_the_schedule_and_the_fix() {
        let bad_zone = Window::parse(&Schedule {
            name: "weekend".into(),
            cron: "0 18 * * Fri".into(),
            time_zone: "Mars/Olympus".into(),
            duration: Duration::from_secs(60),
            ..Schedule::default()
        })
        .unwrap_err();
        assert!(bad_zone.to_string().contains("weekend"));
        assert!(bad_zone.to_string().contains("IANA"));
        let bad_cron = Window::parse(&Schedule {
            name: "weekend".into(),
            cron: "every friday".into(),
            duration: Duration::from_secs(60),
            ..Schedule::default()
        })
        .unwrap_err();
        assert!(matches!(bad_cron, ScheduleError::Cron { .. }));
    }

    #[test]
    fn a_weekend_freeze_holds_from_friday_evening_to_monday_morning() {
        // Friday 18:00 Berlin for 63 hours: until Monday 09:00.
        let freeze = window(ScheduleKind::Deny, "0 18 * * 5", "Europe/Berlin", 63 * 60);
        // 2026-03-06 is a Friday; Berlin is UTC+1 in winter.
        assert_eq!(freeze.open_until(at("2026-03-06T16:59:59Z")), None);
        assert_eq!(
            freeze.open_until(at("2026-03-06T17:00:00Z")),
            Some(at("2026-03-09T08:00:00Z"))
        );
        assert_eq!(
            freeze.open_until(at("2026-03-08T12:00:00Z")),
            Some(at("2026-03-09T08:00:00Z"))
        );
        assert_eq!(freeze.open_until(at("2026-03-09T08:00:00Z")), None);
    }

    #[test]
    fn windows_keep_local_wall_time_across_the_spring_change_in_berlin() {
        // Europe/Berlin goes from UTC+1 to UTC+2 on Sunday 2026-03-29 at 02:00 local.
        let daily = window(ScheduleKind::Allow, "0 9 * * *", "Europe/Berlin", 8 * 60);
        assert_eq!(
            daily.next_opening(at("2026-03-28T00:00:00Z")),
            Some(at("2026-03-28T08:00:00Z"))
        );
        assert_eq!(
            daily.next_opening(at("2026-03-29T00:00:00Z")),
            Some(at("2026-03-29T07:00:00Z")),
            "09:00 local is 07:00 UTC after the change"
        );
        // A window over the missing hour lasts its real-time duration.
        let night = window(ScheduleKind::Deny, "0 1 * * *", "Europe/Berlin", 120);
        assert_eq!(
            night.open_until(at("2026-03-29T00:30:00Z")),
            Some(at("2026-03-29T02:00:00Z"))
        );
    }

    #[test]
    fn windows_keep_local_wall_time_across_the_autumn_change_in_new_york() {
        // America/New_York goes from UTC-4 to UTC-5 on Sunday 2026-11-01 at 02:00 local.
        let daily = window(ScheduleKind::Allow, "0 9 * * *", "America/New_York", 60);
        assert_eq!(
            daily.next_opening(at("2026-10-31T00:00:00Z")),
            Some(at("2026-10-31T13:00:00Z"))
        );
        assert_eq!(
            daily.next_opening(at("2026-11-01T00:00:00Z")),
            Some(at("2026-11-01T14:00:00Z"))
        );
        // 01:30 happens twice that night; a freeze opening then opens at the first.
        let fold = window(ScheduleKind::Deny, "30 1 * * *", "America/New_York", 30);
        assert_eq!(
            fold.next_opening(at("2026-11-01T00:00:00Z")),
            Some(at("2026-11-01T05:30:00Z"))
        );
    }

    #[test]
    fn deny_wins_and_opens_at_is_when_a_window_is_open_and_no_freeze_is() {
        // Deployment window weekdays 09:00-17:00 New York; a freeze on 2026-11-26
        // (Thanksgiving, a Thursday) all day.
        let windows = [
            window(
                ScheduleKind::Allow,
                "0 9 * * 1-5",
                "America/New_York",
                8 * 60,
            ),
            window(
                ScheduleKind::Deny,
                "0 0 26 11 *",
                "America/New_York",
                24 * 60,
            ),
        ];
        // Thursday 10:00 local (15:00Z): inside the allow window, but frozen.
        let closed = calendar(&windows, at("2026-11-26T15:00:00Z"));
        let Calendar::Closed { kind, opens_at, .. } = closed else {
            panic!("frozen: {closed:?}")
        };
        assert_eq!(kind, ScheduleKind::Deny);
        assert_eq!(
            opens_at,
            Some(at("2026-11-27T14:00:00Z")),
            "Friday 09:00 local"
        );
        // Saturday: outside every window; opens Monday 09:00 local.
        let weekend = calendar(&windows, at("2026-11-28T15:00:00Z"));
        assert!(matches!(
            weekend,
            Calendar::Closed { kind: ScheduleKind::Allow, opens_at: Some(t), effect: FreezeEffect::DoNotStart, .. }
                if t == at("2026-11-30T14:00:00Z")
        ));
        assert_eq!(
            calendar(&windows, at("2026-11-30T14:00:00Z")),
            Calendar::Open
        );
        assert_eq!(calendar(&[], at("2026-11-30T14:00:00Z")), Calendar::Open);
    }

    #[test]
    fn overlapping_openings_merge_into_one_window() {
        // Every hour for 90 minutes: always frozen once started, closes 90 min after the
        // last opening walked.
        let w = window(ScheduleKind::Deny, "0 * * * *", "UTC", 90);
        let until = w.open_until(at("2026-01-01T10:10:00Z")).unwrap();
        assert!(until > at("2026-01-01T11:30:00Z"));
    }
}
