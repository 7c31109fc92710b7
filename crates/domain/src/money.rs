//! Money as integer minor units with a currency; never floating point.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{echo, DomainError};

/// The currencies the business handles; all have two decimal places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    Eur,
    Usd,
    Gbp,
}

impl Currency {
    /// The ISO 4217 code, e.g. `"EUR"`.
    pub const fn code(self) -> &'static str {
        match self {
            Currency::Eur => "EUR",
            Currency::Usd => "USD",
            Currency::Gbp => "GBP",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "EUR" => Ok(Currency::Eur),
            "USD" => Ok(Currency::Usd),
            "GBP" => Ok(Currency::Gbp),
            _ => Err(DomainError::InvalidMoney {
                value: echo(s),
                reason: "unknown currency code",
            }),
        }
    }
}

/// An amount in minor units (cents, pence) of a currency. Serialized as
/// `{"minor": 1234, "currency": "EUR"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Shorthand for an amount in euro cents.
    pub const fn eur(minor: i64) -> Self {
        Self::new(minor, Currency::Eur)
    }

    pub const fn minor(self) -> i64 {
        self.minor
    }

    pub const fn currency(self) -> Currency {
        self.currency
    }

    /// The sum, or an error when the currencies differ or the sum overflows.
    pub fn checked_add(self, other: Money) -> Result<Money, DomainError> {
        if self.currency != other.currency {
            return Err(DomainError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            });
        }
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or_else(|| DomainError::InvalidMoney {
                value: format!("{self} + {other}"),
                reason: "sum overflows",
            })
    }
}

impl fmt::Display for Money {
    /// `EUR 12.34`, `EUR -0.05`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{} {sign}{}.{:02}", self.currency, abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_round_trip() {
        for c in [Currency::Eur, Currency::Usd, Currency::Gbp] {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
            assert_eq!(c.to_string(), c.code());
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.code())
            );
        }
        assert!(matches!(
            "eur".parse::<Currency>(),
            Err(DomainError::InvalidMoney { .. })
        ));
        assert!(serde_json::from_str::<Currency>(r#""CHF""#).is_err());
    }

    #[test]
    fn display_handles_cents_and_negatives() {
        let cases = [
            (1234, "EUR 12.34"),
            (5, "EUR 0.05"),
            (0, "EUR 0.00"),
            (-5, "EUR -0.05"),
            (-1234, "EUR -12.34"),
            (i64::MIN, "EUR -92233720368547758.08"),
        ];
        for (minor, text) in cases {
            assert_eq!(Money::eur(minor).to_string(), text);
        }
        assert_eq!(Money::new(100, Currency::Gbp).to_string(), "GBP 1.00");
    }

    #[test]
    fn checked_add_same_currency_adds() {
        assert_eq!(
            Money::eur(150).checked_add(Money::eur(-50)),
            Ok(Money::eur(100))
        );
    }

    #[test]
    fn checked_add_rejects_mismatch_and_overflow() {
        assert_eq!(
            Money::eur(1).checked_add(Money::new(1, Currency::Usd)),
            Err(DomainError::CurrencyMismatch {
                left: Currency::Eur,
                right: Currency::Usd
            })
        );
        assert!(matches!(
            Money::eur(i64::MAX).checked_add(Money::eur(1)),
            Err(DomainError::InvalidMoney {
                reason: "sum overflows",
                ..
            })
        ));
    }

    #[test]
    fn serde_shape() {
        let m = Money::eur(1234);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"minor":1234,"currency":"EUR"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Money>(r#"{"minor":1.5,"currency":"EUR"}"#).is_err());
    }
}
