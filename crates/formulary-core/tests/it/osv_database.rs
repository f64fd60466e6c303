//! Every record of the real PyPA and R advisory databases parses and converts, and a
//! hand-checked sample evaluates as the records say.

use std::path::Path;

use formulary_core::advisory::{Advisory, OsvRecord, RecordFormat};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{Component, Severity};

use crate::support::{advisory_from_file, advisory_from_yaml, pypi, repo_root, version};

fn records_under(folder: &Path, found: &mut Vec<std::path::PathBuf>) {
    for item in std::fs::read_dir(folder).expect("readable folder") {
        let path = item.expect("folder entry").path();
        if path.is_dir() {
            records_under(&path, found);
        } else if RecordFormat::from_file_name(&path.to_string_lossy()).is_some() {
            found.push(path);
        }
    }
}

fn convert_all(database: &str) -> Vec<Advisory> {
    let mut files = Vec::new();
    records_under(
        &repo_root()
            .join("test-data/osv")
            .join(database)
            .join("vulns"),
        &mut files,
    );
    let mut failures = Vec::new();
    let mut advisories = Vec::new();
    for file in &files {
        let name = file.to_string_lossy();
        let format = RecordFormat::from_file_name(&name).expect("an OSV file");
        let bytes = std::fs::read(file).expect("readable record");
        match OsvRecord::parse(&bytes, format, &name)
            .and_then(|record| Advisory::from_record(&record))
        {
            Ok(advisory) => advisories.push(advisory),
            Err(error) => failures.push(format!("{name}: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} records failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    advisories
}

#[test]
fn every_pypa_record_converts() {
    let advisories = convert_all("pypa-advisory-database");
    assert!(
        advisories.len() > 2_500,
        "only {} records",
        advisories.len()
    );
    let pypi_packages = advisories
        .iter()
        .filter(|advisory| advisory.ecosystems() == [Ecosystem::Pypi])
        .count();
    assert_eq!(
        pypi_packages,
        advisories.len(),
        "every PyPA record is about PyPI packages"
    );
    let unreadable_ranges: usize = advisories
        .iter()
        .map(|advisory| advisory.warnings.len())
        .sum();
    assert!(
        unreadable_ranges * 100 < advisories.len(),
        "{unreadable_ranges} ranges could not be read"
    );
}

#[test]
fn every_r_record_converts() {
    let advisories = convert_all("r-advisory-database");
    assert!(advisories.len() >= 10);
    assert!(advisories
        .iter()
        .all(|advisory| advisory.ecosystems() == [Ecosystem::Cran]));
}

#[test]
fn requests_before_2_20_leaks_credentials() {
    let advisory = advisory_from_file("pypa-advisory-database/vulns/requests/PYSEC-2018-28.yaml");
    let requests = pypi("requests");
    assert!(advisory.affects(&requests, &version(&requests, "2.19.1")));
    assert!(advisory.affects(&requests, &version(&requests, "0.12.01")));
    assert!(!advisory.affects(&requests, &version(&requests, "2.20.0")));
    assert!(!advisory.affects(&requests, &version(&requests, "2.32.3")));
    assert!(!advisory.affects(&pypi("urllib3"), &version(&requests, "1.0")));
    assert_eq!(advisory.severity, None, "PyPA records carry no CVSS vector");
    assert_eq!(
        advisory.effective_severity(),
        Severity::High,
        "unrated counts as high"
    );
    assert_eq!(advisory.fixed_versions(&requests), ["2.20.0"]);
}

#[test]
fn werkzeug_has_two_intervals_and_a_cvss_score() {
    let advisory = advisory_from_file("pypa-advisory-database/vulns/werkzeug/PYSEC-2023-221.yaml");
    let werkzeug = pypi("werkzeug");
    for (text, affected) in [
        ("2.3.7", true),
        ("2.3.8", false),
        ("2.9", false),
        ("3.0.0", true),
        ("3.0.1", false),
    ] {
        assert_eq!(
            advisory.affects(&werkzeug, &version(&werkzeug, text)),
            affected,
            "werkzeug {text}"
        );
    }
    assert_eq!(advisory.cvss_score, Some(7.5));
    assert_eq!(advisory.severity, Some(Severity::High));
}

#[test]
fn last_affected_is_inclusive() {
    let advisory = advisory_from_file("pypa-advisory-database/vulns/py/PYSEC-2022-42969.yaml");
    let py = pypi("py");
    assert!(advisory.affects(&py, &version(&py, "1.11.0")));
    assert!(!advisory.affects(&py, &version(&py, "1.11.1")));
}

#[test]
fn withdrawn_records_affect_nothing() {
    let advisory = advisory_from_file("pypa-advisory-database/vulns/loguru/PYSEC-2022-15.yaml");
    assert!(advisory.is_withdrawn());
    let loguru = pypi("loguru");
    assert!(!advisory.affects(&loguru, &version(&loguru, "0.5.3")));
}

#[test]
fn readxl_uses_r_ordering() {
    let advisory = advisory_from_file("r-advisory-database/vulns/readxl/RSEC-2023-1.yaml");
    let readxl = Component::new(Ecosystem::Cran, "readxl").expect("name");
    let v = |text| version(&readxl, text);
    assert!(advisory.affects(&readxl, &v("1.0.0")));
    assert!(
        advisory.affects(&readxl, &v("1.2-0")),
        "1.2-0 equals the listed 1.2.0"
    );
    assert!(!advisory.affects(&readxl, &v("1.3.0")));
    assert!(
        !advisory.affects(&readxl, &v("0.0.9")),
        "introduced at 0.1.0"
    );
}

#[test]
fn malicious_reports_are_recognised_and_critical() {
    let advisory = advisory_from_yaml(
        "id: MAL-2024-0001\nmodified: 2024-05-01T00:00:00Z\nsummary: Malicious code in reqeusts\naffected:\n- package: {ecosystem: PyPI, name: reqeusts}\n  versions: ['1.0']\n",
    );
    assert!(advisory.malicious);
    assert_eq!(advisory.effective_severity(), Severity::Critical);
}

#[test]
fn cvss_v4_vectors_are_scored() {
    let advisory = advisory_from_yaml(
        "id: GHSA-test-v4\nmodified: 2025-01-01T00:00:00Z\nseverity:\n- type: CVSS_V4\n  score: CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N\naffected:\n- package: {ecosystem: PyPI, name: demo}\n  versions: ['1.0']\n",
    );
    assert_eq!(advisory.severity, Some(Severity::Critical));
    assert!(advisory.cvss_score.is_some_and(|score| score >= 9.0));
}

#[test]
fn malformed_records_say_what_and_where() {
    let error =
        OsvRecord::parse(b"id: [unclosed", RecordFormat::Yaml, "vulns/x/BAD.yaml").unwrap_err();
    assert!(error.to_string().contains("vulns/x/BAD.yaml"), "{error}");
    let record = OsvRecord::parse(
        br#"{"id":"PYSEC-1","modified":"yesterday"}"#,
        RecordFormat::Json,
        "a.json",
    )
    .expect("parses");
    let error = Advisory::from_record(&record).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("'modified' is not an RFC 3339 time"),
        "{error}"
    );
    let record = OsvRecord::parse(
        br#"{"id":"../../etc/passwd","modified":"2024-01-01T00:00:00Z"}"#,
        RecordFormat::Json,
        "b.json",
    )
    .expect("parses");
    assert!(
        Advisory::from_record(&record).is_err(),
        "hostile ids are refused"
    );
}

#[test]
fn a_zero_cvss_score_is_low_not_unrated() {
    let advisory = advisory_from_yaml(
        "id: GHSA-zero\nmodified: 2025-01-01T00:00:00Z\nseverity:\n- type: CVSS_V3\n  score: CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N\naffected:\n- package: {ecosystem: PyPI, name: demo}\n  versions: ['1.0']\n",
    );
    assert_eq!(advisory.cvss_score, Some(0.0));
    assert_eq!(advisory.effective_severity(), Severity::Low);
}
