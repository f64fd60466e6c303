//! CEP-16 sharded repodata: one shard per package name (`shards/<sha256>.msgpack.zst`, the
//! records of that name as `rattler_conda_types::Shard`, MessagePack, zstd) and the index
//! (`repodata_shards.msgpack.zst`: the subdirectory's info and each name's shard hash). A
//! shard's name is the SHA-256 of its compressed bytes, so equal records give equal names.
//! Encoding only; which records a view keeps is decided elsewhere.

use std::collections::BTreeMap;

use rattler_conda_types::package::DistArchiveIdentifier;
use rattler_conda_types::{PackageRecord, Shard, ShardedSubdirInfo};
use serde::Serialize;
use sha2::Digest;

use super::repodata::{Record, RepoData};

/// The zstd level of shards and the index: conda-forge's own level; shards are small, so this
/// is fast, and the index is rebuilt only when a view changes.
const ZSTD_LEVEL: i32 = 3;

/// Why a shard or an index could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A record is not a conda package record (`rattler_conda_types::PackageRecord`).
    #[error("record {filename} is not a valid conda package record: {why}")]
    Record {
        /// The record's file name.
        filename: String,
        /// What is wrong with it.
        why: String,
    },
    /// MessagePack or zstd failed.
    #[error("cannot encode sharded repodata: {0}")]
    Encoding(String),
}

/// One encoded shard: its compressed bytes and their SHA-256 (its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedShard {
    /// `msgpack.zst` bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
}

impl EncodedShard {
    /// The shard's file name under `shards/`: `<hex sha256>.msgpack.zst`.
    pub fn filename(&self) -> String {
        format!("{}.msgpack.zst", hex_of(&self.sha256))
    }
}

/// Lower-case hex of a digest.
pub fn hex_of(digest: &[u8; 32]) -> String {
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

thread_local! {
    /// Each thread's zstd context, made once: a subdirectory has tens of thousands of shards,
    /// and making a context for each cost about a fifth of the sharded build (allocating,
    /// clearing and unmapping its tables). The output is the same as a fresh context's.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(bytes: &[u8]) -> Result<Vec<u8>, ShardError> {
    let failed = |error: std::io::Error| ShardError::Encoding(error.to_string());
    COMPRESSOR.with(|cell| {
        let mut compressor = cell.borrow_mut();
        let compressor = match &mut *compressor {
            Some(compressor) => compressor,
            empty => empty.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(failed)?),
        };
        compressor.compress(bytes).map_err(failed)
    })
}

/// The shard holding `records` (all of one package name), each read from the document as
/// upstream wrote it into a `PackageRecord`. A record that is not a valid package record is
/// left out and returned with why, so the caller can log it.
pub fn encode_shard<'a>(
    repodata: &RepoData,
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<(EncodedShard, Vec<ShardError>), ShardError> {
    let mut shard = Shard::default();
    let mut skipped = Vec::new();
    for record in records {
        let invalid = |why: String| ShardError::Record {
            filename: record.filename.to_string(),
            why,
        };
        let Some(key) = DistArchiveIdentifier::try_from_filename(&record.filename) else {
            skipped.push(invalid(
                "its file name is not name-version-build".to_owned(),
            ));
            continue;
        };
        let raw = match repodata.raw_record(record) {
            Ok(raw) => raw,
            Err(error) => {
                skipped.push(invalid(format!("its bytes could not be read: {error}")));
                continue;
            }
        };
        let parsed: PackageRecord = match serde_json::from_slice(&raw) {
            Ok(parsed) => parsed,
            Err(error) => {
                skipped.push(invalid(error.to_string()));
                continue;
            }
        };
        if record.conda_format {
            shard.conda_packages.insert(key, parsed);
        } else {
            shard.packages.insert(key, parsed);
        }
    }
    let packed =
        rmp_serde::to_vec_named(&shard).map_err(|error| ShardError::Encoding(error.to_string()))?;
    let bytes = compress(&packed)?;
    let sha256 = sha2::Sha256::digest(&bytes).into();
    Ok((EncodedShard { bytes, sha256 }, skipped))
}

/// A digest written as MessagePack binary, as CEP-16 stores shard hashes.
struct Binary<'a>(&'a [u8; 32]);

impl Serialize for Binary<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// The index with its shards sorted by name, so the same shards give the same bytes (and the
/// same entity tag). Reads back as `rattler_conda_types::ShardedRepodata`.
#[derive(Serialize)]
struct Index<'a> {
    info: ShardedSubdirInfo,
    shards: BTreeMap<&'a str, Binary<'a>>,
}

/// The compressed index of a subdirectory: `base_url` and `shards_base_url` as given (the
/// gateway passes relative URLs, so clients resolve them against the index they fetched) and
/// each package name's shard hash.
pub fn encode_index<'a>(
    subdir: &str,
    base_url: &str,
    shards_base_url: &str,
    shards: impl IntoIterator<Item = (&'a str, &'a [u8; 32])>,
) -> Result<Vec<u8>, ShardError> {
    let index = Index {
        info: ShardedSubdirInfo {
            subdir: subdir.to_owned(),
            base_url: base_url.to_owned(),
            shards_base_url: shards_base_url.to_owned(),
            created_at: None,
            repodata_revisions: Default::default(),
            channel_relations: None,
            virtual_package_detectors: None,
        },
        shards: shards
            .into_iter()
            .map(|(name, sha256)| (name, Binary(sha256)))
            .collect(),
    };
    let packed =
        rmp_serde::to_vec_named(&index).map_err(|error| ShardError::Encoding(error.to_string()))?;
    compress(&packed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rattler_conda_types::ShardedRepodata;

    #[test]
    fn a_reused_zstd_context_compresses_exactly_as_a_fresh_one() {
        // Shard names are the digests of the compressed bytes: reusing the thread's context
        // must not change them, whatever was compressed before.
        let inputs: Vec<Vec<u8>> = (0..20u8)
            .map(|seed| {
                (0..(1000 + usize::from(seed) * 997))
                    .map(|i| (i * usize::from(seed + 1) % 251) as u8)
                    .collect()
            })
            .collect();
        for input in inputs.iter().chain(inputs.iter().rev()) {
            let fresh = zstd::bulk::compress(input, ZSTD_LEVEL).expect("zstd");
            assert_eq!(compress(input).expect("zstd"), fresh);
        }
    }

    const DOCUMENT: &str = r#"{"info":{"subdir":"noarch"},
      "packages":{"six-1.16.0-pyh6c4a22f_0.tar.bz2":{"name":"six","version":"1.16.0","build":"pyh6c4a22f_0","build_number":0,"depends":["python"],"sha256":"6f2bd8c1d8f8e9e6c7e7d6d6ccf1b1c9a4b3f7dcf3ab4a5e1c0e8b9a7d6c5b4a","md5":"a5f8e0e1c1d36c2c7ff1b8e6e1a4f4b2","size":14259,"timestamp":1620240338000,"license":"MIT"}},
      "packages.conda":{"six-1.17.0-pyhd8ed1ab_0.conda":{"name":"six","version":"1.17.0","build":"pyhd8ed1ab_0","build_number":0,"depends":["python >=3.9"],"size":16385,"timestamp":1733253167000}}}"#;

    fn decompress(bytes: &[u8]) -> Vec<u8> {
        zstd::stream::decode_all(bytes).unwrap()
    }

    #[test]
    fn a_shard_reads_back_as_rattlers_shard_and_is_named_by_its_hash() {
        let (repodata, _) = RepoData::parse(DOCUMENT.as_bytes().to_vec()).unwrap();
        let (shard, skipped) = encode_shard(&repodata, repodata.records()).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(
            shard.sha256,
            <[u8; 32]>::from(sha2::Sha256::digest(&shard.bytes))
        );
        assert!(shard.filename().ends_with(".msgpack.zst") && shard.filename().len() == 76);
        let read: Shard = rmp_serde::from_slice(&decompress(&shard.bytes)).unwrap();
        assert_eq!(read.packages.len(), 1);
        assert_eq!(read.conda_packages.len(), 1);
        let (_, record) = read.packages.first().unwrap();
        assert_eq!(record.version.to_string(), "1.16.0");
        assert_eq!(record.depends, vec!["python".to_owned()]);
        assert_eq!(
            record.sha256.map(|hash| hex_of(&hash.into())).as_deref(),
            Some("6f2bd8c1d8f8e9e6c7e7d6d6ccf1b1c9a4b3f7dcf3ab4a5e1c0e8b9a7d6c5b4a")
        );
        // Fewer records, another shard (so a view that withholds one has its own hash).
        let (fewer, _) = encode_shard(&repodata, &repodata.records()[..1]).unwrap();
        assert_ne!(fewer.sha256, shard.sha256);
        assert_eq!(
            encode_shard(&repodata, repodata.records()).unwrap().0,
            shard,
            "the same records give the same bytes"
        );
    }

    #[test]
    fn the_index_reads_back_as_rattlers_sharded_repodata() {
        let hash = [7u8; 32];
        let other = [9u8; 32];
        let bytes = encode_index(
            "noarch",
            "./",
            "./shards/",
            [("six", &hash), ("abc", &other)],
        )
        .unwrap();
        let read: ShardedRepodata = rmp_serde::from_slice(&decompress(&bytes)).unwrap();
        assert_eq!(read.info.subdir, "noarch");
        assert_eq!(read.info.base_url, "./");
        assert_eq!(read.info.shards_base_url, "./shards/");
        assert_eq!(read.shards.len(), 2);
        assert_eq!(read.shards["six"].as_slice(), &hash);
        let again = encode_index(
            "noarch",
            "./",
            "./shards/",
            [("abc", &other), ("six", &hash)],
        )
        .unwrap();
        assert_eq!(
            again, bytes,
            "the index does not depend on the order of its shards"
        );
    }

    #[test]
    fn a_record_that_is_not_a_package_record_is_left_out_and_reported() {
        let document = r#"{"packages":{"x-1-0.tar.bz2":{"name":"x","version":"1","build":"0","depends":"not a list"},"x-2-0.tar.bz2":{"name":"x","version":"2","build":"0","build_number":0}}}"#;
        let (repodata, _) = RepoData::parse(document.as_bytes().to_vec()).unwrap();
        let (shard, skipped) = encode_shard(&repodata, repodata.records()).unwrap();
        assert!(
            matches!(&skipped[..], [ShardError::Record { filename, .. }] if filename == "x-1-0.tar.bz2")
        );
        let read: Shard = rmp_serde::from_slice(&decompress(&shard.bytes)).unwrap();
        assert_eq!(read.packages.len(), 1);
    }
}
