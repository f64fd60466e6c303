//! Content-addressed blobs in a local folder: atomic, verified writes.

use bytes::Bytes;
use formulary_store::{BlobStore, StoreError};
use futures::StreamExt;
use sha2::{Digest, Sha256};

fn files_under(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(items) = std::fs::read_dir(folder) {
        for item in items.flatten() {
            let path = item.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn blobs_are_addressed_by_sha256_and_read_back() {
    let folder = tempfile::tempdir().expect("folder");
    let blobs = BlobStore::local(folder.path()).expect("store");
    let content = Bytes::from(vec![7u8; 3 * 1024 * 1024 + 11]);
    let expected = hex::encode(Sha256::digest(&content));
    let stored = blobs.put_bytes(content.clone()).await.expect("put");
    assert_eq!(stored.sha256, expected);
    assert_eq!(stored.size, content.len() as u64);
    assert!(blobs.contains(&expected).await.expect("head"));
    let read = blobs
        .get(&expected)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("read");
    assert_eq!(read, content);
    assert_eq!(
        blobs
            .get_range(&expected, 10..20)
            .await
            .expect("range")
            .len(),
        10
    );
    let files = files_under(folder.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(format!(
        "sha256/{}/{}/{expected}",
        &expected[..2],
        &expected[2..4]
    )));
}

#[tokio::test]
async fn a_digest_mismatch_stores_nothing() {
    let folder = tempfile::tempdir().expect("folder");
    let blobs = BlobStore::local(folder.path()).expect("store");
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
        b"corrupt bytes",
    ))]);
    let error = blobs
        .put_stream(stream, Some(&"ab".repeat(32)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::DigestMismatch { .. }),
        "{error}"
    );
    assert!(
        files_under(folder.path()).is_empty(),
        "{:?}",
        files_under(folder.path())
    );
}

#[tokio::test]
async fn an_interrupted_stream_stores_nothing() {
    let folder = tempfile::tempdir().expect("folder");
    let blobs = BlobStore::local(folder.path()).expect("store");
    let chunks = (0..20).map(|index| {
        if index == 15 {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ))
        } else {
            Ok(Bytes::from(vec![1u8; 1024 * 1024]))
        }
    });
    let error = blobs
        .put_stream(futures::stream::iter(chunks).boxed(), None)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("interrupted after 15728640 bytes"),
        "{error}"
    );
    assert!(
        files_under(folder.path()).is_empty(),
        "{:?}",
        files_under(folder.path())
    );
}

#[tokio::test]
async fn hostile_digests_never_become_paths() {
    let folder = tempfile::tempdir().expect("folder");
    let blobs = BlobStore::local(folder.path()).expect("store");
    for hostile in [
        "../../etc/passwd",
        "",
        &"A".repeat(64),
        &format!("{}/x", "a".repeat(62)),
    ] {
        assert!(blobs.get(hostile).await.is_err(), "{hostile}");
        assert!(blobs.contains(hostile).await.is_err(), "{hostile}");
    }
}
