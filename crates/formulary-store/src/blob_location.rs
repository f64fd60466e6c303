//! Where blobs live: a local folder or an S3-compatible bucket, parsed from configuration
//! (`blob_store`, `s3_endpoint`, `s3_region`, `s3_allow_http`) and opened as an object store with
//! bounded timeouts. Credentials never pass through here: they come from the environment or the
//! standard AWS chain when the store is opened, and nothing here prints them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::StoreError;

/// How an S3-compatible server is reached, beyond the bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// The server's address (`http://127.0.0.1:9000`, `https://s3.eu-west-2.amazonaws.com`);
    /// `None` for AWS itself (or `AWS_ENDPOINT` from the environment).
    pub endpoint: Option<String>,
    /// The region; `None` for `AWS_REGION` / `AWS_DEFAULT_REGION` from the environment, else
    /// `us-east-1`.
    pub region: Option<String>,
    /// Whether a plain `http://` endpoint is allowed (a loopback test server only).
    pub allow_http: bool,
}

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// A local folder.
    Folder(PathBuf),
    /// A bucket (and a key prefix inside it) on an S3-compatible server.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/` (may be empty).
        prefix: String,
        /// How the server is reached.
        options: S3Options,
    },
}

/// Seconds to connect to object storage before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Seconds one request to object storage may take in all (a part of at most 8 MiB, or one read
/// chunk of 8 MiB).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl BlobLocation {
    /// Reads a store as written in configuration or on the command line: `s3://bucket/prefix`,
    /// `file:///path`, or a folder path.
    pub fn parse(text: &str, options: &S3Options) -> Result<BlobLocation, StoreError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.contains('@') || bucket.contains(':') {
                return Err(StoreError::Conflict(
                    "a blob store URL must not carry credentials or a port: write s3://BUCKET/PREFIX, set the server with s3_endpoint, and give credentials through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS credential chain)".to_owned(),
                ));
            }
            if bucket.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "the blob store '{}' names no bucket: write s3://BUCKET or s3://BUCKET/PREFIX",
                    text.escape_debug()
                )));
            }
            if let Some(endpoint) = &options.endpoint {
                if endpoint.starts_with("http://") && !options.allow_http {
                    return Err(StoreError::Conflict(format!(
                        "s3_endpoint {} is plain http, which would send blobs and signed requests unencrypted; use https, or set s3_allow_http = true for a server on this machine or a test",
                        endpoint.escape_debug()
                    )));
                }
                if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                    return Err(StoreError::Conflict(format!(
                        "s3_endpoint '{}' must be an http:// or https:// address",
                        endpoint.escape_debug()
                    )));
                }
            }
            return Ok(BlobLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
                options: options.clone(),
            });
        }
        if text.contains("://") && !text.starts_with("file://") {
            return Err(StoreError::Conflict(format!(
                "the blob store '{}' is neither a folder nor s3://BUCKET/PREFIX",
                text.escape_debug()
            )));
        }
        let path = text.strip_prefix("file://").unwrap_or(text);
        if path.is_empty() {
            return Err(StoreError::Conflict(
                "the blob store is empty: give a folder or s3://BUCKET/PREFIX".to_owned(),
            ));
        }
        Ok(BlobLocation::Folder(PathBuf::from(path)))
    }

    /// The store as people write it (no credentials: there are none in it).
    pub fn label(&self) -> String {
        match self {
            BlobLocation::Folder(path) => path.display().to_string(),
            BlobLocation::S3 { bucket, prefix, .. } if prefix.is_empty() => {
                format!("s3://{bucket}")
            }
            BlobLocation::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Opens a bucket: credentials from `AWS_*` variables or the AWS chain (web identity,
    /// container or instance credentials), with bounded connection and request timeouts and
    /// few retries, so that an unreachable server is reported within seconds.
    pub(crate) fn open_s3(
        bucket: &str,
        prefix: &str,
        options: &S3Options,
    ) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_allow_http(options.allow_http)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(options.allow_http)
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_timeout(REQUEST_TIMEOUT),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
            });
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        let store = builder.build().map_err(|error| {
            StoreError::Conflict(format!(
                "cannot use the bucket {bucket}: {error}. Check blob_store, s3_endpoint and s3_region"
            ))
        })?;
        Ok(if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        })
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_parsed_and_unsafe_ones_refused() {
        let http = S3Options {
            endpoint: Some("http://127.0.0.1:9000".to_owned()),
            region: None,
            allow_http: true,
        };
        assert_eq!(
            BlobLocation::parse("s3://cache/formulary/blobs/", &http).expect("s3"),
            BlobLocation::S3 {
                bucket: "cache".to_owned(),
                prefix: "formulary/blobs".to_owned(),
                options: http.clone()
            }
        );
        assert_eq!(
            BlobLocation::parse("s3://cache", &http)
                .expect("bucket")
                .label(),
            "s3://cache"
        );
        assert_eq!(
            BlobLocation::parse("/srv/blobs", &http).expect("folder"),
            BlobLocation::Folder(PathBuf::from("/srv/blobs"))
        );
        assert_eq!(
            BlobLocation::parse("file:///srv/blobs", &http).expect("file URL"),
            BlobLocation::Folder(PathBuf::from("/srv/blobs"))
        );
        let plain = S3Options {
            allow_http: false,
            ..http
        };
        let refused = BlobLocation::parse("s3://cache", &plain).expect_err("plain http");
        assert!(refused.to_string().contains("s3_allow_http"), "{refused}");
        for bad in ["s3://", "s3://key:secret@cache/x", "gs://cache", ""] {
            assert!(
                BlobLocation::parse(bad, &S3Options::default()).is_err(),
                "{bad}"
            );
        }
    }
}
