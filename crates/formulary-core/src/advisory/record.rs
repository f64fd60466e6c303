use chrono::{DateTime, NaiveDateTime, Utc};
use formulary_ecosystems::Ecosystem;
use serde::{Deserialize, Serialize};

use super::affected::{AffectedPackage, AffectedRange};
use super::Advisory;
use crate::component::Component;
use crate::error::{printable, CoreError};
use crate::severity::Severity;

/// An OSV record (schema 1.x) as published, kept loose enough to read every real database: only
/// `id` and `modified` are required. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsvRecord {
    /// The record id.
    pub id: String,
    /// Last modification time (RFC 3339).
    pub modified: String,
    /// Publication time (RFC 3339).
    #[serde(default)]
    pub published: Option<String>,
    /// Withdrawal time (RFC 3339).
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other ids for the same problem.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Longer description (Markdown).
    #[serde(default)]
    pub details: Option<String>,
    /// Severity scores for the whole record.
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// The affected packages and versions.
    #[serde(default)]
    pub affected: Vec<OsvAffected>,
    /// Links.
    #[serde(default)]
    pub references: Vec<OsvReference>,
    /// Database-specific data; GitHub puts a qualitative `severity` here.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A severity score, e.g. `{type: CVSS_V3, score: "CVSS:3.1/AV:N/…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsvSeverity {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4` or `Ubuntu`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector or rating.
    pub score: String,
}

/// One affected package with its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsvAffected {
    /// The package.
    #[serde(default)]
    pub package: Option<OsvPackage>,
    /// Per-package severity scores.
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    /// Explicitly listed affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
}

/// A package named by ecosystem and name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsvPackage {
    /// The OSV ecosystem, e.g. `PyPI`, `CRAN`.
    pub ecosystem: String,
    /// The package name.
    pub name: String,
}

/// A range of versions described by events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsvRange {
    /// `ECOSYSTEM`, `SEMVER` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The events, each with exactly one of the fields set.
    #[serde(default)]
    pub events: Vec<OsvEvent>,
}

/// One range event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsvEvent {
    /// The first affected version (`0` for "since the beginning").
    #[serde(default)]
    pub introduced: Option<String>,
    /// The first version no longer affected.
    #[serde(default)]
    pub fixed: Option<String>,
    /// The last affected version.
    #[serde(default)]
    pub last_affected: Option<String>,
    /// An upper bound on the range.
    #[serde(default)]
    pub limit: Option<String>,
}

/// A link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsvReference {
    /// The kind of link (`ADVISORY`, `FIX`, `WEB`, …).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The address.
    pub url: String,
}

/// Reads an OSV timestamp: RFC 3339, or the same without an offset (then taken as UTC), as some
/// databases write them.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|naive| naive.and_utc())
        })
}

const MAX_ID_LENGTH: usize = 100;

pub(super) fn to_advisory(record: &OsvRecord) -> Result<Advisory, CoreError> {
    let invalid = |why: String| CoreError::InvalidAdvisory {
        id: printable(&record.id),
        why,
    };
    let id_is_sane = !record.id.is_empty()
        && record.id.len() <= MAX_ID_LENGTH
        && record
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !id_is_sane {
        return Err(invalid(
            "the id must be letters, digits, '-', '_', '.' or ':' (at most 100)".to_owned(),
        ));
    }
    let modified = parse_timestamp(&record.modified).ok_or_else(|| {
        invalid(format!(
            "'modified' is not an RFC 3339 time: '{}'",
            printable(&record.modified)
        ))
    })?;
    let optional_time =
        |field: &str, value: &Option<String>| -> Result<Option<DateTime<Utc>>, CoreError> {
            match value {
                None => Ok(None),
                Some(text) => parse_timestamp(text).map(Some).ok_or_else(|| {
                    invalid(format!(
                        "'{field}' is not an RFC 3339 time: '{}'",
                        printable(text)
                    ))
                }),
            }
        };
    let published = optional_time("published", &record.published)?;
    let withdrawn = optional_time("withdrawn", &record.withdrawn)?;

    let mut warnings = Vec::new();
    let mut affected = Vec::new();
    for entry in &record.affected {
        let Some(package) = &entry.package else {
            continue;
        };
        let Some(ecosystem) = Ecosystem::from_osv_name(&package.ecosystem) else {
            continue;
        };
        let component = match Component::new(ecosystem, &package.name) {
            Ok(component) => component,
            Err(error) => {
                warnings.push(format!("skipped affected package: {error}"));
                continue;
            }
        };
        let mut ranges = Vec::new();
        for range in &entry.ranges {
            match AffectedRange::from_record(ecosystem, range) {
                Ok(Some(parsed)) => ranges.push(parsed),
                Ok(None) => {}
                Err(why) => warnings.push(format!("{component}: range ignored: {why}")),
            }
        }
        affected.push(AffectedPackage::new(component, &entry.versions, ranges));
    }

    let (severity, cvss_score) = derive_severity(record);
    let is_malicious_id = |id: &String| id.starts_with("MAL-");
    Ok(Advisory {
        id: record.id.clone(),
        aliases: record.aliases.clone(),
        summary: record
            .summary
            .clone()
            .or_else(|| record.details.as_ref().map(|details| first_line(details)))
            .unwrap_or_default(),
        modified,
        published,
        withdrawn,
        severity,
        cvss_score,
        malicious: is_malicious_id(&record.id) || record.aliases.iter().any(is_malicious_id),
        affected,
        references: record
            .references
            .iter()
            .map(|reference| reference.url.clone())
            .collect(),
        warnings,
    })
}

/// A one-line summary from a description: its first sentence, cut at a word boundary near 160
/// characters when that sentence is longer.
fn first_line(text: &str) -> String {
    const LIMIT: usize = 160;
    let flattened = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let sentence = flattened
        .split_once(". ")
        .map_or(flattened.as_str(), |(first, _)| first);
    if sentence.chars().count() <= LIMIT {
        return sentence.trim_end_matches('.').to_owned();
    }
    let mut cut: String = sentence.chars().take(LIMIT).collect();
    if let Some(space) = cut.rfind(' ') {
        cut.truncate(space);
    }
    cut.push('…');
    cut
}

/// The worst severity among the record's CVSS vectors (record-wide and per package); failing
/// those, a database's qualitative rating (`database_specific.severity`).
fn derive_severity(record: &OsvRecord) -> (Option<Severity>, Option<f64>) {
    let vectors = record.severity.iter().chain(
        record
            .affected
            .iter()
            .flat_map(|affected| affected.severity.iter()),
    );
    let best_score = vectors
        .filter(|severity| severity.kind.starts_with("CVSS_"))
        .filter_map(|severity| severity.score.parse::<cvss::Cvss>().ok())
        .map(|vector| vector.score())
        .fold(None, |best: Option<f64>, score| {
            Some(best.map_or(score, |best| best.max(score)))
        });
    if let Some(score) = best_score {
        // A score of 0.0 means "no impact": rated, and the lowest rating, not "unrated".
        return (
            Some(Severity::from_score(score).unwrap_or(Severity::Low)),
            Some(score),
        );
    }
    let rated = record
        .database_specific
        .as_ref()
        .and_then(|specific| specific.get("severity"))
        .and_then(serde_json::Value::as_str)
        .and_then(|rating| rating.parse::<Severity>().ok());
    (rated, None)
}

/// The formats OSV records are published in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// `.json`, as in OSV exports and `all.zip`.
    Json,
    /// `.yaml` / `.yml`, as in the PyPA and R advisory databases.
    Yaml,
}

impl RecordFormat {
    /// The format a file name's extension says, if it is one of OSV's.
    pub fn from_file_name(name: &str) -> Option<RecordFormat> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Some(RecordFormat::Json)
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Some(RecordFormat::Yaml)
        } else {
            None
        }
    }
}

/// Largest record accepted: real records are a few kilobytes; the biggest known are under 2 MB.
pub const MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;

impl OsvRecord {
    /// Parses one record. `origin` (a file name) is used in the error when the record's own id
    /// cannot be read.
    pub fn parse(bytes: &[u8], format: RecordFormat, origin: &str) -> Result<OsvRecord, CoreError> {
        let invalid = |why: String| CoreError::InvalidAdvisory {
            id: printable(origin),
            why,
        };
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(invalid(format!(
                "the record is {} bytes, more than the 8 MiB limit",
                bytes.len()
            )));
        }
        match format {
            RecordFormat::Json => serde_json::from_slice(bytes)
                .map_err(|error| invalid(format!("not a valid OSV JSON record: {error}"))),
            RecordFormat::Yaml => serde_yaml::from_slice(bytes)
                .map_err(|error| invalid(format!("not a valid OSV YAML record: {error}"))),
        }
    }
}
