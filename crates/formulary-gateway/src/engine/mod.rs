//! The gateway engine: everything a package front-end needs that is not about its format.
//!
//! - [`upstream`]: one HTTP client for every upstream (a time budget per request, retries
//!   within it, same-host redirects, size limits, credentials kept out of messages);
//! - [`health`]: a circuit breaker per upstream server (healthy, degraded, down since; one
//!   background probe while down);
//! - [`documents`]: the revalidating cache of upstream index documents (fresh copies from memory,
//!   one refresh at a time, entity-tag revalidation, several upstreams in order, the stored copy
//!   marked stale when every upstream fails or does not answer within the request's patience,
//!   the refresh then going on behind), kept in the store under `(scope, key)`;
//! - [`sanity`]: an upstream document that is empty or lost most of the cached copy's entries is
//!   held back until it is seen again;
//! - [`views`]: documents built for one view (organisation, day) and reused while the policy
//!   snapshot and the upstream document are the same;
//! - [`files`]: the verified, single-flight, durable file cache (every published digest and the
//!   format's own check before a file enters the cache; its identity kept in the store);
//! - [`import`]: what offline imports share (reading files, the report);
//! - [`timed`]: a listing read from the store at most once per time-to-live.
//!
//! A front-end (an adapter: `pypi`, `cran`) says which URLs to ask, how to parse and render its
//! documents (with `formulary-ecosystems`), which releases and files a document holds, and how
//! to check a file of its format. docs/architecture.md shows how to add one.

pub(crate) mod documents;
pub(crate) mod files;
pub(crate) mod health;
pub(crate) mod import;
pub(crate) mod rendered;
pub(crate) mod sanity;
pub(crate) mod single_flight;
pub(crate) mod timed;
pub(crate) mod upstream;
pub(crate) mod views;
