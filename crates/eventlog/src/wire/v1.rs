//! Version 1 of `RefundRequest` as it sits on the wire: strings and integers only, so the
//! domain types can change without changing published bytes. Frozen: change it only by adding v2.

use std::str::FromStr;

use returns_domain::{
    Address, CountryCode, Currency, CustomerId, DefectCode, LocationCode, ModelCode, Money,
    OrderId, RefundRequest, ReturnId, ReturnReason, SerialNumber, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::WireError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyV1 {
    /// Integer minor units (cents).
    pub minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressV1 {
    pub name: String,
    pub street: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequestV1 {
    pub return_id: String,
    pub order_id: String,
    pub customer_id: String,
    pub model: String,
    pub serial: String,
    pub defect: String,
    pub item_location: String,
    pub unit_cost: MoneyV1,
    pub refund_amount: MoneyV1,
    pub ship_to: AddressV1,
    /// RFC 3339, e.g. `2026-03-01T12:00:00Z`.
    pub requested_at: String,
}

impl From<&RefundRequest> for RefundRequestV1 {
    fn from(r: &RefundRequest) -> Self {
        let money = |m: Money| MoneyV1 {
            minor: m.minor(),
            currency: m.currency().code().to_string(),
        };
        RefundRequestV1 {
            return_id: r.return_id.to_string(),
            order_id: r.order_id.to_string(),
            customer_id: r.customer_id.to_string(),
            model: r.model.to_string(),
            serial: r.serial.to_string(),
            defect: r.reason.defect.to_string(),
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

impl TryFrom<RefundRequestV1> for RefundRequest {
    type Error = WireError;

    fn try_from(d: RefundRequestV1) -> Result<Self, WireError> {
        let e = WireError::invalid;
        Ok(RefundRequest {
            return_id: ReturnId::from_str(&d.return_id).map_err(|x| e("return_id", x))?,
            order_id: OrderId::parse(d.order_id).map_err(|x| e("order_id", x))?,
            customer_id: CustomerId::parse(d.customer_id).map_err(|x| e("customer_id", x))?,
            model: ModelCode::parse(d.model).map_err(|x| e("model", x))?,
            serial: SerialNumber::parse(d.serial).map_err(|x| e("serial", x))?,
            reason: ReturnReason::defect_only(
                DefectCode::parse(d.defect).map_err(|x| e("defect", x))?,
            ),
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
