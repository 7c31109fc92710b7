pub mod compare;
pub mod demo;
pub mod dlq;
pub mod publish;
pub mod run;
