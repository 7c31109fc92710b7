//! Inventory ships a replacement device, or backorders it when the model is out of stock.

use serde::{Deserialize, Serialize};

use crate::catalogue;
use crate::ids::{CountryCode, ModelCode, ReturnId, ShipmentId};
use crate::request::{Address, RefundRequest};
use crate::team::{Outcome, Team};

/// The Inventory team's rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inventory;

/// Stock of one model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub on_hand: u32,
    /// Replacements promised but not shipped yet.
    pub backordered: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum InventoryEvent {
    ReplacementShipped {
        return_id: ReturnId,
        model: ModelCode,
        ship_to: Address,
        shipment_id: ShipmentId,
    },
    ReplacementBackordered {
        return_id: ReturnId,
        model: ModelCode,
        /// 1-based place in the model's backorder queue.
        position: u32,
    },
    ShipmentRejected {
        return_id: ReturnId,
        model: ModelCode,
        reason: InventoryRejection,
    },
}

/// Why Inventory refuses to send a replacement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "code")]
pub enum InventoryRejection {
    /// Inventory does not ship to this country.
    DestinationNotServed { country: CountryCode },
    /// The model is not in the catalogue.
    UnknownModel { model: ModelCode },
}

impl InventoryRejection {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::DestinationNotServed { .. } => "DestinationNotServed",
            Self::UnknownModel { .. } => "UnknownModel",
        }
    }
}

impl InventoryEvent {
    pub const fn return_id(&self) -> ReturnId {
        match self {
            Self::ReplacementShipped { return_id, .. }
            | Self::ReplacementBackordered { return_id, .. }
            | Self::ShipmentRejected { return_id, .. } => *return_id,
        }
    }
}

impl Team for Inventory {
    const NAME: &'static str = "inventory";
    type Key = ModelCode;
    type State = StockLevel;
    type Event = InventoryEvent;

    fn key(req: &RefundRequest) -> ModelCode {
        req.model.clone()
    }

    /// The catalogue's initial stock; nothing for an unknown model.
    fn initial(model: &ModelCode) -> StockLevel {
        StockLevel {
            on_hand: catalogue::model(model).map_or(0, |m| m.initial_stock),
            backordered: 0,
        }
    }

    fn decide(state: &StockLevel, req: &RefundRequest) -> InventoryEvent {
        let return_id = req.return_id;
        let model = req.model.clone();
        let country = &req.ship_to.country;
        if !catalogue::serves_country(country) {
            let reason = InventoryRejection::DestinationNotServed {
                country: country.clone(),
            };
            return InventoryEvent::ShipmentRejected {
                return_id,
                model,
                reason,
            };
        }
        if catalogue::model(&model).is_none() {
            let reason = InventoryRejection::UnknownModel {
                model: model.clone(),
            };
            return InventoryEvent::ShipmentRejected {
                return_id,
                model,
                reason,
            };
        }
        if state.on_hand > 0 {
            InventoryEvent::ReplacementShipped {
                return_id,
                model,
                ship_to: req.ship_to.clone(),
                shipment_id: ShipmentId::for_return(&return_id),
            }
        } else {
            InventoryEvent::ReplacementBackordered {
                return_id,
                model,
                position: state.backordered.saturating_add(1),
            }
        }
    }

    fn evolve(state: &mut StockLevel, event: &InventoryEvent) {
        match event {
            InventoryEvent::ReplacementShipped { .. } => {
                state.on_hand = state.on_hand.saturating_sub(1);
            }
            InventoryEvent::ReplacementBackordered { .. } => {
                state.backordered = state.backordered.saturating_add(1);
            }
            InventoryEvent::ShipmentRejected { .. } => {}
        }
    }

    fn event_key(event: &InventoryEvent) -> ModelCode {
        match event {
            InventoryEvent::ReplacementShipped { model, .. }
            | InventoryEvent::ReplacementBackordered { model, .. }
            | InventoryEvent::ShipmentRejected { model, .. } => model.clone(),
        }
    }

    fn outcome(event: &InventoryEvent) -> Outcome {
        match event {
            InventoryEvent::ReplacementShipped { .. } => Outcome::accepted("replacement_shipped"),
            InventoryEvent::ReplacementBackordered { .. } => {
                Outcome::accepted("replacement_backordered")
            }
            InventoryEvent::ShipmentRejected { reason, .. } => {
                Outcome::rejected("shipment_rejected", reason.name())
            }
        }
    }

    fn event_type(event: &InventoryEvent) -> &'static str {
        match event {
            InventoryEvent::ReplacementShipped { .. } => "ReplacementShipped",
            InventoryEvent::ReplacementBackordered { .. } => "ReplacementBackordered",
            InventoryEvent::ShipmentRejected { .. } => "ShipmentRejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::testkit::a_request;

    struct Case {
        name: &'static str,
        given: StockLevel,
        when: RefundRequest,
        then: InventoryEvent,
    }

    fn stock(on_hand: u32, backordered: u32) -> StockLevel {
        StockLevel {
            on_hand,
            backordered,
        }
    }

    fn cases() -> Vec<Case> {
        let req = a_request().model("NOVA-TAB-13").country("DE").build();
        let swiss = a_request().model("NOVA-TAB-13").country("CH").build();
        let unknown = a_request().model("BRICK-PHONE-1").country("DE").build();
        let unknown_swiss = a_request().model("BRICK-PHONE-1").country("CH").build();
        let rejected = |r: &RefundRequest, reason| InventoryEvent::ShipmentRejected {
            return_id: r.return_id,
            model: r.model.clone(),
            reason,
        };
        vec![
            Case {
                name: "in stock -> shipped to the request's address",
                given: stock(1, 0),
                then: InventoryEvent::ReplacementShipped {
                    return_id: req.return_id,
                    model: req.model.clone(),
                    ship_to: req.ship_to.clone(),
                    shipment_id: ShipmentId::for_return(&req.return_id),
                },
                when: req.clone(),
            },
            Case {
                name: "out of stock -> first in the backorder queue",
                given: stock(0, 0),
                then: InventoryEvent::ReplacementBackordered {
                    return_id: req.return_id,
                    model: req.model.clone(),
                    position: 1,
                },
                when: req.clone(),
            },
            Case {
                name: "out of stock with 41 waiting -> position 42",
                given: stock(0, 41),
                then: InventoryEvent::ReplacementBackordered {
                    return_id: req.return_id,
                    model: req.model.clone(),
                    position: 42,
                },
                when: req,
            },
            Case {
                name: "ship to Switzerland -> DestinationNotServed",
                given: stock(10, 0),
                then: rejected(
                    &swiss,
                    InventoryRejection::DestinationNotServed {
                        country: swiss.ship_to.country.clone(),
                    },
                ),
                when: swiss,
            },
            Case {
                name: "model not in catalogue -> UnknownModel",
                given: stock(10, 0),
                then: rejected(
                    &unknown,
                    InventoryRejection::UnknownModel {
                        model: unknown.model.clone(),
                    },
                ),
                when: unknown,
            },
            Case {
                name: "unknown model and unserved country -> the country is checked first",
                given: stock(0, 0),
                then: rejected(
                    &unknown_swiss,
                    InventoryRejection::DestinationNotServed {
                        country: unknown_swiss.ship_to.country.clone(),
                    },
                ),
                when: unknown_swiss,
            },
        ]
    }

    #[test]
    fn decide_table() {
        for case in cases() {
            assert_eq!(
                Inventory::decide(&case.given, &case.when),
                case.then,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn table_covers_every_outcome() {
        let seen: HashSet<_> = cases()
            .iter()
            .map(|c| Inventory::outcome(&c.then))
            .collect();
        let all = HashSet::from([
            Outcome::accepted("replacement_shipped"),
            Outcome::accepted("replacement_backordered"),
            Outcome::rejected("shipment_rejected", "DestinationNotServed"),
            Outcome::rejected("shipment_rejected", "UnknownModel"),
        ]);
        assert_eq!(seen, all);
    }

    #[test]
    fn evolve_table() {
        let cases = cases();
        let [shipped, backordered, _, not_served, unknown, _] = &cases[..] else {
            panic!("table shape changed");
        };
        let evolve_cases = [
            (
                "shipping takes one unit",
                stock(5, 0),
                &shipped.then,
                stock(4, 0),
            ),
            (
                "backorder joins the queue",
                stock(0, 2),
                &backordered.then,
                stock(0, 3),
            ),
            (
                "unserved country changes nothing",
                stock(5, 1),
                &not_served.then,
                stock(5, 1),
            ),
            (
                "unknown model changes nothing",
                stock(0, 0),
                &unknown.then,
                stock(0, 0),
            ),
        ];
        for (name, mut given, event, then) in evolve_cases {
            Inventory::evolve(&mut given, event);
            assert_eq!(given, then, "{name}");
        }
    }

    #[test]
    fn initial_stock_comes_from_the_catalogue_and_runs_out() {
        let req = a_request().model("ORBIT-HUB").country("NL").build();
        let mut state = Inventory::initial(&Inventory::key(&req));
        assert_eq!(state, stock(3_000, 0));
        assert_eq!(
            Inventory::initial(&ModelCode::parse("BRICK-PHONE-1").unwrap()),
            stock(0, 0)
        );
        for _ in 0..3_000 {
            let event = Inventory::decide(&state, &req);
            assert_eq!(Inventory::event_type(&event), "ReplacementShipped");
            Inventory::evolve(&mut state, &event);
        }
        let event = Inventory::decide(&state, &req);
        assert_eq!(Inventory::event_type(&event), "ReplacementBackordered");
    }

    #[test]
    fn events_round_trip_through_json_with_a_type_tag() {
        for case in cases() {
            let json = serde_json::to_value(&case.then).unwrap();
            assert_eq!(
                json["type"],
                Inventory::event_type(&case.then),
                "{}",
                case.name
            );
            assert_eq!(case.then.return_id(), case.when.return_id);
            let back: InventoryEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back, case.then, "{}", case.name);
        }
    }
}
