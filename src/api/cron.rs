//! Cron schedules for CronJobs, with the semantics Kubernetes gets from
//! robfig/cron v3's standard parser.
//!
//! Five fields (minute, hour, day of month, month, day of week) with `*`,
//! `?`, lists, ranges, steps (`N/step` means `N-max/step`) and three-letter
//! month and weekday names; the macros `@yearly`, `@annually`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight` and `@hourly`. When both day fields are
//! restricted a day matches if either does (Vixie cron); a field counts as
//! unrestricted when it is `*` or `?` (with step 1). `@every` and the `TZ=` /
//! `CRON_TZ=` prefixes are refused, as the Kubernetes API server refuses
//! them (the time zone belongs in `spec.timeZone`).
//!
//! Times are computed on whole minutes. In zones with daylight saving time a
//! local time that occurs twice fires at its first occurrence after the
//! reference time, and a local time that does not exist (the spring-forward
//! gap) does not fire that day.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc,
};

/// Why a schedule or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("empty schedule")]
    Empty,
    #[error(
        "schedule {schedule:?}: cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    )]
    TimeZonePrefix { schedule: String },
    #[error("schedule {schedule:?}: @every is not supported, use a cron expression")]
    Every { schedule: String },
    #[error("unrecognized descriptor {descriptor:?}")]
    UnknownDescriptor { descriptor: String },
    #[error("expected exactly 5 fields, found {found}: {schedule:?}")]
    FieldCount { schedule: String, found: usize },
    #[error("{field} field {value:?}: {reason}")]
    Field {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("unknown time zone {name:?}")]
    UnknownTimeZone { name: String },
}

/// One cron field's bounds and names.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DOM: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// The set of values one field allows, and whether it was written as `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bits {
    set: u64,
    /// `*` or `?` (step 1): matters only for the two day fields.
    star: bool,
}

impl Bits {
    fn has(&self, v: u32) -> bool {
        v < 64 && self.set & (1u64 << v) != 0
    }
}

/// A parsed cron schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minute: Bits,
    hour: Bits,
    dom: Bits,
    month: Bits,
    dow: Bits,
}

/// Missed runs between two times, as the CronJob controller needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissedRuns {
    /// The latest scheduled time in the interval, if any.
    pub most_recent: Option<DateTime<Utc>>,
    /// How many scheduled times fell in the interval, counted up to
    /// `limit + 1` (so `count > limit` means "too many to count").
    pub count: u32,
}

impl MissedRuns {
    /// Whether more runs were missed than the limit passed in.
    pub fn too_many(&self, limit: u32) -> bool {
        self.count > limit
    }
}

/// How far ahead (and back) to search: long enough for a Feb 29 schedule to
/// cross a non-leap century year (2096 -> 2104).
const SEARCH_YEARS: i32 = 9;

impl Schedule {
    /// Parses a schedule as `spec.schedule` accepts it.
    pub fn parse(spec: &str) -> Result<Schedule, CronError> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(CronError::Empty);
        }
        if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
            return Err(CronError::TimeZonePrefix {
                schedule: spec.to_string(),
            });
        }
        let expanded = if let Some(desc) = trimmed.strip_prefix('@') {
            match desc.to_ascii_lowercase().as_str() {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                d if d.starts_with("every") => {
                    return Err(CronError::Every {
                        schedule: spec.to_string(),
                    });
                }
                _ => {
                    return Err(CronError::UnknownDescriptor {
                        descriptor: trimmed.to_string(),
                    });
                }
            }
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::FieldCount {
                schedule: spec.to_string(),
                found: fields.len(),
            });
        }
        Ok(Schedule {
            minute: parse_field(fields[0], &MINUTE)?,
            hour: parse_field(fields[1], &HOUR)?,
            dom: parse_field(fields[2], &DOM)?,
            month: parse_field(fields[3], &MONTH)?,
            dow: parse_field(fields[4], &DOW)?,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.dom.has(d.day());
        let dow = self.dow.has(d.weekday().num_days_from_sunday());
        if self.dom.star || self.dow.star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first scheduled time strictly after `t`, evaluated in UTC; `None`
    /// when the schedule never fires (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after_in(t, &Utc)
    }

    /// The first scheduled time strictly after `t`, with the fields read as
    /// wall-clock time in `tz`.
    pub fn next_after_in<Tz: TimeZone>(&self, t: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(tz).naive_local();
        let mut n = truncate_minute(local).checked_add_signed(Duration::minutes(1))?;
        let last_year = n.year().saturating_add(SEARCH_YEARS);
        loop {
            if n.year() > last_year {
                return None;
            }
            if !self.month.has(n.month()) {
                n = first_of_next_month(n.date())?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.day_matches(n.date()) {
                n = n.date().succ_opt()?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.hour.has(n.hour()) {
                n = truncate_hour(n).checked_add_signed(Duration::hours(1))?;
                continue;
            }
            if self.minute.has(n.minute()) {
                match tz.from_local_datetime(&n) {
                    LocalResult::Single(x) if x.with_timezone(&Utc) > t => {
                        return Some(x.with_timezone(&Utc));
                    }
                    LocalResult::Ambiguous(a, b) => {
                        let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                        if a > t {
                            return Some(a);
                        }
                        if b > t {
                            return Some(b);
                        }
                    }
                    _ => {}
                }
            }
            n = n.checked_add_signed(Duration::minutes(1))?;
        }
    }

    /// The latest scheduled time at or before `t` and after `floor`, with
    /// the fields read as wall-clock time in `tz`.
    pub fn prev_at_or_before_in<Tz: TimeZone>(
        &self,
        t: DateTime<Utc>,
        floor: DateTime<Utc>,
        tz: &Tz,
    ) -> Option<DateTime<Utc>> {
        if t <= floor {
            return None;
        }
        let mut n = truncate_minute(t.with_timezone(tz).naive_local());
        let first_year = floor
            .with_timezone(tz)
            .naive_local()
            .year()
            .saturating_sub(1);
        loop {
            if n.year() < first_year {
                return None;
            }
            if !self.month.has(n.month()) {
                n = n
                    .date()
                    .with_day(1)?
                    .and_time(NaiveTime::MIN)
                    .checked_sub_signed(Duration::minutes(1))?;
                continue;
            }
            if !self.day_matches(n.date()) {
                n = n
                    .date()
                    .and_time(NaiveTime::MIN)
                    .checked_sub_signed(Duration::minutes(1))?;
                continue;
            }
            if !self.hour.has(n.hour()) {
                n = truncate_hour(n).checked_sub_signed(Duration::minutes(1))?;
                continue;
            }
            if self.minute.has(n.minute()) {
                let found = match tz.from_local_datetime(&n) {
                    LocalResult::Single(x) => Some(x.with_timezone(&Utc)).filter(|x| *x <= t),
                    LocalResult::Ambiguous(a, b) => {
                        let (a, b) = (a.with_timezone(&Utc), b.with_timezone(&Utc));
                        [b, a].into_iter().find(|x| *x <= t)
                    }
                    LocalResult::None => None,
                };
                if let Some(x) = found {
                    return Some(x).filter(|x| *x > floor);
                }
            }
            n = n.checked_sub_signed(Duration::minutes(1))?;
        }
    }

    /// Scheduled times in `(start, end]` in UTC: the most recent one and how
    /// many, counting stops past `limit` (Kubernetes uses 100).
    pub fn missed_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: u32,
    ) -> MissedRuns {
        self.missed_between_in(start, end, limit, &Utc)
    }

    /// [`Schedule::missed_between`] with the fields read in `tz`.
    pub fn missed_between_in<Tz: TimeZone>(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: u32,
        tz: &Tz,
    ) -> MissedRuns {
        let mut count = 0u32;
        let mut most_recent = None;
        let mut cursor = start;
        while let Some(next) = self.next_after_in(cursor, tz) {
            if next > end {
                break;
            }
            count += 1;
            most_recent = Some(next);
            if count > limit {
                // Too many to walk: find the latest one directly.
                most_recent = self.prev_at_or_before_in(end, start, tz).or(most_recent);
                break;
            }
            cursor = next;
        }
        MissedRuns { most_recent, count }
    }
}

impl std::str::FromStr for Schedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// Resolves `spec.timeZone`: an IANA name such as `UTC`, `Etc/UTC`,
/// `Europe/Berlin` or `Etc/GMT-2`. Names are case-sensitive, as in
/// Kubernetes (Go's `time.LoadLocation`); `Local` is refused.
pub fn parse_time_zone(name: &str) -> Result<chrono_tz::Tz, CronError> {
    if name == "Local" {
        return Err(CronError::UnknownTimeZone {
            name: name.to_string(),
        });
    }
    name.parse::<chrono_tz::Tz>()
        .map_err(|_| CronError::UnknownTimeZone {
            name: name.to_string(),
        })
}

fn truncate_minute(n: NaiveDateTime) -> NaiveDateTime {
    n.date().and_hms_opt(n.hour(), n.minute(), 0).unwrap_or(n)
}

fn truncate_hour(n: NaiveDateTime) -> NaiveDateTime {
    n.date().and_hms_opt(n.hour(), 0, 0).unwrap_or(n)
}

fn first_of_next_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    }
}

fn parse_field(text: &str, spec: &FieldSpec) -> Result<Bits, CronError> {
    let err = |reason: String| CronError::Field {
        field: spec.name,
        value: text.to_string(),
        reason,
    };
    let mut bits = Bits {
        set: 0,
        star: false,
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let (mut start, mut end, mut star) = if range == "*" || range == "?" {
            (spec.min, spec.max, true)
        } else {
            let (lo, hi) = match range.split_once('-') {
                Some((lo, hi)) => (lo, Some(hi)),
                None => (range, None),
            };
            let lo_v = parse_value(lo, spec).map_err(&err)?;
            let hi_v = match hi {
                Some(h) => parse_value(h, spec).map_err(&err)?,
                None => lo_v,
            };
            (lo_v, hi_v, false)
        };
        let single = !star && !range.contains('-');
        let step = match step {
            None => 1,
            Some(s) => {
                let v: u32 = s
                    .parse()
                    .map_err(|_| err(format!("step {s:?} is not a number")))?;
                if v == 0 {
                    return Err(err("step of range should be a positive number".into()));
                }
                if single {
                    end = spec.max;
                }
                if v > 1 {
                    star = false;
                }
                v
            }
        };
        if start < spec.min {
            return Err(err(format!(
                "beginning of range ({start}) below minimum ({})",
                spec.min
            )));
        }
        if end > spec.max {
            return Err(err(format!(
                "end of range ({end}) above maximum ({})",
                spec.max
            )));
        }
        if start > end {
            return Err(err(format!(
                "beginning of range ({start}) beyond end of range ({end})"
            )));
        }
        while start <= end {
            bits.set |= 1u64 << start;
            match start.checked_add(step) {
                Some(v) => start = v,
                None => break,
            }
        }
        bits.star |= star;
    }
    Ok(bits)
}

fn parse_value(s: &str, spec: &FieldSpec) -> Result<u32, String> {
    if s.is_empty() {
        return Err("empty value".into());
    }
    let lower = s.to_ascii_lowercase();
    if let Some((_, v)) = spec.names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    s.parse::<u32>()
        .map_err(|_| format!("failed to parse {s:?}: not a number or a known name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn fmt(t: Option<DateTime<Utc>>) -> String {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "never".into())
    }

    #[test]
    fn next_times() {
        let cases = [
            // (schedule, after, expected next)
            ("* * * * *", "2024-05-01T10:20:30Z", "2024-05-01T10:21:00Z"),
            ("* * * * *", "2024-05-01T10:20:00Z", "2024-05-01T10:21:00Z"),
            (
                "*/15 * * * *",
                "2024-05-01T10:20:00Z",
                "2024-05-01T10:30:00Z",
            ),
            (
                "5/15 * * * *",
                "2024-05-01T10:51:00Z",
                "2024-05-01T11:05:00Z",
            ),
            ("0 * * * *", "2024-05-01T23:59:59Z", "2024-05-02T00:00:00Z"),
            ("30 2 * * *", "2024-05-01T03:00:00Z", "2024-05-02T02:30:00Z"),
            ("0 0 1 * *", "2024-01-31T12:00:00Z", "2024-02-01T00:00:00Z"),
            ("0 0 31 * *", "2024-04-01T00:00:00Z", "2024-05-31T00:00:00Z"),
            ("0 0 29 2 *", "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("0 0 29 2 *", "2023-01-01T00:00:00Z", "2024-02-29T00:00:00Z"),
            ("0 0 29 2 *", "2097-01-01T00:00:00Z", "2104-02-29T00:00:00Z"),
            ("0 0 30 2 *", "2024-01-01T00:00:00Z", "never"),
            ("0 0 31 4,6,9,11 *", "2024-01-01T00:00:00Z", "never"),
            (
                "59 23 31 12 *",
                "2024-12-31T23:59:00Z",
                "2025-12-31T23:59:00Z",
            ),
            (
                "0 9 * * mon-fri",
                "2024-05-03T10:00:00Z",
                "2024-05-06T09:00:00Z",
            ),
            (
                "0 9 * * 1-5",
                "2024-05-04T08:00:00Z",
                "2024-05-06T09:00:00Z",
            ),
            (
                "0 0 * * SUN",
                "2024-05-01T00:00:00Z",
                "2024-05-05T00:00:00Z",
            ),
            (
                "0 0 * JAN,jul *",
                "2024-02-01T00:00:00Z",
                "2024-07-01T00:00:00Z",
            ),
            (
                "0 0 1-7 * 1",
                "2024-05-01T00:00:00Z",
                "2024-05-02T00:00:00Z",
            ),
            // Both day fields restricted: OR (1st of month or any Monday).
            ("0 0 1 * 1", "2024-05-01T00:00:00Z", "2024-05-06T00:00:00Z"),
            ("0 0 1 * 1", "2024-05-27T00:00:00Z", "2024-06-01T00:00:00Z"),
            // `?` and `*` keep AND semantics.
            ("0 0 ? * 1", "2024-05-01T00:00:00Z", "2024-05-06T00:00:00Z"),
            ("0 0 13 * ?", "2024-05-14T00:00:00Z", "2024-06-13T00:00:00Z"),
            // `*/2` is a restriction: dom every odd day OR Sundays.
            (
                "0 0 */2 * 0",
                "2024-05-01T00:00:00Z",
                "2024-05-03T00:00:00Z",
            ),
            (
                "0 0 */2 * 0",
                "2024-05-03T00:00:00Z",
                "2024-05-05T00:00:00Z",
            ),
            ("@hourly", "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z"),
            ("@daily", "2024-05-01T10:00:00Z", "2024-05-02T00:00:00Z"),
            ("@midnight", "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"),
            ("@weekly", "2024-05-01T10:00:00Z", "2024-05-05T00:00:00Z"),
            ("@monthly", "2024-05-01T10:00:00Z", "2024-06-01T00:00:00Z"),
            ("@yearly", "2024-05-01T10:00:00Z", "2025-01-01T00:00:00Z"),
            ("@annually", "2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"),
            (
                "0,30 8-10/2 * * *",
                "2024-05-01T08:30:00Z",
                "2024-05-01T10:00:00Z",
            ),
            (
                "  0   0  *  *  * ",
                "2024-05-01T10:00:00Z",
                "2024-05-02T00:00:00Z",
            ),
        ];
        for (spec, after, want) in cases {
            let s = Schedule::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(fmt(s.next_after(at(after))), want, "{spec} after {after}");
        }
    }

    #[test]
    fn parse_errors_name_field_and_value() {
        let cases = [
            ("", "empty schedule"),
            ("* * * *", "expected exactly 5 fields, found 4"),
            ("* * * * * *", "found 6"),
            ("@every 5m", "@every is not supported"),
            ("@fortnightly", "unrecognized descriptor"),
            ("TZ=UTC 0 * * * *", "use timeZone field"),
            ("CRON_TZ=Europe/Berlin 0 * * * *", "use timeZone field"),
            (
                "60 * * * *",
                "minute field \"60\": end of range (60) above maximum (59)",
            ),
            ("* 24 * * *", "hour field \"24\""),
            (
                "* * 0 * *",
                "day-of-month field \"0\": beginning of range (0) below minimum (1)",
            ),
            ("* * 32 * *", "day-of-month field"),
            ("* * * 13 *", "month field"),
            (
                "* * * * 7",
                "day-of-week field \"7\": end of range (7) above maximum (6)",
            ),
            ("* * * foo *", "month field \"foo\": failed to parse"),
            ("*/0 * * * *", "step of range should be a positive number"),
            ("*/x * * * *", "step \"x\" is not a number"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1)",
            ),
            ("1,,2 * * * *", "empty value"),
            ("-5 * * * *", "empty value"),
            ("1-2-3 * * * *", "minute field"),
        ];
        for (spec, want) in cases {
            let err = Schedule::parse(spec)
                .expect_err(&format!("{spec:?} should fail"))
                .to_string();
            assert!(err.contains(want), "{spec:?}: {err}");
        }
    }

    #[test]
    fn missed_runs() {
        let hourly = Schedule::parse("0 * * * *").unwrap();
        let cases = [
            // (start, end, limit, most recent, count)
            (
                "2024-05-01T10:00:00Z",
                "2024-05-01T10:59:00Z",
                100,
                "never",
                0,
            ),
            (
                "2024-05-01T10:00:00Z",
                "2024-05-01T11:00:00Z",
                100,
                "2024-05-01T11:00:00Z",
                1,
            ),
            (
                "2024-05-01T10:30:00Z",
                "2024-05-01T13:10:00Z",
                100,
                "2024-05-01T13:00:00Z",
                3,
            ),
            // More than the limit: counting stops, the most recent is exact.
            (
                "2024-05-01T00:00:00Z",
                "2024-05-31T05:30:00Z",
                100,
                "2024-05-31T05:00:00Z",
                101,
            ),
            (
                "2024-01-01T00:00:00Z",
                "2034-01-01T00:30:00Z",
                100,
                "2034-01-01T00:00:00Z",
                101,
            ),
            (
                "2024-05-01T00:00:00Z",
                "2024-05-01T05:00:00Z",
                2,
                "2024-05-01T05:00:00Z",
                3,
            ),
            (
                "2024-05-01T12:00:00Z",
                "2024-05-01T10:00:00Z",
                100,
                "never",
                0,
            ),
        ];
        for (start, end, limit, recent, count) in cases {
            let m = hourly.missed_between(at(start), at(end), limit);
            assert_eq!(fmt(m.most_recent), recent, "{start}..{end}");
            assert_eq!(m.count, count, "{start}..{end}");
            assert_eq!(m.too_many(limit), count > limit);
        }
        let never = Schedule::parse("0 0 30 2 *").unwrap();
        let m = never.missed_between(at("2024-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z"), 100);
        assert_eq!((m.most_recent, m.count), (None, 0));
    }

    #[test]
    fn prev_matches_forward_search() {
        let specs = [
            "*/7 3-5 * * *",
            "0 0 1 * 1",
            "15 12 29 2 *",
            "@weekly",
            "0 0 31 * *",
        ];
        let floor = at("2020-01-01T00:00:00Z");
        for spec in specs {
            let s = Schedule::parse(spec).unwrap();
            let mut t = floor;
            for _ in 0..20 {
                let Some(next) = s.next_after(t) else { break };
                assert_eq!(
                    s.prev_at_or_before_in(next, floor, &Utc),
                    Some(next),
                    "{spec}"
                );
                let just_before = next - Duration::seconds(1);
                let prev = s.prev_at_or_before_in(just_before, floor, &Utc);
                if t > floor {
                    assert_eq!(prev, Some(t), "{spec}");
                }
                t = next;
            }
        }
    }

    #[test]
    fn time_zones() {
        for ok in [
            "UTC",
            "Etc/UTC",
            "Europe/Berlin",
            "America/New_York",
            "Etc/GMT-2",
        ] {
            assert!(parse_time_zone(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Local", "Mars/Olympus", "+02:00", "utc"] {
            assert!(parse_time_zone(bad).is_err(), "{bad}");
        }
        let daily = Schedule::parse("0 9 * * *").unwrap();
        let berlin = parse_time_zone("Europe/Berlin").unwrap();
        // 09:00 CEST is 07:00 UTC in summer, 08:00 UTC in winter.
        assert_eq!(
            fmt(daily.next_after_in(at("2024-07-01T00:00:00Z"), &berlin)),
            "2024-07-01T07:00:00Z"
        );
        assert_eq!(
            fmt(daily.next_after_in(at("2024-12-01T00:00:00Z"), &berlin)),
            "2024-12-01T08:00:00Z"
        );
        let fixed = parse_time_zone("Etc/GMT-2").unwrap();
        assert_eq!(
            fmt(daily.next_after_in(at("2024-12-01T00:00:00Z"), &fixed)),
            "2024-12-01T07:00:00Z"
        );
        // Spring forward (2024-03-31, 02:00 -> 03:00 in Berlin): 02:30 does not exist.
        let gap = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(
            fmt(gap.next_after_in(at("2024-03-30T12:00:00Z"), &berlin)),
            "2024-04-01T00:30:00Z"
        );
        // Fall back (2024-10-27, 03:00 -> 02:00): 02:30 fires once, at its first occurrence.
        let first = gap.next_after_in(at("2024-10-26T12:00:00Z"), &berlin);
        assert_eq!(fmt(first), "2024-10-27T00:30:00Z");
        assert_eq!(
            fmt(first.and_then(|t| gap.next_after_in(t, &berlin))),
            "2024-10-28T01:30:00Z"
        );
    }
}
