//! The conda gateway driven by the real py-rattler (the library pixi is built on: repodata
//! fetch, solve, install into a prefix) against a local upstream channel built in the test from
//! package contents made there (`.tar.bz2` packages and a `.conda` package made with
//! conda-package-handling, indexed with py-rattler's indexer): a cooldown keeps a freshly
//! indexed version out of the solve, and a recalled package that a solved environment pins is
//! refused with the reason when it is installed again.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::formulary_cli::{repo_root, static_server, text, Workspace};

pub(crate) fn driver() -> std::path::PathBuf {
    repo_root().join("test-data/conda/driver.py")
}

/// `GET url`: status, reason phrase and body.
fn get(url: &str) -> (u16, String, String) {
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

pub(crate) fn build_channel(root: &Path) -> std::path::PathBuf {
    let channel = root.join("upstream/channel");
    let output = Command::new("python3")
        .arg(driver())
        .arg("channel")
        .arg(&channel)
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
    let (_server, base) = workspace.serve(&[
        (
            "FORMULARY_CONDA_CHANNELS",
            format!("{{conda-forge=[\"{upstream}channel/\"]}}"),
        ),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
    ]);
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
    // Sharded and compressed repodata: 404, from which clients fall back to repodata.json.
    for name in [
        "repodata_shards.msgpack.zst",
        "repodata.json.zst",
        "current_repodata.json",
    ] {
        assert_eq!(get(&format!("{gateway}/noarch/{name}")).0, 404, "{name}");
    }
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
    std::thread::sleep(Duration::from_secs(3));
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
}
