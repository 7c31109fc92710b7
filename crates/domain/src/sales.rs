//! Sales refunds the order, once, and never more than the model's price.

use serde::{Deserialize, Serialize};

use crate::catalogue;
use crate::ids::{CustomerId, ModelCode, OrderId, RefundId, ReturnId};
use crate::money::{Currency, Money};
use crate::request::RefundRequest;
use crate::team::{Outcome, Team};

/// The Sales team's rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sales;

/// What Sales knows about one order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// The return that got the order refunded, if any.
    pub refunded_by: Option<ReturnId>,
    /// How much was paid back.
    pub refunded: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum SalesEvent {
    OrderRefunded {
        return_id: ReturnId,
        order_id: OrderId,
        customer_id: CustomerId,
        amount: Money,
        refund_id: RefundId,
    },
    RefundRejected {
        return_id: ReturnId,
        order_id: OrderId,
        reason: SalesRejection,
    },
}

/// Why Sales refuses to refund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "code")]
pub enum SalesRejection {
    /// The order was already refunded for another (or the same) return.
    OrderAlreadyRefunded { by_return: ReturnId },
    /// The model is not in the catalogue, so the order value is unknown.
    UnknownModel { model: ModelCode },
    /// The refund is in another currency than the order was sold in.
    RefundCurrencyMismatch {
        order_currency: Currency,
        requested: Currency,
    },
    /// The refund asks for more than the model's price.
    RefundExceedsOrderValue {
        requested: Money,
        order_value: Money,
    },
}

impl SalesRejection {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::OrderAlreadyRefunded { .. } => "OrderAlreadyRefunded",
            Self::UnknownModel { .. } => "UnknownModel",
            Self::RefundCurrencyMismatch { .. } => "RefundCurrencyMismatch",
            Self::RefundExceedsOrderValue { .. } => "RefundExceedsOrderValue",
        }
    }
}

impl SalesEvent {
    pub const fn return_id(&self) -> ReturnId {
        match self {
            Self::OrderRefunded { return_id, .. } | Self::RefundRejected { return_id, .. } => {
                *return_id
            }
        }
    }
}

impl Sales {
    fn check(state: &OrderState, req: &RefundRequest) -> Result<(), SalesRejection> {
        if let Some(by_return) = state.refunded_by {
            return Err(SalesRejection::OrderAlreadyRefunded { by_return });
        }
        let model = catalogue::model(&req.model).ok_or_else(|| SalesRejection::UnknownModel {
            model: req.model.clone(),
        })?;
        let order_value = model.price();
        let requested = req.refund_amount;
        if requested.currency() != order_value.currency() {
            return Err(SalesRejection::RefundCurrencyMismatch {
                order_currency: order_value.currency(),
                requested: requested.currency(),
            });
        }
        if requested.minor() > order_value.minor() {
            return Err(SalesRejection::RefundExceedsOrderValue {
                requested,
                order_value,
            });
        }
        Ok(())
    }
}

impl Team for Sales {
    const NAME: &'static str = "sales";
    type Key = OrderId;
    type State = OrderState;
    type Event = SalesEvent;

    fn key(req: &RefundRequest) -> OrderId {
        req.order_id.clone()
    }

    fn initial(_: &OrderId) -> OrderState {
        OrderState::default()
    }

    fn decide(state: &OrderState, req: &RefundRequest) -> SalesEvent {
        match Self::check(state, req) {
            Ok(()) => SalesEvent::OrderRefunded {
                return_id: req.return_id,
                order_id: req.order_id.clone(),
                customer_id: req.customer_id.clone(),
                amount: req.refund_amount,
                refund_id: RefundId::for_return(&req.return_id),
            },
            Err(reason) => SalesEvent::RefundRejected {
                return_id: req.return_id,
                order_id: req.order_id.clone(),
                reason,
            },
        }
    }

    fn evolve(state: &mut OrderState, event: &SalesEvent) {
        match event {
            SalesEvent::OrderRefunded {
                return_id, amount, ..
            } => {
                state.refunded_by = Some(*return_id);
                state.refunded = Some(*amount);
            }
            SalesEvent::RefundRejected { .. } => {}
        }
    }

    fn event_key(event: &SalesEvent) -> OrderId {
        match event {
            SalesEvent::OrderRefunded { order_id, .. }
            | SalesEvent::RefundRejected { order_id, .. } => order_id.clone(),
        }
    }

    fn outcome(event: &SalesEvent) -> Outcome {
        match event {
            SalesEvent::OrderRefunded { .. } => Outcome::accepted("order_refunded"),
            SalesEvent::RefundRejected { reason, .. } => {
                Outcome::rejected("refund_rejected", reason.name())
            }
        }
    }

    fn event_type(event: &SalesEvent) -> &'static str {
        match event {
            SalesEvent::OrderRefunded { .. } => "OrderRefunded",
            SalesEvent::RefundRejected { .. } => "RefundRejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::testkit::{a_request, another_return};

    struct Case {
        name: &'static str,
        given: OrderState,
        when: RefundRequest,
        then: SalesEvent,
    }

    fn refunded(req: &RefundRequest) -> SalesEvent {
        SalesEvent::OrderRefunded {
            return_id: req.return_id,
            order_id: req.order_id.clone(),
            customer_id: req.customer_id.clone(),
            amount: req.refund_amount,
            refund_id: RefundId::for_return(&req.return_id),
        }
    }

    fn rejected(req: &RefundRequest, reason: SalesRejection) -> SalesEvent {
        SalesEvent::RefundRejected {
            return_id: req.return_id,
            order_id: req.order_id.clone(),
            reason,
        }
    }

    fn cases() -> Vec<Case> {
        let fresh = OrderState::default();
        let hub = a_request().model("ORBIT-HUB");
        let full_price = a_request()
            .model("ORBIT-HUB")
            .refund(Money::eur(12_900))
            .build();
        let partial = a_request()
            .model("ORBIT-HUB")
            .refund(Money::eur(5_000))
            .build();
        let too_much = hub.refund(Money::eur(12_901)).build();
        let dollars = a_request()
            .model("ORBIT-HUB")
            .refund(Money::new(100, Currency::Usd))
            .build();
        let unknown = a_request().model("BRICK-PHONE-1").build();
        let already = OrderState {
            refunded_by: Some(another_return()),
            refunded: Some(Money::eur(12_900)),
        };
        vec![
            Case {
                name: "fresh order, full price -> refunded",
                given: fresh.clone(),
                then: refunded(&full_price),
                when: full_price,
            },
            Case {
                name: "fresh order, partial refund -> refunded",
                given: fresh.clone(),
                then: refunded(&partial),
                when: partial.clone(),
            },
            Case {
                name: "order refunded before -> OrderAlreadyRefunded",
                given: already,
                then: rejected(
                    &partial,
                    SalesRejection::OrderAlreadyRefunded {
                        by_return: another_return(),
                    },
                ),
                when: partial,
            },
            Case {
                name: "model not in catalogue -> UnknownModel",
                given: fresh.clone(),
                then: rejected(
                    &unknown,
                    SalesRejection::UnknownModel {
                        model: unknown.model.clone(),
                    },
                ),
                when: unknown,
            },
            Case {
                name: "refund in USD for an EUR order -> RefundCurrencyMismatch",
                given: fresh.clone(),
                then: rejected(
                    &dollars,
                    SalesRejection::RefundCurrencyMismatch {
                        order_currency: Currency::Eur,
                        requested: Currency::Usd,
                    },
                ),
                when: dollars,
            },
            Case {
                name: "one cent above the price -> RefundExceedsOrderValue",
                given: fresh,
                then: rejected(
                    &too_much,
                    SalesRejection::RefundExceedsOrderValue {
                        requested: Money::eur(12_901),
                        order_value: Money::eur(12_900),
                    },
                ),
                when: too_much,
            },
        ]
    }

    #[test]
    fn decide_table() {
        for case in cases() {
            assert_eq!(
                Sales::decide(&case.given, &case.when),
                case.then,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn table_covers_every_outcome() {
        let seen: HashSet<_> = cases().iter().map(|c| Sales::outcome(&c.then)).collect();
        let all = HashSet::from([
            Outcome::accepted("order_refunded"),
            Outcome::rejected("refund_rejected", "OrderAlreadyRefunded"),
            Outcome::rejected("refund_rejected", "UnknownModel"),
            Outcome::rejected("refund_rejected", "RefundCurrencyMismatch"),
            Outcome::rejected("refund_rejected", "RefundExceedsOrderValue"),
        ]);
        assert_eq!(seen, all);
    }

    #[test]
    fn evolve_marks_the_order_refunded_and_ignores_rejections() {
        let req = a_request().build();
        let key = Sales::key(&req);
        assert_eq!(key, req.order_id);
        let mut state = Sales::initial(&key);

        let first = Sales::decide(&state, &req);
        assert_eq!(Sales::event_type(&first), "OrderRefunded");
        Sales::evolve(&mut state, &first);
        assert_eq!(
            state,
            OrderState {
                refunded_by: Some(req.return_id),
                refunded: Some(req.refund_amount)
            }
        );

        let again = a_request().build();
        let second = Sales::decide(&state, &again);
        assert_eq!(Sales::event_type(&second), "RefundRejected");
        let before = state.clone();
        Sales::evolve(&mut state, &second);
        assert_eq!(state, before);
    }

    #[test]
    fn events_round_trip_through_json_with_a_type_tag() {
        for case in cases() {
            let json = serde_json::to_value(&case.then).unwrap();
            assert_eq!(json["type"], Sales::event_type(&case.then), "{}", case.name);
            assert_eq!(case.then.return_id(), case.when.return_id);
            let back: SalesEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back, case.then, "{}", case.name);
        }
    }
}
