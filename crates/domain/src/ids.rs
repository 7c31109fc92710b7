//! Identifiers as newtypes, parsed once at the edge ("parse, don't validate").
//!
//! Holding an `OrderId` proves its text has the `SO-` + 8 digits shape; deserializing one
//! validates it too (`#[serde(try_from = "String")]`), so a bad id never enters the domain.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::echo;
pub use crate::error::DomainError;

/// The identity of one customer return; every team event carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct ReturnId(Uuid);

impl ReturnId {
    pub const fn new(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The first `n` (at most 32) uppercase hex digits of the uuid, used to derive the ids
    /// that teams mint for a return (refund, shipment, ...), so a replay mints the same ids.
    fn hex_prefix(&self, n: usize) -> String {
        let mut hex = self.0.simple().to_string();
        hex.truncate(n);
        hex.make_ascii_uppercase();
        hex
    }
}

impl fmt::Display for ReturnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for ReturnId {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| DomainError::InvalidId {
                kind: "return id",
                value: echo(s),
                reason: "not a UUID",
            })
    }
}

/// Declares a validated `String` newtype with `parse`, `as_str`, `Display`, `FromStr` and a
/// validating serde representation.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `s`, naming the reason when it does not have the expected format.
            pub fn parse(s: impl Into<String>) -> Result<Self, DomainError> {
                let s = s.into();
                let check: fn(&str) -> Result<(), &'static str> = $check;
                match check(&s) {
                    Ok(()) => Ok(Self(s)),
                    Err(reason) => Err(DomainError::InvalidId { kind: $kind, value: echo(s), reason }),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Accepts `prefix` followed by exactly `digits` ASCII digits.
fn prefixed_digits(s: &str, prefix: &str, digits: usize) -> Result<(), &'static str> {
    let Some(rest) = s.strip_prefix(prefix) else {
        return Err("wrong prefix");
    };
    if rest.len() != digits || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err("wrong number of digits after the prefix");
    }
    Ok(())
}

/// Accepts `min..=max` characters, each an ASCII uppercase letter, a digit or one of `extra`.
fn code(s: &str, min: usize, max: usize, extra: &[u8]) -> Result<(), &'static str> {
    if !s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || extra.contains(&b))
    {
        return Err("contains a character outside the allowed set");
    }
    // All bytes are ASCII now, so the byte length is the character count.
    if s.len() < min {
        return Err("too short");
    }
    if s.len() > max {
        return Err("too long");
    }
    Ok(())
}

/// Accepts `prefix` followed by exactly 12 uppercase hex digits.
fn prefixed_hex12(s: &str, prefix: &str) -> Result<(), &'static str> {
    let Some(rest) = s.strip_prefix(prefix) else {
        return Err("wrong prefix");
    };
    if rest.len() != 12 || !rest.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
        return Err("expected 12 uppercase hex digits after the prefix");
    }
    Ok(())
}

string_id!(
    /// A sales order, `SO-` followed by 8 digits.
    OrderId, "order id", |s| prefixed_digits(s, "SO-", 8)
);
string_id!(
    /// A customer, `C-` followed by 6 digits.
    CustomerId, "customer id", |s| prefixed_digits(s, "C-", 6)
);
string_id!(
    /// A device serial number: 6 to 32 characters of `A-Z`, `0-9` and `-`.
    SerialNumber, "serial number", |s| code(s, 6, 32, b"-")
);
string_id!(
    /// A device model code: 2 to 32 characters of `A-Z`, `0-9`, `_` and `-`.
    ModelCode, "model code", |s| code(s, 2, 32, b"_-")
);
string_id!(
    /// A defect code: 2 to 32 characters of `A-Z`, `0-9`, `_` and `-`.
    DefectCode, "defect code", |s| code(s, 2, 32, b"_-")
);
string_id!(
    /// Where the returned item sits: 2 to 32 characters of `A-Z`, `0-9`, `_` and `-`.
    LocationCode, "location code", |s| code(s, 2, 32, b"_-")
);
string_id!(
    /// A manufacturing facility: 2 to 32 characters of `A-Z`, `0-9`, `_` and `-`.
    FacilityCode, "facility code", |s| code(s, 2, 32, b"_-")
);
string_id!(
    /// An ISO 3166-1 alpha-2 country code: exactly 2 ASCII uppercase letters.
    CountryCode, "country code", |s| {
        if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err("expected exactly 2 uppercase letters")
        }
    }
);

/// Declares an id that a team mints for a return: a prefix plus the return id's first 12 hex
/// digits, so deciding the same return twice mints the same id.
macro_rules! minted_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        string_id!($(#[$doc])* $name, $kind, |s| prefixed_hex12(s, $prefix));

        impl $name {
            /// The id minted for `return_id`.
            pub fn for_return(return_id: &ReturnId) -> Self {
                Self(format!("{}{}", $prefix, return_id.hex_prefix(12)))
            }
        }
    };
}

minted_id!(
    /// A refund issued by Sales, `RF-` + 12 hex digits.
    RefundId, "refund id", "RF-"
);
minted_id!(
    /// A replacement shipment sent by Inventory, `SH-` + 12 hex digits.
    ShipmentId, "shipment id", "SH-"
);
minted_id!(
    /// A disassembly order registered by Manufacturing, `DO-` + 12 hex digits.
    DisassemblyOrderNo, "disassembly order number", "DO-"
);
minted_id!(
    /// A journal entry booked by Accounting, `JE-` + 12 hex digits.
    EntryId, "journal entry id", "JE-"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_ids_parse_and_display_unchanged() {
        type Parse = fn(&str) -> Result<String, DomainError>;
        let good: &[(&str, Parse)] = &[
            ("SO-00001234", |s| OrderId::parse(s).map(|i| i.to_string())),
            ("C-123456", |s| CustomerId::parse(s).map(|i| i.to_string())),
            ("AURA-PHONE-12-7K2M9Q0ZXA", |s| {
                SerialNumber::parse(s).map(|i| i.to_string())
            }),
            ("ABC123", |s| SerialNumber::parse(s).map(|i| i.to_string())),
            ("NOVA_TAB-10", |s| {
                ModelCode::parse(s).map(|i| i.to_string())
            }),
            ("BATTERY_SWELL", |s| {
                DefectCode::parse(s).map(|i| i.to_string())
            }),
            ("WH-AMS-01", |s| {
                LocationCode::parse(s).map(|i| i.to_string())
            }),
            ("FAC-BRNO", |s| {
                FacilityCode::parse(s).map(|i| i.to_string())
            }),
            ("NL", |s| CountryCode::parse(s).map(|i| i.to_string())),
            ("RF-0123456789AB", |s| {
                RefundId::parse(s).map(|i| i.to_string())
            }),
        ];
        for (text, parse) in good {
            assert_eq!(parse(text).as_deref(), Ok(*text), "{text}");
        }
    }

    #[test]
    fn bad_ids_name_kind_and_reason() {
        let cases: &[(&str, Result<(), DomainError>, &str, &str)] = &[
            (
                "SO-1234567",
                OrderId::parse("SO-1234567").map(drop),
                "order id",
                "wrong number of digits after the prefix",
            ),
            (
                "SO-123456789",
                OrderId::parse("SO-123456789").map(drop),
                "order id",
                "wrong number of digits after the prefix",
            ),
            (
                "SO-1234567a",
                OrderId::parse("SO-1234567a").map(drop),
                "order id",
                "wrong number of digits after the prefix",
            ),
            (
                "XX-12345678",
                OrderId::parse("XX-12345678").map(drop),
                "order id",
                "wrong prefix",
            ),
            (
                "c-123456",
                CustomerId::parse("c-123456").map(drop),
                "customer id",
                "wrong prefix",
            ),
            (
                "C-12345",
                CustomerId::parse("C-12345").map(drop),
                "customer id",
                "wrong number of digits after the prefix",
            ),
            (
                "ABC12",
                SerialNumber::parse("ABC12").map(drop),
                "serial number",
                "too short",
            ),
            (
                "33 chars",
                SerialNumber::parse("A".repeat(33)).map(drop),
                "serial number",
                "too long",
            ),
            (
                "ABC_123",
                SerialNumber::parse("ABC_123").map(drop),
                "serial number",
                "contains a character outside the allowed set",
            ),
            (
                "abc123",
                SerialNumber::parse("abc123").map(drop),
                "serial number",
                "contains a character outside the allowed set",
            ),
            (
                "X",
                ModelCode::parse("X").map(drop),
                "model code",
                "too short",
            ),
            (
                "NO POWER",
                DefectCode::parse("NO POWER").map(drop),
                "defect code",
                "contains a character outside the allowed set",
            ),
            (
                "empty location",
                LocationCode::parse("").map(drop),
                "location code",
                "too short",
            ),
            (
                "33 chars facility",
                FacilityCode::parse("F".repeat(33)).map(drop),
                "facility code",
                "too long",
            ),
            (
                "nl",
                CountryCode::parse("nl").map(drop),
                "country code",
                "expected exactly 2 uppercase letters",
            ),
            (
                "NLD",
                CountryCode::parse("NLD").map(drop),
                "country code",
                "expected exactly 2 uppercase letters",
            ),
            (
                "RF-0123456789ab",
                RefundId::parse("RF-0123456789ab").map(drop),
                "refund id",
                "expected 12 uppercase hex digits after the prefix",
            ),
            (
                "SH- for refund",
                RefundId::parse("SH-0123456789AB").map(drop),
                "refund id",
                "wrong prefix",
            ),
        ];
        for (name, result, kind, reason) in cases {
            match result {
                Err(DomainError::InvalidId {
                    kind: k, reason: r, ..
                }) => {
                    assert_eq!((*k, *r), (*kind, *reason), "{name}");
                }
                other => panic!("{name}: expected InvalidId, got {other:?}"),
            }
        }
    }

    #[test]
    fn error_echo_is_bounded() {
        let Err(DomainError::InvalidId { value, .. }) = OrderId::parse("9".repeat(10_000)) else {
            panic!("expected an error");
        };
        assert_eq!(value.chars().count(), 65);
    }

    #[test]
    fn return_id_parses_and_displays_lowercase_hyphenated() {
        let id: ReturnId = "67E55044-10B1-426F-9247-BB680E5FE0C8".parse().unwrap();
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(ReturnId::new(*id.as_uuid()), id);
        assert!(matches!(
            "not-a-uuid".parse::<ReturnId>(),
            Err(DomainError::InvalidId {
                kind: "return id",
                reason: "not a UUID",
                ..
            })
        ));
    }

    #[test]
    fn minted_ids_derive_from_the_return_id() {
        let id: ReturnId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        assert_eq!(RefundId::for_return(&id).as_str(), "RF-67E5504410B1");
        assert_eq!(ShipmentId::for_return(&id).as_str(), "SH-67E5504410B1");
        assert_eq!(
            DisassemblyOrderNo::for_return(&id).as_str(),
            "DO-67E5504410B1"
        );
        assert_eq!(EntryId::for_return(&id).as_str(), "JE-67E5504410B1");
        // A minted id is itself valid.
        assert!(RefundId::parse(RefundId::for_return(&id).to_string()).is_ok());
    }

    #[test]
    fn serde_round_trips_and_bad_ids_fail_to_deserialize() {
        let order = OrderId::parse("SO-00000042").unwrap();
        let json = serde_json::to_string(&order).unwrap();
        assert_eq!(json, r#""SO-00000042""#);
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), order);

        let rid: ReturnId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        let json = serde_json::to_string(&rid).unwrap();
        assert_eq!(json, r#""67e55044-10b1-426f-9247-bb680e5fe0c8""#);
        assert_eq!(serde_json::from_str::<ReturnId>(&json).unwrap(), rid);

        assert!(serde_json::from_str::<OrderId>(r#""SO-42""#).is_err());
        assert!(serde_json::from_str::<CountryCode>(r#""nl""#).is_err());
        assert!(serde_json::from_str::<SerialNumber>(r#""x""#).is_err());
        assert!(serde_json::from_str::<ReturnId>(r#""nope""#).is_err());
        let err = serde_json::from_str::<CustomerId>(r#""C-1""#).unwrap_err();
        assert!(err.to_string().contains("customer id"), "{err}");
    }
}
