//! What offline imports (`formulary mirror import …`) share: the report and reading files.

use std::path::PathBuf;

/// What an import did.
#[derive(Debug, Default)]
pub struct MirrorReport {
    /// Files stored, as (project or repository tree, file name).
    pub imported: Vec<(String, String)>,
    /// Files skipped, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

/// A file as a stream of byte chunks.
pub(crate) fn file_chunks(
    file: tokio::fs::File,
) -> futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>> {
    use futures::StreamExt;
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(bytes::Bytes::from(buffer)), file))
            }
            Err(error) => Some((Err(error), file)),
        }
    })
    .boxed()
}
