//! A tool file's vendor signature, checked before the file enters the cache: the detached
//! signature is fetched from the vendor with the file, and the file's complete bytes are
//! verified with the key pinned in the manifest (`formulary_store::tool_signature`). A missing
//! or bad signature refuses the file; nothing is cached.

use std::io::SeekFrom;
use std::sync::{Arc, Mutex};

use formulary_store::{FormatCheck, ReadSeek, ToolSignature};
use url::Url;

use crate::engine::upstream::{Document, UpstreamClient, UpstreamFailure};
use crate::error::GatewayError;

/// The largest signature file fetched: real ones are well under a kilobyte.
const SIGNATURE_LIMIT: usize = 64 * 1024;

/// A signature fetched and ready to check a file, remembering why it failed.
pub(crate) struct Pending {
    /// The check to run on the complete file before it is stored.
    pub(crate) check: FormatCheck,
    failure: Arc<Mutex<Option<String>>>,
}

impl Pending {
    /// The signature's refusal when it did not verify (else the store's own error).
    pub(crate) fn refusal(&self, filename: &str, error: GatewayError) -> GatewayError {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match failure {
            Some(why) => GatewayError::VendorSignature {
                filename: filename.to_owned(),
                why,
            },
            None => error,
        }
    }
}

/// Fetches the vendor's signature and makes the check that verifies the file with the pinned
/// key; a signature the vendor does not publish refuses the file.
pub(crate) async fn fetch(
    client: &UpstreamClient,
    signature: &ToolSignature,
    filename: &str,
) -> Result<Pending, GatewayError> {
    let url = Url::parse(&signature.url).map_err(|error| UpstreamFailure::Malformed {
        url: signature.url.clone(),
        why: error.to_string(),
    })?;
    let bytes = match client.document(&url, None, SIGNATURE_LIMIT).await? {
        Document::Body { bytes, .. } => bytes,
        Document::Missing | Document::NotModified => {
            tracing::error!(file = filename, url = %signature.url, "the vendor's signature is missing; file refused");
            return Err(GatewayError::VendorSignature {
                filename: filename.to_owned(),
                why: format!(
                    "the vendor publishes no signature at {} (404)",
                    signature.url
                ),
            });
        }
    };
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let check: FormatCheck = {
        let (failure, signature, filename) =
            (Arc::clone(&failure), signature.clone(), filename.to_owned());
        Arc::new(move |file: &mut dyn ReadSeek| {
            file.seek(SeekFrom::Start(0))
                .map_err(|error| format!("could not read the file back: {error}"))?;
            match formulary_store::verify_signature(
                &signature.kind,
                &signature.public_key,
                &bytes,
                file,
            ) {
                Ok(signer) => {
                    tracing::info!(file = %filename, %signer, "vendor signature verified");
                    Ok(())
                }
                Err(why) => {
                    tracing::error!(file = %filename, %why, "the vendor's signature did not verify; not cached");
                    *failure
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why.clone());
                    Err(format!("the vendor's signature did not verify: {why}"))
                }
            }
        })
    };
    Ok(Pending { check, failure })
}
