//! Surveillance run by `formulary serve`: the scheduled, incremental, single-replica sync of the
//! OSV sources ([`scheduler`], [`sync`]), and the recalls it opens ([`recalls`]).

pub mod recalls;
pub mod scheduler;
pub mod sync;
