use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::page::{
    checked_digest, DistributionFile, IndexError, ProjectPage, ProjectStatus, MAX_PAGE_BYTES,
};
use super::API_VERSION;

#[derive(Deserialize)]
struct JsonPage {
    name: String,
    #[serde(default)]
    files: Vec<JsonFile>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    meta: Map<String, Value>,
    #[serde(rename = "project-status", default)]
    project_status: Option<JsonStatus>,
}

#[derive(Deserialize)]
struct JsonStatus {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(rename = "core-metadata", default)]
    core_metadata: Option<Value>,
    #[serde(rename = "dist-info-metadata", default)]
    dist_info_metadata: Option<Value>,
    #[serde(default)]
    yanked: Option<Value>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "upload-time", default)]
    upload_time: Option<String>,
    #[serde(default)]
    provenance: Option<String>,
}

fn digests(map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .filter_map(|(algorithm, value)| checked_digest(algorithm, value))
        .collect()
}

/// `true` / `{hashes}` mean "available"; `false` / absent mean "not available".
fn metadata(value: Option<&Value>) -> Option<BTreeMap<String, String>> {
    match value? {
        Value::Bool(true) => Some(BTreeMap::new()),
        Value::Object(map) => Some(
            map.iter()
                .filter_map(|(algorithm, value)| {
                    value
                        .as_str()
                        .and_then(|value| checked_digest(algorithm, value))
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Parses a PEP 691 project page. Relative file URLs are resolved against `page_url`.
pub fn parse_json(bytes: &[u8], page_url: &url::Url) -> Result<ProjectPage, IndexError> {
    if bytes.len() > MAX_PAGE_BYTES {
        return Err(IndexError::TooLarge);
    }
    let page: JsonPage = serde_json::from_slice(bytes)
        .map_err(|error| IndexError::Malformed(format!("not PEP 691 JSON: {error}")))?;
    let mut files = Vec::with_capacity(page.files.len());
    for file in page.files {
        let url = page_url.join(&file.url).map_err(|error| {
            IndexError::Malformed(format!("file URL '{}': {error}", file.url.escape_debug()))
        })?;
        files.push(DistributionFile {
            filename: file.filename,
            url: url.to_string(),
            hashes: digests(&file.hashes),
            requires_python: file.requires_python.filter(|text| !text.trim().is_empty()),
            core_metadata: metadata(
                file.core_metadata
                    .as_ref()
                    .or(file.dist_info_metadata.as_ref()),
            ),
            yanked: match file.yanked {
                Some(Value::Bool(true)) => Some(String::new()),
                Some(Value::String(reason)) => Some(reason),
                _ => None,
            },
            size: file.size,
            upload_time: file.upload_time,
            provenance: file.provenance,
        });
    }
    let mut meta = page.meta;
    meta.remove("api-version");
    Ok(ProjectPage {
        name: page.name,
        files,
        versions: page.versions,
        status: page.project_status.map(|status| ProjectStatus {
            status: status.status,
            reason: status.reason,
        }),
        meta: meta.into_iter().collect(),
    })
}

/// Renders a project page as PEP 691 JSON (API version 1.1, with the PEP 700 fields).
pub fn render_json(page: &ProjectPage) -> Vec<u8> {
    let files: Vec<Value> = page
        .files
        .iter()
        .map(|file| {
            let mut object = Map::new();
            object.insert("filename".into(), json!(file.filename));
            object.insert("url".into(), json!(file.url));
            object.insert("hashes".into(), json!(file.hashes));
            if let Some(requires_python) = &file.requires_python {
                object.insert("requires-python".into(), json!(requires_python));
            }
            let core_metadata = file.core_metadata.as_ref().map_or(json!(false), |hashes| {
                if hashes.is_empty() {
                    json!(true)
                } else {
                    json!(hashes)
                }
            });
            // PEP 714: only the new key in JSON. pip 22.3 to 23.1 (Debian 12's pip is 23.0.1)
            // fail with an exception on any `dist-info-metadata` key, as PyPI found.
            object.insert("core-metadata".into(), core_metadata);
            object.insert(
                "yanked".into(),
                match &file.yanked {
                    None => json!(false),
                    Some(reason) if reason.is_empty() => json!(true),
                    Some(reason) => json!(reason),
                },
            );
            if let Some(size) = file.size {
                object.insert("size".into(), json!(size));
            }
            if let Some(upload_time) = &file.upload_time {
                object.insert("upload-time".into(), json!(upload_time));
            }
            if let Some(provenance) = &file.provenance {
                object.insert("provenance".into(), json!(provenance));
            }
            Value::Object(object)
        })
        .collect();
    let mut meta: Map<String, Value> = page
        .meta
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    meta.insert("api-version".into(), json!(API_VERSION));
    let mut document = json!({
        "meta": meta,
        "name": page.name,
        "files": files,
        "versions": page.versions,
    });
    if let (Some(status), Value::Object(object)) = (&page.status, &mut document) {
        let mut value = json!({ "status": status.status });
        if let (Some(reason), Value::Object(fields)) = (&status.reason, &mut value) {
            fields.insert("reason".into(), json!(reason));
        }
        object.insert("project-status".into(), value);
    }
    serde_json::to_vec(&document).unwrap_or_default()
}

/// Renders the root index (`/simple/`) as PEP 691 JSON.
pub fn render_root_json(projects: &[String]) -> Vec<u8> {
    let projects: Vec<Value> = projects
        .iter()
        .map(|name| json!({ "name": name }))
        .collect();
    serde_json::to_vec(&json!({ "meta": { "api-version": API_VERSION }, "projects": projects }))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pypi_style_json_and_round_trips() {
        let base = url::Url::parse("https://index.example/simple/demo/").unwrap();
        let body = br#"{"meta":{"api-version":"1.1"},"name":"demo","versions":["1.0","2.0"],"files":[
            {"filename":"demo-1.0.tar.gz","url":"../../files/demo-1.0.tar.gz","hashes":{"sha256":"AB%s"},"yanked":"broken","requires-python":">=3.8"},
            {"filename":"demo-2.0-py3-none-any.whl","url":"https://files.example/demo-2.0-py3-none-any.whl","hashes":{"sha256":"0000000000000000000000000000000000000000000000000000000000000000"},"core-metadata":{"sha256":"1111111111111111111111111111111111111111111111111111111111111111"},"size":1234,"upload-time":"2024-05-01T00:00:00Z"}]}"#;
        let page = parse_json(body, &base).unwrap();
        assert_eq!(
            page.files[0].url,
            "https://index.example/files/demo-1.0.tar.gz"
        );
        assert!(
            page.files[0].hashes.is_empty(),
            "a malformed digest is dropped, not trusted"
        );
        assert_eq!(page.files[0].yanked.as_deref(), Some("broken"));
        assert_eq!(page.files[1].size, Some(1234));
        assert!(page.files[1]
            .core_metadata
            .as_ref()
            .is_some_and(|hashes| hashes.contains_key("sha256")));
        let again = parse_json(&render_json(&page), &base).unwrap();
        assert_eq!(again, page);
    }

    #[test]
    fn what_pypi_says_is_passed_on_unchanged() {
        let base = url::Url::parse("https://pypi.org/simple/demo/").unwrap();
        let body = br#"{"meta":{"api-version":"1.4","_last-serial":29000001},"name":"demo","versions":["1.0"],
            "project-status":{"status":"archived","reason":"moved to demo2"},
            "files":[{"filename":"demo-1.0-py3-none-any.whl","url":"https://files.pythonhosted.org/demo-1.0-py3-none-any.whl",
            "hashes":{"sha256":"0000000000000000000000000000000000000000000000000000000000000000"},
            "yanked":"broken build","size":10,"upload-time":"2024-05-01T12:34:56.789012Z",
            "provenance":"https://pypi.org/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance"}]}"#;
        let page = parse_json(body, &base).unwrap();
        let rendered: Value = serde_json::from_slice(&render_json(&page)).unwrap();
        assert_eq!(rendered["meta"]["_last-serial"], json!(29000001));
        assert_eq!(rendered["meta"]["api-version"], json!(API_VERSION));
        assert_eq!(
            rendered["project-status"],
            json!({"status":"archived","reason":"moved to demo2"})
        );
        let file = &rendered["files"][0];
        assert_eq!(file["upload-time"], json!("2024-05-01T12:34:56.789012Z"));
        assert_eq!(file["yanked"], json!("broken build"));
        assert_eq!(
            file["provenance"],
            json!("https://pypi.org/integrity/demo/1.0/demo-1.0-py3-none-any.whl/provenance")
        );
        let html = String::from_utf8(super::super::render_html(&page)).unwrap();
        let again = super::super::parse_html(&html, &base, "demo").unwrap();
        assert_eq!(again.status, page.status);
        assert_eq!(again.files[0].upload_time, page.files[0].upload_time);
        assert_eq!(again.files[0].provenance, page.files[0].provenance);
    }

    #[test]
    fn metadata_is_offered_under_the_pep_714_key_only() {
        let base = url::Url::parse("https://index.example/simple/demo/").unwrap();
        for (given, offered) in [
            (r#""dist-info-metadata":true"#, json!(true)),
            (
                r#""core-metadata":{"sha256":"1111111111111111111111111111111111111111111111111111111111111111"}"#,
                json!({"sha256":"1111111111111111111111111111111111111111111111111111111111111111"}),
            ),
        ] {
            let body = format!(
                r#"{{"meta":{{"api-version":"1.1"}},"name":"demo","files":[{{"filename":"demo-1.0-py3-none-any.whl","url":"demo-1.0-py3-none-any.whl","hashes":{{}},{given}}}]}}"#
            );
            let page = parse_json(body.as_bytes(), &base).unwrap();
            let rendered: Value = serde_json::from_slice(&render_json(&page)).unwrap();
            let file = rendered["files"][0].as_object().unwrap();
            assert_eq!(file["core-metadata"], offered, "{given}");
            // pip 22.3 to 23.1 fail on the old key in JSON, whatever its value.
            assert!(!file.contains_key("dist-info-metadata"), "{given}");
        }
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        let base = url::Url::parse("https://index.example/simple/demo/").unwrap();
        for body in [
            &b"{"[..],
            b"[]",
            br#"{"name": 3}"#,
            br#"{"name":"x","files":[{"filename":"a"}]}"#,
        ] {
            assert!(parse_json(body, &base).is_err());
        }
    }
}
