//! A packument's text as the gateway keeps it in memory between uses: zstd-compressed when it
//! is large. A tarball request needs only the versions' facts (read once, kept beside it); the
//! text itself is read only to build a view's packument (once per policy change or 30 s) or a
//! package's evidence, so a large package (typescript: 10 MB of JSON, about 1 MB compressed)
//! does not keep its whole text resident for every download.

/// Texts smaller than this are kept as they are: compressing them saves little.
const COMPRESS_FROM: usize = 64 * 1024;

/// The compression level: the fastest, which still shrinks npm's JSON about tenfold.
const LEVEL: i32 = 1;

/// A packument's text, compressed when large.
#[derive(Debug, Clone)]
pub(crate) struct PackumentText {
    /// The text, or its zstd frame when `compressed`.
    held: bytes::Bytes,
    compressed: bool,
    /// The text's length in bytes.
    len: usize,
}

impl PackumentText {
    /// Keeps `text` (compressed when large; as it is if compression fails).
    pub(crate) fn new(text: &[u8]) -> PackumentText {
        if text.len() >= COMPRESS_FROM {
            match zstd::stream::encode_all(text, LEVEL) {
                Ok(mut frame) => {
                    frame.shrink_to_fit();
                    return PackumentText {
                        held: bytes::Bytes::from(frame),
                        compressed: true,
                        len: text.len(),
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, "could not compress a packument; kept as it is")
                }
            }
        }
        PackumentText {
            held: bytes::Bytes::copy_from_slice(text),
            compressed: false,
            len: text.len(),
        }
    }

    /// The text's length in bytes (uncompressed).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The text, byte for byte as it was given.
    pub(crate) fn text(&self) -> std::io::Result<bytes::Bytes> {
        if !self.compressed {
            return Ok(self.held.clone());
        }
        zstd::bulk::decompress(&self.held, self.len).map(bytes::Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_small_texts_come_back_byte_for_byte() {
        let small = br#"{"name":"is-number"}"#.to_vec();
        let large: Vec<u8> = (0..20_000)
            .flat_map(|n| format!("{{\"version\":\"1.0.{n}\"}},").into_bytes())
            .collect();
        for text in [small, large] {
            let kept = PackumentText::new(&text);
            assert_eq!(kept.len(), text.len());
            assert_eq!(kept.text().expect("reads back").as_ref(), text.as_slice());
            if text.len() >= COMPRESS_FROM {
                assert!(kept.compressed && kept.held.len() < text.len() / 4);
            } else {
                assert!(!kept.compressed);
            }
        }
    }
}
