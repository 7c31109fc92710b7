//! The pure domain of the returns system.
//!
//! A customer returns a defective device. User Support publishes one [`RefundRequest`]; four
//! teams react to it independently, each with its own rule and its own state:
//!
//! - [`Sales`] refunds the order (once, never above the model's price);
//! - [`Inventory`] ships a replacement, or backorders it when the model is out of stock;
//! - [`Manufacturing`] registers a disassembly order at the facility serving the item's location;
//! - [`Accounting`] charges an asset disposal to the month of the request.
//!
//! A fifth team, [`Quality`], acts on nothing: it counts defects per model and location, so it
//! can join late and catch up from the beginning of the log.
//!
//! Every rule implements [`Team`]: `key` picks the slice of state a request touches, `decide` is a
//! plain function from (state, request) to an event (a rejection is an event too), and `evolve`
//! folds the event back into the state. Rules are tested with given/when/then tables next to them.
//!
//! This crate does no I/O: no files, network, database, async runtime or clock reads. Time is
//! passed in as a [`Timestamp`]; randomness exists only in the seeded, deterministic
//! [`Generator`]. The serde derives describe shapes only; versioning the bytes is the wire
//! module's job, elsewhere.
//!
//! # Layout
//!
//! - [`ids`], [`money`], [`clock`]: value types, parsed at the edge ("parse, don't validate").
//! - [`request`]: the [`RefundRequest`] message and its invariants.
//! - [`catalogue`]: static reference data (models, locations, facilities, defects, countries).
//! - [`generator`]: deterministic, random-access source of realistic requests.
//! - [`team`], then one module per team: [`sales`], [`inventory`], [`manufacturing`], [`accounting`],
//!   [`quality`].

pub mod accounting;
pub mod catalogue;
pub mod clock;
mod error;
pub mod generator;
pub mod ids;
pub mod inventory;
pub mod manufacturing;
pub mod money;
pub mod quality;
pub mod request;
pub mod sales;
pub mod team;

#[cfg(test)]
mod testkit;

pub use accounting::{Account, Accounting, AccountingEvent, AccountingRejection, MonthLedger};
pub use clock::{Timestamp, YearMonth};
pub use error::DomainError;
pub use generator::Generator;
pub use ids::{
    CountryCode, CustomerId, DefectCode, DisassemblyOrderNo, EntryId, FacilityCode, LocationCode,
    ModelCode, OrderId, RefundId, ReturnId, SerialNumber, ShipmentId,
};
pub use inventory::{Inventory, InventoryEvent, InventoryRejection, StockLevel};
pub use manufacturing::{Manufacturing, ManufacturingEvent, ManufacturingRejection, SerialState};
pub use money::{Currency, Money};
pub use quality::{
    DefectRates, ModelAtLocation, NoticedCounts, Quality, QualityEvent, QualityRejection,
};
pub use request::{Address, Noticed, RefundRequest, ReturnReason};
pub use sales::{OrderState, Sales, SalesEvent, SalesRejection};
pub use team::{Outcome, Team};
