use super::*;
use std::time::Duration;

fn inputs(counter: i64, head: &str) -> PolicyInputs {
    serde_json::from_value(serde_json::json!({
        "counter": counter,
        "head": head,
        "organisations": [],
        "settings": [],
        "entries": [],
        "advisories": [],
        "admissions": [],
        "feed_current_at": null,
        "feed_policies": [],
    }))
    .expect("inputs")
}

fn document(text: &str) -> UpstreamDocument {
    UpstreamDocument {
        upstream: "https://pypi.org/simple/".to_owned(),
        document: text.to_owned(),
        etag: Some("\"v1\"".to_owned()),
        fetched_at: Utc::now(),
    }
}

#[tokio::test]
async fn a_written_copy_loads_and_a_changed_one_is_refused() {
    let folder = tempfile::tempdir().expect("temp dir");
    let key = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
    let place = folder.path().join("local-copy");
    let copy = LocalCopy::open(&place, key.clone());
    copy.set_policy(inputs(7, "abc"));
    copy.put_document("pypi", "calm", &document("{\"files\": []}"));
    let component = Component::new(Ecosystem::Pypi, "calm").expect("component");
    let release = Release::bare(Version::parse(Ecosystem::Pypi, "1.0").expect("version"));
    copy.record_release(&component, &release);
    copy.write_now().await.expect("written");

    let loaded = LocalCopy::load(&place, key.clone(), None).expect("loads");
    assert_eq!(
        loaded.policy_snapshot().expect("policy").map(|(n, _)| n),
        Some(7)
    );
    let found = loaded.document("pypi", "calm").await.expect("read");
    assert_eq!(
        found.map(|d| d.document).as_deref(),
        Some("{\"files\": []}")
    );
    assert_eq!(loaded.releases_of(&component), vec![release]);
    assert!(loaded.written_at().is_some());

    // A checkpoint newer than the copy: refused (a prohibition may be missing).
    let newer = key.checkpoint(8, "def");
    let refused = LocalCopy::load(&place, key.clone(), Some(&newer)).unwrap_err();
    assert!(refused.contains("audit row 7"), "{refused}");
    let same_row_other_chain = key.checkpoint(7, "zzz");
    assert!(LocalCopy::load(&place, key.clone(), Some(&same_row_other_chain)).is_err());
    assert!(LocalCopy::load(&place, key.clone(), Some(&key.checkpoint(7, "abc"))).is_ok());

    // Another key: refused.
    let other = AuditKey::load_or_create(&folder.path().join("other.key")).expect("key");
    assert!(LocalCopy::load(&place, other, None)
        .unwrap_err()
        .contains("seal"));

    // A document changed on disk is not served.
    let sha = sha256_hex(b"{\"files\": []}");
    std::fs::write(disk::document_path(&place, &sha), b"{\"files\": [1]}").expect("write");
    let loaded = LocalCopy::load(&place, key.clone(), None).expect("loads");
    assert!(loaded.document("pypi", "calm").await.is_err());

    // An edit of the manifest (allowing what was denied, say) breaks the seal.
    let manifest = place.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    std::fs::write(&manifest, text.replace("\"counter\":7", "\"counter\":9")).expect("write");
    let refused = LocalCopy::load(&place, key, None).unwrap_err();
    assert!(refused.contains("fails its seal check"), "{refused}");
}

/// A disk that fills up on demand: a write then puts half its bytes on disk and fails as a full
/// disk does (ENOSPC).
#[derive(Debug, Default)]
struct FillingDisk {
    full: AtomicBool,
    /// Only the manifest does not fit.
    manifest_only: AtomicBool,
    refused: std::sync::atomic::AtomicUsize,
}

impl disk::Storage for FillingDisk {
    fn write_file(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let manifest = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("manifest"));
        let full = if self.manifest_only.load(Ordering::SeqCst) {
            manifest
        } else {
            self.full.load(Ordering::SeqCst)
        };
        if full {
            self.refused.fetch_add(1, Ordering::SeqCst);
            std::fs::write(path, &bytes[..bytes.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(28));
        }
        disk::FileSystem.write_file(path, bytes)
    }
}

fn on_disk(place: &Path, key: AuditKey, storage: Arc<FillingDisk>) -> Arc<LocalCopy> {
    let mut copy = LocalCopy::with(place, key, Contents::default());
    copy.storage = storage;
    Arc::new(copy)
}

/// Every file in the copy's folder, recursively, by path relative to it.
fn files_in(place: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut folders = vec![place.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("folder").flatten() {
            if entry.path().is_dir() {
                folders.push(entry.path());
            } else {
                let relative = entry.path().strip_prefix(place).expect("inside").to_owned();
                found.push(relative.display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_full_disk_leaves_the_previous_copy_whole_and_no_temporary_file() {
    let folder = tempfile::tempdir().expect("temp dir");
    let key = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
    let place = folder.path().join("local-copy");
    let disk = Arc::new(FillingDisk::default());
    let copy = on_disk(&place, key.clone(), Arc::clone(&disk));
    copy.set_policy(inputs(7, "abc"));
    copy.put_document("pypi", "calm", &document("{\"files\": []}"));
    copy.write_now().await.expect("written");
    let written_at = copy.written_at().expect("written at");
    let before = files_in(&place);
    let manifest = std::fs::read(place.join("manifest.json")).expect("manifest");

    // The disk fills; a new policy and a new document must be written.
    disk.full.store(true, Ordering::SeqCst);
    copy.set_policy(inputs(8, "def"));
    copy.put_document("pypi", "brisk", &document("{\"files\": [\"brisk\"]}"));
    let error = copy.write_now().await.expect_err("the disk is full");
    let said = error.to_string();
    assert!(
        said.contains("the disk is full: free space on it")
            && said.contains("the previous copy on disk is kept whole"),
        "{said}"
    );
    assert!(disk.refused.load(Ordering::SeqCst) >= 1);
    assert_eq!(files_in(&place), before, "no temporary file is left behind");
    assert_eq!(
        std::fs::read(place.join("manifest.json")).expect("manifest"),
        manifest,
        "the sealed manifest is untouched"
    );
    assert_eq!(
        copy.written_at(),
        Some(written_at),
        "the copy does not claim a write that failed"
    );
    let previous = LocalCopy::load(&place, key.clone(), None).expect("the previous copy loads");
    assert_eq!(
        previous.policy_snapshot().expect("policy").map(|(n, _)| n),
        Some(7)
    );
    assert!(previous.document("pypi", "calm").await.is_ok());

    // Room for the document, not for the manifest: still the previous manifest, whole.
    disk.manifest_only.store(true, Ordering::SeqCst);
    assert!(copy.write_now().await.is_err());
    assert_eq!(
        std::fs::read(place.join("manifest.json")).expect("manifest"),
        manifest
    );
    assert!(files_in(&place).iter().all(|name| !name.contains(".tmp-")));
    assert!(LocalCopy::load(&place, key.clone(), None).is_ok());
    // Space again: the next attempt writes everything that waited, without a new change.
    disk.manifest_only.store(false, Ordering::SeqCst);
    disk.full.store(false, Ordering::SeqCst);
    copy.write_now().await.expect("written once there is space");
    let loaded = LocalCopy::load(&place, key, None).expect("loads");
    assert_eq!(
        loaded.policy_snapshot().expect("policy").map(|(n, _)| n),
        Some(8)
    );
    let brisk = loaded.document("pypi", "brisk").await.expect("read");
    assert!(brisk.is_some_and(|found| found.document.contains("brisk")));
    assert!(copy.written_at() > Some(written_at));
}

#[tokio::test]
async fn the_writer_retries_after_a_full_disk_without_a_new_change() {
    let folder = tempfile::tempdir().expect("temp dir");
    let key = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
    let place = folder.path().join("local-copy");
    let disk = Arc::new(FillingDisk::default());
    let copy = on_disk(&place, key.clone(), Arc::clone(&disk));
    disk.full.store(true, Ordering::SeqCst);
    let writer = copy.keep_written_retrying(Duration::from_millis(10), Duration::from_millis(50));
    copy.set_policy(inputs(3, "abc"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while disk.refused.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "no retry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        LocalCopy::load(&place, key.clone(), None).is_err(),
        "nothing written yet"
    );
    disk.full.store(false, Ordering::SeqCst);
    loop {
        if let Ok(loaded) = LocalCopy::load(&place, key.clone(), None) {
            assert_eq!(
                loaded.policy_snapshot().expect("policy").map(|(n, _)| n),
                Some(3)
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.abort();
    assert!(files_in(&place).iter().all(|name| !name.contains(".tmp-")));
}

#[test]
fn a_failing_writer_reports_once_per_run_of_failures() {
    let mut trouble = writer::Trouble::default();
    assert!(!trouble.is_failing());
    assert!(trouble.failed(), "the first failure is reported");
    assert!(!trouble.failed(), "the next ones are not");
    assert!(trouble.is_failing());
    assert_eq!(trouble.succeeded(), Some(2));
    assert_eq!(trouble.succeeded(), None);
    assert!(trouble.failed(), "a new run of failures is reported again");
}

#[test]
fn a_document_saved_then_read_back_from_the_database_is_held_without_a_second_copy() {
    let folder = tempfile::tempdir().expect("temp dir");
    let key = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
    let copy = LocalCopy::open(&folder.path().join("local-copy"), key);
    let saved = document("{\"files\": []}");
    copy.put_document("pypi", "calm", &saved);
    // The database keeps the fetch time to the microsecond; a read of the same fetch must find
    // the copy holding it (else a large document is hashed and copied again on the first read).
    let read_back =
        crate::time::from_text(&crate::time::to_text(saved.fetched_at)).expect("time reads back");
    assert!(copy.holds_document(
        "pypi",
        "calm",
        &saved.upstream,
        saved.etag.as_deref(),
        read_back
    ));
    assert!(!copy.holds_document("pypi", "calm", &saved.upstream, Some("\"v2\""), read_back));
}
