//! Install-script awareness with the real npm and pnpm against a local registry: a version with a
//! `postinstall` script is flagged on the component page and API, served (and its script run by
//! npm) where the view allows install scripts, and refused with the reason where an
//! organisation's settings deny them, unless an entry approves that version.

use std::path::Path;
use std::time::Duration;

use crate::formulary_cli::Workspace;
use crate::gateway_npm::{failed, gateway, get, local_upstream, succeeded, Project};

/// The reason every refusal of a version with install scripts gives.
const REASON: &str =
    "runs an install script (preinstall, install or postinstall), which this view does not allow. Use a version without one, or request an exception";

fn pnpm_lockfile(integrity: &str) -> String {
    format!(
        "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n      formulary-hook:\n        specifier: 1.1.0\n        version: 1.1.0\n\npackages:\n\n  formulary-hook@1.1.0:\n    resolution: {{integrity: {integrity}}}\n    engines: {{node: '>=0.12.0'}}\n\nsnapshots:\n\n  formulary-hook@1.1.0: {{}}\n"
    )
}

fn version_row<'a>(component: &'a serde_json::Value, version: &str) -> &'a serde_json::Value {
    component["versions"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|row| row["decision"]["version"] == version)
        })
        .unwrap_or_else(|| panic!("no row for {version}: {component}"))
}

/// The component's API answer for an organisation, once the gateway has recorded the release
/// evidence (it does so in the background after reading the packument).
fn component_api(base: &str, organisation: &str) -> serde_json::Value {
    for _ in 0..50 {
        let (status, _, body) = get(
            &format!("{base}/api/v1/components/npm/formulary-hook?organisation={organisation}"),
            "application/json",
            &[],
        );
        assert_eq!(status, 200, "{body}");
        let component: serde_json::Value = serde_json::from_str(&body).expect("component JSON");
        let recorded = component["versions"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|row| row["decision"]["version"] == "1.1.0" && row["install_scripts"] == true)
        });
        if recorded {
            return component;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the release evidence of formulary-hook was never recorded");
}

crate::on_both_databases!(fn install_scripts_are_flagged_and_refused_where_a_view_denies_them);
fn install_scripts_are_flagged_and_refused_where_a_view_denies_them() {
    let workspace = Workspace::new();
    let (_upstream, upstream_root, upstream_registry) = local_upstream(&workspace);
    let upstream: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(upstream_root.join("registry/formulary-hook")).expect("packument"),
    )
    .expect("packument JSON");
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_registry}\"]"));
    let root = workspace.folder.path();
    workspace.ok(&[
        "org",
        "add",
        "RJ3",
        "--name",
        "A trust that denies install scripts",
    ]);
    let denying = format!("{base}/o/RJ3/npm/");
    // The gateway picks changes up within a few seconds (SQLite is polled).
    std::thread::sleep(Duration::from_secs(3));

    // Before the setting: RJ3 installs the version with the script, and the lockfile pins it.
    let project = Project::new(root, "scripts", &denying, r#"{"formulary-hook":"1.1.0"}"#);
    succeeded(&project.npm(&["install"]));
    assert_eq!(
        project.installed("formulary-hook").as_deref(),
        Some("1.1.0")
    );
    assert!(
        ran_postinstall(&project.folder),
        "npm ran the postinstall script"
    );

    let settings = workspace.ok(&[
        "org",
        "settings",
        "RJ3",
        "--ecosystem",
        "npm",
        "--install-scripts",
        "deny",
    ]);
    assert!(settings.contains("install scripts     deny"), "{settings}");
    std::thread::sleep(Duration::from_secs(3));

    // The abbreviated packument passes `hasInstallScript` on, and the full one `scripts`;
    // RJ3's view no longer lists 1.1.0, and `latest` points at 1.0.0.
    let (_, _, abbreviated) = get(
        &format!("{base}/npm/formulary-hook"),
        "application/vnd.npm.install-v1+json",
        &[],
    );
    let abbreviated: serde_json::Value = serde_json::from_str(&abbreviated).expect("JSON");
    assert_eq!(abbreviated["versions"]["1.1.0"]["hasInstallScript"], true);
    let (_, _, full) = get(
        &format!("{base}/npm/formulary-hook"),
        "application/json",
        &[],
    );
    let full: serde_json::Value = serde_json::from_str(&full).expect("JSON");
    assert_eq!(
        full["versions"]["1.1.0"]["scripts"],
        upstream["versions"]["1.1.0"]["scripts"]
    );
    let (_, _, denied_view) = get(&format!("{denying}formulary-hook"), "application/json", &[]);
    let denied_view: serde_json::Value = serde_json::from_str(&denied_view).expect("JSON");
    assert!(
        denied_view["versions"].get("1.1.0").is_none(),
        "{denied_view}"
    );
    assert_eq!(denied_view["dist-tags"]["latest"], "1.0.0");

    // The tarball is refused with the reason, where npm prints it.
    let (status, headers, body) = get(
        &format!("{denying}formulary-hook/-/formulary-hook-1.1.0.tgz"),
        "*/*",
        &["npm-notice"],
    );
    assert_eq!(status, 403, "{body}");
    assert!(headers[1].contains(REASON), "{headers:?}");

    // npm ci from the lockfile: refused, the reason printed.
    std::fs::remove_dir_all(project.folder.join("node_modules")).expect("clean");
    std::fs::remove_dir_all(project.folder.join(".npm-cache")).expect("clean cache");
    let refused = failed(&project.npm(&["ci"]));
    assert!(
        refused.contains("403") && refused.contains(REASON) && refused.contains("request"),
        "{refused}"
    );
    // pnpm with a lockfile pinning it: refused at the tarball, the reason phrase printed.
    let pinned = Project::new(
        root,
        "pnpm-pinned",
        &denying,
        r#"{"formulary-hook":"1.1.0"}"#,
    );
    std::fs::write(
        pinned.folder.join("pnpm-lock.yaml"),
        pnpm_lockfile(
            upstream["versions"]["1.1.0"]["dist"]["integrity"]
                .as_str()
                .expect("integrity"),
        ),
    )
    .expect("pnpm lockfile");
    let refused = failed(&pinned.pnpm(&["install", "--frozen-lockfile"]));
    assert!(
        refused.contains("ERR_PNPM_FETCH_403") && refused.contains(REASON),
        "{refused}"
    );
    // A new install in RJ3 takes the newest version without scripts, with npm and pnpm.
    let fresh = Project::new(root, "fresh", &denying, r#"{"formulary-hook":"^1.0.0"}"#);
    succeeded(&fresh.npm(&["install"]));
    assert_eq!(fresh.installed("formulary-hook").as_deref(), Some("1.0.0"));
    let fresh_pnpm = Project::new(
        root,
        "fresh-pnpm",
        &denying,
        r#"{"formulary-hook":"^1.0.0"}"#,
    );
    succeeded(&fresh_pnpm.pnpm(&["install"]));
    assert_eq!(
        fresh_pnpm.installed("formulary-hook").as_deref(),
        Some("1.0.0")
    );

    // Elsewhere (the national view), install scripts are allowed: 1.1.0 installs and its script runs.
    let allowed = Project::new(
        root,
        "allowed",
        &format!("{base}/npm/"),
        r#"{"formulary-hook":"^1.0.0"}"#,
    );
    succeeded(&allowed.npm(&["install"]));
    assert_eq!(
        allowed.installed("formulary-hook").as_deref(),
        Some("1.1.0")
    );
    assert!(ran_postinstall(&allowed.folder));
    let allowed_pnpm = Project::new(
        root,
        "allowed-pnpm",
        &format!("{base}/npm/"),
        r#"{"formulary-hook":"^1.0.0"}"#,
    );
    succeeded(&allowed_pnpm.pnpm(&["install"]));
    assert_eq!(
        allowed_pnpm.installed("formulary-hook").as_deref(),
        Some("1.1.0")
    );

    // The evidence: flagged in the API and on the component page, in both views.
    let national = component_api(&base, "NATIONAL");
    let row = version_row(&national, "1.1.0");
    assert_eq!(row["decision"]["allowed"], true, "{row}");
    assert!(
        row["decision"]["reasons"]
            .as_array()
            .is_some_and(|reasons| reasons
                .iter()
                .any(|reason| reason["code"] == "install-scripts" && reason["effect"] == "note")),
        "{row}"
    );
    assert_eq!(version_row(&national, "1.0.0")["install_scripts"], false);
    let in_rj3 = component_api(&base, "RJ3");
    let row = version_row(&in_rj3, "1.1.0");
    assert_eq!(row["decision"]["allowed"], false, "{row}");
    assert!(row["decision"].to_string().contains(REASON), "{row}");
    let (status, _, page) = get(
        &format!("{base}/components/npm/formulary-hook"),
        "text/html",
        &[],
    );
    assert_eq!(status, 200);
    assert!(
        page.contains("Install scripts") && page.contains("runs an install script"),
        "{page}"
    );

    // An entry approving the version lets it through in RJ3 (a reviewed exception).
    workspace.ok(&[
        "entry",
        "add",
        "pkg:npm/formulary-hook",
        "--status",
        "approved",
        "--range",
        "1.1.0",
        "--reason",
        "postinstall reviewed: writes a marker file only",
        "--org",
        "RJ3",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let excepted = Project::new(root, "excepted", &denying, r#"{"formulary-hook":"^1.0.0"}"#);
    succeeded(&excepted.npm(&["install"]));
    assert_eq!(
        excepted.installed("formulary-hook").as_deref(),
        Some("1.1.0")
    );
}

fn ran_postinstall(project: &Path) -> bool {
    project
        .join("node_modules/formulary-hook/postinstall-ran")
        .exists()
}
