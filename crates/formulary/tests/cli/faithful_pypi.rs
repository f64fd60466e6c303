//! The gateway passes on what the real PyPI says: for real projects, its PEP 691 JSON matches
//! pypi.org's for every field PyPI serves (files, hashes, upload times to the microsecond, sizes,
//! yanks and their reasons, core metadata, provenance, requires-python, project status, meta),
//! with the file URLs pointing at the gateway. Nothing is denied in this view (no advisories, no
//! cooldown), so any other difference is the gateway changing what upstream said.

use serde_json::{Map, Value};

use crate::formulary_cli::Workspace;

/// Real projects with the features the comparison must cover: yanks with publishers' reasons
/// (requests 2.32.0 and 2.32.1), PEP 740 provenance (urllib3's trusted-publishing uploads,
/// sampleproject), thousands of files with microsecond upload times (numpy).
const PROJECTS: [&str; 4] = ["requests", "urllib3", "sampleproject", "numpy"];

const PEP_691: &str = "application/vnd.pypi.simple.v1+json";

fn fetch_json(client: &reqwest::Client, url: &str) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer = client
            .get(url)
            .header(reqwest::header::ACCEPT, PEP_691)
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        assert!(
            answer.status().is_success(),
            "GET {url}: {}",
            answer.status()
        );
        answer
            .json()
            .await
            .unwrap_or_else(|error| panic!("GET {url}: not JSON: {error}"))
    })
}

/// Every difference between PyPI's project page and the gateway's, as readable lines (at most
/// the first 20 per project).
fn differences(project: &str, pypi: &Value, gateway: &Value, base: &str) -> Vec<String> {
    let mut found = Vec::new();
    let empty = Map::new();
    let pypi_top = pypi.as_object().unwrap_or(&empty);
    let gateway_top = gateway.as_object().unwrap_or(&empty);
    for (key, value) in pypi_top {
        if key == "files" || key == "meta" {
            continue;
        }
        if gateway_top.get(key) != Some(value) {
            found.push(format!(
                "{project}: top-level {key:?}: PyPI {value} | gateway {}",
                gateway_top.get(key).unwrap_or(&Value::Null)
            ));
        }
    }
    // `meta` is passed on except `api-version`, which states what the gateway's own answer
    // may hold (1.4: it adds PEP 792 `project-status` where policy quarantines a project).
    for (key, value) in pypi["meta"].as_object().unwrap_or(&empty) {
        if key != "api-version" && gateway["meta"].get(key) != Some(value) {
            found.push(format!(
                "{project}: meta {key:?}: PyPI {value} | gateway {}",
                gateway["meta"].get(key).unwrap_or(&Value::Null)
            ));
        }
    }
    let files = |page: &Value| -> Vec<Map<String, Value>> {
        page["files"]
            .as_array()
            .map(|files| {
                files
                    .iter()
                    .filter_map(|file| file.as_object().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let gateway_files: std::collections::HashMap<String, Map<String, Value>> = files(gateway)
        .into_iter()
        .map(|file| (file["filename"].as_str().unwrap_or("").to_owned(), file))
        .collect();
    let pypi_files = files(pypi);
    if pypi_files.len() != gateway_files.len() {
        found.push(format!(
            "{project}: PyPI lists {} files, the gateway {}",
            pypi_files.len(),
            gateway_files.len()
        ));
    }
    for file in &pypi_files {
        let filename = file["filename"].as_str().unwrap_or("");
        let Some(ours) = gateway_files.get(filename) else {
            found.push(format!("{project}: {filename} is missing from the gateway"));
            continue;
        };
        for (key, value) in file {
            // A key PyPI sends as `null` and one left out mean the same to every client.
            if value.is_null() && ours.get(key).is_none_or(Value::is_null) {
                continue;
            }
            if key == "url" {
                let url = ours.get("url").and_then(Value::as_str).unwrap_or("");
                let absolute = if url.starts_with("http") {
                    url.to_owned()
                } else {
                    format!("{base}{url}")
                };
                if !absolute.starts_with(base) || !absolute.ends_with(filename) {
                    found.push(format!(
                        "{project}: {filename}: url {url:?} does not point at the gateway"
                    ));
                }
                continue;
            }
            if ours.get(key) != Some(value) {
                found.push(format!(
                    "{project}: {filename}: {key:?}: PyPI {value} | gateway {}",
                    ours.get(key).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    found.truncate(40);
    found
}

#[test]
fn the_gateway_s_pep_691_json_matches_the_real_pypi_field_for_field() {
    let workspace = Workspace::new();
    workspace.ok(&[
        "org",
        "settings",
        "NATIONAL",
        "--ecosystem",
        "pypi",
        "--cooldown-days",
        "0",
    ]);
    let (_server, base) = workspace.serve(&[
        (
            "FORMULARY_PYPI_UPSTREAMS",
            "[\"https://pypi.org/simple/\"]".to_owned(),
        ),
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "60".to_owned()),
        // Every file PyPI lists, the legacy eggs and installers too (off by default).
        ("FORMULARY_PYPI_LEGACY_FILES", "true".to_owned()),
    ]);
    let client = reqwest::Client::new();
    let mut report = Vec::new();
    let mut compared_files = 0;
    for project in PROJECTS {
        // PyPI can change between the two requests (a new upload): compare again when the
        // serial moved.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pypi = fetch_json(&client, &format!("https://pypi.org/simple/{project}/"));
            let gateway = fetch_json(&client, &format!("{base}/pypi/simple/{project}/"));
            let found = differences(project, &pypi, &gateway, &base);
            let moved = pypi["meta"]["_last-serial"] != gateway["meta"]["_last-serial"];
            if found.is_empty() || !moved || attempt == 3 {
                compared_files += pypi["files"].as_array().map_or(0, Vec::len);
                report.extend(found);
                break;
            }
        }
    }
    assert!(
        compared_files > 1_000,
        "the comparison covered {compared_files} files"
    );
    assert!(
        report.is_empty(),
        "the gateway changed what PyPI said:\n{}",
        report.join("\n")
    );
}

#[test]
fn legacy_eggs_and_installers_are_left_out_unless_configured() {
    let workspace = Workspace::new();
    let (_server, base) = workspace.serve(&[
        (
            "FORMULARY_PYPI_UPSTREAMS",
            "[\"https://pypi.org/simple/\"]".to_owned(),
        ),
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "60".to_owned()),
    ]);
    let client = reqwest::Client::new();
    let pypi = fetch_json(&client, "https://pypi.org/simple/requests/");
    let egg = pypi["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|file| file["filename"].as_str())
        .find(|filename| filename.ends_with(".egg"))
        .expect("PyPI lists requests-2.23.0-py2.7.egg")
        .to_owned();
    let gateway = fetch_json(&client, &format!("{base}/pypi/simple/requests/"));
    let listed: Vec<&str> = gateway["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|file| file["filename"].as_str())
        .collect();
    assert!(
        listed.len() > 200,
        "the other files are listed: {}",
        listed.len()
    );
    assert!(!listed.contains(&egg.as_str()), "{egg} is left out");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = runtime.block_on(async {
        client
            .get(format!("{base}/pypi/files/requests/{egg}"))
            .send()
            .await
            .expect("answers")
            .status()
    });
    assert_eq!(status.as_u16(), 404, "{egg} is not served");
}
