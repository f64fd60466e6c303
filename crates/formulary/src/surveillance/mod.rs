//! Surveillance run by `formulary serve`: the scheduled, incremental, single-replica sync of the
//! OSV sources ([`scheduler`], [`sync`]).

pub mod scheduler;
pub mod sync;
