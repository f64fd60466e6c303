//! Surveillance run by `formulary serve`: the scheduled, incremental, single-replica sync of the
//! OSV sources ([`scheduler`], [`sync`]), the recalls it opens ([`recalls`]), and the recall
//! job that follows prohibitions and marks who moved ([`prohibitions`]), lifting recalls whose
//! prohibitions were lifted ([`lifting`]).

pub mod lifting;
pub mod prohibitions;
pub mod recalls;
pub mod scheduler;
pub mod sync;
