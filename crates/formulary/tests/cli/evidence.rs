//! Evidence on demand: before anyone installs a package, the component page, the request page
//! and `GET /api/v1/evidence` show what the upstream knows (versions and dates, licence, links,
//! maintainers, dependencies and the closure size), read by the gateway from the documents it
//! caches. An upstream that goes away leaves the cached evidence with its age; one that never
//! answered, or hangs, gives a clear state within the gateway's patience, never a 500.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::formulary_cli::{free_port, static_server, Workspace};
use crate::gateway_cran::{gateway as cran_gateway, repository_folder};
use crate::gateway_pypi::static_upstream;
use crate::surveillance::get;

/// `GET` the evidence on `purl`; insists on a 200 with JSON, and returns it with the time taken.
fn evidence(base: &str, purl: &str) -> (Value, Duration) {
    let started = Instant::now();
    let (status, body) = get(&format!("{base}/api/v1/evidence?purl={purl}"));
    let took = started.elapsed();
    assert_eq!(status, 200, "GET evidence of {purl}: {body}");
    let value = serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"));
    (value, took)
}

/// Asks again until `done` holds (the first visit may find the gateway still reading, and the
/// closure is counted in the background), for up to `seconds`.
fn evidence_until(base: &str, purl: &str, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (value, took) = evidence(base, purl);
        assert!(
            took < Duration::from_secs(4),
            "the evidence answer took {took:?}: a page must not wait longer than the gateway's patience"
        );
        if done(&value) {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "not reached after {seconds} s; last answer: {value:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn strings(value: &Value, field: &str) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[field].as_str().map(str::to_owned))
        .collect()
}

crate::on_both_databases!(fn cran_evidence_comes_before_any_install_and_outlives_its_upstream);
fn cran_evidence_comes_before_any_install_and_outlives_its_upstream() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    let (upstream, upstream_url) = static_server(&root);
    let (_server, base) = cran_gateway(&workspace, &format!("[\"{upstream_url}\"]"));

    let answer = evidence_until(&base, "pkg:cran/readxl", 30, |value| {
        value["state"] == "fresh" && value["closure"].is_object()
    });
    let facts = &answer["evidence"];
    assert_eq!(facts["newest"], "1.4.1", "{answer:#}");
    assert_eq!(facts["licence"], "MIT + file LICENSE", "{answer:#}");
    assert_eq!(
        strings(&facts["versions"], "version"),
        ["1.4.1", "1.4.0", "1.2.0"],
        "the current version and the archived ones, newest first: {answer:#}"
    );
    let archived = &facts["versions"][1];
    assert_eq!(archived["archived"], true, "{answer:#}");
    assert!(
        archived["published"]
            .as_str()
            .is_some_and(|date| date.starts_with("20")),
        "an archived version is dated from archive.rds: {answer:#}"
    );
    assert!(
        facts["maintainers"]
            .as_array()
            .is_some_and(|people| people.iter().any(|who| who
                .as_str()
                .is_some_and(|who| who.contains("tests@formulary.invalid")))),
        "the maintainer comes from the tarball's DESCRIPTION: {answer:#}"
    );
    assert_eq!(
        strings(&facts["dependencies"], "name"),
        ["cellar"],
        "{answer:#}"
    );
    assert_eq!(facts["dependencies"][0]["kind"], "Imports", "{answer:#}");
    assert_eq!(answer["closure"]["size"], 1, "{answer:#}");
    assert_eq!(answer["closure"]["components"][0], "cellar", "{answer:#}");

    // The component page shows it to anyone (the gateway is open in this configuration).
    let (status, page) = get(&format!("{base}/components/cran/readxl"));
    assert_eq!(status, 200);
    for expected in [
        "What the upstream says",
        "tests@formulary.invalid",
        "MIT + file LICENSE",
        "1 package in all",
    ] {
        assert!(page.contains(expected), "the page should say {expected:?}");
    }

    // A package the upstream does not have is named as such.
    let (missing, _) = evidence(&base, "pkg:cran/nosuchpackage");
    assert_eq!(missing["state"], "not-found", "{missing:#}");

    // The upstream goes away: the cached evidence stays, with its age, at once.
    drop(upstream);
    let (stale, took) = evidence(&base, "pkg:cran/readxl");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(stale["state"], "stale", "{stale:#}");
    assert!(stale["age_seconds"].as_i64().is_some(), "{stale:#}");
    assert_eq!(stale["evidence"]["newest"], "1.4.1", "{stale:#}");
    assert!(
        stale["message"]
            .as_str()
            .is_some_and(|message| message.contains("cannot be reached")),
        "{stale:#}"
    );
}

crate::on_both_databases!(fn an_upstream_down_or_hanging_gives_a_clear_state_within_the_patience);
fn an_upstream_down_or_hanging_gives_a_clear_state_within_the_patience() {
    // Nothing listens: nothing cached, so the evidence is unavailable, and says so.
    let workspace = Workspace::new();
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let (_server, base) = cran_gateway(&workspace, &format!("[\"{closed}\"]"));
    let (answer, took) = evidence(&base, "pkg:cran/readxl");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        answer["state"] == "unavailable" || answer["state"] == "pending",
        "{answer:#}"
    );
    let (answer, _) = evidence(&base, "pkg:cran/readxl");
    assert_eq!(answer["state"], "unavailable", "{answer:#}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|message| message.contains("cannot be reached")),
        "{answer:#}"
    );
    let (status, page) = get(&format!("{base}/components/cran/readxl"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("cannot be reached"), "{page}");

    // It accepts connections and never answers: the page does not wait for it.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hanging_url = format!(
        "http://127.0.0.1:{}/",
        hanging.local_addr().expect("address").port()
    );
    let workspace = Workspace::new();
    let (_server, base) = cran_gateway(&workspace, &format!("[\"{hanging_url}\"]"));
    let (answer, took) = evidence(&base, "pkg:cran/readxl");
    assert!(
        took < Duration::from_secs(3),
        "the answer waited {took:?} for an upstream that hangs"
    );
    assert_eq!(answer["state"], "pending", "{answer:#}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|message| message.contains("reload")),
        "{answer:#}"
    );
    drop(hanging);
}

crate::on_both_databases!(fn pypi_evidence_reads_the_newest_wheels_metadata);
fn pypi_evidence_reads_the_newest_wheels_metadata() {
    let workspace = Workspace::new();
    let (_upstream, upstream_url) = static_upstream(&workspace.folder.path().join("upstream"));
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
    ]);
    let answer = evidence_until(&base, "pkg:pypi/requests", 60, |value| {
        value["state"] == "fresh" && value["closure"]["complete"] == true
    });
    let facts = &answer["evidence"];
    assert_eq!(facts["newest"], "2.32.3", "{answer:#}");
    assert_eq!(
        strings(&facts["versions"], "version"),
        ["2.32.3", "2.31.0", "2.19.1"],
        "{answer:#}"
    );
    assert_eq!(facts["licence"], "Apache-2.0", "{answer:#}");
    assert!(
        strings(&facts["links"], "url").contains(&"https://github.com/psf/requests".to_owned()),
        "{answer:#}"
    );
    let needs = strings(&facts["dependencies"], "name");
    for name in [
        "charset-normalizer",
        "idna",
        "urllib3",
        "certifi",
        "pysocks",
    ] {
        assert!(needs.contains(&name.to_owned()), "{name} in {needs:?}");
    }
    // The closure is what an unpinned install of each pulls in (extras not asked are left out).
    let closure: Vec<String> = answer["closure"]["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    for name in ["certifi", "charset-normalizer", "idna", "urllib3"] {
        assert!(closure.contains(&name.to_owned()), "{name} in {closure:?}");
    }
    assert!(!closure.contains(&"pysocks".to_owned()), "{closure:?}");
    // Reading it recorded the versions, so the page's decision table has them too.
    let (status, page) = get(&format!("{base}/components/pypi/requests"));
    assert_eq!(status, 200);
    assert!(
        page.contains("Each version&#39;s decision") || page.contains("Each version's decision"),
        "{page}"
    );
}

/// The real PyPI, for a real project: what pypi.org publishes reaches the page.
#[test]
fn pypi_evidence_from_the_real_pypi() {
    crate::databases::choose(crate::databases::Backend::Sqlite);
    let workspace = Workspace::new();
    let (_server, base) = workspace.serve(&[
        (
            "FORMULARY_PYPI_UPSTREAMS",
            "[\"https://pypi.org/simple/\"]".to_owned(),
        ),
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "20".to_owned()),
    ]);
    let answer = evidence_until(&base, "pkg:pypi/requests", 120, |value| {
        value["state"] == "fresh" && value["closure"].is_object()
    });
    let facts = &answer["evidence"];
    let versions = &facts["versions"];
    let known = versions
        .as_array()
        .into_iter()
        .flatten()
        .find(|version| version["version"] == "2.31.0")
        .unwrap_or_else(|| panic!("2.31.0 is listed: {answer:#}"));
    assert!(
        known["published"]
            .as_str()
            .is_some_and(|date| date.starts_with("2023-05-22")),
        "PyPI's upload time is kept: {known}"
    );
    assert!(
        versions
            .as_array()
            .is_some_and(|all| all.iter().any(|version| version["yanked"].is_string())),
        "requests has yanked releases (2.32.0, 2.32.1): {answer:#}"
    );
    assert!(
        facts["licence"]
            .as_str()
            .is_some_and(|licence| licence.contains("Apache")),
        "{answer:#}"
    );
    assert!(
        strings(&facts["links"], "url")
            .iter()
            .any(|url| url.starts_with("https://github.com/psf/requests")),
        "{answer:#}"
    );
    let needs = strings(&facts["dependencies"], "name");
    for name in ["charset-normalizer", "idna", "urllib3", "certifi"] {
        assert!(needs.contains(&name.to_owned()), "{name} in {needs:?}");
    }
    assert!(
        answer["closure"]["size"]
            .as_u64()
            .is_some_and(|size| size >= 4),
        "{answer:#}"
    );
}
