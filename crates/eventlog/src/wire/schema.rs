//! The JSON Schema (draft 2020-12) of every event version, generated with schemars from the very
//! types that decide the bytes: the `RefundRequest` DTOs of this module and the team events of the
//! domain (whose serde attributes schemars follows, so an id is a string, a `Timestamp` an
//! integer, a `YearMonth` a `"YYYY-MM"` string).
//!
//! One schema per CloudEvents type: `returns.RefundRequest.v1`, `returns.RefundRequest.v2`, and
//! for every team one per event type, e.g. `returns.sales.OrderRefunded.v1` (a team's event enum
//! is split by its `type` tag, since each variant is its own event type on the wire). The schemas
//! describe what a reader accepts (schemars' deserialize contract).
//!
//! The files under `schemas/` at the repository root are these, committed; the test
//! `crates/eventlog/tests/it/schemas.rs` fails when they differ and rewrites them with
//! `UPDATE_SCHEMAS=1`.

use std::collections::BTreeSet;

use returns_domain::{
    Accounting, AccountingEvent, Inventory, InventoryEvent, Manufacturing, ManufacturingEvent,
    Quality, QualityEvent, Sales, SalesEvent, Team,
};
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Value};

use super::{v1, v2, REFUND_REQUEST, TEAM_EVENT_VERSION};

/// The schema of one event type and version.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSchema {
    /// The CloudEvents type, e.g. `returns.sales.OrderRefunded.v1`.
    pub event_type: String,
    pub schema: Value,
}

impl EventSchema {
    /// `<event type>.schema.json`.
    pub fn file_name(&self) -> String {
        format!("{}.schema.json", self.event_type)
    }
}

/// Every event version this build reads, in a stable order.
pub fn all() -> Vec<EventSchema> {
    let mut all = vec![
        whole::<v1::RefundRequestV1>(format!("{REFUND_REQUEST}.v1"), "User Support"),
        whole::<v2::RefundRequestV2>(format!("{REFUND_REQUEST}.v2"), "User Support"),
    ];
    all.extend(per_event_type::<SalesEvent>(Sales::NAME));
    all.extend(per_event_type::<InventoryEvent>(Inventory::NAME));
    all.extend(per_event_type::<ManufacturingEvent>(Manufacturing::NAME));
    all.extend(per_event_type::<AccountingEvent>(Accounting::NAME));
    all.extend(per_event_type::<QualityEvent>(Quality::NAME));
    all
}

fn root_schema<T: JsonSchema>() -> Map<String, Value> {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    match schema.to_value() {
        Value::Object(map) => map,
        other => panic!("the schema of a struct or enum is an object, got {other}"),
    }
}

fn whole<T: JsonSchema>(event_type: String, publisher: &str) -> EventSchema {
    let mut root = root_schema::<T>();
    let defs = root.remove("$defs");
    root.remove("title");
    let doc = document(&event_type, publisher, root, defs);
    EventSchema {
        event_type,
        schema: doc,
    }
}

/// One schema per variant of a team's event enum, told apart by the const of its `type` tag.
fn per_event_type<E: JsonSchema>(team: &str) -> Vec<EventSchema> {
    let mut root = root_schema::<E>();
    let defs = root.remove("$defs");
    let Some(Value::Array(variants)) = root.remove("oneOf") else {
        panic!("a team's events are an enum tagged by `type`, so its schema is a oneOf: {root:?}");
    };
    variants
        .into_iter()
        .map(|variant| {
            let Value::Object(variant) = variant else {
                panic!("a variant's schema is an object: {variant}");
            };
            let name = variant
                .get("properties")
                .and_then(|p| p.get("type"))
                .and_then(|t| t.get("const"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("a variant without a `type` const: {variant:?}"))
                .to_string();
            let event_type = format!("returns.{team}.{name}.v{TEAM_EVENT_VERSION}");
            let doc = document(
                &event_type,
                &format!("the {team} team"),
                variant,
                defs.clone(),
            );
            EventSchema {
                event_type,
                schema: doc,
            }
        })
        .collect()
}

/// A standalone schema document: `$schema`, the event type as its title, the body, and only the
/// `$defs` the body refers to (directly or through other definitions).
fn document(
    event_type: &str,
    publisher: &str,
    body: Map<String, Value>,
    defs: Option<Value>,
) -> Value {
    let mut doc = Map::new();
    doc.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    doc.insert("title".into(), event_type.into());
    doc.insert(
        "description".into(),
        format!(
            "The JSON payload of a `{event_type}` event (its CloudEvents type, in the record \
             header `ce_type`), published by {publisher}."
        )
        .into(),
    );
    for (key, value) in body {
        if key != "$schema" && key != "description" {
            doc.insert(key, value);
        }
    }
    if let Some(Value::Object(defs)) = defs {
        let used = used_definitions(&Value::Object(doc.clone()), &defs);
        let defs: Map<String, Value> = defs
            .into_iter()
            .filter(|(name, _)| used.contains(name))
            .collect();
        if !defs.is_empty() {
            doc.insert("$defs".into(), Value::Object(defs));
        }
    }
    Value::Object(doc)
}

fn used_definitions(body: &Value, defs: &Map<String, Value>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut todo = vec![body];
    while let Some(schema) = todo.pop() {
        let mut found = BTreeSet::new();
        refs(schema, &mut found);
        for name in found {
            if let Some(def) = defs.get(&name) {
                if used.insert(name) {
                    todo.push(def);
                }
            }
        }
    }
    used
}

fn refs(schema: &Value, out: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                out.insert(name.to_string());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}
