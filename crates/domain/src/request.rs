//! The one message User Support publishes: a customer returns a defective device.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::DomainError;
use crate::ids::{
    CountryCode, CustomerId, DefectCode, LocationCode, ModelCode, OrderId, ReturnId, SerialNumber,
};
use crate::money::Money;

/// Longest accepted address field, in characters.
pub const MAX_ADDRESS_FIELD_CHARS: usize = 200;
/// Longest accepted description of a defect, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_000;

/// When the customer noticed the defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Noticed {
    /// The device was faulty out of the box ("dead on arrival").
    OnArrival,
    /// The device failed after some use.
    InUse,
    /// Not recorded (every request published before the reason was structured).
    Unknown,
}

impl Noticed {
    pub const ALL: [Noticed; 3] = [Noticed::OnArrival, Noticed::InUse, Noticed::Unknown];

    pub const fn as_str(self) -> &'static str {
        match self {
            Noticed::OnArrival => "on_arrival",
            Noticed::InUse => "in_use",
            Noticed::Unknown => "unknown",
        }
    }
}

/// Why the device comes back: the defect code, when it showed, and the customer's own words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnReason {
    pub defect: DefectCode,
    pub noticed: Noticed,
    /// Free text from the customer, if any.
    pub description: Option<String>,
}

impl ReturnReason {
    /// A reason that only names the defect (what version 1 of the request carried).
    pub fn defect_only(defect: DefectCode) -> Self {
        ReturnReason {
            defect,
            noticed: Noticed::Unknown,
            description: None,
        }
    }
}

/// Where Inventory ships the replacement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Address {
    pub name: String,
    pub street: String,
    pub city: String,
    pub postal_code: String,
    pub country: CountryCode,
}

/// A customer returns a defective device; each team reacts to it independently.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub return_id: ReturnId,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub model: ModelCode,
    pub serial: SerialNumber,
    /// Why the device comes back.
    pub reason: ReturnReason,
    /// Where the returned item sits now (decides which facility disassembles it).
    pub item_location: LocationCode,
    /// What the device cost to make (Accounting writes it off).
    pub unit_cost: Money,
    /// What Sales pays back.
    pub refund_amount: Money,
    pub ship_to: Address,
    pub requested_at: Timestamp,
}

impl RefundRequest {
    /// Checks the invariants the field types cannot express: positive amounts and non-blank,
    /// bounded address fields. Ids are already valid by construction.
    pub fn validate(&self) -> Result<(), DomainError> {
        positive("unit_cost", self.unit_cost)?;
        positive("refund_amount", self.refund_amount)?;
        let a = &self.ship_to;
        text("ship_to.name", &a.name)?;
        text("ship_to.street", &a.street)?;
        text("ship_to.city", &a.city)?;
        text("ship_to.postal_code", &a.postal_code)?;
        if let Some(d) = &self.reason.description {
            let chars = d.chars().count();
            if chars > MAX_DESCRIPTION_CHARS {
                return Err(DomainError::InvalidRequest {
                    field: "reason.description",
                    reason: format!("{chars} characters, at most {MAX_DESCRIPTION_CHARS} allowed"),
                });
            }
        }
        Ok(())
    }
}

fn positive(field: &'static str, amount: Money) -> Result<(), DomainError> {
    if amount.minor() > 0 {
        Ok(())
    } else {
        Err(DomainError::InvalidRequest {
            field,
            reason: format!("must be positive, got {amount}"),
        })
    }
}

fn text(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::InvalidRequest {
            field,
            reason: "must not be blank".into(),
        });
    }
    let chars = value.chars().count();
    if chars > MAX_ADDRESS_FIELD_CHARS {
        return Err(DomainError::InvalidRequest {
            field,
            reason: format!("{chars} characters, at most {MAX_ADDRESS_FIELD_CHARS} allowed"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::a_request;

    #[test]
    fn validate_table() {
        let long = "x".repeat(MAX_ADDRESS_FIELD_CHARS + 1);
        let at_limit = "é".repeat(MAX_ADDRESS_FIELD_CHARS);
        let cases: Vec<(&str, RefundRequest, Option<&str>)> = vec![
            ("generated request is valid", a_request().build(), None),
            (
                "name at the limit (multibyte)",
                a_request().name(&at_limit).build(),
                None,
            ),
            (
                "zero refund",
                a_request().refund(Money::eur(0)).build(),
                Some("refund_amount"),
            ),
            (
                "negative unit cost",
                a_request().unit_cost(Money::eur(-1)).build(),
                Some("unit_cost"),
            ),
            (
                "blank name",
                a_request().name("  ").build(),
                Some("ship_to.name"),
            ),
            (
                "empty street",
                a_request().street("").build(),
                Some("ship_to.street"),
            ),
            (
                "empty city",
                a_request().city("").build(),
                Some("ship_to.city"),
            ),
            (
                "too long postal code",
                a_request().postal_code(&long).build(),
                Some("ship_to.postal_code"),
            ),
        ];
        for (name, req, then) in cases {
            let got = match req.validate() {
                Ok(()) => None,
                Err(DomainError::InvalidRequest { field, .. }) => Some(field),
                Err(other) => panic!("{name}: unexpected {other:?}"),
            };
            assert_eq!(got, then, "{name}");
        }
    }

    #[test]
    fn serde_round_trip_and_bad_ids_are_rejected() {
        let req = a_request().build();
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<RefundRequest>(&json).unwrap(), req);

        let bad = json.replace(req.order_id.as_str(), "SO-1");
        let err = serde_json::from_str::<RefundRequest>(&bad).unwrap_err();
        assert!(err.to_string().contains("order id"), "{err}");
    }
}
