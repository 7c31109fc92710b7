//! Points in time and calendar months. Nothing here reads a clock: time is always passed in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{echo, DomainError};

/// An instant as unix milliseconds (UTC), serialized as an integer.
///
/// Invariant: between `0000-01-01T00:00:00Z` and `9999-12-31T23:59:59.999Z`, the range that
/// RFC 3339 can write, so [`Timestamp::month`] and [`Timestamp::to_rfc3339`] cannot fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(try_from = "i64", into = "i64")]
pub struct Timestamp(i64);

impl Timestamp {
    /// `0000-01-01T00:00:00.000Z`.
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000);
    /// `9999-12-31T23:59:59.999Z`.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// The instant `millis` after the unix epoch, clamped to [`Timestamp::MIN`]..=[`Timestamp::MAX`].
    /// Use [`Timestamp::try_from_unix_millis`] to reject out-of-range input instead.
    pub const fn from_unix_millis(millis: i64) -> Self {
        if millis < Self::MIN.0 {
            Self::MIN
        } else if millis > Self::MAX.0 {
            Self::MAX
        } else {
            Self(millis)
        }
    }

    /// The instant `millis` after the unix epoch, or an error outside years 0000..=9999.
    pub fn try_from_unix_millis(millis: i64) -> Result<Self, DomainError> {
        if (Self::MIN.0..=Self::MAX.0).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(DomainError::InvalidTime {
                value: millis.to_string(),
                reason: "outside years 0000..=9999",
            })
        }
    }

    /// Parses an RFC 3339 date-time such as `2026-03-01T12:00:00Z` (sub-millisecond digits are
    /// truncated).
    pub fn parse_rfc3339(s: &str) -> Result<Self, DomainError> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| DomainError::InvalidTime {
            value: echo(s),
            reason: "not an RFC 3339 date-time",
        })?;
        let millis = dt.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(millis)
            .map_err(|_| DomainError::InvalidTime {
                value: echo(s),
                reason: "outside years 0000..=9999",
            })
            .and_then(Self::try_from_unix_millis)
    }

    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// The UTC calendar month this instant falls in.
    pub fn month(self) -> YearMonth {
        let dt = self.to_datetime();
        YearMonth {
            year: dt.year(),
            month: u8::from(dt.month()),
        }
    }

    /// RFC 3339 in UTC, e.g. `2026-01-01T00:01:30.5Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .format(&Rfc3339)
            .expect("a Timestamp lies in years 0000..=9999, which RFC 3339 can write")
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .expect("a Timestamp lies in years 0000..=9999, which the time crate supports")
    }
}

impl TryFrom<i64> for Timestamp {
    type Error = DomainError;

    fn try_from(millis: i64) -> Result<Self, Self::Error> {
        Self::try_from_unix_millis(millis)
    }
}

impl From<Timestamp> for i64 {
    fn from(ts: Timestamp) -> i64 {
        ts.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A calendar month such as `2026-03`; Accounting books per month. Orders chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(try_from = "String", into = "String")]
pub struct YearMonth {
    year: i32,
    month: u8,
}

impl YearMonth {
    /// A month of a year in 0..=9999; `month` is 1..=12.
    pub fn new(year: i32, month: u8) -> Result<Self, DomainError> {
        if !(0..=9999).contains(&year) {
            return Err(DomainError::InvalidTime {
                value: format!("{year}-{month:02}"),
                reason: "year outside 0000..=9999",
            });
        }
        if !(1..=12).contains(&month) {
            return Err(DomainError::InvalidTime {
                value: format!("{year:04}-{month:02}"),
                reason: "month outside 1..=12",
            });
        }
        Ok(Self { year, month })
    }

    pub const fn year(self) -> i32 {
        self.year
    }

    /// 1 for January, 12 for December.
    pub const fn month(self) -> u8 {
        self.month
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for YearMonth {
    type Err = DomainError;

    /// Parses exactly `YYYY-MM`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DomainError::InvalidTime {
            value: echo(s),
            reason: "expected YYYY-MM",
        };
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(y, 4) || !digits(m, 2) {
            return Err(bad());
        }
        let year = y.parse().map_err(|_| bad())?;
        let month = m.parse().map_err(|_| bad())?;
        Self::new(year, month)
    }
}

impl TryFrom<String> for YearMonth {
    type Error = DomainError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<YearMonth> for String {
    fn from(ym: YearMonth) -> String {
        ym.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const NEW_YEAR_2026: i64 = 1_767_225_600_000;

    #[test]
    fn month_is_utc_calendar_month() {
        let cases = [
            (NEW_YEAR_2026, "2026-01"),
            (NEW_YEAR_2026 - 1, "2025-12"),
            (NEW_YEAR_2026 + 31 * 86_400_000, "2026-02"),
            (NEW_YEAR_2026 + 31 * 86_400_000 - 1, "2026-01"),
            (0, "1970-01"),
            (Timestamp::MAX.unix_millis(), "9999-12"),
            (Timestamp::MIN.unix_millis(), "0000-01"),
        ];
        for (millis, month) in cases {
            assert_eq!(
                Timestamp::from_unix_millis(millis).month().to_string(),
                month,
                "{millis}"
            );
        }
    }

    #[test]
    fn rfc3339_round_trips() {
        let ts = Timestamp::from_unix_millis(NEW_YEAR_2026 + 90_500);
        assert_eq!(
            Timestamp::from_unix_millis(NEW_YEAR_2026).to_rfc3339(),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(ts.to_rfc3339(), "2026-01-01T00:01:30.5Z");
        assert_eq!(Timestamp::parse_rfc3339(&ts.to_rfc3339()), Ok(ts));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Ok(Timestamp::from_unix_millis(NEW_YEAR_2026))
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::MIN.to_rfc3339().starts_with("0000-01-01"));
        assert!(Timestamp::MAX.to_rfc3339().starts_with("9999-12-31"));
    }

    #[test]
    fn out_of_range_is_clamped_or_rejected() {
        assert_eq!(Timestamp::from_unix_millis(i64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::from_unix_millis(i64::MIN), Timestamp::MIN);
        assert!(Timestamp::try_from_unix_millis(i64::MAX).is_err());
        assert!(serde_json::from_str::<Timestamp>(&i64::MAX.to_string()).is_err());
    }

    #[test]
    fn timestamp_serde_is_an_integer() {
        let ts = Timestamp::from_unix_millis(NEW_YEAR_2026);
        assert_eq!(serde_json::to_string(&ts).unwrap(), "1767225600000");
        assert_eq!(
            serde_json::from_str::<Timestamp>("1767225600000").unwrap(),
            ts
        );
    }

    #[test]
    fn year_month_parses_displays_and_orders() {
        let ym: YearMonth = "2026-03".parse().unwrap();
        assert_eq!((ym.year(), ym.month()), (2026, 3));
        assert_eq!(ym.to_string(), "2026-03");
        assert_eq!(YearMonth::new(7, 1).unwrap().to_string(), "0007-01");
        assert!(YearMonth::new(2025, 12).unwrap() < ym);
        assert!(YearMonth::new(2026, 2).unwrap() < ym);
        for bad in [
            "2026-13",
            "2026-00",
            "2026-3",
            "26-03",
            "2026/03",
            "2026-03-01",
            "+026-03",
            "",
        ] {
            assert!(bad.parse::<YearMonth>().is_err(), "{bad:?}");
        }
        assert!(YearMonth::new(10_000, 1).is_err());
    }

    #[test]
    fn year_month_serde_is_a_string() {
        let ym = YearMonth::new(2026, 3).unwrap();
        assert_eq!(serde_json::to_string(&ym).unwrap(), r#""2026-03""#);
        assert_eq!(
            serde_json::from_str::<YearMonth>(r#""2026-03""#).unwrap(),
            ym
        );
        assert!(serde_json::from_str::<YearMonth>(r#""2026-13""#).is_err());
    }
}
