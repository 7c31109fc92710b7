//! Manufacturing registers a disassembly order for the returned unit at the facility that
//! collects from the item's location, once per serial number.

use serde::{Deserialize, Serialize};

use crate::catalogue;
use crate::ids::{
    DefectCode, DisassemblyOrderNo, FacilityCode, LocationCode, ModelCode, ReturnId, SerialNumber,
};
use crate::request::RefundRequest;
use crate::team::{Outcome, Team};

/// The Manufacturing team's rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Manufacturing;

/// What Manufacturing knows about one physical unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialState {
    /// The return whose disassembly order covers this unit, if any.
    pub disassembly: Option<ReturnId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum ManufacturingEvent {
    DisassemblyOrdered {
        return_id: ReturnId,
        serial: SerialNumber,
        model: ModelCode,
        defect: DefectCode,
        facility: FacilityCode,
        location: LocationCode,
        order_no: DisassemblyOrderNo,
    },
    DisassemblyRejected {
        return_id: ReturnId,
        serial: SerialNumber,
        reason: ManufacturingRejection,
    },
}

/// Why Manufacturing refuses to register a disassembly order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "code")]
pub enum ManufacturingRejection {
    /// No facility collects from this location (or the location is unknown).
    NoFacilityForLocation { location: LocationCode },
    /// This unit is already scheduled for disassembly.
    SerialAlreadyInDisassembly { by_return: ReturnId },
}

impl ManufacturingRejection {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::NoFacilityForLocation { .. } => "NoFacilityForLocation",
            Self::SerialAlreadyInDisassembly { .. } => "SerialAlreadyInDisassembly",
        }
    }
}

impl ManufacturingEvent {
    pub const fn return_id(&self) -> ReturnId {
        match self {
            Self::DisassemblyOrdered { return_id, .. }
            | Self::DisassemblyRejected { return_id, .. } => *return_id,
        }
    }
}

impl Team for Manufacturing {
    const NAME: &'static str = "manufacturing";
    type Key = SerialNumber;
    type State = SerialState;
    type Event = ManufacturingEvent;

    fn key(req: &RefundRequest) -> SerialNumber {
        req.serial.clone()
    }

    fn initial(_: &SerialNumber) -> SerialState {
        SerialState::default()
    }

    fn decide(state: &SerialState, req: &RefundRequest) -> ManufacturingEvent {
        let rejected = |reason| ManufacturingEvent::DisassemblyRejected {
            return_id: req.return_id,
            serial: req.serial.clone(),
            reason,
        };
        let Some(facility) = catalogue::facility_for(&req.item_location) else {
            return rejected(ManufacturingRejection::NoFacilityForLocation {
                location: req.item_location.clone(),
            });
        };
        if let Some(by_return) = state.disassembly {
            return rejected(ManufacturingRejection::SerialAlreadyInDisassembly { by_return });
        }
        ManufacturingEvent::DisassemblyOrdered {
            return_id: req.return_id,
            serial: req.serial.clone(),
            model: req.model.clone(),
            defect: req.reason.defect.clone(),
            facility,
            location: req.item_location.clone(),
            order_no: DisassemblyOrderNo::for_return(&req.return_id),
        }
    }

    fn evolve(state: &mut SerialState, event: &ManufacturingEvent) {
        match event {
            ManufacturingEvent::DisassemblyOrdered { return_id, .. } => {
                state.disassembly = Some(*return_id);
            }
            ManufacturingEvent::DisassemblyRejected { .. } => {}
        }
    }

    fn event_key(event: &ManufacturingEvent) -> SerialNumber {
        match event {
            ManufacturingEvent::DisassemblyOrdered { serial, .. }
            | ManufacturingEvent::DisassemblyRejected { serial, .. } => serial.clone(),
        }
    }

    fn outcome(event: &ManufacturingEvent) -> Outcome {
        match event {
            ManufacturingEvent::DisassemblyOrdered { .. } => {
                Outcome::accepted("disassembly_ordered")
            }
            ManufacturingEvent::DisassemblyRejected { reason, .. } => {
                Outcome::rejected("disassembly_rejected", reason.name())
            }
        }
    }

    fn event_type(event: &ManufacturingEvent) -> &'static str {
        match event {
            ManufacturingEvent::DisassemblyOrdered { .. } => "DisassemblyOrdered",
            ManufacturingEvent::DisassemblyRejected { .. } => "DisassemblyRejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::generator::unserved_location;
    use crate::testkit::{a_request, another_return};

    struct Case {
        name: &'static str,
        given: SerialState,
        when: RefundRequest,
        then: ManufacturingEvent,
    }

    fn loc(code: &str) -> LocationCode {
        LocationCode::parse(code).unwrap()
    }

    fn cases() -> Vec<Case> {
        let fresh = SerialState::default();
        let taken = SerialState {
            disassembly: Some(another_return()),
        };
        let brno = a_request()
            .serial("NOVA-TAB-13-ABCDEFGHIJ")
            .location(loc("WH-PRG-01"))
            .build();
        let oslo = a_request().location(unserved_location()).build();
        let nowhere = a_request().location(loc("WH-ATLANTIS-01")).build();
        let rejected = |r: &RefundRequest, reason| ManufacturingEvent::DisassemblyRejected {
            return_id: r.return_id,
            serial: r.serial.clone(),
            reason,
        };
        vec![
            Case {
                name: "fresh serial at a Prague warehouse -> ordered at Brno",
                given: fresh,
                then: ManufacturingEvent::DisassemblyOrdered {
                    return_id: brno.return_id,
                    serial: brno.serial.clone(),
                    model: brno.model.clone(),
                    defect: brno.reason.defect.clone(),
                    facility: FacilityCode::parse("FAC-BRNO").unwrap(),
                    location: loc("WH-PRG-01"),
                    order_no: DisassemblyOrderNo::for_return(&brno.return_id),
                },
                when: brno.clone(),
            },
            Case {
                name: "serial already ordered -> SerialAlreadyInDisassembly",
                given: taken,
                then: rejected(
                    &brno,
                    ManufacturingRejection::SerialAlreadyInDisassembly {
                        by_return: another_return(),
                    },
                ),
                when: brno,
            },
            Case {
                name: "location no facility collects from -> NoFacilityForLocation",
                given: fresh,
                then: rejected(
                    &oslo,
                    ManufacturingRejection::NoFacilityForLocation {
                        location: unserved_location(),
                    },
                ),
                when: oslo,
            },
            Case {
                name: "unknown location -> NoFacilityForLocation",
                given: fresh,
                then: rejected(
                    &nowhere,
                    ManufacturingRejection::NoFacilityForLocation {
                        location: loc("WH-ATLANTIS-01"),
                    },
                ),
                when: nowhere,
            },
        ]
    }

    #[test]
    fn decide_table() {
        for case in cases() {
            assert_eq!(
                Manufacturing::decide(&case.given, &case.when),
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
            .map(|c| Manufacturing::outcome(&c.then))
            .collect();
        let all = HashSet::from([
            Outcome::accepted("disassembly_ordered"),
            Outcome::rejected("disassembly_rejected", "NoFacilityForLocation"),
            Outcome::rejected("disassembly_rejected", "SerialAlreadyInDisassembly"),
        ]);
        assert_eq!(seen, all);
    }

    #[test]
    fn evolve_registers_the_first_order_only() {
        let req = a_request().build();
        let mut state = Manufacturing::initial(&Manufacturing::key(&req));
        let ordered = Manufacturing::decide(&state, &req);
        Manufacturing::evolve(&mut state, &ordered);
        assert_eq!(
            state,
            SerialState {
                disassembly: Some(req.return_id)
            }
        );

        let duplicate = Manufacturing::decide(&state, &req);
        assert_eq!(Manufacturing::event_type(&duplicate), "DisassemblyRejected");
        Manufacturing::evolve(&mut state, &duplicate);
        assert_eq!(
            state,
            SerialState {
                disassembly: Some(req.return_id)
            }
        );
    }

    #[test]
    fn events_round_trip_through_json_with_a_type_tag() {
        for case in cases() {
            let json = serde_json::to_value(&case.then).unwrap();
            assert_eq!(
                json["type"],
                Manufacturing::event_type(&case.then),
                "{}",
                case.name
            );
            assert_eq!(case.then.return_id(), case.when.return_id);
            let back: ManufacturingEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back, case.then, "{}", case.name);
        }
    }
}
