//! How a package lies in the store: the packument as upstream sent it (scope
//! [`SCOPE`](super::SCOPE)) and, beside it, its versions' facts ([`FACTS_SCOPE`], a record about
//! a tenth of the packument's size). A process that starts and is asked for tarballs reads only
//! the facts: reading typescript's 10 MB packument costs about three copies of it in memory for
//! a moment (the database's buffer, the driver's copy of the value, the row handed over) where
//! its facts cost about three copies of 1 MB. The packument is read when a view's packument or
//! the package's evidence is built.
//!
//! A record is matched to its packument by the upstream, entity tag and fetch time both rows
//! carry (their [`Stamp`]): the packument is written first, then its record with the same three,
//! so a record missing (an older version's cache, a crash between the two writes) or out of step
//! is found out and written again from the packument.

use formulary_core::ecosystems::npm::{self, PackumentFacts};
use formulary_store::{Database, StoreError, UpstreamDocument, UpstreamDocumentRef};

use super::text::PackumentText;
use super::SCOPE;
use crate::engine::documents::Freshness;
use crate::error::GatewayError;

/// The cache scope of the packuments' facts records.
pub(crate) const FACTS_SCOPE: &str = "npm-facts";

/// Which stored packument something was read from: its upstream, entity tag and fetch time (to
/// the microsecond, the database's precision).
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    upstream: String,
    etag: Option<String>,
    fetched_at: chrono::DateTime<chrono::Utc>,
}

impl Stamp {
    /// The stamp of a stored row.
    pub(crate) fn of(stored: UpstreamDocumentRef<'_>) -> Stamp {
        Stamp {
            upstream: stored.upstream.to_owned(),
            etag: stored.etag.map(str::to_owned),
            fetched_at: stored.fetched_at,
        }
    }

    /// True when both name the same fetch of the packument.
    pub(crate) fn matches(&self, other: &Stamp) -> bool {
        self.upstream == other.upstream
            && self.etag == other.etag
            && self.fetched_at.timestamp_micros() == other.fetched_at.timestamp_micros()
    }
}

/// A packument read from the store.
pub(crate) struct StoredPackument {
    /// Its freshness as stored.
    pub(crate) freshness: Freshness,
    /// Which fetch it is.
    pub(crate) stamp: Stamp,
    /// Its text (compressed when large).
    pub(crate) text: PackumentText,
    /// Its facts, read only when asked for (see [`read_packument`]).
    pub(crate) facts: Option<PackumentFacts>,
}

fn corrupt(what: &'static str, error: npm::PackumentError) -> StoreError {
    StoreError::Corrupt {
        what,
        why: error.to_string(),
    }
}

/// Reads a stored packument as it lies in the store (no copy of its text is taken out of the
/// row). Its facts are read too, unless it is the fetch `known` names (whose facts the caller
/// has).
pub(crate) async fn read_packument(
    database: &Database,
    name: &str,
    known: Option<&Stamp>,
) -> Result<Option<StoredPackument>, GatewayError> {
    let read = database
        .read_upstream_document(SCOPE, name, |stored| {
            let stamp = Stamp::of(stored);
            let facts = if known.is_some_and(|known| known.matches(&stamp)) {
                None
            } else {
                Some(
                    npm::read_facts(stored.document.as_bytes(), name)
                        .map_err(|error| corrupt("cached packument", error))?,
                )
            };
            Ok::<_, GatewayError>(StoredPackument {
                freshness: Freshness::stored_ref(stored)?,
                stamp,
                text: PackumentText::new(stored.document.as_bytes()),
                facts,
            })
        })
        .await?;
    read.transpose()
}

/// Reads a packument's facts record, if there is one that can be read: with the freshness and
/// stamp of the packument it was written for.
pub(crate) async fn read_facts(
    database: &Database,
    name: &str,
) -> Result<Option<(Freshness, Stamp, PackumentFacts)>, GatewayError> {
    let read = database
        .read_upstream_document(FACTS_SCOPE, name, |stored| {
            match PackumentFacts::from_record(stored.document.as_bytes()) {
                Ok(facts) => Ok(Some((
                    Freshness::stored_ref(stored)?,
                    Stamp::of(stored),
                    facts,
                ))),
                Err(error) => {
                    // Written by another version, or damaged: the packument is read instead.
                    tracing::warn!(package = name, %error, "ignoring a cached facts record");
                    Ok::<_, GatewayError>(None)
                }
            }
        })
        .await?;
    Ok(read.transpose()?.flatten())
}

/// Writes the facts record of the stored packument `stamp` names.
pub(crate) async fn save_facts(
    database: &Database,
    name: &str,
    stamp: &Stamp,
    facts: &PackumentFacts,
) -> Result<(), StoreError> {
    database
        .save_upstream_document(
            FACTS_SCOPE,
            name,
            &UpstreamDocument {
                upstream: stamp.upstream.clone(),
                document: facts.to_record(),
                etag: stamp.etag.clone(),
                fetched_at: stamp.fetched_at,
            },
        )
        .await
}

/// Writes a packument, then its facts record.
pub(crate) async fn save(
    database: &Database,
    name: &str,
    packument: &UpstreamDocument,
    facts: &PackumentFacts,
) -> Result<(), StoreError> {
    database
        .save_upstream_document(SCOPE, name, packument)
        .await?;
    save_facts(database, name, &Stamp::of(packument.as_ref()), facts).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::Utc;
    use formulary_core::ecosystems::Ecosystem;
    use formulary_core::Component;
    use formulary_store::BlobStore;

    use super::*;
    use crate::engine::upstream::{Budget, UpstreamOptions};
    use crate::npm::NpmGateway;

    /// A packument of `name` with these versions, as an imported one is kept (no upstream).
    fn packument(name: &str, versions: &[&str]) -> UpstreamDocument {
        let versions: Vec<String> = versions
            .iter()
            .map(|version| {
                format!(
                    r#""{version}":{{"name":"{name}","version":"{version}","license":"MIT","dist":{{"tarball":"https://registry.example/{name}/-/{name}-{version}.tgz","shasum":"0000000000000000000000000000000000000000"}}}}"#
                )
            })
            .collect();
        UpstreamDocument {
            upstream: "formulary-blob:mirror".to_owned(),
            document: format!(
                r#"{{"name":"{name}","dist-tags":{{}},"versions":{{{}}}}}"#,
                versions.join(",")
            ),
            etag: None,
            fetched_at: Utc::now(),
        }
    }

    fn facts_of(document: &UpstreamDocument, name: &str) -> PackumentFacts {
        npm::read_facts(document.document.as_bytes(), name).expect("facts")
    }

    async fn gateway(folder: &std::path::Path) -> (Database, NpmGateway) {
        let database = Database::open(&format!("sqlite://{}", folder.join("npm.db").display()))
            .await
            .expect("SQLite");
        let blobs = BlobStore::local(&folder.join("blobs")).expect("blobs");
        let options = UpstreamOptions {
            budget: Budget::within(Duration::from_secs(10)),
            patience: Duration::from_secs(10),
            revalidate_after: Duration::from_secs(3600),
        };
        let gateway =
            NpmGateway::new(database.clone(), blobs, Vec::new(), &options).expect("gateway");
        (database, gateway)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_package_is_read_from_its_facts_and_its_packument_only_when_needed() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let (database, gateway) = gateway(folder.path()).await;
        let name = "left-pad";
        let first = packument(name, &["1.0.0", "1.1.0"]);
        save(&database, name, &first, &facts_of(&first, name))
            .await
            .expect("saved");
        let (_, stamp, facts) = read_facts(&database, name)
            .await
            .expect("read")
            .expect("a record");
        assert_eq!(facts, facts_of(&first, name));
        // The record names its packument: reading that packument does not read its facts again.
        let read = read_packument(&database, name, Some(&stamp))
            .await
            .expect("read")
            .expect("the packument");
        assert!(read.facts.is_none() && read.stamp.matches(&stamp));
        assert_eq!(
            read.text.text().expect("text").as_ref(),
            first.document.as_bytes()
        );

        let component = Component::new(Ecosystem::Npm, name).expect("name");
        let package = gateway
            .package(&component)
            .await
            .expect("read")
            .expect("a package");
        assert_eq!(package.versions.len(), 2);
        assert!(package.tarballs.contains_key("left-pad-1.1.0.tgz"));
        assert!(
            package.document.get().is_none(),
            "the packument stays in the store"
        );
        let (same, text) = gateway
            .with_text(&component, Arc::clone(&package))
            .await
            .expect("text");
        assert!(Arc::ptr_eq(&same, &package));
        assert_eq!(
            text.text().expect("text").as_ref(),
            first.document.as_bytes()
        );
        assert!(package.document.get().is_some(), "kept once read");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_out_of_step_or_missing_is_written_again_from_the_packument() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let (database, gateway) = gateway(folder.path()).await;
        let name = "left-pad";
        let first = packument(name, &["1.0.0", "1.1.0"]);
        save(&database, name, &first, &facts_of(&first, name))
            .await
            .expect("saved");
        // A newer packument stored without its record (a crash between the two writes).
        let mut second = packument(name, &["1.0.0", "1.1.0", "1.2.0"]);
        second.fetched_at = first.fetched_at + chrono::Duration::seconds(1);
        database
            .save_upstream_document(crate::npm::SCOPE, name, &second)
            .await
            .expect("saved");

        let component = Component::new(Ecosystem::Npm, name).expect("name");
        let package = gateway
            .package(&component)
            .await
            .expect("read")
            .expect("a package");
        assert_eq!(package.versions.len(), 2, "read from the old record");
        let (renewed, text) = gateway
            .with_text(&component, Arc::clone(&package))
            .await
            .expect("text");
        assert_eq!(renewed.versions.len(), 3, "read again from the packument");
        assert!(renewed.tarballs.contains_key("left-pad-1.2.0.tgz"));
        assert_eq!(
            text.text().expect("text").as_ref(),
            second.document.as_bytes()
        );
        assert!(
            package.document.get().is_none(),
            "the old facts keep no text"
        );
        let again = gateway
            .package(&component)
            .await
            .expect("read")
            .expect("a package");
        assert!(
            Arc::ptr_eq(&again, &renewed),
            "the renewed package is remembered"
        );
        let (_, stamp, facts) = read_facts(&database, name)
            .await
            .expect("read")
            .expect("a record");
        assert_eq!(facts, facts_of(&second, name));
        assert!(stamp.matches(&Stamp::of(second.as_ref())));

        // A packument cached by an earlier version, with no record at all.
        let older = "is-odd";
        let alone = packument(older, &["3.0.1"]);
        database
            .save_upstream_document(crate::npm::SCOPE, older, &alone)
            .await
            .expect("saved");
        let component = Component::new(Ecosystem::Npm, older).expect("name");
        let package = gateway
            .package(&component)
            .await
            .expect("read")
            .expect("a package");
        assert_eq!(package.versions.len(), 1);
        assert!(package.document.get().is_some(), "read from the packument");
        let (_, stamp, facts) = read_facts(&database, older)
            .await
            .expect("read")
            .expect("the record written");
        assert_eq!(facts, facts_of(&alone, older));
        assert!(stamp.matches(&Stamp::of(alone.as_ref())));
    }
}
