//! The storage suite. Every test in `records` runs twice: on SQLite and on PostgreSQL (a fresh
//! database per test). PostgreSQL tests need `FORMULARY_TEST_POSTGRES_URL`; `scripts/test` sets
//! it, and with `FORMULARY_TEST_REQUIRE_POSTGRES=1` a missing server fails the run instead of
//! skipping.

mod administration;
mod advisories;
mod blobs;
mod blobs_s3;
mod channel_notices;
mod external;
mod ledger;
mod moto;
mod people;
mod records;
mod security;
mod sessions;
mod support;
mod surveillance;
