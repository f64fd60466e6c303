//! Requests: a person's ask for a component, with its justification, moving through review stages
//! to a decision that becomes an entry.
//!
//! This module holds the vocabulary ([`RequestState`], [`ReviewStage`], [`DataClass`],
//! [`Outcome`]), the checked form a requester fills in ([`RequestDraft`]) and the rules of who may
//! do what ([`workflow`]). It does no I/O.

mod draft;
pub mod review;
mod vocabulary;
pub mod workflow;

pub use draft::{FieldError, RequestDraft, RequestForm, MAX_FIELD_CHARS, MAX_SHORT_FIELD_CHARS};
pub use review::{Assignment, ReviewPolicy};
pub use vocabulary::{DataClass, Outcome, RequestState, ReviewStage, SignOffVerdict};
