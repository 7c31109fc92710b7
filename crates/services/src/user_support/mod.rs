//! User Support: the intake that accepts returns into its own store with their outgoing records
//! (a transactional outbox, relayed to `returnOrders`), and a publisher that appends directly.

pub mod intake;
pub mod publisher;
