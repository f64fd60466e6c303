//! Integration tests of the domain crate: real OSV data, the policy rules, explained decisions
//! and overlay properties.

mod conda_advisories;
mod dependency_admissions;
mod osv_database;
mod overlay_properties;
mod policy_rules;
mod support;
