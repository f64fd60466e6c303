//! The demo formulary: a small, realistic national formulary of analyst tools with one trust's
//! overlay and a few real advisories, so that a newcomer has something to look at.

use chrono::{Duration, NaiveDate, Utc};
use formulary_core::advisory::{Advisory, OsvRecord, RecordFormat};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::{
    Component, EcosystemSettings, EntryDraft, OrgCode, Organisation, Severity, Stance, Status,
    Waiver,
};
use formulary_store::{AdvisoryImport, Database, EntryFilter};

const ACTOR: &str = "demo:seed";

/// Real OSV records embedded in the binary (see demo/advisories/NOTICE.md).
const ADVISORIES: [(&str, &str); 4] = [
    (
        "PYSEC-2018-28.yaml",
        include_str!("../demo/advisories/PYSEC-2018-28.yaml"),
    ),
    (
        "PYSEC-2021-142.yaml",
        include_str!("../demo/advisories/PYSEC-2021-142.yaml"),
    ),
    (
        "PYSEC-2021-66.yaml",
        include_str!("../demo/advisories/PYSEC-2021-66.yaml"),
    ),
    (
        "RSEC-2023-1.yaml",
        include_str!("../demo/advisories/RSEC-2023-1.yaml"),
    ),
];

/// One demo entry: organisation, ecosystem, name, range, status, reason.
struct Seed {
    organisation: &'static str,
    ecosystem: Ecosystem,
    name: &'static str,
    range: &'static str,
    status: Status,
    reason: &'static str,
    constraints: Option<&'static str>,
    mentor: Option<&'static str>,
}

const fn seed(
    organisation: &'static str,
    ecosystem: Ecosystem,
    name: &'static str,
    range: &'static str,
    status: Status,
    reason: &'static str,
) -> Seed {
    Seed {
        organisation,
        ecosystem,
        name,
        range,
        status,
        reason,
        constraints: None,
        mentor: None,
    }
}

fn entries() -> Vec<Seed> {
    use Ecosystem::{Cran, Generic, Pypi};
    use Status::{Approved, ApprovedWithConstraints, Divest, Prohibited, UnderReview};
    vec![
        Seed { mentor: Some("Priya Shah (NHS England Data Science)"), ..seed("NATIONAL", Generic, "r", ">= 4.3, < 5", Approved, "R 4.x is the main language of NHS analysts; supported upstream; installs per user without admin rights") },
        Seed { mentor: Some("Tom Okafor (NHS England Data Science)"), ..seed("NATIONAL", Generic, "python", ">= 3.10, < 3.14", Approved, "Supported CPython releases; installs per user without admin rights") },
        seed("NATIONAL", Generic, "python", "< 3.9", Prohibited, "End of life: no security fixes upstream. Move to Python 3.12"),
        seed("NATIONAL", Generic, "git", ">= 2.45", Approved, "Version control for reproducible analytical pipelines (RAP); portable per-user install"),
        Seed { constraints: Some("Use the open-source desktop edition; no publishing to external servers"), ..seed("NATIONAL", Generic, "rstudio", ">= 2024.04", ApprovedWithConstraints, "The IDE most NHS R users work in") },
        seed("NATIONAL", Generic, "vscode", "*", UnderReview, "Extension marketplace and telemetry under security review"),
        seed("NATIONAL", Pypi, "pandas", ">=2,<3", Approved, "Core data analysis library; active maintainers; BSD-3-Clause"),
        seed("NATIONAL", Pypi, "numpy", ">=1.26", Approved, "Core numerical library; BSD-3-Clause"),
        seed("NATIONAL", Pypi, "requests", ">=2.20", Approved, "HTTP client used by most API clients"),
        seed("NATIONAL", Pypi, "matplotlib", "*", Approved, "Standard plotting library"),
        seed("NATIONAL", Pypi, "scikit-learn", ">=1.3", Approved, "Standard machine learning library"),
        seed("NATIONAL", Pypi, "reqeusts", "*", Prohibited, "Typosquat of requests: a known malicious package name"),
        seed("NATIONAL", Pypi, "pyyaml", "<5.4", Prohibited, "Arbitrary code execution via full_load (CVE-2020-14343); use 5.4 or newer"),
        seed("NATIONAL", Pypi, "python-jose", "*", Divest, "Unmaintained; move to joserfc or PyJWT"),
        seed("NATIONAL", Cran, "dplyr", "*", Approved, "Core tidyverse data manipulation"),
        seed("NATIONAL", Cran, "ggplot2", "*", Approved, "Standard plotting for R"),
        seed("NATIONAL", Cran, "readxl", ">= 1.3.0", Approved, "Reads Excel files; versions before 1.3.0 have memory-safety flaws (RSEC-2023-1)"),
        seed("NATIONAL", Cran, "data.table", "*", Approved, "Fast data manipulation"),
        seed("NATIONAL", Cran, "NHSRdatasets", "*", Approved, "Open NHS datasets for training (NHS-R Community)"),
        seed("RJ1", Pypi, "openpyxl", "< 3.1", Prohibited, "Trust IG: older versions mishandle protected workbooks in our estate"),
        Seed { constraints: Some("Only extensions on the trust's approved list; telemetry off"), ..seed("RJ1", Generic, "vscode", ">= 1.90", ApprovedWithConstraints, "Trust design authority approved it for the data science team") },
    ]
}

/// Seeds the demo formulary unless the database already has entries. Returns true when it did.
pub async fn seed_if_empty(database: &Database) -> anyhow::Result<bool> {
    if !database
        .list_entries(&EntryFilter {
            include_removed: true,
            ..EntryFilter::default()
        })
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    let trust = Organisation {
        code: "RJ1".parse()?,
        name: "Guy's and St Thomas' NHS Foundation Trust".to_owned(),
    };
    if database.organisation(&trust.code).await?.is_none() {
        database.add_organisation(&trust, ACTOR).await?;
    }
    let national = OrgCode::national();
    let desktop = EcosystemSettings {
        stance: Stance::Curated,
        cooldown_days: 0,
        ..EcosystemSettings::default()
    };
    database
        .set_ecosystem_settings(&national, Ecosystem::Generic, &desktop, ACTOR)
        .await?;
    database
        .set_ecosystem_settings(
            &national,
            Ecosystem::Pypi,
            &EcosystemSettings::default(),
            ACTOR,
        )
        .await?;
    database
        .set_ecosystem_settings(
            &national,
            Ecosystem::Cran,
            &EcosystemSettings::default(),
            ACTOR,
        )
        .await?;
    // The trust's views are curated: only what its formulary (national approvals and its own)
    // approves, with what those need to install admitted as dependencies.
    let cautious = EcosystemSettings {
        stance: Stance::Curated,
        severity_threshold: Severity::Medium,
        cooldown_days: 14,
        ..EcosystemSettings::default()
    };
    database
        .set_ecosystem_settings(&trust.code, Ecosystem::Pypi, &cautious, ACTOR)
        .await?;
    let curated = EcosystemSettings {
        stance: Stance::Curated,
        ..EcosystemSettings::default()
    };
    database
        .set_ecosystem_settings(&trust.code, Ecosystem::Cran, &curated, ACTOR)
        .await?;

    let today = Utc::now().date_naive();
    let review_date = today + Duration::days(365);
    for seed in entries() {
        let component = Component::new(seed.ecosystem, seed.name)?;
        let draft = EntryDraft {
            organisation: seed.organisation.parse()?,
            range: VersionRange::parse(seed.ecosystem, seed.range)?,
            component,
            status: seed.status,
            constraints: seed.constraints.map(str::to_owned),
            review_date: Some(review_date),
            expires: None,
            waives: Vec::new(),
            decided_by: if seed.organisation == "NATIONAL" {
                "National curation board"
            } else {
                "RJ1 design authority"
            }
            .to_owned(),
            reason: seed.reason.to_owned(),
            mentor: seed.mentor.map(str::to_owned),
        };
        database.add_entry(&draft, ACTOR).await?;
    }
    let pilot = EntryDraft {
        organisation: national.clone(),
        component: Component::new(Ecosystem::Pypi, "polars")?,
        range: VersionRange::parse(Ecosystem::Pypi, ">=1")?,
        status: Status::Pilot,
        constraints: None,
        review_date: None,
        expires: Some(today + Duration::days(90)),
        waives: Vec::new(),
        decided_by: "National curation board".to_owned(),
        reason: "90-day pilot with three ICB analytics teams".to_owned(),
        mentor: Some("Priya Shah (NHS England Data Science)".to_owned()),
    };
    database.add_entry(&pilot, ACTOR).await?;
    let exception = EntryDraft {
        organisation: trust.code.clone(),
        component: Component::new(Ecosystem::Pypi, "jinja2")?,
        range: VersionRange::parse(Ecosystem::Pypi, "==2.11.2")?,
        status: Status::Approved,
        constraints: Some(
            "Only inside the legacy reporting pipeline; templates are not user-supplied".to_owned(),
        ),
        review_date: None,
        expires: Some(exception_expiry(today)),
        waives: vec![Waiver::Advisory("PYSEC-2021-66".to_owned())],
        decided_by: "RJ1 SIRO (risk owner)".to_owned(),
        reason: "ReDoS risk accepted until the reporting pipeline is rebuilt".to_owned(),
        mentor: None,
    };
    database.add_entry(&exception, ACTOR).await?;

    let mut imports = Vec::new();
    for (name, text) in ADVISORIES {
        let record = OsvRecord::parse(text.as_bytes(), RecordFormat::Yaml, name)?;
        let advisory = Advisory::from_record(&record)?;
        imports.push(AdvisoryImport { record, advisory });
    }
    database
        .import_advisories(&imports, "demo advisories", ACTOR, |_| {})
        .await?;
    Ok(true)
}

fn exception_expiry(today: NaiveDate) -> NaiveDate {
    today + Duration::days(60)
}
