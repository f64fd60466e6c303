//! Blobs in an S3-compatible bucket (moto's server, a real HTTP server speaking the S3 API):
//! the same guarantees as a local folder. Nothing unverified or partial is ever visible at an
//! address, large files go up in parts and come back whole and in ranges, damaged blobs are
//! quarantined, and a store that is down or hangs is reported within seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use formulary_store::{Algorithm, BlobStore, Digests, FormatCheck, StoreError};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::moto::Moto;

const BUCKET: &str = "formulary-blobs";

/// `size` bytes that differ from file to file (by `seed`).
fn content(size: usize, seed: u8) -> Bytes {
    (0..size)
        .map(|index| ((index % 251) as u8) ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// A stream of `bytes` in chunks of 1 MiB.
fn chunked(bytes: &Bytes) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(1024 * 1024)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    futures::stream::iter(chunks)
}

async fn collect(blobs: &BlobStore, sha256: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let mut stream = blobs.read_range(sha256, range).expect("read");
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.expect("chunk"));
    }
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_mb_blob_goes_up_in_parts_and_reads_back_whole_and_in_ranges() {
    let moto = Moto::start(BUCKET);
    let blobs = moto.store(BUCKET, "cache/blobs");
    let bytes = content(20 * 1024 * 1024 + 17, 1);
    let digest = hex::encode(Sha256::digest(&bytes));
    let stored = blobs
        .put_stream(chunked(&bytes), Some(&digest))
        .await
        .expect("stored");
    assert_eq!(stored.sha256, digest);
    assert_eq!(stored.size, bytes.len() as u64);
    assert_eq!(
        moto.keys(BUCKET, "cache/blobs/"),
        [format!(
            "cache/blobs/sha256/{}/{}/{digest}",
            &digest[..2],
            &digest[2..4]
        )],
        "only the blob, at its address under the prefix: no incoming/ leftovers"
    );
    assert_eq!(
        blobs
            .stat(&digest)
            .await
            .expect("stat")
            .map(|blob| blob.size),
        Some(bytes.len() as u64)
    );
    let whole = blobs
        .get(&digest)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(hex::encode(Sha256::digest(&whole)), digest);
    // Ranges: inside one read chunk, across chunk boundaries, and to the end.
    for (start, end) in [
        (0u64, 10u64),
        (7 * 1024 * 1024, 17 * 1024 * 1024 + 5),
        (bytes.len() as u64 - 100, bytes.len() as u64),
    ] {
        let expected = &bytes[start as usize..end as usize];
        assert_eq!(collect(&blobs, &digest, start..end).await, expected);
        assert_eq!(
            blobs.get_range(&digest, start..end).await.expect("range"),
            expected
        );
    }
    assert_eq!(collect(&blobs, &digest, 0..bytes.len() as u64).await, bytes);
    let listed = blobs.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, bytes.len() as u64);
    assert_eq!(blobs.rehash(&digest).await.expect("rehash"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rejected_or_interrupted_streams_leave_nothing_visible() {
    let moto = Moto::start(BUCKET);
    let blobs = moto.store(BUCKET, "");
    // A large file whose digest is wrong: uploaded in parts under incoming/, then refused.
    let bytes = content(12 * 1024 * 1024, 2);
    let wrong = hex::encode(Sha256::digest(b"what the index promised"));
    let refused = blobs
        .put_stream(chunked(&bytes), Some(&wrong))
        .await
        .expect_err("digest mismatch");
    assert!(
        matches!(refused, StoreError::DigestMismatch { .. }),
        "{refused}"
    );
    assert!(!blobs.contains(&wrong).await.expect("head"));
    let actual = hex::encode(Sha256::digest(&bytes));
    assert!(!blobs.contains(&actual).await.expect("head"));

    // A file whose format check fails: the check reads the whole file, then refuses it.
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let check: FormatCheck = {
        let seen = Arc::clone(&seen);
        Arc::new(move |file| {
            let mut all = Vec::new();
            std::io::Read::read_to_end(file, &mut all).map_err(|error| error.to_string())?;
            seen.store(all.len() as u64, std::sync::atomic::Ordering::SeqCst);
            Err("not a wheel".to_owned())
        })
    };
    let small = content(300_000, 3);
    let rejected = blobs
        .put_verified(chunked(&small), &Digests::none(), Some(check))
        .await
        .expect_err("format check");
    assert!(
        matches!(rejected, StoreError::Rejected { .. }),
        "{rejected}"
    );
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        small.len() as u64,
        "the check saw the complete file"
    );

    // A stream that breaks off after 10 MiB (one part already sent): the upload is aborted.
    let partial = content(10 * 1024 * 1024, 4);
    let broken = futures::stream::iter(
        partial
            .chunks(1024 * 1024)
            .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
            .chain([Err(std::io::Error::other(
                "connection reset by the upstream",
            ))])
            .collect::<Vec<_>>(),
    );
    let interrupted = blobs
        .put_stream(broken, None)
        .await
        .expect_err("interrupted");
    assert!(
        matches!(interrupted, StoreError::Interrupted { .. }),
        "{interrupted}"
    );
    assert_eq!(
        moto.keys(BUCKET, ""),
        Vec::<String>::new(),
        "nothing at any address and nothing left under incoming/"
    );
    assert!(blobs.list().await.expect("list").is_empty());

    // A good file with a check that passes is stored.
    let passes: FormatCheck = Arc::new(|_| Ok(()));
    let digest = hex::encode(Sha256::digest(&small));
    let expected = Digests::none()
        .with(Algorithm::Sha256, &digest)
        .expect("digest");
    let stored = blobs
        .put_verified(chunked(&small), &expected, Some(passes))
        .await
        .expect("stored");
    assert_eq!(stored.sha256, digest);
    assert_eq!(moto.keys(BUCKET, "").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_blobs_are_quarantined_and_unfinished_writes_swept() {
    let moto = Moto::start(BUCKET);
    let blobs = moto.store(BUCKET, "p");
    let bytes = content(1000, 5);
    let stored = blobs.put_bytes(bytes).await.expect("stored");
    let address = format!(
        "p/sha256/{}/{}/{}",
        &stored.sha256[..2],
        &stored.sha256[2..4],
        stored.sha256
    );
    // Damage around the application: other bytes under the address.
    moto.put_directly(BUCKET, &address, b"bit rot").await;
    let actual = blobs.rehash(&stored.sha256).await.expect("rehash");
    assert_eq!(actual, Some(hex::encode(Sha256::digest(b"bit rot"))));
    let moved_to = blobs.quarantine(&stored.sha256).await.expect("quarantine");
    assert!(moved_to.starts_with("quarantine/"), "{moved_to}");
    assert!(!blobs.contains(&stored.sha256).await.expect("head"));
    assert_eq!(
        moto.keys(BUCKET, "p/quarantine/"),
        [format!("p/{moved_to}")]
    );
    // A write that a crash left under incoming/ is swept.
    moto.put_directly(BUCKET, "p/incoming/left-by-a-crash", b"x")
        .await;
    assert_eq!(
        blobs
            .sweep_incoming(chrono::Duration::hours(1))
            .await
            .expect("sweep"),
        0,
        "a recent write may still be under way"
    );
    assert_eq!(
        blobs
            .sweep_incoming(chrono::Duration::seconds(-5))
            .await
            .expect("sweep"),
        1
    );
    assert!(moto.keys(BUCKET, "p/incoming/").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_or_hangs_is_reported_unavailable_within_seconds() {
    let mut moto = Moto::start(BUCKET);
    let blobs = moto.store(BUCKET, "");
    let stored = blobs.put_bytes(content(5000, 6)).await.expect("stored");
    assert!(blobs.probe().await.is_ok());
    moto.stop();
    let started = Instant::now();
    let down = blobs.contains(&stored.sha256).await.expect_err("down");
    assert!(matches!(down, StoreError::BlobUnavailable { .. }), "{down}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !down.to_string().contains("formulary-test-secret"),
        "{down}"
    );
    let unstored = blobs
        .put_bytes(content(100, 7))
        .await
        .expect_err("cannot store");
    assert!(
        matches!(unstored, StoreError::BlobUnavailable { .. }),
        "{unstored}"
    );
    assert!(blobs.probe().await.is_err());

    // A server that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let options = formulary_store::S3Options {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: None,
        allow_http: true,
    };
    let hanging = BlobStore::open(
        &formulary_store::BlobLocation::parse(&format!("s3://{BUCKET}"), &options)
            .expect("location"),
    )
    .expect("store");
    let started = Instant::now();
    let hung = hanging
        .contains(&stored.sha256)
        .await
        .expect_err("no answer");
    assert!(
        hung.to_string().contains("did not answer within 10 s"),
        "{hung}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
}
