//! The manifest of CRAN files put in by `formulary mirror import cran`: which file of which tree
//! is in which blob, with its DESCRIPTION. The gateway consults it before any upstream.

use std::collections::BTreeMap;

use formulary_core::ecosystems::Version;
use formulary_core::Component;
use formulary_store::{Database, UpstreamDocument};
use serde::{Deserialize, Serialize};

use crate::cran::tree::parse_filename;
use crate::error::GatewayError;

/// Where the manifest of imported files is kept in the store.
const MANIFEST_SCOPE: &str = "cran-mirror";
const MANIFEST_NAME: &str = "files";
/// The upstream recorded for a tree that only imports filled.
pub(crate) const MIRROR_UPSTREAM: &str = "formulary-mirror:/cran/";

/// One imported file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImportedFile {
    /// Its blob.
    pub(crate) sha256: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// Its modification time in the imported folder, in seconds since 1970.
    pub(crate) modified: Option<f64>,
    /// Its DESCRIPTION as a `PACKAGES` entry (the index fields only).
    pub(crate) entry: String,
}

/// Every imported file, by tree (`src/contrib`, `bin/windows/contrib/4.4`, …) and file name.
/// Source tarballs from `src/contrib/Archive/<pkg>/` are filed under `src/contrib`: a source
/// file that is not the current version of its package is an archived one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImportedFiles {
    pub(crate) trees: BTreeMap<String, BTreeMap<String, ImportedFile>>,
}

impl ImportedFiles {
    /// The manifest as last written by an import (empty when nothing was imported).
    pub(crate) async fn load(database: &Database) -> Result<ImportedFiles, GatewayError> {
        Ok(
            match database.upstream_document(MANIFEST_SCOPE, MANIFEST_NAME).await {
                Ok(Some(stored)) => serde_json::from_str(&stored.document).unwrap_or_else(|error| {
                    tracing::warn!(%error, "the manifest of imported CRAN files is unreadable; import again");
                    ImportedFiles::default()
                }),
                // Nothing imported (or, with the database down, nothing imported that the
                // local copy holds).
                Ok(None) | Err(formulary_store::StoreError::Unavailable(_)) => {
                    ImportedFiles::default()
                }
                Err(error) => return Err(error.into()),
            },
        )
    }

    pub(crate) async fn save(&self, database: &Database) -> Result<(), GatewayError> {
        let document = serde_json::to_string(self).map_err(|error| GatewayError::Mirror {
            what: "the manifest of imported files".to_owned(),
            why: error.to_string(),
        })?;
        database
            .save_upstream_document(
                MANIFEST_SCOPE,
                MANIFEST_NAME,
                &UpstreamDocument {
                    upstream: MIRROR_UPSTREAM.to_owned(),
                    document,
                    etag: None,
                    fetched_at: chrono::Utc::now(),
                },
            )
            .await?;
        Ok(())
    }

    /// The imported file of a tree, if any.
    pub(crate) fn file(&self, tree: &str, filename: &str) -> Option<&ImportedFile> {
        self.trees.get(tree)?.get(filename)
    }

    /// The imported source tarballs of a package, as (version, file name, file).
    pub(crate) fn sources_of<'a>(
        &'a self,
        component: &'a Component,
    ) -> impl Iterator<Item = (Version, &'a str, &'a ImportedFile)> + 'a {
        self.trees
            .get("src/contrib")
            .into_iter()
            .flat_map(|files| files.range(format!("{}_", component.name)..))
            .take_while(move |(filename, _)| filename.starts_with(&format!("{}_", component.name)))
            .filter_map(move |(filename, file)| {
                let (found, version) = parse_filename(filename)?;
                (found == *component && filename.ends_with(".tar.gz")).then_some((
                    version,
                    filename.as_str(),
                    file,
                ))
            })
    }
}
