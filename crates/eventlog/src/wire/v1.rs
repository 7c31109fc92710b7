//! Version 1 of `RefundRequest` as it sits on the wire: strings and integers only, so the
//! domain types can change without changing published bytes. Frozen: v2 replaced it, and v1
//! records are read by upcasting them to v2 ([`super::v2`]).

use returns_domain::RefundRequest;
use serde::{Deserialize, Serialize};

use super::v2::RefundRequestV2;
use super::WireError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MoneyV1 {
    /// Integer minor units (cents).
    pub minor: i64,
    /// ISO 4217 code.
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AddressV1 {
    pub name: String,
    pub street: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// What a v1 client would have written for `r`: everything but the defect of its reason is
/// lost. User Support publishes v2; this is for tests and tools that need old records.
impl From<&RefundRequest> for RefundRequestV1 {
    fn from(r: &RefundRequest) -> Self {
        let v2 = RefundRequestV2::from(r);
        RefundRequestV1 {
            return_id: v2.return_id,
            order_id: v2.order_id,
            customer_id: v2.customer_id,
            model: v2.model,
            serial: v2.serial,
            defect: v2.reason.defect,
            item_location: v2.item_location,
            unit_cost: v2.unit_cost,
            refund_amount: v2.refund_amount,
            ship_to: v2.ship_to,
            requested_at: v2.requested_at,
        }
    }
}

/// Read through the upcaster to v2; an invalid defect is named `defect`, as v1 calls it.
impl TryFrom<RefundRequestV1> for RefundRequest {
    type Error = WireError;

    fn try_from(d: RefundRequestV1) -> Result<Self, WireError> {
        RefundRequest::try_from(RefundRequestV2::from(d)).map_err(|e| match e {
            WireError::Invalid { field, reason } if field == "reason.defect" => {
                WireError::Invalid {
                    field: "defect".to_string(),
                    reason,
                }
            }
            other => other,
        })
    }
}
