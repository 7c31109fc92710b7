//! Injected faults. Here, crash injection for tests: a service stops at a named point as
//! abruptly as a killed process, leaving on disk exactly what a crash there would leave. In
//! [`schedule`], the outages, slowness and errors `returns compare` plays against both models.

pub mod schedule;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ServiceError;

/// Where in the handling of a batch the service dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Records read, nothing written.
    BeforeTransaction,
    /// Effects written inside the transaction, which never commits (rolled back).
    InsideTransaction,
    /// The transaction committed; the log position was not committed.
    AfterTransaction,
    /// The log position was committed too.
    AfterCommit,
    /// The relay appended outgoing events to the log but did not clear them from the outbox.
    RelayAfterAppend,
}

/// When to crash: at the `nth` time (1-based) the point is reached.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    crash: Option<(CrashPoint, u64)>,
    reached: Arc<AtomicU64>,
}

impl Faults {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn crash_at(point: CrashPoint, nth: u64) -> Self {
        Faults {
            crash: Some((point, nth.max(1))),
            reached: Arc::default(),
        }
    }

    /// Err when the service must die here.
    pub fn check(&self, point: CrashPoint) -> Result<(), ServiceError> {
        match self.crash {
            Some((p, nth)) if p == point => {
                let n = self.reached.fetch_add(1, Ordering::SeqCst) + 1;
                if n == nth {
                    return Err(ServiceError::InjectedCrash(point));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
