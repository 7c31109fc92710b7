//! What an operator runs beside the teams: a return's [`audit`] trail from the log, [`replay`]
//! (rebuild a team's state from its own topic and compare), and [`dead_letters`].

pub mod audit;
pub mod dead_letters;
pub mod replay;
