//! The conda gateway driven by the real py-rattler (the library pixi is built on: repodata
//! fetch, solve, install into a prefix) against a local upstream channel built in the test from
//! package contents made there (`.tar.bz2` packages and a `.conda` package made with
//! conda-package-handling, indexed with py-rattler's indexer): a cooldown keeps a freshly
//! indexed version out of the solve, and a recalled package that a solved environment pins is
//! refused with the reason when it is installed again. py-rattler fetches CEP-16 sharded
//! repodata (the server's log proves it never fell back to `repodata.json`); the shard index and
//! shards are decoded here with `rattler_conda_types`' own types; a prohibited version leaves
//! its shard (new hash) quickly, the old shard stays addressable, and a new solve avoids it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rattler_conda_types::{Shard, ShardedRepodata};

use crate::formulary_cli::{repo_root, static_server, text, Workspace};

pub(crate) fn driver() -> std::path::PathBuf {
    repo_root().join("test-data/conda/driver.py")
}

/// `GET url`: status, reason phrase and body.
pub(crate) fn get(url: &str) -> (u16, String, String) {
    let script = format!(
        "import urllib.request, sys\ntry:\n    response = urllib.request.urlopen({url:?})\nexcept urllib.error.HTTPError as error:\n    response = error\nprint(response.status if hasattr(response, 'status') else response.code)\nprint(response.reason)\nsys.stdout.write(response.read().decode(errors='replace'))"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    let stdout = text(&output.stdout);
    let mut lines = stdout.splitn(3, '\n');
    let status = lines
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("{stdout}{}", text(&output.stderr)));
    let reason = lines.next().unwrap_or_default().to_owned();
    (status, reason, lines.next().unwrap_or_default().to_owned())
}

/// A response as Python's urllib saw it.
struct Fetched {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// `GET url` with request headers; the body as bytes.
fn fetch(url: &str, headers: &[(&str, &str)]) -> Fetched {
    let script = "import json, sys, urllib.request, urllib.error\n\
request = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))\n\
try:\n    response = urllib.request.urlopen(request)\n\
except urllib.error.HTTPError as error:\n    response = error\n\
body = response.read()\n\
print(json.dumps({'status': getattr(response, 'code', None) or response.status, \
'headers': {key.lower(): value for key, value in response.headers.items()}, 'body': body.hex()}))";
    let headers: BTreeMap<&str, &str> = headers.iter().copied().collect();
    let output = Command::new("python3")
        .args([
            "-c",
            script,
            url,
            &serde_json::to_string(&headers).expect("JSON"),
        ])
        .output()
        .expect("python3 runs");
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("{}{}", text(&output.stdout), text(&output.stderr)));
    Fetched {
        status: answer["status"].as_u64().expect("status") as u16,
        headers: serde_json::from_value(answer["headers"].clone()).expect("headers"),
        body: hex::decode(answer["body"].as_str().expect("body")).expect("hex body"),
    }
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).expect("zstd")
}

/// A subdirectory's shard index, read with rattler's own type.
fn shard_index(gateway: &str, subdir: &str) -> (Fetched, ShardedRepodata) {
    let fetched = fetch(
        &format!("{gateway}/{subdir}/repodata_shards.msgpack.zst"),
        &[],
    );
    assert_eq!(fetched.status, 200, "{}", text(&fetched.body));
    let index = rmp_serde::from_slice(&unzstd(&fetched.body)).expect("a ShardedRepodata");
    (fetched, index)
}

/// The URL of a package's shard as the index names it.
fn shard_url(gateway: &str, subdir: &str, index: &ShardedRepodata, name: &str) -> String {
    let hash = index
        .shards
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in the {subdir} index"));
    format!(
        "{gateway}/{subdir}/{}{}.msgpack.zst",
        index.info.shards_base_url.trim_start_matches("./"),
        hex::encode(hash.as_slice())
    )
}

/// A shard's file names (`.tar.bz2` and `.conda`), read with rattler's own type.
fn shard_files(fetched: &Fetched) -> Vec<String> {
    let shard: Shard = rmp_serde::from_slice(&unzstd(&fetched.body)).expect("a Shard");
    let mut files: Vec<String> = shard
        .packages
        .keys()
        .chain(shard.conda_packages.keys())
        .map(ToString::to_string)
        .collect();
    files.sort();
    files
}

/// How many times the server's log says it served `document` (debug lines of the conda
/// handlers).
fn times_served(log: &Path, document: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&format!("document=\"{document}\"")))
        .count()
}

pub(crate) fn build_channel(root: &Path) -> std::path::PathBuf {
    build_channel_with(root, &[])
}

/// The test channel, with the driver's extra packages (`advisory`: pytorch 1.13.0 and 1.13.1).
pub(crate) fn build_channel_with(root: &Path, extra: &[&str]) -> std::path::PathBuf {
    let channel = root.join("upstream/channel");
    let output = Command::new("python3")
        .arg(driver())
        .arg("channel")
        .arg(&channel)
        .args(extra)
        .output()
        .expect("python3 runs the driver");
    assert!(
        output.status.success(),
        "building the channel failed (needs py-rattler and conda-package-handling from PyPI): {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    channel
}

crate::on_both_databases!(fn py_rattler_solves_and_installs_through_the_gateway_under_policy);
fn py_rattler_solves_and_installs_through_the_gateway_under_policy() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    let channel = build_channel(root);
    let (upstream_server, upstream) = static_server(channel.parent().expect("upstream folder"));
    let channels = format!("{{conda-forge=[\"{upstream}channel/\"]}}");
    let settings = [
        ("FORMULARY_CONDA_CHANNELS", channels.as_str()),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0"),
        ("FORMULARY_LOG", "info,formulary_server::conda=debug"),
    ];
    let (server, base, log) = crate::reliability::serve(&workspace, &settings);
    let gateway = format!("{base}/conda/conda-forge");

    // Solve and install an environment with a dependency, a noarch and a platform package.
    let prefix = root.join("env");
    let mut driver = Command::new("python3")
        .arg(driver())
        .arg("install")
        .arg(&gateway)
        .arg(&prefix)
        .arg(root.join("rattler-cache"))
        .args(["tinyapp", "platformtool", "r-tinyr"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("py-rattler driver starts");
    let mut stdout = BufReader::new(driver.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("solve result");
    let solved: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        panic!("driver said {line:?}");
    });
    let solved = solved["solved"]
        .as_array()
        .unwrap_or_else(|| panic!("the solve failed: {line}"));
    let version_of = |name: &str| {
        solved
            .iter()
            .find(|record| record["name"] == name)
            .and_then(|record| record["version"].as_str())
            .map(str::to_owned)
    };
    // tinylib 2.0 was indexed today: the 7-day cooldown keeps it out, so 1.0 is chosen.
    assert_eq!(version_of("tinylib").as_deref(), Some("1.0"), "{line}");
    assert_eq!(version_of("platformtool").as_deref(), Some("1.2.0"));
    assert_eq!(version_of("r-tinyr").as_deref(), Some("0.3.1"));
    assert!(
        solved.iter().all(|record| record["url"]
            .as_str()
            .is_some_and(|url| url.starts_with(&gateway))),
        "every package comes through the gateway: {line}"
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join("share/tinylib/VERSION")).expect("installed file"),
        "tinylib 1.0\n"
    );
    assert!(prefix.join("bin/platformtool").is_file());
    // py-rattler took the sharded path: the index of both subdirectories and shards, never the
    // full repodata (as the server logged each document it served).
    assert!(
        times_served(&log, "repodata_shards.msgpack.zst") >= 2,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        times_served(&log, "shard") >= 4,
        "tinyapp, tinylib, r-tinyr, platformtool"
    );
    assert_eq!(
        times_served(&log, "repodata.json"),
        0,
        "no fallback to repodata.json"
    );
    assert_eq!(times_served(&log, "repodata.json.zst"), 0);

    // What the solver saw: the held-back record is absent, everything else as upstream wrote it.
    let (status, _, body) = get(&format!("{gateway}/noarch/repodata.json"));
    assert_eq!(status, 200);
    let served: serde_json::Value = serde_json::from_str(&body).expect("repodata JSON");
    let original: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(channel.join("noarch/repodata.json")).expect("upstream repodata"),
    )
    .expect("upstream JSON");
    assert!(served["packages"]["tinylib-2.0-0.tar.bz2"].is_null());
    assert_eq!(
        served["packages"]["tinylib-1.0-0.tar.bz2"], original["packages"]["tinylib-1.0-0.tar.bz2"],
        "records (timestamps, hashes, depends) pass through untouched"
    );
    // A direct request for the held-back file is refused with the reason.
    let (status, reason, body) = get(&format!("{gateway}/noarch/tinylib-2.0-0.tar.bz2"));
    assert_eq!(status, 403, "{body}");
    assert!(reason.starts_with("Blocked by Formulary"), "{reason}");
    assert!(body.contains("cooldown") || body.contains("days"), "{body}");
    // repodata.json.zst is the same document, with its own entity tag and 304.
    let json = fetch(&format!("{gateway}/noarch/repodata.json"), &[]);
    let zst = fetch(&format!("{gateway}/noarch/repodata.json.zst"), &[]);
    assert_eq!(zst.status, 200);
    assert_eq!(unzstd(&zst.body), json.body);
    assert_ne!(zst.headers["etag"], json.headers["etag"]);
    assert_eq!(
        fetch(
            &format!("{gateway}/noarch/repodata.json.zst"),
            &[("If-None-Match", &zst.headers["etag"])]
        )
        .status,
        304
    );
    // The shard index: relative base URLs (packages and shards come from the gateway, whatever
    // Host the client used), a short max-age; shards immutable, the held-back record absent.
    let (fetched, index) = shard_index(&gateway, "noarch");
    assert_eq!(fetched.headers["cache-control"], "max-age=30");
    assert_eq!(index.info.subdir, "noarch");
    assert_eq!(index.info.base_url, "./");
    assert_eq!(index.info.shards_base_url, "./shards/");
    let mut names: Vec<&str> = index.shards.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["r-tinyr", "tinyapp", "tinylib"]);
    let tinylib = fetch(&shard_url(&gateway, "noarch", &index, "tinylib"), &[]);
    assert_eq!(tinylib.status, 200);
    assert_eq!(
        tinylib.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(shard_files(&tinylib), ["tinylib-1.0-0.tar.bz2"]);
    let unknown = format!("{gateway}/noarch/shards/{}.msgpack.zst", "0".repeat(64));
    assert_eq!(fetch(&unknown, &[]).status, 404);
    assert_eq!(
        fetch(
            &format!("{gateway}/noarch/shards/..%2fsecret.msgpack.zst"),
            &[]
        )
        .status,
        404
    );
    // Other compressed forms and current_repodata.json: 404, clients fall back.
    for name in ["repodata.json.bz2", "current_repodata.json"] {
        assert_eq!(get(&format!("{gateway}/noarch/{name}")).0, 404, "{name}");
    }
    // channeldata.json and .sigs (CEP-27) pass through as upstream wrote them; a denied
    // file's attestations are refused like the file; the channel has no notices yet.
    let channeldata = fetch(&format!("{gateway}/channeldata.json"), &[]);
    assert_eq!(channeldata.status, 200);
    assert_eq!(
        channeldata.body,
        std::fs::read(channel.join("channeldata.json")).expect("upstream channeldata")
    );
    let sigs = fetch(&format!("{gateway}/noarch/tinylib-1.0-0.tar.bz2.sigs"), &[]);
    assert_eq!(sigs.status, 200);
    assert_eq!(
        sigs.body,
        std::fs::read(channel.join("noarch/tinylib-1.0-0.tar.bz2.sigs")).expect("upstream sigs")
    );
    let (status, reason, _) = get(&format!("{gateway}/noarch/tinylib-2.0-0.tar.bz2.sigs"));
    assert_eq!(status, 403);
    assert!(reason.starts_with("Blocked by Formulary"), "{reason}");
    let notices = fetch(&format!("{gateway}/notices.json"), &[]);
    assert_eq!(notices.status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&notices.body).expect("notices JSON"),
        serde_json::json!({"notices": []}),
        "no standing prohibitions yet"
    );
    for path in [
        "noarch/tinyapp-1.0-0.tar.bz2.sigs",
        "noarch/nothing-1.0-0.tar.bz2.sigs",
    ] {
        assert_eq!(get(&format!("{gateway}/{path}")).0, 404, "{path}");
    }
    let (_, before) = shard_index(&gateway, "linux-64");
    let old_shard = shard_url(&gateway, "linux-64", &before, "platformtool");
    assert_eq!(
        shard_files(&fetch(&old_shard, &[])),
        [
            "platformtool-1.1.0-h0_0.conda",
            "platformtool-1.2.0-h0_0.conda"
        ]
    );
    assert_eq!(
        get(&format!("{base}/conda/elsewhere/noarch/repodata.json")).0,
        404
    );

    // A recall: platformtool 1.2.0 is prohibited after the environment was solved. Installing
    // the solved (locked) records again downloads it afresh and is refused with the reason.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:conda/platformtool",
        "--status",
        "prohibited",
        "--range",
        "==1.2.0",
        "--reason",
        "withdrawn by the national formulary for this test",
    ]);
    // The shard index changes as soon as the server sees the change: at once on PostgreSQL
    // (LISTEN/NOTIFY); SQLite servers poll every 2 s.
    let changed = Instant::now();
    let limit = if workspace.database_url().is_some() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    };
    let (after, asked_at) = loop {
        let asked_at = changed.elapsed();
        let (_, index) = shard_index(&gateway, "linux-64");
        if index.shards.get("platformtool") != before.shards.get("platformtool") {
            break (index, asked_at);
        }
        assert!(
            changed.elapsed() < limit,
            "the platformtool shard did not change within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Each probe starts a Python process, so the figure is the start of the first request
    // that saw the change.
    eprintln!(
        "the shard index reflected the prohibition in a request started {} ms after `entry add` returned",
        asked_at.as_millis()
    );
    assert!(asked_at < limit, "{asked_at:?}");
    let new_shard = fetch(
        &shard_url(&gateway, "linux-64", &after, "platformtool"),
        &[],
    );
    // The channel's notices (CEP-6) now carry the prohibition, in the shape conda reads.
    let notices: serde_json::Value =
        serde_json::from_slice(&fetch(&format!("{gateway}/notices.json"), &[]).body)
            .expect("notices JSON");
    let listed = notices["notices"].as_array().expect("a notices list");
    assert_eq!(listed.len(), 1, "{notices}");
    let notice = &listed[0];
    assert_eq!(notice["level"], "warning");
    assert_eq!(notice["interval"], 86_400);
    assert!(notice["id"].as_str().is_some_and(|id| !id.is_empty()));
    let message = notice["message"].as_str().expect("message");
    assert!(
        message.starts_with("platformtool: versions ==1.2.0 prohibited by the national formulary: withdrawn by the national formulary for this test")
            && message.contains(&format!("{base}/components/conda/platformtool")),
        "{message}"
    );
    for field in ["created_at", "expired_at"] {
        let at = notice[field].as_str().expect(field);
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.ends_with("+00:00"),
            "{field} {at}: Python's datetime.fromisoformat reads an offset, not Z, before 3.11"
        );
    }
    assert_eq!(
        fetch(
            &format!("{base}/o/NOPE/conda/conda-forge/notices.json"),
            &[]
        )
        .status,
        404
    );
    assert_eq!(shard_files(&new_shard), ["platformtool-1.1.0-h0_0.conda"]);
    // A client holding the old index still gets the shard it was told about.
    assert_eq!(fetch(&old_shard, &[]).status, 200);
    // A fresh solve through shards never chooses the prohibited version.
    let fetched_by_the_test = times_served(&log, "repodata.json");
    let resolved = Command::new("python3")
        .arg(repo_root().join("test-data/conda/driver.py"))
        .arg("install")
        .arg(&gateway)
        .arg(root.join("env3"))
        .arg(root.join("rattler-cache3"))
        .arg("platformtool")
        .stdin(Stdio::null())
        .output()
        .expect("py-rattler driver runs");
    let resolved = text(&resolved.stdout);
    assert!(
        resolved.contains(r#""name": "platformtool", "version": "1.1.0""#),
        "{resolved}"
    );
    assert_eq!(
        times_served(&log, "repodata.json"),
        fetched_by_the_test,
        "still no fallback"
    );
    writeln!(
        driver.stdin.as_mut().expect("stdin"),
        "reinstall {} {}",
        root.join("env2").display(),
        root.join("rattler-cache2").display()
    )
    .expect("driver reads");
    line.clear();
    stdout.read_line(&mut line).expect("reinstall result");
    let _ = driver.wait();
    // rattler's error carries the reason phrase:
    // "HTTP status client error (403 Blocked by Formulary: prohibited … withdrawn …) for url".
    assert!(
        line.contains("error")
            && line.contains("403 Blocked by Formulary")
            && line.contains("withdrawn by the national formulary"),
        "the recalled package is refused with the reason: {line}"
    );
    let (status, _, body) = get(&format!("{gateway}/linux-64/platformtool-1.2.0-h0_0.conda"));
    assert_eq!(status, 403);
    assert!(
        body.contains("withdrawn by the national formulary"),
        "{body}"
    );
    let (_, _, body) = get(&format!("{gateway}/linux-64/repodata.json"));
    assert!(!body.contains("platformtool-1.2.0"), "{body}");

    // Hostile paths are 404 and reach no upstream.
    for path in [
        "..%2f..%2fetc/repodata.json",
        "noarch/..%2frepodata.json",
        "noarch/%2e%2e%2fsecret.conda",
        "Linux-64/repodata.json",
        "noarch/tinylib-1.0-0.whl",
    ] {
        let (status, _, body) = get(&format!("{gateway}/{path}"));
        assert_eq!(status, 404, "{path}: {body}");
    }

    // The upstream goes away: the cached repodata and the cached package are still served.
    drop(upstream_server);
    let (status, _, body) = get(&format!("{gateway}/noarch/repodata.json"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tinylib-1.0-0.tar.bz2"));
    let (status, _, _) = get(&format!("{gateway}/noarch/tinylib-1.0-0.tar.bz2"));
    assert_eq!(status, 200, "a cached package stays installable");
    let (status, _, _) = get(&format!("{gateway}/channeldata.json"));
    assert_eq!(status, 200, "the cached channeldata.json is served");
    let (status, _, _) = get(&format!("{gateway}/noarch/repodata_shards.msgpack.zst"));
    assert_eq!(status, 200, "the cached repodata's shard index is served");

    // A restart with the upstream still gone reads the stored (compressed) upstream copy back:
    // the same repodata.json, entity tag included, and the same shard index (same shards, same
    // hashes), so clients holding them need nothing new.
    let json_before = fetch(&format!("{gateway}/linux-64/repodata.json"), &[]);
    let (index_before, _) = shard_index(&gateway, "linux-64");
    drop(server);
    let (_server, base, _) = crate::reliability::serve(&workspace, &settings);
    let gateway = format!("{base}/conda/conda-forge");
    let json_after = fetch(&format!("{gateway}/linux-64/repodata.json"), &[]);
    assert_eq!(json_after.status, 200);
    assert_eq!(
        json_after.headers.get("etag"),
        json_before.headers.get("etag")
    );
    assert_eq!(json_after.body, json_before.body);
    let (index_after, _) = shard_index(&gateway, "linux-64");
    assert_eq!(index_after.body, index_before.body);
}
