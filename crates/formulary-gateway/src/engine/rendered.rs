//! A document rendered once and served many times, with its strong entity tag.

/// A document rendered once, with its strong entity tag.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The bytes.
    pub body: bytes::Bytes,
    /// `"<sha256 of the body>"`.
    pub etag: String,
}

impl Rendered {
    /// Wraps rendered bytes and computes their entity tag.
    pub fn new(body: Vec<u8>) -> Rendered {
        use sha2::Digest;
        let etag = format!("\"{}\"", hex::encode(sha2::Sha256::digest(&body)));
        Rendered {
            body: bytes::Bytes::from(body),
            etag,
        }
    }
}
