//! Read models built from the log alone, each in its own file with its own consumer group:
//! User Support's [`status`] view and the [`analytics`] view, both fed by the runner in
//! [`projection`].

pub mod analytics;
pub mod projection;
pub mod status;
