//! The npm gateway driven by the real npm and pnpm: against the public npm registry through the
//! gateway (installs with dependencies, a scoped package, a prohibited newest version skipped, a
//! lockfile pinning a recalled version refused with the reason, `npm audit` showing the
//! formulary's findings), and against a local registry built from real tarballs for what the
//! public registry cannot show (a malicious release, a damaged upstream, an upstream that stops).
//! Every npm and pnpm run uses its own cache and configuration, never the user's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use crate::formulary_cli::{repo_root, static_server, text, Running, Workspace};

const PUBLIC_REGISTRY: &str = "https://registry.npmjs.org/";

/// A project folder with its own npm configuration (`.npmrc`), cache and an empty user config.
pub(crate) struct Project {
    pub(crate) folder: PathBuf,
    registry: String,
}

impl Project {
    pub(crate) fn new(root: &Path, name: &str, registry: &str, dependencies: &str) -> Project {
        let folder = root.join(name);
        std::fs::create_dir_all(&folder).expect("project folder");
        std::fs::write(
            folder.join("package.json"),
            format!(
                r#"{{"name":"{name}","version":"1.0.0","private":true,"dependencies":{dependencies}}}"#
            ),
        )
        .expect("package.json");
        std::fs::write(folder.join("empty-npmrc"), "").expect("user config");
        std::fs::write(folder.join("empty-global-npmrc"), "").expect("global config");
        Project {
            folder,
            registry: registry.to_owned(),
        }
    }

    pub(crate) fn configure(&self, command: &mut Command) {
        command
            .current_dir(&self.folder)
            .env("NPM_CONFIG_USERCONFIG", self.folder.join("empty-npmrc"))
            .env(
                "NPM_CONFIG_GLOBALCONFIG",
                self.folder.join("empty-global-npmrc"),
            )
            .env("NPM_CONFIG_CACHE", self.folder.join(".npm-cache"))
            .env("NPM_CONFIG_REGISTRY", &self.registry)
            .env("NPM_CONFIG_AUDIT", "false")
            .env("NPM_CONFIG_FUND", "false")
            .env("NPM_CONFIG_UPDATE_NOTIFIER", "false")
            .env("NPM_CONFIG_FETCH_RETRIES", "0")
            .env("NO_COLOR", "1");
    }

    pub(crate) fn npm(&self, args: &[&str]) -> Output {
        let mut command = Command::new("npm");
        self.configure(&mut command);
        command.args(args).output().expect("npm runs")
    }

    pub(crate) fn pnpm(&self, args: &[&str]) -> Output {
        let mut command = Command::new(pnpm());
        self.configure(&mut command);
        command
            .args(args)
            .arg("--store-dir")
            .arg(self.folder.join(".pnpm-store"))
            .arg("--cache-dir")
            .arg(self.folder.join(".pnpm-cache"))
            .output()
            .expect("pnpm runs")
    }

    pub(crate) fn installed(&self, name: &str) -> Option<String> {
        let manifest = std::fs::read_to_string(
            self.folder
                .join("node_modules")
                .join(name)
                .join("package.json"),
        )
        .ok()?;
        let manifest: serde_json::Value = serde_json::from_str(&manifest).ok()?;
        manifest["version"].as_str().map(str::to_owned)
    }
}

pub(crate) fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

pub(crate) fn failed(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "expected a failure: {}",
        text(&output.stdout)
    );
    format!("{}\n{}", text(&output.stdout), text(&output.stderr))
}

/// pnpm: the one on PATH, else pnpm 10 installed once from the public registry into the target
/// folder.
pub(crate) fn pnpm() -> &'static Path {
    static PNPM: OnceLock<PathBuf> = OnceLock::new();
    PNPM.get_or_init(|| {
        if let Ok(found) = which("pnpm") {
            return found;
        }
        // Tests run in parallel processes: each installs into a folder of its own and moves it
        // into place in one rename; the loser of a race uses the winner's copy.
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pnpm-tool");
        let binary = folder.join("node_modules/.bin/pnpm");
        if !binary.exists() {
            let staging = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("pnpm-tool-{}", std::process::id()));
            let project = Project::new(&staging, "tool", PUBLIC_REGISTRY, "{}");
            let mut command = Command::new("npm");
            project.configure(&mut command);
            let output = command
                .args(["install", "--prefix"])
                .arg(&staging)
                .arg("pnpm@10")
                .output()
                .expect("npm runs");
            assert!(
                output.status.success(),
                "could not install pnpm from the npm registry (the test needs network to it): {}",
                text(&output.stderr)
            );
            if std::fs::rename(&staging, &folder).is_err() {
                // Another test won the race, or an earlier run left an unfinished folder: use
                // the winner's copy if it is whole, else this process's own.
                if !binary.exists() {
                    return staging.join("node_modules/.bin/pnpm");
                }
                let _ = std::fs::remove_dir_all(&staging);
            }
        }
        binary
    })
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|path| path.join(program))
                .find(|path| path.is_file())
        })
        .ok_or(())
}

/// `GET url` with an Accept header: status, the headers asked for, and the body.
pub(crate) fn get(url: &str, accept: &str, headers: &[&str]) -> (u16, Vec<String>, String) {
    let script = format!(
        "import urllib.request, sys\nrequest = urllib.request.Request({url:?}, headers={{'Accept': {accept:?}}})\ntry:\n    response = urllib.request.urlopen(request)\nexcept urllib.error.HTTPError as error:\n    response = error\nprint(response.status if hasattr(response, 'status') else response.code)\nprint(response.reason)\nfor name in {headers:?}:\n    print(response.headers.get(name))\nsys.stdout.write(response.read().decode())"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    let stdout = text(&output.stdout);
    let mut lines = stdout.splitn(headers.len() + 3, '\n');
    let status = lines
        .next()
        .and_then(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("{stdout}{}", text(&output.stderr)));
    let mut values = vec![lines.next().unwrap_or_default().to_owned()];
    for _ in headers {
        values.push(lines.next().unwrap_or_default().to_owned());
    }
    (status, values, lines.next().unwrap_or_default().to_owned())
}

pub(crate) fn gateway(workspace: &Workspace, upstreams: &str) -> (Running, String) {
    workspace.serve(&[
        ("FORMULARY_NPM_UPSTREAMS", upstreams.to_owned()),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "10".to_owned()),
    ])
}

pub(crate) fn import_advisories(workspace: &Workspace) {
    for folder in ["npm-github-advisories", "malicious-packages-npm"] {
        workspace.ok(&[
            "advisories",
            "import",
            &repo_root()
                .join("test-data/osv")
                .join(folder)
                .display()
                .to_string(),
        ]);
    }
}

crate::on_both_databases!(fn npm_and_pnpm_install_from_the_public_registry_under_policy);
fn npm_and_pnpm_install_from_the_public_registry_under_policy() {
    let workspace = Workspace::new();
    import_advisories(&workspace);
    let (_server, base) = gateway(&workspace, &format!("[\"{PUBLIC_REGISTRY}\"]"));
    let registry = format!("{base}/npm/");
    let root = workspace.folder.path();

    // An install with dependencies and a scoped package, from the public registry.
    let project = Project::new(
        root,
        "analysis",
        &registry,
        r#"{"chalk":"^4.1.0","@sindresorhus/is":"^4.0.0","is-number":"7.0.0","word-wrap":"1.2.3"}"#,
    );
    succeeded(&project.npm(&["install"]));
    assert_eq!(project.installed("chalk").as_deref(), Some("4.1.2"));
    assert_eq!(
        project.installed("ansi-styles").as_deref(),
        Some("4.3.0"),
        "a dependency of chalk"
    );
    assert_eq!(
        project.installed("@sindresorhus/is").as_deref(),
        Some("4.6.0")
    );
    let lockfile =
        std::fs::read_to_string(project.folder.join("package-lock.json")).expect("lockfile");
    assert!(
        lockfile.contains(&format!(
            "\"resolved\": \"{registry}is-number/-/is-number-7.0.0.tgz\""
        )),
        "tarball URLs point at the gateway: {lockfile}"
    );

    // Both packument forms, each with its own entity tag; time passed on untouched.
    let (status, full_headers, full) = get(
        &format!("{registry}is-number"),
        "application/json",
        &["etag", "vary", "content-type"],
    );
    assert_eq!(status, 200);
    let (_, abbreviated_headers, abbreviated) = get(
        &format!("{registry}is-number"),
        "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        &["etag", "vary", "content-type"],
    );
    assert_ne!(full_headers[1], abbreviated_headers[1], "one ETag per form");
    assert_eq!(full_headers[2], "Accept");
    assert_eq!(
        abbreviated_headers[3],
        "application/vnd.npm.install-v1+json"
    );
    let full: serde_json::Value = serde_json::from_str(&full).expect("full packument");
    let abbreviated: serde_json::Value = serde_json::from_str(&abbreviated).expect("abbreviated");
    let upstream: serde_json::Value = serde_json::from_str(
        &get(
            &format!("{PUBLIC_REGISTRY}is-number"),
            "application/json",
            &[],
        )
        .2,
    )
    .expect("upstream packument");
    assert_eq!(
        full["time"], upstream["time"],
        "time is passed on untouched"
    );
    assert!(
        abbreviated.get("time").is_none()
            && abbreviated["versions"]["7.0.0"]["dist"]["integrity"].is_string()
    );

    // npm audit reports an advisory below the view's threshold (allowed, but known).
    let audit = project.npm(&["audit", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout).expect("audit JSON");
    let via = report["vulnerabilities"]["word-wrap"]["via"].to_string();
    assert!(
        via.contains("GHSA-j8xg-fqg3-53r7") && via.contains("moderate"),
        "{report}"
    );

    // A recall: is-number 7.0.0 is prohibited after it was installed.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:npm/is-number",
        "--status",
        "prohibited",
        "--range",
        "7.0.0",
        "--reason",
        "withdrawn by the national formulary for this test",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let audit = text(&project.npm(&["audit"]).stdout);
    assert!(
        audit.contains("Prohibited by Formulary")
            && audit.contains("withdrawn by the national formulary"),
        "{audit}"
    );
    // `formulary policy check` reads the lockfile and finds it.
    let check = workspace.run(&[
        "policy",
        "check",
        "--file",
        &project
            .folder
            .join("package-lock.json")
            .display()
            .to_string(),
    ]);
    let report = text(&check.stdout);
    assert!(!check.status.success(), "{report}");
    assert!(
        report.contains("DENIED  pkg:npm/is-number@7.0.0")
            && report.contains("ALLOWED  pkg:npm/%40sindresorhus/is@4.6.0"),
        "{report}"
    );
    // The lockfile pins it: npm ci is refused, with the reason.
    std::fs::remove_dir_all(project.folder.join("node_modules")).expect("clean");
    std::fs::remove_dir_all(project.folder.join(".npm-cache")).expect("clean cache");
    let refused = failed(&project.npm(&["ci"]));
    assert!(
        refused.contains("403")
            && refused.contains("Blocked by Formulary")
            && refused.contains("withdrawn by the national formulary"),
        "{refused}"
    );
    // A new install skips it: the newest allowed version is installed.
    let fresh = Project::new(root, "fresh", &registry, r#"{"is-number":"*"}"#);
    succeeded(&fresh.npm(&["install"]));
    assert_eq!(fresh.installed("is-number").as_deref(), Some("6.0.0"));
    let (_, _, packument) = get(&format!("{registry}is-number"), "application/json", &[]);
    let packument: serde_json::Value = serde_json::from_str(&packument).expect("packument");
    assert_eq!(packument["dist-tags"]["latest"], "6.0.0");
    assert!(packument["versions"].get("7.0.0").is_none());
    assert!(
        packument["time"].get("7.0.0").is_some(),
        "time stays as upstream wrote it"
    );

    // pnpm installs the same project through the gateway and skips the prohibited version.
    let with_pnpm = Project::new(
        root,
        "pnpm-project",
        &registry,
        r#"{"chalk":"^4.1.0","@sindresorhus/is":"^4.0.0","is-number":"*"}"#,
    );
    succeeded(&with_pnpm.pnpm(&["install"]));
    assert!(with_pnpm
        .folder
        .join("node_modules/chalk/package.json")
        .exists());
    assert_eq!(with_pnpm.installed("is-number").as_deref(), Some("6.0.0"));
    // A pnpm lockfile pinning the prohibited version is refused at the tarball.
    let pinned = Project::new(root, "pnpm-pinned", &registry, r#"{"is-number":"7.0.0"}"#);
    std::fs::write(
        pinned.folder.join("pnpm-lock.yaml"),
        format!(
            "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n      is-number:\n        specifier: 7.0.0\n        version: 7.0.0\n\npackages:\n\n  is-number@7.0.0:\n    resolution: {{integrity: {}}}\n    engines: {{node: '>=0.12.0'}}\n\nsnapshots:\n\n  is-number@7.0.0: {{}}\n",
            upstream["versions"]["7.0.0"]["dist"]["integrity"].as_str().expect("integrity")
        ),
    )
    .expect("pnpm lockfile");
    let refused = failed(&pinned.pnpm(&["install", "--frozen-lockfile"]));
    assert!(
        refused.contains("ERR_PNPM_FETCH_403")
            && refused.contains("Blocked by Formulary: prohibited by"),
        "pnpm prints the reason phrase: {refused}"
    );
}

/// The real tarballs the local registry is built from, downloaded once.
/// A local npm upstream in `workspace`: the real tarballs' packuments and files, laid out by
/// test-data/npm/local_registry.py under `upstream/registry/` and served statically. Returns the
/// server, the `upstream` folder and the registry's URL (ending in `registry/`).
pub(crate) fn local_upstream(workspace: &Workspace) -> (Running, PathBuf, String) {
    let upstream_root = workspace.folder.path().join("upstream");
    std::fs::create_dir_all(&upstream_root).expect("upstream folder");
    let (upstream, upstream_base) = static_server(&upstream_root);
    let built = Command::new("python3")
        .arg(repo_root().join("test-data/npm/local_registry.py"))
        .arg(real_tarballs())
        .arg(&upstream_root)
        .arg(&upstream_base)
        .output()
        .expect("python3 runs");
    assert!(built.status.success(), "{}", text(&built.stderr));
    (upstream, upstream_root, format!("{upstream_base}registry/"))
}

pub(crate) fn real_tarballs() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-npm-tarballs");
        std::fs::create_dir_all(&folder).expect("tarball folder");
        for (name, file) in [("chalk", "chalk-5.6.0.tgz"), ("is-number", "is-number-7.0.0.tgz")] {
            let path = folder.join(file);
            if path.exists() {
                continue;
            }
            let output = Command::new("python3")
                .args(["-c", &format!("import urllib.request; open({:?}, 'wb').write(urllib.request.urlopen('{PUBLIC_REGISTRY}{name}/-/{file}').read())", path.display().to_string())])
                .output()
                .expect("python3 runs");
            assert!(output.status.success(), "could not download {file} (the test needs network to the npm registry): {}", text(&output.stderr));
        }
        folder
    })
}

crate::on_both_databases!(fn a_local_registry_shows_malicious_releases_damaged_files_and_outages);
fn a_local_registry_shows_malicious_releases_damaged_files_and_outages() {
    let workspace = Workspace::new();
    import_advisories(&workspace);
    let (upstream, _upstream_root, upstream_registry) = local_upstream(&workspace);
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_registry}\"]"));
    let registry = format!("{base}/npm/");
    let root = workspace.folder.path();

    // The malicious newest release is skipped: `latest` points at the newest allowed version.
    let project = Project::new(
        root,
        "report",
        &registry,
        r#"{"chalk":"^5.0.0","@formulary-test/pad":"^1.0.0"}"#,
    );
    succeeded(&project.npm(&["install"]));
    assert_eq!(project.installed("chalk").as_deref(), Some("5.6.0"));
    assert_eq!(
        project.installed("@formulary-test/pad").as_deref(),
        Some("1.0.0"),
        "a scoped package"
    );
    // Asking for its tarball directly is refused, with the reason where npm prints it.
    let (status, headers, body) = get(
        &format!("{registry}chalk/-/chalk-5.6.1.tgz"),
        "*/*",
        &["npm-notice", "content-type"],
    );
    assert_eq!(status, 403);
    assert!(
        headers[0].starts_with("Blocked by Formulary") && headers[0].contains("MAL-2025-46969"),
        "reason phrase: {headers:?}"
    );
    assert!(
        headers[1].contains("MAL-2025-46969"),
        "npm-notice: {headers:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&body).expect("JSON refusal");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|error| error.contains("malicious")),
        "{body}"
    );
    let pinned = Project::new(root, "pinned", &registry, r#"{"chalk":"5.6.1"}"#);
    let refused = failed(&pinned.npm(&["install"]));
    assert!(
        refused.contains("No matching version found for chalk@5.6.1"),
        "{refused}"
    );

    // A curated organisation view with no entry for the package: a 404 whose reason npm prints.
    workspace.ok(&["org", "add", "RJ2", "--name", "A curated trust"]);
    workspace.ok(&[
        "org",
        "settings",
        "RJ2",
        "--ecosystem",
        "npm",
        "--stance",
        "curated",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let curated = Project::new(
        root,
        "curated",
        &format!("{base}/o/RJ2/npm/"),
        r#"{"chalk":"^5.0.0"}"#,
    );
    let refused = failed(&curated.npm(&["install"]));
    assert!(
        refused.contains("npm notice Formulary allows no version of chalk here")
            && refused.contains("curated")
            && refused.contains("/requests/new?component=pkg:npm/chalk"),
        "{refused}"
    );

    // A damaged upstream file is refused and never cached.
    let damaged = Project::new(root, "damaged", &registry, r#"{"is-number":"7.0.0"}"#);
    let refused = failed(&damaged.npm(&["install"]));
    assert!(refused.contains("502"), "{refused}");
    let (status, _, body) = get(
        &format!("{registry}is-number/-/is-number-7.0.0.tgz"),
        "*/*",
        &[],
    );
    assert_eq!(status, 502);
    assert!(
        body.contains("Corrupt upstream file") && body.contains("sha512"),
        "{body}"
    );

    // The upstream stops: what is cached still installs, and the packument says it is stale.
    drop(upstream);
    let offline = Project::new(
        root,
        "offline",
        &registry,
        r#"{"chalk":"^5.0.0","@formulary-test/pad":"^1.0.0"}"#,
    );
    succeeded(&offline.npm(&["install"]));
    assert_eq!(offline.installed("chalk").as_deref(), Some("5.6.0"));
    let (status, headers, _) = get(
        &format!("{registry}chalk"),
        "application/json",
        &["x-formulary-stale"],
    );
    assert_eq!(status, 200);
    assert!(headers[1].contains("upstream unreachable"), "{headers:?}");
    let (status, _, body) = get(&format!("{registry}left-pad"), "application/json", &[]);
    assert_eq!(status, 502, "{body}");

    // A scoped package has its component page and API entry (the scope is a path segment).
    let (status, _, page) = get(
        &format!("{base}/components/npm/@formulary-test/pad"),
        "text/html",
        &[],
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("@formulary-test/pad"), "{page}");
    let (status, _, api) = get(
        &format!("{base}/api/v1/components/npm/@formulary-test/pad"),
        "application/json",
        &[],
    );
    assert_eq!(status, 200, "{api}");
}

crate::on_both_databases!(fn an_air_gapped_site_installs_imported_tarballs);
fn an_air_gapped_site_installs_imported_tarballs() {
    let workspace = Workspace::new();
    let folder = workspace.folder.path().join("tarballs");
    std::fs::create_dir_all(&folder).expect("folder");
    for file in ["chalk-5.6.0.tgz", "is-number-7.0.0.tgz"] {
        std::fs::copy(real_tarballs().join(file), folder.join(file)).expect("copy");
    }
    std::fs::write(
        folder.join("broken-1.0.0.tgz"),
        b"<html>not a tarball</html>",
    )
    .expect("junk");
    let output = workspace.run(&["mirror", "import", "npm", &folder.display().to_string()]);
    let report = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "one file skipped: {report}");
    assert!(
        report.contains("Imported 2 files")
            && report.contains("chalk: chalk-5.6.0.tgz")
            && report.contains("skipped")
            && report.contains("not a readable gzip"),
        "{report}"
    );
    import_advisories(&workspace);
    let (_server, base) = gateway(&workspace, "[]");
    let project = Project::new(
        workspace.folder.path(),
        "airgapped",
        &format!("{base}/npm/"),
        r#"{"chalk":"^5.0.0","is-number":"^7.0.0"}"#,
    );
    succeeded(&project.npm(&["install"]));
    assert_eq!(project.installed("chalk").as_deref(), Some("5.6.0"));
    assert_eq!(project.installed("is-number").as_deref(), Some("7.0.0"));
    let lockfile =
        std::fs::read_to_string(project.folder.join("package-lock.json")).expect("lockfile");
    assert!(
        lockfile.contains("sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng=="),
        "the integrity npm verified is the registry's own: {lockfile}"
    );
    let (status, _, _) = get(&format!("{base}/npm/left-pad"), "application/json", &[]);
    assert_eq!(status, 404);
}

crate::on_both_databases!(fn a_tarball_served_from_memory_is_refused_at_once_when_prohibited);
/// A tarball's version, file identity and decision are kept in memory after the first request;
/// none of that may outlive a policy change, and every request still reaches the ledger.
fn a_tarball_served_from_memory_is_refused_at_once_when_prohibited() {
    let workspace = Workspace::new();
    let (upstream, _upstream_root, upstream_registry) = local_upstream(&workspace);
    let (mut server, base) = gateway(&workspace, &format!("[\"{upstream_registry}\"]"));
    let url = format!("{base}/npm/chalk/-/chalk-5.6.0.tgz");
    let original = std::fs::read(real_tarballs().join("chalk-5.6.0.tgz")).expect("tarball");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = reqwest::Client::new();
    let fetch = |headers: &[(&'static str, String)]| {
        let mut request = client.get(&url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        runtime.block_on(async move {
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            (status, headers, response.bytes().await.expect("body"))
        })
    };

    // Served many times (the first fetches it; the rest come from what is kept in memory).
    let (status, headers, body) = fetch(&[]);
    assert_eq!(status, 200);
    assert!(body == original, "the upstream's bytes");
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    for _ in 0..20 {
        let (status, _, body) = fetch(&[]);
        assert_eq!((status, body.len()), (200, original.len()));
    }
    drop(upstream);
    // Range and conditional requests still work from the cache.
    let (status, headers, body) = fetch(&[("range", "bytes=0-9".to_owned())]);
    assert_eq!(status, 206);
    assert_eq!(&body[..], &original[..10]);
    assert_eq!(
        headers["content-range"].to_str().expect("range"),
        format!("bytes 0-9/{}", original.len())
    );
    let (status, _, body) = fetch(&[("if-none-match", etag)]);
    assert_eq!((status, body.len()), (304, 0));

    // A prohibition after all that: the next requests are refused, well within the 30 s a
    // view's decisions are otherwise reused.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:npm/chalk",
        "--status",
        "prohibited",
        "--range",
        "5.6.0",
        "--reason",
        "withdrawn for this test",
    ]);
    let changed = std::time::Instant::now();
    let mut served_between = 0i64;
    loop {
        let status = fetch(&[]).0;
        if status == 403 {
            break;
        }
        assert_eq!(status, 200);
        served_between += 1;
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "still served 10 s after the prohibition"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..10 {
        let (status, headers, _) = fetch(&[]);
        assert_eq!(status, 403, "refused on every request once refused");
        assert!(
            headers["npm-notice"]
                .to_str()
                .is_ok_and(|notice| notice.contains("withdrawn for this test")),
            "{headers:?}"
        );
    }

    // A graceful stop writes every queued ledger line: each download and each refusal.
    let stopped = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    assert!(server.0.wait().expect("server exits").success());
    let records = workspace.database_url().map_or_else(
        || {
            format!(
                "sqlite://{}",
                workspace.folder.path().join("data/formulary.db").display()
            )
        },
        str::to_owned,
    );
    let (served, refused): (i64, i64) = runtime.block_on(async {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut connection = sqlx::AnyConnection::connect(&records)
            .await
            .expect("the workspace's records");
        let mut counts = [0i64; 2];
        for (count, outcome) in counts.iter_mut().zip(["served", "refused"]) {
            *count = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM downloads WHERE name = 'chalk' AND filename = 'chalk-5.6.0.tgz' AND outcome = '{outcome}'"
            ))
            .fetch_one(&mut connection)
            .await
            .expect("count");
        }
        let [served, refused] = counts;
        (served, refused)
    });
    // 21 full downloads, the range request and the 304 (each a download of the file), and
    // those served while the change travelled; the first refusal and ten more.
    assert_eq!(served, 23 + served_between, "every download in the ledger");
    assert_eq!(refused, 11, "every refusal in the ledger");
}

crate::on_both_databases!(fn a_restarted_gateway_serves_tarballs_then_packuments_from_its_store);
/// A gateway started on a warm store serves a tarball from the package's facts record alone, and
/// reads the packument itself only when one is asked for: every answer as before the restart,
/// with the upstream gone.
fn a_restarted_gateway_serves_tarballs_then_packuments_from_its_store() {
    let workspace = Workspace::new();
    let (upstream, _upstream_root, upstream_registry) = local_upstream(&workspace);
    let upstreams = format!("[\"{upstream_registry}\"]");
    let original = std::fs::read(real_tarballs().join("chalk-5.6.0.tgz")).expect("tarball");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = reqwest::Client::new();
    let download = |url: String| {
        runtime.block_on(async {
            let response = client.get(url).send().await.expect("an answer");
            let status = response.status().as_u16();
            (status, response.bytes().await.expect("body"))
        })
    };
    let abbreviated = "application/vnd.npm.install-v1+json";

    let (mut server, base) = gateway(&workspace, &upstreams);
    let full_before = get(&format!("{base}/npm/chalk"), "application/json", &[]);
    let abbreviated_before = get(&format!("{base}/npm/chalk"), abbreviated, &[]);
    assert_eq!((full_before.0, abbreviated_before.0), (200, 200));
    let (status, body) = download(format!("{base}/npm/chalk/-/chalk-5.6.0.tgz"));
    assert_eq!(status, 200);
    assert!(body == original, "the upstream's bytes");
    let stopped = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    assert!(server.0.wait().expect("server exits").success());
    drop(upstream);

    // Started again: the tarball first (the facts are enough), then both packuments.
    let (_server, again) = gateway(&workspace, &upstreams);
    let (status, body) = download(format!("{again}/npm/chalk/-/chalk-5.6.0.tgz"));
    assert_eq!(status, 200);
    assert!(body == original, "the cached bytes");
    let (status, body) = download(format!("{again}/npm/chalk/-/chalk-5.5.0.tgz"));
    assert_eq!(status, 404, "a file no version names: {body:?}");
    for (accept, before) in [
        ("application/json", &full_before),
        (abbreviated, &abbreviated_before),
    ] {
        let after = get(&format!("{again}/npm/chalk"), accept, &[]);
        assert_eq!(after.0, 200, "{accept}: {}", after.2);
        // Tarball URLs name the server's address, which changed with the restart.
        assert_eq!(after.2, before.2.replace(&base, &again), "{accept}");
    }
}
