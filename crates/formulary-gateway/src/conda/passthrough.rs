//! Documents passed through from the upstream channel as it wrote them: the channel's
//! `channeldata.json` (cached and revalidated like `repodata.json`, served stale when every
//! upstream fails) and a package file's CEP-27 attestations (`<file>.sigs`, fetched when asked
//! for, and only for a file the view allows).

use bytes::Bytes;
use chrono::Utc;
use formulary_core::policy::{PolicySnapshot, View};
use formulary_store::UpstreamDocument;
use url::Url;

use super::{CondaGateway, PackageDecision};
use crate::engine::documents::{Answer, Freshness, Lookup, Revalidated};
use crate::engine::rendered::Rendered;
use crate::engine::upstream::{Document, UpstreamFailure};
use crate::error::GatewayError;

/// The cache scope of channel-level documents (keyed `channel/channeldata.json`).
pub const CHANNEL_SCOPE: &str = "conda-channel";

/// Largest `channeldata.json` accepted (conda-forge's is about 20 MB).
const MAX_CHANNELDATA_BYTES: usize = 256 << 20;

/// Largest `.sigs` document accepted (a few attestations).
const MAX_SIGS_BYTES: usize = 1 << 20;

/// A channel's `channeldata.json` as upstream wrote it.
#[derive(Debug)]
pub(crate) struct ChannelData {
    freshness: Freshness,
    document: Rendered,
}

impl Revalidated for ChannelData {
    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn with_freshness(&self, freshness: Freshness) -> ChannelData {
        ChannelData {
            freshness,
            document: self.document.clone(),
        }
    }
}

/// A passed-through document: its bytes and whether it comes from the cache because every
/// upstream failed.
#[derive(Debug, Clone)]
pub struct PassedThrough {
    /// The upstream's bytes, with their entity tag.
    pub document: Rendered,
    /// True when served from the cache after every upstream failed.
    pub stale: bool,
}

/// The answer for a package file's `.sigs`.
pub enum SigsOutcome {
    /// The upstream's attestations.
    Sigs(Bytes),
    /// The view denies the package file.
    Refused(Box<formulary_core::policy::Decision>),
    /// No such package file, or the upstream has no attestations for it.
    Missing,
}

fn join(base: &Url, path: &str) -> Result<Url, UpstreamFailure> {
    base.join(path).map_err(|error| UpstreamFailure::Malformed {
        url: base.to_string(),
        why: error.to_string(),
    })
}

impl CondaGateway {
    /// The channel's `channeldata.json` as upstream wrote it; `None` when no upstream has one.
    pub async fn channeldata(&self, channel: &str) -> Result<Option<PassedThrough>, GatewayError> {
        let Some(upstreams) = self.channels.get(channel) else {
            return Ok(None);
        };
        let key = format!("{channel}/channeldata.json");
        let lookup = self
            .channel_documents
            .get(
                &key,
                upstreams,
                Box::pin(self.load_channeldata(&key)),
                |upstream: Url, etag: Option<String>| {
                    let client = self.client.clone();
                    Box::pin(async move {
                        let url = join(&upstream, "channeldata.json")?;
                        Ok(
                            match client
                                .document(&url, etag.as_deref(), MAX_CHANNELDATA_BYTES)
                                .await?
                            {
                                Document::Missing => Answer::Missing,
                                Document::NotModified => Answer::NotModified,
                                Document::Body { bytes, etag } => {
                                    serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
                                        .map_err(|error| UpstreamFailure::Malformed {
                                            url: url.to_string(),
                                            why: format!("channeldata.json is not JSON: {error}"),
                                        })?;
                                    Answer::Document((bytes, etag))
                                }
                            },
                        )
                    })
                },
                |upstream: Url, (bytes, etag): (Bytes, Option<String>), _previous| {
                    let key = key.clone();
                    Box::pin(async move {
                        let now = Utc::now();
                        let stored = UpstreamDocument {
                            upstream: upstream.to_string(),
                            document: String::from_utf8_lossy(&bytes).into_owned(),
                            etag: etag.clone(),
                            fetched_at: now,
                        };
                        self.database
                            .save_upstream_document(CHANNEL_SCOPE, &key, &stored)
                            .await?;
                        Ok(ChannelData {
                            freshness: Freshness::new(upstream, etag, now),
                            document: Rendered::new(bytes.to_vec()),
                        })
                    })
                },
            )
            .await?;
        Ok(match lookup {
            Lookup::Found(found) => Some(PassedThrough {
                document: found.document.clone(),
                stale: found.freshness.stale,
            }),
            Lookup::Absent(_) => None,
        })
    }

    async fn load_channeldata(&self, key: &str) -> Result<Option<ChannelData>, GatewayError> {
        let Some(stored) = self.database.upstream_document(CHANNEL_SCOPE, key).await? else {
            return Ok(None);
        };
        Ok(Some(ChannelData {
            freshness: Freshness::stored(&stored)?,
            document: Rendered::new(stored.document.into_bytes()),
        }))
    }

    /// A package file's CEP-27 attestations (`<file>.sigs`), fetched from the upstream the
    /// subdirectory's repodata came from, for a file the view allows. Not cached: they are
    /// small, and an attestation the upstream withdraws must not outlive it here.
    pub async fn sigs(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        channel: &str,
        subdir: &str,
        filename: &str,
    ) -> Result<SigsOutcome, GatewayError> {
        let (cached, decision) = match self
            .decide(snapshot, view, channel, subdir, filename)
            .await?
        {
            PackageDecision::Missing => return Ok(SigsOutcome::Missing),
            PackageDecision::Decided { subdir, decision } => (subdir, decision),
        };
        if !decision.allowed {
            return Ok(SigsOutcome::Refused(Box::new(decision)));
        }
        let url = join(
            &cached.freshness.origin,
            &format!("{subdir}/{filename}.sigs"),
        )?;
        Ok(
            match self.client.document(&url, None, MAX_SIGS_BYTES).await? {
                Document::Body { bytes, .. } => SigsOutcome::Sigs(bytes),
                Document::Missing | Document::NotModified => SigsOutcome::Missing,
            },
        )
    }
}
