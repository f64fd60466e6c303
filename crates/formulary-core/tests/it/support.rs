//! Builders shared by the tests.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use formulary_core::advisory::{Advisory, OsvRecord, RecordFormat};
use formulary_core::ecosystems::{Ecosystem, Version, VersionRange};
use formulary_core::policy::{Release, View};
use formulary_core::{Component, Entry, EntryDraft, OrgCode, Status};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0)
        .single()
        .expect("valid time")
}

pub fn day(text: &str) -> NaiveDate {
    text.parse().expect("a date")
}

pub fn pypi(name: &str) -> Component {
    Component::new(Ecosystem::Pypi, name).expect("a valid name")
}

pub fn version(component: &Component, text: &str) -> Version {
    Version::parse(component.ecosystem(), text).expect("a valid version")
}

pub fn release(component: &Component, text: &str, days_old: i64) -> Release {
    Release {
        dated_by_first_sight: false,
        version: version(component, text),
        published: Some(now() - chrono::Duration::days(days_old)),
        yanked: None,
        licence: None,
        install_scripts: false,
    }
}

pub fn view(organisation: &str) -> View {
    View {
        organisation: organisation.parse().expect("org code"),
        at: now(),
    }
}

pub fn entry(
    id: &str,
    organisation: &str,
    component: &Component,
    range: &str,
    status: Status,
) -> Entry {
    Entry {
        id: id.to_owned(),
        draft: EntryDraft {
            organisation: organisation.parse::<OrgCode>().expect("org code"),
            component: component.clone(),
            range: VersionRange::parse(component.ecosystem(), range).expect("range"),
            status,
            constraints: None,
            review_date: None,
            expires: None,
            waives: Vec::new(),
            decided_by: "curation board".to_owned(),
            reason: format!("{status} for test"),
            mentor: None,
        },
        created_at: now(),
    }
}

pub fn advisory_from_yaml(yaml: &str) -> Advisory {
    let record =
        OsvRecord::parse(yaml.as_bytes(), RecordFormat::Yaml, "inline").expect("record parses");
    Advisory::from_record(&record).expect("record converts")
}

pub fn advisory_from_file(relative: &str) -> Advisory {
    let path = repo_root().join("test-data/osv").join(relative);
    let bytes = std::fs::read(&path).expect("advisory file");
    let record = OsvRecord::parse(&bytes, RecordFormat::Yaml, relative).expect("record parses");
    Advisory::from_record(&record).expect("record converts")
}
