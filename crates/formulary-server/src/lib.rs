//! The HTTP application: the landing page, the health check, the JSON API under `/api/v1`, and
//! the package gateway's PyPI front-end.
//!
//! Handlers are thin: they authenticate, authorise, call the store or the policy engine, and
//! shape the answer. Every error becomes an `application/problem+json` response in one place
//! ([`ApiError`]). Policy decisions come from an in-memory snapshot ([`SnapshotHolder`]) that is
//! rebuilt when the database's change counter moves, so replicas follow each other's writes.

mod admissions;
mod api;
mod auth;
mod bootstrap;
pub mod catalogue;
mod channel_notices;
mod conda;
mod connections;
mod cran;
mod downloads;
mod error;
pub mod evidence;
mod file_ranges;
mod front_door;
mod gateway;
mod gateway_auth;
mod gateways;
mod held_documents;
pub mod identity;
pub mod jobs;
mod landing;
pub mod mail;
pub mod notices;
mod npm;
mod offline;
pub mod oidc;
mod path_token;
mod people;
mod pypi;
mod python_downloads;
pub mod reports;
pub mod review;
mod router;
mod scoop;
mod snapshot;
mod state;
pub mod surveillance;
mod text_guard;
mod tools;
mod upstreams;
mod web;
pub mod workflow;
mod zero_copy;

pub use admissions::follow_admissions;
pub use api::entries::EntryView;
pub use connections::{serve, ConnectionLimits, ServeSummary};
pub use error::ApiError;
pub use gateway_auth::{GatewayAccess, GatewayTokens};
pub use router::app;
pub use snapshot::{SnapshotHolder, ADVISORY_SYNC_RUNNING};
pub use state::{AppState, ClientAddress, Peer, TrustedProxies};
pub use zero_copy::{ZeroCopyListener, ZeroCopyStream};
