//! Quality tracks defect rates: for each model at each location, how many returns came back,
//! how many were faulty out of the box, and which defects they had.
//!
//! Quality acts on nothing: it refunds, ships, disassembles and books nothing. It only counts,
//! so it can join late. Started after returns have flowed, it reads `returnOrders` from the
//! beginning as its own consumer group and ends with the state it would have had from day one.
//!
//! Every claim counts, a repeated claim on the same unit included: refusing that one is Sales'
//! decision, and a unit that comes back twice says something about the model too.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::catalogue;
use crate::clock::Timestamp;
use crate::error::{echo, DomainError};
use crate::ids::{DefectCode, LocationCode, ModelCode, ReturnId};
use crate::request::{Noticed, RefundRequest};
use crate::team::{Outcome, Team};

/// The Quality team's rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quality;

/// A model at a location: the slice of state one return touches. Written `MODEL@LOCATION`,
/// e.g. `AURA-PHONE-12@WH-AMS-01` (neither code can contain `@`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelAtLocation {
    pub model: ModelCode,
    pub location: LocationCode,
}

impl fmt::Display for ModelAtLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.model, self.location)
    }
}

impl FromStr for ModelAtLocation {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, DomainError> {
        let Some((model, location)) = s.split_once('@') else {
            return Err(DomainError::InvalidId {
                kind: "model at location",
                value: echo(s),
                reason: "expected MODEL@LOCATION",
            });
        };
        Ok(ModelAtLocation {
            model: model.parse()?,
            location: location.parse()?,
        })
    }
}

/// How many returns were noticed faulty when, for one model at one location.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticedCounts {
    pub on_arrival: u64,
    pub in_use: u64,
    /// Requests that do not say (every request published before the reason was structured).
    pub unknown: u64,
}

impl NoticedCounts {
    fn count(&mut self, noticed: Noticed) {
        let n = match noticed {
            Noticed::OnArrival => &mut self.on_arrival,
            Noticed::InUse => &mut self.in_use,
            Noticed::Unknown => &mut self.unknown,
        };
        *n = n.saturating_add(1);
    }
}

/// What Quality knows about one model at one location. Every field is a count, a minimum or a
/// maximum, so the state does not depend on the order the returns arrive in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefectRates {
    /// Returns recorded.
    pub returns: u64,
    pub noticed: NoticedCounts,
    /// Returns per defect code (a `BTreeMap`, so the stored JSON is stable).
    pub defects: BTreeMap<DefectCode, u64>,
    /// The earliest and latest request time among the returns recorded.
    pub first_requested_at: Option<Timestamp>,
    pub last_requested_at: Option<Timestamp>,
}

impl DefectRates {
    /// The share of returns found faulty on arrival, among those whose request says when the
    /// defect was noticed; `None` when none says.
    pub fn on_arrival_share(&self) -> Option<f64> {
        let known = self.noticed.on_arrival.saturating_add(self.noticed.in_use);
        (known > 0).then(|| self.noticed.on_arrival as f64 / known as f64)
    }

    /// The `n` most frequent defects, most frequent first (ties by code).
    pub fn top_defects(&self, n: usize) -> Vec<(&DefectCode, u64)> {
        let mut all: Vec<(&DefectCode, u64)> = self.defects.iter().map(|(d, c)| (d, *c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all.truncate(n);
        all
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type")]
pub enum QualityEvent {
    DefectRecorded {
        return_id: ReturnId,
        model: ModelCode,
        location: LocationCode,
        defect: DefectCode,
        noticed: Noticed,
        requested_at: Timestamp,
    },
    DefectNotRecorded {
        return_id: ReturnId,
        model: ModelCode,
        location: LocationCode,
        reason: QualityRejection,
    },
}

/// Why Quality does not count a return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "code")]
pub enum QualityRejection {
    /// The company does not make this model: a defect rate for it would measure a typo.
    UnknownModel,
}

impl QualityRejection {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::UnknownModel => "UnknownModel",
        }
    }
}

impl QualityEvent {
    pub const fn return_id(&self) -> ReturnId {
        match self {
            Self::DefectRecorded { return_id, .. } | Self::DefectNotRecorded { return_id, .. } => {
                *return_id
            }
        }
    }
}

impl Team for Quality {
    const NAME: &'static str = "quality";
    type Key = ModelAtLocation;
    type State = DefectRates;
    type Event = QualityEvent;

    fn key(req: &RefundRequest) -> ModelAtLocation {
        ModelAtLocation {
            model: req.model.clone(),
            location: req.item_location.clone(),
        }
    }

    fn initial(_: &ModelAtLocation) -> DefectRates {
        DefectRates::default()
    }

    fn decide(_: &DefectRates, req: &RefundRequest) -> QualityEvent {
        if catalogue::model(&req.model).is_none() {
            return QualityEvent::DefectNotRecorded {
                return_id: req.return_id,
                model: req.model.clone(),
                location: req.item_location.clone(),
                reason: QualityRejection::UnknownModel,
            };
        }
        QualityEvent::DefectRecorded {
            return_id: req.return_id,
            model: req.model.clone(),
            location: req.item_location.clone(),
            defect: req.reason.defect.clone(),
            noticed: req.reason.noticed,
            requested_at: req.requested_at,
        }
    }

    fn evolve(state: &mut DefectRates, event: &QualityEvent) {
        match event {
            QualityEvent::DefectRecorded {
                defect,
                noticed,
                requested_at,
                ..
            } => {
                state.returns = state.returns.saturating_add(1);
                state.noticed.count(*noticed);
                let n = state.defects.entry(defect.clone()).or_default();
                *n = n.saturating_add(1);
                let at = *requested_at;
                state.first_requested_at = Some(state.first_requested_at.map_or(at, |t| t.min(at)));
                state.last_requested_at = Some(state.last_requested_at.map_or(at, |t| t.max(at)));
            }
            QualityEvent::DefectNotRecorded { .. } => {}
        }
    }

    fn event_key(event: &QualityEvent) -> ModelAtLocation {
        match event {
            QualityEvent::DefectRecorded {
                model, location, ..
            }
            | QualityEvent::DefectNotRecorded {
                model, location, ..
            } => ModelAtLocation {
                model: model.clone(),
                location: location.clone(),
            },
        }
    }

    fn outcome(event: &QualityEvent) -> Outcome {
        match event {
            QualityEvent::DefectRecorded { .. } => Outcome::accepted("defect_recorded"),
            QualityEvent::DefectNotRecorded { reason, .. } => {
                Outcome::rejected("defect_not_recorded", reason.name())
            }
        }
    }

    fn event_type(event: &QualityEvent) -> &'static str {
        match event {
            QualityEvent::DefectRecorded { .. } => "DefectRecorded",
            QualityEvent::DefectNotRecorded { .. } => "DefectNotRecorded",
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
        given: DefectRates,
        when: RefundRequest,
        then: QualityEvent,
    }

    fn defect(code: &str) -> DefectCode {
        DefectCode::parse(code).unwrap()
    }

    fn at(rfc3339: &str) -> Timestamp {
        Timestamp::parse_rfc3339(rfc3339).unwrap()
    }

    /// `a_request()` with the reason and time this table needs.
    fn returned(code: &str, noticed: Noticed, when: &str) -> RefundRequest {
        let mut req = a_request().at(when).build();
        req.reason.defect = defect(code);
        req.reason.noticed = noticed;
        req
    }

    fn recorded(req: &RefundRequest) -> QualityEvent {
        QualityEvent::DefectRecorded {
            return_id: req.return_id,
            model: req.model.clone(),
            location: req.item_location.clone(),
            defect: req.reason.defect.clone(),
            noticed: req.reason.noticed,
            requested_at: req.requested_at,
        }
    }

    /// Rates with `noticed` = (on arrival, in use, unknown), `defects` and (first, last) times.
    fn rates(noticed: (u64, u64, u64), defects: &[(&str, u64)], span: (&str, &str)) -> DefectRates {
        let (on_arrival, in_use, unknown) = noticed;
        DefectRates {
            returns: on_arrival + in_use + unknown,
            noticed: NoticedCounts {
                on_arrival,
                in_use,
                unknown,
            },
            defects: defects.iter().map(|(d, n)| (defect(d), *n)).collect(),
            first_requested_at: Some(at(span.0)),
            last_requested_at: Some(at(span.1)),
        }
    }

    /// A model at a location that has seen two returns, both batteries, one dead on arrival.
    fn two_batteries() -> DefectRates {
        rates(
            (1, 1, 0),
            &[("BATTERY_SWELL", 2)],
            ("2026-02-01T00:00:00Z", "2026-02-10T00:00:00Z"),
        )
    }

    fn cases() -> Vec<Case> {
        let dead_on_arrival = returned("NO_POWER", Noticed::OnArrival, "2026-03-01T12:00:00Z");
        let failed_in_use = returned("BATTERY_SWELL", Noticed::InUse, "2026-01-15T08:00:00Z");
        let v1_request = returned("OVERHEATING", Noticed::Unknown, "2026-03-01T12:00:00Z");
        let unknown_model = a_request().model("PROTO-X1").build();
        vec![
            Case {
                name: "first return of a model at a location -> recorded",
                given: DefectRates::default(),
                then: recorded(&dead_on_arrival),
                when: dead_on_arrival.clone(),
            },
            Case {
                name: "a busy model at a location -> recorded (counting never refuses)",
                given: two_batteries(),
                then: recorded(&failed_in_use),
                when: failed_in_use,
            },
            Case {
                name: "request that does not say when it was noticed -> recorded as unknown",
                given: two_batteries(),
                then: recorded(&v1_request),
                when: v1_request,
            },
            Case {
                name: "model the company does not make -> UnknownModel",
                given: DefectRates::default(),
                then: QualityEvent::DefectNotRecorded {
                    return_id: unknown_model.return_id,
                    model: ModelCode::parse("PROTO-X1").unwrap(),
                    location: unknown_model.item_location.clone(),
                    reason: QualityRejection::UnknownModel,
                },
                when: unknown_model,
            },
        ]
    }

    #[test]
    fn decide_table() {
        for case in cases() {
            let event = Quality::decide(&case.given, &case.when);
            assert_eq!(event, case.then, "{}", case.name);
            assert_eq!(
                Quality::event_key(&event),
                Quality::key(&case.when),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn table_covers_every_outcome() {
        let seen: HashSet<_> = cases().iter().map(|c| Quality::outcome(&c.then)).collect();
        let all = HashSet::from([
            Outcome::accepted("defect_recorded"),
            Outcome::rejected("defect_not_recorded", "UnknownModel"),
        ]);
        assert_eq!(seen, all);
    }

    #[test]
    fn evolve_table() {
        let cases = cases();
        let evolve_cases = [
            (
                "first return: one of everything, first = last",
                DefectRates::default(),
                &cases[0].then,
                rates(
                    (1, 0, 0),
                    &[("NO_POWER", 1)],
                    ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z"),
                ),
            ),
            (
                "an earlier return moves the first time back, the last stays",
                two_batteries(),
                &cases[1].then,
                rates(
                    (1, 2, 0),
                    &[("BATTERY_SWELL", 3)],
                    ("2026-01-15T08:00:00Z", "2026-02-10T00:00:00Z"),
                ),
            ),
            (
                "a later return with a new defect, noticed when unknown",
                two_batteries(),
                &cases[2].then,
                rates(
                    (1, 1, 1),
                    &[("BATTERY_SWELL", 2), ("OVERHEATING", 1)],
                    ("2026-02-01T00:00:00Z", "2026-03-01T12:00:00Z"),
                ),
            ),
            (
                "a return not recorded counts nothing",
                two_batteries(),
                &cases[3].then,
                two_batteries(),
            ),
        ];
        for (name, mut given, event, then) in evolve_cases {
            Quality::evolve(&mut given, event);
            assert_eq!(given, then, "{name}");
        }
    }

    #[test]
    fn rates_for_reports() {
        let mut rates = two_batteries();
        rates.defects.insert(defect("NO_POWER"), 2);
        rates.defects.insert(defect("AAA_FIRST_BY_NAME"), 1);
        rates.defects.insert(defect("OVERHEATING"), 5);
        assert_eq!(
            rates.top_defects(3),
            vec![
                (&defect("OVERHEATING"), 5),
                (&defect("BATTERY_SWELL"), 2),
                (&defect("NO_POWER"), 2),
            ],
            "most frequent first, ties by code"
        );
        assert_eq!(rates.on_arrival_share(), Some(0.5));
        rates.noticed.unknown = 10;
        assert_eq!(
            rates.on_arrival_share(),
            Some(0.5),
            "requests that do not say are left out of the share"
        );
        assert_eq!(DefectRates::default().on_arrival_share(), None);
    }

    #[test]
    fn key_is_written_model_at_location_and_parses_back() {
        let req = a_request().build();
        let key = Quality::key(&req);
        let text = key.to_string();
        assert_eq!(text, format!("{}@{}", req.model, req.item_location));
        assert_eq!(text.parse::<ModelAtLocation>().unwrap(), key);
        for bad in [
            "AURA-PHONE-12",
            "AURA-PHONE-12@",
            "@WH-AMS-01",
            "AURA-PHONE-12@WH@AMS",
        ] {
            assert!(bad.parse::<ModelAtLocation>().is_err(), "{bad}");
        }
    }

    #[test]
    fn state_and_events_round_trip_through_json() {
        for case in cases() {
            let json = serde_json::to_value(&case.then).unwrap();
            assert_eq!(
                json["type"],
                Quality::event_type(&case.then),
                "{}",
                case.name
            );
            assert_eq!(case.then.return_id(), case.when.return_id);
            let back: QualityEvent = serde_json::from_value(json).unwrap();
            assert_eq!(back, case.then, "{}", case.name);
        }
        let json = serde_json::to_value(&cases()[0].then).unwrap();
        assert_eq!(json["noticed"], "on_arrival");
        assert_eq!(json["defect"], "NO_POWER");
        let json = serde_json::to_value(&cases()[3].then).unwrap();
        assert_eq!(json["reason"]["code"], "UnknownModel");

        let state = two_batteries();
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(
            text,
            r#"{"returns":2,"noticed":{"on_arrival":1,"in_use":1,"unknown":0},"defects":{"BATTERY_SWELL":2},"first_requested_at":1769904000000,"last_requested_at":1770681600000}"#
        );
        assert_eq!(serde_json::from_str::<DefectRates>(&text).unwrap(), state);
    }
}
