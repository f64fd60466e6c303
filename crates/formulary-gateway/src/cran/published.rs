//! When CRAN published each current source tarball: the modification times in the upstream's
//! `src/contrib/Meta/current.rds` (what R's `tools:::CRAN_current_db()` reads). Fetched with the
//! source tree's `PACKAGES` and kept in the store, so that the cooldown uses the upstream's own
//! times; "first seen" stays the fallback for upstreams without the file.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use chrono::{DateTime, Utc};
use formulary_core::ecosystems::cran::{current_times_from_value, rds};
use formulary_store::UpstreamDocument;
use url::Url;

use super::tree::{tree_key, SCOPE};
use super::CranGateway;
use crate::engine::upstream::Document;

/// Where the upstream lists its current tarballs with their times.
const CURRENT_RDS: &str = "src/contrib/Meta/current.rds";
/// Largest `current.rds` read (CRAN's is well under a megabyte).
const MAX_CURRENT_RDS_BYTES: usize = 16 * 1024 * 1024;

/// Publication times by tarball file name (`readxl_1.4.1.tar.gz`).
pub(crate) type PublishedTimes = HashMap<String, DateTime<Utc>>;

impl CranGateway {
    /// Fetches the upstream's `current.rds` and keeps it; an upstream without one (or one that
    /// cannot be read) gives no times, and the tree is served all the same.
    pub(super) async fn refresh_published_times(&self, upstream: &Url) -> PublishedTimes {
        let Ok(url) = upstream.join(CURRENT_RDS) else {
            return PublishedTimes::new();
        };
        let times = match self
            .client
            .document(&url, None, MAX_CURRENT_RDS_BYTES)
            .await
        {
            Ok(Document::Body { bytes, .. }) => match read_current_rds(&bytes) {
                Ok(times) => times,
                Err(why) => {
                    tracing::warn!(%url, %why, "current.rds cannot be read; new versions are dated by when they were first seen");
                    return PublishedTimes::new();
                }
            },
            Ok(_) => return PublishedTimes::new(),
            Err(error) => {
                tracing::warn!(%url, %error, "current.rds is not available; new versions are dated by when they were first seen");
                return self.stored_published_times().await;
            }
        };
        if let Ok(document) = serde_json::to_string(&times) {
            let stored = UpstreamDocument {
                upstream: upstream.to_string(),
                document,
                etag: None,
                fetched_at: Utc::now(),
            };
            if let Err(error) = self
                .database
                .save_upstream_document(SCOPE, &tree_key(CURRENT_RDS), &stored)
                .await
            {
                tracing::warn!(%error, "could not keep current.rds's publication times");
            }
        }
        as_times(times)
    }

    /// The times last fetched, from the store (none when never fetched).
    pub(super) async fn stored_published_times(&self) -> PublishedTimes {
        let stored = self
            .database
            .upstream_document(SCOPE, &tree_key(CURRENT_RDS))
            .await;
        match stored {
            Ok(Some(stored)) => serde_json::from_str::<BTreeMap<String, f64>>(&stored.document)
                .map(as_times)
                .unwrap_or_default(),
            _ => PublishedTimes::new(),
        }
    }
}

fn as_times(seconds: BTreeMap<String, f64>) -> PublishedTimes {
    seconds
        .into_iter()
        .filter_map(|(filename, seconds)| {
            let whole = seconds.floor();
            let nanos = ((seconds - whole) * 1e9) as u32;
            Some((filename, DateTime::from_timestamp(whole as i64, nanos)?))
        })
        .collect()
}

/// Reads a `current.rds` (gzip-compressed or not).
fn read_current_rds(bytes: &[u8]) -> Result<BTreeMap<String, f64>, String> {
    let mut plain = Vec::new();
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .take(4 * MAX_CURRENT_RDS_BYTES as u64)
            .read_to_end(&mut plain)
            .map_err(|error| format!("not gzip: {error}"))?;
        &plain[..]
    } else {
        bytes
    };
    let value = rds::deserialize(bytes).map_err(|error| error.to_string())?;
    current_times_from_value(&value).map_err(|error| error.to_string())
}
