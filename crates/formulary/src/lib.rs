//! The `formulary` binary's library: command-line interface, configuration, and the pieces that
//! read from disk (OSV sources, lockfiles) or seed the demo. `anyhow` is used here, at the edge,
//! and nowhere in the library crates.

pub mod allocator;
pub mod cli;
pub mod config;
pub mod demo;
pub mod demo_people;
pub mod lockfile;
pub mod osv_source;
pub mod surveillance;
