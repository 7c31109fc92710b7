use returns_domain::DomainError;

/// Why a record could not be read as the event it claims to be. None of these gets better by
/// retrying: such a record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("{name} version {version} is not supported (this build reads versions {supported:?})")]
    UnknownVersion {
        name: String,
        version: u32,
        supported: Vec<u32>,
    },
    #[error("payload is not a valid {event_type}: {reason}")]
    Malformed { event_type: String, reason: String },
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: String, reason: String },
}

impl WireError {
    /// A short stable name for dead-letter headers and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::UnknownType(_) => "unknown_type",
            WireError::UnknownVersion { .. } => "unknown_version",
            WireError::Malformed { .. } => "malformed",
            WireError::Invalid { .. } => "invalid_field",
        }
    }

    pub(crate) fn invalid(field: &str, err: impl std::fmt::Display) -> Self {
        WireError::Invalid {
            field: field.to_string(),
            reason: err.to_string(),
        }
    }
}

impl From<DomainError> for WireError {
    fn from(e: DomainError) -> Self {
        match &e {
            DomainError::InvalidRequest { field, reason } => WireError::invalid(field, reason),
            _ => WireError::invalid("request", e),
        }
    }
}
