//! The one error type of this crate: a value that does not make sense in the domain.
//!
//! A business *rejection* (an order already refunded, a country not served) is not an error:
//! it is an event that a team publishes. `DomainError` is only for values that cannot be
//! represented at all, found while parsing at the edge.

use crate::money::Currency;

/// Longest slice of an offending input kept in an error (inputs come from outside).
const MAX_ECHO: usize = 64;

/// A value rejected while parsing it into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// An identifier did not have the expected format.
    #[error("invalid {kind} {value:?}: {reason}")]
    InvalidId {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
    /// An amount or currency code that cannot be represented.
    #[error("invalid money {value:?}: {reason}")]
    InvalidMoney { value: String, reason: &'static str },
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: cannot combine {left} with {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    /// A timestamp or month outside the supported range or badly formatted.
    #[error("invalid time {value:?}: {reason}")]
    InvalidTime { value: String, reason: &'static str },
    /// A refund request field breaks an invariant.
    #[error("invalid refund request field {field}: {reason}")]
    InvalidRequest { field: &'static str, reason: String },
}

/// Keeps at most `MAX_ECHO` characters of an offending input for an error message.
pub(crate) fn echo(value: impl Into<String>) -> String {
    let mut value = value.into();
    if let Some((cut, _)) = value.char_indices().nth(MAX_ECHO) {
        value.truncate(cut);
        value.push('…');
    }
    value
}
