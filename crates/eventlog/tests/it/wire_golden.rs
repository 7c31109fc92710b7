//! Golden files freeze the bytes of every published event version.
//!
//! `tests/golden/` holds one pretty JSON payload per published version: `RefundRequest.v1.json`
//! and `RefundRequest.v2.json`, and for the teams `<ce_type>.json` (e.g.
//! `returns.sales.OrderRefunded.v1.json`), with the rejection reason appended for rejections,
//! whose shape depends on it (e.g. `returns.sales.RefundRejected.v1.OrderAlreadyRefunded.json`).
//! Every payload comes from the real encoder, fed by the team's real `decide` on a generated
//! request (seed 7, index 3) adjusted to reach each outcome. `RefundRequest.v1.json` is what a
//! v1 client wrote for that request (User Support writes v2 now).
//!
//! - Encoding today must give the same JSON value as the file (formatting does not matter); the
//!   request User Support writes today (v2) must give the file's very bytes, pretty-printed.
//! - Every file must decode back to the value it came from; v1 through the upcaster, to the same
//!   request but for what v1 could not say (when the defect was noticed, the customer's words).
//! - A missing file fails the test; it is never written silently.
//!
//! To create or rewrite the files after an intended change:
//!
//! ```text
//! UPDATE_GOLDEN=1 cargo test -p returns-eventlog --test it wire_golden::
//! ```
//!
//! then review the diff. A changed file of a published version means old records no longer read
//! the same way: add a new version (and an upcaster) instead of editing the old one.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Once;

use returns_domain::{
    catalogue, Accounting, CountryCode, Currency, Generator, Inventory, LocationCode,
    Manufacturing, ModelCode, Money, Noticed, OrderId, Quality, RefundRequest, ReturnId,
    ReturnReason, Sales, StockLevel, Team,
};
use returns_eventlog::envelope::{self, Envelope};
use returns_eventlog::wire::v1::RefundRequestV1;
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_eventlog::wire::{self, WireError};
use returns_eventlog::{team_topic, Record, RETURN_ORDERS};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Golden file helpers
// ---------------------------------------------------------------------------------------------

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn updating() -> bool {
    std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

/// `payload` re-printed as pretty JSON through its own type, so the file keeps the field order
/// of the wire (a `serde_json::Value` would sort the keys).
fn pretty<D: DeserializeOwned + Serialize>(payload: &[u8]) -> String {
    let typed: D = serde_json::from_slice(payload).expect("the encoder's output reads back");
    let text = serde_json::to_string_pretty(&typed).expect("serializes");
    assert_eq!(
        json(text.as_bytes()),
        json(payload),
        "pretty-printing through the type changed the payload"
    );
    text + "\n"
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

/// The bytes of a golden file; a missing file is a failure. With `UPDATE_GOLDEN=1` every file is
/// (re)written first, once per run, so no test reads a file another one is still writing.
fn read_golden(file: &str) -> Vec<u8> {
    if updating() {
        static WRITE_ALL: Once = Once::new();
        WRITE_ALL.call_once(write_all_golden);
    }
    let path = golden_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} is missing ({e}); create it with \
             `UPDATE_GOLDEN=1 cargo test -p returns-eventlog --test it wire_golden::` and review it",
            path.display()
        )
    })
}

/// Every golden file as today's encoders write it: (file name, pretty payload).
fn all_golden() -> Vec<(String, String)> {
    fn team<T: Team>(cases: &[Case<T>]) -> Vec<(String, String)> {
        cases
            .iter()
            .map(|case| {
                let (file, event) = case.decide();
                (
                    file,
                    pretty::<T::Event>(&wire::encode_team_event::<T>(&event)),
                )
            })
            .collect()
    }
    let mut all = vec![
        (
            REFUND_REQUEST_V1_FILE.to_string(),
            pretty::<RefundRequestV1>(&refund_request_v1_payload()),
        ),
        (
            REFUND_REQUEST_FILE.to_string(),
            pretty::<RefundRequestV2>(&refund_request_payload()),
        ),
    ];
    all.extend(team(&sales()));
    all.extend(team(&inventory()));
    all.extend(team(&manufacturing()));
    all.extend(team(&accounting()));
    all.extend(team(&quality()));
    all
}

fn write_all_golden() {
    std::fs::create_dir_all(golden_dir()).expect("create tests/golden");
    for (file, text) in all_golden() {
        std::fs::write(golden_dir().join(file), text).expect("write golden file");
    }
}

/// Compares `payload` with the golden file `file` as JSON values.
fn assert_golden(file: &str, payload: &[u8]) {
    let golden = json(&read_golden(file));
    let actual = json(payload);
    assert!(
        golden == actual,
        "{file}: the encoding changed.\n--- golden\n{}\n--- now\n{}\n\
         If a published version changed, add a new version instead; if the file is wrong, \
         rerun with UPDATE_GOLDEN=1 and review the diff.",
        serde_json::to_string_pretty(&golden).unwrap_or_default(),
        serde_json::to_string_pretty(&actual).unwrap_or_default(),
    );
}

fn record(topic: &str, offset: u64, headers: Vec<(String, String)>, payload: Vec<u8>) -> Record {
    Record {
        topic: topic.to_string(),
        partition: 2,
        offset,
        key: None,
        timestamp_ms: 1_767_225_600_000,
        headers,
        payload,
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// An ordinary request: catalogue model, EUR amounts, served country, location with a facility.
fn base() -> RefundRequest {
    Generator::new(7).request(3)
}

/// Another return, for state left behind by an earlier request.
fn another_return() -> ReturnId {
    Generator::new(7).request(4).return_id
}

fn price(req: &RefundRequest) -> Money {
    catalogue::model(&req.model)
        .expect("a catalogue model")
        .price()
}

/// The state of `T::key(earlier)` after the team decided `earlier` and folded the event in.
fn after<T: Team>(earlier: &RefundRequest) -> T::State {
    let mut state = T::initial(&T::key(earlier));
    let event = T::decide(&state, earlier);
    T::evolve(&mut state, &event);
    state
}

/// The same order and device as `base()`, returned before under another return id.
fn earlier_claim() -> RefundRequest {
    RefundRequest {
        return_id: another_return(),
        ..base()
    }
}

/// One published shape of a team's event: `decide(given, when)` must be `event_type`, rejected
/// for `rejection` when set.
struct Case<T: Team> {
    given: T::State,
    when: RefundRequest,
    event_type: &'static str,
    rejection: Option<&'static str>,
}

impl<T: Team> Case<T> {
    fn fresh(
        when: RefundRequest,
        event_type: &'static str,
        rejection: Option<&'static str>,
    ) -> Self {
        Case {
            given: T::initial(&T::key(&when)),
            when,
            event_type,
            rejection,
        }
    }

    /// The golden file name and the event `decide` gives.
    fn decide(&self) -> (String, T::Event) {
        let event = T::decide(&self.given, &self.when);
        assert_eq!(
            T::event_type(&event),
            self.event_type,
            "{}: {event:?}",
            T::NAME
        );
        assert_eq!(
            T::outcome(&event).rejection,
            self.rejection,
            "{}: {event:?}",
            T::NAME
        );
        let ce_type = wire::team_event_type::<T>(&event);
        let file = match self.rejection {
            Some(reason) => format!("{ce_type}.{reason}.json"),
            None => format!("{ce_type}.json"),
        };
        (file, event)
    }
}

fn sales() -> Vec<Case<Sales>> {
    let req = base();
    vec![
        Case::fresh(req.clone(), "OrderRefunded", None),
        Case {
            given: after::<Sales>(&earlier_claim()),
            when: req.clone(),
            event_type: "RefundRejected",
            rejection: Some("OrderAlreadyRefunded"),
        },
        Case::fresh(
            RefundRequest {
                model: ModelCode::parse("BRICK-PHONE-1").unwrap(),
                ..req.clone()
            },
            "RefundRejected",
            Some("UnknownModel"),
        ),
        Case::fresh(
            RefundRequest {
                refund_amount: Money::new(price(&req).minor(), Currency::Usd),
                ..req.clone()
            },
            "RefundRejected",
            Some("RefundCurrencyMismatch"),
        ),
        Case::fresh(
            RefundRequest {
                refund_amount: Money::eur(price(&req).minor() + 1),
                ..req
            },
            "RefundRejected",
            Some("RefundExceedsOrderValue"),
        ),
    ]
}

fn inventory() -> Vec<Case<Inventory>> {
    let req = base();
    vec![
        Case::fresh(req.clone(), "ReplacementShipped", None),
        Case {
            given: StockLevel {
                on_hand: 0,
                backordered: 41,
            },
            when: req.clone(),
            event_type: "ReplacementBackordered",
            rejection: None,
        },
        Case::fresh(
            RefundRequest {
                ship_to: returns_domain::Address {
                    country: CountryCode::parse("CH").unwrap(),
                    ..req.ship_to.clone()
                },
                ..req.clone()
            },
            "ShipmentRejected",
            Some("DestinationNotServed"),
        ),
        Case::fresh(
            RefundRequest {
                model: ModelCode::parse("BRICK-PHONE-1").unwrap(),
                ..req
            },
            "ShipmentRejected",
            Some("UnknownModel"),
        ),
    ]
}

fn manufacturing() -> Vec<Case<Manufacturing>> {
    let req = base();
    vec![
        Case::fresh(req.clone(), "DisassemblyOrdered", None),
        Case::fresh(
            RefundRequest {
                item_location: LocationCode::parse("STORE-OSL-01").unwrap(),
                ..req.clone()
            },
            "DisassemblyRejected",
            Some("NoFacilityForLocation"),
        ),
        Case {
            given: after::<Manufacturing>(&earlier_claim()),
            when: req,
            event_type: "DisassemblyRejected",
            rejection: Some("SerialAlreadyInDisassembly"),
        },
    ]
}

fn accounting() -> Vec<Case<Accounting>> {
    let req = base();
    vec![
        Case::fresh(req.clone(), "AssetDisposalCharged", None),
        Case::fresh(
            RefundRequest {
                unit_cost: Money::new(req.unit_cost.minor(), Currency::Gbp),
                ..req
            },
            "DisposalRejected",
            Some("CurrencyNotBooked"),
        ),
    ]
}

/// The version User Support writes today.
fn quality() -> Vec<Case<Quality>> {
    let req = base();
    vec![
        Case::fresh(req.clone(), "DefectRecorded", None),
        Case::fresh(
            RefundRequest {
                model: ModelCode::parse("BRICK-PHONE-1").unwrap(),
                ..req
            },
            "DefectNotRecorded",
            Some("UnknownModel"),
        ),
    ]
}

const REFUND_REQUEST_FILE: &str = "RefundRequest.v2.json";
const REFUND_REQUEST_V1_FILE: &str = "RefundRequest.v1.json";

fn golden_refund_request() -> Vec<u8> {
    read_golden(REFUND_REQUEST_FILE)
}

fn golden_refund_request_v1() -> Vec<u8> {
    read_golden(REFUND_REQUEST_V1_FILE)
}

/// Today's payload of `base()`, as User Support publishes it.
fn refund_request_payload() -> Vec<u8> {
    let req = base();
    wire::encode_refund_request(&req, &wire::refund_request_envelope(&req)).payload
}

/// What a v1 client wrote for `base()`.
fn refund_request_v1_payload() -> Vec<u8> {
    serde_json::to_vec(&RefundRequestV1::from(&base())).expect("a DTO serializes")
}

/// `base()` as a v1 record reads: v1 carried the defect only.
fn base_as_v1_reads() -> RefundRequest {
    let req = base();
    RefundRequest {
        reason: ReturnReason::defect_only(req.reason.defect.clone()),
        ..req
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Today's encoding equals the golden files
// ---------------------------------------------------------------------------------------------

#[test]
fn refund_request_v2_encodes_byte_for_byte_as_the_golden_file() {
    let req = base();
    // The golden request says everything v2 can say, so nothing of it goes unchecked.
    assert_eq!(req.reason.noticed, Noticed::InUse);
    assert!(req.reason.description.is_some());
    let envelope = wire::refund_request_envelope(&req);
    assert_eq!(envelope.event_type, "returns.RefundRequest.v2");
    assert_eq!(envelope.event_type, wire::REFUND_REQUEST_TYPE);
    let out = wire::encode_refund_request(&req, &envelope);
    assert_eq!(out.key, req.return_id.to_string());
    assert_golden(REFUND_REQUEST_FILE, &out.payload);
    let golden = String::from_utf8(golden_refund_request()).expect("UTF-8");
    assert_eq!(
        pretty::<RefundRequestV2>(&out.payload),
        golden,
        "the same bytes, field order included"
    );
}

#[test]
fn the_v1_dto_keeps_the_shape_of_its_golden_file() {
    assert_golden(REFUND_REQUEST_V1_FILE, &refund_request_v1_payload());
}

fn assert_team_golden<T: Team>(cases: &[Case<T>]) {
    for case in cases {
        let (file, event) = case.decide();
        let payload = wire::encode_team_event::<T>(&event);
        assert_golden(&file, &payload);
    }
}

#[test]
fn sales_events_encode_as_the_golden_files() {
    assert_team_golden(&sales());
}

#[test]
fn inventory_events_encode_as_the_golden_files() {
    assert_team_golden(&inventory());
}

#[test]
fn manufacturing_events_encode_as_the_golden_files() {
    assert_team_golden(&manufacturing());
}

#[test]
fn accounting_events_encode_as_the_golden_files() {
    assert_team_golden(&accounting());
}

#[test]
fn quality_events_encode_as_the_golden_files() {
    assert_team_golden(&quality());
}

/// No golden file without a case, so a removed or renamed shape cannot leave a stale file behind
/// that nothing checks.
#[test]
fn every_golden_file_belongs_to_a_published_version() {
    let expected: BTreeSet<String> = all_golden().into_iter().map(|(file, _)| file).collect();
    read_golden(REFUND_REQUEST_FILE); // with UPDATE_GOLDEN=1, writes the files first
    let on_disk: BTreeSet<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(on_disk, expected);
}

// ---------------------------------------------------------------------------------------------
// (b) Every golden file decodes back to the value it came from
// ---------------------------------------------------------------------------------------------

#[test]
fn golden_refund_request_decodes_back() {
    let req = base();
    let env = wire::refund_request_envelope(&req);
    let rec = record(RETURN_ORDERS, 7, env.to_headers(), golden_refund_request());
    let (got_env, got) = wire::decode_refund_request(&rec);
    assert_eq!(got, Ok(req.clone()));
    assert_eq!(got_env.id, env.id);
    assert_eq!(got_env.event_type, "returns.RefundRequest.v2");
    assert_eq!(got_env.source, wire::USER_SUPPORT_SOURCE);
    assert_eq!(got_env.correlation_id, Some(req.return_id.to_string()));
}

#[test]
fn golden_refund_request_v1_decodes_through_the_upcaster() {
    let env = Envelope {
        event_type: "returns.RefundRequest.v1".to_string(),
        ..wire::refund_request_envelope(&base())
    };
    let rec = record(
        RETURN_ORDERS,
        8,
        env.to_headers(),
        golden_refund_request_v1(),
    );
    let (got_env, got) = wire::decode_refund_request(&rec);
    let got = got.expect("a v1 record reads");
    assert_eq!(got_env.event_type, "returns.RefundRequest.v1");
    assert_eq!(got.reason.noticed, Noticed::Unknown);
    assert_eq!(got.reason.description, None);
    // Everything else is what the v2 golden file says.
    let v2 = wire::decode_refund_request(&record(
        RETURN_ORDERS,
        9,
        wire::refund_request_envelope(&base()).to_headers(),
        golden_refund_request(),
    ))
    .1
    .expect("the v2 golden reads");
    assert_eq!(
        got,
        RefundRequest {
            reason: ReturnReason::defect_only(v2.reason.defect.clone()),
            ..v2
        }
    );
    assert_eq!(got, base_as_v1_reads());
    // The upcaster alone gives the v2 DTO of that request.
    let v1: RefundRequestV1 = serde_json::from_slice(&golden_refund_request_v1()).unwrap();
    assert_eq!(
        RefundRequestV2::from(v1),
        RefundRequestV2::from(&base_as_v1_reads())
    );
}

fn assert_team_decodes_back<T: Team>(cases: &[Case<T>]) {
    for (offset, case) in (0u64..).zip(cases) {
        let (file, event) = case.decide();
        let ce_type = wire::team_event_type::<T>(&event);
        let env = Envelope::new(ce_type.clone(), format!("/returns/{}", T::NAME))
            .correlated(case.when.return_id.to_string())
            .caused_by("a-request-id");
        let rec = record(
            &team_topic(T::NAME),
            offset,
            env.to_headers(),
            read_golden(&file),
        );
        let (got_env, got) =
            wire::decode_team_event::<T>(&rec).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got, event, "{file}");
        assert_eq!(got_env.id, env.id, "{file}");
        assert_eq!(got_env.event_type, ce_type, "{file}");
        assert_eq!(
            got_env.causation_id.as_deref(),
            Some("a-request-id"),
            "{file}"
        );
    }
}

#[test]
fn golden_team_events_decode_back() {
    assert_team_decodes_back(&sales());
    assert_team_decodes_back(&inventory());
    assert_team_decodes_back(&manufacturing());
    assert_team_decodes_back(&accounting());
    assert_team_decodes_back(&quality());
}

// ---------------------------------------------------------------------------------------------
// (c) A record without headers, as Kafka's console producer writes it
// ---------------------------------------------------------------------------------------------

#[test]
fn a_refund_request_without_headers_decodes_as_v1_with_an_id_from_its_place() {
    // The console producer sends one line per record: compact JSON, no headers, no key.
    let line = serde_json::to_vec(&json(&golden_refund_request_v1())).unwrap();
    let rec = record(RETURN_ORDERS, 17, vec![], line);

    let (env, got) = wire::decode_refund_request(&rec);
    assert_eq!(got, Ok(base_as_v1_reads()));
    assert_eq!(env.event_type, wire::REFUND_REQUEST_DEFAULT_TYPE);
    assert_eq!(env.event_type, "returns.RefundRequest.v1");
    assert_eq!(env.id, envelope::derived_id(RETURN_ORDERS, 2, 17));
    assert_eq!(
        env.time.unix_timestamp(),
        1_767_225_600,
        "the log's timestamp"
    );

    let (again, _) = wire::decode_refund_request(&rec);
    assert_eq!(again.id, env.id, "the same on every delivery");
    let next = Record { offset: 18, ..rec };
    assert_ne!(
        wire::decode_refund_request(&next).0.id,
        env.id,
        "another place, another id"
    );
}

// ---------------------------------------------------------------------------------------------
// (d) Bad input names what is wrong
// ---------------------------------------------------------------------------------------------

/// A golden request as a JSON object, to break one thing in.
fn golden_object(golden: Vec<u8>) -> serde_json::Map<String, Value> {
    match json(&golden) {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The v1 golden request with one thing changed.
fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut obj = golden_object(golden_refund_request_v1());
    edit(&mut obj);
    serde_json::to_vec(&obj).unwrap()
}

/// The v2 golden request with one thing changed.
fn with_v2(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut obj = golden_object(golden_refund_request());
    edit(&mut obj);
    serde_json::to_vec(&obj).unwrap()
}

struct Bad {
    name: &'static str,
    /// `ce_type` header; `None` writes no headers at all.
    ce_type: Option<&'static str>,
    payload: Vec<u8>,
    kind: &'static str,
    field: Option<&'static str>,
    message_has: &'static [&'static str],
}

#[test]
fn bad_refund_requests_give_the_right_error_kind_and_a_useful_message() {
    let cases = vec![
        Bad {
            name: "not JSON",
            ce_type: Some("returns.RefundRequest.v1"),
            payload: b"refund SO-12345678 please".to_vec(),
            kind: "malformed",
            field: None,
            message_has: &["not a valid returns.RefundRequest.v1", "line 1 column"],
        },
        Bad {
            name: "not JSON, no headers",
            ce_type: None,
            payload: b"{\"order_id\": ".to_vec(),
            kind: "malformed",
            field: None,
            message_has: &["not a valid returns.RefundRequest.v1", "EOF"],
        },
        Bad {
            name: "missing field",
            ce_type: Some("returns.RefundRequest.v1"),
            payload: with(|o| {
                o.remove("order_id");
            }),
            kind: "malformed",
            field: None,
            message_has: &["missing field `order_id`"],
        },
        Bad {
            name: "missing nested field",
            ce_type: Some("returns.RefundRequest.v1"),
            payload: with(|o| {
                o["refund_amount"]
                    .as_object_mut()
                    .unwrap()
                    .remove("currency");
            }),
            kind: "malformed",
            field: None,
            message_has: &["missing field `currency`"],
        },
        Bad {
            name: "invalid order id",
            ce_type: Some("returns.RefundRequest.v1"),
            payload: with(|o| {
                o.insert("order_id".into(), "SO-1".into());
            }),
            kind: "invalid_field",
            field: Some("order_id"),
            message_has: &["`order_id`", "\"SO-1\"", "wrong number of digits"],
        },
        Bad {
            name: "negative refund amount",
            ce_type: Some("returns.RefundRequest.v1"),
            payload: with(|o| {
                o["refund_amount"]["minor"] = Value::from(-500);
            }),
            kind: "invalid_field",
            field: Some("refund_amount"),
            message_has: &["`refund_amount`", "must be positive", "EUR -5.00"],
        },
        Bad {
            name: "unknown currency",
            ce_type: Some("returns.RefundRequest.v1"),
            payload: with(|o| {
                o["unit_cost"]["currency"] = Value::from("CHF");
            }),
            kind: "invalid_field",
            field: Some("unit_cost"),
            message_has: &["`unit_cost`", "CHF"],
        },
        Bad {
            name: "invalid defect, v1",
            ce_type: Some("returns.RefundRequest.v1"),
            payload: with(|o| {
                o.insert("defect".into(), "no power".into());
            }),
            kind: "invalid_field",
            field: Some("defect"),
            message_has: &["`defect`", "\"no power\""],
        },
        Bad {
            name: "invalid defect, v2",
            ce_type: Some("returns.RefundRequest.v2"),
            payload: with_v2(|o| {
                o["reason"]["defect"] = Value::from("no power");
            }),
            kind: "invalid_field",
            field: Some("reason.defect"),
            message_has: &["`reason.defect`", "\"no power\""],
        },
        Bad {
            name: "noticed is not one of its values",
            ce_type: Some("returns.RefundRequest.v2"),
            payload: with_v2(|o| {
                o["reason"]["noticed"] = Value::from("last week");
            }),
            kind: "invalid_field",
            field: Some("reason.noticed"),
            message_has: &[
                "`reason.noticed`",
                "\"last week\"",
                "on_arrival, in_use, unknown",
            ],
        },
        Bad {
            name: "description too long",
            ce_type: Some("returns.RefundRequest.v2"),
            payload: with_v2(|o| {
                o["reason"]["description"] = Value::from("x".repeat(1_001));
            }),
            kind: "invalid_field",
            field: Some("reason.description"),
            message_has: &["`reason.description`", "1001 characters"],
        },
        Bad {
            name: "a v1 payload labelled v2",
            ce_type: Some("returns.RefundRequest.v2"),
            payload: golden_refund_request_v1(),
            kind: "malformed",
            field: None,
            message_has: &[
                "not a valid returns.RefundRequest.v2",
                "missing field `reason`",
            ],
        },
        Bad {
            name: "a v2 payload without headers (read as v1)",
            ce_type: None,
            payload: golden_refund_request(),
            kind: "malformed",
            field: None,
            message_has: &[
                "not a valid returns.RefundRequest.v1",
                "missing field `defect`",
            ],
        },
        Bad {
            name: "the next version",
            ce_type: Some("returns.RefundRequest.v3"),
            payload: golden_refund_request(),
            kind: "unknown_version",
            field: None,
            message_has: &["returns.RefundRequest version 3", "reads versions [1, 2]"],
        },
        Bad {
            name: "unknown future version",
            ce_type: Some("returns.RefundRequest.v99"),
            payload: golden_refund_request(),
            kind: "unknown_version",
            field: None,
            message_has: &["returns.RefundRequest version 99", "reads versions [1, 2]"],
        },
        Bad {
            name: "unknown type",
            ce_type: Some("returns.RefundOrder.v1"),
            payload: golden_refund_request(),
            kind: "unknown_type",
            field: None,
            message_has: &["`returns.RefundOrder.v1`"],
        },
        Bad {
            name: "type without a version",
            ce_type: Some("returns.RefundRequest"),
            payload: golden_refund_request(),
            kind: "unknown_type",
            field: None,
            message_has: &["`returns.RefundRequest`"],
        },
    ];
    for (offset, case) in (0u64..).zip(cases) {
        let headers = match case.ce_type {
            Some(t) => Envelope {
                event_type: t.to_string(),
                ..wire::refund_request_envelope(&base())
            }
            .to_headers(),
            None => vec![],
        };
        let rec = record(RETURN_ORDERS, offset, headers, case.payload);
        let (env, result) = wire::decode_refund_request(&rec);
        let err = result.expect_err(case.name);
        let message = err.to_string();
        assert_eq!(err.kind(), case.kind, "{}: {message}", case.name);
        if let Some(want) = case.field {
            assert!(
                matches!(&err, WireError::Invalid { field, .. } if field == want),
                "{}: {err:?}",
                case.name
            );
        }
        for part in case.message_has {
            assert!(
                message.contains(part),
                "{}: {message:?} lacks {part:?}",
                case.name
            );
        }
        // The envelope comes back anyway, so the record can be dead-lettered under its id.
        if case.ce_type.is_none() {
            assert_eq!(
                env.id,
                envelope::derived_id(RETURN_ORDERS, 2, offset),
                "{}",
                case.name
            );
        }
        assert_eq!(
            env.event_type,
            case.ce_type.unwrap_or(wire::REFUND_REQUEST_DEFAULT_TYPE)
        );
    }
}

#[test]
fn bad_team_events_give_the_right_error_kind() {
    let (file, event) = sales()[0].decide();
    let payload = read_golden(&file);
    let cases: [(&str, Option<&str>, &[u8], &str); 5] = [
        (
            "future version",
            Some("returns.sales.OrderRefunded.v2"),
            &payload,
            "unknown_version",
        ),
        (
            "another team's type",
            Some("returns.inventory.ReplacementShipped.v1"),
            &payload,
            "unknown_type",
        ),
        ("no headers", None, &payload, "unknown_type"),
        (
            "not JSON",
            Some("returns.sales.OrderRefunded.v1"),
            b"refunded",
            "malformed",
        ),
        (
            "bad id inside",
            Some("returns.sales.OrderRefunded.v1"),
            &with_order_id(&payload, "SO-1"),
            "malformed",
        ),
    ];
    for (name, ce_type, payload, kind) in cases {
        let headers = match ce_type {
            Some(t) => Envelope::new(t, "/returns/sales").to_headers(),
            None => vec![],
        };
        let rec = record(&team_topic("sales"), 0, headers, payload.to_vec());
        let err = wire::decode_team_event::<Sales>(&rec).expect_err(name);
        assert_eq!(err.kind(), kind, "{name}: {err}");
        if kind == "unknown_version" {
            let message = err.to_string();
            assert!(
                message.contains("returns.sales.OrderRefunded version 2")
                    && message.contains("reads versions [1]"),
                "{name}: {message}"
            );
        }
    }
    assert_eq!(
        wire::team_event_type::<Sales>(&event),
        "returns.sales.OrderRefunded.v1"
    );
}

fn with_order_id(payload: &[u8], order_id: &str) -> Vec<u8> {
    let mut v = json(payload);
    assert!(OrderId::parse(order_id).is_err());
    v["order_id"] = Value::from(order_id);
    serde_json::to_vec(&v).unwrap()
}

/// The `ce_type` header names one event type, the payload's `type` tag may name another, and
/// nothing checks that they agree: a consumer routing on the header (dashboards, dead-letter
/// tooling) and one reading the payload see different events.
#[test]
fn a_team_event_whose_header_and_payload_disagree_is_rejected() {
    let (file, _) = sales()[1].decide(); // a RefundRejected payload
    let env = Envelope::new("returns.sales.OrderRefunded.v1", "/returns/sales");
    let rec = record(
        &team_topic("sales"),
        0,
        env.to_headers(),
        read_golden(&file),
    );
    let result = wire::decode_team_event::<Sales>(&rec);
    assert!(
        result.is_err(),
        "decoded a RefundRejected labelled OrderRefunded: {result:?}"
    );
}
