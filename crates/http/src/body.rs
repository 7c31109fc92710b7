//! Reading a `RefundRequest` v2 body, strictly: the one way every endpoint (User Support's intake
//! and the teams') turns a request body into a [`RefundRequest`].
//!
//! In order, each step answering with the first problem it finds:
//!
//! 1. `Content-Type` must be JSON (`application/json` or `application/*+json`): else 415.
//! 2. The body is read up to the route's [`DefaultBodyLimit`](axum::extract::DefaultBodyLimit):
//!    else 413.
//! 3. It must be one JSON value and nothing after it, in which no object repeats a key (serde
//!    would keep the last one silently): else 400, or 422 naming the repeated field.
//! 4. It must be an object (400), and wherever the DTO has an object, the body must have one:
//!    serde would read a struct from an array of its fields in order, which is not this wire
//!    (422 naming the field).
//! 5. The shape of the wire DTO [`RefundRequestV2`]: a missing field or a wrong type is a 422
//!    naming it (`ship_to.country`).
//! 6. No field the DTO does not have (422 naming it). The log's JSON Schema leaves records open
//!    to added fields, as a reader of a log must; at the edge, where a client writes the body, an
//!    unknown field is nearly always a misspelt one (`descripton`), whose value would otherwise be
//!    dropped without a word.
//! 7. The same conversion and validation as a record read from `returnOrders`.

use std::cell::RefCell;
use std::fmt;
use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use returns_domain::{Generator, RefundRequest};
use returns_eventlog::wire::v2::RefundRequestV2;
use returns_eventlog::wire::WireError;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::HttpError;

/// A body read as a valid `RefundRequest` v2 (see the module's steps).
pub struct RefundRequestBody(pub RefundRequest);

impl<S: Send + Sync> FromRequest<S> for RefundRequestBody {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, HttpError> {
        if !is_json(request.headers()) {
            return Err(HttpError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state).await?;
        parse_request(&bytes).map(RefundRequestBody)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body as a `RefundRequest`: steps 3 to 7 of the module's list.
pub fn parse_request(bytes: &[u8]) -> Result<RefundRequest, HttpError> {
    let body = strict_json(bytes)?;
    if !body.is_object() {
        return Err(HttpError::MalformedJson(format!(
            "expected a JSON object, got {}",
            json_type(&body)
        )));
    }
    check_objects(&body, &TEMPLATE, "")?;
    let dto: RefundRequestV2 = serde_path_to_error::deserialize(&body)?;
    check_known_fields(&body, &TEMPLATE, "")?;
    let request = RefundRequest::try_from(dto)?;
    request.validate().map_err(WireError::from)?;
    Ok(request)
}

/// A v2 body with every field, to know the DTO's fields and where it has objects. Made from the
/// DTO itself, so it cannot drift from it.
static TEMPLATE: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(RefundRequestV2::from(&Generator::new(0).request(0)))
        .expect("a DTO of strings and integers serializes")
});

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// Wherever the template has an object, an array in the body is refused (step 4).
fn check_objects(body: &Value, template: &Value, path: &str) -> Result<(), HttpError> {
    let Value::Object(expected) = template else {
        return Ok(());
    };
    match body {
        Value::Object(fields) => {
            for (name, value) in fields {
                if let Some(t) = expected.get(name) {
                    check_objects(value, t, &join(path, name))?;
                }
            }
            Ok(())
        }
        Value::Array(_) => Err(HttpError::InvalidField {
            field: path.to_string(),
            reason: "expected an object, got an array".into(),
        }),
        // Any other wrong type is named by the DTO's own error.
        _ => Ok(()),
    }
}

/// Every field of the body is one the template has (step 6).
fn check_known_fields(body: &Value, template: &Value, path: &str) -> Result<(), HttpError> {
    let (Value::Object(fields), Value::Object(expected)) = (body, template) else {
        return Ok(());
    };
    for (name, value) in fields {
        let field = join(path, name);
        match expected.get(name) {
            Some(t) => check_known_fields(value, t, &field)?,
            None => {
                let known: Vec<&str> = expected.keys().map(String::as_str).collect();
                return Err(HttpError::InvalidField {
                    field,
                    reason: format!("unknown field (expected one of {})", known.join(", ")),
                });
            }
        }
    }
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One JSON value and nothing after it, refusing an object that repeats a key (step 3).
fn strict_json(bytes: &[u8]) -> Result<Value, HttpError> {
    let repeated = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        path: String::new(),
        repeated: &repeated,
    }
    .deserialize(&mut de)
    .and_then(|value| de.end().map(|()| value));
    match (parsed, repeated.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(field)) => Err(HttpError::InvalidField {
            field,
            reason: "given more than once".into(),
        }),
        (Err(e), None) => Err(HttpError::MalformedJson(e.to_string())),
    }
}

/// Builds a [`Value`] like serde_json's own, but notes the path of a repeated key in `repeated`
/// and fails. The nesting limit stays serde_json's (128), so a deep body cannot exhaust the stack.
struct Strict<'a> {
    path: String,
    repeated: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let item = Strict {
                path: format!("{}[{}]", self.path, items.len()),
                repeated: self.repeated,
            };
            match seq.next_element_seed(item)? {
                Some(value) => items.push(value),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let path = join(&self.path, &name);
            if fields.contains_key(&name) {
                *self.repeated.borrow_mut() = Some(path);
                return Err(A::Error::custom(format!("field `{name}` is given twice")));
            }
            let value = map.next_value_seed(Strict {
                path,
                repeated: self.repeated,
            })?;
            fields.insert(name, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        serde_json::to_value(RefundRequestV2::from(&Generator::new(3).request(5))).unwrap()
    }

    fn field_error(body: &str) -> (String, String) {
        match parse_request(body.as_bytes()) {
            Err(HttpError::InvalidField { field, reason }) => (field, reason),
            other => panic!("expected an invalid field for {body}, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_body_reads_as_its_request() {
        let request = Generator::new(3).request(5);
        let parsed = parse_request(valid().to_string().as_bytes()).unwrap();
        assert_eq!(parsed, request);
    }

    #[test]
    fn a_repeated_key_names_the_field_wherever_it_is() {
        let body = valid().to_string();
        let top = body.replacen('{', "{\"order_id\":\"SO-00000001\",", 1);
        assert_eq!(field_error(&top).0, "order_id");
        let nested = body.replacen("\"reason\":{", "\"reason\":{\"noticed\":\"in_use\",", 1);
        assert_eq!(
            field_error(&nested),
            ("reason.noticed".into(), "given more than once".into())
        );
        // Even a key the DTO does not know.
        let unknown = body.replacen('{', "{\"x\":1,\"x\":2,", 1);
        assert_eq!(field_error(&unknown).0, "x");
    }

    #[test]
    fn an_array_where_an_object_belongs_names_the_field() {
        let mut body = valid();
        let fields: Vec<Value> = body["ship_to"]
            .as_object()
            .unwrap()
            .values()
            .cloned()
            .collect();
        body["ship_to"] = Value::Array(fields);
        assert_eq!(
            field_error(&body.to_string()),
            ("ship_to".into(), "expected an object, got an array".into())
        );
        let mut body = valid();
        body["reason"] = serde_json::json!([]);
        assert_eq!(field_error(&body.to_string()).0, "reason");
    }

    #[test]
    fn an_unknown_field_is_named_after_the_missing_ones() {
        let mut body = valid();
        body["reason"]["descripton"] = "typo".into();
        let (field, reason) = field_error(&body.to_string());
        assert_eq!(field, "reason.descripton");
        assert!(reason.contains("description"), "{reason}");
        // A v1 body lacks `reason` and has `defect`: the missing field is what it is told.
        let mut v1 = valid();
        let defect = v1["reason"]["defect"].clone();
        v1.as_object_mut().unwrap().remove("reason");
        v1["defect"] = defect;
        assert_eq!(field_error(&v1.to_string()).0, "reason");
    }

    #[test]
    fn nesting_beyond_serde_jsons_limit_is_malformed_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse_request(deep.as_bytes()),
            Err(HttpError::MalformedJson(_))
        ));
        let deep = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert!(matches!(
            parse_request(deep.as_bytes()),
            Err(HttpError::MalformedJson(_))
        ));
    }

    #[test]
    fn json_content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/vnd.returns+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
