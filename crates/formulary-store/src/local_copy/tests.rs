use super::*;

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
