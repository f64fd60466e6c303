//! Sanity before a cached index document is replaced: an upstream document that parses but is
//! empty where the cached copy was not, or lost most of the cached copy's entries (a truncated
//! page, a "maintenance" page served with 200), is held back the first time it is seen. The
//! cached copy stays, a warning is logged, and the document is listed on the status page. The
//! same document seen again at the next revalidation is believed (projects do shrink), or at
//! once when an administrator accepts it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

use crate::error::GatewayError;

/// Below this many entries in the cached copy, only an empty document is suspicious.
const FEW: usize = 4;

/// A document held back, for the status page and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldDocument {
    /// Which document (a project name, a CRAN tree).
    pub document: String,
    /// The upstream that sent it.
    pub upstream: String,
    /// Entries (files, packages) in the cached copy, which is still served.
    pub cached_entries: usize,
    /// Entries in the document held back.
    pub new_entries: usize,
    /// When it was first seen.
    pub first_seen: DateTime<Utc>,
    /// What looks wrong.
    pub why: String,
}

/// The documents held back by one gateway.
#[derive(Debug, Default)]
pub(crate) struct Sanity {
    held: Mutex<HashMap<String, HeldDocument>>,
    /// Documents an administrator accepted: the next copy from upstream is believed as it is.
    accepted: Mutex<HashSet<String>>,
}

/// What is wrong with a document of `new` entries replacing one of `cached`, if anything.
fn suspicion(cached: usize, new: usize) -> Option<String> {
    if cached > 0 && new == 0 {
        Some(format!(
            "it lists nothing, where the cached copy lists {cached}"
        ))
    } else if cached >= FEW && new * 2 < cached {
        Some(format!(
            "it lists {new} of the cached copy's {cached} entries: most are gone"
        ))
    } else {
        None
    }
}

impl Sanity {
    /// Whether a new document of `new` entries may replace the cached one of `cached`: yes when
    /// it looks sound or was seen before with the same entry count; else it is held back
    /// ([`GatewayError::HeldBack`]) and the cached copy stays.
    pub(crate) fn admit(
        &self,
        document: &str,
        upstream: &Url,
        cached: usize,
        new: usize,
    ) -> Result<(), GatewayError> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self
            .accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(document)
        {
            held.remove(document);
            tracing::warn!(document, %upstream, cached, new, "an administrator accepted this upstream document: it replaces the cached copy");
            return Ok(());
        }
        let Some(why) = suspicion(cached, new) else {
            held.remove(document);
            return Ok(());
        };
        let upstream = upstream.to_string();
        if let Some(before) = held.get(document) {
            if before.upstream == upstream && before.new_entries == new {
                tracing::warn!(
                    document,
                    %upstream,
                    cached,
                    new,
                    first_seen = %before.first_seen,
                    "a shrunken upstream document was seen a second time: it replaces the cached copy"
                );
                held.remove(document);
                return Ok(());
            }
        }
        tracing::warn!(document, %upstream, cached, new, %why, "an upstream document looks wrong next to the cached copy: held back until it is seen again; the cached copy is served");
        held.insert(
            document.to_owned(),
            HeldDocument {
                document: document.to_owned(),
                upstream,
                cached_entries: cached,
                new_entries: new,
                first_seen: Utc::now(),
                why: why.clone(),
            },
        );
        Err(GatewayError::HeldBack {
            why: format!("{document}: {why}"),
        })
    }

    /// An administrator believes the document held back under `document`: it is no longer
    /// held, and the next copy fetched from upstream replaces the cached one whatever it lists.
    /// `None` when nothing is held under that name.
    pub(crate) fn accept(&self, document: &str) -> Option<HeldDocument> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(document)?;
        self.accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(document.to_owned());
        Some(held)
    }

    /// The documents held back now.
    pub(crate) fn held(&self) -> Vec<HeldDocument> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut documents: Vec<HeldDocument> = held.values().cloned().collect();
        documents.sort_by(|left, right| left.document.cmp(&right.document));
        documents
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_mostly_gone_documents_are_held_back_once_and_believed_the_second_time() {
        let sanity = Sanity::default();
        let upstream = Url::parse("https://pypi.example/simple/").unwrap();
        // Sound changes pass: growth, a little shrinkage, a first document, few entries.
        for (cached, new) in [(10, 12), (10, 6), (0, 0), (0, 5), (3, 1)] {
            assert!(sanity.admit("requests", &upstream, cached, new).is_ok());
        }
        // Empty where the cached copy was not: held back, listed, then believed when seen again.
        let first = sanity.admit("requests", &upstream, 40, 0).unwrap_err();
        assert!(
            first
                .to_string()
                .contains("lists nothing, where the cached copy lists 40"),
            "{first}"
        );
        assert_eq!(sanity.held()[0].new_entries, 0);
        assert!(sanity.admit("requests", &upstream, 40, 0).is_ok());
        assert!(sanity.held().is_empty());
        // A truncated page: another truncation is another first sighting.
        assert!(sanity.admit("numpy", &upstream, 100, 30).is_err());
        assert!(sanity.admit("numpy", &upstream, 100, 7).is_err());
        assert_eq!(sanity.held()[0].new_entries, 7);
        // The upstream recovers: nothing is held any more.
        assert!(sanity.admit("numpy", &upstream, 100, 101).is_ok());
        assert!(sanity.held().is_empty());
    }

    #[test]
    fn an_accepted_document_is_believed_once_at_the_next_fetch() {
        let sanity = Sanity::default();
        let upstream = Url::parse("https://pypi.example/simple/").unwrap();
        assert!(
            sanity.accept("numpy").is_none(),
            "nothing held, nothing to accept"
        );
        assert!(sanity.admit("numpy", &upstream, 100, 7).is_err());
        let accepted = sanity.accept("numpy").expect("held");
        assert_eq!(accepted.new_entries, 7);
        assert!(sanity.held().is_empty());
        // Believed whatever the next copy lists (the upstream may have moved on since)...
        assert!(sanity.admit("numpy", &upstream, 100, 5).is_ok());
        // ...once: a later suspicious copy is held back again.
        assert!(sanity.admit("numpy", &upstream, 5, 0).is_err());
    }
}
