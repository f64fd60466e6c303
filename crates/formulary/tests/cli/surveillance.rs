//! Surveillance end to end: `formulary serve` keeps its advisories current from an OSV export
//! served on loopback (a folder over HTTP, as OSV's bucket is laid out), with no command run.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::formulary_cli::{repo_root, static_server, text, Workspace};
use crate::gateway_pypi::static_upstream;

/// A record from the PyPA database as OSV publishes it (JSON), with `modified` set.
pub(crate) fn osv_record(relative: &str, modified: &str) -> Value {
    let yaml = std::fs::read(
        repo_root()
            .join("test-data/osv/pypa-advisory-database/vulns")
            .join(relative),
    )
    .expect("record");
    let mut record: Value = serde_yaml::from_slice(&yaml).expect("yaml");
    record["modified"] = Value::String(modified.to_owned());
    record
}

/// Writes an OSV export folder: `all.zip`, `modified_id.csv` and one `<id>.json` per record.
pub(crate) fn write_export(folder: &Path, records: &[Value]) {
    std::fs::create_dir_all(folder).expect("export folder");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(folder.join("all.zip")).expect("zip"));
    let mut listing: Vec<(String, String)> = Vec::new();
    for record in records {
        let id = record["id"].as_str().expect("id").to_owned();
        let json = serde_json::to_vec(record).expect("json");
        zip.start_file(
            format!("{id}.json"),
            zip::write::SimpleFileOptions::default(),
        )
        .expect("start");
        zip.write_all(&json).expect("write");
        std::fs::write(folder.join(format!("{id}.json")), &json).expect("record");
        listing.push((
            record["modified"].as_str().expect("modified").to_owned(),
            id,
        ));
    }
    zip.finish().expect("finish");
    listing.sort();
    listing.reverse();
    let csv: String = listing
        .iter()
        .map(|(modified, id)| format!("{modified},{id}\n"))
        .collect();
    std::fs::write(folder.join("modified_id.csv"), csv).expect("listing");
}

pub(crate) fn get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer = reqwest::get(url).await.expect("GET answers");
        let status = answer.status().as_u16();
        (status, answer.text().await.expect("a body"))
    })
}

pub(crate) fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {url}: {error}: {body}"))
}

/// `pip download --no-deps` of one requirement through an index.
pub(crate) fn pip_download(folder: &Path, index: &str, requirement: &str) -> Output {
    Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-input",
            "--index-url",
            index,
            "-d",
        ])
        .arg(folder)
        .arg(requirement)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .output()
        .expect("pip runs")
}

/// Polls until `check` holds, or panics with `what` after `limit`.
pub(crate) fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    started.elapsed()
}

/// What a webhook receiver got: (signature header, body).
pub(crate) type Received = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, String)>>>;

/// An HTTP server on loopback that keeps every POST it receives.
pub(crate) fn webhook_receiver() -> (String, Received) {
    let received: Received = Default::default();
    let kept = received.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                    let kept = kept.clone();
                    async move {
                        let signature = headers
                            .get("x-formulary-signature")
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_owned);
                        kept.lock().expect("lock").push((signature, body));
                        "ok"
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serves");
        });
    });
    (format!("http://{address}/hook"), received)
}

pub(crate) fn request_json(
    method: reqwest::Method,
    url: &str,
    secret: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(secret);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("answers");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    })
}

crate::on_both_databases!(fn a_newly_published_advisory_blocks_within_the_sync_interval_with_no_command_run);
fn a_newly_published_advisory_blocks_within_the_sync_interval_with_no_command_run() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    let (_upstream, upstream_url) = static_upstream(&root.join("upstream"));
    let export = root.join("osv/PyPI");
    // The export starts with an advisory about another package only.
    write_export(
        &export,
        &[osv_record(
            "aiohttp/PYSEC-2021-76.yaml",
            "2024-01-01T00:00:00Z",
        )],
    );
    let (_osv, osv_url) = static_server(&root.join("osv"));
    let (hook, received) = webhook_receiver();
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        (
            "FORMULARY_ADVISORY_SOURCES",
            format!("[\"{osv_url}PyPI/all.zip\"]"),
        ),
        ("FORMULARY_ADVISORY_SYNC_INTERVAL_SECONDS", "2".to_owned()),
        ("FORMULARY_RECALL_WEBHOOKS", format!("[\"{hook}\"]")),
        (
            "FORMULARY_RECALL_WEBHOOK_SECRET",
            "s3cret-for-the-itsm".to_owned(),
        ),
    ]);
    let analyst = token(&workspace, "analyst laptop", "requester", "NATIONAL");
    let auditor = token(&workspace, "auditor", "auditor", "NATIONAL");
    let feeds_url = format!("{base}/api/v1/advisories/feeds");
    wait_until(Duration::from_secs(30), "the first (full) sync", || {
        get_json(&feeds_url)["sources"][0]["last_mode"] == "full"
    });
    let feeds = get_json(&feeds_url);
    assert_eq!(feeds["sources"][0]["last_changed"], 1, "{feeds}");
    assert_eq!(feeds["interval_seconds"], 2, "{feeds}");
    assert_eq!(feeds["stale"], false, "{feeds}");
    let ready = get_json(&format!("{base}/readyz"));
    assert_eq!(ready["advisory_feed"]["status"], "ok", "{ready}");

    let index = format!("{base}/pypi/simple/");
    let downloads = root.join("downloads");
    let before = pip_download(&downloads, &index, "requests==2.19.1");
    assert!(
        before.status.success(),
        "no advisory about requests yet: {}",
        text(&before.stderr)
    );
    // An analyst's environment, reported from its lockfile.
    let lock = root.join("requirements.txt");
    std::fs::write(&lock, "requests==2.19.1\nidna==2.7\n").unwrap();
    let output = as_client(
        &workspace,
        &base,
        &analyst,
        &[
            "report",
            &lock.display().to_string(),
            "--org",
            "NATIONAL",
            "--environment",
            "analysis-laptop",
            "--kind",
            "machine",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    // PyPA publishes PYSEC-2018-28 (requests < 2.20.0): the record, and the listing.
    let published = Instant::now();
    write_export(
        &export,
        &[
            osv_record("aiohttp/PYSEC-2021-76.yaml", "2024-01-01T00:00:00Z"),
            osv_record("requests/PYSEC-2018-28.yaml", "2026-12-01T00:00:00Z"),
        ],
    );
    let mut refusal = String::new();
    // Each attempt downloads into a new folder: pip does not ask the gateway again for a file
    // already in its download folder ("File was already downloaded"), which once made this test
    // look as if the gateway went on serving the file after the advisory arrived.
    let mut attempt = 0;
    wait_until(
        Duration::from_secs(20),
        "the gateway to refuse requests 2.19.1",
        || {
            attempt += 1;
            let output = pip_download(
                &root.join(format!("after-{attempt}")),
                &index,
                "requests==2.19.1",
            );
            refusal = text(&output.stderr);
            !output.status.success()
        },
    );
    let took = published.elapsed();
    assert!(
        refusal.contains("403") && refusal.contains("PYSEC-2018-28"),
        "pip shows why: {refusal}"
    );
    eprintln!("advisory published → version refused by the gateway: {took:?} (sync interval 2 s)");
    let feeds = get_json(&feeds_url);
    assert_eq!(feeds["sources"][0]["last_mode"], "incremental", "{feeds}");
    assert_eq!(feeds["sources"][0]["total_changed"], 2, "{feeds}");
    assert_eq!(
        feeds["sources"][0]["cursor"], "2026-12-01T00:00:00Z",
        "{feeds}"
    );
    // The fixed version is still served.
    let fixed = pip_download(&root.join("fixed"), &index, "requests==2.31.0");
    assert!(fixed.status.success(), "{}", text(&fixed.stderr));

    // A recall lists who had 2.19.1: the (anonymous) download and the reported laptop.
    let mut recalls = Value::Null;
    wait_until(
        Duration::from_secs(20),
        "a recall of requests 2.19.1",
        || {
            recalls = request_json(
                reqwest::Method::GET,
                &format!("{base}/api/v1/recalls"),
                &auditor,
                None,
            )
            .1;
            recalls[0]["exposed"] == 2
        },
    );
    let recall = &recalls[0];
    assert_eq!(recall["component"], "pkg:pypi/requests", "{recalls}");
    assert_eq!(recall["advisory_id"], "PYSEC-2018-28", "{recalls}");
    assert_eq!(
        recall["versions"],
        serde_json::json!(["2.19.1"]),
        "{recalls}"
    );
    let move_to = recall["move_to"]
        .as_str()
        .expect("a version to move to")
        .to_owned();
    assert!(
        move_to.starts_with("2.3"),
        "the newest allowed version: {recalls}"
    );
    let id = recall["id"].as_str().unwrap().to_owned();
    // The analyst is told in-app what to move to.
    let (status, mine) = request_json(
        reqwest::Method::GET,
        &format!("{base}/api/v1/me/recalls"),
        &analyst,
        None,
    );
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine[0]["recall"]["move_to"], move_to.as_str(), "{mine}");
    assert_eq!(mine[0]["mine"]["environment"], "analysis-laptop", "{mine}");
    // The IT service-management tool got the recall, signed.
    let hooks = received.lock().unwrap().clone();
    let (signature, body) = hooks.first().expect("a webhook call");
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-for-the-itsm").unwrap();
    mac.update(body.as_bytes());
    assert_eq!(
        signature.as_deref(),
        Some(format!(
            "sha256={}",
            hex::encode(mac.finalize().into_bytes())
        ))
        .as_deref()
    );
    let announced: Value = serde_json::from_str(body).unwrap();
    assert_eq!(announced["recall"]["id"], id.as_str(), "{announced}");
    // The recall page shows the progress (to a signed-in auditor only).
    let (status, _) = get(&format!("{base}/recalls/{id}"));
    assert_ne!(status, 200, "the recall page names people: sign-in needed");

    // The analyst moves and reports again: they drop off.
    std::fs::write(&lock, format!("requests=={move_to}\nidna==2.7\n")).unwrap();
    let output = as_client(
        &workspace,
        &base,
        &analyst,
        &[
            "report",
            &lock.display().to_string(),
            "--org",
            "NATIONAL",
            "--environment",
            "analysis-laptop",
            "--kind",
            "machine",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (_, mine) = request_json(
        reqwest::Method::GET,
        &format!("{base}/api/v1/me/recalls"),
        &analyst,
        None,
    );
    assert_eq!(mine, serde_json::json!([]), "nothing left to move off");
    let (_, detail) = request_json(
        reqwest::Method::GET,
        &format!("{base}/api/v1/recalls/{id}"),
        &auditor,
        None,
    );
    assert_eq!(
        detail["recall"]["exposed"], 1,
        "only the anonymous download is left: {detail}"
    );
    assert_eq!(detail["recall"]["resolved"], 1, "{detail}");
    // The CSV export of the people.
    let (status, csv) = get(&format!("{base}/api/v1/recalls/{id}?format=csv"));
    assert_eq!(status, 401, "the export needs a token: {csv}");

    // Patch latency: published upstream → blocked → recall opened, and the exposure left.
    let (status, metrics) = request_json(
        reqwest::Method::GET,
        &format!("{base}/api/v1/metrics/surveillance"),
        &auditor,
        None,
    );
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(metrics["recalls"], 1, "{metrics}");
    assert_eq!(
        metrics["timelines"][0]["advisory_id"], "PYSEC-2018-28",
        "{metrics}"
    );
    assert!(
        metrics["timelines"][0]["published"].is_string()
            && metrics["timelines"][0]["blocked"].is_string(),
        "{metrics}"
    );
    assert_eq!(metrics["exposure"][0]["under_7_days"], 1, "{metrics}");
}

crate::on_both_databases!(fn a_failing_source_is_reported_and_the_stored_advisories_stay_in_force);
fn a_failing_source_is_reported_and_the_stored_advisories_stay_in_force() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/pypa-advisory-database/vulns/requests")
            .display()
            .to_string(),
    ]);
    // A source on a port nothing listens on.
    let port = crate::formulary_cli::free_port();
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", "[]".to_owned()),
        (
            "FORMULARY_ADVISORY_SOURCES",
            format!("[\"http://127.0.0.1:{port}/PyPI/all.zip\"]"),
        ),
        ("FORMULARY_ADVISORY_SYNC_INTERVAL_SECONDS", "1".to_owned()),
    ]);
    wait_until(
        Duration::from_secs(20),
        "the failure to be reported",
        || get_json(&format!("{base}/readyz"))["advisory_feed"]["status"] == "degraded",
    );
    let ready = get_json(&format!("{base}/readyz"));
    let detail = ready["advisory_feed"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        detail.contains("failing") && detail.contains("never synced"),
        "{ready}"
    );
    assert_eq!(ready["status"], "degraded", "serving goes on: {ready}");
    let feeds = get_json(&format!("{base}/api/v1/advisories/feeds"));
    assert!(
        feeds["sources"][0]["last_error"].as_str().is_some(),
        "{feeds}"
    );
    // The advisories imported before still decide.
    let check = get_json(&format!(
        "{base}/api/v1/policy/check?purl=pkg:pypi/requests@2.19.1"
    ));
    assert_eq!(check["allowed"], false, "{check}");
    let _ = root;
}

/// Issues a service token with `formulary token create`; returns its secret.
pub(crate) fn token(workspace: &Workspace, name: &str, role: &str, organisation: &str) -> String {
    workspace
        .ok(&[
            "token",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--org",
            organisation,
        ])
        .trim()
        .to_owned()
}

/// Runs a client command against `base` with a token.
pub(crate) fn as_client(workspace: &Workspace, base: &str, secret: &str, args: &[&str]) -> Output {
    workspace
        .command(args)
        .env("FORMULARY_SERVER", base)
        .env("FORMULARY_TOKEN", secret)
        .env(
            "FORMULARY_CREDENTIALS",
            workspace.folder.path().join("no-credentials.json"),
        )
        .output()
        .expect("formulary runs")
}

crate::on_both_databases!(fn who_has_answers_from_the_ledger_and_from_reported_sboms_and_lockfiles);
fn who_has_answers_from_the_ledger_and_from_reported_sboms_and_lockfiles() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.ok(&["org", "add", "RJ2", "--name", "Another trust"]);
    let (_upstream, upstream_url) = static_upstream(&root.join("upstream"));
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_ADVISORY_SYNC_INTERVAL_SECONDS", "0".to_owned()),
    ]);
    let analyst = token(&workspace, "ci of RJ1", "requester", "RJ1");
    let other = token(&workspace, "ci of RJ2", "requester", "RJ2");
    let auditor = token(&workspace, "auditor", "auditor", "NATIONAL");
    let admin = token(&workspace, "RJ2 admin", "organisation-admin", "RJ2");

    // A download through the gateway (anonymous: this gateway does not ask who).
    let downloaded = pip_download(
        &root.join("downloads"),
        &format!("{base}/o/RJ1/pypi/simple/"),
        "requests==2.19.1",
    );
    assert!(downloaded.status.success(), "{}", text(&downloaded.stderr));

    // A CycloneDX 1.6 SBOM from CI, a pip freeze, and an renv.lock.
    let sbom = root.join("bom.json");
    std::fs::write(
        &sbom,
        serde_json::json!({
            "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
            "metadata": {"component": {"type": "application", "name": "dashboard"}},
            "components": [
                {"type": "library", "name": "requests", "version": "2.19.1", "purl": "pkg:pypi/requests@2.19.1"},
                {"type": "library", "name": "idna", "version": "2.7", "purl": "pkg:pypi/idna@2.7"},
                {"type": "library", "name": "commons-text", "version": "1.9", "purl": "pkg:maven/org.apache.commons/commons-text@1.9"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let output = as_client(
        &workspace,
        &base,
        &analyst,
        &[
            "report",
            &sbom.display().to_string(),
            "--org",
            "RJ1",
            "--environment",
            "dashboard-ci",
            "--kind",
            "pipeline",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(
        said.contains("Reported 2 component versions of dashboard-ci")
            && said.contains("a new environment")
            && said.contains("commons-text"),
        "{said}"
    );

    let freeze = root.join("requirements.txt");
    std::fs::write(&freeze, "requests==2.19.1\nsix==1.16.0\n").unwrap();
    let output = as_client(
        &workspace,
        &base,
        &other,
        &[
            "report",
            &freeze.display().to_string(),
            "--org",
            "RJ2",
            "--environment",
            "laptop-17",
            "--kind",
            "machine",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let renv = root.join("renv.lock");
    std::fs::write(&renv, r#"{"R": {"Version": "4.4.2"}, "Packages": {"readxl": {"Package": "readxl", "Version": "1.4.3", "Source": "Repository", "Repository": "CRAN"}}}"#).unwrap();
    let output = as_client(
        &workspace,
        &base,
        &other,
        &[
            "report",
            &renv.display().to_string(),
            "--org",
            "RJ2",
            "--environment",
            "analysis",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    // Reporting for an organisation one holds no role in is refused.
    let output = as_client(
        &workspace,
        &base,
        &other,
        &[
            "report",
            &freeze.display().to_string(),
            "--org",
            "RJ1",
            "--environment",
            "x",
        ],
    );
    assert!(
        !output.status.success() && text(&output.stderr).contains("no role in RJ1"),
        "{}",
        text(&output.stderr)
    );

    // The auditor sees everyone: two reports and, once the ledger is written, the download.
    let mut answer = String::new();
    wait_until(
        Duration::from_secs(15),
        "the download to reach the ledger",
        || {
            let output = as_client(
                &workspace,
                &base,
                &auditor,
                &["who-has", "pkg:pypi/requests@2.19.1"],
            );
            answer = text(&output.stdout);
            output.status.success() && answer.contains("downloaded")
        },
    );
    assert!(answer.contains("3 people in 2 organisations"), "{answer}");
    assert!(
        answer.contains("reported: dashboard-ci")
            && answer.contains("reported: laptop-17")
            && answer.contains("anonymous client 127.0.0.1"),
        "{answer}"
    );
    let output = as_client(
        &workspace,
        &base,
        &auditor,
        &["who-has", "pkg:cran/readxl@1.4.3"],
    );
    assert!(
        text(&output.stdout).contains("reported: analysis"),
        "the renv.lock counts: {}",
        text(&output.stdout)
    );
    // Any version of a component.
    let output = as_client(
        &workspace,
        &base,
        &auditor,
        &["who-has", "pkg:pypi/idna", "--json"],
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["holders"][0]["version"], "2.7", "{json}");
    // Nobody has it: exit 1.
    let output = as_client(
        &workspace,
        &base,
        &auditor,
        &["who-has", "pkg:pypi/requests@2.0.0"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));

    // An organisation admin sees only their organisation; a requester sees nothing.
    let output = as_client(
        &workspace,
        &base,
        &admin,
        &["who-has", "pkg:pypi/requests@2.19.1"],
    );
    let said = text(&output.stdout);
    assert!(
        said.contains("1 people in 1 organisations")
            && said.contains("laptop-17")
            && !said.contains("dashboard-ci"),
        "{said}"
    );
    let output = as_client(
        &workspace,
        &base,
        &analyst,
        &["who-has", "pkg:pypi/requests@2.19.1"],
    );
    assert!(
        !output.status.success() && text(&output.stderr).contains("auditors"),
        "{}",
        text(&output.stderr)
    );

    // A new report replaces the last: the pipeline moved to 2.31.0.
    std::fs::write(&freeze, "requests==2.31.0\n").unwrap();
    let output = as_client(
        &workspace,
        &base,
        &analyst,
        &[
            "report",
            &freeze.display().to_string(),
            "--org",
            "RJ1",
            "--environment",
            "dashboard-ci",
            "--kind",
            "pipeline",
        ],
    );
    assert!(
        text(&output.stdout).contains("replacing its last report"),
        "{}",
        text(&output.stdout)
    );
    let output = as_client(
        &workspace,
        &base,
        &auditor,
        &["who-has", "pkg:pypi/requests@2.19.1"],
    );
    assert!(
        !text(&output.stdout).contains("dashboard-ci"),
        "{}",
        text(&output.stdout)
    );

    // The API takes an SPDX 2.3 document straight from CI.
    let spdx = serde_json::json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "etl",
        "packages": [{"name": "requests", "SPDXID": "SPDXRef-requests", "externalRefs": [
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:pypi/requests@2.19.1"}]}]
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = runtime.block_on(async {
        let answer = reqwest::Client::new()
            .put(format!("{base}/api/v1/inventory/RJ1/etl?kind=pipeline"))
            .bearer_auth(&analyst)
            .json(&spdx)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    });
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"format\":\"spdx\""), "{body}");
    let (status, body) = runtime.block_on(async {
        let answer = reqwest::Client::new()
            .put(format!("{base}/api/v1/inventory/RJ1/etl"))
            .json(&spdx)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.text().await.unwrap())
    });
    assert_eq!(status, 401, "reports need a token: {body}");
}
