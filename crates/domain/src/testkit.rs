//! Test helpers: a builder over a generated request, so each table row states only what matters.

use crate::clock::Timestamp;
use crate::generator::Generator;
use crate::ids::{CountryCode, LocationCode, ModelCode, ReturnId, SerialNumber};
use crate::money::Money;
use crate::request::RefundRequest;

/// Starts from generated request 0 of seed 7: a valid, ordinary request (served country,
/// location with a facility, known model, EUR amounts).
pub(crate) fn a_request() -> RequestBuilder {
    RequestBuilder(Generator::new(7).request(0))
}

/// A return id other than `a_request()`'s.
pub(crate) fn another_return() -> ReturnId {
    Generator::new(7).request(1).return_id
}

pub(crate) struct RequestBuilder(RefundRequest);

impl RequestBuilder {
    pub(crate) fn model(mut self, code: &str) -> Self {
        self.0.model = ModelCode::parse(code).unwrap();
        self
    }
    pub(crate) fn serial(mut self, s: &str) -> Self {
        self.0.serial = SerialNumber::parse(s).unwrap();
        self
    }
    pub(crate) fn location(mut self, code: LocationCode) -> Self {
        self.0.item_location = code;
        self
    }
    pub(crate) fn country(mut self, code: &str) -> Self {
        self.0.ship_to.country = CountryCode::parse(code).unwrap();
        self
    }
    pub(crate) fn refund(mut self, amount: Money) -> Self {
        self.0.refund_amount = amount;
        self
    }
    pub(crate) fn unit_cost(mut self, amount: Money) -> Self {
        self.0.unit_cost = amount;
        self
    }
    pub(crate) fn at(mut self, rfc3339: &str) -> Self {
        self.0.requested_at = Timestamp::parse_rfc3339(rfc3339).unwrap();
        self
    }
    pub(crate) fn name(mut self, v: &str) -> Self {
        self.0.ship_to.name = v.into();
        self
    }
    pub(crate) fn street(mut self, v: &str) -> Self {
        self.0.ship_to.street = v.into();
        self
    }
    pub(crate) fn city(mut self, v: &str) -> Self {
        self.0.ship_to.city = v.into();
        self
    }
    pub(crate) fn postal_code(mut self, v: &str) -> Self {
        self.0.ship_to.postal_code = v.into();
        self
    }
    pub(crate) fn build(self) -> RefundRequest {
        self.0
    }
}
