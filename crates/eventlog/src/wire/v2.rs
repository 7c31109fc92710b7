//! Version 2 of `RefundRequest` as it sits on the wire: v1 with `defect` replaced by a structured
//! `reason` (the defect code, when the customer noticed it, and their own words). Strings and
//! integers only, like v1. Frozen since it was published: change it only by adding v3.
//!
//! Version 1 is read through [`RefundRequestV2::from`]`(RefundRequestV1)`, the upcaster: a pure
//! function on DTOs, so there is one conversion into the domain, from the current version.

use std::str::FromStr;

use returns_domain::{
    Address, CountryCode, Currency, CustomerId, DefectCode, LocationCode, ModelCode, Money,
    Noticed, OrderId, RefundRequest, ReturnId, ReturnReason, SerialNumber, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::v1::{AddressV1, MoneyV1, RefundRequestV1};
use super::WireError;

/// Why the device comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReasonV2 {
    /// The defect code, e.g. `BATTERY_SWELL`.
    pub defect: String,
    /// When the customer noticed the defect: `on_arrival`, `in_use` or `unknown`.
    #[cfg_attr(feature = "schema", schemars(schema_with = "noticed_schema"))]
    pub noticed: String,
    /// The customer's own words, or null.
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RefundRequestV2 {
    pub return_id: String,
    pub order_id: String,
    pub customer_id: String,
    pub model: String,
    pub serial: String,
    pub reason: ReasonV2,
    pub item_location: String,
    pub unit_cost: MoneyV1,
    pub refund_amount: MoneyV1,
    pub ship_to: AddressV1,
    /// RFC 3339, e.g. `2026-03-01T12:00:00Z`.
    pub requested_at: String,
}

/// The upcaster: a v1 request is a v2 request whose reason names only the defect.
impl From<RefundRequestV1> for RefundRequestV2 {
    fn from(v1: RefundRequestV1) -> Self {
        RefundRequestV2 {
            return_id: v1.return_id,
            order_id: v1.order_id,
            customer_id: v1.customer_id,
            model: v1.model,
            serial: v1.serial,
            reason: ReasonV2 {
                defect: v1.defect,
                noticed: Noticed::Unknown.as_str().to_string(),
                description: None,
            },
            item_location: v1.item_location,
            unit_cost: v1.unit_cost,
            refund_amount: v1.refund_amount,
            ship_to: v1.ship_to,
            requested_at: v1.requested_at,
        }
    }
}

impl From<&RefundRequest> for RefundRequestV2 {
    fn from(r: &RefundRequest) -> Self {
        let money = |m: Money| MoneyV1 {
            minor: m.minor(),
            currency: m.currency().code().to_string(),
        };
        RefundRequestV2 {
            return_id: r.return_id.to_string(),
            order_id: r.order_id.to_string(),
            customer_id: r.customer_id.to_string(),
            model: r.model.to_string(),
            serial: r.serial.to_string(),
            reason: ReasonV2 {
                defect: r.reason.defect.to_string(),
                noticed: r.reason.noticed.as_str().to_string(),
                description: r.reason.description.clone(),
            },
            item_location: r.item_location.to_string(),
            unit_cost: money(r.unit_cost),
            refund_amount: money(r.refund_amount),
            ship_to: AddressV1 {
                name: r.ship_to.name.clone(),
                street: r.ship_to.street.clone(),
                city: r.ship_to.city.clone(),
                postal_code: r.ship_to.postal_code.clone(),
                country: r.ship_to.country.to_string(),
            },
            requested_at: r.requested_at.to_rfc3339(),
        }
    }
}

fn money(field: &str, m: MoneyV1) -> Result<Money, WireError> {
    let currency = Currency::from_str(&m.currency).map_err(|e| WireError::invalid(field, e))?;
    Ok(Money::new(m.minor, currency))
}

fn noticed(value: &str) -> Result<Noticed, WireError> {
    Noticed::ALL
        .into_iter()
        .find(|n| n.as_str() == value)
        .ok_or_else(|| {
            let mut shown: String = value.chars().take(64).collect();
            if shown.len() < value.len() {
                shown.push('…');
            }
            let allowed: Vec<&str> = Noticed::ALL.iter().map(|n| n.as_str()).collect();
            WireError::invalid(
                "reason.noticed",
                format!("{shown:?} is not one of {}", allowed.join(", ")),
            )
        })
}

/// `noticed` is a string on the wire, but only the values of [`Noticed`] are read.
#[cfg(feature = "schema")]
fn noticed_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let allowed: Vec<&str> = Noticed::ALL.iter().map(|n| n.as_str()).collect();
    schemars::json_schema!({ "type": "string", "enum": allowed })
}

impl TryFrom<RefundRequestV2> for RefundRequest {
    type Error = WireError;

    fn try_from(d: RefundRequestV2) -> Result<Self, WireError> {
        let e = WireError::invalid;
        Ok(RefundRequest {
            return_id: ReturnId::from_str(&d.return_id).map_err(|x| e("return_id", x))?,
            order_id: OrderId::parse(d.order_id).map_err(|x| e("order_id", x))?,
            customer_id: CustomerId::parse(d.customer_id).map_err(|x| e("customer_id", x))?,
            model: ModelCode::parse(d.model).map_err(|x| e("model", x))?,
            serial: SerialNumber::parse(d.serial).map_err(|x| e("serial", x))?,
            reason: ReturnReason {
                defect: DefectCode::parse(d.reason.defect).map_err(|x| e("reason.defect", x))?,
                noticed: noticed(&d.reason.noticed)?,
                description: d.reason.description,
            },
            item_location: LocationCode::parse(d.item_location)
                .map_err(|x| e("item_location", x))?,
            unit_cost: money("unit_cost", d.unit_cost)?,
            refund_amount: money("refund_amount", d.refund_amount)?,
            ship_to: Address {
                name: d.ship_to.name,
                street: d.ship_to.street,
                city: d.ship_to.city,
                postal_code: d.ship_to.postal_code,
                country: CountryCode::parse(d.ship_to.country)
                    .map_err(|x| e("ship_to.country", x))?,
            },
            requested_at: Timestamp::parse_rfc3339(&d.requested_at)
                .map_err(|x| e("requested_at", x))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1() -> RefundRequestV1 {
        RefundRequestV1 {
            return_id: "8429c96d-926d-4a98-988d-1b1a2beaf894".into(),
            order_id: "SO-06681597".into(),
            customer_id: "C-819317".into(),
            model: "AURA-PHONE-12-PRO".into(),
            serial: "AURA-PHONE-12-PRO-4X4LQIRQBY".into(),
            defect: "SCREEN_DEAD_PIXELS".into(),
            item_location: "HUB-HKG-01".into(),
            unit_cost: MoneyV1 {
                minor: 56000,
                currency: "EUR".into(),
            },
            refund_amount: MoneyV1 {
                minor: 109900,
                currency: "EUR".into(),
            },
            ship_to: AddressV1 {
                name: "Jan Silva".into(),
                street: "Kärntner Straße 101".into(),
                city: "Wien".into(),
                postal_code: "1010".into(),
                country: "AT".into(),
            },
            requested_at: "2026-01-01T00:05:40.499Z".into(),
        }
    }

    #[test]
    fn the_upcaster_moves_the_defect_into_a_reason_noticed_unknown_without_description() {
        let up = RefundRequestV2::from(v1());
        assert_eq!(
            up.reason,
            ReasonV2 {
                defect: "SCREEN_DEAD_PIXELS".into(),
                noticed: "unknown".into(),
                description: None,
            }
        );
        let v1 = v1();
        let everything_else = RefundRequestV2 {
            reason: up.reason.clone(),
            ..RefundRequestV2::from(&RefundRequest::try_from(up.clone()).unwrap())
        };
        assert_eq!(up, everything_else, "the other fields pass unchanged");
        assert_eq!(up.order_id, v1.order_id);
    }

    #[test]
    fn noticed_reads_exactly_the_snake_case_names() {
        for n in Noticed::ALL {
            assert_eq!(noticed(n.as_str()), Ok(n));
        }
        for bad in ["OnArrival", "on arrival", "", "ON_ARRIVAL"] {
            let err = noticed(bad).unwrap_err();
            assert!(
                matches!(&err, WireError::Invalid { field, .. } if field == "reason.noticed"),
                "{bad}: {err:?}"
            );
            assert!(
                err.to_string().contains("on_arrival, in_use, unknown"),
                "{err}"
            );
        }
        let long = "x".repeat(10_000);
        assert!(noticed(&long).unwrap_err().to_string().len() < 200);
    }
}
