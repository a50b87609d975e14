//! When a rule is active: weekly windows in site-local time, school days, holiday calendars, mute windows.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use serde::Serialize;

use super::config::ScheduleConfig;
use crowdgrid_proto::config::Problems;

/// A site's holidays (from its rule file).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Calendar {
    /// Public holidays.
    pub holidays: BTreeSet<NaiveDate>,
    /// School holidays, inclusive ranges.
    pub school_holidays: Vec<(NaiveDate, NaiveDate)>,
}

impl Calendar {
    /// True on a public holiday.
    pub fn is_holiday(&self, d: NaiveDate) -> bool {
        self.holidays.contains(&d)
    }

    /// True on a weekday that is neither a public holiday nor inside a school holiday.
    pub fn is_school_day(&self, d: NaiveDate) -> bool {
        d.weekday().num_days_from_monday() < 5
            && !self.is_holiday(d)
            && !self.school_holidays.iter().any(|(a, b)| *a <= d && d <= *b)
    }
}

/// A compiled `schedule`: a daily window on selected days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// Days (Monday = 0) on which the window opens.
    pub days: [bool; 7],
    /// Window start, minutes after local midnight.
    pub from_min: u32,
    /// Window end (exclusive), minutes after local midnight; ≤ `from_min` means it ends the next day.
    pub to_min: u32,
    /// Only on school days.
    pub school_days: bool,
    /// Only on public holidays.
    pub holidays_only: bool,
}

impl Schedule {
    /// Whether the window is open at `ts` for a site `offset_min` minutes ahead of UTC.
    pub fn active(&self, ts: DateTime<Utc>, offset_min: i32, cal: &Calendar) -> bool {
        let local = ts.naive_utc() + Duration::minutes(i64::from(offset_min));
        let minute = local.hour() * 60 + local.minute();
        let today = local.date();
        if self.from_min < self.to_min {
            (self.from_min..self.to_min).contains(&minute) && self.day_ok(today, cal)
        } else {
            // The window runs past midnight: it belongs to the day it opened.
            (minute >= self.from_min && self.day_ok(today, cal))
                || (minute < self.to_min && today.pred_opt().is_some_and(|y| self.day_ok(y, cal)))
        }
    }

    fn day_ok(&self, d: NaiveDate, cal: &Calendar) -> bool {
        self.days[d.weekday().num_days_from_monday() as usize]
            && (!self.school_days || cal.is_school_day(d))
            && (!self.holidays_only || cal.is_holiday(d))
    }

    /// Compiles a written schedule, recording problems under `path`.
    pub fn compile(c: &ScheduleConfig, path: &str, p: &mut Problems) -> Option<Schedule> {
        let mut days = [c.days.is_none(); 7];
        let mut ok = true;
        for (i, d) in c.days.iter().flatten().enumerate() {
            match weekday(d) {
                Some(n) => days[n] = true,
                None => {
                    p.push(format!("{path}.days[{i}]"), format!("{d:?} is not one of mon, tue, … sun"));
                    ok = false;
                }
            }
        }
        if c.days.as_ref().is_some_and(Vec::is_empty) {
            p.push(format!("{path}.days"), "must name at least one day");
            ok = false;
        }
        let from = parse_hhmm(&c.from);
        let to = parse_hhmm(&c.to);
        if from.is_none_or(|m| m >= 24 * 60) {
            p.push(format!("{path}.from"), format!("{:?} is not a time HH:MM (00:00 to 23:59)", c.from));
        }
        if to.is_none() {
            p.push(format!("{path}.to"), format!("{:?} is not a time HH:MM (00:00 to 24:00)", c.to));
        }
        if from.is_some() && from == to {
            p.push(format!("{path}.to"), "the window is empty (from = to)");
        }
        if c.school_days && c.holidays_only {
            p.push(path, "school_days and holidays_only exclude each other");
        }
        let (from_min, to_min) = (from.filter(|m| *m < 24 * 60)?, to?);
        (ok && from_min != to_min && !(c.school_days && c.holidays_only)).then_some(Schedule {
            days,
            from_min,
            to_min: if to_min == 24 * 60 && from_min == 0 { to_min } else { to_min % (24 * 60) },
            school_days: c.school_days,
            holidays_only: c.holidays_only,
        })
    }
}

/// A mute window, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mute {
    /// Start.
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
}

/// True when `ts` is inside one of `mutes`.
pub fn muted(mutes: &[Mute], ts: DateTime<Utc>) -> bool {
    mutes.iter().any(|m| m.from <= ts && ts < m.to)
}

/// Parses `HH:MM` into minutes after midnight (`24:00` = 1440).
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Parses an RFC 3339 timestamp with its offset.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

fn weekday(s: &str) -> Option<usize> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().position(|d| *d == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_instant(s).unwrap()
    }

    fn pickup() -> Schedule {
        let c = ScheduleConfig {
            days: Some(["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec()),
            from: "15:30".into(),
            to: "16:30".into(),
            school_days: true,
            holidays_only: false,
        };
        Schedule::compile(&c, "schedule", &mut Problems::new()).unwrap()
    }

    fn calendar() -> Calendar {
        Calendar {
            holidays: [parse_date("2026-04-06").unwrap()].into_iter().collect(),
            school_holidays: vec![(parse_date("2026-07-01").unwrap(), parse_date("2026-08-31").unwrap())],
        }
    }

    #[test]
    fn window_weekday_and_holidays() {
        let (s, cal) = (pickup(), calendar());
        assert!(s.active(at("2026-03-10T15:50:00+08:00"), 480, &cal), "Tuesday pick-up");
        assert!(s.active(at("2026-03-10T07:30:00Z"), 480, &cal), "15:30 local is inside");
        assert!(!s.active(at("2026-03-10T16:30:00+08:00"), 480, &cal), "the end is exclusive");
        assert!(!s.active(at("2026-03-10T15:29:00+08:00"), 480, &cal));
        assert!(!s.active(at("2026-03-14T15:50:00+08:00"), 480, &cal), "Saturday");
        assert!(!s.active(at("2026-04-06T15:50:00+08:00"), 480, &cal), "public holiday (Qingming)");
        assert!(!s.active(at("2026-07-15T15:50:00+08:00"), 480, &cal), "summer holiday");
        assert!(s.active(at("2026-09-01T15:50:00+08:00"), 480, &cal), "first school day");
    }

    #[test]
    fn overnight_windows_belong_to_their_start_day() {
        let c = ScheduleConfig {
            days: Some(vec!["fri".into()]),
            from: "22:00".into(),
            to: "02:00".into(),
            school_days: false,
            holidays_only: false,
        };
        let s = Schedule::compile(&c, "s", &mut Problems::new()).unwrap();
        let cal = Calendar::default();
        assert!(s.active(at("2026-03-13T23:00:00+08:00"), 480, &cal), "Friday night");
        assert!(s.active(at("2026-03-14T01:00:00+08:00"), 480, &cal), "early Saturday");
        assert!(!s.active(at("2026-03-14T23:00:00+08:00"), 480, &cal), "Saturday night");
    }

    #[test]
    fn bad_schedules_report_every_problem() {
        let c = ScheduleConfig {
            days: Some(vec!["monday".into()]),
            from: "25:00".into(),
            to: "4pm".into(),
            school_days: true,
            holidays_only: true,
        };
        let mut p = Problems::new();
        assert!(Schedule::compile(&c, "rule[0].schedule", &mut p).is_none());
        assert_eq!(p.items().len(), 4, "{:?}", p.items());
        assert!(p.items()[0].starts_with("rule[0].schedule.days[0]"));
    }
}
