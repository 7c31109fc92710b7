//! The shape every team's business rule shares: pick the slice of state a request touches,
//! decide an event from it, and fold the event back into that state.
//!
//! `decide` and `evolve` are plain functions: no I/O, no clock, no randomness. A rejection is an
//! event too, so every request leaves a trace in the team's log.

use std::fmt::{Debug, Display};
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::request::RefundRequest;

/// A summary of an event for dashboards and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Outcome {
    /// snake_case event kind, e.g. `"order_refunded"`.
    pub kind: &'static str,
    /// The business reason when the event is a rejection, e.g. `Some("OrderAlreadyRefunded")`.
    pub rejection: Option<&'static str>,
}

impl Outcome {
    pub const fn accepted(kind: &'static str) -> Self {
        Self {
            kind,
            rejection: None,
        }
    }

    pub const fn rejected(kind: &'static str, reason: &'static str) -> Self {
        Self {
            kind,
            rejection: Some(reason),
        }
    }

    pub const fn is_rejection(&self) -> bool {
        self.rejection.is_some()
    }
}

/// One team's rule, reacting to a [`RefundRequest`].
pub trait Team: Send + Sync + 'static {
    /// `"sales"`, `"inventory"`, `"manufacturing"` or `"accounting"`.
    const NAME: &'static str;
    /// Which slice of state the rule reads (an order, a model's stock, a serial, a month).
    type Key: Clone + Eq + Hash + Display + Debug + Send + Sync + 'static;
    type State: Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    type Event: Clone + PartialEq + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    fn key(req: &RefundRequest) -> Self::Key;
    /// The state of a key never seen before.
    fn initial(key: &Self::Key) -> Self::State;
    /// The decision for `req` given the current state of `key(req)`; a rejection is an event.
    fn decide(state: &Self::State, req: &RefundRequest) -> Self::Event;
    fn evolve(state: &mut Self::State, event: &Self::Event);
    /// The key whose state `event` evolves. Every event names its key, so a team's state can be
    /// rebuilt from the team's own events alone (`returns replay`).
    fn event_key(event: &Self::Event) -> Self::Key;
    fn outcome(event: &Self::Event) -> Outcome;
    /// PascalCase event type, e.g. `"OrderRefunded"`, `"RefundRejected"`.
    fn event_type(event: &Self::Event) -> &'static str;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{Accounting, Generator, Inventory, Manufacturing, Quality, Sales};

    /// Decide 3,000 generated requests (with their repeated claims) in order, then fold only the
    /// events, by `event_key`, in reverse order: the state must be the same. This is what lets a
    /// team rebuild its state from its own topic, whose partitions interleave returns freely.
    fn events_alone_rebuild_the_state<T: Team>() {
        let generator = Generator::new(7);
        let mut live: HashMap<T::Key, T::State> = HashMap::new();
        let mut events = Vec::new();
        for req in generator.requests(0..3_000) {
            let key = T::key(&req);
            let state = live.entry(key.clone()).or_insert_with(|| T::initial(&key));
            let event = T::decide(state, &req);
            T::evolve(state, &event);
            assert_eq!(
                T::event_key(&event),
                key,
                "{}: event names its key",
                T::NAME
            );
            events.push(event);
        }
        let mut rebuilt: HashMap<T::Key, T::State> = HashMap::new();
        for event in events.iter().rev() {
            let key = T::event_key(event);
            let state = rebuilt
                .entry(key.clone())
                .or_insert_with(|| T::initial(&key));
            T::evolve(state, event);
        }
        assert_eq!(rebuilt, live, "{}", T::NAME);
    }

    #[test]
    fn every_team_rebuilds_its_state_from_its_events_in_any_order() {
        events_alone_rebuild_the_state::<Sales>();
        events_alone_rebuild_the_state::<Inventory>();
        events_alone_rebuild_the_state::<Manufacturing>();
        events_alone_rebuild_the_state::<Accounting>();
        events_alone_rebuild_the_state::<Quality>();
    }

    #[test]
    fn outcome_constructors() {
        assert!(!Outcome::accepted("order_refunded").is_rejection());
        let r = Outcome::rejected("refund_rejected", "OrderAlreadyRefunded");
        assert_eq!(r.rejection, Some("OrderAlreadyRefunded"));
        assert!(r.is_rejection());
    }
}
