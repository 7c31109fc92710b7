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

/// Where Inventory ships the replacement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    pub defect: DefectCode,
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
